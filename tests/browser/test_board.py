"""The stage board in a real browser: dragging between and within columns, a refused stale
drag, live updates from a colleague, the keyboard "move to" form, bulk moves and the filter."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Locator, Page, expect

from plutomi import ranks
from plutomi.extensions import db
from plutomi.models import Applicant, Opening, Org, Stage
from plutomi.services import openings
from tests.browser.helpers import log_in, mark_page, same_page, settled
from tests.conftest import owner_of

# The live poll runs every 4 s; a change shows within one poll plus the request.
LIVE_TIMEOUT = 9_000


@dataclass
class Board:
    org: Org
    opening: Opening
    applied: Stage
    screen: Stage
    interview: Stage
    people: dict[str, Applicant]

    @property
    def url(self) -> str:
        return f"/openings/{self.opening.public_id}/board"

    def id(self, name: str) -> str:
        return self.people[name].public_id


@pytest.fixture
def board(make_org, make_opening, make_applicant) -> Board:
    org = make_org("Acme")
    opening = make_opening(org, "Night Courier", stages=("Applied", "Screen", "Interview"))
    applied, screen, interview = openings.stages_of(opening)
    people = {}
    for stage, names in ((applied, ("Ada", "Ben", "Cleo", "Dev")), (screen, ("Eve",))):
        for name, rank in zip(names, ranks.spread(len(names)), strict=True):
            applicant = make_applicant(opening, stage, name=f"{name} Courier")
            applicant.rank = rank  # the factory gives every card the same rank
            people[name] = applicant
    db.session.commit()
    return Board(org, opening, applied, screen, interview, people)


def open_board(page: Page, b: Board, query: str = "") -> Page:
    page.goto(b.url + query)
    # board.js has made every column sortable.
    expect(page.locator(".cards[data-sortable]")).to_have_count(3)
    return page


def cards(page: Page, stage: Stage) -> Locator:
    return page.locator(f"#cards-{stage.public_id} > .board-card .card-name")


def count(page: Page, stage: Stage) -> Locator:
    return page.locator(f"#count-{stage.public_id}")


def card(page: Page, b: Board, name: str) -> Locator:
    return page.locator(f"#card-{b.id(name)}")


def is_move(response) -> bool:
    return response.url.endswith("/board/move") and response.request.method == "POST"


def drag(source: Locator, target: Locator, *, above: bool = True) -> None:
    """Drag a card by its meta line (not its link, checkbox or form, which SortableJS leaves
    alone) onto the upper or lower part of another card or an empty column."""
    card_box = source.bounding_box()
    grip = source.locator(".card-meta").bounding_box()
    goal = target.bounding_box()
    source.drag_to(
        target,
        source_position={
            "x": card_box["width"] - 12,
            "y": grip["y"] - card_box["y"] + grip["height"] / 2,
        },
        target_position={"x": goal["width"] / 2, "y": goal["height"] * (0.25 if above else 0.75)},
    )


def open_menu(page: Page, b: Board, name: str) -> Locator:
    """The card's "move to" form, fetched by its button; the stage list takes the focus."""
    card(page, b, name).get_by_role("button", name=f"Move {name} Courier to another stage").click()
    select = card(page, b, name).get_by_label(f"Move {name} Courier to", exact=True)
    expect(select).to_be_focused()
    return select


def move_with_menu(page: Page, b: Board, name: str, stage: str) -> None:
    open_menu(page, b, name).select_option(label=stage)
    form = card(page, b, name).locator("form.move-to")
    with page.expect_response(is_move) as answer:
        form.get_by_role("button", name="Move").click()
    assert answer.value.status == 200


