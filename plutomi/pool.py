"""Pooled connections are pinged before reuse only when they sat idle.

`pool_pre_ping` costs a round trip on every checkout: every request paid one more than its
statements (a move, 12 round trips in all, spent a twelfth of its time there). A connection
used within the last PING_AFTER_IDLE seconds was alive a moment ago; one that sat longer may
have been closed by a restart, a failover or an idle timeout, and is pinged. A failed ping
raises DisconnectionError, on which the pool discards the connection and opens a new one. A
restart in the last second before a busy connection's reuse fails that one request, as it
would mid-request anyway, and the pool then replaces every connection it holds.
"""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

PING_AFTER_IDLE = 1.0  # seconds

_IDLE_SINCE = "idle_since"


@event.listens_for(Pool, "checkin")
def _note_idle(dbapi_connection, record) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    since = record.info.get(_IDLE_SINCE)
    # A new connection was just opened; SQLite's is a file, not a socket.
    if since is None or isinstance(dbapi_connection, sqlite3.Connection):
        return
    if time.monotonic() - since >= PING_AFTER_IDLE:
        _ping(dbapi_connection)


def _ping(dbapi_connection) -> None:
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as exc:
        raise DisconnectionError("The pooled connection was closed while idle.") from exc
