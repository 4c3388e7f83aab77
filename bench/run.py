"""Plutomi's benchmarks: `make bench`, `python -m bench.run` or `python bench/run.py`.

Builds a fresh PostgreSQL database (bench_plutomi) with the migrations, seeds one org with
500 published openings, then times each scenario against a floor measured in the same run
(bench/floor_app.py under the same gunicorn settings and the same client). Numbers are
reported as ratios to that floor; nothing asserts an absolute time.

Environment: BENCH_DATABASE_URL (a server where the user may create databases; default
postgresql://postgres@127.0.0.1:5432/test) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/9,
flushed before and after each run).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py`
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
DB_NAME = "bench_plutomi"
ORG_SLUG = "bench"
OPENINGS = 500
TARGET_SLUG = "opening-0250"
SECRET_KEY = "bench-secret-key-" + "x" * 32
BOARD_TARGET_P95_MS = 50.0
APPLY_TARGET_PER_S = 200.0

DESCRIPTION = (
    "Deliver parcels across the city on your own schedule.\n\n"
    "**You need** a valid driving licence, insurance for your vehicle and a phone with data. "
    "Shifts start at the depot; pay is weekly. Opening number {n}."
)


# --- the database ------------------------------------------------------------------------


def _driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def fresh_database(base_url: str) -> str:
    """Drop and recreate bench_plutomi on base_url's server; returns its postgresql:// URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(_driver_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def app_config(database_url: str, redis_url: str, instance: Path) -> dict[str, Any]:
    return {
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": _driver_url(database_url),
        "REDIS_URL": redis_url,
        "BASE_URL": "http://127.0.0.1",
        "SMTP_URL": None,
        "UPLOAD_DIR": str(instance / "uploads"),
    }


