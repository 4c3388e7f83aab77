"""Where an application spends its time, in-process: the hosted form's POST and the API's
create with an Idempotency-Key, each with its SQL statements (count and time) and a cProfile of
the Flask test client.

Run after `python -m bench.run --only apply,api` (or `make bench`), which leaves the database
bench_plutomi behind:

    .venv/bin/python -m bench.profile_apply [--requests 200] [--top 30]

Each part's wall and CPU time comes first (bench.profile_board.Timers): CPU time is what a
part costs the web worker, which wall time hides behind the waits for PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import driver_url  # noqa: E402
from bench.profile_board import Statements, Timers  # noqa: E402

# Where an application's time goes, wall and CPU (bench.profile_board.Timers).
PARTS = [
    ("plutomi.services.api_keys", "authenticate", "api: the key (the first query)"),
    ("plutomi.services.throttle", "rate_limit", "api: the rate limit (Redis)"),
    ("plutomi.services.idempotency", "claim", "api: the idempotency key's claim"),
    ("plutomi.services.idempotency", "keep", "api: the response kept"),
    ("plutomi.services.applications", "org_and_opening", "form: the first read"),
    ("plutomi.services.applications", "opening_of_org", "api: the opening's read"),
    ("plutomi.services.applications", "apply", "applications.apply"),
    ("plutomi.services.applications", "_insert_applicant", "apply: the applicant first"),
    ("plutomi.services.applications", "_mail_link", "apply: the rows, link and email"),
    ("plutomi.services.mail", "rendered_row", "apply: the email rendered"),
    ("plutomi.services.inserts", "rows", "apply: inserts.rows"),
    ("plutomi.services.applications", "commit_keeping_loaded", "apply: the commit"),
    ("plutomi.services.outbox", "enqueue", "after commit: the RQ hand-off"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=30, help="cProfile lines (0: none)")
    parser.add_argument("--dump", help="write each cProfile to DUMP-form.prof and DUMP-api.prof")
    args = parser.parse_args(argv)

    from bench.api import QUESTION_KEYS, seed
    from bench.run import FIELD, ORG_SLUG, SECRET_KEY, TARGET_SLUG, bench_url

    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    config = {
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": driver_url(bench_url(base)),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
        "WTF_CSRF_ENABLED": False,
        "API_RATE_LIMIT": 10**9,
    }
    from sqlalchemy import select

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Opening

    app = create_app(config)
    with app.app_context():
        opening_id = db.session.scalar(select(Opening.id).where(Opening.slug == TARGET_SLUG))
    seeded = seed(config, {"opening_id": opening_id}, 1)
    statements = Statements(_engine(app))
    client = app.test_client()
    form_path = f"/jobs/{ORG_SLUG}/{TARGET_SLUG}"
    fields = list(dict.fromkeys(f.decode() for f in FIELD.findall(client.get(form_path).data)))
    api_path = f"/api/v1/openings/{seeded['opening_pid']}/applicants"
    run = uuid.uuid4().hex[:8]
    numbers = itertools.count()

    def form() -> None:
        n = next(numbers)
        licence, vehicle, years = fields
        response = client.post(
            form_path,
            data={
                "name": f"Profiled {n}",
                "email": f"profile-{run}-{n}@example.com",
                licence: f"DL-{n:08d}",
                vehicle: ("Car", "Van", "Bike")[n % 3],
                years: str(n % 40),
            },
        )
        assert response.status_code in (302, 303), response.status_code

    def api() -> None:
        n = next(numbers)
        values = (f"DL-{n:08d}", ("Car", "Van", "Bike")[n % 3], n % 40)
        answers = dict(zip(QUESTION_KEYS, values, strict=True))
        response = client.post(
            api_path,
            data=json.dumps(
                {"name": f"API {n}", "email": f"api-{run}-{n}@example.com", "answers": answers}
            ),
            headers={
                "Authorization": f"Bearer {seeded['tokens'][0]}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 201, (response.status_code, response.data[:300])

    timers = Timers(PARTS)
    for name, label, call in (
        ("form", "POST the application form", form),
        ("api", "POST the API", api),
    ):
        for _ in range(10):
            call()
        print(f"\n{label}:")
        timers.on = statements.on = True
        statements.count = 0
        statements.by_sql.clear()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.requests):
            call()
        timers.report(args.requests, time.perf_counter() - started, time.process_time() - cpu)
        timers.on = statements.on = False
        timers.spent.clear()
        statements.report(args.requests)
        if not args.top:
            continue
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            call()
        profiler.disable()
        if args.dump:
            profiler.dump_stats(f"{args.dump}-{name}.prof")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


def _engine(app):
    from plutomi.extensions import db

    with app.app_context():
        return db.engine


if __name__ == "__main__":
    raise SystemExit(main())
