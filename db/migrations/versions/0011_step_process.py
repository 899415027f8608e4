"""Where a step's local process runs (issue 14 item 2): ``execution_steps.process_*``.

Host name, boot id, process group id and the group leader's start time (clock ticks since boot, from
``/proc/PID/stat``), written when a step starts a local process. The sweeper reads them before it releases
a lost worker's locks and kills a group still alive on its own host (core/engine/orphans.py). Old rows keep
NULL: a step that recorded nothing has nothing to kill.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column("process_boot_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("process_pgid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_start", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_steps", schema=None) as batch_op:
        for column in ("process_start", "process_pgid", "process_boot_id", "process_host"):
            batch_op.drop_column(column)
