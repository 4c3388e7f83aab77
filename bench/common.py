"""What every scenario shares: the database URL and bulk seeding, gunicorn with an access log
of server times, the HTTP client, threads of clients, the timings and the result rows."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
# gunicorn's access log: method, path (no query), status, the worker's time for the request in
# microseconds (from the parsed request to the last byte written) and the answer's
# Idempotent-Replayed header (`-` when it has none: every answer but an API replay's).
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(D)s %({idempotent-replayed}o)s"


def driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def scalar(database_url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar()
    engine.dispose()
    return value


# --- seeding in bulk -----------------------------------------------------------------------


def bulk_mode(conn) -> None:
    """For the rest of this transaction, skip the per-row triggers for rows consistent by
    construction: the foreign keys' (most of the seeding time) and the ones that keep the
    per-stage counts (migration 0005), so call recount_stages() before the commit. Needs a
    superuser; else the triggers just run."""
    from sqlalchemy import text

    if conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
        conn.execute(text("SET LOCAL session_replication_role = replica"))


def recount_stages(conn, opening_ids: list[int]) -> None:
    """Set the openings' per-stage counts of active applicants from the rows, as the triggers
    bulk_mode() turned off would have kept them."""
    from sqlalchemy import text

    conn.execute(
        text(
            "INSERT INTO stage_counts (stage_id, active) SELECT stage_id, count(*)"
            " FROM applicants WHERE opening_id = ANY(:openings) AND status = 'active'"
            " GROUP BY stage_id ON CONFLICT (stage_id) DO UPDATE"
            " SET active = EXCLUDED.active"
        ),
        {"openings": list(opening_ids)},
    )


def drop_indexes(conn, tables: list[str]) -> list[str]:
    """Drop the tables' indexes other than the primary keys (unique constraints included);
    returns the statements that make them again."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT t.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),"
            " c.conname, pg_get_constraintdef(c.oid)"
            " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
            " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'"
            " WHERE t.relname = ANY(:tables) AND t.relnamespace = 'public'::regnamespace"
            " AND NOT i.indisprimary"
        ),
        {"tables": tables},
    ).all()
    again = []
    for table, index, index_ddl, constraint, constraint_ddl in rows:
        if constraint:
            conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'))
            again.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraint_ddl}')
        else:
            conn.execute(text(f"DROP INDEX {index}"))
            again.append(index_ddl)
    return again


@dataclass
class NewOpening:
    id: int
    public_id: str
    stage_ids: list[int]  # by position
    stage_pids: list[str]  # the stages' public ids, by position


def insert_opening(
    conn, org_id: int, name: str, slug: str, stages: list[str], now: datetime, age: timedelta
) -> NewOpening:
    """One published opening, created `age` before `now`, and its stages in that order."""
    from sqlalchemy import text

    from plutomi.models import new_public_id

    opening_pid = new_public_id()
    opening_id = conn.execute(
        text(
            "INSERT INTO openings (public_id, created_at, org_id, name, slug, description,"
            " state) VALUES (:pid, :at, :org, :name, :slug, '', 'published') RETURNING id"
        ),
        {"pid": opening_pid, "at": now - age, "org": org_id, "name": name, "slug": slug},
    ).scalar_one()
    stage_pids = [new_public_id() for _ in stages]
    stage_ids = [
        conn.execute(
            text(
                "INSERT INTO stages (public_id, created_at, org_id, opening_id, name, position)"
                " VALUES (:pid, :at, :org, :opening, :name, :position) RETURNING id"
            ),
            {
                "pid": pid,
                "at": now,
                "org": org_id,
                "opening": opening_id,
                "name": stage,
                "position": position,
            },
        ).scalar_one()
        for position, (stage, pid) in enumerate(zip(stages, stage_pids, strict=True))
    ]
    return NewOpening(opening_id, opening_pid, stage_ids, stage_pids)


def insert_applicants(opening, stage, count: int, name: str, email: str, rank: str) -> None:
    """count applicants in stage with one INSERT (inside the caller's app context): named
    f"{name} {i}", with the address f"{email}-{i}@example.com" and rank f"{rank}{i:08d}"."""
    from sqlalchemy import insert

    from plutomi.extensions import db
    from plutomi.models import Applicant, new_public_id

    db.session.execute(
        insert(Applicant),
        [
            {
                "public_id": new_public_id(),
                "org_id": opening.org_id,
                "opening_id": opening.id,
                "stage_id": stage.id,
                "name": f"{name} {i}",
                "email": f"{email}-{i}@example.com",
                "rank": f"{rank}{i:08d}",
            }
            for i in range(count)
        ],
    )


