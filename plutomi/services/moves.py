"""Moving applicants between and within stages; rejecting and restoring them.

A move names the target stage, the card it lands next to and the version its client saw. It is
one transaction: a conditional UPDATE (the version must still match, so no update is lost), an
event, and whatever entering the stage causes. Rank keys come from plutomi.ranks: a card lands
between its neighbours without the column being renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from plutomi import ranks
from plutomi.extensions import commit_keeping_loaded, db
from plutomi.models import (
    ApiKey,
    Applicant,
    ApplicantStatus,
    Event,
    Membership,
    Question,
    Role,
    Stage,
    StageCount,
    utcnow,
)
from plutomi.models.base import UTCDateTime, is_public_id
from plutomi.services import cards, inserts, rules, throttle, webhooks
from plutomi.services.errors import Conflict, Invalid, NotFound
from plutomi.services.events import Actor, applicant_row, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, has_control_characters
from plutomi.services.lookups import by_public_id, inline
from plutomi.services.orgs import require

REASON_LIMIT = 500
# A recruiter dragging fast makes a few moves a second; a script or a stuck key makes more.
MOVES_PER_WINDOW = 60
MOVE_WINDOW_SECONDS = 10


@dataclass(frozen=True)
class Moved:
    applicant: Applicant
    from_stage: Stage
    to_stage: Stage
    # A rule of to_stage moved the applicant on at once (they are elsewhere now).
    moved_on: bool = False
    # The active cards of from_stage and to_stage after the move, where the move read their
    # counters (a move by id does, in the statement that reads the applicant).
    counts: dict[int, int] | None = None
    # The move's read, with cards.dressing()'s columns when the caller asked for them.
    dressing: Any = None

    @property
    def changed_stage(self) -> bool:
        return self.from_stage.id != self.to_stage.id


def get_applicant(actor: Membership, applicant_id: str) -> Applicant:
    scope = select(Applicant).where(Applicant.org_id == actor.org_id)
    return by_public_id(scope, Applicant, applicant_id, "No such applicant in this org.")


def _target_stage(
    org_id: int, stage_id: str, stages: list[Stage] | None = None, opening_id: int | None = None
) -> Stage:
    """The stage a move goes to. `stages`: the opening's, when the caller has read them; a
    stage not among them is looked up in the org, to say why it cannot be the target.
    `opening_id`: the applicant's opening, where it is known already."""
    for stage in stages or ():
        if stage.public_id == stage_id:
            return stage
    scope = select(Stage).where(Stage.org_id == org_id)
    stage = by_public_id(scope, Stage, stage_id, "No such stage.")
    if stages or (opening_id is not None and stage.opening_id != opening_id):
        raise _other_opening()
    return stage


def _other_opening() -> Invalid:
    return Invalid("That stage belongs to another opening.", "stage")


def _stale(name: str) -> Conflict:
    return Conflict(
        f"{name} was moved or changed by someone else meanwhile, so nothing was done:"
        " see where they are now, and try again if it still makes sense.",
        code="version_conflict",
    )


def _check_version(applicant: Applicant, version: int | None) -> None:
    if version is not None and version != applicant.version:
        raise _stale(applicant.name)


def _check_active(applicant: Applicant) -> None:
    if applicant.status != ApplicantStatus.ACTIVE:
        raise Conflict(
            f"{applicant.name} is {applicant.status} now; "
            + (
                "restore them first."
                if applicant.status == "rejected"
                else "a withdrawn application cannot be changed."
            ),
            code="not_active",
        )


# --- ranks ---------------------------------------------------------------------------------


