"""Tables of DTOs: one row per view, chosen columns, times as readable UTC."""

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
    st.dataframe(rows, hide_index=True, width="stretch")


def pager(page: int, has_next: bool, *, previous: Callable[[], None], following: Callable[[], None]) -> None:
    """Previous/Next buttons under a list; the callbacks move the page (the list decides how it pages)."""
    prev_col, label_col, next_col = st.columns([1, 2, 1])
    prev_col.button("Previous", disabled=page == 0, on_click=previous, icon=":material/chevron_left:")
    label_col.caption(f"Page {page + 1}")
    next_col.button("Next", disabled=not has_next, on_click=following, icon=":material/chevron_right:")


def _row(view: BaseModel, columns: Sequence[str] | None) -> dict[str, Any]:
    data = view.model_dump()
    keys = columns if columns is not None else list(data)
    return {key: _cell(data[key]) for key in keys}


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, list | dict):
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return value
