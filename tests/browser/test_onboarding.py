"""The first hour of Plutomi in a real browser: sign up, invite a teammate, join, switch orgs."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import Invite, Org
from tests.browser.helpers import mark_page, same_page
from tests.conftest import PASSWORD

OWNER_EMAIL = "ada@example.com"
TEAMMATE_EMAIL = "grace@example.com"
TEAMMATE_PASSWORD = "a long and unusual passphrase"
INVITE_LINK = re.compile(r"https?://\S+/invites/\S+")


def selected_org(page: Page):
    return page.locator("#org-select option:checked")


def sign_up(page: Page, name: str, email: str, password: str, org_name: str) -> None:
    page.goto("/signup")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Organisation").fill(org_name)
    page.get_by_role("button", name="Sign up").click()


def invite_link(message) -> str:
    body = message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")
    match = INVITE_LINK.search(body)
    assert match, body
    return match.group(0)


def test_sign_up_invite_a_teammate_who_joins_and_switches_orgs(
    new_context, live_server, smtp_server, run_jobs
):
    # The owner signs up and lands on the openings of the new org.
    owner = new_context().new_page()
    sign_up(owner, "Ada Lovelace", OWNER_EMAIL, PASSWORD, "Acme Hiring")
    expect(owner).to_have_url(re.compile(r"/openings$"))
    expect(owner.get_by_role("heading", name="Openings")).to_be_visible()
    expect(owner.get_by_role("status").first).to_contain_text("Acme Hiring is ready")
    expect(selected_org(owner)).to_have_text("Acme Hiring")

    # Settings -> Members, then an invite through the htmx form: no full page load.
    owner.get_by_role("link", name="Settings").click()
    expect(owner.get_by_role("heading", name="Acme Hiring")).to_be_visible()
    owner.get_by_role("navigation").get_by_role("link", name="Members").click()
    expect(owner).to_have_url(re.compile(r"/settings/members$"))
    expect(owner.get_by_role("heading", name="Members")).to_be_visible()
    mark_page(owner)
    owner.get_by_label("Email").fill(TEAMMATE_EMAIL)
    owner.get_by_label("Role", exact=True).select_option(label="Recruiter")
    owner.get_by_role("button", name="Send invite").click()
    pending = owner.locator("#members tr", has_text=TEAMMATE_EMAIL)
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("recruiter")
    expect(owner.locator("#members")).to_contain_text(f"Invite sent to {TEAMMATE_EMAIL}.")
    assert same_page(owner)
    expect(owner.get_by_label("Email")).to_have_value("")

    # The invite goes out through the outbox and the real SMTP server.
    assert run_jobs() == 0
    mails = smtp_server.to(TEAMMATE_EMAIL)
    assert len(mails) == 1
    assert mails[0]["Subject"] == "Ada Lovelace invited you to Acme Hiring on Plutomi"
    link = invite_link(mails[0])
    assert link.startswith(live_server)

    # The teammate, in a browser of their own, creates an account from the link.
    teammate = new_context().new_page()
    teammate.goto(link)
    expect(teammate.get_by_role("heading", name="Join Acme Hiring")).to_be_visible()
    expect(teammate.get_by_text(f"invited {TEAMMATE_EMAIL} as recruiter")).to_be_visible()
    teammate.get_by_label("Your name").fill("Grace Hopper")
    teammate.get_by_label("Password", exact=True).fill(TEAMMATE_PASSWORD)
    teammate.get_by_role("button", name="Create account and join").click()
    expect(teammate).to_have_url(re.compile(r"/openings$"))
    expect(teammate.get_by_role("status").first).to_contain_text("Welcome to Acme Hiring.")
    expect(selected_org(teammate)).to_have_text("Acme Hiring")
    expect(teammate.get_by_role("link", name="Grace Hopper")).to_be_visible()

    # A second org of their own, then back to the first with the switcher.
    teammate.get_by_role("link", name="+ New org").click()
    expect(teammate.get_by_role("heading", name="New organisation")).to_be_visible()
    teammate.get_by_label("Name").fill("Grace Labs")
    teammate.get_by_role("button", name="Create").click()
    expect(teammate).to_have_url(re.compile(r"/openings$"))
    expect(teammate.get_by_role("status").first).to_contain_text("Grace Labs is ready.")
    expect(selected_org(teammate)).to_have_text("Grace Labs")
    expect(teammate.locator("#org-select option")).to_have_text(["Acme Hiring", "Grace Labs"])

    # Two tabs: this one shows Grace Labs' members, another switches to Acme Hiring. An
    # invite sent from this tab then is refused, not sent from the org the other tab chose.
    teammate.goto("/settings/members")
    mark_page(teammate)
    other_tab = teammate.context.new_page()
    other_tab.goto("/openings")
    other_tab.get_by_label("Organisation").select_option(label="Acme Hiring")
    other_tab.get_by_role("button", name="Switch", exact=True).click()
    expect(other_tab.get_by_role("status").first).to_contain_text("Switched to Acme Hiring.")
    other_tab.close()
    teammate.get_by_label("Email").fill("someone@example.com")
    teammate.get_by_role("button", name="Send invite").click()
    expect(teammate.get_by_role("alert")).to_contain_text(
        "This page is of Grace Labs, but you have switched to Acme Hiring"
    )
    expect(teammate.get_by_label("Email")).to_have_value("someone@example.com")
    assert same_page(teammate)
    assert db.session.scalar(select(Invite).where(Invite.email == "someone@example.com")) is None

    teammate.get_by_label("Organisation").select_option(label="Acme Hiring")
    teammate.get_by_role("button", name="Switch", exact=True).click()
    expect(teammate.get_by_role("status").first).to_contain_text("Switched to Acme Hiring.")
    expect(selected_org(teammate)).to_have_text("Acme Hiring")
    teammate.get_by_role("link", name="Settings").click()
    expect(teammate.get_by_role("heading", name="Acme Hiring")).to_be_visible()

    # Log out, and back in with email and password.
    teammate.get_by_role("button", name="Log out").click()
    expect(teammate).to_have_url(re.compile(r"/login$"))
    expect(teammate.get_by_role("heading", name="Log in")).to_be_visible()
    expect(teammate.get_by_role("status").first).to_contain_text("You are logged out.")
    expect(teammate.locator("#org-select")).to_have_count(0)
    teammate.get_by_label("Email").fill(TEAMMATE_EMAIL)
    teammate.get_by_label("Password", exact=True).fill(TEAMMATE_PASSWORD)
    teammate.get_by_role("button", name="Log in").click()
    expect(teammate).to_have_url(re.compile(r"/openings$"))
    expect(teammate.get_by_role("heading", name="Openings")).to_be_visible()
    expect(teammate.get_by_role("button", name="Log out")).to_be_visible()

    # Meanwhile the owner reloads the members page: the teammate is a member now.
    owner.reload()
    member = owner.locator("#members tbody tr", has_text="Grace Hopper")
    expect(member).to_be_visible()
    expect(member).to_contain_text(TEAMMATE_EMAIL)
    expect(owner.get_by_label("Role of Grace Hopper")).to_have_value("recruiter")
    expect(owner.get_by_role("heading", name="Pending invites")).to_have_count(0)
    expect(owner.locator("#members h2 .count")).to_have_text("2")


def test_form_errors_sit_by_their_field_and_pages_fit_a_phone(new_context, make_opening, tmp_path):
    page = new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()

    sign_up(page, "Ada Lovelace", OWNER_EMAIL, "short", "Acme Hiring")
    password = page.get_by_label("Password", exact=True)
    error = page.locator(".field", has=password).locator(".error")
    expect(error).to_contain_text("at least 8 characters")
    expect(password).to_have_attribute("aria-invalid", "true")
    # Under the field, not somewhere else on the page.
    assert error.bounding_box()["y"] > password.bounding_box()["y"]
    expect(page.locator(".error")).to_have_count(1)
    # What was typed, except the password, is still there.
    expect(page.get_by_label("Your name")).to_have_value("Ada Lovelace")
    expect(page.get_by_label("Email")).to_have_value(OWNER_EMAIL)
    expect(page.get_by_label("Organisation")).to_have_value("Acme Hiring")
    expect(password).to_have_value("")

    password.fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/openings$"))
    make_opening(
        db.session.scalar(select(Org).where(Org.name == "Acme Hiring")),
        name="Senior Warehouse Operations Coordinator (Night Shift, Rotterdam)",
    )
    page.reload()

    nav = page.get_by_role("banner").get_by_role("navigation")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("button", name="Log out")).to_be_in_viewport()
    expect(page.get_by_role("heading", name="Openings")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Senior Warehouse"))).to_be_in_viewport()
    shot = tmp_path / "openings-phone.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
