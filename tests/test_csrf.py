"""CSRF protection, switched on as in production: plain forms and htmx requests."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Invite, Membership, Org, OutboxMessage, User
from tests.conftest import PASSWORD, owner_of

CSRF_MESSAGE = "This form had expired or came from another site."


@pytest.fixture
def csrf_app(make_app, app):
    """An app with CSRF checks on; `app` keeps the test's own context for reading the database."""
    return make_app(WTF_CSRF_ENABLED=True)


def form_token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def header_token(page: str) -> str:
    """The token htmx sends with every request, from <body hx-headers='{...}'>."""
    raw = re.search(r"<body[^>]*hx-headers='([^']*)'", page).group(1)
    return json.loads(html.unescape(raw))["X-CSRFToken"]


def login(client, email: str) -> None:
    token = form_token(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.text


def users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def assert_csrf_page(response) -> None:
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert CSRF_MESSAGE in response.text
    assert "<h1>Bad request</h1>" in response.text
    assert "Traceback" not in response.text
    # Our words, not the library's ("The CSRF token is missing.", "... is invalid.").
    assert "The CSRF" not in response.text


def test_posts_without_a_token_get_our_own_400_page(csrf_app, make_org):
    org = make_org()
    client = csrf_app.test_client()
    email = owner_of(org).email

    assert_csrf_page(client.post("/login", data={"email": email, "password": PASSWORD}))
    assert client.get("/openings").status_code == 302  # not logged in
    signup = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "org_name": "A"}
    assert_csrf_page(client.post("/signup", data=signup))
    assert users() == 1
    # A wrong token is no better than none.
    assert_csrf_page(client.post("/signup", data={**signup, "csrf_token": "forged"}))
    assert users() == 1


def test_an_api_style_client_gets_the_error_as_json(csrf_app):
    response = csrf_app.test_client().post(
        "/login", data={"email": "a@example.com"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith(CSRF_MESSAGE)


def test_login_and_signup_work_with_the_token_of_their_form(csrf_app, make_org):
    org = make_org()
    client = csrf_app.test_client()
    login(client, owner_of(org).email)
    assert client.get("/openings").status_code == 200

    newcomer = csrf_app.test_client()
    page = newcomer.get("/signup")
    response = newcomer.post(
        "/signup",
        data={
            "name": "Ada",
            "email": "ada@example.com",
            "password": PASSWORD,
            "org_name": "Ada Co",
            "csrf_token": form_token(page.text),
        },
    )
    assert response.status_code == 302
    assert newcomer.get("/openings").status_code == 200
    assert db.session.scalar(select(Org.name).where(Org.name == "Ada Co")) == "Ada Co"


def test_a_token_of_another_session_is_refused(csrf_app):
    token = form_token(csrf_app.test_client().get("/login").text)
    response = csrf_app.test_client().post(
        "/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert_csrf_page(response)


def test_an_htmx_post_with_the_header_token_is_accepted(csrf_app, make_org):
    org = make_org("Acme")
    client = csrf_app.test_client()
    login(client, owner_of(org).email)
    page = client.get("/settings/members").text
    token = header_token(page)
    assert token == form_token(page)

    hx = {"HX-Request": "true"}
    data = {"email": "hx@example.com", "role": "viewer"}
    refused = client.post("/settings/invites", data=data, headers=hx)
    assert_csrf_page(refused)
    assert db.session.scalar(select(func.count()).select_from(Invite)) == 0

    response = client.post("/settings/invites", data=data, headers={**hx, "X-CSRFToken": token})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert db.session.scalar(select(Invite.email)) == "hx@example.com"
    # A plain form post (no htmx) may carry the token in the header as well.
    response = client.post("/logout", headers={"X-CSRFToken": token})
    assert response.status_code == 302
    assert client.get("/openings").status_code == 302


def test_the_forms_of_the_org_pages_carry_working_tokens(csrf_app, make_org):
    org = make_org("Acme", slug="acme")
    owner = csrf_app.test_client()
    login(owner, owner_of(org).email)

    page = owner.get("/settings").text
    response = owner.post(
        "/settings", data={"name": "Acme 2", "slug": "acme-2", "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    page = owner.get("/settings/members").text
    response = owner.post(
        "/settings/invites",
        data={"email": "new@example.com", "role": "recruiter", "csrf_token": form_token(page)},
    )
    assert response.status_code == 302

    # The invitee signs up from the link with the token of the invite page.
    link = re.search(r"/invites/[\w-]+", _last_mail_text()).group(0)
    invitee = csrf_app.test_client()
    assert_csrf_page(invitee.post(link, data={"name": "New", "password": PASSWORD}))
    page = invitee.get(link).text
    response = invitee.post(
        link, data={"name": "New", "password": PASSWORD, "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert db.session.scalar(select(Membership.role).where(Membership.user_id == user.id)) == (
        "recruiter"
    )

    # The org switcher and "new org" forms too.
    page = invitee.get("/orgs/new").text
    response = invitee.post(
        "/orgs/new", data={"org_name": "Side Co", "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    page = invitee.get("/openings").text
    switcher = re.search(r'<form[^>]*id="org-switcher".*?</form>', page, re.S).group(0)
    response = invitee.post(
        "/orgs/switch", data={"org": org.public_id, "csrf_token": form_token(switcher)}
    )
    assert response.status_code == 302
    assert "<h1>Acme 2</h1>" in invitee.get("/settings").text


def _last_mail_text() -> str:
    db.session.expire_all()
    row = db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    return row.payload["text"]
