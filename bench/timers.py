"""The timers scenario: a million applicants, a hundred thousand timers due at once, one worker.

Seeds one opening whose Questionnaire holds every applicant, the time rule "not completed in
30 days -> Waiting List" on it, and one pending timer per applicant: two due sets of the same
size (one for Plutomi, one for the floor; each made due only just before its run) and the rest
waiting far ahead. Measures the sweep with nothing due (no timers at all, then all of them
waiting), one worker process running `jobs.timers.sweep` until its due set is done, and the
floor: the same reads and writes in bare SQL through the same driver, in a process of its own.
See bench/README.md.

    python -m bench.timers engine|floor    the worker processes (bench.run starts them)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    ROOT,
    Timing,
    Usage,
    bulk_mode,
    captured_statements,
    driver_url,
    drop_indexes,
    explain_sent,
    insert_opening,
    peak_rss_mb,
    recount_stages,
    row,
    vacuum,
)

# The targets, on a 2-core machine with PostgreSQL.
TARGET_SECONDS = 60.0  # every due timer evaluated and moved by one worker
# "Independent of the waiting timers": the idle sweep with all of them waiting may cost at
# most this many times what it costs with none, plus a quarter of a millisecond (room for the
# noise of a sub-millisecond probe, not for a scan: one of a million index entries costs tens of
# milliseconds).
IDLE_SPREAD = 1.5
IDLE_SLACK_MS = 0.25
DELAY_DAYS = 30
STAGES = ["Questionnaire", "Document Upload", "Final Review", "Waiting List", "Ready to Drive"]
FIRST, TARGET = STAGES[0], STAGES[3]
RULE_NAME = f"Not completed in {DELAY_DAYS} days"
OPENING_SLUG = "timers-1m"
# Emails say which set an applicant is in: the engine's due set, the floor's, or waiting.
SETS = {"engine": "timer-a-", "floor": "timer-b-", "waiting": "timer-w-"}


@dataclass
class TimerSeed:
    org_id: int
    opening_id: int
    rule_id: int
    stage_ids: dict[str, int]
    applicants: int
    due: int  # in each of the two due sets
    applicant_seconds: float = 0.0
    timer_seconds: float = 0.0

    @property
    def waiting(self) -> int:
        return self.applicants - 2 * self.due


# --- seeding ---------------------------------------------------------------------------------


def _naive_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the columns hold naive UTC


def seed_applicants(engine, org_id: int, applicants: int, due: int) -> TimerSeed:
    """The opening, its stages and time rule, and `applicants` applicants in its Questionnaire
    (entry 1, not completed), in one INSERT ... SELECT with the secondary indexes built after.
    Two due sets of `due` each are spread evenly through the ids (every stride-th row), so a
    batch's applicants are scattered over the table as real ones would be."""
    from sqlalchemy import text

    from plutomi import ranks
    from plutomi.models import new_public_id

    started = time.perf_counter()
    now = _naive_now()
    stride = applicants // due
    with engine.begin() as conn:
        bulk_mode(conn)
        indexes = drop_indexes(conn, ["applicants"])
        # Older than the 500 others: the public job board's newest 200 stay the same.
        opening = insert_opening(
            conn, org_id, "Delivery Driver", OPENING_SLUG, STAGES, now, age=timedelta(days=2000)
        )
        opening_id, stage_pids = opening.id, opening.stage_pids
        stage_ids = dict(zip(STAGES, opening.stage_ids, strict=True))
        rule_id = conn.execute(
            text(
                "INSERT INTO rules (public_id, created_at, updated_at, org_id, opening_id,"
                " stage_id, position, name, trigger, delay_minutes, only_if_incomplete, match,"
                " conditions, actions, enabled) VALUES (:pid, :at, :at, :org, :opening, :stage,"
                " 0, :name, 'time_in_stage', :delay, true, 'all', CAST('[]' AS json),"
                " CAST(:actions AS json), true) RETURNING id"
            ),
            {
                "pid": new_public_id(),
                "at": now,
                "org": org_id,
                "opening": opening_id,
                "stage": stage_ids[FIRST],
                "name": RULE_NAME,
                "delay": DELAY_DAYS * 24 * 60,
                "actions": json.dumps(
                    [{"type": "move", "stage": stage_pids[STAGES.index(TARGET)]}]
                ),
            },
        ).scalar_one()
        # Public ids from the row number: "t" + 15 hex digits, unique and valid, and never
        # one of the stage board's (16 hex digits, so no "t").
        conn.execute(
            text(
                "INSERT INTO applicants (public_id, created_at, org_id, opening_id, stage_id,"
                " name, email, rank, entered_stage_at, version, status, stage_entry)"
                " SELECT 't' || lpad(to_hex(t.n), 15, '0'),"
                " :now - make_interval(secs => t.n % 86400), :org, :opening, :stage,"
                " 'Applicant ' || t.n,"
                " CASE WHEN t.n > :cutoff THEN :w WHEN t.n % :stride = :a_at THEN :a"
                "  WHEN t.n % :stride = :b_at THEN :b ELSE :w END || t.n || '@example.com',"
                " t.rank, :now - make_interval(secs => t.n % 86400), 1, 'active', 1"
                " FROM unnest(CAST(:ranks AS text[])) WITH ORDINALITY AS t(rank, n)"
            ),
            {
                "now": now,
                "org": org_id,
                "opening": opening_id,
                "stage": stage_ids[FIRST],
                # Every stride-th row of the first stride * due, in two interleaved sets.
                "stride": stride,
                "cutoff": stride * due,
                "a_at": 1 % stride,
                "b_at": (1 + stride // 2) % stride,
                "a": SETS["engine"],
                "b": SETS["floor"],
                "w": SETS["waiting"],
                "ranks": ranks.spread(applicants),
            },
        )
        for ddl in indexes:
            conn.execute(text(ddl))
        # The triggers that keep the per-stage counts were off for the bulk insert.
        recount_stages(conn, [opening_id])
    vacuum(engine, "applicants")
    return TimerSeed(
        org_id=org_id,
        opening_id=opening_id,
        rule_id=rule_id,
        stage_ids=stage_ids,
        applicants=applicants,
        due=due,
        applicant_seconds=time.perf_counter() - started,
    )


def seed_timers(engine, seed: TimerSeed) -> None:
    """One pending timer per applicant, set at its stage entry as rules.entered does (due 30
    days after it, so none is due yet), with the timers' indexes built after."""
    from sqlalchemy import text

    started = time.perf_counter()
    with engine.begin() as conn:
        bulk_mode(conn)
        indexes = drop_indexes(conn, ["timers"])
        conn.execute(
            text(
                "INSERT INTO timers (org_id, applicant_id, rule_id, stage_entry, due_at, state)"
                " SELECT org_id, id, :rule, stage_entry, entered_stage_at + :delay, 'pending'"
                " FROM applicants WHERE opening_id = :opening ORDER BY id"
            ),
            {"rule": seed.rule_id, "delay": timedelta(days=DELAY_DAYS), "opening": seed.opening_id},
        )
        for ddl in indexes:
            conn.execute(text(ddl))
    vacuum(engine, "timers")
    seed.timer_seconds = time.perf_counter() - started


def make_due(engine, seed: TimerSeed, which: str) -> None:
    """Bring one due set's stage entries 31 days back, so its timers fell due within the last
    day, in an order unrelated to the applicants' ids (a claim's rows are scattered)."""
    from sqlalchemy import text

    params = {"now": _naive_now(), "opening": seed.opening_id, "pattern": SETS[which] + "%"}
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE applicants SET entered_stage_at = :now - interval '30 days'"
                " - make_interval(secs => 1 + (id::bigint * 7919) % 86399)"
                " WHERE opening_id = :opening AND email LIKE :pattern"
            ),
            params,
        )
        conn.execute(
            text(
                "UPDATE timers t SET due_at = a.entered_stage_at + interval '30 days'"
                " FROM applicants a WHERE a.id = t.applicant_id"
                " AND a.opening_id = :opening AND a.email LIKE :pattern"
            ),
            params,
        )
    # Each run starts from vacuumed tables: the other set's moves left dead rows, and a
    # move's trigger updates its two stages' counter rows, which bloat fast without it.
    vacuum(engine, "applicants, timers, events, stage_counts")