def migrate_and_seed(config: dict[str, Any]) -> dict[str, Any]:
    """`flask db upgrade`, then one org with OPENINGS published openings (1 stage, 3
    questions each) in bulk inserts. Returns the apply target's ids."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Opening, OpeningState, Org, Question, Stage, new_public_id

    app = create_app(config)
    with app.app_context():
        upgrade()
        start = datetime.now(UTC) - timedelta(days=OPENINGS)
        with db.engine.begin() as conn:
            org_id = conn.execute(
                insert(Org)
                .values(
                    public_id=new_public_id(),
                    name="Bench Logistics",
                    slug=ORG_SLUG,
                    created_at=start,
                )
                .returning(Org.id)
            ).scalar_one()
            conn.execute(
                insert(Opening),
                [
                    {
                        "public_id": new_public_id(),
                        "org_id": org_id,
                        "name": f"Delivery Driver {n:04d}",
                        "slug": f"opening-{n:04d}",
                        "description": DESCRIPTION.format(n=n),
                        "state": OpeningState.PUBLISHED.value,
                        "created_at": start + timedelta(hours=n),
                    }
                    for n in range(OPENINGS)
                ],
            )
            openings = dict(
                conn.execute(select(Opening.id, Opening.slug).where(Opening.org_id == org_id)).all()
            )
            conn.execute(
                insert(Stage),
                [
                    {
                        "public_id": new_public_id(),
                        "org_id": org_id,
                        "opening_id": opening_id,
                        "name": "Questionnaire",
                        "position": 0,
                        "created_at": start,
                    }
                    for opening_id in openings
                ],
            )
            stages = dict(conn.execute(select(Stage.opening_id, Stage.id)).all())
            questions = []
            for opening_id, stage_id in stages.items():
                common = {"org_id": org_id, "opening_id": opening_id, "stage_id": stage_id}
                for position, (key, kind, label, options) in enumerate(
                    [
                        ("licence", "short_text", "Driving licence number", []),
                        ("vehicle", "single_choice", "Vehicle", ["Car", "Van", "Bike"]),
                        ("years", "number", "Years driving", []),
                    ]
                ):
                    questions.append(
                        {
                            **common,
                            "public_id": new_public_id(),
                            "key": key,
                            "type": kind,
                            "label": label,
                            "help_text": "",
                            "required": position == 0,
                            "options": options,
                            "min_value": 0.0 if kind == "number" else None,
                            "max_value": 80.0 if kind == "number" else None,
                            "position": position,
                            "created_at": start,
                        }
                    )
            conn.execute(insert(Question), questions)
        target = next(i for i, slug in openings.items() if slug == TARGET_SLUG)
        db.engine.dispose()
    return {"org_id": org_id, "opening_id": target, "opening_slug": TARGET_SLUG}


def scalar(database_url: str, sql: str, **params: Any) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(_driver_url(database_url))
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
    """`gunicorn --workers 2 --threads 1` of one WSGI app on a free port, until stop()."""

    def __init__(self, target: str, env: dict[str, str], logdir: Path, name: str):
        self.port = _free_port()
        self.log = logdir / f"{name}.log"
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the client ----------------------------------------------------------------------------


def _ms(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Timing:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    ok: int = 0
    failed: int = 0

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return _ms(self.latencies, 0.95)

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

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, dict, bytes]:
        headers = {"Host": "127.0.0.1"}
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


def time_board(port: int, requests: int, expect_rows: int) -> Timing:
    client = Client(port)
    path = f"/jobs/{ORG_SLUG}"
    for _ in range(20):  # warm both workers: imports, template compile, pool
        client.request("GET", path)
    timing = Timing()
    started = time.perf_counter()
    for _ in range(requests):
        t0 = time.perf_counter()
        status, _, body = client.request("GET", path)
        timing.latencies.append(time.perf_counter() - t0)
        if status == 200 and body.count(b'class="card job"') == expect_rows:
            timing.ok += 1
        else:
            timing.failed += 1
    timing.elapsed = time.perf_counter() - started
    client.close()
    return timing


FIELD = re.compile(rb'name="(q_[a-z0-9]{16})"')
CSRF = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')


def time_applications(
    port: int, prefix: str, threads: int, seconds: float, limit: int
) -> tuple[Timing, int]:
    """threads clients POST applications as fast as they can for `seconds` or `limit` in all.
    Returns the timing and how many distinct emails were sent."""
    path = f"/jobs/{ORG_SLUG}/{TARGET_SLUG}"
    counter = itertools.count()
    lock = threading.Lock()
    timing = Timing()
    errors: list[str] = []
    ready = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(number: int) -> None:
        client = Client(port)
        status, _, page = client.request("GET", path)  # the CSRF cookie and token
        fields = [f.decode() for f in dict.fromkeys(FIELD.findall(page))]
        token = CSRF.search(page)
        if status != 200 or len(fields) != 3 or token is None:
            errors.append(f"client {number}: opening page {status}, fields {fields}")
            ready.wait()
            return
        licence, vehicle, years = fields
        ready.wait()
        mine: list[float] = []
        ok = failed = 0
        while time.perf_counter() < stop_at[0]:
            n = next(counter)
            if n >= limit:
                break
            body = urllib.parse.urlencode(
                {
                    "csrf_token": token.group(1).decode(),
                    "name": f"Bench Applicant {n}",
                    "email": f"{prefix}-{n}@example.com",
                    licence: f"DL-{n:08d}",
                    vehicle: ("Car", "Van", "Bike")[n % 3],
                    years: str(n % 40),
                }
            )
            t0 = time.perf_counter()
            status, headers, data = client.request("POST", path, body)
            mine.append(time.perf_counter() - t0)
            if status in (302, 303) and headers.get("Location", "").endswith("/applied"):
                ok += 1
            else:
                failed += 1
                if len(errors) < 5:
                    errors.append(f"client {number}: POST {status} {data[:200]!r}")
        client.close()
        with lock:
            timing.latencies.extend(mine)
            timing.ok += ok
            timing.failed += failed

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds + 3600  # set properly once all are ready
    ready.wait()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    for thread in pool:
        thread.join()
    timing.elapsed = time.perf_counter() - started
    for error in errors:
        print("  !", error, file=sys.stderr)
    return timing, min(next(counter), limit)


# --- the run -------------------------------------------------------------------------------


def machine(database_url: str) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": scalar(database_url, "SHOW server_version"),
        "gunicorn": version("gunicorn"),
        "platform": platform.platform(),
    }


def row(scenario, timing: Timing, floor: Timing, ratio, ratio_means, target, met, **extra):
    return {
        "scenario": scenario,
        "p50_ms": round(timing.p50, 2),
        "p95_ms": round(timing.p95, 2),
        "throughput_per_s": round(timing.rate, 1),
        "requests": len(timing.latencies),
        "ok": timing.ok,
        "failed": timing.failed,
        "floor": {
            "p50_ms": round(floor.p50, 2),
            "p95_ms": round(floor.p95, 2),
            "throughput_per_s": round(floor.rate, 1),
            "requests": len(floor.latencies),
            "ok": floor.ok,
            "failed": floor.failed,
        },
        "ratio": round(ratio, 2),
        "ratio_means": ratio_means,
        "target": target,
        "met": met,
        **extra,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["scenario", "p50 ms", "p95 ms", "throughput/s", "floor", "ratio", "target", "met?"]
    lines = [head]
    for r in rows:
        f = r["floor"]
        lines.append(
            [
                r["scenario"],
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['throughput_per_s']:.1f}",
                f"p50 {f['p50_ms']:.1f} ms, {f['throughput_per_s']:.1f}/s",
                f"{r['ratio']:.2f}x",
                r["target"],
                "yes" if r["met"] else "NO",
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--board-requests", type=int, default=200)
    parser.add_argument("--apply-threads", type=int, default=4)
    parser.add_argument("--apply-seconds", type=float, default=15.0)
    parser.add_argument("--apply-max", type=int, default=3000)
    args = parser.parse_args(argv)

    base_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    from redis import Redis

    redis = Redis.from_url(redis_url)
    redis.flushdb()

    work = Path(tempfile.mkdtemp(prefix="plutomi-bench-"))
    print(f"database: fresh {DB_NAME}; logs and instance folder in {work}", flush=True)
    database_url = fresh_database(base_url)
    t0 = time.perf_counter()
    target = migrate_and_seed(app_config(database_url, redis_url, work))
    print(f"migrated and seeded {OPENINGS} openings in {time.perf_counter() - t0:.1f} s")

    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "BASE_URL": "http://127.0.0.1",
        "INSTANCE_PATH": str(work / "instance"),
        "UPLOAD_DIR": str(work / "uploads"),
    }
    rows: list[dict[str, Any]] = []
    servers: list[Server] = []
    try:
        floor = Server("bench.floor_app:app", env, work, "floor")
        servers.append(floor)
        app = Server("wsgi:app", env, work, "plutomi")
        servers.append(app)

        board_rows = 200  # applications.BOARD_LIMIT: the board shows the newest 200
        print(f"job board: {args.board_requests} sequential GET /jobs/{ORG_SLUG} ...", flush=True)
        board_floor = time_board(floor.port, args.board_requests, board_rows)
        board_app = time_board(app.port, args.board_requests, board_rows)
        rows.append(
            row(
                "job board",
                board_app,
                board_floor,
                board_app.p50 / board_floor.p50,
                "board p50 / floor p50 (times slower than the floor)",
                f"p95 < {BOARD_TARGET_P95_MS:.0f} ms",
                board_app.p95 < BOARD_TARGET_P95_MS and board_app.failed == 0,
                openings_seeded=OPENINGS,
                openings_rendered=board_rows,
            )
        )

        print(
            f"applications: {args.apply_threads} clients, {args.apply_seconds:.0f} s or "
            f"{args.apply_max} applications ...",
            flush=True,
        )
        apply_floor, _ = time_applications(
            floor.port, "floor", args.apply_threads, args.apply_seconds, args.apply_max
        )
        apply_app, _ = time_applications(
            app.port, "app", args.apply_threads, args.apply_seconds, args.apply_max
        )
        counted = {
            prefix: scalar(
                database_url,
                "SELECT count(*) FROM applicants WHERE opening_id = :o AND email LIKE :p",
                o=target["opening_id"],
                p=f"{prefix}-%",
            )
            for prefix in ("floor", "app")
        }
        queued = redis.llen("rq:queue:default")
        verified = counted["app"] == apply_app.ok and counted["floor"] == apply_floor.ok
        if not verified:
            print(
                f"  ! applicants in the database {counted} differ from the successes "
                f"(app {apply_app.ok}, floor {apply_floor.ok})",
                file=sys.stderr,
            )
        rows.append(
            row(
                "applications/s",
                apply_app,
                apply_floor,
                apply_floor.rate / apply_app.rate if apply_app.rate else float("inf"),
                "floor rate / app rate (times slower than the floor)",
                f"> {APPLY_TARGET_PER_S:.0f}/s",
                apply_app.rate > APPLY_TARGET_PER_S and apply_app.failed == 0 and verified,
                clients=args.apply_threads,
                applicants_in_db=counted,
                verified=verified,
                rq_jobs_queued=queued,
            )
        )
    finally:
        for server in servers:
            server.stop()
        redis.flushdb()

    print()
    print_table(rows)
    info = machine(database_url)
    print(
        f"\n{info['date']}, {info['nproc']} cores, Python {info['python']}, "
        f"PostgreSQL {info['postgresql']}, gunicorn {info['gunicorn']} (--workers 2 --threads 1)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps({"results": rows, "machine": info}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
