"""Output-to-page lag of live step output (issue 16 item 1): from a step's print to the console reading it.

A real ``shell`` step prints a line every 0.2 s, each carrying the wall time of its print. The step runs
through ``engine.process`` (what a worker does); beside it a reader runs the console's query
(``core.list_output_chunks`` after the last id, as the live tail does) every 20 ms, and notes when each line
first comes back:
  - ``readable``: print → row readable by that query: the write path's lag alone (batching, commit);
  - ``page``: print → returned to the console's live fragment, which polls every ``LIVE_S``
    (ui/components/step_output.py) at a phase of its own: ``readable`` plus the wait for the fragment's next
    poll, over 100 phases spread evenly across one period for each line (the browser's render not included).
Prints p50/p95/max of each, per database, and a last line of JSON with every figure.

Usage: uv run python bench/live_output.py [--lines 60] [--runs 2] [--database postgresql|sqlite|both]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) for the postgresql run; it creates and drops its
own database. The sqlite run uses a temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_db import chosen, scratch_database  # noqa: E402  (after the path: runnable as a script)
from bench.throughput import percentile  # noqa: E402
from ui.components.step_output import LIVE_S  # noqa: E402

READ_EVERY_S = 0.02
PHASES = 100

CODE = "import time\nfor i in range({lines}):\n    print(i, repr(time.time()))\n    time.sleep(0.2)\n"


def _plan(lines: int, n: int) -> str:
    step = {
        "name": "talk",
        "action": "shell",
        "target": "localhost",
        "timeout_s": int(lines * 0.2) + 20,
        "params": {"command": ["python3", "-u", "-c", CODE.format(lines=lines)]},
    }
    return json.dumps({"name": f"live-output-bench-{n}", "steps": [step]})


def _reader(execution_id: str, poll_s: float, done: threading.Event, seen: list[tuple[float, float]]) -> None:
    """Poll the chunks; ``seen`` gets (printed, readable) wall times for each line."""
    import core

    alice = core.principal("alice", "demo")
    after = 0
    while True:
        finished = done.is_set()
        for chunk in core.list_output_chunks(alice, execution_id, after_id=after):
            now = time.time()
            after = chunk.id
            for line in chunk.text.splitlines():
                _index, printed = line.split(" ", 1)
                seen.append((float(printed), now))
        if finished:
            return
        time.sleep(poll_s)


def run(url: str, lines: int, runs: int) -> dict[str, float]:
    """Run ``runs`` steps of ``lines`` lines on ``url``; the lags in ms."""
    os.environ["OPSC_DATABASE_URL"] = url
    if "OPSC_SECRET_KEY" not in os.environ:
        from cryptography.fernet import Fernet

        os.environ["OPSC_SECRET_KEY"] = Fernet.generate_key().decode()  # this run's own key
    os.environ.setdefault("OPSC_ALLOW_UNCONFINED_STEPS", "1")  # a lab box: no runner user, no bubblewrap
    import core
    from core import engine
    from core.transactions import dispose_engines
    from db.settings import get_settings

    get_settings.cache_clear()
    dispose_engines()
    core.initialize(demo=True)
    seen: list[tuple[float, float]] = []
    chunks = 0
    for n in range(runs):
        # A plan of its own each time: the same plan within the idempotency window is the same execution.
        submitted = core.submit(core.principal("alice", "demo"), _plan(lines, n), background=True)
        execution_id = submitted.execution.execution_id
        core.approve(core.principal("bob", "demo"), execution_id)  # python3 -c is modify
        done = threading.Event()
        reader = threading.Thread(target=_reader, args=(execution_id, READ_EVERY_S, done, seen))
        reader.start()
        outcome = engine.process(execution_id, worker_id="bench")
        done.set()
        reader.join()
        status = core.get_execution(core.principal("alice", "demo"), execution_id).status
        assert status == "completed", (outcome, status)  # lags of a step that did not finish mean nothing
        chunks += len(core.list_output_chunks(core.principal("alice", "demo"), execution_id))
    dispose_engines()
    assert len(seen) == lines * runs, len(seen)
    readable = [1000 * (ready - printed) for printed, ready in seen]
    # A poll at phase p reads at p, p + LIVE_S, ...: a line readable at r is returned at the first poll >= r.
    page = [
        1000 * (ready - printed + (k / PHASES * LIVE_S - ready) % LIVE_S)
        for printed, ready in seen
        for k in range(PHASES)
    ]
    ms = {"readable": readable, "page": page}
    return {
        "lines": lines * runs,
        # What streaming writes: one small INSERT transaction per chunk, per second the step printed.
        "chunks_per_step_s": chunks / (runs * lines * 0.2),
        **{f"{name}_ms_p50": percentile(values, 50) for name, values in ms.items()},
        **{f"{name}_ms_p95": percentile(values, 95) for name, values in ms.items()},
        **{f"{name}_ms_max": max(values) for name, values in ms.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    for name in chosen(args.database):
        with scratch_database(name) as url:
            figures[name] = run(url, args.lines, args.runs)
    for name, f in figures.items():
        print(
            f"{name:>10}: {f['lines']:.0f} lines, {f['chunks_per_step_s']:.2f} chunk rows per second printed; "
            f"print → readable p50 {f['readable_ms_p50']:.0f} ms, "
            f"p95 {f['readable_ms_p95']:.0f} ms, max {f['readable_ms_max']:.0f} ms; print → read by the console's "
            f"{LIVE_S:g} s poll p50 {f['page_ms_p50']:.0f} ms, p95 {f['page_ms_p95']:.0f} ms, "
            f"max {f['page_ms_max']:.0f} ms"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
