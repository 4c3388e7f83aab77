"""Rows inserted without the ORM's unit of work, for a write path that makes many rows it never
reads back (a new application's answers, events, link and email; a timer chunk's events).

An ORM object costs several times the CPU of its row (the instance, its state, a flush that
fetches each id), and each table flushed is a round trip of its own. On PostgreSQL every
table's rows go in one statement, each table's as one JSON document: the statement's text
is the same however many rows come, so it is compiled once and prepared by the driver, and
the rows cost one json.dumps. Elsewhere (SQLite, in-process) one executemany a table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, TextClause, insert, text
from sqlalchemy.dialects import postgresql

from plutomi.extensions import db
from plutomi.models import Event, OutboxMessage
from plutomi.services import outbox, webhooks

_EVENTS = Event.__table__
_OUTBOX = OutboxMessage.__table__

Batch = tuple[Table, list[dict[str, Any]]]


def rows(batches: list[Batch]) -> list[int]:
    """Insert each batch's rows in the caller's transaction, after whatever the session holds
    pending, each table's in the order given. Columns left out get their Python defaults, one
    call per row, as the ORM would give them. As the ORM's hooks do for the objects it
    flushes, events go to the webhook fan-out at commit and outbox rows to RQ after it;
    returns the outbox rows' ids, in order."""
    batches = [(table, completed(table, rows)) for table, rows in batches if rows]
    if not batches:
        return []
    db.session.flush()  # rows recorded before these keep their place (ids, event order)
    if db.engine.dialect.name != "postgresql":
        ids: list[int] = []
        for table, rows in batches:
            if table is _OUTBOX:
                statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
                ids = list(db.session.scalars(statement, rows))
            else:
                db.session.execute(insert(table), rows)
    else:
        shape = tuple((table, tuple(rows[0]), table is _OUTBOX) for table, rows in batches)
        params = {f"rows_{n}": _document(table, rows) for n, (table, rows) in enumerate(batches)}
        result = db.session.execute(_statement(shape), params)
        # Serial ids follow the order of insertion, which follows the document's.
        ids = sorted(result.scalars()) if any(wanted for *_, wanted in shape) else []
    webhooks.note([row for table, rows in batches if table is _EVENTS for row in rows])
    outbox.hand_off(ids)
    return ids


def completed(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rows with each left-out column's Python default, called once a row (a public id).
    Every row must give the same columns: one statement names them once for all."""
    if any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError(f"rows for {table.name} give different columns")
    defaults = [
        (column.key, column.default)
        for column in table.columns
        if column.default is not None and column.key not in rows[0]
    ]
    if not defaults:
        return rows
    return [
        row
        | {
            key: default.arg(None) if default.is_callable else default.arg
            for key, default in defaults
        }
        for row in rows
    ]


def _document(table: Table, rows: list[dict[str, Any]]) -> str:
    # A JSON column's value goes in as the text SQLAlchemy's JSON type binds (json.dumps):
    # json_to_recordset would rewrite a JSON string's escapes ("\u00fc" as "ü"), and the
    # board compares answers by their text.
    as_json = {key for key in rows[0] if isinstance(table.c[key].type, JSON)}
    return json.dumps(
        [
            {key: json.dumps(v) if key in as_json else _plain(v) for key, v in row.items()}
            for row in rows
        ]
    )


def _plain(value: Any) -> Any:
    # Naive UTC, as UTCDateTime stores datetimes.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    return value


@cache
def _statement(shape: tuple[tuple[Table, tuple[str, ...], bool], ...]) -> TextClause:
    """One statement for batches of these (table, columns, returning ids): the batch whose
    ids are wanted (the outbox's, else the last) is the main INSERT, the others
    data-modifying CTEs of it.
    They share one snapshot, and none reads another's rows."""
    main = next((n for n, (*_, wanted) in enumerate(shape) if wanted), len(shape) - 1)
    ctes = [
        f"rows_{n} AS ({_insert(n, table, columns)})"
        for n, (table, columns, _) in enumerate(shape)
        if n != main
    ]
    table, columns, wanted = shape[main]
    sql = (f"WITH {', '.join(ctes)} " if ctes else "") + _insert(main, table, columns)
    return text(sql + (" RETURNING id" if wanted else ""))


def _insert(n: int, table: Table, columns: tuple[str, ...]) -> str:
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    kinds, values = [], []
    for c in columns:
        if isinstance(table.c[c].type, JSON):  # its text, as _document() wrote it
            kinds.append(f"{quote(c)} text")
            values.append(f"CAST(r.{quote(c)} AS json)")
        else:
            kinds.append(f"{quote(c)} {table.c[c].type.compile(dialect=dialect)}")
            values.append(f"r.{quote(c)}")
    return (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {', '.join(values)}"
        f" FROM ROWS FROM (json_to_recordset(CAST(:rows_{n} AS json)) AS ({', '.join(kinds)}))"
        f" WITH ORDINALITY AS r({names}, n) ORDER BY r.n"
    )
