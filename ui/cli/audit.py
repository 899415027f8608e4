"""``opsconductor audit``: the tenant's keyed audit chain (execution events and the admin trail, one chain).

``verify`` recomputes it (exit 0 intact, 5, conflict, when a link is broken); ``admin`` lists the
administration trail; ``checkpoint`` signs the chain's head now; ``public-key`` prints the key that verifies
checkpoints; ``export`` writes the chain and its checkpoints as JSON lines for a SIEM (docs/operations.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, acting_on_execution, command_group
from ui.cli.output import print_json, terminal_safe

BROKEN_EXIT = 5

audit_app = command_group("The tamper-evident audit trail.")


@audit_app.command("verify")
def verify_command(
    as_user: AsUser = None,
    execution_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="One execution; all of the tenant's when omitted.")
    ] = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check that no audit event was modified, deleted or inserted, and that the chain reaches its head and signed
    checkpoints (admin). With an ID, the breaks that concern that execution. Exit 5 names the broken links."""
    if execution_id is None:
        actor = acting(as_user, tenant)
    else:
        actor, execution_id = acting_on_execution(as_user, execution_id, tenant)
    report = core.verify_chain(actor, execution_id)
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
    """The tenant's administration trail: mode, priority cap, policies, members, passwords, secret names, assets
    (admin)."""
    events = core.list_admin_events(acting(as_user, tenant), limit=limit)
    if json_out:
        print_json({"events": [e.model_dump(mode="json") for e in events]})
        return
    for e in events:
        detail = f" {json.dumps(e.data, sort_keys=True)}" if e.data else ""
        typer.echo(terminal_safe(f"{e.created_at.isoformat()} {e.actor} {e.action} {e.subject}{detail}"))
    if not events:
        typer.echo("no changes recorded")


@audit_app.command("checkpoint")
def checkpoint_command(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """Sign a checkpoint of the tenant's audit chain at its head now (admin; the sweeper also does, periodically)."""
    view = core.audit_checkpoint(acting(as_user, tenant))
    if json_out:
        print_json({"checkpoint": view.model_dump(mode="json") if view else None})
    elif view is None:
        typer.echo("the audit chain is empty: nothing to sign")
    else:
        typer.echo(f"checkpoint at link {view.seq} ({view.event_count} link(s) stored), head {view.head_hash}")


@audit_app.command("public-key")
def public_key_command() -> None:
    """Print the Ed25519 public key (PEM) that verifies this installation's audit checkpoints."""
    typer.echo(core.audit_public_key(), nl=False)


@audit_app.command("export")
def export_command(
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
    since_seq: Annotated[
        int, typer.Option("--since-seq", min=0, metavar="N", help="Only links after N (and checkpoints from N on).")
    ] = 0,
) -> None:
    """The tenant's audit chain as JSON lines (admin): a header, every link, then the signed checkpoints."""
    lines = core.export_audit(acting(as_user, tenant), since_seq=since_seq)
    if output is None:
        _write_lines(lines, None)
        return
    with output.open("w", encoding="utf-8") as handle:
        _write_lines(lines, handle)


def _write_lines(lines: Iterable[dict[str, Any]], handle: TextIO | None) -> None:
    for line in lines:
        # ASCII JSON: every control or bidi character escaped, so a line is safe in a terminal and in a pipe.
        text = json.dumps(line, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
        if handle is None:
            typer.echo(text)
        else:
            handle.write(text + "\n")


def render_report(report: core.ChainReport) -> str:
    """The verdict in a few lines: counts, then each broken link."""
    scope = f"execution {report.execution_id}" if report.execution_id else f"tenant {report.tenant}"
    counts = f"{report.executions} execution(s), {report.events} event(s), {report.admin_events} admin event(s)"
    notes = [f"{report.links} link(s) up to the head at {report.head_seq}"]
    if report.checkpoint_seq is not None:
        notes.append(f"{report.checkpoints} signed checkpoint(s), the newest at link {report.checkpoint_seq}")
    if report.unchained_events:
        notes.append(f"{report.unchained_events} event(s) written before the chain existed (unchained)")
    if report.pruned_executions:
        notes.append(f"{report.pruned_executions} execution(s) pruned by retention")
    suffix = f"; {'; '.join(notes)}"
    if report.intact:
        return f"audit chain intact for {scope}: {counts}{suffix}"
    lines = [f"audit chain BROKEN for {scope}: {len(report.breaks)} break(s); {counts}{suffix}"]
    lines += [terminal_safe(f"  {_where(b)}: {b.problem}: {b.detail}") for b in report.breaks]
    return "\n".join(lines)


def _where(brk: core.ChainBreak) -> str:
    if brk.source == "execution":
        return f"execution {brk.execution_id} event {brk.event_id}"
    if brk.source == "admin":
        return f"admin event {brk.event_id}"
    if brk.source == "checkpoint":
        return "checkpoint" if brk.event_id is None else f"checkpoint {brk.event_id}"
    return "chain" if brk.seq is None else f"chain at link {brk.seq}"
