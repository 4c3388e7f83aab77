"""The rules engine: immediate triggers inside the causing transaction, first move wins, the
chain cap, outside events, and timers (due, stale, claimed once, failing alone)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    EmailTemplate,
    Event,
    Membership,
    Org,
    OutboxMessage,
    QuestionType,
    Timer,
    TimerState,
    Trigger,
    utcnow,
)
from plutomi.services import (
    answers,
    applications,
    bulk,
    conditions,
    moves,
    openings,
    rules,
    timeline,
)
from plutomi.services.events import Actor
from tests.conftest import owner_of

STAGES = (
    "Questionnaire",
    "Document Upload",
    "Final Review",
    "Waiting List",
    "Ready to Drive",
    "Account Creation Failures",
)


@pytest.fixture
def driver(make_org, make_opening, make_question):
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, "Delivery Driver", STAGES)
    first = opening.stages[0]
    city = make_question(
        first,
        "city",
        QuestionType.SINGLE_CHOICE,
        label="City",
        required=True,
        options=["Lisbon", "Porto"],
    )
    age = make_question(first, "age", QuestionType.NUMBER, label="Age", required=True)
    return opening, {s.name: s for s in opening.stages}, city, age


def member(org_id: int) -> Membership:
    return db.session.scalar(select(Membership).where(Membership.org_id == org_id))


def move_to(stage) -> list[dict]:
    return [{"type": "move", "stage": stage.public_id}]


def stage_of(applicant: Applicant) -> str:
    db.session.expire_all()
    return db.session.get(Applicant, applicant.id).stage.name


def types(applicant: Applicant) -> list[str]:
    return list(
        db.session.scalars(
            select(Event.type).where(Event.applicant_id == applicant.id).order_by(Event.id)
        )
    )


def apply(opening, city, age, email="ana@example.net", city_value="Lisbon", age_value="30"):
    applicant, created = applications.apply(
        opening,
        "Ana Lima",
        email,
        {f"q_{city.public_id}": city_value, f"q_{age.public_id}": age_value},
    )
    assert created
    return applicant


def test_completing_the_questionnaire_moves_on_at_once(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(
        stages["Questionnaire"],
        Trigger.STAGE_COMPLETED,
        move_to(stages["Document Upload"]),
        name="Questionnaire completed",
    )
    applicant = apply(opening, city, age)
    assert stage_of(applicant) == "Document Upload"
    moved = db.session.scalar(
        select(Event).where(Event.applicant_id == applicant.id, Event.type == "applicant.moved")
    )
    assert moved.actor_type == "rule"
    assert moved.payload["rule_name"] == "Questionnaire completed"
    assert moved.payload["why"] == "stage completed"
    assert types(applicant)[-2:] == ["rule.fired", "applicant.moved"]
    # The timeline says which rule moved them, and why.
    page = timeline.page(db.session.get(Org, opening.org_id), applicant)
    entry = next(e for e in page.entries if e.type == "applicant.moved")
    assert entry.actor == "Rule: Questionnaire completed"
    assert entry.text == "Moved from Questionnaire to Document Upload (stage completed)"
    fired = next(e for e in page.entries if e.type == "rule.fired")
    assert (fired.text, fired.actor) == ("Rule fired: stage completed", entry.actor)


def test_answering_the_last_required_question_in_the_portal_moves_on(
    driver, make_rule, make_applicant
):
    opening, stages, city, age = driver
    make_rule(stages["Questionnaire"], Trigger.STAGE_COMPLETED, move_to(stages["Document Upload"]))
    applicant = make_applicant(opening, stages["Questionnaire"])
    answers.save(applicant, city, "Porto")
    assert stage_of(applicant) == "Questionnaire"  # age is still missing
    applicant = db.session.get(Applicant, applicant.id)
    answers.save(applicant, age, "41")
    assert stage_of(applicant) == "Document Upload"


def test_conditions_choose_the_rule_and_the_first_matching_move_wins(driver, make_rule):
    opening, stages, city, age = driver
    q = stages["Questionnaire"]
    make_rule(
        q,
        Trigger.STAGE_COMPLETED,
        move_to(stages["Waiting List"]),
        name="Porto waits",
        conditions=[{"question": city.public_id, "op": "equals", "value": "Porto"}],
    )
    make_rule(
        q,
        Trigger.STAGE_COMPLETED,
        move_to(stages["Final Review"]),
        name="Adults",
        conditions=[{"question": age.public_id, "op": "greater", "value": "17"}],
    )
    make_rule(q, Trigger.STAGE_COMPLETED, move_to(stages["Document Upload"]), name="Everyone")
    lisbon = apply(opening, city, age, "a@example.net", "Lisbon", "30")
    porto = apply(opening, city, age, "b@example.net", "Porto", "30")
    young = apply(opening, city, age, "c@example.net", "Lisbon", "16")
    assert stage_of(lisbon) == "Final Review"
    assert stage_of(porto) == "Waiting List"
    assert stage_of(young) == "Document Upload"
    # Only the rule that moved them fired: the rest never ran.
    assert types(porto).count("rule.fired") == 1


def test_any_of_the_conditions(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(
        stages["Questionnaire"],
        Trigger.ANSWERS_SUBMITTED,
        move_to(stages["Final Review"]),
        match="any",
        conditions=[
            {"question": city.public_id, "op": "equals", "value": "Porto"},
            {"question": age.public_id, "op": "less", "value": "18"},
        ],
    )
    assert stage_of(apply(opening, city, age, "a@example.net", "Lisbon", "16")) == "Final Review"
    assert stage_of(apply(opening, city, age, "b@example.net", "Lisbon", "30")) == "Questionnaire"


def test_a_condition_on_an_archived_question_is_never_true(driver, make_rule, make_question):
    opening, stages, city, age = driver
    licence = make_question(stages["Questionnaire"], "licence", QuestionType.YES_NO)
    rule = make_rule(
        stages["Questionnaire"],
        Trigger.STAGE_COMPLETED,
        move_to(stages["Final Review"]),
        conditions=[{"question": licence.public_id, "op": "empty", "value": None}],
    )
    assert stage_of(apply(opening, city, age, "a@example.net")) == "Final Review"
    # Off the form, nobody can answer it: "is empty" would hold for every new applicant.
    licence.archived_at = utcnow()
    db.session.commit()
    assert stage_of(apply(opening, city, age, "b@example.net")) == "Questionnaire"
    questions = {licence.public_id: licence}
    assert "removed from the form" in conditions.describe(rule.conditions[0], questions)


def test_a_drag_fires_the_entered_stages_rules_and_their_webhook_events(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(
        stages["Ready to Drive"],
        Trigger.STAGE_ENTERED,
        [{"type": "webhook", "event": "driver.approved"}],
        name="Tell the account system",
    )
    applicant = apply(opening, city, age)
    actor = member(opening.org_id)
    moves.move(actor, applicant.public_id, stages["Ready to Drive"].public_id)
    emitted = db.session.scalar(select(Event).where(Event.type == "driver.approved"))
    assert timeline.describe(emitted.type, emitted.payload) == (
        "Webhook event driver.approved emitted"
    )
    assert emitted.applicant_id == applicant.id
    assert emitted.actor_type == "rule"
    assert emitted.payload["stage"] == "Ready to Drive"


def test_a_bulk_move_fires_entry_rules_for_each_applicant(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(stages["Final Review"], Trigger.STAGE_ENTERED, move_to(stages["Ready to Drive"]))
    people = [apply(opening, city, age, f"p{i}@example.net") for i in range(3)]
    actor = member(opening.org_id)
    result = bulk.start(
        actor,
        opening,
        action="move",
        selected=[p.public_id for p in people],
        stage_id=stages["Final Review"].public_id,
    )
    assert result is not None
    assert [stage_of(p) for p in people] == ["Ready to Drive"] * 3


def test_a_chain_of_automatic_moves_stops_at_ten_and_says_so(driver, make_rule):
    opening, stages, city, age = driver
    a, b = stages["Final Review"], stages["Waiting List"]
    make_rule(a, Trigger.STAGE_ENTERED, move_to(b), name="Ping")
    make_rule(b, Trigger.STAGE_ENTERED, move_to(a), name="Pong")
    applicant = apply(opening, city, age)
    moves.move(member(opening.org_id), applicant.public_id, a.public_id)
    kinds = types(applicant)
    # The drag, then ten automatic moves, then the event that stopped the chain.
    assert kinds.count("applicant.moved") == 11
    assert kinds[-1] == "rule.chain_capped"
    capped = db.session.scalar(select(Event).where(Event.type == "rule.chain_capped"))
    assert capped.payload["limit"] == rules.MAX_CHAIN


def test_an_outside_event_moves_only_on_its_own_type(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(
        stages["Ready to Drive"],
        Trigger.EXTERNAL_EVENT,
        move_to(stages["Account Creation Failures"]),
        event_type="account_creation.failed",
    )
    applicant = apply(opening, city, age)
    moves.move(member(opening.org_id), applicant.public_id, stages["Ready to Drive"].public_id)
    applicant = db.session.get(Applicant, applicant.id)
    assert not rules.external_event(
        applicant, "account_creation.succeeded", {}, actor=Actor.system()
    )
    db.session.commit()
    assert stage_of(applicant) == "Ready to Drive"
    applicant = db.session.get(Applicant, applicant.id)
    assert rules.external_event(
        applicant, "account_creation.failed", {"code": "E42"}, actor=Actor.system()
    )
    db.session.commit()
    assert stage_of(applicant) == "Account Creation Failures"
    received = db.session.scalars(
        select(Event).where(Event.type == "applicant.external_event").order_by(Event.id)
    ).all()
    assert [e.payload["event_type"] for e in received] == [
        "account_creation.succeeded",
        "account_creation.failed",
    ]


def rule_moves(applicant: Applicant) -> int:
    return db.session.scalar(
        select(func.count()).where(
            Event.applicant_id == applicant.id,
            Event.type == "applicant.moved",
            Event.actor_type == "rule",
        )
    )


def test_outside_events_stop_moving_an_applicant_round_a_loop(driver, make_rule, monkeypatch):
    """A receiver that answers every webhook with an event, and rules that answer each event
    with a move: nothing but the limit would stop it."""
    monkeypatch.setattr(rules, "LOOP_LIMIT", 4)
    opening, stages, city, age = driver
    a, b = stages["Ready to Drive"], stages["Account Creation Failures"]
    for source, target in ((a, b), (b, a)):
        make_rule(source, Trigger.EXTERNAL_EVENT, move_to(target), event_type="account.retry")
    applicant = apply(opening, city, age)
    moves.move(member(opening.org_id), applicant.public_id, a.public_id)
    moved = []
    for _ in range(6):
        applicant = db.session.get(Applicant, applicant.id)
        moved.append(rules.external_event(applicant, "account.retry", {}, actor=Actor.system()))
        db.session.commit()
    assert moved == [True] * 4 + [False] * 2
    assert rule_moves(applicant) == 4
    stopped = db.session.scalars(select(Event).where(Event.type == "rule.loop_stopped")).all()
    assert len(stopped) == 2
    assert timeline.describe(stopped[0].type, stopped[0].payload).startswith(
        "Automatic moves stopped after 4 in 24 hours"
    )
    # A person's move, and the rules it sets off, are never held back.
    make_rule(stages["Final Review"], Trigger.STAGE_ENTERED, move_to(b))
    moves.move(member(opening.org_id), applicant.public_id, stages["Final Review"].public_id)
    assert stage_of(applicant) == b.name


def test_timers_stop_moving_an_applicant_round_a_loop_for_a_day(
    driver, make_rule, make_applicant, monkeypatch
):
    monkeypatch.setattr(rules, "LOOP_LIMIT", 5)
    opening, stages, *_ = driver
    a, b = stages["Final Review"], stages["Waiting List"]
    for source, target in ((a, b), (b, a)):
        make_rule(source, Trigger.TIME_IN_STAGE, move_to(target), delay_minutes=1)
    actor = member(opening.org_id)
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = make_applicant(opening, stages["Document Upload"])
        moves.move(actor, applicant.public_id, a.public_id)
        for _ in range(8):
            clock.shift(timedelta(minutes=1))
            rules.sweep()
        assert rule_moves(applicant) == 5
        assert types(applicant)[-2:] == ["rule.fired", "rule.loop_stopped"]
        assert not rules.any_due()  # it stays put: no stage entered, no timer set
        # A day on, a recruiter sends them round again, and the rules may move them again.
        clock.shift(rules.LOOP_WINDOW)
        moves.move(actor, applicant.public_id, a.public_id)
        clock.shift(timedelta(minutes=1))
        assert rules.sweep() == (1, 1)
    assert rule_moves(applicant) == 6


def test_deleting_a_stage_fires_the_rules_of_the_stage_its_applicants_go_to(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(stages["Final Review"], Trigger.STAGE_ENTERED, move_to(stages["Ready to Drive"]))
    applicant = apply(opening, city, age)
    owner = member(opening.org_id)
    openings.delete_stage(
        owner,
        opening.public_id,
        stages["Questionnaire"].public_id,
        move_to=stages["Final Review"].public_id,
    )
    assert stage_of(applicant) == "Ready to Drive"


def test_a_change_that_rolls_back_fires_nothing(driver, make_rule, make_applicant):
    opening, stages, city, _age = driver
    make_rule(stages["Questionnaire"], Trigger.ANSWERS_SUBMITTED, move_to(stages["Final Review"]))
    applicant = make_applicant(opening, stages["Questionnaire"])
    answers.save(applicant, city, "Porto", commit=False)
    db.session.rollback()
    assert stage_of(applicant) == "Questionnaire"
    assert types(applicant) == []


# --- timers ------------------------------------------------------------------------------------


@pytest.fixture
def waiting(driver, make_rule):
    """Questionnaire not completed in 30 days → Waiting List."""
    opening, stages, _city, _age = driver
    rule = make_rule(
        stages["Questionnaire"],
        Trigger.TIME_IN_STAGE,
        move_to(stages["Waiting List"]),
        name="Not completed in 30 days",
        delay_minutes=30 * 24 * 60,
        only_if_incomplete=True,
    )
    return opening, stages, rule


def timers() -> list[Timer]:
    db.session.expire_all()
    return list(db.session.scalars(select(Timer).order_by(Timer.id)))


def test_a_time_rule_sets_a_timer_at_entry_and_fires_when_due(waiting, make_applicant):
    opening, stages, _rule = waiting
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        applicant = make_applicant(opening, stages["Final Review"])
        moves.move(member(opening.org_id), applicant.public_id, stages["Questionnaire"].public_id)
        (timer,) = timers()
        assert timer.due_at == start + timedelta(days=30)
        assert timer.stage_entry == 2
        assert not rules.any_due()
        clock.shift(timedelta(days=30) - timedelta(seconds=1))
        assert rules.run_due() == (0, 0)
        clock.shift(timedelta(seconds=2))
        assert rules.any_due()
        assert rules.sweep() == (1, 1)
    assert stage_of(applicant) == "Waiting List"
    (timer,) = timers()
    assert (timer.state, timer.outcome) == (TimerState.DONE, "fired")
    moved = db.session.scalars(
        select(Event).where(Event.type == "applicant.moved").order_by(Event.id.desc())
    ).first()
    assert moved.payload["why"] == "30 days in stage"
    assert not rules.any_due()


def test_a_rule_that_came_due_while_rejected_acts_once_restored(waiting, make_applicant):
    opening, stages, _rule = waiting
    actor = member(opening.org_id)
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = make_applicant(opening, stages["Final Review"])
        moves.move(actor, applicant.public_id, stages["Questionnaire"].public_id)
        moves.reject(actor, applicant.public_id, "On hold")
        clock.shift(timedelta(days=31))
        assert rules.sweep() == (1, 0)  # due while rejected: nothing to do then
        clock.shift(timedelta(days=1))
        moves.restore(actor, applicant.public_id)
        assert rules.sweep() == (1, 1)
    assert stage_of(applicant) == "Waiting List"
    assert [(t.state, t.outcome) for t in timers()] == [(TimerState.DONE, "fired")]


def test_a_timer_of_an_earlier_stage_entry_does_nothing(waiting, make_applicant):
    opening, stages, _rule = waiting
    actor = member(opening.org_id)
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = make_applicant(opening, stages["Final Review"])
        q = stages["Questionnaire"].public_id
        moves.move(actor, applicant.public_id, q)
        clock.shift(timedelta(days=10))
        moves.move(actor, applicant.public_id, stages["Final Review"].public_id)
        moves.move(actor, applicant.public_id, q)  # back again: a new entry, a new timer
        clock.shift(timedelta(days=21))
        assert rules.sweep() == (1, 0)
        assert stage_of(applicant) == "Questionnaire"
        clock.shift(timedelta(days=10))
        assert rules.sweep() == (1, 1)
    assert stage_of(applicant) == "Waiting List"
    assert [t.outcome for t in timers()] == ["stale", "fired"]


def test_only_if_incomplete_leaves_a_completed_stage_alone(waiting, make_applicant, driver):
    opening, _stages, _rule = waiting
    _, _, city, age = driver
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = apply(opening, city, age)  # created in the Questionnaire, completed
        assert len(timers()) == 1
        clock.shift(timedelta(days=31))
        assert rules.sweep() == (1, 0)
    assert stage_of(applicant) == "Questionnaire"
    assert timers()[0].outcome == "completed"


def test_a_claimed_timer_is_not_claimed_again_until_its_lease_runs_out(waiting, make_applicant):
    opening, stages, _rule = waiting
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = make_applicant(opening, stages["Final Review"])
        moves.move(member(opening.org_id), applicant.public_id, stages["Questionnaire"].public_id)
        clock.shift(timedelta(days=31))
        first, claimed = rules.claim()
        assert len(claimed) == 1
        assert rules.claim()[1] == []
        # The first worker dies; after the lease another takes the timer and fires it.
        clock.shift(rules.TIMER_LEASE + timedelta(seconds=1))
        second, again = rules.claim()
        assert [t.id for t in again] == [claimed[0].id]
        # The dead worker's claim is gone: finishing with it writes nothing.
        assert rules._run_chunk(first, again) == 0
        assert stage_of(applicant) == "Questionnaire"
        assert rules._run_chunk(second, again) == 1
    assert stage_of(applicant) == "Waiting List"
    assert types(applicant).count("rule.fired") == 1


def test_a_failing_timer_is_marked_and_the_others_still_fire(waiting, make_applicant, monkeypatch):
    opening, stages, _rule = waiting
    actor = member(opening.org_id)
    with time_machine.travel(utcnow(), tick=False) as clock:
        people = [make_applicant(opening, stages["Final Review"], f"P{i}") for i in range(3)]
        for person in people:
            moves.move(actor, person.public_id, stages["Questionnaire"].public_id)
        clock.shift(timedelta(days=31))
        bad = people[1].id
        real = rules._evaluate

        def evaluate(timer, applicant, rule):
            if applicant is not None and applicant.id == bad:
                raise RuntimeError("boom")
            return real(timer, applicant, rule)

        monkeypatch.setattr(rules, "_evaluate", evaluate)
        assert rules.run_due() == (3, 2)
    assert [stage_of(p) for p in people] == ["Waiting List", "Questionnaire", "Waiting List"]
    failed = [t for t in timers() if t.state == TimerState.FAILED]
    assert len(failed) == 1 and "boom" in failed[0].error


def test_two_workers_sweeping_at_once_fire_each_timer_once(waiting, make_applicant, app, backend):
    if backend != "postgres":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    opening, stages, _rule = waiting
    actor = member(opening.org_id)
    count = 60
    with time_machine.travel(utcnow(), tick=False) as clock:
        people = [make_applicant(opening, stages["Final Review"], f"P{i}") for i in range(count)]
        for person in people:
            moves.move(actor, person.public_id, stages["Questionnaire"].public_id)
        clock.shift(timedelta(days=31))
        claims: list[set[int]] = []
        fired: list[int] = []
        barrier = threading.Barrier(2)

        def work():
            with app.app_context():
                barrier.wait()  # both claim at the same moment
                token, mine = rules.claim(limit=40)
                claims.append({t.id for t in mine})
                barrier.wait()
                fired.append(rules._run_chunk(token, mine) if mine else 0)
                db.session.remove()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    first, second = claims
    assert not first & second
    assert len(first | second) == count  # the second took what the first left, not nothing
    assert sum(fired) == count
    moved_by_rule = db.session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.type == "applicant.moved", Event.actor_type == "rule")
    )
    assert moved_by_rule == count


def test_a_deleted_target_stage_skips_the_move_and_says_why(driver, make_rule):
    opening, stages, city, age = driver
    make_rule(stages["Questionnaire"], Trigger.STAGE_COMPLETED, move_to(stages["Document Upload"]))
    owner = member(opening.org_id)
    assert owner.user_id == owner_of(db.session.get(Org, opening.org_id)).id
    openings.delete_stage(owner, opening.public_id, stages["Document Upload"].public_id)
    applicant = apply(opening, city, age)
    assert stage_of(applicant) == "Questionnaire"
    skipped = db.session.scalar(select(Event).where(Event.type == "rule.action_skipped"))
    assert skipped.payload["reason"] == "its target stage was deleted"


@pytest.fixture
def welcome(driver):
    opening = driver[0]
    template = EmailTemplate(
        org_id=opening.org_id,
        name="Welcome",
        subject="Welcome to {{ opening_name }}",
        body="Hi {{ applicant_name }}, you are in {{ stage_name }}: {{ portal_link }}",
    )
    db.session.add(template)
    db.session.commit()
    return template


def email_action(template) -> list[dict]:
    return [{"type": "email", "template": template.public_id}]


def test_a_stage_entry_email_goes_to_applicants_created_in_that_stage(driver, make_rule, welcome):
    opening, stages, city, age = driver
    make_rule(stages["Questionnaire"], Trigger.STAGE_ENTERED, email_action(welcome))
    applicant = apply(opening, city, age)
    mail = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.payload["template"].as_string() == welcome.public_id
        )
    )
    assert mail.payload["to"] == applicant.email
    assert mail.payload["subject"] == "Welcome to Delivery Driver"
    assert "you are in Questionnaire: http://" in mail.payload["text"]


def test_a_timer_sends_its_email_from_a_worker_without_a_request(
    driver, make_rule, welcome, make_applicant, app
):
    opening, stages, *_ = driver
    make_rule(
        stages["Final Review"],
        Trigger.TIME_IN_STAGE,
        email_action(welcome),
        delay_minutes=60,
    )
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        applicant = make_applicant(opening, stages["Document Upload"])
        moves.move(member(opening.org_id), applicant.public_id, stages["Final Review"].public_id)
        clock.shift(timedelta(minutes=61))
        results = []

        def worker():  # a new thread starts with no app or request context, like an RQ job
            with app.app_context():
                results.append(rules.sweep())
                db.session.remove()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(30)
    assert results == [(1, 1)]
    mail = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert mail.payload["to"] == applicant.email
    assert "you are in Final Review: http://" in mail.payload["text"]


def test_a_new_time_rule_counts_from_when_those_already_there_entered(driver, make_applicant):
    from plutomi.services.rule_editing import ActionInput, RuleInput, create, update

    opening, stages, *_ = driver
    review = stages["Final Review"]
    owner = member(opening.org_id)
    now = utcnow()
    old, recent = (make_applicant(opening, review, name) for name in ("Old", "Recent"))
    old.entered_stage_at = now - timedelta(days=40)
    recent.entered_stage_at = now - timedelta(days=5)
    db.session.commit()
    data = RuleInput(
        name="Stuck in review",
        trigger=Trigger.TIME_IN_STAGE.value,
        delay_amount=30,
        delay_unit="days",
        actions=[ActionInput(type="move", stage=stages["Waiting List"].public_id)],
    )
    rule = create(owner, opening.public_id, review.public_id, data)
    due = {t.applicant_id: t.due_at for t in timers()}
    assert abs(due[old.id] - (now - timedelta(days=10))) < timedelta(seconds=1)
    assert abs(due[recent.id] - (now + timedelta(days=25))) < timedelta(seconds=1)
    # A shorter delay moves the pending timers.
    data.delay_amount = 3
    update(owner, opening.public_id, rule.public_id, data)
    due = {t.applicant_id: t.due_at for t in timers()}
    assert len(timers()) == 2
    assert abs(due[recent.id] - (now - timedelta(days=2))) < timedelta(seconds=1)
    assert rules.sweep() == (2, 2)
    assert stage_of(old) == stage_of(recent) == "Waiting List"


def test_saving_a_time_rule_again_does_not_act_twice_on_one_stay(driver, make_applicant):
    from plutomi.services.rule_editing import ActionInput, RuleInput, create, update

    opening, stages, *_ = driver
    review = stages["Final Review"]
    owner = member(opening.org_id)
    nudge = RuleInput(
        name="Nudge",
        trigger=Trigger.TIME_IN_STAGE.value,
        delay_amount=1,
        delay_unit="days",
        actions=[ActionInput(type="webhook", event="driver.nudged")],
    )
    applicant = make_applicant(opening, review)
    rule = create(owner, opening.public_id, review.public_id, nudge)
    with time_machine.travel(utcnow() + timedelta(days=2)):
        assert rules.sweep() == (1, 1)
        # Renamed, then turned off and on: the stay it acted on is not timed again.
        nudge.name = "Nudge drivers"
        update(owner, opening.public_id, rule.public_id, nudge)
        nudge.enabled = False
        update(owner, opening.public_id, rule.public_id, nudge)
        nudge.enabled = True
        update(owner, opening.public_id, rule.public_id, nudge)
        assert rules.sweep() == (0, 0)
    assert types(applicant).count("rule.fired") == 1
    fired = db.session.scalar(select(Event).where(Event.type == "rule.fired"))
    assert fired.payload["why"] == "1 day in stage"  # not "1 days"
    assert len(timers()) == 1
    # A new stay in the stage is timed as before.
    moves.move(owner, applicant.public_id, stages["Waiting List"].public_id)
    moves.move(owner, applicant.public_id, review.public_id)
    assert len(timers()) == 2


def test_two_due_timers_of_one_applicant_in_one_chunk_move_them_once(
    driver, make_rule, make_applicant
):
    opening, stages, *_ = driver
    review = stages["Final Review"]
    for days, target in ((30, "Waiting List"), (31, "Ready to Drive")):
        make_rule(review, Trigger.TIME_IN_STAGE, move_to(stages[target]), delay_minutes=days * 1440)
    with time_machine.travel(utcnow(), tick=False) as clock:
        applicant = make_applicant(opening, stages["Document Upload"])
        moves.move(member(opening.org_id), applicant.public_id, review.public_id)
        clock.shift(timedelta(days=32))
        assert rules.run_due() == (2, 1)
    assert stage_of(applicant) == "Waiting List"
    assert [t.outcome for t in timers()] == ["fired", "stale"]
    assert types(applicant).count("applicant.moved") == 2  # the drag, then the rule


def test_enter_many_writes_only_rows_that_still_hold_their_version(driver, make_applicant):
    opening, stages, *_ = driver
    kept, changed = (make_applicant(opening, stages["Questionnaire"], n) for n in ("A", "B"))
    target = stages["Final Review"]
    written = moves.enter_many(
        [
            moves.Entry(kept.id, kept.version, target.id, "m", kept.stage_entry + 1),
            moves.Entry(changed.id, changed.version - 1, target.id, "n", changed.stage_entry + 1),
        ]
    )
    db.session.commit()
    assert written == {kept.id}
    assert (stage_of(kept), stage_of(changed)) == ("Final Review", "Questionnaire")
    assert db.session.get(Applicant, kept.id).stage_entry == 2


def test_an_entry_rule_sending_them_back_to_the_deleted_stage_is_skipped(driver, make_rule):
    opening, stages, city, age = driver
    doomed, target = stages["Questionnaire"], stages["Final Review"]
    make_rule(target, Trigger.STAGE_ENTERED, move_to(doomed), name="Bounce back")
    applicant = apply(opening, city, age)
    owner = member(opening.org_id)
    moved = openings.delete_stage(owner, opening.public_id, doomed.public_id, target.public_id)
    assert moved == 1
    assert stage_of(applicant) == "Final Review"
    skipped = db.session.scalar(select(Event).where(Event.type == "rule.action_skipped"))
    assert skipped.payload["reason"] == "its target stage was deleted"


def test_the_sweep_job_runs_its_lanes_side_by_side_each_with_its_own_session(
    app, backend, monkeypatch
):
    from jobs import timers as timer_jobs

    lanes = timer_jobs.LANES if backend == "postgres" else 1
    ready = threading.Barrier(lanes, timeout=10)
    seen = []

    def sweep(budget_seconds: float) -> tuple[int, int]:
        ready.wait()  # every lane is running at once
        seen.append((threading.get_ident(), id(db.session())))
        return 3, 2

    monkeypatch.setattr(rules, "sweep", sweep)
    assert timer_jobs.sweep() == {"claimed": 3 * lanes, "fired": 2 * lanes}
    assert len({thread for thread, _ in seen}) == lanes
    assert len({session for _, session in seen}) == lanes


def test_a_lane_that_fails_fails_the_sweep_job(app, backend, monkeypatch):
    from jobs import timers as timer_jobs

    if backend != "postgres":
        pytest.skip("one lane on SQLite: the job's own thread raises as any job does")
    main = threading.get_ident()

    def sweep(budget_seconds: float) -> tuple[int, int]:
        if threading.get_ident() != main:
            raise RuntimeError("the database went away")
        return 1, 1

    monkeypatch.setattr(rules, "sweep", sweep)
    with pytest.raises(RuntimeError, match="went away"):
        timer_jobs.sweep()
