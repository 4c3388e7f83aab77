"""People who applied to an opening."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, func
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
        # A board column: the active cards of one stage in rank order, and its count, from
        # one index.
        Index("ix_applicants_board", "stage_id", "status", "rank", "id"),
        # The same person applying to another opening of the org: the duplicate flag.
        Index("ix_applicants_org_email", "org_id", "email"),
        # One application per email and opening, even when two submissions race.
        Index("ix_applicants_opening_email", "opening_id", "email", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: ix_applicants_org_email leads with org_id. Every stage entry rewrites
    # each index of the row (the board index changes), so each one spared is work spared.
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
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
    # Counts stage entries (1 on creation): a timer set for one entry is stale after the next.
    stage_entry: Mapped[int] = mapped_column(default=1, server_default="1")
    # Set by the unsubscribe link: only essential email is sent from then on.
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    opening: Mapped[Opening] = relationship()
    stage: Mapped[Stage] = relationship()


# The same name twice in one opening: the other half of the duplicate flag.
Index("ix_applicants_opening_name", Applicant.opening_id, func.lower(Applicant.name))


class Note(PublicIdMixin, CreatedAtMixin, db.Model):
    """A recruiter's plain-text note on an applicant; only its author edits it."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_applicant_created", "applicant_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id", ondelete="CASCADE"))
    # Kept when the author leaves the org; gone only if the user is deleted.
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApplicantTag(db.Model):
    """A free-form label on an applicant ("bilingual", "has van"); the board filters on it."""

    __tablename__ = "applicant_tags"
    __table_args__ = (Index("ix_applicant_tags_org_tag", "org_id", "tag"),)

    applicant_id: Mapped[int] = mapped_column(
        ForeignKey("applicants.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
