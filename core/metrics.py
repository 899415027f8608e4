"""Prometheus metrics: every ``opsc_`` metric is defined here, and the endpoint each process serves.

Two kinds:

- **Observed where things happen** (counters, histograms): the engine, recovery, rbac and the masker
  call ``.inc()`` / ``.observe()`` on the objects below. That is all the hot path pays: no database
  query, no I/O.
- **Read at scrape time** (gauges): ``DatabaseCollector`` answers a scrape with two small reads: the
  executions by tenant, status and run mode from the counts the database keeps (core/ops/execution_counts.py:
  a table of about tenants × statuses × run modes rows, not a scan of history), which also yield the
  pending approvals; and per tenant the oldest pending execution and the open DLQ entries, each an index
  range. These are facts of the shared database, so every process reports the same values: aggregate them
  with ``max``, not ``sum``.

``serve(port)`` starts the exposition endpoint once per process (``OPSC_METRICS_PORT``, see
jobs/middleware.py for which process takes which port).

Why not Dramatiq's own ``Prometheus`` middleware: it uses prometheus_client's multiprocess mode (a
shared ``PROMETHEUS_MULTIPROC_DIR`` wiped at boot, ``dramatiq_prom_*`` environment variables) and a
separate forked exposition process; its metrics are per message and actor, while ours are per step,
lock and approval, observed in core, which must not import dramatiq. One plain endpoint per process
needs no shared directory, and the embedded runtime (no dramatiq CLI) serves the same metrics.

Must not import dramatiq, redis or streamlit (import-linter), nor, at import time, the database layer (see
``DatabaseCollector.collect``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.errors import ServiceUnavailable
from db.clock import utcnow
from db.enums import ActionClass, ExecutionStatus, SlaClass

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger(__name__)

# Steps last from milliseconds (noop, a quick read) to the long policies' 300 s.
_STEP_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Waits range from a hand-off in milliseconds to an approval window of up to two hours.
_WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200)

STEP_SECONDS = Histogram(
    "opsc_step_duration_seconds",
    "Time an action ran for one step attempt, by the step's action class and the execution's SLA class.",
    ["action_class", "sla_class"],
    buckets=_STEP_BUCKETS_S,
)
QUEUE_WAIT_SECONDS = Histogram(
    "opsc_queue_wait_seconds",
    "Time from queued to started (first step claimed), lock waits included, by SLA class.",
    ["sla_class"],
    buckets=_WAIT_BUCKETS_S,
)
LOCK_WAIT_SECONDS = Histogram(
    "opsc_lock_wait_seconds",
    "Time an execution that queued for a busy asset waited until it got its locks.",
    buckets=_WAIT_BUCKETS_S,
)
LEASE_EXPIRATIONS = Counter(
    "opsc_lease_expirations",
    "Step leases reclaimed by the sweeper (the worker died or hung), by what became of the step.",
    ["outcome"],  # retry | unknown | exhausted
)
MESSAGES_SENT = Counter(
    "opsc_messages_sent",
    "Broker messages handed to the broker for queued work (a queued execution, a hand-off, a retry, a re-send).",
)
REDISPATCHES = Counter(
    "opsc_redispatches",
    "Messages the sweeper re-sent for queued work whose message the broker no longer held (or never got).",
)
STEP_RETRIES = Counter(
    "opsc_step_retries",
    "Failed step attempts scheduled for a retry with backoff, by action class.",
    ["action_class"],
)
PERMISSION_DENIALS = Counter(
    "opsc_permission_denials",
    "Permission checks that refused: at request time (submit, approve, admin…) or by the worker before a step.",
    ["permission", "stage"],  # stage: request | run
)
MASKED_SECRETS = Counter(
    "opsc_masked_secrets",
    "Replacements made by the masker in text about to be stored or logged, by what was matched.",
    ["kind"],  # secret (a registered value or its encodings) | pattern (credential-shaped text)
)

# Every known label value starts at zero, so a series exists (and rate() works) before its first event.
for _action in ActionClass:
    STEP_RETRIES.labels(_action.value)
    PERMISSION_DENIALS.labels(f"run_{_action.value}", "request")
    PERMISSION_DENIALS.labels(f"run_{_action.value}", "run")
    for _sla in SlaClass:
        STEP_SECONDS.labels(_action.value, _sla.value)
for _sla in SlaClass:
    QUEUE_WAIT_SECONDS.labels(_sla.value)
for _outcome in ("retry", "unknown", "exhausted"):
    LEASE_EXPIRATIONS.labels(_outcome)
for _permission in (
    "read",
    "submit",
    "approve",
    "cancel_own",
    "admin",
):  # identity.permissions.Permission; it imports us
    PERMISSION_DENIALS.labels(_permission, "request")
for _kind in ("secret", "pattern"):
    MASKED_SECRETS.labels(_kind)


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped (see the module docstring): three small reads, none of
    them a scan of the executions' history."""

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not query the database; the names are documented in docs/operations.md

    def collect(self) -> Iterable[Metric]:
        # The database layer is imported at the first scrape, not with this module: the masker counts its
        # replacements here, so every process imports this module, and a one-shot CLI read must not pay the
        # 0.5 s of CPU that SQLAlchemy and the tables cost to import (issue 15).
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError
        from sqlmodel import col

        from core.ops import execution_counts
        from core.transactions import session_scope
        from db.tables import DlqEntry, Execution, Tenant

        up = GaugeMetricFamily("opsc_metrics_database_up", "1 if the scrape-time database queries succeeded.")
        try:
            with session_scope() as session:
                counts = execution_counts.by_tenant_status_mode(session)
                # Per tenant, each an index range (ix_executions_tenant_status_created, ix_execution_dlq_tenant_open):
                # the oldest pending execution is the first entry of its range, open DLQ entries a short range.
                waiting = session.execute(
                    select(
                        col(Tenant.name),
                        select(func.min(col(Execution.created_at)))
                        .where(
                            col(Execution.tenant_id) == col(Tenant.id),
                            col(Execution.status) == ExecutionStatus.PENDING_APPROVAL.value,
                        )
                        .scalar_subquery(),
                        select(func.count(col(DlqEntry.id)))
                        .where(col(DlqEntry.tenant_id) == col(Tenant.id), col(DlqEntry.resolved_at).is_(None))
                        .scalar_subquery(),
                    )
                ).all()
        except (SQLAlchemyError, ServiceUnavailable) as exc:
            # A scrape must still answer (the process's own metrics matter most when the database is down).
            log.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _execution_families(counts, {tenant: oldest for tenant, oldest, _ in waiting}, utcnow())
        depth = GaugeMetricFamily("opsc_dlq_depth", "Open (unresolved) DLQ entries.", labels=["tenant"])
        for tenant, _, count in waiting:
            depth.add_metric([tenant], count)
        yield depth