def column_end(stage_id: ColumnElement, *, last: bool, excluding: ColumnElement | None = None):
    """The first (or last) rank among the active cards of the stage `stage_id`, but the
    applicant `excluding` when given, as one step along the board index. ORDER BY ...
    LIMIT 1 rather than min() or max(): the planner walks the index for it even when its
    statistics are stale (a fresh stage), where an aggregate may count the whole stage. The
    LIMIT is written in (lookups.inline), so a statement holding this is planned once."""
    query = select(Applicant.rank).where(
        Applicant.stage_id == stage_id, Applicant.status == ApplicantStatus.ACTIVE
    )
    if excluding is not None:
        query = query.where(Applicant.id != excluding)
    return query.order_by(Applicant.rank.desc() if last else Applicant.rank).limit(inline(1))


# Built once, as a move's other statements are: building one cost about what the database
# took to run it.
_LAST_RANK = column_end(bindparam("stage_id"), last=True)


def last_rank(stage_id: int) -> str | None:
    """The rank at the bottom of a stage's active column, or None when it is empty (only the
    active cards hold the column's order)."""
    return db.session.scalar(_LAST_RANK, {"stage_id": stage_id})


def _counter(stage_id: ColumnElement) -> ColumnElement:
    return select(StageCount.active).where(StageCount.stage_id == stage_id).scalar_subquery()


@cache
def _drop(side: str | None, dressing_for: str | None = None) -> Select:
    """A move's applicant (`applicant_id` in the org `org_id`) with all else the move reads,
    in one statement: the counters of the stage it leaves and of the stage `stage_id` it
    enters, before the move; then, dropped `side` ("after" or "before") the card
    `neighbour_id`, that card's id, name, stage, status and rank and the rank on its other
    side, or else the first rank of the column; each bound among the active cards of the
    stage but the moved one. dressing_for: a dialect, to end the row with the card's
    cards.dressing() columns."""
    moved = aliased(Applicant, name="moved")
    stage_id = bindparam("stage_id")
    query = select(moved, _counter(moved.stage_id), _counter(stage_id)).where(
        moved.org_id == bindparam("org_id"), moved.public_id == bindparam("applicant_id")
    )
    if side is None:
        top = column_end(stage_id, last=False, excluding=moved.id)
        query = query.add_columns(top.scalar_subquery())
    else:
        n = aliased(Applicant, name="neighbour")
        if side == "after":
            other = column_end(stage_id, last=False, excluding=moved.id)
            other = other.where(Applicant.rank > n.rank)
        else:
            other = column_end(stage_id, last=True, excluding=moved.id)
            other = other.where(Applicant.rank < n.rank)
        query = query.add_columns(
            n.id, n.name, n.stage_id, n.status, n.rank, other.scalar_subquery()
        ).outerjoin(
            n,
            and_(
                n.org_id == moved.org_id,
                n.opening_id == moved.opening_id,
                n.public_id == bindparam("neighbour_id"),
            ),
        )
    if dressing_for is not None:
        query = query.add_columns(*cards.dressing(moved, dressing_for))
    return query


def _read_drop(
    org_id: int,
    applicant_id: str,
    stage_id: int,
    after_id: str | None,
    before_id: str | None,
    card_questions: list[Question] | None = None,
):
    """_drop()'s row for this move, or None when the org has no such applicant (a malformed
    id never reaches the database; a malformed neighbour id matches no card). card_questions:
    read the card's dressing too, with the answers to these."""
    if not is_public_id(applicant_id):
        return None
    neighbour_id = after_id or before_id
    dialect = None if card_questions is None else db.engine.dialect.name
    return db.session.execute(
        _drop("after" if after_id else "before" if before_id else None, dialect),
        {
            "org_id": org_id,
            "applicant_id": applicant_id,
            "stage_id": stage_id,
            "neighbour_id": neighbour_id if is_public_id(neighbour_id) else None,
            "card_questions": [q.id for q in card_questions or ()],
        },
    ).first()


