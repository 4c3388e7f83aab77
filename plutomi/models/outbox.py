"""Side effects (emails, webhook deliveries) written in the transaction that causes them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime, utcnow


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    RETRYING = "retrying"
    DEAD = "dead"


class OutboxMessage(PublicIdMixin, CreatedAtMixin, db.Model):
    """One side effect to carry out at least once.

    public_id is the stable id that travels with the effect (the email's Message-ID, the
    webhook-id), so a receiver can drop the rare duplicate.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt", "state", "next_attempt_at"),
        # The operations page counts one org's rows by state (and what was sent lately).
        Index("ix_outbox_org_state", "org_id", "state", "done_at"),
        # An endpoint's delivery log, newest first, and its dead rows to replay.
        Index("ix_outbox_endpoint_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int | None] = mapped_column(
        ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=6)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Where it went: "smtp", or "mailbox" when mail is captured for the dev mailbox.
    transport: Mapped[str | None] = mapped_column(String(16), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Webhook deliveries: the endpoint, and what it last answered (status, the body's start).
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=True
    )
    response_status: Mapped[int | None] = mapped_column(nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
