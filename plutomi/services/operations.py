"""The operations page: what the outbox, the timers and the job queues are doing, for admins.

Everything read from the database is the admin's own org's. The RQ queues are shared by every
org on a server, so their depths are the server's and the page says so; they are only numbers,
never a job's content. A Redis that does not answer makes the queue part say so, nothing more.

Counts stop at COUNT_CAP ("10,000+"): the page polls every 10 seconds, and past that number
the exact figure is not worth counting again and again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Worker
from sqlalchemy import Select, func, select

from plutomi.extensions import db, queues
from plutomi.models import (
    Applicant,
    Membership,
    OutboxMessage,
    OutboxState,
    Role,
    Rule,
    Timer,
    TimerState,
    utcnow,
)
from plutomi.services import outbox
from plutomi.services.display import duration
from plutomi.services.errors import Invalid, NotFound
from plutomi.services.events import Actor, record
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require

log = logging.getLogger(__name__)

PAGE_SIZE = 50
COUNT_CAP = 10_000
# Retry-all-dead resets at most this many rows per press, so one request stays short.
RETRY_ALL_CAP = 1_000
# A timer this far past its due time has waited longer than the periodic job should take.
LATE_AFTER = timedelta(minutes=1)
FAILED_TIMERS_SHOWN = 20
ERROR_CHARS = 300
TEXT_CHARS = 120
# The queues the app enqueues on (the outbox, bulk actions and the cron sweeps); any other
# queue found in Redis is listed too.
QUEUE_NAMES = ("default",)

REFUSALS = {
    OutboxState.PENDING: "This message is waiting to be sent already.",
    OutboxState.SENDING: "This message is being sent right now.",
    OutboxState.DONE: "This message was sent already.",
}


# --- what the page shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """A count that stops at COUNT_CAP; prints as "1,234" or "10,000+"."""

    value: int
    more: bool = False

    def __str__(self) -> str:
        return f"{self.value:,}{'+' if self.more else ''}"


@dataclass(frozen=True)
class OutboxCounts:
    pending: Tally
    sending: Tally
    retrying: Tally
    dead: Tally
    done_24h: Tally


@dataclass(frozen=True)
class TimerCounts:
    pending: Tally
    late: Tally
    oldest_late: datetime | None
    failed: Tally


@dataclass(frozen=True)
class QueueDepth:
    name: str
    queued: int
    started: int
    failed: int
    scheduled: int


@dataclass(frozen=True)
class QueueStatus:
    """The server's RQ queues; reachable is False when Redis did not answer."""

    reachable: bool
    depths: list[QueueDepth]
    workers: int = 0


@dataclass(frozen=True)
class Status:
    """The counts the page polls for."""

    outbox: OutboxCounts
    timers: TimerCounts
    queues: QueueStatus
    at: datetime


@dataclass(frozen=True)
class Row:
    """One outbox row as the page lists it."""

    public_id: str
    kind: str
    state: str
    recipient: str
    summary: str
    attempts: int
    max_attempts: int
    last_error: str
    next_attempt_at: datetime
    created_at: datetime

    @property
    def retryable(self) -> bool:
        return self.state in outbox.RETRYABLE


@dataclass(frozen=True)
class RowPage:
    rows: list[Row]
    # The cursor of the next (older) page: the public id of this page's last row.
    older: str | None


@dataclass(frozen=True)
class FailedTimer:
    rule: str
    applicant: str
    applicant_public_id: str
    due_at: datetime
    error: str


# --- reading ---------------------------------------------------------------------------------


def _tally(query: Select) -> Tally:
    # Counting a capped subquery costs at most COUNT_CAP rows, however many match.
    n = db.session.scalar(select(func.count()).select_from(query.limit(COUNT_CAP + 1).subquery()))
    return Tally(min(n, COUNT_CAP), n > COUNT_CAP)


def _outbox(org_id: int, *where: Any) -> Select:
    return select(OutboxMessage.id).where(OutboxMessage.org_id == org_id, *where)


def _timers(org_id: int, *where: Any) -> Select:
    return select(Timer.id).where(Timer.org_id == org_id, *where)


