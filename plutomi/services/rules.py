"""The rules engine: stages' rules firing on their triggers, and the timers of rules that wait.

Immediate triggers (stage entered, answers submitted, stage completed, an outside event) run
inside the transaction of the change that fires them, so an applicant who finishes a
questionnaire sees the next stage at once and a rolled-back change fires nothing. Rules are
evaluated in order; each matching rule sends its emails and webhook events, and the first
matching rule with a move moves the applicant and ends the evaluation (the applicant has left
the stage). Entering a stage by any path (the form, a drag, a bulk move, the API, a rule, a
timer) goes through moves.place or `created`, and so through `entered`; a chain of automatic
moves stops at MAX_CHAIN with an event saying so. A chain begun by no person (a due timer, an
outside event) may not move an applicant the rules have moved LOOP_LIMIT times in LOOP_WINDOW:
rules that send applicants round in a circle, a timer or an outside system closing it, would
otherwise move them (and email them) forever.

Time rules write a timer at stage entry, in the same transaction. `run_due` claims due timers
in batches (FOR UPDATE SKIP LOCKED on PostgreSQL, a claim token everywhere) and fires each one
only if the applicant is still in the very stage entry that set it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from plutomi import ranks
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    EmailTemplate,
    Event,
    Opening,
    Question,
    Rule,
    Stage,
    Timer,
    TimerState,
    Trigger,
    utcnow,
)
from plutomi.models.base import UTCDateTime
from plutomi.services import conditions, inserts, moves
from plutomi.services.display import delay_text
from plutomi.services.events import Actor, applicant_row, record_applicant
from plutomi.services.lookups import among, inline

log = logging.getLogger(__name__)

MAX_CHAIN = 10
LOOP_LIMIT = 25
LOOP_WINDOW = timedelta(hours=24)
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


# A stage's rules, one a row, then its questions (joined_stages()): joining both at once would
# make a row per pair.
_PART = union_all(select(inline(1).label("n")), select(inline(2).label("n"))).subquery("part")


def joined_stages(query: Select, questions: ColumnElement) -> Select:
    """query, of an opening, joined with the opening's stages, their enabled rules and their
    live questions that meet the condition `questions`: each row ends with (stage, rule,
    question), None where missing; a stage's rows are its rules in order, then its questions
    in order (for with_kept_stages())."""
    enabled = and_(Rule.stage_id == Stage.id, Rule.enabled.is_(True))
    live = and_(Question.stage_id == Stage.id, Question.archived_at.is_(None), questions)
    return (
        query.outerjoin(Stage, Stage.opening_id == Opening.id)
        .join(_PART, true())
        .outerjoin(Rule, and_(_PART.c.n == inline(1), enabled))
        .outerjoin(Question, and_(_PART.c.n == inline(2), live))
        .order_by(
            Stage.position,
            Stage.id,
            _PART.c.n,
            Rule.position,
            Rule.id,
            Question.position,
            Question.id,
        )
    )


def with_kept_stages(rows: list) -> tuple[Opening, list[Question]]:
    """The opening of joined_stages() rows (..., opening, stage, rule, question), its stages
    set from them, and the questions in order."""
    opening = rows[0][-4]
    set_committed_value(opening, "stages", keep_stages(row[-3:-1] for row in rows))
    return opening, list({row[-1].id: row[-1] for row in rows if row[-1] is not None}.values())


def keep_stages(pairs: Iterable[tuple[Stage | None, Rule | None]]) -> list[Stage]:
    """The stages of (stage, rule) rows in their order, each one's rules kept for this
    transaction (stage_rules() then reads them without a query)."""
    stages: dict[int, Stage] = {}
    cache = _cache().setdefault("stage", {})
    for stage, rule in pairs:
        if stage is None:
            continue
        if stage.id not in stages:
            stages[stage.id] = stage
            cache[stage.id] = []
        if rule is not None:
            cache[stage.id].append(rule)
    return list(stages.values())


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
        last = moves.last_rank(stage.id)
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


def rule_moves(applicant_ids: Iterable[int]) -> Counter[int]:
    """How many times rules moved each of these applicants in the last LOOP_WINDOW."""
    return Counter(
        dict(
            db.session.execute(
                select(Event.applicant_id, func.count())
                .where(
                    among(Event.applicant_id, applicant_ids),
                    Event.created_at >= utcnow() - LOOP_WINDOW,
                    Event.type == inline("applicant.moved"),
                    Event.actor_type == inline("rule"),
                )
                .group_by(Event.applicant_id)
            ).all()
        )
    )


class _Context:
    """One evaluation: the applicant's answers are read once, and only if a rule needs them.
    chunk: set for a due timer's own rule, whose move its chunk writes with the others.
    unattended: no person began it (a due timer, an outside event), so LOOP_LIMIT holds."""

    def __init__(
        self,
        applicant: Applicant,
        chain: int,
        chunk: _Chunk | None = None,
        *,
        unattended: bool = False,
    ):
        self.applicant = applicant
        self.chain = chain
        self.chunk = chunk
        self.unattended = unattended
        self._answers: dict[int, Any] | None = None

    def answers(self) -> dict[int, Any]:
        if self._answers is None:
            self._answers = answers_of([self.applicant.id])[self.applicant.id]
        return self._answers

    def looping(self) -> bool:
        """An unattended move of an applicant the rules have moved LOOP_LIMIT times lately."""
        if not self.unattended:
            return False
        if self.chunk is not None:
            return self.chunk.rule_moves(self.applicant.id) >= LOOP_LIMIT
        return rule_moves([self.applicant.id])[self.applicant.id] >= LOOP_LIMIT


def _event(type: str, applicant: Applicant, *, actor: Actor, **payload: Any) -> None:
    """record_applicant; while a chunk of timers runs, a row its chunk inserts with the others
    in one statement, in the order recorded (an ORM object per event costs several times the
    CPU: the instance and its state, then a flush that returns each id)."""
    chunk = _running_chunk()
    if chunk is None:
        record_applicant(type, applicant, actor=actor, **payload)
        return
    chunk.events.append(applicant_row(type, applicant, actor=actor, **payload))


def _before_other_writers() -> None:
    """Code elsewhere (moves.place, email_templates.send) records its events through the
    session: a running chunk's events recorded so far go in first, to keep their order."""
    chunk = _running_chunk()
    if chunk is not None:
        chunk.insert_events()


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
    _event(
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
    _before_other_writers()
    email_templates.send(template, applicant, actor=rule_actor(rule), stage=stage, why=why)


def _emit(rule: Rule, applicant: Applicant, stage: Stage, action: dict, why: str) -> None:
    """A webhook event of the org's own type: an event row, which webhook delivery fans out."""
    _event(
        action["event"],
        applicant,
        actor=rule_actor(rule),
        stage=stage.name,
        stage_id=stage.public_id,
        custom=True,
        **_payload(rule, why),
    )


def _move(rule: Rule, context: _Context, stage: Stage, action: dict, why: str) -> bool:
    applicant = context.applicant
    target = _stages_of(rule.opening_id).get(action.get("stage", ""))
    if target is None:
        _skip(rule, applicant, action, "its target stage was deleted", why)
        return False
    if target.id == stage.id:
        return False
    if context.chain >= MAX_CHAIN:
        _event(
            "rule.chain_capped",
            applicant,
            actor=rule_actor(rule),
            limit=MAX_CHAIN,
            stage=stage.name,
            to_stage=target.name,
            **_payload(rule, why),
        )
        return False
    if context.looping():
        _event(
            "rule.loop_stopped",
            applicant,
            actor=rule_actor(rule),
            limit=LOOP_LIMIT,
            hours=int(LOOP_WINDOW.total_seconds() // 3600),
            stage=stage.name,
            to_stage=target.name,
            **_payload(rule, why),
        )
        return False
    if context.chunk is not None:
        # A timer's move: written with its chunk's others (True: it is on its way).
        context.chunk.add_move(rule, applicant, stage, target, _bottom_rank(target), why)
        return True
    _before_other_writers()
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
    _event(
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
    *,
    unattended: bool = False,
) -> bool:
    context = _Context(applicant, chain, unattended=unattended)
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
    # An outside event may answer a webhook of the move it causes: a loop no person sees.
    unattended = trigger == Trigger.EXTERNAL_EVENT and chain == 0
    return _fire(applicant, applicant.stage, rules, chain, why, unattended=unattended)


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


def created(applicant: Applicant, stage: Stage, *, answered: bool, completed: bool = True) -> None:
    """A new applicant in its first stage, its answers written: entry rules, then answer
    rules, then completion. completed: every required question was answered (the form checks
    them all; an API client leaves the files to the portal)."""
    if entered(applicant, stage, entry=applicant.stage_entry):
        return
    if answered and fire(applicant, Trigger.ANSWERS_SUBMITTED):
        return
    if completed:
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
    of their stage that wait for its type. The caller commits. True when a rule moved them."""
    return receive_external_event(applicant, event_type, data, actor=actor)[1]


def receive_external_event(
    applicant: Applicant, event_type: str, data: dict[str, Any] | None, *, actor: Actor
) -> tuple[Event, bool]:
    """external_event, also giving the event it recorded (the API answers with it)."""
    recorded = record_applicant(
        "applicant.external_event", applicant, actor=actor, event_type=event_type, data=data or {}
    )
    return recorded, fire(applicant, Trigger.EXTERNAL_EVENT, event_type=event_type)


# --- timers -----------------------------------------------------------------------------------


def schedule(rule: Rule) -> None:
    """Set a time rule's timers for everyone in its stage now, counted from when each entered,
    so a new or edited rule also acts on those who were there before it: one INSERT ... SELECT,
    however big the stage. Its pending timers are replaced (a changed delay moves them);
    claimed ones, which a worker holds, are left to finish, and a stay in the stage the rule
    acted on already is not timed again. The caller commits."""
    db.session.execute(
        delete(Timer).where(Timer.rule_id == rule.id, Timer.state == TimerState.PENDING)
    )
    if not (rule.enabled and rule.trigger == Trigger.TIME_IN_STAGE and rule.delay_minutes):
        return
    if db.engine.dialect.name == "postgresql":
        due = Applicant.entered_stage_at + func.make_interval(0, 0, 0, 0, 0, rule.delay_minutes)
    else:
        # SQLite keeps datetimes as text; its datetime functions do the arithmetic.
        due = func.strftime(
            "%Y-%m-%d %H:%M:%f000", Applicant.entered_stage_at, f"+{rule.delay_minutes} minutes"
        )
    db.session.execute(
        insert(Timer).from_select(
            ["org_id", "applicant_id", "rule_id", "stage_entry", "due_at", "state"],
            select(
                Applicant.org_id,
                Applicant.id,
                literal(rule.id),
                Applicant.stage_entry,
                due,
                literal(TimerState.PENDING.value),
            ).where(
                Applicant.stage_id == rule.stage_id,
                Applicant.status == ApplicantStatus.ACTIVE,
                # A timer of this rule for the same entry that came due already (fired, found
                # stale, or held by a worker now) is not set again: saving the rule, or
                # turning it off and on, must not act twice on one stay in the stage.
                ~exists().where(
                    Timer.rule_id == rule.id,
                    Timer.applicant_id == Applicant.id,
                    Timer.stage_entry == Applicant.stage_entry,
                ),
            ),
        )
    )


def rearm_timers(applicant: Applicant) -> None:
    """A restored applicant's time rules, for the stay in the stage they are back in: a timer
    that came due while they were rejected found them so, and did nothing; it is due again
    now, so the rule acts on them as it would have. The caller commits."""
    db.session.execute(
        update(Timer)
        .where(
            Timer.applicant_id == applicant.id,
            Timer.stage_entry == applicant.stage_entry,
            Timer.state == TimerState.DONE,
            Timer.outcome == "stale",
        )
        .values(
            state=TimerState.PENDING,
            due_at=utcnow(),
            outcome=None,
            done_at=None,
            claim_token=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )


# The two kinds of claimable timer are read apart, each as an ordered range of the
# (state, due_at) index under LIMIT: that is an index probe whatever the planner guesses. One
# OR of both, or a LIMIT without the order, let PostgreSQL pick a sequential scan of the whole
# table once its statistics make due rows look common (done timers, all due in the past, do).


def _pending_due(now):
    return and_(Timer.state == inline(TimerState.PENDING.value), Timer.due_at <= now)


def _lease_expired(now):
    # A worker died mid-batch: its lease ran out, so the timer is free again.
    return and_(Timer.state == inline(TimerState.CLAIMED.value), Timer.lease_until < now)


def _oldest(condition, limit: int):
    return select(Timer.id).where(condition).order_by(Timer.due_at).limit(inline(limit))


_NOW = bindparam("now", type_=UTCDateTime())
# Built once: the sweep runs it every tick.
_ANY_DUE = select(
    _oldest(_pending_due(_NOW), 1).scalar_subquery(),
    _oldest(_lease_expired(_NOW), 1).scalar_subquery(),
)


def any_due() -> bool:
    """Two probes of the (state, due_at) index in one query: the sweep's cost with nothing
    due, whatever the number of timers waiting."""
    row = db.session.execute(_ANY_DUE, {"now": utcnow()}).one()
    return any(found is not None for found in row)


class Due(NamedTuple):
    """A claimed timer, as its claim returned it: all a sweep reads of it."""

    id: int
    applicant_id: int
    rule_id: int
    stage_entry: int
    due_at: datetime


def _take(condition, token: str, now, limit: int) -> list[Due]:
    """Claim up to limit of the oldest timers matching condition."""
    due = _oldest(condition, limit)
    if db.engine.dialect.name == "postgresql":
        # Workers sweeping at once each take other rows instead of queueing on the same ones;
        # the rows locked are the ones that match (a row changed meanwhile is checked again).
        # The ids come as one array, so the UPDATE finds them by primary key: with an IN
        # (subquery) the planner may instead scan every due timer to join with the few.
        picked = due.with_for_update(skip_locked=True).subquery()
        ids = select(func.array_agg(picked.c.id)).scalar_subquery()
        claimable = Timer.id == any_(cast(ids, ARRAY(Integer)))  # ANY(array), not ANY(rows)
    else:
        claimable = and_(Timer.id.in_(due.scalar_subquery()), condition)
    return [
        Due(*row)
        for row in db.session.execute(
            update(Timer)
            .where(claimable)
            .values(state=TimerState.CLAIMED, claim_token=token, lease_until=now + TIMER_LEASE)
            .returning(Timer.id, Timer.applicant_id, Timer.rule_id, Timer.stage_entry, Timer.due_at)
            .execution_options(synchronize_session=False)
        )
    ]


def claim(limit: int = TIMER_BATCH) -> tuple[str, list[Due]]:
    """Take up to limit due timers, a dead worker's first, oldest first; two workers never
    take the same one. What the sweep reads of them comes back with the claim: no ORM
    objects to load, and none to reload after each chunk's commit."""
    now = utcnow()
    token = secrets.token_hex(16)
    taken = _take(_lease_expired(now), token, now, limit)
    if len(taken) < limit:
        taken += _take(_pending_due(now), token, now, limit - len(taken))
    db.session.commit()
    return token, sorted(taken, key=lambda due: (due.due_at, due.id))


def _evaluate(timer: Due, applicant: Applicant | None, rule: Rule | None) -> str:
    """Fire one due timer if its stage entry is still current; returns its outcome. In a
    chunk (_run_chunk), its move is written with the chunk's others."""
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
    context = _Context(applicant, 0, _running_chunk(), unattended=True)
    if not _matches(rule, context):
        return "no_match"
    why = f"{delay_text(rule.delay_minutes or 0)} in stage"
    # The applicant's stage is the rule's (checked above): loaded once per rule, not per timer.
    _run(rule, context, rule.stage, why)
    return "fired"


_CHUNK = "rules_timer_chunk"  # the session's info key while a chunk of timers runs


def _running_chunk() -> _Chunk | None:
    return db.session().info.get(_CHUNK)


@dataclass(slots=True)
class _Move:
    rule: Rule
    applicant: Applicant
    source: Stage
    target: Stage
    why: str
    chain: int
    entry: moves.Entry


class _Chunk:
    """What a chunk of timers writes together. moves.place writes one move with its own
    UPDATE (a round trip each); a chunk writes its timers' moves with one UPDATE (on
    PostgreSQL), then does for each applicant moved what place does after its UPDATE, in
    firing order. The events recorded meanwhile (by _event) go in with one INSERT."""

    def __init__(self, timers: list[Due]) -> None:
        self.pending: list[_Move] = []
        self.applicants: set[int] = set()
        self.events: list[dict[str, Any]] = []
        # Applicants with two timers in the chunk: the second reads them again after a move.
        counts = Counter(t.applicant_id for t in timers)
        self.again = {applicant_id for applicant_id, n in counts.items() if n > 1}
        self._everyone = list(counts)
        self._rule_moves: Counter[int] | None = None

    def rule_moves(self, applicant_id: int) -> int:
        """Context.looping() for the chunk: its applicants' counts in one query, read when
        the first of its rules would move someone, and kept up with the chunk's own moves."""
        if self._rule_moves is None:
            self._rule_moves = rule_moves(self._everyone)
        return self._rule_moves[applicant_id]

    def add_move(self, rule, applicant, source, target, rank, why, chain: int = 1) -> None:
        # The version condition guarantees no entry happened since these were read.
        entry = moves.Entry(
            applicant.id, applicant.version, target.id, rank, applicant.stage_entry + 1
        )
        self.pending.append(_Move(rule, applicant, source, target, why, chain, entry))
        self.applicants.add(applicant.id)
        if self._rule_moves is not None:
            self._rule_moves[applicant.id] += 1

    def write_moves(self) -> None:
        pending, self.pending, self.applicants = self.pending, [], set()
        if not pending:
            return
        written = moves.enter_many([move.entry for move in pending])
        for move in pending:
            applicant = move.applicant
            if applicant.id not in written:
                continue  # changed since it was read: nothing written, as place() does
            _event(
                "applicant.moved",
                applicant,
                actor=rule_actor(move.rule),
                **moves.stage_fields(move.source, move.target),
                reason="rule",
                **_payload(move.rule, move.why),
            )
            if applicant.id in self.again or stage_rules(move.target.id):
                # Read again in this transaction (by the next timer, or the rules of the
                # stage entered): fresh from the database. Otherwise the commit expires it,
                # so reloading it would be a wasted round trip.
                db.session.expire(applicant)
            entered(applicant, move.target, entry=move.entry.entry, chain=move.chain)

    def insert_events(self) -> None:
        """Insert the events recorded so far, after what the session holds pending (written
        by code elsewhere before them), so the table keeps the order they were recorded in."""
        if not self.events:
            return
        recorded, self.events = self.events, []
        inserts.rows([(Event.__table__, recorded)])


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
            .where(
                among(Timer.id, ids), Timer.claim_token == token, Timer.state == TimerState.CLAIMED
            )
            .values(state=state, outcome=outcome, done_at=now, lease_until=None, error=error)
            .execution_options(synchronize_session=False)
        )
        finished += result.rowcount
    return finished == len(outcomes)


def _run_chunk(token: str, timers: list[Due]) -> int:
    """Fire a chunk of timers in one transaction; returns how many fired (0, with nothing
    written, when the claim was lost meanwhile)."""
    applicants = {
        a.id: a
        for a in db.session.scalars(
            select(Applicant).where(among(Applicant.id, [t.applicant_id for t in timers]))
        )
    }
    rule_ids = list({t.rule_id for t in timers})
    rules = {r.id: r for r in db.session.scalars(select(Rule).where(among(Rule.id, rule_ids)))}
    outcomes = {}
    chunk = _Chunk(timers)
    session = db.session()
    session.info[_CHUNK] = chunk
    try:
        # Objects the session writes (new timers, events recorded elsewhere) are inserted
        # together at the end, not one round trip each.
        with db.session.no_autoflush:
            for timer in timers:
                if timer.applicant_id in chunk.applicants:
                    # An earlier timer of the chunk moves this applicant: write that first,
                    # so this one sees where they are now (and is stale), as one by one.
                    chunk.write_moves()
                outcomes[timer.id] = _evaluate(
                    timer, applicants.get(timer.applicant_id), rules.get(timer.rule_id)
                )
            chunk.write_moves()
            chunk.insert_events()
    finally:
        session.info.pop(_CHUNK, None)
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
    for start in range(0, len(timers), TIMER_CHUNK):
        chunk = timers[start : start + TIMER_CHUNK]
        try:
            fired += _run_chunk(token, chunk)
        except Exception:
            # One bad timer must not hold up the rest: redo the chunk one timer at a time and
            # mark the one that fails, with its error, for the admin page.
            db.session.rollback()
            log.exception("timer chunk failed; retrying its timers one by one")
            for timer in chunk:
                fired += _run_one(token, timer)
    return len(timers), fired


def _run_one(token: str, timer: Due) -> int:
    if db.session.scalar(select(Timer.claim_token).where(Timer.id == timer.id)) != token:
        return 0
    try:
        return _run_chunk(token, [timer])
    except Exception as exc:
        db.session.rollback()
        log.exception("timer %s failed", timer.id)
        _finish(token, {timer.id: "failed"}, f"{type(exc).__name__}: {exc}"[:2000])
        db.session.commit()
        return 0


def sweep(budget_seconds: float = 15.0) -> tuple[int, int]:
    """Evaluate due timers batch after batch until none are due or the budget is spent.
    Returns (claimed, fired); what is still due then waits for the cron's next tick."""
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
