"""Priority (issue 17 item 5, DESIGN §14; core/priority.py).

``executions.priority``: the effective priority (SLA class base plus the plan's requested ``priority:``);
``execution_queue.sort_at``: the row's place in the order workers take work (queued time minus priority
steps), indexed; ``tenant_settings.max_priority``: the cap on what a plan of the tenant may request.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (no batch copy on SQLite), so 0013's count triggers on executions stay as they are.
    op.add_column("executions", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("tenant_settings", sa.Column("max_priority", sa.Integer(), nullable=False, server_default="3"))
    op.add_column("execution_queue", sa.Column("sort_at", _TIME(), nullable=True))
    op.create_index("ix_execution_queue_sort", "execution_queue", ["sort_at"])
    # A message is resolved to its row by id (a swapped message names another execution in its payload).
    op.create_index("ix_execution_queue_message", "execution_queue", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_execution_queue_message", table_name="execution_queue")
    op.drop_index("ix_execution_queue_sort", table_name="execution_queue")
    op.execute("ALTER TABLE execution_queue DROP COLUMN sort_at")
    op.execute("ALTER TABLE tenant_settings DROP COLUMN max_priority")
    op.execute("ALTER TABLE executions DROP COLUMN priority")