def _bounds(
    applicant: Applicant, stage: Stage, after_id: str | None, before_id: str | None, drop
) -> tuple[str | None, str | None]:
    """The ranks the card must land between: after the card above it if given, else before
    the card below it, else at the top of the column. The other bound is read from the
    database (`drop`: the row of _read_drop()), not trusted from the client, so a stale page
    cannot produce a wrong order."""
    if not (after_id or before_id):
        return None, drop[3]
    id_, name, stage_id, status, rank, bound = drop[3:9]
    if id_ is None:
        raise Invalid("The card it was dropped next to is not on this board.", "after")
    if id_ == applicant.id:
        raise Invalid("A card cannot be placed next to itself.", "after")
    if stage_id != stage.id or status != ApplicantStatus.ACTIVE:
        # The neighbour moved meanwhile: this board is out of date.
        raise _stale(name)
    return (rank, bound) if after_id else (bound, rank)


def respread(stage: Stage) -> None:
    """Give every card of the stage a fresh, short key in its current order. Needed only after
    some hundreds of drops into the very same gap; one UPDATE per card, in one transaction."""
    ids = list(
        db.session.scalars(
            select(Applicant.id)
            .where(Applicant.stage_id == stage.id)
            .order_by(Applicant.status, Applicant.rank, Applicant.id)
        )
    )
    if ids:
        db.session.execute(
            update(Applicant),
            [
                {"id": id_, "rank": key}
                for id_, key in zip(ids, ranks.spread(len(ids)), strict=True)
            ],
        )


def _rank(applicant: Applicant, stage: Stage, after_id: str | None, before_id: str | None, drop):
    low, high = _bounds(applicant, stage, after_id, before_id, drop)
    try:
        return ranks.between(low, high)
    except ValueError:
        respread(stage)
        drop = _read_drop(applicant.org_id, applicant.public_id, stage.id, after_id, before_id)
        low, high = _bounds(applicant, stage, after_id, before_id, drop)
        return ranks.between(low, high)


# --- moves ---------------------------------------------------------------------------------


def _entry_values(stage_id: int, entry: int, now) -> dict:
    """What entering a stage sets on the applicant row, besides its rank and version."""
    return {
        "stage_id": stage_id,
        "entered_stage_at": now,
        "stage_completed_at": None,
        "stage_entry": entry,
    }


@cache
def _conditional_update(keys: tuple[str, ...]) -> Update:
    """The UPDATE of _write() for these columns (each set from the parameter new_<column>),
    built once per set of columns."""
    # On the table, not the entity: the ORM's bulk UPDATE path cost more than the statement,
    # and the caller sets what was written on the loaded applicant itself.
    table = Applicant.__table__
    return (
        update(table)
        .where(
            table.c.id == bindparam("applicant_id"),
            table.c.version == bindparam("read_version"),
            table.c.status == ApplicantStatus.ACTIVE,
        )
        .values({key: bindparam(f"new_{key}") for key in keys} | {"version": table.c.version + 1})
    )


_EVENTS = Event.__table__
_EVENT_COLUMNS = ("org_id", "opening_id", "type", "actor_type", "actor_id", "payload", "created_at")


@cache
def _write_recorded(keys: tuple[str, ...]) -> Insert:
    """PostgreSQL: _conditional_update(keys) and the move's event in one statement, the event
    (each column from the parameter event_<column>) inserted only if the UPDATE wrote the
    row; returns the event's id, or no row."""
    written = _conditional_update(keys).returning(Applicant.__table__.c.id).cte("written")
    row = select(
        *(bindparam(f"event_{name}", type_=_EVENTS.c[name].type) for name in _EVENT_COLUMNS),
        written.c.id,
    )
    return (
        insert(_EVENTS).from_select([*_EVENT_COLUMNS, "applicant_id"], row).returning(_EVENTS.c.id)
    )


