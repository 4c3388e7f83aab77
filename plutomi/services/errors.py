"""Typed errors that services raise and views turn into clear 4xx answers."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400

    def __init__(
        self,
        message: str,
        field: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        # A stable name for API clients ("duplicate", "version_conflict"); None: by status.
        self.code = code
        # More for an API client, such as the id of the applicant a duplicate points to.
        self.details = dict(details or {})


class Invalid(ServiceError):
    """Bad input; field names the form field the message belongs next to."""

    status = 422


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    status = 409


class Throttled(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        # Seconds until a try can succeed, for a Retry-After header.
        self.retry_after = retry_after


class InvalidFields(Invalid):
    """Bad input in several fields at once: errors maps each field to its message, so a form
    can show every problem in one go instead of one per submission."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(message, field)
        self.errors = dict(errors)
