"""One keyed audit chain per tenant (DESIGN §13, core/audit_links.py): a link number on execution and admin
events, the chain heads, and the signed checkpoints.

Rows written before this revision keep what they had (execution events their keyless per-execution SHA-256,
admin events nothing) and get no link number: ``audit verify`` counts them as *unchained* as long as they
all precede the tenant's first link. They are not linked here on purpose: the key is not the migration's to
read (an operator may run ``alembic`` without it), and linking them now would vouch for whatever was done to
them before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 10:12:41.204118
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "chain_seq", name="uq_audit_checkpoints_tenant_seq"),
    )
    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index("ux_execution_events_tenant_chain", ["tenant_id", "chain_seq"], unique=True)

    with op.batch_alter_table("admin_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index("ux_admin_events_tenant_chain", ["tenant_id", "chain_seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("admin_events", schema=None) as batch_op:
        batch_op.drop_index("ux_admin_events_tenant_chain")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")

    with op.batch_alter_table("execution_events", schema=None) as batch_op:
        batch_op.drop_index("ux_execution_events_tenant_chain")
        batch_op.drop_column("chain_seq")

    op.drop_table("audit_checkpoints")
    op.drop_table("audit_heads")
