"""Webhooks in a real browser: an admin adds an endpoint, copies its secret from the page,
sends a test event that a real receiver verifies, and reads the delivery log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook

from tests.browser.helpers import log_in
from tests.conftest import owner_of

pytestmark = pytest.mark.local_receivers  # the receivers listen on 127.0.0.1


def test_add_an_endpoint_send_a_test_event_and_read_the_log(
    new_context, live_server, make_org, webhook_receiver, run_jobs
):
    org = make_org("Acme")
    page = log_in(new_context, owner_of(org).email)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("navigation").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    page.get_by_role("link", name="Add endpoint").first.click()

    # A bad URL is refused next to its field, keeping what was typed.
    page.get_by_label("URL").fill("ftp://example.com/hook")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator(".field.has-error").first).to_contain_text(
        "Use an http:// or https:// URL."
    )
    expect(page.get_by_role("group", name="Events")).to_contain_text("at least one event type")
    expect(page.get_by_label("URL")).to_have_value("ftp://example.com/hook")

    page.get_by_label("URL").fill(webhook_receiver.url())
    page.get_by_label("Description").fill("Accounts service")
    page.get_by_label("applicant.moved").check()
    page.get_by_label("Other event types").fill("driver.approved")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    secret = page.locator("pre.secret").inner_text().strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]+", secret)

    # The address bar names the endpoint's page, not the form that made it.
    expect(page).to_have_url(re.compile(r"/settings/webhooks/\w{16}$"))

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("status").first).to_contain_text("Test event queued")
    row = page.locator("tr.delivery-row").first
    expect(row).to_contain_text("pending")
    run_jobs()
    (request,) = webhook_receiver.wait_for(1)
    event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "webhook.test"

    # The log redraws itself while a delivery is on its way: no reload needed.
    expect(row).to_contain_text("done")
    expect(row).to_contain_text("200")
    expect(row).to_contain_text("webhook.test")
    page.reload()
    row.get_by_text("Payload and response").click()
    expect(row.locator("pre.payload").first).to_contain_text(event["id"])
    # The secret is not on the page any more.
    expect(page.locator("pre.secret")).to_have_count(0)
