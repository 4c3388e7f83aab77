"""Active applicants per stage, kept by triggers on applicants.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

The board showed each column's count with count(*) over the board index: 20-30 ms for a
100,000-card stage on PostgreSQL, on every board view. stage_counts holds the number instead,
and triggers adjust it in the transaction of every insert, move, status change and delete of an
applicant, so no code path (the ORM, a bulk INSERT ... SELECT, a script) can forget it.

A decrement is an UPDATE (a stage being deleted with its counter must not get the row back);
an increment is an upsert. On PostgreSQL a move takes the two counter rows in stage id order,
so two transactions moving cards in opposite directions cannot deadlock.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

POSTGRES_FUNCTION = """
CREATE FUNCTION plutomi_count_applicants() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_stage integer;
    new_stage integer;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status = 'active' THEN
        old_stage := OLD.stage_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'active' THEN
        new_stage := NEW.stage_id;
    END IF;
    IF old_stage IS NOT DISTINCT FROM new_stage THEN
        RETURN NULL;
    END IF;
    IF new_stage IS NOT NULL AND (old_stage IS NULL OR new_stage < old_stage) THEN
        INSERT INTO stage_counts AS c (stage_id, active) VALUES (new_stage, 1)
            ON CONFLICT (stage_id) DO UPDATE SET active = c.active + 1;
        new_stage := NULL;
    END IF;
    IF old_stage IS NOT NULL THEN
        UPDATE stage_counts SET active = active - 1 WHERE stage_id = old_stage;
    END IF;
    IF new_stage IS NOT NULL THEN
        INSERT INTO stage_counts AS c (stage_id, active) VALUES (new_stage, 1)
            ON CONFLICT (stage_id) DO UPDATE SET active = c.active + 1;
    END IF;
    RETURN NULL;
END $$
"""

POSTGRES_TRIGGERS = [
    "CREATE TRIGGER applicants_count_insert AFTER INSERT ON applicants FOR EACH ROW"
    " WHEN (NEW.status = 'active') EXECUTE FUNCTION plutomi_count_applicants()",
    "CREATE TRIGGER applicants_count_delete AFTER DELETE ON applicants FOR EACH ROW"
    " WHEN (OLD.status = 'active') EXECUTE FUNCTION plutomi_count_applicants()",
    "CREATE TRIGGER applicants_count_update AFTER UPDATE OF stage_id, status ON applicants"
    " FOR EACH ROW WHEN (OLD.stage_id IS DISTINCT FROM NEW.stage_id"
    " OR OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION plutomi_count_applicants()",
]

SQLITE_TRIGGERS = [
    """CREATE TRIGGER applicants_count_insert AFTER INSERT ON applicants
    WHEN NEW.status = 'active'
    BEGIN
        INSERT INTO stage_counts (stage_id, active) VALUES (NEW.stage_id, 1)
            ON CONFLICT (stage_id) DO UPDATE SET active = active + 1;
    END""",
    """CREATE TRIGGER applicants_count_delete AFTER DELETE ON applicants
    WHEN OLD.status = 'active'
    BEGIN
        UPDATE stage_counts SET active = active - 1 WHERE stage_id = OLD.stage_id;
    END""",
    """CREATE TRIGGER applicants_count_update AFTER UPDATE OF stage_id, status ON applicants
    WHEN OLD.stage_id IS NOT NEW.stage_id OR OLD.status IS NOT NEW.status
    BEGIN
        UPDATE stage_counts SET active = active - 1
            WHERE stage_id = OLD.stage_id AND OLD.status = 'active';
        INSERT INTO stage_counts (stage_id, active) SELECT NEW.stage_id, 1
            WHERE NEW.status = 'active'
            ON CONFLICT (stage_id) DO UPDATE SET active = active + 1;
    END""",
]

TRIGGERS = ("applicants_count_insert", "applicants_count_delete", "applicants_count_update")


def upgrade():
    op.create_table('stage_counts',
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_stage_counts_stage_id_stages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('stage_id', name=op.f('pk_stage_counts'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(
        "INSERT INTO stage_counts (stage_id, active) SELECT stage_id, count(*) FROM applicants"
        " WHERE status = 'active' GROUP BY stage_id"
    )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON applicants" if postgres else f"DROP TRIGGER {name}")
    if postgres:
        op.execute("DROP FUNCTION plutomi_count_applicants()")
    op.drop_table('stage_counts')
