"""Tables of DTOs: one row per view, chosen columns under human headers ("Requested by", not
``requested_by``), times as readable UTC, and empty text cells empty (not "None")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import streamlit as st
from pydantic import BaseModel


def when(moment: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC, or an empty string."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def views_table(
    views: Sequence[BaseModel], columns: Sequence[str] | None = None, *, empty: str = "Nothing here."
) -> None:
    """Render DTOs as a table (``columns`` picks and orders fields); a caption when there are none."""
    if not views:
        st.caption(empty)
        return
    rows = [_row(view, columns) for view in views]
    # The data keeps the field names (what tests and exports read); the grid shows the headers.
    headers = {key: st.column_config.Column(header(key)) for key in rows[0]}
    st.dataframe(rows, hide_index=True, width="stretch", column_config=headers)


# Where the field name does not read as a header once its underscores are spaces.
_HEADERS = {"execution_id": "Execution", "execution_name": "Name", "sla_class": "SLA class", "id": "ID"}


def header(field: str) -> str:
    """A column's header for a field name: ``requested_by`` → "Requested by", ``sla_class`` → "SLA class"."""
    return _HEADERS.get(field) or field.replace("_", " ").capitalize()


def pager(page: int, has_next: bool, *, previous: Callable[[], None], following: Callable[[], None]) -> None:
    """Previous/Next buttons under a list; the callbacks move the page (the list decides how it pages)."""
    prev_col, label_col, next_col = st.columns([1, 2, 1])
    prev_col.button("Previous", disabled=page == 0, on_click=previous, icon=":material/chevron_left:")
    label_col.caption(f"Page {page + 1}")
    next_col.button("Next", disabled=not has_next, on_click=following, icon=":material/chevron_right:")


def _row(view: BaseModel, columns: Sequence[str] | None) -> dict[str, Any]:
    data = view.model_dump()
    keys = columns if columns is not None else list(data)
    fields = type(view).model_fields
    return {key: _cell(data[key], text=_is_text(fields.get(key))) for key in keys}


def _is_text(field: Any) -> bool:
    """Whether a field holds text (or a time, shown as text): its empty value can be an empty cell. A number
    column keeps None: an empty string in it would turn the column into text."""
    annotation = str(getattr(field, "annotation", ""))
    return "str" in annotation or "datetime" in annotation


def _cell(value: Any, *, text: bool = False) -> Any:
    if value is None:
        return "" if text else None
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, list | dict):
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return value
