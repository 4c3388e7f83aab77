"""The operations page: outbox and timer counts of the org, queue depths of the server, and
retrying dead messages by hand, on a real database and Redis."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from plutomi.extensions import db, queues
from plutomi.models import (
    Event,
    Org,
    OutboxMessage,
    OutboxState,
    Role,
    Rule,
    Timer,
    TimerState,
    Trigger,
    User,
    utcnow,
)
from plutomi.services import operations, outbox
from tests.conftest import Auth, _free_port, owner_of

HX = {"HX-Request": "true"}
PAGE = "/settings/operations"


# --- helpers -------------------------------------------------------------------------------


def logged_in(app, user: User):
    """A client of its own, logged in as user."""
    client = app.test_client()
    assert Auth(client).login(user.email).status_code == 302
    return client


def message(
    org: Org | None,
    state: str,
    *,
    to: str = "ada@example.com",
    subject: str = "Your application",
    **values,
) -> OutboxMessage:
    """An email outbox row written directly in the given state."""
    row = OutboxMessage(
        kind="email",
        org_id=org.id if org else None,
        payload={"to": to, "subject": subject, "text": "Hello\n", "template": "test"},
        state=state,
        **values,
    )
    db.session.add(row)
    db.session.commit()
    return row


def dead(org: Org | None, **values) -> OutboxMessage:
    values = {"attempts": 6, "last_error": "ConnectionRefusedError: [Errno 111]", **values}
    return message(org, OutboxState.DEAD, **values)


def fresh(row: OutboxMessage) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, row.id)


def queued_ids() -> list[int]:
    """Every outbox id waiting in the queue, over all its jobs."""
    return sorted(i for job in queues.queue().get_jobs() for i in job.args[0])


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def shown(page: str, element_id: str) -> str:
    """The text of the element with that id, as the reader sees it."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, f"#{element_id} is not on the page"
    return html.unescape(match.group(1)).strip()


def row_ids(page: str) -> list[str]:
    return re.findall(r'<tr id="message-([a-z0-9]{16})"', page)


def timer(org: Org, applicant, rule: Rule, state: str, due_in: timedelta, **values) -> Timer:
    row = Timer(
        org_id=org.id,
        applicant_id=applicant.id,
        rule_id=rule.id,
        stage_entry=applicant.stage_entry,
        due_at=utcnow() + due_in,
        state=state,
        **values,
    )
    db.session.add(row)
    db.session.commit()
    return row


def time_rule(opening, name: str = "Not completed in 30 days") -> Rule:
    rule = Rule(
        org_id=opening.org_id,
        opening_id=opening.id,
        stage_id=opening.stages[0].id,
        position=0,
        name=name,
        trigger=Trigger.TIME_IN_STAGE,
        delay_minutes=30 * 24 * 60,
    )
    db.session.add(rule)
    db.session.commit()
    return rule


