"""Applying, the job board, magic links and the applicant portal."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm.util import identity_key
from werkzeug.datastructures import FileStorage

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Event,
    MagicLink,
    Opening,
    OpeningState,
    OutboxMessage,
    QuestionType,
    Trigger,
    utcnow,
)
from plutomi.services import answers, applications, board, openings
from plutomi.services.errors import Invalid, InvalidFields
from tests.conftest import Auth, owner_membership, owner_of

CSRF_TOKEN = re.compile(r'(?<=name="csrf_token" value=")[^"]+|(?<=data-token=")[^"]+')

LINK = re.compile(r"http://localhost(/portal/[A-Za-z0-9_-]+)")


@pytest.fixture
def driver(make_org, make_opening, make_question):
    """A delivery-driver opening whose first stage asks one question of most types."""
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, name="Delivery Driver", stages=("Questionnaire", "Documents"))
    opening.slug = "delivery-driver"
    opening.description = "Drive for us.\nFull licence needed."
    db.session.commit()
    first, second = opening.stages
    qs = {
        "phone": make_question(first, "phone", QuestionType.PHONE, required=True),
        "age": make_question(
            first, "age", QuestionType.NUMBER, required=True, min_value=18, max_value=80
        ),
        "city": make_question(
            first,
            "city",
            QuestionType.SINGLE_CHOICE,
            required=True,
            options=["Leeds", "York"],
        ),
        "licence": make_question(first, "licence", QuestionType.YES_NO, required=True),
        "about": make_question(first, "about", QuestionType.LONG_TEXT, max_value=50),
        "vehicle": make_question(second, "vehicle", QuestionType.SHORT_TEXT, required=True),
        "start": make_question(second, "start", QuestionType.DATE, required=True),
        "days": make_question(
            second, "days", QuestionType.MULTI_CHOICE, required=True, options=["Mon", "Tue", "Wed"]
        ),
        "notes": make_question(second, "notes", QuestionType.SHORT_TEXT),
    }
    return org, opening, qs


def good_answers(qs) -> dict:
    return {
        answers.field_name(qs["phone"]): "+44 (0)113 496-0000",
        answers.field_name(qs["age"]): "34",
        answers.field_name(qs["city"]): "Leeds",
        answers.field_name(qs["licence"]): "yes",
        answers.field_name(qs["about"]): "I like driving.",
    }


def counts() -> dict:
    db.session.expire_all()
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Applicant, Answer, Event, MagicLink, OutboxMessage)
    }


def events(applicant: Applicant | None = None) -> list[str]:
    query = select(Event.type).order_by(Event.id)
    if applicant is not None:
        query = query.where(Event.applicant_id == applicant.id)
    return list(db.session.scalars(query))


def link_in(message: OutboxMessage) -> str:
    return LINK.search(message.payload["text"]).group(1)


def follow(client, link: str):
    """Open a mailed portal link as a person does: its page, then its button (a POST)."""
    page = client.get(link)
    assert page.status_code == 200 and "Continue to my application" in page.text
    return client.post(link)


def last_mail() -> OutboxMessage:
    return db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))


def apply_form(qs, **overrides) -> dict:
    return {"name": "Ada Okafor", "email": "ada@example.com", **good_answers(qs), **overrides}


# --- the service ---------------------------------------------------------------------------


def test_apply_creates_the_applicant_answers_events_and_the_email(driver, run_jobs, client):
    _, opening, qs = driver
    applicant, created = applications.apply(
        opening, "  Ada   Okafor ", "Ada@Example.com", good_answers(qs)
    )
    assert created
    assert applicant.stage_id == opening.stages[0].id
    assert applicant.email == "ada@example.com"
    assert applicant.name == "Ada Okafor"
    assert applicant.rank
    values = {
        a.question.key: a.value
        for a in db.session.scalars(select(Answer).where(Answer.applicant_id == applicant.id))
    }
    assert values == {
        "phone": "+44 (0)113 496-0000",
        "age": 34,
        "city": "Leeds",
        "licence": True,
        "about": "I like driving.",
    }
    assert events(applicant) == [
        "applicant.created",
        *["applicant.answered"] * 5,
        "applicant.stage_completed",
    ]
    completed = db.session.scalar(select(Event).where(Event.type == "applicant.stage_completed"))
    assert completed.payload == {"stage": "Questionnaire"}
    assert completed.actor_type == "applicant"
    assert applicant.stage_completed_at is not None
    link = db.session.scalar(select(MagicLink))
    assert link.expires_at - utcnow() > timedelta(days=29)

    mail = last_mail()
    assert mail.payload["to"] == "ada@example.com"
    assert mail.payload["template"] == "application_received"
    assert "Delivery Driver" in mail.payload["subject"]
    assert run_jobs() == 0
    db.session.refresh(mail)
    assert mail.state == "done"
    # The mailed link opens the portal on this application.
    response = follow(client, link_in(mail))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/portal")
    page = client.get("/portal")
    assert "Delivery Driver" in page.text and "Ada Okafor" in page.text


def test_a_second_applicant_ranks_after_the_first(driver):
    _, opening, qs = driver
    first, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    second, _ = applications.apply(opening, "Bo", "bo@example.com", good_answers(qs))
    assert second.rank > first.rank


def test_a_new_applicant_follows_the_active_cards_whatever_the_rejected_hold(driver):
    # Only active cards hold a column's order: a rejected card keeps its rank for a restore,
    # and the bottom of the column is read from the active ones alone (one index step).
    _, opening, qs = driver
    first, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    rejected, _ = applications.apply(opening, "Cy", "cy@example.com", good_answers(qs))
    rejected.status = ApplicantStatus.REJECTED
    rejected.rank = "z" * 40
    db.session.commit()
    second, _ = applications.apply(opening, "Bo", "bo@example.com", good_answers(qs))
    assert first.rank < second.rank < rejected.rank


def test_the_same_email_again_makes_no_second_applicant_and_resends_the_link(driver, run_jobs):
    _, opening, qs = driver
    first, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    before = counts()
    again, created = applications.apply(opening, "Someone", " ADA@example.com", {})
    assert not created and again.id == first.id
    after = counts()
    assert after["Applicant"] == before["Applicant"] and after["Answer"] == before["Answer"]
    assert after["OutboxMessage"] == before["OutboxMessage"] + 1
    assert last_mail().payload["template"] == "application_link"
    assert run_jobs() == 0


def test_a_duplicate_is_caught_by_the_unique_index_with_no_look_first(driver, monkeypatch):
    """A new application does not look for an earlier one: the unique index on (opening,
    email) finds it, racing or not, and only then is the earlier applicant read."""
    _, opening, qs = driver
    looked = []
    real = applications._find
    monkeypatch.setattr(applications, "_find", lambda *args: looked.append(args) or real(*args))
    first, created = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    assert created and looked == []
    again, created = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    assert not created and again.id == first.id
    assert len(looked) == 1
    assert counts()["Applicant"] == 1
    assert last_mail().payload["template"] == "application_link"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "Enter a valid email address"),
        ("name", "   ", "This field is required."),
        ("phone", "12345", "7 to 15 digits"),
        ("phone", "call me", "7 to 15 digits"),
        ("age", "17", "Enter a number between 18 and 80."),
        ("age", "nan", "Enter a number between 18 and 80."),
        ("age", "lots", "Enter a number between 18 and 80."),
        ("city", "Paris", "Choose one of the options offered."),
        ("city", "", "Choose one of the options offered."),
        ("licence", "maybe", "Answer yes or no."),
        ("about", "x" * 51, "Use at most 50 characters"),
        ("about", "bad\x00byte", "control character"),
        ("phone", "", "This question needs an answer."),
    ],
)
def test_each_bad_input_gets_its_message_and_writes_nothing(driver, field, value, message):
    _, opening, qs = driver
    data = {"name": "Ada", "email": "ada@example.com", **good_answers(qs)}
    key = field if field in ("name", "email") else answers.field_name(qs[field])
    data[key] = value
    before = counts()
    with pytest.raises(InvalidFields) as caught:
        applications.apply(opening, data.pop("name"), data.pop("email"), data)
    assert message in caught.value.errors[key]
    assert counts() == before


def test_every_error_is_reported_at_once(driver):
    _, opening, qs = driver
    with pytest.raises(InvalidFields) as caught:
        applications.apply(opening, "", "nope", {answers.field_name(qs["age"]): "3"})
    assert set(caught.value.errors) == {
        "name",
        "email",
        answers.field_name(qs["phone"]),
        answers.field_name(qs["age"]),
        answers.field_name(qs["city"]),
        answers.field_name(qs["licence"]),
    }


@pytest.mark.parametrize("state", [OpeningState.DRAFT, OpeningState.CLOSED, "archived"])
def test_only_a_published_opening_takes_applications(driver, state):
    _, opening, qs = driver
    if state == "archived":
        opening.archived_at = utcnow()
    else:
        opening.state = state
    db.session.commit()
    before = counts()
    with pytest.raises(Invalid, match=re.escape(applications.NOT_TAKING)):
        applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    assert counts() == before


def test_each_type_checks_its_answers(driver, make_question):
    _, opening, qs = driver
    stage = opening.stages[1]
    mail = make_question(stage, "mail", QuestionType.EMAIL)
    cases = [
        (qs["start"], "2025-02-30", "Enter a date as YYYY-MM-DD"),
        (qs["start"], "20250101", "Enter a date as YYYY-MM-DD"),
        (qs["days"], ["Mon", "Sun"], "Choose only from the options offered."),
        (qs["days"], [], "Choose at least one option."),
        (mail, "x@", "Enter a valid email address"),
    ]
    for question, raw, message in cases:
        with pytest.raises(Invalid, match=re.escape(message)) as caught:
            answers.clean(question, raw)
        assert caught.value.field == f"q_{question.public_id}"
    assert answers.clean(qs["start"], " 2025-03-31 ") == "2025-03-31"
    assert answers.clean(qs["days"], ["Wed", "Mon"]) == ["Mon", "Wed"]
    assert answers.clean(mail, "X@Example.COM") == "x@example.com"
    assert answers.clean(qs["notes"], "  ") is None
    assert answers.clean(qs["licence"], "No") is False


def test_saving_answers_completes_the_stage_exactly_once(driver, make_applicant):
    _, opening, qs = driver
    applicant = make_applicant(opening, opening.stages[1])
    stage = opening.stages[1]
    assert {q.key for q in answers.missing_required(applicant, stage)} == {
        "vehicle",
        "start",
        "days",
    }
    answers.save(applicant, qs["vehicle"], "Van")
    answers.save(applicant, qs["start"], "2025-04-01")
    assert applicant.stage_completed_at is None
    answers.save(applicant, qs["days"], ["Tue"])
    assert applicant.stage_completed_at is not None
    answers.save(applicant, qs["notes"], "Anything")
    answers.save(applicant, qs["vehicle"], "Bike")  # an update, not a second row
    assert events(applicant).count("applicant.stage_completed") == 1
    assert events(applicant).count("applicant.answered") == 5
    assert (
        db.session.scalar(
            select(func.count()).select_from(Answer).where(Answer.applicant_id == applicant.id)
        )
        == 4
    )
    answered = db.session.scalar(select(Event).where(Event.type == "applicant.answered"))
    assert answered.payload == {"question": "vehicle"}


def test_open_link_refuses_forged_and_expired_links(driver):
    _, opening, qs = driver
    applicant, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    token = LINK.search(last_mail().payload["text"]).group(1).rsplit("/", 1)[1]
    with pytest.raises(Invalid, match="This link is not valid"):
        applications.open_link(token + "x")
    assert applications.open_link(token).id == applicant.id
    assert db.session.scalar(select(MagicLink.last_used_at)) is not None
    with (
        time_machine.travel(utcnow() + timedelta(days=31)),
        pytest.raises(applications.LinkExpired, match="This link has expired"),
    ):
        applications.open_link(token)


def test_withdraw_writes_the_event_and_the_status(driver):
    _, opening, qs = driver
    applicant, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    applications.withdraw(applicant, "Found another job")
    assert applicant.status == ApplicantStatus.WITHDRAWN
    event = db.session.scalar(select(Event).where(Event.type == "applicant.withdrawn"))
    assert event.payload == {"reason": "Found another job"}
    with pytest.raises(Invalid, match="withdrawn already"):
        applications.withdraw(applicant)
    with pytest.raises(Invalid, match="can no longer change"):
        answers.save(applicant, qs["about"], "more")


def test_request_link_mails_only_those_who_applied_and_not_endlessly(driver):
    _, opening, qs = driver
    applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    before = counts()["OutboxMessage"]
    applications.request_link(opening, "nobody@example.com")
    assert counts()["OutboxMessage"] == before
    for _ in range(10):
        applications.request_link(opening, "ada@example.com")
    # The application's own link plus four more within the hour.
    assert counts()["MagicLink"] == applications.LINKS_PER_HOUR


# --- the pages -----------------------------------------------------------------------------


def test_the_form_applies_signs_in_and_says_to_check_email(driver, client):
    _, opening, qs = driver
    page = client.get("/jobs/acme/delivery-driver")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text
    for question in qs.values():
        if question.stage_id == opening.stages[0].id:
            assert f'name="q_{question.public_id}"' in page.text
        else:
            assert f'name="q_{question.public_id}"' not in page.text
    assert "Full licence needed." in page.text
    response = client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    assert response.status_code == 302
    done = client.get(response.headers["Location"])
    assert "Check your email" in done.text and "/portal" in done.text
    assert client.get("/portal").status_code == 200
    assert "Ada Okafor" in client.get("/portal").text


def test_the_form_asks_and_fills_the_first_stage_by_position(driver, client):
    """The form reads the first stage (by position), its questions and the bottom of its
    column with the opening: after a reorder, the new first stage is asked and filled."""
    _, opening, qs = driver
    questionnaire, documents = opening.stages
    questionnaire.position, documents.position = 5, 0
    db.session.commit()
    page = client.get("/jobs/acme/delivery-driver").text
    for question in qs.values():
        asked = f'name="q_{question.public_id}"' in page
        assert asked == (question.stage_id == documents.id), question.key
    answered = {
        answers.field_name(qs["vehicle"]): "Van",
        answers.field_name(qs["start"]): "2027-01-04",
        answers.field_name(qs["days"]): ["Mon", "Wed"],
    }
    for n in range(3):
        form = {"name": f"Driver {n}", "email": f"driver{n}@example.com"} | answered
        assert client.post("/jobs/acme/delivery-driver", data=form).status_code == 302
    in_order = db.session.scalars(
        select(Applicant.name).where(Applicant.stage_id == documents.id).order_by(Applicant.rank)
    )
    assert list(in_order) == ["Driver 0", "Driver 1", "Driver 2"]


def test_form_errors_show_next_to_their_fields_and_keep_what_was_typed(driver, client):
    _, _, qs = driver
    before = counts()
    age = answers.field_name(qs["age"])
    response = client.post(
        "/jobs/acme/delivery-driver",
        data=apply_form(qs, email="nope", **{age: "99"}),
    )
    assert response.status_code == 422
    assert "Enter a valid email address" in response.text
    assert "Enter a number between 18 and 80." in response.text
    assert 'value="nope"' in response.text and 'value="99"' in response.text
    assert re.search(r'value="Leeds"[^>]*checked', response.text)
    assert "Please fix the 2 problems below." in response.text
    assert counts() == before


def test_applying_twice_by_form_says_so_and_mails_a_link(driver, client):
    """On PostgreSQL the second submission's applicant goes in with its answers and events in
    one statement, which the unique index refuses whole: only the new link and its email
    are left."""
    _, _, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    before = counts()
    other = client.application.test_client()
    response = other.post("/jobs/acme/delivery-driver", data=apply_form(qs), follow_redirects=True)
    assert "You already applied; we emailed you a link to continue." in response.text
    assert counts() == before | {
        "MagicLink": before["MagicLink"] + 1,
        "OutboxMessage": before["OutboxMessage"] + 1,
    }
    link = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
    assert link.payload["template"] == "application_link"
    # The second browser was not signed in as the applicant.
    assert "Ada Okafor" not in other.get("/portal").text


def test_a_browser_that_applied_in_anothers_name_is_signed_out_once_they_follow_a_link(
    driver, client
):
    """Anyone may type another person's email into the form. Once that person follows an
    emailed link, the browser that applied no longer opens what they go on to give."""
    _, _, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    assert "Ada Okafor" in client.get("/portal").text
    owner = client.application.test_client()
    owner.post("/jobs/acme/delivery-driver", data=apply_form(qs))  # "you already applied"
    assert follow(owner, link_in(last_mail())).status_code == 302
    assert "Ada Okafor" in owner.get("/portal").text
    page = client.get("/portal")
    assert "Ada Okafor" not in page.text and "open the link we emailed you" in page.text
    # The owner's browser, signed in by the link, stays signed in.
    assert "Ada Okafor" in owner.get("/portal").text


def test_a_browser_that_applied_and_then_follows_its_own_link_stays_signed_in(driver, client):
    _, _, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    link = link_in(last_mail())
    follow(client, link)
    # Proven now, the browser goes straight in by the link, and again by its button.
    assert client.get(link).headers["Location"].endswith("/portal")
    assert client.post(link).status_code == 302
    assert "Ada Okafor" in client.get("/portal").text


def test_a_link_opened_but_not_followed_signs_in_no_one_and_ends_no_session(driver, client):
    """Mail scanners open every link in an email: opening it only shows its button."""
    _, _, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    link = link_in(last_mail())
    scanner = client.application.test_client()
    page = scanner.get(link)
    assert page.status_code == 200 and "Delivery Driver" in page.text
    assert "Ada Okafor" not in scanner.get("/portal").text
    assert db.session.scalar(select(MagicLink.last_used_at)) is None
    assert "Ada Okafor" in client.get("/portal").text  # the applying browser is still in


def test_closed_draft_and_unknown_openings(driver, client):
    _, opening, qs = driver
    opening.state = OpeningState.CLOSED
    db.session.commit()
    for method in ("GET", "POST"):
        response = client.open("/jobs/acme/delivery-driver", method=method, data=apply_form(qs))
        assert response.status_code == 410
        assert "This opening is not taking applications" in response.text
    opening.state = OpeningState.DRAFT
    db.session.commit()
    response = client.get("/jobs/acme/delivery-driver")
    assert response.status_code == 404
    assert "Delivery Driver" not in response.text
    assert client.get("/jobs/acme/nothing-here").status_code == 404
    assert client.get("/jobs/no-such-org").status_code == 404
    assert counts()["Applicant"] == 0


def test_request_a_link_page_answers_the_same_either_way(driver, client):
    _, opening, qs = driver
    applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    before = counts()["OutboxMessage"]
    url = "/jobs/acme/delivery-driver/link"
    yes = client.post(url, data={"link_email": "ada@example.com"})
    no = client.post(url, data={"link_email": "bo@example.com"})
    assert yes.status_code == no.status_code == 200

    # The same page but for the address (CSRF tokens carry the second they were signed in).
    def same(text: str, local: str) -> str:
        return CSRF_TOKEN.sub("TOKEN", text.replace(f"{local}@", "X@"))

    assert CSRF_TOKEN.search(yes.text)
    assert same(yes.text, "ada") == same(no.text, "bo")
    assert counts()["OutboxMessage"] == before + 1
    assert client.post(url, data={"link_email": "nope"}).status_code == 422


def test_schema_json(driver, client):
    _, opening, qs = driver
    qs["notes"].archived_at = utcnow()
    db.session.commit()
    data = client.get("/jobs/acme/delivery-driver/schema.json").get_json()
    assert data["opening"] == {
        "id": opening.public_id,
        "name": "Delivery Driver",
        "slug": "delivery-driver",
        "description": opening.description,
    }
    assert [s["name"] for s in data["stages"]] == ["Questionnaire", "Documents"]
    age = data["stages"][0]["questions"][1]
    assert age == {
        "id": qs["age"].public_id,
        "key": "age",
        "type": "number",
        "label": "Age",
        "help_text": "",
        "required": True,
        "options": [],
        "min": 18,
        "max": 80,
    }
    assert "notes" not in [q["key"] for q in data["stages"][1]["questions"]]
    opening.state = OpeningState.DRAFT
    db.session.commit()
    assert client.get("/jobs/acme/delivery-driver/schema.json").status_code == 404


def test_the_job_board_lists_the_orgs_published_openings_and_searches(
    driver, client, make_org, make_opening
):
    org, _, _ = driver
    warehouse = make_opening(org, name="Warehouse Picker")
    draft = make_opening(org, name="Secret Draft Role")
    draft.state = OpeningState.DRAFT
    make_opening(make_org("Other"), name="Other Org Courier")
    db.session.commit()
    page = client.get("/jobs/acme")
    assert page.status_code == 200
    assert "Delivery Driver" in page.text and "Warehouse Picker" in page.text
    assert "Secret Draft Role" not in page.text and "Other Org Courier" not in page.text
    assert page.text.index("Warehouse Picker") < page.text.index("Delivery Driver")  # newest first
    assert 'hx-trigger="search, keyup delay:200ms changed"' in page.text
    assert "HX-Request" in page.headers["Vary"]

    found = client.get("/jobs/acme?q=wareh")
    assert "Warehouse Picker" in found.text and "Delivery Driver" not in found.text
    partial = client.get("/jobs/acme?q=driv", headers={"HX-Request": "true"})
    assert "Delivery Driver" in partial.text and "Warehouse Picker" not in partial.text
    assert "<html" not in partial.text and 'type="search"' not in partial.text
    assert "HX-Request" in partial.headers["Vary"]
    assert "No openings match" in client.get("/jobs/acme?q=%25").text

    # Closing an opening takes it off the board at once.
    warehouse.state = OpeningState.CLOSED
    db.session.commit()
    assert "Warehouse Picker" not in client.get("/jobs/acme").text


def test_portal_saves_each_question_by_itself_and_completes_the_stage(
    driver, client, make_applicant
):
    _, opening, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    applicant = db.session.scalar(select(Applicant))
    # On to the next stage (as a move by a recruiter or a rule would do).
    applicant.stage_id = opening.stages[1].id
    applicant.stage_completed_at = None
    db.session.commit()

    page = client.get("/portal")
    for key in ("vehicle", "start", "days", "notes"):
        assert f'hx-post="/portal/answers/{qs[key].public_id}"' in page.text
    assert "I like driving." in page.text  # already answered

    htmx = {"HX-Request": "true"}
    bad = client.post(
        f"/portal/answers/{qs['start'].public_id}",
        data={answers.field_name(qs["start"]): "tomorrow"},
        headers=htmx,
    )
    assert bad.status_code == 422
    assert "Enter a date as YYYY-MM-DD" in bad.text and "<html" not in bad.text
    assert 'value="tomorrow"' in bad.text

    for key, value in (("vehicle", "Van"), ("start", "2025-04-01"), ("days", ["Mon", "Wed"])):
        response = client.post(
            f"/portal/answers/{qs[key].public_id}",
            data={answers.field_name(qs[key]): value},
            headers=htmx,
        )
        assert response.status_code == 200, response.text
        assert "Saved" in response.text and "<html" not in response.text
    assert "answered everything this step needs" in response.text
    completed = db.session.scalars(
        select(Event).where(Event.type == "applicant.stage_completed").order_by(Event.id)
    ).all()
    assert [e.payload["stage"] for e in completed] == ["Questionnaire", "Documents"]

    # Without JavaScript: a plain post, then back to the portal.
    plain = client.post(
        f"/portal/answers/{qs['notes'].public_id}",
        data={answers.field_name(qs["notes"]): "Weekends too"},
    )
    assert plain.status_code == 302
    page = client.get("/portal")
    assert "Weekends too" in page.text and "Nothing to answer right now" in page.text
    # A question of another stage, or of nobody's application, is a 404.
    assert client.post(f"/portal/answers/{qs['age'].public_id}").status_code == 404
    assert client.post("/portal/answers/nosuchquestion00").status_code == 404


def test_portal_draws_the_page_again_when_a_rule_moves_the_applicant_on(driver, client, make_rule):
    org, opening, qs = driver
    documents = opening.stages[1]
    review = openings.add_stage(owner_membership(org), opening.public_id, "Review")
    make_rule(documents, Trigger.STAGE_COMPLETED, [{"type": "move", "stage": review.public_id}])
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    applicant = db.session.scalar(select(Applicant))
    applicant.stage_id = documents.id
    applicant.stage_completed_at = None
    db.session.commit()
    htmx = {"HX-Request": "true"}
    for key, value in (("vehicle", "Van"), ("start", "2025-04-01")):
        response = client.post(
            f"/portal/answers/{qs[key].public_id}",
            data={answers.field_name(qs[key]): value},
            headers=htmx,
        )
        assert response.status_code == 200 and "HX-Redirect" not in response.headers

    # The last required answer completes the step, and the rule moves them on: the page is
    # drawn again for the new step rather than left showing the old step's questions.
    last = client.post(
        f"/portal/answers/{qs['days'].public_id}",
        data={answers.field_name(qs["days"]): ["Mon"]},
        headers=htmx,
    )
    assert last.status_code == 204 and last.headers["HX-Redirect"] == "/portal"
    page = client.get("/portal")
    assert "Saved. Your application moved on to: Review." in page.text
    assert "<dt>Step</dt><dd>Review</dd>" in page.text

    # The old step's form, still open in another tab, leads back to the portal as well.
    stale = client.post(
        f"/portal/answers/{qs['notes'].public_id}",
        data={answers.field_name(qs["notes"]): "Late"},
        headers=htmx,
    )
    assert stale.status_code == 204 and stale.headers["HX-Redirect"] == "/portal"
    assert "belongs to an earlier step" in client.get("/portal").text
    assert (
        db.session.scalar(
            select(func.count()).select_from(Answer).where(Answer.question_id == qs["notes"].id)
        )
        == 0
    )


def test_portal_withdraw(driver, client):
    _, _, qs = driver
    client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    page = client.get("/portal")
    assert "Withdraw my application" in page.text and "hx-confirm" in page.text
    response = client.post("/portal/withdraw", data={"reason": ""}, follow_redirects=True)
    assert "Your application is withdrawn" in response.text
    assert "Withdrawn" in response.text and "Still to answer" not in response.text
    applicant = db.session.scalar(select(Applicant))
    assert applicant.status == ApplicantStatus.WITHDRAWN
    assert events(applicant)[-1] == "applicant.withdrawn"


def test_portal_without_a_link(driver, client):
    _, opening, qs = driver
    applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    page = client.get("/portal")
    assert "open the link we emailed you" in page.text
    assert 'action="/portal/link"' in page.text
    before = counts()["OutboxMessage"]
    response = client.post("/portal/link", data={"email": "ada@example.com"})
    assert response.status_code == 200 and "Check your email" in response.text
    assert counts()["OutboxMessage"] == before + 1
    for forged in (
        client.get("/portal/not-a-real-token-at-all"),
        client.post("/portal/not-a-real-token-at-all"),
    ):
        assert forged.status_code == 404 and "This link is not valid" in forged.text
    assert "Ada" not in client.get("/portal").text


def test_an_expired_link_says_so_and_offers_a_new_one(driver, client):
    _, opening, qs = driver
    applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    link = link_in(last_mail())
    with time_machine.travel(utcnow() + timedelta(days=31)):
        for response in (client.get(link), client.post(link)):
            assert response.status_code == 410
            assert "This link has expired" in response.text
            assert 'action="/jobs/acme/delivery-driver/link"' in response.text


def test_preview_needs_a_login_and_stays_in_its_org(driver, client, make_org, make_opening):
    org, opening, qs = driver
    opening.state = OpeningState.DRAFT
    db.session.commit()
    url = f"/openings/{opening.public_id}/preview"
    assert client.get(url).status_code == 302
    auth = Auth(client)
    auth.login(owner_of(org).email)
    page = client.get(url)
    assert page.status_code == 200
    assert "Preview" in page.text and "disabled" in page.text
    assert f'name="q_{qs["phone"].public_id}"' in page.text
    other = make_org("Other")
    other_opening = make_opening(other, name="Theirs")
    assert client.get(f"/openings/{other_opening.public_id}/preview").status_code == 404


def test_a_file_question_is_stored_through_the_upload_store(driver, client, make_question):
    _, opening, qs = driver
    doc = make_question(opening.stages[0], "cv", QuestionType.FILE, required=True)
    field = answers.field_name(doc)
    page = client.get("/jobs/acme/delivery-driver")
    assert f'name="{field}" type="file" accept=".pdf' in page.text
    missing = client.post("/jobs/acme/delivery-driver", data=apply_form(qs))
    assert missing.status_code == 422 and "Choose a file to upload." in missing.text
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    data = apply_form(qs, **{field: (io.BytesIO(pdf), "cv.pdf")})
    response = client.post(
        "/jobs/acme/delivery-driver", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 302, response.text
    answer = db.session.scalar(select(Answer).where(Answer.question_id == doc.id))
    page = client.get("/portal")
    assert f'href="/portal/files/{answer.value}"' in page.text
    assert "cv.pdf" in page.text


def test_published_openings_are_a_live_query(driver):
    org, opening, _ = driver
    assert [o.id for o in applications.published_openings(org)] == [opening.id]
    opening.archived_at = utcnow()
    db.session.commit()
    assert applications.published_openings(org) == []
    assert db.session.scalar(select(func.count()).select_from(Opening)) == 1


def test_answers_and_payloads_beyond_ascii_are_stored_as_every_other_write_stores_them(
    driver, make_question
):
    """An application's rows go in without the ORM (services/inserts.py); their JSON must be
    the text SQLAlchemy writes, which the board's answer filter compares with."""
    _, opening, qs = driver
    town = make_question(
        opening.stages[0], "town", QuestionType.SINGLE_CHOICE, options=["Zürich", "Łódź ✓"]
    )
    opening.stages[0].name = "Fragebogen für Fahrer"
    db.session.commit()
    given = good_answers(qs) | {
        answers.field_name(town): "Zürich",
        answers.field_name(qs["about"]): 'Émilie "Ørsted" \\ ✓',
    }
    applicant, _ = applications.apply(opening, "Zoë", "zoe@example.com", given)
    stored = dict(
        db.session.execute(
            select(Answer.question_id, cast(Answer.value, Text)).where(
                Answer.applicant_id == applicant.id
            )
        ).all()
    )
    assert stored[town.id] == json.dumps("Zürich")
    assert stored[qs["about"].id] == json.dumps('Émilie "Ørsted" \\ ✓')
    created = db.session.scalar(
        select(cast(Event.payload, Text)).where(Event.type == "applicant.created")
    )
    assert json.loads(created)["stage"] == "Fragebogen für Fahrer"
    assert "\\u00fc" in created  # escaped, as json.dumps writes it
    f = board.parse_filter(
        {"answer": f"{town.public_id}:Zürich"}, board.board_questions(opening)[1]
    )
    assert [c.name for c in board.board(opening, f).columns[0].cards] == ["Zoë"]


