"""The rule editor of a stage: its checks, saving and ordering, the dry run, cloning, and the
form over HTTP (indexed rows, htmx rows, errors next to their rows)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    EmailTemplate,
    Event,
    Membership,
    Opening,
    Org,
    Question,
    QuestionType,
    Role,
    Rule,
    Stage,
    Timer,
    Trigger,
    User,
    utcnow,
)
from plutomi.services import openings, rule_editing
from plutomi.services.errors import Forbidden, Invalid, InvalidFields, NotFound
from plutomi.services.rule_editing import ActionInput, ConditionInput, RuleInput
from tests.conftest import PASSWORD, field_error, owner_of

HX = {"HX-Request": "true"}

# --- the world: the delivery driver opening ----------------------------------------------------


def membership(org: Org, user: User) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


@dataclass
class World:
    org: Org
    actor: Membership
    opening: Opening
    questionnaire: Stage
    waiting: Stage
    documents: Stage
    review: Stage
    licence: Question  # single choice Car / Van / None
    age: Question  # number
    start: Question  # date
    insured: Question  # yes / no
    languages: Question  # multiple choice
    city: Question  # short text
    document: Question  # file, asked in a later stage
    template: EmailTemplate

    @property
    def oid(self) -> str:
        return self.opening.public_id


@pytest.fixture
def w(make_org, make_opening, make_question) -> World:
    org = make_org("Acme")
    opening = make_opening(
        org,
        stages=("Questionnaire", "Waiting List", "Document Upload", "Final Review"),
    )
    q, waiting, documents, review = opening.stages
    template = EmailTemplate(org_id=org.id, name="Welcome", subject="Hi", body="Hello")
    db.session.add(template)
    db.session.commit()
    return World(
        org=org,
        actor=membership(org, owner_of(org)),
        opening=opening,
        questionnaire=q,
        waiting=waiting,
        documents=documents,
        review=review,
        licence=make_question(
            q, "licence", QuestionType.SINGLE_CHOICE, options=["Car", "Van", "None"], required=True
        ),
        age=make_question(q, "age", QuestionType.NUMBER),
        start=make_question(q, "start", QuestionType.DATE),
        insured=make_question(q, "insured", QuestionType.YES_NO),
        languages=make_question(
            q, "languages", QuestionType.MULTI_CHOICE, options=["English", "French", "German"]
        ),
        city=make_question(q, "city", QuestionType.SHORT_TEXT),
        document=make_question(documents, "licence_scan", QuestionType.FILE),
        template=template,
    )


def cond(question: Question | str, op: str, value=None) -> ConditionInput:
    public_id = question if isinstance(question, str) else question.public_id
    return ConditionInput(question=public_id, op=op, value=value)


def move_to(stage: Stage | str) -> ActionInput:
    return ActionInput(type="move", stage=stage if isinstance(stage, str) else stage.public_id)


def rule(w: World, **fields) -> RuleInput:
    """A valid rule (stage completed → Final Review) with fields replaced."""
    fields.setdefault("name", "To review")
    fields.setdefault("trigger", Trigger.STAGE_COMPLETED.value)
    fields.setdefault("actions", [move_to(w.review)])
    return RuleInput(**fields)


def refused(w: World, data: RuleInput, stage: Stage | None = None) -> dict[str, str]:
    with pytest.raises(InvalidFields) as exc:
        rule_editing.create(w.actor, w.oid, (stage or w.questionnaire).public_id, data)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Rule)) == 0
    return exc.value.errors


def events(type_: str) -> list[Event]:
    db.session.expire_all()
    return list(db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)))


def logged_in(app, user: User):
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def answer(applicant: Applicant, question: Question, value) -> None:
    db.session.add(
        Answer(
            org_id=applicant.org_id, applicant_id=applicant.id, question_id=question.id, value=value
        )
    )
    db.session.commit()


# --- saving what is right ------------------------------------------------------------------------


def test_create_stores_the_cleaned_rule_last_in_its_stage_with_an_event(w):
    first = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    data = rule(
        w,
        name="  Not   done in 30 days ",
        trigger="time_in_stage",
        delay_amount="30",
        delay_unit="days",
        only_if_incomplete=True,
        match="any",
        conditions=[
            cond(w.licence, "equals", "Car"),
            cond(w.age, "greater", " 21 "),
            cond(w.start, "less", "2025-03-31"),
            cond(w.insured, "equals", "Yes"),
            cond(w.languages, "any_of", ["French", "German"]),
            cond(w.city, "any_of", "Berlin\n\nHamburg\nberlin"),
            cond(w.languages, "equals", "English"),
            cond(w.document, "empty", "ignored"),
        ],
        actions=[
            ActionInput(type="email", template=w.template.public_id),
            move_to(w.waiting),
            ActionInput(type="webhook", event="driver.waitlisted"),
        ],
    )
    second = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, data)
    db.session.expire_all()
    assert [r.id for r in rule_editing.rules_of(w.questionnaire)] == [first.id, second.id]
    assert (second.position, second.name, second.trigger) == (
        1,
        "Not done in 30 days",
        "time_in_stage",
    )
    assert (second.delay_minutes, second.only_if_incomplete, second.match) == (43200, True, "any")
    assert second.event_type is None and second.enabled is True
    assert second.conditions == [
        {"question": w.licence.public_id, "op": "equals", "value": "Car"},
        {"question": w.age.public_id, "op": "greater", "value": 21},
        {"question": w.start.public_id, "op": "less", "value": "2025-03-31"},
        {"question": w.insured.public_id, "op": "equals", "value": "yes"},
        {"question": w.languages.public_id, "op": "any_of", "value": ["French", "German"]},
        {"question": w.city.public_id, "op": "any_of", "value": ["Berlin", "Hamburg"]},
        {"question": w.languages.public_id, "op": "equals", "value": ["English"]},
        {"question": w.document.public_id, "op": "empty", "value": None},
    ]
    assert second.actions == [
        {"type": "email", "template": w.template.public_id},
        {"type": "move", "stage": w.waiting.public_id},
        {"type": "webhook", "event": "driver.waitlisted"},
    ]
    created = events("rule.created")
    assert [e.payload["rule"] for e in created] == [first.public_id, second.public_id]
    assert created[1].opening_id == w.opening.id and created[1].actor_type == "user"


@pytest.mark.parametrize(
    ("amount", "unit", "minutes"),
    [("1", "minutes", 1), ("2", "hours", 120), ("30", "days", 43200), ("3650", "days", 5256000)],
)
def test_time_rules_store_their_delay_in_minutes(w, amount, unit, minutes):
    data = rule(w, trigger="time_in_stage", delay_amount=amount, delay_unit=unit)
    saved = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, data)
    assert saved.delay_minutes == minutes
    shown = rule_editing.input_of(saved)
    assert (shown.delay_amount, shown.delay_unit) == (amount, unit)


def test_an_outside_event_rule_keeps_its_event_type(w):
    data = rule(w, trigger="external_event", event_type=" account_creation.failed ")
    saved = rule_editing.create(
        w.actor,
        w.oid,
        w.review.public_id,
        rule(w, **{**data.__dict__, "actions": [move_to(w.waiting)]}),
    )
    assert (saved.trigger, saved.event_type, saved.delay_minutes) == (
        "external_event",
        "account_creation.failed",
        None,
    )


def test_a_stage_without_required_questions_may_have_a_stage_completed_rule(w):
    saved = rule_editing.create(
        w.actor, w.oid, w.waiting.public_id, rule(w, trigger="stage_completed")
    )
    assert saved.trigger == "stage_completed"


# --- refusing what is wrong, each next to its field ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "   "}, "name", "This field is required."),
        ({"name": "x" * 121}, "name", "Use at most 120 characters."),
        ({"trigger": "whenever"}, "trigger", "Choose one of the triggers offered."),
        ({"trigger": "time_in_stage"}, "delay_amount", "Say how long"),
        ({"trigger": "time_in_stage", "delay_amount": "0"}, "delay_amount", "between 1 minute"),
        ({"trigger": "time_in_stage", "delay_amount": "-3"}, "delay_amount", "whole number"),
        ({"trigger": "time_in_stage", "delay_amount": "2.5"}, "delay_amount", "whole number"),
        (
            {"trigger": "time_in_stage", "delay_amount": "3651", "delay_unit": "days"},
            "delay_amount",
            "between 1 minute and 3,650 days",
        ),
        (
            {"trigger": "time_in_stage", "delay_amount": "3", "delay_unit": "weeks"},
            "delay_unit",
            "minutes, hours or days",
        ),
        ({"trigger": "external_event"}, "event_type", "Name the event"),
        ({"trigger": "external_event", "event_type": "failed"}, "event_type", "joined by dots"),
        (
            {"trigger": "external_event", "event_type": "Account.Failed"},
            "event_type",
            "lower-case",
        ),
        (
            # 65 characters: one more than the events table keeps, and the API takes.
            {"trigger": "external_event", "event_type": "a." + "b" * 63},
            "event_type",
            "at most 64",
        ),
        (
            {"trigger": "stage_entered", "only_if_incomplete": True},
            "only_if_incomplete",
            "Only a time rule",
        ),
        ({"match": "some"}, "match", "Choose all or any."),
        ({"actions": []}, "actions", "Add at least one action"),
    ],
)
def test_the_rule_itself_is_checked(w, fields, field, message):
    errors = refused(w, rule(w, **fields))
    assert message in errors[field]


@pytest.mark.parametrize(
    ("condition", "field", "message"),
    [
        (lambda w: cond("", "equals", "x"), "question", "Choose a question."),
        (lambda w: cond("a" * 16, "equals", "x"), "question", "Choose a question of this opening."),
        (lambda w: cond("<script>", "equals", "x"), "question", "of this opening"),
        (lambda w: cond(w.licence, "greater", "Car"), "op", "choose one of: is, is not"),
        (lambda w: cond(w.insured, "contains", "yes"), "op", "For this question"),
        (lambda w: cond(w.document, "equals", "x"), "op", "is empty, is not empty"),
        (lambda w: cond(w.licence, "bogus", "Car"), "op", "For this question"),
        (lambda w: cond(w.age, "greater", "twenty"), "value", "Enter a number"),
        (lambda w: cond(w.age, "less", "inf"), "value", "Enter a number"),
        (lambda w: cond(w.age, "equals", ""), "value", "Give the value to compare with."),
        (lambda w: cond(w.start, "less", "31/12/2025"), "value", "YYYY-MM-DD"),
        (lambda w: cond(w.start, "less", "2025-02-30"), "value", "YYYY-MM-DD"),
        (lambda w: cond(w.licence, "equals", "Bike"), "value", "one of the question's options"),
        (lambda w: cond(w.licence, "equals", None), "value", "Choose a value."),
        (lambda w: cond(w.licence, "equals", ["Car", "Van"]), "value", "one value only"),
        (lambda w: cond(w.licence, "any_of", []), "value", "Choose at least one option."),
        (lambda w: cond(w.licence, "any_of", ["Car", "Bike"]), "value", "question's options"),
        (lambda w: cond(w.languages, "contains", "Dutch"), "value", "question's options"),
        (lambda w: cond(w.insured, "equals", "maybe"), "value", "Choose yes or no."),
        (lambda w: cond(w.city, "equals", "  "), "value", "Give the value"),
        (lambda w: cond(w.city, "contains", "x" * 301), "value", "at most 300"),
        (lambda w: cond(w.city, "equals", "Ber\x00lin"), "value", "control character"),
        (lambda w: cond(w.city, "any_of", "\n \n"), "value", "at least one value"),
    ],
)
def test_each_condition_is_checked_against_its_question(w, condition, field, message):
    errors = refused(w, rule(w, conditions=[cond(w.city, "not_empty"), condition(w)]))
    assert message in errors[f"conditions-1-{field}"]
    assert "conditions-0-question" not in errors


def test_a_condition_names_a_live_question_of_this_opening_only(
    w, make_opening, make_org, make_question
):
    other_opening = make_opening(w.org, name="Other")
    theirs = make_question(other_opening.stages[0], "licence", QuestionType.SHORT_TEXT)
    other_org = make_org("Globex")
    foreign = make_question(make_opening(other_org).stages[0], "licence", QuestionType.SHORT_TEXT)
    archived = make_question(w.questionnaire, "old", QuestionType.SHORT_TEXT)
    archived.archived_at = utcnow()
    db.session.commit()
    errors = refused(
        w,
        rule(
            w,
            conditions=[
                cond(theirs, "not_empty"),
                cond(foreign, "not_empty"),
                cond(archived, "not_empty"),
            ],
        ),
    )
    assert errors["conditions-0-question"] == "Choose a question of this opening."
    # Another org's id reads exactly like an unknown one.
    assert errors["conditions-1-question"] == errors["conditions-0-question"]
    assert "archived" in errors["conditions-2-question"]


def test_every_problem_is_named_at_once(w):
    errors = refused(
        w,
        rule(
            w,
            name="",
            conditions=[cond(w.age, "greater", "x"), cond(w.licence, "equals", "Bike")],
            actions=[move_to(w.questionnaire), ActionInput(type="webhook", event="nope")],
        ),
    )
    assert set(errors) == {
        "name",
        "conditions-0-value",
        "conditions-1-value",
        "actions-0-stage",
        "actions-1-event",
    }


# --- actions ---------------------------------------------------------------------------------


def test_a_move_goes_to_a_stage_of_this_opening_only(w, make_opening, make_org):
    sibling = make_opening(w.org, name="Sibling", stages=("Elsewhere",))
    foreign = make_opening(make_org("Globex"), stages=("Theirs",))
    errors = refused(
        w,
        rule(
            w,
            actions=[
                move_to(sibling.stages[0]),
                move_to(foreign.stages[0]),
                move_to("z" * 16),
                move_to(""),
                ActionInput(type="teleport"),
            ],
        ),
    )
    message = "That stage is not one of this opening's (it may have been deleted): choose another."
    # Another opening, another org and a made-up id: one answer, which confirms nothing.
    assert errors["actions-0-stage"] == errors["actions-1-stage"] == errors["actions-2-stage"]
    assert errors["actions-0-stage"] == message
    assert errors["actions-3-stage"] == "Choose the stage to move applicants to."
    assert errors["actions-4-type"] == "Choose move, email or webhook."


@pytest.mark.parametrize("trigger", [t.value for t in Trigger])
def test_no_rule_moves_applicants_into_their_own_stage(w, trigger):
    data = rule(
        w,
        trigger=trigger,
        delay_amount="1",
        event_type="account_creation.failed",
        actions=[move_to(w.questionnaire)],
    )
    errors = refused(w, data)
    assert errors == {
        "actions-0-stage": "A rule cannot move applicants into the stage they are in."
    }


def test_a_rule_moves_applicants_at_most_once(w):
    errors = refused(w, rule(w, actions=[move_to(w.review), move_to(w.waiting)]))
    assert errors == {
        "actions-1-stage": "A rule moves applicants once: keep one move and remove the others."
    }


def test_email_templates_are_the_orgs_own(w, make_org):
    other_org = make_org("Globex")
    theirs = EmailTemplate(org_id=other_org.id, name="Theirs", subject="x", body="x")
    db.session.add(theirs)
    db.session.commit()
    errors = refused(
        w,
        rule(
            w,
            actions=[
                ActionInput(type="email", template=theirs.public_id),
                ActionInput(type="email", template="q" * 16),
                ActionInput(type="email"),
            ],
        ),
    )
    assert errors["actions-0-template"] == "Choose one of this org's email templates."
    assert errors["actions-1-template"] == errors["actions-0-template"]
    assert errors["actions-2-template"] == "Choose the email template to send."


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("", "Name the event"),
        ("approved", "joined by dots"),
        ("Driver.Approved", "lower-case"),
        ("driver..approved", "joined by dots"),
        ("9driver.approved", "joined by dots"),
        ("driver.approved " + "x", "joined by dots"),
        ("d." + "x" * 63, "at most 64"),  # events keep 64 characters of a type
        ("applicant.moved", "are built in"),
        ("webhook.delivered", "are built in"),
        ("opening.published", "are built in"),
        ("stage.added", "are built in"),
        ("rule.fired", "are built in"),
        ("email.sent", "are built in"),
    ],
)
def test_webhook_event_types_are_dotted_and_not_our_own(w, event, message):
    errors = refused(w, rule(w, actions=[ActionInput(type="webhook", event=event)]))
    assert message in errors["actions-0-event"]


def test_a_webhook_event_of_the_orgs_choosing_is_kept(w):
    saved = rule_editing.create(
        w.actor,
        w.oid,
        w.review.public_id,
        rule(w, actions=[ActionInput(type="webhook", event="driver.approved")]),
    )
    assert saved.actions == [{"type": "webhook", "event": "driver.approved"}]


# --- rules that could never fire ------------------------------------------------------------


def test_two_different_equals_on_one_question_never_hold_together(w):
    conditions = [cond(w.licence, "equals", "Car"), cond(w.licence, "equals", "Van")]
    errors = refused(w, rule(w, conditions=conditions))
    assert "cannot equal two different values" in errors["conditions-1-value"]
    assert "condition 1" in errors["conditions-1-value"]
    # Under "any" either can hold, and the same value twice is merely redundant.
    rule_editing.create(
        w.actor, w.oid, w.questionnaire.public_id, rule(w, match="any", conditions=conditions)
    )
    rule_editing.create(
        w.actor,
        w.oid,
        w.questionnaire.public_id,
        rule(w, conditions=[cond(w.age, "equals", "30"), cond(w.age, "equals", "30.0")]),
    )


@pytest.mark.parametrize(
    ("conditions", "field", "message"),
    [
        (
            lambda w: [cond(w.insured, "equals", "yes"), cond(w.insured, "equals", "no")],
            "conditions-1-value",
            "two different values",
        ),
        (
            lambda w: [cond(w.city, "equals", "Berlin"), cond(w.city, "not_equals", "berlin")],
            "conditions-1-value",
            "both be and not be",
        ),
        (
            lambda w: [cond(w.city, "empty"), cond(w.city, "not_empty")],
            "conditions-1-op",
            "cannot be empty",
        ),
        (
            lambda w: [cond(w.age, "greater", "3"), cond(w.age, "empty")],
            "conditions-1-op",
            "cannot be empty",
        ),
        (
            lambda w: [
                cond(w.languages, "equals", ["English"]),
                cond(w.languages, "equals", ["English", "French"]),
            ],
            "conditions-1-value",
            "two different values",
        ),
    ],
)
def test_contradicting_conditions_are_refused(w, conditions, field, message):
    errors = refused(w, rule(w, conditions=conditions(w)))
    assert message in errors[field]


def test_conditions_that_can_hold_together_are_fine(w):
    conditions = [
        cond(w.city, "empty"),
        cond(w.city, "not_equals", "Berlin"),
        cond(w.age, "greater", "18"),
        cond(w.age, "less", "70"),
        cond(w.licence, "equals", "Car"),
        cond(w.licence, "not_equals", "Van"),
    ]
    rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w, conditions=conditions))


def test_stage_entered_cannot_test_a_question_of_a_later_stage(w):
    data = rule(
        w,
        trigger="stage_entered",
        conditions=[cond(w.document, "not_empty")],
        actions=[move_to(w.review)],
    )
    errors = refused(w, data, stage=w.waiting)
    assert errors["conditions-0-question"].startswith(
        "Applicants answer this question in a later stage (Document Upload)"
    )
    # On entering Document Upload itself, or on a later trigger, it can be answered.
    rule_editing.create(
        w.actor,
        w.oid,
        w.review.public_id,
        rule(w, **{**data.__dict__, "actions": [move_to(w.waiting)]}),
    )
    rule_editing.create(
        w.actor, w.oid, w.waiting.public_id, rule(w, conditions=[cond(w.document, "not_empty")])
    )
    rule_editing.create(
        w.actor,
        w.oid,
        w.review.public_id,
        rule(
            w,
            trigger="stage_entered",
            conditions=[cond(w.licence, "equals", "Car")],
            actions=[move_to(w.waiting)],
        ),
    )


# --- editing, deleting, ordering --------------------------------------------------------------


def test_update_changes_the_rule_and_drops_its_pending_timers_when_disabled(w, make_applicant):
    saved = rule_editing.create(
        w.actor,
        w.oid,
        w.questionnaire.public_id,
        rule(w, trigger="time_in_stage", delay_amount="30"),
    )
    applicant = make_applicant(w.opening)
    db.session.add(
        Timer(
            org_id=w.org.id,
            applicant_id=applicant.id,
            rule_id=saved.id,
            stage_entry=1,
            due_at=utcnow() + timedelta(days=30),
        )
    )
    db.session.commit()
    changed = rule_editing.update(
        w.actor,
        w.oid,
        saved.public_id,
        rule(
            w,
            name="Renamed",
            trigger="time_in_stage",
            delay_amount="2",
            delay_unit="hours",
            enabled=False,
            conditions=[cond(w.licence, "equals", "Van")],
        ),
    )
    db.session.expire_all()
    assert (changed.name, changed.delay_minutes, changed.enabled) == ("Renamed", 120, False)
    assert changed.conditions[0]["value"] == "Van"
    # Disabled, it waits for nobody; enabling it again sets timers from each entry time.
    assert db.session.scalar(select(func.count()).select_from(Timer)) == 0
    (event,) = events("rule.updated")
    assert event.payload["rule"] == saved.public_id and event.payload["name"] == "Renamed"
    # A refused update changes nothing.
    with pytest.raises(InvalidFields):
        rule_editing.update(w.actor, w.oid, saved.public_id, rule(w, name=""))
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Rule, saved.id).name == "Renamed"


def test_delete_drops_the_rule_and_its_timers(w, make_applicant):
    saved = rule_editing.create(
        w.actor,
        w.oid,
        w.questionnaire.public_id,
        rule(w, trigger="time_in_stage", delay_amount="1"),
    )
    kept = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w, name="Kept"))
    applicant = make_applicant(w.opening)
    for rule_id in (saved.id, kept.id):
        db.session.add(
            Timer(
                org_id=w.org.id,
                applicant_id=applicant.id,
                rule_id=rule_id,
                stage_entry=1,
                due_at=utcnow(),
            )
        )
    db.session.commit()
    rule_editing.delete(w.actor, w.oid, saved.public_id)
    db.session.expire_all()
    assert [r.name for r in rule_editing.rules_of(w.questionnaire)] == ["Kept"]
    assert list(db.session.scalars(select(Timer.rule_id))) == [kept.id]
    (event,) = events("rule.deleted")
    assert event.payload == {
        "rule": saved.public_id,
        "stage": w.questionnaire.public_id,
        "name": "To review",
    }
    with pytest.raises(NotFound):
        rule_editing.delete(w.actor, w.oid, saved.public_id)


def test_reorder_and_move_up_and_down(w):
    sid = w.questionnaire.public_id
    a, b, c = (
        rule_editing.create(w.actor, w.oid, sid, rule(w, name=name)) for name in ("A", "B", "C")
    )

    def names() -> list[str]:
        db.session.expire_all()
        return [r.name for r in rule_editing.rules_of(w.questionnaire)]

    rule_editing.reorder(w.actor, w.oid, sid, [c.public_id, a.public_id, b.public_id])
    assert names() == ["C", "A", "B"]
    rule_editing.move(w.actor, w.oid, b.public_id, "up")
    assert names() == ["C", "B", "A"]
    rule_editing.move(w.actor, w.oid, c.public_id, "up")  # already first
    rule_editing.move(w.actor, w.oid, c.public_id, "down")
    assert names() == ["B", "C", "A"]
    with pytest.raises(Invalid, match="The list changed"):
        rule_editing.reorder(w.actor, w.oid, sid, [a.public_id, b.public_id])
    db.session.rollback()
    with pytest.raises(Invalid, match="Move up or down"):
        rule_editing.move(w.actor, w.oid, a.public_id, "sideways")
    db.session.rollback()
    assert names() == ["B", "C", "A"]
    assert len(events("rule.reordered")) == 4


def test_a_stage_id_of_another_opening_cannot_hold_this_openings_rules(w, make_opening):
    sibling = make_opening(w.org, name="Sibling")
    with pytest.raises(NotFound):
        rule_editing.create(w.actor, w.oid, sibling.stages[0].public_id, rule(w))
    saved = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    with pytest.raises(NotFound):
        rule_editing.update(w.actor, sibling.public_id, saved.public_id, rule(w))


# --- roles and tenancy -----------------------------------------------------------------------


def test_only_those_who_edit_openings_edit_rules(app, w, make_member):
    saved = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    viewer = make_member(w.org, Role.VIEWER)
    as_viewer = membership(w.org, viewer)
    sid = w.questionnaire.public_id
    for call in (
        lambda: rule_editing.create(as_viewer, w.oid, sid, rule(w)),
        lambda: rule_editing.update(as_viewer, w.oid, saved.public_id, rule(w)),
        lambda: rule_editing.delete(as_viewer, w.oid, saved.public_id),
        lambda: rule_editing.reorder(as_viewer, w.oid, sid, [saved.public_id]),
        lambda: rule_editing.move(as_viewer, w.oid, saved.public_id, "up"),
        lambda: rule_editing.dry_run(as_viewer, w.oid, sid, rule(w)),
    ):
        with pytest.raises(Forbidden):
            call()
    client = logged_in(app, viewer)
    oid, rid = w.oid, saved.public_id
    for method, url in [
        ("GET", f"/openings/{oid}/stages/{sid}/rules"),
        ("GET", f"/openings/{oid}/stages/{sid}/rules/new"),
        ("POST", f"/openings/{oid}/stages/{sid}/rules/new"),
        ("GET", f"/openings/{oid}/rules/{rid}/edit"),
        ("POST", f"/openings/{oid}/rules/{rid}/delete"),
        ("POST", f"/openings/{oid}/rules/{rid}/move"),
        ("POST", f"/openings/{oid}/stages/{sid}/rules/order"),
    ]:
        assert client.open(url, method=method, data={"name": "x"}).status_code == 403, url
    # The dry run is a post of the rule form too.
    dry_run = client.post(
        f"/openings/{oid}/stages/{sid}/rules/new", data={"name": "x", "dry_run": "1"}
    )
    assert dry_run.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Rule)) == 1

    recruiter = make_member(w.org, Role.RECRUITER)
    made = rule_editing.create(membership(w.org, recruiter), w.oid, sid, rule(w, name="Mine"))
    assert made.name == "Mine"


def test_another_orgs_rules_are_a_404(app, w, make_org, make_opening):
    saved = rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    other = make_org("Globex")
    theirs = make_opening(other, name="Theirs")
    outsider = membership(other, owner_of(other))
    with pytest.raises(NotFound):
        rule_editing.update(outsider, w.oid, saved.public_id, rule(w))
    with pytest.raises(NotFound):
        rule_editing.delete(outsider, theirs.public_id, saved.public_id)
    client = logged_in(app, owner_of(other))
    sid = w.questionnaire.public_id
    for method, url in [
        ("GET", f"/openings/{w.oid}/stages/{sid}/rules"),
        ("GET", f"/openings/{w.oid}/rules/{saved.public_id}/edit"),
        # Their own opening with our rule's id.
        ("GET", f"/openings/{theirs.public_id}/rules/{saved.public_id}/edit"),
        ("POST", f"/openings/{theirs.public_id}/rules/{saved.public_id}/delete"),
        ("POST", f"/openings/{theirs.public_id}/rules/{saved.public_id}/move"),
    ]:
        response = client.open(url, method=method, data={"rule": saved.public_id})
        assert response.status_code == 404, url
        assert "To review" not in response.text
    # A dry run of our rule from their opening.
    response = client.post(
        f"/openings/{theirs.public_id}/rules/{saved.public_id}/edit", data={"dry_run": "1"}
    )
    assert response.status_code == 404
    assert "To review" not in response.text
    assert db.session.scalar(select(func.count()).select_from(Rule)) == 1


# --- the dry run ------------------------------------------------------------------------------


@pytest.fixture
def applicants(w, make_applicant):
    """Applicants of the questionnaire with different answers, and some who do not count."""
    now = utcnow()
    made = {}
    for name, licence, days, completed in [
        ("Ada Car", "Car", 40, False),
        ("Bo Car", "Car", 5, True),
        ("Cy Van", "Van", 40, False),
        ("Di Nothing", None, 1, False),
    ]:
        applicant = make_applicant(w.opening, w.questionnaire, name=name)
        applicant.entered_stage_at = now - timedelta(days=days)
        applicant.stage_completed_at = now if completed else None
        db.session.commit()
        if licence:
            answer(applicant, w.licence, licence)
        made[name] = applicant
    rejected = make_applicant(w.opening, w.questionnaire, name="Ed Rejected Car")
    rejected.status = ApplicantStatus.REJECTED
    db.session.commit()
    answer(rejected, w.licence, "Car")
    elsewhere = make_applicant(w.opening, w.waiting, name="Flo Elsewhere Car")
    answer(elsewhere, w.licence, "Car")
    return made


def dry(w, **fields) -> rule_editing.DryRun:
    return rule_editing.dry_run(w.actor, w.oid, w.questionnaire.public_id, rule(w, **fields))


def test_the_dry_run_names_the_active_applicants_whose_answers_match(w, applicants):
    result = dry(w, conditions=[cond(w.licence, "equals", "Car")])
    assert [r.name for r in result.rows] == ["Ada Car", "Bo Car"]
    assert (result.count, result.capped, result.count_text) == (2, False, "2")
    assert result.rows[0].public_id == applicants["Ada Car"].public_id
    assert result.rows[0].time_in_stage == "40 days"
    assert result.actions == ["move to Final Review"]
    assert result.sentence == (
        "When an applicant completes this stage, if “Licence” is Car, move to Final Review."
    )
    assert "when they complete the stage" in result.when
    # Bo completed the stage already: the trigger has passed for them.
    assert result.rows[1].due.startswith("completed the stage already")

    others = dry(
        w, match="any", conditions=[cond(w.licence, "equals", "Van"), cond(w.licence, "empty")]
    )
    assert [r.name for r in others.rows] == ["Cy Van", "Di Nothing"]
    everyone = dry(w, conditions=[])
    assert everyone.count == 4
    nobody = dry(w, conditions=[cond(w.licence, "equals", "None")])
    assert (nobody.count, nobody.rows) == (0, [])
    # Nothing was saved or recorded.
    assert db.session.scalar(select(func.count()).select_from(Rule)) == 0
    assert events("rule.created") == []


def test_the_dry_run_of_a_time_rule_says_who_is_due_and_when(w, applicants):
    # The clock of the fixture, which put Ada 40 days into the stage.
    now = applicants["Ada Car"].entered_stage_at + timedelta(days=40)
    with time_machine.travel(now, tick=False):
        result = dry(
            w,
            trigger="time_in_stage",
            delay_amount="30",
            delay_unit="days",
            actions=[move_to(w.waiting), ActionInput(type="email", template=w.template.public_id)],
        )
    due = {r.name: (r.due_now, r.due) for r in result.rows}
    assert due["Ada Car"] == (True, "time reached: at the next sweep")
    assert due["Cy Van"][0] is True
    due_at = (now + timedelta(days=25)).strftime("%Y-%m-%d %H:%M")
    assert due["Bo Car"] == (False, f"in 25 days ({due_at} UTC)")
    assert due["Di Nothing"][1].startswith("in 29 days (")
    assert result.actions == ["move to Waiting List", "send the email “Welcome”"]
    assert result.sentence.startswith("After 30 days in this stage, move to Waiting List and")

    incomplete = dry(
        w,
        trigger="time_in_stage",
        delay_amount="30",
        only_if_incomplete=True,
        conditions=[cond(w.licence, "equals", "Car")],
        actions=[move_to(w.waiting)],
    )
    # Bo completed the stage, so a rule that acts only on incomplete ones skips them.
    assert [r.name for r in incomplete.rows] == ["Ada Car"]
    assert "if the stage is still not completed" in incomplete.sentence


def test_the_dry_run_of_an_outside_event_rule(w, applicants):
    result = dry(
        w,
        trigger="external_event",
        event_type="account_creation.failed",
        conditions=[cond(w.licence, "equals", "Van")],
        actions=[ActionInput(type="webhook", event="driver.flagged")],
    )
    assert [r.name for r in result.rows] == ["Cy Van"]
    assert "when a account_creation.failed event arrives" in result.when
    assert result.actions == ["emit webhook event driver.flagged"]


def test_the_dry_run_reads_in_chunks_and_stops_counting_at_its_cap(w, applicants, monkeypatch):
    # Every applicant here shares one rank, so the keyset's tie-break on id is what pages.
    monkeypatch.setattr(rule_editing, "DRY_RUN_CHUNK", 2)
    full = dry(w, conditions=[cond(w.licence, "not_empty")])
    assert [r.name for r in full.rows] == ["Ada Car", "Bo Car", "Cy Van"]
    monkeypatch.setattr(rule_editing, "DRY_RUN_SHOWN", 1)
    monkeypatch.setattr(rule_editing, "DRY_RUN_CAP", 2)
    capped = dry(w, conditions=[])
    assert (capped.count, capped.capped, capped.count_text) == (2, True, "2+")
    assert [r.name for r in capped.rows] == ["Ada Car"]
    assert capped.more == 1
    exact = dry(w, conditions=[cond(w.licence, "equals", "Car")])
    assert (exact.count, exact.capped, exact.count_text) == (2, False, "2")


def test_the_dry_run_checks_the_rule_first(w, applicants):
    with pytest.raises(InvalidFields) as exc:
        dry(w, conditions=[cond(w.licence, "equals", "Bike")])
    assert "conditions-0-value" in exc.value.errors


# --- cloning ----------------------------------------------------------------------------------


def test_clone_copies_rules_onto_the_copys_stages_and_questions(w, make_question):
    archived = make_question(w.questionnaire, "old", QuestionType.SHORT_TEXT)
    time_rule = rule_editing.create(
        w.actor,
        w.oid,
        w.questionnaire.public_id,
        rule(
            w,
            name="Not done",
            trigger="time_in_stage",
            delay_amount="30",
            only_if_incomplete=True,
            match="any",
            conditions=[cond(w.licence, "equals", "Car"), cond(archived, "not_empty")],
            actions=[
                move_to(w.waiting),
                ActionInput(type="email", template=w.template.public_id),
                ActionInput(type="webhook", event="driver.waitlisted"),
            ],
        ),
    )
    rule_editing.create(
        w.actor,
        w.oid,
        w.review.public_id,
        rule(
            w,
            name="Failed",
            trigger="external_event",
            event_type="account_creation.failed",
            actions=[move_to(w.documents)],
            enabled=False,
        ),
    )
    archived.archived_at = utcnow()
    db.session.commit()

    copy = openings.clone(w.actor, w.oid, "Driver, Hamburg")
    db.session.expire_all()
    stages = openings.stages_of(copy)
    by_name = {s.name: s for s in stages}
    copied = {
        q.key: q for q in db.session.scalars(select(Question).where(Question.opening_id == copy.id))
    }
    (first,) = rule_editing.rules_of(by_name["Questionnaire"])
    assert (first.name, first.delay_minutes, first.only_if_incomplete, first.match) == (
        "Not done",
        43200,
        True,
        "any",
    )
    assert first.opening_id == copy.id and first.public_id != time_rule.public_id
    assert first.conditions == [
        {"question": copied["licence"].public_id, "op": "equals", "value": "Car"},
        # Archived questions are not copied: the reference stays, and never matches.
        {"question": archived.public_id, "op": "not_empty", "value": None},
    ]
    assert first.actions == [
        {"type": "move", "stage": by_name["Waiting List"].public_id},
        {"type": "email", "template": w.template.public_id},
        {"type": "webhook", "event": "driver.waitlisted"},
    ]
    (second,) = rule_editing.rules_of(by_name["Final Review"])
    assert (second.trigger, second.event_type, second.enabled) == (
        "external_event",
        "account_creation.failed",
        False,
    )
    assert second.actions == [{"type": "move", "stage": by_name["Document Upload"].public_id}]
    # The source keeps its own.
    (source,) = rule_editing.rules_of(w.questionnaire)
    assert source.actions[0]["stage"] == w.waiting.public_id
    assert db.session.scalar(select(func.count()).select_from(Rule)) == 4


# --- the form over HTTP -----------------------------------------------------------------------


@pytest.fixture
def client(app, w):
    return logged_in(app, owner_of(w.org))


def form_for(w: World, **extra) -> dict:
    data = {
        "name": "Car drivers to review",
        "trigger": "stage_completed",
        "match": "all",
        "enabled": "y",
        "conditions-0-question": w.licence.public_id,
        "conditions-0-op": "equals",
        "conditions-0-value": "Car",
        "actions-0-type": "move",
        "actions-0-stage": w.review.public_id,
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_the_editor_links_each_stage_to_its_rules(client, w):
    rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    page = client.get(f"/openings/{w.oid}/edit").text
    sid = w.questionnaire.public_id
    assert f'href="/openings/{w.oid}/stages/{sid}/rules"' in page
    assert 'Rules (1)<span class="visually-hidden"> of Questionnaire</span>' in page
    assert 'Rules (0)<span class="visually-hidden"> of Waiting List</span>' in page


def test_the_rules_page_lists_rules_in_order_as_sentences(client, w):
    sid = w.questionnaire.public_id
    rule_editing.create(
        w.actor,
        w.oid,
        sid,
        rule(
            w,
            name="First",
            conditions=[cond(w.licence, "equals", "Car"), cond(w.age, "greater", "21")],
        ),
    )
    rule_editing.create(
        w.actor,
        w.oid,
        sid,
        rule(
            w,
            name="Second",
            trigger="time_in_stage",
            delay_amount="30",
            only_if_incomplete=True,
            actions=[move_to(w.waiting), ActionInput(type="email", template=w.template.public_id)],
        ),
    )
    page = client.get(f"/openings/{w.oid}/stages/{sid}/rules")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert text.index("First") < text.index("Second")
    assert (
        "When an applicant completes this stage, if “Licence” is Car and “Age” is greater than "
        "21, move to Final Review." in text
    )
    assert (
        "After 30 days in this stage if the stage is still not completed, move to Waiting List "
        "and send the email “Welcome”." in text
    )


def test_a_rule_is_built_and_saved_through_the_form(client, w):
    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules/new"
    blank = client.get(url)
    assert blank.status_code == 200 and 'name="actions-0-type"' in blank.text
    saved = client.post(url, data=form_for(w))
    assert saved.status_code == 302
    (made,) = rule_editing.rules_of(w.questionnaire)
    assert saved.headers["Location"].endswith(
        f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules#rule-{made.public_id}"
    )
    assert made.conditions == [{"question": w.licence.public_id, "op": "equals", "value": "Car"}]
    assert made.actions == [{"type": "move", "stage": w.review.public_id}]
    # htmx follows the redirect as a whole page.
    again = client.post(url, data=form_for(w, name="Again"), headers=HX)
    assert again.status_code == 204 and "/rules#rule-" in again.headers["HX-Redirect"]


def test_refused_fields_come_back_next_to_their_rows(client, w):
    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules/new"
    data = form_for(
        w,
        **{
            "name": "",
            "conditions-1-question": w.age.public_id,
            "conditions-1-op": "greater",
            "conditions-1-value": "lots",
            "actions-1-type": "move",
            "actions-1-stage": w.questionnaire.public_id,
        },
    )
    for headers in ({}, HX):
        page = client.post(url, data=data, headers=headers)
        assert page.status_code == 422
        assert field_error(page.text, "name") == "This field is required."
        assert field_error(page.text, "conditions-1-value") == "Enter a number, such as 42 or 3.5."
        assert field_error(page.text, "actions-1-stage") == (
            "A rule cannot move applicants into the stage they are in."
        )
        assert 'id="conditions-1-value" name="conditions-1-value" value="lots"' in page.text
        assert "3 things to fix" in page.text
    assert ("<html" in page.text) is False  # htmx gets the form alone
    assert rule_editing.rules_of(w.questionnaire) == []


def test_rows_are_added_and_removed_without_javascript(client, w):
    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules/new"
    more = client.post(url, data=form_for(w, add_condition="1"))
    assert more.status_code == 200
    assert (
        'name="conditions-1-question"' in more.text
        and 'name="conditions-2-question"' not in more.text
    )
    assert rule_editing.rules_of(w.questionnaire) == []
    # Removing the first of two rows renumbers the second as row 0.
    two = form_for(
        w,
        **{
            "conditions-1-question": w.city.public_id,
            "conditions-1-op": "contains",
            "conditions-1-value": "Berl",
            "remove_condition": "0",
        },
    )
    fewer = client.post(url, data=two)
    assert 'name="conditions-1-question"' not in fewer.text
    assert re.search(rf'<option value="{w.city.public_id}" selected>', fewer.text), (
        "the remaining row is the city condition"
    )
    assert 'id="conditions-0-value" name="conditions-0-value" value="Berl"' in fewer.text
    actions = client.post(url, data=form_for(w, add_action="1"))
    assert 'name="actions-1-type"' in actions.text
    gone = client.post(url, data=form_for(w, remove_action="0"))
    assert 'name="actions-0-type"' not in gone.text
    refreshed = client.post(url, data=form_for(w, **{"actions-0-type": "email", "refresh": "1"}))
    assert 'name="actions-0-template"' in refreshed.text and "Welcome" in refreshed.text


def test_htmx_rows_come_one_at_a_time(client, w):
    base = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules"
    row = client.get(f"{base}/condition-row?index=3", headers=HX)
    assert row.status_code == 200
    assert 'id="condition-3"' in row.text and 'name="conditions-3-question"' in row.text
    # The add button is swapped out of band, now asking for the row after.
    assert 'hx-swap-oob="true"' in row.text and "condition-row?index=4" in row.text
    assert "Licence" in row.text and "Document Upload" in row.text  # grouped by stage
    action = client.get(f"{base}/action-row?index=1", headers=HX)
    assert 'name="actions-1-type"' in action.text and "action-row?index=2" in action.text
    assert (
        "Final Review" in action.text and f'value="{w.questionnaire.public_id}"' not in action.text
    )
    for bad in ("", "?index=-1", "?index=abc", "?index=99999"):
        assert client.get(f"{base}/condition-row{bad}", headers=HX).status_code == 200


@pytest.mark.parametrize(
    ("question", "op", "expect", "not_expected"),
    [
        ("licence", "equals", '<select id="conditions-0-value"', 'type="checkbox"'),
        ("licence", "any_of", 'type="checkbox" name="conditions-0-value" value="Van"', "<textarea"),
        ("languages", "equals", 'type="checkbox" name="conditions-0-value" value="French"', None),
        ("insured", "equals", '<option value="yes"', None),
        ("age", "greater", 'type="number" step="any"', None),
        ("start", "less", 'type="date"', None),
        ("city", "any_of", '<textarea id="conditions-0-value"', None),
        ("city", "empty", 'id="conditions-0-op"', 'id="conditions-0-value"'),
        # A question changed under an operator it does not take: its first operator instead.
        ("document", "greater", '<option value="empty" selected>', 'id="conditions-0-value"'),
    ],
)
def test_a_conditions_inputs_follow_its_question_and_operator(
    client, w, question, op, expect, not_expected
):
    q = getattr(w, question)
    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules/condition-fields"
    page = client.get(
        url,
        query_string={"index": "0", "conditions-0-question": q.public_id, "conditions-0-op": op},
        headers=HX,
    )
    assert page.status_code == 200
    assert expect in page.text
    if not_expected:
        assert not_expected not in page.text
    assert "<html" not in page.text


def test_action_fields_follow_the_action_type(client, w):
    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules/action-fields"
    for kind, expect in [
        ("move", 'name="actions-2-stage"'),
        ("email", 'name="actions-2-template"'),
        ("webhook", 'name="actions-2-event"'),
        ("nonsense", 'name="actions-2-stage"'),
    ]:
        page = client.get(url, query_string={"index": "2", "actions-2-type": kind}, headers=HX)
        assert page.status_code == 200 and expect in page.text, kind


def test_the_dry_run_over_http(client, w, applicants):
    sid = w.questionnaire.public_id
    url = f"/openings/{w.oid}/stages/{sid}/rules/new"
    result = client.post(url, data=form_for(w, dry_run="1"), headers=HX)
    assert result.status_code == 200
    assert "Ada Car" in result.text and "Bo Car" in result.text and "Cy Van" not in result.text
    assert '<strong class="dry-run-count">2</strong>' in result.text
    # htmx gets the form alone (it replaces itself), with the result in its place there.
    assert "<html" not in result.text and '<form id="rule-form"' in result.text
    assert re.search(r'<div id="dry-run"[^>]*>\s*<div class="dry-run-result"', result.text)
    # Refused input: the form comes back with errors next to their rows.
    bad = client.post(
        url, data=form_for(w, dry_run="1", **{"conditions-0-value": "Bike"}), headers=HX
    )
    assert bad.status_code == 422
    assert "<html" not in bad.text and '<form id="rule-form"' in bad.text
    assert field_error(bad.text, "conditions-0-value") == "Choose one of the question's options."
    # Without JavaScript the dry run button posts the form to its own address.
    page = client.post(url, data=form_for(w, dry_run="1"))
    assert page.status_code == 200 and "Ada Car" in page.text and "<html" in page.text
    assert rule_editing.rules_of(w.questionnaire) == []


def test_edit_delete_and_order_over_http(client, w):
    sid = w.questionnaire.public_id
    first = rule_editing.create(
        w.actor,
        w.oid,
        sid,
        rule(
            w,
            name="First",
            conditions=[
                cond(w.languages, "any_of", ["French", "German"]),
                cond(w.age, "less", "70"),
            ],
        ),
    )
    second = rule_editing.create(w.actor, w.oid, sid, rule(w, name="Second"))
    edit_url = f"/openings/{w.oid}/rules/{first.public_id}/edit"
    page = client.get(edit_url).text
    assert 'value="First"' in page
    assert 'value="French" checked' in page and 'value="German" checked' in page
    assert 'id="conditions-1-value" name="conditions-1-value" value="70"' in page
    assert f'action="/openings/{w.oid}/rules/{first.public_id}/edit"' in page
    saved = client.post(edit_url, data=form_for(w, name="First, renamed"))
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Rule, first.id).name == "First, renamed"

    moved = client.post(
        f"/openings/{w.oid}/rules/{second.public_id}/move", data={"direction": "up"}, headers=HX
    )
    assert moved.status_code == 200 and 'id="rules"' in moved.text
    listed = moved.text[moved.text.index('id="rule-list"') :]
    assert listed.index("Second") < listed.index("First, renamed")
    ordered = client.post(
        f"/openings/{w.oid}/stages/{sid}/rules/order",
        data={"order": f"{first.public_id},{second.public_id}"},
        headers=HX,
    )
    assert ordered.status_code == 200
    listed = ordered.text[ordered.text.index('id="rule-list"') :]
    assert listed.index("First, renamed") < listed.index("Second")
    stale = client.post(
        f"/openings/{w.oid}/stages/{sid}/rules/order", data={"order": first.public_id}, headers=HX
    )
    assert stale.status_code == 422 and "The list changed" in stale.text

    deleted = client.post(f"/openings/{w.oid}/rules/{second.public_id}/delete")
    assert deleted.status_code == 302
    assert [r.name for r in rule_editing.rules_of(w.questionnaire)] == ["First, renamed"]
    assert client.get(f"/openings/{w.oid}/rules/{second.public_id}/edit").status_code == 404


def test_the_rules_page_runs_the_same_queries_however_many_rules(app, client, w):
    from sqlalchemy import event as sa_event

    url = f"/openings/{w.oid}/stages/{w.questionnaire.public_id}/rules"
    with app.app_context():
        engine = db.engine

    def count() -> int:
        seen: list[str] = []

        def before(conn, cursor, statement, *args):
            seen.append(statement)

        sa_event.listen(engine, "before_cursor_execute", before)
        try:
            assert client.get(url).status_code == 200
        finally:
            sa_event.remove(engine, "before_cursor_execute", before)
        return len(seen)

    rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w))
    few = count()
    for n in range(10):
        rule_editing.create(w.actor, w.oid, w.questionnaire.public_id, rule(w, name=f"R{n}"))
    assert count() == few


def test_the_demo_openings_rules_pass_the_editors_checks(app):
    """The rules the demo loads are ones the editor could have saved, and edit cleanly."""
    from plutomi.services import demo

    demo.load("a demo passphrase for tests")
    opening = db.session.scalar(select(Opening).where(Opening.name == "Delivery Driver"))
    actor = membership(
        db.session.get(Org, opening.org_id),
        db.session.scalar(select(User).where(User.email == "demo@example.com")),
    )
    found = rule_editing.lookups(opening)
    saved = list(db.session.scalars(select(Rule).where(Rule.opening_id == opening.id)))
    assert len(saved) >= 5
    for each in saved:
        clean = rule_editing.check(opening, each.stage, rule_editing.input_of(each), found)
        assert (clean.conditions, clean.actions) == (each.conditions, each.actions), each.name
        assert "deleted" not in rule_editing.sentence(each, found), each.name
    first = db.session.scalar(
        select(Rule).where(Rule.opening_id == opening.id, Rule.trigger == "time_in_stage")
    )
    result = rule_editing.dry_run(
        actor, opening.public_id, first.stage.public_id, rule_editing.input_of(first)
    )
    assert result.count > 0 and result.actions == ["move to Waiting List"]
