"""The transactional outbox: hand-off after commit, claims with a lease, retries, the sweep.

Rows are written by other services in their own transaction. After that transaction commits,
their ids are handed to RQ (best effort); the periodic sweep hands out whatever is due and
not taken, so a Redis outage at commit time delays work and loses nothing.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from redis.exceptions import RedisError
from rq.timeouts import JobTimeoutException
from sqlalchemy import bindparam, case, event, false, or_, select, update
from sqlalchemy.orm import Session

from plutomi.extensions import db, keeping_loaded, queues
from plutomi.models import OutboxMessage, OutboxState, utcnow
from plutomi.services.lookups import among

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# A batch sends for at most this long, then hands its untried rows back, still holding them;
# its RQ job may run longer than the lease, so RQ never stops a batch before it does.
SENDING_TIME = LEASE / 2
JOB_TIMEOUT = int((LEASE + timedelta(minutes=1)).total_seconds())
BATCH = 100
# Single-row senders' rows finished per commit, or after this many seconds of sending.
GROUP = 20
GROUP_SECONDS = 1.0
# Seconds before attempt n+1 (n = attempts so far); jittered by ±20%.
BACKOFF = [30, 120, 600, 3600, 6 * 3600]

Sender = Callable[[OutboxMessage], str]
_senders: dict[str, Sender] = {}
_closers: dict[str, Callable[[], None]] = {}
_recorders: dict[str, Callable[[list[OutboxMessage]], None]] = {}
_schedules: dict[str, tuple[int, ...]] = {}


@dataclass(frozen=True)
class Claim:
    """A batch's hold on its rows: only the holder of the token may finish them."""

    token: str
    lease_until: datetime


# Carries out a whole batch of one kind at once (webhooks: many receivers in parallel) and
# finishes its rows itself, only while the claim's token holds them; returns the count of rows
# by final state.
BatchSender = Callable[[list[OutboxMessage], Claim], dict[str, int]]
_batch_senders: dict[str, BatchSender] = {}


def batch_sender(kind: str) -> Callable[[BatchSender], BatchSender]:
    def register(fn: BatchSender) -> BatchSender:
        _batch_senders[kind] = fn
        return fn

    return register


def backoff_schedule(kind: str, seconds: tuple[int, ...]) -> None:
    """Seconds before attempt n+1 for rows of this kind, instead of BACKOFF."""
    _schedules[kind] = tuple(seconds)


def sender(
    kind: str,
    *,
    close: Callable[[], None] | None = None,
    record: Callable[[list[OutboxMessage]], None] | None = None,
) -> Callable[[Sender], Sender]:
    """Register the function that carries out outbox rows of one kind; it returns the transport.

    close, when given, runs once after each batch that held rows of this kind, so a sender can
    keep one connection open for a whole batch (an SMTP session) and let it go at the end.
    record, when given, writes what a group of rows carried out leaves in the database (their
    timeline events), in the transaction that marks them done."""

    def register(fn: Sender) -> Sender:
        _senders[kind] = fn
        if close is not None:
            _closers[kind] = close
        if record is not None:
            _recorders[kind] = record
        return fn

    return register


# --- hand-off after commit -----------------------------------------------------------------


@event.listens_for(Session, "after_flush")
def _collect_new(session: Session, flush_context) -> None:
    ids = session.info.setdefault("outbox_ids", [])
    ids.extend(obj.id for obj in session.new if isinstance(obj, OutboxMessage))


def hand_off(ids: list[int]) -> None:
    """Rows written without the ORM (whose flush collects the others), for RQ after commit."""
    db.session.info.setdefault("outbox_ids", []).extend(ids)


@event.listens_for(Session, "after_commit")
def _hand_off(session: Session) -> None:
    ids = session.info.pop("outbox_ids", None)
    later = session.info.pop("outbox_later", None)
    if not has_app_context():
        return
    if ids:
        enqueue(ids)
    for when, due in later or ():
        enqueue_at(due, when)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction) -> None:
    # A savepoint's rollback must not drop the ids the outer transaction still commits; ids of
    # the savepoint's own rows may stay in the list, as a claim on them finds nothing.
    if previous_transaction.nested:
        return
    session.info.pop("outbox_ids", None)
    session.info.pop("outbox_later", None)


