"""The isolation guarantee: nothing of one org reaches a member of another, nor anyone anonymous.

Every rule of the URL map is walked, so a route added later is checked without being listed
here; a route with a URL variable this file cannot fill makes the walk fail until it can.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from plutomi import tenancy
from plutomi.config import from_environment
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    ApiKey,
    Applicant,
    ApplicantTag,
    BulkAction,
    EmailTemplate,
    Invite,
    Membership,
    Note,
    Opening,
    Org,
    OutboxMessage,
    Question,
    QuestionType,
    Role,
    Rule,
    Stage,
    Upload,
    User,
    WebhookEndpoint,
)
from plutomi.models.base import PUBLIC_ID_LENGTH, new_public_id
from plutomi.services import accounts, api_keys, orgs, uploads
from tests.conftest import Auth, flashed, owner_of

# Every string of org A's data carries this marker, so a leak is found wherever it shows up.
SECRET = "a-secret"
PUBLIC_ID = re.compile(r"[a-z0-9]{16}")

# Reachable without logging in; every other rule must send an anonymous visitor to /login.
PUBLIC_ENDPOINTS = {
    "main.index",
    "main.healthz",
    "auth.signup",
    "auth.login",
    "auth.logout",
    "auth.forgot",
    "auth.reset",
    "orgs.accept",
    "orgs.logout_for_invite",
    "dev.mailbox",
    "dev.message",
    # The applicant's own download: a 404 unless that applicant's session is signed in.
    "files.applicant_file",
    # Applicants' side: job boards, application forms, and the portal (a magic link's session).
    "public.board",
    "public.opening",
    "public.applied",
    "public.request_link",
    "public.schema",
    "public.portal_link",
    "public.portal_link_open",
    "public.portal",
    "public.portal_answer",
    "public.portal_withdraw",
    "public.portal_request_link",
    "public.portal_sign_out",
    # The unsubscribe link in emails: its signed token is the authentication.
    "unsubscribe.page",
    "unsubscribe.confirm",
}
# Routes that are 404 for everyone unless DEV_MAILBOX is set (it is not set here).
DEV_ENDPOINTS = {"dev.mailbox", "dev.message"}
# The API's own documentation is public; every other API route wants an org's API key, and
# a browser's session (anyone's) is no such key: 401, whoever is logged in.
API_DOCS = {"api.openapi_json", "api.docs"}


def _is_api(rule) -> bool:
    return rule.endpoint.startswith("api.") and rule.endpoint not in API_DOCS


@pytest.fixture
def app(make_app):
    """As deployed: without the dev mailbox, which shows every captured email to anyone."""
    return make_app(DEV_MAILBOX=False)


@dataclass
class World:
    a: Org
    b: Org
    b_owner: User
    # URL variable name -> (value, whether it names a row of org A)
    variables: dict[str, tuple[str, bool]]
    a_strings: list[str]
    b_opening: Opening


@pytest.fixture
def world(make_user, make_org, make_member, make_opening, make_applicant) -> World:
    a_owner = make_user(email="zz-owner-a-secret@example.com", name="ZZ-OWNER-A-SECRET")
    a = make_org("ZZ-ORG-A-SECRET", owner=a_owner, slug="zz-org-a-secret")
    a_admin = make_member(a, Role.ADMIN, email="zz-admin-a-secret@example.com")
    a_admin.name = "ZZ-ADMIN-A-SECRET"
    a_viewer = make_member(a, Role.VIEWER, email="zz-viewer-a-secret@example.com")
    a_viewer.name = "ZZ-VIEWER-A-SECRET"
    db.session.commit()
    opening = make_opening(
        a, name="ZZ-OPENING-A-SECRET", stages=("ZZ-STAGE-1-A-SECRET", "ZZ-STAGE-2-A-SECRET")
    )
    applicants = [
        make_applicant(opening, stage, name=f"ZZ-APPLICANT-{n}-A-SECRET")
        for n, stage in enumerate(opening.stages)
    ]
    question = Question(
        org_id=a.id,
        opening_id=opening.id,
        stage_id=opening.stages[0].id,
        key="zz_question_a_secret",
        type=QuestionType.SHORT_TEXT,
        label="ZZ-QUESTION-A-SECRET",
        position=0,
    )
    db.session.add(question)
    db.session.commit()
    owner_membership = db.session.scalar(
        select(Membership).where(Membership.org_id == a.id, Membership.user_id == a_owner.id)
    )
    invite = orgs.invite(owner_membership, "zz-invitee-a-secret@example.com", Role.RECRUITER)
    accounts.request_password_reset(a_owner.email)
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.org_id == a.id))
    assert message is not None and SECRET in message.payload["text"].lower()
    file_question = Question(
        org_id=a.id,
        opening_id=opening.id,
        stage_id=opening.stages[0].id,
        key="zz_licence_a_secret",
        type=QuestionType.FILE,
        label="ZZ-LICENCE-A-SECRET",
        position=1,
    )
    db.session.add(file_question)
    db.session.flush()
    upload = uploads.store(
        applicants[0],
        file_question,
        uploads.check(
            file_question,
            FileStorage(io.BytesIO(b"ZZ-FILE-A-SECRET"), filename="zz-licence-a-secret.txt"),
        ),
    )
    note = Note(
        org_id=a.id, applicant_id=applicants[0].id, author_id=a_owner.id, body="ZZ-NOTE-A-SECRET"
    )
    db.session.add_all(
        [note, ApplicantTag(org_id=a.id, applicant_id=applicants[0].id, tag="zz-tag-a-secret")]
    )
    bulk_action = BulkAction(
        org_id=a.id,
        opening_id=opening.id,
        user_id=a_owner.id,
        action="reject",
        reason="ZZ-BULK-A-SECRET",
        selection=[[applicants[0].id, None]],
        total=1,
    )
    template = EmailTemplate(
        org_id=a.id,
        name="ZZ-TEMPLATE-A-SECRET",
        subject="ZZ-SUBJECT-A-SECRET",
        body="ZZ-BODY-A-SECRET {{ applicant_name }}",
    )
    db.session.add_all([bulk_action, template])
    db.session.commit()
    rule = Rule(
        org_id=a.id,
        opening_id=opening.id,
        stage_id=opening.stages[0].id,
        position=0,
        name="ZZ-RULE-A-SECRET",
        trigger="stage_completed",
        conditions=[{"question": question.public_id, "op": "not_empty", "value": None}],
        actions=[{"type": "move", "stage": opening.stages[1].public_id}],
    )
    db.session.add(rule)
    # Rows, not the service: saving an endpoint resolves its host, and this one is made up.
    endpoint = WebhookEndpoint(
        org_id=a.id,
        url="https://zz-hooks-a-secret.example.com/in",
        description="ZZ-ENDPOINT-A-SECRET",
        event_types=["applicant.moved"],
        secret="whsec_" + "a" * 32,
    )
    db.session.add(endpoint)
    db.session.flush()
    delivery = OutboxMessage(
        org_id=a.id,
        kind="webhook",
        endpoint_id=endpoint.id,
        payload={"body": {"type": "applicant.moved", "data": {"x": "ZZ-PAYLOAD-A-SECRET"}}},
    )
    key = ApiKey(
        org_id=a.id,
        name="ZZ-KEY-A-SECRET",
        prefix="plk_zzzz",
        token_hash=api_keys.hash_token("zz-a-secret-token"),
        scope="write",
    )
    db.session.add_all([delivery, key])
    db.session.commit()

    b_owner = make_user(email="owner-b@example.com", name="Bee Owner")
    b = make_org("Bee Org", owner=b_owner, slug="bee-org")
    b_opening = make_opening(b, name="Bee Opening")
    make_applicant(b_opening, name="Bee Applicant")

    variables = {
        "opening_id": (opening.public_id, True),
        "stage_id": (opening.stages[0].public_id, True),
        "applicant_id": (applicants[0].public_id, True),
        "question_id": (question.public_id, True),
        "user_id": (a_viewer.public_id, True),
        "invite_id": (invite.public_id, True),
        "message_id": (message.public_id, True),
        "upload_id": (upload.public_id, True),
        "note_id": (note.public_id, True),
        "bulk_id": (bulk_action.public_id, True),
        "template_id": (template.public_id, True),
        "rule_id": (rule.public_id, True),
        "endpoint_id": (endpoint.public_id, True),
        "delivery_id": (delivery.public_id, True),
        "key_id": (key.public_id, True),
        # Job boards are public by design: the walk uses B's, which must show nothing of A.
        "org_slug": (b.slug, False),
        "opening_slug": (b_opening.slug, False),
        # Tokens are not ids: a made-up one must name nothing.
        "token": ("made-up-token-" + "x" * 29, False),
    }
    # What would betray org A besides the marker: its applicants' random emails.
    a_strings = [SECRET, *(applicant.email.lower() for applicant in applicants)]
    return World(a, b, b_owner, variables, a_strings, b_opening)


def _rules(app):
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: r.rule
    )


def _snapshot(org: Org) -> dict:
    """Everything of org A that a request of someone else could change."""
    db.session.expire_all()

    def count(model) -> int:
        return db.session.scalar(
            select(func.count()).select_from(model).where(model.org_id == org.id)
        )

    members = db.session.execute(
        select(User.public_id, User.name, User.email, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org.id)
        .order_by(User.public_id)
    ).all()
    invites = db.session.execute(
        select(Invite.public_id, Invite.email, Invite.role, Invite.revoked_at, Invite.accepted_at)
        .where(Invite.org_id == org.id)
        .order_by(Invite.public_id)
    ).all()
    row = db.session.execute(select(Org.name, Org.slug).where(Org.id == org.id)).one()
    return {
        "org": tuple(row),
        "counts": {
            m.__name__: count(m)
            for m in (
                Membership,
                Invite,
                Opening,
                Stage,
                Question,
                Applicant,
                Answer,
                Upload,
                Note,
                ApplicantTag,
                EmailTemplate,
                Rule,
                WebhookEndpoint,
                ApiKey,
            )
        },
        "outbox": db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.org_id == org.id)
        ),
        "members": [tuple(m) for m in members],
        "invites": [tuple(i) for i in invites],
        "applicants": sorted(
            tuple(a)
            for a in db.session.execute(
                select(Applicant.name, Applicant.stage_id).where(Applicant.org_id == org.id)
            )
        ),
    }


def _requests(app, world: World):
    """(rule, method, url, names_a_row) for every rule and each of its methods."""
    for rule in _rules(app):
        values = {name: world.variables[name][0] for name in rule.arguments}
        names_a_row = any(world.variables[name][1] for name in rule.arguments)
        url = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods & {"GET", "POST"}):
            yield rule, method, url, names_a_row


def _send(client, method: str, url: str, htmx: bool, world: World):
    headers = {"HX-Request": "true"} if htmx else {}
    # Form fields that routes take, pointing at org A where they can name something.
    data = {"org": world.a.public_id, "role": Role.VIEWER.value} if method == "POST" else None
    return client.open(url, method=method, data=data, headers=headers)


def _assert_no_leak(response, world: World, what: str) -> None:
    assert response.status_code != 500, what
    body = response.get_data(as_text=True).lower()
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).lower()
    for secret in world.a_strings:
        assert secret not in body, f"{what}: org A's data in the body"
        assert secret not in headers, f"{what}: org A's data in a header"


def test_every_url_variable_can_be_filled(app, world):
    """A new route whose URL names something this file cannot fill fails here first."""
    unknown = {
        (rule.rule, name)
        for rule in _rules(app)
        for name in rule.arguments
        if name not in world.variables
    }
    assert not unknown, f"add these URL variables to the tenancy walk: {sorted(unknown)}"


def test_a_member_of_another_org_sees_nothing_of_org_a(app, world):
    before = _snapshot(world.a)
    seen = 0
    for rule, method, url, names_a_row in _requests(app, world):
        for htmx in (False, True):
            client = app.test_client()
            assert Auth(client).login(world.b_owner.email).status_code == 302
            what = f"{method} {url} (htmx={htmx}) as B's owner"
            response = _send(client, method, url, htmx, world)
            _assert_no_leak(response, world, what)
            if _is_api(rule):
                assert response.status_code == 401, what
            elif names_a_row or rule.endpoint in DEV_ENDPOINTS:
                assert response.status_code == 404, what
            seen += 1
    assert seen > 20
    assert _snapshot(world.a) == before


def test_switching_to_another_org_is_a_404(app, world):
    client = app.test_client()
    Auth(client).login(world.b_owner.email)
    for htmx in (False, True):
        headers = {"HX-Request": "true"} if htmx else {}
        response = client.post("/orgs/switch", data={"org": world.a.public_id}, headers=headers)
        assert response.status_code == 404
        _assert_no_leak(response, world, "switch to A")
    # Still in B afterwards, seeing B's openings only.
    page = client.get("/openings")
    assert page.status_code == 200
    assert "Bee Opening" in page.text
    _assert_no_leak(page, world, "openings after the switch")


def test_anonymous_visitors_are_sent_to_login_and_see_nothing(app, world):
    before = _snapshot(world.a)
    for rule, method, url, names_a_row in _requests(app, world):
        for htmx in (False, True):
            client = app.test_client()
            what = f"{method} {url} (htmx={htmx}) anonymous"
            response = _send(client, method, url, htmx, world)
            _assert_no_leak(response, world, what)
            if rule.endpoint in DEV_ENDPOINTS:
                assert response.status_code == 404, what
            elif _is_api(rule):
                assert response.status_code == 401, what
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), what
            elif rule.endpoint not in PUBLIC_ENDPOINTS | API_DOCS:
                if htmx:
                    assert response.status_code == 204, what
                    location = response.headers["HX-Redirect"]
                else:
                    assert response.status_code == 302, what
                    location = response.headers["Location"]
                assert urlsplit(location).path == "/login", what
            elif names_a_row:
                assert response.status_code == 404, what
    assert _snapshot(world.a) == before


def test_another_orgs_api_key_sees_nothing_of_org_a(app, world, make_api_key):
    """The API walk: B's write key on every API route that names a row of A gets a 404."""
    _, token = make_api_key(world.b)
    before = _snapshot(world.a)
    seen = 0
    for rule, method, url, names_a_row in _requests(app, world):
        if not _is_api(rule):
            continue
        client = app.test_client()
        what = f"{method} {url} with B's key"
        response = client.open(
            url,
            method=method,
            json={} if method == "POST" else None,
            headers={"Authorization": f"Bearer {token}"},
        )
        _assert_no_leak(response, world, what)
        if names_a_row:
            assert response.status_code == 404, what
            assert response.json["error"]["code"] == "not_found", what
        seen += 1
    assert seen >= 8
    assert _snapshot(world.a) == before


