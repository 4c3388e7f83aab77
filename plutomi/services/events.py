"""Appending to the event log; rows are never updated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from plutomi.extensions import db
from plutomi.models import Event
from plutomi.models.base import utcnow

# Event type names are dotted lower-case words ("account_creation.failed"). The events table
# keeps 64 characters of one; rules, webhook endpoints and the API accept the same names, so
# whatever one of them takes the others can store, send and match.
TYPE_MAX = 64
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Our own types: an org's custom type (a rule's webhook event) must never pass for one.
BUILT_IN_PREFIXES = ("applicant.", "opening.", "stage.", "rule.", "webhook.", "email.")


def type_problem(value: str, *, custom: bool) -> str | None:
    """What is wrong with an event type name, or None. custom: an org's own type (a rule's
    webhook event, an endpoint's subscription), which may not take a built-in prefix."""
    if not value:
        return "Name the event, such as account_creation.failed."
    if len(value) > TYPE_MAX:
        return f"Use at most {TYPE_MAX} characters."
    if not TYPE_RE.match(value):
        return (
            "Use lower-case words of letters, digits and underscores joined by dots, "
            "such as account_creation.failed."
        )
    if custom and value.startswith(BUILT_IN_PREFIXES):
        return (
            "Events starting with applicant., opening., stage., rule. or webhook. are built "
            "in; choose another name, such as driver.approved."
        )
    return None


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a user, an applicant, a rule, an API key or the system."""

    type: str
    id: int | None = None

    @classmethod
    def user(cls, user) -> Actor:
        return cls("user", user.id)

    @classmethod
    def applicant(cls, applicant) -> Actor:
        return cls("applicant", applicant.id)

    @classmethod
    def api_key(cls, key) -> Actor:
        return cls("api_key", key.id)

    @classmethod
    def system(cls) -> Actor:
        return cls("system")


def row(
    type: str,
    *,
    actor: Actor,
    org_id: int | None,
    opening_id: int | None = None,
    applicant_id: int | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """An event's column values, for record() or for a writer that inserts rows without the
    ORM (a timer chunk, a new application)."""
    return {
        "type": type,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "org_id": org_id,
        "opening_id": opening_id,
        "applicant_id": applicant_id,
        "payload": payload,
        "created_at": utcnow(),
    }


def applicant_row(type: str, applicant, *, actor: Actor, **payload: Any) -> dict[str, Any]:
    """row() of an event about one applicant: its org, opening and id come from the applicant."""
    return row(
        type,
        actor=actor,
        org_id=applicant.org_id,
        opening_id=applicant.opening_id,
        applicant_id=applicant.id,
        **payload,
    )


def _added(row: dict[str, Any]) -> Event:
    event = Event(**row)
    db.session.add(event)
    return event


def record(type: str, *, actor: Actor, org_id: int | None, **fields: Any) -> Event:
    """row() as an Event added to the session (opening_id, applicant_id and the payload go
    through as row() takes them)."""
    return _added(row(type, actor=actor, org_id=org_id, **fields))


def record_applicant(type: str, applicant, *, actor: Actor, **payload: Any) -> Event:
    """An event about one applicant: its org, opening and id come from the applicant."""
    return _added(applicant_row(type, applicant, actor=actor, **payload))