def test_a_refused_file_is_refused_with_the_other_answers_before_anything_is_written(
    driver, make_question, monkeypatch
):
    """A file is read and checked with the other answers, before the applicant is inserted:
    its problem is reported beside theirs, and the same session applies again."""
    _, opening, qs = driver
    inserted = []
    insert_applicant = applications._insert_applicant
    monkeypatch.setattr(
        applications,
        "_insert_applicant",
        lambda **values: inserted.append(insert_applicant(**values)) or inserted[-1],
    )
    doc = make_question(opening.stages[0], "cv", QuestionType.FILE, required=True)
    db.session.commit()
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
    bad = FileStorage(stream=io.BytesIO(exe), filename="cv.pdf", content_type="application/pdf")
    with pytest.raises(InvalidFields) as refused:
        applications.apply(
            opening,
            "Ada",
            "ada@example.com",
            good_answers(qs) | {answers.field_name(doc): bad, answers.field_name(qs["age"]): "5"},
        )
    assert refused.value.errors == {
        answers.field_name(doc): "The file's content does not match its name (.pdf).",
        answers.field_name(qs["age"]): "Enter a number between 18 and 80.",
    }
    assert inserted == [] and counts()["Applicant"] == 0
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    good = FileStorage(stream=io.BytesIO(pdf), filename="cv.pdf", content_type="application/pdf")
    _, created = applications.apply(
        opening, "Ada", "ada@example.com", good_answers(qs) | {answers.field_name(doc): good}
    )
    assert created and counts()["Applicant"] == 1


