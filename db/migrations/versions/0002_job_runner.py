"""Job runner: the queue row's step position, the execution deadline, and the workers table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:52:39.151504
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("current_execution_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("current_step_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index("ix_workers_last_seen", ["last_seen_at"], unique=False)

    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        # Existing queue rows point at their first step; the default is dropped after so the model stays the truth.
        batch_op.add_column(sa.Column("step_index", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.alter_column("step_index", server_default=None)

    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_executions_status_approval_expires", ["status", "approval_expires_at"], unique=False)
        batch_op.create_index("ix_executions_status_deadline", ["status", "deadline_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_status_deadline")
        batch_op.drop_index("ix_executions_status_approval_expires")
        batch_op.drop_column("deadline_at")

    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.drop_column("step_index")

    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index("ix_workers_last_seen")

    op.drop_table("workers")
