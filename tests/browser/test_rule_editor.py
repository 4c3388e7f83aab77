"""The rule editor in a real browser: from the opening editor to a stage's rules, a rule built
from htmx rows, its dry run, and the saved rule's sentence in the list."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import Answer, QuestionType, Rule
from tests.browser.helpers import log_in, mark_page, same_page, settled
from tests.conftest import owner_of


def fields_swapped(response) -> bool:
    return "/rules/condition-fields" in response.url


def test_build_a_rule_with_htmx_rows_and_dry_run_it(
    new_context, make_org, make_opening, make_question, make_applicant
):
    org = make_org("Acme")
    opening = make_opening(org, stages=("Questionnaire", "Waiting List", "Final Review"))
    questionnaire, _, review = opening.stages
    licence = make_question(
        questionnaire, "licence", QuestionType.SINGLE_CHOICE, options=["Car", "Van"], required=True
    )
    for name, value in (("Ada Okafor", "Car"), ("Ben Vance", "Van")):
        applicant = make_applicant(opening, questionnaire, name=name)
        db.session.add(
            Answer(org_id=org.id, applicant_id=applicant.id, question_id=licence.id, value=value)
        )
    db.session.commit()

    page = log_in(new_context, owner_of(org).email)

    page.goto(f"/openings/{opening.public_id}/edit")
    page.get_by_role("link", name="Rules (0) of Questionnaire").click()
    expect(page.get_by_role("heading", name="Rules of Questionnaire")).to_be_visible()
    page.get_by_role("link", name="Add a rule").click()
    expect(page.get_by_role("heading", name="New rule for Questionnaire")).to_be_visible()
    mark_page(page)

    page.get_by_label("Name", exact=True).fill("Car drivers to review")
    page.get_by_label("Trigger", exact=True).select_option("stage_completed")

    # A condition row, fetched by htmx; its inputs follow the question chosen.
    page.get_by_role("button", name="Add condition").click()
    row = page.locator("#condition-0")
    expect(row).to_be_visible()
    settled(page)
    with page.expect_response(fields_swapped):
        row.get_by_label("Question").select_option(label="Licence")
    settled(page)
    value = row.locator("select#conditions-0-value")
    expect(value.locator("option", has_text="Van")).to_have_count(1)
    with page.expect_response(fields_swapped):
        row.get_by_label("Operator").select_option("any_of")
    settled(page)
    expect(row.get_by_role("checkbox", name="Van")).to_be_visible()
    with page.expect_response(fields_swapped):
        row.get_by_label("Operator").select_option("equals")
    settled(page)
    row.locator("select#conditions-0-value").select_option("Car")
    # A second row, removed again: the form comes back with the first row as it was.
    page.get_by_role("button", name="Add condition").click()
    expect(page.locator("#condition-1")).to_be_visible()
    settled(page)
    page.get_by_role("button", name="Remove condition 2").click()
    expect(page.locator("#condition-1")).to_have_count(0)
    expect(page.locator("select#conditions-0-value")).to_have_value("Car")
    settled(page)

    # The first action is there already; a second comes by htmx and changes with its type.
    page.locator("#actions-0-stage").select_option(label="Final Review")
    page.get_by_role("button", name="Add action").click()
    expect(page.locator("#action-1")).to_be_visible()
    settled(page)
    with page.expect_response(lambda r: "/rules/action-fields" in r.url):
        page.locator("#actions-1-type").select_option("webhook")
    settled(page)
    page.locator("#actions-1-event").fill("driver.approved")

    page.get_by_role("button", name="Dry run").click()
    result = page.locator("#dry-run")
    expect(result).to_contain_text("Ada Okafor")
    expect(result.locator(".dry-run-count")).to_have_text("1")
    expect(result).not_to_contain_text("Ben Vance")
    expect(result).to_contain_text("move to Final Review; emit webhook event driver.approved")
    assert db.session.scalar(select(Rule.id)) is None
    # Every step so far was htmx within one page.
    assert same_page(page)

    page.get_by_role("button", name="Save rule").click()
    expect(page).to_have_url(re.compile(r"/stages/\w+/rules#rule-\w+$"))
    expect(page.locator("#rule-list")).to_contain_text(
        "When an applicant completes this stage, if “Licence” is Car, move to Final Review "
        "and emit webhook event driver.approved."
    )
    db.session.expire_all()
    (saved,) = db.session.scalars(select(Rule))
    assert saved.conditions == [{"question": licence.public_id, "op": "equals", "value": "Car"}]
    assert saved.actions == [
        {"type": "move", "stage": review.public_id},
        {"type": "webhook", "event": "driver.approved"},
    ]