def enqueue(ids: list[int]) -> None:
    """Hand ids to RQ in batches; a failure is logged and left to the sweep."""
    if current_app.config.get("OUTBOX_HANDOFF") is False:
        return
    try:
        queue = queues.queue()
        # One round trip for them all: enqueued alone, a job costs RQ two.
        with queue.connection.pipeline() as pipe:
            for start in range(0, len(ids), BATCH):
                batch = sorted(ids[start : start + BATCH])
                # The digest keeps two different batches with the same ends and size apart:
                # RQ overwrites a job of the same id, which would drop the first batch's ids.
                digest = hashlib.blake2b(repr(batch).encode(), digest_size=6).hexdigest()
                queue.enqueue(
                    "jobs.outbox.deliver",
                    batch,
                    job_id=f"outbox-{batch[0]}-{batch[-1]}-{len(batch)}-{digest}",
                    # Given, RQ need not write out the call with its arguments for each job.
                    description=f"outbox delivery of {len(batch)} rows",
                    job_timeout=JOB_TIMEOUT,
                    result_ttl=60,
                    failure_ttl=24 * 3600,
                    pipeline=pipe,
                )
            pipe.execute()
    except RedisError:
        log.warning("Redis unavailable; %d outbox rows wait for the sweep", len(ids))


def enqueue_at(ids: list[int], when: datetime) -> None:
    """Hand ids to RQ's scheduler for a retry due before the next sweep would find it (a
    webhook's first retry comes after about 5 s; the sweep runs every 30 s). Best effort:
    the sweep still finds them."""
    if not ids or current_app.config.get("OUTBOX_HANDOFF") is False:
        return
    try:
        queues.queue().enqueue_at(
            when,
            "jobs.outbox.deliver",
            sorted(ids),
            job_timeout=JOB_TIMEOUT,
            result_ttl=60,
            failure_ttl=24 * 3600,
        )
    except RedisError:
        log.warning("Redis unavailable; %d retries wait for the sweep", len(ids))


# --- claims and delivery --------------------------------------------------------------------


def _claimable(now: datetime):
    return or_(
        OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.RETRYING])
        & (OutboxMessage.next_attempt_at <= now),
        # A worker died mid-send: its lease ran out, so the row is free again (with attempts
        # left; the sweep marks the others dead).
        (OutboxMessage.state == OutboxState.SENDING)
        & (OutboxMessage.lease_until < now)
        & (OutboxMessage.attempts < OutboxMessage.max_attempts),
    )


def _claimable_row(now: datetime):
    """_claimable(now), as a test of each row the ids found. Written this way, the planner
    reaches the rows through their ids (the primary key) alone: given _claimable itself, it
    may AND in bitmap scans of the state index, whose entries for rows that changed state
    stay until a vacuum (a bitmap scan never marks them dead), so each claim scanned every
    row sent since the last vacuum, twice."""
    return case(
        (
            OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.RETRYING]),
            OutboxMessage.next_attempt_at <= now,
        ),
        (
            OutboxMessage.state == OutboxState.SENDING,
            (OutboxMessage.lease_until < now)
            & (OutboxMessage.attempts < OutboxMessage.max_attempts),
        ),
        else_=false(),
    )


def claim(ids: Iterable[int]) -> list[OutboxMessage]:
    """Take the due rows among ids with one conditional UPDATE; two workers never both win."""
    now = utcnow()
    token = secrets.token_hex(16)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(list(ids)), _claimable_row(now))
        .values(
            state=OutboxState.SENDING,
            lease_until=now + LEASE,
            claim_token=token,
            attempts=OutboxMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.claim_token == token)
            .order_by(OutboxMessage.id)
        )
    )


def backoff(attempts: int, kind: str | None = None) -> timedelta:
    schedule = _schedules.get(kind or "", BACKOFF)
    base = schedule[min(max(attempts, 1) - 1, len(schedule) - 1)]
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def failed_values(message: OutboxMessage, error: str, retry_after: float | None = None) -> dict:
    """A failed attempt's row values: retried after its backoff (or the receiver's
    Retry-After, when longer), dead after its last attempt."""
    dead = message.attempts >= message.max_attempts
    wait = backoff(message.attempts, message.kind)
    if retry_after:
        wait = max(wait, timedelta(seconds=min(retry_after, 24 * 3600)))
    return {
        "state": OutboxState.DEAD if dead else OutboxState.RETRYING,
        "last_error": error[:2000],
        "lease_until": None,
        "next_attempt_at": utcnow() + wait,
    }


