"""Rebuild the applicants' lower(name) index with the lower() every SQLite connection has now.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08

SQLite's own lower() changes only A-Z. Every connection the app opens now replaces it with
one that lowers every letter, as PostgreSQL's does (plutomi.extensions), so that a search for
"élodie" finds "Élodie". An index on lower(name) built before holds the old values for names
with other letters: REINDEX computes them again with the new function. PostgreSQL's lower()
already knew them: nothing to do there.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_context().dialect.name == "sqlite":
        op.execute("REINDEX ix_applicants_opening_name")


def downgrade():
    # The schema is unchanged. An older release's connections use SQLite's own lower(): run
    # REINDEX ix_applicants_opening_name after going back to one.
    pass