# --- the page ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_the_page_shows_this_orgs_outbox_and_timers(
    app, make_org, make_member, make_opening, make_applicant, role
):
    acme = make_org("Acme")
    other = make_org("Other")
    now = utcnow()
    for _ in range(2):
        message(acme, OutboxState.PENDING)
    message(acme, OutboxState.SENDING, attempts=1, lease_until=now + timedelta(minutes=4))
    retrying = [
        message(
            acme,
            OutboxState.RETRYING,
            to=f"retry{n}@example.com",
            subject=f"Retry subject {n}",
            attempts=2,
            last_error="SMTPServerDisconnected: Connection unexpectedly closed",
            next_attempt_at=now + timedelta(minutes=10),
        )
        for n in range(2)
    ]
    dead_rows = [
        dead(acme, to=f"dead{n}@example.com", subject=f"Dead subject {n}") for n in range(3)
    ]
    for _ in range(2):
        message(acme, OutboxState.DONE, attempts=1, done_at=now - timedelta(hours=1))
    message(acme, OutboxState.DONE, attempts=1, done_at=now - timedelta(days=2))
    # Another org's rows, and an org-less one (a password reset), are never shown here.
    dead(other, to="other-org@example.com", subject="Other org secret")
    message(other, OutboxState.PENDING, to="other-org@example.com")
    dead(None, to="nobodys@example.com", subject="Reset your password")

    opening = make_opening(acme)
    applicant = make_applicant(opening, name="Tamsin Late")
    rule = time_rule(opening)
    timer(acme, applicant, rule, TimerState.PENDING, timedelta(days=3))
    timer(acme, applicant, rule, TimerState.PENDING, timedelta(days=30))
    timer(acme, applicant, rule, TimerState.PENDING, -timedelta(seconds=20))  # due, not late
    timer(acme, applicant, rule, TimerState.PENDING, -timedelta(minutes=10))
    timer(acme, applicant, rule, TimerState.CLAIMED, -timedelta(hours=2))
    timer(acme, applicant, rule, TimerState.FAILED, -timedelta(days=1), error="KeyError: 'stage'")
    timer(acme, applicant, rule, TimerState.DONE, -timedelta(days=1), outcome="fired")
    other_opening = make_opening(other)
    other_applicant = make_applicant(other_opening, name="Other Applicant")
    other_rule = time_rule(other_opening, name="Other org rule")
    for _ in range(3):
        timer(other, other_applicant, other_rule, TimerState.PENDING, -timedelta(hours=5))
    timer(other, other_applicant, other_rule, TimerState.FAILED, -timedelta(hours=5), error="x")

    actor = owner_of(acme) if role == Role.OWNER else make_member(acme, Role.ADMIN)
    page = logged_in(app, actor).get(PAGE)
    assert page.status_code == 200
    text = page.text

    assert shown(text, "outbox-pending") == "2"
    assert shown(text, "outbox-sending") == "1"
    assert shown(text, "outbox-retrying") == "2"
    assert shown(text, "outbox-dead") == "3"
    assert shown(text, "outbox-done") == "2"
    assert shown(text, "timers-pending") == "4"
    assert shown(text, "timers-late") == "2"
    assert shown(text, "timers-oldest-late") == "2 hours ago"
    assert shown(text, "timers-failed") == "1"

    # The retrying and dead rows, newest first, with what they are and why they failed.
    expected = [m.public_id for m in reversed(retrying + dead_rows)]
    assert row_ids(text) == expected
    for n in range(3):
        assert f"dead{n}@example.com" in text
        assert f"Dead subject {n}" in text
    assert "retry1@example.com" in text and "Retry subject 1" in text
    assert "6/6" in text and "2/6" in text
    assert "ConnectionRefusedError" in text and "SMTPServerDisconnected" in text
    assert "in 9 minutes" in text  # the retrying rows' next attempt
    assert text.count("Retry now") == 5

    # The failed timer, with its rule, applicant and error.
    assert "Not completed in 30 days" in text
    assert "Tamsin Late" in text
    assert "KeyError: &#39;stage&#39;" in text

    # The server's queues, labelled as such.
    assert "this server" in text
    assert 'id="queue-default"' in text

    for leak in ("other-org@example.com", "Other org secret", "nobodys@example.com", "Other org"):
        assert leak not in text, leak
    assert "Other Applicant" not in text


def test_the_tab_shows_to_admins_only_and_weaker_roles_get_403(app, make_org, make_member):
    acme = make_org("Acme")
    row = dead(acme)
    queues.queue().empty()
    admin = logged_in(app, make_member(acme, Role.ADMIN))
    assert f'href="{PAGE}"' in admin.get("/settings").text
    assert f'href="{PAGE}"' in admin.get("/settings/members").text

    for role in (Role.VIEWER, Role.RECRUITER):
        client = logged_in(app, make_member(acme, role))
        assert f'href="{PAGE}"' not in client.get("/settings").text
        requests = [
            ("GET", PAGE),
            ("GET", f"{PAGE}/status"),
            ("GET", f"{PAGE}/outbox"),
            ("POST", f"{PAGE}/outbox/{row.public_id}/retry"),
            ("POST", f"{PAGE}/outbox/retry-dead"),
        ]
        for method, url in requests:
            for headers in ({}, HX):
                response = client.open(url, method=method, headers=headers)
                assert response.status_code == 403, (role, method, url, headers)
                assert "Admin role" in response.text
    assert fresh(row).state == OutboxState.DEAD
    assert queued_ids() == []
    assert count(Event, Event.type == "outbox.retried") == 0


