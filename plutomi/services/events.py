"""Appending to the event log; rows are never updated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plutomi.extensions import db
from plutomi.models import Event


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


def record(
    type: str,
    *,
    actor: Actor,
    org_id: int | None,
    opening_id: int | None = None,
    applicant_id: int | None = None,
    **payload: Any,
) -> Event:
    event = Event(
        type=type,
        actor_type=actor.type,
        actor_id=actor.id,
        org_id=org_id,
        opening_id=opening_id,
        applicant_id=applicant_id,
        payload=payload,
    )
    db.session.add(event)
    return event


def record_applicant(type: str, applicant, *, actor: Actor, **payload: Any) -> Event:
    """An event about one applicant: its org, opening and id come from the applicant."""
    return record(
        type,
        actor=actor,
        org_id=applicant.org_id,
        opening_id=applicant.opening_id,
        applicant_id=applicant.id,
        **payload,
    )
