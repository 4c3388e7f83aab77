"""Org email templates: checking and the sandbox, the settings pages and their roles, sending
(outbox rows with links, skipped for who unsubscribed), the unsubscribe link, and delivery of a
batch over one SMTP session with the headers and the timeline event."""

from __future__ import annotations

import html
import re
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message

import pytest
from itsdangerous import URLSafeSerializer
from jinja2.exceptions import SecurityError
from sqlalchemy import func, select

from plutomi import mailer
from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    EmailTemplate,
    Event,
    MagicLink,
    Membership,
    Org,
    OutboxMessage,
    OutboxState,
    Role,
    Trigger,
    User,
)
from plutomi.services import email_templates, outbox, timeline, unsubscribes
from plutomi.services.errors import Forbidden, InvalidFields, NotFound
from plutomi.services.events import Actor
from tests.conftest import PASSWORD, _free_port, field_error, owner_of
from tests.test_applications import follow

HX = {"HX-Request": "true"}
EVERY_VARIABLE = (
    "Hello {{ applicant_name }} <{{ applicant_email }}>,\n"
    "{{ opening_name }} at {{ org_name }}: you are in {{ stage_name }}.\n"
    "Continue: {{ portal_link }}\n"
    "Stop: {{ unsubscribe_link }}"
)


# --- helpers -------------------------------------------------------------------------------


def logged_in(app, user: User):
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def membership(org: Org, user: User) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def events(type: str) -> list[Event]:
    db.session.expire_all()
    return list(db.session.scalars(select(Event).where(Event.type == type).order_by(Event.id)))


def form(name="Welcome", subject="Welcome to {{ opening_name }}", body=EVERY_VARIABLE, **extra):
    return {"name": name, "subject": subject, "body": body, **extra}


def make_template(org: Org, name="Welcome", body=EVERY_VARIABLE, essential=False) -> EmailTemplate:
    return email_templates.create(
        membership(org, owner_of(org)),
        name,
        "Your application for {{ opening_name }}",
        body,
        essential,
    )


def one_outbox_row() -> OutboxMessage:
    [row] = db.session.scalars(select(OutboxMessage)).all()
    return row


# --- checking and the sandbox -------------------------------------------------------------


def test_an_unknown_variable_is_refused_naming_it_and_the_known_ones(app):
    with pytest.raises(InvalidFields) as caught:
        email_templates.check("Hi {{ applicant_name }}", "Dear {{ first_name }},\nBye")
    assert caught.value.errors == {
        "body": "Unknown variable {{ first_name }}. Use one of: applicant_name, applicant_email, "
        "opening_name, stage_name, portal_link, org_name, unsubscribe_link."
    }
    with pytest.raises(InvalidFields) as caught:
        email_templates.check("{{ salary }}", "Fine")
    assert set(caught.value.errors) == {"subject"}
    assert "{{ salary }}" in caught.value.errors["subject"]


def test_a_syntax_error_names_its_line(app):
    with pytest.raises(InvalidFields) as caught:
        email_templates.check("Hi", "Hello\n\n{{ applicant_name }\nBye")
    assert caught.value.errors["body"].startswith("Line 3: ")
    with pytest.raises(InvalidFields) as caught:
        email_templates.check("Hi", "{% if stage_name %}open ended")
    assert caught.value.errors["body"].startswith("Line 1: ")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("{{ ''.__class__ }}", "Reading an attribute"),
        ("{{ applicant_name.__class__.__mro__ }}", "Reading an attribute"),
        ("{{ applicant_name['__class__'] }}", "Reading an item"),
        ("{{ applicant_name.upper() }}", "Calling a function"),
        ("{{ range(10) }}", "Calling a function"),
        ("{% for x in [1, 2] %}{{ x }}{% endfor %}", "A loop"),
        ("{% set x = 1 %}", "{% set %}"),
        ("{% include 'email/invite.txt' %}", "Including another template"),
        ("{{ applicant_name * 100000000 }}", "This kind of expression"),
        ("{{ applicant_name|center(100000000) }}", "the filter |center"),
        ("{{ applicant_name|attr('__class__') }}", "the filter |attr"),
        ("{% with x = 1 %}{{ x }}{% endwith %}", "{% with %}"),
        # No line: Jinja gives {% autoescape %} none (never "Line None").
        ("{% autoescape false %}{{ applicant_name }}{% endautoescape %}", "{% autoescape %}"),
    ],
)
def test_what_could_reach_python_or_blow_up_is_refused_when_saved(app, body, what):
    with pytest.raises(InvalidFields) as caught:
        email_templates.check("Hi", body)
    message = caught.value.errors["body"]
    # Every construct names its line, but {% autoescape %}, which Jinja gives none.
    assert message.startswith("Line 1: ") != ("autoescape" in body)
    assert what in message and "None" not in message


