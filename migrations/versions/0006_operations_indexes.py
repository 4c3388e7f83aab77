"""Indexes for the operations page's counts, polled every 10 seconds per admin.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

Timers had no org index at all, and the outbox only org_id alone: counting one org's late
timers or its rows by state scanned the org's whole history.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_org_state_due', ['org_id', 'state', 'due_at'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_org_state', ['org_id', 'state', 'done_at'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_org_state')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_org_state_due')
