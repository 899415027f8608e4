"""The GO/NO-GO check (DESIGN §11 ``check``): is this installation fit to run work, and to go live?

``check()`` returns one ``CheckItem`` per concern, in a fixed order: database, schema, policies, broker,
workers, clock, locks, dlq, masking, secrets, step isolation, identity (NO-GO while claimed names are
accepted), then one ``rollout:<tenant>`` gate per tenant. A probe that raises is a NO-GO with its reason,
never a crash. It reads across tenants (it is the operator's view of the installation) and shows only
counts, names and rates, never a row's content.

Must not import ``jobs``: the broker is probed through the ``broker_probe`` callable the caller passes
(ui/runtime.broker_ping), and the masking sinks are injectable so a test can plant a broken one.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.fernet import InvalidToken
from sqlalchemy import func, or_, select, text
from sqlmodel import Session

from core.actions.context import OutputSink
from core.errors import CoreError, InvalidInput
from core.fsm import TERMINAL
from core.identity.installation import claimed_identity_allowed
from core.notify.health import notifications_check
from core.policies import validate_policy
from core.policy_limits import DEFAULT_POLICIES, PolicyValues
from core.safety import runner, secret_backends, secret_store
from core.safety.key_file import key_file_path
from core.safety.masking import Masker, MaskingFilter, mask_data, mask_text
from core.schemas import CheckItem
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.settings import Settings, get_settings
from db.tables import DlqEntry, Execution, ExecutionLock, Secret, Tenant, TimeoutPolicy, Worker

# Core tables: these reads want columns, not ORM objects.
_DLQ = DlqEntry.__table__  # type: ignore[attr-defined]
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_LOCKS = ExecutionLock.__table__  # type: ignore[attr-defined]
_SECRETS = Secret.__table__  # type: ignore[attr-defined]
_TENANTS = Tenant.__table__  # type: ignore[attr-defined]
_POLICIES = TimeoutPolicy.__table__  # type: ignore[attr-defined]
_WORKERS = Worker.__table__  # type: ignore[attr-defined]

Probe = Callable[[Session], tuple[bool, str]]
ENDED = (S.COMPLETED, S.FAILED, S.PARTIAL, S.CANCELLED, S.TIMEOUT)  # ran (or queued) and ended; not decisions


@dataclass(frozen=True)
class CheckThresholds:
    """The limits ``check`` judges by (defaults: the ``OPSC_CHECK_*`` settings)."""

    dlq_limit: int
    max_clock_skew_s: float
    window_s: float
    min_executions: int
    max_error_rate: float
    max_timeout_rate: float
    max_cancel_rate: float
    min_sla_attainment: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CheckThresholds:
        s = settings or get_settings()
        return cls(
            s.check_dlq_limit,
            s.check_max_clock_skew_s,
            s.check_window_s,
            s.check_min_executions,
            s.check_max_error_rate,
            s.check_max_timeout_rate,
            s.check_max_cancel_rate,
            s.check_min_sla_attainment,
        )


@dataclass(frozen=True)
class MaskingSink:
    """A place text is persisted or logged, as the masking self-test drives it.

    ``persist(masker, text)`` returns what the sink would store or print for ``text`` while ``masker``
    has the canary secret registered (as the worker registers every value it resolves).
    """

    name: str
    persist: Callable[[Masker, str], str]


def _step_output(masker: Masker, text: str) -> str:
    sink = OutputSink(masker)
    sink.write(text)
    return sink.text()


def _log_record(_masker: Masker, text: str) -> str:
    record = logging.LogRecord("opsconductor.check", logging.ERROR, __file__, 0, "probe %s", (text,), None)
    try:
        raise RuntimeError(text)
    except RuntimeError as exc:  # a real exc_info, so the traceback text is masked too
        record.exc_info = (type(exc), exc, exc.__traceback__)
    MaskingFilter().filter(record)
    return f"{record.getMessage()}\n{record.exc_text or ''}"


def default_masking_sinks() -> list[MaskingSink]:
    """Every sink a secret could leak through: step output, audit message and data, log records."""
    return [
        MaskingSink("step output", _step_output),
        MaskingSink("audit message", lambda _m, t: mask_text(t)),
        MaskingSink("audit data", lambda _m, t: json.dumps(mask_data({"detail": t, "items": [t]}))),
        MaskingSink("log records", _log_record),
    ]


def check(
    *,
    thresholds: CheckThresholds | None = None,
    broker_probe: Callable[[], str] | None = None,
    sinks: Sequence[MaskingSink] | None = None,
) -> list[CheckItem]:
    """Run every GO/NO-GO item. GO overall only when every item is ``ok``.

    Args:
        broker_probe: returns a description of the broker it reached, raises when it cannot. Without
            one, only the embedded broker (no ``OPSC_REDIS_URL``) counts as reachable.
        sinks: the masking sinks to test (default ``default_masking_sinks()``).
    """
    limits = thresholds or CheckThresholds.from_settings()
    database = _item("database", _database)
    items = [database]
    db_probes: list[tuple[str, Probe]] = [
        ("schema", lambda _s: _schema()),
        ("policies", _policies),
    ]
    items += [_unreachable(name) if not database.ok else _item(name, probe) for name, probe in db_probes]
    items.append(_plain_item("broker", lambda: _broker(broker_probe)))
    later: list[tuple[str, Probe]] = [
        ("workers", _workers),
        ("clock", lambda s: _clock(s, limits)),
        ("locks", _locks),
        ("dlq", lambda s: _dlq(s, limits)),
    ]
    items += [_unreachable(name) if not database.ok else _item(name, probe) for name, probe in later]
    items.append(_plain_item("masking", lambda: _masking(sinks if sinks is not None else default_masking_sinks())))
    items.append(_unreachable("secrets") if not database.ok else _item("secrets", _secrets))
    items.append(_plain_item("step isolation", runner.runner_check))  # DESIGN §13: steps outside our trust
    items.append(_unreachable("identity") if not database.ok else _item("identity", _identity))
    items.append(_unreachable("notifications") if not database.ok else _item("notifications", notifications_check))
    if database.ok:
        items += _rollout(limits)
    return items


def _item(name: str, probe: Probe) -> CheckItem:
    def run() -> tuple[bool, str]:
        with session_scope() as session:
            return probe(session)

    return _plain_item(name, run)


def _plain_item(name: str, probe: Callable[[], tuple[bool, str]]) -> CheckItem:
    try:
        ok, reason = probe()
    except Exception as exc:  # noqa: BLE001  a failing probe is a NO-GO with its reason, not a crash
        ok, reason = False, _failure(exc)
    return CheckItem(name=name, ok=ok, reason=mask_text(reason))


def _failure(exc: Exception) -> str:
    if isinstance(exc, CoreError):
        return exc.message
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}".rstrip(": ")


def _unreachable(name: str) -> CheckItem:
    return CheckItem(name=name, ok=False, reason="not checked: the database is unreachable")


def _database(session: Session) -> tuple[bool, str]:
    started = time.monotonic()
    session.execute(text("SELECT 1"))
    dialect = session.get_bind().dialect.name
    return True, f"{dialect} answers ({(time.monotonic() - started) * 1000:.0f} ms)"


def _schema() -> tuple[bool, str]:
    from db import migrate  # Alembic costs ~0.5 s to import: only when the check runs

    current, head = migrate.current_revision(), migrate.head_revision()
    if current == head:
        return True, f"at the migration head ({head})"
    return False, f"at revision {current or 'none'}, head is {head}: run `opsconductor init`"


def _policies(session: Session) -> tuple[bool, str]:
    rows = {(r.sla_class, r.action_class): r for r in session.execute(select(_POLICIES)).all()}
    problems: list[str] = []
    for sla, cls in DEFAULT_POLICIES:
        row = rows.get((sla.value, cls.value))
        if row is None:
            problems.append(f"{sla}/{cls} missing")
            continue
        values = PolicyValues(row.step_s, row.execution_s, row.lease_s, row.approval_s, row.max_attempts)
        try:
            validate_policy(values)
        except InvalidInput as exc:
            problems.append(f"{sla}/{cls} invalid ({exc.message})")
    if problems:
        return False, "; ".join(problems) + " (policies are shared by every tenant; `opsconductor init` re-seeds)"
    return True, f"all {len(DEFAULT_POLICIES)} timeout policies present and valid (shared by every tenant)"


def _broker(probe: Callable[[], str] | None) -> tuple[bool, str]:
    if probe is not None:
        return True, probe()
    if get_settings().redis_url:
        return False, "not checked: no broker probe was given"
    return True, "embedded broker (in-process)"


def _workers(session: Session) -> tuple[bool, str]:
    # Three missed heartbeats: one late beat is a busy host, three are a dead or hung worker.
    stale_s = 3 * get_settings().worker_heartbeat_s
    live = session.execute(select(_WORKERS).where(_WORKERS.c.stopped_at.is_(None))).all()
    now = utcnow()
    fresh = [w for w in live if (now - w.last_seen_at).total_seconds() <= stale_s]
    if fresh:
        newest = min((now - w.last_seen_at).total_seconds() for w in fresh)
        return True, f"{len(fresh)} worker(s) with a heartbeat in the last {stale_s:g}s (newest {newest:.1f}s ago)"
    if not live:
        return False, "no worker is running: start `opsconductor worker` (or the console's embedded worker)"
    newest_w = max(live, key=lambda w: w.last_seen_at)
    age = (now - newest_w.last_seen_at).total_seconds()
    return False, f"no heartbeat in the last {stale_s:g}s: the newest is {newest_w.id}'s, {age:.0f}s ago"


def _clock(session: Session, limits: CheckThresholds) -> tuple[bool, str]:
    before = time.time()
    if session.get_bind().dialect.name == "postgresql":
        db_now = session.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
    else:
        raw = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        db_now = datetime.fromisoformat(raw).replace(tzinfo=UTC)
    local = datetime.fromtimestamp((before + time.time()) / 2, UTC)
    skew = (db_now - local).total_seconds()
    problems = []
    if abs(skew) >= limits.max_clock_skew_s:
        problems.append(f"this host and the database differ by {skew:+.3f}s")
    # A worker stamps its heartbeat with its own clock: one from the future has a clock running ahead.
    # (One running behind looks like a stale heartbeat, which the workers item reports.)
    ahead = session.execute(
        select(_WORKERS.c.id, _WORKERS.c.last_seen_at).where(
            _WORKERS.c.stopped_at.is_(None),
            _WORKERS.c.last_seen_at > db_now + timedelta(seconds=limits.max_clock_skew_s),
        )
    ).all()
    problems += [f"worker {w} is {(seen - db_now).total_seconds():.1f}s ahead" for w, seen in ahead]
    if problems:
        return False, "; ".join(problems) + f" (limit {limits.max_clock_skew_s:g}s)"
    return True, f"database and host clocks within {abs(skew):.3f}s; no worker clock ahead"


def _locks(session: Session) -> tuple[bool, str]:
    # The sweeper reaps expired locks every sweep interval: only one it has missed twice is stale.
    grace = timedelta(seconds=2 * get_settings().sweep_interval_s)
    stale = session.execute(
        select(func.count())
        .select_from(_LOCKS)
        .join(_EXECUTIONS, _EXECUTIONS.c.id == _LOCKS.c.execution_id)
        .where(
            or_(
                _LOCKS.c.expires_at < utcnow() - grace,
                _EXECUTIONS.c.status.in_([s.value for s in TERMINAL]),
            )
        )
    ).scalar_one()
    if stale:
        return False, f"{stale} stale asset lock(s) (expired, or held by an ended execution): is a sweeper running?"
    return True, "no stale asset lock"


def _dlq(session: Session, limits: CheckThresholds) -> tuple[bool, str]:
    open_entries = session.execute(
        select(func.count()).select_from(_DLQ).where(_DLQ.c.resolved_at.is_(None))
    ).scalar_one()
    verdict = "below" if open_entries < limits.dlq_limit else "at or above"
    return open_entries < limits.dlq_limit, f"{open_entries} open DLQ entries, {verdict} the limit {limits.dlq_limit}"


def _masking(sinks: Sequence[MaskingSink]) -> tuple[bool, str]:
    canary = f"opsc-canary-{secrets.token_hex(12)}"
    forms = (canary, base64.b64encode(canary.encode()).decode())
    probe = f"value={canary} encoded={forms[1]}"
    masker = Masker()
    masker.register(canary)
    try:
        leaked = [sink.name for sink in sinks if any(form in sink.persist(masker, probe) for form in forms)]
    finally:
        masker.close()
    if leaked:
        return False, f"the canary secret leaked through: {', '.join(leaked)}"
    return True, f"the canary secret came out masked from {len(sinks)} sinks ({', '.join(s.name for s in sinks)})"


def _identity(session: Session) -> tuple[bool, str]:
    """DESIGN §13: a box that accepts claimed names (``--as``) lets anyone act as anyone: not for production."""
    if claimed_identity_allowed(session):
        return False, (
            "claimed names (--as USER) are accepted: a demo / single-operator box; "
            "run `opsconductor init --no-single-operator` and use API tokens"
        )
    return True, "identity is proven (API tokens, passwords, single sign-on); claimed names are refused"


def _secrets(session: Session) -> tuple[bool, str]:
    settings = get_settings()
    stored = session.execute(
        select(_TENANTS.c.name, _SECRETS.c.name, _SECRETS.c.ciphertext)
        .join(_TENANTS, _TENANTS.c.id == _SECRETS.c.tenant_id)
        .order_by(_TENANTS.c.name, _SECRETS.c.updated_at.desc())
    ).all()
    key_file = key_file_path(settings)
    if not settings.secret_key and (key_file is None or not key_file.exists()):
        # fernet() would generate a key file here: a check must not create state.
        if stored:
            return False, "secrets are stored but there is no key (OPSC_SECRET_KEY unset and no key file)"
        return True, "no secret stored yet; the key is created on first use"
    cipher = secret_store.fernet(settings)
    probe = secrets.token_hex(16)
    if cipher.decrypt(cipher.encrypt(probe.encode())).decode() != probe:
        return False, "the built-in store's key does not round-trip"
    newest: dict[str, tuple[str, str]] = {}
    for tenant, name, ciphertext in stored:
        newest.setdefault(tenant, (name, ciphertext))
    for tenant, (name, ciphertext) in newest.items():
        try:
            cipher.decrypt(ciphertext.encode())  # the value is dropped at once: only success matters
        except InvalidToken:
            return False, f"secret {name!r} of tenant {tenant} cannot be decrypted with the current key"
    reason = f"the built-in store's key decrypts (probe and the newest secret of {len(newest)} tenant(s))"
    for backend in secret_backends.external_backends():
        if isinstance(backend, secret_backends.VaultBackend):
            backend.has("opsconductor", "readiness-probe")  # raises SafetyRefused when unreachable
            reason += "; Vault answers"
    return True, reason


def _rollout(limits: CheckThresholds) -> list[CheckItem]:
    """One gate per tenant over the window: error, timeout and cancellation rates, SLA attainment."""
    try:
        with session_scope() as session:
            since = utcnow() - timedelta(seconds=limits.window_s)
            tenants = session.execute(select(_TENANTS.c.name).order_by(_TENANTS.c.name)).scalars().all()
            ended = session.execute(
                select(_TENANTS.c.name, _EXECUTIONS.c.status, func.count())
                .join(_TENANTS, _TENANTS.c.id == _EXECUTIONS.c.tenant_id)
                .where(_EXECUTIONS.c.finished_at >= since, _EXECUTIONS.c.status.in_([s.value for s in ENDED]))
                .group_by(_TENANTS.c.name, _EXECUTIONS.c.status)
            ).all()
            limits_s = {(r.sla_class, r.action_class): r.execution_s for r in session.execute(select(_POLICIES)).all()}
            completed = session.execute(
                select(
                    _TENANTS.c.name,
                    _EXECUTIONS.c.sla_class,
                    _EXECUTIONS.c.action_class,
                    _EXECUTIONS.c.started_at,
                    _EXECUTIONS.c.finished_at,
                )
                .join(_TENANTS, _TENANTS.c.id == _EXECUTIONS.c.tenant_id)
                .where(_EXECUTIONS.c.finished_at >= since, _EXECUTIONS.c.status == S.COMPLETED.value)
            ).all()
    except Exception as exc:  # noqa: BLE001  as in _plain_item
        return [CheckItem(name="rollout", ok=False, reason=mask_text(_failure(exc)))]
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for tenant, status, n in ended:
        counts[tenant][status] += n
    within: Counter[str] = Counter()
    for tenant, sla, cls, started, finished in completed:
        limit = limits_s.get((sla, cls))
        if started is not None and limit is not None and (finished - started).total_seconds() <= limit:
            within[tenant] += 1
    return [_gate(tenant, counts[tenant], within[tenant], limits) for tenant in tenants]


def _gate(tenant: str, counts: Counter[str], within: int, limits: CheckThresholds) -> CheckItem:
    name = f"rollout:{tenant}"
    total = sum(counts.values())
    window = f"{limits.window_s / 3600:g}h"
    if total < limits.min_executions:  # no evidence is not good evidence (issue 14 item 7)
        return CheckItem(
            name=name,
            ok=False,
            reason=f"not enough executions to judge: {total} of {limits.min_executions} ended in {window}",
        )
    if total == 0:  # none required, none ended: nothing to hold against the tenant
        return CheckItem(name=name, ok=True, reason=f"no execution ended in {window} (none required)")
    completed = counts[S.COMPLETED.value]
    rates: list[tuple[str, float, float, bool]] = [
        ("error rate", (counts[S.FAILED.value] + counts[S.PARTIAL.value]) / total, limits.max_error_rate, True),
        ("timeout rate", counts[S.TIMEOUT.value] / total, limits.max_timeout_rate, True),
        ("cancellation rate", counts[S.CANCELLED.value] / total, limits.max_cancel_rate, True),
    ]
    if completed:
        rates.append(("SLA attainment", within / completed, limits.min_sla_attainment, False))
    failing = [
        f"{label} {value:.1%} {'>' if is_max else '<'} {limit:.1%}"
        for label, value, limit, is_max in rates
        if (value > limit if is_max else value < limit)
    ]
    summary = ", ".join(f"{label} {value:.1%}" for label, value, _l, _m in rates)
    if failing:
        return CheckItem(name=name, ok=False, reason=f"{'; '.join(failing)} over {total} executions in {window}")
    return CheckItem(name=name, ok=True, reason=f"{summary} over {total} executions in {window}")
