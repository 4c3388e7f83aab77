"""People who applied to an opening."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime, utcnow
from plutomi.models.openings import Opening, Stage


class ApplicantStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


class Applicant(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "applicants"
    __table_args__ = (
        # A board column: the cards of one stage in rank order.
        Index("ix_applicants_stage_rank", "stage_id", "rank"),
        # One application per email and opening, even when two submissions race.
        Index("ix_applicants_opening_email", "opening_id", "email", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    # A sortable key within the stage: a card can land between two others without
    # rewriting the column.
    rank: Mapped[str] = mapped_column(String(64))
    entered_stage_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Optimistic locking: a move names the version its client saw.
    version: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default=ApplicantStatus.ACTIVE)
    # Set when every required question of the current stage is answered; cleared on a move.
    stage_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    opening: Mapped[Opening] = relationship()
    stage: Mapped[Stage] = relationship()
