"""The "delivery driver" loop end to end, over real HTTP: an applicant entering Ready to Drive
produces a signed driver.approved webhook; the receiving system answers by posting
account_creation.failed to the API; a rule moves the applicant to Account Creation Failures,
and the timeline tells every step with its actor."""

from __future__ import annotations

import json
import urllib.request

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from plutomi.extensions import db
from plutomi.models import Applicant, Event, Membership, Opening, OutboxMessage
from plutomi.services import demo, timeline, webhooks

pytestmark = pytest.mark.local_receivers  # the receivers listen on 127.0.0.1


def call(base: str, token: str, method: str, path: str, body: dict | None = None, **headers):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"} | headers,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_ready_to_drive_to_account_creation_failures(
    app, live_server, webhook_receiver, make_api_key, run_jobs
):
    demo.load("a demo password to remember")
    opening = db.session.scalar(select(Opening))
    stages = {stage.name: stage for stage in opening.stages}
    owner = db.session.scalar(select(Membership))
    org = owner.org
    endpoint, secret = webhooks.create_endpoint(
        owner,
        webhooks.EndpointInput(
            url=webhook_receiver.url("/accounts"),
            description="The accounts service",
            event_types=("driver.approved",),
        ),
    )
    _, token = make_api_key(org)
    applicant = db.session.scalar(
        select(Applicant)
        .where(Applicant.stage_id == stages["Final Review"].id)
        .order_by(Applicant.id)
    )

    # A recruiter's integration approves the driver through the API.
    status, moved = call(
        live_server,
        token,
        "POST",
        f"/api/v1/applicants/{applicant.public_id}/move",
        {"stage_id": stages["Ready to Drive"].public_id, "version": applicant.version},
    )
    assert status == 200 and moved["stage"]["name"] == "Ready to Drive"

    # The worker delivers the signed driver.approved webhook to the accounts service.
    run_jobs()
    (request,) = webhook_receiver.wait_for(1)
    event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "driver.approved"
    assert event["data"]["applicant"]["id"] == applicant.public_id
    assert event["data"]["applicant"]["email"] == applicant.email
    assert request.headers["webhook-id"] == event["id"]

    # Account creation fails over there: the service reports it, keyed by the webhook's id so
    # that a retried webhook never reports twice.
    for _ in range(2):
        status, reported = call(
            live_server,
            token,
            "POST",
            f"/api/v1/applicants/{event['data']['applicant']['id']}/events",
            {"type": "account_creation.failed", "data": {"reason": "licence not recognised"}},
            **{"Idempotency-Key": request.headers["webhook-id"]},
        )
        assert status == 201
        assert reported["applicant"]["stage"]["name"] == "Account Creation Failures"

    db.session.expire_all()
    assert (
        db.session.get(Applicant, applicant.id).stage_id == stages["Account Creation Failures"].id
    )
    delivery = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
    assert delivery.state == "done" and delivery.endpoint_id == endpoint.id
    types = list(
        db.session.scalars(
            select(Event.type).where(Event.applicant_id == applicant.id).order_by(Event.id)
        )
    )
    tail = types[types.index("applicant.moved") :]
    assert tail.count("applicant.external_event") == 1  # the repeat was replayed, not redone
    for step in (
        "applicant.moved",  # to Ready to Drive, by the API key
        "rule.fired",  # "Ask for the driver's account"
        "driver.approved",
        "webhook.delivered",
        "applicant.external_event",
        "rule.fired",  # "Account creation failed"
    ):
        assert step in tail, (step, tail)
    assert tail[-1] == "applicant.moved"

    page = timeline.page(org, db.session.get(Applicant, applicant.id))
    lines = [entry.text for entry in page.entries]
    assert any("Account Creation Failures" in line for line in lines), lines
    assert any("driver.approved" in line and "delivered" in line for line in lines), lines
    assert any("account_creation.failed" in line for line in lines), lines
