"""Delivering webhooks to a real HTTP receiver (tests/receivers.py): retries and what each
answer means, backoff on the test's clock, timeouts, endpoints that are slow or down, turning a
failing endpoint off, replays, and a worker process SIGKILLed in the middle of a delivery."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from email.utils import format_datetime

import pytest
import time_machine
from rq.job import Job
from sqlalchemy import select

from jobs import outbox as outbox_jobs
from plutomi import webhook_delivery
from plutomi.extensions import db, queues
from plutomi.models import OutboxMessage, OutboxState, Role, utcnow
from plutomi.services import outbox, webhooks
from tests.conftest import _free_port, owner_membership, owner_of
from tests.receivers import Answer, Receiver
from tests.test_reliability import Workers, failed_jobs, running_jobs
from tests.test_webhooks import (
    add_endpoint,
    deliveries,
    delivery,
    endpoint_now,
    move,
    verify,
)

NOTHING = {"done": 0, "retrying": 0, "dead": 0}


pytestmark = pytest.mark.local_receivers  # the receivers listen on 127.0.0.1


@pytest.fixture
def org(make_org):
    return make_org("Acme")


@pytest.fixture
def clock():
    """The test's clock, stopped at the start; delivery still waits on real sockets."""
    with time_machine.travel(utcnow(), tick=False) as traveller:
        yield traveller


def send_test(org, endpoint, count: int = 1) -> list[OutboxMessage]:
    """webhook.test deliveries to the endpoint, as the settings page's button sends them."""
    return [webhooks.send_test(owner_membership(org), endpoint.public_id) for _ in range(count)]


def seconds_until(when) -> float:
    return (when - utcnow()).total_seconds()


def emails_to() -> Counter:
    """The "endpoint turned off" emails queued, by address."""
    db.session.rollback()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    return Counter(
        row.payload["to"] for row in rows if row.payload.get("template") == "webhook_disabled"
    )


# --- what each answer means --------------------------------------------------------------------


def test_a_5xx_is_retried_after_5_s_and_delivered_with_the_same_webhook_id(
    org, webhook_receiver, clock
):
    webhook_receiver.script(Answer(500, "busy"))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    (row,) = send_test(org, endpoint)

    assert outbox.deliver([row.id]) == {"done": 0, "retrying": 1, "dead": 0}
    failed = delivery(row.id)
    assert failed.state == OutboxState.RETRYING
    assert failed.attempts == 1
    assert (failed.response_status, failed.response_body) == (500, "busy")
    assert failed.last_error == "Answered 500"
    assert failed.lease_until is None
    assert 5 * 0.8 <= seconds_until(failed.next_attempt_at) <= 5 * 1.2
    # Not due yet: nothing is claimed, no attempt is counted.
    assert outbox.deliver([row.id]) == NOTHING
    assert outbox.due_ids() == []

    clock.move_to(failed.next_attempt_at + timedelta(milliseconds=10))
    assert outbox.due_ids() == [row.id]
    assert outbox.deliver([row.id]) == {"done": 1, "retrying": 0, "dead": 0}
    done = delivery(row.id)
    assert (done.state, done.attempts) == (OutboxState.DONE, 2)
    assert (done.response_status, done.response_body, done.last_error) == (200, "ok", None)
    assert done.transport == "http"
    first, second = webhook_receiver.requests
    assert first.webhook_id == second.webhook_id == f"msg_{row.public_id}"
    assert first.body == second.body
    assert endpoint_now(endpoint.id).failing_since is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(302, headers={"Location": "/elsewhere"}), "Answered 302"),
        (Answer(307, headers={"Location": "/elsewhere"}), "Answered 307"),
        (Answer(503), "Answered 503"),
        (Answer(close=True), "Connection failed"),
    ],
    ids=["302", "307", "503", "closed"],
)
def test_redirects_server_errors_and_dropped_connections_are_retried(
    org, webhook_receiver, clock, answer, error
):
    webhook_receiver.script(answer)
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    (row,) = send_test(org, endpoint)

    assert outbox.deliver([row.id])["retrying"] == 1
    failed = delivery(row.id)
    assert failed.state == OutboxState.RETRYING
    assert failed.last_error.startswith(error)
    # A redirect is not followed: nothing went to /elsewhere.
    assert [r.path for r in webhook_receiver.requests] == ["/hooks"]

    clock.move_to(failed.next_attempt_at + timedelta(seconds=1))
    assert outbox.deliver([row.id])["done"] == 1
    assert [r.path for r in webhook_receiver.requests] == ["/hooks", "/hooks"]
    assert len(set(webhook_receiver.ids())) == 1


