"""Cleaning of the input fields several services accept (emails, names)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from plutomi.services.errors import Invalid


def normalize_email(value: str, field: str = "email") -> str:
    if len(value) > 254:
        raise Invalid("Use at most 254 characters.", field)
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid(f"Enter a valid email address. {exc}", field) from exc


def clean_name(value: str, field: str = "name", max_length: int = 120) -> str:
    name = " ".join(value.split())
    if not name:
        raise Invalid("This field is required.", field)
    if len(name) > max_length:
        raise Invalid(f"Use at most {max_length} characters.", field)
    return name
