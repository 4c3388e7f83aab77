"""The stage board's scenarios: reading a board of 100,000 applicants, and moving cards on it.

Seeds one opening whose first stage holds `applicants` cards (plus five small stages), three
questions on the first stage with answers for every applicant, a few tags, an
applicant.created event each, and recruiters to log in as; then times GET .../board and
POST .../board/move against Plutomi and the floor (bench/floor_app.py). See bench/README.md.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import secrets
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    CSRF,
    Client,
    Timing,
    bulk_mode,
    driver_url,
    drop_indexes,
    insert_opening,
    recount_stages,
    run_threads,
    scalar,
    time_gets,
    vacuum,
)

OPENING_SLUG = "board-100k"
# The targets, on a 2-core machine with PostgreSQL.
BOARD_TARGET_P95_MS = 50.0  # server time of GET .../board
MOVE_TARGET_P95_MS = 15.0  # server time of one move
MOVES_TARGET_PER_S = 400.0  # sustained, over HTTP
# The first stage holds the crowd; these follow it, each a few screens of cards.
SMALL_STAGES = [("Phone screen", 300), ("Interview", 150), ("Trial shift", 80)]
SMALL_STAGES += [("Offer", 40), ("Hired", 20)]
BIG_STAGE = "Applied"
# The first stage's questions: (key, type, label, options, show_on_card).
QUESTIONS = [
    ("vehicle", "single_choice", "Vehicle", ["Car", "Van", "Bike", "Scooter"], True),
    ("shift", "single_choice", "Preferred shift", ["Mornings", "Evenings", "Weekends"], False),
    ("years", "number", "Years driving", [], True),
]
TAGS = ["has van", "bilingual", "weekend only"]
# Every ANCHOR_EVERY-th card of the big stage (and every card of the small ones) never moves:
# moves land next to these, so a move's neighbour is never itself moving.
ANCHOR_EVERY = 50
PASSWORD = "bench-password-not-secret"
# Cheap to verify on purpose: logging in a hundred recruiters must not cost seconds of scrypt.
PASSWORD_METHOD = "pbkdf2:sha256:1000"


@dataclass
class BoardSeed:
    opening_id: int
    opening_pid: str
    stages: list[str]  # stage public ids by position; stages[0] is the big one
    applicants: int  # in the big stage
    cards_on_page: int  # the cards the board's first pages show in all
    anchors: dict[str, list[str]]  # stage public id -> public ids of cards that never move
    movers: list[str]  # public ids of big-stage cards the move scenario moves
    users: list[str]  # recruiters' emails
    seconds: float = 0.0


def seed(config: dict[str, Any], org_id: int, applicants: int, movers: int, users: int):
    """The opening, its stages, questions, applicants, answers, tags, events and recruiters,
    in bulk INSERT ... SELECTs; then VACUUM ANALYZE so the board index's visibility map is
    set (index-only counts) and the planner knows the sizes."""
    from sqlalchemy import create_engine, text
    from werkzeug.security import generate_password_hash

    from plutomi import ranks
    from plutomi.models import new_public_id
    from plutomi.services.board import PAGE

    started = time.perf_counter()
    engine = create_engine(config["SQLALCHEMY_DATABASE_URI"])
    now = datetime.now(UTC).replace(tzinfo=None)
    sizes = [(BIG_STAGE, applicants), *SMALL_STAGES]
    with engine.begin() as conn:
        # The rows are consistent by construction: no per-row triggers (the stage counts are
        # set at the end).
        bulk_mode(conn)
        # And build the big tables' secondary indexes once, after the rows are in, rather
        # than row by row: they are dropped here and made again before the commit.
        indexes = drop_indexes(conn, BULK_TABLES)
        # Older than the 500 others: the public job board's newest 200 stay the same.
        opening = insert_opening(
            conn,
            org_id,
            "Delivery Driver (national)",
            OPENING_SLUG,
            [name for name, _ in sizes],
            now,
            age=timedelta(days=1000),
        )
        opening_id, opening_pid = opening.id, opening.public_id
        stage_ids, stage_pids = opening.stage_ids, opening.stage_pids
        conn.execute(
            text(
                "INSERT INTO questions (public_id, created_at, org_id, opening_id, stage_id, key,"
                " type, label, help_text, required, options, position, show_on_card)"
                " VALUES (:pid, :at, :org, :opening, :stage, :key, :type, :label, '', false,"
                " CAST(:options AS json), :position, :on_card)"
            ),
            [
                {
                    "pid": new_public_id(),
                    "at": now,
                    "org": org_id,
                    "opening": opening_id,
                    "stage": stage_ids[0],
                    "key": key,
                    "type": kind,
                    "label": label,
                    "options": json.dumps(options),
                    "position": position,
                    "on_card": on_card,
                }
                for position, (key, kind, label, options, on_card) in enumerate(QUESTIONS)
            ],
        )
        # One INSERT for every applicant: arrays of public ids, ranks (each stage's keys from
        # ranks.spread, in order) and stage ids, numbered by WITH ORDINALITY.
        pids: list[str] = []
        keys: list[str] = []
        stages: list[int] = []
        per_stage: list[list[str]] = []
        for stage_id, (_, count) in zip(stage_ids, sizes, strict=True):
            # 16 hex digits are valid public ids, and much faster to make than new_public_id()
            mine = [secrets.token_hex(8) for _ in range(count)]
            per_stage.append(mine)
            pids += mine
            keys += ranks.spread(count)
            stages += [stage_id] * count
        conn.execute(
            text(
                "INSERT INTO applicants (public_id, created_at, org_id, opening_id, stage_id,"
                " name, email, rank, entered_stage_at, version, status)"
                " SELECT t.pid, :now - make_interval(mins => t.n::int), :org, :opening, t.stage,"
                " 'Applicant ' || t.n, 'applicant' || t.n || '@example.com', t.rank,"
                " :now - make_interval(mins => t.n::int), 1, 'active'"
                " FROM unnest(CAST(:pids AS text[]), CAST(:ranks AS text[]),"
                " CAST(:stages AS int[])) WITH ORDINALITY AS t(pid, rank, stage, n)"
            ),
            {
                "now": now,
                "org": org_id,
                "opening": opening_id,
                "pids": pids,
                "ranks": keys,
                "stages": stages,
            },
        )
        conn.execute(
            text(
                "INSERT INTO answers (org_id, applicant_id, question_id, value, created_at,"
                " updated_at)"
                " SELECT a.org_id, a.id, q.id, CASE q.key"
                "  WHEN 'vehicle' THEN to_json((CAST(:vehicles AS text[]))[1 + a.id % 4])"
                "  WHEN 'shift' THEN to_json((CAST(:shifts AS text[]))[1 + a.id % 3])"
                "  ELSE to_json(a.id % 40) END, a.created_at, a.created_at"
                " FROM applicants a CROSS JOIN questions q"
                " WHERE a.opening_id = :opening AND q.opening_id = :opening"
            ),
            {"opening": opening_id, "vehicles": QUESTIONS[0][3], "shifts": QUESTIONS[1][3]},
        )
        conn.execute(
            text(
                "INSERT INTO applicant_tags (applicant_id, tag, org_id, created_at)"
                " SELECT id, (CAST(:tags AS text[]))[1 + id % 3], org_id, created_at"
                " FROM applicants WHERE opening_id = :opening AND id % 25 = 0"
            ),
            {"opening": opening_id, "tags": TAGS},
        )
        conn.execute(
            text(
                "INSERT INTO events (org_id, opening_id, applicant_id, type, actor_type, actor_id,"
                " payload, created_at)"
                " SELECT org_id, opening_id, id, 'applicant.created', 'applicant', id,"
                ' CAST(\'{"source": "application_form"}\' AS json), created_at'
                " FROM applicants WHERE opening_id = :opening"
            ),
            {"opening": opening_id},
        )
        emails = [f"recruiter-{i:03d}@bench.example" for i in range(users)]
        password_hash = generate_password_hash(PASSWORD, method=PASSWORD_METHOD)
        user_ids = [
            conn.execute(
                text(
                    "INSERT INTO users (public_id, created_at, email, name, password_hash)"
                    " VALUES (:pid, :at, :email, :name, :hash) RETURNING id"
                ),
                {
                    "pid": new_public_id(),
                    "at": now,
                    "email": email,
                    "name": f"Recruiter {i}",
                    "hash": password_hash,
                },
            ).scalar_one()
            for i, email in enumerate(emails)
        ]
        conn.execute(
            text(
                "INSERT INTO memberships (created_at, org_id, user_id, role)"
                " VALUES (:at, :org, :user, 'recruiter')"
            ),
            [{"at": now, "org": org_id, "user": user_id} for user_id in user_ids],
        )
        for ddl in indexes:
            conn.execute(text(ddl))
        recount_stages(conn, [opening_id])
    vacuum(engine)
    engine.dispose()

    big = per_stage[0]
    anchors = {stage_pids[0]: big[::ANCHOR_EVERY]}
    for pid, cards in zip(stage_pids[1:], per_stage[1:], strict=True):
        anchors[pid] = cards
    candidates = [pid for i, pid in enumerate(big) if i % ANCHOR_EVERY]
    chosen = random.Random(7).sample(candidates, min(movers, len(candidates)))
    return BoardSeed(
        opening_id=opening_id,
        opening_pid=opening_pid,
        stages=stage_pids,
        applicants=applicants,
        cards_on_page=sum(min(PAGE, count) for _, count in sizes),
        anchors=anchors,
        movers=chosen,
        users=emails,
        seconds=time.perf_counter() - started,
    )


BULK_TABLES = ["applicants", "answers", "events"]


# --- logging in ----------------------------------------------------------------------------

# base.html's token for htmx's X-CSRFToken header (static/js/app.js sends it).
HX_CSRF = re.compile(rb'id="csrf-token" data-token="([^"]+)"')


class Recruiter(Client):
    """A logged-in client: its session cookie and the CSRF token for htmx's header."""

    csrf = ""

    def login(self, email: str) -> None:
        status, _, page = self.request("GET", "/login")
        token = CSRF.search(page)
        if status != 200 or token is None:
            raise RuntimeError(f"GET /login: {status}")
        body = urllib.parse.urlencode(
            {"csrf_token": token.group(1).decode(), "email": email, "password": PASSWORD}
        )
        status, _, _ = self.request("POST", "/login", body)
        if status not in (302, 303):
            raise RuntimeError(f"POST /login as {email}: {status}")
        # The login started a fresh session: the token for htmx comes from a page after it.
        status, _, page = self.request("GET", "/account")
        token = HX_CSRF.search(page)
        if status != 200 or token is None:
            raise RuntimeError(f"GET /account as {email}: {status}")
        self.csrf = token.group(1).decode()


