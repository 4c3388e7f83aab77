"""The rules engine: stages' rules firing on their triggers, and the timers of rules that wait.

Immediate triggers (stage entered, answers submitted, stage completed, an outside event) run
inside the transaction of the change that fires them, so an applicant who finishes a
questionnaire sees the next stage at once and a rolled-back change fires nothing. Rules are
evaluated in order; each matching rule sends its emails and webhook events, and the first
matching rule with a move moves the applicant and ends the evaluation (the applicant has left
the stage). Entering a stage by any path (the form, a drag, a bulk move, the API, a rule, a
timer) goes through moves.place or `created`, and so through `entered`; a chain of automatic
moves stops at MAX_CHAIN with an event saying so.

Time rules write a timer at stage entry, in the same transaction. `run_due` claims due timers
in batches (FOR UPDATE SKIP LOCKED on PostgreSQL, a claim token everywhere) and fires each one
only if the applicant is still in the very stage entry that set it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.orm import Session

from plutomi import ranks
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    EmailTemplate,
    Question,
    Rule,
    Stage,
    Timer,
    TimerState,
    Trigger,
    utcnow,
)
from plutomi.services import conditions
from plutomi.services.events import Actor, record_applicant

log = logging.getLogger(__name__)

MAX_CHAIN = 10
TIMER_BATCH = 500
TIMER_CHUNK = 100
TIMER_LEASE = timedelta(minutes=5)

WHY = {
    Trigger.STAGE_ENTERED: "entered the stage",
    Trigger.ANSWERS_SUBMITTED: "answers submitted",
    Trigger.STAGE_COMPLETED: "stage completed",
    Trigger.TIME_IN_STAGE: "time in stage reached",
    Trigger.EXTERNAL_EVENT: "outside event",
}


def rule_actor(rule: Rule) -> Actor:
    return Actor("rule", rule.id)


# --- what a transaction has looked up ---------------------------------------------------------
# Rules, stages, questions and templates change rarely; one transaction that moves many
# applicants (a bulk move, a batch of timers) looks each up once. The cache lives in the
# session and ends with the transaction, so an edit is seen by the next one.


def _cache() -> dict[str, dict]:
    return db.session().info.setdefault("rules_cache", {})


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *args) -> None:
    session.info.pop("rules_cache", None)


def stage_rules(stage_id: int) -> list[Rule]:
    """The enabled rules of a stage, in order."""
    cache = _cache().setdefault("stage", {})
    if stage_id not in cache:
        cache[stage_id] = list(
            db.session.scalars(
                select(Rule)
                .where(Rule.stage_id == stage_id, Rule.enabled.is_(True))
                .order_by(Rule.position, Rule.id)
            )
        )
    return cache[stage_id]


def questions_of(opening_id: int) -> dict[str, Question]:
    """The opening's questions by public id (archived ones too: their answers still count)."""
    cache = _cache().setdefault("questions", {})
    if opening_id not in cache:
        cache[opening_id] = {
            q.public_id: q
            for q in db.session.scalars(select(Question).where(Question.opening_id == opening_id))
        }
    return cache[opening_id]


def _stages_of(opening_id: int) -> dict[str, Stage]:
    cache = _cache().setdefault("stages", {})
    if opening_id not in cache:
        cache[opening_id] = {
            s.public_id: s
            for s in db.session.scalars(select(Stage).where(Stage.opening_id == opening_id))
        }
    return cache[opening_id]


def _template(org_id: int, public_id: str) -> EmailTemplate | None:
    cache = _cache().setdefault("templates", {})
    key = (org_id, public_id)
    if key not in cache:
        cache[key] = db.session.scalar(
            select(EmailTemplate).where(
                EmailTemplate.org_id == org_id, EmailTemplate.public_id == public_id
            )
        )
    return cache[key]


def _bottom_rank(stage: Stage) -> str:
    """A rank after the last active card of the stage; kept per transaction, so a batch that
    moves many applicants into one stage reads the column's end once."""
    cache = _cache().setdefault("bottom", {})
    last = cache.get(stage.id)
    if last is None:
        last = db.session.scalar(
            select(Applicant.rank)
            .where(Applicant.stage_id == stage.id, Applicant.status == ApplicantStatus.ACTIVE)
            .order_by(Applicant.rank.desc())
            .limit(1)
        )
    rank = ranks.after(last)
    cache[stage.id] = rank
    return rank


