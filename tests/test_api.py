"""/api/v1: every endpoint and every error, tenancy (another org's rows are 404s), and the rules
firing from applicants created, answered for and reported on through the API."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    ApplicantStatus,
    Event,
    Opening,
    OpeningState,
    Org,
    OutboxMessage,
    QuestionType,
    Stage,
    Trigger,
    utcnow,
)
from plutomi.services import answers, api_keys, moves, timeline
from tests.conftest import owner_membership, owner_of

STAGES = (
    "Questionnaire",
    "Document Upload",
    "Final Review",
    "Ready to Drive",
    "Account Creation Failures",
)

# --- helpers -------------------------------------------------------------------------------


class Api:
    """A test client that sends one API key on every request."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def get(self, path: str, **params: Any):
        return self.client.get(f"/api/v1{path}", query_string=params, headers=self.headers())

    def post(self, path: str, body: Any = None, *, headers: dict | None = None, **kwargs: Any):
        if "data" not in kwargs:
            kwargs["data"] = json.dumps(body if body is not None else {})
            kwargs.setdefault("content_type", "application/json")
        return self.client.post(f"/api/v1{path}", headers=self.headers(headers), **kwargs)


@dataclass
class World:
    org: Org
    opening: Opening
    stages: dict[str, Stage]
    questions: dict[str, Any]
    api: Api
    reader: Api
    key_id: int


def error_of(response) -> dict[str, Any]:
    assert response.is_json, response.text
    error = response.get_json()["error"]
    assert {"code", "message", "field", "status"} <= set(error)
    assert error["status"] == response.status_code
    return error


def stage_name(applicant_id: str) -> str:
    db.session.expire_all()
    row = db.session.scalar(select(Applicant).where(Applicant.public_id == applicant_id))
    return row.stage.name


def events_of(applicant_id: str, type: str | None = None) -> list[Event]:
    db.session.expire_all()
    query = (
        select(Event)
        .join(Applicant, Event.applicant_id == Applicant.id)
        .where(Applicant.public_id == applicant_id)
        .order_by(Event.id)
    )
    if type:
        query = query.where(Event.type == type)
    return list(db.session.scalars(query))


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def move_to(stage: Stage) -> list[dict]:
    return [{"type": "move", "stage": stage.public_id}]


@pytest.fixture
def world(app, client, make_org, make_opening, make_question, make_api_key) -> World:
    org = make_org("Acme")
    opening = make_opening(org, "Delivery Driver", STAGES)
    stages = {s.name: s for s in opening.stages}
    first, second = stages["Questionnaire"], stages["Document Upload"]
    questions = {
        "city": make_question(
            first, "city", QuestionType.SINGLE_CHOICE, required=True, options=["Lisbon", "Porto"]
        ),
        "age": make_question(
            first, "age", QuestionType.NUMBER, required=True, min_value=18, max_value=80
        ),
        "has_licence": make_question(first, "has_licence", QuestionType.YES_NO),
        "languages": make_question(
            first, "languages", QuestionType.MULTI_CHOICE, options=["pt", "en", "es"]
        ),
        "photo": make_question(first, "photo", QuestionType.FILE),
        "phone": make_question(second, "phone", QuestionType.PHONE, required=True),
        "notes": make_question(second, "notes", QuestionType.LONG_TEXT),
        "licence": make_question(second, "licence", QuestionType.FILE),
    }
    key, token = make_api_key(org, "write")
    _, read_token = make_api_key(org, "read", name="Reader")
    return World(
        org, opening, stages, questions, Api(client, token), Api(client, read_token), key.id
    )


GOOD = {"city": "Lisbon", "age": 30, "has_licence": True, "languages": ["en", "pt"]}


def create(w: World, email: str = "ana@example.com", **answers: Any):
    body = {"name": "Ana Lima", "email": email, "answers": answers or GOOD}
    return w.api.post(f"/openings/{w.opening.public_id}/applicants", body)