def test_the_counts_are_a_partial_the_page_polls(app, make_org):
    acme = make_org("Acme")
    dead(acme)
    client = logged_in(app, owner_of(acme))
    page = client.get(PAGE).text
    assert 'hx-get="/settings/operations/status"' in page
    assert 'hx-trigger="every 10s, operations-changed from:body"' in page

    dead(acme)
    partial = client.get(f"{PAGE}/status", headers=HX)
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert partial.text.lstrip().startswith('<div id="ops-status"')
    assert shown(partial.text, "outbox-dead") == "2"
    # Not a page of its own: a plain visit goes to the page.
    plain = client.get(f"{PAGE}/status")
    assert plain.status_code == 302
    assert plain.headers["Location"].endswith(PAGE)


def test_counts_stop_at_the_cap(app, make_org, monkeypatch):
    acme = make_org("Acme")
    for _ in range(3):
        dead(acme)
    monkeypatch.setattr(operations, "COUNT_CAP", 2)
    page = logged_in(app, owner_of(acme)).get(PAGE).text
    assert shown(page, "outbox-dead") == "2+"
    assert shown(page, "outbox-pending") == "0"


def test_queue_depths_of_this_server(app, make_org, run_jobs):
    acme = make_org("Acme")
    queues.queue().enqueue("jobs.outbox.no_such_job", [1])
    assert run_jobs() == 1  # one failed job
    outbox.enqueue([101, 102])
    outbox.enqueue([103])
    page = logged_in(app, owner_of(acme)).get(PAGE).text
    cells = re.search(r'<tr id="queue-default">(.*?)</tr>', page, re.S).group(1)
    # queue, waiting, running, scheduled, failed
    assert re.findall(r"<td>(.*?)</td>", cells) == ["default", "2", "0", "0", "1"]
    assert shown(page, "queue-workers") == "0"
    assert "Redis is unreachable" not in page


def test_the_page_renders_when_redis_is_down(app, make_app, make_org):
    acme = make_org("Acme")
    row = dead(acme)
    down = make_app(REDIS_URL=f"redis://127.0.0.1:{_free_port()}")
    healthy_redis = app.extensions["redis"]
    try:
        client = logged_in(down, owner_of(acme))
        page = client.get(PAGE)
        assert page.status_code == 200
        assert "Redis is unreachable" in page.text
        assert shown(page.text, "outbox-dead") == "1"
        assert row.public_id in page.text
        partial = client.get(f"{PAGE}/status", headers=HX)
        assert partial.status_code == 200
        assert "Redis is unreachable" in partial.text

        # Retrying still works: the row waits in the database for the sweep.
        response = client.post(f"{PAGE}/outbox/{row.public_id}/retry")
        assert response.status_code == 302
        assert fresh(row).state == OutboxState.PENDING
    finally:
        # The fixture flushes every app's Redis afterwards; give this one a server to flush.
        down.extensions["redis"] = healthy_redis
    assert row.id in outbox.due_ids()


# --- retry now -----------------------------------------------------------------------------


def test_retry_now_puts_a_dead_row_back_in_line_and_hands_it_to_rq(app, make_org, run_jobs):
    acme = make_org("Acme")
    owner = owner_of(acme)
    row = dead(acme, next_attempt_at=utcnow() + timedelta(hours=6))
    queues.queue().empty()
    client = logged_in(app, owner)

    response = client.post(f"{PAGE}/outbox/{row.public_id}/retry")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(PAGE)
    retried = fresh(row)
    assert retried.state == OutboxState.PENDING
    assert retried.attempts == 0
    assert retried.next_attempt_at <= utcnow()
    assert retried.lease_until is None
    assert queued_ids() == [row.id]
    event = db.session.scalar(select(Event).where(Event.type == "outbox.retried"))
    assert (event.org_id, event.actor_type, event.actor_id) == (acme.id, "user", owner.id)
    assert event.payload["message"] == row.public_id
    assert event.payload["previous_state"] == OutboxState.DEAD
    assert "back in line" in client.get(PAGE).text  # the flash after the redirect

    assert run_jobs() == 0
    delivered = fresh(row)
    assert delivered.state == OutboxState.DONE
    assert delivered.attempts == 1