def _write_and_record(
    applicant: Applicant, version: int, values: dict, type_: str, actor: Actor, payload: dict
) -> bool:
    """A move's conditional UPDATE (_write) and its event, recorded only if it wrote. On
    PostgreSQL in one statement: the event costs neither a round trip of its own nor a flush
    of the unit of work."""
    event = applicant_row(type_, applicant, actor=actor, **payload)
    if db.engine.dialect.name != "postgresql":
        if not _write(applicant.id, version, values):
            return False
        inserts.rows([(_EVENTS, [event])])
        return True
    db.session.flush()  # what was recorded before this move keeps its place before its event
    written = db.session.execute(
        _write_recorded(tuple(values)),
        {"applicant_id": applicant.id, "read_version": version}
        | {f"new_{key}": value for key, value in values.items()}
        | {f"event_{name}": event[name] for name in _EVENT_COLUMNS},
    ).first()
    if written is None:
        return False
    webhooks.note([event])
    return True


def _write(applicant_id: int, version: int, values: dict) -> bool:
    """The conditional UPDATE of every move: `values` and the next version, only while the
    applicant still holds the version it was read with and is active, so a change committed
    in between is never overwritten."""
    result = db.session.execute(
        _conditional_update(tuple(values)),
        {"applicant_id": applicant_id, "read_version": version}
        | {f"new_{key}": value for key, value in values.items()},
    )
    return result.rowcount == 1


def stage_fields(from_stage: Stage, to_stage: Stage) -> dict[str, str]:
    """The stages an applicant.moved event names, however the move was written."""
    return {
        "from_stage": from_stage.name,
        "to_stage": to_stage.name,
        "from_stage_id": from_stage.public_id,
        "to_stage_id": to_stage.public_id,
    }


@dataclass(frozen=True)
class Entry:
    """One applicant entering a stage, for enter_many."""

    applicant_id: int
    version: int  # as read: written only if it still holds
    stage_id: int
    rank: str
    entry: int  # the stage entry this makes


# enter_many on PostgreSQL: place()'s conditional UPDATE for many rows in one statement;
# RETURNING says which were written.
_ENTER_MANY = text(
    "UPDATE applicants SET stage_id = m.stage_id, rank = m.rank,"
    " version = applicants.version + 1, entered_stage_at = :now, stage_completed_at = NULL,"
    " stage_entry = m.entry"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:versions AS integer[]),"
    " CAST(:stages AS integer[]), CAST(:ranks AS varchar[]), CAST(:entries AS integer[]))"
    " AS m(id, version, stage_id, rank, entry)"
    " WHERE applicants.id = m.id AND applicants.version = m.version"
    " AND applicants.status = :active"
    " RETURNING applicants.id"
).bindparams(bindparam("now", type_=UTCDateTime()))


# The stage counters a batch of entries will change, locked first and in one order: the
# triggers of one UPDATE lock them row by row, so two batches at once (two timer lanes)
# could otherwise each hold one counter the other waits for.
_LOCK_COUNTS = text(
    "SELECT stage_id FROM stage_counts WHERE stage_id = ANY(CAST(:stages AS integer[]))"
    " OR stage_id IN (SELECT stage_id FROM applicants WHERE id = ANY(CAST(:ids AS integer[])))"
    " ORDER BY stage_id FOR UPDATE"
)


def enter_many(entries: list[Entry]) -> set[int]:
    """Write many stage entries at once, each under the same condition as place()'s; returns
    the ids of the applicants written. The caller records their events and runs the rules of
    the stages entered (a batch of due timers does, in rules._Chunk). The caller commits."""
    now = utcnow()
    if db.engine.dialect.name == "postgresql":
        ids = [e.applicant_id for e in entries]
        targets = sorted({e.stage_id for e in entries})
        db.session.execute(_LOCK_COUNTS, {"stages": targets, "ids": ids})
        rows = db.session.execute(
            _ENTER_MANY,
            {
                "now": now,
                "active": ApplicantStatus.ACTIVE.value,
                "ids": ids,
                "versions": [e.version for e in entries],
                "stages": [e.stage_id for e in entries],
                "ranks": [e.rank for e in entries],
                "entries": [e.entry for e in entries],
            },
        )
        return set(rows.scalars())
    # SQLite runs in-process: one statement per row costs no round trips.
    return {
        e.applicant_id
        for e in entries
        if _write(
            e.applicant_id,
            e.version,
            {"rank": e.rank} | _entry_values(e.stage_id, e.entry, now),
        )
    }


