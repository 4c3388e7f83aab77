"""Where an org's events are sent: webhook endpoints. Each delivery is an outbox row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime


class WebhookEndpoint(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    # The event types it wants, e.g. ["applicant.moved", "driver.approved"].
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Leave names, emails and answers out of payloads.
    include_personal_data: Mapped[bool] = mapped_column(default=True)
    # Signing secrets ("whsec_" + base64). Kept in the clear: signing needs them. After a
    # rotation the previous one signs too until previous_secret_expires_at.
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True
    )
    # When the current run of failed attempts began (None while it succeeds), and why it
    # was turned off, when it was by us rather than by a person.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
