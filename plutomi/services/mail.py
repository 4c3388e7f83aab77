"""Queueing email: an outbox row in the caller's transaction, sent by an RQ job after commit."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template

from plutomi.extensions import db
from plutomi.models import OutboxMessage


def queue(
    to: str, subject: str, text: str, *, org_id: int | None, template: str, **extra: Any
) -> OutboxMessage:
    """An email's outbox row, added to the session (not committed); extra (an applicant_id, an
    unsubscribe link...) goes into its payload."""
    message = OutboxMessage(
        kind="email",
        org_id=org_id,
        payload={"to": to, "subject": subject, "text": text, "template": template, **extra},
    )
    db.session.add(message)
    return message


def queue_email(
    to: str, template: str, *, org_id: int | None = None, **context: Any
) -> OutboxMessage:
    """Render templates/email/<template>.txt (first line is the subject) into an outbox row."""
    context.setdefault("base_url", current_app.config["BASE_URL"])
    rendered = render_template(f"email/{template}.txt", **context)
    subject, _, body = rendered.strip().partition("\n")
    return queue(
        to,
        subject.removeprefix("Subject:").strip(),
        body.strip() + "\n",
        org_id=org_id,
        template=template,
    )
