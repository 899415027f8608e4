"""Change-window rules (core/change_windows.py): the language, its errors with paths, and evaluation across time
zones, DST changes, midnight and blackouts. Pure: no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.change_windows import Rules, evaluate, parse_rules, refusal_message, rules_document
from core.errors import InvalidInput
from db.enums import ActionClass, WindowMode

PARIS = ZoneInfo("Europe/Paris")
NONE: list[frozenset[str]] = [frozenset()]


def rules(**doc: Any) -> Rules:
    return parse_rules(doc)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


NIGHTS = rules(windows=[{"days": ["mon..fri"], "start": "22:00", "end": "04:00", "tz": "Europe/Paris"}])


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (paris(2026, 12, 7, 23, 0), True),  # Monday night
        (paris(2026, 12, 8, 3, 59), True),  # Tuesday early: Monday's window crosses midnight
        (paris(2026, 12, 8, 4, 0), False),  # its end is not in it
        (paris(2026, 12, 8, 21, 59), False),
        (paris(2026, 12, 12, 3, 0), True),  # Saturday early: Friday's window
        (paris(2026, 12, 12, 23, 0), False),  # Saturday night: not a window day
        (paris(2026, 12, 7, 3, 0), False),  # Monday early: Sunday has no window
    ],
)
def test_a_weekly_window_crosses_midnight_in_its_zone(moment: datetime, allowed: bool) -> None:
    """mon..fri 22:00-04:00 Europe/Paris holds from each weekday's evening to the next morning, local time."""
    assert evaluate(NIGHTS, NONE, ActionClass.MODIFY, moment).allowed is allowed


def test_the_next_opening_is_the_next_local_start() -> None:
    """Held on Saturday night, a plan may next start on Monday at 22:00 Paris time (21:00 UTC in winter)."""
    verdict = evaluate(NIGHTS, NONE, ActionClass.DEPLOY, paris(2026, 12, 12, 23, 0))
    assert not verdict.allowed and verdict.reason == "outside its change windows"
    assert verdict.opens_at == utc(2026, 12, 14, 21, 0)
    assert "2026-12-14T21:00:00Z" in refusal_message(verdict)


def test_read_plans_and_empty_rules_are_never_held() -> None:
    """``read`` is never held; a tenant without rules holds nothing."""
    saturday = paris(2026, 12, 12, 23, 0)
    assert evaluate(NIGHTS, NONE, ActionClass.READ, saturday).allowed
    assert evaluate(rules(), NONE, ActionClass.DEPLOY, saturday).allowed


def test_a_window_keeps_its_wall_clock_hours_across_spring_forward() -> None:
    """Europe/Paris skips 02:00-03:00 on 2026-03-29: 01:00-05:00 that night is 3 hours long (00:00-03:00 UTC)."""
    daily = rules(windows=[{"days": ["mon..sun"], "start": "01:00", "end": "05:00", "tz": "Europe/Paris"}])
    assert not evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 3, 28, 23, 59)).allowed
    assert evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 3, 29, 0, 0)).allowed
    assert evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 3, 29, 2, 59)).allowed
    assert not evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 3, 29, 3, 0)).allowed
    # The next night starts at 01:00 summer time: 23:00 UTC.
    assert evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 3, 29, 3, 0)).opens_at == utc(2026, 3, 29, 23, 0)


def test_a_window_keeps_its_wall_clock_hours_across_fall_back() -> None:
    """On 2026-10-25 Paris repeats 02:00-03:00: 01:00-05:00 is 5 hours long (23:00 UTC to 04:00 UTC)."""
    daily = rules(windows=[{"days": ["sun"], "start": "01:00", "end": "05:00", "tz": "Europe/Paris"}])
    assert evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 10, 24, 23, 0)).allowed
    assert evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 10, 25, 3, 59)).allowed
    assert not evaluate(daily, NONE, ActionClass.MODIFY, utc(2026, 10, 25, 4, 0)).allowed


def test_a_start_the_clocks_skip_falls_an_hour_later() -> None:
    """02:30 does not exist in Paris on 2026-03-29: the window starts at 03:30 summer time (01:30 UTC)."""
    skipped = rules(windows=[{"days": ["sun"], "start": "02:30", "end": "06:00", "tz": "Europe/Paris"}])
    verdict = evaluate(skipped, NONE, ActionClass.MODIFY, utc(2026, 3, 29, 0, 0))
    assert verdict.opens_at == utc(2026, 3, 29, 1, 30)


