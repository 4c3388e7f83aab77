"""A realistic data set, built fast: orgs, openings, applicants and their history.

    .venv/bin/python -m bench.generate DATABASE_URL [--applicants 1000000] [--orgs 100]

The database must be migrated already (`flask db upgrade`) and hold no generated set yet (the
orgs' slugs and the owners' emails are fixed, so the benchmarks can find them). By default:
100 orgs (slugs `gen-000` ... `gen-099`), each with an owner (`owner@gen-000.example`, with the
bench recruiters' password), 10 published openings of six stages (Applied, Screen, Interview,
Offer, Hired, Waiting List; Applied asks three questions and has the rule "not completed in 30
days: move to Waiting List") and 1,000,000 applicants. The biggest opening (`gen-000`'s
`opening-00`) holds `--biggest` (100,000) of them in Applied; the rest are spread over the other
openings, half of each opening's in Applied and fewer in each later stage. Every applicant has
three answers and an `applicant.created` event (and an `applicant.moved` one past Applied); one
in 20 has a note, one in 25 a tag; everyone in Applied has a pending timer for the rule, due 30
days after entering (none is due yet: times in stage run to 28 days); one in five there has not
completed the stage. The first applicant of the biggest opening (`heavy@gen-000.example`) has
1,000 events on their timeline, all in the past, for the applicant page's benchmark.

On PostgreSQL every table is written with COPY, its secondary indexes dropped first and built
again after, the per-row triggers off (when the user may turn them off; the per-stage counts
are then set in one statement), then VACUUM ANALYZE. On SQLite (the smoke run's small set) the
same rows go in as batched INSERTs. Ids are assigned here, after the tables' current largest,
so rows can point at each other without reading anything back.
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import driver_url  # noqa: E402
from bench.stage_board import PASSWORD, PASSWORD_METHOD  # noqa: E402

STAGES = ["Applied", "Screen", "Interview", "Offer", "Hired", "Waiting List"]
# How an opening's applicants (beyond the biggest's) spread over its stages.
SHARES = [0.5, 0.25, 0.13, 0.08, 0.04, 0.0]
OPENINGS_PER_ORG = 10
HEAVY_EVENTS = 1000
VEHICLES = ["Bike", "Car", "Van"]
TAGS = ["priority", "referral", "night-shift", "spanish"]
RULE_DAYS = 30
CHUNK = 50_000  # rows per batch on SQLite


@dataclass
class Spec:
    """A table as the generator writes it: its columns, and which of them hold JSON."""

    name: str
    columns: tuple[str, ...]
    json: tuple[str, ...] = ()


SPECS = {
    spec.name: spec
    for spec in [
        Spec("orgs", ("id", "name", "slug", "public_id", "created_at")),
        Spec("users", ("id", "email", "name", "password_hash", "public_id", "created_at")),
        Spec("memberships", ("id", "org_id", "user_id", "role", "created_at")),
        Spec(
            "openings",
            ("id", "org_id", "name", "slug", "description", "state", "public_id", "created_at"),
        ),
        Spec(
            "stages", ("id", "org_id", "opening_id", "name", "position", "public_id", "created_at")
        ),
        Spec(
            "questions",
            (
                "id", "org_id", "opening_id", "stage_id", "key", "type", "label", "help_text",
                "required", "options", "min_value", "max_value", "position", "public_id",
                "created_at", "show_on_card",
            ),
            json=("options",),
        ),
        Spec(
            "rules",
            (
                "id", "org_id", "opening_id", "stage_id", "position", "name", "trigger",
                "delay_minutes", "only_if_incomplete", "match", "conditions", "actions",
                "enabled", "updated_at", "public_id", "created_at",
            ),
            json=("conditions", "actions"),
        ),
        Spec(
            "applicants",
            (
                "id", "org_id", "opening_id", "stage_id", "name", "email", "rank",
                "entered_stage_at", "version", "public_id", "created_at", "status",
                "stage_completed_at", "stage_entry",
            ),
        ),
        Spec(
            "answers",
            ("id", "org_id", "applicant_id", "question_id", "value", "created_at", "updated_at"),
            json=("value",),
        ),
        Spec(
            "events",
            (
                "id", "org_id", "opening_id", "applicant_id", "type", "actor_type", "actor_id",
                "payload", "created_at",
            ),
            json=("payload",),
        ),
        Spec(
            "notes",
            ("id", "org_id", "applicant_id", "author_id", "body", "public_id", "created_at"),
        ),
        Spec("applicant_tags", ("applicant_id", "tag", "org_id", "created_at")),
        Spec(
            "timers",
            ("id", "org_id", "applicant_id", "rule_id", "stage_entry", "due_at", "state"),
        ),
    ]
}  # fmt: skip
# Written in this order (foreign keys point backwards); the big ones have indexes to drop.
BIG = ["applicants", "answers", "events", "notes", "applicant_tags", "timers"]


class PublicIds:
    """Public ids that are unique without asking the database: a random prefix for the run,
    then a counter in base 36, 16 characters in all, as models.new_public_id makes them."""

    _ALPHABET = string.digits + string.ascii_lowercase

    def __init__(self) -> None:
        self.prefix = "".join(secrets.choice(self._ALPHABET) for _ in range(6))
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        n, digits = self.n, []
        while n:
            n, d = divmod(n, 36)
            digits.append(self._ALPHABET[d])
        return self.prefix + "".join(reversed(digits)).rjust(10, "0")


@dataclass
class Opening:
    id: int
    public_id: str
    org_id: int
    owner_id: int
    stage_ids: list[int]
    question_ids: list[int]
    rule_id: int


@dataclass
class Generated:
    """What was written: row counts by table, the seconds it took, and where to look."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    biggest_opening: str = ""  # public id
    heavy_applicant: str = ""  # public id of the applicant with HEAVY_EVENTS events
    heavy_id: int = 0
    owner_email: str = ""  # of the biggest opening's org


