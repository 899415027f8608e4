"""Canonical plan form and plan hash (DESIGN §3.6, §5): same meaning → same hash, any change → new hash."""

from __future__ import annotations

import copy
import hashlib
import json
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.plans import canonical_json, canonical_plan, parse_plan, plan_hash
from core.safety.credentials import SENSITIVE_KEY

ASSETS = {"web-01": "asset-1", "db-01": "asset-2"}


def base_plan() -> dict[str, Any]:
    return {
        "name": "restart-nginx",
        "description": "Restart nginx on web-01",
        "steps": [
            {
                "name": "check",
                "action": "shell",
                "target": "web-01",
                "params": {"command": "systemctl status nginx", "env": {"A": "1", "B": "2"}},
                "timeout_s": 5,
            },
            {
                "name": "restart",
                "action": "shell",
                "target": "web-01",
                "action_class": "modify",
                "params": {"command": "systemctl restart nginx", "env": {"TOKEN": "{{ secret:nginx_token }}"}},
            },
            {"name": "pause", "action": "sleep", "target": "db-01", "params": {"seconds": 2}},
        ],
    }


def canonical_of(data: Any, assets: dict[str, str] = ASSETS) -> dict[str, Any]:
    return canonical_plan(parse_plan(data), assets)


def hash_of(data: Any, assets: dict[str, str] = ASSETS) -> str:
    return plan_hash(canonical_of(data, assets))


