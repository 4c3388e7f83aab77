"""The API scenario: applicants created per second through POST /api/v1/openings/<id>/applicants.

Client threads, each with its own `http.client` connection and its own share of the org's write
API keys, POST JSON applications ({name, email, answers}) to the apply target's opening (a
published opening whose first stage asks a short text, a single choice and a number), each with
a fresh `Idempotency-Key`, as fast as they can. A small share of the requests are repeats of one
of the thread's earlier requests: the same API key, Idempotency-Key and body, to be answered
with the stored response (`Idempotent-Replayed: true`) and no new work. Plutomi (`wsgi:app`) and
the floor (bench/floor_app.py: the same writes in hand-written SQL in one transaction) run under
the same gunicorn settings. Afterwards each run must have exactly one applicant per distinct key
that was answered 201, the applicant its response named, and each replay the first response.
See bench/README.md.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    Client,
    Server,
    ServerUsage,
    Timing,
    added_timings,
    added_usage,
    cpu_times,
    driver_url,
    interleaved,
    row,
    run_threads,
    steal_share,
)

TARGET_PER_S = 200.0
ANSWER_SUFFIX = "/applicants"
# The first stage's questions the bodies answer: the seeded openings' (bench/run.py).
QUESTION_KEYS = ("licence", "vehicle", "years")
VEHICLES = ("Car", "Van", "Bike")
WARM_UP = 5  # untimed requests per client: imports, statement caches, the pools


# --- seeding -------------------------------------------------------------------------------


def seed(config: dict[str, Any], target: dict[str, Any], keys: int) -> dict[str, Any]:
    """An owner of the target's org (a user of its own) and `keys` write API keys made by them
    with api_keys.create; returns the opening's public id and the keys' tokens."""
    from werkzeug.security import generate_password_hash

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Membership, Opening, Role, User, new_public_id
    from plutomi.services import api_keys

    app = create_app(config)
    with app.app_context():
        opening = db.session.get(Opening, target["opening_id"])
        user = User(
            email=f"api-owner-{new_public_id()[:8]}@example.com",
            name="API Bench Owner",
            password_hash=generate_password_hash("unused", method="pbkdf2:sha256:1000"),
        )
        db.session.add(user)
        db.session.flush()
        owner = Membership(org_id=opening.org_id, user_id=user.id, role=Role.OWNER)
        db.session.add(owner)
        db.session.commit()
        tokens = [api_keys.create(owner, f"Bench client {i + 1}", "write")[1] for i in range(keys)]
        seeded = {"opening_pid": opening.public_id, "tokens": tokens}
        db.session.remove()
        db.engine.dispose()
    return seeded


# --- the clients ---------------------------------------------------------------------------


@dataclass
class Sent:
    token: str
    key: str
    body: str
    answer: dict[str, Any]  # the 201's JSON


@dataclass
class Run:
    """One app's run: the fresh requests and the replays, timed apart."""

    prefix: str
    created: Timing = field(default_factory=Timing)
    replays: Timing = field(default_factory=Timing)
    sent: list[Sent] = field(default_factory=list)  # every 201 to a fresh key, warm-up too
    statuses: dict[str, int] = field(default_factory=dict)  # "fresh 201", "replay 429", ...
    replay_mismatches: int = 0
    errors: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)  # verify()'s


def added_runs(runs: list[Run]) -> Run:
    """One app's turns as one Run: timings, counts, CPU seconds and checks added up (the peak
    RSS the largest, verified only if every turn was)."""
    total = Run(runs[0].prefix.rsplit("-r", 1)[0])
    total.created = added_timings([run.created for run in runs])
    total.usage = added_usage([run.usage for run in runs])
    total.replays = added_timings([run.replays for run in runs])
    for run in runs:
        total.sent += run.sent
        for status, n in run.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
        total.replay_mismatches += run.replay_mismatches
        total.errors += run.errors[: 5 - len(total.errors)]
        for name, value in run.checks.items():
            if name == "verified":
                total.checks[name] = total.checks.get(name, True) and value
            elif name == "events_per_applicant":
                total.checks[name] = sorted({*total.checks.get(name, []), *value})
            else:
                total.checks[name] = total.checks.get(name, 0) + value
    return total


def _body(prefix: str, n: int) -> str:
    return json.dumps(
        {
            "name": f"API Applicant {n}",
            "email": f"{prefix}-{n}@example.com",
            "answers": {
                "licence": f"DL-{n:08d}",
                "vehicle": VEHICLES[n % 3],
                "years": n % 40,
            },
        }
    )