class Writer:
    """Rows into tables: COPY on PostgreSQL, batched INSERTs elsewhere; ids from the tables'
    current largest."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}
        self._next: dict[str, int] = {}

    def start_ids(self) -> None:
        """Read where each table's ids go on, before any COPY: the connection can run nothing
        else while one is under way."""
        from sqlalchemy import text

        for table, spec in SPECS.items():
            if "id" in spec.columns:
                found = self.conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}"))
                self._next[table] = found.scalar() + 1

    def next_id(self, table: str) -> int:
        value = self._next[table]
        self._next[table] += 1
        return value

    def write(self, table: str, rows: Iterable[tuple]) -> None:
        spec = SPECS[table]
        json_at = [spec.columns.index(name) for name in spec.json]
        count = 0
        if self.postgres:
            raw = self.conn.connection.driver_connection
            statement = f"COPY {table} ({', '.join(spec.columns)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    if json_at:
                        row = list(row)
                        for i in json_at:
                            row[i] = json.dumps(row[i])
                    copy.write_row(row)
                    count += 1
        else:
            from sqlalchemy import insert

            import plutomi.models  # noqa: F401 - the tables, with the app's column types
            from plutomi.extensions import db

            target = db.metadata.tables[table]
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(dict(zip(spec.columns, row, strict=True)))
                if len(batch) >= CHUNK:
                    self.conn.execute(insert(target), batch)
                    count += len(batch)
                    batch = []
            if batch:
                self.conn.execute(insert(target), batch)
                count += len(batch)
        self.counts[table] = self.counts.get(table, 0) + count

    def sync_sequences(self) -> None:
        """Move each sequence past the ids written here, so the app's own inserts follow."""
        if not self.postgres:
            return
        from sqlalchemy import text

        for table in self._next:
            self.conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _structure(w: Writer, orgs: int, now: datetime, pid: PublicIds) -> list[Opening]:
    """Orgs, their owners, openings, stages, questions and rules."""
    from werkzeug.security import generate_password_hash

    password_hash = generate_password_hash(PASSWORD, method=PASSWORD_METHOD)
    org_rows, user_rows, member_rows = [], [], []
    opening_rows, stage_rows, question_rows, rule_rows = [], [], [], []
    openings: list[Opening] = []
    for o in range(orgs):
        org_id, user_id = w.next_id("orgs"), w.next_id("users")
        slug = f"gen-{o:03d}"
        org_rows.append((org_id, f"Generated {o:03d}", slug, pid(), now))
        user_rows.append(
            (user_id, f"owner@{slug}.example", f"Owner {o:03d}", password_hash, pid(), now)
        )
        member_rows.append((w.next_id("memberships"), org_id, user_id, "owner", now))
        for j in range(OPENINGS_PER_ORG):
            opening_id, opening_pid = w.next_id("openings"), pid()
            opening_rows.append(
                (opening_id, org_id, f"Driver, zone {j:02d}", f"opening-{j:02d}", "", "published",
                 opening_pid, now - timedelta(days=j))
            )  # fmt: skip
            stage_ids = []
            stage_pids = []
            for position, name in enumerate(STAGES):
                stage_ids.append(w.next_id("stages"))
                stage_pids.append(pid())
                stage_rows.append(
                    (stage_ids[-1], org_id, opening_id, name, position, stage_pids[-1], now)
                )
            questions = [
                ("licence", "short_text", "Driving licence number", True, [], None, None, False),
                ("vehicle", "single_choice", "Vehicle", True, VEHICLES, None, None, True),
                ("years", "number", "Years driving", False, [], 0.0, 80.0, True),
            ]
            question_ids = []
            for position, (key, kind, label, required, options, low, high, on_card) in enumerate(
                questions
            ):
                question_ids.append(w.next_id("questions"))
                question_rows.append(
                    (question_ids[-1], org_id, opening_id, stage_ids[0], key, kind, label, "",
                     required, options, low, high, position, pid(), now, on_card)
                )  # fmt: skip
            rule_id = w.next_id("rules")
            rule_rows.append(
                (rule_id, org_id, opening_id, stage_ids[0], 0, "Not completed in 30 days",
                 "time_in_stage", RULE_DAYS * 24 * 60, True, "all", [],
                 [{"type": "move", "stage": stage_pids[-1]}], True, now, pid(), now)
            )  # fmt: skip
            openings.append(
                Opening(opening_id, opening_pid, org_id, user_id, stage_ids, question_ids, rule_id)
            )
    for table, rows in [
        ("orgs", org_rows),
        ("users", user_rows),
        ("memberships", member_rows),
        ("openings", opening_rows),
        ("stages", stage_rows),
        ("questions", question_rows),
        ("rules", rule_rows),
    ]:
        w.write(table, rows)
    return openings