def reversed_keys(value: Any) -> Any:
    """The same value with every mapping's keys in reverse insertion order."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


# --- Same meaning, same hash --------------------------------------------------------------------------------


def test_reordered_keys_give_the_same_canonical_json_and_hash() -> None:
    data = base_plan()
    shuffled = reversed_keys(data)
    assert list(shuffled) != list(data)
    assert list(shuffled["steps"][0]["params"]) != list(data["steps"][0]["params"])
    assert canonical_json(canonical_of(shuffled)) == canonical_json(canonical_of(data))
    assert hash_of(shuffled) == hash_of(data)


def test_yaml_and_json_text_of_the_same_plan_hash_alike() -> None:
    data = base_plan()
    assert hash_of(yaml.safe_dump(data, sort_keys=False)) == hash_of(json.dumps(data)) == hash_of(data)


def test_defaults_spelled_out_give_the_same_hash() -> None:
    """description "", continue_on_error false, approval_level at its floor, shell false, env {},
    action_class read (never lowers), timeout_s null: all the same as omitted."""
    data = base_plan()
    explicit = copy.deepcopy(data)
    explicit["continue_on_error"] = False
    explicit["approval_level"] = 1  # the floor of a modify plan
    first = explicit["steps"][0]
    first["action_class"] = "read"
    first["params"]["shell"] = False
    first["params"]["cwd"] = None
    explicit["steps"][2]["timeout_s"] = None
    explicit["steps"][2]["action_class"] = "read"
    assert hash_of(explicit) == hash_of(data)


def test_equivalent_numbers_and_padded_strings_give_the_same_hash() -> None:
    """sleep 2 == sleep 2.0; plan and step names are stripped."""
    data = base_plan()
    other = copy.deepcopy(data)
    other["steps"][2]["params"]["seconds"] = 2.0
    other["name"] = "  restart-nginx "
    other["steps"][0]["name"] = "check "
    assert hash_of(other) == hash_of(data)


def test_target_names_mapping_to_the_same_asset_hash_alike() -> None:
    """The canonical form holds asset ids, not the names that resolved to them."""
    data = base_plan()
    renamed = copy.deepcopy(data)
    for s in renamed["steps"]:
        s["target"] = "alias-" + s["target"]
    aliases = {"alias-" + k: v for k, v in ASSETS.items()}
    assert hash_of(renamed, aliases) == hash_of(data)


def test_canonical_form_holds_asset_ids_and_effective_classes() -> None:
    canonical = canonical_of(base_plan())
    assert [s["target"] for s in canonical["steps"]] == ["asset-1", "asset-1", "asset-2"]
    # shell is `modify` unless an admin vouches (and a step setting env is vouched for by publication only).
    assert [s["action_class"] for s in canonical["steps"]] == ["modify", "modify", "read"]
    assert canonical["approval_level"] == 1
    assert canonical["continue_on_error"] is False
    assert canonical["steps"][0]["params"]["shell"] is False


# --- Different meaning, different hash ---------------------------------------------------------------------


def test_a_changed_param_changes_the_hash() -> None:
    changed = base_plan()
    changed["steps"][0]["params"]["command"] = "systemctl status apache2"
    assert hash_of(changed) != hash_of(base_plan())


def test_a_changed_nested_param_changes_the_hash() -> None:
    changed = base_plan()
    changed["steps"][0]["params"]["env"]["B"] = "3"
    assert hash_of(changed) != hash_of(base_plan())


def test_step_order_changes_the_hash() -> None:
    swapped = base_plan()
    swapped["steps"][0], swapped["steps"][1] = swapped["steps"][1], swapped["steps"][0]
    assert hash_of(swapped) != hash_of(base_plan())


def test_a_target_mapped_to_another_asset_changes_the_hash() -> None:
    assert hash_of(base_plan(), {"web-01": "asset-1", "db-01": "asset-9"}) != hash_of(base_plan())


def test_a_raised_class_or_level_changes_the_hash() -> None:
    raised_class = base_plan()
    raised_class["steps"][0]["action_class"] = "deploy"
    raised_level = base_plan()
    raised_level["approval_level"] = 3
    hashes = {hash_of(base_plan()), hash_of(raised_class), hash_of(raised_level)}
    assert len(hashes) == 3


def test_changed_timeout_or_continue_on_error_changes_the_hash() -> None:
    timeout = base_plan()
    timeout["steps"][0]["timeout_s"] = 6
    flag = base_plan()
    flag["continue_on_error"] = True
    assert len({hash_of(base_plan()), hash_of(timeout), hash_of(flag)}) == 3


# --- Purity ---------------------------------------------------------------------------------------------------


def test_canonical_plan_does_not_mutate_the_input_mapping() -> None:
    data = base_plan()
    data["steps"][0]["params"]["env"]["LIST"] = "x"
    data["steps"].append({"name": "n", "action": "noop", "target": "db-01", "params": {"deep": {"a": [1, {"b": 2}]}}})
    before = copy.deepcopy(data)
    parsed = parse_plan(data)
    canonical = canonical_plan(parsed, ASSETS)
    assert data == before
    assert canonical_plan(parsed, ASSETS) == canonical  # repeatable: the plan was not changed either


def test_editing_the_canonical_form_does_not_reach_back_into_the_input() -> None:
    data = base_plan()
    data["steps"].append({"name": "n", "action": "noop", "target": "db-01", "params": {"deep": {"a": [1]}}})
    before = copy.deepcopy(data)
    canonical = canonical_of(data)
    canonical["steps"][3]["params"]["deep"]["a"].append(2)
    canonical["steps"][0]["params"]["env"]["A"] = "changed"
    assert data == before


def test_the_assets_mapping_is_not_mutated() -> None:
    assets = dict(ASSETS)
    canonical_of(base_plan(), assets)
    assert assets == ASSETS


# --- JSON and hash ----------------------------------------------------------------------------------------------


def _assert_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys), keys
    return dict(pairs)


def test_canonical_json_has_sorted_keys_at_every_level_and_no_whitespace() -> None:
    text = canonical_json(canonical_of(reversed_keys(base_plan())))
    json.loads(text, object_pairs_hook=_assert_sorted)
    outside_strings = "".join(text.split('"')[0::2])
    assert not any(c.isspace() for c in outside_strings)


def test_canonical_json_exact_form() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "é"}]}) == '{"a":[1,{"c":"é","d":null}],"b":1}'


def test_canonical_json_round_trips() -> None:
    canonical = canonical_of(base_plan())
    assert json.loads(canonical_json(canonical)) == canonical


def test_plan_hash_is_sha256_hex_of_the_canonical_json() -> None:
    canonical = canonical_of(base_plan())
    expected = hashlib.sha256(canonical_json(canonical).encode("utf-8")).hexdigest()
    assert plan_hash(canonical) == expected
    assert plan_hash(canonical_json(canonical)) == expected
    assert len(expected) == 64


def test_plan_hash_of_known_text() -> None:
    assert plan_hash("{}") == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert plan_hash({}) == plan_hash("{}")


# --- Property: key order never matters ------------------------------------------------------------------------

_names = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)
_param_keys = _names.filter(lambda k: SENSITIVE_KEY.search(k) is None)
_param_values = st.one_of(
    st.integers(-(10**6), 10**6), st.text(alphabet=string.ascii_letters + string.digits + " ./", max_size=12)
)
_steps = st.lists(
    st.tuples(_names, st.sampled_from(sorted(ASSETS)), st.dictionaries(_param_keys, _param_values, max_size=5)),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


def _permuted(data: st.DataObject, mapping: dict[str, Any]) -> dict[str, Any]:
    order = data.draw(st.permutations(list(mapping)))
    return {k: mapping[k] for k in order}


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps, description=st.text(alphabet=string.ascii_letters, max_size=10), data=st.data())
def test_hash_is_invariant_under_key_permutations(
    steps: list[tuple[str, str, dict[str, Any]]], description: str, data: st.DataObject
) -> None:
    step_maps: list[dict[str, Any]] = [
        {"name": n, "action": "noop", "target": t, "params": p, "timeout_s": 1} for n, t, p in steps
    ]
    plan: dict[str, Any] = {
        "name": "generated",
        "description": description,
        "continue_on_error": False,
        "steps": step_maps,
    }
    permuted = _permuted(data, plan)
    permuted["steps"] = [_permuted(data, {**s, "params": _permuted(data, s["params"])}) for s in step_maps]
    assert canonical_json(canonical_of(permuted)) == canonical_json(canonical_of(plan))
    assert hash_of(permuted) == hash_of(plan)
