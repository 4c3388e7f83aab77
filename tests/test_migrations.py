"""The migrations, on a fresh database of the backend under test: up, compared, down, up again."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from plutomi import create_app
from plutomi.extensions import db
from tests.conftest import _worker


@pytest.fixture
def fresh_url(backend, tmp_path) -> Iterator[str]:
    """An empty database of its own, next to (never instead of) the suite's test database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    parts = urlsplit(base)
    name = f"{parts.path.lstrip('/') or 'test'}_plutomi_migrations_{_worker()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_app(base_config, fresh_url):
    app = create_app({**base_config, "SQLALCHEMY_DATABASE_URI": fresh_url})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def schema_differences() -> list:
    """What autogenerate would write into a new revision: nothing, when the two agree."""
    migrate = current_app.extensions["migrate"]
    with db.engine.connect() as conn, warnings.catch_warnings():
        # Neither dialect reflects expression indexes; index_names() checks those by name.
        warnings.filterwarnings("ignore", message=".*expression-based index")
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, **migrate.configure_args}
        )
        return compare_metadata(context, db.metadata)


def index_names() -> set[str]:
    names = set()
    for table in inspect(db.engine).get_table_names():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*expression-based index")
            names.update(i["name"] for i in inspect(db.engine).get_indexes(table))
    if db.engine.dialect.name == "sqlite":  # SQLite's inspector leaves expression indexes out
        with db.engine.connect() as conn:
            names.update(
                conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
                ).scalars()
            )
    return names


def user_tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def current_revision() -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config).get_current_head()


def test_upgrade_matches_the_models_and_downgrade_removes_everything(fresh_app):
    assert user_tables() == set()

    upgrade()
    assert user_tables() == set(db.metadata.tables)
    assert current_revision() == head_revision()
    assert schema_differences() == []
    expression_indexes = {
        index.name
        for table in db.metadata.tables.values()
        for index in table.indexes
        if any(not hasattr(e, "name") or e.name not in table.c for e in index.expressions)
    }
    assert expression_indexes == {"ix_applicants_opening_name"}
    assert expression_indexes <= index_names()

    downgrade(revision="base")
    assert user_tables() == set()
    assert current_revision() is None
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            leftovers = conn.execute(
                text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND relname NOT LIKE 'alembic_version%'"
                )
            ).scalars()
            assert list(leftovers) == []
    else:
        with db.engine.connect() as conn:
            indexes = conn.execute(
                text(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'index' AND tbl_name != 'alembic_version'"
                )
            ).scalars()
            assert list(indexes) == []

    # And up again, to the same schema.
    upgrade()
    assert user_tables() == set(db.metadata.tables)
    assert schema_differences() == []

    # The comparison does see a difference when there is one.
    with db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_outbox_claim_token"))
    assert [d[0] for d in schema_differences()] == ["add_index"]


def test_the_offline_sql_script_covers_every_table(fresh_app, capsys):
    upgrade(sql=True)
    script = capsys.readouterr().out
    for table in db.metadata.tables:
        assert f"CREATE TABLE {table} " in script, table
    # Offline mode writes SQL and touches nothing.
    assert user_tables() == set()
