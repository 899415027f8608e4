"""Keyed approval binding (issue 13, after the adversarial review): ``executions.seal`` and ``approvals.seal``.

The seal is an HMAC with a per-tenant key derived from the secret key material (core/approval_rules.py). A
migration may run without that key, so existing rows keep NULL: the worker refuses an unsealed execution and
an unsealed approval counts for nothing, so work still pending or queued at the upgrade must be submitted
again (docs/operations.md, "Upgrading").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("executions", "approvals"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("seal", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    for table in ("approvals", "executions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("seal")
