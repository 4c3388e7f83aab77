"""The recruiter's side of openings: the editor of openings, stages and questions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.markdown import render
from plutomi.models import (
    Answer,
    Applicant,
    Event,
    Membership,
    Opening,
    OpeningState,
    Org,
    Question,
    Role,
    Stage,
    User,
)
from plutomi.services import openings as svc
from plutomi.services.errors import Forbidden, Invalid, NotFound
from plutomi.services.openings import QuestionInput
from tests.conftest import PASSWORD, field_error, owner_of

HX = {"HX-Request": "true"}

# --- helpers -------------------------------------------------------------------------------


def membership(org: Org, user: User) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def owner(org: Org) -> Membership:
    return membership(org, owner_of(org))


def logged_in(app, user: User):
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def events(type_: str) -> list[Event]:
    db.session.expire_all()
    return list(db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)))


def stage_names(opening: Opening) -> list[str]:
    db.session.expire_all()
    return [s.name for s in svc.stages_of(opening)]


def question_keys(stage: Stage) -> list[str]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(Question.key)
            .where(Question.stage_id == stage.id, Question.archived_at.is_(None))
            .order_by(Question.position)
        )
    )


def q(label: str, **fields) -> QuestionInput:
    return QuestionInput(label=label, **fields)


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def actor(org):
    return owner(org)


@pytest.fixture
def opening(org, make_opening):
    return make_opening(org, stages=("Questionnaire", "Waiting List", "Final Review"))


def answer(applicant: Applicant, question: Question, value="x") -> None:
    db.session.add(
        Answer(
            org_id=applicant.org_id, applicant_id=applicant.id, question_id=question.id, value=value
        )
    )
    db.session.commit()


# --- openings ------------------------------------------------------------------------------


def test_create_opening_derives_a_unique_slug_and_starts_as_draft(actor):
    first = svc.create_opening(actor, "  Delivery   Driver (Berlin) ")
    second = svc.create_opening(actor, "Delivery Driver Berlin")
    assert (first.name, first.slug, first.state) == (
        "Delivery Driver (Berlin)",
        "delivery-driver-berlin",
        OpeningState.DRAFT,
    )
    assert second.slug == "delivery-driver-berlin-2"
    assert [e.payload["slug"] for e in events("opening.created")] == [first.slug, second.slug]


def test_slugs_are_unique_per_org_only(actor, make_org):
    other = owner(make_org("Globex"))
    a = svc.create_opening(actor, "Driver")
    b = svc.create_opening(other, "Driver")
    assert a.slug == b.slug == "driver"


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("Has Spaces", "lower-case letters, digits and dashes"),
        ("-dash-first", "no dash first or last"),
        ("ünï", "lower-case letters"),
        ("x" * 64, "1 to 63"),
        ("taken", "Another opening of this org uses this slug already."),
    ],
)
def test_update_opening_refuses_bad_slugs(actor, slug, message):
    svc.create_opening(actor, "Taken")
    opening = svc.create_opening(actor, "Mine")
    with pytest.raises(Invalid) as exc:
        svc.update_opening(actor, opening.public_id, "Mine", slug, "")
    assert exc.value.field == "slug" and message in exc.value.message


def test_update_opening_saves_name_slug_and_description(actor):
    opening = svc.create_opening(actor, "Driver")
    svc.update_opening(actor, opening.public_id, "Driver, Berlin", "Berlin-Driver", "**Hi**")
    db.session.expire_all()
    assert (opening.name, opening.slug, opening.description) == (
        "Driver, Berlin",
        "berlin-driver",
        "**Hi**",
    )


def test_publish_close_reopen_record_events(actor, opening):
    opening.state = OpeningState.DRAFT
    db.session.commit()
    oid = opening.public_id
    assert svc.publish(actor, oid).state == OpeningState.PUBLISHED
    with pytest.raises(Invalid, match="cannot become published"):
        svc.publish(actor, oid)
    assert svc.close(actor, oid).state == OpeningState.CLOSED
    with pytest.raises(Invalid):
        svc.close(actor, oid)
    assert svc.reopen(actor, oid).state == OpeningState.PUBLISHED
    assert len(events("opening.published")) == 2
    assert len(events("opening.closed")) == 1


def test_an_opening_without_stages_cannot_be_published(actor):
    opening = svc.create_opening(actor, "Empty")
    with pytest.raises(Invalid, match="Add a stage"):
        svc.publish(actor, opening.public_id)


def test_archived_openings_leave_the_list_unless_asked_for(app, org, actor, make_opening):
    kept = make_opening(org, "Kept Opening")
    gone = make_opening(org, "Gone Opening")
    svc.archive(actor, gone.public_id)
    client = logged_in(app, owner_of(org))
    page = client.get("/openings").text
    assert "Kept Opening" in page and "Gone Opening" not in page
    assert "1 published" in page and "1 archived" in page
    archived = client.get("/openings?archived=1").text
    assert "Gone Opening" in archived and "Kept Opening" not in archived
    svc.unarchive(actor, gone.public_id)
    assert "Gone Opening" in client.get("/openings").text
    assert len(events("opening.archived")) == len(events("opening.unarchived")) == 1
    assert kept.archived_at is None


def test_clone_copies_stages_and_questions_with_the_same_keys_and_no_applicants(
    actor, opening, make_applicant
):
    stages = opening.stages
    svc.add_question(actor, opening.public_id, stages[0].public_id, q("Full name"))
    svc.add_question(
        actor,
        opening.public_id,
        stages[0].public_id,
        q("Shift", type="single_choice", options=["Day", "Night"], required=True),
    )
    svc.add_question(actor, opening.public_id, stages[2].public_id, q("Age", type="number"))
    gone = svc.add_question(actor, opening.public_id, stages[2].public_id, q("Old one"))
    applicant = make_applicant(opening)
    answer(applicant, gone)
    svc.delete_question(actor, opening.public_id, gone.public_id)

    copy = svc.clone(actor, opening.public_id, "Driver, Hamburg")
    assert copy.state == OpeningState.DRAFT and copy.slug == "driver-hamburg"
    assert stage_names(copy) == ["Questionnaire", "Waiting List", "Final Review"]
    copied = svc.questions_by_stage(copy)
    first, _, last = svc.stages_of(copy)
    assert [(x.key, x.type, x.options, x.required) for x in copied[first.id]] == [
        ("full_name", "short_text", [], False),
        ("shift", "single_choice", ["Day", "Night"], True),
    ]
    assert [x.key for x in copied[last.id]] == ["age"]
    assert db.session.scalar(select(func.count()).where(Applicant.opening_id == copy.id)) == 0
    (event,) = events("opening.cloned")
    assert event.opening_id == copy.id and event.payload["source_opening"] == opening.public_id


# --- roles and tenancy ---------------------------------------------------------------------


def test_viewers_read_but_cannot_change_anything(app, org, opening, make_member):
    viewer = make_member(org, Role.VIEWER)
    as_viewer = membership(org, viewer)
    with pytest.raises(Forbidden):
        svc.create_opening(as_viewer, "Nope")
    with pytest.raises(Forbidden):
        svc.add_stage(as_viewer, opening.public_id, "Nope")
    client = logged_in(app, viewer)
    assert client.get(f"/openings/{opening.public_id}").status_code == 200
    assert "Edit opening" not in client.get(f"/openings/{opening.public_id}").text
    assert "New opening" not in client.get("/openings").text
    oid, sid = opening.public_id, opening.stages[0].public_id
    for method, url in [
        ("GET", f"/openings/{oid}/edit"),
        ("POST", "/openings"),
        ("POST", f"/openings/{oid}/edit"),
        ("POST", f"/openings/{oid}/close"),
        ("POST", f"/openings/{oid}/stages"),
        ("POST", f"/openings/{oid}/stages/{sid}/delete"),
        ("POST", f"/openings/{oid}/stages/{sid}/questions"),
    ]:
        assert client.open(url, method=method, data={"name": "x"}).status_code == 403, url
    assert stage_names(opening) == ["Questionnaire", "Waiting List", "Final Review"]


def test_a_recruiter_may_edit(app, org, opening, make_member):
    recruiter = make_member(org, Role.RECRUITER)
    client = logged_in(app, recruiter)
    assert client.get(f"/openings/{opening.public_id}/edit").status_code == 200
    response = client.post(f"/openings/{opening.public_id}/stages", data={"stage_name": "Ready"})
    assert response.status_code == 302
    assert stage_names(opening)[-1] == "Ready"


def test_ids_of_another_org_or_opening_are_not_found(actor, opening, make_org, make_opening):
    theirs = make_opening(make_org("Globex"))
    mine_too = svc.create_opening(actor, "Second")
    sid = opening.stages[0].public_id
    with pytest.raises(NotFound):
        svc.rename_stage(actor, theirs.public_id, theirs.stages[0].public_id, "X")
    with pytest.raises(NotFound):
        svc.rename_stage(actor, opening.public_id, theirs.stages[0].public_id, "X")
    with pytest.raises(NotFound):
        # A stage of this org, but of another opening.
        svc.rename_stage(actor, mine_too.public_id, sid, "X")
    with pytest.raises(NotFound):
        svc.delete_stage(actor, opening.public_id, sid, theirs.stages[0].public_id)
    question = svc.add_question(actor, opening.public_id, sid, q("Name"))
    mine_too_stage = svc.add_stage(actor, mine_too.public_id, "Applied")
    with pytest.raises(NotFound):
        svc.update_question(actor, mine_too.public_id, question.public_id, q("Y"))
    with pytest.raises(NotFound):
        svc.reorder_questions(actor, opening.public_id, mine_too_stage.public_id, [])


def test_other_orgs_ids_are_404_over_http(app, org, opening, make_org, make_opening):
    theirs = make_opening(make_org("Globex"))
    client = logged_in(app, owner_of(org))
    mine = opening.public_id
    for url in [
        f"/openings/{theirs.public_id}/edit",
        f"/openings/{mine}/stages/{theirs.stages[0].public_id}/rename",
        f"/openings/{mine}/stages/{theirs.stages[0].public_id}/questions",
    ]:
        assert client.post(url, data={"name": "x"}).status_code == 404, url
        assert client.post(url, data={"name": "x"}, headers=HX).status_code == 404, url


# --- stages --------------------------------------------------------------------------------


def test_add_rename_and_refuse_duplicate_stage_names(actor, opening):
    stage = svc.add_stage(actor, opening.public_id, "  Ready   to Drive ")
    assert stage.name == "Ready to Drive" and stage.position == 3
    with pytest.raises(Invalid, match="stage of that name already") as exc:
        svc.add_stage(actor, opening.public_id, "ready to drive")
    assert exc.value.field == "name"
    svc.rename_stage(actor, opening.public_id, stage.public_id, "Approved")
    assert stage_names(opening)[-1] == "Approved"
    with pytest.raises(Invalid, match="required"):
        svc.rename_stage(actor, opening.public_id, stage.public_id, "   ")
    (event,) = events("stage.renamed")
    assert event.payload == {
        "stage": stage.public_id,
        "name": "Approved",
        "previous_name": "Ready to Drive",
    }


def test_reorder_and_move_stages(actor, opening):
    ids = [s.public_id for s in opening.stages]
    svc.reorder_stages(actor, opening.public_id, [ids[2], ids[0], ids[1]])
    assert stage_names(opening) == ["Final Review", "Questionnaire", "Waiting List"]
    svc.move_stage(actor, opening.public_id, ids[1], "up")
    assert stage_names(opening) == ["Final Review", "Waiting List", "Questionnaire"]
    svc.move_stage(actor, opening.public_id, ids[2], "up")  # first already: nothing changes
    assert stage_names(opening) == ["Final Review", "Waiting List", "Questionnaire"]
    with pytest.raises(Invalid, match="changed meanwhile"):
        svc.reorder_stages(actor, opening.public_id, ids[:2])
    with pytest.raises(Invalid, match="changed meanwhile"):
        svc.reorder_stages(actor, opening.public_id, [ids[0], ids[0], ids[1]])


def test_a_hundred_stages_reorder(app, org, actor):
    opening = svc.create_opening(actor, "Big")
    for n in range(100):
        svc.add_stage(actor, opening.public_id, f"Stage {n}")
    ids = [s.public_id for s in svc.stages_of(opening)]
    svc.reorder_stages(actor, opening.public_id, list(reversed(ids)))
    assert stage_names(opening) == [f"Stage {n}" for n in reversed(range(100))]
    positions = db.session.scalars(
        select(Stage.position).where(Stage.opening_id == opening.id).order_by(Stage.position)
    )
    assert list(positions) == list(range(100))
    # Over HTTP, as the drag posts it.
    client = logged_in(app, owner_of(org))
    response = client.post(
        f"/openings/{opening.public_id}/stages/order", data={"stage": ids}, headers=HX
    )
    assert response.status_code == 200
    assert stage_names(opening) == [f"Stage {n}" for n in range(100)]
    assert response.text.count('class="stage-item"') == 100


def test_delete_an_empty_stage(actor, opening):
    svc.delete_stage(actor, opening.public_id, opening.stages[1].public_id)
    assert stage_names(opening) == ["Questionnaire", "Final Review"]
    assert len(events("stage.deleted")) == 1


def test_deleting_a_stage_with_applicants_asks_where_they_go_and_moves_them(
    actor, opening, make_applicant
):
    waiting, final = opening.stages[1], opening.stages[2]
    already = make_applicant(opening, final, name="Already There")
    already.rank = "m"
    db.session.commit()
    movers = [make_applicant(opening, waiting, name=f"Mover {n}") for n in range(3)]
    for n, applicant in enumerate(movers):
        applicant.rank = "abc"[n]
        applicant.stage_completed_at = applicant.created_at
    db.session.commit()
    with pytest.raises(Invalid, match="choose the stage they move to") as exc:
        svc.delete_stage(actor, opening.public_id, waiting.public_id)
    assert exc.value.field == "move_to"
    with pytest.raises(Invalid, match="another stage"):
        svc.delete_stage(actor, opening.public_id, waiting.public_id, waiting.public_id)

    moved = svc.delete_stage(actor, opening.public_id, waiting.public_id, final.public_id)
    assert moved == 3
    assert stage_names(opening) == ["Questionnaire", "Final Review"]
    db.session.expire_all()
    column = list(
        db.session.scalars(
            select(Applicant).where(Applicant.stage_id == final.id).order_by(Applicant.rank)
        )
    )
    assert [a.name for a in column] == ["Already There", "Mover 0", "Mover 1", "Mover 2"]
    for applicant in column[1:]:
        assert applicant.version == 2
        assert applicant.stage_completed_at is None
        assert applicant.rank > "m"
    moves = events("applicant.moved")
    assert len(moves) == 3
    assert {e.applicant_id for e in moves} == {a.id for a in movers}
    assert all(
        e.payload["from_stage"] == "Waiting List" and e.payload["to_stage"] == "Final Review"
        for e in moves
    )


def test_deleting_a_stage_keeps_answered_questions_archived(actor, opening, make_applicant):
    first, second = opening.stages[0], opening.stages[1]
    asked = svc.add_question(actor, opening.public_id, second.public_id, q("Licence number"))
    unasked = svc.add_question(actor, opening.public_id, second.public_id, q("Unused"))
    applicant = make_applicant(opening, first)
    answer(applicant, asked, "B-123")
    svc.delete_stage(actor, opening.public_id, second.public_id)
    db.session.expire_all()
    kept = db.session.get(Question, asked.id)
    assert kept.archived_at is not None and kept.stage_id == first.id
    assert db.session.get(Question, unasked.id) is None
    assert db.session.scalar(select(Answer.value).where(Answer.question_id == asked.id)) == "B-123"


def test_delete_stage_over_http_shows_the_select_and_moves(app, org, opening, make_applicant):
    waiting, final = opening.stages[1], opening.stages[2]
    make_applicant(opening, waiting)
    client = logged_in(app, owner_of(org))
    oid = opening.public_id
    page = client.get(f"/openings/{oid}/edit").text
    assert f'id="move-to-{waiting.public_id}"' in page
    refused = client.post(f"/openings/{oid}/stages/{waiting.public_id}/delete", headers=HX)
    assert refused.status_code == 422
    assert "choose the stage they move to" in field_error(
        refused.text, f"move-to-{waiting.public_id}"
    )
    done = client.post(
        f"/openings/{oid}/stages/{waiting.public_id}/delete",
        data={"move_to": final.public_id},
        headers=HX,
    )
    assert done.status_code == 200 and "1 applicant moved" in done.text
    assert stage_names(opening) == ["Questionnaire", "Final Review"]


# --- questions -----------------------------------------------------------------------------


def test_question_keys_come_from_labels_and_stay_unique(actor, opening):
    oid, sid = opening.public_id, opening.stages[0].public_id
    first = svc.add_question(actor, oid, sid, q("Full name?"))
    second = svc.add_question(actor, oid, opening.stages[1].public_id, q("Full  name"))
    third = svc.add_question(actor, oid, sid, q("2 wheels or 4?"))
    assert (first.key, second.key, third.key) == ("full_name", "full_name_2", "q_2_wheels_or_4")
    with pytest.raises(Invalid, match="Another question of this opening uses this key") as exc:
        svc.add_question(actor, oid, sid, q("Name", key="full_name"))
    assert exc.value.field == "key"
    with pytest.raises(Invalid, match="starting with a letter"):
        svc.add_question(actor, oid, sid, q("Name", key="Full Name"))


def test_a_key_cannot_change_once_answered_but_the_label_can(actor, opening, make_applicant):
    oid = opening.public_id
    question = svc.add_question(actor, oid, opening.stages[0].public_id, q("Name"))
    svc.update_question(actor, oid, question.public_id, q("Name", key="given_name"))
    assert question.key == "given_name"
    answer(make_applicant(opening), question, "Ada")
    with pytest.raises(Invalid, match="key cannot change") as exc:
        svc.update_question(actor, oid, question.public_id, q("Name", key="first_name"))
    assert exc.value.field == "key"
    with pytest.raises(Invalid, match="type cannot change"):
        svc.update_question(actor, oid, question.public_id, q("Name", type="number"))
    svc.update_question(
        actor, oid, question.public_id, q("Your given name", key="given_name", required=True)
    )
    db.session.expire_all()
    assert (question.label, question.key, question.required) == (
        "Your given name",
        "given_name",
        True,
    )
    assert db.session.scalar(select(Answer.value).where(Answer.question_id == question.id)) == "Ada"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"type": "single_choice", "options": ["Only"]}, "options", "at least 2"),
        ({"type": "multi_choice", "options": ["A", "", "  "]}, "options", "at least 2"),
        ({"type": "single_choice", "options": ["Day", "day"]}, "options", "listed twice"),
        ({"type": "number", "min_value": 10, "max_value": 1}, "min_value", "greater than"),
        ({"type": "short_text", "min_value": 5, "max_value": 2}, "min_value", "greater than"),
        ({"type": "long_text", "min_value": -1}, "min_value", "whole number"),
        ({"type": "number", "max_value": float("nan")}, "max_value", "Enter a number"),
        ({"type": "nonsense"}, "type", "types offered"),
        ({"label": "  "}, "label", "required"),
    ],
)
def test_bad_question_input_is_refused_next_to_its_field(actor, opening, fields, field, message):
    data = {"label": "Question", **fields}
    with pytest.raises(Invalid) as exc:
        svc.add_question(
            actor, opening.public_id, opening.stages[0].public_id, QuestionInput(**data)
        )
    assert exc.value.field == field and message in exc.value.message


def test_question_fields_are_cleaned_for_their_type(actor, opening):
    oid, sid = opening.public_id, opening.stages[0].public_id
    choice = svc.add_question(
        actor, oid, sid, q("Shift", type="single_choice", options=[" Day ", "", "Night"])
    )
    assert choice.options == ["Day", "Night"] and choice.min_value is None
    number = svc.add_question(actor, oid, sid, q("Age", type="number", min_value=18, max_value=99))
    assert (number.min_value, number.max_value, number.options) == (18, 99, [])
    text = svc.add_question(actor, oid, sid, q("Bio", type="long_text", max_value=500))
    assert (text.min_value, text.max_value) == (None, 500)
    date = svc.add_question(actor, oid, sid, q("Start", type="date", min_value=1, options=["x"]))
    assert (date.min_value, date.options) == (None, [])


def test_deleting_a_question_with_answers_archives_it(actor, opening, make_applicant):
    oid, sid = opening.public_id, opening.stages[0].public_id
    kept = svc.add_question(actor, oid, sid, q("Answered"))
    gone = svc.add_question(actor, oid, sid, q("Unanswered"))
    answer(make_applicant(opening), kept)
    assert svc.delete_question(actor, oid, kept.public_id) is True
    assert svc.delete_question(actor, oid, gone.public_id) is False
    db.session.expire_all()
    assert db.session.get(Question, kept.id).archived_at is not None
    assert db.session.get(Question, gone.id) is None
    assert question_keys(opening.stages[0]) == []
    with pytest.raises(NotFound):
        svc.update_question(actor, oid, kept.public_id, q("Again"))
    with pytest.raises(Invalid, match="an archived one"):
        svc.add_question(actor, oid, sid, q("Answered again", key="answered"))


def test_two_hundred_questions_in_a_stage_reorder(app, org, actor, opening):
    oid, stage = opening.public_id, opening.stages[0]
    for n in range(200):
        svc.add_question(actor, oid, stage.public_id, q(f"Question {n}"))
    ids = list(
        db.session.scalars(
            select(Question.public_id)
            .where(Question.stage_id == stage.id)
            .order_by(Question.position)
        )
    )
    svc.reorder_questions(actor, oid, stage.public_id, list(reversed(ids)))
    assert question_keys(stage) == [f"question_{n}" for n in reversed(range(200))]
    client = logged_in(app, owner_of(org))
    response = client.post(
        f"/openings/{oid}/stages/{stage.public_id}/questions/order",
        data={"question": ids},
        headers=HX,
    )
    assert response.status_code == 200
    assert question_keys(stage) == [f"question_{n}" for n in range(200)]
    # A question of another stage in the list is refused.
    other = svc.add_question(actor, oid, opening.stages[1].public_id, q("Elsewhere"))
    with pytest.raises(Invalid):
        svc.reorder_questions(actor, oid, stage.public_id, [*ids[:-1], other.public_id])


def test_move_question_up_and_down_without_javascript(app, org, actor, opening):
    oid, stage = opening.public_id, opening.stages[0]
    a, b, c = (svc.add_question(actor, oid, stage.public_id, q(x)) for x in "ABC")
    client = logged_in(app, owner_of(org))
    response = client.post(
        f"/openings/{oid}/questions/{c.public_id}/move", data={"direction": "up"}
    )
    assert response.status_code == 302
    assert response.location.endswith(f"/openings/{oid}/edit#question-{c.public_id}")
    assert question_keys(stage) == ["a", "c", "b"]
    client.post(f"/openings/{oid}/questions/{a.public_id}/move", data={"direction": "down"})
    assert question_keys(stage) == ["c", "a", "b"]
    assert b.key == "b"


# --- pages over HTTP -----------------------------------------------------------------------


def test_new_opening_form_creates_and_shows_errors(app, org):
    client = logged_in(app, owner_of(org))
    assert "New opening" in client.get("/openings").text
    refused = client.post("/openings", data={"name": ""})
    assert refused.status_code == 422 and field_error(refused.text, "name")
    created = client.post("/openings", data={"name": "Summer Camp"})
    assert created.status_code == 302
    opening = db.session.scalar(select(Opening).where(Opening.name == "Summer Camp"))
    assert created.location == f"/openings/{opening.public_id}/edit"
    htmx = client.post("/openings", data={"name": "Winter Camp"}, headers=HX)
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].endswith("/edit")


def test_editor_updates_the_opening_section_and_shows_errors(app, org, opening, make_opening):
    make_opening(org, "Other").slug = "taken"
    db.session.commit()
    client = logged_in(app, owner_of(org))
    url = f"/openings/{opening.public_id}/edit"
    refused = client.post(url, data={"name": "X", "slug": "taken", "description": ""}, headers=HX)
    assert refused.status_code == 422
    assert refused.text.lstrip().startswith('<section id="opening"')
    assert (
        field_error(refused.text, "slug") == "Another opening of this org uses this slug already."
    )
    saved = client.post(
        url, data={"name": "Driver", "slug": "driver", "description": "Hi *there*"}, headers=HX
    )
    assert saved.status_code == 200 and "Opening saved." in saved.text
    plain = client.post(url, data={"name": "Driver", "slug": "driver", "description": ""})
    assert plain.status_code == 302 and plain.location == url
    full = client.post(url, data={"name": "", "slug": "driver"})
    assert full.status_code == 422 and "<html" in full.text and field_error(full.text, "name")


def test_state_actions_and_clone_over_http(app, org, opening):
    client = logged_in(app, owner_of(org))
    oid = opening.public_id
    closed = client.post(f"/openings/{oid}/close", headers=HX)
    assert closed.status_code == 200 and "Reopen" in closed.text
    again = client.post(f"/openings/{oid}/close", headers=HX)
    assert again.status_code == 422 and "cannot become closed" in again.text
    assert client.post(f"/openings/{oid}/reopen").status_code == 302
    cloned = client.post(f"/openings/{oid}/clone", data={"clone_name": "Copy"}, headers=HX)
    assert cloned.status_code == 204
    copy = db.session.scalar(select(Opening).where(Opening.name == "Copy"))
    assert cloned.headers["HX-Redirect"] == f"/openings/{copy.public_id}/edit"
    refused = client.post(f"/openings/{oid}/clone", data={"clone_name": ""}, headers=HX)
    assert refused.status_code == 422 and field_error(refused.text, "clone_name")


def test_question_form_over_http(app, org, opening, make_applicant):
    client = logged_in(app, owner_of(org))
    oid, sid = opening.public_id, opening.stages[0].public_id
    form = client.get(f"/openings/{oid}/stages/{sid}/questions", headers=HX)
    assert form.status_code == 200 and 'id="question-form"' in form.text
    refused = client.post(
        f"/openings/{oid}/stages/{sid}/questions",
        data={"label": "Shift", "type": "single_choice", "options": "Day\n"},
        headers=HX,
    )
    assert refused.status_code == 422
    assert field_error(refused.text, "options") == "Give at least 2 options, one per line."
    added = client.post(
        f"/openings/{oid}/stages/{sid}/questions",
        data={
            "label": "Shift",
            "type": "single_choice",
            "options": "Day\r\nNight",
            "required": "y",
        },
        headers=HX,
    )
    assert added.status_code == 200 and "<code>shift</code>" in added.text
    question = db.session.scalar(select(Question).where(Question.key == "shift"))
    assert question.options == ["Day", "Night"] and question.required
    edit_url = f"/openings/{oid}/questions/{question.public_id}/edit"
    assert 'value="shift"' in client.get(edit_url).text
    bad = client.post(
        edit_url, data={"label": "Age", "type": "number", "min_value": "9", "max_value": "1"}
    )
    assert bad.status_code == 422
    assert field_error(bad.text, "min_value") == "The minimum is greater than the maximum."
    ok = client.post(
        edit_url,
        data={
            "label": "Shift pattern",
            "type": "single_choice",
            "options": "Early\nLate",
            "key": "shift",
        },
    )
    assert ok.status_code == 302
    deleted = client.post(f"/openings/{oid}/questions/{question.public_id}/delete", headers=HX)
    assert deleted.status_code == 200 and "Question deleted." in deleted.text


def test_stage_forms_over_http_show_errors_next_to_fields(app, org, opening):
    client = logged_in(app, owner_of(org))
    oid, stage = opening.public_id, opening.stages[0]
    refused = client.post(
        f"/openings/{oid}/stages", data={"stage_name": "waiting list"}, headers=HX
    )
    assert refused.status_code == 422
    assert (
        field_error(refused.text, "stage_name") == "This opening has a stage of that name already."
    )
    rename = client.post(
        f"/openings/{oid}/stages/{stage.public_id}/rename",
        data={"name": "Final Review"},
        headers=HX,
    )
    assert rename.status_code == 422
    assert field_error(rename.text, f"stage-name-{stage.public_id}") == (
        "This opening has a stage of that name already."
    )
    moved = client.post(
        f"/openings/{oid}/stages/{stage.public_id}/move", data={"direction": "down"}, headers=HX
    )
    assert moved.status_code == 200
    assert stage_names(opening) == ["Waiting List", "Questionnaire", "Final Review"]


def test_editor_loads_sortable_only_there(app, org, opening):
    client = logged_in(app, owner_of(org))
    editor = client.get(f"/openings/{opening.public_id}/edit").text
    assert "sortablejs-1.15.7/Sortable.min.js" in editor and "js/editor.js" in editor
    for url in ("/openings", f"/openings/{opening.public_id}"):
        assert "Sortable" not in client.get(url).text
    assert client.get("/static/vendor/sortablejs-1.15.7/Sortable.min.js").status_code == 200


def test_overview_links_to_the_editor_and_renders_the_description(app, org, actor, opening):
    svc.update_opening(
        actor,
        opening.public_id,
        opening.name,
        opening.slug,
        "We **pay** weekly. [Read more](https://example.com/more)\n\n<script>alert(1)</script>\n",
    )
    page = logged_in(app, owner_of(org)).get(f"/openings/{opening.public_id}").text
    assert f'href="/openings/{opening.public_id}/edit"' in page
    assert "<strong>pay</strong>" in page
    assert '<a href="https://example.com/more"' in page
    assert "<script>alert" not in page


# --- markdown --------------------------------------------------------------------------------


def test_markdown_is_sanitized():
    out = str(
        render(
            "# Title\n\n<script>alert('x')</script>\n\n"
            "[ok](https://example.com) [bad](javascript:alert(1))\n\n"
            '<a href="https://e.com" onclick="steal()">raw</a> <img src=x onerror=alert(1)>'
        )
    )
    assert "<h1>Title</h1>" in out
    assert "<script" not in out and "alert('x')" not in out
    assert '<a href="https://example.com" rel="noopener noreferrer">ok</a>' in out
    assert "javascript:" not in out.replace("[bad](javascript:alert(1))", "")
    assert 'href="javascript' not in out
    assert "onclick" not in out and "onerror" not in out
    assert str(render("")) == ""
