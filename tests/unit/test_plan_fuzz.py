"""Property (issue 13 item 6): whatever text or structure reaches ``parse_plan``, it returns a plan or raises
``InvalidInput``: never RecursionError, a YAML or pydantic error, a TypeError, or anything else untyped.

Bounded for CI: 100 examples per property by default (OPSC_FUZZ_EXAMPLES=2000 for a deep local run), a
generous deadline (the machine is shared).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.plans import Plan, parse_plan

BOUNDED = settings(
    max_examples=int(os.environ.get("OPSC_FUZZ_EXAMPLES", "100")),
    deadline=dt.timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID = """name: fuzz
description: a plan to mutate
steps:
  - {name: a, action: noop, target: localhost}
  - name: b
    action: shell
    target: localhost
    params: {command: "echo hi", env: {A: "1"}}
"""

# Pieces of YAML and JSON syntax, plan words and the constructs that cost a naive parser (anchors, tags).
TOKENS = ["{", "}", "[", "]", ":", ": ", "- ", ",", " ", "  ", "\n", "\t", "'", '"', "#", "?", "|", ">", "&a ",
          "*a", "<<: ", "!!binary ", "!!set ", "!!python/object ", "!foo ", "%YAML 1.1\n", "---\n", "...\n",
          "name", "steps", "action", "noop", "shell", "sleep", "http", "target", "localhost", "params",
          "command", "env", "timeout_s", "approval_level", "action_class", "deploy", "description",
          "continue_on_error", "true", "null", "~", "-1", "1e999", "0x1F", ".nan", "2024-01-01", "12:30:00",
          "{{ secret:x }}", "{{ secret:", "password", "--password", "\\u0000", "\x00", "\x1b[2J", "é", "\ufeff"]  # fmt: skip

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["noop", "shell", "localhost", "{{ secret:demo_token }}", "read", "deploy", "--password"]),
)
json_trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=40,
)
# What only a mapping handed to parse_plan, or YAML's tags, can carry.
odd_leaves = st.one_of(st.binary(max_size=8), st.dates(), st.datetimes(), st.frozensets(st.integers(), max_size=3))
odd_trees = st.recursive(
    st.one_of(leaves, odd_leaves),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.booleans()), children, max_size=4),
        st.tuples(children, children),
    ),
    max_leaves=30,
)


def _parse(source: Any) -> Plan | None:
    """parse_plan's outcome: a plan, or None for InvalidInput (with at least one issue); anything else fails."""
    try:
        return parse_plan(source)
    except InvalidInput as exc:
        assert exc.issues and exc.message
        return None


@BOUNDED
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    """Arbitrary Unicode text."""
    _parse(text)


@BOUNDED
@given(st.lists(st.sampled_from(TOKENS), max_size=120).map("".join))
def test_yaml_and_json_shaped_text(text: str) -> None:
    """Text made of YAML/JSON syntax and plan words."""
    _parse(text)


@BOUNDED
@given(st.integers(0, len(VALID) - 1), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join))
def test_a_valid_plan_with_something_spliced_in(at: int, piece: str) -> None:
    """A valid plan with a fragment inserted anywhere."""
    _parse(VALID[:at] + piece + VALID[at:])


@BOUNDED
@given(st.integers(1, 2000), st.sampled_from(["[", "{", "- ", "a:\n", '{"a":', "[a, "]))
def test_nesting_of_any_depth(depth: int, opener: str) -> None:
    """Nesting of any depth, in flow, block and JSON style, unclosed or closed."""
    closer = {"[": "]", "{": "}", '{"a":': "}", "[a, ": "]"}.get(opener, "")
    text = opener * depth + "x" + closer * depth
    if opener == "a:\n":
        text = "".join(" " * i + "a:\n" for i in range(depth))
    _parse(text)
    _parse(f"name: deep\nsteps:\n  - {{name: a, action: noop, target: localhost, params: {{p: {text!r}}}}}\n")


@BOUNDED
@given(json_trees)
def test_random_structures_as_yaml_json_and_mappings(tree: Any) -> None:
    """A random JSON-shaped tree, alone and as a step's params, as YAML, as JSON and as a mapping."""
    plan = {"name": "fuzz", "steps": [{"name": "a", "action": "shell", "target": "localhost", "params": tree}]}
    for candidate in (tree, plan):
        _parse(yaml.safe_dump(candidate))
        _parse(json.dumps(candidate))
        if isinstance(candidate, dict):
            _parse(candidate)


@BOUNDED
@given(odd_trees)
def test_values_json_cannot_hold(tree: Any) -> None:
    """Bytes, dates, sets, tuples and non-string keys, handed in as a mapping or written with YAML tags."""
    plan = {"name": "fuzz", "steps": [{"name": "a", "action": "noop", "target": "localhost", "params": {"p": tree}}]}
    _parse(plan)
    _parse({"name": tree, "steps": [tree]})
    _parse(yaml.dump(plan))  # tags such as !!binary, !!timestamp, !!set, !!python/tuple
