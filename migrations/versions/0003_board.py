"""The board: notes, tags, bulk actions, answers on cards, and the board's indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The (stage, rank) index becomes (stage, status, rank, id): a column's first page of active
cards and its count both come from it. Existing questions do not show on cards (server
default false).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bulk_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('opening_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('target_stage_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('selection', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['opening_id'], ['openings.id'], name=op.f('fk_bulk_actions_opening_id_openings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_bulk_actions_org_id_orgs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_stage_id'], ['stages.id'], name=op.f('fk_bulk_actions_target_stage_id_stages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bulk_actions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_actions'))
    )
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulk_actions_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bulk_actions_public_id'), ['public_id'], unique=True)

    op.create_table('applicant_tags',
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['applicant_id'], ['applicants.id'], name=op.f('fk_applicant_tags_applicant_id_applicants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_applicant_tags_org_id_orgs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('applicant_id', 'tag', name=op.f('pk_applicant_tags'))
    )
    with op.batch_alter_table('applicant_tags', schema=None) as batch_op:
        batch_op.create_index('ix_applicant_tags_org_tag', ['org_id', 'tag'], unique=False)

    op.create_table('notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.Column('public_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['applicant_id'], ['applicants.id'], name=op.f('fk_notes_applicant_id_applicants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_notes_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_notes_org_id_orgs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.create_index('ix_notes_applicant_created', ['applicant_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notes_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notes_public_id'), ['public_id'], unique=True)

    with op.batch_alter_table('applicants', schema=None) as batch_op:
        batch_op.drop_index('ix_applicants_stage_rank')
        batch_op.create_index('ix_applicants_board', ['stage_id', 'status', 'rank', 'id'], unique=False)
        batch_op.create_index('ix_applicants_org_email', ['org_id', 'email'], unique=False)
    op.create_index(
        'ix_applicants_opening_name', 'applicants', ['opening_id', sa.text('lower(name)')]
    )

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_opening_id', ['opening_id', 'id'], unique=False)

    # A plain ADD COLUMN (no batch copy): SQLite allows it with a constant default.
    op.add_column(
        'questions',
        sa.Column('show_on_card', sa.Boolean(), nullable=False, server_default=sa.false()),
    )



def downgrade():
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_column('show_on_card')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_opening_id')

    op.drop_index('ix_applicants_opening_name', table_name='applicants')
    with op.batch_alter_table('applicants', schema=None) as batch_op:
        batch_op.drop_index('ix_applicants_org_email')
        batch_op.drop_index('ix_applicants_board')
        batch_op.create_index('ix_applicants_stage_rank', ['stage_id', 'rank'], unique=False)

    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notes_public_id'))
        batch_op.drop_index(batch_op.f('ix_notes_org_id'))
        batch_op.drop_index('ix_notes_applicant_created')

    op.drop_table('notes')
    with op.batch_alter_table('applicant_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_applicant_tags_org_tag')

    op.drop_table('applicant_tags')
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulk_actions_public_id'))
        batch_op.drop_index(batch_op.f('ix_bulk_actions_org_id'))

    op.drop_table('bulk_actions')
