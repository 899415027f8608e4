"""Statement and transaction counts from inside worker processes, for bench/throughput.py.

Python imports ``sitecustomize`` at start-up from the first directory of the path that has one: the bench
puts this directory (and the repository root) on PYTHONPATH of the workers it starts, with BENCH_COUNT_DIR
set, so that the engine's code is measured unchanged. Each process writes "statements transactions" to
``$BENCH_COUNT_DIR/<pid>`` every 0.1 s; a forked worker process starts its own counts and its own writer
(threads do not survive a fork). Without BENCH_COUNT_DIR it does nothing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_DIR = os.environ.get("BENCH_COUNT_DIR")


def _write_counts(counter: object, pid: int, directory: Path) -> None:
    path, spare = directory / str(pid), directory / f".{pid}"
    while os.getpid() == pid:  # a forked child's copy of this thread does not exist; the check is for clarity
        statements, transactions = counter.count, counter.transactions  # type: ignore[attr-defined]
        if statements:
            spare.write_text(f"{statements} {transactions}")
            spare.replace(path)  # whole lines only: the sampler never reads half a write
        time.sleep(0.1)


def _start(counter: object) -> None:
    counter.count = counter.transactions = 0  # type: ignore[attr-defined]
    args = (counter, os.getpid(), Path(str(_DIR)))
    threading.Thread(target=_write_counts, args=args, daemon=True, name="bench-counts").start()


if _DIR:
    from bench.statements import StatementCounter

    _counter = StatementCounter()
    _start(_counter)
    os.register_at_fork(after_in_child=lambda: _start(_counter))
