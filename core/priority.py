"""Which queued work a worker takes first (DESIGN §14): priority from the SLA class, plus a requested part,
with ageing so that nothing starves.

An execution's priority is its SLA class's base (fast 2, medium 1, long 0) plus the plan's requested
``priority:`` (0 up to the tenant's cap, ``TenantSettings.max_priority``). Its queue row is ordered by
``sort_at`` = the time it was queued minus ``priority × OPSC_PRIORITY_STEP_S`` (60 s): one point is worth a
minute of waiting, so a long plan that has waited two minutes more than a fast one goes first, and every row
reaches the front in bounded time whatever arrives after it.

How it is applied: a broker message is a token for some queued work, not for one execution. A worker that
takes a message for X looks, in its claim, for a free, due row that sorts clearly before X's (by more than
half a step: equal priorities keep the broker's FIFO). If there is one, Y, it claims Y instead and, once Y's
lease is its own, hands X the message that was Y's (``outbox.swap_messages``), so X is run when that message
arrives, and the sweeper still finds X's message held; a worker that lost Y to another claims X as before.
``OPSC_PRIORITY_STEP_S=0`` turns it off (every row in the broker's order). A message is resolved to the row
that holds its id (``outbox.pick``), so a swapped message reaches the row it now belongs to, whatever execution
its payload names. Should a worker already be processing Y's message at that moment, X's new message is
consumed for nothing, and the sweeper re-sends X's after ``OPSC_REDISPATCH_AFTER_S``: a delay, never a lost
execution. The per-asset FIFO (core/engine/locks.py)
is untouched: a picked execution still waits in its asset's line.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from db.enums import SlaClass
from db.settings import get_settings

SLA_BASE = {SlaClass.FAST: 2, SlaClass.MEDIUM: 1, SlaClass.LONG: 0}
MAX_REQUESTED = 9  # the plan field's bound; a tenant's cap is at most this
DEFAULT_CAP = 3


def effective_priority(sla_class: str, requested: int) -> int:
    """The execution's priority: its SLA class's base plus what the plan requested (already within the cap)."""
    return SLA_BASE[SlaClass(sla_class)] + requested


def sort_at(queued_at: datetime, priority: int) -> datetime:
    """The queue row's place: earlier for higher priority, one step of time per point."""
    return queued_at - timedelta(seconds=priority * get_settings().priority_step_s)


def pick_margin_s() -> float:
    """How much earlier another row must sort to be taken instead of the message's own (half a step)."""
    return get_settings().priority_step_s / 2