def verify(engine, seed: TimerSeed, which: str) -> dict[str, int]:
    """What a due set looks like after its run: where its applicants are, its timers' states
    and the rule's events about them."""
    from sqlalchemy import text

    params = {
        "opening": seed.opening_id,
        "pattern": SETS[which] + "%",
        "target": seed.stage_ids[TARGET],
        "rule": seed.rule_id,
    }
    with engine.connect() as conn:
        counts = (
            conn.execute(
                text(
                    "SELECT count(*) AS applicants,"
                    " count(*) FILTER (WHERE a.stage_id = :target) AS in_target,"
                    " count(*) FILTER (WHERE t.state = 'done' AND t.outcome = 'fired') AS fired,"
                    " count(*) FILTER (WHERE t.state IN ('pending', 'claimed')) AS left_open"
                    " FROM applicants a JOIN timers t ON t.applicant_id = a.id"
                    " WHERE a.opening_id = :opening AND a.email LIKE :pattern"
                ),
                params,
            )
            .one()
            ._asdict()
        )
        events = dict(
            conn.execute(
                text(
                    "SELECT e.type, count(*) FROM events e JOIN applicants a"
                    " ON a.id = e.applicant_id WHERE a.opening_id = :opening"
                    " AND a.email LIKE :pattern AND e.actor_type = 'rule' AND e.actor_id = :rule"
                    " GROUP BY e.type"
                ),
                params,
            ).all()
        )
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM timers WHERE rule_id = :rule AND state = 'pending'"
                " AND due_at > :now"
            ),
            {"rule": seed.rule_id, "now": _naive_now()},
        ).scalar()
    counts["moved_events"] = events.get("applicant.moved", 0)
    counts["fired_events"] = events.get("rule.fired", 0)
    counts["still_waiting"] = waiting
    return counts


