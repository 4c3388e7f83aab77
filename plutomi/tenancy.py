"""The current org of a request, and queries scoped to it.

Every lookup of a tenant row by public id goes through scoped() or get_or_404(), so an object
of another org is a 404: the answer never confirms that it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import abort, g, redirect, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from werkzeug.routing import BaseConverter

from plutomi.extensions import db
from plutomi.models import Membership, Org, Role
from plutomi.models.base import PUBLIC_ID_PATTERN, is_public_id

T = TypeVar("T")
SESSION_KEY = "org"


def memberships() -> list[Membership]:
    """The user's memberships, by org name: loaded with the user (accounts.load_session)."""
    if "memberships" not in g:
        g.memberships = sorted(current_user.memberships, key=lambda m: (m.org.name, m.org.id))
    return g.memberships


def membership_of(org_public_id: str | None) -> Membership | None:
    """The user's membership of the org with this public id, if they have one."""
    return next((m for m in memberships() if m.org.public_id == org_public_id), None)


def current_membership() -> Membership | None:
    """The membership of the org chosen in the session, else the user's first one."""
    if not current_user.is_authenticated:
        return None
    if "membership" not in g:
        mine = memberships()
        g.membership = membership_of(session.get(SESSION_KEY)) or (mine[0] if mine else None)
    return g.membership


def switch_to(org_public_id: str) -> Membership:
    membership = membership_of(org_public_id)
    if membership is None:
        abort(404)
    session[SESSION_KEY] = org_public_id
    g.membership = membership
    return membership


def current_org() -> Org:
    membership = current_membership()
    if membership is None:
        abort(404)
    return membership.org


def scoped(model: type[T]) -> Select:
    """select(model) limited to the current org's rows."""
    return select(model).where(model.org_id == current_org().id)


def get_or_404(model: type[T], public_id: str) -> T:
    if not is_public_id(public_id):
        abort(404)
    row = db.session.scalar(scoped(model).where(model.public_id == public_id))
    if row is None:
        abort(404)
    return row


def org_required(role: Role = Role.VIEWER) -> Callable:
    """Login, a current org, and at least `role` in it (a weaker role gets 403)."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def wrapped(*args, **kwargs):
            # A link from an email names its org (?org=): it opens there whichever org the
            # user was looking at, when they are a member of it.
            wanted = request.args.get("org")
            if wanted and membership_of(wanted):
                switch_to(wanted)
            membership = current_membership()
            if membership is None:
                return redirect(url_for("orgs.new"))
            _same_org_as_the_page(membership)
            if not membership.can(role):
                abort(403, f"This needs the {role.label} role or higher.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


# The org of the page a request comes from (app.js sends it with every htmx request).
PAGE_ORG_HEADER = "X-Plutomi-Org"


def _same_org_as_the_page(membership: Membership) -> None:
    """Refuse a request sent from a page of another org than the session's: the user switched
    org in another tab since this page was drawn. A change would land in the wrong org (a
    webhook, an invite, an API key); a piece of the page (a panel, the board's poll) would
    be another org's, or a 404. A visit to another page (a boosted link) is the session's."""
    page_org = request.headers.get(PAGE_ORG_HEADER)
    if not page_org or page_org == membership.org.public_id:
        return
    if request.method in ("GET", "HEAD") and request.headers.get("HX-Boosted"):
        return
    theirs = membership_of(page_org)
    shown = f"This page is of {theirs.org.name}" if theirs else "This page is of another org"
    abort(
        409,
        f"{shown}, but you have switched to {membership.org.name} since (in another tab?). "
        "Nothing was done: reload the page to go on.",
    )


class PublicIdConverter(BaseConverter):
    """`<pid:opening_id>`: a URL whose id cannot be a public id is a 404 before any view runs."""

    regex = PUBLIC_ID_PATTERN


def forget() -> None:
    """Drop what this request cached about the user's orgs (after joining or leaving one)."""
    g.pop("memberships", None)
    g.pop("membership", None)
    session.pop(SESSION_KEY, None)
