"""Operations commands: ``prune`` (retention, core/ops/retention.py) and ``check`` (GO/NO-GO, core/ops/readiness.py).

``check`` exits 0 only when every item is GO and 1 otherwise; it needs no ``--as``: it is the operator's
view of the installation and shows counts and reasons, never a row's content.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

import core
from ui import runtime
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting
from ui.cli.output import fmt_time, print_json, table

NO_GO_EXIT = 1

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, option: str = "--older-than") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` as a timedelta. Raises InvalidInput naming the option."""
    match = _DURATION.match(text)
    if match is None:
        raise core.InvalidInput(
            f"{text!r} is not a duration: use a whole number and a unit, e.g. 30d, 12h, 90m", path=option
        )
    amount = int(match.group(1))
    if amount == 0:
        raise core.InvalidInput("must be longer than zero", path=option)
    return timedelta(seconds=amount * _UNIT_S[match.group(2)])


def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="AGE", help="Prune executions that ended longer ago: 30d, 12h, 90m.")
    ],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete the events and step output of ended executions older than AGE (admin); rows and statuses stay."""
    age = parse_duration(older_than)
    report = core.prune(acting(as_user, tenant), age, dry_run=dry_run, progress=_progress)
    if json_out:
        print_json(report.model_dump(mode="json"))
        return
    counts = (
        f"{report.executions} execution(s): {report.events_deleted} event(s) deleted, "
        f"{report.outputs_cleared} step output(s) cleared (ended before {fmt_time(report.cutoff)})"
    )
    typer.echo(f"dry run: would prune {counts}" if report.dry_run else f"pruned {counts}")


def _progress(report: core.PruneReport) -> None:
    typer.echo(
        f"… batch {report.batches}: {report.executions} execution(s), {report.events_deleted} event(s) so far",
        err=True,
    )


def check_command(json_out: JsonOpt = False) -> None:
    """GO/NO-GO: database, schema, policies, broker, workers, clock, locks, DLQ, masking, secrets, rollout gates."""
    items = core.check_readiness(broker_probe=runtime.broker_ping)
    go = all(item.ok for item in items)
    if json_out:
        print_json(
            {
                "go": go,
                "items": [{**item.model_dump(mode="json"), "status": "GO" if item.ok else "NO-GO"} for item in items],
            }
        )
    else:
        typer.echo(table(["VERDICT", "ITEM", "REASON"], (["GO" if i.ok else "NO-GO", i.name, i.reason] for i in items)))
        failed = sum(1 for item in items if not item.ok)
        typer.echo("")
        typer.echo("GO" if go else f"NO-GO: {failed} of {len(items)} item(s) failed")
    if not go:
        raise typer.Exit(NO_GO_EXIT)
