"""The recruiter's read-only applicant page, and the applicants listed on an opening's overview."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.datastructures import FileStorage

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Org,
    Question,
    QuestionType,
    Role,
    Stage,
    utcnow,
)
from plutomi.services import answers, applicants, applications, display, timeline, uploads
from tests.conftest import owner_of

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@contextmanager
def counting_queries() -> Iterator[list[str]]:
    """Every SQL statement any engine runs inside the block (the app serving the test client
    has an engine of its own, so listen on all of them)."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def add_question(stage, key: str, kind: QuestionType = QuestionType.SHORT_TEXT, **fields):
    question = Question(
        org_id=stage.org_id,
        opening_id=stage.opening_id,
        stage_id=stage.id,
        key=key,
        type=kind,
        label=fields.pop("label", key.replace("_", " ").capitalize()),
        position=fields.pop("position", 0),
        **fields,
    )
    db.session.add(question)
    db.session.flush()
    return question


def answer(applicant: Applicant, question: Question, value) -> None:
    db.session.add(
        Answer(
            org_id=applicant.org_id,
            applicant_id=applicant.id,
            question_id=question.id,
            value=value,
        )
    )


def attach(applicant: Applicant, question: Question, content: bytes = PDF, name="licence.pdf"):
    given = FileStorage(io.BytesIO(content), filename=name)
    upload = uploads.store(applicant, question, uploads.check(question, given))
    answer(applicant, question, upload.public_id)
    return upload


@pytest.fixture
def world(make_org, make_opening, make_applicant):
    """A three-stage opening and an applicant in its second stage who answered the first two."""
    org = make_org("Acme")
    opening = make_opening(org, "Delivery Driver", stages=("Questionnaire", "Documents", "Review"))
    first, second, third = opening.stages
    q = {
        "city": add_question(first, "city", QuestionType.SINGLE_CHOICE, options=["Leeds", "York"]),
        "days": add_question(
            first, "days", QuestionType.MULTI_CHOICE, options=["Mon", "Tue", "Wed"], position=1
        ),
        "licence": add_question(first, "has_licence", QuestionType.YES_NO, position=2),
        "start": add_question(first, "start", QuestionType.DATE, position=3),
        "old": add_question(first, "old_question", label="Favourite colour", position=4),
        "years": add_question(second, "years", QuestionType.NUMBER, position=0),
        "file": add_question(second, "licence_scan", QuestionType.FILE, position=1),
        "about": add_question(second, "about", QuestionType.LONG_TEXT, position=2),
        "later": add_question(third, "later", position=0),
    }
    applicant = make_applicant(opening, second, name="Ada Okafor")
    applicant.entered_stage_at = utcnow() - timedelta(days=3, hours=5)
    answer(applicant, q["city"], "York")
    answer(applicant, q["days"], ["Mon", "Wed"])
    answer(applicant, q["licence"], True)
    answer(applicant, q["start"], "2025-03-31")
    answer(applicant, q["old"], "Teal")
    answer(applicant, q["years"], 12)
    answer(applicant, q["about"], "Line one\nLine two")
    upload = attach(applicant, q["file"])
    q["old"].archived_at = utcnow()
    db.session.commit()
    return org, opening, applicant, q, upload


def login(auth, user) -> None:
    assert auth.login(user.email).status_code == 302


def answer_section(html: str) -> str:
    return html.split('id="answers"')[1].split('id="files"')[0]


def sections(html: str) -> list[str]:
    return re.findall(r'<div class="stage-answers" id="answers-\w+">\s*<h3>([^<]+)', html)


