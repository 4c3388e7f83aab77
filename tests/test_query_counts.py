"""The pages that list things run the same number of SQL statements however long the list:
no query per row (N+1). Counted with a before_cursor_execute listener on the engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    Opening,
    OpeningState,
    Question,
    QuestionType,
    Stage,
    new_public_id,
)
from tests.conftest import Auth, owner_of


@contextmanager
def statements(app) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def count_for(app, request) -> int:
    with statements(app) as seen:
        response = request()
    assert response.status_code == 200, response.text
    return len(seen)


def add_openings(org, n: int) -> None:
    for i in range(n):
        db.session.add(
            Opening(
                org_id=org.id,
                name=f"Opening {new_public_id()[:6]} {i}",
                slug=new_public_id()[:12],
                description="**Drive** for us.",
                state=OpeningState.PUBLISHED,
            )
        )
    db.session.commit()


def add_questions(stage: Stage, n: int, kind: QuestionType = QuestionType.SHORT_TEXT) -> list:
    start = len(db.session.query(Question).filter_by(stage_id=stage.id).all())
    rows = [
        Question(
            org_id=stage.org_id,
            opening_id=stage.opening_id,
            stage_id=stage.id,
            key=f"q{stage.id}_{start + i}",
            type=kind,
            label=f"Question {start + i}",
            position=start + i,
            options=["A", "B"] if kind.has_options else [],
        )
        for i in range(n)
    ]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def test_the_job_board(app, client, make_org):
    org = make_org("Acme", slug="acme")
    add_openings(org, 5)
    few = count_for(app, lambda: client.get("/jobs/acme"))
    add_openings(org, 45)
    many = count_for(app, lambda: client.get("/jobs/acme"))
    assert client.get("/jobs/acme").text.count('class="card job"') == 50
    assert many == few


@pytest.mark.parametrize("kind", [QuestionType.SHORT_TEXT, QuestionType.MULTI_CHOICE])
def test_the_opening_editor(app, client, make_org, make_opening, kind):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Apply", "Documents", "Review"))
    Auth(client).login(owner_of(org).email)
    url = f"/openings/{opening.public_id}/edit"
    add_questions(opening.stages[0], 5, kind)
    few = count_for(app, lambda: client.get(url))
    add_questions(opening.stages[0], 45, kind)
    many = count_for(app, lambda: client.get(url))
    assert many == few


def test_the_application_form_and_its_schema(app, client, make_org, make_opening):
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, stages=("Apply", "Documents"))
    page = f"/jobs/acme/{opening.slug}"
    schema = f"{page}/schema.json"
    add_questions(opening.stages[0], 5)
    few = (count_for(app, lambda: client.get(page)), count_for(app, lambda: client.get(schema)))
    add_questions(opening.stages[0], 45)
    add_questions(opening.stages[1], 50)
    many = (count_for(app, lambda: client.get(page)), count_for(app, lambda: client.get(schema)))
    assert many == few


def test_an_application_is_a_fixed_number_of_statements(
    app, client, make_org, make_opening, backend
):
    """Applying reads the org, the opening, its stages and their rules, the first stage's
    questions and the last rank of its column, and takes the new applicant's id, in one
    statement; then writes the applicant and everything else (answers, events, the link and
    the email, however many answers) in one statement and commits: nothing is reloaded, and
    a repeat is left to the unique index. An org without webhook endpoints is not searched for
    them (its row says it has none)."""
    if backend != "postgres":
        pytest.skip("SQLite, in-process, is sent rows one statement each: no round trips")
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, stages=("Apply", "Documents"))
    page = f"/jobs/acme/{opening.slug}"

    def apply(n: int) -> int:
        questions = db.session.query(Question).filter_by(stage_id=opening.stages[0].id).all()
        form = {"name": f"Ada {n}", "email": f"ada{n}@example.com"}
        form |= {f"q_{question.public_id}": "yes" for question in questions}
        with statements(app) as seen:
            response = client.post(page, data=form)
        assert response.status_code == 302, response.text
        assert not [sql for sql in seen if "FROM webhook_endpoints" in sql]
        assert not [sql for sql in seen if sql.lstrip().startswith("SELECT questions.")]
        return len(seen)

    add_questions(opening.stages[0], 3)
    few = apply(1)
    add_questions(opening.stages[0], 27)
    assert apply(2) == few == 2, few


def test_the_schema_does_not_query_per_stage(app, client, make_org, make_opening):
    org = make_org("Acme", slug="acme")
    few_stages = make_opening(org, stages=("A", "B"))
    many_stages = make_opening(org, stages=tuple(f"Stage {i}" for i in range(30)))
    for opening in (few_stages, many_stages):
        for stage in opening.stages:
            add_questions(stage, 2)
    few = count_for(app, lambda: client.get(f"/jobs/acme/{few_stages.slug}/schema.json"))
    many = count_for(app, lambda: client.get(f"/jobs/acme/{many_stages.slug}/schema.json"))
    assert len(client.get(f"/jobs/acme/{many_stages.slug}/schema.json").json["stages"]) == 30
    assert many == few


def _answer_all(applicant: Applicant, questions: list[Question]) -> None:
    for question in questions:
        db.session.add(
            Answer(
                org_id=applicant.org_id,
                applicant_id=applicant.id,
                question_id=question.id,
                value="A" if question.type != QuestionType.MULTI_CHOICE else ["A"],
            )
        )
    db.session.commit()


def test_the_applicant_portal(app, client, make_org, make_opening, make_applicant):
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, stages=("Apply", "Documents"))
    applicant = make_applicant(opening)
    # The portal signs in from the session: set it as a magic link would.
    with client.session_transaction() as session:
        session["applicant"] = applicant.public_id
    first = opening.stages[0]
    _answer_all(applicant, add_questions(first, 5))
    add_questions(first, 3)  # still to answer
    few = count_for(app, lambda: client.get("/portal"))
    _answer_all(applicant, add_questions(first, 45, QuestionType.MULTI_CHOICE))
    add_questions(first, 30)
    many = count_for(app, lambda: client.get("/portal"))
    assert client.get("/portal").text.count("Question ") >= 83
    assert many == few


def test_the_api_reads_an_applicant_and_lists_openings_in_fixed_statements(
    app, make_org, make_opening, make_applicant, make_question, make_api_key
):
    org = make_org()
    _, token = make_api_key(org, scope="read")
    headers = {"Authorization": f"Bearer {token}"}
    opening = make_opening(org)
    applicant = make_applicant(opening)
    client = app.test_client()
    client.get("/api/v1/openings", headers=headers)  # the key's last use is written once

    def read_applicant():
        return client.get(f"/api/v1/applicants/{applicant.public_id}", headers=headers)

    def list_openings():
        return client.get("/api/v1/openings", headers=headers)

    few = count_for(app, read_applicant), count_for(app, list_openings)
    stage = opening.stages[0]
    for n in range(8):
        question = make_question(stage, f"q{n}")
        db.session.add(
            Answer(org_id=org.id, applicant_id=applicant.id, question_id=question.id, value=f"a{n}")
        )
    db.session.commit()
    add_openings(org, 8)
    many = count_for(app, read_applicant), count_for(app, list_openings)
    assert many == few
    # The key, then the applicant with its opening and stage in one query, then its answers.
    assert few[0] <= 3, few


def test_an_api_creation_reads_back_nothing_it_wrote(
    app, make_org, make_opening, make_question, make_api_key, backend
):
    """Creating an applicant through the API reads the key, then the opening with its stages
    and rules, the first stage's questions and the column's last rank (taking the new
    applicant's id) in one statement, then writes the idempotency key, the application (one
    statement) and the stored answer; its answer shows the answers as stored (a number as a number)
    without reading them back."""
    if backend != "postgres":
        pytest.skip("SQLite, in-process, is sent rows one statement each: no round trips")
    org = make_org()
    _, token = make_api_key(org)
    opening = make_opening(org, stages=("Apply", "Documents"))
    stage = opening.stages[0]
    make_question(stage, "town")
    make_question(stage, "years", QuestionType.NUMBER)
    make_question(stage, "notes", QuestionType.LONG_TEXT)
    db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "create-1"}
    body = {
        "name": "Ada",
        "email": "ada@example.com",
        "answers": {"years": "7", "town": " Leeds ", "notes": ""},
    }
    client.get("/api/v1/openings", headers=headers)  # the key's last use is written once
    with statements(app) as seen:
        response = client.post(
            f"/api/v1/openings/{opening.public_id}/applicants", json=body, headers=headers
        )
    assert response.status_code == 201, response.text
    assert response.json["answers"] == {"town": "Leeds", "years": 7}
    assert not [sql for sql in seen if "FROM answers" in sql]
    assert not [sql for sql in seen if sql.lstrip().startswith("SELECT questions.")]
    assert len(seen) == 5, seen
    stored = client.get(f"/api/v1/applicants/{response.json['id']}", headers=headers)
    assert stored.json["answers"] == response.json["answers"]
