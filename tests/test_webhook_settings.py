"""Settings → Webhooks: endpoints through their pages, the secret shown once, the delivery
log with retry and replay, and who may do what."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select, update

from plutomi.extensions import db
from plutomi.models import Membership, OutboxMessage, OutboxState, Role, WebhookEndpoint
from plutomi.services import webhooks
from tests.conftest import logged_in, owner_membership, owner_of

PAGE = "/settings/webhooks"
HX = {"HX-Request": "true"}


pytestmark = pytest.mark.local_receivers  # the receivers listen on 127.0.0.1


def form(url="http://127.0.0.1:9/hook", **extra):
    data = {
        "url": url,
        "description": "Accounts service",
        "event_types": ["applicant.moved", "applicant.created"],
        "custom_types": "driver.approved",
        "include_personal_data": "y",
        "enabled": "y",
    }
    data.update(extra)
    return data


def endpoint() -> WebhookEndpoint:
    return db.session.scalar(select(WebhookEndpoint))


def test_adding_an_endpoint_shows_its_secret_once(app, make_org):
    org = make_org()
    client = logged_in(app, owner_of(org))
    page = client.get(PAGE)
    assert page.status_code == 200 and "No endpoints yet" in page.text

    created = client.post(f"{PAGE}/new", data=form())
    assert created.status_code == 200
    row = endpoint()
    assert row.secret in created.text and "will not be shown again" in created.text
    assert created.headers["Cache-Control"] == "no-store"  # nothing keeps a copy of it
    assert row.event_types == ["applicant.moved", "applicant.created", "driver.approved"]
    assert row.description == "Accounts service" and row.enabled and row.include_personal_data

    again = client.get(f"{PAGE}/{row.public_id}")
    assert row.secret not in again.text and row.secret[-4:] in again.text
    listed = client.get(PAGE)
    assert "http://127.0.0.1:9/hook" in listed.text and "driver.approved" in listed.text


def test_bad_input_is_shown_next_to_each_field_and_nothing_is_saved(app, make_org):
    org = make_org()
    client = logged_in(app, owner_of(org))
    answer = client.post(
        f"{PAGE}/new",
        data=form(url="ftp://example.com/x", event_types=[], custom_types="Not A Type"),
    )
    assert answer.status_code == 422
    text = html.unescape(answer.text)
    assert "Use an http:// or https:// URL." in text
    assert "is not an event type" in text
    assert 'value="ftp://example.com/x"' in text  # what was typed is kept
    assert endpoint() is None


def test_private_targets_are_refused_unless_allowed(make_app, make_org):
    app = make_app()  # ALLOW_PRIVATE_WEBHOOK_TARGETS off, as in production
    org = make_org()
    client = logged_in(app, owner_of(org))
    answer = client.post(f"{PAGE}/new", data=form(url="http://127.0.0.1:8080/hook"))
    assert answer.status_code == 422
    assert "private or reserved address" in html.unescape(answer.text)
    assert endpoint() is None


def added_endpoint(app, org):
    """An owner's client that added an endpoint through the form: (client, endpoint, its
    page's URL)."""
    client = logged_in(app, owner_of(org))
    client.post(f"{PAGE}/new", data=form())
    row = endpoint()
    return client, row, f"{PAGE}/{row.public_id}"


def test_edit_rotate_test_and_delete(app, make_org):
    org = make_org()
    client, _, url = added_endpoint(app, org)

    edit = client.get(url)
    assert 'value="driver.approved"' in edit.text  # custom types come back in their field
    saved = client.post(
        url, data=form(event_types=["opening.published"], custom_types="", include_personal_data="")
    )
    assert saved.status_code == 302
    db.session.expire_all()
    assert endpoint().event_types == ["opening.published"]
    assert endpoint().include_personal_data is False

    old = endpoint().secret
    rotated = client.post(f"{url}/rotate")
    db.session.expire_all()
    assert rotated.status_code == 200 and endpoint().secret in rotated.text
    assert endpoint().previous_secret == old and endpoint().previous_secret_expires_at

    assert client.post(f"{url}/test").status_code == 302
    test_row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
    assert test_row.payload["body"]["type"] == "webhook.test"
    log = client.get(url)
    assert "webhook.test" in log.text and f"msg_{test_row.public_id}" in log.text

    # Without JavaScript (no hx-confirm) a delete asks first, and changes nothing yet.
    asked = client.post(f"{url}/delete")
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert endpoint() is not None
    assert client.post(f"{url}/delete", data={"confirm": "yes"}).status_code == 302
    assert endpoint() is None
    assert db.session.scalar(select(OutboxMessage.id)) is None


