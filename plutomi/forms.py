"""What every form shares: running a service as the current member, and its errors shown
next to the field they belong to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort
from flask_wtf import FlaskForm

from plutomi.extensions import db
from plutomi.services.errors import InvalidFields, ServiceError
from plutomi.tenancy import current_membership


def as_member(action: Callable[..., Any], *args: Any) -> tuple[Any, ServiceError | None]:
    """Run a service function as the current member: (result, None) or (None, the error).
    403 and 404 end the request; a refused input comes back to be shown next to its field."""
    try:
        return action(current_membership(), *args), None
    except ServiceError as exc:
        db.session.rollback()  # nothing half-done is left for the page to flush
        if exc.status in (403, 404):
            abort(exc.status, exc.message)
        return None, exc


def show_error(form: FlaskForm, error: ServiceError) -> None:
    """Put a service's message next to its field, or above the form when it names none; an
    InvalidFields puts each of its messages next to its own field."""
    messages = error.errors if isinstance(error, InvalidFields) else {error.field: error.message}
    for name, message in messages.items():
        field = getattr(form, name, None) if name else None
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(message)
