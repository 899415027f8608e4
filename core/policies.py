"""Timeout policies (DESIGN §6): seeding the 9 default rows (core/policy_limits.py), lookup, validation, admin
edits."""

from __future__ import annotations

import math
import time

from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound
from core.policy_limits import DEFAULT_POLICIES, PolicyValues
from core.schemas import PolicyView
from db.clock import utcnow
from db.enums import ActionClass, SlaClass
from db.settings import get_settings
from db.tables import TimeoutPolicy


def validate_policy(values: PolicyValues) -> None:
    """Raise InvalidInput unless every limit is positive, lease ≥ step, and a reclaim plus a retry fit.

    A step whose worker died is reclaimed within ``Settings.reclaim_s`` (its heartbeat lease runs out and
    a sweep finds it, DESIGN §15) and then runs again for up to ``step_s``: the execution limit must hold
    both, or a retry that §3.5 promises would be a timeout instead. ``lease_s`` is how long the asset locks
    outlive the execution's deadline when no worker ends it (the step's own lease is the heartbeat's).
    """
    issues = [
        (f, "must be a positive integer") for f, v in values._asdict().items() if not (isinstance(v, int) and v > 0)
    ]
    if not issues:
        if values.lease_s < values.step_s:
            issues.append(("lease_s", f"must be at least step_s ({values.step_s})"))
        needed = values.step_s + math.ceil(get_settings().reclaim_s)
        if values.execution_s < needed:
            issues.append(
                (
                    "execution_s",
                    f"must be at least step_s + the reclaim time of a lost worker ({values.step_s} + "
                    f"{math.ceil(get_settings().reclaim_s)} = {needed})",
                )
            )
    if issues:
        raise InvalidInput(issues)


def seed_policies(session: Session) -> int:
    """Insert whichever of the 9 default rows are missing (never overwrites an admin's edit). Returns rows added."""
    existing = {(r.sla_class, r.action_class) for r in session.exec(select(TimeoutPolicy)).all()}
    added = 0
    for (sla, cls), values in DEFAULT_POLICIES.items():
        if (sla.value, cls.value) not in existing:
            session.add(TimeoutPolicy(sla_class=sla.value, action_class=cls.value, **values._asdict()))
            added += 1
    session.flush()
    return added


def get_policy(session: Session, sla_class: SlaClass | str, action_class: ActionClass | str) -> PolicyView:
    """The policy row for (sla_class, action_class).

    Raises:
        NotFound: the row is missing (run ``opsconductor init``).
    """
    row = session.get(TimeoutPolicy, (str(sla_class), str(action_class)))
    if row is None:
        raise NotFound("timeout policy", f"{sla_class}/{action_class}")
    return _view(row)


# (database engine, when read, the rows): one slot, keyed by the engine, so a process that switches databases
# (the suite runs each test on SQLite and PostgreSQL) never reads one database's rows for another.
_rows_cache: tuple[object, float, tuple[PolicyView, ...]] | None = None
CACHE_TTL_S = 5.0


def cached_policies(session: Session) -> tuple[PolicyView, ...]:
    """``list_policies`` through a per-process cache of ``CACHE_TTL_S``: the engine reads a row for every step
    and a submit derives every plan's SLA class from them; an admin's edit in another process may take that
    long to reach them."""
    global _rows_cache
    bind, now, hit = session.get_bind(), time.monotonic(), _rows_cache
    if hit is not None and hit[0] is bind and now - hit[1] < CACHE_TTL_S:
        return hit[2]
    rows = tuple(list_policies(session))
    _rows_cache = (bind, now, rows)
    return rows


def cached_policy(session: Session, sla_class: SlaClass | str, action_class: ActionClass | str) -> PolicyView:
    """``get_policy`` through the same cache as ``cached_policies``.

    Raises:
        NotFound: the row is missing (run ``opsconductor init``).
    """
    key = (str(sla_class), str(action_class))
    for row in cached_policies(session):
        if (row.sla_class, row.action_class) == key:
            return row
    raise NotFound("timeout policy", f"{sla_class}/{action_class}")


def clear_policy_cache() -> None:
    """Forget cached policies (after an edit in this process, and in tests)."""
    global _rows_cache
    _rows_cache = None


def list_policies(session: Session) -> list[PolicyView]:
    """Every policy row, ordered by SLA class then action class."""
    order = {c.value: i for i, c in enumerate(SlaClass)} | {c.value: i for i, c in enumerate(ActionClass)}
    rows = session.exec(select(TimeoutPolicy)).all()
    return [_view(r) for r in sorted(rows, key=lambda r: (order[r.sla_class], order[r.action_class]))]


def update_policy(
    session: Session, sla_class: SlaClass, action_class: ActionClass, values: PolicyValues, *, actor_id: str
) -> PolicyView:
    """Validate and store new limits for one row (admin checks are the caller's)."""
    validate_policy(values)
    row = session.get(TimeoutPolicy, (sla_class.value, action_class.value))
    if row is None:
        raise NotFound("timeout policy", f"{sla_class}/{action_class}")
    for field, value in values._asdict().items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    row.updated_by = actor_id
    session.add(row)
    session.flush()
    clear_policy_cache()
    return _view(row)


def _view(row: TimeoutPolicy) -> PolicyView:
    return PolicyView.model_validate(row, from_attributes=True)
