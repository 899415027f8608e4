"""``opsconductor tokens``: API tokens (README Security model): create (the value printed once, to stdout
only), list (never values), revoke.
"""

from __future__ import annotations

from typing import Annotated

import typer

import core
from ui.cli.ops import parse_duration
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, command_group, read_password
from ui.cli.output import fmt_time, print_json, table

tokens_app = command_group("API tokens: how scripts and the CLI prove who they are.")


@tokens_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="A name to tell the token apart (e.g. the script using it).")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: read, submit, approve, admin.")],
    expires: Annotated[str, typer.Option("--expires", metavar="AGE", help="Lifetime: 30d, 12h, 90m.")] = "30d",
    for_user: Annotated[
        str | None, typer.Option("--for", metavar="USER", help="A service account of the tenant (admin).")
    ] = None,
    as_user: AsUser = None,
    tenant: TenantOpt = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Sign in as --as USER with the password read from stdin.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a token and print its value once, on stdout (only its hash is stored: copy it now).

    Your first token: ``tokens create laptop --scopes read,submit --as you --password-stdin``.
    """
    lifetime = parse_duration(expires, option="--expires")
    if password_stdin:
        if as_user is None:
            raise core.InvalidInput("--password-stdin signs in as --as USER; name the user", path="--as")
        actor = core.authenticate(as_user, read_password(), tenant)
    else:
        actor = acting(as_user, tenant)
    view, value = core.create_token(
        actor,
        name=name,
        scopes=scopes,
        expires_in_s=int(lifetime.total_seconds()),
        for_user=for_user,
    )
    if json_out:
        print_json({**view.model_dump(mode="json"), "token": value})
        return
    typer.echo(
        f"token {view.name} ({view.id}) for {view.username} in {view.tenant}: scopes {','.join(view.scopes)}, "
        f"expires {fmt_time(view.expires_at)}; the value follows, shown this once",
        err=True,
    )
    typer.echo(value)


@tokens_app.command("list")
def list_command(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """Your tokens (an admin: the tenant's), newest first; never their values."""
    rows = core.list_tokens(acting(as_user, tenant))
    if json_out:
        print_json({"tokens": [r.model_dump(mode="json") for r in rows]})
        return
    if not rows:
        typer.echo("no tokens")
        return
    typer.echo(
        table(
            ["ID", "NAME", "USER", "SCOPES", "PREFIX", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
            (
                [
                    r.id,
                    r.name,
                    r.username,
                    ",".join(r.scopes),
                    r.prefix,
                    fmt_time(r.created_at),
                    fmt_time(r.expires_at),
                    fmt_time(r.last_used_at),
                    fmt_time(r.revoked_at),
                ]
                for r in rows
            ),
        )
    )


@tokens_app.command("revoke")
def revoke_command(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (or its prefix).")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
) -> None:
    """Revoke a token at once (yours; an admin: any of the tenant's)."""
    view = core.revoke_token(acting(as_user, tenant), token_id)
    typer.echo(f"token {view.name} ({view.id}) of {view.username} revoked")