def verified(counts: dict[str, int], due: int) -> bool:
    return (
        counts["in_target"] == counts["fired"] == counts["moved_events"] == due
        and counts["fired_events"] == due
        and counts["left_open"] == 0
    )


# --- the sweep with nothing due --------------------------------------------------------------


def _times(call: Callable[[], Any], calls: int) -> list[float]:
    for _ in range(10):  # warm: imports, the pool, the statement caches
        call()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


# The floor's statements: rules.any_due's probe and rules.claim's conditional UPDATEs, by hand.
# Each kind of claimable timer is an ordered range of the (state, due_at) index under a LIMIT.
PENDING = "state = 'pending' AND due_at <= :now"
EXPIRED = "state = 'claimed' AND lease_until < :now"  # a dead worker's lease ran out
PROBE = (
    f"SELECT (SELECT id FROM timers WHERE {PENDING} ORDER BY due_at LIMIT 1),"
    f" (SELECT id FROM timers WHERE {EXPIRED} ORDER BY due_at LIMIT 1)"
)
# The ids locked come back as one array, so the UPDATE finds them by primary key.
CLAIM = [
    "UPDATE timers SET state = 'claimed', claim_token = :token, lease_until = :lease"
    " WHERE id = ANY(CAST((SELECT array_agg(id) FROM (SELECT id FROM timers"
    f" WHERE {kind} ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED) AS picked)"
    " AS integer[]))"
    " RETURNING id, applicant_id, rule_id, stage_entry, due_at"
    for kind in (EXPIRED, PENDING)
]


def floor_claim(conn, token: str, limit: int) -> list:
    """Up to limit timers, a dead worker's first, as rules.claim takes them; committed."""
    from sqlalchemy import text

    from plutomi.services import rules

    now = _naive_now()
    params = {"now": now, "token": token, "lease": now + rules.TIMER_LEASE}
    taken: list = []
    for statement in CLAIM:
        if len(taken) < limit:
            taken += conn.execute(text(statement), {**params, "limit": limit - len(taken)}).all()
    conn.commit()
    return sorted(taken, key=lambda t: (t.due_at, t.id))


def idle_costs(config: dict[str, Any], calls: int) -> dict[str, Any]:
    """p50s of rules.any_due() (what a sweep with nothing due runs) and rules.run_due() with
    nothing due, against the floor's bare probe and claim; and the SQL the engine sent."""
    from sqlalchemy import create_engine, text

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.services import rules

    app = create_app(config)
    out: dict[str, Any] = {}
    with app.app_context():
        out["any_due"] = _times(rules.any_due, calls)
        out["run_due"] = _times(rules.run_due, calls)
        with captured_statements(db.engine) as sent:
            rules.any_due()
            rules.run_due()
        out["engine_sql"] = sent
        db.session.remove()
        db.engine.dispose()

    bare = create_engine(config["SQLALCHEMY_DATABASE_URI"])
    probe = text(PROBE)
    with bare.connect() as conn:
        out["floor_probe"] = _times(lambda: conn.execute(probe, {"now": _naive_now()}).one(), calls)
        conn.rollback()
        out["floor_claim"] = _times(
            lambda: floor_claim(conn, secrets.token_hex(16), rules.TIMER_BATCH), calls
        )
    bare.dispose()
    return out


