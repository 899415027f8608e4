"""Bringing a database to life: migrate to head, seed the policies, and optionally the demo data.

Idempotent: running it again changes nothing that is already there (an admin's policy edits survive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from core import directory, inventory, tenants
from core.policies import seed_policies
from core.safety import secret_store
from core.transactions import session_scope
from db import migrate
from db.enums import Connection, Role, TenantMode
from db.tables import Asset, Secret, Tenant

DEMO_USERS: dict[str, dict[str, Role]] = {
    "demo": {
        "alice": Role.OPERATOR,
        "bob": Role.APPROVER,
        "carol": Role.APPROVER,
        "dave": Role.VIEWER,
        "admin": Role.ADMIN,
    },
    "globex": {"mallory": Role.OPERATOR, "admin": Role.ADMIN},
}
DEMO_SECRET = "demo_token"  # noqa: S105  (the secret's name, not a value)


@dataclass
class InitReport:
    """What ``initialize`` did."""

    revision: str
    policies_added: int
    demo: bool
    created: list[str] = field(default_factory=list)


def initialize(*, demo: bool = False) -> InitReport:
    """Upgrade the schema to head, seed the 9 timeout policies, and with ``demo`` the demo tenants (§11)."""
    migrate.upgrade()
    report = InitReport(revision=migrate.head_revision(), policies_added=0, demo=demo)
    with session_scope() as session:
        report.policies_added = seed_policies(session)
        if demo:
            report.created = seed_demo(session)
    return report


def seed_demo(session: Session) -> list[str]:
    """The demo tenants, users, ``localhost`` assets and the ``demo_token`` secret; returns what was created."""
    created: list[str] = []
    for tenant_name, users in DEMO_USERS.items():
        tenant = session.exec(select(Tenant).where(Tenant.name == tenant_name)).first()
        if tenant is None:
            tenant = tenants.create_tenant(session, tenant_name, mode=TenantMode.LIVE, max_live_level=3)
            created.append(f"tenant {tenant_name}")
        for username, role in users.items():
            user = directory.ensure_user(session, username)
            directory.set_membership(session, tenant.id, user, role)
        if session.exec(select(Asset).where(Asset.tenant_id == tenant.id, Asset.name == "localhost")).first() is None:
            inventory.add_asset(session, tenant.id, name="localhost", connection=Connection.LOCAL, tags=["demo"])
            created.append(f"asset {tenant_name}/localhost")
        if (
            session.exec(select(Secret).where(Secret.tenant_id == tenant.id, Secret.name == DEMO_SECRET)).first()
            is None
        ):
            # A demo value, not a credential of anything; it exists so masking can be shown.
            secret_store.set_secret(
                session, tenant.id, DEMO_SECRET, f"demo-{tenant_name}-s3cr3t-value", actor_id="init"
            )
            created.append(f"secret {tenant_name}/{DEMO_SECRET}")
    return created