def test_drag_a_card_to_another_column(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    expect(count(page, b.applied)).to_have_text("4")
    expect(count(page, b.screen)).to_have_text("1")

    with page.expect_response(is_move) as answer:
        drag(card(page, b, "Ada"), card(page, b, "Eve"))
    assert answer.value.status == 200
    expect(count(page, b.applied)).to_have_text("3")
    expect(count(page, b.screen)).to_have_text("2")
    expect(cards(page, b.screen)).to_have_text(["Ada Courier", "Eve Courier"])
    expect(card(page, b, "Ada")).to_have_attribute("data-stage", b.screen.public_id)

    page.reload()
    expect(cards(page, b.applied)).to_have_text(["Ben Courier", "Cleo Courier", "Dev Courier"])
    expect(cards(page, b.screen)).to_have_text(["Ada Courier", "Eve Courier"])
    expect(count(page, b.screen)).to_have_text("2")

    page.goto(f"/applicants/{b.id('Ada')}")
    expect(page.locator("#timeline")).to_contain_text("Moved from Applied to Screen")


def test_the_board_reached_by_links_after_logging_in_drags_too(new_context, board):
    """The way people arrive: log in and follow links, every step a boosted swap of the body.
    The board's script must set up dragging, and the token must be the new session's."""
    b = board
    page = log_in(new_context, owner_of(b.org).email)
    settled(page)
    page.get_by_role("link", name=re.compile("Night Courier")).first.click()
    settled(page)
    page.get_by_role("link", name="Open the board").click()
    expect(page).to_have_url(re.compile(r"/board$"))
    expect(page.locator(".cards[data-sortable]")).to_have_count(3)
    with page.expect_response(is_move) as answer:
        drag(card(page, b, "Ada"), card(page, b, "Eve"))
    assert answer.value.status == 200
    expect(count(page, b.screen)).to_have_text("2")


def test_drag_within_a_column_keeps_the_order(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    with page.expect_response(is_move) as answer:
        drag(card(page, b, "Cleo"), card(page, b, "Ada"))
    assert answer.value.status == 200
    order = ["Cleo Courier", "Ada Courier", "Ben Courier", "Dev Courier"]
    expect(cards(page, b.applied)).to_have_text(order)
    expect(count(page, b.applied)).to_have_text("4")

    page.reload()
    expect(cards(page, b.applied)).to_have_text(order)

    # And down again, between two cards.
    with page.expect_response(is_move):
        drag(card(page, b, "Cleo"), card(page, b, "Ben"), above=False)
    order = ["Ada Courier", "Ben Courier", "Cleo Courier", "Dev Courier"]
    expect(cards(page, b.applied)).to_have_text(order)
    page.reload()
    expect(cards(page, b.applied)).to_have_text(order)


def test_a_stale_drag_is_refused_and_the_columns_redrawn(new_context, make_member, board):
    b = board
    first = open_board(log_in(new_context, owner_of(b.org).email), b)
    # The first board's poll brings nothing, as if it had not polled yet: it keeps showing
    # Ben in Applied after the second recruiter moved him.
    first.route("**/board/changes*", lambda route: route.fulfill(status=204))
    second = open_board(log_in(new_context, make_member(b.org).email), b)

    move_with_menu(second, b, "Ben", "Interview")
    expect(cards(second, b.interview)).to_have_text(["Ben Courier"])

    expect(cards(first, b.applied)).to_have_count(4)
    with first.expect_response(is_move) as answer:
        drag(card(first, b, "Ben"), card(first, b, "Eve"))
    assert answer.value.status == 409
    expect(first.locator("#flashes")).to_contain_text("moved or changed by someone else")
    expect(cards(first, b.screen)).to_have_text(["Eve Courier"])
    expect(cards(first, b.interview)).to_have_text(["Ben Courier"])
    expect(count(first, b.screen)).to_have_text("1")
    expect(count(first, b.interview)).to_have_text("1")
    expect(cards(first, b.applied)).to_have_text(["Ada Courier", "Cleo Courier", "Dev Courier"])
    expect(count(first, b.applied)).to_have_text("3")
    # The redrawn columns are sortable again (board.js, once htmx has set them up).
    expect(first.locator(".cards[data-sortable]")).to_have_count(3)
    # The redrawn card carries the new version: moving it now works.
    with first.expect_response(is_move) as answer:
        drag(card(first, b, "Ben"), card(first, b, "Eve"))
    assert answer.value.status == 200
    expect(cards(first, b.screen)).to_have_text(["Ben Courier", "Eve Courier"])


def test_a_colleagues_move_shows_without_a_reload(new_context, make_member, board):
    b = board
    first = open_board(log_in(new_context, owner_of(b.org).email), b)
    second = open_board(log_in(new_context, make_member(b.org).email), b)
    mark_page(first)

    # The "move to" form puts Dev at the top of Screen; the first board files it there.
    move_with_menu(second, b, "Dev", "Screen")
    expect(cards(first, b.screen)).to_have_text(
        ["Dev Courier", "Eve Courier"], timeout=LIVE_TIMEOUT
    )
    expect(count(first, b.screen)).to_have_text("2")
    expect(count(first, b.applied)).to_have_text("3")
    expect(cards(first, b.applied)).to_have_text(["Ada Courier", "Ben Courier", "Cleo Courier"])
    assert same_page(first)


def test_move_to_with_the_keyboard_only(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    opener = card(page, b, "Cleo").get_by_role("button", name="Move Cleo Courier to another stage")
    opener.focus()
    # Enter opens the menu, which takes the focus.
    page.keyboard.press("Enter")
    select = card(page, b, "Cleo").get_by_label("Move Cleo Courier to", exact=True)
    expect(select).to_be_focused()
    # Applied -> Screen -> Interview.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(select).to_have_value(b.interview.public_id)
    page.keyboard.press("Tab")
    button = card(page, b, "Cleo").get_by_role("button", name="Move")
    expect(button).to_be_focused()
    live = page.locator("#board-live")
    cursor = live.get_attribute("hx-get")
    with page.expect_response(is_move) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(cards(page, b.interview)).to_have_text(["Cleo Courier"])
    expect(count(page, b.interview)).to_have_text("1")
    expect(count(page, b.applied)).to_have_text("3")
    # The focus follows the card to its new column, and stays when the live poll files the
    # card again (asked for now instead of waiting for the interval).
    expect(button).to_be_focused()
    page.evaluate("htmx.trigger(document.body, 'board-poll')")
    expect(live).not_to_have_attribute("hx-get", cursor)
    expect(button).to_be_focused()

    # Into a column with cards: it lands at the top. Space presses the button too.
    card(page, b, "Ada").get_by_role("button", name="Move Ada Courier to another stage").focus()
    page.keyboard.press("Space")
    select = card(page, b, "Ada").get_by_label("Move Ada Courier to", exact=True)
    expect(select).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(select).to_have_value(b.screen.public_id)
    page.keyboard.press("Tab")
    with page.expect_response(is_move) as answer:
        page.keyboard.press("Space")
    assert answer.value.status == 200
    expect(cards(page, b.screen)).to_have_text(["Ada Courier", "Eve Courier"])
    expect(count(page, b.screen)).to_have_text("2")
    page.reload()
    expect(cards(page, b.screen)).to_have_text(["Ada Courier", "Eve Courier"])
    expect(cards(page, b.interview)).to_have_text(["Cleo Courier"])


def test_bulk_move_a_shift_clicked_range(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    bar = page.locator("#bulk-form")
    expect(bar).to_be_hidden()
    card(page, b, "Ada").get_by_label("Select Ada Courier").click()
    expect(bar).to_be_visible()
    expect(bar.locator(".bulk-count")).to_have_text("1 selected")
    card(page, b, "Cleo").get_by_label("Select Cleo Courier").click(modifiers=["Shift"])
    expect(bar.locator(".bulk-count")).to_have_text("3 selected")
    expect(card(page, b, "Ben").get_by_label("Select Ben Courier")).to_be_checked()
    expect(card(page, b, "Dev").get_by_label("Select Dev Courier")).not_to_be_checked()

    bar.get_by_label("Move to").select_option(label="Interview")
    with page.expect_response(lambda r: r.url.endswith("/board/bulk")) as answer:
        bar.get_by_role("button", name="Move", exact=True).click()
    assert answer.value.status == 200
    expect(page.locator("#bulk-status")).to_contain_text("Moved 3 applicants to Interview")
    expect(cards(page, b.interview)).to_have_text(["Ada Courier", "Ben Courier", "Cleo Courier"])
    expect(cards(page, b.applied)).to_have_text(["Dev Courier"])
    expect(count(page, b.interview)).to_have_text("3")
    expect(bar).to_be_hidden()
    page.reload()
    expect(cards(page, b.interview)).to_have_text(["Ada Courier", "Ben Courier", "Cleo Courier"])


def test_the_search_narrows_the_columns_and_stays_in_the_url(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    mark_page(page)
    page.get_by_label("Search", exact=True).press_sequentially("cle")
    expect(cards(page, b.applied)).to_have_text(["Cleo Courier"])
    expect(cards(page, b.screen)).to_have_count(0)
    expect(count(page, b.applied)).to_have_text("1")
    expect(page).to_have_url(re.compile(r"[?&]q=cle(&|$)"))
    assert same_page(page)

    page.reload()
    expect(page.get_by_label("Search", exact=True)).to_have_value("cle")
    expect(cards(page, b.applied)).to_have_text(["Cleo Courier"])
    expect(cards(page, b.screen)).to_have_count(0)
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()


def test_a_reject_in_the_panel_leaves_the_board_at_once(new_context, board):
    b = board
    page = open_board(log_in(new_context, owner_of(b.org).email), b)
    # No interval poll from here on: what the board shows next came from the reject itself.
    page.evaluate("document.body.classList.add('dragging')")
    panel = page.locator("#panel")
    # Escape closes the panel, and the keyboard is back on the card it was opened from.
    card(page, b, "Ada").locator(".card-name").click()
    expect(panel.get_by_role("heading", name="Ada Courier")).to_be_visible()
    page.keyboard.press("Escape")
    expect(panel).to_be_empty()
    expect(card(page, b, "Ada").locator(".card-name")).to_be_focused()

    card(page, b, "Ben").locator(".card-name").click()
    expect(panel.get_by_role("heading", name="Ben Courier")).to_be_visible()
    panel.get_by_label("Reason", exact=False).fill("No van")
    page.once("dialog", lambda dialog: dialog.accept())  # "Reject Ben Courier?"
    panel.get_by_role("button", name="Reject").click()
    expect(page.locator("#flashes")).to_contain_text("Ben Courier rejected")
    expect(cards(page, b.applied)).to_have_text(["Ada Courier", "Cleo Courier", "Dev Courier"])
    expect(count(page, b.applied)).to_have_text("3")