def uses_index(plans: list[str]) -> bool:
    """Every plan reaches the timers through ix_timers_state_due (or the primary key, for
    the ids a claim picked), never by a sequential scan of the table."""
    return all("Seq Scan on timers" not in plan for plan in plans) and any(
        "ix_timers_state_due" in plan for plan in plans
    )


# --- the worker processes --------------------------------------------------------------------


def engine_worker(profile: str | None = None) -> dict[str, Any]:
    """What an RQ worker does with a backlog: jobs.timers.sweep run after run, as the cron's
    ticks enqueue it (here without the wait for the next tick), until a run finds nothing due."""
    started = time.perf_counter()
    import jobs
    from jobs import timers as timer_jobs
    from plutomi.services import rules

    with jobs.app_context():  # the worker's app, created once as its first job does
        from plutomi.extensions import db

        usage = Usage(db.engine)
    startup = time.perf_counter() - started
    batches: list[float] = []
    run_due = rules.run_due

    def timed(limit: int = rules.TIMER_BATCH) -> tuple[int, int]:
        t0 = time.perf_counter()
        result = run_due(limit)
        batches.append(time.perf_counter() - t0)
        return result

    rules.run_due = timed  # sweep() looks it up at call time: each batch's time, nothing more
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    claimed = fired = runs = 0
    usage.start()
    started = time.perf_counter()
    while True:
        result = timer_jobs.sweep()
        runs += 1
        claimed += result["claimed"]
        fired += result["fired"]
        if not result["claimed"]:
            break
    elapsed = time.perf_counter() - started
    spent = usage.report()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    return {
        "seconds": elapsed,
        "startup_seconds": startup,
        "claimed": claimed,
        "fired": fired,
        "sweeps": runs,
        "batches": batches,
        "rss_mb": peak_rss_mb(),
        **spent,
    }


# The floor's chunk: the same reads and writes as rules._run_chunk, by hand.
READ_APPLICANTS = (
    "SELECT id, org_id, opening_id, stage_id, stage_entry, version, status, stage_completed_at"
    " FROM applicants WHERE id = ANY(:ids)"
)
READ_RULES = (
    "SELECT id, public_id, name, opening_id, stage_id, trigger, delay_minutes,"
    " only_if_incomplete, enabled, actions FROM rules WHERE id = ANY(:ids)"
)
READ_STAGES = "SELECT id, public_id, name FROM stages WHERE opening_id = ANY(:ids)"
BOTTOM = (
    "SELECT rank FROM applicants WHERE stage_id = :stage AND status = 'active'"
    " ORDER BY rank DESC LIMIT 1"
)
MOVE = (
    "UPDATE applicants a SET stage_id = v.stage_id, rank = v.rank, version = a.version + 1,"
    " stage_entry = a.stage_entry + 1, entered_stage_at = :now, stage_completed_at = NULL"
    " FROM unnest(CAST(:ids AS int[]), CAST(:versions AS int[]), CAST(:stages AS int[]),"
    " CAST(:ranks AS text[])) AS v(id, version, stage_id, rank)"
    " WHERE a.id = v.id AND a.version = v.version AND a.status = 'active' RETURNING a.id"
)
EVENTS = (
    "INSERT INTO events (org_id, opening_id, applicant_id, type, actor_type, actor_id, payload,"
    " created_at) SELECT e.org, e.opening, e.applicant, e.type, 'rule', e.actor,"
    " CAST(e.payload AS json), :now FROM unnest(CAST(:orgs AS int[]), CAST(:openings AS int[]),"
    " CAST(:applicants AS int[]), CAST(:types AS text[]), CAST(:actors AS int[]),"
    " CAST(:payloads AS text[])) WITH ORDINALITY AS e(org, opening, applicant, type, actor,"
    " payload, n) ORDER BY e.n"
)
FINISH = (
    "UPDATE timers SET state = 'done', outcome = :outcome, done_at = :now, lease_until = NULL,"
    " error = NULL WHERE id = ANY(:ids) AND claim_token = :token AND state = 'claimed'"
)


