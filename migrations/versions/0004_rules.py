"""Rules, their timers, email templates; stage entries and unsubscribes on applicants.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Timers are claimed by (state, due_at), so the sweep with nothing due is one index probe.
Existing applicants are in their first stage entry (server default 1). The applicant columns
are added with plain ADD COLUMN: a batch rebuild on SQLite would drop the expression index
ix_applicants_opening_name.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('email_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('essential', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_email_templates_org_id_orgs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_templates')),
    sa.UniqueConstraint('org_id', 'name', name=op.f('uq_email_templates_org_id'))
    )
    with op.batch_alter_table('email_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_templates_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_templates_public_id'), ['public_id'], unique=True)

    op.create_table('rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('opening_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('trigger', sa.String(length=24), nullable=False),
    sa.Column('delay_minutes', sa.Integer(), nullable=True),
    sa.Column('only_if_incomplete', sa.Boolean(), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=True),
    sa.Column('match', sa.String(length=3), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['opening_id'], ['openings.id'], name=op.f('fk_rules_opening_id_openings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_rules_org_id_orgs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_rules_stage_id_stages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules'))
    )
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rules_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rules_public_id'), ['public_id'], unique=True)
        batch_op.create_index('ix_rules_stage_position', ['stage_id', 'position'], unique=False)

    op.create_table('timers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('stage_entry', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['applicant_id'], ['applicants.id'], name=op.f('fk_timers_applicant_id_applicants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_timers_org_id_orgs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_timers_rule_id_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timers_applicant_id'), ['applicant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timers_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index('ix_timers_state_due', ['state', 'due_at'], unique=False)

    op.add_column(
        'applicants',
        sa.Column('stage_entry', sa.Integer(), server_default='1', nullable=False),
    )
    op.add_column('applicants', sa.Column('unsubscribed_at', sa.DateTime(), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+) for the same reason as the ADD COLUMN above.
    op.drop_column('applicants', 'unsubscribed_at')
    op.drop_column('applicants', 'stage_entry')

    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_state_due')
        batch_op.drop_index(batch_op.f('ix_timers_rule_id'))
        batch_op.drop_index(batch_op.f('ix_timers_applicant_id'))

    op.drop_table('timers')
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.drop_index('ix_rules_stage_position')
        batch_op.drop_index(batch_op.f('ix_rules_public_id'))
        batch_op.drop_index(batch_op.f('ix_rules_org_id'))

    op.drop_table('rules')
    with op.batch_alter_table('email_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_templates_public_id'))
        batch_op.drop_index(batch_op.f('ix_email_templates_org_id'))

    op.drop_table('email_templates')
