"""The append-only event log: timelines, analytics and webhooks all read from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from plutomi.extensions import db
from plutomi.models.base import UTCDateTime, utcnow


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_created", "org_id", "created_at"),
        Index("ix_events_applicant_created", "applicant_id", "created_at"),
        # The board's live updates: what happened in this opening since event n.
        Index("ix_events_opening_id", "opening_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True
    )
    opening_id: Mapped[int | None] = mapped_column(
        ForeignKey("openings.id", ondelete="CASCADE"), nullable=True
    )
    applicant_id: Mapped[int | None] = mapped_column(
        ForeignKey("applicants.id", ondelete="CASCADE"), nullable=True
    )
    type: Mapped[str] = mapped_column(String(64))
    # user, applicant, rule, api_key or system; actor_id names the row of that kind.
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