def place(
    applicant: Applicant,
    from_stage: Stage,
    to_stage: Stage,
    rank: str,
    *,
    actor: Actor,
    version: int,
    chain: int = 0,
    **payload,
) -> Moved | None:
    """Write one move: the conditional UPDATE, its event, and the rules of the stage entered.
    None, with nothing written, when the applicant no longer holds `version` or is no longer
    active: a change committed in between is never overwritten. chain counts the automatic
    moves that led here. The caller commits."""
    changed = from_stage.id != to_stage.id
    values = {"rank": rank}
    if changed:
        # The version condition below guarantees no entry happened since this was read.
        entry = applicant.stage_entry + 1
        values |= _entry_values(to_stage.id, entry, utcnow())
    if changed:
        type_, fields = "applicant.moved", stage_fields(from_stage, to_stage)
    else:
        type_, fields = "applicant.reordered", {"stage": to_stage.name}
    if not _write_and_record(applicant, version, values, type_, actor, fields | payload):
        return None
    # The loaded applicant becomes the row as the UPDATE left it, so nothing reads it back
    # (the rules run next, and a board's answer draws the card from it).
    for key, value in (values | {"version": version + 1}).items():
        set_committed_value(applicant, key, value)
    if changed:
        set_committed_value(applicant, "stage", to_stage)
    moved_on = changed and rules.entered(applicant, to_stage, entry=entry, chain=chain)
    return Moved(applicant, from_stage, to_stage, moved_on)


def throttle_moves(actor: Membership, count: int = 1) -> None:
    throttle.rate_limit(
        f"moves:{actor.user_id}",
        MOVES_PER_WINDOW,
        MOVE_WINDOW_SECONDS,
        "You are moving applicants faster than the board allows. Your move will be retried.",
        cost=count,
    )


def move(
    actor: Membership,
    applicant_id: str,
    stage_id: str,
    *,
    after: str | None = None,
    before: str | None = None,
    version: int | None = None,
    stages: list[Stage] | None = None,
    commit: bool = True,
    dress: list[Question] | None = None,
) -> Moved:
    """Move an applicant to a stage of its opening (or within its stage), next to `after`
    (the card above) or `before` (the card below), or to the top when neither is given.
    stages: the opening's, when the caller has read them (a board has): the stage the
    applicant leaves and the one it enters are then found without a query. The applicant,
    the neighbour and the bound on its other side, and both stages' counters are read in
    one statement. commit: False leaves the transaction open for the caller, to read what
    its answer needs before commit_keeping_loaded() (a board's answer: the card). dress: the
    board's card questions, to read the card's dressing in that statement too (Moved.dressing,
    for board.moved_card)."""
    require(actor, Role.RECRUITER)
    throttle_moves(actor)
    stage = _target_stage(actor.org_id, stage_id, stages)
    row = _read_drop(actor.org_id, applicant_id, stage.id, after, before, dress)
    if row is None:
        raise NotFound("No such applicant in this org.")
    applicant, left, entered = row[:3]
    if stage.opening_id != applicant.opening_id:
        raise _other_opening()
    moved = _move(applicant, stage, after, before, version, Actor.user(actor.user), row, commit)
    if moved.moved_on:
        return moved
    left, entered = left or 0, entered or 0
    if moved.changed_stage:
        counts = {moved.from_stage.id: left - 1, stage.id: entered + 1}
    else:
        counts = {stage.id: entered}
    return replace(moved, counts=counts, dressing=row if dress is not None else None)


