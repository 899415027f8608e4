"""``opsconductor runbooks``: the tenant's runbook library, owned and versioned (issue 13 item 5).

The level printed is the one the server derives from a runbook's steps, never its description's claim.
Changing or deleting someone else's runbook is refused (exit 3) unless you are a tenant admin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting, command_group, read_bounded
from ui.cli.output import as_json, fmt_time, print_json, table, terminal_safe

runbooks_app = command_group("The runbook library: list, versions, save, delete.")
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The runbook's name.")]


@runbooks_app.command("list")
def runbooks_list(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """List the tenant's runbooks with the level derived from their steps, owner and version."""
    rows = core.list_runbooks(acting(as_user, tenant))
    if json_out:
        print_json({"runbooks": [as_json(r) for r in rows]})
        return
    if not rows:
        typer.echo("no runbooks")
        return
    typer.echo(
        table(
            ["NAME", "LEVEL", "CLASS", "PUBLISHED", "VERSION", "OWNER", "UPDATED BY", "DESCRIPTION"],
            (
                [
                    r.name,
                    "invalid" if r.approval_level is None else r.approval_level,
                    r.action_class,
                    "yes" if r.published else "no",
                    r.version,
                    r.owner or "(admins)",
                    r.updated_by,
                    r.description,
                ]
                for r in rows
            ),
        )
    )


@runbooks_app.command("versions")
def runbooks_versions(
    name: NameArg, as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False
) -> None:
    """Every saved version of a runbook, newest first (kept after a deletion)."""
    rows = core.list_runbook_versions(acting(as_user, tenant), name)
    if json_out:
        print_json({"versions": [as_json(r) for r in rows]})
        return
    typer.echo(
        table(
            ["VERSION", "BY", "AT", "HASH", "DESCRIPTION"],
            ([r.version, r.created_by, fmt_time(r.created_at), r.text_hash[:12], r.description] for r in rows),
        )
    )


@runbooks_app.command("save")
def runbooks_save(
    name: NameArg,
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan file (YAML or JSON).")],
    description: Annotated[str, typer.Option("--description", help="What it does (shown as text).")] = "",
    as_user: AsUser = None,
    tenant: TenantOpt = None,
) -> None:
    """Create a runbook (you own it) or change one (its owner or a tenant admin): a new version each time."""
    try:
        with plan_file.open("rb") as stream:
            text = read_bounded(stream, str(plan_file)).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise core.InvalidInput(f"cannot read {plan_file}: {exc}", path="PLAN") from exc
    view = core.save_runbook(acting(as_user, tenant), name, text, description=description)
    level = "invalid" if view.approval_level is None else f"level {view.approval_level} ({view.action_class})"
    typer.echo(terminal_safe(f"runbook {view.name}: version {view.version}, {level}, owner {view.owner or '(admins)'}"))


@runbooks_app.command("delete")
def runbooks_delete(name: NameArg, as_user: AsUser = None, tenant: TenantOpt = None) -> None:
    """Delete a runbook (its owner or a tenant admin; a published one: admins only). Its versions stay listed."""
    core.delete_runbook(acting(as_user, tenant), name)
    typer.echo(terminal_safe(f"runbook {name} deleted"))
