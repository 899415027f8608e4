"""Change windows (issue 17 item 4): a tenant's allowed windows and blackouts, and per-execution overrides.

``change_windows``: one row per tenant that has rules (the validated document, the mode outside them and the
bound of a wait); ``change_window_overrides``: an admin's override of one execution, counted once a second
admin confirmed it (core/usecases/windows.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 20:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "change_windows",
        sa.Column("tenant_id", _STR(length=32), nullable=False),
        sa.Column("mode", _STR(length=16), nullable=False),
        sa.Column("max_wait_s", sa.Integer(), nullable=False),
        sa.Column("rules_json", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.Column("updated_by", _STR(length=32), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "change_window_overrides",
        sa.Column("id", _STR(length=32), nullable=False),
        sa.Column("tenant_id", _STR(length=32), nullable=False),
        sa.Column("execution_id", _STR(length=32), nullable=False),
        sa.Column("requested_by", _STR(length=32), nullable=False),
        sa.Column("reason", _STR(length=512), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("confirmed_by", _STR(length=32), nullable=True),
        sa.Column("confirmed_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("execution_id", name="uq_change_window_overrides_execution"),
    )


def downgrade() -> None:
    op.drop_table("change_window_overrides")
    op.drop_table("change_windows")
