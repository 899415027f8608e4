"""The one-shot reader: who is acting and one execution in full, over a DB-API connection, without the ORM.

For the CLI's ``show`` (issue 15: importing SQLAlchemy, SQLModel and the tables costs more CPU than the rest
of the command). The same rules as the ORM path decide, fed by other rows: identity by
core/identity/proofs.py, token_rules.py and permissions.py (the ORM path: principals.py, tokens.py,
rbac.py), the view by core/reads/execution_view.py (the ORM path: executions.py). The queries are
core/reads/direct_sql.py's, on one read-only transaction.

``DirectReadUnavailable`` (from ``direct_reader`` or any method) means: read through the ORM instead
(``core.get_execution``). It is raised for a database this reader cannot open (db/dbapi.py), for any driver
error, and when a token's last use is due to be recorded (once a minute, a write; the ORM path makes it).
Errors a user should read (``PermissionDenied``, ``NotFound``, ``InvalidInput``) are the ORM path's, with the
same messages: tests/integration/test_direct_show.py holds both paths to that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import NotFound
from core.identity.permissions import Permission, check_role, check_scope
from core.identity.proofs import (
    CLAIMED,
    check_credentials,
    enabled_user,
    issue,
    owning_membership,
    require_claims_accepted,
    require_genuine,
    sole_membership,
)
from core.identity.token_rules import last_use_due, lookup_hash, token_principal
from core.reads.attempt_outputs import join_attempt_outputs
from core.reads.direct_sql import SqlRows
from core.reads.execution_view import build_view
from core.schemas import AttemptOutputView, ExecutionView, Principal
from db.clock import utcnow
from db.dbapi import DirectReadUnavailable, read_only
from db.settings import get_settings


class DirectReader:
    """Principals and one execution's view from ``SqlRows``: ``principal_from_token``, ``principal`` and
    ``principal_for`` as core's (the CLI's ``acting_on`` takes either), and ``get_execution``."""

    def __init__(self, rows: SqlRows) -> None:
        self._rows = rows

    def principal_from_token(self, value: str) -> Principal:
        """As ``core.principal_from_token``; DirectReadUnavailable when the token's last use must be written."""
        row = self._rows.token_by_hash(lookup_hash(value))
        user = self._rows.user(row.user_id) if row is not None else None
        membership = self._rows.membership(row.tenant_id, row.user_id) if row is not None else None
        tenant = self._rows.tenant(row.tenant_id) if row is not None else None
        now = utcnow()
        who = token_principal(row, user, membership, tenant, now)
        if row is not None and last_use_due(row, now):
            raise DirectReadUnavailable("the token's last use is due to be recorded")
        return who

    def principal(self, username: str, tenant: str | None = None) -> Principal:
        """As ``core.principal``: a claimed name, on a demo / single-operator box only."""
        require_claims_accepted(self._rows.claims_accepted())
        user = enabled_user(username, self._rows.user_by_name(username))
        membership, tenant_row = sole_membership(username, tenant, self._rows.memberships(user.id, tenant))
        return issue(user, membership, tenant_row, auth=CLAIMED)

    def principal_for(self, username: str, execution_id: str) -> Principal:
        """As ``core.principal_for``: the claimed name in the tenant that owns ``execution_id``."""
        require_claims_accepted(self._rows.claims_accepted())
        user = enabled_user(username, self._rows.user_by_name(username))
        membership, tenant_row = owning_membership(execution_id, self._rows.membership_owning(user.id, execution_id))
        return issue(user, membership, tenant_row, auth=CLAIMED)

    def get_execution(self, principal: Principal, execution_id: str) -> ExecutionView:
        """As ``core.get_execution``: one execution of the principal's tenant, in full.

        Raises:
            NotFound: no such execution in this tenant. PermissionDenied: as ``rbac.require(READ)``.
        """
        self._require(principal, Permission.READ)
        execution = self._rows.execution(principal.tenant_id, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        return build_view(self._rows, execution)

    def list_attempt_outputs(self, principal: Principal, execution_id: str) -> list[AttemptOutputView]:
        """As ``core.list_attempt_outputs``: each attempt of each step that has output, by step, run, attempt.

        Raises:
            NotFound: no such execution in this tenant. PermissionDenied: as ``rbac.require(READ)``.
        """
        self._require(principal, Permission.READ)
        execution = self._rows.execution(principal.tenant_id, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        steps = [(s.step_index, s.attempts, s.output) for s in self._rows.steps(execution)]
        return join_attempt_outputs(steps, self._rows.output_chunks(execution), execution.attempt)

    def _require(self, principal: Principal, permission: Permission) -> None:
        """``rbac.require``'s checks, in its order, on this connection's rows."""
        require_genuine(principal)
        user = self._rows.user(principal.user_id)
        token = self._rows.token(principal.token_id) if principal.token_id else None
        check_credentials(principal, user, token, utcnow())
        check_scope(principal, permission)
        check_role(principal, self._rows.current_membership(principal.tenant_id, principal.user_id), permission)


@contextmanager
def direct_reader() -> Iterator[DirectReader]:
    """A reader on the configured database, for one command; its connection is closed after.

    Raises:
        DirectReadUnavailable: this database cannot be read directly here (read it through core's functions).
    """
    with read_only(get_settings().database_url) as connection:
        yield DirectReader(SqlRows(connection))
