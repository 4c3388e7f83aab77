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
import itertools
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py`
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CSRF,
    Client,
    Server,
    Timing,
    added_timings,
    cpu_times,
    driver_url,
    floor_and_app,
    interleaved,
    row,
    run_threads,
    scalar,
    server_env,
    steal_share,
    time_gets,
    vacuum_url,
    with_server_times,
)

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


def bench_url(base_url: str) -> str:
    """The URL of bench_plutomi on base_url's server."""
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{DB_NAME}"))


def fresh_database(base_url: str) -> str:
    """Drop and recreate bench_plutomi on base_url's server; returns its postgresql:// URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(driver_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    return bench_url(base_url)


def app_config(database_url: str, redis_url: str, instance: Path) -> dict[str, Any]:
    return {
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": driver_url(database_url),
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


# --- the client ----------------------------------------------------------------------------


def time_board(port: int, requests: int, expect_rows: int) -> Timing:
    """The job board, `requests` GETs in a row after 20 to warm both workers (imports,
    template compile, pool); a success is a 200 with every opening it should list."""

    def check(status: int, body: bytes) -> str | None:
        found = body.count(b'class="card job"')
        return None if status == 200 and found == expect_rows else f"{status}, {found} openings"

    client = Client(port)
    try:
        return time_gets(client, f"/jobs/{ORG_SLUG}", requests, float("inf"), 20, check)
    finally:
        client.close()


FIELD = re.compile(rb'name="(q_[a-z0-9]{16})"')


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

    timing.elapsed = run_threads(worker, threads, ready, stop_at, seconds)
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
        **code_version(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the app's code had uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "plutomi", "templates", "migrations")
    return {"commit": git("rev-parse", "--short", "HEAD"), "app_uncommitted_changes": bool(changed)}


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["scenario", "p50 ms", "p95 ms", "srv p50", "srv p95", "throughput/s", "floor"]
    head += ["ratio", "target", "met?", "steal"]
    lines = [head]
    for r in rows:
        f = r["floor"]
        lines.append(
            [
                r["scenario"],
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['server_p50_ms']:.1f}",
                f"{r['server_p95_ms']:.1f}",
                f"{r['throughput_per_s']:.1f}",
                f"p50 {f['p50_ms']:.1f} ms, srv p95 {f['server_p95_ms']:.1f} ms, "
                f"{f['throughput_per_s']:.1f}/s",
                f"{r['ratio']:.2f}x",
                r["target"],
                "yes" if r["met"] else "NO",
                "" if r["cpu_steal_share"] is None else f"{100 * r['cpu_steal_share']:.0f}%",
            ]
        )
    _print_lines(lines)
    _print_cpu(rows)


def _print_lines(lines: list[list[str]]) -> None:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    for i, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _print_cpu(rows: list[dict[str, Any]]) -> None:
    """CPU ms a request, by who spent it, where the scenario measured it: a rate target is a
    budget of 2 cores' worth of CPU seconds a second, shared by all three."""
    parts = ("web", "db", "client")

    def cells(cpu: dict[str, float | None]) -> list[str]:
        values = [cpu.get(f"{part}_cpu_ms_per_request") for part in parts]
        total = None if None in values else sum(values)
        return ["-" if v is None else f"{v:.2f}" for v in (*values, total)]

    lines = [["CPU ms a request", "web", "database", "clients", "all"]]
    lines[0] += ["floor: web", "database", "clients", "all"]
    for r in rows:
        if r.get("cpu_per_request", {}).get("web_cpu_ms_per_request") is not None:
            lines.append([r["scenario"], *cells(r["cpu_per_request"])])
            lines[-1] += cells(r["floor"].get("cpu_per_request", {}))
    if len(lines) > 1:
        print()
        _print_lines(lines)


SCENARIOS = ("jobs", "apply", "api", "board", "moves", "page", "timers", "emails", "webhooks")
GENERATE_TARGET_S = 300
SQLITE_SET = ("jobs", "apply", "page")
WEB_RSS_TARGET_MB = 200
WORKER_RSS_TARGET_MB = 250


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--board-requests", type=int, default=200)
    parser.add_argument("--apply-threads", type=int, default=4)
    parser.add_argument("--apply-seconds", type=float, default=15.0)
    parser.add_argument("--apply-max", type=int, default=3000)
    parser.add_argument(
        "--apply-rounds", type=int, default=4, help="turns each app takes, in turn (4)"
    )
    parser.add_argument("--api-threads", type=int, default=4, help="API clients (4)")
    parser.add_argument("--api-seconds", type=float, default=15.0, help="at most, per app (15)")
    parser.add_argument(
        "--api-rounds", type=int, default=4, help="turns each app takes, in turn (4)"
    )
    parser.add_argument(
        "--api-max", type=int, default=3000, help="applicants each app creates, at most (3000)"
    )
    parser.add_argument(
        "--api-replay-share",
        type=float,
        default=0.05,
        help="share of the API requests that repeat an earlier one's Idempotency-Key (0.05)",
    )
    parser.add_argument(
        "--api-keys",
        type=int,
        default=16,
        help="write API keys the clients share out (16: each key is rate-limited per minute)",
    )
    parser.add_argument(
        "--board-applicants",
        type=int,
        default=100_000,
        help="cards in the stage board's big stage (default 100000)",
    )
    parser.add_argument("--stage-board-requests", type=int, default=200)
    parser.add_argument(
        "--stage-board-seconds", type=float, default=30.0, help="at most, per app (default 30)"
    )
    parser.add_argument("--move-requests", type=int, default=300, help="single moves, in a row")
    parser.add_argument(
        "--move-single-seconds",
        type=float,
        default=20.0,
        help="at most, per app, for the single moves (default 20)",
    )
    parser.add_argument("--move-threads", type=int, default=4)
    parser.add_argument("--move-seconds", type=float, default=10.0)
    parser.add_argument("--move-max", type=int, default=10_000)
    parser.add_argument(
        "--move-cards",
        type=int,
        default=24,
        help="cards each moves run moves, round and round (default 24)",
    )
    parser.add_argument(
        "--move-users",
        type=int,
        default=24,
        help="recruiters each move thread rotates through (moves are rate-limited per user)",
    )
    parser.add_argument(
        "--timer-applicants",
        type=int,
        default=1_000_000,
        help="applicants of the timers scenario, each with a pending timer (default 1000000)",
    )
    parser.add_argument(
        "--timer-due",
        type=int,
        default=100_000,
        help="timers due at once for the worker, and again for the floor (default 100000)",
    )
    parser.add_argument(
        "--timer-idle-calls", type=int, default=200, help="calls timed of the idle sweep (200)"
    )
    parser.add_argument("--timer-profile", help="write a cProfile of the timers worker here")
    parser.add_argument(
        "--email-messages", type=int, default=2000, help="emails the worker delivers (2000)"
    )
    parser.add_argument(
        "--webhook-deliveries",
        type=int,
        default=10_000,
        help="webhook outbox rows the worker delivers (10000)",
    )
    parser.add_argument(
        "--generate",
        type=int,
        help="applicants bench/generate adds before the scenarios (default 1000000 when the"
        " applicant page runs, else none; 0: none)",
    )
    parser.add_argument("--generate-orgs", type=int, default=100)
    parser.add_argument(
        "--generate-biggest", type=int, default=100_000, help="the biggest generated opening"
    )
    parser.add_argument(
        "--sqlite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after PostgreSQL, the smaller set on SQLite (job board, applications and the"
        " applicant page, of those --only names; default on)",
    )
    parser.add_argument(
        "--sqlite-generate", type=int, default=20_000, help="the SQLite set's generated applicants"
    )
    parser.add_argument("--page-requests", type=int, default=200, help="applicant page GETs")
    parser.add_argument("--page-seconds", type=float, default=30.0, help="at most, per app")
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if args.generate is None:
        args.generate = 1_000_000 if "page" in only else 0
    if args.generate and args.generate_biggest < 1:
        parser.error("--generate-biggest must be at least 1: the heavy applicant is its first")
    if args.sqlite and "page" in only and args.sqlite_generate < 10:
        parser.error("--sqlite-generate must be at least 10 (a tenth go to the biggest opening)")
    if "page" in only and args.generate <= 0:
        parser.error("the applicant page reads the generated data set: --generate must be > 0")
    if unknown := only - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.move_cards < args.move_threads:
        parser.error("--move-cards must be at least --move-threads: a thread moves its own cards")
    if "timers" in only and not 0 < 2 * args.timer_due <= args.timer_applicants:
        parser.error("--timer-applicants must hold two due sets of --timer-due")

    base_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    from redis import Redis

    from bench import stage_board

    redis = Redis.from_url(redis_url)
    redis.flushdb()

    started_run = time.perf_counter()
    load_before = os.getloadavg()
    cpu_before = cpu_times()
    work = Path(tempfile.mkdtemp(prefix="plutomi-bench-"))
    print(f"database: fresh {DB_NAME}; logs and instance folder in {work}", flush=True)
    database_url = fresh_database(base_url)
    t0 = time.perf_counter()
    config = app_config(database_url, redis_url, work)
    target = migrate_and_seed(config)
    print(f"migrated and seeded {OPENINGS} openings in {time.perf_counter() - t0:.1f} s")
    generated = None
    if args.generate:
        from bench.generate import generate

        print(
            f"generating {args.generate:,} applicants across {args.generate_orgs} orgs ...",
            flush=True,
        )
        generated = generate(
            database_url,
            args.generate,
            args.generate_orgs,
            min(args.generate_biggest, args.generate),
            log=lambda line: print(line, flush=True),
        )
        print(
            f"generated in {generated.seconds:.1f} s (target < {GENERATE_TARGET_S} s): "
            + ", ".join(f"{n:,} {table}" for table, n in generated.counts.items()),
            flush=True,
        )
    board = None
    if only & {"board", "moves"}:
        board = stage_board.seed(
            config,
            target["org_id"],
            args.board_applicants,
            movers=4 * args.move_cards,
            users=max(1, args.move_threads * args.move_users),
        )
        print(
            f"seeded a board of {args.board_applicants:,} + "
            f"{sum(n for _, n in stage_board.SMALL_STAGES)} applicants (answers, tags, events) "
            f"and {len(board.users)} recruiters in {board.seconds:.1f} s",
            flush=True,
        )

    env = server_env(database_url, redis_url, SECRET_KEY, work)
    rows: list[dict[str, Any]] = []
    try:
        with floor_and_app(env, work) as (floor, app):
            if "jobs" in only:
                rows.append(job_board(args, floor, app))
            if "apply" in only:
                rows.append(applications(args, floor, app, target, database_url, redis))
            if "api" in only:
                from bench import api

                rows += api.scenario(args, floor, app, config, target)
            if "board" in only:
                rows.append(stage_board_scenario(args, floor, app, board))
            if "moves" in only:
                rows += moves_scenarios(args, floor, app, board, database_url)
            if "page" in only:
                from bench import applicant_page

                rows.append(applicant_page.scenario(args, floor, app, generated))
            if "timers" in only:
                from bench import timers

                rows += timers.scenarios(args, config, target["org_id"], env)
            if "emails" in only:
                from bench import emails

                rows.append(emails.scenario(args, config, target))
            if "webhooks" in only:
                from bench import webhooks

                rows.append(webhooks.scenario(args, config, target))
            # Plutomi's web workers, at their largest since the API scenario started their peak
            # again (or since they started): under every load the web served.
            web_peak = app.peak_rss_mb()
    finally:
        redis.flushdb()
    memory = memory_summary(rows, web_peak)

    sqlite_error = None
    if args.sqlite and only & set(SQLITE_SET):
        # The PostgreSQL results stand whatever happens to the SQLite set: it is reported.
        try:
            rows += sqlite_set(args, only, redis, redis_url, work)
        except Exception as exc:  # reported in the table's place, not lost
            sqlite_error = f"{type(exc).__name__}: {exc}"
            print(f"  ! the SQLite set failed: {sqlite_error}", file=sys.stderr)
    print()
    print_table(rows)
    print(memory_line(memory))
    info = machine(database_url)
    info["memory"] = memory
    if sqlite_error:
        info["sqlite_error"] = sqlite_error
    info["run_seconds"] = round(time.perf_counter() - started_run, 1)
    # Anything else running (a test suite, say) shares the cores: worth knowing next to the
    # numbers. Load averages over 1, 5 and 15 minutes, when the run started and ended.
    info["loadavg_start"] = [round(x, 2) for x in load_before]
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if generated is not None:
        info["generated"] = {
            "seconds": generated.seconds,
            "target_seconds": GENERATE_TARGET_S,
            "met": generated.seconds < GENERATE_TARGET_S,
            "counts": generated.counts,
            "phases": generated.phases,
        }
    steal = steal_share(cpu_before, cpu_times())
    info["cpu_steal_share"] = round(steal, 3) if steal is not None else None
    print(
        f"\n{info['date']}, {info['nproc']} cores, Python {info['python']}, "
        f"PostgreSQL {info['postgresql']}, gunicorn {info['gunicorn']} (--workers 2 --threads 1);"
        f" commit {info['commit']}"
        f"{' + uncommitted app changes' if info['app_uncommitted_changes'] else ''};"
        f" the run took {info['run_seconds']:.0f} s; load average {info['loadavg_start'][0]:.1f}"
        f" at the start, {info['loadavg_end'][0]:.1f} at the end"
        + (f"; CPU steal {100 * steal:.0f}% of the run" if steal is not None else "")
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps({"results": rows, "machine": info}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


def memory_summary(rows: list[dict[str, Any]], web_peak: float | None) -> dict[str, Any]:
    """Peak RSS of a web worker and of a worker process under the loads above, against the
    targets: the web's from its gunicorn workers, the worker's from the timer engine's and the
    webhook worker's own processes (each a fresh process, as an RQ worker's job runs in).
    A figure not measured (its scenarios did not run) is None, and so is its verdict."""
    workers = {
        name: r[key]
        for r in rows
        for name, key in (("timers", "engine_rss_mb"), ("webhooks", "worker_rss_mb"))
        if key in r
    }
    worker_peak = max(workers.values(), default=None)
    return {
        "web_peak_rss_mb": web_peak,
        "web_met": None if web_peak is None else web_peak < WEB_RSS_TARGET_MB,
        "worker_peak_rss_mb": worker_peak,
        "workers": workers,
        "worker_met": None if worker_peak is None else worker_peak < WORKER_RSS_TARGET_MB,
    }


def memory_line(memory: dict[str, Any]) -> str:
    def part(name: str, peak: float | None, target: int, met: bool | None, extra: str = "") -> str:
        if peak is None:
            return f"{name} peak RSS not measured"
        verdict = "yes" if met else "NO"
        return f"{name} peak RSS {peak:.0f} MB ({extra}target < {target} MB: {verdict})"

    each = ", ".join(f"{name} {mb:.0f}" for name, mb in memory["workers"].items())
    return "memory: " + "; ".join(
        [
            part("web", memory["web_peak_rss_mb"], WEB_RSS_TARGET_MB, memory["web_met"]),
            part(
                "worker",
                memory["worker_peak_rss_mb"],
                WORKER_RSS_TARGET_MB,
                memory["worker_met"],
                f"{each}; " if each else "",
            ),
        ]
    )


def sqlite_set(args, only: set[str], redis, redis_url: str, work: Path) -> list[dict[str, Any]]:
    """The smaller set on SQLite (a file in the work folder, the app's default store): the job
    board, applications and the applicant page, on a fresh migrated database with the same
    seed and a generated set of --sqlite-generate applicants, each beside the same floor."""
    from bench import applicant_page
    from bench.generate import generate

    redis.flushdb()
    database_url = f"sqlite:///{work / 'bench.sqlite'}"
    print(f"\nSQLite: {database_url}", flush=True)
    config = app_config(database_url, redis_url, work / "sqlite")
    target = migrate_and_seed(config)
    generated = None
    if "page" in only:
        generated = generate(
            database_url,
            args.sqlite_generate,
            orgs=max(1, args.sqlite_generate // 10_000),
            biggest=args.sqlite_generate // 10,
            log=lambda line: print(line, flush=True),
        )
        print(f"generated {args.sqlite_generate:,} applicants in {generated.seconds:.1f} s")
    env = server_env(database_url, redis_url, SECRET_KEY, work / "sqlite")
    rows: list[dict[str, Any]] = []
    try:
        with floor_and_app(env, work, "sqlite-") as (floor, app):
            if "jobs" in only:
                rows.append(job_board(args, floor, app))
            if "apply" in only:
                rows.append(applications(args, floor, app, target, database_url, redis))
            if generated is not None:
                rows.append(applicant_page.scenario(args, floor, app, generated))
    finally:
        redis.flushdb()
    for result in rows:
        result["scenario"] = f"sqlite: {result['scenario']}"
        result["backend"] = "sqlite"
    return rows


def job_board(args, floor: Server, app: Server) -> dict[str, Any]:
    board_rows = 200  # applications.BOARD_LIMIT: the board shows the newest 200
    print(f"job board: {args.board_requests} sequential GET /jobs/{ORG_SLUG} ...", flush=True)
    path = f"/jobs/{ORG_SLUG}"
    board_floor = with_server_times(
        floor, "GET", path, lambda: time_board(floor.port, args.board_requests, board_rows)
    )
    board_app = with_server_times(
        app, "GET", path, lambda: time_board(app.port, args.board_requests, board_rows)
    )
    return row(
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


def applications(args, floor: Server, app: Server, target, database_url, redis) -> dict[str, Any]:
    rounds = max(1, args.apply_rounds)
    print(
        f"applications: {args.apply_threads} clients, {args.apply_seconds:.0f} s or "
        f"{args.apply_max} applications, in {rounds} turns each ...",
        flush=True,
    )
    path = f"/jobs/{ORG_SLUG}/{TARGET_SLUG}"
    servers = {"floor": floor, "app": app}

    def turn(prefix: str) -> Callable[[int], Timing]:
        server = servers[prefix]

        def run(r: int) -> Timing:
            # Each turn's emails are its own: "app-r2-17@...".
            return time_applications(
                server.port,
                f"{prefix}-r{r}",
                args.apply_threads,
                args.apply_seconds / rounds,
                -(-args.apply_max // rounds),
            )[0]

        return lambda r: with_server_times(server, "POST", path, lambda: run(r))

    timed = interleaved({"floor": turn("floor"), "app": turn("app")}, rounds, added_timings)
    apply_floor, apply_app = timed["floor"], timed["app"]
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
    return row(
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


def stage_board_scenario(args, floor: Server, app: Server, board) -> dict[str, Any]:
    from bench import stage_board

    path = f"/openings/{board.opening_pid}/board"
    print(
        f"stage board: {args.stage_board_requests} sequential GET {path} "
        f"({board.applicants:,} cards in one stage) ...",
        flush=True,
    )
    recruiter = stage_board.log_in(app.port, board.users[:1])[0]

    def run(server: Server, client: Client) -> Timing:
        return with_server_times(
            server,
            "GET",
            path,
            lambda: stage_board.time_board(
                client,
                path,
                args.stage_board_requests,
                args.stage_board_seconds,
                board.cards_on_page,
                board.applicants,
            ),
        )

    board_floor = run(floor, Client(floor.port))
    board_app = run(app, recruiter)
    target_ms = stage_board.BOARD_TARGET_P95_MS
    return row(
        f"board, {board.applicants // 1000}k",
        board_app,
        board_floor,
        board_app.p50 / board_floor.p50,
        "board p50 / floor p50 (times slower than the floor)",
        f"srv p95 < {target_ms:.0f} ms",
        board_app.server_p95 < target_ms and board_app.failed == 0,
        applicants_in_big_stage=board.applicants,
        stages=len(board.stages),
        cards_rendered=board.cards_on_page,
    )


def moves_scenarios(args, floor: Server, app: Server, board, database_url) -> list[dict]:
    from bench import stage_board

    threads, users = args.move_threads, args.move_users
    print(f"moves: logging in {threads * users} recruiters ...", flush=True)
    recruiters = stage_board.log_in(app.port, board.users[: threads * users])
    app_pools = [recruiters[i * users : (i + 1) * users] for i in range(threads)]
    floor_pools = [[Client(floor.port)] for _ in range(threads)]
    suffix = "/board/move"

    # Each run moves its own quarter of the movers, all still in the big stage when it starts;
    # the threads' random choices are seeded alike, so the floor's run and Plutomi's make the
    # same kinds of move in the same order.
    groups = iter([board.movers[i::4] for i in range(4)])

    def run(server: Server, pools, seconds: float, limit: int):
        movers = next(groups)
        vacuum_url(database_url, "applicants, events")
        state = stage_board.mover_state(database_url, movers)
        before = stage_board.newest_event(database_url)
        timing = with_server_times(
            server,
            "POST",
            suffix,
            lambda: stage_board.time_moves(
                pools, board, movers, state, seconds, limit, database_url
            ),
        )
        events = stage_board.events_since(database_url, before)
        if events != timing.ok:
            print(f"  ! {events} move events for {timing.ok} moves", file=sys.stderr)
        return timing, events

    print(
        f"moves: {args.move_requests} single moves in a row (at most "
        f"{args.move_single_seconds:.0f} s each) ...",
        flush=True,
    )
    single_floor, floor_events = run(
        floor, floor_pools[:1], args.move_single_seconds, args.move_requests
    )
    single_app, app_events = run(app, app_pools[:1], args.move_single_seconds, args.move_requests)
    verified = floor_events == single_floor.ok and app_events == single_app.ok
    target_ms = stage_board.MOVE_TARGET_P95_MS
    rows = [
        row(
            "move",
            single_app,
            single_floor,
            single_app.p50 / single_floor.p50,
            "move p50 / floor p50 (times slower than the floor)",
            f"srv p95 < {target_ms:.0f} ms",
            single_app.server_p95 < target_ms and single_app.failed == 0 and verified,
            **stage_board.move_extra(single_app, single_floor, app_events, floor_events),
            verified=verified,
        )
    ]
    print(
        f"moves/s: {threads} clients ({users} recruiters each), {args.move_seconds:.0f} s or "
        f"{args.move_max} moves ...",
        flush=True,
    )
    many_floor, floor_events = run(floor, floor_pools, args.move_seconds, args.move_max)
    many_app, app_events = run(app, app_pools, args.move_seconds, args.move_max)
    verified = floor_events == many_floor.ok and app_events == many_app.ok
    target_rate = stage_board.MOVES_TARGET_PER_S
    rows.append(
        row(
            "moves/s",
            many_app,
            many_floor,
            many_floor.rate / many_app.rate if many_app.rate else float("inf"),
            "floor rate / app rate (times slower than the floor)",
            f">= {target_rate:.0f}/s",
            many_app.rate >= target_rate and many_app.failed == 0 and verified,
            clients=threads,
            recruiters=threads * users,
            **stage_board.move_extra(many_app, many_floor, app_events, floor_events),
            verified=verified,
        )
    )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
