"""Live step output (issue 16 item 1): ``step_output_chunks``, each attempt's masked output in pieces.

Written while a step runs, in batches (db/tables.py ``StepOutputChunk``); read by the console's execution
detail and ``opsconductor watch``. A new table only: ``executions`` is not touched (0013's triggers stay).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_output_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("execution_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("execution_id", "step_index", "run", "attempt", "seq", name="uq_step_output_chunks_seq"),
    )
    op.create_index(
        "ix_step_output_chunks_tenant_execution", "step_output_chunks", ["tenant_id", "execution_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_step_output_chunks_tenant_execution", table_name="step_output_chunks")
    op.drop_table("step_output_chunks")
