"""The ``opsconductor`` CLI (DESIGN §11): set up, submit, decide, cancel and read executions; administer.

Calls the public ``core`` API only. Exit codes: 0 ok, 2 invalid input, 3 permission denied, 4 not found,
5 conflict, 1 internal error (a bug; see ui/cli_errors.py). Importing this module does no work; ``main``
is the console script's entry point.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

import core
from ui import runtime
from ui.cli.admin import assets_app, policies_app, secrets_app, tenant_app, users_app
from ui.cli.audit import audit_app
from ui.cli.dlq import dlq_app
from ui.cli.errors import DEBUG_KEY, GuardedGroup
from ui.cli.inputs import InputOpt, InputsFileOpt, gather_inputs
from ui.cli.locks import locks_command
from ui.cli.notify import notify_app
from ui.cli.ops import check_command, prune_command
from ui.cli.options import (
    AsUser,
    ExecutionId,
    JsonOpt,
    TenantOpt,
    TokenFileOpt,
    acting,
    acting_on,
    acting_on_execution,
    read_bounded,
    read_password,
    use_token_file,
)
from ui.cli.output import as_json, execution_json, print_json, render_execution, render_summaries
from ui.cli.read_only import commands_app
from ui.cli.runbooks import runbooks_app
from ui.cli.runtime_commands import up_command, watch_command, worker_command
from ui.cli.tokens import tokens_app
from ui.cli.windows import windows_app

app = typer.Typer(
    cls=GuardedGroup,
    name="opsconductor",
    help="OpsConductor Execution: submit, approve and run operations plans safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: see options.command_group
    add_completion=False,
)
app.add_typer(users_app, name="users")
app.add_typer(assets_app, name="assets")
app.add_typer(secrets_app, name="secrets")
app.add_typer(tenant_app, name="tenant")
app.add_typer(policies_app, name="policies")
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")
app.add_typer(tokens_app, name="tokens")
app.add_typer(commands_app, name="commands")
app.add_typer(runbooks_app, name="runbooks")
app.add_typer(notify_app, name="notify")
app.add_typer(windows_app, name="windows")
app.command("up")(up_command)
app.command("worker")(worker_command)
app.command("watch")(watch_command)
app.command("locks")(locks_command)
app.command("prune")(prune_command)
app.command("check")(check_command)

Comment = Annotated[str | None, typer.Option("--comment", help="A note recorded with the decision.")]
FULL_ID_LENGTH = 32  # an execution id (uuid4 hex); anything shorter is a prefix to resolve


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Log the traceback of an internal error.")] = False,
    token_file: TokenFileOpt = None,
) -> None:
    """OpsConductor Execution: submit, approve and run operations plans safely.

    Identity: an API token from --token-file or $OPSC_TOKEN (README Security model); --as USER only on a
    demo / single-operator box.
    """
    ctx.meta[DEBUG_KEY] = debug
    use_token_file(token_file)
    core.install_log_masking()
    runtime.connect()  # with Redis configured, work this command queues is sent to the workers at once


# setup ---------------------------------------------------------------------------------------------


@app.command("init")
def init_command(
    demo: Annotated[bool, typer.Option("--demo", help="Also create the demo tenants, users and assets.")] = False,
    single_operator: Annotated[
        bool | None,
        typer.Option(
            "--single-operator/--no-single-operator",
            help="Accept claimed names (--as USER) on this box, or stop accepting them (production).",
        ),
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", metavar="NAME", help="Create this first admin of --tenant; prints a token.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="TENANT", help="The tenant of --admin (created if missing).")
    ] = None,
) -> None:
    """Create or upgrade the database and seed the timeout policies (idempotent); optionally bootstrap an admin."""
    report = core.initialize(demo=demo, single_operator=single_operator, admin=admin, tenant=tenant)
    typer.echo(f"database ready at schema revision {report.revision}; {report.policies_added} timeout policies added")
    for item in report.created:
        typer.echo(f"created {item}")
    print_admin_token(report)


def print_admin_token(report: core.InitReport) -> None:
    """The bootstrap admin's token: the last line of stdout, alone; the advice on stderr. Shown this once."""
    if report.claimed_identity:
        typer.echo("note: claimed names (--as USER) are accepted on this box; `check` says NO-GO", err=True)
    if report.admin_token is None:
        return
    typer.echo(
        "the admin's API token follows, shown this once (only its hash is stored): put it in a 0600 file "
        "for --token-file, or in OPSC_TOKEN",
        err=True,
    )
    typer.echo(report.admin_token)


# executions ----------------------------------------------------------------------------------------


