"""Openings and their ordered stages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime


class OpeningState(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CLOSED = "closed"


class Opening(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "openings"
    __table_args__ = (UniqueConstraint("org_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default=OpeningState.DRAFT)
    # Archived openings leave the lists but keep their applicants and history.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    stages: Mapped[list[Stage]] = relationship(
        back_populates="opening", order_by="Stage.position", passive_deletes=True
    )


class Stage(PublicIdMixin, CreatedAtMixin, db.Model):
    """A step of an opening. position orders the stages; gaps are allowed."""

    __tablename__ = "stages"
    __table_args__ = (Index("ix_stages_opening_position", "opening_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int]

    opening: Mapped[Opening] = relationship(back_populates="stages")


class StageCount(db.Model):
    """Active applicants per stage, kept by database triggers on applicants (see migration
    0005): every insert, move, reject, restore, withdrawal and delete adjusts it in the same
    transaction, whatever wrote the row, so the board reads a count instead of scanning a
    100,000-card stage. A stage without a row has no active applicants."""

    __tablename__ = "stage_counts"

    stage_id: Mapped[int] = mapped_column(
        ForeignKey("stages.id", ondelete="CASCADE"), primary_key=True
    )
    active: Mapped[int] = mapped_column(default=0)
