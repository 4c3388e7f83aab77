"""The board's pages and htmx answers: columns, moves (swapped card and out-of-band counts),
refusals (409 with the columns redrawn, 429 that changes nothing), pages on scroll, live
changes, bulk actions, the applicant page's actions, and a fixed number of queries."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import Engine, event, func, select

from plutomi.extensions import db
from plutomi.models import Applicant, BulkAction, Membership, Role, Stage, Trigger
from plutomi.services import bulk, moves, openings
from tests.conftest import owner_membership, owner_of
from tests.test_applicant_page import counting_queries
from tests.test_board import column, fill

HX = {"HX-Request": "true"}


@pytest.fixture
def world(make_org, make_opening, auth):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Applied", "Review", "Hired"))
    people = fill(opening, opening.stages[0], 4)
    auth.login(owner_of(org).email)
    return org, opening, people


def board_url(opening) -> str:
    return f"/openings/{opening.public_id}/board"


def poll_url(client, opening) -> str:
    """The live poll's URL, as the board draws it now."""
    page = client.get(board_url(opening)).text
    return html.unescape(re.search(r'id="board-live"\s+hx-get="([^"]+)"', page).group(1))


def test_the_board_shows_columns_counts_and_cards_and_is_linked(client, world):
    _, opening, people = world
    assert board_url(opening) in client.get(f"/openings/{opening.public_id}").text
    page = client.get(board_url(opening))
    assert page.status_code == 200
    shown = page.text
    assert re.findall(r'<h2 id="column-title-\w+">([^<]+)</h2>', shown) == [
        "Applied",
        "Review",
        "Hired",
    ]
    applied, review, _ = opening.stages
    assert re.search(rf'id="count-{applied.public_id}" data-count="4"', shown)
    assert re.search(rf'id="count-{review.public_id}" data-count="0"', shown)
    assert shown.index("Person 000") < shown.index("Person 003")
    assert f'id="card-{people[0].public_id}"' in shown
    assert 'class="move-to-open"' in shown and 'class="card-select"' in shown
    # The stage menu is fetched per card when asked for, not drawn into each card.
    assert '<select name="stage" id="move-' not in shown
    assert f'href="/applicants/{people[0].public_id}"' in shown
    assert "board.js" in shown and "Sortable.min.js" in shown


def test_a_viewer_sees_the_board_but_no_way_to_move(client, auth, world, make_member):
    org, opening, people = world
    viewer = make_member(org, Role.VIEWER)
    auth.logout()
    auth.login(viewer.email)
    shown = client.get(board_url(opening)).text
    assert "Person 000" in shown
    assert "move-to" not in shown and "card-select" not in shown
    menu = client.get(
        f"{board_url(opening)}/move-menu", query_string={"applicant": people[0].public_id}
    )
    assert menu.status_code == 403
    refused = client.post(
        f"{board_url(opening)}/move",
        data={"applicant": people[0].public_id, "stage": opening.stages[1].public_id},
        headers=HX,
    )
    assert refused.status_code == 403
    assert "Recruiter role" in refused.headers["HX-Trigger"]
    assert column(opening.stages[0])[0] == "Person 000"


def test_a_drop_answers_with_the_card_and_both_counts(client, world):
    _, opening, people = world
    applied, review, _ = opening.stages
    answer = client.post(
        f"{board_url(opening)}/move",
        data={"applicant": people[2].public_id, "stage": review.public_id, "version": "1"},
        headers=HX,
    )
    assert answer.status_code == 200
    shown = answer.text
    assert shown.lstrip().startswith(f'<li class="board-card" id="card-{people[2].public_id}"')
    assert 'data-version="2"' in shown
    assert re.search(rf'id="count-{applied.public_id}" data-count="3"[^>]*hx-swap-oob', shown)
    assert re.search(rf'id="count-{review.public_id}" data-count="1"[^>]*hx-swap-oob', shown)
    assert column(review) == ["Person 002"]


def test_every_count_a_move_answers_with_is_the_column_after_it(client, world):
    """The counts come from the stages' counters, read with the applicant before the move and
    adjusted by it: across and within columns, into an empty stage and back."""
    _, opening, people = world
    applied, review, hired = opening.stages
    url = f"{board_url(opening)}/move"
    drops = [
        (people[0], review, {}),
        (people[1], review, {"after": people[0].public_id}),
        (people[0], review, {"after": people[1].public_id}),  # a reorder: one count
        (people[2], hired, {}),
        (people[1], applied, {"before": people[3].public_id}),
        (people[2], review, {"before": people[0].public_id}),
    ]
    for person, stage, where in drops:
        shown = client.post(
            url, data={"applicant": person.public_id, "stage": stage.public_id} | where, headers=HX
        ).text
        shown = dict(re.findall(r'id="count-(\w+)" data-count="(\d+)"[^>]*hx-swap-oob', shown))
        assert stage.public_id in shown and 1 <= len(shown) <= 2, shown
        for stage_id, count in shown.items():
            real = db.session.scalar(
                select(func.count())
                .select_from(Applicant)
                .join(Stage, Stage.id == Applicant.stage_id)
                .where(Applicant.status == "active", Stage.public_id == stage_id)
            )
            assert int(count) == real, (person.name, stage.name, stage_id)
    assert column(review) == ["Person 002", "Person 000"]


