"""The created_after / created_before filters of list_executions*: aware datetimes only (issue 13 item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from core import InvalidInput, list_executions, list_executions_page, principal, submit
from tests.factories import noop_plan

LISTS = [list_executions, list_executions_page]


@pytest.mark.parametrize("listing", LISTS, ids=["offset", "page"])
@pytest.mark.parametrize("path", ["created_after", "created_before"])
def test_a_naive_datetime_is_refused_with_its_path(db: str, listing: Any, path: str) -> None:
    """A naive time is ambiguous (local? UTC?): InvalidInput naming the argument, not a driver error."""
    with pytest.raises(InvalidInput) as caught:
        listing(principal("alice", "demo"), **{path: datetime(2024, 1, 1)})
    assert caught.value.path == path and "timezone-aware" in caught.value.message


@pytest.mark.parametrize("listing", LISTS, ids=["offset", "page"])
def test_something_other_than_a_datetime_is_refused(db: str, listing: Any) -> None:
    """A string or a date where a datetime belongs is InvalidInput too."""
    for value in ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC).date()):
        with pytest.raises(InvalidInput) as caught:
            listing(principal("alice", "demo"), created_after=value)
        assert caught.value.path == "created_after"


def test_an_aware_datetime_in_any_zone_filters(db: str) -> None:
    """Aware datetimes in any time zone work, and mean the same instant."""
    alice = principal("alice", "demo")
    execution_id = submit(alice, noop_plan("ranged")).execution.execution_id
    east = timezone(timedelta(hours=5))
    hour_ago, in_an_hour = datetime.now(east) - timedelta(hours=1), datetime.now(east) + timedelta(hours=1)
    listed = list_executions_page(alice, created_after=hour_ago, created_before=in_an_hour).items
    assert [e.execution_id for e in listed] == [execution_id]
    assert list_executions(alice, created_before=hour_ago) == []
