"""Console indexes: the Executions list's name search, the asset filter, and the Dashboard's queue wait.

- ``ix_executions_name_trgm``: on PostgreSQL a trigram GIN index (pg_trgm), so ``name ILIKE '%term%'``
  is answered from the index instead of a scan. Creating the extension needs a privileged role: when it
  cannot be created, the migration degrades to a plain B-tree index of the same name and columns (so the
  schema still matches the models and ``alembic check`` stays clean) and the search stays correct, only
  slower on large tenants. SQLite has no trigram index: it gets the plain index too.
  On PostgreSQL the name column also gets a larger statistics sample (1000): whether the trigram index or a
  backward scan by date answers a search depends on how many names the planner expects to match, and with the
  default sample a name seen in ~0.02 % of rows was sometimes taken for a 0.4 % one (a 170 ms scan instead of
  a 25 ms index read at 1M executions). Execution names repeat (they are plan names), so a 1000-value
  sample holds most of them.
- ``ix_execution_steps_tenant_target_execution``: (tenant, asset, execution), read index-only by the
  Executions list's asset filter; it replaces (tenant, asset), of which it is a superset.
- ``ix_execution_events_queue_flow``: a partial index of the ``→ queued`` and ``→ running`` events only
  (two or three per execution): the Dashboard reads both by (tenant, status, time) range and pairs them by
  a hash join for the queue wait, with no probe per execution.
- ``ix_executions_tenant_created`` becomes covering on PostgreSQL (INCLUDE the columns the Dashboard
  aggregates: status, run mode, classes, start and end), so a window is read from the index alone. Same key
  columns as before, so the list queries use it as they did.

On a large installation the index builds lock writes to their table for their duration (seconds per
million rows); run the upgrade in a quiet moment.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 02:10:00.000000
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
QUEUE_FLOW = sa.text("to_status = 'queued' OR to_status = 'running'")
SUMMARY = ["status", "run_mode", "sla_class", "action_class", "started_at", "finished_at"]


def _trigram_available(bind: sa.Connection) -> bool:
    """True if pg_trgm is installed or could be installed now (in a savepoint, so a refusal aborts nothing)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0]
        log.warning("pg_trgm cannot be created (%s): the name search gets a plain index", reason)
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _trigram_available(bind):
        op.create_index(
            "ix_executions_name_trgm",
            "executions",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
    else:
        op.create_index("ix_executions_name_trgm", "executions", ["name"])
    op.create_index(
        "ix_execution_steps_tenant_target_execution",
        "execution_steps",
        ["tenant_id", "target_asset_id", "execution_id"],
    )
    op.drop_index("ix_execution_steps_tenant_target", table_name="execution_steps")
    op.create_index(
        "ix_execution_events_queue_flow",
        "execution_events",
        ["tenant_id", "to_status", "created_at", "execution_id"],
        sqlite_where=QUEUE_FLOW,
        postgresql_where=QUEUE_FLOW,
    )
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE executions ALTER COLUMN name SET STATISTICS 1000")
        op.drop_index("ix_executions_tenant_created", table_name="executions")
        op.create_index(
            "ix_executions_tenant_created", "executions", ["tenant_id", "created_at"], postgresql_include=SUMMARY
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_executions_tenant_created", table_name="executions")
        op.create_index("ix_executions_tenant_created", "executions", ["tenant_id", "created_at"])
        op.execute("ALTER TABLE executions ALTER COLUMN name SET STATISTICS -1")
    op.drop_index("ix_execution_events_queue_flow", table_name="execution_events")
    op.create_index("ix_execution_steps_tenant_target", "execution_steps", ["tenant_id", "target_asset_id"])
    op.drop_index("ix_execution_steps_tenant_target_execution", table_name="execution_steps")
    # The pg_trgm extension stays: other objects may use it, and dropping it needs the privilege again.
    op.drop_index("ix_executions_name_trgm", table_name="executions")
