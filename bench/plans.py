"""The query plans of the stage board and the outbox claim at full size, as PostgreSQL runs
them: `EXPLAIN (ANALYZE, BUFFERS)` of every statement one board read and one claim send.

Run after `make bench` (which leaves the database bench_plutomi behind, with the 100,000-card
board and the generated million applicants):

    .venv/bin/python -m bench.plans

The timer sweep's plans are printed by the timers scenario itself. Exits non-zero when a plan
reads a big table (applicants, answers, events, applicant_tags, outbox) by a sequential scan.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import driver_url, explain_sent  # noqa: E402
from bench.stage_board import OPENING_SLUG, PASSWORD  # noqa: E402

BIG = ("applicants", "answers", "events", "applicant_tags", "outbox")
SCAN = re.compile(r"Seq Scan on (\w+)")


def main() -> int:
    from sqlalchemy import event, select

    from bench.run import DB_NAME, SECRET_KEY
    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Membership, Opening, OutboxMessage, OutboxState, Role, User
    from plutomi.services import outbox

    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    url = base.rsplit("/", 1)[0] + f"/{DB_NAME}"
    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": driver_url(url),
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
            "WTF_CSRF_ENABLED": False,
            "OUTBOX_HANDOFF": False,
        }
    )
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

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
        client = app.test_client()
        client.post("/login", data={"email": recruiter, "password": PASSWORD})
        event.listen(db.engine, "before_cursor_execute", capture)
        assert client.get(path).status_code == 200
        board = list(sent)
        sent.clear()
        outbox.claim(pending)
        claim = list(sent)
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.rollback()

    scans = []
    for title, statements in [
        (f"GET {path} (100,000 cards in one stage)", board),
        (f"outbox.claim of {len(pending)} pending rows", claim),
    ]:
        print(f"\n== {title}")
        for plan in explain_sent(url, "", statements):
            print(plan)
            scans += [t for t in SCAN.findall(plan) if t in BIG]
    if scans:
        print(f"\nsequential scans of big tables: {', '.join(sorted(set(scans)))}")
        return 1
    print("\nno sequential scan of a big table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
