"""API keys: made and revoked by admins and owners only, stored as a hash and shown once, a
revoked key refused, last use written at most once a minute, and the settings page."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import ApiKey, Event, Membership, Org, Role, User, utcnow
from plutomi.services import api_keys
from plutomi.services.errors import Forbidden, InvalidFields, NotFound
from tests.conftest import field_error, logged_in, owner_of

# --- helpers -------------------------------------------------------------------------------


def member_of(org: Org, user: User) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def key_row(public_id: str) -> ApiKey:
    db.session.expire_all()
    return db.session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the service -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_admins_and_owners_make_a_key_shown_once_and_stored_as_its_hash(
    app, make_org, make_member, role
):
    org = make_org()
    user = owner_of(org) if role == Role.OWNER else make_member(org, role)
    key, token = api_keys.create(member_of(org, user), "  Careers   site ", "write")
    assert re.fullmatch(r"plk_[A-Za-z0-9_-]{43}", token)
    row = key_row(key.public_id)
    assert row.name == "Careers site"
    assert row.scope == "write" and row.can_write
    assert row.prefix == token[:12]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.created_by_id == user.id
    # The key itself is kept nowhere: not on the row, not in the event.
    assert token not in repr(
        db.session.execute(select(ApiKey.__table__).where(ApiKey.id == row.id)).one()
    )
    event = db.session.scalar(select(Event).where(Event.type == "api_key.created"))
    assert (event.actor_type, event.actor_id, event.org_id) == ("user", user.id, org.id)
    assert event.payload == {
        "key_id": key.public_id,
        "name": "Careers site",
        "scope": "write",
        "prefix": row.prefix,
    }
    assert token not in str(event.payload)


def test_two_keys_are_never_the_same(app, make_org, make_api_key):
    org = make_org()
    tokens = {make_api_key(org)[1] for _ in range(5)}
    assert len(tokens) == 5


def test_a_key_needs_a_name_and_a_known_scope_each_said_at_once(app, make_org):
    org = make_org()
    with pytest.raises(InvalidFields) as caught:
        api_keys.create(member_of(org, owner_of(org)), "   ", "admin")
    assert caught.value.errors == {
        "name": "This field is required.",
        "scope": "Choose read or write.",
    }
    with pytest.raises(InvalidFields) as caught:
        api_keys.create(member_of(org, owner_of(org)), "x" * 121, "read")
    assert caught.value.errors == {"name": "Use at most 120 characters."}
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


@pytest.mark.parametrize("role", [Role.RECRUITER, Role.VIEWER])
def test_weaker_roles_can_neither_make_nor_revoke_keys(
    app, make_org, make_member, make_api_key, role
):
    org = make_org()
    key, _ = make_api_key(org)
    member = member_of(org, make_member(org, role))
    with pytest.raises(Forbidden):
        api_keys.create(member, "Mine", "read")
    with pytest.raises(Forbidden):
        api_keys.revoke(member, key.public_id)
    assert key_row(key.public_id).revoked_at is None


def test_revoking_records_it_once_and_the_key_no_longer_authenticates(app, make_org, make_api_key):
    org = make_org()
    key, token = make_api_key(org)
    assert api_keys.authenticate(token).id == key.id
    owner = member_of(org, owner_of(org))
    api_keys.revoke(owner, key.public_id)
    api_keys.revoke(owner, key.public_id)  # twice: nothing more happens
    assert key_row(key.public_id).revoked_at is not None
    assert api_keys.authenticate(token) is None
    events = list(db.session.scalars(select(Event).where(Event.type == "api_key.revoked")))
    assert len(events) == 1
    assert events[0].actor_type == "user"
    assert events[0].payload["key_id"] == key.public_id


def test_another_orgs_key_cannot_be_revoked(app, make_org, make_api_key):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    key, token = make_api_key(theirs)
    with pytest.raises(NotFound):
        api_keys.revoke(member_of(mine, owner_of(mine)), key.public_id)
    assert api_keys.authenticate(token) is not None


@pytest.mark.parametrize(
    "token",
    [None, "", "plk_", "plk_nope", "Bearer", "x" * 10_000, "plk_\x00abc", "PLK_abc"],
)
def test_anything_but_a_live_key_authenticates_nothing(app, make_org, make_api_key, token):
    make_api_key(make_org())
    assert api_keys.authenticate(token) is None


def test_a_revoked_key_gets_401_from_the_api(client, make_org, make_api_key):
    org = make_org()
    key, token = make_api_key(org)
    assert client.get("/api/v1/openings", headers=bearer(token)).status_code == 200
    api_keys.revoke(member_of(org, owner_of(org)), key.public_id)
    response = client.get("/api/v1/openings", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_last_use_is_written_at_most_once_a_minute(client, make_org, make_api_key):
    org = make_org()
    key, token = make_api_key(org)
    assert key_row(key.public_id).last_used_at is None
    start = utcnow()
    with time_machine.travel(start, tick=False):
        client.get("/api/v1/openings", headers=bearer(token))
        first = key_row(key.public_id).last_used_at
        assert first == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        client.get("/api/v1/openings", headers=bearer(token))
        client.get("/api/v1/openings", headers=bearer(token))
        assert key_row(key.public_id).last_used_at == first
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        client.get("/api/v1/openings", headers=bearer(token))
        assert key_row(key.public_id).last_used_at == start + timedelta(seconds=61)


def test_requests_within_the_minute_write_nothing(app, make_org, make_api_key):
    """The second lookup in a minute is one SELECT: no UPDATE, no commit of its own."""
    from sqlalchemy import event

    org = make_org()
    _, token = make_api_key(org)
    api_keys.authenticate(token)
    db.session.remove()
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        for _ in range(5):
            assert api_keys.authenticate(token) is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert statements == ["SELECT"] * 5


# --- the settings page -----------------------------------------------------------------------


def test_the_page_makes_a_key_and_shows_it_once_with_a_warning(app, make_org):
    org = make_org()
    client = logged_in(app, owner_of(org))
    page = client.get("/settings/api-keys")
    assert page.status_code == 200
    assert "No keys yet." in page.text
    assert 'href="/api/v1/docs"' in page.text
    made = client.post("/settings/api-keys", data={"name": "Careers site", "scope": "read"})
    assert made.status_code == 200
    assert made.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="new-token">(plk_[^<]+)</code>', made.text).group(1)
    assert "it will not be shown again" in made.text
    assert "never" in made.text  # used: never, so far
    assert api_keys.authenticate(token).name == "Careers site"
    # Listed by its prefix from now on; the key itself never again.
    again = client.get("/settings/api-keys")
    assert token not in again.text
    assert f"{token[:12]}…" in again.text
    assert "Careers site" in again.text and "never" not in again.text


def test_the_form_shows_each_error_next_to_its_field(app, make_org):
    org = make_org()
    client = logged_in(app, owner_of(org))
    response = client.post("/settings/api-keys", data={"name": "", "scope": "root"})
    assert response.status_code == 422
    assert field_error(response.text, "name") == "This field is required."
    assert field_error(response.text, "scope") == "Choose read or write."
    assert "new-token" not in response.text
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_revoking_without_javascript_asks_first(app, make_org, make_api_key):
    org = make_org()
    key, token = make_api_key(org, name="Old site")
    client = logged_in(app, owner_of(org))
    listed = client.get("/settings/api-keys").text
    # htmx asks in a dialog and adds confirm=yes itself; a plain post does not.
    assert "hx-confirm=" in listed and 'hx-vals=\'{"confirm": "yes"}\'' in listed
    asked = client.post(f"/settings/api-keys/{key.public_id}/revoke")
    assert asked.status_code == 200
    assert "Revoke the key “Old site”?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert key_row(key.public_id).revoked_at is None
    done = client.post(f"/settings/api-keys/{key.public_id}/revoke", data={"confirm": "yes"})
    assert done.status_code == 302
    assert key_row(key.public_id).revoked_at is not None
    assert api_keys.authenticate(token) is None
    page = client.get("/settings/api-keys").text
    assert "revoked" in page and "is revoked" in page


def test_revoking_through_htmx_after_its_dialog(app, make_org, make_api_key):
    org = make_org()
    key, _ = make_api_key(org)
    client = logged_in(app, owner_of(org))
    response = client.post(
        f"/settings/api-keys/{key.public_id}/revoke",
        data={"confirm": "yes"},
        headers={"HX-Request": "true", "HX-Boosted": "true"},
    )
    assert response.status_code == 302
    assert key_row(key.public_id).revoked_at is not None


@pytest.mark.parametrize("role", [Role.RECRUITER, Role.VIEWER])
def test_weaker_roles_get_403_and_no_tab(app, make_org, make_member, make_api_key, role):
    org = make_org()
    key, _ = make_api_key(org)
    client = logged_in(app, make_member(org, role))
    assert "API keys" not in client.get("/settings").text
    assert client.get("/settings/api-keys").status_code == 403
    made = client.post("/settings/api-keys", data={"name": "Mine", "scope": "write"})
    assert made.status_code == 403
    for data in ({}, {"confirm": "yes"}):
        revoked = client.post(f"/settings/api-keys/{key.public_id}/revoke", data=data)
        assert revoked.status_code == 403
    assert key_row(key.public_id).revoked_at is None
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_admins_see_the_tab(app, make_org, make_member):
    org = make_org()
    client = logged_in(app, make_member(org, Role.ADMIN))
    assert 'href="/settings/api-keys"' in client.get("/settings").text


def test_another_orgs_key_is_a_404_on_the_page(app, make_org, make_api_key):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    key, _ = make_api_key(theirs)
    client = logged_in(app, owner_of(mine))
    for data in ({}, {"confirm": "yes"}):
        response = client.post(f"/settings/api-keys/{key.public_id}/revoke", data=data)
        assert response.status_code == 404
    assert key_row(key.public_id).revoked_at is None