def test_the_same_wall_time_is_another_utc_hour_after_dst() -> None:
    """A 09:00 Paris window opens at 08:00 UTC before the change and at 07:00 UTC after it."""
    mornings = rules(windows=[{"days": ["mon..fri"], "start": "09:00", "end": "10:00", "tz": "Europe/Paris"}])
    assert evaluate(mornings, NONE, ActionClass.MODIFY, utc(2026, 3, 27, 0, 0)).opens_at == utc(2026, 3, 27, 8, 0)
    assert evaluate(mornings, NONE, ActionClass.MODIFY, utc(2026, 3, 28, 0, 0)).opens_at == utc(2026, 3, 30, 7, 0)


def test_a_blackout_wins_over_a_window() -> None:
    """An explicit blackout inside an all-day window holds the plan until the blackout ends."""
    freeze = rules(
        windows=[{"days": ["mon..sun"], "start": "00:00", "end": "24:00", "tz": "UTC"}],
        blackouts=[{"from": "2026-12-24T00:00:00+00:00", "to": "2026-12-27T00:00:00+00:00"}],
    )
    verdict = evaluate(freeze, NONE, ActionClass.MODIFY, utc(2026, 12, 25, 12, 0))
    assert not verdict.allowed and verdict.reason == "in a blackout period"
    assert verdict.opens_at == utc(2026, 12, 27, 0, 0)
    assert evaluate(freeze, NONE, ActionClass.MODIFY, utc(2026, 12, 23, 23, 59)).allowed


def test_a_weekly_blackout_without_windows() -> None:
    """Weekends blacked out, no window: weekdays are free, Saturday waits for Monday 00:00 (UTC)."""
    weekends = rules(blackouts=[{"days": ["sat", "sun"], "start": "00:00", "end": "24:00", "tz": "UTC"}])
    assert evaluate(weekends, NONE, ActionClass.MODIFY, utc(2026, 12, 11, 23, 0)).allowed
    verdict = evaluate(weekends, NONE, ActionClass.MODIFY, utc(2026, 12, 12, 10, 0))
    assert not verdict.allowed and verdict.opens_at == utc(2026, 12, 14, 0, 0)


def test_blackouts_that_touch_are_one() -> None:
    """Two back-to-back explicit blackouts hold until the second ends, not at the seam."""
    two = rules(
        blackouts=[
            {"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"},
            {"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T00:00:00Z"},
        ]
    )
    assert evaluate(two, NONE, ActionClass.MODIFY, utc(2026, 12, 1, 5, 0)).opens_at == utc(2026, 12, 3, 0, 0)


def test_tag_scoped_rules_apply_to_assets_with_the_tag() -> None:
    """A window tagged ``web`` restricts web assets only; a plan waits until every target may be changed."""
    scoped = rules(
        windows=[{"days": ["mon..fri"], "start": "22:00", "end": "04:00", "tz": "Europe/Paris", "tags": ["web"]}],
        blackouts=[{"from": "2026-12-07T00:00:00Z", "to": "2026-12-08T12:00:00Z", "tags": ["db"]}],
    )
    monday_noon = paris(2026, 12, 7, 12, 0)
    assert evaluate(scoped, [frozenset({"other"})], ActionClass.MODIFY, monday_noon).allowed
    web = evaluate(scoped, [frozenset({"web", "eu"})], ActionClass.MODIFY, monday_noon)
    assert web.opens_at == utc(2026, 12, 7, 21, 0)
    both = evaluate(scoped, [frozenset({"web"}), frozenset({"db"})], ActionClass.MODIFY, monday_noon)
    # The web window of Monday night is in the db blackout; the next is Tuesday night.
    assert both.opens_at == utc(2026, 12, 8, 21, 0)


def test_an_explicit_window_opens_at_its_start() -> None:
    """``{from, to}`` works as an allowed window too; after it ends nothing opens within the year."""
    once = rules(windows=[{"from": "2026-12-10T10:00:00Z", "to": "2026-12-10T11:00:00Z"}])
    assert evaluate(once, NONE, ActionClass.MODIFY, utc(2026, 12, 10, 9, 0)).opens_at == utc(2026, 12, 10, 10, 0)
    after = evaluate(once, NONE, ActionClass.MODIFY, utc(2026, 12, 10, 11, 0))
    assert not after.allowed and after.opens_at is None
    assert "no change window opens within a year" in refusal_message(after)


def test_naive_times_are_utc() -> None:
    """An offset-less ``from`` is UTC, and so is a naive moment asked about."""
    once = rules(blackouts=[{"from": "2026-12-10T10:00:00", "to": "2026-12-10T11:00:00"}])
    assert not evaluate(once, NONE, ActionClass.MODIFY, datetime(2026, 12, 10, 10, 30)).allowed