def test_retry_now_with_htmx_swaps_the_row(app, make_org):
    acme = make_org("Acme")
    row = message(acme, OutboxState.RETRYING, attempts=3, last_error="SMTPDataError: 451")
    queues.queue().empty()
    client = logged_in(app, owner_of(acme))

    response = client.post(f"{PAGE}/outbox/{row.public_id}/retry", headers=HX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.text.lstrip().startswith(f'<tr id="message-{row.public_id}"')
    assert ">pending<" in response.text
    assert "0/6" in response.text
    assert "Retry now" not in response.text
    trigger = response.headers["HX-Trigger"]
    assert "operations-changed" in trigger
    assert "back in line" in trigger
    assert fresh(row).state == OutboxState.PENDING
    assert queued_ids() == [row.id]


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        (OutboxState.DONE, "This message was sent already."),
        (OutboxState.SENDING, "This message is being sent right now."),
        (OutboxState.PENDING, "This message is waiting to be sent already."),
    ],
)
def test_retry_now_refuses_a_row_that_is_not_dead_or_retrying(app, make_org, state, refusal):
    acme = make_org("Acme")
    row = message(acme, state, attempts=1, lease_until=utcnow() + timedelta(minutes=4))
    queues.queue().empty()
    client = logged_in(app, owner_of(acme))
    url = f"{PAGE}/outbox/{row.public_id}/retry"

    response = client.post(url, headers=HX)
    assert response.status_code == 422
    assert response.text.lstrip().startswith(f'<tr id="message-{row.public_id}"')
    assert refusal in html.unescape(response.headers["HX-Trigger"])

    plain = client.post(url)
    assert plain.status_code == 302
    assert refusal in client.get(PAGE).text

    unchanged = fresh(row)
    assert (unchanged.state, unchanged.attempts) == (state, 1)
    assert unchanged.lease_until is not None
    assert queued_ids() == []
    assert count(Event, Event.type == "outbox.retried") == 0


def test_a_row_taken_by_a_worker_meanwhile_is_not_reset(app, make_org):
    """The reset is conditional in the database, not on what the caller loaded."""
    acme = make_org("Acme")
    row = dead(acme)
    queues.queue().empty()
    assert row.state == OutboxState.DEAD  # loaded; then a worker claims it
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id)
        .values(state=OutboxState.SENDING, claim_token="w" * 32, attempts=7)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    ids = outbox.requeue(OutboxMessage.id == row.id)
    db.session.commit()
    assert ids == []
    taken = fresh(row)
    assert (taken.state, taken.claim_token, taken.attempts) == (OutboxState.SENDING, "w" * 32, 7)
    assert queued_ids() == []


def test_retry_now_on_another_orgs_row_is_a_404(app, make_org):
    acme, other = make_org("Acme"), make_org("Other")
    theirs = dead(other)
    nobodys = dead(None)
    queues.queue().empty()
    client = logged_in(app, owner_of(acme))
    for row in (theirs, nobodys):
        for headers in ({}, HX):
            response = client.post(f"{PAGE}/outbox/{row.public_id}/retry", headers=headers)
            assert response.status_code == 404
        assert fresh(row).state == OutboxState.DEAD
    assert client.post(f"{PAGE}/outbox/{'a' * 16}/retry").status_code == 404
    assert queued_ids() == []
    assert count(Event, Event.type == "outbox.retried") == 0


# --- retry all dead ------------------------------------------------------------------------


def test_retry_all_dead_resets_this_orgs_dead_rows_only(app, make_org):
    acme, other = make_org("Acme"), make_org("Other")
    ours = [dead(acme) for _ in range(3)]
    retrying = message(acme, OutboxState.RETRYING, attempts=2)
    sending = message(acme, OutboxState.SENDING, attempts=1)
    theirs = [dead(other) for _ in range(2)]
    nobodys = dead(None)
    queues.queue().empty()
    client = logged_in(app, owner_of(acme))

    response = client.post(f"{PAGE}/outbox/retry-dead")
    assert response.status_code == 302
    assert "3 dead messages are back in line." in client.get(PAGE).text
    for row in ours:
        assert (fresh(row).state, fresh(row).attempts) == (OutboxState.PENDING, 0)
    assert fresh(retrying).state == OutboxState.RETRYING
    assert fresh(sending).state == OutboxState.SENDING
    for row in (*theirs, nobodys):
        assert fresh(row).state == OutboxState.DEAD
    assert queued_ids() == sorted(m.id for m in ours)
    event = db.session.scalar(select(Event).where(Event.type == "outbox.retried"))
    assert (event.org_id, event.payload["count"]) == (acme.id, 3)

    # Nothing dead is left: a second press says so and changes nothing.
    queues.queue().empty()
    client.post(f"{PAGE}/outbox/retry-dead")
    assert "There are no dead messages to retry." in client.get(PAGE).text
    assert queued_ids() == []
    assert count(Event, Event.type == "outbox.retried") == 1


