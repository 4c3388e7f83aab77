"""Refusals a person meets in the middle of a page: an htmx partial's error swaps nothing and
shows as a flash, a form sent back asks for its files again, "select all" refuses a filter
that no longer applies, and hand-made requests (board cursors and searches, bulk selections,
older-events links, webhook URLs) are refused with a message, never a server error."""

from __future__ import annotations

import base64
import io

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Applicant, QuestionType
from plutomi.services import answers
from tests.conftest import flashed, owner_of
from tests.test_board import fill
from tests.test_board_views import board_url
from tests.test_uploads import PDF

HX = {"HX-Request": "true"}

MISSING = "/applicants/zzzzzzzzzzzzzzzz"


@pytest.fixture
def board(make_org, make_opening, auth):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Review"))
    people = fill(opening, opening.stages[0], 2)
    auth.login(owner_of(org).email)
    return opening, people


def test_a_partials_error_swaps_nothing_and_shows_as_a_flash(client, board):
    # A panel asked for by htmx (hx-target="#panel"): its 404 is not a page nested in it.
    partial = client.get(MISSING, headers=HX)
    assert partial.status_code == 404
    assert partial.headers["HX-Reswap"] == "none"
    [flash] = flashed(partial)
    assert flash["category"] == "error" and "nothing here" in flash["message"]
    assert "<header" not in partial.text and 'role="alert"' in partial.text

    # A boosted link is a visit: the whole error page, nav and all.
    visit = client.get(MISSING, headers={**HX, "HX-Boosted": "true"})
    assert visit.status_code == 404 and "HX-Reswap" not in visit.headers
    assert "<header" in visit.text and "error-page" in visit.text

    # A boosted form's refusal keeps the page, and what was typed in it.
    posted = client.post(
        f"{MISSING}/notes", data={"body": "Call back"}, headers={**HX, "HX-Boosted": "true"}
    )
    assert posted.status_code == 404 and posted.headers["HX-Reswap"] == "none"


def test_hand_made_board_requests_are_refused_cleanly(client, board):
    opening, people = board
    # Clamped into int4: no event comes after the largest id, nor after -5 (read as 0) on a
    # board whose cards came without events.
    for since in ("9" * 30, "-5"):
        polled = client.get(f"{board_url(opening)}/changes?since={since}", headers=HX)
        assert polled.status_code == 204, since

    for version in ("²", "1" * 30, "9" * 18, "-1"):
        refused = client.post(
            f"{board_url(opening)}/bulk",
            data={
                "action": "move",
                "stage": opening.stages[1].public_id,
                "selected": f"{people[0].public_id}:{version}",
            },
            headers=HX,
        )
        assert refused.status_code == 422, version
        assert "The selection holds a card this board does not know." in refused.text
    db.session.expire_all()
    assert db.session.get(Applicant, people[0].id).stage_id == opening.stages[0].id


def test_a_form_sent_back_asks_for_its_files_again(client, make_org, make_opening, make_question):
    opening = make_opening(make_org("Acme", slug="acme"), name="Driver")
    first = opening.stages[0]
    age = make_question(first, "age", QuestionType.NUMBER, min_value=18, max_value=80)
    cv = make_question(first, "cv", QuestionType.FILE, required=True)
    db.session.commit()
    url = f"/jobs/acme/{opening.slug}"
    cv_field = answers.field_name(cv)
    form = {"name": "Ada", "email": "ada@example.com", answers.field_name(age): "5"}
    response = client.post(
        url,
        data={**form, cv_field: (io.BytesIO(PDF), "my cv.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Enter a number between 18 and 80." in response.text
    # The file was fine, but a browser cannot put it back: the field says so.
    assert (
        f'<p class="error" id="{cv_field}-error">Attach my cv.pdf again: a form sent back for '
        "corrections cannot keep its files.</p>"
    ) in response.text
    assert 'data-max-mb="10"' in response.text and "up to 10 MB." in response.text
    assert db.session.scalar(select(func.count()).select_from(Applicant)) == 0

    # A file that was itself refused keeps its own message.
    exe = b"MZ" + b"\x00" * 64
    response = client.post(
        url,
        data={**form, cv_field: (io.BytesIO(exe), "cv.pdf")},
        content_type="multipart/form-data",
    )
    assert "The file&#39;s content does not match its name (.pdf)." in response.text
    assert "again" not in response.text.split(f'id="{cv_field}-error"')[1].split("</p>")[0]


def test_an_applicants_error_page_keeps_the_public_frame(client):
    missing = client.get("/jobs/no-such-org")
    assert missing.status_code == 404 and "There is no job board here." in missing.text
    assert "public-nav" in missing.text and "Log in" not in missing.text
    # Elsewhere, the recruiters' frame.
    assert "Log in" in client.get("/no-such-page").text


def test_select_all_refuses_a_filter_that_no_longer_applies(
    client, board, make_question, make_applicant
):
    opening, people = board
    city = make_question(opening.stages[0], "city", QuestionType.SINGLE_CHOICE, options=["Porto"])
    db.session.commit()
    boards_filter = {"answer": f"{city.public_id}:Porto"}
    # A colleague renames the option the board was filtered on: "all in this stage" would
    # otherwise mean every card of the stage.
    city.options = ["Oporto"]
    db.session.commit()
    refused = client.post(
        f"{board_url(opening)}/bulk",
        data={
            "action": "reject",
            "reason": "Full",
            "all_in_stage": opening.stages[0].public_id,
            **boards_filter,
        },
        headers=HX,
    )
    assert refused.status_code == 422
    assert "The board&#39;s filter no longer applies" in refused.text
    db.session.expire_all()
    assert {db.session.get(Applicant, p.id).status for p in people} == {"active"}


def test_hand_made_search_cursor_and_url_are_refused_cleanly(client, board, make_org):
    opening, people = board
    for query in ("q=%00", "tag=a%00b"):
        page = client.get(f"{board_url(opening)}?{query}")
        assert page.status_code == 422 and 'class="error" id="board-' in page.text, query
    # An older-events link with an id past what the database holds.
    forged = base64.urlsafe_b64encode(b"2030-01-01T00:00:00+00:00|99999999999999999999")
    applicant = f"/applicants/{people[0].public_id}"
    page = client.get(f"{applicant}?before={forged.decode()}")
    assert page.status_code == 400 and "older events is not valid" in page.text
    older = client.get(f"{applicant}/timeline?before={forged.decode()}", headers=HX)
    assert older.status_code == 400 and "older events is not valid" in older.text
    # A webhook URL with a broken [host] is a message beside the field, not a failure.
    added = client.post(
        "/settings/webhooks/new",
        data={"url": "http://[::1", "event_types": ["applicant.moved"]},
    )
    assert added.status_code == 422 and "check the host" in added.text


def test_an_older_events_cursor_past_the_largest_id_is_invalid():
    from plutomi.services import timeline
    from plutomi.services.errors import Invalid

    good = base64.urlsafe_b64encode(b"2030-01-01T00:00:00+00:00|42").decode()
    assert timeline.parse_cursor(good)[1] == 42
    for event_id in (b"99999999999999999999", b"0", b"-3"):
        raw = base64.urlsafe_b64encode(b"2030-01-01T00:00:00+00:00|" + event_id).decode()
        with pytest.raises(Invalid):
            timeline.parse_cursor(raw)


def test_a_partials_error_keeps_the_flashes_waiting_beside_it(client, board):
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Moved 2 applicants.")]
    partial = client.get(MISSING, headers=HX)
    assert [f["message"][:11] for f in flashed(partial)] == ["There is no", "Moved 2 app"]
