"""The floor: a bare Flask app doing the same database work as Plutomi's benchmarked routes.

Served by the same gunicorn settings and timed by the same client, it shows what the web
server, Flask, the driver (psycopg 3 through SQLAlchemy) and PostgreSQL cost by themselves,
so Plutomi's numbers read as a ratio to it rather than as absolute times.

    DATABASE_URL=postgresql://... gunicorn bench.floor_app:app
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
from datetime import UTC, datetime
from html import escape

from flask import Flask, abort, jsonify, redirect, request
from sqlalchemy import create_engine, text

from plutomi.pool import ping_when_idle

_ALPHABET = string.ascii_lowercase + string.digits

app = Flask(__name__)
_url = os.environ["DATABASE_URL"]
if _url.startswith("postgresql://"):
    _url = "postgresql+psycopg://" + _url[len("postgresql://") :]
engine = create_engine(_url)
ping_when_idle(engine)  # as Plutomi's connections are: pinged only after sitting idle

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
    " created_at) VALUES (:org_id, :opening_id, :applicant_id, 'applicant.created', :actor_type,"
    " :actor_id, :payload, :now)"
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
        answers = {q.id: request.form.get(f"q_{q.public_id}", "") for q in questions}
        _insert_application(conn, target, name, email, answers, None, _now())
    return redirect(f"/jobs/{org_slug}/{opening_slug}/applied", code=303)


def _insert_application(
    conn, target, name: str, email: str, answers: dict, key_id: int | None, now
) -> str:
    """What an application writes at the least, however it came (the form, or an API key
    when key_id is given): the applicant, its answers, its event and its email's outbox row.
    Returns the applicant's public id."""
    public_id = _public_id()
    applicant = conn.execute(
        INSERT_APPLICANT,
        {
            "public_id": public_id,
            "now": now,
            "stage_id": target.stage_id,
            "opening_id": target.opening_id,
            "name": name,
            "email": email,
        },
    ).one()
    if answers:
        conn.execute(
            INSERT_ANSWER,
            [
                {
                    "org_id": applicant.org_id,
                    "applicant_id": applicant.id,
                    "question_id": question_id,
                    "value": json.dumps(value),
                    "now": now,
                }
                for question_id, value in answers.items()
            ],
        )
    conn.execute(
        INSERT_EVENT,
        {
            "org_id": applicant.org_id,
            "opening_id": target.opening_id,
            "applicant_id": applicant.id,
            "actor_type": "applicant" if key_id is None else "api_key",
            "actor_id": applicant.id if key_id is None else key_id,
            "payload": json.dumps({"source": "application_form" if key_id is None else "api"}),
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
    return public_id


# --- the stage board -----------------------------------------------------------------------
# What GET /openings/<id>/board and POST .../board/move must read and write at the least: the
# opening's stages, the card questions, each stage's count and first 50 cards (one LATERAL
# query of per-stage LIMITs on the board index) and the cards' answers; a move is its bounds,
# the conditional UPDATE and the event, in one transaction.

STAGE_BOARD_PAGE = 50
BOARD_OPENING = text("SELECT id, org_id, name FROM openings WHERE public_id = :pid")
BOARD_STAGES = text(
    "SELECT id, public_id, name FROM stages WHERE opening_id = :opening ORDER BY position, id"
)
CARD_QUESTIONS = text(
    "SELECT id, label, type FROM questions WHERE opening_id = :opening AND archived_at IS NULL"
    " AND show_on_card ORDER BY position, id LIMIT 3"
)
STAGE_COUNTS = text(
    "SELECT stage_id, count(*) FROM applicants WHERE stage_id = ANY(:stages)"
    " AND status = 'active' GROUP BY stage_id"
)
FIRST_PAGES = text(
    "SELECT a.id, a.public_id, a.name, a.stage_id, a.rank, a.version, a.entered_stage_at"
    " FROM unnest(CAST(:stages AS int[])) AS s(id) CROSS JOIN LATERAL ("
    "  SELECT id, public_id, name, stage_id, rank, version, entered_stage_at FROM applicants"
    "  WHERE stage_id = s.id AND status = 'active' ORDER BY rank, id LIMIT :page) AS a"
)
CARD_ANSWERS = text(
    "SELECT applicant_id, question_id, value FROM answers"
    " WHERE applicant_id = ANY(:applicants) AND question_id = ANY(:questions)"
)


@app.get("/openings/<opening_id>/board")
def stage_board(opening_id: str):
    with engine.connect() as conn:
        opening = conn.execute(BOARD_OPENING, {"pid": opening_id}).first()
        if opening is None:
            abort(404)
        stages = conn.execute(BOARD_STAGES, {"opening": opening.id}).all()
        questions = conn.execute(CARD_QUESTIONS, {"opening": opening.id}).all()
        ids = [stage.id for stage in stages]
        counts = dict(conn.execute(STAGE_COUNTS, {"stages": ids}).all())
        cards = conn.execute(FIRST_PAGES, {"stages": ids, "page": STAGE_BOARD_PAGE}).all()
        answers: dict[int, list[tuple[int, object]]] = {}
        if questions and cards:
            for applicant_id, question_id, value in conn.execute(
                CARD_ANSWERS,
                {"applicants": [c.id for c in cards], "questions": [q.id for q in questions]},
            ):
                answers.setdefault(applicant_id, []).append((question_id, value))
    labels = {q.id: q.label for q in questions}
    by_stage: dict[int, list] = {stage_id: [] for stage_id in ids}
    for card in cards:
        by_stage[card.stage_id].append(card)
    parts = [f"<html><body><h1>{escape(opening.name)}</h1><div class='columns'>"]
    for stage in stages:
        parts.append(
            f'<section id="column-{stage.public_id}"><h2>{escape(stage.name)}</h2>'
            f'<span data-count="{counts.get(stage.id, 0)}">{counts.get(stage.id, 0):,}</span><ol>'
        )
        for card in by_stage[stage.id]:
            parts.append(_card(card, answers.get(card.id, []), labels))
        parts.append("</ol></section>")
    parts.append("</div></body></html>")
    return "".join(parts)


def _card(card, answers, labels) -> str:
    picked = "".join(
        f"<div><dt>{escape(labels[q])}</dt><dd>{escape(str(v))}</dd></div>"
        for q, v in sorted(answers, key=lambda a: a[0])
    )
    return (
        f'<li class="board-card" id="card-{card.public_id}" data-id="{card.public_id}"'
        f' data-version="{card.version}" data-rank="{card.rank}"><a>{escape(card.name)}</a>'
        f"<time>{card.entered_stage_at:%Y-%m-%d}</time><dl>{picked}</dl></li>"
    )


# The applicant page's reads (services.applicants.profile, notes, tags, timeline.page): the
# applicant with its opening and stage; the opening's stages; the answers with their
# questions; the notes with their authors; the tags; the newest 25 events (one more says
# whether an older page exists) with the names of the users who acted in them.
PAGE_APPLICANT = text(
    "SELECT a.id, a.org_id, a.opening_id, a.name, a.email, a.status, a.entered_stage_at,"
    " o.name AS opening, s.name AS stage FROM applicants a"
    " JOIN openings o ON o.id = a.opening_id JOIN stages s ON s.id = a.stage_id"
    " WHERE a.public_id = :pid"
)
# The timeline's page: services.timeline.PAGE_SIZE (the floor imports nothing of the app's).
TIMELINE_PAGE = 25
PAGE_ANSWERS = text(
    "SELECT q.stage_id, q.label, x.value FROM answers x JOIN questions q ON q.id = x.question_id"
    " WHERE x.org_id = :org AND x.applicant_id = :applicant ORDER BY q.position, q.id"
)
PAGE_NOTES = text(
    "SELECT n.body, n.created_at, u.name FROM notes n LEFT JOIN users u ON u.id = n.author_id"
    " WHERE n.org_id = :org AND n.applicant_id = :applicant ORDER BY n.created_at DESC, n.id DESC"
)
PAGE_TAGS = text(
    "SELECT tag FROM applicant_tags WHERE org_id = :org AND applicant_id = :applicant ORDER BY tag"
)
PAGE_EVENTS = text(
    "SELECT e.type, e.actor_type, e.payload, e.created_at, u.name FROM events e"
    " LEFT JOIN users u ON e.actor_type = 'user' AND u.id = e.actor_id"
    " WHERE e.org_id = :org AND e.applicant_id = :applicant"
    " ORDER BY e.created_at DESC, e.id DESC LIMIT :limit"
)


@app.get("/applicants/<public_id>")
def applicant_page(public_id: str):
    with engine.connect() as conn:
        a = conn.execute(PAGE_APPLICANT, {"pid": public_id}).first()
        if a is None:
            abort(404)
        who = {"org": a.org_id, "applicant": a.id}
        stages = conn.execute(BOARD_STAGES, {"opening": a.opening_id}).all()
        given = conn.execute(PAGE_ANSWERS, who).all()
        notes = conn.execute(PAGE_NOTES, who).all()
        tags = conn.execute(PAGE_TAGS, who).scalars().all()
        events = conn.execute(PAGE_EVENTS, {**who, "limit": TIMELINE_PAGE + 1}).all()
    parts = [
        f"<html><body><h1>{escape(a.name)}</h1><p>{escape(a.email)} · {escape(a.opening)}"
        f" · {escape(a.stage)} since {a.entered_stage_at}</p>"
    ]
    for stage in stages:
        rows = "".join(
            f"<dt>{escape(label)}</dt><dd>{escape(str(value))}</dd>"
            for stage_id, label, value in given
            if stage_id == stage.id
        )
        parts.append(f"<h2>{escape(stage.name)}</h2><dl>{rows}</dl>")
    parts.append("<ul>" + "".join(f"<li>{escape(t)}</li>" for t in tags) + "</ul>")
    for body, at, author in notes:
        parts.append(f"<article><p>{escape(body)}</p><p>{escape(author or '')} {at}</p></article>")
    parts.append("<ol>")
    for e in events[:TIMELINE_PAGE]:
        parts.append(
            f'<li class="timeline-entry">{escape(e.type)} {escape(json.dumps(e.payload))}'
            f" {escape(e.name or e.actor_type)} {e.created_at}</li>"
        )
    if len(events) > TIMELINE_PAGE:
        parts.append('<li class="timeline-more">Show older</li>')
    parts.append("</ol></body></html>")
    return "".join(parts)


# The card, the stage it goes to and the neighbour it lands next to, with the other bound of
# the gap (the next active card below `after`, or above `before`) in one round trip.
_MOVE_BOUNDS = (
    "SELECT a.id, a.public_id, a.name, a.org_id, a.opening_id, a.version, a.entered_stage_at,"
    " f.id AS from_id, f.public_id AS from_pid, f.name AS from_name,"
    " s.id AS to_id, s.public_id AS to_pid, s.name AS to_name, {bounds}"
    " FROM applicants a JOIN openings o ON o.id = a.opening_id AND o.public_id = :opening"
    " JOIN stages f ON f.id = a.stage_id"
    " JOIN stages s ON s.public_id = :stage AND s.opening_id = a.opening_id"
    " JOIN applicants n ON n.public_id = :neighbour AND n.stage_id = s.id"
    "  AND n.status = 'active' AND n.id <> a.id"
    " WHERE a.public_id = :applicant AND a.status = 'active'"
)
MOVE_AFTER = text(
    _MOVE_BOUNDS.format(
        bounds="n.rank AS low, (SELECT x.rank FROM applicants x WHERE x.stage_id = s.id"
        " AND x.status = 'active' AND x.id <> a.id AND x.rank > n.rank"
        " ORDER BY x.rank LIMIT 1) AS high"
    )
)
MOVE_BEFORE = text(
    _MOVE_BOUNDS.format(
        bounds="(SELECT x.rank FROM applicants x WHERE x.stage_id = s.id"
        " AND x.status = 'active' AND x.id <> a.id AND x.rank < n.rank"
        " ORDER BY x.rank DESC LIMIT 1) AS low, n.rank AS high"
    )
)
MOVE_UPDATE = text(
    "UPDATE applicants SET rank = :rank, version = version + 1, stage_id = :stage,"
    " entered_stage_at = CASE WHEN stage_id = :stage THEN entered_stage_at ELSE :now END,"
    " stage_completed_at = CASE WHEN stage_id = :stage THEN stage_completed_at END"
    " WHERE id = :id AND version = :version AND status = 'active' RETURNING version"
)
MOVE_EVENT = text(
    "INSERT INTO events (org_id, opening_id, applicant_id, type, actor_type, actor_id, payload,"
    " created_at) VALUES (:org_id, :opening_id, :applicant_id, :type, 'user', NULL, :payload,"
    " :now)"
)


@app.post("/openings/<opening_id>/board/move")
def stage_board_move(opening_id: str):
    from plutomi.ranks import between

    form = request.form
    after, before = form.get("after"), form.get("before")
    version = form.get("version", type=int)
    with engine.begin() as conn:
        found = conn.execute(
            MOVE_AFTER if after else MOVE_BEFORE,
            {
                "opening": opening_id,
                "applicant": form.get("applicant", ""),
                "stage": form.get("stage", ""),
                "neighbour": after or before or "",
            },
        ).first()
        if found is None or found.version != version:
            abort(409)
        now = _now()
        moved = found.from_id != found.to_id
        new_version = conn.execute(
            MOVE_UPDATE,
            {
                "rank": between(found.low, found.high),
                "stage": found.to_id,
                "now": now,
                "id": found.id,
                "version": version,
            },
        ).scalar()
        if new_version is None:
            abort(409)
        payload = (
            {
                "from_stage": found.from_name,
                "to_stage": found.to_name,
                "from_stage_id": found.from_pid,
                "to_stage_id": found.to_pid,
            }
            if moved
            else {"stage": found.to_name}
        )
        conn.execute(
            MOVE_EVENT,
            {
                "org_id": found.org_id,
                "opening_id": found.opening_id,
                "applicant_id": found.id,
                "type": "applicant.moved" if moved else "applicant.reordered",
                "payload": json.dumps(payload),
                "now": now,
            },
        )
    return (
        f'<li class="board-card" id="card-{found.public_id}" data-id="{found.public_id}"'
        f' data-version="{new_version}"><a>{escape(found.name)}</a></li>'
    )


# --- the API: an applicant created with an idempotency key ---------------------------------
# What POST /api/v1/openings/<id>/applicants must do at the least, in one transaction: the
# key by the hash of the token; the idempotency key's row (inserted first: a repeat finds it
# taken and answers the stored response); the opening, its first stage and that stage's
# questions; the applicant, its answers, one event and one outbox row; the response kept on
# the key's row. No rate limit, no checks of the answers beyond their keys.

API_KEY = text(
    "SELECT id, org_id, scope FROM api_keys WHERE token_hash = :hash AND revoked_at IS NULL"
)
API_CLAIM = text(
    "INSERT INTO idempotency_keys (api_key_id, key, request_hash, created_at)"
    " VALUES (:api_key, :key, :hash, :now) ON CONFLICT (api_key_id, key) DO NOTHING RETURNING id"
)
API_STORED = text(
    "SELECT request_hash, status, response FROM idempotency_keys"
    " WHERE api_key_id = :api_key AND key = :key"
)
API_TARGET = text(
    "SELECT o.id AS opening_id, o.public_id AS opening_pid, o.name AS opening_name,"
    " s.id AS stage_id, s.public_id AS stage_pid, s.name AS stage_name"
    " FROM openings o JOIN stages s ON s.opening_id = o.id"
    " WHERE o.public_id = :pid AND o.org_id = :org AND o.state = 'published'"
    " AND o.archived_at IS NULL ORDER BY s.position LIMIT 1"
)
API_QUESTIONS = text(
    "SELECT id, key FROM questions WHERE stage_id = :stage_id AND archived_at IS NULL"
    " ORDER BY position"
)
API_STORE = text("UPDATE idempotency_keys SET status = 201, response = :response WHERE id = :id")


@app.post("/api/v1/openings/<opening_id>/applicants")
def api_create_applicant(opening_id: str):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    idempotency_key = request.headers.get("Idempotency-Key")
    body = request.get_json(silent=True)
    if scheme.lower() != "bearer" or not idempotency_key or not isinstance(body, dict):
        abort(400)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"POST\n{request.path}\n{canonical}".encode()).hexdigest()
    now = _now()
    with engine.begin() as conn:
        key = conn.execute(
            API_KEY, {"hash": hashlib.sha256(token.strip().encode()).hexdigest()}
        ).first()
        if key is None or key.scope != "write":
            abort(401)
        claimed = conn.execute(
            API_CLAIM, {"api_key": key.id, "key": idempotency_key, "hash": digest, "now": now}
        ).scalar()
        if claimed is None:  # a repeat: waited here for the first to commit, if it had not
            stored = conn.execute(API_STORED, {"api_key": key.id, "key": idempotency_key}).first()
            if stored.request_hash != digest or stored.status is None:
                abort(409)
            response = stored.response
            replay = jsonify(json.loads(response) if isinstance(response, str) else response)
            replay.status_code = stored.status
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        target = conn.execute(API_TARGET, {"pid": opening_id, "org": key.org_id}).first()
        if target is None:
            abort(404)
        questions = {
            q.key: q.id for q in conn.execute(API_QUESTIONS, {"stage_id": target.stage_id})
        }
        given = body.get("answers") or {}
        name = str(body.get("name", "")).strip()
        email = str(body.get("email", "")).strip().lower()
        if not name or "@" not in email or not set(given) <= set(questions):
            abort(422)
        answers = {questions[k]: v for k, v in given.items()}
        public_id = _insert_application(conn, target, name, email, answers, key.id, now)
        payload = {
            "id": public_id,
            "name": name,
            "email": email,
            "status": "active",
            "version": 1,
            "opening": {"id": target.opening_pid, "name": target.opening_name},
            "stage": {"id": target.stage_pid, "name": target.stage_name},
            "created_at": now.isoformat(),
            "answers": given,
        }
        conn.execute(API_STORE, {"id": claimed, "response": json.dumps(payload)})
    return jsonify(payload), 201
