"""Webhook endpoints, and the fan-out of events to them.

Every event that an enabled endpoint of its org wants becomes one outbox row per endpoint,
written in the transaction that wrote the event (just before it commits), so a rolled-back
change sends nothing and a committed one is delivered at least once. The row carries the
whole signed body ({"id", "type", "timestamp", "data"}), built then: a receiver learns what
happened, as it was. Delivery is plutomi/webhook_delivery.py.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.orm import Session

from plutomi import targets
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    Event,
    Membership,
    Opening,
    Org,
    OutboxMessage,
    OutboxState,
    Question,
    Role,
    Rule,
    Stage,
    WebhookEndpoint,
    new_public_id,
    utcnow,
)
from plutomi.services import events, mail, outbox
from plutomi.services.errors import Invalid, InvalidFields
from plutomi.services.events import Actor, record
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require

# What an endpoint can ask for, besides the custom types its org's rules emit.
EVENT_TYPES = (
    "applicant.created",
    "applicant.moved",
    "applicant.stage_completed",
    "applicant.answered",
    "applicant.withdrawn",
    "applicant.note_added",
    "opening.published",
    "opening.closed",
)
TEST_TYPE = "webhook.test"
# about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first try (jittered by outbox).
BACKOFF = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(BACKOFF) + 1
ROTATION_GRACE = timedelta(hours=24)
# An endpoint failing this long without a single success is turned off.
FAILING_LIMIT = timedelta(days=5)
# Dead deliveries replayed at most this many a second ("Replay all dead").
REPLAY_PER_SECOND = 10
REPLAY_LIMIT = 10_000

_PERSONAL = ("name", "email", "answers")

outbox.backoff_schedule("webhook", BACKOFF)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets to sign with: the current one, and the previous one for 24 h after a
    rotation, so a receiver can switch without missing a delivery."""
    now = now or utcnow()
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        found.append(endpoint.previous_secret)
    return found


# --- endpoints --------------------------------------------------------------------------------


def custom_types(org_id: int) -> list[str]:
    """The webhook event types the org's rules emit."""
    found = set()
    for actions in db.session.scalars(select(Rule.actions).where(Rule.org_id == org_id)):
        for action in actions or []:
            if action.get("type") == "webhook" and action.get("event"):
                found.add(action["event"])
    return sorted(found)


def clean_event_types(chosen: Iterable[str], extra: str = "") -> list[str]:
    """The standard types chosen and the custom ones typed (comma or space separated)."""
    types = []
    for value in [*chosen, *re.split(r"[\s,]+", extra or "")]:
        value = value.strip()
        if not value or value in types:
            continue
        if value not in EVENT_TYPES and (problem := events.type_problem(value, custom=True)):
            raise Invalid(
                f"“{value[: events.TYPE_MAX]}” is not an event type you can choose. {problem}",
                "event_types",
            )
        types.append(value)
    if not types:
        raise Invalid("Choose at least one event type to send.", "event_types")
    return types


@dataclass
class EndpointInput:
    url: str
    description: str = ""
    event_types: tuple[str, ...] = ()
    custom_types: str = ""
    enabled: bool = True
    include_personal_data: bool = True


def _clean(data: EndpointInput) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {
        "enabled": bool(data.enabled),
        "include_personal_data": bool(data.include_personal_data),
    }
    try:
        values["url"] = targets.check(data.url, current_app.config["ALLOW_PRIVATE_WEBHOOK_TARGETS"])
    except Invalid as exc:
        errors["url"] = exc.message
    description = (data.description or "").strip()
    if len(description) > 500:
        errors["description"] = "Use at most 500 characters."
    values["description"] = description
    try:
        values["event_types"] = clean_event_types(data.event_types, data.custom_types)
    except Invalid as exc:
        errors["event_types"] = exc.message
    if errors:
        raise InvalidFields(errors)
    return values


def endpoints(org_id: int) -> list[WebhookEndpoint]:
    return list(
        db.session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.org_id == org_id)
            .order_by(WebhookEndpoint.id)
        )
    )


def get_endpoint(actor: Membership, endpoint_id: str) -> WebhookEndpoint:
    scope = select(WebhookEndpoint).where(WebhookEndpoint.org_id == actor.org_id)
    return by_public_id(
        scope, WebhookEndpoint, endpoint_id, "There is no such webhook endpoint in this org."
    )