def answers_of(applicant_ids: Iterable[int]) -> dict[int, dict[int, Any]]:
    """Stored answers by applicant id, then question id: one query for many applicants."""
    ids = list(applicant_ids)
    found: dict[int, dict[int, Any]] = {id_: {} for id_ in ids}
    for start in range(0, len(ids), 1000):
        rows = db.session.execute(
            select(Answer.applicant_id, Answer.question_id, Answer.value).where(
                Answer.applicant_id.in_(ids[start : start + 1000])
            )
        )
        for applicant_id, question_id, value in rows:
            found[applicant_id][question_id] = value
    return found


# --- firing -----------------------------------------------------------------------------------


class _Context:
    """One evaluation: the applicant's answers are read once, and only if a rule needs them."""

    def __init__(self, applicant: Applicant, chain: int):
        self.applicant = applicant
        self.chain = chain
        self._answers: dict[int, Any] | None = None

    def answers(self) -> dict[int, Any]:
        if self._answers is None:
            self._answers = answers_of([self.applicant.id])[self.applicant.id]
        return self._answers


def _matches(rule: Rule, context: _Context) -> bool:
    if not rule.conditions:
        return True
    return conditions.matches(
        rule.conditions,
        rule.match,
        context.answers(),
        questions_of(rule.opening_id),
    )


def _payload(rule: Rule, why: str) -> dict[str, Any]:
    return {"rule_name": rule.name, "rule_id": rule.public_id, "why": why}


def _skip(rule: Rule, applicant: Applicant, action: dict, reason: str, why: str) -> None:
    record_applicant(
        "rule.action_skipped",
        applicant,
        actor=rule_actor(rule),
        action=action.get("type"),
        reason=reason,
        **_payload(rule, why),
    )


def _send_email(rule: Rule, applicant: Applicant, stage: Stage, action: dict, why: str) -> None:
    from plutomi.services import email_templates  # the templates' own module renders and queues

    template = _template(applicant.org_id, action.get("template", ""))
    if template is None:
        _skip(rule, applicant, action, "its email template was deleted", why)
        return
    email_templates.send(template, applicant, actor=rule_actor(rule), stage=stage, reason=why)


def _emit(rule: Rule, applicant: Applicant, stage: Stage, action: dict, why: str) -> None:
    """A webhook event of the org's own type: an event row, which webhook delivery fans out."""
    record_applicant(
        action["event"],
        applicant,
        actor=rule_actor(rule),
        stage=stage.name,
        stage_id=stage.public_id,
        custom=True,
        **_payload(rule, why),
    )


def _move(rule: Rule, context: _Context, stage: Stage, action: dict, why: str) -> bool:
    from plutomi.services import moves  # moves calls back into entered(): import at use

    applicant = context.applicant
    target = _stages_of(rule.opening_id).get(action.get("stage", ""))
    if target is None:
        _skip(rule, applicant, action, "its target stage was deleted", why)
        return False
    if target.id == stage.id:
        return False
    if context.chain >= MAX_CHAIN:
        record_applicant(
            "rule.chain_capped",
            applicant,
            actor=rule_actor(rule),
            limit=MAX_CHAIN,
            stage=stage.name,
            to_stage=target.name,
            **_payload(rule, why),
        )
        return False
    moved = moves.place(
        applicant,
        stage,
        target,
        _bottom_rank(target),
        actor=rule_actor(rule),
        version=applicant.version,
        chain=context.chain + 1,
        reason="rule",
        **_payload(rule, why),
    )
    return moved is not None


def _run(rule: Rule, context: _Context, stage: Stage, why: str) -> bool:
    """Carry out one matching rule: its event, its emails and webhook events, then its move.
    True when the applicant moved."""
    applicant = context.applicant
    record_applicant(
        "rule.fired",
        applicant,
        actor=rule_actor(rule),
        trigger=rule.trigger,
        stage=stage.name,
        **_payload(rule, why),
    )
    moving = None
    for action in rule.actions:
        kind = action.get("type")
        if kind == "move":
            moving = moving or action
        elif kind == "email":
            _send_email(rule, applicant, stage, action, why)
        elif kind == "webhook":
            _emit(rule, applicant, stage, action, why)
    return moving is not None and _move(rule, context, stage, moving, why)


def _fire(
    applicant: Applicant,
    stage: Stage,
    rules: list[Rule],
    chain: int,
    why: str,
) -> bool:
    context = _Context(applicant, chain)
    # In order; the first rule that moves the applicant ends it (they have left the stage).
    return any(_matches(rule, context) and _run(rule, context, stage, why) for rule in rules)


