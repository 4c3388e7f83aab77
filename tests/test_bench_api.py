"""The API benchmark (bench/api.py), end to end at a tiny size, so it never rots: Plutomi and the
floor under gunicorn, clients creating applicants with idempotency keys and replaying some, and
the checks afterwards. The numbers it measures are not asserted; `make bench` reports them."""

from __future__ import annotations

from argparse import Namespace

from bench import api as bench_api
from bench.common import floor_and_app, server_env
from plutomi.models import QuestionType


def test_the_api_scenario_creates_one_applicant_per_key_and_replays(
    app, bench_backend, make_org, make_opening, make_question, tmp_path
):
    opening = make_opening(make_org())
    first = opening.stages[0]
    make_question(first, "licence", QuestionType.SHORT_TEXT, required=True)
    make_question(first, "vehicle", QuestionType.SINGLE_CHOICE, options=["Car", "Van", "Bike"])
    make_question(first, "years", QuestionType.NUMBER, min_value=0, max_value=80)
    target = {"org_id": opening.org_id, "opening_id": opening.id}
    config = app.extensions["test_config"]
    env = server_env(
        config["SQLALCHEMY_DATABASE_URI"], config["REDIS_URL"], config["SECRET_KEY"], tmp_path
    )
    postgres = config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    # SQLite takes one writer at a time: one client there, two racing on PostgreSQL.
    threads = 2 if postgres else 1
    with floor_and_app(env, tmp_path) as servers:
        rows = bench_api.scenario(
            Namespace(
                api_threads=threads,
                # Ends on the count, not the clock: the replays the seeded draws make happen
                # however slow the machine is.
                api_seconds=120,
                api_max=12,
                api_rounds=2,  # floor, app, app, floor: each side's two turns add up
                api_replay_share=0.3,
                api_keys=2,
            ),
            *servers,
            config,
            target,
        )
    created = rows[0]
    assert created["verified"], created["checks"]
    for name in ("app", "floor"):
        checks = created["checks"][name]
        assert checks["applicants"] == checks["keys_answered_201"] == checks["key_rows"]
        assert checks["applicants"] >= bench_api.WARM_UP * threads
        assert checks["replay_mismatches"] == 0
    assert created["failed"] == created["floor"]["failed"] == 0
    assert created["web_peak_rss_mb"]["app"] > 0
    # Who spent the CPU: the web workers and the clients always; the database's backends
    # only where they are PostgreSQL's (read from /proc when the server runs on this machine).
    for cpu in (created["cpu_per_request"], created["floor"]["cpu_per_request"]):
        assert cpu["web_cpu_ms_per_request"] > 0 and cpu["client_cpu_ms_per_request"] > 0
        assert postgres or cpu["db_cpu_ms_per_request"] is None
    # Replays are drawn from seeded generators: both apps repeat a key within a few requests.
    replays = rows[1]
    assert replays["ok"] > 0 and replays["floor"]["ok"] > 0
    assert replays["failed"] == replays["floor"]["failed"] == 0