def create_endpoint(actor: Membership, data: EndpointInput) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret, which the caller shows once."""
    require(actor, Role.ADMIN)
    endpoint = WebhookEndpoint(org_id=actor.org_id, secret=new_secret(), **_clean(data))
    db.session.add(endpoint)
    db.session.flush()
    _audit("webhook.endpoint_created", actor, endpoint)
    db.session.commit()
    return endpoint, endpoint.secret


def update_endpoint(actor: Membership, endpoint_id: str, data: EndpointInput) -> WebhookEndpoint:
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    values = _clean(data)
    if values["enabled"] and not endpoint.enabled:
        endpoint.failing_since = None
        endpoint.disabled_reason = None
    for name, value in values.items():
        setattr(endpoint, name, value)
    _audit("webhook.endpoint_updated", actor, endpoint)
    db.session.commit()
    return endpoint


def delete_endpoint(actor: Membership, endpoint_id: str) -> None:
    """The endpoint and its delivery log go; deliveries on their way are dropped."""
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    _audit("webhook.endpoint_deleted", actor, endpoint)
    db.session.delete(endpoint)
    db.session.commit()


def rotate_secret(actor: Membership, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing (beside it) for 24 hours.

    Rotated again within those hours (a double click, or the once-shown secret missed), the
    secret still in its grace is kept, with its own deadline: it is the one receivers hold,
    and the secret replaced now was never in use for long."""
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    now = utcnow()
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret is None or expires is None or expires <= now:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_GRACE
    endpoint.secret = new_secret()
    _audit("webhook.secret_rotated", actor, endpoint)
    db.session.commit()
    return endpoint, endpoint.secret


def _audit(type: str, actor: Membership, endpoint: WebhookEndpoint) -> None:
    record(
        type,
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        endpoint=endpoint.public_id,
        url=endpoint.url,
    )


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Turn an endpoint off for the org's own good, and tell its admins; the caller commits."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    record(
        "webhook.endpoint_disabled",
        actor=Actor.system(),
        org_id=endpoint.org_id,
        endpoint=endpoint.public_id,
        url=endpoint.url,
        reason=reason,
    )
    admins = db.session.scalars(
        select(Membership)
        .where(
            Membership.org_id == endpoint.org_id,
            Membership.role.in_([Role.ADMIN, Role.OWNER]),
        )
        .order_by(Membership.id)
    )
    # The org in the link: an admin of several orgs may be looking at another one.
    org = db.session.get(Org, endpoint.org_id)
    link = (
        f"{current_app.config['BASE_URL']}/settings/webhooks/{endpoint.public_id}"
        f"?org={org.public_id}"
    )
    for membership in admins:
        mail.queue(
            membership.user.email,
            "A webhook endpoint was turned off",
            f"Hello {membership.user.name},\n\nWe turned off the webhook endpoint "
            f"{endpoint.url} of {membership.org.name}: {reason}\n\nIts undelivered events "
            f"are kept. Once the receiver works again, turn it back on and replay them:\n"
            f"{link}\n",
            org_id=endpoint.org_id,
            template="webhook_disabled",
        )


# --- deliveries: the log, test events and retries ----------------------------------------------


DELIVERY_STATES = tuple(OutboxState)
LOG_PAGE = 50


def deliveries(
    endpoint: WebhookEndpoint, state: str | None = None, before: str | None = None
) -> list[OutboxMessage]:
    """A page of the endpoint's deliveries, newest first, in one state or all; before: the
    public id of the last delivery shown (the integer keys never leave the server)."""
    if state is not None and state not in DELIVERY_STATES:
        raise Invalid("Filter by one of: " + ", ".join(DELIVERY_STATES) + ".", "state")
    query = select(OutboxMessage).where(OutboxMessage.endpoint_id == endpoint.id)
    if state:
        query = query.where(OutboxMessage.state == state)
    if before is not None:
        last = get_delivery(endpoint, before)
        query = query.where(OutboxMessage.id < last.id)
    return list(db.session.scalars(query.order_by(OutboxMessage.id.desc()).limit(LOG_PAGE)))


def delivery_counts(endpoint: WebhookEndpoint) -> dict[str, int]:
    rows = db.session.execute(
        select(OutboxMessage.state, func.count())
        .where(OutboxMessage.endpoint_id == endpoint.id)
        .group_by(OutboxMessage.state)
    )
    return {state: count for state, count in rows}


def get_delivery(endpoint: WebhookEndpoint, delivery_id: str) -> OutboxMessage:
    scope = select(OutboxMessage).where(OutboxMessage.endpoint_id == endpoint.id)
    return by_public_id(
        scope, OutboxMessage, delivery_id, "There is no such delivery for this endpoint."
    )


def send_test(actor: Membership, endpoint_id: str) -> OutboxMessage:
    """A webhook.test event to this one endpoint, delivered like any other."""
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    row = _row(
        endpoint,
        TEST_TYPE,
        utcnow(),
        {"message": "A test event, sent from the webhook settings of Plutomi."},
        applicant_id=None,
    )
    db.session.commit()
    return row