def done_values(transport: str) -> dict:
    return {
        "state": OutboxState.DONE,
        "transport": transport,
        "done_at": utcnow(),
        "lease_until": None,
        "last_error": None,
    }


def deliver(ids: Iterable[int]) -> dict[str, int]:
    """Claim and carry out a batch; each row ends done, retrying or dead."""
    counts = {"done": 0, "retrying": 0, "dead": 0}
    claimed = claim(ids)
    if not claimed:
        return counts
    # Read the claim once, now: a row reloaded later (after a rollback) may carry another
    # worker's token (if our lease ran out), which must not pass for ours.
    token = claimed[0].claim_token
    lease_until = min(message.lease_until for message in claimed)
    kinds = {message.kind for message in claimed}
    session = db.session()
    try:
        singles = [m for m in claimed if m.kind not in _batch_senders]
        # The claimed rows are ours and were just read: a commit per row need not expire them
        # all, which made each email reload its row (and the batch's others) with more SELECTs.
        with keeping_loaded():
            _deliver_claimed(singles, token, lease_until, counts)
            for kind in sorted(kinds & _batch_senders.keys()):
                rows = [m for m in claimed if m.kind == kind]
                for state, n in _batch_senders[kind](rows, Claim(token, lease_until)).items():
                    counts[state] = counts.get(state, 0) + n
    finally:
        # As a commit would have: a caller sharing this session must not read them stale.
        for message in claimed:
            session.expire(message)
        for kind in kinds:
            if kind in _closers:
                try:
                    _closers[kind]()
                except Exception as exc:  # closing a finished session must not fail the batch
                    log.warning("closing the %s sender failed: %s", kind, exc)
    return counts


def _deliver_claimed(
    claimed: list[OutboxMessage], token: str, lease_until: datetime, counts: dict[str, int]
) -> None:
    """Send the rows one by one, and finish them a group at a time: a commit is a disk flush,
    and one per row cost more than the sending. A worker killed mid-group sends that group's
    rows again after the lease (with the same Message-IDs), as the outbox allows."""
    group: list[tuple[OutboxMessage, dict]] = []
    started = begun = time.monotonic()
    for n, message in enumerate(claimed):
        if utcnow() >= lease_until:
            # The lease ran out mid-batch: another worker may hold the rest by now. Leave them;
            # they are claimable again, and the sweep hands them out.
            log.warning("outbox lease ran out mid-batch; %s and later rows left", message.id)
            break
        if time.monotonic() - begun >= SENDING_TIME.total_seconds():
            # Slow sends (a relay that times out): the rest were not tried, so they go back
            # with their attempt given back, for the next batch.
            if _finish(group, token, counts):
                _hand_back(claimed[n:], token)
            return
        try:
            transport = _senders[message.kind](message)
        except JobTimeoutException:
            raise  # the job's own time is up: the lease expires and the sweep hands rows out
        except Exception as exc:  # any failure of the side effect is retried, never lost
            log.warning("outbox %s attempt %d failed: %s", message.public_id, message.attempts, exc)
            values = failed_values(message, f"{type(exc).__name__}: {exc}")
        else:
            values = done_values(transport)
        group.append((message, values))
        if len(group) >= GROUP or time.monotonic() - started >= GROUP_SECONDS:
            if not _finish(group, token, counts):
                return
            group, started = [], time.monotonic()
    _finish(group, token, counts)