def log_in(port: int, emails: list[str]) -> list[Recruiter]:
    clients = []
    for email in emails:
        client = Recruiter(port)
        client.login(email)
        clients.append(client)
    return clients


# --- the board -----------------------------------------------------------------------------

CARD = b'class="board-card'


def time_board(
    client: Client, path: str, requests: int, seconds: float, cards: int, big_count: int
) -> Timing:
    """Sequential GETs of the board, `requests` of them or as many as fit in `seconds`; a
    success is a 200 with every first page's cards and the big column's count."""
    count = f'data-count="{big_count}"'.encode()

    def check(status: int, body: bytes) -> str | None:
        if status == 200 and body.count(CARD) == cards and count in body:
            return None
        return f"{status}, {body.count(CARD)} cards"

    return time_gets(client, path, requests, seconds, 10, check)


# --- moves ---------------------------------------------------------------------------------


@dataclass
class MoveTiming(Timing):
    conflicts: int = 0  # 409: a stale version or neighbour (should be none)
    throttled: int = 0  # 429: a user over moves.MOVES_PER_WINDOW
    kinds: dict[str, int] = field(default_factory=dict)


def mover_state(database_url: str, movers: list[str]) -> dict[str, tuple[str, int]]:
    """Each mover's stage (public id) and version as the database has them now."""
    from sqlalchemy import create_engine, text

    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.public_id, s.public_id, a.version FROM applicants a"
                " JOIN stages s ON s.id = a.stage_id WHERE a.public_id = ANY(:pids)"
            ),
            {"pids": movers},
        ).all()
    engine.dispose()
    return {pid: (stage, version) for pid, stage, version in rows}


