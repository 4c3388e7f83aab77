"""Where a board read or a move spends its time, in-process: SQL statements (count and time,
through SQLAlchemy's cursor events) and a cProfile of the Flask test client.

Run after `make bench` (or `python -m bench.run --only board,moves`), which leaves the
database bench_plutomi behind:

    .venv/bin/python -m bench.profile_board [--requests 50] [--moves 50] [--top 25] [--sort tottime]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import driver_url  # noqa: E402
from bench.stage_board import OPENING_SLUG, PASSWORD  # noqa: E402

# Moves made before the timed ones.
WARM_MOVES = 10


class Statements:
    """Every statement's SQL (its first 150 characters) and time, while `on`."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.on = False
        self.by_sql: dict[str, list[float]] = defaultdict(list)
        self.count = 0

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info.setdefault("t0", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            took = time.perf_counter() - conn.info["t0"].pop()
            if self.on:
                self.count += 1
                key = re.sub(r"\s+", " ", statement)[:150]
                self.by_sql[key].append(took)

    def report(self, requests: int) -> None:
        total = sum(sum(v) for v in self.by_sql.values())
        print(
            f"  {self.count / requests:.1f} statements a request, "
            f"{1000 * total / requests:.2f} ms a request in the driver and PostgreSQL"
        )
        rows = sorted(self.by_sql.items(), key=lambda kv: -sum(kv[1]))
        for sql, times in rows[:20]:
            print(f"  {len(times) / requests:4.1f}x {1000 * sum(times) / requests:7.2f} ms  {sql}")


class Timers:
    """Wall and CPU time of chosen functions, by wrapping them where the code looks them up:
    no profiler overhead, so these add up to the request. CPU time (this process's) shows
    what a function costs the web worker; wall time adds its waits for the database and
    Redis. `parts`: (module, attribute, label) of each function."""

    PARTS = [
        ("plutomi.services.accounts", "load_session", "the session and user (the first query)"),
        ("plutomi.services.board", "board_opening", "the opening, stages, rules, questions"),
        ("plutomi.board.routes", "render_template", "render templates"),
        ("plutomi.services.moves", "move", "moves.move (the write and commit)"),
        ("plutomi.services.moves", "_read_drop", "move: the drop read"),
        ("plutomi.services.moves", "_write_and_record", "move: the write and its event"),
        ("plutomi.services.board", "stages_of", "board: stages"),
        ("plutomi.services.board", "board_questions", "board: card/filter questions"),
        ("plutomi.services.board", "counts", "board: counts per stage"),
        ("plutomi.services.board", "first_pages", "board: first pages (UNION ALL)"),
        ("plutomi.services.board", "dress", "dress: duplicates, answers, tags"),
        ("plutomi.services.tags", "org_tags", "filter: the org's tags"),
        ("plutomi.services.board", "cursor", "board: live cursor"),
        ("plutomi.services.board", "moved_card", "move: the moved card, dressed"),
    ]

    def __init__(self, parts: list[tuple[str, str, str]] | None = None):
        import importlib

        self.spent: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.on = False
        for module_name, attr, label in parts or self.PARTS:
            module = importlib.import_module(module_name)
            original = getattr(module, attr, None)
            if original is not None:
                setattr(module, attr, self._wrap(original, label))

    def _wrap(self, function, label: str):
        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                if self.on:
                    took = (time.perf_counter() - t0, time.process_time() - c0)
                    self.spent[label].append(took)

        return timed

    def report(self, requests: int, total: float, cpu: float | None = None) -> None:
        """Each part's wall and CPU ms a request (total, cpu: the whole loop's)."""
        line = f"  {1000 * total / requests:.1f} ms a request (test client, no profiler)"
        print(line + (f", {1000 * cpu / requests:.1f} ms of it CPU" if cpu is not None else ""))
        print("     wall      CPU  calls")
        for label, times in self.spent.items():
            wall, used = sum(t for t, _ in times), sum(c for _, c in times)
            print(
                f"  {1000 * wall / requests:7.2f} {1000 * used / requests:8.2f}"
                f"  {len(times) / requests:4.1f}x  {label}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument(
        "--top", type=int, default=25, help="cProfile lines to show (0: no SQL counts or cProfile)"
    )
    parser.add_argument(
        "--sort", default="cumulative", help="cProfile order: cumulative, or tottime for own time"
    )
    args = parser.parse_args(argv)

    from bench.run import SECRET_KEY, bench_url

    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    url = bench_url(base)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    from sqlalchemy import select

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Applicant, Opening, Stage
    from plutomi.services import moves

    # One recruiter makes every profiled move: the per-user rate limit would refuse most.
    moves.MOVES_PER_WINDOW = 10**6

    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": driver_url(url),
            "REDIS_URL": redis_url,
            "WTF_CSRF_ENABLED": False,
            "TESTING": True,
        }
    )
    with app.app_context():
        opening = db.session.scalar(select(Opening).where(Opening.slug == OPENING_SLUG))
        stages = list(
            db.session.scalars(
                select(Stage).where(Stage.opening_id == opening.id).order_by(Stage.position)
            )
        )
        statements = Statements(db.engine)
        # Cards that are nobody's anchor: the last ones of the big stage, and their neighbours.
        big_cards = list(
            db.session.execute(
                select(Applicant.public_id, Applicant.version)
                .where(Applicant.stage_id == stages[0].id)
                .order_by(Applicant.rank.desc())
                .limit(2 * args.moves + WARM_MOVES + 2)
            )
        )
        small = {
            stage.public_id: list(
                db.session.scalars(
                    select(Applicant.public_id).where(Applicant.stage_id == stage.id).limit(20)
                )
            )
            for stage in stages[1:]
        }
        opening_pid = opening.public_id
        db.session.remove()

    timers = Timers()
    client = app.test_client()
    response = client.post(
        "/login", data={"email": "recruiter-000@bench.example", "password": PASSWORD}
    )
    assert response.status_code in (302, 303), response.status_code
    path = f"/openings/{opening_pid}/board"
    for _ in range(5):
        client.get(path)

    def profile(label: str, requests: int, call) -> None:
        print(f"\n{label}:")
        timers.on = statements.on = True
        statements.count = 0
        statements.by_sql.clear()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            call()
        timers.report(requests, time.perf_counter() - started, time.process_time() - cpu)
        statements.report(requests)
        timers.on = statements.on = False
        timers.spent.clear()
        if not args.top:
            return
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests):
            call()
        profiler.disable()
        took = time.perf_counter() - started
        print(f"  {1000 * took / requests:.1f} ms a request under cProfile")
        stats = pstats.Stats(profiler)
        stats.sort_stats(args.sort).print_stats(args.top)

    def board() -> None:
        assert client.get(path).status_code == 200

    rng = random.Random(1)
    versions: dict[str, Any] = dict(big_cards)

    moved = iter(big_cards)

    def move() -> None:
        pid = next(moved)[0]
        target = rng.choice(list(small))
        response = client.post(
            f"{path}/move",
            data={
                "applicant": pid,
                "stage": target,
                "after": rng.choice(small[target]),
                "version": versions[pid],
            },
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 200, response.status_code

    profile(f"GET {path}", args.requests, board)
    for _ in range(WARM_MOVES):  # a statement's first run compiles it: not a move's cost
        move()
    profile("POST .../board/move (big stage -> a small one)", min(args.moves, 50), move)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