def test_the_page_shows_who_where_and_every_answer_by_stage(client, auth, world):
    org, opening, applicant, _, upload = world
    login(auth, owner_of(org))

    page = client.get(f"/applicants/{applicant.public_id}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Ada Okafor" in html
    assert applicant.email in html
    assert f'href="/openings/{opening.public_id}">Delivery Driver</a>' in html
    assert "Documents" in html and "(stage 2 of 3)" in html
    assert re.search(r'class="time-in-stage"><time [^>]*>3 days</time>', html)
    assert '<span class="badge status-active">Active</span>' in html

    # Grouped by stage, in the stages' order; the third stage has no answers and is left out.
    assert [name.strip() for name in sections(html)] == ["Questionnaire", "Documents"]
    first, second = html.split('class="stage-answers"')[1:3]
    labels = re.findall(r"<dt>([^<]+)", first)
    assert [label.strip() for label in labels] == [
        "City",
        "Days",
        "Has licence",
        "Start",
        "Favourite colour",
    ]
    assert "<dd>York</dd>" in first
    assert "<dd>Mon, Wed</dd>" in first
    assert "<dd>Yes</dd>" in first
    assert "<dd>31 March 2025</dd>" in first
    # An archived question keeps its answer, marked as removed.
    assert re.search(
        r"Favourite colour <span [^>]*>\(question removed\)</span></dt>\s*<dd>Teal", first
    )
    assert "current stage" in second
    assert "<dd>12</dd>" in second
    assert '<span class="plain-text">Line one\nLine two</span>' in second

    # The file, as a download link for members, both by its answer and in the files list.
    link = f'href="/files/{upload.public_id}" hx-boost="false" download>licence.pdf</a>'
    assert link in second
    assert html.count(link) == 2
    download = client.get(f"/files/{upload.public_id}")
    assert download.status_code == 200
    assert download.data == PDF


def test_a_withdrawn_applicant_is_clearly_shown_as_such_with_the_reason(client, auth, world):
    org, _, applicant, _, _ = world
    applications.withdraw(applicant, "Found another job")
    login(auth, owner_of(org))

    html = client.get(f"/applicants/{applicant.public_id}").text
    assert '<span class="badge status-withdrawn">Withdrawn</span>' in html
    assert "<strong>Withdrawn.</strong> Ada Okafor withdrew this application" in html
    assert "Their reason: Found another job" in html


def test_a_replaced_file_stays_listed_but_marked(client, auth, world):
    org, _, applicant, q, first = world
    given = FileStorage(io.BytesIO(b"%PDF-1.4\nv2\n%%EOF"), filename="v2.pdf")
    newer = uploads.store(applicant, q["file"], uploads.check(q["file"], given))
    answers.write(applicant, q["file"], newer.public_id)
    db.session.commit()
    login(auth, owner_of(org))

    html = client.get(f"/applicants/{applicant.public_id}").text
    files = html.split('id="files"')[1]
    assert f'/files/{first.public_id}" hx-boost="false" download>licence.pdf</a>' in files
    assert f'/files/{newer.public_id}" hx-boost="false" download>v2.pdf</a>' in files
    assert files.count("replaced") == 1
    answered = answer_section(html)
    assert newer.public_id in answered and first.public_id not in answered


def test_another_orgs_member_gets_a_404_and_anonymous_visitors_log_in(
    app, client, auth, world, make_org
):
    _, _, applicant, _, _ = world
    other = make_org("Globex")
    login(auth, owner_of(other))
    for url in (f"/applicants/{applicant.public_id}", "/applicants/nosuchapplicant1"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Ada Okafor" not in response.text

    anonymous = app.test_client().get(f"/applicants/{applicant.public_id}")
    assert anonymous.status_code == 302
    assert anonymous.location.startswith("/login?next=")


def test_a_viewer_can_read_the_page(client, auth, world, make_member):
    org, _, applicant, _, upload = world
    login(auth, make_member(org, Role.VIEWER))
    page = client.get(f"/applicants/{applicant.public_id}")
    assert page.status_code == 200
    assert "<dd>York</dd>" in page.text
    assert client.get(f"/files/{upload.public_id}").status_code == 200


def test_the_query_count_does_not_grow_with_the_answers(client, auth, world, make_applicant):
    org, opening, _, _, _ = world
    first = opening.stages[0]
    questions = [
        add_question(first, f"extra_{n}", QuestionType.FILE if n % 10 == 0 else QuestionType.NUMBER)
        for n in range(50)
    ]
    few = make_applicant(opening, first, name="Few Answers")
    many = make_applicant(opening, first, name="Many Answers")
    for n, question in enumerate(questions):
        for applicant, upto in ((few, 5), (many, 50)):
            if n >= upto:
                continue
            if question.type == QuestionType.FILE:
                attach(applicant, question, name=f"file-{n}.pdf")
            else:
                answer(applicant, question, n)
    db.session.commit()
    login(auth, owner_of(org))

    counts, pages = {}, {}
    urls = [(a.name, f"/applicants/{a.public_id}") for a in (few, many, few)]
    for name, url in urls:  # few twice: the first request warms nothing up
        with counting_queries() as statements:
            page = client.get(url)
        assert page.status_code == 200
        counts[name], pages[name] = len(statements), page.text
    assert answer_section(pages["Many Answers"]).count("<dt>") == 50
    assert answer_section(pages["Few Answers"]).count("<dt>") == 5
    assert pages["Many Answers"].count('href="/files/') == 2 * 5
    assert counts["Few Answers"] == counts["Many Answers"], counts
    # And the service itself: stages, opening, answers with questions, uploads.
    db.session.expire_all()
    org = db.session.get(Org, org.id)
    for applicant, expected in ((few, 5), (many, 50)):
        applicant = db.session.get(Applicant, applicant.id)
        with counting_queries() as statements:
            profile = applicants.profile(org, applicant)
        assert profile.answer_count == expected
        assert len(statements) <= 4, statements


def test_the_overview_lists_each_stages_first_applicants(
    client, auth, make_org, make_opening, make_applicant
):
    org = make_org()
    opening = make_opening(org, stages=("Questionnaire", "Waiting List", "Final Review"))
    first, second, _ = opening.stages
    for n in range(25):
        applicant = make_applicant(opening, first, name=f"Person {n:02d}")
        # Rank order is not name or insertion order: reversed here.
        applicant.rank = f"i{99 - n:02d}"
    quitter = make_applicant(opening, second, name="Quinn Quitter")
    quitter.status = ApplicantStatus.WITHDRAWN
    quitter.entered_stage_at = datetime.now(UTC) - timedelta(days=2, hours=1)
    db.session.commit()
    login(auth, owner_of(org))
    url = f"/openings/{opening.public_id}"

    with counting_queries() as statements:
        html = client.get(url).text
    # What tests/test_openings.py reads stays as it was.
    assert re.findall(r"<h2>(.*?)</h2>", html) == ["Questionnaire", "Waiting List", "Final Review"]
    assert re.findall(r'<p class="count">(\d+) applicant', html) == ["25", "1", "0"]

    columns = html.split('class="card stage"')[1:]
    names = re.findall(r'<a href="/applicants/\w+">([^<]+)</a>', columns[0])
    assert names == [f"Person {n:02d}" for n in range(24, 4, -1)]  # the first 20 by rank
    # "and 5 more", linked to the board where the rest of the column is.
    assert re.search(r'<p class="more muted small">(<a [^>]*>)?and 5 more\b', columns[0])
    assert re.search(
        rf'<a href="/applicants/{quitter.public_id}">Quinn Quitter</a>\s*'
        r'<span class="badge status-withdrawn">withdrawn</span>\s*'
        r'<span class="muted small" title="Time in this stage">2 days</span>',
        columns[1],
    )
    assert "more</p>" not in columns[1] and "/applicants/" not in columns[2]

    # One query for the applicants of all stages: more stages cost no more queries.
    for name in ("Documents", "Interview", "Offer"):
        db.session.add(Stage(org_id=org.id, opening_id=opening.id, name=name, position=10))
    db.session.commit()
    db.session.refresh(opening)
    for stage in opening.stages[3:]:
        make_applicant(opening, stage, name=f"In {stage.name}")
    with counting_queries() as more_stages:
        html = client.get(url).text
    assert "In Offer" in html
    assert len(more_stages) == len(statements), (len(more_stages), len(statements))


def test_first_by_stage_numbers_rows_per_stage(make_org, make_opening, make_applicant):
    org = make_org()
    opening = make_opening(org, stages=("A", "B"))
    a, b = opening.stages
    for n in range(3):
        make_applicant(opening, a, name=f"a{n}").rank = f"i{n + 1}"
        make_applicant(opening, b, name=f"b{n}").rank = f"i{3 - n}"
    db.session.commit()
    rows = applicants.first_by_stage(opening, limit=2)
    assert [r.name for r in rows[a.id]] == ["a0", "a1"]
    assert [r.name for r in rows[b.id]] == ["b2", "b1"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "less than a minute"),
        (59, "less than a minute"),
        (60, "1 minute"),
        (3 * 3600 + 5, "3 hours"),
        (86400, "1 day"),
        (3 * 86400 + 7 * 3600, "3 days"),
        (400 * 86400, "1 year"),
        (-30, "less than a minute"),  # a clock a little ahead is not an error
    ],
)
def test_duration(seconds, text):
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert display.duration(now - timedelta(seconds=seconds), now) == text


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        (QuestionType.YES_NO, False, "No"),
        (QuestionType.MULTI_CHOICE, ["a", "b"], "a, b"),
        (QuestionType.NUMBER, 2.5, "2.5"),
        (QuestionType.NUMBER, 12000, "12,000"),
        (QuestionType.DATE, "2025-01-05", "5 January 2025"),
        (QuestionType.DATE, "not a date", "not a date"),
        (QuestionType.SHORT_TEXT, "<b>", "<b>"),  # escaped by the template, not here
    ],
)
def test_format_value(kind, value, text):
    assert display.format_value(kind, value) == text


