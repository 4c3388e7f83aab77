"""The dev mailbox: mail captured when no SMTP relay is configured.

It shows every captured message (password resets included), so it exists only where DEV_MAILBOX
is set, as `make run` does; anywhere else it is a 404.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import OutboxMessage

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def only_when_enabled():
    if not current_app.config["DEV_MAILBOX"]:
        abort(404)


@bp.get("/mailbox")
def mailbox():
    messages = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.kind == "email")
        .order_by(OutboxMessage.id.desc())
        .limit(200)
    )
    return render_template("dev/mailbox.html", messages=list(messages))


@bp.get("/mailbox/<pid:message_id>")
def message(message_id: str):
    row = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.kind == "email", OutboxMessage.public_id == message_id
        )
    )
    if row is None:
        abort(404)
    return render_template("dev/message.html", message=row)
