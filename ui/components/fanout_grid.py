"""The per-target grid of a fan-out step (DESIGN §14): one tile per asset, its status as an icon and a word, and a
line that says how the fan-out runs and how far it got. The targets' own steps (output, attempts) follow in
the step timeline (ui/components/step_output.py)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core import ExecutionView, FanoutGroupView
from ui.components.plain import md_text
from ui.components.step_output import STEP_ICONS

COLUMNS = 4  # tiles per row: fits a phone's width (390 px) as well as a laptop's


def fanout_grids(view: ExecutionView) -> None:
    """A grid per fan-out step of ``view`` (nothing when it has none)."""
    for group in view.fanouts:
        st.markdown(f"**Fan-out {md_text(group.step)}**")
        st.caption(_summary(group))
        _grid(group)


def _summary(group: FanoutGroupView) -> str:
    total = len(group.targets)
    pace = "one at a time" if group.max_concurrency == 1 else f"{group.max_concurrency} at a time"
    limit = "stops at the first failure" if group.max_errors == 0 else f"stops after {group.max_errors + 1} failures"
    counts = ", ".join(f"{n} {status}" for status, n in sorted(group.counts.items()))
    return f"{total} targets, {pace}, {limit}: {counts}."


def _grid(group: FanoutGroupView) -> None:
    targets = group.targets
    for row in _rows(list(range(len(targets))), COLUMNS):
        cells = st.columns(COLUMNS)
        for cell, i in zip(cells, row, strict=False):
            target = targets[i]
            icon = STEP_ICONS.get(target.status, "")
            tries = f" · try {target.attempts}" if target.attempts > 1 else ""
            cell.markdown(f"{icon} **{md_text(target.target)}**  \n{target.status}{tries}")


def _rows(items: Sequence[int], width: int) -> list[Sequence[int]]:
    return [items[i : i + width] for i in range(0, len(items), width)]