def test_the_sandbox_still_blocks_attributes_at_render():
    # The second wall: a template that skipped check() (written straight to the database, say)
    # reaches no Python object through the sandboxed environment.
    with pytest.raises(SecurityError):
        email_templates._env.from_string("{{ ''.__class__.__mro__ }}").render()
    with pytest.raises(SecurityError):
        email_templates._env.from_string("{{ name.__init__.__globals__ }}").render(name="x")


def test_ifs_filters_and_every_variable_render(app, make_org, make_opening, make_applicant):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Final Review"))
    applicant = make_applicant(opening, name="Ada Okafor")
    template = EmailTemplate(
        org_id=org.id,
        name="t",
        subject="  {{ opening_name|upper }}   for {{ applicant_name }} ",
        body="{% if stage_name == 'Final Review' %}Almost there{% else %}Hi{% endif %}, "
        "{{ applicant_name|lower }} ({{ applicant_email }}) in {{ stage_name }} at {{ org_name }}"
        "\n{{ portal_link }} {{ unsubscribe_link }}\n\n",
    )
    subject, text = email_templates.render(
        template, applicant, opening.stages[1], portal_link="P", unsubscribe_link="U"
    )
    assert subject == "DELIVERY DRIVER for Ada Okafor"
    assert text == (f"Almost there, ada okafor ({applicant.email}) in Final Review at Acme\nP U\n")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (form(name=""), {"name": "This field is required."}),
        (form(name="x" * 121), {"name": "Use at most 120 characters."}),
        (form(subject=""), {"subject": "Write a subject."}),
        (form(subject="x" * 201), {"subject": "Use at most 200 characters (201 now)."}),
        (form(subject="Two\nlines"), {"subject": "Keep the subject on one line."}),
        (form(body="  \n "), {"body": "Write the email's text."}),
        (form(body="x" * 20_001), {"body": "Use at most 20,000 characters (20,001 now)."}),
        (form(body="nul \x00 byte"), {"body": "This contains an invisible control character"}),
        (
            form(name="", subject="", body="{{ nope }}"),
            {"name": "required", "subject": "Write a subject.", "body": "{{ nope }}"},
        ),
    ],
)
def test_limits_are_checked_field_by_field(app, make_org, fields, errors):
    org = make_org("Acme")
    with pytest.raises(InvalidFields) as caught:
        email_templates.create(membership(org, owner_of(org)), **fields)
    assert set(caught.value.errors) == set(errors)
    for field, message in errors.items():
        assert message in caught.value.errors[field]
    assert count(EmailTemplate) == 0


def test_a_body_of_exactly_the_limit_is_kept(app, make_org):
    org = make_org("Acme")
    row = email_templates.create(
        membership(org, owner_of(org)), "x" * 120, "s" * 200, "b" * 20_000, False
    )
    assert (len(row.name), len(row.subject), len(row.body)) == (120, 200, 20_000)


# --- the settings pages --------------------------------------------------------------------


