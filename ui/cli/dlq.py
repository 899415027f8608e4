"""``opsconductor dlq``: the dead-letter queue: list, requeue, discard."""

from __future__ import annotations

from typing import Annotated

import typer

import core
from ui.cli.options import AsUser, ExecutionId, JsonOpt, TenantOpt, acting, acting_on_execution, command_group
from ui.cli.output import fmt_time, print_json, render_execution, table

dlq_app = command_group("Failed and timed-out work waiting for a decision.")


@dlq_app.command("list")
def list_command(
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Include entries already decided.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The tenant's DLQ, newest first."""
    rows = core.list_dlq(acting(as_user, tenant), include_resolved=all_entries)
    if json_out:
        print_json({"entries": [r.model_dump(mode="json") for r in rows]})
        return
    if not rows:
        typer.echo("the DLQ is empty")
        return
    typer.echo(
        table(
            ["EXECUTION", "NAME", "REASON", "STEP", "ATTEMPTS", "SINCE", "RESOLUTION", "LAST ERROR"],
            (
                [
                    r.execution_id,
                    r.execution_name,
                    r.reason,
                    r.step_index,
                    r.attempts,
                    fmt_time(r.created_at),
                    r.resolution,
                    (r.last_error or "")[:60],
                ]
                for r in rows
            ),
        )
    )


@dlq_app.command("requeue")
def requeue_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    comment: Annotated[str | None, typer.Option("--comment", help="Why it is safe to run again.")] = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run it again from its first unfinished step (admin, or the operator who submitted it)."""
    view = core.requeue(*acting_on_execution(as_user, execution_id, tenant), comment=comment)
    if json_out:
        print_json(view.model_dump(mode="json"))
    else:
        typer.echo(render_execution(view))


@dlq_app.command("discard")
def discard_command(
    execution_id: ExecutionId,
    comment: Annotated[str, typer.Option("--comment", help="Why it will not run again (required).")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
) -> None:
    """Close the entry without running it again (admin)."""
    actor, execution_id = acting_on_execution(as_user, execution_id, tenant)
    core.discard(actor, execution_id, comment=comment)
    typer.echo(f"discarded the DLQ entry of {execution_id}")