def retry_now(actor: Membership, endpoint_id: str, delivery_id: str) -> bool:
    """Send a dead or retrying delivery again at once, with fresh attempts."""
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    row = get_delivery(endpoint, delivery_id)
    ids = outbox.requeue(OutboxMessage.id == row.id)
    db.session.commit()
    return bool(ids)


def replay_dead(actor: Membership, endpoint_id: str) -> int:
    """Every dead delivery of the endpoint back in line, spread at REPLAY_PER_SECOND so a
    receiver that just recovered is not flooded; returns how many."""
    require(actor, Role.ADMIN)
    endpoint = get_endpoint(actor, endpoint_id)
    ids = outbox.requeue(
        OutboxMessage.endpoint_id == endpoint.id,
        states=[OutboxState.DEAD],
        limit=REPLAY_LIMIT,
        per_second=REPLAY_PER_SECOND,
    )
    db.session.commit()
    return len(ids)


# --- fan-out: events to outbox rows ------------------------------------------------------------


def note(rows: list[dict[str, Any]]) -> None:
    """Events inserted without the ORM (a timer chunk's), for the fan-out at commit."""
    db.session.info.setdefault("webhook_events", []).extend(rows)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context) -> None:
    new = [obj for obj in session.new if isinstance(obj, Event)]
    if new:
        session.info.setdefault("webhook_events", []).extend(new)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction) -> None:
    # A savepoint's events that went with it are dropped at fan-out (no longer persistent).
    if not previous_transaction.nested:
        session.info.pop("webhook_events", None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not has_app_context():
        return
    session.flush()  # events added since the last flush are collected too
    found = session.info.pop("webhook_events", None)
    if found:
        fan_out(found)


@dataclass
class _Record:
    """What the fan-out reads of an event, whether an Event row or a chunk's inserted dict."""

    type: str
    org_id: int
    opening_id: int | None
    applicant_id: int | None
    actor_type: str
    payload: dict[str, Any] | None
    created_at: datetime


_FIELDS = tuple(_Record.__dataclass_fields__)


def _records(found: list) -> list[_Record]:
    out = []
    for item in found:
        if isinstance(item, Event):
            if not inspect(item).persistent:
                continue  # rolled back with a savepoint
            item = {name: getattr(item, name) for name in _FIELDS}
        if item.get("org_id") is not None:
            out.append(_Record(**{name: item.get(name) for name in _FIELDS}))
    return out


# Orgs read in the current transaction, with their count of enabled endpoints (kept by
# triggers, migration 0009): one that has none needs no look for them at fan-out. Only this
# transaction's reads count, so the answer is never older than the SELECT it saves would be
# by more than the transaction's own span, even where a session keeps what it loaded across
# commits.
_ORG_COUNTS = "webhook_endpoint_counts"


@event.listens_for(Org, "load")
def _org_loaded(org: Org, context) -> None:
    _note_count(context.session, org)


@event.listens_for(Org, "refresh")
def _org_refreshed(org: Org, context, attrs) -> None:
    _note_count(context.session, org)


def _note_count(session: Session, org: Org) -> None:
    count = inspect(org).dict.get("webhook_endpoints_enabled")
    if count is not None:
        session.info.setdefault(_ORG_COUNTS, {})[org.id] = count


@event.listens_for(Session, "after_transaction_end")
def _forget_counts(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_ORG_COUNTS, None)


def _may_have_endpoints(session: Session, org_id: int) -> bool:
    return session.info.get(_ORG_COUNTS, {}).get(org_id) != 0


def fan_out(found: list) -> int:
    """Outbox rows for the events that enabled endpoints want; returns how many."""
    records = _records(found)
    session = db.session()
    orgs = {r.org_id for r in records if _may_have_endpoints(session, r.org_id)}
    if not orgs:
        return 0
    wanted = list(
        db.session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.org_id.in_(orgs), WebhookEndpoint.enabled.is_(True)
            )
        )
    )
    if not wanted:
        return 0
    pairs = [
        (r, e) for r in records for e in wanted if e.org_id == r.org_id and r.type in e.event_types
    ]
    if not pairs:
        return 0
    personal = any(e.include_personal_data for _, e in pairs)
    context = _Context(pairs, personal)
    for r, e in pairs:
        _row(e, r.type, r.created_at, context.data(r, e.include_personal_data), r.applicant_id)
    return len(pairs)


