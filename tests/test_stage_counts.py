"""The per-stage counters the database keeps: right after any mix of writes, by any path, and
free of deadlocks when cards cross between two stages in both directions at once."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import String, delete, func, insert, literal, select, update

from plutomi.extensions import db
from plutomi.models import Applicant, ApplicantStatus, Membership, StageCount
from plutomi.services import applications, board, bulk, moves, openings
from tests.test_board import fill


def kept() -> dict[int, int]:
    return {
        stage_id: active
        for stage_id, active in db.session.execute(select(StageCount.stage_id, StageCount.active))
        if active
    }


def counted() -> dict[int, int]:
    return dict(
        db.session.execute(
            select(Applicant.stage_id, func.count())
            .where(Applicant.status == ApplicantStatus.ACTIVE)
            .group_by(Applicant.stage_id)
        ).all()
    )


@pytest.fixture
def setup(make_org, make_opening, monkeypatch):
    monkeypatch.setattr(moves, "MOVES_PER_WINDOW", 10_000)  # this is no flood
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Screen", "Interview", "Offer"))
    actor = db.session.scalar(select(Membership).where(Membership.org_id == org.id))
    return opening, actor


def test_counters_follow_every_kind_of_write(setup):
    opening, actor = setup
    rng = random.Random(5)
    stages = opening.stages
    people = fill(opening, stages[0], 30)
    for i in range(5):
        applications.apply(opening, f"Form {i}", f"form{i}@example.net", {})
    assert kept() == counted() == {stages[0].id: 35}
    ids = [p.public_id for p in people]
    for _ in range(60):
        applicant = db.session.get(Applicant, people[rng.randrange(len(people))].id)
        roll = rng.random()
        try:
            if roll < 0.5:
                moves.move(actor, applicant.public_id, rng.choice(stages).public_id)
            elif roll < 0.65:
                moves.reject(actor, applicant.public_id, "no")
            elif roll < 0.8:
                moves.restore(actor, applicant.public_id)
            else:
                applications.withdraw(applicant)
        except Exception:
            db.session.rollback()
        assert kept() == counted()
    bulk.start(actor, opening, action="move", selected=ids[:10], stage_id=stages[3].public_id)
    assert kept() == counted()
    # Paths that bypass the services: a bulk INSERT ... SELECT, an UPDATE, a DELETE.
    db.session.execute(
        insert(Applicant).from_select(
            [
                "org_id",
                "opening_id",
                "stage_id",
                "name",
                "email",
                "rank",
                "version",
                "status",
                "public_id",
            ],
            select(
                Applicant.org_id,
                Applicant.opening_id,
                Applicant.stage_id,
                Applicant.name,
                Applicant.email + "x",
                Applicant.rank,
                Applicant.version,
                Applicant.status,
                # Upper case: never the id of an applicant made the usual way.
                literal("Z") + func.substr(Applicant.public_id, 2, type_=String),
            ).where(Applicant.stage_id == stages[3].id),
        )
    )
    db.session.execute(
        update(Applicant).where(Applicant.name.like("Form%")).values(status="rejected")
    )
    db.session.execute(delete(Applicant).where(Applicant.name == "Person 001"))
    db.session.commit()
    assert kept() == counted()
    # Deleting a stage moves its applicants; its own counter goes with it.
    openings.delete_stage(
        actor, opening.public_id, stages[1].public_id, move_to=stages[2].public_id
    )
    assert kept() == counted()
    assert db.session.get(StageCount, stages[1].id) is None


def test_the_unfiltered_board_reads_the_counters(setup):
    opening, _ = setup
    fill(opening, opening.stages[0], 7)
    stage_ids = [s.id for s in opening.stages]
    db.session.execute(
        update(StageCount).where(StageCount.stage_id == stage_ids[0]).values(active=1234)
    )
    db.session.commit()
    # Proof it reads the counter (tampered with here), and that a filter counts for real.
    assert board.counts(stage_ids, board.BoardFilter())[stage_ids[0]] == 1234
    assert board.counts(stage_ids, board.BoardFilter(q="person"))[stage_ids[0]] == 7


def test_crossing_moves_at_once_neither_deadlock_nor_miscount(setup, app, backend):
    if backend != "postgres":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    opening, actor = setup
    left, right = opening.stages[0], opening.stages[1]
    lefts = [p.public_id for p in fill(opening, left, 20, "Left")]
    rights = [p.public_id for p in fill(opening, right, 20, "Right")]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    # Plain values for the threads: touching this session's objects there would share it.
    actor_id, left_id, right_id = actor.id, left.public_id, right.public_id
    db.session.commit()  # end this session's transaction: the threads have their own

    def shuttle(ids, there, back):
        with app.app_context():
            try:
                member = db.session.get(Membership, actor_id)
                barrier.wait(30)
                for round_ in range(3):
                    target = there if round_ % 2 == 0 else back
                    for applicant_id in ids:
                        moves.move(member, applicant_id, target)
            except BaseException as exc:  # a deadlock would surface here
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=shuttle, args=(lefts, right_id, left_id)),
        threading.Thread(target=shuttle, args=(rights, left_id, right_id)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    db.session.expire_all()
    assert kept() == counted() == {left.id: 20, right.id: 20}