def test_an_admin_creates_edits_and_deletes_a_template(app, make_org, make_member):
    org = make_org("Acme")
    admin = make_member(org, Role.ADMIN)
    client = logged_in(app, admin)

    new = client.get("/settings/email-templates/new")
    assert new.status_code == 200
    assert 'hx-post="/settings/email-templates/preview"' in new.text
    for variable in email_templates.VARIABLES:
        assert "{{ " + variable + " }}" in html.unescape(new.text)

    response = client.post(
        "/settings/email-templates/new", data=form(name="  Welcome  ", essential="y")
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/settings/email-templates"
    row = db.session.scalar(select(EmailTemplate))
    assert (row.org_id, row.name, row.essential) == (org.id, "Welcome", True)
    assert row.body == EVERY_VARIABLE
    listing = client.get("/settings/email-templates")
    assert "Template “Welcome” saved." in listing.text
    assert f"/settings/email-templates/{row.public_id}" in listing.text
    assert "essential" in listing.text
    [created] = events("email_template.created")
    assert (created.actor_type, created.actor_id, created.org_id) == ("user", admin.id, org.id)
    assert created.payload == {"template": row.public_id, "name": "Welcome", "essential": True}

    edit = client.get(f"/settings/email-templates/{row.public_id}")
    assert edit.status_code == 200
    assert 'value="Welcome"' in edit.text
    assert "Hello Alex Sample" in html.unescape(edit.text)  # the preview of the saved text
    response = client.post(
        f"/settings/email-templates/{row.public_id}",
        data=form(name="Welcome!", subject="Hi {{ applicant_name }}"),  # essential unticked
    )
    assert response.status_code == 302
    db.session.refresh(row)
    assert (row.name, row.subject, row.essential) == ("Welcome!", "Hi {{ applicant_name }}", False)
    [updated] = events("email_template.updated")
    assert updated.payload["changed"] == ["name", "subject", "essential"]

    public_id = row.public_id
    response = client.post(f"/settings/email-templates/{public_id}/delete")
    assert response.status_code == 302
    assert count(EmailTemplate) == 0
    assert "Template “Welcome!” deleted." in client.get("/settings/email-templates").text
    [deleted] = events("email_template.deleted")
    assert deleted.payload == {"template": public_id, "name": "Welcome!"}


def test_errors_show_next_to_each_field_at_once(app, make_org):
    org = make_org("Acme")
    client = logged_in(app, owner_of(org))
    make_template(org, name="Welcome")
    response = client.post(
        "/settings/email-templates/new",
        data=form(name="WELCOME", subject="Hi {{ first_name }}", body="Hello\n{{ applicant_name }"),
    )
    assert response.status_code == 422
    assert field_error(response.text, "name") == "Another template has this name."
    assert "Unknown variable {{ first_name }}" in field_error(response.text, "subject")
    assert field_error(response.text, "body").startswith("Line 2: ")
    assert count(EmailTemplate) == 1
    # What was typed stays in the form.
    assert "Hello\n{{ applicant_name }" in html.unescape(response.text)


def test_the_live_preview_renders_for_a_sample_applicant_or_says_what_is_wrong(app, make_org):
    org = make_org("Acme Logistics")
    client = logged_in(app, owner_of(org))
    response = client.post("/settings/email-templates/preview", data=form(), headers=HX)
    assert response.status_code == 200
    assert "<html" not in response.text  # a partial for htmx to swap in
    text = html.unescape(response.text)
    assert "Welcome to Delivery Driver" in text
    assert "Hello Alex Sample <alex.sample@example.com>," in text
    assert "Delivery Driver at Acme Logistics: you are in Document Upload." in text
    assert "Continue: http://localhost/portal/sample-link" in text
    assert "Stop: http://localhost/unsubscribe/sample-link" in text

    response = client.post(
        "/settings/email-templates/preview", data=form(body="Hi {{ foo }}"), headers=HX
    )
    assert response.status_code == 200
    assert "Text: Unknown variable {{ foo }}" in html.unescape(response.text)
    assert count(EmailTemplate) == 0  # previewing saves nothing


@pytest.mark.parametrize("role", [Role.RECRUITER, Role.VIEWER])
def test_recruiters_and_viewers_read_but_every_change_is_403(app, make_org, make_member, role):
    org = make_org("Acme")
    template = make_template(org)
    client = logged_in(app, make_member(org, role))

    listing = client.get("/settings/email-templates")
    assert listing.status_code == 200
    assert "Welcome" in listing.text
    assert "New template" not in listing.text
    page = client.get(f"/settings/email-templates/{template.public_id}")
    assert page.status_code == 200
    assert "Your application for {{ opening_name }}" in html.unescape(page.text)
    assert "Hello Alex Sample" in html.unescape(page.text)
    for control in ("Save template", "/delete", 'name="body"'):
        assert control not in page.text, control
    # The preview only reads, so it is every member's.
    assert client.post("/settings/email-templates/preview", data=form()).status_code == 200

    assert client.get("/settings/email-templates/new").status_code == 403
    for path in (
        "/settings/email-templates/new",
        f"/settings/email-templates/{template.public_id}",
        f"/settings/email-templates/{template.public_id}/delete",
    ):
        for headers in ({}, HX):
            response = client.post(path, data=form(name="Hijacked"), headers=headers)
            assert response.status_code == 403, (path, headers)
    db.session.refresh(template)
    assert template.name == "Welcome"
    assert count(EmailTemplate) == 1


def test_services_refuse_roles_below_admin(app, make_org, make_member):
    org = make_org("Acme")
    template = make_template(org)
    recruiter = membership(org, make_member(org, Role.RECRUITER))
    with pytest.raises(Forbidden):
        email_templates.create(recruiter, "Other", "Hi", "Hi", False)
    with pytest.raises(Forbidden):
        email_templates.update(recruiter, template.public_id, "Other", "Hi", "Hi", False)
    with pytest.raises(Forbidden):
        email_templates.delete(recruiter, template.public_id)
    assert email_templates.get(recruiter, template.public_id) == template


def test_another_orgs_template_is_a_404(app, make_org):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    template = make_template(theirs, name="Secret Template")
    client = logged_in(app, owner_of(mine))
    for method, path in (
        ("GET", f"/settings/email-templates/{template.public_id}"),
        ("POST", f"/settings/email-templates/{template.public_id}"),
        ("POST", f"/settings/email-templates/{template.public_id}/delete"),
        ("GET", "/settings/email-templates/aaaaaaaaaaaaaaaa"),
    ):
        response = client.open(path, method=method, data=form(name="Hijacked"))
        assert response.status_code == 404, (method, path)
        assert "Secret Template" not in response.text
    assert "Secret Template" not in client.get("/settings/email-templates").text
    owner = membership(mine, owner_of(mine))
    for call in (
        lambda: email_templates.get(owner, template.public_id),
        lambda: email_templates.update(owner, template.public_id, "X", "Hi", "Hi", False),
        lambda: email_templates.delete(owner, template.public_id),
    ):
        with pytest.raises(NotFound):
            call()
    db.session.refresh(template)
    assert template.name == "Secret Template"


def test_a_template_a_rule_sends_cannot_be_deleted(app, make_org, make_opening, make_rule):
    org = make_org("Acme")
    opening = make_opening(org)
    template = make_template(org)
    make_rule(
        opening.stages[0],
        Trigger.STAGE_ENTERED,
        [{"type": "email", "template": template.public_id}],
        name="Greet new drivers",
    )
    client = logged_in(app, owner_of(org))
    response = client.post(f"/settings/email-templates/{template.public_id}/delete")
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "The rule “Greet new drivers” sends this template." in page.text
    assert count(EmailTemplate) == 1
    assert events("email_template.deleted") == []


def test_settings_tabs_link_the_templates(app, make_org):
    org = make_org("Acme")
    page = logged_in(app, owner_of(org)).get("/settings")
    assert 'href="/settings/email-templates"' in page.text


# --- sending -------------------------------------------------------------------------------


def test_send_writes_an_outbox_row_with_the_text_and_working_links(
    app, client, make_org, make_opening, make_applicant
):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Document Upload"))
    applicant = make_applicant(opening, name="Ada Okafor")
    template = make_template(org)
    links = count(MagicLink)

    message = email_templates.send(
        template, applicant, actor=Actor.system(), stage=opening.stages[1], why="stage entered"
    )
    db.session.commit()

    assert message is not None and message.kind == "email" and message.org_id == org.id
    payload = message.payload
    assert payload["to"] == applicant.email
    assert payload["subject"] == "Your application for Delivery Driver"
    assert payload["template"] == template.public_id
    assert payload["applicant_id"] == applicant.id
    assert payload["why"] == "stage entered"
    text = payload["text"]
    assert text.startswith(f"Hello Ada Okafor <{applicant.email}>,\n")
    assert "Delivery Driver at Acme: you are in Document Upload." in text
    assert text.endswith("\n")
    portal = re.search(r"Continue: http://localhost(/portal/\S+)", text).group(1)
    unsubscribe = re.search(r"Stop: (http://localhost/unsubscribe/\S+)", text).group(1)
    assert payload["unsubscribe"] == unsubscribe
    assert count(MagicLink) == links + 1

    # The portal link is a real magic link for this applicant...
    response = follow(client, portal)  # its page, then its button
    assert response.status_code == 302
    assert applicant.name in client.get("/portal").text
    # ...and the unsubscribe link names them too.
    assert unsubscribes.applicant_for(unsubscribe.rsplit("/", 1)[1]).id == applicant.id


def test_send_commits_nothing_and_makes_no_link_the_email_does_not_show(
    app, make_org, make_opening, make_applicant
):
    org = make_org("Acme")
    applicant = make_applicant(make_opening(org))
    template = make_template(org, body="Hi {{ applicant_name }}, see you soon.")
    message = email_templates.send(template, applicant, actor=Actor.system())
    assert message.payload["text"] == "Hi Ada Okafor, see you soon.\n"
    assert count(MagicLink) == 0
    db.session.rollback()  # the caller's transaction decides
    assert count(OutboxMessage) == 0


def test_an_unsubscribed_applicant_gets_only_essential_templates(
    app, make_org, make_opening, make_applicant
):
    org = make_org("Acme")
    opening = make_opening(org)
    applicant = make_applicant(opening)
    update = make_template(org, name="Update")
    decision = make_template(org, name="Decision", essential=True)
    unsubscribes.unsubscribe(applicant)

    actor = Actor("rule", 7)
    assert email_templates.send(update, applicant, actor=actor, why="time in stage") is None
    assert count(OutboxMessage) == 0
    [skipped] = events("applicant.email_skipped")
    assert (skipped.applicant_id, skipped.actor_type, skipped.actor_id) == (applicant.id, "rule", 7)
    assert skipped.payload["reason"] == "unsubscribed"
    assert skipped.payload["template"] == update.public_id
    assert skipped.payload["why"] == "time in stage"

    message = email_templates.send(decision, applicant, actor=actor)
    db.session.commit()
    assert message is not None
    assert message.payload["unsubscribe"] is None  # essential mail offers no unsubscribe
    assert "/unsubscribe/" in message.payload["text"]  # the body's link still works


def test_unsubscribing_covers_the_same_persons_other_applications_in_the_org(
    app, make_org, make_opening, make_applicant
):
    org, other_org = make_org("Acme"), make_org("Other")
    first = make_applicant(make_opening(org, name="Driver"))
    second = make_applicant(make_opening(org, name="Courier"))
    elsewhere = make_applicant(make_opening(other_org))
    for applicant in (second, elsewhere):
        applicant.email = first.email
    db.session.commit()
    assert unsubscribes.unsubscribe(first) == 2
    assert email_templates.send(make_template(org), second, actor=Actor.system()) is None
    assert email_templates.send(make_template(other_org), elsewhere, actor=Actor.system())


def test_a_template_that_cannot_render_is_skipped_without_breaking_the_caller(
    app, make_org, make_opening, make_applicant
):
    org = make_org("Acme")
    applicant = make_applicant(make_opening(org))
    # Written past check(): the comparison of text with a number fails only at render.
    template = EmailTemplate(org_id=org.id, name="Broken", subject="Hi", body="{{ 1 < 'a' }}")
    db.session.add(template)
    db.session.flush()
    assert email_templates.send(template, applicant, actor=Actor.system()) is None
    [skipped] = events("applicant.email_skipped")
    assert skipped.payload["reason"] == "template_error"
    assert count(OutboxMessage) == 0


# --- the unsubscribe link ------------------------------------------------------------------


def test_the_unsubscribe_page_and_its_button(app, client, make_org, make_opening, make_applicant):
    org = make_org("Acme Logistics")
    applicant = make_applicant(make_opening(org))
    path = f"/unsubscribe/{unsubscribes.token_for(applicant)}"

    page = client.get(path)
    assert page.status_code == 200
    assert "Unsubscribe from non-essential email from Acme Logistics" in page.text
    assert f'action="{path}"' in page.text
    db.session.refresh(applicant)
    assert applicant.unsubscribed_at is None  # a GET (a link scanner) changes nothing

    done = client.post(path)
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    db.session.refresh(applicant)
    assert applicant.unsubscribed_at is not None
    [event] = events("applicant.unsubscribed")
    assert (event.applicant_id, event.actor_type, event.actor_id) == (
        applicant.id,
        "applicant",
        applicant.id,
    )

    # Idempotent: again changes nothing and records nothing.
    first = applicant.unsubscribed_at
    assert client.post(path).status_code == 200
    db.session.refresh(applicant)
    assert applicant.unsubscribed_at == first
    assert len(events("applicant.unsubscribed")) == 1
    assert "You are unsubscribed" in client.get(path).text
    entry = timeline.page(org, applicant).entries[0]
    assert (entry.text, entry.actor) == ("Unsubscribed from non-essential email", "the applicant")


def test_one_click_unsubscribe_needs_no_csrf_token(
    make_app, make_org, make_opening, make_applicant
):
    protected = make_app(WTF_CSRF_ENABLED=True)
    org = make_org("Acme")
    applicant = make_applicant(make_opening(org))
    client = protected.test_client()
    # CSRF is on in this app: another form post without a token is refused...
    assert (
        client.post("/login", data={"email": "x@example.com", "password": "x"}).status_code == 400
    )
    # ...while a mail client's RFC 8058 one-click POST goes through on the link's token.
    response = client.post(
        f"/unsubscribe/{unsubscribes.token_for(applicant)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    db.session.refresh(applicant)
    assert applicant.unsubscribed_at is not None


def test_bad_unsubscribe_tokens_get_a_friendly_404(
    app, client, make_org, make_opening, make_applicant
):
    applicant = make_applicant(make_opening(make_org("Acme")))
    token = unsubscribes.token_for(applicant)
    forged = [
        "made-up",
        token[:-3] + ("abc" if not token.endswith("abc") else "xyz"),
        token.split(".")[0],
        URLSafeSerializer("test-secret-key", salt="other").dumps(applicant.public_id),
        URLSafeSerializer("another-key", salt=unsubscribes.SALT).dumps(applicant.public_id),
        URLSafeSerializer("test-secret-key", salt=unsubscribes.SALT).dumps("aaaaaaaaaaaaaaaa"),
        URLSafeSerializer("test-secret-key", salt=unsubscribes.SALT).dumps(["not", "an id"]),
        "%00",
    ]
    for bad in forged:
        for method in ("GET", "POST"):
            response = client.open(f"/unsubscribe/{bad}", method=method)
            assert response.status_code == 404, (method, bad)
            assert "This unsubscribe link is not valid" in response.text
            assert "Traceback" not in response.text
    db.session.refresh(applicant)
    assert applicant.unsubscribed_at is None
    # The real token, for contrast, is signed with the app's key and names the applicant.
    assert client.get(f"/unsubscribe/{token}").status_code == 200


# --- delivery ------------------------------------------------------------------------------


class CountingServer:
    """An aiosmtpd server that keeps each message and the SMTP sessions they came over."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.sessions: list[object] = []  # kept, so that no two sessions share an id()
        self.port = _free_port()
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if not any(s is session for s in box.sessions):
                    box.sessions.append(session)
                box.messages.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        self.handler = Handler()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        # A controller runs once: starting again (after a stop) takes a new one, same port.
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def counting_smtp():
    server = CountingServer()
    server.start()
    yield server
    server.stop()


def test_a_batch_goes_over_one_smtp_session_with_headers_and_events(
    make_app, make_org, make_opening, make_applicant, counting_smtp, run_jobs
):
    smtp_app = make_app(SMTP_URL=counting_smtp.url)
    with smtp_app.test_request_context():
        org = make_org("Acme")
        opening = make_opening(org)
        template = make_template(org)
        applicants = [make_applicant(opening, name=f"Driver {n}") for n in range(30)]
        rows = [email_templates.send(template, a, actor=Actor.system()) for a in applicants]
        db.session.commit()
        by_address = {row.payload["to"]: row for row in rows}
        # As queued: once sent, a row keeps no live link (see test_secret_links).
        payloads = {row.public_id: dict(row.payload) for row in rows}

        assert run_jobs() == 0  # one job: the commit handed the 30 ids over in one batch

        assert len(counting_smtp.messages) == 30
        assert len(counting_smtp.sessions) == 1
        assert mailer._session.client is None  # the batch's end closed the session
        for mail in counting_smtp.messages:
            row = by_address[mail["To"]]
            assert mail["Message-ID"] == f"<{row.public_id}@localhost>"
            assert mail["List-Unsubscribe"] == f"<{payloads[row.public_id]['unsubscribe']}>"
            assert mail["List-Unsubscribe"].startswith("<http://localhost/unsubscribe/")
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert mail["Subject"] == "Your application for Delivery Driver"
            body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")
            assert body == payloads[row.public_id]["text"]
        db.session.expire_all()
        states = db.session.scalars(select(OutboxMessage.state)).all()
        assert states == [OutboxState.DONE] * 30

        emailed = events("applicant.emailed")
        assert sorted(e.applicant_id for e in emailed) == sorted(a.id for a in applicants)
        first = next(e for e in emailed if e.applicant_id == applicants[0].id)
        row = by_address[applicants[0].email]
        assert (first.actor_type, first.org_id, first.opening_id) == ("system", org.id, opening.id)
        assert first.payload == {
            "subject": "Your application for Delivery Driver",
            "to": applicants[0].email,
            "template": template.public_id,
            "message_id": f"<{row.public_id}@localhost>",
        }
        entry = timeline.page(org, applicants[0]).entries[0]
        assert (entry.text, entry.actor) == (
            "Email sent: “Your application for Delivery Driver”",
            "System",
        )


def test_essential_mail_carries_no_list_unsubscribe_and_non_ascii_survives(
    make_app, make_org, make_opening, make_applicant, counting_smtp
):
    smtp_app = make_app(SMTP_URL=counting_smtp.url)
    with smtp_app.test_request_context():
        org = make_org("Café Rouge")
        template = email_templates.create(
            membership(org, owner_of(org)),
            "Décision",
            "Bonne nouvelle, {{ applicant_name }} — {{ org_name }}",
            "Bonjour {{ applicant_name }}, à bientôt chez {{ org_name }}.",
            True,
        )
        applicant = make_applicant(make_opening(org), name="Zoë Çelik")
        row = email_templates.send(template, applicant, actor=Actor.system())
        db.session.commit()
        assert outbox.deliver([row.id])["done"] == 1
        [mail] = counting_smtp.messages
        assert mail["List-Unsubscribe"] is None
        assert mail["List-Unsubscribe-Post"] is None
        subject = str(make_header(decode_header(mail["Subject"])))
        assert subject == "Bonne nouvelle, Zoë Çelik — Café Rouge"
        body = mail.get_payload(decode=True).decode(mail.get_content_charset())
        assert body.strip() == "Bonjour Zoë Çelik, à bientôt chez Café Rouge."


def test_a_dropped_session_is_reopened_once_for_the_next_email(
    make_app, make_org, make_opening, make_applicant, counting_smtp
):
    smtp_app = make_app(SMTP_URL=counting_smtp.url)
    with smtp_app.test_request_context():
        org = make_org("Acme")
        template = make_template(org)
        opening = make_opening(org)
        first, second = (
            email_templates.send(template, make_applicant(opening), actor=Actor.system())
            for _ in range(2)
        )
        db.session.commit()
        try:
            assert mailer.send(first) == "smtp"
            assert mailer._session.client is not None  # kept open for the next email
            # The relay goes away and comes back: the kept session is dead.
            counting_smtp.stop()
            counting_smtp.start()
            assert mailer.send(second) == "smtp"
        finally:
            mailer.close()
        assert [m["Message-ID"] for m in counting_smtp.messages] == [
            f"<{first.public_id}@localhost>",
            f"<{second.public_id}@localhost>",
        ]
        assert len(counting_smtp.sessions) == 2


def test_a_failed_send_writes_no_emailed_event(make_app, make_org, make_opening, make_applicant):
    down = make_app(SMTP_URL=f"smtp://127.0.0.1:{_free_port()}")
    with down.test_request_context():
        org = make_org("Acme")
        applicant = make_applicant(make_opening(org))
        row = email_templates.send(make_template(org), applicant, actor=Actor.system())
        db.session.commit()
        assert outbox.deliver([row.id])["retrying"] == 1
        assert events("applicant.emailed") == []


def test_the_dev_mailbox_transport_also_writes_the_emailed_event(
    app, make_org, make_opening, make_applicant, run_jobs
):
    org = make_org("Acme")
    applicant = make_applicant(make_opening(org))
    row = email_templates.send(make_template(org), applicant, actor=Actor.system())
    db.session.commit()
    assert run_jobs() == 0
    db.session.refresh(row)
    assert (row.state, row.transport) == (OutboxState.DONE, "mailbox")
    [event] = events("applicant.emailed")
    assert event.applicant_id == applicant.id
    assert event.payload["message_id"] == f"<{row.public_id}@localhost>"


def test_mail_of_a_deleted_applicant_is_sent_without_an_event(
    app, make_org, make_opening, make_applicant
):
    # One batch: its events are written together, each for its own applicant and email.
    org = make_org("Acme")
    opening = make_opening(org)
    template = make_template(org)
    applicants = [make_applicant(opening) for _ in range(3)]
    rows = [email_templates.send(template, a, actor=Actor.system()) for a in applicants]
    db.session.commit()
    kept = {a.id: f"<{row.public_id}@localhost>" for a, row in zip(applicants, rows, strict=True)}
    gone = applicants[1].id
    del kept[gone]
    db.session.delete(db.session.get(Applicant, gone))
    db.session.commit()
    assert outbox.deliver([row.id for row in rows])["done"] == 3
    emailed = events("applicant.emailed")
    assert {e.applicant_id: e.payload["message_id"] for e in emailed} == kept
    assert {(e.org_id, e.opening_id) for e in emailed} == {(org.id, opening.id)}


def test_the_timeline_tells_a_skipped_email():
    assert timeline.describe(
        "applicant.email_skipped", {"template_name": "Reminder", "reason": "unsubscribed"}
    ) == ("Email “Reminder” not sent: the applicant unsubscribed from non-essential email")