@app.command("submit")
def submit_command(
    plans: Annotated[
        list[str],
        typer.Argument(metavar="PLAN...", help="Plan file (YAML or JSON), or - to read stdin; several are one batch."),
    ],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    idempotency_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--idempotency-key",
            help="Your key: resubmitting with it returns the same execution (several plans: one each, in order).",
        ),
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Leave it to a worker, even a fast level-0 plan that would run here.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a terminal status (runs an embedded worker if no Redis).")
    ] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0, help="Seconds --wait waits at most.")] = 60.0,
    notify_on_finish: Annotated[
        bool,
        typer.Option(
            "--notify-on-finish",
            help="Tell me when it ends, at my own notification address (`notify subscribe`; one plan only).",
        ),
    ] = False,
    input_pairs: InputOpt = None,
    inputs_file: InputsFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Submit a plan, or several as one batch (all or nothing). A duplicate (same plan, or same
    --idempotency-key) returns the existing execution.

    A plan that declares inputs takes their values from --input NAME=VALUE and --inputs-file (one plan only).

    With several plans --json prints {"executions": [...]}, each item the object one plan prints.
    """
    if plans.count("-") > 1:
        raise core.InvalidInput("stdin (-) can be read once", path="PLAN")
    keys = list(idempotency_keys or [])
    if len(plans) == 1 and len(keys) > 1:
        raise core.InvalidInput(f"{len(keys)} keys for one plan", path="idempotency_key")
    inputs = gather_inputs(input_pairs, inputs_file)
    if inputs is not None and len(plans) > 1:
        raise core.InvalidInput("inputs are given for one plan; submit plans with inputs one by one", path="--input")
    if notify_on_finish and len(plans) > 1:
        raise core.InvalidInput("--notify-on-finish is for one plan; submit them one by one", path="--notify-on-finish")
    sources = [read_plan(plan) for plan in plans]
    actor = acting(as_user, tenant)
    if wait and not core.get_settings().redis_url:
        runtime.start_embedded(threads=2)  # no workers elsewhere on the embedded default: be one until done
    try:
        if len(sources) == 1:
            key = keys[0] if keys else None
            results = [
                core.submit(
                    actor,
                    sources[0],
                    idempotency_key=key,
                    background=background,
                    inputs=inputs,
                    notify_on_finish=notify_on_finish,
                )
            ]
        else:
            results = core.submit_many(actor, sources, idempotency_keys=keys or None, background=background)
        views = [wait_briefly(actor, r.execution, timeout_s) if wait else r.execution for r in results]
    finally:
        if wait and not core.get_settings().redis_url:
            runtime.stop_embedded()
    if json_out:
        shown = [as_json(view, created=r.created) for view, r in zip(views, results, strict=True)]
        print_json(shown[0] if len(shown) == 1 else {"executions": shown})
        return
    for number, (view, result) in enumerate(zip(views, results, strict=True)):
        if number:
            typer.echo("")
        if not result.created:
            typer.echo("existing execution: this plan was already submitted; nothing new was created")
        typer.echo(render_execution(view))


def read_plan(location: str) -> bytes:
    """The plan's bytes from a file, or from stdin for ``-``. Raises InvalidInput when unreadable."""
    if location == "-":
        return read_bounded(typer.get_binary_stream("stdin"), "the plan on stdin")
    path = Path(location)
    try:
        with path.open("rb") as stream:
            return read_bounded(stream, f"plan file {location}")
    except FileNotFoundError:
        raise core.InvalidInput(f"plan file not found: {location}") from None
    except IsADirectoryError:
        raise core.InvalidInput(f"plan file is a directory: {location}") from None
    except OSError as exc:
        raise core.InvalidInput(f"cannot read plan file {location}: {exc.strerror or type(exc).__name__}") from None


def wait_briefly(actor: core.Principal, view: core.ExecutionView, timeout_s: float) -> core.ExecutionView:
    """Wait up to ``timeout_s`` for a terminal status; if none comes, say why on stderr and return the current state."""
    try:
        return core.wait_for(actor, view.execution_id, timeout_s=timeout_s)
    except core.DeadlineExceeded:
        current = core.get_execution(actor, view.execution_id)
    note = f"note: execution {current.execution_id} is still {current.status} after {timeout_s:g}s"
    if current.status == core.ExecutionStatus.PENDING_APPROVAL:
        note += "; it is waiting for approval"
    elif current.status in (core.ExecutionStatus.APPROVED, core.ExecutionStatus.QUEUED):
        note += "; no worker has taken it yet (is `opsconductor worker` running?)"
    typer.echo(note, err=True)
    return current


