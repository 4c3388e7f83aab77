"""The unsubscribe link in every non-essential email: a page with one button, and RFC 8058's
one-click POST that mail clients send by themselves.

No login and no CSRF token: the signed token in the URL is the authentication, and a mail
client's one-click POST (body "List-Unsubscribe=One-Click") could never carry our CSRF token.
A forged request would need the token, which only the email holds.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from plutomi.extensions import csrf
from plutomi.services import unsubscribes
from plutomi.services.errors import NotFound

bp = Blueprint("unsubscribe", __name__)


def _invalid(exc: NotFound):
    return render_template("public/unsubscribe_invalid.html", message=exc.message, org=None), 404


@bp.get("/unsubscribe/<token>")
def page(token: str):
    try:
        applicant = unsubscribes.applicant_for(token)
    except NotFound as exc:
        return _invalid(exc)
    return render_template(
        "public/unsubscribe.html",
        org=unsubscribes.org_of(applicant),
        token=token,
        done=unsubscribes.is_unsubscribed(applicant),
    )


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def confirm(token: str):
    try:
        applicant = unsubscribes.applicant_for(token)
    except NotFound as exc:
        return _invalid(exc)
    org = unsubscribes.org_of(applicant)
    unsubscribes.unsubscribe(applicant)  # idempotent: a second click changes nothing
    return render_template("public/unsubscribe.html", org=org, token=token, done=True)
