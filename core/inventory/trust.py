"""A tenant's declarations about risk (DESIGN §13): its read-only argv prefixes, and the ``Trust`` a submission
is derived under (those prefixes plus the steps of its published runbooks).

Helpers take the caller's session; the admin use cases are in core/usecases/read_only.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import bindparam, literal, null, union_all
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.errors import Conflict, InvalidInput, NotFound
from core.inventory import runbooks
from core.risk import Trust
from core.schemas import ReadOnlyCommandView
from db.tables import ReadOnlyCommand, Runbook

MAX_WORDS = 32
MAX_WORD_CHARS = 256


def tenant_trust(session: Session, tenant_id: str) -> Trust:
    """What the tenant's admins vouched for, as of now (read in the submitting transaction)."""
    prefixes: list[list[str]] = []
    published: list[tuple[str, str | None]] = []
    for kind, text, published_hash in session.execute(_DECLARATIONS, {"tenant_id": tenant_id}):
        if kind == _PREFIX:
            prefixes.append(json.loads(text))
        else:
            published.append((text, published_hash))
    return Trust.of(prefixes, runbooks.vouched_steps(published))


# Every submit reads both kinds of declaration: one statement, built once, on the tables (SQLAlchemy Core
# skips the ORM's per-statement work).
_PREFIX, _RUNBOOK = "prefix", "runbook"
_COMMANDS = ReadOnlyCommand.__table__  # type: ignore[attr-defined]
_RUNBOOKS = Runbook.__table__  # type: ignore[attr-defined]
_DECLARATIONS = union_all(
    select_columns(literal(_PREFIX), _COMMANDS.c.argv_json, null()).where(
        _COMMANDS.c.tenant_id == bindparam("tenant_id")
    ),
    select_columns(literal(_RUNBOOK), _RUNBOOKS.c.plan_text, _RUNBOOKS.c.published_hash).where(
        _RUNBOOKS.c.tenant_id == bindparam("tenant_id"), _RUNBOOKS.c.published_hash.is_not(None)
    ),
)


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """The prefix as stored: its words as given (no splitting, no joining, no stripping).

    Raises:
        InvalidInput: empty, too long, or a word that is empty or holds NUL.
    """
    words = list(argv)
    if not words:
        raise InvalidInput("name at least one word, e.g. [df] or [systemctl, status]", path="argv")
    if len(words) > MAX_WORDS:
        raise InvalidInput(f"at most {MAX_WORDS} words", path="argv")
    for i, word in enumerate(words):
        if not isinstance(word, str) or not word or "\x00" in word or len(word) > MAX_WORD_CHARS:
            raise InvalidInput(f"each word is 1-{MAX_WORD_CHARS} characters without NUL", path=f"argv[{i}]")
    return words


def list_commands(session: Session, tenant_id: str) -> list[ReadOnlyCommandView]:
    """The tenant's read-only prefixes, in the order they were declared."""
    rows = session.exec(
        select(ReadOnlyCommand)
        .where(ReadOnlyCommand.tenant_id == tenant_id)
        .order_by(col(ReadOnlyCommand.created_at), col(ReadOnlyCommand.id))
    ).all()
    return [_view(r) for r in rows]


def add_command(session: Session, tenant_id: str, argv: Sequence[str], *, actor: str) -> ReadOnlyCommandView:
    """Declare ``argv`` a read-only prefix for the tenant.

    Raises:
        InvalidInput: see ``normalise_argv``. Conflict: the tenant already has this prefix.
    """
    words = normalise_argv(argv)
    text = json.dumps(words, separators=(",", ":"), ensure_ascii=False)
    if session.exec(
        select(ReadOnlyCommand.id).where(ReadOnlyCommand.tenant_id == tenant_id, ReadOnlyCommand.argv_json == text)
    ).first():
        raise Conflict(f"{words} is already declared read-only")
    row = ReadOnlyCommand(tenant_id=tenant_id, argv_json=text, created_by=actor[:64])
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent admin declared the same prefix
        raise Conflict(f"{words} is already declared read-only") from exc
    return _view(row)


def remove_command(session: Session, tenant_id: str, command_id: str) -> ReadOnlyCommandView:
    """Withdraw a declaration (by id, within the tenant). Raises NotFound."""
    row = session.get(ReadOnlyCommand, command_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound("read-only command", command_id)
    view = _view(row)
    session.delete(row)
    session.flush()
    return view


def _view(row: ReadOnlyCommand) -> ReadOnlyCommandView:
    return ReadOnlyCommandView(
        id=row.id, argv=json.loads(row.argv_json), created_by=row.created_by, created_at=row.created_at
    )