def _execution_families(
    counts: Iterable[tuple[str, str | None, str | None, int]], oldest: dict[str, datetime | None], now: datetime
) -> list[Metric]:
    by_status = GaugeMetricFamily(
        "opsc_executions",
        "Executions by tenant, status and run mode (dry_run|live).",
        labels=["tenant", "status", "run_mode"],
    )
    pending = GaugeMetricFamily("opsc_approvals_pending", "Executions waiting for approval.", labels=["tenant"])
    oldest_age = GaugeMetricFamily(
        "opsc_approval_oldest_age_seconds",
        "Age of the oldest execution waiting for approval (0 when none waits).",
        labels=["tenant"],
    )
    waiting: dict[str, int] = {}
    for tenant, status, run_mode, count in counts:
        waiting.setdefault(tenant, 0)
        if status is None:  # a tenant without executions: the outer join's empty row
            continue
        by_status.add_metric([tenant, status, run_mode or ""], count)
        if status == ExecutionStatus.PENDING_APPROVAL.value:
            waiting[tenant] += count
    for tenant, total in waiting.items():
        first_created = oldest.get(tenant)
        age = 0.0
        if total and first_created is not None:
            if first_created.tzinfo is None:  # SQLite returns an aggregate's datetime without its zone
                first_created = first_created.replace(tzinfo=UTC)
            age = (now - first_created).total_seconds()
        pending.add_metric([tenant], total)
        oldest_age.add_metric([tenant], max(0.0, age))
    return [by_status, pending, oldest_age]


_lock = threading.Lock()
_server: WSGIServer | None = None
_collector: DatabaseCollector | None = None


def serve(port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104  Prometheus scrapes from another host
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread, once per process, with the database gauges.

    Returns False (logged, not raised) when the port is taken: a worker without metrics still works.
    """
    global _server, _collector
    with _lock:
        if _server is not None:
            return True
        # A ``_created`` series next to every counter and histogram would double the series for nothing.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        try:
            _server, _ = start_http_server(port, addr=addr)
        except OSError as exc:
            log.warning("metrics: cannot serve on %s:%d (%s); this process exposes no metrics", addr, port, exc)
            return False
        _collector = DatabaseCollector()
        REGISTRY.register(_collector)
        log.info("metrics on http://%s:%d/metrics", addr, port)
        return True


def stop_serving() -> None:
    """Close the endpoint and drop the database gauges (an embedded runtime stopped; it may start again)."""
    global _server, _collector
    with _lock:
        if _server is not None:
            _server.shutdown()
            _server.server_close()
            _server = None
        if _collector is not None:
            REGISTRY.unregister(_collector)
            _collector = None
