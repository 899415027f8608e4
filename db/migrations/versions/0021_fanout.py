"""Fan-out's blast radius (issue 17 item 2): the target count from which a plan's approval level rises.

``tenant_settings.fanout_approval_targets``: a plan fanning out to this many assets or more needs one level
more than its action class asks, up to 2 (core/plan_fanout.py); 0 turns the rise off. The fan-out itself is
in the hashed plan (each expanded step's ``fanout`` record) and needs no column.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (no batch copy on SQLite), as 0019 does.
    op.add_column(
        "tenant_settings",
        sa.Column("fanout_approval_targets", sa.Integer(), nullable=False, server_default="10"),
    )


def downgrade() -> None:
    op.execute("ALTER TABLE tenant_settings DROP COLUMN fanout_approval_targets")
