"""Change windows (DESIGN §14): the rule language and its evaluation. Pure: no database, no clock of its own.

A tenant's rules are allowed ``windows`` and ``blackouts``; each rule is one of two forms:

- weekly: ``{days: [mon..fri], start: "22:00", end: "04:00", tz: "Europe/Paris"}``. ``days`` holds day names
  and ranges (``mon..fri``, ``fri..mon`` wraps); the rule starts on each of those local days at ``start`` and
  ends at ``end`` that day, or the next day when ``end`` is not after ``start`` (crossing midnight).
  ``"24:00"`` is the end of the day. The time zone is an IANA name (zoneinfo), required.
- explicit: ``{from: "2026-12-24T00:00:00+01:00", to: "2026-12-27T00:00:00+01:00"}`` (ISO 8601; a time without
  an offset is UTC).

Either form may carry ``tags: [web, db]``: it then applies to the assets with one of those tags only; without
``tags`` it applies to every asset of the tenant. An asset may be changed at a moment when no blackout that
applies to it covers the moment and, when any window applies to it, one of them does: a blackout wins over a
window. A plan may start when every one of its targets may be changed. ``read`` plans are never held.

Evaluation works on UTC instants. A weekly rule's wall times are placed in its zone for each local date, so a
window keeps its wall-clock hours across a DST change (a 22:00-04:00 window is 7 h long on the night the clocks
go forward); a wall time that the change skips falls an hour later (02:30 is 03:30, PEP 495 ``fold=0``), one
that a fall-back repeats means its first occurrence.

Must not import the database or the engine: the engine (core/engine/windows_gate.py) and the use cases
(core/usecases/windows.py) read the rules and call in here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InvalidInput
from db.enums import ActionClass, WindowMode

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RULES = 100  # per list: each evaluation walks every rule
MAX_WAIT_S = 30 * 86400
DEFAULT_MAX_WAIT_S = 86400
SHORT_HORIZON = timedelta(days=8)  # a weekly rule repeats within it: most questions are answered there
HORIZON = timedelta(days=366)  # the furthest next opening looked for
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_WEEKLY_KEYS = frozenset({"days", "start", "end", "tz", "tags"})
_SPAN_KEYS = frozenset({"from", "to", "tags"})
_TOP_KEYS = frozenset({"mode", "max_wait_s", "windows", "blackouts"})

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Weekly:
    """A rule that repeats every week: local ``days`` (0 = Monday), minutes from local midnight."""

    days: frozenset[int]
    start_min: int
    end_min: int  # 1..1440; not after start_min: ends the next day
    tz: str
    tags: frozenset[str]


@dataclass(frozen=True)
class Span:
    """One explicit range of instants, ``[start, end)`` (aware UTC)."""

    start: datetime
    end: datetime
    tags: frozenset[str]


Rule = Weekly | Span


@dataclass(frozen=True)
class Rules:
    """A tenant's change windows: the rules and what happens to a plan outside them."""

    mode: WindowMode
    max_wait_s: int
    windows: tuple[Rule, ...] = ()
    blackouts: tuple[Rule, ...] = ()

    @property
    def empty(self) -> bool:
        """No rule at all: nothing is ever held."""
        return not self.windows and not self.blackouts

    @property
    def tag_scoped(self) -> bool:
        """Some rule applies to tagged assets only (the targets' tags are then needed)."""
        return any(r.tags for r in self.windows + self.blackouts)


@dataclass(frozen=True)
class Verdict:
    """Whether a plan may start at the moment asked about, and if not, when it may next (None: not within a year)."""

    allowed: bool
    opens_at: datetime | None
    reason: str  # "" when allowed; else why it is held ("in a blackout", "outside its change windows")


def held_class(action_class: ActionClass | str) -> bool:
    """Whether plans of this class are subject to change windows (``modify`` and above)."""
    return ActionClass(action_class).rank >= ActionClass.MODIFY.rank


# -- parsing ---------------------------------------------------------------------------------------


def parse_rules(doc: Mapping[str, Any]) -> Rules:
    """Validate a rules document (``mode``, ``max_wait_s``, ``windows``, ``blackouts``).

    Raises:
        InvalidInput: every problem, each with its path (``windows[0].start: must be HH:MM``).
    """
    issues: list[tuple[str, str]] = []
    if not isinstance(doc, Mapping):
        raise InvalidInput("must be a mapping with windows, blackouts, mode and max_wait_s")
    issues.extend((str(k), "unknown field") for k in doc if k not in _TOP_KEYS)
    mode = doc.get("mode", WindowMode.WAIT.value)
    if mode not in {m.value for m in WindowMode}:
        issues.append(("mode", "must be wait or refuse"))
        mode = WindowMode.WAIT.value
    max_wait = doc.get("max_wait_s", DEFAULT_MAX_WAIT_S)
    if isinstance(max_wait, bool) or not isinstance(max_wait, int) or not 1 <= max_wait <= MAX_WAIT_S:
        issues.append(("max_wait_s", f"must be a whole number of seconds from 1 to {MAX_WAIT_S}"))
        max_wait = DEFAULT_MAX_WAIT_S
    lists: dict[str, tuple[Rule, ...]] = {}
    for name in ("windows", "blackouts"):
        items = doc.get(name) or []
        if not isinstance(items, list):
            issues.append((name, "must be a list"))
            items = []
        if len(items) > MAX_RULES:
            issues.append((name, f"at most {MAX_RULES} rules"))
        rules = [_rule(item, f"{name}[{i}]", issues) for i, item in enumerate(items[:MAX_RULES])]
        lists[name] = tuple(r for r in rules if r is not None)
    if issues:
        raise InvalidInput(issues)
    return Rules(WindowMode(mode), max_wait, lists["windows"], lists["blackouts"])


