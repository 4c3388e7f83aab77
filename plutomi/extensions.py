"""Every extension is created here, once, and bound to the app in create_app()."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase, Session

# Named constraints so Alembic migrations can drop and alter them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


@contextmanager
def keeping_loaded() -> Iterator[Session]:
    """Commits in the block leave what the session has loaded as it is, instead of expiring
    it all: for rows the caller knows those commits did not change, which would otherwise be
    read again, one SELECT each, at their next use. Yields the session."""
    session = db.session()
    session.expire_on_commit = False
    try:
        yield session
    finally:
        session.expire_on_commit = True


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session has loaded, for a caller that knows the
    transaction changed none of it (or expired what it changed) and reads it right after."""
    with keeping_loaded() as session:
        session.commit()


# --- read-only transactions end with COMMIT ----------------------------------------------
# A request's reads run in a transaction that nothing commits; closing the session would roll
# it back. psycopg forgets its prepared statements at every ROLLBACK (a rolled-back DDL could
# have changed what they refer to) and deallocates them on the server, so no statement of a
# request was ever prepared: PostgreSQL parsed and planned each one anew. A transaction that
# sent nothing but SELECTs ends the same with COMMIT, and keeps them.

_WROTE = "plutomi_wrote"


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(conn, cursor, statement, parameters, context, executemany) -> None:
    if statement.lstrip()[:6].upper() != "SELECT":
        conn.info[_WROTE] = True


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _forget_writes(conn) -> None:
    if not conn.invalidated:  # an invalidated connection's record is discarded anyway
        conn.info.pop(_WROTE, None)


def commit_reads(exc: BaseException | None) -> None:
    """At the end of an app context: commit the session's transaction if it only read (and
    nothing failed), where closing the session would roll it back."""
    if exc is not None or not db.session.registry.has():
        return
    session = db.session()
    if session.new or session.dirty or session.deleted:
        return
    if not session.in_transaction() or session.connection().info.get(_WROTE):
        return
    try:
        session.commit()
    except Exception:
        session.rollback()


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record) -> None:
    """Per SQLite connection: foreign keys, which SQLite ignores unless asked (without them,
    deleting a stage would leave its rules and counter behind, for a new stage that reuses its
    id to inherit); and a lower() that knows every letter, as Python's and PostgreSQL's do
    (SQLite's own lowers only A-Z, so a search for "élodie" missed "Élodie"). The index on
    lower(name) is built with it (migration 0010)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()


class Queues:
    """The Redis connection and the RQ queues, bound to the app like any other extension."""

    def init_app(self, app) -> None:
        from redis import Redis

        from plutomi import embedded_redis

        url = app.config.get("REDIS_URL")
        if not url:
            url = embedded_redis.start(app.instance_path)
            app.config["REDIS_URL"] = url
        app.extensions["redis"] = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    @property
    def connection(self):
        from flask import current_app

        return current_app.extensions["redis"]

    def queue(self, name: str = "default"):
        from rq import Queue

        return Queue(name, connection=self.connection)


queues = Queues()
