"""The query plans of the stage board and the outbox claim at full size, as PostgreSQL runs
them: `EXPLAIN (ANALYZE, BUFFERS)` of every statement one board read and one claim send.

Run after `make bench` (which leaves the database bench_plutomi behind, with the 100,000-card
board and the generated million applicants):

    .venv/bin/python -m bench.plans

The timer sweep's plans are printed by the timers scenario itself. Exits non-zero when a plan
reads a big table (applicants, answers, events, applicant_tags, outbox) of at least LARGE_ROWS
rows by a sequential scan (a quick run's small tables are rightly read whole).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import captured_statements, explain_sent  # noqa: E402
from bench.stage_board import OPENING_SLUG, PASSWORD  # noqa: E402

BIG = ("applicants", "answers", "events", "applicant_tags", "outbox")
SCAN = re.compile(r"Seq Scan on (\w+)")
LARGE_ROWS = 10_000


def main() -> int:
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from bench.run import app_config, bench_url
    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Membership, Opening, OutboxMessage, OutboxState, Role, User
    from plutomi.services import outbox

    url = bench_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    config = app_config(url, redis_url, Path(tempfile.mkdtemp(prefix="plutomi-plans-")))
    app = create_app({**config, "WTF_CSRF_ENABLED": False, "OUTBOX_HANDOFF": False})

    with app.app_context():
        opening = db.session.scalar(select(Opening).where(Opening.slug == OPENING_SLUG))
        recruiter = db.session.scalar(
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == opening.org_id, Membership.role == Role.RECRUITER)
        )
        pending = list(
            db.session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.state == OutboxState.PENDING)
                .limit(outbox.BATCH)
            )
        )
        path = f"/openings/{opening.public_id}/board"
        db.session.remove()
        if not pending:
            print("no pending outbox rows to claim: run make bench first", file=sys.stderr)
            return 2
        client = app.test_client()
        client.post("/login", data={"email": recruiter, "password": PASSWORD})
        with captured_statements(db.engine) as board:
            assert client.get(path).status_code == 200
        # The claim commits: here inside a transaction rolled back after, so the rows stay
        # pending and the plans below are of a real claim.
        with db.engine.connect() as conn:
            outer = conn.begin()
            db.session.registry.set(Session(bind=conn, join_transaction_mode="create_savepoint"))
            try:
                with captured_statements(db.engine) as claim:
                    outbox.claim(pending)
            finally:
                db.session.remove()
                outer.rollback()

    scans = []
    for title, statements in [
        (f"GET {path} (100,000 cards in one stage)", board),
        (f"outbox.claim of {len(pending)} pending rows", claim),
    ]:
        print(f"\n== {title}")
        for plan in explain_sent(url, "", statements):
            print(plan)
            scans += [t for t in SCAN.findall(plan) if t in BIG]
    # A small table (a quick run's) is rightly read whole; at full size none may be.
    with app.app_context():
        sizes = dict(
            db.session.execute(
                text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
                {"names": sorted(set(scans))},
            ).all()
        )
    scanned = sorted(name for name in set(scans) if sizes.get(name, 0) >= LARGE_ROWS)
    if scanned:
        print(f"\nsequential scans of big tables: {', '.join(scanned)}")
        return 1
    print("\nno sequential scan of a big table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