def _rule(item: Any, path: str, issues: list[tuple[str, str]]) -> Rule | None:
    if not isinstance(item, Mapping):
        issues.append((path, "must be a mapping: {days, start, end, tz} or {from, to}"))
        return None
    keys = set(item)
    weekly = bool(keys & {"days", "start", "end", "tz"})
    span = bool(keys & {"from", "to"})
    if weekly == span:
        issues.append((path, "must be a weekly rule {days, start, end, tz} or a range {from, to}, not both"))
        return None
    allowed = _WEEKLY_KEYS if weekly else _SPAN_KEYS
    issues.extend((f"{path}.{k}", "unknown field") for k in sorted(map(str, keys - allowed)))
    tags = _tags(item.get("tags"), f"{path}.tags", issues)
    before = len(issues)
    if weekly:
        days = _days(item.get("days"), f"{path}.days", issues)
        start = _minutes(item.get("start"), f"{path}.start", issues, end=False)
        end = _minutes(item.get("end"), f"{path}.end", issues, end=True)
        tz = _zone(item.get("tz"), f"{path}.tz", issues)
        if start is not None and end is not None and start == end % 1440 and end != 1440:
            issues.append((f"{path}.end", "must differ from start (00:00 to 24:00 is a whole day)"))
        if len(issues) > before or days is None or start is None or end is None or tz is None:
            return None
        return Weekly(days=days, start_min=start, end_min=end if end else 1440, tz=tz, tags=tags)
    lo = _instant(item.get("from"), f"{path}.from", issues)
    hi = _instant(item.get("to"), f"{path}.to", issues)
    if lo is not None and hi is not None and hi <= lo:
        issues.append((f"{path}.to", "must be after from"))
    if len(issues) > before or lo is None or hi is None:
        return None
    return Span(start=lo, end=hi, tags=tags)


def _tags(value: Any, path: str, issues: list[tuple[str, str]]) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        issues.append((path, "must be a non-empty list of tag names"))
        return frozenset()
    return frozenset(t.strip() for t in value)


def _days(value: Any, path: str, issues: list[tuple[str, str]]) -> frozenset[int] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        issues.append((path, "required: a list of days, e.g. [mon..fri, sun]"))
        return None
    days: set[int] = set()
    for item in value:
        parts = str(item).strip().lower().split("..")
        if len(parts) > 2 or any(p not in DAYS for p in parts):
            issues.append((path, f"unknown day {item!r} (use {', '.join(DAYS)} or a range such as mon..fri)"))
            return None
        first, last = DAYS.index(parts[0]), DAYS.index(parts[-1])
        days.update((first + n) % 7 for n in range((last - first) % 7 + 1))
    return frozenset(days)


def _minutes(value: Any, path: str, issues: list[tuple[str, str]], *, end: bool) -> int | None:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        # YAML 1.1 reads an unquoted 22:00 as the number 1320: say how to write it.
        issues.append((path, 'must be HH:MM (quote it in YAML: "22:00")'))
        return None
    minutes = int(match[1]) * 60 + int(match[2])
    if minutes > 1440 or (minutes == 1440 and not end):
        issues.append((path, "must be HH:MM from 00:00 to 23:59" + (" (or 24:00)" if end else "")))
        return None
    return minutes


def _zone(value: Any, path: str, issues: list[tuple[str, str]]) -> str | None:
    if not isinstance(value, str) or not value:
        issues.append((path, "required: an IANA time zone such as Europe/Paris or UTC"))
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        issues.append((path, f"unknown time zone {value!r}"))
        return None
    return value


def _instant(value: Any, path: str, issues: list[tuple[str, str]]) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            issues.append((path, "must be an ISO 8601 date-time, e.g. 2026-12-24T00:00:00+01:00"))
            return None
    else:
        issues.append((path, "required: an ISO 8601 date-time"))
        return None
    return _utc(moment)


def rules_document(rules: Rules) -> dict[str, Any]:
    """The rules as a document ``parse_rules`` reads back (what is stored and shown)."""
    return {
        "mode": rules.mode.value,
        "max_wait_s": rules.max_wait_s,
        "windows": [rule_document(r) for r in rules.windows],
        "blackouts": [rule_document(r) for r in rules.blackouts],
    }


