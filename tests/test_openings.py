"""The openings pages of the current org."""

from __future__ import annotations

import re

from plutomi.extensions import db
from plutomi.models import OpeningState
from tests.conftest import owner_of


def test_openings_list_shows_counts_of_the_current_org_only(
    client, auth, make_org, make_opening, make_applicant
):
    org = make_org("Acme")
    other = make_org("Globex")
    opening = make_opening(org, "Summer Camp", stages=("Applied", "Interview", "Placed"))
    draft = make_opening(org, "Winter Camp")
    draft.state = OpeningState.DRAFT
    db.session.commit()
    make_opening(other, "Globex Secret Role")
    for _ in range(3):
        make_applicant(opening)
    auth.login(owner_of(org).email)

    page = client.get("/openings")
    assert page.status_code == 200
    assert "Summer Camp" in page.text
    assert "3 applicants · 3 stages" in page.text
    assert "1 published" in page.text and "1 draft" in page.text
    assert "Globex Secret Role" not in page.text


def test_opening_page_lists_stages_in_order_with_counts(
    client, auth, make_org, make_opening, make_applicant
):
    org = make_org()
    opening = make_opening(org, stages=("Questionnaire", "Waiting List", "Final Review"))
    make_applicant(opening, opening.stages[1])
    make_applicant(opening, opening.stages[1])
    auth.login(owner_of(org).email)

    page = client.get(f"/openings/{opening.public_id}")
    assert page.status_code == 200
    names = re.findall(r"<h2>(.*?)</h2>", page.text)
    assert names == ["Questionnaire", "Waiting List", "Final Review"]
    counts = re.findall(r'<p class="count">(\d+) applicant', page.text)
    assert counts == ["0", "2", "0"]


def test_an_org_with_no_openings_says_so(client, auth, make_org):
    org = make_org()
    auth.login(owner_of(org).email)
    assert "No openings yet" in client.get("/openings").text


def test_anonymous_visitors_are_sent_to_login_and_back(client, make_org, make_opening):
    org = make_org()
    opening = make_opening(org)
    response = client.get(f"/openings/{opening.public_id}")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    htmx = client.get("/openings", headers={"HX-Request": "true"})
    assert htmx.status_code == 204
    assert htmx.headers["HX-Redirect"].startswith("/login?next=")


def test_an_id_with_a_nul_byte_is_a_404_not_a_500(client, auth, make_org):
    org = make_org()
    auth.login(owner_of(org).email)
    assert client.get("/openings/%00").status_code == 404


def test_public_pages_are_linked_from_the_recruiters_pages(client, auth, make_org, make_opening):
    org = make_org()
    opening = make_opening(org, "Summer Camp")
    auth.login(owner_of(org).email)

    index = client.get("/openings").text
    board = f"/jobs/{org.slug}"
    assert f'href="{board}"' in index
    assert f'href="{board}"' in client.get("/settings").text
    assert client.get(board).status_code == 200

    overview = client.get(f"/openings/{opening.public_id}").text
    links = [
        f"/openings/{opening.public_id}/preview",
        f"/jobs/{org.slug}/{opening.slug}",
        f"/jobs/{org.slug}/{opening.slug}/schema.json",
    ]
    for link in links:
        assert f'href="{link}"' in overview, link
        assert client.get(link).status_code == 200, link

    # A draft has no public page or schema to link to; the preview stays.
    opening.state = OpeningState.DRAFT
    db.session.commit()
    overview = client.get(f"/openings/{opening.public_id}").text
    assert f'href="/jobs/{org.slug}/{opening.slug}"' not in overview
    assert f'href="/openings/{opening.public_id}/preview"' in overview
