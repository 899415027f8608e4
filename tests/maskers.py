"""Maskers made by unit tests: a masker's registered values are live process-wide (the log filter reads them)
until it closes, so one a test forgets leaks into the next (a masking canary then fails). ``tracked_masker``
makes one; tests/conftest.py closes them all after each test."""

from __future__ import annotations

from core.safety.masking import Masker

_OPEN: list[Masker] = []


def tracked_masker(*values: str) -> Masker:
    """A masker with ``values`` registered, closed when the test ends."""
    masker = Masker()
    _OPEN.append(masker)
    for value in values:
        masker.register(value)
    return masker


def close_tracked() -> None:
    """Close every masker the test made (tests/conftest.py, after each test)."""
    while _OPEN:
        _OPEN.pop().close()
