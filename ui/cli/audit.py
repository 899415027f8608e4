"""``opsconductor audit verify``: recompute the tamper-evident audit chain (core/ops/audit_chain.py);
``opsconductor audit admin``: the tenant's administration trail (core/admin_audit.py).

Exit 0 when every chain is intact, 5 (conflict: the trail contradicts itself) when a link is broken.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from core import ChainReport, list_admin_events, verify_chain
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, acting_on
from ui.cli.output import print_json, terminal_safe

BROKEN_EXIT = 5

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def verify_command(
    as_user: AsUser = None,
    execution_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="One execution; all of the tenant's when omitted.")
    ] = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that no audit event was modified, deleted or inserted (admin). Exit 5 names the first broken link."""
    actor = acting(as_user, tenant) if execution_id is None else acting_on(as_user, execution_id, tenant)
    report = verify_chain(actor, execution_id)
    if json_out:
        print_json(report.model_dump(mode="json"))
    else:
        typer.echo(render_report(report))
    if not report.intact:
        raise typer.Exit(BROKEN_EXIT)


@audit_app.command("admin")
def admin_log_command(
    as_user: AsUser = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Newest N entries.")] = 50,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The tenant's administration trail: mode, policies, members, passwords, secret names, assets (admin)."""
    events = list_admin_events(acting(as_user, tenant), limit=limit)
    if json_out:
        print_json({"events": [e.model_dump(mode="json") for e in events]})
        return
    for e in events:
        detail = f" {json.dumps(e.data, sort_keys=True)}" if e.data else ""
        typer.echo(terminal_safe(f"{e.created_at.isoformat()} {e.actor} {e.action} {e.subject}{detail}"))
    if not events:
        typer.echo("no changes recorded")


def render_report(report: ChainReport) -> str:
    """The verdict in a few lines: counts, then the first broken link of each broken execution."""
    scope = f"execution {report.execution_id}" if report.execution_id else f"tenant {report.tenant}"
    counts = f"{report.executions} execution(s), {report.events} event(s)"
    notes = []
    if report.unchained_events:
        notes.append(f"{report.unchained_events} event(s) written before the chain existed (unchained)")
    if report.pruned_executions:
        notes.append(f"{report.pruned_executions} execution(s) pruned by retention")
    suffix = f"; {'; '.join(notes)}" if notes else ""
    if report.intact:
        return f"audit chain intact for {scope}: {counts}{suffix}"
    lines = [f"audit chain BROKEN for {scope}: {len(report.breaks)} execution(s) of {counts}{suffix}"]
    lines += [f"  execution {b.execution_id} event {b.event_id}: {b.problem}: {b.detail}" for b in report.breaks]
    return "\n".join(lines)
