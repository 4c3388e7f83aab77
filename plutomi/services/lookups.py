"""Finding rows: one by its public id inside a query that already scopes it (org, opening), and
many by a list of values; constants written into a statement (inline)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    literal_column,
)
from sqlalchemy.types import TypeEngine

from plutomi.extensions import db
from plutomi.models.base import is_public_id
from plutomi.services.errors import NotFound

T = TypeVar("T")


def inline(value: int | str) -> ColumnElement:
    """A constant written into the statement rather than bound, above all a LIMIT. psycopg
    prepares a statement run often; PostgreSQL then plans it once if a plan for any
    parameters is as good as for the given ones. Blind to a LIMIT (or a state) it is not,
    so it would plan the statement afresh at every run: for a join of a few tables, planning
    cost more than running it. Written in when the statement is compiled (and cached with
    it), not at each run as a literal_execute parameter would be."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"inline() takes an int or a str, not {type(value).__name__}")
    if isinstance(value, int):
        return literal_column(str(value), Integer())
    return literal_column("'" + value.replace("'", "''") + "'", String())


def by_public_id(scope: Select, model: type[T], public_id: str, message: str) -> T:
    """The row of `scope` with that public id, or NotFound(message); a malformed id (from a
    form or a URL) never reaches the database."""
    if not is_public_id(public_id):
        raise NotFound(message)
    row = db.session.scalar(scope.where(model.public_id == public_id))
    if row is None:
        raise NotFound(message)
    return row


def among(column: Any, values: Iterable[Any], type_: TypeEngine | None = None) -> ColumnElement:
    """column IN values. On PostgreSQL as = ANY(one array parameter): psycopg parses a
    statement with up to 50 parameters once and caches it, but re-parses one with an IN list
    expanded to a parameter per value on every execution (and the server plans it afresh).
    type_: the values' type, when the column's own is not known (a function of a column)."""
    return _among(column, db.engine.dialect.name, None, type_, value=list(values))


def among_param(
    column: Any, name: str, dialect: str, type_: TypeEngine | None = None
) -> ColumnElement:
    """among() for a statement built once for `dialect`: the values come with each
    execution, as the parameter `name` (a list)."""
    return _among(column, dialect, name, type_)


def _among(
    column: Any, dialect: str, name: str | None, type_: TypeEngine | None, **value: Any
) -> ColumnElement:
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(type_ or column.type), **value))
    return column.in_(bindparam(name, expanding=True, **value))