def fire(
    applicant: Applicant,
    trigger: Trigger,
    *,
    event_type: str | None = None,
    chain: int = 0,
) -> bool:
    """Run the rules of the applicant's current stage for an immediate trigger, in the
    caller's transaction. True when a rule moved the applicant on."""
    if applicant.status != ApplicantStatus.ACTIVE:
        return False
    rules = [
        r
        for r in stage_rules(applicant.stage_id)
        if r.trigger == trigger and (event_type is None or r.event_type == event_type)
    ]
    if not rules:
        return False
    why = f"outside event {event_type}" if event_type else WHY[trigger]
    return _fire(applicant, applicant.stage, rules, chain, why)


def entered(applicant: Applicant, stage: Stage, *, entry: int, chain: int = 0) -> bool:
    """An applicant entered a stage (entry counts their stage entries): set the timers of its
    time rules and run its stage-entered rules. True when a rule moved them on."""
    rules = stage_rules(stage.id)
    if not rules:
        return False
    now = utcnow()
    for rule in rules:
        if rule.trigger == Trigger.TIME_IN_STAGE and rule.delay_minutes:
            db.session.add(
                Timer(
                    org_id=rule.org_id,
                    applicant_id=applicant.id,
                    rule_id=rule.id,
                    stage_entry=entry,
                    due_at=now + timedelta(minutes=rule.delay_minutes),
                )
            )
    on_entry = [r for r in rules if r.trigger == Trigger.STAGE_ENTERED]
    return bool(on_entry) and _fire(applicant, stage, on_entry, chain, WHY[Trigger.STAGE_ENTERED])


def created(applicant: Applicant, stage: Stage, *, answered: bool) -> None:
    """A new applicant in its first stage, its answers written and the stage completed (the
    form checks every required question): entry rules, then answer rules, then completion."""
    if entered(applicant, stage, entry=applicant.stage_entry or 1):
        return
    if answered and fire(applicant, Trigger.ANSWERS_SUBMITTED):
        return
    fire(applicant, Trigger.STAGE_COMPLETED)


def answered(applicant: Applicant, *, completed: bool) -> bool:
    """Answers were saved; completed: they were the stage's last required ones."""
    if fire(applicant, Trigger.ANSWERS_SUBMITTED):
        return True
    return completed and fire(applicant, Trigger.STAGE_COMPLETED)


def external_event(
    applicant: Applicant, event_type: str, data: dict[str, Any] | None, *, actor: Actor
) -> bool:
    """An outside system reported an event for the applicant: record it, then run the rules
    of their stage that wait for its type. The caller commits."""
    record_applicant(
        "applicant.external_event", applicant, actor=actor, event_type=event_type, data=data or {}
    )
    return fire(applicant, Trigger.EXTERNAL_EVENT, event_type=event_type)


# --- timers -----------------------------------------------------------------------------------


def _claimable(now):
    return or_(
        and_(Timer.state == TimerState.PENDING, Timer.due_at <= now),
        # A worker died mid-batch: its lease ran out, so the timer is free again.
        and_(Timer.state == TimerState.CLAIMED, Timer.lease_until < now),
    )


def any_due() -> bool:
    """One probe of the (state, due_at) index: the sweep's cost with nothing due."""
    now = utcnow()
    return db.session.scalar(select(Timer.id).where(_claimable(now)).limit(1)) is not None