def _floor_chunk(conn, token: str, timers: list) -> int:
    """One transaction: read the applicants and rules, evaluate, move the fired ones with one
    conditional UPDATE, write both events of each in one INSERT, mark the timers done."""
    from sqlalchemy import text

    from plutomi import ranks

    now = _naive_now()
    applicants = {
        row.id: row
        for row in conn.execute(text(READ_APPLICANTS), {"ids": [t.applicant_id for t in timers]})
    }
    rules = {
        r.id: r for r in conn.execute(text(READ_RULES), {"ids": list({t.rule_id for t in timers})})
    }
    stages = {
        s.public_id: s
        for s in conn.execute(
            text(READ_STAGES), {"ids": list({r.opening_id for r in rules.values()})}
        )
    }
    bottom: dict[int, str | None] = {}
    outcomes: dict[str, list[int]] = {}
    moves: list[tuple[Any, Any, Any, str, str]] = []  # applicant, rule, target, rank, why
    fired: list[tuple[Any, Any, str]] = []
    for timer in timers:
        applicant, rule = applicants.get(timer.applicant_id), rules.get(timer.rule_id)
        if (
            applicant is None
            or rule is None
            or not rule.enabled
            or rule.trigger != "time_in_stage"
            or applicant.status != "active"
            or applicant.stage_id != rule.stage_id
            or applicant.stage_entry != timer.stage_entry
        ):
            outcome = "stale"
        elif rule.only_if_incomplete and applicant.stage_completed_at is not None:
            outcome = "completed"
        else:  # the seeded rule has no conditions
            outcome = "fired"
            why = f"{rule.delay_minutes / (24 * 60):g} days in stage"
            fired.append((applicant, rule, why))
            action = next((a for a in rule.actions if a.get("type") == "move"), None)
            target = stages.get(action["stage"]) if action else None
            if target is not None and target.id != applicant.stage_id:
                if target.id not in bottom:
                    bottom[target.id] = conn.execute(text(BOTTOM), {"stage": target.id}).scalar()
                bottom[target.id] = rank = ranks.after(bottom[target.id])
                moves.append((applicant, rule, target, rank, why))
        outcomes.setdefault(outcome, []).append(timer.id)
    moved = set()
    if moves:
        moved = set(
            conn.execute(
                text(MOVE),
                {
                    "now": now,
                    "ids": [m[0].id for m in moves],
                    "versions": [m[0].version for m in moves],
                    "stages": [m[2].id for m in moves],
                    "ranks": [m[3] for m in moves],
                },
            ).scalars()
        )
    by_id = {s.id: s for s in stages.values()}
    targets = {m[0].id: m[2] for m in moves if m[0].id in moved}
    events: list[tuple[Any, Any, str, dict]] = []
    for applicant, rule, why in fired:
        payload = {"rule_name": rule.name, "rule_id": rule.public_id, "why": why}
        stage = by_id[applicant.stage_id]
        events.append(
            (
                applicant,
                rule,
                "rule.fired",
                {"trigger": rule.trigger, "stage": stage.name, **payload},
            )
        )
        if (target := targets.get(applicant.id)) is not None:
            moved_payload = {
                "from_stage": stage.name,
                "to_stage": target.name,
                "from_stage_id": stage.public_id,
                "to_stage_id": target.public_id,
                "reason": "rule",
                **payload,
            }
            events.append((applicant, rule, "applicant.moved", moved_payload))
    if events:
        conn.execute(
            text(EVENTS),
            {
                "now": now,
                "orgs": [e[0].org_id for e in events],
                "openings": [e[0].opening_id for e in events],
                "applicants": [e[0].id for e in events],
                "types": [e[2] for e in events],
                "actors": [e[1].id for e in events],
                "payloads": [json.dumps(e[3]) for e in events],
            },
        )
    done = 0
    for outcome, ids in outcomes.items():
        done += conn.execute(
            text(FINISH), {"outcome": outcome, "now": now, "ids": ids, "token": token}
        ).rowcount
    if done != len(timers):
        conn.rollback()
        return 0
    conn.commit()
    return len(fired)


