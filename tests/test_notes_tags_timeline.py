"""The applicant page's notes, tags and timeline, and the page as the board's side panel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    ApplicantTag,
    Event,
    Membership,
    Note,
    Org,
    Role,
    User,
    utcnow,
)
from plutomi.services import cards, notes, tags, timeline
from plutomi.services.errors import Forbidden, Invalid, NotFound
from plutomi.services.events import Actor, record_applicant
from tests.conftest import owner_of
from tests.test_applicant_page import counting_queries
from tests.test_csrf import form_token, header_token
from tests.test_csrf import login as csrf_login

HX = {"HX-Request": "true"}


def membership(org: Org, user: User) -> Membership:
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )


def events(applicant: Applicant, type: str | None = None) -> list[Event]:
    db.session.expire_all()
    query = select(Event).where(Event.applicant_id == applicant.id).order_by(Event.id)
    if type:
        query = query.where(Event.type == type)
    return list(db.session.scalars(query))


def login(auth, user: User) -> None:
    assert auth.login(user.email).status_code == 302


@pytest.fixture
def world(make_org, make_member, make_opening, make_applicant):
    """An org with a member of every role and one applicant."""
    org = make_org("Acme")
    opening = make_opening(org, stages=("Questionnaire", "Review"))
    applicant = make_applicant(opening, name="Ada Okafor")
    users = {
        "owner": owner_of(org),
        "admin": make_member(org, Role.ADMIN),
        "recruiter": make_member(org, Role.RECRUITER),
        "other_recruiter": make_member(org, Role.RECRUITER),
        "viewer": make_member(org, Role.VIEWER),
    }
    users["recruiter"].name = "Rita Recruiter"
    db.session.commit()
    return org, applicant, users


def as_(org: Org, users: dict, who: str) -> Membership:
    return membership(org, users[who])


# --- notes: the service ----------------------------------------------------------------------


def test_a_recruiter_adds_a_note_and_the_event_names_it_without_its_body(world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "  First line\r\nSecond\tline  \n")
    assert note.body == "First line\nSecond\tline"
    assert note.author_id == users["recruiter"].id and note.updated_at is None
    [event] = events(applicant)
    assert event.type == "applicant.note_added"
    assert event.payload == {"note": note.public_id}
    assert (event.actor_type, event.actor_id) == ("user", users["recruiter"].id)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Write the note first."),
        ("  \n\t \r\n ", "Write the note first."),
        ("x" * 5001, "Use at most 5,000 characters"),
        ("a\x00b", "control character"),
        ("bell\x07", "control character"),
        ("esc\x1b[31m", "control character"),
        ("c1\x85c1", "control character"),
    ],
)
def test_a_note_must_be_1_to_5000_characters_of_plain_text(world, body, message):
    org, applicant, users = world
    with pytest.raises(Invalid) as refused:
        notes.add(as_(org, users, "recruiter"), applicant, body)
    assert message in refused.value.message
    assert refused.value.field == "body"
    db.session.rollback()
    assert events(applicant) == []
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0


def test_5000_characters_after_stripping_are_accepted(world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "  " + "é" * 5000 + "\n\n")
    assert len(note.body) == 5000


def test_viewers_read_notes_but_cannot_write_them(world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Called, no answer.")
    viewer = as_(org, users, "viewer")
    [view] = notes.for_applicant(viewer, applicant)
    assert view.note.body == "Called, no answer." and view.author_name == "Rita Recruiter"
    assert not view.can_edit and not view.can_delete
    for attempt in (
        lambda: notes.add(viewer, applicant, "Hello"),
        lambda: notes.edit(viewer, applicant, note.public_id, "Changed"),
        lambda: notes.delete(viewer, applicant, note.public_id),
    ):
        with pytest.raises(Forbidden):
            attempt()
        db.session.rollback()
    assert [e.type for e in events(applicant)] == ["applicant.note_added"]


def test_only_the_author_edits_a_note(world):
    org, applicant, users = world
    author = as_(org, users, "recruiter")
    note = notes.add(author, applicant, "Has a van.")
    for who in ("other_recruiter", "admin", "owner"):
        with pytest.raises(Forbidden, match="Only the author"):
            notes.edit(as_(org, users, who), applicant, note.public_id, "Has no van.")
        db.session.rollback()

    # Saving it unchanged is no edit.
    notes.edit(author, applicant, note.public_id, "Has a van.  ")
    assert note.updated_at is None
    edited = notes.edit(author, applicant, note.public_id, "Has a van and a licence.")
    assert edited.body == "Has a van and a licence." and edited.updated_at is not None
    [view] = notes.for_applicant(author, applicant)
    assert view.edited and view.can_edit and view.can_delete
    assert [(e.type, e.payload) for e in events(applicant)] == [
        ("applicant.note_added", {"note": note.public_id}),
        ("applicant.note_edited", {"note": note.public_id}),
    ]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("recruiter", True), ("admin", True), ("owner", True), ("other_recruiter", False)],
)
def test_the_author_an_admin_or_an_owner_deletes_a_note(world, who, allowed):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Delete me.")
    public_id = note.public_id
    actor = as_(org, users, who)
    [view] = notes.for_applicant(actor, applicant)
    assert view.can_delete is allowed
    if allowed:
        notes.delete(actor, applicant, public_id)
        assert db.session.scalar(select(func.count()).select_from(Note)) == 0
        last = events(applicant)[-1]
        assert (last.type, last.payload, last.actor_id) == (
            "applicant.note_deleted",
            {"note": public_id},
            users[who].id,
        )
    else:
        with pytest.raises(Forbidden):
            notes.delete(actor, applicant, public_id)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Note)) == 1


def test_a_note_of_another_applicant_or_org_is_not_found(
    world, make_org, make_opening, make_applicant
):
    org, applicant, users = world
    recruiter = as_(org, users, "recruiter")
    neighbour = make_applicant(applicant.opening, name="Other Person")
    theirs = notes.add(recruiter, neighbour, "About someone else.")
    other = make_org("Globex")
    foreign_applicant = make_applicant(make_opening(other), name="Globex Person")
    foreign = notes.add(membership(other, owner_of(other)), foreign_applicant, "Globex's.")
    for note_id in (theirs.public_id, foreign.public_id, "notarealnoteid00", "../x"):
        for attempt in (notes.get, notes.delete):
            with pytest.raises(NotFound):
                attempt(recruiter, applicant, note_id)
    # And a service handed another org's applicant refuses it outright.
    with pytest.raises(NotFound):
        notes.add(recruiter, foreign_applicant, "Sneaky.")
    with pytest.raises(NotFound):
        tags.add(recruiter, foreign_applicant, "sneaky")


# --- tags: the service -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("Bilingual", "bilingual"),
        ("  Has   Van ", "has van"),
        ("night\tshift\nonly", "night shift only"),
        ("ÉTÉ 2025", "été 2025"),
        ("x" * 40, "x" * 40),
        ("  " + "y" * 40 + "  ", "y" * 40),
    ],
)
def test_tags_are_normalised(raw, tag):
    assert tags.normalize(raw) == tag


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter a tag."),
        (" \t\n ", "Enter a tag."),
        ("x" * 41, "at most 40"),
        ("a  " + "b" * 39, "at most 40"),  # 41 after collapsing
        ("van\x00", "control character"),
        ("van\x7f", "control character"),
    ],
)
def test_bad_tags_are_refused_next_to_the_field(raw, message):
    with pytest.raises(Invalid) as refused:
        tags.normalize(raw)
    assert message in refused.value.message and refused.value.field == "tag"


def test_adding_a_tag_twice_is_a_no_op_and_removing_writes_an_event(world):
    org, applicant, users = world
    recruiter = as_(org, users, "recruiter")
    assert tags.add(recruiter, applicant, "Has Van") is True
    assert tags.add(recruiter, applicant, "  has   VAN") is False
    assert tags.add(recruiter, applicant, "bilingual") is True
    assert tags.for_applicant(applicant) == ["bilingual", "has van"]
    assert tags.remove(recruiter, applicant, "HAS VAN") is True
    assert tags.remove(recruiter, applicant, "has van") is False
    assert tags.for_applicant(applicant) == ["bilingual"]
    assert [(e.type, e.payload) for e in events(applicant)] == [
        ("applicant.tagged", {"tag": "has van"}),
        ("applicant.tagged", {"tag": "bilingual"}),
        ("applicant.untagged", {"tag": "has van"}),
    ]


def test_an_applicant_has_at_most_20_tags(world):
    org, applicant, users = world
    recruiter = as_(org, users, "recruiter")
    for n in range(20):
        assert tags.add(recruiter, applicant, f"tag {n:02d}")
    with pytest.raises(Invalid, match="at most 20 tags") as refused:
        tags.add(recruiter, applicant, "one too many")
    assert refused.value.field == "tag"
    db.session.rollback()
    # At the limit, a tag they already have is still a quiet no-op.
    assert tags.add(recruiter, applicant, "TAG 05") is False
    assert len(tags.for_applicant(applicant)) == 20
    assert len(events(applicant, "applicant.tagged")) == 20


def test_viewers_cannot_tag(world):
    org, applicant, users = world
    viewer = as_(org, users, "viewer")
    tags.add(as_(org, users, "recruiter"), applicant, "keep")
    for attempt in (tags.add, tags.remove):
        with pytest.raises(Forbidden):
            attempt(viewer, applicant, "keep")
        db.session.rollback()
    assert tags.for_applicant(applicant) == ["keep"]


def test_the_boards_reads_take_one_query_each(world, make_org, make_opening, make_applicant):
    org, applicant, users = world
    recruiter = as_(org, users, "recruiter")
    second = make_applicant(applicant.opening, name="Second")
    untagged = make_applicant(applicant.opening, name="Untagged")
    for who, tag in ((applicant, "van"), (applicant, "bilingual"), (second, "van")):
        tags.add(recruiter, who, tag)
    other = make_org("Globex")
    foreign = make_applicant(make_opening(other), name="Globex Person")
    tags.add(membership(other, owner_of(other)), foreign, "globex only")
    db.session.expire_all()
    org = db.session.get(Org, org.id)

    # A page of cards, one from another org among them: its tags are not this board's.
    page = [
        cards.Card(
            p.id,
            p.public_id,
            p.name,
            p.email,
            p.status,
            p.stage_id,
            p.rank,
            p.version,
            p.entered_stage_at,
        )
        for p in (applicant, second, untagged, foreign)
    ]
    opening = applicant.opening
    with counting_queries() as statements:
        dressed = cards.dress(opening, page, [])
    assert len(statements) == 1  # tags, answers and duplicate flags together
    assert {card.id: card.tags for card in dressed if card.tags} == {
        applicant.id: ("bilingual", "van"),
        second.id: ("van",),
    }
    with counting_queries() as statements:
        assert cards.dress(opening, [], []) == []
    assert statements == []

    with counting_queries() as statements:
        assert tags.org_tags(org) == ["bilingual", "van"]
    assert len(statements) == 1


# --- timeline --------------------------------------------------------------------------------


def add_event(applicant, type: str, actor: Actor | None = None, at=None, **payload) -> Event:
    event = record_applicant(type, applicant, actor=actor or Actor.system(), **payload)
    if at is not None:
        event.created_at = at
    db.session.flush()
    return event


@pytest.mark.parametrize(
    ("type", "payload", "text"),
    [
        ("applicant.created", {"stage": "Questionnaire"}, "Applied, starting in Questionnaire"),
        ("applicant.answered", {"question": "city"}, "Answered “city”"),
        ("applicant.answered", {"question": "city", "label": "Your city"}, "Answered “Your city”"),
        (
            "applicant.stage_completed",
            {"stage": "Questionnaire"},
            "Answered every required question of Questionnaire",
        ),
        (
            "applicant.moved",
            {"from_stage": "Questionnaire", "to_stage": "Waiting List"},
            "Moved from Questionnaire to Waiting List",
        ),
        (
            "applicant.moved",
            {"from_stage": "Old", "to_stage": "New", "reason": "stage_deleted"},
            "Moved from Old to New (its stage was deleted)",
        ),
        (
            "applicant.moved",
            {"from_stage": "A", "to_stage": "B", "reason": "not_completed_in_time"},
            "Moved from A to B (not completed in time)",
        ),
        ("applicant.rejected", {"reason": "No licence"}, "Rejected: No licence"),
        ("applicant.rejected", {}, "Rejected"),
        ("applicant.restored", {}, "Restored to the active applicants"),
        ("applicant.withdrawn", {"reason": "Found a job"}, "Withdrew the application: Found a job"),
        ("applicant.note_added", {"note": "abc"}, "Added a note"),
        ("applicant.note_edited", {"note": "abc"}, "Edited a note"),
        ("applicant.note_deleted", {"note": "abc"}, "Deleted a note"),
        ("applicant.tagged", {"tag": "has van"}, "Tagged “has van”"),
        ("applicant.untagged", {"tag": "has van"}, "Removed the tag “has van”"),
        ("email.sent", {"subject": "Welcome", "template": "welcome"}, "Email sent: “Welcome”"),
        ("email.sent", {"template": "stage_reminder"}, "Email sent: stage reminder"),
        (
            "webhook.delivered",
            {"event_type": "applicant.moved", "url": "https://hooks.example.com/x"},
            "Webhook applicant.moved delivered to https://hooks.example.com/x",
        ),
        (
            "applicant.external_event",
            {"event_type": "account_creation.failed"},
            "Outside event received: account_creation.failed",
        ),
        ("rule.chain_capped", {"limit": 10}, "Automatic moves stopped after 10 in a row"),
        (
            "rule.loop_stopped",
            {"limit": 25, "hours": 24},
            "Automatic moves stopped after 25 in 24 hours: the rules may be",
        ),
        ("rule.loop_stopped", {}, "Automatic moves stopped: the rules may be"),
        ("applicant.stage_entered", {}, "Stage entered"),
        ("opening.published", {}, "Opening published"),
        # Payloads are JSON of any shape; odd values never break the page.
        ("applicant.moved", {"to_stage": ["x"]}, "Moved"),
        ("applicant.tagged", {"tag": None}, "Tagged"),
    ],
)
def test_every_event_type_reads_as_a_sentence(type, payload, text):
    assert timeline.describe(type, payload).startswith(text)


def test_actors_are_named(world):
    org, applicant, users = world
    recruiter = users["recruiter"]
    rows = [
        (Actor.user(recruiter), {}, "Rita Recruiter"),
        (Actor("user", 999_999), {}, "A deleted user"),
        (Actor.applicant(applicant), {}, "the applicant"),
        (Actor("rule", 7), {"rule_name": "Not done in 30 days"}, "Rule: Not done in 30 days"),
        (Actor("rule", 7), {}, "Rule"),
        (Actor("api_key", 3), {}, "API key"),
        (Actor.system(), {}, "System"),
    ]
    start = utcnow() - timedelta(hours=1)
    for n, (actor, payload, _) in enumerate(rows):
        add_event(applicant, "applicant.moved", actor, start - timedelta(minutes=n), **payload)
    db.session.commit()
    page = timeline.page(org, applicant)
    assert [e.actor for e in page.entries] == [label for _, _, label in rows]


def test_sixty_events_come_in_pages_of_25_newest_first_without_duplicates(world):
    org, applicant, _users = world
    start = utcnow() - timedelta(days=1)
    made = []
    for n in range(60):
        # Pairs share a timestamp: the id breaks the tie, so no event is lost or shown twice.
        at = start + timedelta(seconds=n // 2)
        made.append(add_event(applicant, "applicant.tagged", at=at, tag=f"t{n:02d}"))
    db.session.commit()
    expected = [f"Tagged “t{n:02d}”" for n in range(59, -1, -1)]

    pages, before = [], None
    while True:
        page = timeline.page(org, applicant, before)
        pages.append([e.text for e in page.entries])
        if page.older is None:
            break
        before = page.older
    assert [len(p) for p in pages] == [25, 25, 10]
    assert [text for p in pages for text in p] == expected

    # An event written meanwhile does not shift the older pages.
    add_event(applicant, "applicant.tagged", tag="newest")
    db.session.commit()
    second = timeline.page(org, applicant, timeline.page(org, applicant).older)
    assert [e.text for e in second.entries] == expected[24:49]


def test_a_timeline_page_costs_two_queries_however_many_users_acted(
    client, auth, world, make_user, make_opening, make_applicant
):
    org, applicant, users = world
    other = make_applicant(applicant.opening, name="Other")
    now = utcnow()
    many = [make_user(name=f"User {n}") for n in range(25)]
    for n in range(30):
        add_event(applicant, "applicant.note_added", Actor.user(many[n % 25]), now, note="x")
        add_event(other, "applicant.note_added", Actor.user(users["owner"]), now, note="x")
    db.session.commit()
    db.session.expire_all()
    org = db.session.get(Org, org.id)
    for who in (applicant, other):
        who = db.session.get(Applicant, who.id)
        with counting_queries() as statements:
            page = timeline.page(org, who)
        assert len(page.entries) == 25
        assert len(statements) == 2, statements

    login(auth, users["owner"])
    counts = []
    for who in (applicant, other, applicant):  # the first request warms nothing up
        url = f"/applicants/{who.public_id}/timeline"
        with counting_queries() as statements:
            response = client.get(url, headers=HX)
        assert response.status_code == 200
        assert response.text.count('class="timeline-entry"') == 25
        counts.append(len(statements))
    assert counts[0] == counts[1] == counts[2], counts
    assert "User 24" in client.get(f"/applicants/{applicant.public_id}/timeline", headers=HX).text


def test_show_older_appends_the_next_page_through_htmx(client, auth, world):
    _org, applicant, users = world
    start = utcnow() - timedelta(days=2)
    for n in range(60):
        add_event(applicant, "applicant.tagged", at=start + timedelta(minutes=n), tag=f"t{n:02d}")
    db.session.commit()
    login(auth, users["viewer"])

    html = client.get(f"/applicants/{applicant.public_id}").text
    section = html.split('id="timeline"')[1]
    seen = re.findall(r"Tagged “(t\d\d)”", section)
    pages = [len(seen)]
    while True:
        more = re.search(r'hx-get="([^"]+before=[^"]+)"\s+hx-target="closest li"', section)
        if more is None:
            break
        response = client.get(more.group(1).replace("&amp;", "&"), headers=HX)
        assert response.status_code == 200
        section = response.text
        assert "<html" not in section and 'id="timeline"' not in section
        page = re.findall(r"Tagged “(t\d\d)”", section)
        pages.append(len(page))
        seen += page
    assert pages == [25, 25, 10]
    assert seen == [f"t{n:02d}" for n in range(59, -1, -1)]

    # Without JavaScript, "Show older" is a link to the page starting at the next page.
    first = client.get(f"/applicants/{applicant.public_id}").text
    href = re.search(r'href="([^"]+before=[^"]+)#timeline"', first).group(1).replace("&amp;", "&")
    older = client.get(href).text
    assert "Tagged “t34”" in older and "Tagged “t35”" not in older
    plain = client.get(f"/applicants/{applicant.public_id}/timeline?before=x")
    assert plain.status_code == 302 and plain.location.endswith("before=x#timeline")
    # A mangled cursor is a bad request, not a crash.
    for bad in ("x", "!!!", "bm90IGEgY3Vyc29y"):
        url = f"/applicants/{applicant.public_id}/timeline?before={bad}"
        assert client.get(url, headers=HX).status_code == 400


def test_the_timeline_shows_who_and_when_and_escapes_what_people_typed(client, auth, world):
    _org, applicant, users = world
    at = utcnow() - timedelta(hours=3)
    add_event(
        applicant,
        "applicant.moved",
        Actor("rule", 1),
        at,
        from_stage="<b>Questionnaire</b>",
        to_stage="Waiting List",
        rule_name="Not done in <i>30</i> days",
    )
    db.session.commit()
    login(auth, users["owner"])
    html = client.get(f"/applicants/{applicant.public_id}").text
    section = html.split('id="timeline"')[1]
    assert "Moved from &lt;b&gt;Questionnaire&lt;/b&gt; to Waiting List" in section
    assert "Rule: Not done in &lt;i&gt;30&lt;/i&gt; days" in section
    assert "<b>Questionnaire" not in html and "<i>30" not in html
    stamp = at.strftime("%d %b %Y %H:%M:%S UTC")
    assert re.search(
        rf'<time datetime="{re.escape(at.isoformat())}" title="{stamp}">3 hours ago</time>',
        section,
    )


# --- the views -------------------------------------------------------------------------------


def test_adding_a_note_by_htmx_swaps_the_notes_and_reloads_the_timeline(client, auth, world):
    _org, applicant, users = world
    login(auth, users["recruiter"])
    url = f"/applicants/{applicant.public_id}/notes"
    page = client.get(f"/applicants/{applicant.public_id}").text
    assert f'hx-post="{url}"' in page and 'id="notes"' in page

    response = client.post(
        url, data={"body": "Line one\r\n<script>alert(1)</script>\nLine three"}, headers=HX
    )
    assert response.status_code == 200
    html = response.text
    assert "<html" not in html and html.lstrip().startswith("<section")
    assert 'id="notes"' in html and 'id="answers"' not in html
    # Plain text: escaped, line breaks kept for CSS to show.
    assert (
        '<div class="note-body">Line one\n&lt;script&gt;alert(1)&lt;/script&gt;\nLine three</div>'
        in html
    )
    assert "<strong>Rita Recruiter</strong>" in html and "less than a minute ago" in html
    assert "edited" not in html
    trigger = response.headers["HX-Trigger"]
    assert "applicant-changed" in trigger and "Note added." in trigger

    # The timeline section reloads on that event and now tells of the note.
    timeline_html = client.get(f"/applicants/{applicant.public_id}/timeline", headers=HX).text
    assert timeline_html.lstrip().startswith('<section class="card" id="timeline"')
    assert "Added a note" in timeline_html and "Rita Recruiter" in timeline_html


def test_a_refused_note_comes_back_with_the_error_next_to_the_textarea(client, auth, world):
    _org, applicant, users = world
    login(auth, users["recruiter"])
    url = f"/applicants/{applicant.public_id}/notes"
    response = client.post(url, data={"body": "   "}, headers=HX)
    assert response.status_code == 422
    assert "<html" not in response.text
    assert re.search(
        r'<textarea[^>]*aria-invalid="true"[^>]*id="body"|<textarea[^>]*id="body"[^>]*'
        r'aria-invalid="true"',
        response.text,
    )
    assert '<p class="error" id="body-error">Write the note first.</p>' in response.text
    assert "applicant-changed" not in response.headers.get("HX-Trigger", "")

    too_long = client.post(url, data={"body": "x" * 5001}, headers=HX)
    assert too_long.status_code == 422
    assert "Use at most 5,000 characters" in too_long.text
    assert "x" * 5001 in too_long.text  # what they wrote is kept for them to shorten

    # A plain post: the whole page with the error, or a redirect back when it worked.
    plain = client.post(url, data={"body": "bad \x00 byte"})
    assert plain.status_code == 422 and "<html" in plain.text
    assert "invisible control character" in plain.text
    done = client.post(url, data={"body": "Fine"})
    assert done.status_code == 302
    assert done.location.endswith(f"/applicants/{applicant.public_id}#notes")
    assert db.session.scalar(select(func.count()).select_from(Note)) == 1


def test_the_author_edits_a_note_in_place(client, auth, world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Original")
    base = f"/applicants/{applicant.public_id}/notes/{note.public_id}"
    login(auth, users["recruiter"])

    form = client.get(f"{base}/edit", headers=HX)
    assert form.status_code == 200 and "<html" not in form.text
    assert re.search(r'<textarea[^>]*name="edit-body"[^>]*>\s*Original</textarea>', form.text)
    assert f'hx-get="/applicants/{applicant.public_id}/notes"' in form.text  # Cancel

    refused = client.post(f"{base}/edit", data={"edit-body": ""}, headers=HX)
    assert refused.status_code == 422
    assert '<p class="error" id="edit-body-error">Write the note first.</p>' in refused.text

    saved = client.post(f"{base}/edit", data={"edit-body": "Changed"}, headers=HX)
    assert saved.status_code == 200
    assert '<div class="note-body">Changed</div>' in saved.text
    assert '<span class="edited"' in saved.text and "edit-body" not in saved.text
    assert [e.type for e in events(applicant)][-1] == "applicant.note_edited"

    cancel = client.get(f"/applicants/{applicant.public_id}/notes", headers=HX)
    assert cancel.status_code == 200 and "Changed" in cancel.text


def test_no_one_but_the_author_gets_the_edit_form(app, client, auth, world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Mine")
    base = f"/applicants/{applicant.public_id}/notes/{note.public_id}"
    login(auth, users["admin"])
    html = client.get(f"/applicants/{applicant.public_id}").text
    assert f"{base}/edit" not in html  # no Edit link
    assert f'hx-post="{base}/delete"' in html  # but an admin may delete
    assert client.get(f"{base}/edit", headers=HX).status_code == 403
    assert client.post(f"{base}/edit", data={"edit-body": "Theirs"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Note, note.id).body == "Mine"


def test_deleting_asks_first_and_swaps_the_notes(client, auth, world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Short-lived")
    url = f"/applicants/{applicant.public_id}/notes/{note.public_id}/delete"
    login(auth, users["recruiter"])
    html = client.get(f"/applicants/{applicant.public_id}").text
    assert re.search(rf'hx-post="{url}"\s+hx-confirm="Delete this note\?', html)

    response = client.post(url, headers=HX)
    assert response.status_code == 200
    assert "Short-lived" not in response.text and "No notes yet." in response.text
    assert "Note deleted." in response.headers["HX-Trigger"]
    assert client.post(url, headers=HX).status_code == 404  # gone


def test_another_recruiter_cannot_delete_and_viewers_get_no_forms(client, auth, world):
    org, applicant, users = world
    note = notes.add(as_(org, users, "recruiter"), applicant, "Stays")
    base = f"/applicants/{applicant.public_id}"
    login(auth, users["other_recruiter"])
    assert client.post(f"{base}/notes/{note.public_id}/delete", headers=HX).status_code == 403
    auth.logout()

    login(auth, users["viewer"])
    html = client.get(base).text
    assert "Stays" in html and "has-error" not in html
    assert "<textarea" not in html and f'action="{base}/tags"' not in html
    assert "/delete" not in html and "Remove the tag" not in html
    for url, data in (
        (f"{base}/notes", {"body": "Viewer note"}),
        (f"{base}/notes/{note.public_id}/delete", {}),
        (f"{base}/tags", {"tag": "viewer"}),
        (f"{base}/tags/remove", {"tag": "viewer"}),
    ):
        assert client.post(url, data=data, headers=HX).status_code == 403, url
    assert db.session.scalar(select(func.count()).select_from(Note)) == 1
    assert db.session.scalar(select(func.count()).select_from(ApplicantTag)) == 0


def test_notes_of_another_applicant_or_org_are_404(
    client, auth, world, make_org, make_opening, make_applicant
):
    org, applicant, users = world
    neighbour = make_applicant(applicant.opening, name="Neighbour")
    theirs = notes.add(as_(org, users, "recruiter"), neighbour, "Neighbour's")
    other = make_org("Globex")
    foreign_applicant = make_applicant(make_opening(other), name="Globex Person")
    foreign = notes.add(membership(other, owner_of(other)), foreign_applicant, "Globex's")
    login(auth, users["owner"])
    base = f"/applicants/{applicant.public_id}/notes"
    for note in (theirs, foreign):
        for method, path in (("GET", "edit"), ("POST", "edit"), ("POST", "delete")):
            response = client.open(
                f"{base}/{note.public_id}/{path}", method=method, data={"edit-body": "x"}
            )
            assert response.status_code == 404, (method, path)
            assert note.body not in response.text
    foreign_url = f"/applicants/{foreign_applicant.public_id}"
    for path in ("", "/notes", "/timeline"):
        assert client.get(foreign_url + path, headers=HX).status_code == 404
    assert client.post(f"{foreign_url}/notes", data={"body": "x"}).status_code == 404
    assert client.post(f"{foreign_url}/tags", data={"tag": "x"}).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Note)) == 2


def test_tags_by_htmx_with_the_orgs_tags_offered(client, auth, world, make_applicant):
    org, applicant, users = world
    other = make_applicant(applicant.opening, name="Other")
    tags.add(as_(org, users, "recruiter"), other, "night shift")
    login(auth, users["recruiter"])
    base = f"/applicants/{applicant.public_id}"
    html = client.get(base).text
    assert 'list="applicant-tag-options"' in html
    assert re.search(
        r'<datalist id="applicant-tag-options">\s*<option value="night shift">\s*</datalist>', html
    )

    response = client.post(f"{base}/tags", data={"tag": "  Has   VAN "}, headers=HX)
    assert response.status_code == 200
    assert "<html" not in response.text and response.text.lstrip().startswith("<section")
    assert '<li class="tag">has van' in response.text
    assert "applicant-changed" in response.headers["HX-Trigger"]
    again = client.post(f"{base}/tags", data={"tag": "has van"}, headers=HX)
    assert again.status_code == 200 and again.text.count('<li class="tag">') == 1

    refused = client.post(f"{base}/tags", data={"tag": "x" * 41}, headers=HX)
    assert refused.status_code == 422
    assert '<p class="error" id="tag-error">Use at most 40 characters.</p>' in refused.text

    removed = client.post(f"{base}/tags/remove", data={"tag": "has van"}, headers=HX)
    assert removed.status_code == 200 and "No tags." in removed.text
    plain = client.post(f"{base}/tags", data={"tag": "bilingual"})
    assert plain.status_code == 302 and plain.location.endswith("#tags")
    assert tags.for_applicant(applicant) == ["bilingual"]
    assert [e.type for e in events(applicant)] == [
        "applicant.tagged",
        "applicant.untagged",
        "applicant.tagged",
    ]


def test_the_page_opens_as_a_panel_for_the_board(client, auth, world):
    _org, applicant, users = world
    url = f"/applicants/{applicant.public_id}"
    login(auth, users["viewer"])

    panel = client.get(url, headers={**HX, "HX-Target": "panel"})
    assert panel.status_code == 200
    html = panel.text
    assert html.lstrip().startswith("<aside") and "<html" not in html
    assert f'<a href="{url}">Open full page</a>' in html
    assert "document.getElementById('panel').replaceChildren()" in html
    for section in ("notes", "tags", "timeline", "answers", "files"):
        assert f'id="{section}"' in html, section
    assert "<h2>Ada Okafor" in html and "<h1>" not in html
    assert "HX-Target" in panel.headers["Vary"]

    page = client.get(url)
    assert "<html" in page.text and "<aside" not in page.text and "<h1>Ada Okafor" in page.text
    boosted = client.get(url, headers={**HX, "HX-Boosted": "true"})
    assert "<aside" not in boosted.text and "<h1>Ada Okafor" in boosted.text
    # The move, reject and restore forms redraw #applicant: they get the profile alone.
    redraw = client.get(url, headers={**HX, "HX-Target": "applicant"})
    assert redraw.text.lstrip().startswith('<div id="applicant"') and "<html" not in redraw.text
    assert "<aside" not in redraw.text and 'id="notes"' in redraw.text


@pytest.fixture
def csrf_app(make_app, app):
    return make_app(WTF_CSRF_ENABLED=True)


def test_notes_and_tags_need_the_csrf_token(csrf_app, world):
    _org, applicant, users = world
    client = csrf_app.test_client()
    csrf_login(client, users["recruiter"].email)
    base = f"/applicants/{applicant.public_id}"
    page = client.get(base).text

    assert client.post(f"{base}/notes", data={"body": "No token"}, headers=HX).status_code == 400
    assert client.post(f"{base}/tags", data={"tag": "no token"}).status_code == 400
    token = header_token(page)
    response = client.post(
        f"{base}/notes", data={"body": "With token"}, headers={**HX, "X-CSRFToken": token}
    )
    assert response.status_code == 200, response.text
    # The forms carry their own token too, for a post without htmx.
    tag_form = re.search(r'<form[^>]*action="[^"]*/tags".*?</form>', page, re.S).group(0)
    plain = client.post(f"{base}/tags", data={"tag": "plain", "csrf_token": form_token(tag_form)})
    assert plain.status_code == 302
    note = db.session.scalar(select(Note))
    edit_form = client.get(f"{base}/notes/{note.public_id}/edit").text
    token_field = re.search(r'name="edit-csrf_token"[^>]*value="([^"]+)"', edit_form)
    saved = client.post(
        f"{base}/notes/{note.public_id}/edit",
        data={"edit-body": "Edited plainly", "edit-csrf_token": token_field.group(1)},
    )
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Note, note.id).body == "Edited plainly"
    assert tags.for_applicant(applicant) == ["plain"]
