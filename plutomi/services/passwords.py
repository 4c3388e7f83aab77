"""Password policy and hashing: at least 8 characters, no composition rules, no common ones."""

from __future__ import annotations

from functools import cache
from importlib import resources

from werkzeug.security import check_password_hash, generate_password_hash

from plutomi.services.errors import Invalid

MIN_LENGTH = 8
MAX_LENGTH = 256
# scrypt is a memory-hard KDF and ships with Werkzeug: no extra dependency to keep.
METHOD = "scrypt"


@cache
def _common() -> frozenset[str]:
    text = resources.files("plutomi").joinpath("data/common_passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_policy(password: str, *, email: str = "", field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"Use at least {MIN_LENGTH} characters.", field)
    if len(password) > MAX_LENGTH:
        raise Invalid(f"Use at most {MAX_LENGTH} characters.", field)
    lowered = password.lower()
    if lowered in _common():
        raise Invalid("That password is one of the most common; choose another.", field)
    if email and lowered in {email.lower(), email.split("@")[0].lower()}:
        raise Invalid("Your password cannot be your email address.", field)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=METHOD)


def verify(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


@cache
def dummy_hash() -> str:
    """Checked against when the email is unknown, so a login takes as long either way."""
    return hash_password("not-a-real-password-only-for-timing")