def _post(client: Client, path: str, token: str, key: str, body: str):
    return client.request(
        "POST",
        path,
        body,
        {
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
    )


def time_api(
    server: Server,
    path: str,
    prefix: str,
    tokens: list[str],
    threads: int,
    seconds: float,
    limit: int,
    replay_share: float,
) -> Run:
    """`threads` clients create applicants with fresh keys as fast as they can, for `seconds`
    or `limit` fresh requests in all, and repeat an earlier request of their own with a chance
    of `replay_share`. Each client first sends WARM_UP requests, untimed."""
    run = Run(prefix)
    counter = itertools.count()
    lock = threading.Lock()
    clients = [Client(server.port) for _ in range(threads)]
    histories: list[list[Sent]] = [[] for _ in range(threads)]

    def note(kind: str, status: int, data: bytes) -> None:
        with lock:
            name = f"{kind} {status}"
            run.statuses[name] = run.statuses.get(name, 0) + 1
            if status != 201 and len(run.errors) < 5:
                run.errors.append(f"{kind} {status} {data[:200]!r}")

    def fresh(number: int, n: int) -> tuple[float, bool]:
        mine = tokens[number::threads]
        token = mine[n % len(mine)]
        key = f"{prefix}-{uuid.uuid4()}"
        body = _body(prefix, n)
        t0 = time.perf_counter()
        status, _, data = _post(clients[number], path, token, key, body)
        took = time.perf_counter() - t0
        note("fresh", status, data)
        if status != 201:
            return took, False
        histories[number].append(Sent(token, key, body, json.loads(data)))
        return took, True

    def replay(number: int, rng: random.Random) -> tuple[float, bool]:
        earlier = rng.choice(histories[number])
        t0 = time.perf_counter()
        status, headers, data = _post(
            clients[number], path, earlier.token, earlier.key, earlier.body
        )
        took = time.perf_counter() - t0
        note("replay", status, data)
        same = status == 201 and json.loads(data) == earlier.answer
        replayed = {k.lower(): v for k, v in headers.items()}.get("idempotent-replayed")
        if status == 201 and (not same or replayed != "true"):
            with lock:
                run.replay_mismatches += 1
        return took, same and replayed == "true"

    def warm(number: int) -> None:
        for _ in range(WARM_UP):
            fresh(number, next(counter))

    pool = [threading.Thread(target=warm, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    warmed = next(counter)  # the numbers the warm-up used, and one more (unused)

    ready = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(number: int) -> None:
        rng = random.Random(number)  # the floor and Plutomi repeat alike
        created: list[float] = []
        replays: list[float] = []
        ok = failed = replay_ok = replay_failed = 0
        ready.wait()
        while time.perf_counter() < stop_at[0]:
            if histories[number] and rng.random() < replay_share:
                took, good = replay(number, rng)
                replays.append(took)
                replay_ok, replay_failed = replay_ok + good, replay_failed + (not good)
                continue
            n = next(counter)
            if n >= limit + warmed:
                break
            took, good = fresh(number, n)
            created.append(took)
            ok, failed = ok + good, failed + (not good)
        with lock:
            run.created.latencies.extend(created)
            run.created.ok += ok
            run.created.failed += failed
            run.replays.latencies.extend(replays)
            run.replays.ok += replay_ok
            run.replays.failed += replay_failed

    mark = server.mark()
    server.reset_peak_rss()
    usage = ServerUsage(server)
    before = cpu_times()
    elapsed = run_threads(worker, threads, ready, stop_at, seconds)
    run.usage = {"seconds": round(elapsed, 2), **usage.report()}
    steal = steal_share(before, cpu_times())
    for timing, replayed in ((run.created, False), (run.replays, True)):
        timing.elapsed = elapsed
        timing.steal = steal
        n = len(timing.latencies)
        # A warm-up request may be logged after the mark: keep the last ones, as many.
        times = server.server_times(mark, "POST", ANSWER_SUFFIX, n, replayed)
        timing.server = times[len(times) - n :] if n else []
    for client in clients:
        client.close()
    run.sent = [sent for history in histories for sent in history]
    for error in run.errors:
        print("  !", error, file=sys.stderr)
    return run


# --- the checks ----------------------------------------------------------------------------


def verify(database_url: str, opening_id: int, run: Run) -> dict[str, Any]:
    """Exactly one applicant per distinct key answered 201 (the one its answer named), one
    key row each with the response kept, every applicant with as many events as any other
    (a replay that did work would add some), and each replay answered the first response."""
    from sqlalchemy import create_engine, text

    like = {"o": opening_id, "p": f"{run.prefix}-%"}
    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        applicants = set(
            conn.scalars(
                text("SELECT public_id FROM applicants WHERE opening_id = :o AND email LIKE :p"),
                like,
            )
        )
        key_rows = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT key), sum(CASE WHEN status = 201 THEN 1 ELSE 0"
                " END) FROM idempotency_keys WHERE key LIKE :p"
            ),
            like,
        ).one()
        per_applicant = dict(
            conn.execute(
                text(
                    "SELECT a.public_id, count(e.id) FROM applicants a"
                    " LEFT JOIN events e ON e.applicant_id = a.id"
                    " WHERE a.opening_id = :o AND a.email LIKE :p GROUP BY a.public_id"
                ),
                like,
            ).all()
        )
        created_events = conn.scalar(
            text(
                "SELECT count(*) FROM events e JOIN applicants a ON a.id = e.applicant_id"
                " WHERE a.opening_id = :o AND a.email LIKE :p AND e.type = 'applicant.created'"
            ),
            like,
        )
    engine.dispose()
    keys = {sent.key for sent in run.sent}
    named = [sent.answer.get("id") for sent in run.sent]
    checks = {
        "keys_answered_201": len(keys),
        "applicants": len(applicants),
        "key_rows": key_rows[0],
        "key_rows_with_response": key_rows[2] or 0,
        "applicant_created_events": created_events,
        "events_per_applicant": sorted(set(per_applicant.values())),
        "replay_mismatches": run.replay_mismatches,
    }
    checks["verified"] = (
        len(keys) == len(run.sent)
        and len(set(named)) == len(named)
        and set(named) == applicants
        and key_rows[0] == key_rows[1] == (key_rows[2] or 0) == len(keys)
        and created_events == len(applicants)
        and len(checks["events_per_applicant"]) <= 1
        and run.replay_mismatches == 0
        and run.replays.failed == 0
    )
    if not checks["verified"]:
        print(f"  ! {run.prefix}: {checks}", file=sys.stderr)
    return checks


# --- the scenario --------------------------------------------------------------------------


def _ratio(app: float, floor: float) -> float:
    return app / floor if floor else float("inf")


def scenario(
    args, floor: Server, app: Server, config: dict[str, Any], target: dict[str, Any]
) -> list[dict[str, Any]]:
    """Seed the keys, time the floor and Plutomi, check both; two rows: creations and
    replays."""
    from plutomi.models import new_public_id

    database_url = config["SQLALCHEMY_DATABASE_URI"]
    threads = args.api_threads
    seeded = seed(config, target, max(threads, args.api_keys))
    path = f"/api/v1/openings/{seeded['opening_pid']}{ANSWER_SUFFIX}"
    print(
        f"api: {threads} clients, {args.api_seconds:.0f} s or {args.api_max} applicants in "
        f"{args.api_rounds} turns each, {100 * args.api_replay_share:.0f}% replays, "
        f"{len(seeded['tokens'])} API keys ...",
        flush=True,
    )
    tag = new_public_id()[:6]  # another run's keys and emails on the same database differ
    rounds = max(1, args.api_rounds)
    servers = {"floor": floor, "app": app}

    def turn(name: str):
        def run(r: int) -> Run:
            timed = time_api(
                servers[name],
                path,
                f"api-{name}-{tag}-r{r}",  # each turn's keys and emails are its own
                seeded["tokens"],
                threads,
                args.api_seconds / rounds,
                -(-args.api_max // rounds),
                args.api_replay_share,
            )
            timed.checks = verify(database_url, target["opening_id"], timed)
            return timed

        return run

    runs = interleaved({"floor": turn("floor"), "app": turn("app")}, rounds, added_runs)
    checks = {name: run.checks for name, run in runs.items()}
    app_run, floor_run = runs["app"], runs["floor"]
    verified = checks["app"]["verified"] and checks["floor"]["verified"]
    print(
        f"  Plutomi {app_run.created.rate:,.0f}/s (web peak RSS "
        f"{app_run.usage['web_peak_rss_mb'] or 0:.0f} MB), floor {floor_run.created.rate:,.0f}/s"
        f" ({floor_run.usage['web_peak_rss_mb'] or 0:.0f} MB); replays "
        f"{app_run.replays.ok}/{len(app_run.replays.latencies)} and "
        f"{floor_run.replays.ok}/{len(floor_run.replays.latencies)}",
        flush=True,
    )

    for run in (app_run, floor_run):
        # The whole run's CPU, the replays' share included, is counted a creation.
        run.created.usage = run.usage
    common = {
        "clients": threads,
        "api_keys": len(seeded["tokens"]),
        "replay_share": args.api_replay_share,
        "usage": {"app": app_run.usage, "floor": floor_run.usage},
        "statuses": {"app": app_run.statuses, "floor": floor_run.statuses},
        "checks": checks,
        "verified": verified,
    }
    created = row(
        "api applicants/s",
        app_run.created,
        floor_run.created,
        floor_run.created.rate / app_run.created.rate if app_run.created.rate else float("inf"),
        "floor rate / app rate (times slower than the floor); fresh Idempotency-Keys only",
        f">= {TARGET_PER_S:.0f}/s",
        app_run.created.rate >= TARGET_PER_S and app_run.created.failed == 0 and verified,
        web_peak_rss_mb={
            "app": app_run.usage["web_peak_rss_mb"],
            "floor": floor_run.usage["web_peak_rss_mb"],
        },
        **common,
    )
    if not (app_run.replays.latencies and floor_run.replays.latencies):
        return [created]
    replays = row(
        "api replays",
        app_run.replays,
        floor_run.replays,
        # Server time: at the client a replay mostly waits behind the creations queued at the
        # same workers, which would repeat the creation ratio.
        _ratio(app_run.replays.server_p50, floor_run.replays.server_p50),
        "replay server p50 / floor replay server p50 (times slower than the floor); "
        "throughput is replays per second of the same run",
        "stored answer, no work",
        app_run.replays.failed == 0 and app_run.replay_mismatches == 0 and verified,
        replays={"app": len(app_run.replays.latencies), "floor": len(floor_run.replays.latencies)},
    )
    return [created, replays]
