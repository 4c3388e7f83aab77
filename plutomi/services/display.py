"""How values read to a person: a span of time, and an answer as a recruiter sees it. Kept
apart from the services that use them (the applicant page, cards, rules, operations), so
any of those can import it whatever they import."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from plutomi.models import QuestionType, utcnow


def duration(since: datetime, now: datetime | None = None) -> str:
    """How long ago `since` was, in its largest whole unit: "3 days", "1 hour", "5 minutes"."""
    seconds = max(0, int(((now or utcnow()) - since).total_seconds()))
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


# A rule's delay is kept in minutes and shown in the largest unit that holds it whole.
UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}


def in_unit(minutes: int) -> tuple[int, str]:
    """Minutes in the largest unit that holds them whole: 2880 is (2, "days")."""
    for unit in ("days", "hours"):
        if minutes % UNITS[unit] == 0:
            return minutes // UNITS[unit], unit
    return minutes, "minutes"


def delay_text(minutes: int) -> str:
    """ "1 day", "36 hours", "90 minutes"."""
    n, unit = in_unit(minutes)
    return f"{n:,} {unit[:-1] if n == 1 else unit}"


def _number(value: int | float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def format_value(kind: str, value: Any) -> str:
    """An answer as a recruiter reads it. Files are linked by the page, not formatted here."""
    if value is None:
        return ""
    if kind == QuestionType.YES_NO:
        return "Yes" if value else "No"
    if kind == QuestionType.MULTI_CHOICE and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if (
        kind == QuestionType.NUMBER
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return _number(value)
    if kind == QuestionType.DATE and isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return value
        return f"{day.day} {day:%B %Y}"  # 31 March 2025: no day/month order to misread
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
