"""Sign-up, login sessions, throttling, password reset and profile."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Event, Membership, OutboxMessage, Role, User, UserSession
from plutomi.services import accounts, throttle
from tests.conftest import PASSWORD, Auth


def signup(client, email="ada@example.com", password=PASSWORD, name="Ada", org_name="Acme"):
    return client.post(
        "/signup", data={"name": name, "email": email, "password": password, "org_name": org_name}
    )


def test_signup_creates_user_org_and_owner_membership(client):
    response = signup(client)
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert membership.role == Role.OWNER
    assert membership.org.name == "Acme"
    assert user.password_hash.startswith("scrypt:")
    assert db.session.scalar(select(Event.type).where(Event.org_id == membership.org_id)) == (
        "org.created"
    )
    # The new owner lands on their org's openings, logged in.
    page = client.get("/openings")
    assert page.status_code == 200
    assert "Acme" in page.text


def test_a_server_may_close_sign_up_and_take_accounts_by_invite_only(make_app):
    closed_app = make_app(ALLOW_SIGNUP=False)
    closed = closed_app.test_client()
    for response in (
        closed.get("/signup"),
        closed.post(
            "/signup",
            data={"name": "Eve", "email": "eve@example.com", "password": PASSWORD, "org_name": "X"},
        ),
    ):
        assert response.status_code == 403
        assert "Sign-up is closed on this server" in response.text
    with closed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
    for page in ("/login", "/"):
        assert 'href="/signup"' not in closed.get(page, follow_redirects=True).text
    assert 'href="/signup"' in make_app().test_client().get("/login").text


def test_signup_errors_are_shown_next_to_their_fields(client, make_user):
    make_user(email="taken@example.com")
    cases = [
        ({"email": "not-an-email"}, "Enter a valid email address"),
        ({"email": "TAKEN@example.com"}, "already exists"),
        ({"password": "short"}, "at least 8 characters"),
        ({"password": "password123"}, "most common"),
        ({"name": "x" * 121}, "120 characters"),
        ({"name": "   "}, "This field is required"),
    ]
    for overrides, message in cases:
        data = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "org_name": "Acme"}
        data.update(overrides)
        response = client.post("/signup", data=data)
        assert response.status_code == 422, overrides
        assert message in response.text, overrides
        assert 'class="error"' in response.text
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_login_starts_a_new_server_side_session_and_logout_ends_it(client, auth, make_org):
    org = make_org()
    email = org.memberships[0].user.email
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker before login"
    assert auth.login(email).status_code == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess
        cookie_user_id = sess["_user_id"]
    assert db.session.scalar(select(func.count()).select_from(UserSession)) == 1
    assert client.get("/openings").status_code == 200

    auth.logout()
    assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0
    # Replaying the old session value no longer logs anyone in.
    with client.session_transaction() as sess:
        sess["_user_id"] = cookie_user_id
        sess["_fresh"] = True
    assert client.get("/openings").status_code == 302


def test_wrong_password_gives_one_clear_message(client, auth, make_org):
    org = make_org()
    response = auth.login(org.memberships[0].user.email, "wrong password!")
    assert response.status_code == 422
    assert "Wrong email or password." in response.text
    response = auth.login("nobody@example.com", "wrong password!")
    assert "Wrong email or password." in response.text


def test_remember_me_sets_a_lasting_cookie(client, auth, make_org):
    org = make_org()
    response = auth.login(org.memberships[0].user.email, remember=True)
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


def from_ip(app, ip: str) -> Auth:
    """A browser of its own, at this address."""
    browser = Auth(app.test_client())
    browser.client.environ_base["REMOTE_ADDR"] = ip
    return browser


def test_five_wrong_passwords_lock_out_their_ip_for_fifteen_minutes(app, make_org):
    org = make_org()
    email = org.memberships[0].user.email
    guesser = from_ip(app, "203.0.113.7")
    for _ in range(5):
        assert guesser.login(email, "wrong password!").status_code == 422
    response = guesser.login(email)  # even the right password is refused now
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert "15 minutes" in response.text
    # The owner of the account, elsewhere, is not shut out by someone else's guesses.
    assert from_ip(app, "198.51.100.2").login(email).status_code == 302


def test_guesses_at_one_account_from_many_ips_lock_the_account(app, make_org):
    org = make_org()
    email = org.memberships[0].user.email
    for n in range(5 * throttle.ACCOUNT_FACTOR):
        guesser = from_ip(app, f"203.0.113.{n}")
        assert guesser.login(email, "wrong password!").status_code == 422
    assert from_ip(app, "198.51.100.2").login(email).status_code == 429


def test_failures_from_one_ip_are_counted_across_accounts(client, auth, make_org):
    org = make_org()
    for n in range(5):
        auth.login(f"someone{n}@example.com", "wrong password!")
    response = auth.login(org.memberships[0].user.email)
    assert response.status_code == 429


def test_password_reset_by_emailed_link(client, auth, make_org, run_jobs):
    org = make_org()
    user = org.memberships[0].user
    auth.login(user.email)  # a session that the reset must end
    other = client.application.test_client()

    response = other.post("/password/forgot", data={"email": user.email})
    assert response.status_code == 302
    # Unknown emails get the same answer and no mail.
    assert other.post("/password/forgot", data={"email": "x@example.com"}).status_code == 302
    mail = db.session.scalar(select(OutboxMessage))
    assert mail.payload["to"] == user.email
    assert run_jobs() == 0
    db.session.refresh(mail)
    assert mail.state == "done"
    [link] = reset_links(user.email)

    assert other.post(link, data={"password": "short"}).status_code == 422
    response = other.post(link, data={"password": "a brand new passphrase"})
    assert response.status_code == 302
    assert client.get("/openings").status_code == 302  # the old session has ended
    assert auth.login(user.email, "a brand new passphrase").status_code == 302
    # The link works once.
    again = other.get(link)
    assert again.status_code == 404
    assert "used already" in again.text


def reset_links(email: str) -> list[str]:
    return [
        re.search(r"http://localhost(/password/reset/\S+)", mail.payload["text"]).group(1)
        for mail in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        if mail.payload["to"] == email
    ]


@pytest.mark.parametrize("how", ["reset", "change"])
def test_a_new_password_ends_every_reset_link_still_out(client, auth, make_org, how):
    user = make_org().memberships[0].user
    for _ in range(2):
        client.post("/password/forgot", data={"email": user.email})
    first, second = reset_links(user.email)
    if how == "reset":
        assert client.post(first, data={"password": "a brand new passphrase"}).status_code == 302
    else:
        auth.login(user.email)
        client.post(
            "/account",
            data={
                "form": "password",
                "password-current_password": PASSWORD,
                "password-new_password": "a brand new passphrase",
            },
        )
        assert auth.login(user.email, "a brand new passphrase").status_code == 302
    stale = client.application.test_client().get(second)
    assert stale.status_code == 404 and "used already" in stale.text


def test_reset_requests_mail_an_account_three_links_an_hour_and_answer_alike(client, make_org):
    user = make_org().memberships[0].user
    for _ in range(5):
        response = client.post("/password/forgot", data={"email": user.email})
        assert response.status_code == 302  # the same answer, mailed or not
    assert len(reset_links(user.email)) == accounts.RESETS_PER_HOUR


def test_reset_requests_from_one_address_are_limited(client, monkeypatch):
    monkeypatch.setattr(accounts, "RESET_REQUESTS_PER_IP", 3)
    for n in range(3):
        client.post("/password/forgot", data={"email": f"nobody{n}@example.com"})
    response = client.post("/password/forgot", data={"email": "nobody@example.com"})
    assert response.status_code == 429
    assert "Too many reset requests from your address" in response.text
    assert 'value="nobody@example.com"' in response.text


def test_a_wrong_reset_token_gets_a_clear_page(client):
    response = client.get("/password/reset/not-a-token")
    assert response.status_code == 404
    assert "not valid" in response.text


def test_profile_and_password_change(client, auth, make_org):
    org = make_org()
    user = org.memberships[0].user
    auth.login(user.email)
    second = client.application.test_client()
    second.post("/login", data={"email": user.email, "password": PASSWORD})
    assert second.get("/openings").status_code == 200

    response = client.post("/account", data={"form": "profile", "profile-name": "Ada L."})
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.name == "Ada L."

    wrong = client.post(
        "/account",
        data={
            "form": "password",
            "password-current_password": "nope nope",
            "password-new_password": "x" * 12,
        },
    )
    assert wrong.status_code == 422
    assert "not your current password" in wrong.text

    response = client.post(
        "/account",
        data={
            "form": "password",
            "password-current_password": PASSWORD,
            "password-new_password": "another long passphrase",
        },
    )
    assert response.status_code == 302
    assert client.get("/account").status_code == 200  # this session stays
    assert second.get("/openings").status_code == 302  # the other one has ended
