"""Org settings, invites, roles, removing and leaving, switching orgs, and the htmx partial."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Event, Invite, Membership, Org, OutboxMessage, Role, User
from plutomi.services import orgs
from tests.conftest import PASSWORD, field_error, owner_of

# --- helpers -------------------------------------------------------------------------------


def logged_in(app, user: User):
    """A client of its own, logged in as user (one browser per person)."""
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def role_of(org: Org, user: User) -> str | None:
    return db.session.scalar(
        select(Membership.role).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def org_row(org: Org) -> tuple[str, str]:
    return tuple(db.session.execute(select(Org.name, Org.slug).where(Org.id == org.id)).one())


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def invite(client, email: str, role: Role = Role.RECRUITER, **headers):
    return client.post(
        "/settings/invites", data={"email": email, "role": role.value}, headers=headers
    )


def mails_to(email: str) -> list[OutboxMessage]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    return [row for row in rows if row.payload["to"] == email]


def invite_link(email: str) -> str:
    """The path of the invite link in the newest email to email."""
    text = mails_to(email)[-1].payload["text"]
    return re.search(r"http://localhost(/invites/\S+)", text).group(1)


def invited(app, org: Org, email: str, role: Role = Role.RECRUITER) -> str:
    """An invite sent through the members page by the org's owner; returns the link's path."""
    response = invite(logged_in(app, owner_of(org)), email, role)
    assert response.status_code == 302, response.text
    return invite_link(email.lower())


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_rename_the_org_and_change_its_slug(app, make_org, make_member, role):
    org = make_org("Acme")
    actor = owner_of(org) if role == Role.OWNER else make_member(org, Role.ADMIN)
    client = logged_in(app, actor)
    old_slug = org.slug

    response = client.post("/settings", data={"name": "  Acme   Logistics ", "slug": "Acme-Logi"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/settings"
    assert org_row(org) == ("Acme Logistics", "acme-logi")
    page = client.get("/settings")
    assert "Settings saved." in page.text
    assert "Acme Logistics" in page.text
    event = db.session.scalar(select(Event).where(Event.type == "org.updated"))
    assert event.payload["previous_slug"] == old_slug
    assert event.payload["slug"] == "acme-logi"

    # Saving again with the org's own slug is not "taken".
    response = client.post("/settings", data={"name": "Acme", "slug": "acme-logi"})
    assert response.status_code == 302
    assert org_row(org) == ("Acme", "acme-logi")


@pytest.mark.parametrize("slug", ["admin", "jobs", "settings", "invites", "Jobs"])
def test_reserved_slugs_are_refused_next_to_the_field(app, make_org, slug):
    org = make_org("Acme", slug="acme")
    client = logged_in(app, owner_of(org))
    response = client.post("/settings", data={"name": "Renamed", "slug": slug})
    assert response.status_code == 422
    assert "is reserved" in field_error(response.text, "slug")
    assert org_row(org) == ("Acme", "acme")


@pytest.mark.parametrize(
    "slug",
    ["-bad", "bad-", "UPPER CASE", "a" * 64, "under_score", "dots.in.it", "ünïcode", ""],
)
def test_invalid_slugs_are_refused_next_to_the_field(app, make_org, slug):
    org = make_org("Acme", slug="acme")
    client = logged_in(app, owner_of(org))
    response = client.post("/settings", data={"name": "Renamed", "slug": slug})
    assert response.status_code == 422
    assert field_error(response.text, "slug")
    assert org_row(org) == ("Acme", "acme")


def test_valid_edge_slugs_are_accepted(app, make_org):
    org = make_org("Acme", slug="acme")
    client = logged_in(app, owner_of(org))
    for slug in ["a", "7", "a" * 63, "a-1-b"]:
        response = client.post("/settings", data={"name": "Acme", "slug": slug})
        assert response.status_code == 302, slug
        assert org_row(org)[1] == slug


def test_a_slug_taken_by_another_org_is_refused(app, make_org):
    make_org("Other", slug="globex")
    org = make_org("Acme", slug="acme")
    client = logged_in(app, owner_of(org))
    response = client.post("/settings", data={"name": "Acme", "slug": "globex"})
    assert response.status_code == 422
    assert field_error(response.text, "slug") == "Another org uses this slug already."
    assert org_row(org) == ("Acme", "acme")


def test_an_empty_or_too_long_name_is_refused(app, make_org):
    org = make_org("Acme", slug="acme")
    client = logged_in(app, owner_of(org))
    for name in ["", "   ", "x" * 121]:
        response = client.post("/settings", data={"name": name, "slug": "acme"})
        assert response.status_code == 422, name
        assert field_error(response.text, "name"), name
    assert org_row(org) == ("Acme", "acme")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RECRUITER])
def test_viewers_and_recruiters_cannot_change_settings(app, make_org, make_member, role):
    org = make_org("Acme", slug="acme")
    client = logged_in(app, make_member(org, role))
    page = client.get("/settings")
    assert page.status_code == 200
    assert "Admins and owners can change these." in page.text
    assert 'name="slug"' not in page.text
    for data in [
        {"name": "Hijacked", "slug": "hijacked"},
        {"name": "Hijacked", "slug": "admin"},  # invalid input is refused as firmly
        {"name": "", "slug": ""},
    ]:
        response = client.post("/settings", data=data)
        assert response.status_code == 403, data
        assert "Admin role" in response.text
    assert org_row(org) == ("Acme", "acme")
    assert count(Event, Event.type == "org.updated") == 0


# --- invites -------------------------------------------------------------------------------


def test_invite_writes_an_outbox_email_with_a_link_that_a_job_delivers(
    app, make_org, make_member, run_jobs
):
    org = make_org("Acme")
    admin = make_member(org, Role.ADMIN)
    client = logged_in(app, admin)

    response = invite(client, "  New.Person@Example.com ", Role.RECRUITER)
    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/members"
    page = client.get("/settings/members")
    assert "Invite sent to new.person@example.com." in page.text
    assert "new.person@example.com" in page.text  # listed as pending

    row = db.session.scalar(select(Invite))
    assert row.email == "new.person@example.com"
    assert row.role == Role.RECRUITER
    assert row.invited_by_id == admin.id
    [mail] = mails_to("new.person@example.com")
    assert mail.org_id == org.id
    assert mail.state == "pending"
    assert "Acme" in mail.payload["subject"]
    assert admin.name in mail.payload["text"]
    assert "7 days" in mail.payload["text"]
    link = invite_link("new.person@example.com")
    assert re.fullmatch(r"/invites/[A-Za-z0-9_-]{40,}", link)
    # Only the token's hash is stored.
    assert link.removeprefix("/invites/") != row.token_hash

    assert run_jobs() == 0
    db.session.refresh(mail)
    assert mail.state == "done"
    assert mail.transport == "mailbox"


def test_a_person_may_send_only_so_many_invites_an_hour(app, make_org, monkeypatch):
    monkeypatch.setattr(orgs, "INVITES_PER_HOUR", 2)
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    for n in range(2):
        assert invite(client, f"person{n}@example.com").status_code == 302
    response = invite(client, "person2@example.com")
    assert response.status_code == 429
    assert "You have sent 2 invites in the last hour" in html.unescape(response.text)
    assert "person2@example.com" in response.text  # the form keeps what was typed
    assert db.session.scalar(select(func.count()).select_from(Invite)) == 2
    assert mails_to("person2@example.com") == []


def test_invite_email_arrives_over_smtp_with_a_stable_message_id(
    make_app, make_org, run_jobs, smtp_server
):
    smtp_app = make_app(SMTP_URL=smtp_server.url)
    org = make_org("Acme")
    client = logged_in(smtp_app, owner_of(org))
    assert invite(client, "ada@example.net").status_code == 302
    [mail] = mails_to("ada@example.net")
    link = invite_link("ada@example.net")

    with smtp_app.app_context():
        assert run_jobs() == 0
    [message] = smtp_server.to("ada@example.net")
    assert message["Message-ID"] == f"<{mail.public_id}@localhost>"
    assert message["Subject"] == mail.payload["subject"]
    assert "Acme" in message["Subject"]
    body = message.get_payload(decode=True).decode()
    assert link in body
    db.session.refresh(mail)
    assert (mail.state, mail.transport) == ("done", "smtp")
    # Sent, its row keeps no live link (see test_secret_links).
    assert link not in mail.payload["text"]


def test_a_new_user_signs_up_from_the_invite_and_joins_with_its_role(app, make_org):
    org = make_org("Acme")
    link = invited(app, org, "grace@example.com", Role.ADMIN)
    orgs_before = count(Org)
    visitor = app.test_client()

    page = visitor.get(link)
    assert page.status_code == 200
    assert "Join Acme" in page.text
    assert "grace@example.com" in page.text
    assert "Create your account" in page.text

    # A too-short password is refused next to its field, and nothing is made.
    response = visitor.post(link, data={"name": "Grace", "password": "short"})
    assert response.status_code == 422
    assert field_error(response.text, "password") == "Use at least 8 characters."
    assert response.text.count("Use at least 8 characters.") == 1  # said once, by its field
    response = visitor.post(link, data={"name": "", "password": PASSWORD})
    assert response.status_code == 422
    assert field_error(response.text, "name")
    assert count(User, User.email == "grace@example.com") == 0

    # The email is the invite's: another one in the form is ignored.
    response = visitor.post(
        link, data={"name": "Grace", "password": PASSWORD, "email": "evil@example.com"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/openings"
    user = db.session.scalar(select(User).where(User.email == "grace@example.com"))
    assert user.name == "Grace"
    assert count(User, User.email == "evil@example.com") == 0
    assert role_of(org, user) == Role.ADMIN
    # No org of their own: the invited org is their only one.
    assert count(Membership, Membership.user_id == user.id) == 1
    assert count(Org) == orgs_before
    assert db.session.scalar(select(Invite.accepted_at)) is not None

    # Logged in, in the invited org.
    page = visitor.get("/openings")
    assert page.status_code == 200
    assert "Welcome to Acme" in page.text
    assert visitor.get("/settings/members").status_code == 200  # admin rights


def test_an_existing_user_logs_in_and_then_accepts(app, make_org, make_user):
    org = make_org("Acme")
    other = make_org("Globex")
    user = make_user(email="lin@example.com", name="Lin")
    db.session.add(Membership(org_id=other.id, user_id=user.id, role=Role.OWNER))
    db.session.commit()
    link = invited(app, org, "Lin@Example.com", Role.VIEWER)
    browser = app.test_client()

    page = browser.get(link)
    assert page.status_code == 200
    assert "You have an account already. Log in to accept." in page.text
    assert 'name="password"' not in page.text  # no sign-up form for an existing account
    # Posting without logging in does nothing.
    response = browser.post(link, data={"name": "Lin", "password": PASSWORD})
    assert response.status_code == 422
    assert "Log in first." in response.text
    assert role_of(org, user) is None

    response = browser.post(
        "/login", data={"email": "lin@example.com", "password": PASSWORD, "next": link}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == link
    page = browser.get(link)
    assert "Accept and join" in page.text
    response = browser.post(link)
    assert response.status_code == 302
    assert role_of(org, user) == Role.VIEWER
    assert role_of(other, user) == Role.OWNER  # their own org is untouched
    # The session is now in the org just joined.
    settings = browser.get("/settings")
    assert "<h1>Acme</h1>" in settings.text
    assert "Welcome to Acme" in settings.text


def test_a_user_logged_in_with_another_email_is_told_and_nothing_happens(app, make_org, make_user):
    org = make_org("Acme")
    link = invited(app, org, "invited@example.com")
    someone = make_user(email="someone@example.com")
    browser = logged_in(app, someone)

    page = browser.get(link)
    assert page.status_code == 200
    assert "You are logged in as someone@example.com." in page.text
    assert "Log out and continue as invited@example.com" in page.text
    assert "Accept and join" not in page.text

    response = browser.post(link)
    assert response.status_code == 422
    assert (
        "This invite is for invited@example.com, and you are logged in as someone@example.com."
        in html.unescape(response.text)
    )
    assert role_of(org, someone) is None
    assert db.session.scalar(select(Invite.accepted_at)) is None
    assert count(User, User.email == "invited@example.com") == 0

    # "Not you?" logs out and comes back to the invite, ready for the right person.
    response = browser.post(f"{link}/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == link
    page = browser.get(link)
    assert "Create your account" in page.text
    assert browser.get("/openings").status_code == 302


def test_not_you_on_a_dead_invite_link_logs_nobody_out(client, auth, make_org):
    org = make_org()
    auth.login(owner_of(org).email)
    response = client.post("/invites/not-a-real-token/logout")
    assert response.status_code == 404
    assert "not valid" in response.text
    assert client.get("/openings").status_code == 200


def test_an_invite_link_works_once(app, make_org):
    org = make_org("Acme")
    link = invited(app, org, "once@example.com")
    first = app.test_client()
    assert first.post(link, data={"name": "Once", "password": PASSWORD}).status_code == 302

    for browser in (app.test_client(), first):
        for response in (browser.get(link), browser.post(link)):
            assert response.status_code == 404
            assert "used already" in response.text
    assert count(Membership, Membership.org_id == org.id) == 2


def test_an_invite_expires_after_its_ttl(app, make_org):
    org = make_org("Acme")
    link = invited(app, org, "late@example.com")
    ttl = app.config["INVITE_TTL"]
    assert ttl.days == 7
    now = datetime.now(UTC)

    with time_machine.travel(now + ttl - ttl / 7, tick=False):
        assert app.test_client().get(link).status_code == 200
    with time_machine.travel(now + ttl + ttl / 7 / 24, tick=False):
        browser = app.test_client()
        response = browser.get(link)
        assert response.status_code == 404
        assert "expired" in response.text
        response = browser.post(link, data={"name": "Late", "password": PASSWORD})
        assert response.status_code == 404
        # An expired invite is no longer listed as pending.
        owner_page = logged_in(app, owner_of(org)).get("/settings/members")
        assert "late@example.com" not in owner_page.text
    assert count(User, User.email == "late@example.com") == 0


def test_a_revoked_invite_is_not_valid(app, make_org):
    org = make_org("Acme")
    link = invited(app, org, "revoked@example.com")
    row = db.session.scalar(select(Invite))
    owner = logged_in(app, owner_of(org))
    response = owner.post(f"/settings/invites/{row.public_id}/revoke")
    assert response.status_code == 302
    assert "revoked@example.com" not in owner.get("/settings/members").text

    response = app.test_client().get(link)
    assert response.status_code == 404
    assert "not valid" in response.text
    response = app.test_client().post(link, data={"name": "R", "password": PASSWORD})
    assert response.status_code == 404
    assert count(User, User.email == "revoked@example.com") == 0
    # A made-up token reads the same.
    response = app.test_client().get("/invites/not-a-token")
    assert response.status_code == 404
    assert "not valid" in response.text


def test_an_invite_of_another_org_cannot_be_revoked(app, make_org):
    org = make_org("Acme")
    other = make_org("Globex")
    link = invited(app, other, "x@example.com")
    row = db.session.scalar(select(Invite))
    response = logged_in(app, owner_of(org)).post(f"/settings/invites/{row.public_id}/revoke")
    assert response.status_code == 404
    assert app.test_client().get(link).status_code == 200


def test_inviting_again_replaces_the_old_invite(app, make_org):
    org = make_org("Acme")
    owner = logged_in(app, owner_of(org))
    assert invite(owner, "twice@example.com", Role.VIEWER).status_code == 302
    old_link = invite_link("twice@example.com")
    assert invite(owner, "TWICE@example.com", Role.ADMIN).status_code == 302
    new_link = invite_link("twice@example.com")
    assert new_link != old_link
    assert len(mails_to("twice@example.com")) == 2

    response = app.test_client().get(old_link)
    assert response.status_code == 404
    assert "not valid" in response.text
    assert owner.get("/settings/members").text.count("<td>twice@example.com</td>") == 1

    browser = app.test_client()
    assert browser.post(new_link, data={"name": "Twice", "password": PASSWORD}).status_code == 302
    user = db.session.scalar(select(User).where(User.email == "twice@example.com"))
    assert role_of(org, user) == Role.ADMIN


def test_inviting_a_member_is_refused_next_to_the_email(app, make_org, make_member):
    org = make_org("Acme")
    member = make_member(org, Role.VIEWER, email="member@example.com")
    owner = logged_in(app, owner_of(org))
    response = invite(owner, "Member@Example.com")
    assert response.status_code == 422
    assert field_error(response.text, "email") == "This person is a member already."
    assert count(Invite) == 0
    assert count(OutboxMessage) == 0
    assert role_of(org, member) == Role.VIEWER
    # A member of another org is invited as usual.
    other = make_org("Globex")
    assert invite(logged_in(app, owner_of(other)), "member@example.com").status_code == 302


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "two@@example.com", "", "x" * 250 + "@e.co"]
)
def test_an_invalid_email_is_refused_next_to_the_field(app, make_org, email):
    org = make_org("Acme")
    response = invite(logged_in(app, owner_of(org)), email)
    assert response.status_code == 422
    assert field_error(response.text, "email")
    assert count(Invite) == 0
    assert count(OutboxMessage) == 0


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RECRUITER])
def test_recruiters_and_viewers_cannot_invite(app, make_org, make_member, role):
    org = make_org("Acme")
    client = logged_in(app, make_member(org, role))
    assert "Send invite" not in client.get("/settings/members").text
    for invited_role in Role:
        response = invite(client, "friend@example.com", invited_role)
        assert response.status_code == 403
    assert count(Invite) == 0
    assert count(OutboxMessage) == 0


def test_only_an_owner_can_invite_an_owner(app, make_org, make_member):
    org = make_org("Acme")
    admin = logged_in(app, make_member(org, Role.ADMIN))
    response = invite(admin, "boss@example.com", Role.OWNER)
    assert response.status_code == 403
    assert "Only an owner" in response.text
    assert count(Invite) == 0
    assert count(OutboxMessage) == 0
    assert invite(admin, "peer@example.com", Role.ADMIN).status_code == 302

    owner = logged_in(app, owner_of(org))
    assert invite(owner, "boss@example.com", Role.OWNER).status_code == 302
    link = invite_link("boss@example.com")
    assert (
        app.test_client().post(link, data={"name": "Boss", "password": PASSWORD}).status_code == 302
    )
    boss = db.session.scalar(select(User).where(User.email == "boss@example.com"))
    assert role_of(org, boss) == Role.OWNER


def test_an_unknown_role_is_refused(app, make_org):
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    response = client.post("/settings/invites", data={"email": "a@example.com", "role": "god"})
    assert response.status_code == 422
    assert field_error(response.text, "role")
    assert count(Invite) == 0


# --- roles ---------------------------------------------------------------------------------


def change_role(client, user: User, role: Role | str, **headers):
    value = role.value if isinstance(role, Role) else role
    return client.post(
        f"/settings/members/{user.public_id}/role", data={"role": value}, headers=headers
    )


def test_an_admin_changes_roles_below_owner(app, make_org, make_member):
    org = make_org("Acme")
    admin = logged_in(app, make_member(org, Role.ADMIN))
    recruiter = make_member(org, Role.RECRUITER)

    response = change_role(admin, recruiter, Role.VIEWER)
    assert response.status_code == 302
    assert role_of(org, recruiter) == Role.VIEWER
    assert "Role changed." in admin.get("/settings/members").text
    assert change_role(admin, recruiter, Role.ADMIN).status_code == 302
    assert role_of(org, recruiter) == Role.ADMIN
    event = db.session.scalar(
        select(Event).where(Event.type == "member.role_changed").order_by(Event.id.desc())
    )
    assert (event.payload["role"], event.payload["previous_role"]) == ("admin", "viewer")


def test_an_admin_cannot_make_an_owner_or_change_one(app, make_org, make_member):
    org = make_org("Acme")
    owner = owner_of(org)
    admin = logged_in(app, make_member(org, Role.ADMIN))
    recruiter = make_member(org, Role.RECRUITER)

    response = change_role(admin, recruiter, Role.OWNER)
    assert response.status_code == 403
    assert "Only an owner" in response.text
    for role in (Role.ADMIN, Role.VIEWER, Role.OWNER):
        assert change_role(admin, owner, role).status_code == 403
    assert role_of(org, recruiter) == Role.RECRUITER
    assert role_of(org, owner) == Role.OWNER


def test_an_owner_makes_another_owner_and_the_last_owner_cannot_be_demoted(
    app, make_org, make_member
):
    org = make_org("Acme")
    owner = owner_of(org)
    client = logged_in(app, owner)

    response = change_role(client, owner, Role.ADMIN)
    assert response.status_code == 302
    assert "at least one owner" in client.get("/settings/members").text
    assert role_of(org, owner) == Role.OWNER

    second = make_member(org, Role.ADMIN)
    assert change_role(client, second, Role.OWNER).status_code == 302
    assert role_of(org, second) == Role.OWNER
    # With two owners, one can step down...
    assert change_role(client, owner, Role.ADMIN).status_code == 302
    assert role_of(org, owner) == Role.ADMIN
    # ...and then the other is the last one.
    other = logged_in(app, second)
    assert change_role(other, second, Role.RECRUITER).status_code == 302
    assert role_of(org, second) == Role.OWNER
    assert count(Membership, Membership.org_id == org.id, Membership.role == Role.OWNER) == 1


def test_with_two_owners_one_demotes_the_other(app, make_org, make_member):
    org = make_org("Acme")
    second = make_member(org, Role.OWNER)
    client = logged_in(app, owner_of(org))
    assert change_role(client, second, Role.VIEWER).status_code == 302
    assert role_of(org, second) == Role.VIEWER


def test_role_changes_need_a_known_role_and_a_member_of_this_org(app, make_org, make_member):
    org = make_org("Acme")
    other = make_org("Globex")
    outsider = make_member(other, Role.RECRUITER)
    member = make_member(org, Role.RECRUITER)
    client = logged_in(app, owner_of(org))

    assert change_role(client, member, "superuser").status_code == 400
    assert change_role(client, outsider, Role.VIEWER).status_code == 404
    assert client.post("/settings/members/nobody/role", data={"role": "viewer"}).status_code == 404
    assert role_of(org, member) == Role.RECRUITER
    assert role_of(other, outsider) == Role.RECRUITER
    assert role_of(org, outsider) is None


# --- removing and leaving ------------------------------------------------------------------


def test_an_admin_removes_a_member_who_then_loses_access(app, make_org, make_member, make_opening):
    org = make_org("Acme")
    opening = make_opening(org, name="Forklift Operator")
    admin = logged_in(app, make_member(org, Role.ADMIN))
    recruiter = make_member(org, Role.RECRUITER)
    theirs = logged_in(app, recruiter)
    assert "Forklift Operator" in theirs.get("/openings").text

    response = admin.post(f"/settings/members/{recruiter.public_id}/remove")
    assert response.status_code == 302
    assert role_of(org, recruiter) is None
    assert "Member removed." in admin.get("/settings/members").text
    # Their next request has no org any more.
    response = theirs.get("/openings")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/new"
    assert theirs.get(f"/openings/{opening.public_id}").status_code == 302
    assert theirs.get("/settings/members").status_code == 302


def test_an_admin_cannot_remove_an_owner(app, make_org, make_member):
    org = make_org("Acme")
    owner = owner_of(org)
    admin = logged_in(app, make_member(org, Role.ADMIN))
    assert admin.post(f"/settings/members/{owner.public_id}/remove").status_code == 403
    assert role_of(org, owner) == Role.OWNER


def test_the_last_owner_cannot_be_removed_or_leave(app, make_org, make_member):
    org = make_org("Acme")
    owner = owner_of(org)
    client = logged_in(app, owner)

    response = client.post(f"/settings/members/{owner.public_id}/remove")
    assert response.status_code == 302
    assert "at least one owner" in client.get("/settings/members").text
    response = client.post("/orgs/leave", follow_redirects=True)
    assert "at least one owner" in response.text
    assert role_of(org, owner) == Role.OWNER

    # With a second owner, the first may go.
    second = make_member(org, Role.OWNER)
    assert client.post("/orgs/leave").status_code == 302
    assert role_of(org, owner) is None
    other = logged_in(app, second)
    assert other.post("/orgs/leave").status_code == 302
    assert role_of(org, second) == Role.OWNER


def test_a_member_leaves_and_loses_access(app, make_org, make_member, make_opening):
    org = make_org("Acme")
    home = make_org("Globex")
    acme_job = make_opening(org, name="Acme Welder")
    make_opening(home, name="Globex Chemist")
    user = make_member(org, Role.RECRUITER)
    db.session.add(Membership(org_id=home.id, user_id=user.id, role=Role.VIEWER))
    db.session.commit()
    client = logged_in(app, user)
    client.post("/orgs/switch", data={"org": org.public_id})
    assert "Acme Welder" in client.get("/openings").text

    response = client.post("/orgs/leave")
    assert response.status_code == 302
    assert role_of(org, user) is None
    assert role_of(home, user) == Role.VIEWER
    assert "You left Acme." in client.get("/openings").text
    # What remains is the other org; Acme's pages are gone.
    page = client.get("/openings")
    assert "Globex Chemist" in page.text
    assert "Acme Welder" not in page.text
    assert client.get(f"/openings/{acme_job.public_id}").status_code == 404
    assert client.post("/orgs/switch", data={"org": org.public_id}).status_code == 404
    event = db.session.scalar(select(Event).where(Event.type == "member.left"))
    assert event.org_id == org.id


def test_leaving_the_only_org_leads_to_making_a_new_one(app, make_org, make_member):
    org = make_org("Acme")
    user = make_member(org, Role.VIEWER)
    client = logged_in(app, user)
    assert client.post("/orgs/leave").status_code == 302
    response = client.get("/openings")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/new"
    assert client.get("/settings").headers["Location"] == "/orgs/new"


# --- switching and new orgs ----------------------------------------------------------------


def test_switching_between_orgs(app, make_org, make_opening):
    acme = make_org("Acme")
    user = owner_of(acme)
    globex = make_org("Globex", owner=user)
    make_opening(acme, name="Acme Welder")
    make_opening(globex, name="Globex Chemist")
    client = logged_in(app, user)

    first = client.get("/openings").text  # the first org by name
    assert "Acme Welder" in first
    assert "Globex Chemist" not in first

    response = client.post("/orgs/switch", data={"org": globex.public_id})
    assert response.status_code == 302
    assert response.headers["Location"] == "/openings"
    page = client.get("/openings").text
    assert "Switched to Globex." in page
    assert "Globex Chemist" in page
    assert "Acme Welder" not in page
    assert "<h1>Globex</h1>" in client.get("/settings").text

    client.post("/orgs/switch", data={"org": acme.public_id})
    assert "Acme Welder" in client.get("/openings").text


def test_switching_to_an_org_you_do_not_belong_to_is_404(app, make_org, make_opening):
    acme = make_org("Acme")
    stranger = make_org("Stranger")
    make_opening(acme, name="Acme Welder")
    make_opening(stranger, name="Secret Job")
    client = logged_in(app, owner_of(acme))

    for value in (stranger.public_id, "", "nonsense"):
        assert client.post("/orgs/switch", data={"org": value}).status_code == 404
    page = client.get("/openings").text
    assert "Acme Welder" in page
    assert "Secret Job" not in page
    assert app.test_client().post("/orgs/switch", data={"org": acme.public_id}).status_code == 302


def test_creating_another_org_makes_you_its_owner_and_switches_to_it(
    app, make_org, make_member, make_opening
):
    acme = make_org("Acme")
    make_opening(acme, name="Acme Welder")
    user = make_member(acme, Role.VIEWER)
    client = logged_in(app, user)
    assert client.get("/orgs/new").status_code == 200
    response = client.post("/orgs/new", data={"org_name": "  "})
    assert response.status_code == 422
    assert field_error(response.text, "org_name")

    response = client.post("/orgs/new", data={"org_name": "Jobs"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/openings"
    new = db.session.scalar(select(Org).where(Org.name == "Jobs"))
    assert role_of(new, user) == Role.OWNER
    assert role_of(acme, user) == Role.VIEWER
    assert new.slug != "jobs"  # a reserved slug is never handed out
    page = client.get("/openings").text
    assert "Jobs is ready." in page
    assert "Acme Welder" not in page
    assert "<h1>Jobs</h1>" in client.get("/settings").text
    # As its owner they may change its settings.
    assert (
        client.post("/settings", data={"name": "Jobs Inc", "slug": "jobs-inc"}).status_code == 302
    )


# --- htmx ----------------------------------------------------------------------------------

HX = {"HX-Request": "true"}


def test_htmx_invite_answers_with_the_members_partial(app, make_org):
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    response = invite(client, "hx@example.com", **HX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.text.lstrip().startswith('<div id="members"')
    assert "hx@example.com" in response.text  # now a pending invite
    trigger = response.headers.get("HX-Trigger", "")
    assert "Invite sent to hx@example.com." in response.text + trigger
    assert "HX-Request" in response.headers.get("Vary", "")
    assert count(Invite) == 1


def test_htmx_invite_with_an_invalid_email_answers_422_with_the_error(app, make_org):
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    response = invite(client, "nope", **HX)
    assert response.status_code == 422
    assert "<html" not in response.text
    assert response.text.lstrip().startswith('<div id="members"')
    assert "Enter a valid email address" in field_error(response.text, "email")
    assert count(Invite) == 0


def test_htmx_role_change_and_its_refusal_answer_with_the_partial(app, make_org, make_member):
    org = make_org("Acme")
    owner = owner_of(org)
    member = make_member(org, Role.RECRUITER)
    client = logged_in(app, owner)

    response = change_role(client, member, Role.VIEWER, **HX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "Role changed." in response.text + response.headers.get("HX-Trigger", "")
    assert role_of(org, member) == Role.VIEWER

    response = change_role(client, owner, Role.VIEWER, **HX)
    assert response.status_code == 422
    assert "<html" not in response.text
    assert "at least one owner" in response.text + response.headers.get("HX-Trigger", "")
    assert role_of(org, owner) == Role.OWNER


def test_a_boosted_request_gets_the_whole_page(app, make_org):
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    response = invite(client, "boost@example.com", **HX, **{"HX-Boosted": "true"})
    assert response.status_code == 302
    page = client.get("/settings/members", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in page.text


# --- the viewer role -----------------------------------------------------------------------


def test_a_viewer_reads_but_every_org_change_is_403(app, make_org, make_member, make_opening):
    org = make_org("Acme", slug="acme")
    owner = owner_of(org)
    make_opening(org, name="Acme Welder")
    recruiter = make_member(org, Role.RECRUITER)
    viewer = make_member(org, Role.VIEWER)
    invite(logged_in(app, owner), "pending@example.com")
    pending = db.session.scalar(select(Invite))
    client = logged_in(app, viewer)

    assert "Acme Welder" in client.get("/openings").text
    assert client.get("/settings").status_code == 200
    members = client.get("/settings/members")
    assert members.status_code == 200
    assert recruiter.email in members.text
    # No controls for what a viewer may not do.
    for control in ("Send invite", "/remove", "/role", "Revoke"):
        assert control not in members.text, control

    posts = [
        ("/settings", {"name": "Viewer Co", "slug": "viewer-co"}),
        ("/settings/invites", {"email": "friend@example.com", "role": "viewer"}),
        (f"/settings/invites/{pending.public_id}/revoke", {}),
        (f"/settings/members/{recruiter.public_id}/role", {"role": "viewer"}),
        (f"/settings/members/{viewer.public_id}/role", {"role": "owner"}),
        (f"/settings/members/{recruiter.public_id}/remove", {}),
        (f"/settings/members/{owner.public_id}/remove", {}),
    ]
    for path, data in posts:
        for headers in ({}, HX):
            response = client.post(path, data=data, headers=headers)
            assert response.status_code == 403, (path, headers)

    assert org_row(org) == ("Acme", "acme")
    assert role_of(org, recruiter) == Role.RECRUITER
    assert role_of(org, viewer) == Role.VIEWER
    assert role_of(org, owner) == Role.OWNER
    assert count(Invite) == 1
    db.session.refresh(pending)
    assert pending.revoked_at is None
    assert len(mails_to("friend@example.com")) == 0


def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, make_org, make_member):
    """The last-owner rule holds under a race, not only one request at a time."""
    import threading

    from sqlalchemy import func, select

    from plutomi.models import Membership, Role
    from plutomi.services import orgs
    from plutomi.services.errors import Invalid

    org = make_org()
    first = org.memberships[0].user
    second = make_member(org, Role.OWNER)
    # Plain values only: the threads must not touch the test's own session.
    org_id = org.id
    pairs = [(first.id, second.public_id), (second.id, first.public_id)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor_user_id: int, target_public_id: str) -> None:
        with app.app_context():
            actor = db.session.scalar(
                select(Membership).where(
                    Membership.org_id == org_id, Membership.user_id == actor_user_id
                )
            )
            barrier.wait(10)
            try:
                orgs.change_role(actor, target_public_id, Role.ADMIN)
                outcomes.append("changed")
            except Invalid:
                outcomes.append("refused")
            except Exception as exc:  # reported by the assertion below
                outcomes.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=demote, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    owners = db.session.scalar(
        select(func.count()).where(Membership.org_id == org_id, Membership.role == Role.OWNER)
    )
    assert sorted(outcomes) == ["changed", "refused"]
    assert owners == 1