def _row(
    endpoint: WebhookEndpoint,
    type: str,
    at: datetime,
    data: dict[str, Any],
    applicant_id: int | None,
) -> OutboxMessage:
    public_id = new_public_id()
    body = {
        "id": f"msg_{public_id}",
        "type": type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    row = OutboxMessage(
        public_id=public_id,
        kind="webhook",
        org_id=endpoint.org_id,
        endpoint_id=endpoint.id,
        max_attempts=MAX_ATTEMPTS,
        # url: where it was meant to go when written, for the operations page.
        payload={"body": body, "applicant_id": applicant_id, "url": endpoint.url},
    )
    db.session.add(row)
    return row


class _Context:
    """What the payloads of one commit's events read, loaded once for all of them."""

    def __init__(self, pairs: list, personal: bool):
        applicant_ids = {r.applicant_id for r, _ in pairs if r.applicant_id}
        opening_ids = {r.opening_id for r, _ in pairs if r.opening_id}
        self.applicants: dict[int, dict[str, Any]] = {}
        self.answers: dict[int, dict[str, Any]] = {}
        self.openings: dict[int, dict[str, Any]] = {}
        if applicant_ids:
            rows = db.session.execute(
                select(
                    Applicant.id,
                    Applicant.public_id,
                    Applicant.name,
                    Applicant.email,
                    Applicant.status,
                    Applicant.version,
                    Stage.public_id,
                    Stage.name,
                )
                .join(Stage, Stage.id == Applicant.stage_id)
                .where(Applicant.id.in_(applicant_ids))
            )
            for id_, pid, name, email, status, version, stage_pid, stage_name in rows:
                self.applicants[id_] = {
                    "id": pid,
                    "name": name,
                    "email": email,
                    "status": status,
                    "version": version,
                    "stage": {"id": stage_pid, "name": stage_name},
                }
            if personal:
                answers = db.session.execute(
                    select(Answer.applicant_id, Question.key, Answer.value)
                    .join(Question, Question.id == Answer.question_id)
                    .where(Answer.applicant_id.in_(applicant_ids))
                    .order_by(Question.position, Question.id)
                )
                for applicant_id, key, value in answers:
                    self.answers.setdefault(applicant_id, {})[key] = value
        if opening_ids:
            rows = db.session.execute(
                select(
                    Opening.id, Opening.public_id, Opening.name, Opening.slug, Opening.state
                ).where(Opening.id.in_(opening_ids))
            )
            for id_, pid, name, slug, state in rows:
                self.openings[id_] = {"id": pid, "name": name, "slug": slug, "state": state}

    def data(self, r: _Record, personal: bool) -> dict[str, Any]:
        payload = dict(r.payload or {})
        payload.pop("custom", None)
        data: dict[str, Any] = {}
        if r.opening_id in self.openings:
            data["opening"] = self.openings[r.opening_id]
        if r.applicant_id in self.applicants:
            applicant = dict(self.applicants[r.applicant_id])
            if personal:
                applicant["answers"] = self.answers.get(r.applicant_id, {})
            else:
                for key in _PERSONAL:
                    applicant.pop(key, None)
            data["applicant"] = applicant
        if "from_stage_id" in payload:
            data["from_stage"] = {
                "id": payload.pop("from_stage_id"),
                "name": payload.pop("from_stage", None),
            }
            data["to_stage"] = {
                "id": payload.pop("to_stage_id", None),
                "name": payload.pop("to_stage", None),
            }
        if r.type == "applicant.answered" and personal:
            key = payload.get("question")
            data["value"] = self.answers.get(r.applicant_id, {}).get(key)
        if not personal and r.type == "applicant.external_event":
            payload.pop("data", None)
        data["actor"] = {"type": r.actor_type}
        for key, value in payload.items():
            data.setdefault(key, value)
        return data


# --- what delivery reports back -----------------------------------------------------------------


def record_failures(succeeded: set[int], failed: set[int], gone: set[int]) -> None:
    """Track each endpoint's run of failures after a batch (the endpoints with a delivery
    that got through, and those with one that failed): a success ends the run; a run longer
    than FAILING_LIMIT, or a 410 Gone, turns the endpoint off. The caller commits."""
    now = utcnow()
    if succeeded:
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(succeeded), WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None)
        )
    failed = failed - succeeded
    if failed:
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(failed), WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
        )
    # A 410 turns the endpoint off even when another delivery of the batch got through.
    if not failed | gone:
        return
    for endpoint in db.session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id.in_(failed | gone), WebhookEndpoint.enabled.is_(True)
        )
    ):
        if endpoint.id in gone:
            disable(endpoint, "it answered 410 Gone, which asks us to stop sending.")
        elif (
            endpoint.id in failed
            and endpoint.failing_since
            and endpoint.failing_since <= now - FAILING_LIMIT
        ):
            disable(endpoint, "every delivery to it has failed for 5 days.")