def test_retry_and_replay_from_the_log(app, make_org):
    org = make_org()
    client, _, url = added_endpoint(app, org)
    for _ in range(3):
        client.post(f"{url}/test")
    db.session.execute(
        update(OutboxMessage).values(state=OutboxState.DEAD, attempts=8, last_error="Answered 500")
    )
    db.session.commit()
    first, *_ = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))

    page = client.get(f"{url}?state=dead")
    assert "Replay all dead (3)" in page.text and "Answered 500" in page.text
    retried = client.post(f"{url}/deliveries/{first.public_id}/retry", headers=HX)
    assert retried.status_code == 200 and 'id="delivery-' in retried.text
    # The whole log comes back, its counts changed, polling itself while the row waits.
    assert retried.headers["HX-Retarget"] == "#deliveries"
    assert "pending (1)" in retried.text and "dead (2)" in retried.text
    assert 'hx-trigger="every 3s"' in retried.text
    replayed = client.post(f"{url}/replay")
    assert replayed.status_code == 302
    states = db.session.scalars(
        select(OutboxMessage.state).execution_options(populate_existing=True)
    )
    assert sorted(states) == ["pending"] * 3
    assert client.get(f"{url}?state=bogus").status_code == 400


def test_weaker_roles_and_other_orgs_get_nothing(app, make_org, make_member):
    org, other = make_org(), make_org("Other")
    client, row, _ = added_endpoint(app, org)
    recruiter = logged_in(app, make_member(org, Role.RECRUITER))
    assert recruiter.get(PAGE).status_code == 403
    assert recruiter.post(f"{PAGE}/new", data=form()).status_code == 403
    assert recruiter.post(f"{PAGE}/{row.public_id}/delete").status_code == 403
    assert "Webhooks" not in recruiter.get("/settings").text
    stranger = logged_in(app, owner_of(other))
    assert stranger.get(f"{PAGE}/{row.public_id}").status_code == 404
    assert stranger.post(f"{PAGE}/{row.public_id}/delete").status_code == 404
    assert re.search(r"Webhooks", client.get("/settings").text)


def test_the_operations_page_names_a_deliverys_url_and_type():
    from plutomi.services import operations

    payload = {"body": {"type": "applicant.moved"}, "url": "https://hooks.example.com/x"}
    assert operations.describe("webhook", payload) == (
        "https://hooks.example.com/x",
        "applicant.moved",
    )


def test_the_log_pages_by_public_id(app, make_org):
    org = make_org()
    client, row, url = added_endpoint(app, org)
    for _ in range(webhooks.LOG_PAGE + 1):
        webhooks.send_test(owner_membership(org), row.public_id)
    first, *_ = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))

    page = client.get(url)
    older = re.search(r'href="([^"]*/deliveries\?[^"]*before=([a-z0-9]{16})[^"]*)"', page.text)
    assert older, "the page offers the older deliveries"
    assert page.text.count('class="delivery-row"') == webhooks.LOG_PAGE
    rest = client.get(html.unescape(older.group(1)), headers=HX)
    assert rest.status_code == 200
    assert rest.text.count('class="delivery-row"') == 1
    assert f"msg_{first.public_id}" in rest.text
    assert "Show older" not in rest.text
    made_up = client.get(f"{url}/deliveries?before={'x' * 16}", headers=HX)
    assert made_up.status_code == 400
    assert client.get(f"{url}/deliveries?before={first.id}", headers=HX).status_code == 400


def test_the_turned_off_emails_link_opens_the_endpoint_from_any_org_the_admin_is_in(app, make_org):
    org = make_org("Acme")
    client, row, url = added_endpoint(app, org)
    other = make_org("Other")
    owner = owner_of(org)
    db.session.add(Membership(org_id=other.id, user_id=owner.id, role=Role.OWNER))
    db.session.commit()
    client.post("/orgs/switch", data={"org": other.public_id})  # now looking at Other
    assert client.get(url).status_code == 404  # the endpoint is Acme's

    webhooks.disable(row, "410 Gone")
    db.session.commit()
    mail = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.payload["template"].as_string() == "webhook_disabled"
        )
    )
    link = re.search(r"https?://\S+/settings/webhooks/\S+", mail.payload["text"]).group(0)
    assert link.endswith(f"?org={org.public_id}")
    opened = client.get(link.split("localhost", 1)[-1])
    assert opened.status_code == 200 and row.url in html.unescape(opened.text)
    # An org the user is not in switches nothing.
    stranger = make_org("Stranger")
    still = client.get(f"{url}?org={stranger.public_id}")
    assert still.status_code == 200 and f'data-org="{org.public_id}"' in still.text