def _move(
    applicant: Applicant,
    stage: Stage,
    after: str | None,
    before: str | None,
    version: int | None,
    actor: Actor,
    drop,
    commit: bool = True,
) -> Moved:
    """The checks and the write every single move makes, whoever asked for it; commits
    unless told not to. drop: the move's _read_drop() row."""
    _check_active(applicant)
    _check_version(applicant, version)
    moved = place(
        applicant,
        applicant.stage,
        stage,
        _rank(applicant, stage, after, before, drop),
        actor=actor,
        version=applicant.version,
    )
    if moved is None:
        db.session.rollback()
        raise _stale(applicant.name)
    # A move's answer reads the stages, the opening, the member and the applicant right
    # after; this transaction changed none of them but the applicant, which place() left as
    # its UPDATE wrote it.
    if commit:
        commit_keeping_loaded()
    return moved


def move_by_api(key: ApiKey, applicant: Applicant, stage_id: str, *, version: int | None) -> Moved:
    """An API client moves an applicant of its key's org (the caller found it in that org and
    checked the key may write) to the top of a stage of the applicant's opening. A stage id
    that is not one of the opening's is bad input (field stage_id), not a missing page."""
    if applicant.org_id != key.org_id:
        raise NotFound("No such applicant in this org.")
    try:
        stage = _target_stage(applicant.org_id, stage_id, opening_id=applicant.opening_id)
    except NotFound:
        raise Invalid("No stage of the applicant's opening has this id.", "stage_id") from None
    except Invalid as exc:
        raise Invalid(exc.message, "stage_id") from None
    drop = _read_drop(key.org_id, applicant.public_id, stage.id, None, None)
    return _move(applicant, stage, None, None, version, Actor.api_key(key), drop)


# --- reject and restore --------------------------------------------------------------------


def clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > REASON_LIMIT:
        raise Invalid(f"Keep the reason under {REASON_LIMIT} characters.", "reason")
    if has_control_characters(reason.replace("\r\n", "\n").replace("\n", "")):
        raise Invalid(CONTROL_CHARACTER, "reason")
    return reason


def set_status(
    applicant: Applicant,
    status: ApplicantStatus,
    *,
    actor: Actor,
    version: int | None = None,
    reason: str = "",
) -> bool:
    """Reject (from active) or restore (from rejected) one applicant with a conditional UPDATE;
    False when it no longer holds the version or status it was read with. The caller commits."""
    was = ApplicantStatus.ACTIVE if status == ApplicantStatus.REJECTED else ApplicantStatus.REJECTED
    result = db.session.execute(
        update(Applicant)
        .where(
            Applicant.id == applicant.id,
            Applicant.version == (applicant.version if version is None else version),
            Applicant.status == was,
        )
        .values(status=status, version=Applicant.version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.expire(applicant)
    if status == ApplicantStatus.REJECTED:
        record_applicant("applicant.rejected", applicant, actor=actor, reason=reason or None)
    else:
        record_applicant("applicant.restored", applicant, actor=actor)
    return True


def reject(
    actor: Membership, applicant_id: str, reason: str | None = None, version: int | None = None
) -> Applicant:
    require(actor, Role.RECRUITER)
    applicant = get_applicant(actor, applicant_id)
    reason = clean_reason(reason)
    _check_active(applicant)
    _check_version(applicant, version)
    if not set_status(
        applicant, ApplicantStatus.REJECTED, actor=Actor.user(actor.user), reason=reason
    ):
        db.session.rollback()
        raise _stale(applicant.name)
    db.session.commit()
    return applicant


def restore(actor: Membership, applicant_id: str, version: int | None = None) -> Applicant:
    require(actor, Role.RECRUITER)
    applicant = get_applicant(actor, applicant_id)
    if applicant.status != ApplicantStatus.REJECTED:
        raise Conflict(f"{applicant.name} is not rejected.")
    _check_version(applicant, version)
    if not set_status(applicant, ApplicantStatus.ACTIVE, actor=Actor.user(actor.user)):
        db.session.rollback()
        raise _stale(applicant.name)
    rules.rearm_timers(applicant)
    db.session.commit()
    return applicant
