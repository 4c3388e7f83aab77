"""Webhooks, from the event to the receiver: the fan-out of events to outbox rows in the
transaction that writes them, the payloads, Standard Webhooks signatures and secret rotation,
and the applicant timeline's lines about deliveries. The receiver is a real HTTP server on
127.0.0.1 (tests/receivers.py), so these apps allow private webhook targets."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, insert, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from plutomi.extensions import db, keeping_loaded, queues
from plutomi.models import (
    Event,
    Org,
    OutboxMessage,
    OutboxState,
    Trigger,
    WebhookEndpoint,
    new_public_id,
    utcnow,
)
from plutomi.services import applications, moves, openings, rules, timeline, webhooks
from plutomi.services.errors import Invalid
from plutomi.services.events import Actor, record_applicant
from tests.conftest import owner_membership
from tests.receivers import Answer, Receiver

STAGES = ("Applied", "Review", "Hired")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


pytestmark = pytest.mark.local_receivers  # the receivers listen on 127.0.0.1


@pytest.fixture
def org(make_org) -> Org:
    return make_org("Acme")


@pytest.fixture
def opening(org, make_opening):
    opening = make_opening(org, "Delivery Driver", STAGES)
    return opening, {s.name: s for s in opening.stages}


# --- helpers, shared with tests/test_webhook_delivery.py ---------------------------------------


def add_endpoint(org: Org, url: str, *types: str, **fields) -> WebhookEndpoint:
    endpoint, _secret = webhooks.create_endpoint(
        owner_membership(org), webhooks.EndpointInput(url=url, event_types=types, **fields)
    )
    return endpoint


def fresh() -> None:
    """See what other connections committed, holding nothing open."""
    db.session.rollback()


def deliveries(endpoint: WebhookEndpoint | None = None) -> list[OutboxMessage]:
    fresh()
    query = select(OutboxMessage).where(OutboxMessage.kind == "webhook")
    if endpoint is not None:
        query = query.where(OutboxMessage.endpoint_id == endpoint.id)
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


def delivery(row_id: int) -> OutboxMessage:
    fresh()
    return db.session.get(OutboxMessage, row_id)


def endpoint_now(endpoint_id: int) -> WebhookEndpoint:
    fresh()
    return db.session.get(WebhookEndpoint, endpoint_id)


def move(org: Org, applicant, stage) -> None:
    moves.move(owner_membership(org), applicant.public_id, stage.public_id)


def queued_ids() -> set[int]:
    return {i for job in queues.queue().get_jobs() for i in job.args[0]}


def verify(secret: str, received) -> dict:
    """The body, if the signature verifies with secret (raises otherwise)."""
    return Webhook(secret).verify(received.body, received.headers)


# --- fan-out -----------------------------------------------------------------------------------


def test_an_event_becomes_one_row_per_enabled_endpoint_that_wants_it(
    org, opening, make_org, make_applicant
):
    opening, stages = opening
    first = add_endpoint(org, "http://127.0.0.1:9/a", "applicant.moved")
    second = add_endpoint(org, "http://127.0.0.1:9/b", "applicant.created", "applicant.moved")
    add_endpoint(org, "http://127.0.0.1:9/off", "applicant.moved", enabled=False)
    add_endpoint(org, "http://127.0.0.1:9/other", "opening.published")
    elsewhere = make_org("Elsewhere")
    add_endpoint(elsewhere, "http://127.0.0.1:9/theirs", "applicant.moved")
    applicant = make_applicant(opening)
    assert deliveries() == []

    move(org, applicant, stages["Review"])

    rows = deliveries()
    assert Counter(row.endpoint_id for row in rows) == {first.id: 1, second.id: 1}
    assert {row.org_id for row in rows} == {org.id}
    assert {row.state for row in rows} == {OutboxState.PENDING}
    assert {row.max_attempts for row in rows} == {webhooks.MAX_ATTEMPTS}
    bodies = [row.payload["body"] for row in rows]
    assert {body["type"] for body in bodies} == {"applicant.moved"}
    # Each endpoint's delivery has its own id, the row's: the webhook-id a receiver dedupes on.
    assert [body["id"] for body in bodies] == [f"msg_{row.public_id}" for row in rows]
    assert {row.payload["applicant_id"] for row in rows} == {applicant.id}
    # Handed to RQ when the move committed.
    assert {row.id for row in rows} <= queued_ids()


def test_a_rolled_back_event_sends_nothing_and_a_savepoints_goes_with_it(
    org, opening, make_applicant
):
    opening, stages = opening
    endpoint = add_endpoint(org, "http://127.0.0.1:9/a", "applicant.moved")
    kept, dropped = make_applicant(opening, name="Kept"), make_applicant(opening, name="Dropped")
    fields = moves.stage_fields(stages["Applied"], stages["Review"])

    record_applicant("applicant.moved", kept, actor=Actor.system(), **fields)
    db.session.flush()
    db.session.rollback()
    make_applicant(opening, name="Unrelated")  # a later commit in the same session
    assert deliveries() == []

    record_applicant("applicant.moved", kept, actor=Actor.system(), **fields)
    with pytest.raises(RuntimeError), db.session.begin_nested():
        record_applicant("applicant.moved", dropped, actor=Actor.system(), **fields)
        db.session.flush()
        raise RuntimeError("e.g. a conflict the service caught")
    db.session.commit()
    (row,) = deliveries(endpoint)
    assert row.payload["applicant_id"] == kept.id
    moved = select(func.count()).select_from(Event).where(Event.type == "applicant.moved")
    assert db.session.scalar(moved) == 1


def recounted(org_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.enabled.is_(True))
    )


def test_each_orgs_count_of_enabled_endpoints_follows_every_change(org, make_org):
    """The count the fan-out trusts (orgs.webhook_endpoints_enabled) is kept by triggers,
    whichever way an endpoint changes: made, turned off and on, turned off by delivery in
    one UPDATE, deleted."""
    other = make_org("Other")
    admin = owner_membership(org)

    def counts() -> tuple[int, int]:
        fresh()
        kept = dict(db.session.execute(select(Org.id, Org.webhook_endpoints_enabled)).all())
        assert (kept[org.id], kept[other.id]) == (recounted(org.id), recounted(other.id))
        return kept[org.id], kept[other.id]

    assert counts() == (0, 0)
    first = add_endpoint(org, "http://127.0.0.1:9/a", "applicant.moved")
    second = add_endpoint(org, "http://127.0.0.1:9/b", "applicant.moved")
    add_endpoint(org, "http://127.0.0.1:9/off", "applicant.moved", enabled=False)
    add_endpoint(other, "http://127.0.0.1:9/theirs", "applicant.moved")
    assert counts() == (2, 1)

    def enable(endpoint, on: bool) -> None:
        webhooks.update_endpoint(
            admin,
            endpoint.public_id,
            webhooks.EndpointInput(url=endpoint.url, event_types=("applicant.moved",), enabled=on),
        )

    enable(first, False)
    assert counts() == (1, 1)
    enable(first, False)  # no change: no count
    assert counts() == (1, 1)
    enable(first, True)
    assert counts() == (2, 1)
    webhooks.record_failures(set(), set(), {first.id, second.id})  # both answered 410
    db.session.commit()
    assert counts() == (0, 1)
    enable(second, True)
    assert counts() == (1, 1)
    webhooks.delete_endpoint(admin, second.public_id)
    webhooks.delete_endpoint(admin, first.public_id)  # off already: no count
    assert counts() == (0, 1)


def test_an_endpoint_made_while_a_session_holds_its_org_still_gets_the_events(
    org, opening, make_applicant
):
    """A session that keeps its org loaded across commits (as a worker's does) trusts the
    org's count only in the transaction that read it: a later one looks the endpoints up."""
    opening, stages = opening
    applicant = make_applicant(opening)
    fields = moves.stage_fields(stages["Applied"], stages["Review"])
    with keeping_loaded() as session:
        session.expire_all()
        assert session.get(Org, org.id).webhook_endpoints_enabled == 0
        # Read the count that says none in this transaction: nothing is looked up or sent.
        record_applicant("applicant.moved", applicant, actor=Actor.system(), **fields)
        session.commit()
        assert deliveries() == []
        session.get(Org, org.id)  # the org stays loaded, count 0, across these commits
        session.commit()
        with db.engine.begin() as conn:  # another connection makes an endpoint meanwhile
            conn.execute(
                insert(WebhookEndpoint).values(
                    public_id=new_public_id(),
                    org_id=org.id,
                    url="http://127.0.0.1:9/new",
                    event_types=["applicant.moved"],
                    secret=webhooks.new_secret(),
                )
            )
        assert session.get(Org, org.id).webhook_endpoints_enabled == 0  # as loaded
        record_applicant("applicant.moved", applicant, actor=Actor.system(), **fields)
        session.commit()
    (row,) = deliveries()
    assert row.payload["body"]["type"] == "applicant.moved"


def test_a_rules_webhook_action_reaches_an_endpoint_of_its_custom_type(
    org, opening, make_applicant, make_rule, webhook_receiver, run_jobs
):
    opening, stages = opening
    make_rule(
        stages["Review"],
        Trigger.STAGE_ENTERED,
        [{"type": "webhook", "event": "driver.approved"}],
        name="Create the driver's account",
    )
    endpoint = add_endpoint(org, webhook_receiver.url(), custom_types="driver.approved")
    assert endpoint.event_types == ["driver.approved"]
    assert webhooks.custom_types(org.id) == ["driver.approved"]
    applicant = make_applicant(opening)

    move(org, applicant, stages["Review"])

    (row,) = deliveries(endpoint)  # the move itself is not a type it wants
    assert row.payload["body"]["type"] == "driver.approved"
    assert run_jobs() == 0
    (received,) = webhook_receiver.wait_for(1)
    body = received.json()
    assert body["type"] == "driver.approved"
    data = body["data"]
    assert data["applicant"]["id"] == applicant.public_id
    assert data["applicant"]["stage"] == {"id": stages["Review"].public_id, "name": "Review"}
    assert data["opening"]["id"] == opening.public_id
    assert data["actor"] == {"type": "rule"}
    assert data["rule_name"] == "Create the driver's account"
    assert data["stage"] == "Review"
    assert "custom" not in data
    assert delivery(row.id).state == OutboxState.DONE


def test_moves_fired_by_timers_fan_out_too(
    org, opening, make_applicant, make_rule, webhook_receiver, run_jobs
):
    opening, stages = opening
    applied, review = stages["Applied"], stages["Review"]
    make_rule(
        applied,
        Trigger.TIME_IN_STAGE,
        [
            {"type": "webhook", "event": "driver.reminded"},
            {"type": "move", "stage": review.public_id},
        ],
        name="Two days in Applied",
        delay_minutes=2 * 24 * 60,
    )
    endpoint = add_endpoint(
        org, webhook_receiver.url(), "applicant.moved", custom_types="driver.reminded"
    )
    with time_machine.travel(utcnow(), tick=False) as clock:
        people = [make_applicant(opening, name=f"Person {n}") for n in range(3)]
        for person in people:
            rules.entered(person, applied, entry=person.stage_entry)
        db.session.commit()
        queues.queue().empty()
        clock.shift(timedelta(days=2, minutes=1))
        # The chunk path: events inserted without the ORM, noted for the fan-out.
        assert rules.sweep() == (3, 3)
        rows = deliveries(endpoint)
        assert {row.id for row in rows} <= queued_ids()  # handed off at the chunk's commit
        assert run_jobs() == 0

    assert Counter(row.payload["body"]["type"] for row in rows) == {
        "applicant.moved": 3,
        "driver.reminded": 3,
    }
    moved = [
        row.payload["body"] for row in rows if row.payload["body"]["type"] != "driver.reminded"
    ]
    for body in moved:
        assert body["data"]["from_stage"] == {"id": applied.public_id, "name": "Applied"}
        assert body["data"]["to_stage"] == {"id": review.public_id, "name": "Review"}
        assert body["data"]["actor"] == {"type": "rule"}
        assert body["data"]["why"] == "2 days in stage"
    assert {body["data"]["applicant"]["id"] for body in moved} == {p.public_id for p in people}

    webhook_receiver.wait_for(6)
    assert sorted(webhook_receiver.ids()) == sorted(f"msg_{row.public_id}" for row in rows)
    assert {row.state for row in deliveries(endpoint)} == {OutboxState.DONE}


def test_publishing_an_opening_fans_out_opening_published(org, webhook_receiver, run_jobs):
    endpoint = add_endpoint(org, webhook_receiver.url(), "opening.published")
    draft = openings.create_opening(owner_membership(org), "Summer Camp")
    openings.add_stage(owner_membership(org), draft.public_id, "Applied")
    assert deliveries(endpoint) == []
    openings.publish(owner_membership(org), draft.public_id)

    assert run_jobs() == 0
    (received,) = webhook_receiver.wait_for(1)
    body = received.json()
    assert body["type"] == "opening.published"
    assert body["data"]["opening"] == {
        "id": draft.public_id,
        "name": "Summer Camp",
        "slug": draft.slug,
        "state": "published",
    }
    assert body["data"]["previous_state"] == "draft"
    assert body["data"]["actor"] == {"type": "user"}
    assert "applicant" not in body["data"]


# --- payloads ----------------------------------------------------------------------------------


def test_the_payload_and_leaving_personal_data_out(
    org, opening, make_question, webhook_receiver, run_jobs
):
    opening, stages = opening
    make_question(stages["Applied"], "city", label="City")
    types = ("applicant.created", "applicant.moved")
    with Receiver() as private_receiver:
        full = add_endpoint(org, webhook_receiver.url("/full?v=1"), *types)
        private = add_endpoint(
            org, private_receiver.url("/private"), *types, include_personal_data=False
        )
        applicant, new = applications.apply(
            opening, "Ada Okafor", "ada.okafor@example.net", {"city": "Porto"}
        )
        assert new
        move(org, applicant, stages["Review"])
        assert run_jobs() == 0
        got = webhook_receiver.wait_for(2)
        hidden = private_receiver.wait_for(2)

    rows = {row.public_id: row for row in deliveries()}
    assert Counter(row.endpoint_id for row in rows.values()) == {full.id: 2, private.id: 2}
    for received in got + hidden:
        assert received.method == "POST"
        assert received.headers["content-type"] == "application/json"
        assert received.headers["user-agent"].startswith("Plutomi-Webhooks/")
        body = received.json()
        assert set(body) == {"id", "type", "timestamp", "data"}
        assert body["id"] == received.webhook_id
        assert body == rows[received.webhook_id.removeprefix("msg_")].payload["body"]
        assert datetime.fromisoformat(body["timestamp"]).tzinfo == UTC
        assert body["timestamp"].endswith("Z")
        assert body["data"]["opening"]["id"] == opening.public_id
        assert body["data"]["applicant"]["id"] == applicant.public_id
    assert {r.path for r in got} == {"/full?v=1"}
    assert {r.path for r in hidden} == {"/private"}

    by_type = {r.json()["type"]: r.json()["data"] for r in got}
    created, moved = by_type["applicant.created"], by_type["applicant.moved"]
    assert created["applicant"]["name"] == "Ada Okafor"
    assert created["applicant"]["email"] == "ada.okafor@example.net"
    assert created["applicant"]["answers"] == {"city": "Porto"}
    assert created["actor"] == {"type": "applicant"}
    assert created["source"] == "application_form"
    assert moved["from_stage"] == {"id": stages["Applied"].public_id, "name": "Applied"}
    assert moved["to_stage"] == {"id": stages["Review"].public_id, "name": "Review"}
    assert moved["actor"] == {"type": "user"}
    assert moved["applicant"]["stage"] == {"id": stages["Review"].public_id, "name": "Review"}
    assert "from_stage_id" not in moved and "to_stage_id" not in moved

    for received in hidden:
        raw = received.text
        assert EMAIL.search(raw) is None, raw
        assert "Ada" not in raw and "Okafor" not in raw and "Porto" not in raw
        person = received.json()["data"]["applicant"]
        assert not {"name", "email", "answers"} & set(person)
        assert person["stage"]["name"] in {"Applied", "Review"}
    private_moved = next(r.json()["data"] for r in hidden if "to_stage" in r.json()["data"])
    assert private_moved["to_stage"] == moved["to_stage"]


# --- signatures --------------------------------------------------------------------------------


def test_signatures_verify_and_a_rotated_secret_signs_beside_the_new_one_for_a_day(
    org, webhook_receiver, run_jobs
):
    start = utcnow()
    with time_machine.travel(start, tick=True) as clock:
        endpoint, old = webhooks.create_endpoint(
            owner_membership(org),
            webhooks.EndpointInput(url=webhook_receiver.url(), event_types=("applicant.moved",)),
        )
        assert old.startswith("whsec_")
        webhooks.send_test(owner_membership(org), endpoint.public_id)
        run_jobs()
        (first,) = webhook_receiver.wait_for(1)
        assert len(first.signatures) == 1
        assert first.signatures[0].startswith("v1,")
        assert verify(old, first)["type"] == webhooks.TEST_TYPE
        assert abs(int(first.headers["webhook-timestamp"]) - utcnow().timestamp()) < 60
        with pytest.raises(WebhookVerificationError):
            verify(webhooks.new_secret(), first)
        tampered = type(first)(**{**first.__dict__, "body": first.body.replace(b"test", b"tesT")})
        with pytest.raises(WebhookVerificationError):
            verify(old, tampered)

        _, new = webhooks.rotate_secret(owner_membership(org), endpoint.public_id)
        assert new != old
        webhooks.send_test(owner_membership(org), endpoint.public_id)
        run_jobs()
        second = webhook_receiver.wait_for(2)[1]
        assert len(second.signatures) == 2
        assert verify(new, second) == verify(old, second) == second.json()

        clock.move_to(start + webhooks.ROTATION_GRACE + timedelta(minutes=1))
        webhooks.send_test(owner_membership(org), endpoint.public_id)
        run_jobs()
        third = webhook_receiver.wait_for(3)[2]
        assert len(third.signatures) == 1
        assert verify(new, third)["id"] == third.webhook_id
        with pytest.raises(WebhookVerificationError):
            verify(old, third)
    assert len({r.webhook_id for r in webhook_receiver.requests}) == 3


def test_a_second_rotation_within_the_day_keeps_the_secret_receivers_hold(org, webhook_receiver):
    endpoint, original = webhooks.create_endpoint(
        owner_membership(org),
        webhooks.EndpointInput(url=webhook_receiver.url(), event_types=("applicant.moved",)),
    )
    _, missed = webhooks.rotate_secret(owner_membership(org), endpoint.public_id)
    _, shown = webhooks.rotate_secret(owner_membership(org), endpoint.public_id)
    # The receiver still holds the original: it keeps signing beside the newest, and the
    # secret in between (never put to use) is gone.
    assert webhooks.signing_secrets(endpoint) == [shown, original]
    assert missed not in webhooks.signing_secrets(endpoint)
    # After the grace, a rotation keeps the one it replaces, as the first did.
    later = utcnow() + webhooks.ROTATION_GRACE + timedelta(minutes=1)
    with time_machine.travel(later):
        assert webhooks.signing_secrets(endpoint) == [shown]
        _, newest = webhooks.rotate_secret(owner_membership(org), endpoint.public_id)
        assert webhooks.signing_secrets(endpoint) == [newest, shown]


# --- the applicant's timeline ------------------------------------------------------------------


def test_the_timeline_tells_of_a_delivered_and_a_failed_webhook(
    org, opening, make_applicant, webhook_receiver, run_jobs
):
    opening, stages = opening
    with Receiver() as refusing:
        refusing.default = Answer(400, "no such account")
        good = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
        bad = add_endpoint(org, refusing.url("/refuse"), "applicant.moved")
        applicant = make_applicant(opening)
        move(org, applicant, stages["Review"])
        assert run_jobs() == 0
        refusing.wait_for(1)
    webhook_receiver.wait_for(1)
    assert [row.state for row in deliveries(good)] == [OutboxState.DONE]
    (dead,) = deliveries(bad)
    assert dead.state == OutboxState.DEAD
    assert (dead.response_status, dead.response_body) == (400, "no such account")

    events = {
        e.type: e
        for e in db.session.scalars(
            select(Event).where(Event.applicant_id == applicant.id, Event.type.like("webhook.%"))
        )
    }
    assert set(events) == {"webhook.delivered", "webhook.failed"}
    delivered, failed = events["webhook.delivered"], events["webhook.failed"]
    assert delivered.org_id == failed.org_id == org.id
    assert delivered.payload["url"] == good.url
    assert delivered.payload["status"] == 200
    assert failed.payload["status"] == 400
    assert "refused" in failed.payload["error"]

    assert timeline.describe(delivered.type, delivered.payload) == (
        f"Webhook applicant.moved delivered to {good.url}"
    )
    assert timeline.describe(failed.type, failed.payload) == (
        f"Webhook applicant.moved to {bad.url} failed: Answered 400: the receiver refused it"
    )
    texts = [entry.text for entry in timeline.page(org, applicant).entries]
    assert timeline.describe(delivered.type, delivered.payload) in texts
    assert timeline.describe(failed.type, failed.payload) in texts
    # Nothing in the events or their sentences is JSON-escaped or empty.
    assert all(texts) and not any("{" in text for text in texts), json.dumps(texts)


def test_a_delivery_to_an_endpoint_turned_off_meanwhile_is_kept_and_told(
    org, opening, make_applicant, webhook_receiver, run_jobs
):
    opening, stages = opening
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    applicant = make_applicant(opening)
    move(org, applicant, stages["Review"])
    webhooks.update_endpoint(
        owner_membership(org),
        endpoint.public_id,
        webhooks.EndpointInput(url=endpoint.url, event_types=("applicant.moved",), enabled=False),
    )
    assert run_jobs() == 0

    (row,) = deliveries(endpoint)
    assert (row.state, row.last_error) == (OutboxState.DEAD, "The endpoint is turned off")
    assert webhook_receiver.requests == []
    failed = db.session.scalar(select(Event).where(Event.type == "webhook.failed"))
    assert failed.applicant_id == applicant.id
    assert timeline.describe(failed.type, failed.payload) == (
        f"Webhook applicant.moved to {endpoint.url} failed: The endpoint is turned off"
    )


@pytest.mark.parametrize("name", ["driver.2fa_done", "a." + "b" * 62])
def test_an_endpoint_can_subscribe_to_any_type_a_rule_may_emit(name):
    from plutomi.services import events

    assert events.type_problem(name, custom=True) is None  # a rule may emit it
    assert webhooks.clean_event_types([], name) == [name]


@pytest.mark.parametrize("name", ["webhook.delivered", "rule.fired", "a." + "b" * 63])
def test_built_in_or_too_long_types_are_refused_for_endpoints_as_for_rules(name):
    from plutomi.services import events

    assert events.type_problem(name, custom=True) is not None
    with pytest.raises(Invalid):
        webhooks.clean_event_types([], name)