def test_a_cards_menu_lists_the_stages_with_the_version_the_board_showed(client, world):
    org, opening, people = world
    applied, review, hired = opening.stages
    url = f"{board_url(opening)}/move-menu"
    shown = client.get(url, query_string={"applicant": people[1].public_id, "version": "1"}).text
    assert re.findall(r'<option value="(\w+)"', shown) == [
        applied.public_id,
        review.public_id,
        hired.public_id,
    ]
    assert f'<option value="{applied.public_id}" selected>' in shown
    assert 'name="version" value="1"' in shown and "autofocus" in shown
    assert f'id="move-submit-{people[1].public_id}"' in shown
    # Moved meanwhile: the menu still carries the board's version, so the move is refused.
    moves.move(owner_membership(org), people[1].public_id, hired.public_id)
    shown = client.get(url, query_string={"applicant": people[1].public_id, "version": "1"}).text
    assert 'name="version" value="1"' in shown
    assert f'<option value="{hired.public_id}" selected>' in shown
    # Another opening's applicant, a malformed id: not found.
    assert client.get(url, query_string={"applicant": "nope"}).status_code == 404
    moves.reject(owner_membership(org), people[2].public_id)
    shown = client.get(url, query_string={"applicant": people[2].public_id}).text
    assert "is rejected" in shown and "<select" not in shown


def test_a_menu_move_puts_the_card_on_top_of_its_new_column(client, world):
    _, opening, people = world
    review = opening.stages[1]
    fill(opening, review, 2, prefix="Rev")
    shown = client.post(
        f"{board_url(opening)}/move",
        data={"applicant": people[0].public_id, "stage": review.public_id, "via": "menu"},
        headers=HX,
    ).text
    assert f'hx-swap-oob="afterbegin:#cards-{review.public_id}"' in shown
    # Drawn with its menu open, so the keyboard focus stays on its Move button.
    assert f'id="move-submit-{people[0].public_id}"' in shown and "autofocus" not in shown
    assert column(review) == ["Person 000", "Rev 000", "Rev 001"]


def test_a_stale_move_is_refused_with_the_columns_redrawn(client, world):
    org, opening, people = world
    applied, review, hired = opening.stages
    member = db.session.scalar(select(Membership).where(Membership.org_id == org.id))
    moves.move(member, people[0].public_id, hired.public_id)  # a colleague was faster
    answer = client.post(
        f"{board_url(opening)}/move",
        data={"applicant": people[0].public_id, "stage": review.public_id, "version": "1"},
        headers=HX,
    )
    assert answer.status_code == 409
    assert "moved or changed by someone else" in answer.headers["HX-Trigger"]
    shown = answer.text
    # Where it was dropped (Review) and where it really is (Hired), redrawn out of band.
    assert f'id="column-{review.public_id}"' in shown and f'id="column-{hired.public_id}"' in shown
    assert f'id="column-{applied.public_id}"' not in shown
    assert shown.count('hx-swap-oob="true"') == 2
    hired_column = shown.split(f'id="column-{hired.public_id}"')[1]
    assert "Person 000" in hired_column
    assert column(review) == []


def test_a_throttled_move_changes_nothing_and_says_when_to_retry(client, world, monkeypatch):
    _, opening, people = world
    monkeypatch.setattr(moves, "MOVES_PER_WINDOW", 1)
    url = f"{board_url(opening)}/move"
    data = {"applicant": people[0].public_id, "stage": opening.stages[1].public_id}
    assert client.post(url, data=data, headers=HX).status_code == 200
    throttled = client.post(url, data={**data, "stage": opening.stages[2].public_id}, headers=HX)
    assert throttled.status_code == 429
    assert throttled.headers["HX-Reswap"] == "none"
    assert 1 <= int(throttled.headers["Retry-After"]) <= moves.MOVE_WINDOW_SECONDS
    assert column(opening.stages[1]) == ["Person 000"]


