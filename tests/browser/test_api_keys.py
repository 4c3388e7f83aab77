"""API keys in a real browser: an admin makes a key, copies it from the page, uses it, and
revokes it through htmx's confirmation dialog (which answers the confirmation itself, so no
second page asks again)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from playwright.sync_api import expect

from tests.browser.helpers import log_in
from tests.conftest import owner_of


def _status(live_server: str, token: str) -> int:
    request = urllib.request.Request(
        f"{live_server}/api/v1/openings", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            json.load(response)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_make_use_and_revoke_a_key(new_context, live_server, make_org):
    org = make_org("Acme")
    page = log_in(new_context, owner_of(org).email)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("navigation").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()

    # Refused next to its field.
    page.get_by_role("button", name="Make key").click()
    expect(page.locator(".field.has-error")).to_contain_text("This field is required.")

    page.get_by_label("Name").fill("Careers site")
    page.get_by_label("Access").select_option("write")
    page.get_by_role("button", name="Make key").click()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    token = page.locator("#new-token").inner_text().strip()
    assert re.fullmatch(r"plk_[A-Za-z0-9_-]{43}", token)
    assert _status(live_server, token) == 200

    # Gone from the page once left: only its prefix stays.
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#api-keys")).to_contain_text(token[:12])

    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.locator("#api-keys").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status").first).to_contain_text("is revoked")
    expect(page.locator("#api-keys")).to_contain_text("revoked")
    assert dialogs and "Revoke the key “Careers site”?" in dialogs[0]
    assert _status(live_server, token) == 401
