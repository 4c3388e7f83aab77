"""Unsubscribing from an org's non-essential email, by a signed link in each email.

The link carries the applicant's public id signed with SECRET_KEY: the link is the
authentication (no login, no CSRF token), and it does not expire, as mail is read late.
Unsubscribing covers every application of that email address in the org, because the page
promises "no more non-essential email from <org>"; essential mail (an interview time, a
decision) is still sent.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import exists, select

from plutomi.extensions import db
from plutomi.models import Applicant, Org, utcnow
from plutomi.services.errors import NotFound
from plutomi.services.events import Actor, record_applicant
from plutomi.services.lookups import by_public_id

# Its own salt, so no other signed value of the app can pass for an unsubscribe token.
SALT = "plutomi.unsubscribe"
NOT_VALID = (
    "This unsubscribe link is not valid. Copy the whole link from the email, or reply to it."
)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def token_for(applicant: Applicant) -> str:
    return _serializer().dumps(applicant.public_id)


def link_for(applicant: Applicant) -> str:
    """The absolute link; built from BASE_URL, as it also runs in workers with no request."""
    return f"{current_app.config['BASE_URL']}/unsubscribe/{token_for(applicant)}"


def applicant_for(token: str) -> Applicant:
    """The applicant a link names, or NotFound for a forged, cut or stale one."""
    try:
        public_id = _serializer().loads(token)
    except (BadData, UnicodeError, ValueError) as exc:
        raise NotFound(NOT_VALID) from exc
    return by_public_id(select(Applicant), Applicant, public_id, NOT_VALID)


def org_of(applicant: Applicant) -> Org:
    return db.session.get(Org, applicant.org_id)


def is_unsubscribed(applicant: Applicant) -> bool:
    """Whether this person opted out of the org's non-essential mail, from any application."""
    if applicant.unsubscribed_at is not None:
        return True
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Applicant.org_id == applicant.org_id,
                    Applicant.email == applicant.email,
                    Applicant.unsubscribed_at.is_not(None),
                )
            )
        )
    )


def unsubscribe(applicant: Applicant) -> int:
    """Mark every application of this email in the org; idempotent. Returns how many rows
    changed (0 when they all had unsubscribed already). Commits."""
    now = utcnow()
    rows = db.session.scalars(
        select(Applicant).where(
            Applicant.org_id == applicant.org_id,
            Applicant.email == applicant.email,
            Applicant.unsubscribed_at.is_(None),
        )
    ).all()
    for row in rows:
        row.unsubscribed_at = now
        # The person who clicked is the actor on each of their applications' timelines.
        record_applicant("applicant.unsubscribed", row, actor=Actor.applicant(applicant))
    db.session.commit()
    return len(rows)
