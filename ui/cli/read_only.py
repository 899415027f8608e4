"""``opsconductor commands``: the argv prefixes an admin declared read-only for the tenant (DESIGN §13).

A ``shell`` step whose argv starts with one of them, word for word, is ``read``: it runs at level 0, without
approval. Everything else a ``shell`` step runs is ``modify`` at least.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, command_group
from ui.cli.output import as_json, fmt_time, print_json, table

commands_app = command_group("Read-only command prefixes: shell steps starting with one run without approval.")


@commands_app.command("list")
def commands_list(as_user: AsUser, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """List the tenant's read-only prefixes."""
    rows = core.list_read_only_commands(acting(as_user, tenant))
    if json_out:
        print_json({"commands": [as_json(r) for r in rows]})
        return
    if not rows:
        typer.echo("no read-only commands: every shell step needs approval")
        return
    typer.echo(
        table(
            ["ID", "PREFIX", "BY", "SINCE"],
            ([r.id, shlex.join(r.argv), r.created_by, fmt_time(r.created_at)] for r in rows),
        )
    )


# Words like `-h` are the prefix's, not options of ours: unknown options pass through as arguments.
@commands_app.command("allow", context_settings={"ignore_unknown_options": True})
def commands_allow(
    argv: Annotated[list[str], typer.Argument(metavar="ARGV...", help="The prefix's words, e.g. systemctl status.")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
) -> None:
    """Declare an argv prefix read-only (admin). Put the words after `--`: `commands allow --as admin -- df -h`.

    Matched word by word: `df` covers `df -h`, not `dfx` nor `sh -c df`. An interpreter (sh, bash, python3)
    runs whatever it is given: declare one only if every script it could run is a read.
    """
    view = core.add_read_only_command(acting(as_user, tenant), argv)
    typer.echo(f"read-only: {shlex.join(view.argv)} (id {view.id})")


@commands_app.command("remove")
def commands_remove(
    command_id: Annotated[str, typer.Argument(metavar="ID", help="Its id (see `commands list`).")],
    as_user: AsUser = None,
    tenant: TenantOpt = None,
) -> None:
    """Withdraw a read-only prefix (admin): such steps need approval again."""
    view = core.remove_read_only_command(acting(as_user, tenant), command_id)
    typer.echo(f"no longer read-only: {shlex.join(view.argv)}")
