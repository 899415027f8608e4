"""Per-submit opt-in to hear of the end (issue 16 item 3).

``executions.notify_on_finish``: the requester asked, at submit, to be told when this execution ends;
``notification_channels.only_when_asked``: a user's own opt-in that hears only of those executions (not of
every one the user requests).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (no batch copy on SQLite), so 0013's count triggers on executions stay as they are.
    op.add_column("executions", sa.Column("notify_on_finish", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column(
        "notification_channels", sa.Column("only_when_asked", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.execute("ALTER TABLE notification_channels DROP COLUMN only_when_asked")
    op.execute("ALTER TABLE executions DROP COLUMN notify_on_finish")