def outbox_counts(org_id: int) -> OutboxCounts:
    def state(name: str) -> Tally:
        return _tally(_outbox(org_id, OutboxMessage.state == name))

    return OutboxCounts(
        pending=state(OutboxState.PENDING),
        sending=state(OutboxState.SENDING),
        retrying=state(OutboxState.RETRYING),
        dead=state(OutboxState.DEAD),
        done_24h=_tally(
            _outbox(
                org_id,
                OutboxMessage.state == OutboxState.DONE,
                OutboxMessage.done_at >= utcnow() - timedelta(hours=24),
            )
        ),
    )


def _late(org_id: int) -> Select:
    return _timers(
        org_id,
        Timer.state.in_([TimerState.PENDING, TimerState.CLAIMED]),
        Timer.due_at < utcnow() - LATE_AFTER,
    )


def timer_counts(org_id: int) -> TimerCounts:
    late = _late(org_id)
    return TimerCounts(
        pending=_tally(_timers(org_id, Timer.state == TimerState.PENDING)),
        late=_tally(late),
        oldest_late=db.session.scalar(late.with_only_columns(func.min(Timer.due_at))),
        failed=_tally(_timers(org_id, Timer.state == TimerState.FAILED)),
    )


def queue_status() -> QueueStatus:
    """Depths of the server's RQ queues; never raises when Redis is down."""
    connection = queues.connection
    try:
        known = {queue.name for queue in Queue.all(connection=connection)}
        names = [*QUEUE_NAMES, *sorted(known - set(QUEUE_NAMES))]
        depths = []
        for name in names:
            queue = Queue(name, connection=connection)
            depths.append(
                QueueDepth(
                    name=name,
                    queued=queue.count,
                    # cleanup=False: looking must not move jobs between registries.
                    started=queue.started_job_registry.get_job_count(cleanup=False),
                    failed=queue.failed_job_registry.get_job_count(cleanup=False),
                    scheduled=queue.scheduled_job_registry.get_job_count(cleanup=False),
                )
            )
        workers = Worker.count(connection=connection)
    except (RedisError, OSError) as exc:
        log.warning("operations page: Redis unreachable: %s", exc)
        return QueueStatus(reachable=False, depths=[])
    return QueueStatus(reachable=True, depths=depths, workers=workers)


def status(actor: Membership) -> Status:
    require(actor, Role.ADMIN)
    return Status(
        outbox=outbox_counts(actor.org_id),
        timers=timer_counts(actor.org_id),
        queues=queue_status(),
        at=utcnow(),
    )


def _line(value: Any, limit: int = TEXT_CHARS) -> str:
    """A payload value as one short line: payloads are JSON of any shape."""
    if value is None or isinstance(value, dict | list):
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(kind: str, payload: Any) -> tuple[str, str]:
    """(recipient, summary) of a row: an email's address and subject; for any other kind, the
    first of the usual keys its payload has."""
    payload = payload if isinstance(payload, dict) else {}
    if kind == "email":
        return _line(payload.get("to")), _line(payload.get("subject"))
    if kind == "webhook" and isinstance(payload.get("body"), dict):
        return _line(payload.get("url")), _line(payload["body"].get("type"))
    recipient = next((_line(payload[k]) for k in ("to", "url") if payload.get(k)), "")
    summary = next(
        (_line(payload[k]) for k in ("subject", "event_type", "event", "type") if payload.get(k)),
        _line(", ".join(sorted(str(k) for k in payload))),
    )
    return recipient, summary


