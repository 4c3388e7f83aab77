"""Bulk actions on the board that run as a job, with their progress."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime


class BulkState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BulkAction(PublicIdMixin, CreatedAtMixin, db.Model):
    """A move or reject of many applicants. The selection is frozen when it is asked for, so
    the job works through exactly what the recruiter saw counted."""

    __tablename__ = "bulk_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    action: Mapped[str] = mapped_column(String(16))  # move or reject
    target_stage_id: Mapped[int | None] = mapped_column(
        ForeignKey("stages.id", ondelete="CASCADE"), nullable=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    # [[applicant id, version seen or null], ...]
    selection: Mapped[list[Any]] = mapped_column(JSON, default=list)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default=BulkState.QUEUED)
    # The worker running it renews this; a lapsed lease means it died, and the sweep hands
    # the action out again. It resumes after the last committed chunk.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