@dataclass(slots=True)
class _Row:
    """One applicant as the history generators see it."""

    id: int
    opening: Opening
    stage: int  # position
    entered: datetime
    completed: bool


def _applicants(
    w: Writer, openings: list[Opening], total: int, biggest: int, now: datetime, pid: PublicIds,
    out: list[_Row], generated: Generated,
) -> Iterator[tuple]:  # fmt: skip
    """The applicant rows, opening by opening and stage by stage, each stage's ranks in order;
    `out` collects what the history needs."""
    from plutomi import ranks

    biggest = min(biggest, total)
    rest = _split(total - biggest, max(1, len(openings) - 1))
    # Times in stage from a few minutes to 28 days: every rule timer is still to come, as in a
    # system whose worker keeps up (the timers benchmark makes its own fall due).
    spread = [now - timedelta(minutes=7 + 37 * k) for k in range(1090)]
    n = 0
    for index, opening in enumerate(openings):
        count = biggest if index == 0 else rest[index - 1]
        per_stage = [count] + [0] * (len(STAGES) - 1) if index == 0 else _shares(count)
        for position, in_stage in enumerate(per_stage):
            stage_id = opening.stage_ids[position]
            for rank in ranks.spread(in_stage):
                applicant_id = w.next_id("applicants")
                public_id = pid()
                entered = spread[(n * 7919) % len(spread)]
                completed = position > 0 or n % 5 != 0
                if n == 0:  # the biggest opening's first: the one with a long history
                    # Longest in its stage, so its history, a minute an event, is all past.
                    entered = spread[-1]
                    email = "heavy@gen-000.example"
                    generated.heavy_applicant, generated.heavy_id = public_id, applicant_id
                else:
                    email = f"applicant-{n}@example.com"
                yield (
                    applicant_id, opening.org_id, opening.id, stage_id, f"Applicant {n}", email,
                    rank, entered, 1 + (position > 0), public_id,
                    entered - timedelta(days=position), "active", entered if completed else None,
                    1 + (position > 0),
                )  # fmt: skip
                out.append(_Row(applicant_id, opening, position, entered, completed))
                n += 1


def _shares(count: int) -> list[int]:
    sizes = [int(count * share) for share in SHARES]
    sizes[0] += count - sum(sizes)
    return sizes


def _answers(w: Writer, rows: list[_Row]) -> Iterator[tuple]:
    for r in rows:
        at = r.entered
        licence, vehicle, years = r.opening.question_ids
        yield (w.next_id("answers"), r.opening.org_id, r.id, licence, f"DL-{r.id:08d}", at, at)
        yield (w.next_id("answers"), r.opening.org_id, r.id, vehicle, VEHICLES[r.id % 3], at, at)
        yield (w.next_id("answers"), r.opening.org_id, r.id, years, r.id % 30, at, at)


