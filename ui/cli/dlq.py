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
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            metavar="FILE",
            help="Run this edited plan instead (- reads stdin): a new execution, approved afresh; see `dlq plan`.",
        ),
    ] = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run it again from its first unfinished step (admin, or the operator who submitted it); with --plan, run
    an edited plan as a new execution linked to it, and close the entry as superseded."""
    actor, resolved = acting_on_execution(as_user, execution_id, tenant)
    if plan is None:
        view = core.requeue(actor, resolved, comment=comment)
    else:
        from ui.cli.commands import read_plan  # the submit command's reader (a file, or - for stdin)

        view = core.requeue_with_changes(actor, resolved, read_plan(plan), comment=comment).execution
        if not json_out:
            typer.echo(f"requeued with changes as a new execution; the DLQ entry of {resolved} is closed")
    if json_out:
        print_json(view.model_dump(mode="json"))
    else:
        typer.echo(render_execution(view))


@dlq_app.command("plan")
def plan_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    from_step: Annotated[
        int | None,
        typer.Option("--from-step", min=0, help="First step to keep (default: the first that did not complete)."),
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Print the steps that did not complete as a plan (YAML) to edit and pass to `dlq requeue --plan`."""
    actor, resolved = acting_on_execution(as_user, execution_id, tenant)
    if from_step is None:  # where a requeue would resume: the first step that did not complete
        steps = core.get_execution(actor, resolved).steps
        from_step = next((s.index for s in steps if s.status != core.StepStatus.COMPLETED), len(steps) - 1)
    typer.echo(core.plan_yaml(core.rerun_plan(actor, resolved, from_step=from_step)), nl=False)


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
