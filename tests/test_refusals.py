"""Refusals a person meets in the middle of a page: an htmx partial's error swaps nothing and
shows as a flash, a form sent back asks for its files again, and hand-made board requests are
refused without a server error."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Applicant, QuestionType
from plutomi.services import answers
from tests.conftest import owner_of
from tests.test_board import fill
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


def board_url(opening) -> str:
    return f"/openings/{opening.public_id}/board"


def flashed(response) -> list[dict]:
    return json.loads(response.headers["HX-Trigger"])["flash"]


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
    huge = client.get(f"{board_url(opening)}/changes?since={'9' * 30}", headers=HX)
    assert huge.status_code in (200, 204)
    assert client.get(f"{board_url(opening)}/changes?since=-5", headers=HX).status_code in (
        200,
        204,
    )

    for version in ("²", "1" * 30, "-1"):
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