def floor_worker() -> dict[str, Any]:
    """The floor's worker: claim a batch (the same statement shape and size as rules.claim),
    then rules.TIMER_CHUNK timers per transaction, until a claim comes back empty."""
    started = time.perf_counter()
    from sqlalchemy import create_engine

    from plutomi.services import rules

    url = os.environ["DATABASE_URL"]
    engine = create_engine(driver_url(url))
    usage = Usage(engine)
    startup = time.perf_counter() - started
    batches: list[float] = []
    claimed = fired = 0
    usage.start()
    started = time.perf_counter()
    with engine.connect() as conn:
        while True:
            t0 = time.perf_counter()
            token = secrets.token_hex(16)
            timers = floor_claim(conn, token, rules.TIMER_BATCH)
            if not timers:
                break
            for start in range(0, len(timers), rules.TIMER_CHUNK):
                fired += _floor_chunk(conn, token, timers[start : start + rules.TIMER_CHUNK])
            claimed += len(timers)
            batches.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    spent = usage.report()
    engine.dispose()
    return {
        "seconds": elapsed,
        "startup_seconds": startup,
        "claimed": claimed,
        "fired": fired,
        "sweeps": 1,
        "batches": batches,
        "rss_mb": peak_rss_mb(),
        **spent,
    }


def run_worker(which: str, env: dict[str, str], profile: str | None = None) -> dict[str, Any]:
    """One worker in a fresh process; its report is the last line it prints."""
    command = [sys.executable, "-m", "bench.timers", which]
    if profile:
        command += ["--profile", profile]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {which} worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the scenario ----------------------------------------------------------------------------


def _timing(samples: list[float], ok: int, elapsed: float | None = None) -> Timing:
    return Timing(
        latencies=samples or [0.0],
        elapsed=sum(samples) if elapsed is None else elapsed,
        ok=ok,
    )


def _cpu(report: dict[str, Any]) -> dict[str, float | None]:
    db_seconds = report["db_cpu_seconds"]
    return {
        "worker": round(report["worker_cpu_seconds"], 2),
        "database": None if db_seconds is None else round(db_seconds, 2),
    }


