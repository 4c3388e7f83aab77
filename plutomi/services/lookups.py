"""Finding one row by its public id inside a query that already scopes it (org, opening)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select

from plutomi.extensions import db
from plutomi.models.base import is_public_id
from plutomi.services.errors import NotFound

T = TypeVar("T")


def by_public_id(scope: Select, model: type[T], public_id: str, message: str) -> T:
    """The row of `scope` with that public id, or NotFound(message); a malformed id (from a
    form or a URL) never reaches the database."""
    if not is_public_id(public_id):
        raise NotFound(message)
    row = db.session.scalar(scope.where(model.public_id == public_id))
    if row is None:
        raise NotFound(message)
    return row
