"""People who applied to an opening."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime, utcnow
from plutomi.models.openings import Opening, Stage


class Applicant(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "applicants"
    __table_args__ = (
        # A board column: the cards of one stage in rank order.
        Index("ix_applicants_stage_rank", "stage_id", "rank"),
        Index("ix_applicants_opening_email", "opening_id", "email"),
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

    opening: Mapped[Opening] = relationship()
    stage: Mapped[Stage] = relationship()