def test_retry_all_dead_goes_a_capped_number_at_a_time_in_batches(app, make_org, monkeypatch):
    monkeypatch.setattr(operations, "RETRY_ALL_CAP", 5)
    monkeypatch.setattr(outbox, "BATCH", 2)
    acme = make_org("Acme")
    rows = [dead(acme) for _ in range(7)]
    queues.queue().empty()
    client = logged_in(app, owner_of(acme))

    response = client.post(f"{PAGE}/outbox/retry-dead", headers=HX)
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="card" id="outbox"')
    trigger = html.unescape(response.headers["HX-Trigger"])
    assert "5 dead messages are back in line. More remain" in trigger
    assert "operations-changed" in trigger
    # The oldest five went, handed to RQ two ids per job.
    assert [len(job.args[0]) for job in queues.queue().get_jobs()] == [2, 2, 1]
    assert queued_ids() == sorted(m.id for m in rows[:5])
    assert count(OutboxMessage, OutboxMessage.state == OutboxState.DEAD) == 2
    # The list that comes back holds the two still dead.
    assert sorted(row_ids(response.text)) == sorted(m.public_id for m in rows[5:])

    response = client.post(f"{PAGE}/outbox/retry-dead", headers=HX)
    trigger = html.unescape(response.headers["HX-Trigger"])
    assert "2 dead messages are back in line." in trigger
    assert "More remain" not in trigger
    assert count(OutboxMessage, OutboxMessage.state == OutboxState.DEAD) == 0
    assert "Nothing is retrying or dead" in response.text


# --- pages of rows -------------------------------------------------------------------------


def test_rows_come_fifty_a_page_newest_first(app, make_org):
    acme, other = make_org("Acme"), make_org("Other")
    rows = [
        OutboxMessage(kind="email", org_id=acme.id, payload={"to": f"p{n}@example.com"})
        for n in range(operations.PAGE_SIZE * 2 + 7)
    ]
    for row in rows:
        row.state, row.attempts = OutboxState.DEAD, 6
    db.session.add_all(rows)
    db.session.commit()
    theirs = dead(other)
    newest_first = [m.public_id for m in reversed(rows)]
    client = logged_in(app, owner_of(acme))

    page = client.get(PAGE).text
    first = row_ids(page)
    assert first == newest_first[:50]
    older = re.search(r'hx-get="/settings/operations/outbox\?before=([a-z0-9]{16})"', page)
    assert older.group(1) == first[-1]

    second = client.get(f"{PAGE}/outbox?before={older.group(1)}", headers=HX)
    assert second.status_code == 200
    assert second.text.lstrip().startswith("<tr")
    assert row_ids(second.text) == newest_first[50:100]
    last = re.search(r"before=([a-z0-9]{16})", second.text).group(1)
    third = client.get(f"{PAGE}/outbox?before={last}", headers=HX).text
    assert row_ids(third) == newest_first[100:]
    assert "Show older" not in third

    # Without JavaScript, "Show older" is the page starting at that cursor.
    plain = client.get(f"{PAGE}/outbox?before={last}")
    assert plain.status_code == 302
    assert row_ids(client.get(plain.headers["Location"]).text) == newest_first[100:]

    # A mangled cursor, or another org's row as one, is a clear 400 that names nothing.
    for cursor in ("not-a-cursor", theirs.public_id, "a" * 16):
        response = client.get(f"{PAGE}?before={cursor}")
        assert response.status_code == 400, cursor
        assert "That link to older messages is not valid." in response.text


def test_describe_summarises_any_kind_of_payload():
    assert operations.describe("email", {"to": "a@example.com", "subject": "Hi"}) == (
        "a@example.com",
        "Hi",
    )
    assert operations.describe(
        "webhook", {"url": "https://hooks.example.com/x", "event_type": "driver.approved"}
    ) == ("https://hooks.example.com/x", "driver.approved")
    assert operations.describe("other", {"b": 1, "a": {"nested": True}}) == ("", "a, b")
    assert operations.describe("email", ["not", "a", "dict"]) == ("", "")
    long = operations.describe("email", {"to": "x", "subject": "s" * 500})[1]
    assert len(long) == operations.TEXT_CHARS and long.endswith("…")
