"""Which applicant this browser is signed in as.

Applicants have no password: the portal stores their public id in the (signed) session once a
valid link was followed, or when this browser has just applied. It opens their own application
and nothing else.

Applying proves nothing about the email typed in: anyone may apply in another person's name.
So a session begun by applying lasts only until a link of that application is followed, which
proves it; the person who owns the address then reads their answers and files alone.
"""

from __future__ import annotations

from datetime import datetime

from flask import g, session
from sqlalchemy import exists, select

from plutomi.extensions import db
from plutomi.models import Applicant, MagicLink, utcnow

SESSION_KEY = "applicant"
UNPROVEN_KEY = "applicant_unproven_since"


def sign_in(applicant: Applicant, *, proven: bool = True) -> None:
    """proven: the browser followed an emailed link; otherwise it has only applied."""
    session[SESSION_KEY] = applicant.public_id
    if proven:
        session.pop(UNPROVEN_KEY, None)
    else:
        session[UNPROVEN_KEY] = utcnow().isoformat()
    g.applicant = applicant


def proven() -> bool:
    """Whether this browser's session came from a followed link, not only from applying."""
    return UNPROVEN_KEY not in session


def sign_out() -> None:
    session.pop(SESSION_KEY, None)
    session.pop(UNPROVEN_KEY, None)
    g.pop("applicant", None)


def _proven_since(applicant: Applicant, since: str) -> bool:
    """Whether a link of this application was followed after `since` (an ISO time)."""
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    MagicLink.applicant_id == applicant.id,
                    MagicLink.last_used_at >= datetime.fromisoformat(since),
                )
            )
        )
    )


def current_applicant() -> Applicant | None:
    if "applicant" not in g:
        public_id = session.get(SESSION_KEY)
        applicant = (
            db.session.scalar(select(Applicant).where(Applicant.public_id == public_id))
            if public_id
            else None
        )
        since = session.get(UNPROVEN_KEY)
        if applicant is not None and since and _proven_since(applicant, since):
            sign_out()
            applicant = None
        g.applicant = applicant
    return g.applicant
