"""Execution counts kept by triggers (issue 15 item 2): ``execution_counts``, for a metrics scrape without a scan.

Triggers on ``executions`` add a signed row per change (+1 for the new tenant/status/run mode, -1 for the
old) in the writer's own transaction; the sum per group is the count (db/tables.py ``ExecutionCount``). The
table starts with the counts of the executions already there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ROW = "INSERT INTO execution_counts (tenant_id, status, run_mode, n) VALUES ({0}.tenant_id, {0}.status, {0}.run_mode, {1})"
_CHANGED = "OLD.status IS NOT NEW.status OR OLD.tenant_id IS NOT NEW.tenant_id OR OLD.run_mode IS NOT NEW.run_mode"

COUNT_TRIGGERS = {
    "postgresql": [
        f"""CREATE FUNCTION opsc_count_executions() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN {_ROW.format("OLD", -1)}; END IF;
            IF TG_OP <> 'DELETE' THEN {_ROW.format("NEW", 1)}; END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER executions_count_insert_delete AFTER INSERT OR DELETE ON executions"
        " FOR EACH ROW EXECUTE FUNCTION opsc_count_executions()",
        "CREATE TRIGGER executions_count_update AFTER UPDATE OF status, tenant_id, run_mode ON executions"
        f" FOR EACH ROW WHEN ({_CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}) EXECUTE FUNCTION opsc_count_executions()",
    ],
    "sqlite": [
        f"CREATE TRIGGER executions_count_insert AFTER INSERT ON executions BEGIN {_ROW.format('NEW', 1)}; END",
        f"CREATE TRIGGER executions_count_delete AFTER DELETE ON executions BEGIN {_ROW.format('OLD', -1)}; END",
        "CREATE TRIGGER executions_count_update AFTER UPDATE OF status, tenant_id, run_mode ON executions"
        f" WHEN {_CHANGED} BEGIN {_ROW.format('OLD', -1)}; {_ROW.format('NEW', 1)}; END",
    ],
}
DROP_TRIGGERS = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS executions_count_update ON executions",
        "DROP TRIGGER IF EXISTS executions_count_insert_delete ON executions",
        "DROP FUNCTION IF EXISTS opsc_count_executions()",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS executions_count_update",
        "DROP TRIGGER IF EXISTS executions_count_delete",
        "DROP TRIGGER IF EXISTS executions_count_insert",
    ],
}


def upgrade() -> None:
    op.create_table(
        "execution_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("run_mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for statement in COUNT_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)
    op.execute(
        "INSERT INTO execution_counts (tenant_id, status, run_mode, n)"
        " SELECT tenant_id, status, run_mode, count(*) FROM executions GROUP BY tenant_id, status, run_mode"
    )


def downgrade() -> None:
    for statement in DROP_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("execution_counts")
