"""One colour per execution status, the same on every page and chart (issue 16: "failed" was light blue on
the Dashboard): green for done, red for failed, orange for timed out, amber for waiting on people, blue for
running, grey for what ended without running."""

from __future__ import annotations

from typing import Final

from core import ExecutionStatus as S

COLOURS: Final[dict[str, str]] = {
    S.COMPLETED: "#2e7d32",
    S.PARTIAL: "#9e9d24",
    S.FAILED: "#c62828",
    S.TIMEOUT: "#ef6c00",
    S.PENDING_APPROVAL: "#f9a825",
    S.APPROVED: "#64b5f6",
    S.QUEUED: "#90caf9",
    S.RUNNING: "#1565c0",
    S.CANCELLED: "#757575",
    S.REJECTED: "#8d6e63",
    S.EXPIRED: "#bdbdbd",
}
OTHER: Final = "#b0bec5"  # a bucket of several statuses ("other" in a chart)


def colour(status: str) -> str:
    """The status's colour (hex), or the neutral one for a bucket that is not a status."""
    return COLOURS.get(status, OTHER)
