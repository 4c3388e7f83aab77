"""The benchmarks' data set (bench/generate.py) at 10,000 applicants, and the applicant page
scenario on it under gunicorn, so neither rots: what the generator writes is checked here; the
numbers the scenario measures are not asserted (`make bench` reports them)."""

from __future__ import annotations

from argparse import Namespace

from sqlalchemy import func, select

from bench import applicant_page
from bench.common import floor_and_app, server_env
from bench.generate import HEAVY_EVENTS, OPENINGS_PER_ORG, STAGES, generate
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    Event,
    Opening,
    Org,
    Stage,
    StageCount,
    Timer,
    TimerState,
    utcnow,
)
from plutomi.services import openings


def test_the_generator_builds_the_data_set_and_the_page_scenario_reads_it(
    app, bench_backend, tmp_path
):
    config = app.extensions["test_config"]
    done = generate(
        config["SQLALCHEMY_DATABASE_URI"], 10_000, orgs=4, biggest=2_000, log=lambda _: None
    )
    db.session.expire_all()
    count = db.session.scalar
    assert done.counts["applicants"] == count(select(func.count()).select_from(Applicant)) == 10_000
    assert count(select(func.count()).select_from(Org)) == 4
    assert count(select(func.count()).select_from(Opening)) == 4 * OPENINGS_PER_ORG
    assert count(select(func.count()).select_from(Answer)) == 3 * 10_000

    # The biggest opening holds its applicants in one stage, in rank order.
    biggest = count(select(Opening).where(Opening.public_id == done.biggest_opening))
    applied = openings.stages_of(biggest)[0]
    assert [s.name for s in openings.stages_of(biggest)] == STAGES
    ranks = list(
        db.session.scalars(
            select(Applicant.rank).where(Applicant.stage_id == applied.id).order_by(Applicant.id)
        )
    )
    assert len(ranks) == 2_000 and ranks == sorted(ranks)

    # Every stage's counter agrees with its rows, as the triggers would have kept it.
    kept = dict(db.session.execute(select(StageCount.stage_id, StageCount.active)).all())
    counted = dict(
        db.session.execute(
            select(Applicant.stage_id, func.count()).group_by(Applicant.stage_id)
        ).all()
    )
    assert {k: v for k, v in kept.items() if v} == counted

    # Everyone in a first stage waits on the rule's timer; nobody else does.
    in_applied = count(
        select(func.count())
        .select_from(Applicant)
        .join(Stage, Stage.id == Applicant.stage_id)
        .where(Stage.position == 0)
    )
    pending = count(
        select(func.count()).select_from(Timer).where(Timer.state == TimerState.PENDING)
    )
    assert pending == in_applied == done.counts["timers"]
    # None is due yet, as in a system whose worker keeps up.
    assert count(select(func.min(Timer.due_at))) > utcnow()

    heavy = count(select(Applicant).where(Applicant.public_id == done.heavy_applicant))
    assert heavy.opening_id == biggest.id and heavy.id == done.heavy_id
    events = count(select(func.count()).select_from(Event).where(Event.applicant_id == heavy.id))
    assert events == HEAVY_EVENTS
    # All history is past, as the app would have written it.
    assert count(select(func.max(Event.created_at))) <= utcnow()

    # The app's own inserts follow the generated ids (the sequences were moved past them).
    db.session.add(
        Applicant(
            org_id=biggest.org_id,
            opening_id=biggest.id,
            stage_id=applied.id,
            name="After the set",
            email="after@example.com",
            rank="zz",
            entered_stage_at=utcnow(),
        )
    )
    db.session.commit()

    env = server_env(
        config["SQLALCHEMY_DATABASE_URI"], config["REDIS_URL"], config["SECRET_KEY"], tmp_path
    )
    with floor_and_app(env, tmp_path) as servers:
        result = applicant_page.scenario(
            Namespace(page_requests=5, page_seconds=60), *servers, done
        )
    # Both apps answered every request with a full first page of the timeline.
    assert result["ok"] == result["floor"]["ok"] == 5, result
    assert result["failed"] == result["floor"]["failed"] == 0
