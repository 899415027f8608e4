"""The one-shot reader's SQL: every query ``show`` makes without the ORM, returning core/rows.py's records.

Over a DB-API connection (db/dbapi.py), for the CLI's ``show`` in well under 0.5 s of CPU (issue 15). The
records have the column names of db/tables.py, so the same pure rules take them as take an ORM row
(core/rows.py): identity (core/identity/proofs.py, token_rules.py, permissions.py), the plan review and the
view (core/reads/plan_review.py, execution_view.py). These queries only fetch: every decision is in those
rules. tests/integration/test_direct_show.py holds the view built from these rows equal to the ORM's, field
by field, on SQLite and PostgreSQL.

Each query is written once, with ``?`` placeholders; its text is put together from this module's column lists
and one ``?`` per value of an IN list, never from a value (hence ruff's S608 is off for this file). Rows that
belong to a tenant are read with the tenant in the WHERE clause (executions, steps, approvals, assets, a
membership), except a claimed name's own memberships, read by user to find the tenant it acts in (as
core/identity/principals.py does: only the user's tenants, so another tenant's execution is not found);
users, tenants, tokens (by their hash: a token names its tenant), the installation row and the timeout
policies belong to none.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from core.reads.plan_review import APPROVED_STATUSES
from core.rows import (
    ApprovalRecord,
    AssetRecord,
    ExecutionRecord,
    ExecutionRow,
    MembershipRecord,
    PolicyRecord,
    StepRecord,
    TenantRecord,
    TokenRecord,
    UserRecord,
)
from db.dbapi import ReadConnection, utc

_USER = "u.id, u.username, u.disabled, u.credentials_changed_at"
_TENANT = "t.id, t.name"
_MEMBERSHIP = "m.role, m.max_action_class"
_TOKEN = "k.id, k.user_id, k.tenant_id, k.scopes, k.created_at, k.expires_at, k.revoked_at, k.last_used_at"  # noqa: S105  (columns)
_EXECUTION = (
    "e.id, e.tenant_id, e.requested_by, e.name, e.description, e.plan_json, e.plan_hash, e.action_class, "
    "e.approval_level, e.sla_class, e.execution_mode, e.run_mode, e.continue_on_error, e.status, "
    "e.idempotency_key, e.attempt, e.error, e.approval_expires_at, e.cancel_requested_at, e.created_at, "
    "e.started_at, e.deadline_at, e.finished_at, e.rerun_of, e.rollback_status, e.priority"
)
_STEP = (
    "s.step_index, s.name, s.action, s.target_asset_id, s.target_name, s.action_class, s.params_json, "
    "s.timeout_s, s.status, s.attempts, s.output, s.error, s.started_at, s.finished_at, s.phase"
)
_APPROVAL = "a.decision, a.comment, a.plan_hash, a.step_index, a.created_at"
_ASSET = (
    "x.id, x.name, x.connection, x.host, x.port, x.base_url, x.tags_json, x.credential_ref, x.known_host_key, "
    "x.skip_host_key"
)


def _user(r: Sequence[Any]) -> UserRecord:
    return UserRecord(r[0], r[1], bool(r[2]), utc(r[3]))


def _tenant(r: Sequence[Any]) -> TenantRecord:
    return TenantRecord(r[0], r[1])


def _membership(r: Sequence[Any]) -> MembershipRecord:
    return MembershipRecord(r[0], r[1])


def _token(r: Sequence[Any]) -> TokenRecord:
    created, expires = utc(r[4]), utc(r[5])
    if created is None or expires is None:  # NOT NULL columns
        raise ValueError("api_tokens row without created_at or expires_at")
    return TokenRecord(r[0], r[1], r[2], r[3], created, expires, utc(r[6]), utc(r[7]))


def _execution(r: Sequence[Any]) -> ExecutionRecord:
    created = utc(r[19])
    if created is None:  # a NOT NULL column
        raise ValueError("executions row without created_at")
    return ExecutionRecord(
        id=r[0],
        tenant_id=r[1],
        requested_by=r[2],
        name=r[3],
        description=r[4],
        plan_json=r[5],
        plan_hash=r[6],
        action_class=r[7],
        approval_level=r[8],
        sla_class=r[9],
        execution_mode=r[10],
        run_mode=r[11],
        continue_on_error=bool(r[12]),
        status=r[13],
        idempotency_key=r[14],
        attempt=r[15],
        error=r[16],
        approval_expires_at=utc(r[17]),
        cancel_requested_at=utc(r[18]),
        created_at=created,
        started_at=utc(r[20]),
        deadline_at=utc(r[21]),
        finished_at=utc(r[22]),
        rerun_of=r[23],
        rollback_status=r[24],
        priority=int(r[25]),
    )


def _step(r: Sequence[Any]) -> StepRecord:
    return StepRecord(
        step_index=r[0],
        name=r[1],
        action=r[2],
        target_asset_id=r[3],
        target_name=r[4],
        action_class=r[5],
        params_json=r[6],
        timeout_s=r[7],
        status=r[8],
        attempts=r[9],
        output=r[10],
        error=r[11],
        started_at=utc(r[12]),
        finished_at=utc(r[13]),
        phase=r[14],
    )


def _approval(r: Sequence[Any]) -> ApprovalRecord:
    created = utc(r[4])
    if created is None:  # a NOT NULL column
        raise ValueError("approvals row without created_at")
    return ApprovalRecord(r[0], r[1], r[2], r[3], created)


def _asset(r: Sequence[Any]) -> AssetRecord:
    return AssetRecord(
        id=r[0],
        name=r[1],
        connection=r[2],
        host=r[3],
        port=r[4],
        base_url=r[5],
        tags_json=r[6],
        credential_ref=r[7],
        known_host_key=r[8],
        skip_host_key=bool(r[9]),
    )


def _marks(values: Collection[Any]) -> str:
    """``?, ?, ?``: one placeholder per value of an IN list (never a value itself)."""
    return ", ".join("?" for _ in values)


def _first(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return rows[0] if rows else None


class SqlRows:
    """The rows ``show`` reads, through one read-only DB-API connection.

    Answers what the ORM's sources answer (core/reads/executions.py ``SessionViewRows`` for the view,
    core/identity/principals.py, tokens.py and rbac.py for identity), with the same filters and order.
    """

    def __init__(self, connection: ReadConnection) -> None:
        self.connection = connection

    def _one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        return _first(self.connection.rows(sql, params))

    # identity ----------------------------------------------------------------------------------------

    def token_by_hash(self, digest: str) -> TokenRecord | None:
        """The token whose value hashes to ``digest``."""
        row = self._one(f"SELECT {_TOKEN} FROM api_tokens k WHERE k.token_hash = ?", [digest])
        return _token(row) if row else None

    def token(self, token_id: str) -> TokenRecord | None:
        """The token with this id."""
        row = self._one(f"SELECT {_TOKEN} FROM api_tokens k WHERE k.id = ?", [token_id])
        return _token(row) if row else None

    def user(self, user_id: str) -> UserRecord | None:
        """The user with this id."""
        row = self._one(f"SELECT {_USER} FROM users u WHERE u.id = ?", [user_id])
        return _user(row) if row else None

    def user_by_name(self, username: str) -> UserRecord | None:
        """The user called ``username`` (enabled or not: proofs.enabled_user decides)."""
        row = self._one(f"SELECT {_USER} FROM users u WHERE u.username = ?", [username])
        return _user(row) if row else None

    def tenant(self, tenant_id: str) -> TenantRecord | None:
        """The tenant with this id."""
        row = self._one(f"SELECT {_TENANT} FROM tenants t WHERE t.id = ?", [tenant_id])
        return _tenant(row) if row else None

    def membership(self, tenant_id: str, user_id: str) -> MembershipRecord | None:
        """The user's membership in the tenant."""
        sql = f"SELECT {_MEMBERSHIP} FROM memberships m WHERE m.tenant_id = ? AND m.user_id = ?"
        row = self._one(sql, [tenant_id, user_id])
        return _membership(row) if row else None

    def current_membership(self, tenant_id: str, user_id: str) -> MembershipRecord | None:
        """The user's membership in the tenant, None if removed or the user is disabled (rbac.current_membership)."""
        sql = (
            f"SELECT {_MEMBERSHIP} FROM memberships m JOIN users u ON u.id = m.user_id "
            "WHERE m.tenant_id = ? AND m.user_id = ? AND u.disabled = ?"
        )
        row = self._one(sql, [tenant_id, user_id, False])
        return _membership(row) if row else None

    def claims_accepted(self) -> bool:
        """Whether this installation accepts claimed names (installation.claimed_identity_allowed)."""
        row = self._one("SELECT claimed_identity FROM installation WHERE id = ?", [1])
        return bool(row and row[0])

    def memberships(self, user_id: str, tenant: str | None) -> list[tuple[MembershipRecord, TenantRecord]]:
        """The user's memberships (in the tenant called ``tenant``, if given), by tenant name."""
        sql = (
            f"SELECT {_MEMBERSHIP}, {_TENANT} FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
            "WHERE m.user_id = ?"
        )
        params: list[Any] = [user_id]
        if tenant is not None:
            sql += " AND t.name = ?"
            params.append(tenant)
        return [(_membership(r[:2]), _tenant(r[2:])) for r in self.connection.rows(sql + " ORDER BY t.name", params)]

    def membership_owning(self, user_id: str, execution_id: str) -> tuple[MembershipRecord, TenantRecord] | None:
        """The user's membership in the tenant that owns ``execution_id`` (None: not one of theirs)."""
        sql = (
            f"SELECT {_MEMBERSHIP}, {_TENANT} FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
            "JOIN executions e ON e.tenant_id = m.tenant_id WHERE m.user_id = ? AND e.id = ?"
        )
        row = self._one(sql, [user_id, execution_id])
        return (_membership(row[:2]), _tenant(row[2:])) if row else None

    # the view (execution_view.ViewSource) -------------------------------------------------------------

    def execution(self, tenant_id: str, execution_id: str) -> ExecutionRecord | None:
        """The tenant's execution with this id (executions.load_execution)."""
        sql = f"SELECT {_EXECUTION} FROM executions e WHERE e.id = ? AND e.tenant_id = ?"
        row = self._one(sql, [execution_id, tenant_id])
        return _execution(row) if row else None

    def steps(self, execution: ExecutionRow) -> list[StepRecord]:
        """The execution's step rows, by index."""
        sql = (
            f"SELECT {_STEP} FROM execution_steps s WHERE s.execution_id = ? AND s.tenant_id = ? ORDER BY s.step_index"
        )
        return [_step(r) for r in self.connection.rows(sql, [execution.id, execution.tenant_id])]

    def output_chunks(self, execution: ExecutionRow) -> list[tuple[int, int, int, int, str]]:
        """The execution's output chunks as (step_index, run, attempt, seq, text), in the order written."""
        sql = (
            "SELECT c.step_index, c.run, c.attempt, c.seq, c.text FROM step_output_chunks c "
            "WHERE c.execution_id = ? AND c.tenant_id = ? ORDER BY c.id"
        )
        return [tuple(r) for r in self.connection.rows(sql, [execution.id, execution.tenant_id])]

    def approvals(self, execution: ExecutionRow) -> list[tuple[ApprovalRecord, str]]:
        """The execution's decisions, oldest first, with their approvers' usernames."""
        sql = (
            f"SELECT {_APPROVAL}, u.username FROM approvals a JOIN users u ON u.id = a.approver_id "
            "WHERE a.execution_id = ? AND a.tenant_id = ? ORDER BY a.created_at"
        )
        return [(_approval(r), r[5]) for r in self.connection.rows(sql, [execution.id, execution.tenant_id])]

    def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """Username by user id."""
        if not user_ids:
            return {}
        sql = f"SELECT u.id, u.username FROM users u WHERE u.id IN ({_marks(user_ids)})"
        return {r[0]: r[1] for r in self.connection.rows(sql, list(user_ids))}

    def tenant_names(self, tenant_ids: Collection[str]) -> dict[str, str]:
        """Tenant name by tenant id."""
        if not tenant_ids:
            return {}
        sql = f"SELECT t.id, t.name FROM tenants t WHERE t.id IN ({_marks(tenant_ids)})"
        return {r[0]: r[1] for r in self.connection.rows(sql, list(tenant_ids))}

    def last_approved(self, execution: ExecutionRow) -> ExecutionRecord | None:
        """The newest earlier execution of the same plan name in the tenant that passed approval.

        "Earlier" compares with the stored ``created_at`` in SQL (a sub-query), never with a time sent back:
        SQLite compares its text, which only the ORM's own formatting would reproduce.
        """
        sql = (
            f"SELECT {_EXECUTION} FROM executions e WHERE e.tenant_id = ? AND e.name = ? AND e.id <> ? "
            "AND e.created_at < (SELECT c.created_at FROM executions c WHERE c.id = ? AND c.tenant_id = ?) "
            f"AND e.status IN ({_marks(APPROVED_STATUSES)}) ORDER BY e.created_at DESC LIMIT 1"
        )
        params = [execution.tenant_id, execution.name, execution.id, execution.id, execution.tenant_id]
        row = self._one(sql, [*params, *APPROVED_STATUSES])
        return _execution(row) if row else None

    def assets(self, tenant_id: str, ids: Collection[str]) -> list[AssetRecord]:
        """The tenant's assets with these ids."""
        if not ids:
            return []
        sql = f"SELECT {_ASSET} FROM assets x WHERE x.tenant_id = ? AND x.id IN ({_marks(ids)})"
        return [_asset(r) for r in self.connection.rows(sql, [tenant_id, *ids])]

    def policies(self) -> list[PolicyRecord]:
        """Every timeout policy row."""
        rows = self.connection.rows("SELECT sla_class, action_class, step_s, execution_s FROM timeout_policies")
        return [PolicyRecord(*r) for r in rows]
