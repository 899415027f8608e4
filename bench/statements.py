"""Counting what a piece of work costs the engine's process: SQL statements sent, transactions begun, and CPU
time.

Shared by bench/step_cost.py and bench/submit_cost.py (in their own process) and bench/counting/ (inside
worker processes): statements and transactions are counted by SQLAlchemy listeners on every engine of the
process; CPU is ``time.process_time`` (the database server's is not in it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class StatementCounter:
    """Counts statements sent and transactions begun through every SQLAlchemy engine of this process."""

    def __init__(self) -> None:
        self.count = 0
        self.transactions = 0
        event.listen(Engine, "before_cursor_execute", self._seen)
        event.listen(Engine, "begin", self._began)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def _began(self, *_args: Any) -> None:
        self.transactions += 1


def measure(counter: StatementCounter, work: Callable[[], Any]) -> tuple[int, float, float]:
    """Run ``work``; return (statements, CPU s, wall s) it took."""
    statements, cpu, wall = counter.count, time.process_time(), time.perf_counter()
    work()
    return counter.count - statements, time.process_time() - cpu, time.perf_counter() - wall
