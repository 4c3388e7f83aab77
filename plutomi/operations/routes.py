"""The operations page (Settings → Operations): outbox, timers and queue depths, for admins.

The counts are a partial the page polls every 10 seconds. Retrying one row answers htmx with
that row in its new state (a refusal too, with a 422 and the message as a flash); retrying
every dead row answers with the list afresh. A plain form post gets a redirect and a flash.
Every read and write calls plutomi.services.operations.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from plutomi.forms import as_member
from plutomi.htmx import trigger
from plutomi.models import Role
from plutomi.services import operations
from plutomi.services.errors import Invalid
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("operations", __name__)
bp.add_app_template_filter(operations.until, "until")

# Sent after a retry: the polled counts reload at once instead of at the next tick.
CHANGED = "operations-changed"


def _partial_wanted() -> bool:
    return bool(request.htmx) and not request.htmx.boosted


def _status() -> dict:
    return {"status": operations.status(current_membership())}


def _rows(before: str | None = None) -> dict:
    try:
        page = operations.problem_rows(current_membership(), before)
    except Invalid as exc:  # a cursor mangled in the URL
        abort(400, exc.message)
    return {"page": page}


@bp.get("/settings/operations")
@org_required(Role.ADMIN)
def index():
    membership = current_membership()
    # ?before= is "Show older" without JavaScript: the list starts at that cursor.
    return render_template(
        "operations/index.html",
        membership=membership,
        failed_timers=operations.failed_timers(membership),
        **_status(),
        **_rows(request.args.get("before") or None),
    )


@bp.get("/settings/operations/status")
@org_required(Role.ADMIN)
def status():
    """htmx: the counts, polled by the page."""
    if not _partial_wanted():
        return redirect(url_for("operations.index"))
    return render_template("operations/_status.html", **_status())


@bp.get("/settings/operations/outbox")
@org_required(Role.ADMIN)
def outbox_rows():
    """htmx: the next page of rows (?before=), or the list afresh."""
    before = request.args.get("before") or None
    if not _partial_wanted():
        return redirect(url_for("operations.index", before=before))
    template = "operations/_rows.html" if before else "operations/_outbox.html"
    return render_template(template, **_rows(before))


@bp.post("/settings/operations/outbox/<pid:message_id>/retry")
@org_required(Role.ADMIN)
def retry(message_id: str):
    membership = current_membership()
    status = 200
    _, error = as_member(operations.retry_now, message_id)
    if error is not None:
        flash(error.message, "error")
        status = 422
    else:
        flash("The message is back in line and goes out in a moment.", "success")
    if not _partial_wanted():
        return redirect(url_for("operations.index"))
    # The row in its state now, refused or not; the flash travels as an HX-Trigger event.
    body = render_template("operations/_row.html", row=operations.row(membership, message_id))
    return trigger(make_response(body, status), CHANGED)


@bp.post("/settings/operations/outbox/retry-dead")
@org_required(Role.ADMIN)
def retry_dead():
    result = operations.retry_dead(current_membership())
    if not result.count:
        flash("There are no dead messages to retry.", "info")
    else:
        noun = "message is" if result.count == 1 else "messages are"
        message = f"{result.count:,} dead {noun} back in line."
        if result.more:
            message += " More remain: retry again to send the next ones."
        flash(message, "success")
    if not _partial_wanted():
        return redirect(url_for("operations.index"))
    response = make_response(render_template("operations/_outbox.html", **_rows()))
    return trigger(response, CHANGED)
