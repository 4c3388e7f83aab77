"""Arbitrary text in every form: never a 500, never a half-written change.

Each strategy mixes a valid value, text of any kind (control characters, NUL, very long) and
the valid value with one odd character slipped in, so the odd input also reaches the code
behind the form's own validation: the services and the database.
"""

from __future__ import annotations

import re
from itertools import count
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from plutomi.extensions import db, queues
from plutomi.models import (
    Event,
    Invite,
    Membership,
    Org,
    OutboxMessage,
    PasswordReset,
    Role,
    User,
)
from plutomi.services import orgs
from tests.conftest import PASSWORD, Auth

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ALLOWED = {200, 302, 400, 422, 429}

odd_char = st.one_of(
    st.sampled_from(["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff"]),
    st.characters(codec="utf-8"),
)
any_text = st.one_of(
    st.text(max_size=80),
    st.text(st.characters(max_codepoint=0x9F), max_size=80),  # ASCII and control characters
    st.text(min_size=1000, max_size=5000),
    st.builds(lambda s, n: (s * n)[:5000], st.text(min_size=1, max_size=4), st.integers(1, 5000)),
    st.sampled_from(["\x00", "\x00" * 300, " ", "\t\n\r", "'; DROP TABLE users; --"]),
)


def around(valid: str | st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value, any text, or the valid value with one odd character inside it."""
    base = valid if isinstance(valid, st.SearchStrategy) else st.just(valid)
    injected = st.builds(
        lambda value, char, at: (
            value[: at % (len(value) + 1)] + char + value[at % (len(value) + 1) :]
        ),
        base,
        odd_char,
        st.integers(0, 300),
    )
    return st.one_of(base, any_text, injected)


_serial = count()


def fresh_email() -> st.SearchStrategy[str]:
    """An email no account or invite uses yet."""
    return st.builds(lambda: f"fuzz-{next(_serial)}@example.com")


def _ip() -> dict:
    """A different client address per example, so the per-IP login throttle stays out of it."""
    n = next(_serial)
    return {"REMOTE_ADDR": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (User, Org, Membership, Invite, OutboxMessage, PasswordReset, Event)
    }


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before if after[k] != before[k]}


def assert_answer(response) -> None:
    assert response.status_code in ALLOWED, response.status_code
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture
def owner(app, make_user, make_org):
    user = make_user(email="owner@example.com", name="Owner")
    org = make_org("Fuzz Org", owner=user, slug="fuzz-org")
    return user, org


@pytest.fixture
def owner_client(app, owner):
    client = app.test_client()
    assert Auth(client).login(owner[0].email).status_code == 302
    return client


@FUZZ
@given(
    name=around("Ada Okafor"),
    email=around(fresh_email()),
    password=around(PASSWORD),
    org_name=around("Acme Logistics"),
)
@example(name="Ada\x00", email="nul-name@example.com", password=PASSWORD, org_name="Acme")
@example(name="Ada", email="nul-org@example.com", password=PASSWORD, org_name="Ac\x00me")
@example(name="Ada", email="nul-pw@example.com", password=PASSWORD + "\x00", org_name="Acme")
@example(name="Ada", email="nul\x00@example.com", password=PASSWORD, org_name="Acme")
@example(name="A\x1bda", email="esc@example.com", password=PASSWORD, org_name="Acme")
def test_signup_with_any_input(app, name, email, password, org_name):
    before = counts()
    response = app.test_client().post(
        "/signup",
        data={"name": name, "email": email, "password": password, "org_name": org_name},
        environ_base=_ip(),
    )
    assert_answer(response)
    diff = changed(before, counts())
    if response.status_code == 302:
        assert diff == {"User": 1, "Org": 1, "Membership": 1, "Event": 1}
        user = db.session.scalar(select(User).order_by(User.id.desc()))
        assert "\x00" not in user.name
    else:
        assert diff == {}, "a refused signup left rows behind"


@FUZZ
@given(
    email=around("owner@example.com"),
    password=around(PASSWORD),
    remember=st.sampled_from(["", "y", "\x00", "yes"]),
    next_=around("/openings"),
)
@example(email="owner@example.com", password=PASSWORD, remember="", next_="/\\evil.example")
@example(email="owner@example.com", password=PASSWORD, remember="", next_="/\t/evil.example")
@example(email="owner@example.com", password=PASSWORD, remember="", next_="/\n/evil.example")
@example(email="owner\x00@example.com", password=PASSWORD, remember="", next_="/")
@example(email="owner@example.com", password="\x00" * 12, remember="", next_="/")
def test_login_with_any_input(app, owner, email, password, remember, next_):
    queues.connection.flushdb()  # each example starts with no failures counted
    before = counts()
    response = app.test_client().post(
        "/login",
        data={"email": email, "password": password, "remember": remember, "next": next_},
        environ_base=_ip(),
    )
    assert_answer(response)
    assert changed(before, counts()) == {}
    if response.status_code == 302:
        # Where a browser goes: it reads backslashes as slashes and drops tabs and newlines.
        location = re.sub(r"[\t\n\r]", "", response.headers["Location"]).replace("\\", "/")
        target = urlsplit(urljoin("http://localhost/login", location.lstrip("\x00 ")))
        assert target.netloc == "localhost", response.headers["Location"]


@FUZZ
@given(email=around(st.sampled_from(["owner@example.com", "nobody@example.com"])))
@example(email="owner\x00@example.com")
@example(email="\x00")
def test_forgot_password_with_any_input(app, owner, email):
    before = counts()
    response = app.test_client().post("/password/forgot", data={"email": email}, environ_base=_ip())
    assert_answer(response)
    diff = changed(before, counts())
    # The same answer either way; a mail only for the account that exists.
    sent = {"PasswordReset": 1, "OutboxMessage": 1}
    if response.status_code != 302:
        assert diff == {}
    elif email.strip().lower() == "owner@example.com":
        assert diff == sent
    else:
        assert diff in ({}, sent)


@FUZZ
@given(org_name=around("Second Org"))
@example(org_name="Second\x00Org")
@example(org_name="\x00")
def test_new_org_with_any_input(app, owner_client, org_name):
    before = counts()
    response = owner_client.post("/orgs/new", data={"org_name": org_name})
    assert_answer(response)
    diff = changed(before, counts())
    if response.status_code == 302:
        assert diff == {"Org": 1, "Membership": 1, "Event": 1}
    else:
        assert diff == {}


@FUZZ
@given(name=around("Renamed Org"), slug=around("renamed-org"))
@example(name="Renamed\x00", slug="renamed")
@example(name="Renamed", slug="renamed\x00")
def test_org_settings_with_any_input(app, owner, owner_client, name, slug):
    org = owner[1]
    db.session.expire_all()
    before = (org.name, org.slug, counts())
    response = owner_client.post("/settings", data={"name": name, "slug": slug})
    assert_answer(response)
    db.session.expire_all()
    if response.status_code == 302:
        assert "\x00" not in org.name + org.slug
        assert changed(before[2], counts()) == {"Event": 1}
    else:
        assert (org.name, org.slug, counts()) == before


@FUZZ
@given(
    email=around(fresh_email()),
    role=around(st.sampled_from([r.value for r in Role if r != Role.OWNER])),
    htmx=st.booleans(),
)
@example(email="in\x00vitee@example.com", role="viewer", htmx=False)
@example(email="invitee-role@example.com", role="viewer\x00", htmx=True)
def test_invite_with_any_input(app, owner_client, email, role, htmx):
    before = counts()
    response = owner_client.post(
        "/settings/invites",
        data={"email": email, "role": role},
        headers={"HX-Request": "true"} if htmx else {},
    )
    assert_answer(response)
    diff = changed(before, counts())
    # Sent: a redirect, or for htmx the members section again.
    if response.status_code in (200, 302):
        assert diff == {"Invite": 1, "OutboxMessage": 1, "Event": 1}
    else:
        assert diff == {}


@FUZZ
@given(name=around("Ada Okafor"), password=around(PASSWORD))
@example(name="Ada\x00", password=PASSWORD)
def test_accepting_an_invite_with_any_input(app, owner, name, password):
    owner_membership = db.session.scalar(
        select(Membership).where(Membership.user_id == owner[0].id)
    )
    email = f"invitee-{next(_serial)}@example.com"
    orgs.invite(owner_membership, email, Role.RECRUITER)
    mail = db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    path = re.search(r"http://localhost(/invites/\S+)", mail.payload["text"]).group(1)
    before = counts()
    response = app.test_client().post(path, data={"name": name, "password": password})
    assert_answer(response)
    diff = changed(before, counts())
    if response.status_code == 302:
        assert diff == {"User": 1, "Membership": 1, "Event": 1}
    else:
        assert diff == {}


@FUZZ
@given(name=around("New Name"))
@example(name="New\x00Name")
def test_profile_with_any_input(app, owner, owner_client, name):
    response = owner_client.post("/account", data={"form": "profile", "profile-name": name})
    assert_answer(response)
    db.session.expire_all()
    assert "\x00" not in owner[0].name
