"""Each org's count of enabled webhook endpoints, kept by triggers on webhook_endpoints.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Every commit that records events looked for the enabled endpoints of their orgs with one
SELECT, though most orgs have none: one statement of about a dozen in an application, a move
or a timer's chunk. orgs.webhook_endpoints_enabled says when there is nothing to look for, and
the org is usually loaded already (the member's, the API key's, the job board's). Triggers keep
it in the transaction of every insert, enable, disable and delete of an endpoint, so no code
path (the settings page, the delivery worker turning a gone receiver off, a script) can
forget it. Each change adds or takes one, never recounts: two endpoints made at once in one
org both count, as the second's UPDATE waits for the first's row lock and adds to its result.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

POSTGRES_FUNCTION = """
CREATE FUNCTION plutomi_count_webhook_endpoints() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.enabled THEN
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled - 1
            WHERE id = OLD.org_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.enabled THEN
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled + 1
            WHERE id = NEW.org_id;
    END IF;
    RETURN NULL;
END $$
"""

POSTGRES_TRIGGERS = [
    "CREATE TRIGGER webhook_endpoints_count_insert AFTER INSERT ON webhook_endpoints"
    " FOR EACH ROW WHEN (NEW.enabled) EXECUTE FUNCTION plutomi_count_webhook_endpoints()",
    "CREATE TRIGGER webhook_endpoints_count_delete AFTER DELETE ON webhook_endpoints"
    " FOR EACH ROW WHEN (OLD.enabled) EXECUTE FUNCTION plutomi_count_webhook_endpoints()",
    "CREATE TRIGGER webhook_endpoints_count_update AFTER UPDATE OF enabled, org_id"
    " ON webhook_endpoints FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled"
    " OR OLD.org_id IS DISTINCT FROM NEW.org_id)"
    " EXECUTE FUNCTION plutomi_count_webhook_endpoints()",
]

SQLITE_TRIGGERS = [
    """CREATE TRIGGER webhook_endpoints_count_insert AFTER INSERT ON webhook_endpoints
    WHEN NEW.enabled
    BEGIN
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled + 1
            WHERE id = NEW.org_id;
    END""",
    """CREATE TRIGGER webhook_endpoints_count_delete AFTER DELETE ON webhook_endpoints
    WHEN OLD.enabled
    BEGIN
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled - 1
            WHERE id = OLD.org_id;
    END""",
    """CREATE TRIGGER webhook_endpoints_count_update AFTER UPDATE OF enabled, org_id
    ON webhook_endpoints
    WHEN OLD.enabled IS NOT NEW.enabled OR OLD.org_id IS NOT NEW.org_id
    BEGIN
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled - 1
            WHERE id = OLD.org_id AND OLD.enabled;
        UPDATE orgs SET webhook_endpoints_enabled = webhook_endpoints_enabled + 1
            WHERE id = NEW.org_id AND NEW.enabled;
    END""",
]

TRIGGERS = (
    "webhook_endpoints_count_insert",
    "webhook_endpoints_count_delete",
    "webhook_endpoints_count_update",
)


# Plain operations, not batch mode: SQLite adds a column with a constant default in place (a
# copy of the table would drop its triggers).
def upgrade():
    op.add_column(
        "orgs",
        sa.Column("webhook_endpoints_enabled", sa.Integer(), server_default="0", nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for statement in POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(
        "UPDATE orgs SET webhook_endpoints_enabled = (SELECT count(*) FROM webhook_endpoints"
        " WHERE webhook_endpoints.org_id = orgs.id AND webhook_endpoints.enabled)"
    )


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(
            f"DROP TRIGGER {name} ON webhook_endpoints" if postgres else f"DROP TRIGGER {name}"
        )
    if postgres:
        op.execute("DROP FUNCTION plutomi_count_webhook_endpoints()")
    op.drop_column("orgs", "webhook_endpoints_enabled")
