"""``opsconductor locks``: who holds which asset lock since when, and who waits."""

from __future__ import annotations

import typer

import core
from ui.cli.options import AsUser, JsonOpt, TenantOpt, acting
from ui.cli.output import fmt_time, print_json, table


def locks_command(as_user: AsUser = None, tenant: TenantOpt = None, json_out: JsonOpt = False) -> None:
    """The tenant's held asset locks: holder, since, expiry, fencing token, waiters."""
    rows = core.list_locks(acting(as_user, tenant))
    if json_out:
        print_json({"locks": [r.model_dump(mode="json") for r in rows]})
        return
    if not rows:
        typer.echo("no asset is locked")
        return
    typer.echo(
        table(
            ["ASSET", "HELD BY", "EXECUTION", "SINCE", "EXPIRES", "TOKEN", "WAITERS"],
            (
                [
                    r.asset,
                    r.execution_id,
                    r.execution_name,
                    fmt_time(r.acquired_at),
                    fmt_time(r.expires_at),
                    r.fencing_token,
                    r.waiters,
                ]
                for r in rows
            ),
        )
    )