def rule_document(rule: Rule) -> dict[str, Any]:
    """One rule in its document form (days in week order, times as HH:MM, instants in ISO UTC)."""
    doc: dict[str, Any]
    if isinstance(rule, Weekly):
        doc = {
            "days": [DAYS[d] for d in sorted(rule.days)],
            "start": _hhmm(rule.start_min),
            "end": _hhmm(rule.end_min),
            "tz": rule.tz,
        }
    else:
        doc = {"from": rule.start.isoformat(), "to": rule.end.isoformat()}
    if rule.tags:
        doc["tags"] = sorted(rule.tags)
    return doc


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- evaluation ------------------------------------------------------------------------------------


def evaluate(
    rules: Rules, asset_tags: Iterable[frozenset[str]], action_class: ActionClass | str, at: datetime
) -> Verdict:
    """May a plan of ``action_class`` whose targets carry ``asset_tags`` (one set per target) start at ``at``?

    Returns:
        A verdict; when held, the next moment every target may be changed (None: not within a year).
    """
    if not held_class(action_class) or rules.empty:
        return Verdict(allowed=True, opens_at=at, reason="")
    moment = _utc(at)
    targets = list(asset_tags) or [frozenset()]
    opens: datetime | None = None
    for horizon in (SHORT_HORIZON, HORIZON):
        free = _free(rules, targets, moment, moment + horizon)
        opens = next((max(lo, moment) for lo, hi in free if hi > moment), None)
        if opens is not None:
            break
    if opens == moment:
        return Verdict(allowed=True, opens_at=at, reason="")
    blocked = any(_covers(r, t, moment) for r in rules.blackouts for t in targets)
    return Verdict(
        allowed=False,
        opens_at=opens,
        reason="in a blackout period" if blocked else "outside its change windows",
    )


def _covers(rule: Rule, tags: frozenset[str], moment: datetime) -> bool:
    return _applies(rule, tags) and any(
        lo <= moment < hi for lo, hi in _occurrences(rule, moment - timedelta(seconds=1), moment + timedelta(seconds=1))
    )


def _free(rules: Rules, targets: Sequence[frozenset[str]], lo: datetime, hi: datetime) -> list[Interval]:
    """The stretches of ``[lo, hi)`` in which every target may be changed."""
    free: list[Interval] = [(lo, hi)]
    for tags in targets:
        windows = [r for r in rules.windows if _applies(r, tags)]
        allowed = _union([iv for r in windows for iv in _occurrences(r, lo, hi)]) if windows else [(lo, hi)]
        blocked = _union([iv for r in rules.blackouts if _applies(r, tags) for iv in _occurrences(r, lo, hi)])
        free = _intersect(free, _subtract(allowed, blocked))
        if not free:
            break
    return free


def _applies(rule: Rule, tags: frozenset[str]) -> bool:
    return not rule.tags or bool(rule.tags & tags)


def _occurrences(rule: Rule, lo: datetime, hi: datetime) -> list[Interval]:
    """The rule's intervals that overlap ``[lo, hi)``, clipped to it."""
    if isinstance(rule, Span):
        return [(max(rule.start, lo), min(rule.end, hi))] if rule.start < hi and rule.end > lo else []
    zone = ZoneInfo(rule.tz)
    day = lo.astimezone(zone).date() - timedelta(days=1)  # yesterday's occurrence may cross into today
    last = hi.astimezone(zone).date()
    found: list[Interval] = []
    while day <= last:
        if day.weekday() in rule.days:
            start = _wall(day, rule.start_min, zone)
            end = _wall(day if rule.end_min > rule.start_min else day + timedelta(days=1), rule.end_min, zone)
            if start < hi and end > lo:
                found.append((max(start, lo), min(end, hi)))
        day += timedelta(days=1)
    return found


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The instant of local wall time ``minutes`` after midnight of ``day`` in ``zone`` (1440: the next midnight)."""
    day += timedelta(days=minutes // 1440)
    minutes %= 1440
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone).astimezone(UTC)


def _union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        elif hi > lo:
            merged.append((lo, hi))
    return merged


def _subtract(keep: list[Interval], cut: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in keep:
        for c_lo, c_hi in cut:
            if c_hi <= lo or c_lo >= hi:
                continue
            if c_lo > lo:
                out.append((lo, c_lo))
            lo = max(lo, c_hi)
            if lo >= hi:
                break
        if lo < hi:
            out.append((lo, hi))
    return out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def refusal_message(verdict: Verdict) -> str:
    """What a refused submit says: why, and when the next window opens."""
    when = (
        f"the next change window opens at {verdict.opens_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if verdict.opens_at is not None
        else "no change window opens within a year"
    )
    return f"a modify or deploy plan may not start now: its targets are {verdict.reason}; {when}"
