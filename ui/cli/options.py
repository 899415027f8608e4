"""The options every CLI command shares (``--as``, ``--tenant``, ``--json``) and how the caller's identity
becomes a Principal (README Security model).

Identity, in this order: ``--token-file PATH`` (a global option; the file must not be readable or writable
by group or others), else ``OPSC_TOKEN``: the token's user and tenant, and ``--as`` / ``--tenant`` must be
absent or agree with it. Without a token, ``--as USER`` is a claimed name, which only a demo /
single-operator installation accepts. Without either, every command that acts exits 3 with a one-line hint.
``tokens create --as USER --password-stdin`` is the way to a first token of your own: a password sign-in.
"""

from __future__ import annotations

import os
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, BinaryIO, Protocol

import typer

import core

TOKEN_ENV = "OPSC_TOKEN"  # noqa: S105  (the variable's name)

AsUser = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="USER",
        help="Act as this user: a claimed name (demo / single-operator boxes only), or the token's own name.",
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", metavar="TENANT", help="Tenant name; needed only when the user belongs to several."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ExecutionId = Annotated[
    str, typer.Argument(metavar="ID", help="Execution id, or a unique prefix of it (at least 6 characters).")
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        metavar="PATH",
        help=f"Read the API token from this file (mode 0600); default: ${TOKEN_ENV}.",
        dir_okay=False,
    ),
]


def command_group(help_text: str) -> typer.Typer:
    """A group of subcommands (``users``, ``dlq``, …) with the CLI's common settings.

    Plain help and usage errors (click's), not rich's: rendering through rich imports rich, markdown-it
    and pygments, which cost more CPU than the rest of ``--help`` together (issue 14, fast start).
    """
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


# The root command sets it per invocation (the CLI runs once per process; tests invoke it many times).
_token_file: ContextVar[Path | None] = ContextVar("opsconductor_token_file", default=None)


def use_token_file(path: Path | None) -> None:
    """Remember ``--token-file`` for this invocation (read only when a command needs an identity)."""
    _token_file.set(path)


def read_token_file(path: Path) -> str:
    """The token in ``path``. Refuses a file group or others may read or write (like ssh with a key).

    Raises:
        PermissionDenied: the file's mode lets others in. InvalidInput: missing, unreadable or empty.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise core.InvalidInput(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}", path="--token-file"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise core.PermissionDenied(
            f"{path} is open to others (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}` and try again"
        )
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise core.InvalidInput(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}", path="--token-file"
        ) from None
    if not value:
        raise core.InvalidInput(f"{path} is empty", path="--token-file")
    return value


def token_value() -> str | None:
    """The API token of this invocation: ``--token-file``, else ``$OPSC_TOKEN``, else None."""
    path = _token_file.get()
    if path is not None:
        return read_token_file(path)
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def read_password() -> str:
    """A password from stdin (one line; the trailing newline is not part of it)."""
    value = typer.get_text_stream("stdin").readline().rstrip("\r\n")
    if not value:
        raise core.InvalidInput("no password on stdin", path="--password-stdin")
    return value


# What the CLI reads of a plan or an inputs file at most: 4x the largest plan core accepts (256 KiB), so core's
# own limits answer for every file they could accept, and /dev/zero or a 10 GB file is refused, not read whole.
READ_LIMIT_BYTES = 1024 * 1024


def read_bounded(stream: BinaryIO, what: str) -> bytes:
    """``stream``'s bytes, refused past ``READ_LIMIT_BYTES`` (read no further).

    Raises:
        InvalidInput: ``what`` is larger than the limit.
    """
    data = stream.read(READ_LIMIT_BYTES + 1)
    if len(data) > READ_LIMIT_BYTES:
        raise core.InvalidInput(f"{what} is larger than {READ_LIMIT_BYTES} bytes (read no further)")
    return data


class Issuer(Protocol):
    """Who turns a token or a claimed name into a Principal: ``core`` itself (through the ORM), or the one-shot
    reader of ``show`` (``core.DirectReader``), which applies the same rules over a DB-API connection."""

    def principal_from_token(self, value: str) -> core.Principal: ...

    def principal(self, username: str, tenant: str | None = None) -> core.Principal: ...

    def principal_for(self, username: str, execution_id: str) -> core.Principal: ...


def _from_token(issuer: Issuer, value: str, username: str | None, tenant: str | None) -> core.Principal:
    who = issuer.principal_from_token(value)
    if username is not None and username != who.username:
        raise core.PermissionDenied(f"--as {username} does not match the token, which is {who.username}'s")
    if tenant is not None and tenant != who.tenant:
        raise core.PermissionDenied(f"--tenant {tenant} does not match the token, which is for {who.tenant}")
    return who


def _no_identity() -> core.PermissionDenied:
    return core.PermissionDenied(f"no identity given: {core.IDENTITY_HINT}")


def acting(username: str | None, tenant: str | None) -> core.Principal:
    """The caller: the token's principal, or (demo boxes) the claimed ``username`` in ``tenant``.

    Raises:
        PermissionDenied: no identity, a refused token or claimed name, or ``--as``/``--tenant`` disagreeing
            with the token.
    """
    value = token_value()
    if value is not None:
        return _from_token(core, value, username, tenant)
    if username is None:
        raise _no_identity()
    return core.principal(username, tenant)


def acting_on(username: str | None, execution_id: str, tenant: str | None, *, issuer: Issuer = core) -> core.Principal:
    """The caller acting on an execution: the token's principal, or the claimed name in the execution's tenant.

    Args:
        issuer: who checks the token or the claimed name (default ``core``; ``show`` passes its direct reader).
    """
    value = token_value()
    if value is not None:
        return _from_token(issuer, value, username, tenant)
    if username is None:
        raise _no_identity()
    if tenant is not None:
        return issuer.principal(username, tenant)
    return issuer.principal_for(username, execution_id)


def acting_on_execution(username: str | None, ref: str, tenant: str | None) -> tuple[core.Principal, str]:
    """The caller acting on the execution ``ref`` names (its id, or a unique prefix of at least 6 characters),
    and that execution's full id.

    Raises:
        NotFound: no execution of the caller's tenant(s) starts with ``ref`` (another tenant's never counts).
        InvalidInput: ``ref`` is too short, or several executions start with it (listed).
        PermissionDenied: as ``acting_on``.
    """
    actor = acting_on(username, ref, tenant)
    return actor, core.resolve_execution_id(actor, ref)
