"""Queueing email: an outbox row in the caller's transaction, sent by an RQ job after commit."""

from __future__ import annotations

from typing import Any

from flask import current_app

from plutomi.extensions import db
from plutomi.models import OutboxMessage


def row(
    to: str, subject: str, text: str, *, org_id: int | None, template: str, **extra: Any
) -> dict[str, Any]:
    """An email's outbox columns; extra (an applicant_id, an unsubscribe link...) goes into
    its payload."""
    return {
        "kind": "email",
        "org_id": org_id,
        "payload": {"to": to, "subject": subject, "text": text, "template": template, **extra},
    }


def rendered_row(to: str, template: str, *, org_id: int | None = None, **context: Any) -> dict:
    """row() of templates/email/<template>.txt rendered (its first line is the subject)."""
    context.setdefault("base_url", current_app.config["BASE_URL"])
    # Straight from the app's Jinja environment (url_for and config are its globals): an email
    # needs none of the page context, whose processors cost more than the email's own render.
    rendered = current_app.jinja_env.get_template(f"email/{template}.txt").render(context)
    subject, _, body = rendered.strip().partition("\n")
    return row(
        to,
        subject.removeprefix("Subject:").strip(),
        body.strip() + "\n",
        org_id=org_id,
        template=template,
    )


def _added(row: dict[str, Any]) -> OutboxMessage:
    message = OutboxMessage(**row)
    db.session.add(message)
    return message


def queue(
    to: str, subject: str, text: str, *, org_id: int | None, template: str, **extra: Any
) -> OutboxMessage:
    """An email's outbox row (row()), added to the session (not committed)."""
    return _added(row(to, subject, text, org_id=org_id, template=template, **extra))


def queue_email(
    to: str, template: str, *, org_id: int | None = None, **context: Any
) -> OutboxMessage:
    """The outbox row of templates/email/<template>.txt rendered (rendered_row())."""
    return _added(rendered_row(to, template, org_id=org_id, **context))