def _events(w: Writer, rows: list[_Row], heavy_id: int) -> Iterator[tuple]:
    for r in rows:
        o = r.opening
        created = r.entered - timedelta(days=r.stage)
        yield (w.next_id("events"), o.org_id, o.id, r.id, "applicant.created", "applicant", r.id,
               {"stage": STAGES[0], "source": "application_form"}, created)  # fmt: skip
        if r.stage:
            yield (w.next_id("events"), o.org_id, o.id, r.id, "applicant.moved", "user",
                   o.owner_id, {"from_stage": STAGES[0], "to_stage": STAGES[r.stage]},
                   r.entered)  # fmt: skip
        if r.id == heavy_id:
            # The heavy applicant: answers given and moves back and forth, a minute apart.
            for k in range(HEAVY_EVENTS - 1):
                at = created + timedelta(minutes=k + 1)
                if k % 2:
                    yield (w.next_id("events"), o.org_id, o.id, r.id, "applicant.answered",
                           "applicant", r.id, {"question": "licence"}, at)  # fmt: skip
                else:
                    there, back = (STAGES[0], STAGES[1]) if k % 4 == 0 else (STAGES[1], STAGES[0])
                    yield (w.next_id("events"), o.org_id, o.id, r.id, "applicant.moved", "user",
                           o.owner_id, {"from_stage": there, "to_stage": back}, at)  # fmt: skip


def _notes(w: Writer, rows: list[_Row], pid: PublicIds) -> Iterator[tuple]:
    for r in rows[::20]:
        yield (w.next_id("notes"), r.opening.org_id, r.id, r.opening.owner_id,
               f"Called about the {VEHICLES[r.id % 3].lower()}; follow up next week.", pid(),
               r.entered)  # fmt: skip


def _tags(rows: list[_Row]) -> Iterator[tuple]:
    for r in rows[::25]:
        yield (r.id, TAGS[r.id % len(TAGS)], r.opening.org_id, r.entered)


def _timers(w: Writer, rows: list[_Row]) -> Iterator[tuple]:
    for r in rows:
        if r.stage == 0:
            yield (w.next_id("timers"), r.opening.org_id, r.id, r.opening.rule_id, 1,
                   r.entered + timedelta(days=RULE_DAYS), "pending")  # fmt: skip


def generate(
    database_url: str,
    applicants: int = 1_000_000,
    orgs: int = 100,
    biggest: int = 100_000,
    log=print,
) -> Generated:
    """Write the data set into the migrated database at database_url; see the module's text."""
    from sqlalchemy import create_engine, text

    from bench.common import bulk_mode, drop_indexes, recount_stages, vacuum

    engine = create_engine(driver_url(database_url))
    result = Generated()
    started = time.perf_counter()
    now = datetime.now(UTC)
    pid = PublicIds()
    if not 0 < biggest <= applicants:
        raise ValueError("the biggest opening needs at least one applicant, and at most all")

    def phase(name: str, since: float) -> float:
        took = time.perf_counter() - since
        result.phases[name] = round(took, 1)
        log(f"  {name}: {took:.1f} s")
        return time.perf_counter()

    with engine.begin() as conn:
        w = Writer(conn)
        w.start_ids()
        again: list[str] = []
        if w.postgres:
            bulk_mode(conn)
            again = drop_indexes(conn, BIG)
        t = time.perf_counter()
        openings = _structure(w, orgs, now, pid)
        rows: list[_Row] = []
        w.write("applicants", _applicants(w, openings, applicants, biggest, now, pid, rows, result))
        t = phase(f"orgs, openings and {len(rows):,} applicants", t)
        w.write("answers", _answers(w, rows))
        t = phase("answers", t)
        w.write("events", _events(w, rows, result.heavy_id))
        t = phase("events", t)
        w.write("notes", _notes(w, rows, pid))
        w.write("applicant_tags", _tags(rows))
        w.write("timers", _timers(w, rows))
        t = phase("notes, tags and timers", t)
        w.sync_sequences()
        for ddl in again:
            conn.execute(text(ddl))
        if w.postgres:
            recount_stages(conn, [o.id for o in openings])
        t = phase("indexes and stage counts", t)
        result.biggest_opening = openings[0].public_id
        result.owner_email = "owner@gen-000.example"
    if w.postgres:
        vacuum(engine, ", ".join(BIG))
        phase("vacuum", t)
    engine.dispose()
    result.counts = dict(w.counts)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", help="a migrated database (postgresql:// or sqlite:///)")
    parser.add_argument("--applicants", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument(
        "--biggest", type=int, default=100_000, help="applicants in the biggest opening's Applied"
    )
    args = parser.parse_args(argv)
    done = generate(args.database_url, args.applicants, args.orgs, args.biggest)
    counts = ", ".join(f"{n:,} {table}" for table, n in done.counts.items())
    print(f"generated in {done.seconds:.1f} s: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
