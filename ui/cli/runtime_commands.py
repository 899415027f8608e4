"""CLI commands that run things: ``up`` (console + embedded worker), ``worker``, ``watch``."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

import core
from ui import runtime
from ui.cli.options import AsUser, ExecutionId, TenantOpt, acting_on_execution
from ui.cli.output import fmt_time, render_execution, terminal_safe

# The console's server (the repository root): Streamlit over streamlit_app.py plus the session cookie's routes.
STREAMLIT_APP = Path(__file__).resolve().parents[2] / "console_app.py"
DEFAULT_PORT = 8501


def up_command(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the console.")] = DEFAULT_PORT,
    demo: Annotated[bool, typer.Option("--demo", help="Also create the demo data.")] = False,
) -> None:
    """Initialise the database, then start the console (with the embedded worker unless Redis is configured)."""
    if not STREAMLIT_APP.is_file():
        typer.echo(f"error: the console entry point {STREAMLIT_APP} is missing from this installation", err=True)
        raise typer.Exit(1)
    core.initialize(demo=demo)
    # 127.0.0.1 unless OPSC_CONSOLE_ADDR says otherwise: a console reachable from the network is a decision.
    address = core.get_settings().console_addr
    argv = [sys.executable, "-m", "streamlit", "run", str(STREAMLIT_APP), "--server.port", str(port)]
    argv += ["--server.address", address]
    argv += ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    # A bug the pages did not catch shows a generic message, never a traceback; the details go to the log.
    argv += ["--client.showErrorDetails", "none"]
    where = "workers on Redis" if core.get_settings().redis_url else "an embedded worker"
    typer.echo(f"starting the console on http://{address}:{port} with {where}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # noqa: S606  an argv list, no shell: the console takes over this process


def worker_command(
    processes: Annotated[int, typer.Option("--processes", min=1, max=64, help="Worker processes (Redis).")] = 2,
    threads: Annotated[int, typer.Option("--threads", min=1, max=256, help="Threads per process.")] = 4,
) -> None:
    """Run workers: Dramatiq processes on Redis, or (no OPSC_REDIS_URL) worker threads fed from the DB queue."""
    if core.get_settings().redis_url:
        # Dramatiq's supervisor, in this process (no exec: the worker processes fork with the actors loaded):
        # it forks, supervises, handles signals and gives the exit code.
        raise typer.Exit(runtime.run_worker_processes(processes, threads))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start_embedded(threads, serve_metrics=True)
    typer.echo(f"embedded worker running with {threads} threads on {core.get_settings().database_url}; Ctrl-C stops it")
    stop.wait()
    typer.echo("stopping: running steps finish or hand their work back")
    runtime.stop_embedded()


def watch_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    interval_s: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")] = 0.5,
) -> None:
    """Follow an execution live, like ``tail -f``: each new event and each step's output as it is written
    (masked), then the final summary."""
    actor, execution_id = acting_on_execution(as_user, execution_id, tenant)
    seen_event = seen_chunk = 0
    while True:
        # The status first: whatever is written before it ends is then read below, so nothing is missed.
        view = core.get_execution(actor, execution_id)
        events = core.list_events(actor, execution_id, after_id=seen_event)
        chunks = core.list_output_chunks(actor, execution_id, after_id=seen_chunk)
        lines: list[tuple[object, int, str]] = [(e.created_at, 0, _event_line(e)) for e in events]
        lines += [(c.created_at, 1, line) for c in chunks for line in _output_lines(c)]
        for _when, _order, line in sorted(lines, key=lambda item: (item[0], item[1])):
            typer.echo(line)
        seen_event = events[-1].id if events else seen_event
        seen_chunk = chunks[-1].id if chunks else seen_chunk
        if view.status in core.TERMINAL_STATUSES:
            typer.echo("")
            typer.echo(render_execution(view))
            return
        time.sleep(interval_s)


def _event_line(event: core.EventView) -> str:
    step = f" step {event.step_index}" if event.step_index is not None else ""
    change = f" {event.from_status or ''}→{event.to_status}" if event.to_status else ""
    return f"{fmt_time(event.created_at)}  {event.kind}{step}{change}  {terminal_safe(event.message)}".rstrip()


def _output_lines(chunk: core.OutputChunkView) -> list[str]:
    """A chunk's lines, each marked with its step (and attempt after the first), control characters escaped."""
    where = f"step {chunk.step_index}" + (f" attempt {chunk.attempt}" if chunk.attempt > 1 else "")
    return [f"  {where} | {terminal_safe(line)}" for line in chunk.text.splitlines()]