def vacuum(engine, tables: str = "") -> None:
    """VACUUM (ANALYZE): moves leave heap pages not all-visible, and then the board's counts
    read the heap too; every timed run starts from a vacuumed table."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {tables}"))


def vacuum_url(database_url: str, tables: str = "") -> None:
    from sqlalchemy import create_engine

    engine = create_engine(driver_url(database_url))
    vacuum(engine, tables)
    engine.dispose()


@contextlib.contextmanager
def captured_statements(engine) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the engine sends while the block runs, for explain_sent."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def explain_sent(database_url: str, table: str, sent: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement in `sent` (statement, parameters, as an
    engine's before_cursor_execute saw them) that names `table` ("": every one), in a
    transaction rolled back after, so the writes among them change nothing."""
    from sqlalchemy import create_engine

    bare = create_engine(driver_url(database_url))
    plans = []
    raw = bare.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in sent:
            if table not in statement or not statement.lstrip().startswith(
                ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")
            ):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
            plans.append(" ".join(statement.split())[:160] + " ...\n  " + "\n  ".join(lines))
        raw.rollback()
    finally:
        raw.close()
    bare.dispose()
    return plans


# --- gunicorn ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`gunicorn --workers 2 --threads 1` of one WSGI app on a free port, until stop().

    Every request's server time goes to an access log; server_times() reads the requests
    logged since a mark()."""

    def __init__(self, target: str, env: dict[str, str], logdir: Path, name: str):
        self.port = free_port()
        self.database_url = env.get("DATABASE_URL")
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

    def server_times(
        self, mark: int, method: str, suffix: str, expect: int, replayed: bool | None = None
    ) -> list[float]:
        """Seconds the workers spent on each `method` request to a path ending in `suffix`
        logged after `mark` (only the API's replays, or only the other answers, when
        `replayed` says which). A worker logs a request just after sending its response, so
        this waits (briefly) until `expect` of them are there."""
        deadline = time.monotonic() + 5
        while True:
            with self.access.open("rb") as log:
                log.seek(mark)
                lines = log.read().decode().splitlines()
            times = []
            for line in lines:
                parts = line.split()
                if (
                    len(parts) == 5
                    and parts[0] == method
                    and parts[1].endswith(suffix)
                    and (replayed is None or (parts[4] != "-") == replayed)
                ):
                    times.append(int(parts[3]) / 1e6)
            if len(times) >= expect or time.monotonic() > deadline:
                return times
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the processes whose parent is this server's master."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def reset_peak_rss(self) -> None:
        """Start the workers' peak RSS (VmHWM) again from their present size (Linux)."""
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peak_rss_mb(self) -> float | None:
        """The largest peak RSS of one worker since reset_peak_rss() (or its start)."""
        peaks = [peak for pid in self.worker_pids() if (peak := vm_hwm_mb(pid)) is not None]
        return max(peaks) if peaks else None

    def workers_cpu(self) -> float | None:
        """CPU seconds (user + system) the workers have used so far (Linux)."""
        total = None
        for pid in self.worker_pids():
            seconds = process_cpu(pid)
            if seconds is not None:
                total = (total or 0.0) + seconds
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the client ----------------------------------------------------------------------------

# The CSRF token of a page's form (its hidden field).
CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')


def ms(seconds: list[float], q: float) -> float:
    """The q-quantile (nearest rank) in milliseconds; 0 for no samples."""
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


T = TypeVar("T")


@dataclass
class Timing:
    latencies: list[float] = field(default_factory=list)  # client-side, seconds
    server: list[float] = field(default_factory=list)  # from gunicorn's access log, seconds
    elapsed: float = 0.0
    ok: int = 0
    failed: int = 0
    steal: float | None = None  # the machine's CPU steal share while it ran (Linux)
    usage: dict[str, Any] = field(default_factory=dict)  # ServerUsage.report()

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
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, dict(response.headers), data

    def close(self) -> None:
        self.conn.close()


def run_threads(
    worker: Callable[[int], None],
    threads: int,
    ready: threading.Barrier,
    stop_at: list[float],
    seconds: float,
) -> float:
    """worker(0) ... worker(threads - 1), each in a thread of its own that waits at `ready` (a
    Barrier(threads + 1): this waits there too) before its timed part. Once all are ready,
    stop_at[0] becomes `seconds` from now (until then it is far ahead); returns the seconds
    from then until the last thread ended."""
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    stop_at[0] = time.perf_counter() + seconds + 3600  # set properly once all are ready
    for thread in pool:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    for thread in pool:
        thread.join()
    return time.perf_counter() - started


