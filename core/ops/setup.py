"""Bringing a database to life: migrate to head, seed the policies, and optionally the demo data.

Idempotent: running it again changes nothing that is already there (an admin's policy edits survive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from core.identity import members, tenants
from core.inventory import assets, runbooks, trust
from core.policies import seed_policies
from core.safety import secret_store
from core.transactions import session_scope
from core.usecases.accounts import shared_hash
from db.enums import Connection, Role, TenantMode
from db.tables import Asset, Runbook, Secret, Tenant

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
# Every demo account signs in with this password; the sign-in page shows it when the demo tenant exists.
DEMO_PASSWORD = "demo-password"  # noqa: S105  (public on purpose: demo data only)
DEMO_LOG_DIR = "/tmp/opsconductor-demo/logs"  # noqa: S108  (the log-rotation runbook's playground)

# (name, description, plan): safe runbooks of the demo library (DESIGN §11).
DEMO_RUNBOOKS: list[tuple[str, str, str]] = [
    (
        "Disk usage",
        "df on localhost (read: runs at once, no approval)",
        "name: disk-usage\nsteps:\n  - name: df\n    action: shell\n    target: localhost\n"
        "    params: {command: [df, -h]}\n",
    ),
    (
        "Service status",
        "uptime and the busiest processes (read)",
        "name: service-status\nsteps:\n  - name: uptime\n    action: shell\n    target: localhost\n"
        "    params: {command: [uptime]}\n  - name: processes\n    action: shell\n    target: localhost\n"
        "    params: {command: [ps, -eo, 'pid,etime,comm', --sort=-pcpu]}\n",
    ),
    (
        "Log rotation",
        f"rotate app.log in {DEMO_LOG_DIR} (modify: needs one approval)",
        "name: log-rotation\ndescription: Rotate the demo app log\nsteps:\n"
        f"  - name: prepare\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [mkdir, -p, {DEMO_LOG_DIR}]}}\n"
        f"  - name: write\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [touch, {DEMO_LOG_DIR}/app.log]}}\n"
        f"  - name: rotate\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [cp, {DEMO_LOG_DIR}/app.log, {DEMO_LOG_DIR}/app.log.1]}}\n"
        f"  - name: truncate\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [truncate, -s, '0', {DEMO_LOG_DIR}/app.log]}}\n",
    ),
    (
        "Failing check",
        "a modify step that fails on purpose: shows the dead-letter queue and requeue",
        "name: failing-check\nsteps:\n  - name: missing-file\n    action: shell\n    target: localhost\n"
        "    action_class: modify\n    params: {command: [ls, /nonexistent/opsconductor-demo]}\n",
    ),
]

# Published by seeding (DESIGN §13): their steps run as `read`, at once, like before shell became `modify`.
DEMO_PUBLISHED = ("Disk usage", "Service status")
# Read-only argv prefixes each demo tenant starts with (an admin edits them: `opsconductor commands`).
DEMO_READ_ONLY: list[list[str]] = [["df"], ["uptime"]]


@dataclass
class InitReport:
    """What ``initialize`` did."""

    revision: str
    policies_added: int
    demo: bool
    created: list[str] = field(default_factory=list)


def initialize(*, demo: bool = False) -> InitReport:
    """Upgrade the schema to head, seed the 9 timeout policies, and with ``demo`` the demo tenants (§11)."""
    from db import migrate  # Alembic costs ~0.5 s to import: only `init` and `up` pay for it

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
            # Only with a new tenant: a prefix an admin withdrew later stays withdrawn on `init --demo` again.
            for argv in DEMO_READ_ONLY:
                trust.add_command(session, tenant.id, argv, actor="init")
        for username, role in users.items():
            user = members.ensure_user(session, username)
            if user.password_hash is None:
                user.password_hash = shared_hash(DEMO_PASSWORD)
                session.add(user)
            members.set_membership(session, tenant.id, user, role)
        for name, description, plan_text in DEMO_RUNBOOKS:
            row = session.exec(select(Runbook).where(Runbook.tenant_id == tenant.id, Runbook.name == name)).first()
            if row is None:
                row = runbooks.store_runbook(session, tenant.id, name, plan_text, description, "init")
            # Never published and still the demo's text (a new row, or a demo from before publication existed);
            # an admin's later unpublish keeps published_at, so it is not undone here.
            if name in DEMO_PUBLISHED and row.published_at is None and row.plan_text == plan_text:
                runbooks.mark_published(session, row, "init")
        if session.exec(select(Asset).where(Asset.tenant_id == tenant.id, Asset.name == "localhost")).first() is None:
            assets.add_asset(session, tenant.id, name="localhost", connection=Connection.LOCAL, tags=["demo"])
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


def demo_installed() -> bool:
    """True if the demo tenant exists (the sign-in page then lists the demo accounts)."""
    with session_scope() as session:
        return session.exec(select(Tenant.id).where(Tenant.name == "demo")).first() is not None