def test_a_receiver_that_hangs_up_after_each_answer_still_gets_the_whole_batch(
    org, webhook_receiver, monkeypatch
):
    """It closes the kept-alive connection without a Connection: close (an idle or
    per-connection limit): the next delivery goes on a new connection, not to the retries."""
    monkeypatch.setattr(webhook_delivery, "LANES_PER_ENDPOINT", 1)
    webhook_receiver.default = Answer(hang_up=True)
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    rows = send_test(org, endpoint, 4)

    assert outbox.deliver([row.id for row in rows]) == {"done": 4, "retrying": 0, "dead": 0}
    assert {(delivery(row.id).state, delivery(row.id).attempts) for row in rows} == {
        (OutboxState.DONE, 1)
    }
    assert sorted(webhook_receiver.ids()) == sorted(f"msg_{row.public_id}" for row in rows)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_waits_at_least_as_long_as_retry_after_says(org, webhook_receiver, clock, form):
    value = "120" if form == "seconds" else format_datetime(utcnow() + timedelta(seconds=120))
    webhook_receiver.script(Answer(429, "slow down", headers={"Retry-After": value}))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    (row,) = send_test(org, endpoint)

    assert outbox.deliver([row.id])["retrying"] == 1
    failed = delivery(row.id)
    assert failed.last_error == "Answered 429"
    assert 119 <= seconds_until(failed.next_attempt_at) <= 125  # not the usual 5 s
    clock.shift(timedelta(seconds=60))
    assert outbox.deliver([row.id]) == NOTHING
    clock.move_to(failed.next_attempt_at)
    assert outbox.deliver([row.id])["done"] == 1


def test_another_4xx_is_dead_at_once(org, webhook_receiver, clock):
    webhook_receiver.script(Answer(400, "unknown event type"))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    (row,) = send_test(org, endpoint)

    assert outbox.deliver([row.id]) == {"done": 0, "retrying": 0, "dead": 1}
    dead = delivery(row.id)
    assert (dead.state, dead.attempts) == (OutboxState.DEAD, 1)
    assert dead.last_error == "Answered 400: the receiver refused it"
    assert dead.response_body == "unknown event type"
    clock.shift(timedelta(days=3))
    assert outbox.due_ids() == []
    assert len(webhook_receiver.requests) == 1
    assert endpoint_now(endpoint.id).enabled  # one refusal does not turn it off


def test_410_turns_the_endpoint_off_tells_the_admins_and_replay_brings_its_events_back(
    org, webhook_receiver, make_member, run_jobs
):
    admin = make_member(org, Role.ADMIN)
    recruiter = make_member(org, Role.RECRUITER)
    webhook_receiver.script(Answer(410, "gone"))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    gone, waiting = send_test(org, endpoint, 2)

    assert outbox.deliver([gone.id])["dead"] == 1
    assert delivery(gone.id).last_error == "Answered 410 Gone"
    off = endpoint_now(endpoint.id)
    assert off.enabled is False
    assert "410 Gone" in off.disabled_reason
    assert emails_to() == {owner_of(org).email: 1, admin.email: 1}
    assert recruiter.email not in emails_to()
    # A delivery already on its way to an endpoint that is off is not sent, and kept (dead).
    assert outbox.deliver([waiting.id])["dead"] == 1
    assert delivery(waiting.id).last_error == "The endpoint is turned off"
    assert len(webhook_receiver.requests) == 1

    # The receiver is back: an admin turns the endpoint on again and replays the dead ones.
    webhooks.update_endpoint(
        owner_membership(org),
        endpoint.public_id,
        webhooks.EndpointInput(url=endpoint.url, event_types=("applicant.moved",)),
    )
    back = endpoint_now(endpoint.id)
    assert back.enabled and back.disabled_reason is None and back.failing_since is None
    assert webhooks.replay_dead(owner_membership(org), endpoint.public_id) == 2
    assert {row.state for row in deliveries(endpoint)} == {OutboxState.PENDING}
    run_jobs()
    webhook_receiver.wait_for(3)
    assert {(row.state, row.attempts) for row in deliveries(endpoint)} == {(OutboxState.DONE, 1)}
    assert sorted(webhook_receiver.ids()) == sorted(
        [f"msg_{gone.public_id}"] * 2 + [f"msg_{waiting.public_id}"]
    )
    assert emails_to() == {owner_of(org).email: 1, admin.email: 1}  # not again


