"""Idempotency keys: a POST to /api/v1 sent again with the same `Idempotency-Key` is answered
with the first response instead of being carried out twice.

The key's row is the lock, and it is written in the same transaction as the work:

1. `claim` inserts the row (api key, key, hash of the request) at the start of the request's
   transaction, with one `INSERT ... ON CONFLICT DO NOTHING RETURNING id`. The service then
   does the work and commits, and its commit commits the row with it: the row exists if and
   only if the work was done.
2. A second request with the same key, arriving while the first is under way, inserts the same
   (api key, key) and waits: on PostgreSQL on the unique index, until the first transaction
   ends; on SQLite on the database's single write lock. If the first committed, the insert
   does nothing and returns no id; the second reads the row and replays the stored response.
   If the first failed and rolled back, its row went with it and the second's insert goes
   ahead.
3. `keep` writes the response (status and body) on the row. Creating an applicant keeps it
   before the work commits, so the row, the work and the answer commit together. The other
   POSTs' services commit their work themselves, and their answer follows in a second, small
   commit. Between the two a repeat finds the row without a response: it polls for a few
   seconds, then answers 409 "idempotency_in_progress". (Were the process to die exactly
   between the two, the row would say the work was done but keep no answer to give; a repeat
   then gets that 409 until the row is swept, and the client can read the result back with a
   GET.)

Only successful (2xx) responses are kept. A refused request (4xx) rolls back, its row with it,
so the same key can be sent again once the request is fixed: the work was never done.

The request is identified by method, path and the hash of its JSON body in a canonical form
(sorted keys, no spaces), so a resent body with another key order or spacing is the same
request; the same key with any other request is refused (409 "idempotency_mismatch"). Rows are
kept at least KEEP (24 h) and swept once past SWEEP_AFTER (48 h) by jobs/api.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from plutomi.extensions import db
from plutomi.models import ApiKey, IdempotencyKey, utcnow
from plutomi.services.errors import Conflict, ServiceError

HEADER = "Idempotency-Key"
KEY_MAX = 255
KEEP = timedelta(hours=24)
SWEEP_AFTER = timedelta(hours=48)
# How long a repeat waits for the first request's response to be stored.
WAIT_SECONDS = 5.0
POLL_EVERY = 0.05
SWEEP_BATCH = 5000


class BadKey(ServiceError):
    status = 400


@dataclass(frozen=True)
class Stored:
    """The response of the request that first used a key."""

    status: int
    body: Any


@dataclass(frozen=True)
class Claim:
    """The key's row, inserted (not yet committed) in this request's transaction."""

    row_id: int


def check_key(value: str) -> str:
    """The header's value, if it is 1 to 255 printable ASCII characters."""
    if not 1 <= len(value) <= KEY_MAX or not all(" " <= char <= "~" for char in value):
        raise BadKey(
            f"{HEADER} must be 1 to {KEY_MAX} printable ASCII characters, such as a UUID.",
            HEADER,
            code="invalid_idempotency_key",
        )
    return value


def request_hash(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the body's JSON, canonical."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def _mismatch() -> Conflict:
    return Conflict(
        f"This {HEADER} was used already for a different request (another path or body). "
        "Use a new key for a new request.",
        HEADER,
        code="idempotency_mismatch",
    )


def _in_progress() -> Conflict:
    return Conflict(
        f"A request with this {HEADER} is still being carried out. Send it again in a moment.",
        HEADER,
        code="idempotency_in_progress",
    )


def _find(api_key_id: int, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
        )
    )


def _answer(row: IdempotencyKey, digest: str) -> Stored | None:
    if row.request_hash != digest:
        raise _mismatch()
    if row.status is None:
        return None
    return Stored(row.status, row.response)


def _wait(api_key_id: int, key: str, digest: str) -> Stored:
    """The response of a request with this key that committed (or is about to store it)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        db.session.rollback()  # a fresh snapshot each time round
        row = _find(api_key_id, key)
        if row is None:
            # Swept between the insert that failed and now: gone for good.
            raise _in_progress()
        stored = _answer(row, digest)
        if stored is not None:
            return stored
        if time.monotonic() >= deadline:
            raise _in_progress()
        time.sleep(POLL_EVERY)


# On the table, not the entity: nothing loads the row, and the ORM's INSERT path cost more
# CPU than the statement (as its bulk UPDATE path does for _KEEP).
_KEYS = IdempotencyKey.__table__
_KEEP = (
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("row_id"))
    .values(status=bindparam("new_status"), response=bindparam("new_response"))
)


@cache
def _claiming(dialect: str):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, in the dialect's own words; built once
    per dialect, as every POST with a key runs it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_KEYS)
        .values(
            api_key_id=bindparam("new_api_key_id"),
            key=bindparam("new_key"),
            request_hash=bindparam("new_request_hash"),
        )
        # Waits here while a concurrent request holds the same key uncommitted.
        .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
        .returning(_KEYS.c.id)
    )


def claim(api_key: ApiKey, key: str, digest: str) -> Claim | Stored:
    """Claim the key for this request (a Claim: go ahead, and `keep` the response), or the
    Stored response of the request that used it first.

    The row is inserted in the current transaction, which the work's own commit commits."""
    row_id = db.session.scalar(
        _claiming(db.engine.dialect.name),
        {"new_api_key_id": api_key.id, "new_key": key, "new_request_hash": digest},
    )
    if row_id is not None:
        return Claim(row_id)
    existing = _find(api_key.id, key)
    if existing is None:
        # Swept between the insert and now: gone for good.
        raise _in_progress()
    return _answer(existing, digest) or _wait(api_key.id, key, digest)


def keep(claimed: Claim, status: int, body: Any) -> None:
    """Keep a successful response for repeats, in the current transaction: the caller
    commits it, with the work if the work has not committed yet."""
    db.session.execute(
        _KEEP, {"row_id": claimed.row_id, "new_status": status, "new_response": body}
    )


def sweep(now: datetime | None = None) -> int:
    """Delete keys older than SWEEP_AFTER, in batches; returns how many went."""
    cutoff = (now or utcnow()) - SWEEP_AFTER
    total = 0
    while True:
        ids = list(
            db.session.scalars(
                select(IdempotencyKey.id)
                .where(IdempotencyKey.created_at < cutoff)
                .limit(SWEEP_BATCH)
            )
        )
        if not ids:
            return total
        db.session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        total += len(ids)
