"""Rows inserted without the ORM (plutomi.services.inserts): what they store is what the ORM
would have stored, on both databases, and on PostgreSQL every table's rows go in one
statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from plutomi.extensions import db
from plutomi.models import Answer, Event, MagicLink, OutboxMessage, OutboxState
from plutomi.services import inserts
from plutomi.services.events import Actor, record_applicant

EVENTS = Event.__table__
ANSWERS = Answer.__table__
LINKS = MagicLink.__table__
OUTBOX = OutboxMessage.__table__


@contextmanager
def _sent() -> Iterator[list[str]]:
    """The statements this test's own code sends (it runs in a twin app: its own engine)."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _event(applicant, type_: str, **payload) -> dict:
    return {
        "type": type_,
        "actor_type": "applicant",
        "actor_id": applicant.id,
        "org_id": applicant.org_id,
        "opening_id": applicant.opening_id,
        "applicant_id": applicant.id,
        "payload": payload,
        "created_at": datetime(2026, 12, 7, 20, 30, 15, 123456, tzinfo=UTC),
    }


def test_rows_of_several_tables_are_stored_as_given(
    app, make_org, make_opening, make_applicant, make_question
):
    opening = make_opening(make_org())
    applicant = make_applicant(opening)
    town = make_question(opening.stages[0], "town")
    years = make_question(opening.stages[0], "years")
    db.session.commit()
    # Values JSON must carry through: text with quotes and a line break, a number, a list, a
    # null inside an object; datetimes aware in any zone, stored as naive UTC.
    payloads = [
        {"note": 'says "hi"\nand \u00e9', "n": 3},
        {"list": [1, "two", None], "nested": {"a": None}},
    ]
    events = [_event(applicant, f"applicant.step_{n}", **p) for n, p in enumerate(payloads)]
    answers = [
        {
            "org_id": applicant.org_id,
            "applicant_id": applicant.id,
            "question_id": town.id,
            "value": "Leeds",
        },
        {
            "org_id": applicant.org_id,
            "applicant_id": applicant.id,
            "question_id": years.id,
            "value": [7, "x"],
        },
    ]
    expires = datetime(2026, 12, 14, 21, 0, tzinfo=UTC) + timedelta(hours=1)
    links = [
        {
            "applicant_id": applicant.id,
            "token_hash": "h" * 64,
            "expires_at": expires.astimezone(UTC).astimezone(),
        }
    ]
    emails = [
        {"kind": "email", "org_id": applicant.org_id, "payload": {"to": f"{n}@example.com"}}
        for n in range(3)
    ]

    with _sent() as seen:
        ids = inserts.rows(
            [(EVENTS, events), (ANSWERS, answers), (LINKS, links), (OUTBOX, emails), (EVENTS, [])]
        )
    if db.engine.dialect.name == "postgresql":
        assert len(seen) == 1, seen
    # As for the objects the ORM flushes: the outbox rows go to RQ after commit, the events
    # to the webhook fan-out at commit.
    assert db.session.info["outbox_ids"] == ids
    assert [e["type"] for e in db.session.info["webhook_events"]] == [
        "applicant.step_0",
        "applicant.step_1",
    ]
    db.session.commit()

    stored = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert ids == [m.id for m in stored]
    assert [m.payload["to"] for m in stored] == ["0@example.com", "1@example.com", "2@example.com"]
    # Python defaults, one call a row: distinct public ids, the ORM's initial state.
    assert len({m.public_id for m in stored}) == 3
    assert {(m.state, m.attempts, m.max_attempts) for m in stored} == {(OutboxState.PENDING, 0, 6)}
    assert all(m.created_at is not None and m.next_attempt_at is not None for m in stored)

    got = db.session.scalars(
        select(Event).where(Event.applicant_id == applicant.id).order_by(Event.id)
    ).all()
    assert [(e.type, e.payload) for e in got] == [
        ("applicant.step_0", payloads[0]),
        ("applicant.step_1", payloads[1]),
    ]
    assert got[0].created_at == datetime(2026, 12, 7, 20, 30, 15, 123456, tzinfo=UTC)
    values = dict(
        db.session.execute(
            select(Answer.question_id, Answer.value).where(Answer.applicant_id == applicant.id)
        ).all()
    )
    assert values == {town.id: "Leeds", years.id: [7, "x"]}
    link = db.session.scalar(select(MagicLink).where(MagicLink.applicant_id == applicant.id))
    assert link.expires_at == expires and link.created_at is not None


def test_rows_come_after_what_the_session_holds_and_keep_their_order(
    app, make_org, make_opening, make_applicant
):
    opening = make_opening(make_org())
    applicant = make_applicant(opening)
    record_applicant("applicant.first", applicant, actor=Actor.applicant(applicant))
    inserts.rows([(EVENTS, [_event(applicant, f"applicant.then_{n}") for n in range(40)])])
    db.session.commit()
    types = db.session.scalars(
        select(Event.type).where(Event.applicant_id == applicant.id).order_by(Event.id)
    ).all()
    assert types == ["applicant.first"] + [f"applicant.then_{n}" for n in range(40)]


def test_nothing_to_insert_sends_nothing(app):
    with _sent() as seen:
        assert inserts.rows([(EVENTS, []), (OUTBOX, [])]) == []
    assert seen == []


def test_a_failed_insert_leaves_none_of_the_rows(app, make_org, make_opening, make_applicant):
    opening = make_opening(make_org())
    applicant = make_applicant(opening)
    token = {"applicant_id": applicant.id, "token_hash": "t" * 64, "expires_at": datetime.now(UTC)}
    inserts.rows([(LINKS, [token])])
    db.session.commit()
    # The same hash again breaks the unique index: the event sent with it must not stay.
    with pytest.raises(IntegrityError):
        inserts.rows([(EVENTS, [_event(applicant, "applicant.lost")]), (LINKS, [token])])
    db.session.rollback()
    assert db.session.scalar(select(Event.id).where(Event.type == "applicant.lost")) is None


def test_rows_that_give_different_columns_are_refused(app, make_org, make_opening, make_applicant):
    applicant = make_applicant(make_opening(make_org()))
    other = _event(applicant, "applicant.other")
    del other["payload"]
    with pytest.raises(ValueError, match="different columns"):
        inserts.rows([(EVENTS, [_event(applicant, "applicant.one"), other])])