def test_410_turns_the_endpoint_off_even_when_another_delivery_of_the_batch_got_through(
    org, webhook_receiver, monkeypatch
):
    monkeypatch.setattr(webhook_delivery, "LANES_PER_ENDPOINT", 1)  # in order: 200, then 410
    webhook_receiver.script(Answer(200), Answer(410))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    rows = send_test(org, endpoint, 2)

    assert outbox.deliver([row.id for row in rows]) == {"done": 1, "retrying": 0, "dead": 1}
    off = endpoint_now(endpoint.id)
    assert off.enabled is False
    assert "410 Gone" in off.disabled_reason
    assert emails_to() == {owner_of(org).email: 1}


def test_after_the_last_attempt_it_is_dead_and_retry_now_sends_it_again(
    org, webhook_receiver, clock, run_jobs
):
    webhook_receiver.default = Answer(500)
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    (row,) = send_test(org, endpoint)

    for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
        counts = outbox.deliver([row.id])
        current = delivery(row.id)
        assert current.attempts == attempt
        if attempt < webhooks.MAX_ATTEMPTS:
            assert counts["retrying"] == 1
            base = webhooks.BACKOFF[attempt - 1]
            assert base * 0.8 <= seconds_until(current.next_attempt_at) <= base * 1.2
            clock.move_to(current.next_attempt_at)
        else:
            assert counts["dead"] == 1
            assert current.state == OutboxState.DEAD
    clock.shift(timedelta(days=7))
    assert outbox.due_ids() == []
    assert len(webhook_receiver.requests) == webhooks.MAX_ATTEMPTS

    webhook_receiver.default = Answer(200)
    assert webhooks.retry_now(owner_membership(org), endpoint.public_id, row.public_id) is True
    assert (delivery(row.id).state, delivery(row.id).attempts) == (OutboxState.PENDING, 0)
    run_jobs()
    done = delivery(row.id)
    assert (done.state, done.attempts) == (OutboxState.DONE, 1)
    assert set(webhook_receiver.ids()) == {f"msg_{row.public_id}"}
    assert len(webhook_receiver.requests) == webhooks.MAX_ATTEMPTS + 1
    # A delivered row is not sent again by a second click.
    assert webhooks.retry_now(owner_membership(org), endpoint.public_id, row.public_id) is False


def test_replaying_the_dead_spreads_them_at_the_replay_rate(org, webhook_receiver, clock, run_jobs):
    per_second = webhooks.REPLAY_PER_SECOND
    count = 2 * per_second + 5
    webhook_receiver.default = Answer(400)
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    rows = send_test(org, endpoint, count)
    queues.queue().empty()  # one batch instead of a job per row
    assert outbox.deliver([row.id for row in rows])["dead"] == count
    assert {row.state for row in deliveries(endpoint)} == {OutboxState.DEAD}
    assert len(webhook_receiver.requests) == count

    webhook_receiver.default = Answer(200)
    start = utcnow()
    assert webhooks.replay_dead(owner_membership(org), endpoint.public_id) == count
    offsets = Counter(
        round((row.next_attempt_at - start).total_seconds()) for row in deliveries(endpoint)
    )
    assert offsets == {0: per_second, 1: per_second, 2: 5}
    # Each later second's share also waits in RQ's scheduler for its own time: the sweep alone
    # would hand out 30 seconds' worth at once.
    registry = queues.queue().scheduled_job_registry
    shares = sorted(
        len(Job.fetch(job_id, connection=queues.connection).args[0])
        for job_id in registry.get_job_ids()
    )
    assert shares == [5, per_second]

    def done() -> int:
        return sum(row.state == OutboxState.DONE for row in deliveries(endpoint))

    run_jobs()  # the hand-off at commit: only those due now go
    assert done() == per_second
    clock.shift(timedelta(seconds=1))
    assert outbox.sweep() == per_second
    run_jobs()
    assert done() == 2 * per_second
    clock.shift(timedelta(seconds=1))
    assert outbox.sweep() == 5
    run_jobs()
    assert done() == count
    assert Counter(webhook_receiver.ids()) == {f"msg_{row.public_id}": 2 for row in rows}


# --- a receiver that is down, then up ----------------------------------------------------------