def test_more_cards_load_by_keyset_under_the_filter(client, world):
    _, opening, _ = world
    review = opening.stages[1]
    fill(opening, review, 55, prefix="Rev")
    shown = client.get(board_url(opening)).text
    more = re.search(r'<li class="more" hx-get="([^"]+)"', shown).group(1).replace("&amp;", "&")
    assert "Rev 049" in shown and "Rev 050" not in shown
    with counting_queries() as statements:
        page = client.get(more, headers=HX).text
    assert re.findall(r"Rev 0(\d\d)</a>", page) == [str(n) for n in range(50, 55)]
    assert 'class="more"' not in page
    # Scrolling asks for it often: the session; the opening with its stages (the column's
    # among them) and board questions; the last card shown, by its public id; the page; its
    # dressing.
    assert len(statements) <= 5, statements
    filtered = client.get(f"{board_url(opening)}?q=rev%2005", headers=HX).text
    assert "Rev 050" in filtered and "Rev 049" not in filtered


def test_a_filter_change_swaps_only_the_columns_and_bad_filters_say_why(client, world):
    _, opening, _ = world
    partial = client.get(
        f"{board_url(opening)}?q=person%20001",
        headers={**HX, "HX-Target": "board-columns"},
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text and "Person 001" in partial.text
    assert "Person 002" not in partial.text
    assert "q=person+001" in partial.text  # the live poll keeps the filter
    bad = client.get(f"{board_url(opening)}?time=forever")
    assert bad.status_code == 422
    assert "Choose a time in stage from the list." in bad.text


def test_the_live_poll_answers_204_or_the_changed_cards(client, world):
    org, opening, people = world
    poll = poll_url(client, opening)
    assert client.get(poll, headers=HX).status_code == 204
    member = db.session.scalar(select(Membership).where(Membership.org_id == org.id))
    moves.move(member, people[1].public_id, opening.stages[2].public_id)
    answer = client.get(poll, headers=HX)
    assert answer.status_code == 200
    inbox = answer.text.split('id="live-inbox"')[1]
    assert f'id="card-{people[1].public_id}"' in inbox
    assert f'data-stage="{opening.stages[2].public_id}"' in inbox
    assert re.search(r'id="board-live" hx-swap-oob="true"', answer.text)


@pytest.mark.parametrize("change", ["add", "rename", "delete", "reorder"])
def test_a_board_drawn_before_its_stages_changed_reloads_on_its_next_poll(client, world, change):
    """Its cards would have no column to go to (or sit in one that is gone)."""
    org, opening, _ = world
    poll = poll_url(client, opening)
    assert client.get(poll, headers=HX).status_code == 204
    owner = db.session.scalar(select(Membership).where(Membership.org_id == org.id))
    _, review, last = opening.stages
    pid = opening.public_id
    if change == "add":
        openings.add_stage(owner, pid, "Onboarding call")
    elif change == "rename":
        openings.rename_stage(owner, pid, review.public_id, "Phone screen")
    elif change == "delete":
        openings.delete_stage(owner, pid, last.public_id, move_to=review.public_id)
    else:
        openings.move_stage(owner, pid, last.public_id, "up")
    answer = client.get(poll, headers=HX)
    assert answer.status_code == 204 and answer.headers["HX-Refresh"] == "true"
    poll = poll_url(client, opening)
    assert "HX-Refresh" not in client.get(poll, headers=HX).headers


def test_bulk_actions_at_once_and_as_a_job_with_progress(client, world, monkeypatch, run_jobs):
    _, opening, people = world
    applied, review, _ = opening.stages
    url = f"{board_url(opening)}/bulk"
    answer = client.post(
        url,
        data={
            "action": "move",
            "stage": review.public_id,
            "selected": [f"{p.public_id}:{p.version}" for p in people[:2]],
        },
        headers=HX,
    )
    assert answer.status_code == 200 and "Moved 2 applicants to Review" in answer.text
    assert "board-redraw" in answer.headers["HX-Trigger"]

    refused = client.post(url, data={"action": "move", "stage": review.public_id}, headers=HX)
    assert refused.status_code == 422 and "Select at least one applicant." in refused.text

    monkeypatch.setattr(bulk, "SYNC_LIMIT", 1)
    answer = client.post(
        url,
        data={"action": "reject", "reason": "Full", "all_in_stage": applied.public_id},
        headers=HX,
    )
    assert answer.status_code == 200 and 'hx-trigger="every 1s"' in answer.text
    action = db.session.scalar(select(BulkAction))
    assert action.total == 2
    assert run_jobs() == 0
    progress = client.get(f"{url}/{action.public_id}", headers=HX)
    assert "Done: rejected 2 of 2" in progress.text
    assert "every 1s" not in progress.text and "board-redraw" in progress.headers["HX-Trigger"]
    assert column(applied) == []


def test_the_applicant_page_moves_rejects_and_restores(client, world):
    _, opening, people = world
    target = people[0]
    url = f"/applicants/{target.public_id}"
    page = client.get(url).text
    assert 'id="applicant-actions"' in page and "Move to" in page
    moved = client.post(f"{url}/move", data={"stage": opening.stages[1].public_id, "version": "1"})
    assert moved.status_code == 303 and moved.headers["Location"] == url
    too_long = client.post(f"{url}/reject", data={"reason": "x" * 501, "version": "2"}, headers=HX)
    assert too_long.status_code == 422
    assert too_long.headers["HX-Retarget"] == "#applicant-actions"
    assert "Keep the reason under 500 characters." in too_long.text
    # A page drawn before someone else moved them: it is drawn again, fresh, with why.
    stale = client.post(f"{url}/reject", data={"reason": "late", "version": "1"}, headers=HX)
    assert stale.status_code == 303 and stale.headers["Location"] == url
    fresh = html.unescape(client.get(url).text)
    assert "moved or changed by someone else meanwhile, so nothing was done" in fresh
    assert opening.stages[1].name in fresh
    assert (
        client.post(f"{url}/reject", data={"reason": "No van", "version": "2"}).status_code == 303
    )
    page = client.get(url).text
    assert "Restore to the board" in page
    assert client.post(f"{url}/restore", data={"version": "3"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Applicant, target.id).status == "active"


def test_the_board_costs_the_same_queries_for_more_stages_and_cards(client, world, make_opening):
    org, small, _ = world
    big = make_opening(org, "Big", stages=tuple(f"Stage {i}" for i in range(8)))
    for stage in big.stages:
        fill(big, stage, 60, prefix=f"S{stage.position}x")
    small_url, big_url = board_url(small), board_url(big)
    with counting_queries() as few:
        assert client.get(small_url).status_code == 200
    with counting_queries() as many:
        assert client.get(big_url).status_code == 200
    # The session; the opening with its stages and board questions; the counts, the first
    # pages, their dressing, the live cursor and the org's tags.
    assert len(many) == len(few) <= 7


def test_a_move_reads_only_what_its_answer_needs(client, world):
    _, opening, people = world
    url = f"{board_url(opening)}/move"
    data = {"applicant": people[0].public_id, "stage": opening.stages[1].public_id}
    client.get(board_url(opening))
    commits = []

    def count_commit(conn) -> None:
        commits.append(conn)

    event.listen(Engine, "commit", count_commit)  # the client's app has its own engine
    try:
        with counting_queries() as statements:
            assert client.post(url, data=data, headers=HX).status_code == 200
    finally:
        event.remove(Engine, "commit", count_commit)
    # The answer's reads run before the move's commit: no transaction is left to end after.
    assert len(commits) == 1, commits
    reads_of_stages = [s for s in statements if "stages.name" in s]
    # The opening's stages, read once with the opening and their rules: the target, the stage
    # it leaves, the rules entering it runs and the menu's list. No reload after the commit.
    assert len(reads_of_stages) == 1, reads_of_stages
    assert reads_of_stages[0].lstrip().startswith("SELECT openings."), reads_of_stages
    # The session with the member and their orgs; the opening with its stages, their rules
    # and its board questions; the applicant with both stages' counters, the top of the
    # column and the card's duplicate flag, answers and tags; the UPDATE and the event, one
    # statement on PostgreSQL (the org's row says it has no webhook endpoints to look up).
    # Nothing is read again after the commit, and the counts come from the counters read
    # before the move.
    assert len(statements) <= (4 if db.engine.dialect.name == "postgresql" else 5), statements
    assert not [s for s in statements if "FROM stage_counts" in s and "moved" not in s]
    assert not [s for s in statements if "applicant_tags" in s and "moved" not in s]
    assert not [s for s in statements if "FROM questions" in s and "openings" not in s]


def test_a_drop_that_a_rule_moves_on_redraws_where_the_card_went(client, world, make_rule):
    _, opening, people = world
    review, hired = opening.stages[1], opening.stages[2]
    make_rule(review, Trigger.STAGE_ENTERED, [{"type": "move", "stage": hired.public_id}])
    with counting_queries() as statements:
        answer = client.post(
            f"{board_url(opening)}/move",
            data={"applicant": people[0].public_id, "stage": review.public_id},
            headers=HX,
        )
    assert answer.status_code == 200
    # The opening's stage list is read once, with the opening (the rule read its target by
    # itself), and the redraw reads no live-poll cursor: a redraw of some columns has no poll.
    listed = [s for s in statements if "stages.name" in s and "ORDER BY stages.position" in s]
    assert len(listed) == 1, listed
    assert not [s for s in statements if "max(events.id)" in s]
    assert f'id="column-{hired.public_id}"' in answer.text
    assert "moved on by a rule of Review" in answer.headers["HX-Trigger"]
    db.session.expire_all()
    assert db.session.get(Applicant, people[0].id).stage_id == hired.id
