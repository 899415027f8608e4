"""A plan's declared inputs as a form (DESIGN §14): one widget per input, by type; returns the values given.

Takes DTOs (``PlanInputView``), returns plain values: the page passes them to ``core.preview``/``submit``,
where they are checked (paths ``inputs.NAME``) and substituted before the hash. An empty field or an
untouched selectbox is not given: the input's default applies, or the server says it is required.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import PlanInputView
from ui import state
from ui.components.plain import md_text


def inputs_form(declared: list[PlanInputView], asset_names: list[str]) -> dict[str, Any]:
    """Render a widget per declared input (text, number, checkbox, selectbox) and return the values given."""
    st.markdown("**Inputs**")
    st.caption("Substituted into the plan before it is hashed: the approver sees, and the worker runs, these values.")
    values: dict[str, Any] = {}
    for spec in declared:
        value = _widget(spec, asset_names)
        if value is not None and value != "":
            values[spec.name] = value
    return values


def _widget(spec: PlanInputView, asset_names: list[str]) -> Any:
    label = md_text(spec.name + (" *" if spec.required and spec.default is None else ""))
    key = state.PLAN_INPUT + spec.name
    help_text = _help(spec)
    if spec.type == "bool":
        return st.checkbox(label, value=bool(spec.default), key=key, help=help_text)
    if spec.type == "int":
        default = spec.default if isinstance(spec.default, int) and not isinstance(spec.default, bool) else None
        return st.number_input(label, value=default, step=1, format="%d", key=key, help=help_text)
    if spec.type in ("choice", "asset"):
        options = [str(c) for c in spec.choices or []] if spec.type == "choice" else asset_names
        default = str(spec.default) if spec.default is not None else None
        index = options.index(default) if default in options else None
        return st.selectbox(label, options, index=index, key=key, help=help_text, placeholder="Choose…")
    default_text = str(spec.default) if spec.default is not None else ""
    placeholder = "a secret's name" if spec.type == "secret_ref" else None
    return st.text_input(label, value=default_text, key=key, help=help_text, placeholder=placeholder)


def _help(spec: PlanInputView) -> str:
    """The author's description (as text), and what the field accepts."""
    parts = [spec.description] if spec.description else []
    if spec.pattern:
        parts.append(f"must match {spec.pattern}")
    if spec.type == "secret_ref":
        parts.append("the secret's value is never shown or stored here: the plan references it by name")
    return md_text(" · ".join(parts)) if parts else ""
