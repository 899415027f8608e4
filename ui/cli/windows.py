"""``opsconductor windows``: the tenant's change windows (README "Change windows"): show them, replace them from a
YAML or JSON file (admin), and override them for one held execution (two admins, neither the requester)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

import core
from ui.cli.options import (
    AsUser,
    ExecutionId,
    JsonOpt,
    TenantOpt,
    acting,
    acting_on_execution,
    command_group,
    read_bounded,
)
from ui.cli.output import fmt_time, print_json, table

windows_app = command_group("Change windows: when modify and deploy plans may start (windows, blackouts, overrides).")


def _when(rule: dict[str, Any]) -> str:
    if "days" in rule:
        return f"{','.join(rule['days'])} {rule['start']}-{rule['end']} {rule['tz']}"
    return f"{rule['from']} to {rule['to']}"


def _render(view: core.ChangeWindowsView) -> str:
    lines = [
        f"tenant {view.tenant}: outside its windows a modify/deploy plan "
        + ("is refused at submit" if view.mode == "refuse" else f"waits (up to {view.max_wait_s}s)"),
        "open now" if view.open_now else f"closed now; next opening {fmt_time(view.next_opening)}",
    ]
    rows = [["window", _when(r), ",".join(r.get("tags", [])) or "(all assets)"] for r in view.windows]
    rows += [["blackout", _when(r), ",".join(r.get("tags", [])) or "(all assets)"] for r in view.blackouts]
    lines.append(table(["KIND", "WHEN", "TAGS"], rows) if rows else "no windows and no blackouts: nothing is held")
    return "\n".join(lines)


@windows_app.command("list")
def list_command(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """The tenant's windows and blackouts, whether it is open now, and the overrides of executions not ended."""
    actor = acting(as_user, tenant)
    view = core.get_change_windows(actor)
    overrides = core.list_window_overrides(actor)
    if json_out:
        print_json(view.model_dump(mode="json") | {"overrides": [o.model_dump(mode="json") for o in overrides]})
        return
    typer.echo(_render(view))
    if overrides:
        typer.echo(
            table(
                ["EXECUTION", "ASKED BY", "REASON", "CONFIRMED BY", "ACTIVE"],
                ([o.execution_id, o.requested_by, o.reason, o.confirmed_by or "-", o.active] for o in overrides),
            )
        )


@windows_app.command("set")
def set_command(
    rules_file: Annotated[str, typer.Argument(metavar="FILE", help="YAML or JSON rules ('-' reads stdin).")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Replace the tenant's change windows (admin): windows, blackouts, mode (wait|refuse), max_wait_s."""
    if rules_file == "-":
        raw = read_bounded(typer.get_binary_stream("stdin"), "the rules on stdin")
    else:
        try:
            with Path(rules_file).open("rb") as stream:
                raw = read_bounded(stream, f"rules file {rules_file}")
        except OSError as exc:
            raise core.InvalidInput(f"cannot read {rules_file}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise core.InvalidInput(f"{rules_file} is not UTF-8 text") from None
    view = core.set_change_windows(acting(as_user, tenant), text)
    if json_out:
        print_json(view.model_dump(mode="json"))
    else:
        typer.echo(_render(view))


@windows_app.command("override")
def override_command(
    execution_id: ExecutionId,
    reason: Annotated[str, typer.Option("--reason", help="Why this change may not wait for its window (required).")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask for (first admin) or confirm (a second admin) an override of the change windows for one execution."""
    actor, full_id = acting_on_execution(as_user, execution_id, tenant)
    view = core.override_change_window(actor, full_id, reason)
    if json_out:
        print_json(view.model_dump(mode="json"))
    elif view.active:
        typer.echo(f"execution {full_id}: change window overridden by {view.requested_by} and {view.confirmed_by}")
    else:
        typer.echo(f"execution {full_id}: override requested by {view.requested_by}; a second admin must confirm")
