"""Rollback steps (issue 17 item 3, DESIGN §14): a step row's phase, and an execution's rollback.

``execution_steps.phase``: ``main`` (every row so far), ``on_failure`` or ``on_cancel``; a plan's rollback
steps follow its main steps in ``step_index``. ``executions.rollback_status``: NULL (no rollback ran),
``running``, ``completed`` or ``failed``; ``executions.rollback_pending``: while a rollback runs, the outcome
it was started for (JSON), which the execution ends with (core/engine/rollback.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (no batch copy on SQLite), so 0013's count triggers on executions stay as they are.
    op.add_column("execution_steps", sa.Column("phase", _STR(length=16), nullable=False, server_default="main"))
    op.add_column("executions", sa.Column("rollback_status", _STR(length=16), nullable=True))
    op.add_column("executions", sa.Column("rollback_pending", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy the table and lose 0013's triggers (SQLite >= 3.35 drops a column).
    op.execute("ALTER TABLE executions DROP COLUMN rollback_pending")
    op.execute("ALTER TABLE executions DROP COLUMN rollback_status")
    op.execute("ALTER TABLE execution_steps DROP COLUMN phase")
