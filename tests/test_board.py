"""The stage board's services: moves and ranks, version conflicts, counts and pages, filters,
bulk actions (at once and as a job), live changes, and the refusals that change nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from plutomi import ranks
from plutomi.extensions import db, queues
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    ApplicantTag,
    BulkAction,
    Event,
    Membership,
    Opening,
    Question,
    QuestionType,
    Role,
    utcnow,
)
from plutomi.services import board, bulk, cards, moves
from plutomi.services.errors import Conflict, Forbidden, Invalid, NotFound, Throttled
from plutomi.services.events import Actor, record_applicant
from tests.conftest import owner_of


def member(org, user) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def fill(opening, stage, count: int, prefix: str = "Person") -> list[Applicant]:
    """count applicants in stage, in rank order."""
    people = [
        Applicant(
            org_id=opening.org_id,
            opening_id=opening.id,
            stage_id=stage.id,
            name=f"{prefix} {i:03d}",
            email=f"{prefix.lower()}{i}@example.net",
            rank=key,
        )
        for i, key in enumerate(ranks.spread(count))
    ]
    db.session.add_all(people)
    db.session.commit()
    return people


def column(stage) -> list[str]:
    return list(
        db.session.scalars(
            select(Applicant.name)
            .where(Applicant.stage_id == stage.id, Applicant.status == "active")
            .order_by(Applicant.rank, Applicant.id)
        )
    )


def events(applicant, type_: str | None = None) -> list[Event]:
    query = select(Event).where(Event.applicant_id == applicant.id).order_by(Event.id)
    if type_:
        query = query.where(Event.type == type_)
    return list(db.session.scalars(query))


@pytest.fixture
def setup(make_org, make_opening):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Review", "Hired"))
    applied, review, hired = opening.stages
    people = fill(opening, applied, 5)
    actor = member(org, owner_of(org))
    return org, opening, (applied, review, hired), people, actor


# --- moves and ranks -----------------------------------------------------------------------


def test_a_move_to_another_stage_lands_next_to_its_neighbour_with_an_event(setup):
    _, opening, (applied, review, _), people, actor = setup
    fill(opening, review, 2, prefix="Rev")
    mover = people[1]
    seen = mover.version
    moved = moves.move(actor, mover.public_id, review.public_id, version=seen)
    assert moved.changed_stage
    assert column(review)[0] == "Person 001"  # no neighbour: the top
    db.session.refresh(mover)
    assert mover.stage_id == review.id and mover.version == seen + 1
    assert mover.entered_stage_at > utcnow() - timedelta(seconds=30)
    (event,) = events(mover, "applicant.moved")
    assert event.payload["from_stage"] == "Applied" and event.payload["to_stage"] == "Review"
    assert event.actor_type == "user"

    rev = db.session.scalars(select(Applicant).where(Applicant.name == "Rev 000")).one()
    moves.move(actor, people[2].public_id, review.public_id, after=rev.public_id)
    assert column(review) == ["Person 001", "Rev 000", "Person 002", "Rev 001"]
    moves.move(actor, people[3].public_id, review.public_id, before=rev.public_id)
    assert column(review) == ["Person 001", "Person 003", "Rev 000", "Person 002", "Rev 001"]
    last = db.session.scalars(select(Applicant).where(Applicant.name == "Rev 001")).one()
    moves.move(actor, people[4].public_id, review.public_id, after=last.public_id)
    assert column(review)[-1] == "Person 004"
    assert column(applied) == ["Person 000"]


def test_a_moves_event_follows_what_its_transaction_recorded_before_it(setup):
    """On PostgreSQL a move inserts its event with its UPDATE, at once; an event recorded
    before it in the transaction, still pending, must not land after it."""
    _, _, (applied, review, _), people, actor = setup
    person, by = people[0], Actor.user(actor.user)
    # Everything the move reads, loaded now: no query (and its autoflush) comes before it.
    version = person.version
    for stage in (applied, review):
        assert stage.name and stage.public_id
    record_applicant("applicant.note_added", person, actor=by)
    assert moves.place(
        person, applied, review, ranks.between(None, None), actor=by, version=version
    )
    db.session.commit()
    assert [e.type for e in events(person)] == ["applicant.note_added", "applicant.moved"]
    (moved,) = events(person, "applicant.moved")
    assert moved.payload == moves.stage_fields(applied, review)
    assert (moved.actor_type, moved.actor_id) == ("user", actor.user_id)


def test_reordering_within_a_stage_keeps_the_order_and_writes_a_reorder_event(setup):
    _, _, (applied, *_), people, actor = setup
    moves.move(actor, people[4].public_id, applied.public_id)  # to the top
    moves.move(actor, people[0].public_id, applied.public_id, after=people[2].public_id)
    assert column(applied) == ["Person 004", "Person 001", "Person 002", "Person 000", "Person 003"]
    assert [e.type for e in events(people[4])] == ["applicant.reordered"]
    db.session.refresh(people[4])
    assert people[4].stage_id == applied.id


def test_many_drops_into_one_gap_respread_the_column_and_keys_stay_short(setup):
    _, _, (applied, *_), people, actor = setup
    first, second = people[0], people[1]
    # Split the gap under the first card until no key fits (what some hundreds of drops at
    # one spot would leave), then drop once more into it.
    squeezed = second.rank
    with pytest.raises(ValueError):
        for _ in range(10_000):
            squeezed = ranks.between(first.rank, squeezed)
    second.rank = squeezed
    db.session.commit()
    assert len(squeezed) > 50

    moves.move(actor, people[4].public_id, applied.public_id, after=first.public_id)
    assert column(applied) == ["Person 000", "Person 004", "Person 001", "Person 002", "Person 003"]
    longest = db.session.scalar(
        select(func.max(func.length(Applicant.rank))).where(Applicant.stage_id == applied.id)
    )
    assert longest <= 3  # the column was respread to short keys, in the same order


def test_drops_into_one_gap_keep_their_order(setup, monkeypatch):
    _, _, (applied, *_), people, actor = setup
    monkeypatch.setattr(moves, "MOVES_PER_WINDOW", 10_000)
    for i in range(40):
        mover = people[1 + i % 4]
        moves.move(actor, mover.public_id, applied.public_id, after=people[0].public_id)
        assert column(applied)[:2] == ["Person 000", mover.name]


def test_a_stale_version_is_refused_and_nothing_changes(setup):
    _, _, (applied, review, _), people, actor = setup
    mover = people[0]
    moves.move(actor, mover.public_id, review.public_id, version=mover.version)
    with pytest.raises(Conflict, match="moved or changed by someone else"):
        moves.move(actor, mover.public_id, applied.public_id, version=1)
    db.session.refresh(mover)
    assert mover.stage_id == review.id and mover.version == 2
    assert len(events(mover)) == 1


def test_refusals_name_the_problem_and_change_nothing(setup, make_opening, make_org, make_member):
    org, _, (applied, review, _), people, actor = setup
    other = make_opening(org, "Other", stages=("Elsewhere",))
    other_org = make_org("Globex")
    foreign = make_opening(other_org, "Theirs", stages=("Theirs",))
    mover = people[0]

    with pytest.raises(Invalid, match="another opening"):
        moves.move(actor, mover.public_id, other.stages[0].public_id)
    with pytest.raises(NotFound):
        moves.move(actor, mover.public_id, foreign.stages[0].public_id)
    with pytest.raises(NotFound):
        moves.move(actor, mover.public_id, "not-an-id")
    with pytest.raises(Invalid, match="not on this board"):
        moves.move(actor, mover.public_id, review.public_id, after="a" * 16)
    with pytest.raises(Invalid, match="next to itself"):
        moves.move(actor, mover.public_id, applied.public_id, after=mover.public_id)
    # A neighbour that is no longer in the target stage: the board is out of date.
    with pytest.raises(Conflict):
        moves.move(actor, mover.public_id, review.public_id, after=people[1].public_id)

    viewer = member(org, make_member(org, Role.VIEWER))
    with pytest.raises(Forbidden):
        moves.move(viewer, mover.public_id, review.public_id)
    outsider = member(other_org, owner_of(other_org))
    with pytest.raises(NotFound):
        moves.move(outsider, mover.public_id, review.public_id)

    moves.reject(actor, people[1].public_id, "No licence")
    with pytest.raises(Conflict, match="rejected now; restore them first"):
        moves.move(actor, people[1].public_id, review.public_id)
    people[2].status = ApplicantStatus.WITHDRAWN
    db.session.commit()
    with pytest.raises(Conflict, match="withdrawn"):
        moves.move(actor, people[2].public_id, review.public_id)

    db.session.refresh(mover)
    assert mover.stage_id == applied.id and mover.version == 1
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type.in_(["applicant.moved", "applicant.reordered"]))
        )
        == 0
    )


def test_reject_and_restore_with_a_reason_and_events(setup):
    _, _, (applied, *_), people, actor = setup
    target = people[0]
    moves.reject(actor, target.public_id, "  No licence  ", version=1)
    db.session.refresh(target)
    assert target.status == "rejected" and target.version == 2
    assert "Person 000" not in column(applied)
    with pytest.raises(Conflict):
        moves.reject(actor, target.public_id)
    with pytest.raises(Invalid, match="under 500"):
        moves.reject(actor, people[1].public_id, "x" * 501)
    with pytest.raises(Invalid, match="control character"):
        moves.reject(actor, people[1].public_id, "bad\x00reason")
    with pytest.raises(Conflict, match="moved or changed"):
        moves.restore(actor, target.public_id, version=1)
    moves.restore(actor, target.public_id, version=2)
    db.session.refresh(target)
    assert target.status == "active" and column(applied)[0] == "Person 000"
    assert [(e.type, e.payload.get("reason")) for e in events(target)] == [
        ("applicant.rejected", "No licence"),
        ("applicant.restored", None),
    ]
    with pytest.raises(Conflict, match="not rejected"):
        moves.restore(actor, target.public_id)


def test_a_flood_of_moves_is_throttled_with_a_retry_time(setup, monkeypatch):
    _, _, (applied, *_), people, actor = setup
    monkeypatch.setattr(moves, "MOVES_PER_WINDOW", 3)
    for _ in range(3):
        moves.move(actor, people[0].public_id, applied.public_id)
    with pytest.raises(Throttled) as caught:
        moves.move(actor, people[0].public_id, applied.public_id)
    assert 1 <= caught.value.retry_after <= moves.MOVE_WINDOW_SECONDS
    assert len(events(people[0])) == 3


def test_the_move_limit_counts_in_one_redis_round_trip_and_survives_a_script_flush(
    setup, monkeypatch
):
    _, _, (applied, *_), people, actor = setup
    monkeypatch.setattr(moves, "MOVES_PER_WINDOW", 2)
    redis = queues.connection
    sent = []
    real = type(redis).execute_command
    monkeypatch.setattr(
        type(redis),
        "execute_command",
        lambda self, *a, **k: sent.append(a[0]) or real(self, *a, **k),
    )
    moves.move(actor, people[0].public_id, applied.public_id)
    assert sent == ["EVALSHA"]
    redis.script_flush()  # a restarted server forgets its scripts: the next call loads it again
    moves.move(actor, people[0].public_id, applied.public_id)
    with pytest.raises(Throttled):
        moves.move(actor, people[0].public_id, applied.public_id)
    assert 0 < redis.ttl(f"plutomi:rate:moves:{actor.user_id}") <= moves.MOVE_WINDOW_SECONDS


# --- counts, pages and filters -------------------------------------------------------------


def test_columns_count_everything_and_show_the_first_page_then_the_next(setup):
    _, opening, (_, review, _), _, _ = setup
    fill(opening, review, 7, prefix="Rev")
    data = board.board(opening, limit=3)
    assert [c.stage.name for c in data.columns] == ["Applied", "Review", "Hired"]
    assert [c.count for c in data.columns] == [5, 7, 0]
    assert [card.name for card in data.columns[1].cards] == ["Rev 000", "Rev 001", "Rev 002"]
    assert data.columns[1].has_more and not data.columns[2].has_more
    seen = [card.name for card in data.columns[1].cards]
    last = data.columns[1].cards[-1]
    while True:
        page = board.next_page(opening, review, data.filter, last.rank, last.public_id, [], limit=3)
        if not page:
            break
        seen += [card.name for card in page]
        last = page[-1]
    assert seen == [f"Rev {i:03d}" for i in range(7)]
    with pytest.raises(Invalid):
        board.next_page(opening, review, data.filter, "i1", "a" * 16, [])


def test_pages_break_rank_ties_by_id(setup, make_applicant):
    _, opening, (_, _, hired), _, _ = setup
    for i in range(5):
        make_applicant(opening, hired, name=f"Tie {i}")  # the factory gives every one rank "i"
    first = board.first_pages([hired.id], board.BoardFilter(), limit=2)[hired.id]
    rest = board.next_page(
        opening, hired, board.BoardFilter(), first[-1].rank, first[-1].public_id, [], limit=10
    )
    assert [c.name for c in first + rest] == [f"Tie {i}" for i in range(5)]


def add_question(stage, key, kind, options=(), show_on_card=False, position=0) -> Question:
    question = Question(
        org_id=stage.org_id,
        opening_id=stage.opening_id,
        stage_id=stage.id,
        key=key,
        type=kind,
        label=key.capitalize(),
        options=list(options),
        position=position,
        show_on_card=show_on_card,
    )
    db.session.add(question)
    db.session.flush()
    return question


def test_filters_by_text_time_tag_answers_and_status(setup):
    org, opening, (applied, *_), people, actor = setup
    city = add_question(applied, "city", QuestionType.SINGLE_CHOICE, ["Leeds", "York 50%"])
    days = add_question(applied, "days", QuestionType.MULTI_CHOICE, ["Mon", "Tue"], position=1)
    van = add_question(applied, "van", QuestionType.YES_NO, position=2)
    for person, (c, d, v) in zip(
        people,
        [("Leeds", ["Mon"], True), ("York 50%", ["Tue"], False), ("Leeds", ["Mon", "Tue"], True)],
        strict=False,
    ):
        db.session.add_all(
            [
                Answer(org_id=org.id, applicant_id=person.id, question_id=city.id, value=c),
                Answer(org_id=org.id, applicant_id=person.id, question_id=days.id, value=d),
                Answer(org_id=org.id, applicant_id=person.id, question_id=van.id, value=v),
            ]
        )
    people[3].entered_stage_at = utcnow() - timedelta(days=10)
    db.session.add(ApplicantTag(org_id=org.id, applicant_id=people[4].id, tag="bilingual"))
    db.session.commit()
    questions = board.board_questions(opening)[1]
    assert [q.key for q in questions] == ["city", "days", "van"]

    def names(**args) -> list[str]:
        f = board.parse_filter(args, questions)
        return [card.name for card in board.board(opening, f).columns[0].cards]

    assert names(q="person 00") == [f"Person {i:03d}" for i in range(5)]
    assert names(q="PERSON1@") == ["Person 001"]
    assert names(q="100%") == []  # LIKE wildcards are literal
    assert names(time="gt7") == ["Person 003"]
    assert names(time="lt1") == ["Person 000", "Person 001", "Person 002", "Person 004"]
    assert names(tag=" Bilingual ") == ["Person 004"]
    assert names(answer=f"{city.public_id}:Leeds") == ["Person 000", "Person 002"]
    assert names(answer=f"{city.public_id}:York 50%") == ["Person 001"]
    assert names(answer=f"{days.public_id}:Tue") == ["Person 001", "Person 002"]
    assert names(answer=f"{van.public_id}:No") == ["Person 001"]
    assert names(answer=f"{van.public_id}:Yes", q="002") == ["Person 002"]

    moves.reject(actor, people[0].public_id)
    assert names(status="rejected") == ["Person 000"]
    assert "Person 000" not in names()
    f = board.parse_filter({"status": "rejected"}, questions)
    assert board.counts([applied.id], f) == {applied.id: 1}

    for bad, field in [
        ({"time": "gt9999"}, "time"),
        ({"status": "deleted"}, "status"),
        ({"answer": f"{city.public_id}:Paris"}, "answer"),
        ({"answer": "nope:Leeds"}, "answer"),
    ]:
        with pytest.raises(Invalid) as caught:
            board.parse_filter(bad, questions)
        assert caught.value.field == field


def apply_elsewhere(other: Opening, email: str) -> None:
    """The same email applies to another opening of the org: a possible duplicate."""
    db.session.add(
        Applicant(
            org_id=other.org_id,
            opening_id=other.id,
            stage_id=other.stages[0].id,
            name="Someone",
            email=email,
            rank="i1",
        )
    )


def test_cards_carry_picked_answers_tags_and_the_duplicate_flag(setup, make_opening):
    org, opening, (applied, *_), people, _ = setup
    city = add_question(applied, "city", QuestionType.SINGLE_CHOICE, ["Leeds"], show_on_card=True)
    days = add_question(
        applied, "days", QuestionType.MULTI_CHOICE, ["Mon", "Tue"], show_on_card=True
    )
    for question, value in ((city, "Leeds"), (days, ["Mon", "Tue"])):
        db.session.add(
            Answer(org_id=org.id, applicant_id=people[0].id, question_id=question.id, value=value)
        )
    db.session.add(ApplicantTag(org_id=org.id, applicant_id=people[0].id, tag="van"))
    apply_elsewhere(make_opening(org, "Other"), people[1].email)
    people[3].name = "PERSON 002"  # the same name twice in this opening
    db.session.commit()
    cards = {c.name: c for c in board.board(opening).columns[0].cards}
    assert cards["Person 000"].answers == (("City", "Leeds"), ("Days", "Mon, Tue"))
    assert cards["Person 000"].tags == ("van",)
    assert [n for n, c in cards.items() if c.duplicate] == [
        "Person 001",
        "Person 002",
        "PERSON 002",
    ]


def test_a_moved_card_is_dressed_from_its_move_as_the_board_dresses_it(setup, make_opening):
    org, opening, (applied, review, _), people, actor = setup
    city = add_question(applied, "city", QuestionType.SINGLE_CHOICE, ["Leeds"], show_on_card=True)
    years = add_question(applied, "years", QuestionType.NUMBER, show_on_card=True, position=1)
    cv = add_question(applied, "cv", QuestionType.FILE, show_on_card=True, position=2)
    hidden = add_question(applied, "note", QuestionType.SHORT_TEXT, position=3)
    answers = {
        people[0]: [(city, "Leeds"), (years, 7), (cv, {"name": "cv.pdf"}), (hidden, "x")],
        people[1]: [(years, None), (hidden, "y")],
    }
    for person, given in answers.items():
        for question, value in given:
            db.session.add(
                Answer(org_id=org.id, applicant_id=person.id, question_id=question.id, value=value)
            )
    # Tags whose order depends on how spaces and dashes sort.
    for tag in ("hasty", "has van", "a-b", "ab", "zz"):
        db.session.add(ApplicantTag(org_id=org.id, applicant_id=people[0].id, tag=tag))
    apply_elsewhere(make_opening(org, "Other"), people[2].email)
    people[4].name = "PERSON 003"  # the same name twice in this opening, in another case
    db.session.commit()
    card_questions, _ = board.board_questions(opening)
    assert card_questions == [city, years, cv]

    for person in people:
        moved = moves.move(actor, person.public_id, review.public_id, dress=card_questions)
        drawn = board.moved_card(
            opening, moved.applicant, board.BoardFilter(), card_questions, moved.dressing
        )
        (expected,) = cards.dress(
            opening, [replace(drawn, duplicate=False, answers=(), tags=())], card_questions
        )
        assert drawn == expected, person.name
    first = board.moved_card(opening, people[0], board.BoardFilter(), card_questions, None)
    assert first.answers == (("City", "Leeds"), ("Years", "7"), ("Cv", "File uploaded"))
    assert first.tags == tuple(
        db.session.scalars(
            select(ApplicantTag.tag)
            .where(ApplicantTag.applicant_id == people[0].id)
            .order_by(ApplicantTag.tag)
        )
    )
    duplicates = {
        p.name
        for p in people
        if board.moved_card(opening, p, board.BoardFilter(), card_questions).duplicate
    }
    assert duplicates == {"Person 002", "Person 003", "PERSON 003"}


# --- bulk ----------------------------------------------------------------------------------


def test_a_small_bulk_move_happens_at_once_and_skips_changed_cards(setup):
    _, opening, (applied, review, _), people, actor = setup
    selected = [f"{p.public_id}:{p.version}" for p in people[:3]]
    moves.move(actor, people[1].public_id, applied.public_id)  # changed since it was selected
    summary = bulk.start(
        actor, opening, action="move", stage_id=review.public_id, selected=selected
    )
    assert (summary.done, summary.skipped, summary.stage_name) == (2, 1, "Review")
    assert column(review) == ["Person 000", "Person 002"]
    assert all(e.payload.get("to_stage") == "Review" for e in events(people[0]))

    summary = bulk.start(
        actor, opening, action="reject", reason="Closed", all_in_stage=applied.public_id
    )
    assert (summary.done, summary.skipped) == (3, 0)
    assert column(applied) == []

    with pytest.raises(Invalid, match="Select at least one"):
        bulk.start(actor, opening, action="move", stage_id=review.public_id, selected=[])
    with pytest.raises(Invalid, match="does not know"):
        bulk.start(actor, opening, action="move", stage_id=review.public_id, selected=["zz"])
    with pytest.raises(Invalid, match="Choose the stage"):
        bulk.start(actor, opening, action="move", selected=selected)
    with pytest.raises(Invalid, match="move or reject"):
        bulk.start(actor, opening, action="delete", selected=selected)


def test_a_large_bulk_move_is_a_job_that_resumes_after_its_last_chunk(setup, monkeypatch, run_jobs):
    _, opening, (applied, _, hired), _, actor = setup
    fill(opening, applied, 6, prefix="More")
    monkeypatch.setattr(bulk, "SYNC_LIMIT", 3)
    monkeypatch.setattr(bulk, "CHUNK", 4)
    action = bulk.start(
        actor, opening, action="move", stage_id=hired.public_id, all_in_stage=applied.public_id
    )
    assert isinstance(action, BulkAction) and action.total == 11 and action.state == "queued"
    assert column(hired) == []

    # A worker that dies after its first chunk: the chunk's moves and progress committed.
    assert bulk._claim(action.id)
    chunk = action.selection[:4]
    done, _ = bulk._apply(
        opening, moves.Actor("user", actor.user_id), "move", hired, "", chunk, action.public_id
    )
    action.done = done
    db.session.commit()
    assert len(column(hired)) == 4
    # Its lease runs out; the sweep hands the action out again and a worker finishes it.
    db.session.execute(
        BulkAction.__table__.update().values(lease_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert bulk.sweep() == 1
    assert run_jobs() == 0
    db.session.refresh(action)
    assert (action.state, action.done, action.skipped) == ("done", 11, 0)
    assert len(column(hired)) == 11 and column(applied) == []
    assert (
        db.session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "applicant.moved")
        )
        == 11
    )
    assert bulk.progress(action) == 100
    assert bulk.sweep() == 0


# --- live changes --------------------------------------------------------------------------


def test_changes_since_a_cursor(setup):
    _, opening, (applied, review, hired), people, actor = setup
    start = board.cursor(opening)
    f = board.BoardFilter()
    assert board.changes(opening, start, f, []) is None
    moves.move(actor, people[0].public_id, review.public_id)
    moves.reject(actor, people[1].public_id)
    found = board.changes(opening, start, f, [])
    assert [c.name for c in found.cards] == ["Person 000"]
    assert found.removed == [people[1].public_id]
    assert found.counts == {applied.id: 3, review.id: 1, hired.id: 0}
    assert found.cursor > start
    # Nothing new since: recent events are sent again only alongside something new.
    assert board.changes(opening, found.cursor, f, []) is None


def test_at_most_three_questions_show_on_cards(setup):
    from plutomi.services import openings

    _, opening, (applied, *_), _, actor = setup
    for n in range(3):
        openings.add_question(
            actor,
            opening.public_id,
            applied.public_id,
            openings.QuestionInput(label=f"Question {n}", show_on_card=True),
        )
    with pytest.raises(Invalid) as caught:
        openings.add_question(
            actor,
            opening.public_id,
            applied.public_id,
            openings.QuestionInput(label="One too many", show_on_card=True),
        )
    assert caught.value.field == "show_on_card"
    on_cards, _ = board.board_questions(opening)
    assert [q.label for q in on_cards] == ["Question 0", "Question 1", "Question 2"]


def test_the_timeline_tells_reorders_and_bulk_moves_apart(setup):
    from plutomi.services.timeline import DESCRIBE

    _, opening, (applied, review, _), people, actor = setup
    moves.move(actor, people[0].public_id, applied.public_id, after=people[2].public_id)
    bulk.start(
        actor, opening, action="move", stage_id=review.public_id, selected=[people[1].public_id]
    )
    (reorder,) = events(people[0])
    (moved,) = events(people[1])
    assert DESCRIBE[reorder.type](reorder.payload) == "Moved within Applied"
    assert DESCRIBE[moved.type](moved.payload) == "Moved from Applied to Review (bulk move)"
