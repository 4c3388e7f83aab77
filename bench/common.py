"""What every scenario shares: the database URL, gunicorn with an access log of server times,
the HTTP client and the timings."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# gunicorn's access log: method, path (no query), status and the worker's time for the
# request in microseconds (from the parsed request to the last byte written).
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


def driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def scalar(database_url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar()
    engine.dispose()
    return value


# --- gunicorn ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`gunicorn --workers 2 --threads 1` of one WSGI app on a free port, until stop().

    Every request's server time goes to an access log; server_times() reads the requests
    logged since a mark()."""

    def __init__(self, target: str, env: dict[str, str], logdir: Path, name: str):
        self.port = _free_port()
        self.log = logdir / f"{name}.log"
        self.access = logdir / f"{name}-access.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.proc = subprocess.Popen(
            [
                str(gunicorn),
                "--workers",
                "2",
                "--threads",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--access-logfile",
                str(self.access),
                "--access-logformat",
                ACCESS_FORMAT,
                target,
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait()

    def _wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}:\n{self.log.read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in {timeout} s; see {self.log}")

    def mark(self) -> int:
        return self.access.stat().st_size if self.access.exists() else 0

    def server_times(self, mark: int, method: str, suffix: str, expect: int) -> list[float]:
        """Seconds the workers spent on each `method` request to a path ending in `suffix`
        logged after `mark`. A worker logs a request just after sending its response, so
        this waits (briefly) until `expect` of them are there."""
        deadline = time.monotonic() + 5
        while True:
            with self.access.open("rb") as log:
                log.seek(mark)
                lines = log.read().decode().splitlines()
            times = []
            for line in lines:
                parts = line.split()
                if len(parts) == 4 and parts[0] == method and parts[1].endswith(suffix):
                    times.append(int(parts[3]) / 1e6)
            if len(times) >= expect or time.monotonic() > deadline:
                return times
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the client ----------------------------------------------------------------------------


def ms(seconds: list[float], q: float) -> float:
    """The q-quantile (nearest rank) in milliseconds; 0 for no samples."""
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Timing:
    latencies: list[float] = field(default_factory=list)  # client-side, seconds
    server: list[float] = field(default_factory=list)  # from gunicorn's access log, seconds
    elapsed: float = 0.0
    ok: int = 0
    failed: int = 0
    steal: float | None = None  # the machine's CPU steal share while it ran (Linux)

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return ms(self.latencies, 0.95)

    @property
    def server_p50(self) -> float:
        return 1000 * statistics.median(self.server) if self.server else 0.0

    @property
    def server_p95(self) -> float:
        return ms(self.server, 0.95)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


class Client:
    """One http.client connection with its own cookie jar (one cookie is all either app sets).

    http.client reopens the connection by itself when the server closes it (gunicorn's sync
    workers close after every response), so both apps pay the same reconnect."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, dict, bytes]:
        headers = {"Host": "127.0.0.1", **(extra or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, dict(response.headers), data

    def close(self) -> None:
        self.conn.close()
