"""Stage rules that move applicants by themselves, and the timers of rules that wait."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime, utcnow
from plutomi.models.openings import Stage


class Trigger(StrEnum):
    STAGE_ENTERED = "stage_entered"
    ANSWERS_SUBMITTED = "answers_submitted"
    STAGE_COMPLETED = "stage_completed"
    TIME_IN_STAGE = "time_in_stage"
    EXTERNAL_EVENT = "external_event"


class Rule(PublicIdMixin, CreatedAtMixin, db.Model):
    """A trigger, conditions on answers and actions, in order within its stage.

    conditions: [{"question": <question public id>, "op": ..., "value": ...}], combined by
    `match` ("all" or "any"); an empty list always matches.
    actions: [{"type": "move", "stage": <stage public id>} | {"type": "email", "template":
    <template public id>} | {"type": "webhook", "event": "driver.approved"}].
    """

    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_stage_position", "stage_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(120))
    trigger: Mapped[str] = mapped_column(String(24))
    # time_in_stage: how long after entering the stage, and whether to act only when the
    # stage's required questions are still unanswered then.
    delay_minutes: Mapped[int | None] = mapped_column(nullable=True)
    only_if_incomplete: Mapped[bool] = mapped_column(default=False)
    # external_event: the outside event's type, such as account_creation.failed.
    event_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    match: Mapped[str] = mapped_column(String(3), default="all")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    stage: Mapped[Stage] = relationship()


class TimerState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


class Timer(db.Model):
    """A time rule waiting for one stage entry of one applicant. Written in the transaction
    that enters the stage; when due, it acts only if that same entry is still current."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_state_due", "state", "due_at"),
        Index("ix_timers_org_state_due", "org_id", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    applicant_id: Mapped[int] = mapped_column(
        ForeignKey("applicants.id", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"), index=True)
    # The applicant's stage_entry when the timer was set: a later entry makes it stale.
    stage_entry: Mapped[int]
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(12), default=TimerState.PENDING)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What happened when it came due: fired, stale, no_match, completed, failed.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
