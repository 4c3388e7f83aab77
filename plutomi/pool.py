"""Pooled connections are pinged before reuse only when they sat idle.

`pool_pre_ping` costs a round trip on every checkout: every request paid one more than its
statements (a move, 12 round trips in all, spent a twelfth of its time there). A connection
used within the last PING_AFTER_IDLE seconds was alive a moment ago; one that sat longer may
have been closed by a restart, a failover or an idle timeout, and is pinged, by the dialect's
own ping (pool_pre_ping's: on psycopg it leaves no transaction open). A failed ping raises
DisconnectionError, on which the pool discards the connection and opens a new one. A restart
in the last second before a busy connection's reuse fails that one request, as it would
mid-request anyway, and the pool then replaces every connection it holds.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

PING_AFTER_IDLE = 1.0  # seconds

_IDLE_SINCE = "idle_since"


def ping_when_idle(engine: Engine) -> None:
    """Ping the engine's pooled connections before reuse after they sat idle. SQLite's
    connection is a file, with no server on the other side to close it: never pinged."""
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine.pool, "checkin")
    def _note_idle(dbapi_connection, record) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:
        since = record.info.get(_IDLE_SINCE)  # None: a new connection, just opened
        if since is not None and time.monotonic() - since >= PING_AFTER_IDLE:
            _ping(engine, dbapi_connection)


def _ping(engine: Engine, dbapi_connection) -> None:
    try:
        engine.dialect.do_ping(dbapi_connection)
    except Exception as exc:
        raise DisconnectionError("The pooled connection was closed while idle.") from exc