def created(w: World, email: str = "ana@example.com", **answers: Any) -> dict[str, Any]:
    response = create(w, email, **answers)
    assert response.status_code == 201, response.text
    return response.get_json()


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer plk_nope", "plk_x"],
)
def test_no_live_key_is_a_401_with_www_authenticate(world, client, header):
    headers = {"Authorization": header} if header is not None else {}
    for response in (
        client.get("/api/v1/openings", headers=headers),
        client.post(
            f"/api/v1/openings/{world.opening.public_id}/applicants",
            headers=headers,
            json={"name": "A", "email": "a@example.com"},
        ),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
        error = error_of(response)
        assert error["code"] == "unauthorized"
        assert "Authorization: Bearer" in error["message"]
    assert count(Applicant) == 0


def test_the_scheme_is_not_case_sensitive(world, client):
    response = client.get(
        "/api/v1/openings", headers={"Authorization": f"bearer {world.api.token}"}
    )
    assert response.status_code == 200


def test_a_read_key_reads_but_every_post_is_a_403(world):
    applicant = created(world)
    assert world.reader.get(f"/applicants/{applicant['id']}").status_code == 200
    for path, body in (
        (f"/openings/{world.opening.public_id}/applicants", {"name": "B", "email": "b@x.com"}),
        (f"/applicants/{applicant['id']}/move", {"stage_id": applicant["stage"]["id"]}),
        (f"/applicants/{applicant['id']}/answers", {"answers": {"city": "Porto"}}),
        (f"/applicants/{applicant['id']}/events", {"type": "a.b"}),
    ):
        response = world.reader.post(path, body)
        assert response.status_code == 403
        assert error_of(response)["code"] == "read_only_key"
    assert len(events_of(applicant["id"], "applicant.external_event")) == 0


def test_api_answers_are_never_cached(world):
    response = world.api.get("/openings")
    assert response.headers["Cache-Control"] == "no-store"


def test_the_api_needs_no_csrf_token(make_app, make_org, make_opening, make_api_key):
    app = make_app(WTF_CSRF_ENABLED=True)
    org = make_org()
    opening = make_opening(org)
    _, token = make_api_key(org)
    response = app.test_client().post(
        f"/api/v1/openings/{opening.public_id}/applicants",
        json={"name": "Ana", "email": "ana@example.com"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text


# --- openings --------------------------------------------------------------------------------


def test_openings_lists_the_orgs_unarchived_openings_newest_first(world, make_org, make_opening):
    draft = make_opening(world.org, "Warehouse")
    draft.state = OpeningState.DRAFT
    archived = make_opening(world.org, "Old")
    archived.archived_at = utcnow()
    db.session.commit()
    make_opening(make_org("Other"), "Not ours")
    response = world.api.get("/openings")
    assert response.status_code == 200
    rows = response.get_json()["openings"]
    assert [r["name"] for r in rows] == ["Warehouse", "Delivery Driver"]
    assert rows[0] == {
        "id": draft.public_id,
        "name": "Warehouse",
        "slug": draft.slug,
        "state": "draft",
        "created_at": draft.created_at.isoformat(),
    }


def test_an_opening_has_its_stages_in_order_with_their_questions(world):
    response = world.api.get(f"/openings/{world.opening.public_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == world.opening.public_id
    assert body["state"] == "published" and body["archived"] is False
    assert [s["name"] for s in body["stages"]] == list(STAGES)
    first = body["stages"][0]
    assert [q["key"] for q in first["questions"]] == [
        "city",
        "age",
        "has_licence",
        "languages",
        "photo",
    ]
    age = first["questions"][1]
    assert age == {
        "id": world.questions["age"].public_id,
        "key": "age",
        "type": "number",
        "label": "Age",
        "help_text": "",
        "required": True,
        "options": [],
        "min": 18,
        "max": 80,
    }
    assert first["questions"][0]["options"] == ["Lisbon", "Porto"]
    assert [q["key"] for q in body["stages"][1]["questions"]] == ["phone", "notes", "licence"]


@pytest.mark.parametrize("path", ["/openings/{}", "/openings/{}/applicants"])
def test_another_orgs_opening_is_a_404(world, make_org, make_opening, path):
    theirs = make_opening(make_org("Other"))
    url = path.format(theirs.public_id)
    response = (
        world.api.get(url)
        if path.endswith("}")
        else world.api.post(url, {"name": "A", "email": "a@example.com"})
    )
    assert response.status_code == 404
    assert error_of(response) | {"message": ""} == {
        "code": "not_found",
        "message": "",
        "field": None,
        "status": 404,
    }
    assert count(Applicant) == 0


@pytest.mark.parametrize("opening_id", ["nope", "ABCDEFGHIJKLMNOP", "0123456789abcdef"])
def test_a_malformed_or_unknown_id_is_a_json_404(world, opening_id):
    response = world.api.get(f"/openings/{opening_id}")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    # The API's words, not the web pages' ("The link may be old...").
    assert "link" not in error["message"] and "page" not in error["message"]


# --- creating applicants ---------------------------------------------------------------------


def test_creating_an_applicant_works_as_the_form_does(world):
    before = count(OutboxMessage)
    response = create(world)
    assert response.status_code == 201, response.text
    body = response.get_json()
    row = db.session.scalar(select(Applicant).where(Applicant.public_id == body["id"]))
    assert body == {
        "id": row.public_id,
        "name": "Ana Lima",
        "email": "ana@example.com",
        "status": "active",
        "version": row.version,
        "opening": {"id": world.opening.public_id, "name": "Delivery Driver"},
        "stage": {"id": world.stages["Questionnaire"].public_id, "name": "Questionnaire"},
        "entered_stage_at": row.entered_stage_at.isoformat(),
        "stage_completed_at": row.stage_completed_at.isoformat(),
        "created_at": row.created_at.isoformat(),
        "answers": {"city": "Lisbon", "age": 30, "has_licence": True, "languages": ["pt", "en"]},
    }
    # The applicant is emailed their portal link, as when they apply themselves.
    assert count(OutboxMessage) == before + 1
    made = events_of(row.public_id, "applicant.created")[0]
    assert (made.actor_type, made.actor_id) == ("api_key", world.key_id)
    assert made.payload["source"] == "api"
    answered = events_of(row.public_id, "applicant.answered")
    assert {e.actor_type for e in answered} == {"api_key"} and len(answered) == 4
    # The timeline names the key.
    entry = timeline.page(world.org, row).entries[-1]
    assert (entry.text, entry.actor) == (
        "Applied, starting in Questionnaire",
        "API key “Integration”",
    )


def test_every_bad_field_is_reported_at_once(world):
    response = world.api.post(
        f"/openings/{world.opening.public_id}/applicants",
        {
            "name": "",
            "email": "not an email",
            "answers": {
                "city": "Madrid",
                "age": 12,
                "languages": ["en", "fr"],
                "photo": "cv.pdf",
                "phone": "123",
                "nope": "x",
                "has_licence": {"a": 1},
            },
        },
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid"
    errors = error["errors"]
    assert set(errors) == {
        "name",
        "email",
        "answers.city",
        "answers.age",
        "answers.languages",
        "answers.photo",
        "answers.phone",
        "answers.nope",
        "answers.has_licence",
    }
    assert errors["answers.city"] == "Choose one of the options offered."
    assert errors["answers.age"] == "Enter a number between 18 and 80."
    assert "file question" in errors["answers.photo"]
    assert errors["answers.phone"] == "No question has this key in the opening's first stage."
    assert errors["answers.nope"] == errors["answers.phone"]
    assert "a list of strings" in errors["answers.has_licence"]
    assert error["field"] in errors and error["message"] == errors[error["field"]]
    assert count(Applicant) == 0


def test_required_answers_left_out_are_named(world):
    response = world.api.post(
        f"/openings/{world.opening.public_id}/applicants",
        {"name": "Ana", "email": "ana@example.com", "answers": {"city": None}},
    )
    assert response.status_code == 422
    assert error_of(response)["errors"] == {
        "answers.city": "Choose one of the options offered.",
        "answers.age": "This question needs an answer.",
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "a@example.com"}, "name", "This field is required."),
        ({"name": "A"}, "email", "This field is required."),
        ({"name": 5, "email": "a@example.com"}, "name", "Give a string."),
        ({"name": "A", "email": "a@example.com", "answers": []}, "answers", "Give an object"),
        ({"name": "A", "email": "a@example.com", "role": "admin"}, "role", "not part of"),
    ],
)
def test_the_body_is_checked_field_by_field(world, body, field, message):
    response = world.api.post(f"/openings/{world.opening.public_id}/applicants", body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field
    assert message in error["errors"][field]


def test_a_duplicate_email_is_a_409_naming_the_applicant_and_mails_nothing(world):
    first = created(world)
    before = count(OutboxMessage)
    response = create(world, "  ANA@example.com ")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "duplicate"
    assert error["field"] == "email"
    assert error["applicant_id"] == first["id"]
    assert count(Applicant) == 1
    assert count(OutboxMessage) == before


@pytest.mark.parametrize("change", ["draft", "closed", "archived", "no stages"])
def test_only_a_published_opening_takes_applications(world, make_opening, change):
    opening = world.opening
    if change == "no stages":
        opening = make_opening(world.org, "Empty", stages=())
    elif change == "archived":
        opening.archived_at = utcnow()
    else:
        opening.state = change
    db.session.commit()
    response = world.api.post(
        f"/openings/{opening.public_id}/applicants", {"name": "A", "email": "a@example.com"}
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_taking_applications"
    assert count(Applicant) == 0


def questionnaire_done_moves_on(world: World, make_rule) -> None:
    make_rule(
        world.stages["Questionnaire"],
        Trigger.STAGE_COMPLETED,
        move_to(world.stages["Document Upload"]),
        name="Questionnaire done",
    )


def test_rules_fire_for_an_applicant_created_through_the_api(world, make_rule):
    questionnaire_done_moves_on(world, make_rule)
    body = created(world)
    assert body["stage"]["name"] == "Document Upload"
    assert stage_name(body["id"]) == "Document Upload"
    moved = events_of(body["id"], "applicant.moved")[0]
    assert moved.actor_type == "rule" and moved.payload["rule_name"] == "Questionnaire done"
    # The stage they are in now still waits for its answers.
    assert body["stage_completed_at"] is None


def test_a_required_file_of_the_first_stage_is_left_for_the_portal(world, make_rule):
    """An API client sends no files: the applicant is created, and the first stage waits,
    incomplete, for the upload from their portal; its completion rules do not fire yet."""
    photo = world.questions["photo"]
    photo.required = True
    db.session.commit()
    questionnaire_done_moves_on(world, make_rule)
    body = created(world)
    assert body["stage"]["name"] == "Questionnaire"
    assert body["stage_completed_at"] is None
    assert events_of(body["id"], "applicant.stage_completed") == []
    assert [e.type for e in events_of(body["id"], "applicant.moved")] == []
    # Their upload from the portal completes the stage, and its rules run then.
    applicant = db.session.scalar(select(Applicant).where(Applicant.public_id == body["id"]))
    pdf = FileStorage(io.BytesIO(b"%PDF-1.4\n%%EOF\n"), filename="me.pdf")
    answers.save(applicant, photo, pdf)
    assert stage_name(body["id"]) == "Document Upload"
    assert len(events_of(body["id"], "applicant.stage_completed")) == 1
    # Sending the file itself is still refused, with the reason.
    refused = create(world, "bo@example.com", **GOOD, photo="cv.pdf")
    assert refused.status_code == 422
    assert error_of(refused)["field"] == "answers.photo"


# --- reading applicants ----------------------------------------------------------------------


def test_an_applicant_reads_as_they_are(world):
    body = created(world)
    response = world.api.get(f"/applicants/{body['id']}")
    assert response.status_code == 200
    assert response.get_json() == body


def test_another_orgs_applicant_is_a_404_everywhere(
    world, make_org, make_opening, make_applicant, make_api_key
):
    other = make_org("Other")
    theirs = make_applicant(make_opening(other))
    stage = world.stages["Final Review"].public_id
    for response in (
        world.api.get(f"/applicants/{theirs.public_id}"),
        world.api.get(f"/applicants/{theirs.public_id}/events"),
        world.api.post(f"/applicants/{theirs.public_id}/move", {"stage_id": stage}),
        world.api.post(f"/applicants/{theirs.public_id}/answers", {"answers": {"city": "x"}}),
        world.api.post(f"/applicants/{theirs.public_id}/events", {"type": "a.b"}),
    ):
        assert response.status_code == 404, response.text
        assert error_of(response)["code"] == "not_found"
    # Nor can another org's key reach ours.
    _, their_token = make_api_key(other)
    ours = created(world)
    assert Api(world.api.client, their_token).get(f"/applicants/{ours['id']}").status_code == 404
    assert len(events_of(theirs.public_id)) == 0


# --- moving ----------------------------------------------------------------------------------


def test_a_move_fires_the_entered_stages_rules(world, make_rule):
    make_rule(
        world.stages["Ready to Drive"],
        Trigger.STAGE_ENTERED,
        [{"type": "webhook", "event": "driver.approved"}],
    )
    body = created(world)
    response = world.api.post(
        f"/applicants/{body['id']}/move",
        {"stage_id": world.stages["Ready to Drive"].public_id, "version": body["version"]},
    )
    assert response.status_code == 200, response.text
    moved = response.get_json()
    assert moved["stage"] == {
        "id": world.stages["Ready to Drive"].public_id,
        "name": "Ready to Drive",
    }
    assert moved["version"] == body["version"] + 1
    assert moved["stage_completed_at"] is None
    event = events_of(body["id"], "applicant.moved")[0]
    assert (event.actor_type, event.actor_id) == ("api_key", world.key_id)
    assert event.payload["from_stage"] == "Questionnaire"
    assert len(events_of(body["id"], "driver.approved")) == 1


def test_a_move_without_a_version_and_within_the_stage(world):
    body = created(world)
    response = world.api.post(f"/applicants/{body['id']}/move", {"stage_id": body["stage"]["id"]})
    assert response.status_code == 200
    assert response.get_json()["stage"]["name"] == "Questionnaire"
    assert len(events_of(body["id"], "applicant.reordered")) == 1


def test_a_stale_version_is_a_409_with_the_current_one(world):
    body = created(world)
    target = world.stages["Final Review"].public_id
    response = world.api.post(
        f"/applicants/{body['id']}/move", {"stage_id": target, "version": body["version"] + 5}
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "version_conflict"
    assert error["field"] == "version"
    assert error["version"] == body["version"]
    assert stage_name(body["id"]) == "Questionnaire"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "stage_id", "This field is required."),
        ({"stage_id": 7}, "stage_id", "Give a string."),
        ({"stage_id": "nope"}, "stage_id", "No stage of the applicant's opening"),
        ({"stage_id": "s" * 16}, "stage_id", "No stage of the applicant's opening"),
        ({"stage_id": "{stage}", "version": "3"}, "version", "whole number"),
        ({"stage_id": "{stage}", "version": True}, "version", "whole number"),
        ({"stage_id": "{stage}", "version": 0}, "version", "whole number"),
        ({"stage_id": "{stage}", "after": "x"}, "after", "not part of"),
    ],
)
def test_a_move_checks_its_body(world, body, field, message):
    applicant = created(world)
    if body.get("stage_id") == "{stage}":
        body["stage_id"] = world.stages["Final Review"].public_id
    response = world.api.post(f"/applicants/{applicant['id']}/move", body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field
    assert message in error["message"]


def test_a_stage_of_another_opening_is_refused(world, make_opening):
    other = make_opening(world.org, "Warehouse")
    applicant = created(world)
    response = world.api.post(
        f"/applicants/{applicant['id']}/move", {"stage_id": other.stages[1].public_id}
    )
    assert response.status_code == 422
    assert error_of(response) | {"errors": None} == {
        "code": "invalid",
        "message": "That stage belongs to another opening.",
        "field": "stage_id",
        "status": 422,
        "errors": None,
    }


def test_a_rejected_applicant_cannot_be_moved(world):
    applicant = created(world)
    moves.reject(owner_membership(world.org), applicant["id"])
    response = world.api.post(
        f"/applicants/{applicant['id']}/move",
        {"stage_id": world.stages["Final Review"].public_id},
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_active"


# --- answering -------------------------------------------------------------------------------


def in_second_stage(world) -> dict[str, Any]:
    applicant = created(world)
    response = world.api.post(
        f"/applicants/{applicant['id']}/move",
        {"stage_id": world.stages["Document Upload"].public_id},
    )
    assert response.status_code == 200
    return response.get_json()


def test_answers_complete_the_stage_and_its_rules_run_once(world, make_rule):
    stage = world.stages["Document Upload"]
    make_rule(stage, Trigger.ANSWERS_SUBMITTED, [{"type": "webhook", "event": "driver.answered"}])
    make_rule(stage, Trigger.STAGE_COMPLETED, move_to(world.stages["Final Review"]))
    applicant = in_second_stage(world)
    response = world.api.post(
        f"/applicants/{applicant['id']}/answers",
        {"answers": {"phone": "+351 912 345 678", "notes": "Has a van.\nWeekends only."}},
    )
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["answers"]["phone"] == "+351 912 345 678"
    assert body["answers"]["notes"] == "Has a van.\nWeekends only."
    assert body["stage"]["name"] == "Final Review"
    events = events_of(applicant["id"])
    # One batch: the answer rules ran once, not once per answer.
    assert [e.type for e in events].count("driver.answered") == 1
    answered = [e for e in events if e.type == "applicant.answered"][-2:]
    assert {(e.actor_type, e.actor_id) for e in answered} == {("api_key", world.key_id)}
    completed = [e for e in events if e.type == "applicant.stage_completed"][-1]
    assert completed.actor_type == "api_key"
    assert completed.payload["stage"] == "Document Upload"


def test_some_answers_leave_the_stage_open(world):
    applicant = in_second_stage(world)
    response = world.api.post(
        f"/applicants/{applicant['id']}/answers", {"answers": {"notes": "Later"}}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["stage_completed_at"] is None
    assert body["answers"]["notes"] == "Later"


def test_every_bad_answer_is_reported_and_none_saved(world):
    applicant = in_second_stage(world)
    response = world.api.post(
        f"/applicants/{applicant['id']}/answers",
        {"answers": {"phone": "12", "licence": "x.pdf", "city": "Porto", "notes": ["a", "b"]}},
    )
    assert response.status_code == 422
    errors = error_of(response)["errors"]
    assert set(errors) == {"answers.phone", "answers.licence", "answers.city", "answers.notes"}
    assert errors["answers.phone"].startswith("Enter a phone number")
    assert "file question" in errors["answers.licence"]
    assert errors["answers.city"] == ("No question has this key in the applicant's current stage.")
    assert errors["answers.notes"] == "Give one answer only."
    assert events_of(applicant["id"], "applicant.answered")[-1].actor_type == "api_key"
    assert len(events_of(applicant["id"], "applicant.answered")) == 4  # those of applying


@pytest.mark.parametrize("body", [{}, {"answers": {}}, {"answers": []}, {"answers": "x"}])
def test_answers_need_at_least_one(world, body):
    applicant = created(world)
    response = world.api.post(f"/applicants/{applicant['id']}/answers", body)
    assert response.status_code == 422
    assert error_of(response)["field"] == "answers"


def test_a_withdrawn_applicant_cannot_answer(world):
    applicant = in_second_stage(world)
    row = db.session.scalar(select(Applicant).where(Applicant.public_id == applicant["id"]))
    row.status = ApplicantStatus.WITHDRAWN
    db.session.commit()
    response = world.api.post(f"/applicants/{applicant['id']}/answers", {"answers": {"notes": "x"}})
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_active"


# --- outside events --------------------------------------------------------------------------


def test_an_outside_event_moves_the_applicant_through_its_rule(world, make_rule):
    ready = world.stages["Ready to Drive"]
    make_rule(
        ready,
        Trigger.EXTERNAL_EVENT,
        move_to(world.stages["Account Creation Failures"]),
        event_type="account_creation.failed",
        name="Account failed",
    )
    applicant = created(world)
    world.api.post(f"/applicants/{applicant['id']}/move", {"stage_id": ready.public_id})
    # Another type leaves them where they are.
    other = world.api.post(
        f"/applicants/{applicant['id']}/events", {"type": "account_creation.started"}
    )
    assert other.status_code == 201
    assert other.get_json()["applicant"]["stage"]["name"] == "Ready to Drive"
    response = world.api.post(
        f"/applicants/{applicant['id']}/events",
        {"type": "account_creation.failed", "data": {"reason": "email taken", "code": 17}},
    )
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert body["event"]["type"] == "applicant.external_event"
    assert body["event"]["actor"] == {"type": "api_key"}
    assert body["event"]["payload"] == {
        "event_type": "account_creation.failed",
        "data": {"reason": "email taken", "code": 17},
    }
    assert body["event"]["created_at"]
    assert body["applicant"]["stage"]["name"] == "Account Creation Failures"
    moved = events_of(applicant["id"], "applicant.moved")[-1]
    assert moved.actor_type == "rule" and moved.payload["rule_name"] == "Account failed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "type"),
        ({"type": "failed"}, "type"),
        ({"type": "Account.Failed"}, "type"),
        ({"type": "a." + "b" * 63}, "type"),
        ({"type": 3}, "type"),
        ({"type": "a.b", "data": []}, "data"),
        ({"type": "a.b", "data": "x"}, "data"),
        ({"type": "a.b", "data": {"x": "y" * (16 * 1024)}}, "data"),
        ({"type": "a.b", "extra": 1}, "extra"),
    ],
)
def test_an_outside_event_is_checked(world, body, field):
    applicant = created(world)
    response = world.api.post(f"/applicants/{applicant['id']}/events", body)
    assert response.status_code == 422
    assert error_of(response)["field"] == field
    assert len(events_of(applicant["id"], "applicant.external_event")) == 0


def test_the_longest_event_type_and_null_data_are_accepted(world):
    applicant = created(world)
    kind = "a." + "b" * 62
    response = world.api.post(f"/applicants/{applicant['id']}/events", {"type": kind, "data": None})
    assert response.status_code == 201
    assert response.get_json()["event"]["payload"] == {"event_type": kind, "data": {}}


# --- the events list -------------------------------------------------------------------------


def test_events_page_newest_first_with_an_opaque_cursor(world):
    applicant = created(world)
    for i in range(7):
        response = world.api.post(
            f"/applicants/{applicant['id']}/events", {"type": "ping.sent", "data": {"n": i}}
        )
        assert response.status_code == 201
    everything = [e.type for e in reversed(events_of(applicant["id"]))]
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        response = world.api.get(f"/applicants/{applicant['id']}/events", **params)
        assert response.status_code == 200
        page = response.get_json()
        assert len(page["events"]) <= 4
        seen += page["events"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["type"] for e in seen] == everything
    assert pages == -(-len(everything) // 4)
    newest = seen[0]
    assert newest == {
        "type": "applicant.external_event",
        "actor": {"type": "api_key"},
        "payload": {"event_type": "ping.sent", "data": {"n": 6}},
        "created_at": newest["created_at"],
    }
    stamps = [e["created_at"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    default = world.api.get(f"/applicants/{applicant['id']}/events").get_json()
    assert len(default["events"]) == min(25, len(everything))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "x" * 300}, "cursor"),
    ],
)
def test_a_bad_limit_or_cursor_is_a_422(world, params, field):
    applicant = created(world)
    response = world.api.get(f"/applicants/{applicant['id']}/events", **params)
    assert response.status_code == 422
    assert error_of(response)["field"] == field


# --- errors ----------------------------------------------------------------------------------


def post_raw(world, data: bytes | str, content_type: str | None = "application/json", **kw):
    headers = {"Authorization": f"Bearer {world.api.token}"}
    return world.api.client.post(
        f"/api/v1/openings/{world.opening.public_id}/applicants",
        data=data,
        content_type=content_type,
        headers=headers,
        **kw,
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"{'a': 1}", "malformed_json"),
        (b'{"a": NaN}', "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[" * 5000 + b"]" * 5000, "malformed_json"),
        (b'{"name": "\\ud800"}', "malformed_json"),
        (b"[]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(world, data, code):
    response = post_raw(world, data)
    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert count(Applicant) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_a_415(world, content_type):
    response = post_raw(world, '{"name": "A", "email": "a@example.com"}', content_type)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_a_charset_on_the_content_type_is_fine(world):
    body = json.dumps({"name": "Ana", "email": "ana@example.com", "answers": GOOD})
    response = post_raw(world, body, "application/json; charset=utf-8")
    assert response.status_code == 201


def test_a_body_over_64_kb_is_a_413(world):
    body = json.dumps({"name": "A", "email": "a@example.com", "answers": {"x": "y" * 70_000}})
    response = post_raw(world, body)
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_a_body_over_64_kb_without_a_length_is_a_413(world):
    """Sent chunked, with no Content-Length: cut off as it is read. (A WSGI server marks
    such a body wsgi.input_terminated, as the test client is told to here.)"""
    body = json.dumps({"name": "A", "email": "a@example.com", "answers": {"x": "y" * 70_000}})
    response = world.api.client.post(
        f"/api/v1/openings/{world.opening.public_id}/applicants",
        input_stream=io.BytesIO(body.encode()),
        content_type="application/json",
        headers={"Authorization": f"Bearer {world.api.token}", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "too_large"


def test_an_unknown_path_and_a_wrong_method_are_json(world):
    missing = world.api.get("/nothing/here")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = world.api.client.put("/api/v1/openings", headers=world.api.headers())
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


def test_a_crash_is_a_500_without_any_trace(world, monkeypatch):
    from plutomi.api import schemas

    def boom(row):
        raise RuntimeError("secret-internal-detail at /srv/plutomi")

    monkeypatch.setattr(schemas, "opening", boom)
    response = world.api.get("/openings")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_too_many_requests_is_a_429_with_retry_after(make_app, make_org, make_api_key):
    app = make_app(API_RATE_LIMIT=3)
    org = make_org()
    _, token = make_api_key(org)
    _, other = make_api_key(org, name="Other")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [client.get("/api/v1/openings", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/openings", headers=headers)
    assert error_of(response)["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Per key: another key of the same org is not held back.
    ok = client.get("/api/v1/openings", headers={"Authorization": f"Bearer {other}"})
    assert ok.status_code == 200


def test_the_schema_json_error_keeps_its_shape(client, make_org):
    org = make_org()
    response = client.get(f"/jobs/{org.slug}/nope/schema.json")
    assert response.status_code == 404
    assert set(response.get_json()["error"]) >= {"status", "message"}


# --- documentation ---------------------------------------------------------------------------


def test_the_docs_and_the_document_need_no_key(client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    doc = document.get_json()
    assert doc["openapi"].startswith("3.1")
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert f'id="{op["operationId"]}"' in page.text
            assert f"<code>{path}</code>" in page.text
            assert method.upper() in page.text
    # Every POST's example is a curl command with the key and an Idempotency-Key.
    assert page.text.count("Idempotency-Key: ") >= 4
    assert "Authorization: Bearer $PLUTOMI_API_KEY" in page.text
    assert "it will not be shown again" not in page.text


def test_the_document_describes_every_route_of_the_api(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {
        (method.upper(), re.sub(r"\{(\w+)\}", r"<\1>", path))
        for path, methods in doc["paths"].items()
        for method in methods
    }
    routed = {
        (method, re.sub(r"<pid:(\w+)>", r"<\1>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_the_key_name_shows_on_the_page_timeline(world, auth):
    applicant = created(world)
    auth.login(owner_of(world.org).email)
    page = world.api.client.get(f"/applicants/{applicant['id']}")
    assert page.status_code == 200
    assert "API key “Integration”" in page.text
    # Revoked keys keep their name on the timeline.
    key = api_keys.list_for(world.org)[-1]
    api_keys.revoke(owner_membership(world.org), key.public_id)
    assert "API key “Integration”" in world.api.client.get(f"/applicants/{applicant['id']}").text


def test_any_json_data_is_kept_as_sent(world):
    """Data is the outside system's: NUL characters, emoji and nesting come back as sent
    (the events table keeps JSON as text, which holds any of them on every database)."""
    applicant = created(world)
    data = {"nul": "a\u0000b", "emoji": "🚚", "deep": {"list": [1, 2.5, None, True, {"k": "v"}]}}
    response = world.api.post(
        f"/applicants/{applicant['id']}/events", {"type": "odd.data", "data": data}
    )
    assert response.status_code == 201, response.text
    page = world.api.get(f"/applicants/{applicant['id']}/events", limit=1).get_json()
    assert page["events"][0]["payload"]["data"] == data
