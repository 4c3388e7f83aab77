"""Which applicant this browser is signed in as, after following a magic link.

Applicants have no password: the portal stores their public id in the (signed) session once a
valid link was followed. It opens their own application and nothing else.
"""

from __future__ import annotations

from flask import g, session
from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import Applicant

SESSION_KEY = "applicant"


def sign_in(applicant: Applicant) -> None:
    session[SESSION_KEY] = applicant.public_id
    g.applicant = applicant


def sign_out() -> None:
    session.pop(SESSION_KEY, None)
    g.pop("applicant", None)


def current_applicant() -> Applicant | None:
    if "applicant" not in g:
        public_id = session.get(SESSION_KEY)
        g.applicant = (
            db.session.scalar(select(Applicant).where(Applicant.public_id == public_id))
            if public_id
            else None
        )
    return g.applicant
