"""From an empty org to a recruiter reading an application, in a real browser: build and publish
an opening, apply from the job board with a file, continue from the emailed link, and read it
all on the applicant page."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import Applicant, Opening, Org
from plutomi.services import openings
from tests.browser.helpers import mark_page, same_page
from tests.browser.test_onboarding import sign_up
from tests.conftest import PASSWORD

RECRUITER_EMAIL = "rita@example.com"
APPLICANT_EMAIL = "ann.applicant@example.net"
PORTAL_LINK = re.compile(r"https?://\S+/portal/[A-Za-z0-9_-]+")
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def stage_names(opening_id: int) -> list[str]:
    db.session.expire_all()
    return [s.name for s in openings.stages_of(db.session.get(Opening, opening_id))]


def stage_input(page: Page, n: int):
    return page.locator("#stage-list > li").nth(n).locator("input[name=name]")


def add_question(
    page: Page,
    stage: str,
    label: str,
    kind: str,
    *,
    required: bool = False,
    options: str = "",
    minimum: str = "",
) -> None:
    page.get_by_role("link", name=f"Add a question to {stage}").click()
    form = page.locator("#question-form")
    form.get_by_label("Question", exact=True).fill(label)
    form.get_by_label("Type").select_option(label=kind)
    if required:
        form.get_by_label("Required").check()
    if options:
        form.get_by_label("Options").fill(options)
    if minimum:
        form.get_by_label("Minimum").fill(minimum)
    form.get_by_role("button", name="Add question").click()
    item = page.locator("#stages .question-item", has_text=label)
    expect(item).to_be_visible()
    expect(page.locator("#question-form")).to_have_count(0)


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    # PLUTOMI_SCREENSHOTS=<folder> keeps them for a look; otherwise they go with tmp_path.
    folder = Path(os.environ.get("PLUTOMI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"{name}.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 0


def test_build_publish_apply_continue_and_read_the_application(
    new_context, live_server, smtp_server, run_jobs, make_opening, tmp_path
):
    # --- the recruiter builds the opening ------------------------------------------------
    recruiter = new_context().new_page()
    sign_up(recruiter, "Rita Recruiter", RECRUITER_EMAIL, PASSWORD, "Acme Couriers")
    expect(recruiter).to_have_url(re.compile(r"/openings$"))
    recruiter.get_by_label("Name").fill("Night Courier")
    recruiter.get_by_role("button", name="Create opening").click()
    expect(recruiter).to_have_url(re.compile(r"/openings/\w+/edit$"))
    opening = db.session.scalar(select(Opening).where(Opening.name == "Night Courier"))
    org = db.session.get(Org, opening.org_id)

    mark_page(recruiter)
    for name in ("Documents", "Questionnaire", "Final Review"):
        recruiter.get_by_label("New stage").fill(name)
        recruiter.get_by_role("button", name="Add stage").click()
        expect(recruiter.locator(f'#stage-list input[name=name][value="{name}"]')).to_have_count(1)
    expect(recruiter.locator("#stage-list > li")).to_have_count(3)

    # Drag Questionnaire by its handle above Documents: applicants start in the first stage.
    handles = recruiter.locator("#stage-list > li > .stage-head > .drag-handle")
    # Sortable moves the item at once; wait for the server to have saved the new order.
    with recruiter.expect_response(
        lambda r: r.url.endswith("/stages/order") and r.request.method == "POST"
    ) as saved:
        handles.nth(1).drag_to(
            recruiter.locator("#stage-list > li").nth(0), target_position={"x": 5, "y": 5}
        )
    assert saved.value.status == 200
    expect(stage_input(recruiter, 0)).to_have_value("Questionnaire")
    expect(stage_input(recruiter, 1)).to_have_value("Documents")
    assert stage_names(opening.id) == ["Questionnaire", "Documents", "Final Review"]
    # The keyboard way does the same, there and back.
    recruiter.get_by_role("button", name="Move Final Review up").click()
    expect(stage_input(recruiter, 1)).to_have_value("Final Review")
    assert stage_names(opening.id) == ["Questionnaire", "Final Review", "Documents"]
    recruiter.get_by_role("button", name="Move Final Review down").click()
    expect(stage_input(recruiter, 2)).to_have_value("Final Review")
    assert stage_names(opening.id) == ["Questionnaire", "Documents", "Final Review"]

    add_question(recruiter, "Questionnaire", "Home town", "Short text", required=True)
    add_question(
        recruiter,
        "Questionnaire",
        "Vehicle",
        "Single choice",
        required=True,
        options="Bike\nCar\nVan",
    )
    add_question(recruiter, "Questionnaire", "Years of driving", "Number", minimum="0")
    add_question(recruiter, "Questionnaire", "Driving licence", "File", required=True)
    # Optional, and left for the portal: the applicant answers it after applying.
    add_question(recruiter, "Questionnaire", "Anything else we should know", "Long text")
    add_question(recruiter, "Documents", "Insurance certificate", "File", required=True)
    assert same_page(recruiter)

    recruiter.locator("#opening").get_by_role("button", name="Publish").click()
    expect(recruiter.locator("#opening h1 .badge")).to_have_text("published")

    # Another published opening of the org, for the search to leave out.
    make_opening(org, "Warehouse Picker")

    # --- the applicant finds it on the job board and applies --------------------------------
    applicant = new_context().new_page()
    applicant.goto(f"/jobs/{org.slug}")
    expect(applicant.get_by_role("heading", name="Jobs at Acme Couriers")).to_be_visible()
    jobs = applicant.locator("#results .job")
    expect(jobs).to_have_count(2)
    applicant.get_by_label("Search openings").press_sequentially("courier")
    expect(jobs).to_have_count(1)
    expect(applicant).to_have_url(re.compile(r"[?&]q=courier"))
    jobs.get_by_role("heading", name="Night Courier").click()
    expect(applicant.get_by_role("heading", name="Night Courier")).to_be_visible()

    licence = tmp_path / "licence.pdf"
    licence.write_bytes(PDF)
    applicant.get_by_label("Your name").fill("Ann Applicant")
    applicant.get_by_label("Your email").fill(APPLICANT_EMAIL)
    applicant.get_by_label("Home town").fill("Leeds")
    applicant.get_by_label("Car").check()
    applicant.get_by_label("Years of driving").fill("7")
    # The file field says what it takes, and a file over the limit is refused as it is
    # chosen, beside the field, before any of it is sent.
    expect(applicant.get_by_text("PDF, PNG, JPEG, WEBP, DOCX or TXT, up to 10 MB.")).to_be_visible()
    big = tmp_path / "scan.pdf"
    big.write_bytes(PDF + b"0" * (10 * 1024 * 1024))
    applicant.get_by_label("Driving licence").set_input_files(big)
    too_large = applicant.get_by_role("alert")
    expect(too_large).to_have_text("scan.pdf is larger than 10 MB. Choose a smaller file.")
    expect(applicant.get_by_label("Driving licence")).to_have_attribute("aria-invalid", "true")
    assert applicant.get_by_label("Driving licence").evaluate("input => input.files.length") == 0
    applicant.get_by_label("Driving licence").set_input_files(licence)
    expect(too_large).to_have_count(0)
    applicant.get_by_role("button", name="Send my application").click()
    expect(applicant.get_by_role("heading", name="Thank you, Ann Applicant")).to_be_visible()

    # --- the confirmation, through the outbox and the real SMTP server ----------------------
    assert run_jobs() == 0
    mails = smtp_server.to(APPLICANT_EMAIL)
    assert len(mails) == 1
    assert mails[0]["Subject"] == "We received your application for Night Courier"
    body = mails[0].get_payload(decode=True).decode(mails[0].get_content_charset() or "utf-8")
    link = PORTAL_LINK.search(body).group(0)
    assert link.startswith(live_server)

    # The link alone opens the application: a browser that never applied.
    portal = new_context().new_page()
    portal.goto(link)
    portal.get_by_role("button", name="Continue to my application").click()
    expect(portal).to_have_url(re.compile(r"/portal$"))
    expect(portal.get_by_role("heading", name="Your application")).to_be_visible()
    remaining = portal.locator(".remaining .portal-question")
    expect(remaining).to_have_count(1)
    mark_page(portal)
    question = remaining.first
    question.get_by_label("Anything else we should know").fill("I know the city\nby night.")
    question.get_by_role("button", name="Save").click()
    expect(question.get_by_role("status").first).to_have_text("Saved")
    expect(question).to_contain_text("You have answered everything this step needs")
    assert same_page(portal)
    # Their own file downloads from the portal (a real download, not a boosted page swap).
    with portal.expect_download() as own:
        portal.get_by_role("link", name="licence.pdf").click()
    assert Path(own.value.path()).read_bytes() == PDF

    # --- the recruiter reads it --------------------------------------------------------------
    recruiter.get_by_role("link", name="Openings").click()
    recruiter.get_by_role("link", name=re.compile("Night Courier")).click()
    expect(recruiter.get_by_role("heading", name="Questionnaire")).to_be_visible()
    column = recruiter.locator(".card.stage", has_text="Questionnaire")
    expect(column.locator(".count")).to_have_text("1 applicant")
    expect(column.get_by_role("link", name="Ann Applicant")).to_be_visible()
    screenshot(recruiter, tmp_path, "opening-overview")
    column.get_by_role("link", name="Ann Applicant").click()

    expect(recruiter.get_by_role("heading", name="Ann Applicant")).to_be_visible()
    row = db.session.scalar(select(Applicant).where(Applicant.email == APPLICANT_EMAIL))
    expect(recruiter).to_have_url(re.compile(rf"/applicants/{row.public_id}$"))
    facts = recruiter.locator(".applicant-facts")
    expect(facts).to_contain_text(APPLICANT_EMAIL)
    expect(facts).to_contain_text("Questionnaire")
    expect(facts.locator(".time-in-stage")).to_have_text("less than a minute")
    expect(facts).to_contain_text("Active")
    answers = recruiter.locator("#answers-" + db.session.get(Applicant, row.id).stage.public_id)
    for label, value in (
        ("Home town", "Leeds"),
        ("Vehicle", "Car"),
        ("Years of driving", "7"),
        ("Driving licence", "licence.pdf"),
        ("Anything else we should know", "I know the city\nby night."),
    ):
        expect(answers.locator("dt", has_text=label)).to_have_count(1)
        expect(
            answers.locator("dt", has_text=label).locator("xpath=following-sibling::dd[1]")
        ).to_contain_text(value)
    screenshot(recruiter, tmp_path, "applicant-page")

    file_link = answers.get_by_role("link", name="licence.pdf")
    with recruiter.expect_download() as download:
        file_link.click()
    assert download.value.suggested_filename == "licence.pdf"
    assert Path(download.value.path()).read_bytes() == PDF
    # And with the recruiter's session, the same URL answers the same bytes.
    response = recruiter.context.request.get(file_link.get_attribute("href"))
    assert response.status == 200
    assert response.body() == PDF
    # Not for the applicant's session, nor anyone else: the recruiter's URL is members only.
    other = portal.context.request.get(file_link.get_attribute("href"), max_redirects=0)
    assert other.status in (302, 404)
