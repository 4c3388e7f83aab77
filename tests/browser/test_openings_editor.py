"""The opening editor in a real browser: htmx forms, Move up / Move down, and dragging."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Opening
from plutomi.services import openings
from tests.browser.helpers import log_in, mark_page, same_page
from tests.conftest import owner_of


def names(opening_id: int) -> list[str]:
    db.session.expire_all()
    return [s.name for s in openings.stages_of(db.session.get(Opening, opening_id))]


def stage_input(page, n: int):
    return page.locator("#stage-list > li").nth(n).locator("input[name=name]")


def test_build_an_opening_and_reorder_its_stages(new_context, make_org):
    org = make_org("Acme")
    page = log_in(new_context, owner_of(org).email)

    page.get_by_label("Name").fill("Delivery Driver")
    page.get_by_role("button", name="Create opening").click()
    expect(page).to_have_url(re.compile(r"/openings/\w+/edit$"))
    opening = db.session.scalar(select(Opening).where(Opening.name == "Delivery Driver"))

    mark_page(page)
    for name in ("Questionnaire", "Waiting List", "Final Review"):
        page.get_by_label("New stage").fill(name)
        page.get_by_role("button", name="Add stage").click()
        expect(page.locator(f'#stage-list input[name=name][value="{name}"]')).to_have_count(1)
    expect(page.locator("#stage-list > li")).to_have_count(3)

    # A refused name shows next to the field, the page stays.
    page.get_by_label("New stage").fill("questionnaire")
    page.get_by_role("button", name="Add stage").click()
    expect(page.locator("#stage_name-error")).to_contain_text("stage of that name already")

    # The keyboard way.
    page.get_by_role("button", name="Move Final Review up").click()
    expect(stage_input(page, 1)).to_have_value("Final Review")
    assert names(opening.id) == ["Questionnaire", "Final Review", "Waiting List"]

    # Dragging: the last stage's handle onto the first stage.
    handles = page.locator("#stage-list > li > .stage-head > .drag-handle")
    # Wait for the server's answer to the drop, not for a flash that may be there already.
    with page.expect_response(lambda r: "/stages/order" in r.url and r.request.method == "POST"):
        handles.nth(2).drag_to(
            page.locator("#stage-list > li").nth(0), target_position={"x": 5, "y": 5}
        )
    expect(stage_input(page, 0)).to_have_value("Waiting List")
    assert names(opening.id) == ["Waiting List", "Questionnaire", "Final Review"]

    # A question through the htmx form.
    page.get_by_role("link", name="Add a question to Questionnaire").click()
    page.get_by_label("Question", exact=True).fill("Full name")
    page.get_by_role("button", name="Add question").click()
    expect(page.locator("#stages code", has_text="full_name")).to_be_visible()
    assert page.locator("section#stages").count() == 1
    assert same_page(page)


def test_a_double_click_makes_one_opening_and_the_keyboard_stays_on_its_control(
    new_context, make_org
):
    org = make_org("Acme")
    page = log_in(new_context, owner_of(org).email)

    # The second click finds the button disabled until the page has moved on.
    page.get_by_label("Name").fill("Night Courier")
    page.get_by_role("button", name="Create opening").dblclick()
    expect(page).to_have_url(re.compile(r"/openings/\w+/edit$"))
    assert db.session.scalar(select(func.count()).where(Opening.name == "Night Courier")) == 1

    for name in ("Applied", "Screen", "Offer"):
        page.get_by_label("New stage").fill(name)
        page.get_by_role("button", name="Add stage").click()
        expect(page.locator(f'#stage-list input[name=name][value="{name}"]')).to_have_count(1)
    # What was said of the last action alone is shown.
    expect(page.locator(".flash")).to_have_count(1)
    expect(page.locator(".flash")).to_contain_text("Offer")

    # Move up by keyboard: after the section is drawn again, the focus is on the same button,
    # and a new stage's name typed meanwhile is still there.
    page.get_by_label("New stage").fill("Onboarding")
    move_up = page.get_by_role("button", name="Move Offer up")
    move_up.focus()
    page.keyboard.press("Enter")
    expect(stage_input(page, 1)).to_have_value("Offer")
    expect(page.get_by_role("button", name="Move Offer up")).to_be_focused()
    expect(page.get_by_label("New stage")).to_have_value("Onboarding")
    page.keyboard.press("Enter")
    expect(stage_input(page, 0)).to_have_value("Offer")
