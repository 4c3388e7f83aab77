"""Column types and mixins every model shares."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import DateTime, String, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

_ALPHABET = string.ascii_lowercase + string.digits


def utcnow() -> datetime:
    return datetime.now(UTC)


PUBLIC_ID_LENGTH = 16
PUBLIC_ID_PATTERN = f"[a-z0-9]{{{PUBLIC_ID_LENGTH}}}"
_PUBLIC_ID = re.compile(PUBLIC_ID_PATTERN)


_ID_SPACE = len(_ALPHABET) ** PUBLIC_ID_LENGTH


def new_public_id() -> str:
    """16 random characters (about 82 bits): ids in URLs are never guessable sequences. One
    draw, spelled in base 36, is as uniform as a draw a character and costs a sixth."""
    n = secrets.randbelow(_ID_SPACE)
    chars = []
    for _ in range(PUBLIC_ID_LENGTH):
        n, digit = divmod(n, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


# The largest value of an INTEGER column (PostgreSQL's int4: ids, versions, stage entries):
# a number from a hand-made request past it is refused before the database would fail on it.
MAX_INT = 2**31 - 1


def is_public_id(value: str) -> bool:
    """Whether value could be a public id at all; anything else is refused before any query
    (PostgreSQL refuses a NUL byte even inside a query's parameters)."""
    return isinstance(value, str) and _PUBLIC_ID.fullmatch(value) is not None


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class PublicIdMixin:
    """A random public id for URLs; the integer primary key never leaves the server."""

    public_id: Mapped[str] = mapped_column(
        String(16), unique=True, index=True, default=new_public_id
    )


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
