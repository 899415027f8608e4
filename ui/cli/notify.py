"""``opsconductor notify``: where the tenant's notifications go (docs/operations.md "Notifications"): webhooks and
email addresses (admin), a user's own opt-in to hear when their executions finish, a test send, the signing secret.
A webhook URL is shown only as its scheme and host; the signing secret only when it is made or rotated, on stdout.
"""

from __future__ import annotations

from typing import Annotated

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, command_group
from ui.cli.output import fmt_time, print_json, table

notify_app = command_group("Notifications: webhooks and email when approvals wait, work enters the DLQ, work ends.")

EventsOpt = Annotated[
    str | None,
    typer.Option("--events", help="Comma-separated: approval_waiting, dlq, finished (default: approval_waiting,dlq)."),
]
ChannelId = Annotated[str, typer.Argument(help="The channel id (from `notify list`).")]


def _events(events: str | None) -> list[str] | None:
    return None if events is None else events.split(",")


def _echo(view: core.ChannelView, json_out: bool) -> None:
    if json_out:
        print_json(view.model_dump(mode="json"))
    else:
        asked = " (only when asked: submit --notify-on-finish)" if view.only_when_asked else ""
        typer.echo(f"channel {view.id}: {view.kind} {view.target} ({view.format}) for {','.join(view.events)}{asked}")


@notify_app.command("add-webhook")
def add_webhook_command(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL (kept encrypted; shown as its host only).")],
    fmt: Annotated[str, typer.Option("--format", help="json (ours) or slack (an incoming webhook).")] = "json",
    events: EventsOpt = None,
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send the tenant's notifications to a webhook (admin). The first one makes the signing secret: copy it now."""
    view, made = core.add_webhook(acting(as_user, tenant), url, fmt=fmt, events=_events(events))
    _echo(view, json_out)
    if made is not None:
        typer.echo(
            "the tenant's webhook signing secret follows, shown this once (`notify rotate-secret` draws another)",
            err=True,
        )
        typer.echo(made)


@notify_app.command("add-email")
def add_email_command(
    address: Annotated[str, typer.Argument(help="One email address, e.g. approvers@example.com.")],
    events: EventsOpt = None,
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Email the tenant's notifications to an address (admin), through OPSC_SMTP_HOST."""
    _echo(core.add_email(acting(as_user, tenant), address, events=_events(events)), json_out)


@notify_app.command("subscribe")
def subscribe_command(
    address: Annotated[str, typer.Argument(help="Your email address.")],
    only_when_asked: Annotated[
        bool,
        typer.Option(
            "--only-when-asked", help="Only for executions submitted with --notify-on-finish, not every one of yours."
        ),
    ] = False,
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Opt in: be emailed when an execution you requested finishes (any member; `notify remove ID` opts out)."""
    _echo(core.subscribe_email(acting(as_user, tenant), address, only_when_asked=only_when_asked), json_out)


@notify_app.command("list")
def list_command(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """The tenant's channels and opt-ins (admin), or your own opt-ins."""
    rows = core.list_channels(acting(as_user, tenant))
    if json_out:
        print_json({"channels": [r.model_dump(mode="json") for r in rows]})
        return
    if not rows:
        typer.echo("no notification channels")
        return
    typer.echo(
        table(
            ["ID", "KIND", "TARGET", "FORMAT", "EVENTS", "OWNER", "CREATED"],
            (
                [r.id, r.kind, r.target, r.format, ",".join(r.events), r.owner or "", fmt_time(r.created_at)]
                for r in rows
            ),
        )
    )


@notify_app.command("remove")
def remove_command(channel_id: ChannelId, as_user: AsUser = None, tenant: TenantOpt = None) -> None:
    """Remove a channel (admin, or your own opt-in); what it had not delivered yet goes with it."""
    core.remove_channel(acting(as_user, tenant), channel_id)
    typer.echo(f"removed channel {channel_id}")


@notify_app.command("test")
def test_command(
    channel_id: ChannelId, as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False
) -> None:
    """Send a test notification to a channel now and say what came of it (exit 1 when not delivered)."""
    result = core.test_channel(acting(as_user, tenant), channel_id)
    if json_out:
        print_json(result.model_dump(mode="json"))
    else:
        typer.echo(f"{'delivered' if result.delivered else 'NOT delivered'}: {result.detail}")
    if not result.delivered:
        raise typer.Exit(1)


@notify_app.command("rotate-secret")
def rotate_secret_command(as_user: AsUser = None, tenant: TenantOpt = None) -> None:
    """Draw a new webhook signing secret for the tenant (admin) and print it once; receivers need the new one."""
    value = core.rotate_signing_secret(acting(as_user, tenant))
    typer.echo("the new signing secret follows, shown this once", err=True)
    typer.echo(value)
