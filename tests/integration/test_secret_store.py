"""The built-in secret store: encrypted at rest, tenant-scoped, admin-only, never shown back."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core import NotFound, PermissionDenied, delete_secret, list_secrets, principal, set_secret
from core.safety.secret_store import reveal_secret
from db.engine import session_scope
from db.tables import Secret


def test_value_is_stored_encrypted_and_round_trips(db: str) -> None:
    """The row holds ciphertext only; the worker-side reveal returns the value; rotation bumps the version."""
    admin = principal("admin", "demo")
    info = set_secret(admin, "db_password", "pa55-w0rd-value")
    assert info.version == 1 and "pa55" not in info.model_dump_json()
    with session_scope() as session:
        row = session.exec(select(Secret).where(Secret.name == "db_password")).one()
        assert "pa55-w0rd-value" not in row.ciphertext
        assert reveal_secret(session, row.tenant_id, "db_password") == "pa55-w0rd-value"
    assert set_secret(admin, "db_password", "rotated-value").version == 2
    assert [s.name for s in list_secrets(admin)] == ["db_password", "demo_token"]


def test_secrets_are_per_tenant(db: str) -> None:
    """globex cannot see or delete demo's secrets; the same name in two tenants holds two values."""
    set_secret(principal("admin", "demo"), "shared_name", "demo-value-1")
    set_secret(principal("admin", "globex"), "shared_name", "globex-value-1")
    with session_scope() as session:
        values = {
            reveal_secret(session, r.tenant_id, "shared_name")
            for r in session.exec(select(Secret).where(Secret.name == "shared_name"))
        }
    assert values == {"demo-value-1", "globex-value-1"}
    delete_secret(principal("admin", "globex"), "shared_name")
    assert "shared_name" in [s.name for s in list_secrets(principal("admin", "demo"))]
    with pytest.raises(NotFound):
        delete_secret(principal("admin", "globex"), "shared_name")


def test_only_admins_manage_secrets(db: str) -> None:
    """Operators and approvers may neither set nor list secrets."""
    for name in ("alice", "bob"):
        with pytest.raises(PermissionDenied):
            set_secret(principal(name, "demo"), "x", "y-value")
        with pytest.raises(PermissionDenied):
            list_secrets(principal(name, "demo"))
