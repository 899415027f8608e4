"""Notifications (issue 16 item 3): channels per tenant, the tenant's signing key, and the delivery outbox.

``notification_channels``: webhooks and email addresses (a tenant's, or a user's own opt-in);
``notification_keys``: one encrypted HMAC signing secret per tenant; ``notifications``: one row per event and
channel, written with the change that causes it and delivered after commit (core/notify).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_STR = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", _STR(length=32), nullable=False),
        sa.Column("tenant_id", _STR(length=32), nullable=False),
        sa.Column("kind", _STR(length=16), nullable=False),
        sa.Column("target_ciphertext", sa.Text(), nullable=False),
        sa.Column("target_hint", _STR(length=256), nullable=False),
        sa.Column("format", _STR(length=16), nullable=False),
        sa.Column("events", _STR(length=128), nullable=False),
        sa.Column("owner_user_id", _STR(length=32), nullable=True),
        sa.Column("created_by", _STR(length=32), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_channels_tenant", "notification_channels", ["tenant_id"])
    op.create_table(
        "notification_keys",
        sa.Column("tenant_id", _STR(length=32), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.Column("updated_by", _STR(length=32), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", _STR(length=32), nullable=False),
        sa.Column("tenant_id", _STR(length=32), nullable=False),
        sa.Column("channel_id", _STR(length=32), nullable=False),
        sa.Column("execution_id", _STR(length=32), nullable=False),
        sa.Column("event", _STR(length=32), nullable=False),
        sa.Column("execution_status", _STR(length=32), nullable=False),
        sa.Column("actor", _STR(length=128), nullable=True),
        sa.Column("status", _STR(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TIME(), nullable=False),
        sa.Column("lease_expires_at", _TIME(), nullable=True),
        sa.Column("last_error", _STR(length=512), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("delivered_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["channel_id"], ["notification_channels.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_execution", "notifications", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_execution", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("notification_keys")
    op.drop_index("ix_notification_channels_tenant", table_name="notification_channels")
    op.drop_table("notification_channels")
