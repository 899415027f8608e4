"""Initial schema: tenants, users, roles, assets, secrets, executions and their steps, approvals,
events, queue, DLQ, locks, timeout policies, tenant settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 22:41:56.715450
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tenants',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('timeout_policies',
    sa.Column('sla_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('action_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('step_s', sa.Integer(), nullable=False),
    sa.Column('execution_s', sa.Integer(), nullable=False),
    sa.Column('lease_s', sa.Integer(), nullable=False),
    sa.Column('approval_s', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.PrimaryKeyConstraint('sla_class', 'action_class')
    )
    op.create_table('users',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('assets',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('connection', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('base_url', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('tags_json', sa.Text(), server_default='[]', nullable=False),
    sa.Column('credential_ref', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('known_host_key', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_assets_tenant_name')
    )
    op.create_table('executions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('plan_json', sa.Text(), nullable=False),
    sa.Column('plan_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('action_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('approval_level', sa.Integer(), nullable=False),
    sa.Column('sla_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('execution_mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('run_mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('continue_on_error', sa.Boolean(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('idempotency_active', sa.Boolean(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('approval_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('cancel_requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('cancel_requested_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.create_index('ix_executions_status_updated', ['status', 'updated_at'], unique=False)
        batch_op.create_index('ix_executions_tenant_created', ['tenant_id', 'created_at'], unique=False)
        batch_op.create_index('ix_executions_tenant_requester_created', ['tenant_id', 'requested_by', 'created_at'], unique=False)
        batch_op.create_index('ix_executions_tenant_status_created', ['tenant_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ux_executions_idempotency_active', ['tenant_id', 'idempotency_key'], unique=True, sqlite_where=sa.text('idempotency_active = 1'), postgresql_where=sa.text('idempotency_active'))

    op.create_table('memberships',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('max_action_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'user_id')
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index('ix_memberships_user', ['user_id'], unique=False)

    op.create_table('secrets',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_secrets_tenant_name')
    )
    op.create_table('tenant_settings',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('max_live_level', sa.Integer(), nullable=False),
    sa.Column('over_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('approvals',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('approver_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plan_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['approver_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index('ix_approvals_execution', ['execution_id'], unique=False)
        batch_op.create_index('ix_approvals_tenant_approver', ['tenant_id', 'approver_id'], unique=False)
        batch_op.create_index('ux_approvals_gate_decision', ['execution_id', 'approver_id', 'step_index'], unique=True, sqlite_where=sa.text('step_index IS NOT NULL'), postgresql_where=sa.text('step_index IS NOT NULL'))
        batch_op.create_index('ux_approvals_plan_decision', ['execution_id', 'approver_id'], unique=True, sqlite_where=sa.text('step_index IS NULL'), postgresql_where=sa.text('step_index IS NULL'))

    op.create_table('execution_dlq',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('resolution', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('execution_dlq', schema=None) as batch_op:
        batch_op.create_index('ix_execution_dlq_execution', ['execution_id'], unique=False)
        batch_op.create_index('ix_execution_dlq_tenant_open', ['tenant_id', 'resolved_at', 'created_at'], unique=False)

    op.create_table('execution_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('step_index', sa.Integer(), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('message', sa.Text(), server_default='', nullable=False),
    sa.Column('data_json', sa.Text(), server_default='{}', nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('execution_events', schema=None) as batch_op:
        batch_op.create_index('ix_execution_events_execution', ['execution_id', 'id'], unique=False)
        batch_op.create_index('ix_execution_events_tenant_created', ['tenant_id', 'created_at'], unique=False)

    op.create_table('execution_locks',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('asset_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('fencing_token', sa.Integer(), nullable=False),
    sa.Column('acquired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'asset_id')
    )
    with op.batch_alter_table('execution_locks', schema=None) as batch_op:
        batch_op.create_index('ix_execution_locks_execution', ['execution_id'], unique=False)
        batch_op.create_index('ix_execution_locks_expires', ['expires_at'], unique=False)

    op.create_table('execution_queue',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('sla_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('available_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('dispatched_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lease_token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('lease_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id')
    )
    with op.batch_alter_table('execution_queue', schema=None) as batch_op:
        batch_op.create_index('ix_execution_queue_available', ['available_at'], unique=False)
        batch_op.create_index('ix_execution_queue_lease', ['lease_expires_at'], unique=False)
        batch_op.create_index('ix_execution_queue_tenant_sla', ['tenant_id', 'sla_class'], unique=False)

    op.create_table('execution_steps',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target_asset_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('target_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('action_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('timeout_s', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_asset_id'], ['assets.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id', 'step_index', name='uq_execution_steps_index')
    )
    with op.batch_alter_table('execution_steps', schema=None) as batch_op:
        batch_op.create_index('ix_execution_steps_tenant_target', ['tenant_id', 'target_asset_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('execution_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_execution_steps_tenant_target')

    op.drop_table('execution_steps')
    with op.batch_alter_table('execution_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_execution_queue_tenant_sla')
        batch_op.drop_index('ix_execution_queue_lease')
        batch_op.drop_index('ix_execution_queue_available')

    op.drop_table('execution_queue')
    with op.batch_alter_table('execution_locks', schema=None) as batch_op:
        batch_op.drop_index('ix_execution_locks_expires')
        batch_op.drop_index('ix_execution_locks_execution')

    op.drop_table('execution_locks')
    with op.batch_alter_table('execution_events', schema=None) as batch_op:
        batch_op.drop_index('ix_execution_events_tenant_created')
        batch_op.drop_index('ix_execution_events_execution')

    op.drop_table('execution_events')
    with op.batch_alter_table('execution_dlq', schema=None) as batch_op:
        batch_op.drop_index('ix_execution_dlq_tenant_open')
        batch_op.drop_index('ix_execution_dlq_execution')

    op.drop_table('execution_dlq')
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index('ux_approvals_plan_decision', sqlite_where=sa.text('step_index IS NULL'), postgresql_where=sa.text('step_index IS NULL'))
        batch_op.drop_index('ux_approvals_gate_decision', sqlite_where=sa.text('step_index IS NOT NULL'), postgresql_where=sa.text('step_index IS NOT NULL'))
        batch_op.drop_index('ix_approvals_tenant_approver')
        batch_op.drop_index('ix_approvals_execution')

    op.drop_table('approvals')
    op.drop_table('tenant_settings')
    op.drop_table('secrets')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_memberships_user')

    op.drop_table('memberships')
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ux_executions_idempotency_active', sqlite_where=sa.text('idempotency_active = 1'), postgresql_where=sa.text('idempotency_active'))
        batch_op.drop_index('ix_executions_tenant_status_created')
        batch_op.drop_index('ix_executions_tenant_requester_created')
        batch_op.drop_index('ix_executions_tenant_created')
        batch_op.drop_index('ix_executions_status_updated')

    op.drop_table('executions')
    op.drop_table('assets')
    op.drop_table('users')
    op.drop_table('timeout_policies')
    op.drop_table('tenants')