@app.command("approve")
def approve_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    comment: Comment = None,
    step: Annotated[
        int | None, typer.Option("--step", min=0, help="Give the go for this step of a level-3 execution.")
    ] = None,
    tenant: TenantOpt = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Confirm your password, read from stdin (approving at OPSC_REAUTH_APPROVAL_LEVEL or above "
            "needs it, unless the token was created in the last 5 minutes).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Approve a pending execution, or (--step) open a level-3 step gate (approvers; never your own request)."""
    actor, execution_id = acting_on_execution(as_user, execution_id, tenant)
    if password_stdin:
        actor = core.reauthenticate(actor, read_password())
    if step is None:
        view = core.approve(actor, execution_id, comment=comment)
    else:
        view = core.approve_gate(actor, execution_id, step, comment=comment)
    show_view(view, json_out)


@app.command("reject")
def reject_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    comment: Comment = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reject a pending execution (approvers; never your own request)."""
    view = core.reject(*acting_on_execution(as_user, execution_id, tenant), comment=comment)
    show_view(view, json_out)


@app.command("cancel")
def cancel_command(
    execution_id: ExecutionId,
    as_user: AsUser = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit trail.")] = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cancel an execution (your own, or any as admin); cancelling twice is a no-op."""
    view = core.cancel(*acting_on_execution(as_user, execution_id, tenant), reason=reason)
    show_view(view, json_out)


@app.command("show")
def show_command(
    execution_id: ExecutionId, as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False
) -> None:
    """Show one execution and its steps (with --json, each step's output per attempt)."""
    view, outputs = read_execution(as_user, execution_id, tenant, outputs=json_out)
    if json_out:
        print_json(execution_json(view, outputs))
    else:
        typer.echo(render_execution(view))


def read_execution(
    as_user: str | None, execution_id: str, tenant: str | None, *, outputs: bool = False
) -> tuple[core.ExecutionView, list[core.AttemptOutputView]]:
    """The execution ``show`` prints, and (with ``outputs``) each attempt's output: read over a plain DB-API
    connection when the database allows (no ORM to import: issue 15, a third of the CPU), else through core;
    the same rules and the same view either way. A prefix of the id is resolved through core first (the
    one-shot reader takes whole ids only)."""
    if len(execution_id.strip()) == FULL_ID_LENGTH:
        try:
            with core.direct_reader() as reader:
                who = acting_on(as_user, execution_id, tenant, issuer=reader)
                view = reader.get_execution(who, execution_id)
                return view, reader.list_attempt_outputs(who, execution_id) if outputs else []
        except core.DirectReadUnavailable:
            pass  # another database, a driver error, a token's last use to record: the ORM path says it its way
    who, full_id = acting_on_execution(as_user, execution_id, tenant)
    view = core.get_execution(who, full_id)
    return view, core.list_attempt_outputs(who, full_id) if outputs else []


def show_view(view: core.ExecutionView, json_out: bool) -> None:
    """Print an execution as JSON or as a summary."""
    if json_out:
        print_json(as_json(view))
    else:
        typer.echo(render_execution(view))


@app.command("list")
def list_command(
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    status: Annotated[
        list[core.ExecutionStatus] | None, typer.Option("--status", help="Only this status; repeat for several.")
    ] = None,
    requester: Annotated[
        str | None, typer.Option("--requester", metavar="USER", help="Only those this user requested.")
    ] = None,
    asset: Annotated[str | None, typer.Option("--asset", metavar="NAME", help="Only those with a step on it.")] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search", metavar="TEXT", help="Name contains TEXT (3+ characters), or the id starts with it (4+ hex)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Created since: a duration back from now (90s, 30m, 2h, 7d) or an ISO date/time (UTC if no zone).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first (1-500).")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """List the tenant's executions, newest first; filters as the console's (all of them must hold)."""
    actor = acting(as_user, tenant)
    rows = core.list_executions(
        actor,
        status=status or None,
        requested_by=_blank_is_none(requester),
        asset=_blank_is_none(asset),
        search=_blank_is_none(search),
        created_after=parse_since(since) if since is not None else None,
        limit=limit,
    )
    if json_out:
        # Full views, so every listed execution carries the whole §11 contract (steps included).
        print_json({"executions": [as_json(core.get_execution(actor, r.execution_id)) for r in rows]})
        return
    typer.echo(render_summaries(rows))


def _blank_is_none(value: str | None) -> str | None:
    return (value or "").strip() or None


_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str) -> datetime:
    """``--since``: a duration back from now (``90s``, ``30m``, ``2h``, ``7d``) or an ISO 8601 date or time
    (UTC when it names no zone). Raises InvalidInput (path ``--since``)."""
    text = value.strip()
    if match := _DURATION.match(text.lower()):
        return datetime.now(UTC) - timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise core.InvalidInput(
            f"{value!r} is neither a duration (90s, 30m, 2h, 7d) nor an ISO date/time (2026-12-01T08:00)",
            path="--since",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def main() -> None:
    """Entry point of the ``opsconductor`` console script."""
    app(prog_name="opsconductor")
