"""Administration commands of the CLI: ``users``, ``assets``, ``secrets``,
``tenant show|mode|priority-cap|fanout-approval``, ``policies``
(the read-only command prefixes are in ui/cli/read_only.py).

Reading lists needs a role in the tenant; changing anything needs ``admin`` (core checks, we only ask).
Secret values are read from stdin only and are never printed, echoed or logged.
"""

from __future__ import annotations

from typing import Annotated

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, command_group
from ui.cli.output import as_json, fmt_time, print_json, table

users_app = command_group("Users and their roles in a tenant.")
assets_app = command_group("The tenant's inventory of target assets.")
secrets_app = command_group("The tenant's secrets (values go in on stdin and never come out).")
tenant_app = command_group("Tenant settings: the dark-launch mode, the priority cap and the fan-out threshold.")
policies_app = command_group("The timeout policy matrix (DESIGN §6).")


# users ---------------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """List the tenant's users and roles."""
    members = core.list_members(acting(as_user, tenant))
    if json_out:
        print_json({"users": [as_json(m) for m in members]})
        return
    typer.echo(
        table(
            ["USER", "ROLE", "MAX CLASS", "DISABLED"],
            ([m.username, m.role, m.max_action_class, "yes" if m.disabled else "no"] for m in members),
        )
    )


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Username (created if new).")],
    role: Annotated[core.Role, typer.Option("--role", help="Role in the tenant.")],
    as_user: AsUser = None,
    max_action_class: Annotated[
        core.ActionClass | None, typer.Option("--max-action-class", help="Highest action class an operator may submit.")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Give a user a role in the tenant (admin)."""
    member = core.set_member(acting(as_user, tenant), name, role, max_action_class=max_action_class)
    limit = f" (up to {member.max_action_class})" if member.max_action_class else ""
    typer.echo(f"{member.username} is {member.role}{limit}")


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="Username.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Take away a user's role in the tenant (admin)."""
    actor = acting(as_user, tenant)
    core.remove_member(actor, name)
    typer.echo(f"{name} no longer has a role in {actor.tenant}")


@users_app.command("password")
def users_password(
    name: Annotated[str, typer.Argument(help="Username.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Set a user's console password (admin, or the user themselves); read from stdin, never an argument."""
    core.set_password(acting(as_user, tenant), name, read_secret_value("password"))
    typer.echo(f"password of {name} set; any throttle is lifted, older sessions and tokens are signed out")


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="Username.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Disable a user's account: sign-in, tokens and roles stop at once (admin; a user of this tenant only)."""
    core.set_user_disabled(acting(as_user, tenant), name, True)
    typer.echo(f"{name} is disabled")


@users_app.command("enable")
def users_enable(
    name: Annotated[str, typer.Argument(help="Username.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Enable a disabled account again (admin; a user of this tenant only)."""
    core.set_user_disabled(acting(as_user, tenant), name, False)
    typer.echo(f"{name} is enabled")


# assets --------------------------------------------------------------------------------------------


@assets_app.command("list")
def assets_list(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """List the tenant's assets."""
    assets = core.list_assets(acting(as_user, tenant))
    if json_out:
        print_json({"assets": [as_json(a) for a in assets]})
        return
    typer.echo(
        table(
            ["NAME", "CONNECTION", "HOST", "PORT", "BASE URL", "TAGS", "CREDENTIAL"],
            ([a.name, a.connection, a.host, a.port, a.base_url, ",".join(a.tags), a.credential_ref] for a in assets),
        )
    )


@assets_app.command("add")
def assets_add(
    name: Annotated[str, typer.Argument(help="Asset name, unique in the tenant.")],
    connection: Annotated[core.Connection, typer.Option("--connection", help="How steps reach it.")],
    as_user: AsUser = None,
    host: Annotated[str | None, typer.Option("--host", help="Host name or address (ssh).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (ssh).")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Base URL (http).")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    credential_ref: Annotated[
        str | None, typer.Option("--credential-ref", help="Name of the secret holding its credential.")
    ] = None,
    known_host_key: Annotated[
        str | None,
        typer.Option("--known-host-key", metavar="KEY", help="ssh: the host's public key line ('ssh-ed25519 AAAA…')."),
    ] = None,
    skip_host_key: Annotated[
        bool, typer.Option("--skip-host-key", help="ssh, labs only: connect without a known host key.")
    ] = False,
    tenant: TenantOpt = None,
) -> None:
    """Add an asset to the tenant's inventory (admin)."""
    asset = core.add_asset(
        acting(as_user, tenant),
        name,
        connection,
        host=host,
        port=port,
        base_url=base_url,
        tags=tags or (),
        credential_ref=credential_ref,
        known_host_key=known_host_key,
        skip_host_key=skip_host_key,
    )
    typer.echo(f"asset {asset.name} added ({asset.connection})")
    if asset.skip_host_key and not asset.has_known_host_key:
        typer.echo("warning: ssh steps on it will not check the host key (labs only)", err=True)


@assets_app.command("remove")
def assets_remove(
    name: Annotated[str, typer.Argument(help="Asset name.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Remove an asset no execution refers to (admin)."""
    core.remove_asset(acting(as_user, tenant), name)
    typer.echo(f"asset {name} removed")


# secrets -------------------------------------------------------------------------------------------


@secrets_app.command("list")
def secrets_list(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """List secret names and versions (admin; values are never shown)."""
    secrets = core.list_secrets(acting(as_user, tenant))
    if json_out:
        print_json({"secrets": [as_json(s) for s in secrets]})
        return
    typer.echo(
        table(
            ["NAME", "VERSION", "UPDATED", "ASSETS"],
            (
                [s.name, s.version, fmt_time(s.updated_at), ",".join(s.allowed_assets) if s.allowed_assets else "any"]
                for s in secrets
            ),
        )
    )


AssetsOpt = Annotated[
    list[str] | None, typer.Option("--asset", help="Limit the secret to this asset; repeat for more.")
]


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="Secret name.")],
    as_user: AsUser = None,
    assets: AssetsOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Create or rotate a secret; the value is read from stdin (never an argument: it would land in shell history).

    Without --asset a new secret may be used on any asset, and a rotated one keeps its limit.
    """
    actor = acting(as_user, tenant)
    info = core.set_secret(actor, name, read_secret_value(), assets=assets or None)
    typer.echo(f"secret {info.name} set (version {info.version}){_limit_text(info.allowed_assets)}")


@secrets_app.command("limit")
def secrets_limit(
    name: Annotated[str, typer.Argument(help="Secret name.")],
    as_user: AsUser = None,
    assets: AssetsOpt = None,
    any_asset: Annotated[bool, typer.Option("--any", help="Lift the limit: any asset may use it.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Limit a secret to the given assets, or lift the limit with --any (admin)."""
    if bool(assets) == any_asset:
        raise core.InvalidInput("give --asset (one or more) or --any", path="assets")
    info = core.limit_secret(acting(as_user, tenant), name, None if any_asset else assets)
    typer.echo(f"secret {info.name}{_limit_text(info.allowed_assets) or ': any asset'}")


def _limit_text(assets: list[str] | None) -> str:
    return f", only on {', '.join(assets)}" if assets else ""


def read_secret_value(what: str = "secret value") -> str:
    """The value from stdin: a hidden prompt on a terminal, else all of stdin minus one trailing newline."""
    stdin = typer.get_text_stream("stdin")
    if stdin.isatty():
        value = str(typer.prompt("value", hide_input=True, confirmation_prompt=True))
    else:
        value = stdin.read()
        # `echo value | …` adds one newline that is not part of the secret; keep any others.
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
    if not value:
        raise core.InvalidInput(f"the {what} is empty; pipe it on stdin", path="value")
    return value


@secrets_app.command("delete")
def secrets_delete(
    name: Annotated[str, typer.Argument(help="Secret name.")], as_user: AsUser = None, tenant: TenantOpt = None
) -> None:
    """Delete a secret (admin)."""
    core.delete_secret(acting(as_user, tenant), name)
    typer.echo(f"secret {name} deleted")


# tenant --------------------------------------------------------------------------------------------


TenantArg = Annotated[str, typer.Argument(help="Tenant name.")]


def _settings_text(settings: core.TenantSettingsView) -> str:
    return (
        f"tenant {settings.tenant}: mode {settings.mode}, live up to level {settings.max_live_level}, "
        f"above it {settings.over_level}; plans may request priority 0-{settings.max_priority}; "
        + (
            f"a fan-out to {settings.fanout_approval_targets}+ targets needs a level more"
            if settings.fanout_approval_targets
            else "a fan-out's size never raises its level"
        )
    )


def _print_settings(settings: core.TenantSettingsView, json_out: bool) -> None:
    if json_out:
        print_json(as_json(settings))
    else:
        typer.echo(_settings_text(settings))


@tenant_app.command("show")
def tenant_show(tenant: TenantArg, as_user: AsUser = None, json_out: JsonOpt = False) -> None:
    """Show a tenant's settings: the mode, its live level and the priority cap (any role)."""
    _print_settings(core.get_tenant_settings(acting(as_user, tenant)), json_out)


@tenant_app.command("mode")
def tenant_mode(
    tenant: TenantArg,
    mode: Annotated[core.TenantMode, typer.Argument(help="off: refuse new work; dry_run: simulate; live: run.")],
    as_user: AsUser = None,
    max_live_level: Annotated[
        int | None, typer.Option("--max-live-level", help="Highest approval level that runs live (0-3).")
    ] = None,
    over_level: Annotated[
        core.OverLevelBehaviour | None,
        typer.Option("--over-level", help="Above that level: run as dry_run, or refuse."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Switch a tenant's execution mode (admin)."""
    settings = core.set_tenant_mode(acting(as_user, tenant), mode, max_live_level=max_live_level, over_level=over_level)
    _print_settings(settings, json_out)


@tenant_app.command("priority-cap")
def tenant_priority_cap(
    tenant: TenantArg,
    # The bound is core.MAX_PRIORITY, written out: reading it here would load settings for every --help
    # (issue 14, fast start); a CLI test holds the two together.
    cap: Annotated[int, typer.Argument(metavar="N", help="Highest priority a plan of the tenant may request (0-9).")],
    as_user: AsUser = None,
    json_out: JsonOpt = False,
) -> None:
    """Set the tenant's priority cap: the highest priority a plan may request (admin; plans already in keep theirs)."""
    # The range is core's to check (one message, path max_priority), not click's.
    _print_settings(core.set_priority_cap(acting(as_user, tenant), cap), json_out)


# policies ------------------------------------------------------------------------------------------


@policies_app.command("list")
def policies_list(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """Show the timeout policy matrix (seconds)."""
    policies = core.list_policies(acting(as_user, tenant))
    if json_out:
        print_json({"policies": [as_json(p) for p in policies]})
        return
    typer.echo(
        table(
            ["SLA", "ACTION", "STEP", "EXECUTION", "LEASE", "APPROVAL", "ATTEMPTS"],
            (
                [p.sla_class, p.action_class, p.step_s, p.execution_s, p.lease_s, p.approval_s, p.max_attempts]
                for p in policies
            ),
        )
    )


@tenant_app.command("fanout-approval")
def tenant_fanout_approval(
    tenant: TenantArg,
    targets: Annotated[
        int, typer.Argument(metavar="N", help="From this many targets a fan-out needs a level more (0: never; 0-200).")
    ],
    as_user: AsUser = None,
    json_out: JsonOpt = False,
) -> None:
    """Set the fan-out blast-radius threshold: plans fanning out to N targets or more need one approval level more
    (admin; executions already in keep their level)."""
    _print_settings(core.set_fanout_approval_targets(acting(as_user, tenant), targets), json_out)
