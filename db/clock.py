"""The one clock: aware UTC datetimes, the form SQLModel's datetime columns store on both databases."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC (aware)."""
    return datetime.now(UTC)
