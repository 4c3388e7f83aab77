"""Bulk moves and rejections from the board.

A small selection is done at once, in the request's transaction. A large one becomes a
BulkAction row, frozen with the ids (and versions) it covers, and an RQ job works through it
in chunks: each chunk's moves, their events and the progress counter commit together, so a
worker killed mid-way resumes after the last committed chunk and no applicant moves twice.
The hand-off to RQ is best effort; the periodic sweep re-enqueues queued actions and those
whose worker's lease ran out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import or_, select, update

from plutomi import ranks
from plutomi.extensions import db, queues
from plutomi.models import (
    Applicant,
    ApplicantStatus,
    BulkAction,
    BulkState,
    Membership,
    Opening,
    Role,
    Stage,
    utcnow,
)
from plutomi.models.base import MAX_INT, is_public_id
from plutomi.services import board as boards
from plutomi.services import moves
from plutomi.services.errors import Invalid
from plutomi.services.events import Actor
from plutomi.services.openings import get_stage, stages_of
from plutomi.services.orgs import require

log = logging.getLogger(__name__)

# Up to this many applicants are done in the request; more go to a job.
SYNC_LIMIT = 100
CHUNK = 250
LEASE = timedelta(minutes=2)
# A queued action nobody took for this long is handed out again by the sweep.
UNTAKEN = timedelta(seconds=30)
ACTIONS = ("move", "reject")


@dataclass(frozen=True)
class Summary:
    action: str
    done: int
    skipped: int
    stage_name: str | None = None


def _is_version(text: str) -> bool:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    return text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= MAX_INT


def _selection(opening: Opening, values: list[str]) -> list[list[int | None]]:
    """ "public_id:version" values from the board's checkboxes, as [id, version] in the order
    given; a card of another opening or org is refused."""
    wanted: dict[str, int | None] = {}
    for value in values:
        public_id, _, version = value.partition(":")
        if not is_public_id(public_id) or (version and not _is_version(version)):
            raise Invalid("The selection holds a card this board does not know.", "selected")
        wanted.setdefault(public_id, int(version) if version else None)
    found = dict(
        db.session.execute(
            select(Applicant.public_id, Applicant.id).where(
                Applicant.org_id == opening.org_id,
                Applicant.opening_id == opening.id,
                Applicant.public_id.in_(list(wanted)),
            )
        ).all()
    )
    if len(found) != len(wanted):
        raise Invalid("The selection holds a card this board does not know.", "selected")
    return [[found[public_id], version] for public_id, version in wanted.items()]


def start(
    actor: Membership,
    opening: Opening,
    *,
    action: str,
    stage_id: str | None = None,
    reason: str = "",
    selected: list[str] | None = None,
    all_in_stage: str | None = None,
    board_filter: boards.BoardFilter | None = None,
) -> Summary | BulkAction:
    """Move or reject the selected cards, or every card of a stage under the board's filter.
    Returns what was done, or the BulkAction a job now carries out."""
    require(actor, Role.RECRUITER)
    if opening.org_id != actor.org_id:  # the caller looked it up in the org; a guard
        raise Invalid("No such opening.", "opening")
    if action not in ACTIONS:
        raise Invalid("Choose move or reject.", "action")
    target = None
    if action == "move":
        if not stage_id:
            raise Invalid("Choose the stage to move them to.", "stage")
        target = get_stage(opening, stage_id)
    reason = moves.clean_reason(reason) if action == "reject" else ""
    if all_in_stage:
        source = get_stage(opening, all_in_stage)
        # Every card under the filter, as it is now: no version to hold them to.
        selection = [
            [id_, None] for id_ in boards.select_all(source, board_filter or boards.BoardFilter())
        ]
    else:
        selection = _selection(opening, selected or [])
    if not selection:
        raise Invalid("Select at least one applicant.", "selected")
    if len(selection) <= SYNC_LIMIT:
        done, skipped = _apply(
            opening, Actor.user(actor.user), action, target, reason, selection, bulk_id=None
        )
        db.session.commit()
        return Summary(action, done, skipped, target.name if target else None)
    bulk = BulkAction(
        org_id=opening.org_id,
        opening_id=opening.id,
        user_id=actor.user_id,
        action=action,
        target_stage_id=target.id if target else None,
        reason=reason,
        selection=selection,
        total=len(selection),
    )
    db.session.add(bulk)
    db.session.commit()
    enqueue(bulk)
    return bulk


def enqueue(bulk: BulkAction) -> None:
    if current_app.config.get("OUTBOX_HANDOFF") is False:
        return
    try:
        queues.queue().enqueue(
            "jobs.bulk.run",
            bulk.id,
            job_id=f"bulk-{bulk.public_id}",
            job_timeout=3600,
            result_ttl=60,
            failure_ttl=24 * 3600,
        )
    except RedisError:
        log.warning("Redis unavailable; bulk action %s waits for the sweep", bulk.public_id)


def _apply(
    opening: Opening,
    actor: Actor,
    action: str,
    target: Stage | None,
    reason: str,
    items: list[list[int | None]],
    bulk_id: str | None,
) -> tuple[int, int]:
    """Carry out one chunk in the current transaction: (done, skipped). An applicant that
    changed since it was selected (another version), left the board or already sits in the
    target stage is skipped, never overwritten."""
    applicants = {
        a.id: a
        for a in db.session.scalars(
            select(Applicant).where(
                Applicant.org_id == opening.org_id,
                Applicant.opening_id == opening.id,
                Applicant.id.in_([id_ for id_, _ in items]),
            )
        )
    }
    stages = {stage.id: stage for stage in stages_of(opening)}
    # Marks each event as part of a bulk action (the job's public id, or true when done at once).
    payload = {"bulk": bulk_id or True}
    last = None
    if target is not None:
        last = moves.last_rank(target.id)
    done = skipped = 0
    for id_, version in items:
        applicant = applicants.get(id_)
        if (
            applicant is None
            or applicant.status != ApplicantStatus.ACTIVE
            or (version is not None and version != applicant.version)
            or (target is not None and applicant.stage_id == target.id)
        ):
            skipped += 1
            continue
        if target is not None:
            last = ranks.after(last)
            ok = moves.place(
                applicant,
                stages[applicant.stage_id],
                target,
                last,
                actor=actor,
                version=applicant.version,
                **payload,
            )
        else:
            ok = moves.set_status(
                applicant,
                ApplicantStatus.REJECTED,
                actor=actor,
                version=applicant.version,
                reason=reason,
            )
        if ok:
            done += 1
        else:
            skipped += 1
    return done, skipped


def _claim(bulk_id: int) -> bool:
    now = utcnow()
    result = db.session.execute(
        update(BulkAction)
        .where(
            BulkAction.id == bulk_id,
            or_(
                BulkAction.state == BulkState.QUEUED,
                (BulkAction.state == BulkState.RUNNING) & (BulkAction.lease_until < now),
            ),
        )
        .values(state=BulkState.RUNNING, lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def run(bulk_id: int) -> str:
    """The job: claim the action, then work through it chunk by chunk."""
    if not _claim(bulk_id):
        return "not claimed"
    bulk = db.session.get(BulkAction, bulk_id)
    opening = db.session.get(Opening, bulk.opening_id)
    target = db.session.get(Stage, bulk.target_stage_id) if bulk.target_stage_id else None
    actor = Actor("user", bulk.user_id)
    while bulk.done + bulk.skipped < bulk.total:
        start_at = bulk.done + bulk.skipped
        chunk = bulk.selection[start_at : start_at + CHUNK]
        done, skipped = _apply(
            opening, actor, bulk.action, target, bulk.reason, chunk, bulk_id=bulk.public_id
        )
        # Progress and the chunk's moves commit together; the lease check makes a worker whose
        # lease was taken over stop instead of doing the chunk a second time.
        result = db.session.execute(
            update(BulkAction)
            .where(BulkAction.id == bulk.id, BulkAction.done + BulkAction.skipped == start_at)
            .values(
                done=BulkAction.done + done,
                skipped=BulkAction.skipped + skipped,
                lease_until=utcnow() + LEASE,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            db.session.rollback()
            return "taken over"
        db.session.commit()
        db.session.refresh(bulk)
    bulk.state = BulkState.DONE
    bulk.finished_at = utcnow()
    bulk.lease_until = None
    db.session.commit()
    return "done"


def sweep() -> int:
    """Hand out again the actions nobody took, or whose worker died."""
    now = utcnow()
    stuck = list(
        db.session.scalars(
            select(BulkAction).where(
                or_(
                    (BulkAction.state == BulkState.QUEUED)
                    & (BulkAction.created_at < now - UNTAKEN),
                    (BulkAction.state == BulkState.RUNNING) & (BulkAction.lease_until < now),
                )
            )
        )
    )
    for bulk in stuck:
        enqueue(bulk)
    return len(stuck)


def progress(bulk: BulkAction) -> int:
    """Percent done, for the progress bar."""
    return 100 if not bulk.total else int(100 * (bulk.done + bulk.skipped) / bulk.total)
