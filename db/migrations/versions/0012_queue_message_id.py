"""The queue row's broker message id (issue 15 item 2): ``execution_queue.message_id``.

The outbox names the message it will send after commit; the sweeper asks the broker whether it still holds
that message before re-sending (core/engine/outbox.py ``due_redispatch``), instead of re-sending whatever
waited longer than ``OPSC_REDISPATCH_AFTER_S``. Existing rows keep NULL: their message is treated as the old
rule did (re-sent once it is old enough), after which they carry an id like any other.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_queue", schema=None) as batch_op:
        batch_op.drop_column("message_id")
