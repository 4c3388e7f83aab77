"""How an app context's transaction ends (plutomi.extensions.commit_reads): one that only read
is committed, so psycopg keeps its prepared statements; one that wrote and was not committed,
or whose context failed, is rolled back as before."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select, text, update

from plutomi.extensions import db
from plutomi.models import Opening
from plutomi.services import applications, board, lookups, moves


def _prepared(app) -> int:
    with app.app_context():
        return db.session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))


def test_reads_stay_prepared_from_one_request_to_the_next(app, make_org, make_opening):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite prepares nothing on a server")
    opening = make_opening(make_org())
    db.engine.dispose()  # one fresh connection, reused by each context below
    # psycopg prepares a statement at its fifth run on a connection; a ROLLBACK forgets them.
    for _ in range(6):
        with app.app_context():
            assert db.session.scalar(select(Opening.name).where(Opening.id == opening.id))
    assert _prepared(app) >= 1


def test_a_write_left_uncommitted_is_rolled_back(app, make_org, make_opening):
    opening = make_opening(make_org(), name="Before")
    with app.app_context():
        db.session.execute(update(Opening).where(Opening.id == opening.id).values(name="After"))
        assert db.session.scalar(select(Opening.name).where(Opening.id == opening.id)) == "After"
    with app.app_context():
        assert db.session.scalar(select(Opening.name).where(Opening.id == opening.id)) == "Before"


def test_a_pending_change_is_never_flushed_by_the_end_of_a_request(app, make_org, make_opening):
    opening = make_opening(make_org(), name="Before")
    with app.app_context():
        db.session.get(Opening, opening.id).name = "After"
    with app.app_context():
        assert db.session.scalar(select(Opening.name).where(Opening.id == opening.id)) == "Before"


def test_a_failed_request_is_rolled_back(app, make_org, make_opening):
    opening = make_opening(make_org(), name="Before")
    with pytest.raises(RuntimeError), app.app_context():
        db.session.get(Opening, opening.id).name = "After"
        db.session.flush()
        raise RuntimeError("the view failed")
    with app.app_context():
        assert db.session.scalar(select(Opening.name).where(Opening.id == opening.id)) == "Before"


def test_the_hot_statements_write_their_limits_in(app, make_org, make_opening, make_applicant):
    """An application's first read, a move's read and a board's pages join several tables;
    planning one cost more than running it. With a LIMIT sent as a parameter PostgreSQL
    planned them afresh at every run (a generic plan cannot know the LIMIT); lookups.inline
    writes it into the SQL, and on the benchmark's data each then runs its generic plan."""
    org = make_org(slug="acme")
    opening = make_opening(org, stages=("Applied", "Review"))
    applied, review = opening.stages
    moved, neighbour = make_applicant(opening), make_applicant(opening, review)
    runs = {
        applications._org_and_opening(False): {"org_slug": "acme", "opening_slug": opening.slug},
        moves._drop("after"): {
            "org_id": org.id,
            "applicant_id": moved.public_id,
            "stage_id": review.id,
            "neighbour_id": neighbour.public_id,
        },
        moves._drop(None): {
            "org_id": org.id,
            "applicant_id": moved.public_id,
            "stage_id": applied.id,
        },
    }
    sent = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        for statement, params in runs.items():
            db.session.execute(statement, params).all()
        board.first_pages([applied.id, review.id], board.BoardFilter())
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert len(sent) == len(runs) + 1
    for sql in sent:
        assert "LIMIT" in sql, sql
        assert not re.search(r"LIMIT (\?|%\(|\$)", sql), sql


def test_inlined_constants_are_written_at_compile_time():
    """lookups.inline writes its constant when the statement is compiled, so the cached
    compiled form holds it and no run renders it again; a quote in a text is doubled."""
    from sqlalchemy.dialects import postgresql, sqlite

    query = (
        select(Opening.id).where(Opening.state == lookups.inline("it's")).limit(lookups.inline(3))
    )
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        sql = str(query.compile(dialect=dialect))
        assert "LIMIT 3" in sql and "'it''s'" in sql, sql
        assert "POSTCOMPILE" not in sql, sql
    with pytest.raises(TypeError):
        lookups.inline(True)
