"""Cleaning of the input fields several services accept (emails, names)."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from plutomi.services.errors import Invalid

CONTROL_CHARACTER = "This contains an invisible control character; remove it and try again."


def has_control_characters(value: str) -> bool:
    """NUL and the other C0/C1 controls: never meant in a name or an email, and PostgreSQL
    refuses NUL in text outright, so they are stopped here rather than at the database."""
    return any(unicodedata.category(char) == "Cc" for char in value)


def normalize_email(value: str, field: str = "email") -> str:
    if len(value) > 254:
        raise Invalid("Use at most 254 characters.", field)
    if has_control_characters(value.strip()):
        raise Invalid(CONTROL_CHARACTER, field)
    try:
        found = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"Enter a valid email address. {exc}", field) from exc
    if found.ascii_email is None:
        # Letters beyond ASCII before the @ need SMTPUTF8 all along the way; mail to such an
        # address is often never delivered, and the applicant would never get their link.
        raise Invalid(
            "Use an address with only ASCII letters, digits and punctuation before the @.",
            field,
        )
    return found.normalized.lower()


def ascii_email(address: str) -> str:
    """The address as mail servers take it: a domain of other letters in its ASCII (IDNA)
    form, as zoe@xn--bcher-kva.example for zoe@bücher.example."""
    if address.isascii():
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email or address
    except EmailNotValidError:
        return address


def clean_name(value: str, field: str = "name", max_length: int = 120) -> str:
    name = " ".join(value.split())  # tabs, newlines and other spacing become one space
    if not name:
        raise Invalid("This field is required.", field)
    if has_control_characters(name):
        raise Invalid(CONTROL_CHARACTER, field)
    if len(name) > max_length:
        raise Invalid(f"Use at most {max_length} characters.", field)
    return name
