"""Pages' wording and names: where the opening editor shows list errors, the job board's
Markdown excerpts, the question editor's numbers, and accessibility (no control acting on a
change of selection, controls named for their item, filter errors tied to their field, the
current section of the top nav)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from flask import url_for

from plutomi import markdown
from plutomi.extensions import db
from plutomi.models import QuestionType, Role, Trigger
from plutomi.services import notes
from tests.conftest import field_error, logged_in, owner_membership, owner_of

HX = {"HX-Request": "true"}

# --- helpers -------------------------------------------------------------------------------


class _Controls(HTMLParser):
    """The accessible names of a page's buttons, links and summaries, roughly as a screen
    reader computes them: aria-label, else the text (visually hidden text included,
    aria-hidden text left out)."""

    CONTROLS = {"button", "a", "summary"}
    VOID = {"input", "br", "img", "meta", "link", "hr", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self._open: list[tuple[str, list[str], str | None]] = []
        self._hidden: list[bool] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag not in self.VOID:
            self._hidden.append(found.get("aria-hidden") == "true")
        if tag in self.CONTROLS:
            self._open.append((tag, [], found.get("aria-label")))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._hidden:
            self._hidden.pop()
        if tag in self.CONTROLS and self._open and self._open[-1][0] == tag:
            _, text, label = self._open.pop()
            self.names.append(" ".join((label or "".join(text)).split()))

    def handle_data(self, data: str) -> None:
        if not any(self._hidden):
            for _, text, _ in self._open:
                text.append(data)


def control_names(page: str) -> list[str]:
    parser = _Controls()
    parser.feed(page)
    return parser.names


def bare(page: str, *names: str) -> set[str]:
    """Which of these names a control of the page has, with no item named beside it."""
    return set(names) & set(control_names(page))


def tag_with(page: str, attribute: str) -> str:
    """The start tag that carries attribute (such as id="x")."""
    match = re.search(rf"<\w+[^>]*\b{re.escape(attribute)}[^>]*>", page)
    assert match, f"no tag with {attribute}"
    return match.group(0)


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def owner(app, org):
    return logged_in(app, owner_of(org))


# --- the opening editor: list errors are not the delete panel's -------------------------


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("questions/order", {"order": "zzzzzzzzzzzzzzzz"}, "The list changed meanwhile"),
        ("move", {"direction": "sideways"}, "Move up or down."),
    ],
)
def test_a_stale_order_or_bad_direction_is_a_list_error_not_a_delete_error(
    owner, org, make_opening, make_applicant, make_question, action, data, message
):
    opening = make_opening(org, stages=("Applied", "Review"))
    first = opening.stages[0]
    make_applicant(opening, first)
    make_question(first, "city")
    sid = first.public_id
    page = owner.post(f"/openings/{opening.public_id}/stages/{sid}/{action}", data=data, headers=HX)
    assert page.status_code == 422
    assert not re.search(r'<details class="delete-stage"\s+open', page.text)
    assert field_error(page.text, f"move-to-{sid}") is None
    assert 'aria-invalid="true"' not in tag_with(page.text, f'id="move-to-{sid}"')
    assert f'<p class="error form-error" role="alert">{message}' in page.text


def test_a_refused_delete_still_opens_its_panel_and_marks_the_select(
    owner, org, make_opening, make_applicant
):
    opening = make_opening(org, stages=("Applied", "Review"))
    make_applicant(opening, opening.stages[0])
    sid = opening.stages[0].public_id
    page = owner.post(f"/openings/{opening.public_id}/stages/{sid}/delete", headers=HX)
    assert page.status_code == 422
    assert re.search(r'<details class="delete-stage"\s+open', page.text)
    assert "choose the stage they move to" in field_error(page.text, f"move-to-{sid}")
    select = tag_with(page.text, f'id="move-to-{sid}"')
    assert 'aria-invalid="true"' in select and f'aria-describedby="move-to-{sid}-error"' in select


# --- the job board's excerpts ---------------------------------------------------------------


def test_the_job_board_excerpt_is_text_not_markdown(client, org, make_opening):
    opening = make_opening(org, "Van Driver")
    opening.description = "**You need** a licence & a _clean_ record.\n\n- Early starts"
    db.session.commit()
    page = client.get(f"/jobs/{org.slug}").text
    excerpt = re.search(r'<p class="muted">(.*?)</p>', page, re.S).group(1)
    assert html.unescape(excerpt).split() == (
        ["You", "need", "a", "licence", "&", "a", "clean", "record.", "Early", "starts"]
    )


def test_an_excerpt_is_cut_at_a_word_and_kept():
    long = "**Drive** " + " ".join(f"word{i}" for i in range(60))
    cut = markdown.excerpt(long)
    assert len(cut) <= 160 and cut.endswith("…") and "**" not in cut
    # A whole word before the ellipsis: the plain text goes on with a space after it.
    plain = " ".join(markdown.render(long).striptags().split())
    assert plain.startswith(cut[:-1]) and plain[len(cut) - 1] == " "
    assert markdown.excerpt("Short *and* sweet.") == "Short and sweet."
    assert markdown.excerpt("") == markdown.excerpt(None) == ""
    # Kept per process: the job board asks for the same descriptions on every request.
    assert markdown.excerpt(long) is cut


# --- the question editor's numbers -----------------------------------------------------------


def test_whole_number_limits_show_without_a_decimal_and_bad_ones_say_so(
    owner, org, make_opening, make_question
):
    opening = make_opening(org)
    question = make_question(
        opening.stages[0], "years_driving", QuestionType.NUMBER, min_value=0, max_value=70
    )
    url = f"/openings/{opening.public_id}/questions/{question.public_id}/edit"
    form = owner.get(url, headers=HX).text
    assert 'value="0"' in tag_with(form, 'id="min_value"')
    assert 'value="70"' in tag_with(form, 'id="max_value"')
    refused = owner.post(
        url, data={"label": "Years driving", "type": "number", "min_value": "abc"}, headers=HX
    )
    assert refused.status_code == 422
    assert field_error(refused.text, "min_value") == "Enter a number."
    assert 'value="abc"' in tag_with(refused.text, 'id="min_value"')  # kept to correct


def test_fractional_limits_keep_their_decimals(owner, org, make_opening, make_question):
    opening = make_opening(org)
    question = make_question(opening.stages[0], "hours", QuestionType.NUMBER, min_value=0.5)
    url = f"/openings/{opening.public_id}/questions/{question.public_id}/edit"
    assert 'value="0.5"' in tag_with(owner.get(url).text, 'id="min_value"')


# --- nothing acts on a change of selection ---------------------------------------------------


def test_the_org_switcher_and_role_select_wait_for_their_buttons(app, owner, org, make_member):
    teammate = make_member(org, Role.RECRUITER)
    teammate.name = "Grace Hopper"
    db.session.commit()
    page = owner.get("/settings/members").text
    assert "onchange" not in page and 'hx-trigger="change"' not in page
    assert "Switch" in control_names(page)
    assert "<noscript><button" not in page  # the buttons show with JavaScript too
    assert "Save role of Grace Hopper" in control_names(page)
    role_form = re.search(
        rf'<form[^>]*/settings/members/{teammate.public_id}/role"[^>]*>', page
    ).group(0)
    assert "hx-post=" in role_form and "hx-trigger" not in role_form  # htmx posts on submit
    saved = owner.post(
        f"/settings/members/{teammate.public_id}/role", data={"role": "viewer"}, headers=HX
    )
    assert saved.status_code == 200


# --- repeated controls name their item -------------------------------------------------------


def test_the_editors_controls_name_their_stage_question_or_rule(
    owner, org, make_opening, make_applicant, make_question, make_rule
):
    opening = make_opening(org, stages=("Applied", "Review"))
    make_applicant(opening, opening.stages[0])
    make_question(opening.stages[0], "city", label="Home town")
    make_question(opening.stages[1], "van", label="Own a van")
    editor = owner.get(f"/openings/{opening.public_id}/edit").text
    assert not bare(editor, "Rename", "Delete…", "Delete stage", "Edit", "Delete")
    names = control_names(editor)
    for name in (
        "Rename Applied",
        "Delete Review…",
        "Delete stage Applied",
        "Edit Home town",
        "Delete Own a van",
    ):
        assert name in names
    stage = opening.stages[0]
    move = [{"type": "move", "stage": opening.stages[1].public_id}]
    make_rule(stage, Trigger.STAGE_ENTERED, move, name="Fast track")
    make_rule(stage, Trigger.STAGE_ENTERED, move, name="Slow track")
    rules = owner.get(f"/openings/{opening.public_id}/stages/{stage.public_id}/rules").text
    assert not bare(rules, "Delete…") and "Delete Fast track…" in control_names(rules)


def test_notes_members_invites_and_keys_name_their_item(
    owner, org, make_opening, make_applicant, make_member, make_api_key
):
    applicant = make_applicant(make_opening(org))
    notes.add(owner_membership(org), applicant, "Called, no answer.")
    notes.add(owner_membership(org), applicant, "Has a van.")
    page = owner.get(f"/applicants/{applicant.public_id}").text
    assert not bare(page, "Edit", "Delete")
    assert {"Edit note “Has a van.”", "Delete note “Called, no answer.”"} <= set(
        control_names(page)
    )

    teammate = make_member(org, Role.VIEWER)
    owner.post("/settings/invites", data={"email": "new@example.com", "role": "recruiter"})
    members = owner.get("/settings/members").text
    assert not bare(members, "Remove", "Revoke", "Save role")
    names = control_names(members)
    assert f"Remove {teammate.name}" in names and "Revoke the invite of new@example.com" in names

    make_api_key(org, name="Careers site")
    keys = owner.get("/settings/api-keys").text
    assert not bare(keys, "Revoke") and "Revoke the key Careers site" in control_names(keys)


def test_select_all_names_its_column(owner, org, make_opening, make_applicant):
    opening = make_opening(org, stages=("Applied", "Review"))
    make_applicant(opening)
    board = owner.get(f"/openings/{opening.public_id}/board").text
    assert not bare(board, "Select all")
    assert {"Select all in Applied", "Select all in Review"} <= set(control_names(board))


# --- board filter errors belong to their field -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("time=forever", "board-time", "Choose a time in stage from the list."),
        ("status=deleted", "board-status", "Choose a status from the list."),
    ],
)
def test_a_bad_board_filter_is_tied_to_its_field(owner, org, make_opening, query, field, message):
    opening = make_opening(org)
    page = owner.get(f"/openings/{opening.public_id}/board?{query}")
    assert page.status_code == 422
    assert field_error(page.text, field) == message
    tag = tag_with(page.text, f'id="{field}"')
    assert 'aria-invalid="true"' in tag and f'aria-describedby="{field}-error"' in tag


def test_a_bad_answer_filter_is_tied_to_the_answer_fields(owner, org, make_opening, make_question):
    opening = make_opening(org)
    city = make_question(
        opening.stages[0], "city", QuestionType.SINGLE_CHOICE, options=["Leeds", "York"]
    )
    page = owner.get(f"/openings/{opening.public_id}/board?answer={city.public_id}:Paris")
    assert page.status_code == 422
    assert (
        field_error(page.text, "board-answer") == "That answer filter is not offered on this board."
    )
    tag = tag_with(page.text, f'id="board-answer-{city.public_id}"')
    assert 'aria-invalid="true"' in tag and 'aria-describedby="board-answer-error"' in tag


# --- the top nav and the settings' tabs mark the current page -------------------------------


def nav_link(page: str, label: str) -> str:
    nav = re.search(r'<header class="topbar">.*?</header>', page, re.S).group(0)
    return re.search(rf"<a [^>]*>{label}</a>", nav).group(0)


@pytest.mark.parametrize(
    ("endpoint", "tab"),
    [
        ("orgs.settings", "Organisation"),
        ("orgs.members", "Members"),
        ("email_templates.index", "Email templates"),
        ("webhooks.index", "Webhooks"),
        ("api_keys.index", "API keys"),
        ("operations.index", "Operations"),
    ],
)
def test_settings_is_the_current_section_on_every_settings_page(owner, endpoint, tab):
    page = owner.get(url_for(endpoint)).text
    settings = nav_link(page, "Settings")
    assert 'aria-current="page"' in settings and "active" in settings
    assert "aria-current" not in nav_link(page, "Openings")
    tabs = re.search(r'<nav class="tabs" aria-label="Settings">.*?</nav>', page, re.S).group(0)
    assert re.findall(r'<a [^>]*aria-current="page"[^>]*>([^<]*)</a>', tabs) == [tab]


def test_openings_is_the_current_section_of_its_pages(owner):
    page = owner.get("/openings").text
    assert 'aria-current="page"' in nav_link(page, "Openings")
    assert "aria-current" not in nav_link(page, "Settings")