def test_day_ranges_wrap_and_the_document_round_trips() -> None:
    """``fri..mon`` is Friday to Monday; the stored document reads back to the same rules."""
    doc = {
        "mode": "refuse",
        "max_wait_s": 600,
        "windows": [{"days": ["fri..mon", "wed"], "start": "22:00", "end": "24:00", "tz": "UTC", "tags": ["web"]}],
        "blackouts": [{"from": "2026-12-24T00:00:00+01:00", "to": "2026-12-27T00:00:00+01:00"}],
    }
    parsed = parse_rules(doc)
    assert parsed.mode is WindowMode.REFUSE and parsed.max_wait_s == 600
    stored = rules_document(parsed)
    assert stored["windows"][0]["days"] == ["mon", "wed", "fri", "sat", "sun"]
    assert stored["blackouts"][0]["from"] == "2026-12-23T23:00:00+00:00"
    assert parse_rules(stored) == parsed


@pytest.mark.parametrize(
    ("doc", "issue"),
    [
        ({"windows": [{"days": ["mon"], "start": "9am", "end": "10:00", "tz": "UTC"}]}, ("windows[0].start", "HH:MM")),
        ({"windows": [{"days": ["mon"], "start": "24:00", "end": "10:00", "tz": "UTC"}]}, ("windows[0].start", "23:59")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "25:00", "tz": "UTC"}]}, ("windows[0].end", "HH:MM")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "09:00", "tz": "UTC"}]}, ("windows[0].end", "differ")),
        ({"windows": [{"days": ["mon", "xyz"], "start": "09:00", "end": "10:00", "tz": "UTC"}]}, ("windows[0].days", "xyz")),
        ({"windows": [{"days": [], "start": "09:00", "end": "10:00", "tz": "UTC"}]}, ("windows[0].days", "required")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "10:00", "tz": "Mars/Olympus"}]}, ("windows[0].tz", "unknown")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}]}, ("windows[0].tz", "required")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "10:00", "tz": "UTC", "tags": []}]}, ("windows[0].tags", "non-empty")),
        ({"windows": [{"days": ["mon"], "start": "09:00", "end": "10:00", "tz": "UTC", "at": 1}]}, ("windows[0].at", "unknown field")),
        ({"windows": [{"days": ["mon"], "from": "2026-01-01T00:00:00Z"}]}, ("windows[0]", "not both")),
        ({"windows": ["mon"]}, ("windows[0]", "mapping")),
        ({"windows": {"days": ["mon"]}}, ("windows", "list")),
        ({"blackouts": [{"from": "soon", "to": "2026-01-01T00:00:00Z"}]}, ("blackouts[0].from", "ISO 8601")),
        ({"blackouts": [{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}]}, ("blackouts[0].to", "after from")),
        ({"blackouts": [{"from": "2026-01-02T00:00:00Z"}]}, ("blackouts[0].to", "required")),
        ({"mode": "maybe"}, ("mode", "wait or refuse")),
        ({"max_wait_s": 0}, ("max_wait_s", "from 1")),
        ({"max_wait_s": True}, ("max_wait_s", "from 1")),
        ({"window": []}, ("window", "unknown field")),
    ],
)  # fmt: skip
def test_invalid_rules_name_their_path(doc: dict[str, Any], issue: tuple[str, str]) -> None:
    """Every problem is reported with the path of the field at fault."""
    with pytest.raises(InvalidInput) as caught:
        parse_rules(doc)
    assert any(path == issue[0] and issue[1] in message for path, message in caught.value.issues), caught.value.issues


def test_every_problem_is_reported_at_once() -> None:
    """Two bad rules: two issues, not only the first."""
    with pytest.raises(InvalidInput) as caught:
        parse_rules(
            {"windows": [{"days": ["mon"], "start": "x", "end": "10:00", "tz": "UTC"}, {"from": "y", "to": "z"}]}
        )
    assert [p for p, _ in caught.value.issues] == ["windows[0].start", "windows[1].from", "windows[1].to"]


def test_a_year_of_weekly_rules_is_quick() -> None:
    """The worst case (no opening within a year, many weekly rules) stays well under the claim's budget."""
    never = rules(
        windows=[
            {"days": ["mon"], "start": "00:00", "end": "01:00", "tz": "UTC", "tags": [f"t{i}"]} for i in range(20)
        ],
        blackouts=[{"days": ["mon..sun"], "start": "00:00", "end": "24:00", "tz": "UTC"}],
    )
    started = datetime.now(UTC)
    verdict = evaluate(never, [frozenset({f"t{i}"}) for i in range(5)], ActionClass.MODIFY, utc(2026, 1, 1))
    assert verdict.opens_at is None
    assert datetime.now(UTC) - started < timedelta(seconds=2)
