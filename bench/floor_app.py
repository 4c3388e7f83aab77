"""The floor: a bare Flask app doing the same database work as Plutomi's two benchmarked routes.

Served by the same gunicorn settings and timed by the same client, it shows what the web
server, Flask, the driver (psycopg 3 through SQLAlchemy) and PostgreSQL cost by themselves,
so Plutomi's numbers read as a ratio to it rather than as absolute times.

    DATABASE_URL=postgresql://... gunicorn bench.floor_app:app
"""

from __future__ import annotations

import json
import os
import secrets
import string
from datetime import UTC, datetime
from html import escape

from flask import Flask, abort, redirect, request
from sqlalchemy import create_engine, text

_ALPHABET = string.ascii_lowercase + string.digits

app = Flask(__name__)
_url = os.environ["DATABASE_URL"]
if _url.startswith("postgresql://"):
    _url = "postgresql+psycopg://" + _url[len("postgresql://") :]
engine = create_engine(_url, pool_pre_ping=True)

# The board's queries: the org by slug, then its published, unarchived openings, newest first
# (Plutomi caps the board at 200 rows: applications.BOARD_LIMIT).
ORG = text("SELECT id, name, slug FROM orgs WHERE slug = :slug")
BOARD = text(
    "SELECT id, public_id, name, slug, description, created_at FROM openings"
    " WHERE org_id = :org_id AND state = 'published' AND archived_at IS NULL"
    " ORDER BY created_at DESC, id DESC LIMIT 200"
)
TARGET = text(
    "SELECT o.id AS opening_id, s.id AS stage_id FROM openings o JOIN orgs g ON g.id = o.org_id"
    " JOIN stages s ON s.opening_id = o.id"
    " WHERE g.slug = :org AND o.slug = :opening ORDER BY s.position LIMIT 1"
)
QUESTIONS = text(
    "SELECT id, public_id FROM questions WHERE stage_id = :stage_id AND archived_at IS NULL"
    " ORDER BY position"
)
INSERT_APPLICANT = text(
    "INSERT INTO applicants (public_id, created_at, org_id, opening_id, stage_id, name, email,"
    " rank, entered_stage_at, version, status)"
    " SELECT :public_id, :now, org_id, id, :stage_id, :name, :email, 'i', :now, 1, 'active'"
    " FROM openings WHERE id = :opening_id RETURNING id, org_id"
)
INSERT_ANSWER = text(
    "INSERT INTO answers (org_id, applicant_id, question_id, value, created_at, updated_at)"
    " VALUES (:org_id, :applicant_id, :question_id, :value, :now, :now)"
)
INSERT_EVENT = text(
    "INSERT INTO events (org_id, opening_id, applicant_id, type, actor_type, actor_id, payload,"
    " created_at) VALUES (:org_id, :opening_id, :applicant_id, 'applicant.created', 'applicant',"
    " :applicant_id, :payload, :now)"
)
INSERT_OUTBOX = text(
    "INSERT INTO outbox (public_id, created_at, org_id, kind, payload, state, attempts,"
    " max_attempts, next_attempt_at) VALUES (:public_id, :now, :org_id, 'email', :payload,"
    " 'pending', 0, 6, :now)"
)


def _public_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@app.get("/healthz")
def healthz():
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


@app.get("/jobs/<org_slug>")
def board(org_slug: str):
    with engine.connect() as conn:
        org = conn.execute(ORG, {"slug": org_slug}).first()
        if org is None:
            abort(404)
        rows = conn.execute(BOARD, {"org_id": org.id}).all()
    parts = [f"<html><body><h1>Jobs at {escape(org.name)}</h1><ul>"]
    for row in rows:
        parts.append(
            f'<li><a class="card job" href="/jobs/{escape(org.slug)}/{escape(row.slug)}">'
            f"<h2>{escape(row.name)}</h2><p>{escape(row.description[:160])}</p></a></li>"
        )
    parts.append("</ul></body></html>")
    return "".join(parts)


@app.route("/jobs/<org_slug>/<opening_slug>", methods=["GET", "POST"])
def opening(org_slug: str, opening_slug: str):
    with engine.begin() as conn:
        target = conn.execute(TARGET, {"org": org_slug, "opening": opening_slug}).first()
        if target is None:
            abort(404)
        questions = conn.execute(QUESTIONS, {"stage_id": target.stage_id}).all()
        if request.method == "GET":
            fields = "".join(
                f'<input name="q_{q.public_id}">' for q in questions
            )  # the client reads the field names from here, as from Plutomi's form
            return (
                '<form method="post"><input type="hidden" name="csrf_token" value="floor">'
                f'<input name="name"><input name="email">{fields}</form>'
            )
        name = request.form.get("name", "").strip()
        email = request.form.get("email", "").strip().lower()
        if not name or "@" not in email:
            abort(422)
        now = _now()
        applicant = conn.execute(
            INSERT_APPLICANT,
            {
                "public_id": _public_id(),
                "now": now,
                "stage_id": target.stage_id,
                "opening_id": target.opening_id,
                "name": name,
                "email": email,
            },
        ).one()
        conn.execute(
            INSERT_ANSWER,
            [
                {
                    "org_id": applicant.org_id,
                    "applicant_id": applicant.id,
                    "question_id": q.id,
                    "value": json.dumps(request.form.get(f"q_{q.public_id}", "")),
                    "now": now,
                }
                for q in questions
            ],
        )
        conn.execute(
            INSERT_EVENT,
            {
                "org_id": applicant.org_id,
                "opening_id": target.opening_id,
                "applicant_id": applicant.id,
                "payload": json.dumps({"source": "application_form"}),
                "now": now,
            },
        )
        conn.execute(
            INSERT_OUTBOX,
            {
                "public_id": _public_id(),
                "now": now,
                "org_id": applicant.org_id,
                "payload": json.dumps({"to": email, "subject": "Application received"}),
            },
        )
    return redirect(f"/jobs/{org_slug}/{opening_slug}/applied", code=303)
