"""Bounded parsing (issue 13 item 6): what a plan's text may cost the server, and the typed errors beyond it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.errors import InvalidInput
from core.plans import MAX_DEPTH, parse_plan
from tests.factories import alias_bomb

STEP = "{name: a, action: noop, target: localhost}"


def refused(source: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_plan(source)
    return caught.value


def test_an_alias_bomb_is_refused_at_once() -> None:
    """A ~500-byte alias bomb is refused in well under a second, before any expansion."""
    bomb = alias_bomb()
    assert 400 < len(bomb) <= 520
    started = time.process_time()  # CPU time: what the bomb costs, not the machine's load
    error = refused(bomb)
    assert time.process_time() - started < 1.0
    assert "anchors" in error.message and error.path == "a0"


def test_an_alias_without_an_anchor_names_its_path() -> None:
    """An alias is refused with the path where it stands (an undefined one included)."""
    error = refused(f"name: x\nsteps:\n  - {STEP}\n  - *step\n")
    assert error.path == "steps[1]" and "aliases" in error.message


def test_a_merge_key_with_an_anchor_is_refused() -> None:
    """``<<: *defaults`` needs an anchor: refused, the plan has to spell its values out."""
    text = "defaults: &d {target: localhost}\nname: x\nsteps:\n  - {<<: *d, name: a, action: noop}\n"
    assert "anchors" in refused(text).message


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,  # flow nesting: PyYAML's scanner costs time quadratic in the depth
        "{" * 200_000,
        "".join(" " * i + "a:\n" for i in range(300)),  # block mappings: the composer recurses
        "- " * 100_000,
        '{"a": ' * 40_000,  # JSON: the decoder recurses too
    ],
    ids=["flow-seq", "flow-map", "block-map", "block-seq", "json"],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    """Nesting beyond MAX_DEPTH is InvalidInput (not RecursionError), found in well under a second."""
    started = time.process_time()  # CPU time: what the bomb costs, not the machine's load
    error = refused(text)
    assert time.process_time() - started < 1.0
    assert "levels deep" in error.message


def test_nesting_up_to_the_cap_is_accepted() -> None:
    """A param nested to the cap is still a plan; one level more is refused with its path."""

    def nested(levels: int) -> str:
        return "{k: " * levels + "v" + "}" * levels

    # The plan (1), steps (2) and the step (3) take three levels; params and what it holds the rest.
    ok = f"name: x\nsteps:\n  - {{name: a, action: noop, target: localhost, params: {nested(MAX_DEPTH - 3)}}}\n"
    assert parse_plan(ok).steps[0].params
    too_deep = ok.replace(nested(MAX_DEPTH - 3), nested(MAX_DEPTH - 2))
    error = refused(too_deep)
    assert "levels deep" in error.message and error.path.startswith("steps[0]")


def test_a_deep_or_cyclic_mapping_from_a_script_is_refused() -> None:
    """parse_plan(dict): a mapping nested past the cap, or containing itself, is InvalidInput with a path."""
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert "levels deep" in refused({"name": "x", "steps": [deep]}).message
    cyclic: dict[str, Any] = {"name": "x"}
    cyclic["steps"] = [cyclic]
    assert refused(cyclic).path.startswith("steps[0]")


def test_a_shared_sub_tree_counts_once_per_use() -> None:
    """A mapping whose lists share one list many times over cannot get past the size limit."""
    shared: list[Any] = ["x" * 10] * 10
    for _ in range(6):
        shared = [shared] * 10
    assert "limit" in refused({"name": "x", "steps": shared}).message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("name: x\ndescription: 2024-01-01\nsteps: []\n", "description"),  # a YAML timestamp
        ("name: !!binary aGVsbG8=\nsteps: []\n", "name"),
        ("name: !!set {a, b}\nsteps: []\n", "name"),
        ("name: x\n1: y\nsteps: []\n", "1"),
    ],
    ids=["date", "binary", "set", "int-key"],
)
def test_values_json_cannot_hold_are_refused_with_their_path(text: str, path: str) -> None:
    """A plan is JSON-shaped (it is hashed as canonical JSON): dates, bytes, sets and non-string keys are refused."""
    assert refused(text).path == path


@pytest.mark.parametrize("text", ["name: " + "9" * 5000, '{"name": ' + "9" * 5000 + "}"], ids=["yaml", "json"])
def test_an_integer_too_long_to_convert_is_invalid_input(text: str) -> None:
    """Python refuses to convert an integer of over 4300 digits; the plan parser says so as InvalidInput."""
    assert "invalid value" in refused(text).message


def test_the_byte_limit_comes_before_any_parsing() -> None:
    """Text over the limit is refused by its size, whatever it holds."""
    error = refused("[" * (300 * 1024))
    assert "bytes; the limit" in error.message