def test_a_repeat_with_a_reserved_id_leaves_nothing_behind(driver):
    """With an id reserved (PostgreSQL), a repeat's applicant goes in with its other rows and
    the unique index refuses them all: the earlier applicant is the answer, and the refused
    one is neither in the database nor left in the session as if it had been loaded."""
    _, opening, qs = driver
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no sequence: its applicant always goes in first")
    first, _ = applications.apply(opening, "Ada", "ada@example.com", good_answers(qs))
    before = counts()
    reserved = db.session.scalar(
        select(func.nextval(func.pg_get_serial_sequence("applicants", "id")))
    )
    again, created = applications.apply(
        opening, "Ada", "ada@example.com", good_answers(qs), applicant_id=reserved
    )
    assert not created and again.id == first.id
    assert identity_key(Applicant, reserved) not in db.session.identity_map
    assert counts() == before | {
        "MagicLink": before["MagicLink"] + 1,
        "OutboxMessage": before["OutboxMessage"] + 1,
    }


def test_a_reserved_id_is_the_applicants_even_when_files_write_it_first(driver, make_question):
    """An application with files writes its applicant before the files (an upload's row refers
    to it); an id reserved for it is still the one it gets, not a second from the sequence."""
    _, opening, qs = driver
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no sequence: its applicant always goes in first")
    doc = make_question(opening.stages[0], "cv", QuestionType.FILE, required=True)
    db.session.commit()
    reserved = db.session.scalar(
        select(func.nextval(func.pg_get_serial_sequence("applicants", "id")))
    )
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    cv = FileStorage(stream=io.BytesIO(pdf), filename="cv.pdf", content_type="application/pdf")
    applicant, created = applications.apply(
        opening,
        "Ada",
        "ada@example.com",
        good_answers(qs) | {answers.field_name(doc): cv},
        applicant_id=reserved,
    )
    assert created and applicant.id == reserved
    assert db.session.scalar(select(Applicant.id).where(Applicant.email == "ada@example.com")) == (
        reserved
    )