def newest_event(database_url: str) -> int:
    return scalar(database_url, "SELECT coalesce(max(id), 0) FROM events")


def events_since(database_url: str, after: int) -> int:
    """Move events written after event `after`: one per successful move, or something is
    wrong."""
    return scalar(
        database_url,
        "SELECT count(*) FROM events WHERE id > :after"
        " AND type IN ('applicant.moved', 'applicant.reordered')",
        after=after,
    )


def _plan(rng: random.Random, seed: BoardSeed, stage: str) -> tuple[str, str, str, str]:
    """(kind, target stage, 'after' or 'before', neighbour) for a card now in `stage`: from the
    big stage to a random other stage after a random card there; from a small stage, either
    within it (before a random card) or back to the big stage (after a random card there)."""
    big = seed.stages[0]
    if stage == big:
        target = rng.choice(seed.stages[1:])
        return "to a small stage", target, "after", rng.choice(seed.anchors[target])
    if rng.random() < 0.5:
        return "within its stage", stage, "before", rng.choice(seed.anchors[stage])
    return "back to the big stage", big, "after", rng.choice(seed.anchors[big])


def time_moves(
    clients: list[list[Client]],
    seed: BoardSeed,
    movers: list[str],
    state: dict[str, tuple[str, int]],
    seconds: float,
    limit: int,
    database_url: str,
) -> MoveTiming:
    """len(clients) threads move cards for `seconds` or `limit` moves in all. Thread i moves
    only its own share of `movers` (so no two threads race for a card) and rotates through
    its own clients (each a different recruiter, so no one user passes the move limit); it
    tracks each card's stage and version from the answers. A success is a 200 that carries
    the card back with its new version."""
    threads = len(clients)
    path = f"/openings/{seed.opening_pid}/board/move"
    counter = itertools.count()
    lock = threading.Lock()
    timing = MoveTiming()
    errors: list[str] = []
    ready = threading.Barrier(threads + 1)
    stop_at = [0.0]  # set by run_threads

    def worker(number: int) -> None:
        rng = random.Random(number)
        mine = {pid: state[pid] for pid in movers[number::threads]}
        order = list(mine)
        rng.shuffle(order)
        pool = clients[number]
        latencies: list[float] = []
        ok = failed = conflicts = throttled = 0
        kinds: dict[str, int] = {}
        ready.wait()
        for n in itertools.count():
            if time.perf_counter() >= stop_at[0] or next(counter) >= limit:
                break
            pid = order[n % len(order)]
            stage, version = mine[pid]
            kind, target, side, neighbour = _plan(rng, seed, stage)
            client = pool[n % len(pool)]
            body = urllib.parse.urlencode(
                {"applicant": pid, "stage": target, side: neighbour, "version": version}
            )
            headers = {"HX-Request": "true", "X-CSRFToken": getattr(client, "csrf", "")}
            t0 = time.perf_counter()
            status, _, data = client.request("POST", path, body, headers)
            latencies.append(time.perf_counter() - t0)
            found = re.search(rf'data-id="{pid}" data-version="(\d+)"'.encode(), data)
            if status == 200 and found:
                ok += 1
                kinds[kind] = kinds.get(kind, 0) + 1
                mine[pid] = (target, int(found.group(1)))
                continue
            failed += 1
            conflicts += status == 409
            throttled += status == 429
            if len(errors) < 5:
                errors.append(f"move {kind}: {status} {data[:160]!r}")
            # Not retried; read the card afresh for its next turn.
            mine[pid] = mover_state(database_url, [pid])[pid]
        with lock:
            timing.latencies.extend(latencies)
            timing.ok += ok
            timing.failed += failed
            timing.conflicts += conflicts
            timing.throttled += throttled
            for kind, count in kinds.items():
                timing.kinds[kind] = timing.kinds.get(kind, 0) + count

    timing.elapsed = run_threads(worker, threads, ready, stop_at, seconds)
    for error in errors:
        print("  !", error, file=sys.stderr)
    return timing


def move_extra(app: MoveTiming, floor: MoveTiming, app_events: int, floor_events: int) -> dict:
    """What the JSON adds to a move row: failures by kind, and the moves by kind."""
    return {
        "conflicts_409": app.conflicts,
        "throttled_429": app.throttled,
        "moves_by_kind": dict(sorted(app.kinds.items())),
        "events_written": app_events,
        "floor_conflicts_409": floor.conflicts,
        "floor_events_written": floor_events,
    }
