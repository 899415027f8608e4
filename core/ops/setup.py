"""Bringing a database to life: migrate to head, seed the policies, and optionally the demo data or the first admin.

Idempotent: running it again changes nothing that is already there (an admin's policy edits survive).
Demo data makes the box a demo box: claimed names (``--as``) are accepted and ``admin`` is a system
administrator (``check`` says NO-GO for production). ``admin=NAME, tenant=T`` bootstraps a real
installation: the tenant, its first admin (the first system administrator too) and that admin's API token,
returned once in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from core.errors import InvalidInput, PermissionDenied
from core.identity import members, tenants
from core.identity.installation import claimed_identity_allowed, set_claimed_identity
from core.identity.scopes import ALL_SCOPES
from core.identity.tokens import mint
from core.inventory import assets, runbooks, trust
from core.policies import seed_policies
from core.safety import runner, secret_store
from core.transactions import session_scope
from core.usecases.accounts import shared_hash
from db.enums import Connection, Role, TenantMode
from db.tables import Asset, Membership, Runbook, Secret, Tenant, User

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
        "Restart a service",
        f"parameterised (inputs): 'restart' a demo service by leaving a marker in {DEMO_LOG_DIR} (modify)",
        "name: restart {{ input:service }}\n"
        "description: Restart a demo service (a marker file stands in for systemctl)\n"
        "inputs:\n"
        "  - name: service\n    type: choice\n    choices: [nginx, cron, app]\n    default: nginx\n"
        "    description: The service to restart\n"
        "  - name: grace_s\n    type: int\n    default: 1\n    description: Seconds to wait before checking it\n"
        "  - name: reason\n    type: string\n    default: routine\n    pattern: '[A-Za-z0-9 .,_-]{1,80}'\n"
        "    description: Why (shown in the step's output)\n"
        "steps:\n"
        f"  - name: prepare\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [mkdir, -p, {DEMO_LOG_DIR}]}}\n"
        f"  - name: restart\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [touch, '{DEMO_LOG_DIR}/{{{{ input:service }}}}.restarted']}}\n"
        "  - name: reason\n    action: shell\n    target: localhost\n"
        "    params: {command: [printf, 'reason: %s', '{{ input:reason }}']}\n"
        "  - name: grace\n    action: sleep\n    target: localhost\n    params: {seconds: '{{ input:grace_s }}'}\n",
    ),
    (
        "Lab disk usage (fan-out)",
        "fan-out: df on every asset tagged lab (lab-1, lab-2, lab-3), two at a time (read)",
        "name: lab-disk-usage\ndescription: df on each lab asset, two at a time, stopping at the first failure\n"
        "steps:\n  - name: df\n    action: shell\n    targets: {tags: [lab]}\n    max_concurrency: 2\n"
        "    max_errors: 0\n    params: {command: [df, -h]}\n",
    ),
    (
        "Failing check",
        "a modify step that fails on purpose: shows the dead-letter queue and requeue",
        "name: failing-check\nsteps:\n  - name: missing-file\n    action: shell\n    target: localhost\n"
        "    action_class: modify\n    params: {command: [ls, /nonexistent/opsconductor-demo]}\n",
    ),
]

# Local assets of the demo tenant tagged ``lab``: the fleet of the fan-out runbook (each is this machine).
DEMO_LAB_ASSETS: dict[str, tuple[str, ...]] = {"demo": ("lab-1", "lab-2", "lab-3")}

# Published by seeding (DESIGN §13): their steps run as `read`, at once, like before shell became `modify`.
DEMO_PUBLISHED = ("Disk usage", "Service status")
# Read-only argv prefixes each demo tenant starts with (an admin edits them: `opsconductor commands`).
DEMO_READ_ONLY: list[list[str]] = [["df"], ["uptime"]]


BOOTSTRAP_TOKEN_EXPIRES_S = 30 * 86400


@dataclass
class InitReport:
    """What ``initialize`` did. ``admin_token``: the bootstrap admin's token value (print it once, store it nowhere)."""

    revision: str
    policies_added: int
    demo: bool
    created: list[str] = field(default_factory=list)
    claimed_identity: bool = False
    admin_token: str | None = field(default=None, repr=False)