def server_env(database_url: str, redis_url: str, secret_key: str, folder: Path) -> dict:
    """The environment both apps' gunicorn servers run with."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "BASE_URL": "http://127.0.0.1",
        "INSTANCE_PATH": str(folder / "instance"),
        "UPLOAD_DIR": str(folder / "uploads"),
    }


@contextlib.contextmanager
def floor_and_app(env: dict, logdir: Path, prefix: str = "") -> Iterator[tuple[Server, Server]]:
    """Both apps under gunicorn with the same environment, the floor and Plutomi, stopped
    after the block (whichever of them started)."""
    with contextlib.ExitStack() as stop:
        floor = Server("bench.floor_app:app", env, logdir, f"{prefix}floor")
        stop.callback(floor.stop)
        app = Server("wsgi:app", env, logdir, f"{prefix}plutomi")
        stop.callback(app.stop)
        yield floor, app


def time_gets(
    client: Client,
    path: str,
    requests: int,
    seconds: float,
    warm_up: int,
    check: Callable[[int, bytes], str | None],
) -> Timing:
    """Sequential GETs of a page after `warm_up` untimed ones, `requests` of them or as many as
    fit in `seconds`; check(status, body) says what is wrong with an answer, or None."""
    for _ in range(warm_up):
        client.request("GET", path)
    timing = Timing()
    started = time.perf_counter()
    for _ in range(requests):
        if time.perf_counter() - started > seconds:
            break
        t0 = time.perf_counter()
        status, _, body = client.request("GET", path)
        timing.latencies.append(time.perf_counter() - t0)
        problem = check(status, body)
        if problem is None:
            timing.ok += 1
        else:
            timing.failed += 1
            if timing.failed <= 3:
                print(f"  ! {path}: {problem}", file=sys.stderr)
    timing.elapsed = time.perf_counter() - started
    return timing


def with_server_times(
    server: Server, method: str, suffix: str, run: Callable[[], Timing]
) -> Timing:
    """run() -> Timing, with the server times gunicorn logged for its requests and the CPU
    seconds the run cost (ServerUsage)."""
    mark = server.mark()
    before = cpu_times()
    usage = ServerUsage(server)
    timing = run()
    timing.usage = usage.report()
    timing.steal = steal_share(before, cpu_times())
    timing.server = server.server_times(mark, method, suffix, len(timing.latencies))
    # The warm-up requests came before the timed ones: keep the last ones, as many as timed.
    timing.server = timing.server[max(0, len(timing.server) - len(timing.latencies)) :]
    return timing


def interleaved(
    runs: dict[str, Callable[[int], T]], rounds: int, merge: Callable[[list[T]], T]
) -> dict[str, T]:
    """Each of two runs (the floor's and the app's), `rounds` times in turn, as A B B A A B ...:
    the machine's speed drifts by the minute here, and each side then sees as much of the
    drift as the other. runs[name](r) times turn r; merge() makes one result of a side's
    turns (added_timings for Timings)."""
    first, second = runs
    turns: dict[str, list[T]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (first, second) if r % 2 == 0 else (second, first):
            turns[name].append(runs[name](r))
    return {name: merge(results) for name, results in turns.items()}


def added_timings(timings: list[Timing]) -> Timing:
    """Turns as one Timing: latencies, server times and counts added up, the steal share
    weighted by each turn's time."""
    total = Timing()
    stolen = 0.0
    for timing in timings:
        total.latencies += timing.latencies
        total.server += timing.server
        total.elapsed += timing.elapsed
        total.ok += timing.ok
        total.failed += timing.failed
        if timing.steal is not None:
            stolen += timing.steal * timing.elapsed
            total.steal = stolen / total.elapsed if total.elapsed else None
    total.usage = added_usage([timing.usage for timing in timings])
    return total


def added_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """ServerUsage reports of turns as one: CPU seconds added up (None when a turn could not
    read them), the peak RSS the largest."""
    total: dict[str, Any] = {}
    for usage in usages:
        for name, value in usage.items():
            if name == "web_peak_rss_mb":
                total[name] = max(value or 0, total.get(name) or 0) or None
            elif value is None or total.get(name, 0) is None:
                total[name] = None
            else:
                total[name] = round(total.get(name, 0) + value, 2)
    return total


def cpu_per_request(usage: dict[str, Any], requests: int) -> dict[str, float | None]:
    """A ServerUsage report's CPU seconds as milliseconds a request."""
    n = max(1, requests)
    return {
        name.replace("_seconds", "_ms_per_request"): (
            None if value is None else round(1000 * value / n, 2)
        )
        for name, value in usage.items()
        if name.endswith("_cpu_seconds")
    }


