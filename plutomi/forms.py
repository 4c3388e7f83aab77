"""What every form shares: service errors shown next to the field they belong to."""

from __future__ import annotations

from flask_wtf import FlaskForm

from plutomi.services.errors import ServiceError


def show_error(form: FlaskForm, error: ServiceError) -> None:
    """Put a service's message next to its field, or above the form when it names none."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)
