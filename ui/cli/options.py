"""The options every CLI command shares (``--as``, ``--tenant``, ``--json``) and how they become a Principal."""

from __future__ import annotations

from typing import Annotated

import typer

from core import Principal, principal, principal_for

AsUser = Annotated[str, typer.Option("--as", metavar="USER", help="Act as this user.")]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", metavar="TENANT", help="Tenant name; needed only when the user belongs to several."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def acting(username: str, tenant: str | None) -> Principal:
    """The principal for ``username`` in ``tenant`` (or in their only tenant)."""
    return principal(username, tenant)


def acting_on(username: str, execution_id: str, tenant: str | None) -> Principal:
    """The principal acting on an execution: in the execution's tenant unless ``--tenant`` names one."""
    if tenant is not None:
        return principal(username, tenant)
    return principal_for(username, execution_id)