# --- the machine ---------------------------------------------------------------------------


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (Linux /proc/stat: user, nice, system, idle, iowait,
    irq, softirq, steal, ...), or None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def self_cpu() -> float:
    """CPU seconds (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def vm_hwm_mb(pid: int | str) -> float | None:
    """A process's peak RSS (VmHWM) in MB, read from /proc (Linux), or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next(
        (int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM")),
        None,
    )


def peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so
    a worker started from the (big) bench process would report the bench's size."""
    peak = vm_hwm_mb("self")
    if peak is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return peak


class Usage:
    """CPU seconds spent by this process and by the PostgreSQL backends serving its
    connections (read from /proc when the server runs on this machine): the work each side
    did, which other load on a shared machine inflates far less than it does wall time."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.pids: set[int] = set()
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection, record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        self.pids.add(cursor.fetchone()[0])
        cursor.close()
        dbapi_connection.rollback()

    def start(self) -> None:
        self.process = self_cpu()
        self.backends = {pid: process_cpu(pid) for pid in self.pids}

    def report(self) -> dict[str, float | None]:
        """Seconds since start(): the worker's and its backends' (None if unreadable)."""
        spent = 0.0
        for pid in self.pids:
            now = process_cpu(pid)
            if now is None:
                return {"worker_cpu_seconds": self_cpu() - self.process, "db_cpu_seconds": None}
            spent += now - (self.backends.get(pid) or 0.0)
        return {"worker_cpu_seconds": self_cpu() - self.process, "db_cpu_seconds": spent}


class ServerUsage:
    """CPU seconds of a server's web workers, of its database's backends (PostgreSQL on this
    machine: every client connection to that database, both apps' pools) and of this process
    (the clients) from now to report(), and the workers' peak RSS. A target in requests a
    second is a CPU budget on this 2-core machine: these say who spends it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.backends = backend_pids(server.database_url) if server.database_url else []
        self.db = {pid: process_cpu(pid) for pid in self.backends}
        self.web = server.workers_cpu()
        self.client = self_cpu()

    def report(self) -> dict[str, float | None]:
        def spent(now: float | None, then: float | None) -> float | None:
            return None if now is None or then is None else round(now - then, 2)

        db_now = {pid: process_cpu(pid) for pid in self.backends}
        db = None
        if self.backends and all(v is not None for v in (*self.db.values(), *db_now.values())):
            db = round(sum(db_now[pid] - self.db[pid] for pid in self.backends), 2)
        return {
            "web_cpu_seconds": spent(self.server.workers_cpu(), self.web),
            "db_cpu_seconds": db,
            "client_cpu_seconds": spent(self_cpu(), self.client),
            "web_peak_rss_mb": self.server.peak_rss_mb(),
        }


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends connected to this database (the web workers' pools), but
    this query's own; none on another database."""
    from sqlalchemy import create_engine, text

    if not database_url.startswith(("postgresql://", "postgresql+psycopg://")):
        return []
    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        pids = list(
            conn.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
        )
    engine.dispose()
    return pids


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used, read from /proc (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share of CPU time the hypervisor gave to other guests between two cpu_times():
    on a shared virtual machine, time the run waited for cores it did not get."""
    if not before or not after or len(before) < 8:
        return None
    total = sum(after[:8]) - sum(before[:8])
    return (after[7] - before[7]) / total if total else None


# --- the results ---------------------------------------------------------------------------


def _numbers(timing: Timing) -> dict[str, Any]:
    return {
        "p50_ms": round(timing.p50, 2),
        "p95_ms": round(timing.p95, 2),
        "server_p50_ms": round(timing.server_p50, 2),
        "server_p95_ms": round(timing.server_p95, 2),
        "throughput_per_s": round(timing.rate, 1),
        "requests": len(timing.latencies),
        "server_logged": len(timing.server),
        "ok": timing.ok,
        "failed": timing.failed,
        "cpu_steal_share": round(timing.steal, 3) if timing.steal is not None else None,
        "cpu_per_request": cpu_per_request(timing.usage, len(timing.latencies)),
    }


def row(scenario, timing: Timing, floor: Timing, ratio, ratio_means, target, met, **extra):
    """One scenario's result: its numbers and the floor's, the ratio and the target."""
    return {
        "scenario": scenario,
        **_numbers(timing),
        "floor": _numbers(floor),
        "ratio": round(ratio, 2),
        "ratio_means": ratio_means,
        "target": target,
        "met": met,
        **extra,
    }
