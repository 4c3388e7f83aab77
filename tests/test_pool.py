"""Pooled connections: pinged before reuse only after sitting idle (plutomi.pool)."""

from __future__ import annotations

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from plutomi import pool
from plutomi.extensions import db


@pytest.fixture
def postgres(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's connection is a file: nothing on the other side to close it")
    return db.engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def _terminate(engine, pid: int) -> None:
    """Close a server connection from outside, as a restart or an idle timeout does."""
    admin = create_engine(engine.url)
    with admin.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def _counting_pings(monkeypatch) -> list:
    """The connections pinged from now on."""
    pings, ping = [], pool._ping

    def counted(engine, connection) -> None:
        pings.append(connection)
        ping(engine, connection)

    monkeypatch.setattr(pool, "_ping", counted)
    return pings


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(postgres, monkeypatch):
    pid = _backend_pid(postgres)
    _terminate(postgres, pid)
    monkeypatch.setattr(pool, "PING_AFTER_IDLE", 0.0)

    # The ping fails, the pool opens a new connection, and the request's statement never
    # sees the dead one.
    assert _backend_pid(postgres) != pid


def test_a_connection_used_a_moment_ago_is_not_pinged(postgres, monkeypatch):
    """The ping costs a round trip, so a busy connection goes without; if the server closed
    it meanwhile, that one use fails, and the pool replaces its connections for the next."""
    monkeypatch.setattr(pool, "PING_AFTER_IDLE", 3600.0)
    pid = _backend_pid(postgres)
    _terminate(postgres, pid)

    with pytest.raises(OperationalError):
        _backend_pid(postgres)
    assert _backend_pid(postgres) != pid


def test_a_new_connection_is_not_pinged(postgres, monkeypatch):
    monkeypatch.setattr(pool, "PING_AFTER_IDLE", 0.0)
    pings = _counting_pings(monkeypatch)
    postgres.dispose()
    _backend_pid(postgres)
    assert pings == []
    _backend_pid(postgres)
    assert len(pings) == 1


def test_a_ping_leaves_no_transaction_open(postgres, monkeypatch):
    """The dialect's own ping: a bare SELECT 1 would begin a transaction on the connection
    before the request's first statement."""

    monkeypatch.setattr(pool, "PING_AFTER_IDLE", 0.0)
    pings = _counting_pings(monkeypatch)
    _backend_pid(postgres)
    with postgres.connect() as conn:
        assert pings, "the idle connection was not pinged"
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.IDLE
