"""Per-asset locks: the fencing counter on assets, and the FIFO wait position on queue rows
(which asset, and since when: the place in line).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 23:40:14.118804
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lock_fence", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("waiting_for_asset_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.add_column(sa.Column("waiting_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_execution_queue_waiting", ["waiting_for_asset_id", "waiting_since"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_queue_waiting")
        batch_op.drop_column("waiting_since")
        batch_op.drop_column("waiting_for_asset_id")

    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_column("lock_fence")