def _hand_back(untried: list[OutboxMessage], token: str) -> None:
    """Rows claimed but never tried: free again at once, their claim's attempt undone."""
    db.session.execute(
        update(OutboxMessage)
        .where(among(OutboxMessage.id, [m.id for m in untried]), OutboxMessage.claim_token == token)
        .values(
            state=case(
                (OutboxMessage.attempts <= 1, OutboxState.PENDING), else_=OutboxState.RETRYING
            ),
            attempts=OutboxMessage.attempts - 1,
            lease_until=None,
            claim_token=None,
            next_attempt_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    log.warning("outbox batch out of time; %d untried rows handed back", len(untried))


def _finish(group: list[tuple[OutboxMessage, dict]], token: str, counts: dict[str, int]) -> bool:
    """Mark a group's rows with their outcomes and commit, only while the claim still holds
    them all. Rows that end alike (the sent ones) share one UPDATE."""
    if not group:
        return True
    now = utcnow()
    alike: dict[tuple, list[int]] = {}
    done: dict[str, list[OutboxMessage]] = {}
    for message, values in group:
        if values["state"] == OutboxState.DONE:
            values = values | {"done_at": now}  # when the outcome was recorded, for the group
            done.setdefault(message.kind, []).append(message)
        alike.setdefault(tuple(sorted(values.items())), []).append(message.id)
    for kind, messages in done.items():
        if kind in _recorders:
            _recorders[kind](messages)
    finished = 0
    for items, ids in alike.items():
        finished += db.session.execute(
            update(OutboxMessage)
            .where(among(OutboxMessage.id, ids), OutboxMessage.claim_token == token)
            .values(dict(items))
            .execution_options(synchronize_session=False)
        ).rowcount
    if finished != len(group):
        # Another worker took rows over (our lease ran out): what the senders wrote (timeline
        # events) goes with this rollback; the new holder finishes the rows and writes its own.
        db.session.rollback()
        log.warning("outbox claim %s lost mid-batch; its rows are another worker's now", token)
        return False
    for _, values in group:
        counts[values["state"]] += 1
    db.session.commit()
    return True


def due_ids(limit: int = 10 * BATCH) -> list[int]:
    return list(
        db.session.scalars(
            select(OutboxMessage.id)
            .where(_claimable(utcnow()))
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
        )
    )


def sweep() -> int:
    """Hand every due, untaken row to RQ again; returns how many. A row whose last attempt
    never finished (its worker stopped, or the send outlived the lease) is dead now."""
    db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.state == OutboxState.SENDING,
            OutboxMessage.lease_until < utcnow(),
            OutboxMessage.attempts >= OutboxMessage.max_attempts,
        )
        .values(
            state=OutboxState.DEAD,
            lease_until=None,
            last_error="Its last attempt never finished: the worker stopped, or the sending "
            "outlived its lease.",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    ids = due_ids()
    if ids:
        enqueue(ids)
    return len(ids)


# --- retrying by hand ------------------------------------------------------------------------

RETRYABLE = (OutboxState.DEAD, OutboxState.RETRYING)


def requeue(
    *where: Any,
    states: Iterable[str] = RETRYABLE,
    limit: int | None = None,
    per_second: int | None = None,
) -> list[int]:
    """Put the rows matching where (dead or retrying ones only) back in line at once, with a
    fresh count of attempts, in the caller's transaction; returns the ids it reset.
    per_second spreads their due times, oldest first, so they go out at that rate: after
    commit each second's share is handed to RQ's scheduler for its own time (the sweep alone
    would hand out 30 seconds' worth at once, and still finds any the scheduler misses).

    The one way to retry by hand. The UPDATE is conditional on the state, so a row a worker is
    sending right now, or sent already, is left alone. The ids go to RQ when the caller commits,
    like a new row's, and a rollback forgets them.
    """
    states = list(states)
    chosen = select(OutboxMessage.id).where(*where, OutboxMessage.state.in_(states))
    if limit is not None:
        chosen = chosen.order_by(OutboxMessage.id).limit(limit)
    ids = list(
        db.session.scalars(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(chosen), OutboxMessage.state.in_(states))
            .values(
                state=OutboxState.PENDING,
                attempts=0,
                next_attempt_at=utcnow(),
                lease_until=None,
                claim_token=None,
            )
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    ids.sort()
    now_ids, later = ids, []
    if per_second and len(ids) > per_second:
        now = utcnow()
        shares = [ids[n : n + per_second] for n in range(0, len(ids), per_second)]
        db.session.execute(
            update(OutboxMessage.__table__)
            .where(OutboxMessage.__table__.c.id == bindparam("row_id"))
            .values(next_attempt_at=bindparam("due")),
            [
                {"row_id": id_, "due": now + timedelta(seconds=second)}
                for second, share in enumerate(shares)
                for id_ in share
            ],
        )
        now_ids = shares[0]
        later = [(now + timedelta(seconds=s), share) for s, share in enumerate(shares) if s]
    hand_off(now_ids)
    db.session.info.setdefault("outbox_later", []).extend(later)
    return ids