def _error(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def to_row(message: OutboxMessage) -> Row:
    recipient, summary = describe(message.kind, message.payload)
    return Row(
        public_id=message.public_id,
        kind=message.kind,
        state=message.state,
        recipient=recipient,
        summary=summary,
        attempts=message.attempts,
        max_attempts=message.max_attempts,
        last_error=_error(message.last_error),
        next_attempt_at=message.next_attempt_at,
        created_at=message.created_at,
    )


def _message(actor: Membership, public_id: str) -> OutboxMessage:
    scope = select(OutboxMessage).where(OutboxMessage.org_id == actor.org_id)
    return by_public_id(scope, OutboxMessage, public_id, "No such message.")


def row(actor: Membership, message_public_id: str) -> Row:
    require(actor, Role.ADMIN)
    return to_row(_message(actor, message_public_id))


def problem_rows(actor: Membership, before: str | None = None, size: int = PAGE_SIZE) -> RowPage:
    """The org's retrying and dead rows, newest first, a page at a time.

    Keyset on id (ids grow with time), never OFFSET; the cursor is a row's public id, since the
    integer key never leaves the server.
    """
    require(actor, Role.ADMIN)
    query = select(OutboxMessage).where(
        OutboxMessage.org_id == actor.org_id, OutboxMessage.state.in_(outbox.RETRYABLE)
    )
    if before:
        try:
            anchor = _message(actor, before).id
        except NotFound as exc:
            raise Invalid("That link to older messages is not valid.", "before") from exc
        query = query.where(OutboxMessage.id < anchor)
    # One row more than shown tells whether an older page exists, without counting.
    messages = list(db.session.scalars(query.order_by(OutboxMessage.id.desc()).limit(size + 1)))
    more = len(messages) > size
    rows = [to_row(m) for m in messages[:size]]
    return RowPage(rows, rows[-1].public_id if more else None)


def failed_timers(actor: Membership, limit: int = FAILED_TIMERS_SHOWN) -> list[FailedTimer]:
    """The org's newest failed timers, with the rule and applicant they were for."""
    require(actor, Role.ADMIN)
    found = db.session.execute(
        select(Rule.name, Applicant.name, Applicant.public_id, Timer.due_at, Timer.error)
        .join(Rule, Rule.id == Timer.rule_id)
        .join(Applicant, Applicant.id == Timer.applicant_id)
        .where(Timer.org_id == actor.org_id, Timer.state == TimerState.FAILED)
        .order_by(Timer.id.desc())
        .limit(limit)
    )
    return [
        FailedTimer(rule, applicant, public_id, due_at, _error(error) or "No error recorded.")
        for rule, applicant, public_id, due_at, error in found
    ]


def until(moment: datetime, now: datetime | None = None) -> str:
    """How far moment is from now, as a person says it: "in 5 minutes", "3 hours ago"."""
    now = now or utcnow()
    if abs(moment - now) < timedelta(minutes=1):
        return "just now"
    if moment > now:
        return f"in {duration(now, now=moment)}"
    return f"{duration(moment, now=now)} ago"


# --- retrying by hand ------------------------------------------------------------------------


def retry_now(actor: Membership, message_public_id: str) -> OutboxMessage:
    """Put one dead or retrying row of the actor's org back in line, with fresh attempts.

    A row of another org is a 404; one that is waiting, being sent or sent already is refused
    (the reset is a conditional UPDATE, so a row a worker holds right now is never reset).
    """
    require(actor, Role.ADMIN)
    message = _message(actor, message_public_id)
    previous = message.state
    if not outbox.requeue(OutboxMessage.id == message.id):
        db.session.rollback()
        # Read again: the state may have changed since the row was loaded.
        message = _message(actor, message_public_id)
        raise Invalid(REFUSALS.get(message.state, "This message cannot be retried now."))
    record(
        "outbox.retried",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        message=message.public_id,
        kind=message.kind,
        previous_state=previous,
        attempts=message.attempts,
    )
    db.session.commit()
    return message


@dataclass(frozen=True)
class RetriedDead:
    count: int
    # Whether dead rows remain past the cap (another press retries them).
    more: bool


def retry_dead(actor: Membership) -> RetriedDead:
    """Put the org's dead rows back in line, at most RETRY_ALL_CAP per call; RQ gets them in
    batches after the commit."""
    require(actor, Role.ADMIN)
    ids = outbox.requeue(
        OutboxMessage.org_id == actor.org_id, states=[OutboxState.DEAD], limit=RETRY_ALL_CAP
    )
    if ids:
        record(
            "outbox.retried",
            actor=Actor.user(actor.user),
            org_id=actor.org_id,
            count=len(ids),
            previous_state=OutboxState.DEAD,
        )
    more = bool(
        db.session.scalar(_outbox(actor.org_id, OutboxMessage.state == OutboxState.DEAD).limit(1))
    )
    db.session.commit()
    return RetriedDead(len(ids), more)
