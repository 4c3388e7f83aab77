"""Odd input on the applicants' pages and the ids in URLs: never a 500, never half a write.

NUL in an id is the sharp case: SQLite compares it like any character, but PostgreSQL refuses
NUL in a query outright, so those tests fail (500) on PostgreSQL only without the guards.
"""

from __future__ import annotations

import io
from itertools import count

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    Event,
    MagicLink,
    OutboxMessage,
    Question,
    QuestionType,
    Upload,
)
from plutomi.services import answers
from tests import test_applications
from tests.conftest import Auth, owner_of
from tests.test_applications import apply_form, good_answers
from tests.test_bad_input import around

# The delivery-driver opening of the application tests, and the fixture it needs.
driver = test_applications.driver

FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ALLOWED = {200, 302, 404, 413, 422}
NUL = "%00"
_serial = count()


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Applicant, Answer, Event, MagicLink, OutboxMessage, Upload)
    }


def check(response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text


def sign_in_as_applicant(client, qs) -> Applicant:
    response = client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    assert response.status_code == 302, response.text
    return db.session.scalar(select(Applicant).order_by(Applicant.id.desc()))


# --- ids in URLs -------------------------------------------------------------------------


def test_nul_in_the_portals_ids_is_a_404(driver, client):
    _, _, qs = driver
    sign_in_as_applicant(client, qs)
    assert client.post(f"/portal/answers/{NUL}").status_code == 404
    assert client.post(f"/portal/answers/{qs['notes'].public_id}{NUL}").status_code == 404
    assert client.get(f"/portal/files/{NUL}").status_code == 404


def test_nul_in_the_editors_ids_is_a_404(driver, client):
    org, opening, _ = driver
    Auth(client).login(owner_of(org).email)
    url = f"/openings/{opening.public_id}"
    stage = opening.stages[0].public_id
    assert client.get(f"/files/{NUL}").status_code == 404
    for method, path in (
        ("post", f"{url}/stages/{NUL}/rename"),
        ("post", f"{url}/stages/{NUL}/move"),
        ("post", f"{url}/stages/{NUL}/delete"),
        ("get", f"{url}/stages/{NUL}/questions"),
        ("post", f"{url}/stages/{NUL}/questions/order"),
        ("get", f"{url}/questions/{NUL}/edit"),
        ("post", f"{url}/questions/{NUL}/move"),
        ("post", f"{url}/questions/{NUL}/delete"),
    ):
        response = getattr(client, method)(path, data={"name": "X", "direction": "up"})
        assert response.status_code == 404, (path, response.status_code)
    # ... and in a form field that names a stage.
    moved = client.post(f"{url}/stages/{stage}/delete", data={"move_to": "\x00"})
    assert moved.status_code == 404
    assert len(opening.stages) == 2


# --- the application form ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": None, "email": None},  # missing fields
        {"name": "x" * 100_000},
        {"email": "a" * 300 + "@example.com"},
        {"name": "Ada\x00", "email": "ada\x00@example.com"},
        {"phone": "\x00"},
        {"phone": ["1", "2"]},  # a list where one answer is wanted: the first is taken
        {"age": "1e400"},
        {"age": "nan"},
        {"age": "9" * 5000},
        {"city": "Paris"},
        {"city": ["Leeds", "York"]},
        {"licence": "maybe"},
        {"about": "a" * 100_000},
        {"about": "line\x00"},
        {"age": "a file"},  # a file where text is wanted (made below: a stream is used once)
    ],
)
def test_odd_applications_are_refused_cleanly(driver, client, overrides):
    _, _, qs = driver
    data = apply_form(qs)
    for key, value in overrides.items():
        field = key if key in ("name", "email") else answers.field_name(qs[key])
        if value is None:
            data.pop(field)
        elif value == "a file":
            data[field] = (io.BytesIO(b"34"), "age.txt")
        else:
            data[field] = value
    before = counts()
    response = client.post(
        "/jobs/acme/delivery-driver", data=data, content_type="multipart/form-data"
    )
    check(response)
    if response.status_code != 302:
        assert counts() == before


def test_a_question_of_another_opening_is_ignored_by_the_form(driver, client, make_opening):
    org, _, qs = driver
    other = make_opening(org, name="Other")
    foreign = Question(
        org_id=org.id,
        opening_id=other.id,
        stage_id=other.stages[0].id,
        key="secret",
        type=QuestionType.SHORT_TEXT,
        label="Secret",
        position=0,
    )
    db.session.add(foreign)
    db.session.commit()
    response = client.post(
        "/jobs/acme/delivery-driver",
        data={**apply_form(qs), answers.field_name(foreign): "x", "secret": "x"},
    )
    assert response.status_code == 302
    assert db.session.scalar(select(Answer).where(Answer.question_id == foreign.id)) is None
    # ... and the portal refuses to save an answer to it.
    assert client.post(f"/portal/answers/{foreign.public_id}", data={"x": "y"}).status_code == 404


@FUZZ
@given(name=around("Ada Okafor"), email=around("ada@example.com"), phone=around("0113 4960000"))
@example(name="Ada", email="ada@example.com", phone="0113\x00")
def test_the_application_form_with_any_input(app, driver, name, email, phone):
    _, _, qs = driver
    client = app.test_client()
    data = {
        "name": name,
        "email": email.replace("ada@", f"ada{next(_serial)}@"),
        **good_answers(qs),
        answers.field_name(qs["phone"]): phone,
    }
    before = counts()
    response = client.post("/jobs/acme/delivery-driver", data=data)
    check(response)
    if response.status_code == 422:
        assert counts() == before


# --- the portal's answers ------------------------------------------------------------------


@FUZZ
@given(
    key=st.sampled_from(["vehicle", "start", "days", "notes"]),
    value=st.one_of(
        around("Van"),
        around("2025-04-01"),
        st.lists(around("Mon"), max_size=4),
        st.sampled_from(["\x00", "x" * 20_000, "9999-99-99", "0000-01-01"]),
    ),
    htmx=st.booleans(),
)
def test_portal_answers_with_any_input(app, driver, make_applicant, key, value, htmx):
    _, opening, qs = driver
    client = app.test_client()
    applicant = make_applicant(opening, opening.stages[1])
    with client.session_transaction() as session:
        session["applicant"] = applicant.public_id
    question = qs[key]
    before = counts()
    response = client.post(
        f"/portal/answers/{question.public_id}",
        data={answers.field_name(question): value},
        headers={"HX-Request": "true"} if htmx else {},
    )
    check(response)
    if response.status_code == 422:
        assert counts() == before