def test_the_query_count_does_not_grow_with_events_notes_or_tags(
    client, auth, world, make_applicant
):
    """The whole page, for an applicant with a long history: its timeline shows one page of
    events, and notes and tags come in one query each however many there are."""
    from plutomi.models import ApplicantTag, Note
    from plutomi.services.events import Actor, record_applicant

    org, opening, _, _, _ = world
    owner = owner_of(org)
    quiet = make_applicant(opening, opening.stages[0], name="Quiet")
    busy = make_applicant(opening, opening.stages[0], name="Busy")
    # The same kinds of history, a little of each and a lot of each.
    for applicant, events, notes, tags in ((quiet, 3, 1, 1), (busy, 300, 30, 4)):
        for _ in range(events):
            record_applicant(
                "applicant.answered", applicant, actor=Actor("user", owner.id), question="q"
            )
        for n in range(notes):
            db.session.add(
                Note(org_id=org.id, applicant_id=applicant.id, author_id=owner.id, body=f"n{n}")
            )
        for tag in ("night", "van", "spanish", "referral")[:tags]:
            db.session.add(ApplicantTag(org_id=org.id, applicant_id=applicant.id, tag=tag))
    db.session.commit()
    login(auth, owner)

    # Quiet before and after Busy: a count that changed with warm caches would show too.
    counts, pages = [], {}
    for applicant in (quiet, busy, quiet):
        url = f"/applicants/{applicant.public_id}"  # read before counting
        with counting_queries() as statements:
            page = client.get(url)
        assert page.status_code == 200
        counts.append(len(statements))
        pages[applicant.public_id] = page.text
    assert len(set(counts)) == 1, counts
    # Busy's page shows one page of its 300 events, and the way to the older ones.
    busy_page = pages[busy.public_id]
    assert busy_page.count('class="timeline-entry"') == timeline.PAGE_SIZE
    assert 'class="timeline-more"' in busy_page
    assert pages[quiet.public_id].count('class="timeline-entry"') == 3