def initialize(
    *,
    demo: bool = False,
    single_operator: bool | None = None,
    admin: str | None = None,
    tenant: str | None = None,
    admin_token_expires_s: int = BOOTSTRAP_TOKEN_EXPIRES_S,
) -> InitReport:
    """Upgrade the schema to head, seed the 9 timeout policies, and optionally more (§11, §13).

    Args:
        demo: the demo tenants, users and assets; the box then accepts claimed names.
        single_operator: True accepts claimed names (``--as``) on this box, False stops accepting them,
            None leaves the setting as it is.
        admin, tenant: create the tenant (if missing) and ``admin`` as its first admin, and return that
            admin's API token (all scopes) in ``admin_token``.

    Raises:
        PermissionDenied: the tenant already has an admin, or the name belongs to another tenant.
        InvalidInput: a bad name; ``admin`` without ``tenant``.
    """
    from db import migrate  # Alembic costs ~0.5 s to import: only `init` and `up` pay for it

    if (admin is None) != (tenant is None):
        raise InvalidInput("--admin and --tenant go together", path="admin" if admin is None else "tenant")
    migrate.upgrade()
    runner.ensure_runner_user()  # as root: the unprivileged user local steps run as (DESIGN §13)
    report = InitReport(revision=migrate.head_revision(), policies_added=0, demo=demo)
    with session_scope() as session:
        report.policies_added = seed_policies(session)
        if demo:
            report.created = seed_demo(session)
        if single_operator is not None:
            set_claimed_identity(session, single_operator)
        if admin is not None and tenant is not None:
            report.admin_token = bootstrap_admin(session, admin, tenant, expires_in_s=admin_token_expires_s)
            report.created.append(f"admin {admin} of tenant {tenant}")
        report.claimed_identity = claimed_identity_allowed(session)
    return report


def bootstrap_admin(session: Session, username: str, tenant_name: str, *, expires_in_s: int) -> str:
    """The tenant (created if missing), ``username`` as its first admin, and that admin's token value.

    Only for a tenant without an admin, and a name with no role anywhere: whoever runs ``init`` can reach the
    database already, but the product should not hand them somebody else's tenant or identity.
    """
    tenant = session.exec(select(Tenant).where(Tenant.name == tenant_name)).first()
    if tenant is None:
        tenant = tenants.create_tenant(session, tenant_name)
    elif session.exec(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.role == Role.ADMIN.value)
    ).first():
        raise PermissionDenied(
            f"tenant {tenant_name} already has an admin; ask them for a token (opsconductor tokens create)"
        )
    user = members.ensure_user(session, username)
    if members.belongs_elsewhere(session, user.id, tenant.id):
        raise PermissionDenied(f"the name {username} belongs to another tenant; choose another username")
    members.set_membership(session, tenant.id, user, Role.ADMIN)
    if session.exec(select(User.id).where(User.system_admin == True)).first() is None:  # noqa: E712
        user.system_admin = True
        session.add(user)
    _row, value = mint(
        session, user, tenant, name="bootstrap", token_scopes=ALL_SCOPES, expires_in_s=expires_in_s, created_by="init"
    )
    return value


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
            if username == "admin" and not user.system_admin:
                user.system_admin = True  # the demo's admin owns the global settings (policies)
                session.add(user)
            members.set_membership(session, tenant.id, user, role)
        for name, description, plan_text in DEMO_RUNBOOKS:
            row = session.exec(select(Runbook).where(Runbook.tenant_id == tenant.id, Runbook.name == name)).first()
            if row is None:
                row, _new = runbooks.store_runbook(session, tenant.id, name, plan_text, description, "init")
            # Never published and still the demo's text (a new row, or a demo from before publication existed);
            # an admin's later unpublish keeps published_at, so it is not undone here.
            if name in DEMO_PUBLISHED and row.published_at is None and row.plan_text == plan_text:
                runbooks.mark_published(session, row, "init")
        if session.exec(select(Asset).where(Asset.tenant_id == tenant.id, Asset.name == "localhost")).first() is None:
            assets.add_asset(session, tenant.id, name="localhost", connection=Connection.LOCAL, tags=["demo"])
            created.append(f"asset {tenant_name}/localhost")
        for name in DEMO_LAB_ASSETS.get(tenant_name, ()):  # the fan-out runbook's fleet (all on this machine)
            if session.exec(select(Asset).where(Asset.tenant_id == tenant.id, Asset.name == name)).first() is None:
                assets.add_asset(session, tenant.id, name=name, connection=Connection.LOCAL, tags=["lab"])
                created.append(f"asset {tenant_name}/{name}")
        if (
            session.exec(select(Secret).where(Secret.tenant_id == tenant.id, Secret.name == DEMO_SECRET)).first()
            is None
        ):
            # A demo value, not a credential of anything; it exists so masking can be shown.
            secret_store.set_secret(
                session, tenant.id, DEMO_SECRET, f"demo-{tenant_name}-s3cr3t-value", actor_id="init"
            )
            created.append(f"secret {tenant_name}/{DEMO_SECRET}")
    set_claimed_identity(session, True)  # demo data is public: anyone may claim any demo name
    return created


def demo_installed() -> bool:
    """True if the demo tenant exists (the sign-in page then lists the demo accounts)."""
    with session_scope() as session:
        return session.exec(select(Tenant.id).where(Tenant.name == "demo")).first() is not None
