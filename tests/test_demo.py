"""The demo org: the delivery driver opening of the architecture brief, loaded once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    Event,
    Membership,
    Opening,
    OpeningState,
    Org,
    Role,
    Stage,
    User,
)
from plutomi.services import demo
from plutomi.services.errors import Invalid

DEMO_PASSWORD = "demo drivers deliver daily"
STAGES = [
    "Questionnaire",
    "Waiting List",
    "Document Upload",
    "Final Review",
    "Ready to Drive",
    "Account Creation Failures",
]
TABLES = (User, Org, Membership, Opening, Stage, Applicant, Event)


def counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in TABLES}


def test_load_creates_the_delivery_driver_opening(app):
    assert demo.load(DEMO_PASSWORD) == (True, DEMO_PASSWORD)

    owner = db.session.scalar(select(User).where(User.email == "demo@example.com"))
    membership = db.session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert membership.role == Role.OWNER
    org = membership.org
    assert org.name == "Demo Logistics"

    opening = db.session.scalar(select(Opening).where(Opening.org_id == org.id))
    assert opening.name == "Delivery Driver"
    assert opening.state == OpeningState.PUBLISHED
    assert [s.name for s in opening.stages] == STAGES
    assert [s.position for s in opening.stages] == sorted(s.position for s in opening.stages)
    assert {s.org_id for s in opening.stages} == {org.id}

    applicants = list(db.session.scalars(select(Applicant).where(Applicant.org_id == org.id)))
    assert 24 <= len(applicants) <= 100  # a few dozen
    by_stage = {s.id: [a for a in applicants if a.stage_id == s.id] for s in opening.stages}
    assert all(by_stage.values()), "every stage has applicants"
    for stage_applicants in by_stage.values():
        stage_ranks = [a.rank for a in stage_applicants]
        assert len(set(stage_ranks)) == len(stage_ranks)
        assert all(r and not r.endswith("0") for r in stage_ranks)
    assert all(a.opening_id == opening.id for a in applicants)
    assert all(a.created_at <= a.entered_stage_at for a in applicants)

    # Each applicant has its applicant.created event, saying which stage it started in.
    created = list(db.session.scalars(select(Event).where(Event.type == "applicant.created")))
    assert sorted(e.applicant_id for e in created) == sorted(a.id for a in applicants)
    stage_names = {s.id: s.name for s in opening.stages}
    for event in created:
        applicant = db.session.get(Applicant, event.applicant_id)
        assert event.org_id == org.id
        assert event.opening_id == opening.id
        assert event.payload["stage"] == stage_names[applicant.stage_id]
    types = set(db.session.scalars(select(Event.type).where(Event.org_id == org.id)))
    assert {"org.created", "opening.published", "applicant.created"} <= types


def test_a_second_load_changes_nothing(app):
    assert demo.load(DEMO_PASSWORD)[0] is True
    before = counts()
    assert demo.load(DEMO_PASSWORD) == (False, None)
    assert demo.load("another good passphrase") == (False, None)
    assert demo.load() == (False, None)
    assert counts() == before


def test_the_given_password_logs_in(app, auth, client):
    demo.load(DEMO_PASSWORD)
    assert auth.login("demo@example.com", "not the demo password").status_code == 422
    assert auth.login("demo@example.com", DEMO_PASSWORD).status_code == 302
    page = client.get("/openings")
    assert page.status_code == 200
    assert "Delivery Driver" in page.text
    assert "Demo Logistics" in page.text


def test_without_a_password_one_is_generated_and_works(app, auth):
    created, password = demo.load()
    assert created is True
    assert len(password) >= 12
    assert auth.login("demo@example.com", password).status_code == 302


@pytest.mark.parametrize("password", ["password123", "short", "demo@example.com"])
def test_a_weak_password_is_refused_and_nothing_is_created(app, password):
    with pytest.raises(Invalid):
        demo.load(password)
    db.session.rollback()
    assert set(counts().values()) == {0}


def test_the_demo_command_prints_the_login_once(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "--password", DEMO_PASSWORD])
    assert first.exit_code == 0, first.output
    assert f"Log in as demo@example.com with password: {DEMO_PASSWORD}" in first.output

    again = runner.invoke(args=["demo", "--password", DEMO_PASSWORD])
    assert again.exit_code == 0, again.output
    assert "already loaded" in again.output
    assert DEMO_PASSWORD not in again.output
    assert db.session.scalar(select(func.count()).select_from(Org)) == 1


def test_the_demo_command_reads_demo_password_from_the_environment(app, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert DEMO_PASSWORD in result.output


def test_the_demo_opening_carries_its_rules_and_they_work(app):
    from datetime import timedelta

    import time_machine

    from plutomi.models import Answer, OutboxMessage, Question, Rule, Timer, utcnow
    from plutomi.services import answers, moves, rules
    from plutomi.services.events import Actor

    demo.load(DEMO_PASSWORD)
    opening = db.session.scalar(select(Opening))
    stages = {s.name: s for s in opening.stages}
    assert {r.name for r in db.session.scalars(select(Rule))} == {
        "Questionnaire not completed in 30 days",
        "Questionnaire completed",
        "Documents uploaded",
        "Ask for the driver's account",
        "Account creation failed",
    }

    # Every applicant in the questionnaire waits on its 30-day timer; the overdue ones move
    # to the waiting list at the first sweep, the others stay.
    in_questionnaire = list(
        db.session.scalars(
            select(Applicant).where(Applicant.stage_id == stages["Questionnaire"].id)
        )
    )
    assert db.session.scalar(select(func.count()).select_from(Timer)) == len(in_questionnaire)
    overdue = {
        a.id for a in in_questionnaire if a.entered_stage_at <= utcnow() - timedelta(days=30)
    }
    assert overdue, "the demo has some overdue applicants to show the rule at work"
    rules.sweep()
    db.session.expire_all()
    waiting = set(
        db.session.scalars(
            select(Applicant.id).where(Applicant.stage_id == stages["Waiting List"].id)
        )
    )
    assert overdue <= waiting
    assert not overdue & {
        a.id for a in in_questionnaire if a.stage_id == stages["Questionnaire"].id
    }

    # Finishing the questionnaire moves on to the documents at once, with the email.
    applicant = next(a for a in in_questionnaire if a.id not in overdue)
    answered = set(
        db.session.scalars(select(Answer.question_id).where(Answer.applicant_id == applicant.id))
    )
    for question in db.session.scalars(
        select(Question).where(Question.stage_id == stages["Questionnaire"].id)
    ):
        if question.id not in answered:
            value = {"city": "Porto", "vehicle": "Car", "years_driving": "3", "licence": "yes"}
            answers.save(db.session.get(Applicant, applicant.id), question, value[question.key])
    db.session.expire_all()
    applicant = db.session.get(Applicant, applicant.id)
    assert applicant.stage.name == "Document Upload"
    mail = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert mail.payload["to"] == applicant.email
    assert mail.payload["subject"] == "Next step for Delivery Driver: your documents"
    assert "/portal/" in mail.payload["text"]
    assert "applicant.email_skipped" not in set(
        db.session.scalars(select(Event.type).where(Event.applicant_id == applicant.id))
    )

    # Ready to Drive asks for the account; a failed account creation comes back as an event.
    owner = db.session.scalar(select(Membership))
    with time_machine.travel(utcnow()):
        moves.move(owner, applicant.public_id, stages["Ready to Drive"].public_id)
    assert db.session.scalar(select(Event).where(Event.type == "driver.approved")) is not None
    applicant = db.session.get(Applicant, applicant.id)
    rules.external_event(applicant, "account_creation.failed", {}, actor=Actor.system())
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Applicant, applicant.id).stage.name == "Account Creation Failures"