def claim(limit: int = TIMER_BATCH) -> tuple[str, list[Timer]]:
    """Take up to limit due timers; two workers never take the same one."""
    now = utcnow()
    token = secrets.token_hex(16)
    due = select(Timer.id).where(_claimable(now)).order_by(Timer.due_at).limit(limit)
    if db.engine.dialect.name == "postgresql":
        # Workers sweeping at once each take other rows instead of queueing on the same ones.
        due = due.with_for_update(skip_locked=True)
    db.session.execute(
        update(Timer)
        .where(Timer.id.in_(due.scalar_subquery()), _claimable(now))
        .values(state=TimerState.CLAIMED, claim_token=token, lease_until=now + TIMER_LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    timers = list(
        db.session.scalars(select(Timer).where(Timer.claim_token == token).order_by(Timer.due_at))
    )
    return token, timers


def _evaluate(timer: Timer, applicant: Applicant | None, rule: Rule | None) -> str:
    """Fire one due timer if its stage entry is still current; returns its outcome."""
    if (
        applicant is None
        or rule is None
        or not rule.enabled
        or rule.trigger != Trigger.TIME_IN_STAGE
        or applicant.status != ApplicantStatus.ACTIVE
        or applicant.stage_id != rule.stage_id
        or applicant.stage_entry != timer.stage_entry
    ):
        return "stale"
    if rule.only_if_incomplete and applicant.stage_completed_at is not None:
        return "completed"
    context = _Context(applicant, 0)
    if not _matches(rule, context):
        return "no_match"
    days = (rule.delay_minutes or 0) / (24 * 60)
    why = f"{days:g} days in stage" if days >= 1 else f"{rule.delay_minutes} minutes in stage"
    _run(rule, context, applicant.stage, why)
    return "fired"


def _finish(token: str, outcomes: dict[int, str], error: str | None = None) -> bool:
    """Mark timers done with their outcomes, only while this claim still holds them."""
    by_outcome: dict[str, list[int]] = {}
    for timer_id, outcome in outcomes.items():
        by_outcome.setdefault(outcome, []).append(timer_id)
    now = utcnow()
    finished = 0
    for outcome, ids in by_outcome.items():
        state = TimerState.FAILED if outcome == "failed" else TimerState.DONE
        result = db.session.execute(
            update(Timer)
            .where(Timer.id.in_(ids), Timer.claim_token == token, Timer.state == TimerState.CLAIMED)
            .values(state=state, outcome=outcome, done_at=now, lease_until=None, error=error)
            .execution_options(synchronize_session=False)
        )
        finished += result.rowcount
    return finished == len(outcomes)


def _run_chunk(token: str, timers: list[Timer]) -> int:
    """Fire a chunk of timers in one transaction; returns how many fired (0, with nothing
    written, when the claim was lost meanwhile)."""
    applicants = {
        a.id: a
        for a in db.session.scalars(
            select(Applicant).where(Applicant.id.in_([t.applicant_id for t in timers]))
        )
    }
    rule_ids = {t.rule_id for t in timers}
    rules = {r.id: r for r in db.session.scalars(select(Rule).where(Rule.id.in_(rule_ids)))}
    outcomes = {}
    # Events and new timers are inserted together at commit, not one round trip each.
    with db.session.no_autoflush:
        for timer in timers:
            outcomes[timer.id] = _evaluate(
                timer, applicants.get(timer.applicant_id), rules.get(timer.rule_id)
            )
    if not _finish(token, outcomes):
        # Our lease ran out and another worker holds some of these now: it does them.
        db.session.rollback()
        return 0
    db.session.commit()
    return sum(1 for outcome in outcomes.values() if outcome == "fired")


def run_due(limit: int = TIMER_BATCH) -> tuple[int, int]:
    """Claim and evaluate one batch of due timers; returns (claimed, fired)."""
    token, timers = claim(limit)
    fired = 0
    ids = [t.id for t in timers]
    for start in range(0, len(ids), TIMER_CHUNK):
        chunk_ids = ids[start : start + TIMER_CHUNK]
        chunk = list(db.session.scalars(select(Timer).where(Timer.id.in_(chunk_ids))))
        try:
            fired += _run_chunk(token, chunk)
        except Exception:
            # One bad timer must not hold up the rest: redo the chunk one timer at a time and
            # mark the one that fails, with its error, for the admin page.
            db.session.rollback()
            log.exception("timer chunk failed; retrying its timers one by one")
            for timer_id in chunk_ids:
                fired += _run_one(token, timer_id)
    return len(timers), fired


def _run_one(token: str, timer_id: int) -> int:
    timer = db.session.get(Timer, timer_id)
    if timer is None or timer.claim_token != token:
        return 0
    try:
        return _run_chunk(token, [timer])
    except Exception as exc:
        db.session.rollback()
        log.exception("timer %s failed", timer_id)
        _finish(token, {timer_id: "failed"}, f"{type(exc).__name__}: {exc}"[:2000])
        db.session.commit()
        return 0


def sweep(budget_seconds: float = 50.0) -> tuple[int, int]:
    """Evaluate due timers batch after batch until none are due or the budget is spent.
    Returns (claimed, fired); the caller re-enqueues itself when the budget ran out."""
    started = time.monotonic()
    claimed = fired = 0
    while time.monotonic() - started < budget_seconds:
        if not any_due():
            break
        got, moved = run_due()
        claimed += got
        fired += moved
        if not got:
            break
    return claimed, fired
