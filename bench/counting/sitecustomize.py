"""Statement and transaction counts from inside worker processes, for bench/throughput.py.

Python imports ``sitecustomize`` at start-up from the first directory of the path that has one: the bench
puts this directory (and the repository root) on PYTHONPATH of the workers it starts, with BENCH_COUNT_DIR
set, so that the engine's code is measured unchanged. Each process writes "statements transactions" to
``$BENCH_COUNT_DIR/<pid>`` every 0.1 s; a forked worker process starts its own counts and its own writer
(threads do not survive a fork). Without BENCH_COUNT_DIR it does nothing.

With BENCH_KINDS_DIR too (``bench/throughput.py --kinds``), each process also counts its statements by kind
(their first 70 characters) and writes them as JSON to ``$BENCH_KINDS_DIR/<pid>.json`` every 0.1 s.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

_DIR = os.environ.get("BENCH_COUNT_DIR")


def _keep_writing(path: Path, text: Callable[[], str | None]) -> None:
    """Every 0.1 s, ``text()`` (unless None) written whole to ``path``, for as long as this is the process that
    started it (a forked child's copy of the thread does not exist; the check is for clarity)."""
    pid, spare = os.getpid(), path.with_name(f".{path.name}")
    while os.getpid() == pid:
        if (now := text()) is not None:
            spare.write_text(now)
            spare.replace(path)  # whole writes only: the reader never sees half of one
        time.sleep(0.1)


def _counts_text(counter: object) -> str | None:
    statements, transactions = counter.count, counter.transactions  # type: ignore[attr-defined]
    return f"{statements} {transactions}" if statements else None


def _start_kinds(kinds: dict[str, int]) -> None:
    kinds.clear()
    path = Path(os.environ["BENCH_KINDS_DIR"]) / f"{os.getpid()}.json"
    args = (path, lambda: json.dumps(dict(kinds)))
    threading.Thread(target=_keep_writing, args=args, daemon=True, name="bench-kinds").start()


def _start(counter: object) -> None:
    counter.count = counter.transactions = 0  # type: ignore[attr-defined]
    args = (Path(str(_DIR)) / str(os.getpid()), lambda: _counts_text(counter))
    threading.Thread(target=_keep_writing, args=args, daemon=True, name="bench-counts").start()


if _DIR:
    from bench.statements import StatementCounter

    _counter = StatementCounter()
    _start(_counter)
    os.register_at_fork(after_in_child=lambda: _start(_counter))
    if os.environ.get("BENCH_KINDS_DIR"):
        from collections import Counter

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        _kinds: Counter[str] = Counter()

        def _kind(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            _kinds[" ".join(statement.split())[:70]] += 1

        event.listen(Engine, "before_cursor_execute", _kind)
        _start_kinds(_kinds)
        os.register_at_fork(after_in_child=lambda: _start_kinds(_kinds))