def scenarios(args, config: dict[str, Any], org_id: int, env: dict[str, str]) -> list[dict]:
    """Seed, measure the idle sweep at 0 and at every timer waiting, then one worker on the
    engine's due set and one on the floor's."""
    from sqlalchemy import create_engine

    applicants, due = args.timer_applicants, args.timer_due
    engine = create_engine(config["SQLALCHEMY_DATABASE_URI"])
    print(f"timers: seeding {applicants:,} applicants ...", flush=True)
    seed = seed_applicants(engine, org_id, applicants, due)
    print(f"  {applicants:,} applicants in {seed.applicant_seconds:.1f} s", flush=True)
    calls = args.timer_idle_calls
    print(f"timers: the sweep with no timers at all ({calls} calls each) ...", flush=True)
    empty = idle_costs(config, calls)
    seed_timers(engine, seed)
    print(
        f"  {applicants:,} pending timers (none due) in {seed.timer_seconds:.1f} s;"
        f" the sweep with all of them waiting ...",
        flush=True,
    )
    full = idle_costs(config, calls)
    plans = explain_sent(config["SQLALCHEMY_DATABASE_URI"], "timers", full["engine_sql"])
    for plan in plans:
        print("  " + plan.replace("\n", "\n  "))
    p50 = statistics.median
    idle = {
        name: {
            "none_waiting_ms": round(1000 * p50(empty[name]), 3),
            f"{applicants}_waiting_ms": round(1000 * p50(full[name]), 3),
        }
        for name in ("any_due", "run_due", "floor_probe", "floor_claim")
    }
    print(f"  p50 ms at 0 / {applicants:,} waiting: {json.dumps(idle)}", flush=True)

    results = {}
    for which in ("floor", "engine"):
        # The floor first: the engine then runs on the (slightly) bigger tables.
        make_due(engine, seed, which)
        print(f"timers: {which} worker on {due:,} due timers ...", flush=True)
        report = run_worker(which, env, args.timer_profile if which == "engine" else None)
        report["check"] = verify(engine, seed, which)
        report["verified"] = verified(report["check"], due)
        if not report["verified"]:
            print(f"  ! {which}: {report['check']}", file=sys.stderr)
        rate = report["claimed"] / report["seconds"] if report["seconds"] else 0.0
        print(
            f"  {report['claimed']:,} timers in {report['seconds']:.1f} s ({rate:,.0f}/s),"
            f" peak RSS {report['rss_mb']:.0f} MB, CPU s worker {report['worker_cpu_seconds']:.1f}"
            f" / database {report['db_cpu_seconds'] or 0:.1f}; {report['check']}",
            flush=True,
        )
        results[which] = report
    # The steady state: done timers (due in the past) beside the waiting ones. Planner
    # estimates that count the done rows as due are what would tempt a sequential scan.
    print("timers: the sweep with nothing due after both runs (and a vacuum) ...", flush=True)
    # As autovacuum would: until then the probes step over the index entries the runs left
    # dead (each claimed timer's pending entry, each done one's claimed entry).
    vacuum(engine, "timers")
    after = idle_costs(config, calls)
    for name, row_ in idle.items():
        row_["after_runs_ms"] = round(1000 * p50(after[name]), 3)
    print(f"  p50 ms after the runs: {json.dumps(idle)}", flush=True)
    engine.dispose()

    seeding = {
        "applicants_seconds": round(seed.applicant_seconds, 1),
        "timers_seconds": round(seed.timer_seconds, 1),
    }
    probe_none, probe_full = (p50(empty["any_due"]), p50(full["any_due"]))
    rows = [
        row(
            f"timers idle, {applicants // 1000}k",
            _timing(full["any_due"], calls),
            _timing(full["floor_probe"], calls),
            probe_full / p50(full["floor_probe"]),
            "any_due p50 / bare probe p50, with every timer waiting",
            f"<= {IDLE_SPREAD:g}x the cost at 0 + {IDLE_SLACK_MS:g} ms",
            # The sweep with nothing due runs any_due alone: index probes only, and as dear
            # with every timer waiting (and after the runs) as with none. run_due's idle p50s
            # (a commit each, so noisier) are in idle_p50.
            uses_index(plans)
            and probe_full <= IDLE_SPREAD * probe_none + IDLE_SLACK_MS
            and p50(after["any_due"]) <= IDLE_SPREAD * probe_none + IDLE_SLACK_MS,
            idle_p50=idle,
            plans=plans,
            index_scan=uses_index(plans),
            seeding=seeding,
        )
    ]
    engine_run, floor_run = results["engine"], results["floor"]
    engine_rate = engine_run["claimed"] / engine_run["seconds"]
    floor_rate = floor_run["claimed"] / floor_run["seconds"]
    rows.append(
        row(
            f"timers due, {due // 1000}k",
            _timing(engine_run["batches"], engine_run["claimed"], engine_run["seconds"]),
            _timing(floor_run["batches"], floor_run["claimed"], floor_run["seconds"]),
            floor_rate / engine_rate if engine_rate else float("inf"),
            "floor rate / engine rate (times slower than the floor); p50/p95 are per batch",
            f"{due // 1000}k in < {TARGET_SECONDS:.0f} s",
            engine_run["seconds"] < TARGET_SECONDS and engine_run["verified"],
            applicants=applicants,
            due=due,
            waiting=seed.waiting + due,  # the other set waits while each runs
            engine_seconds=round(engine_run["seconds"], 1),
            floor_seconds=round(floor_run["seconds"], 1),
            engine_rss_mb=round(engine_run["rss_mb"]),
            floor_rss_mb=round(floor_run["rss_mb"]),
            # CPU seconds of the worker process and of its PostgreSQL backends: the work
            # done, which the machine's other load inflates far less than wall time.
            engine_cpu_seconds=_cpu(engine_run),
            floor_cpu_seconds=_cpu(floor_run),
            engine_startup_seconds=round(engine_run["startup_seconds"], 2),
            sweeps=engine_run["sweeps"],
            engine_check=engine_run["check"],
            floor_check=floor_run["check"],
            verified=engine_run["verified"] and floor_run["verified"],
            seeding=seeding,
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a timers worker (bench.run starts these)")
    parser.add_argument("which", choices=["engine", "floor"])
    parser.add_argument("--profile", help="write a cProfile of the engine's run to this file")
    args = parser.parse_args(argv)
    report = engine_worker(args.profile) if args.which == "engine" else floor_worker()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