def test_a_receiver_that_is_down_gets_the_event_once_it_is_up_with_the_same_id(
    org, make_opening, make_applicant, clock, run_jobs
):
    port = _free_port()  # nothing listens there yet: connections are refused
    opening = make_opening(org)
    endpoint = add_endpoint(org, f"http://127.0.0.1:{port}/hooks", "applicant.moved")
    applicant = make_applicant(opening)
    move(org, applicant, opening.stages[1])
    (row,) = deliveries(endpoint)

    run_jobs()
    refused = delivery(row.id)
    assert (refused.state, refused.attempts) == (OutboxState.RETRYING, 1)
    assert refused.last_error.startswith("Connection failed")
    assert refused.response_status is None

    with Receiver(port=port) as receiver:
        receiver.script(Answer(503, "starting up"))
        clock.move_to(refused.next_attempt_at)
        assert outbox.sweep() == 1
        run_jobs()
        starting = delivery(row.id)
        assert (starting.state, starting.attempts) == (OutboxState.RETRYING, 2)
        assert starting.response_status == 503

        clock.move_to(starting.next_attempt_at)
        assert outbox.sweep() == 1
        run_jobs()
        received = receiver.wait_for(2)
        assert verify(endpoint_now(endpoint.id).secret, received[1])["id"] == f"msg_{row.public_id}"
    done = delivery(row.id)
    assert (done.state, done.attempts) == (OutboxState.DONE, 3)
    assert [r.webhook_id for r in received] == [f"msg_{row.public_id}"] * 2
    assert received[0].body == received[1].body


# --- an endpoint failing for days --------------------------------------------------------------


def test_an_endpoint_failing_for_more_than_5_days_is_turned_off_and_a_success_resets_the_run(
    org, webhook_receiver, make_member, clock
):
    admin = make_member(org, Role.ADMIN)
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    start = utcnow()

    def attempt(answer: Answer):
        webhook_receiver.script(answer)
        (row,) = send_test(org, endpoint)
        outbox.deliver([row.id])
        return endpoint_now(endpoint.id)

    assert attempt(Answer(500)).failing_since == start
    clock.shift(timedelta(days=3))
    assert attempt(Answer(200)).failing_since is None  # the run ends
    clock.shift(timedelta(days=1))
    assert attempt(Answer(500)).failing_since == start + timedelta(days=4)
    clock.shift(timedelta(days=4))
    later = attempt(Answer(400))
    assert later.enabled  # 4 days in a row, and 7 since the first failure: still on
    assert later.failing_since == start + timedelta(days=4)
    assert emails_to() == {}

    clock.shift(timedelta(days=1, minutes=1))
    off = attempt(Answer(503))
    assert off.enabled is False
    assert off.disabled_reason == "every delivery to it has failed for 5 days."
    assert emails_to() == {owner_of(org).email: 1, admin.email: 1}
    assert len(webhook_receiver.requests) == 5


# --- timeouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [1, webhook_delivery.LANES_PER_ENDPOINT])
def test_a_timeout_is_retried_and_the_endpoints_other_rows_wait_without_an_attempt(
    org, webhook_receiver, clock, monkeypatch, lanes
):
    # Short, yet ample for the quick receiver, which answers under the same timeout.
    monkeypatch.setattr(webhook_delivery, "TIMEOUT", 3.0)
    monkeypatch.setattr(webhook_delivery, "LANES_PER_ENDPOINT", lanes)
    webhook_receiver.default = Answer(delay=10)  # far slower than TIMEOUT
    slow = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    with Receiver() as quick:
        fast = add_endpoint(org, quick.url(), "applicant.moved")
        slow_rows = send_test(org, slow, 4 * lanes + 2)  # 4 or more rows a lane
        fast_rows = send_test(org, fast, 2)
        ids = [row.id for row in slow_rows + fast_rows]

        counts = outbox.deliver(ids)
        assert len(quick.requests) == 2
    assert counts == {"done": 2, "retrying": lanes, "dead": 0}
    # Each lane waits out one timeout, not one per row: one request a lane reached the
    # receiver, and the rest were given back untried.
    assert len(webhook_receiver.requests) == lanes
    slow_now = [delivery(row.id) for row in slow_rows]
    timed_out = [row for row in slow_now if row.attempts == 1]
    released = [row for row in slow_now if row.attempts == 0]
    assert len(timed_out) == lanes and len(released) == len(slow_rows) - lanes
    for row in timed_out:
        assert row.state == OutboxState.RETRYING
        assert row.last_error == "Timed out after 3 s"
        assert seconds_until(row.next_attempt_at) >= 4
    for row in released:
        assert (row.state, row.last_error, row.lease_until) == (OutboxState.RETRYING, None, None)
        # They wait for a timed-out one's backoff, not a moment less.
        assert row.next_attempt_at in {t.next_attempt_at for t in timed_out}
    assert {delivery(row.id).state for row in fast_rows} == {OutboxState.DONE}
    assert endpoint_now(slow.id).failing_since is not None
    assert endpoint_now(fast.id).failing_since is None

    webhook_receiver.default = Answer()
    clock.move_to(max(row.next_attempt_at for row in slow_now))
    assert sorted(outbox.due_ids()) == sorted(row.id for row in slow_rows)
    assert outbox.deliver([row.id for row in slow_rows])["done"] == len(slow_rows)
    attempts = Counter(delivery(row.id).attempts for row in slow_rows)
    assert attempts == {2: lanes, 1: len(slow_rows) - lanes}
    assert len(set(webhook_receiver.ids())) == len(slow_rows)


