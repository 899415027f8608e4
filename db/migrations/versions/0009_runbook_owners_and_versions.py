"""Runbooks are owned and versioned (issue 13 item 5): ``runbooks.owner`` and ``runbooks.version``, and
``runbook_versions``, one row per saved text.

Existing runbooks get no owner (only tenant admins may change them: nobody can tell who wrote them, and the
last saver may be the very operator who replaced a shared runbook) and their current text as version 1.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:31:43.619502
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "runbook_versions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_runbook_versions_tenant_name_version"),
    )
    with op.batch_alter_table("runbooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))

    # Typed columns, so that updated_at comes back as a datetime on both databases.
    runbooks = sa.table(
        "runbooks",
        sa.column("tenant_id", sa.String()),
        sa.column("name", sa.String()),
        sa.column("description", sa.String()),
        sa.column("plan_text", sa.Text()),
        sa.column("updated_by", sa.String()),
        sa.column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    rows = op.get_bind().execute(sa.select(runbooks))
    history = [
        {
            "id": uuid.uuid4().hex,
            "tenant_id": row.tenant_id,
            "name": row.name,
            "version": 1,
            "description": row.description or "",
            "plan_text": row.plan_text,
            "text_hash": hashlib.sha256(row.plan_text.encode("utf-8")).hexdigest(),
            "owner": None,
            "created_by": (row.updated_by or "unknown")[:64],
            "created_at": row.updated_at,
        }
        for row in rows
    ]
    if history:
        op.bulk_insert(versions, history)


def downgrade() -> None:
    with op.batch_alter_table("runbooks", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("owner")

    op.drop_table("runbook_versions")
