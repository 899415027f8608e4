"""The sweeper: one pass over everything time-bound (DESIGN §3.3). Every worker runs it periodically.

Order matters a little: leases first (a dead worker's step is retried or sent to the DLQ; not in the
first lease period after this process saw the database come back, core/engine/reachability.py), then
timeouts and approvals, then re-dispatch of queued work whose message was lost (Redis flushed or
restarted, a crash between commit and send, a message dead-lettered, a consumer that died holding it: the
broker is asked, core/engine/outbox.py). Expired asset locks are reaped and handed on. Last, a signed
checkpoint of every tenant audit chain that moved and whose newest checkpoint is older than
``audit_checkpoint_interval_s`` (core/ops/audit_checkpoints.py), and the execution counts the database
keeps folded into one row per group (core/ops/execution_counts.py), so the metrics scrape stays small.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.engine import reachability, recovery
from core.ops import audit_checkpoints, execution_counts
from db.settings import get_settings

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one pass did."""

    reclaimed: int = 0
    expired_approvals: int = 0
    timed_out: int = 0
    redispatched: int = 0
    reaped_locks: int = 0
    checkpoints: int = 0

    def __bool__(self) -> bool:
        return any(
            (
                self.reclaimed,
                self.expired_approvals,
                self.timed_out,
                self.redispatched,
                self.reaped_locks,
                self.checkpoints,
            )
        )


def sweep(*, redispatch_after_s: float | None = None) -> SweepReport:
    """Run one pass. Safe to call from many workers at once."""
    settings = get_settings()
    report = SweepReport()
    # Just after an outage every lease looks expired, live ones too: their watchers renew within a
    # heartbeat of the database coming back, so give them one lease period before calling them lost.
    if reachability.up_for_s() >= settings.lease_ttl_s:
        for execution_id in recovery.expired_leases():
            if recovery.reclaim_lease(execution_id) is not None:
                report.reclaimed += 1
    report.timed_out = recovery.time_out_idle_executions()
    report.expired_approvals = recovery.expire_approvals()
    report.reaped_locks = recovery.reap_locks()
    ids = recovery.due_redispatch(
        older_than_s=settings.redispatch_after_s if redispatch_after_s is None else redispatch_after_s
    )
    report.redispatched = len(ids)
    report.checkpoints = audit_checkpoints.write_due(settings.audit_checkpoint_interval_s)
    execution_counts.fold_now()
    if report:
        log.info("sweep: %s", report)
    return report