# --- one slow receiver does not hold up another ------------------------------------------------


def in_thread(app, fn) -> tuple[threading.Thread, dict]:
    """Run fn in a thread of its own with its own app context and database session, as a
    worker would; the result (or the error) lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            with app.app_context():
                outcome["result"] = fn()
        except BaseException as exc:  # reported by the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_slow_receiver_does_not_hold_up_another_endpoints_delivery(
    app, org, make_opening, make_applicant, webhook_receiver
):
    # A answers only when let go: B's delivery must not wait for it, whatever the timing.
    webhook_receiver.default = Answer(delay=60)
    a = add_endpoint(org, webhook_receiver.url("/slow"), "applicant.moved")
    opening = make_opening(org)
    applicant = make_applicant(opening)
    with Receiver() as quick:
        b = add_endpoint(org, quick.url("/fast"), "applicant.moved")
        move(org, applicant, opening.stages[1])
        # Plain ids: the rows belong to this thread's session.
        (a_id,) = (row.id for row in deliveries(a))
        (b_id,) = (row.id for row in deliveries(b))
        started = time.monotonic()
        thread, outcome = in_thread(app, lambda: outbox.deliver([a_id, b_id]))
        # Watch B's row from this connection while the batch runs (the deadline only keeps a
        # broken build from hanging; A holds its answer for a minute).
        while delivery(b_id).state != OutboxState.DONE:
            assert "error" not in outcome, outcome
            assert time.monotonic() - started < 30, "B waited for A"
            time.sleep(0.02)
        # B is received and its row committed, while A's request is still unanswered.
        assert delivery(a_id).state == OutboxState.SENDING
        (slow_request,) = webhook_receiver.wait_for(1)
        (fast_request,) = quick.wait_for(1)
        assert slow_request.answered_at is None
        assert fast_request.answered_at is not None
        webhook_receiver.release()
        thread.join(10)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["result"] == {"done": 2, "retrying": 0, "dead": 0}
    assert delivery(a_id).state == OutboxState.DONE
    assert slow_request.answered_at is not None


# --- a worker killed mid-delivery --------------------------------------------------------------


def test_a_worker_killed_mid_delivery_delivers_it_again_after_the_lease_with_the_same_id(
    app, org, make_opening, make_applicant, webhook_receiver, run_jobs, tmp_path, monkeypatch
):
    monkeypatch.setenv("ALLOW_PRIVATE_WEBHOOK_TARGETS", "1")  # for the worker process
    # The first request is held until the worker is dead; the next is answered at once.
    webhook_receiver.script(Answer(delay=60))
    endpoint = add_endpoint(org, webhook_receiver.url(), "applicant.moved")
    opening = make_opening(org)
    applicant = make_applicant(opening)
    workers = Workers(tmp_path)
    try:
        worker = workers.start(app)
        move(org, applicant, opening.stages[1])  # its commit hands the delivery to RQ
        (row,) = deliveries(endpoint)
        workers.wait_for(lambda: len(webhook_receiver.requests) == 1, "the worker's request")
        workers.kill(worker)
        (first,) = webhook_receiver.requests
        secret = endpoint_now(endpoint.id).secret
        assert verify(secret, first)["id"] == f"msg_{row.public_id}"
        killed = running_jobs()
        assert len(killed) == 1
    finally:
        workers.stop_all()
        webhook_receiver.release()

    held = delivery(row.id)
    assert (held.state, held.attempts) == (OutboxState.SENDING, 1)
    # The lease holds: nobody sends it again yet.
    assert outbox.sweep() == 0
    run_jobs()
    assert len(webhook_receiver.requests) == 1

    with time_machine.travel(held.lease_until + timedelta(seconds=1), tick=True):
        assert outbox_jobs.sweep() == 1
        run_jobs()
        second = webhook_receiver.wait_for(2)[1]
        assert verify(secret, second) == first.json()
    assert failed_jobs() <= killed
    done = delivery(row.id)
    assert (done.state, done.attempts) == (OutboxState.DONE, 2)
    assert first.webhook_id == second.webhook_id == f"msg_{row.public_id}"
    assert first.body == second.body
    assert len(webhook_receiver.requests) == 2