def test_the_walk_covers_the_public_endpoints_that_exist(app):
    """PUBLIC_ENDPOINTS names only real endpoints, so a renamed one is not silently public."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= PUBLIC_ENDPOINTS | API_DOCS


def test_the_dev_mailbox_is_off_unless_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("DEV_MAILBOX", raising=False)
    assert from_environment(tmp_path)["DEV_MAILBOX"] is False


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "not-a-token",
        "a" * 500,
        "ünïcødé-tøkén",
        "%00",
        "..%5C..%5Cetc%5Cpasswd",
        "' OR 1=1 --",
        "IxQ4C7wW7rT0ZWmH2rPnbq6zSc4nxRSMWt2Ls2Xwq6M",
    ],
)
def test_made_up_tokens_get_a_clear_404(client, world, token):
    users = db.session.scalar(select(func.count()).select_from(User))
    for path, message in (
        (f"/invites/{token}", "This invite link is not valid"),
        (f"/password/reset/{token}", "This reset link is not valid"),
    ):
        for method in ("GET", "POST"):
            response = client.open(path, method=method, data={"name": "X", "password": "y" * 12})
            assert response.status_code == 404, (method, path)
            assert message in response.text, (method, path)
            _assert_no_leak(response, world, path)
    assert db.session.scalar(select(func.count()).select_from(User)) == users


def test_every_character_of_a_public_id_takes_every_value_alike():
    draws = [new_public_id() for _ in range(36 * 600)]
    for place in range(PUBLIC_ID_LENGTH):
        seen = Counter(draw[place] for draw in draws)
        # 600 of each expected; a skewed or narrowed place (a digit never first, a character
        # twice as likely) falls far outside this band, chance alone practically never.
        assert len(seen) == 36 and min(seen.values()) > 450 and max(seen.values()) < 750, seen


def test_public_ids_are_sixteen_random_characters(app, world, make_member):
    b_member = make_member(world.b, Role.RECRUITER)
    ids: list[str] = []
    for model in (Org, User, Opening, Stage, Applicant, Invite, OutboxMessage, Upload, Note):
        ids.extend(db.session.scalars(select(model.public_id).order_by(model.id)))
    assert len(ids) > 15
    assert len(set(ids)) == len(ids)
    for public_id in ids:
        assert PUBLIC_ID.fullmatch(public_id), public_id
        assert not public_id.isdigit(), public_id
    # Not sequential: rows made one after another share no prefix worth a guess.
    assert len({public_id[:6] for public_id in ids}) == len(ids)

    # And they are what the pages put in URLs, never the integer keys.
    client = app.test_client()
    Auth(client).login(world.b_owner.email)
    pages = client.get("/openings").text + client.get("/settings/members").text
    in_urls = re.findall(r'(?:/openings|/settings/members|/settings/invites)/([^/"?#]+)', pages)
    assert world.b_opening.public_id in in_urls
    assert b_member.public_id in in_urls
    for value in in_urls:
        assert PUBLIC_ID.fullmatch(value), value


def test_a_members_own_pages_show_their_org(app, world):
    """The walk is not vacuous: the same pages do show an org's data to its own members."""
    client = app.test_client()
    owner = owner_of(world.a)
    Auth(client).login(owner.email)
    opening = db.session.scalar(select(Opening).where(Opening.org_id == world.a.id))
    for url in ("/openings", f"/openings/{opening.public_id}", "/settings/members", "/settings"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET in response.text.lower(), url


def test_a_change_sent_from_a_page_of_the_org_the_user_left_in_another_tab_is_refused(
    app, make_user, make_org
):
    """Two tabs: the first shows Acme's members, the second switches to Beta. An invite sent
    from the first tab would go out from Beta; it is refused, and nothing is written."""
    user = make_user(email="two-tabs@example.com")
    acme, beta = make_org("Acme", owner=user), make_org("Beta", owner=user)
    client = app.test_client()
    Auth(client).login(user.email)
    client.post("/orgs/switch", data={"org": acme.public_id})
    page = client.get("/settings/members")
    assert f'data-org="{acme.public_id}"' in page.text
    client.post("/orgs/switch", data={"org": beta.public_id})  # the other tab
    invite = {"email": "someone@example.com", "role": "recruiter"}
    stale = {"HX-Request": "true", tenancy.PAGE_ORG_HEADER: acme.public_id}
    response = client.post("/settings/invites", data=invite, headers=stale)
    assert response.status_code == 409
    assert response.headers["HX-Reswap"] == "none"
    messages = [f["message"] for f in flashed(response)]
    refusal = "This page is of Acme, but you have switched to Beta"
    assert any(m.startswith(refusal) for m in messages)
    assert db.session.scalar(select(func.count()).select_from(Invite)) == 0
    # A piece of the old page is refused too; a visit to a page (a boosted link) is the
    # session's org's, and a request from a page of the current org goes through.
    assert client.get("/settings/members", headers=stale).status_code == 409
    assert (
        client.get("/settings/members", headers={**stale, "HX-Boosted": "true"}).status_code == 200
    )
    current = {"HX-Request": "true", tenancy.PAGE_ORG_HEADER: beta.public_id}
    assert client.post("/settings/invites", data=invite, headers=current).status_code == 200
    invited = db.session.scalar(select(Invite))
    assert invited.org_id == beta.id


def test_a_users_orgs_take_one_query_even_after_a_commit(app, make_user, make_org):
    """The memberships come with the session's user; after a commit has expired them, the
    user's refresh brings them back with their orgs in one query (the load's options ride
    along), not one query per org."""
    from flask import g
    from flask_login import login_user

    from plutomi import tenancy
    from tests.test_applicant_page import counting_queries

    user = make_user()
    for name in ("Cyan", "Amber", "Blue"):
        make_org(name, owner=user)
    key = accounts.start_session(user, remember=False)
    with app.test_request_context():
        db.session.expire_all()
        login_user(accounts.load_session(key))
        with counting_queries() as statements:
            first = [m.org.name for m in tenancy.memberships()]
        assert statements == []  # loaded with the user
        db.session.commit()  # expires the user's memberships and their orgs
        g.pop("memberships")
        with counting_queries() as statements:
            again = [m.org.name for m in tenancy.memberships()]
        assert len(statements) == 1, statements
    assert first == again == ["Amber", "Blue", "Cyan"]
