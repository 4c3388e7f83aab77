"""The outbox on a real database, Redis and SMTP server: hand-off, claims, retries, the sweep."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from types import SimpleNamespace

import pytest
import time_machine
from sqlalchemy import func, select, update

from plutomi.extensions import db, queues
from plutomi.models import OutboxMessage, OutboxState, utcnow
from plutomi.services import outbox
from plutomi.services.errors import Invalid
from plutomi.services.fields import normalize_email
from plutomi.services.mail import queue_email
from tests.conftest import _free_port

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def queue_reset_mail(to: str = "ada@example.com", token: str = "tok-123") -> OutboxMessage:
    """An email outbox row, written by queue_email like every service writes it."""
    return queue_email(
        to, "password_reset", user=SimpleNamespace(name="Ada"), token=token, ttl_minutes=60
    )


def row(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def outbox_count() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


def queued_ids() -> list[list[int]]:
    """The ids of every job waiting in the queue, one list per job."""
    return [list(job.args[0]) for job in queues.queue().get_jobs()]


def closed_port_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{_free_port()}"


# --- hand-off after commit ------------------------------------------------------------------


def test_a_committed_email_is_handed_to_rq_after_commit(app):
    message = queue_reset_mail()
    # Before the commit nothing is handed off: the row could still be rolled back.
    db.session.flush()
    assert queued_ids() == []
    db.session.commit()

    jobs = queues.queue().get_jobs()
    assert len(jobs) == 1
    assert jobs[0].func_name == "jobs.outbox.deliver"
    assert list(jobs[0].args[0]) == [message.id]
    fresh = row(message.id)
    assert fresh.state == OutboxState.PENDING
    assert fresh.attempts == 0
    assert fresh.payload["subject"] == "Reset your Plutomi password"


def test_a_rolled_back_email_is_neither_kept_nor_handed_off(app, make_user):
    queue_reset_mail()
    db.session.flush()  # it had an id, and was collected for the hand-off
    db.session.rollback()
    assert outbox_count() == 0
    assert queued_ids() == []
    # A later, unrelated commit in the same session does not hand the forgotten id off either.
    make_user()
    assert queued_ids() == []


def test_a_rolled_back_savepoint_keeps_the_outer_rows_hand_off(app):
    kept = queue_reset_mail("kept@example.com")
    db.session.flush()
    with pytest.raises(RuntimeError), db.session.begin_nested():
        queue_reset_mail("dropped@example.com")
        db.session.flush()
        raise RuntimeError("e.g. a unique violation caught by the service")
    db.session.commit()
    assert outbox_count() == 1
    assert [kept.id in ids for ids in queued_ids()] == [True]


def test_one_commit_hands_off_every_row_it_wrote(app):
    messages = [queue_reset_mail(f"p{i}@example.com") for i in range(3)]
    db.session.commit()
    ids = sorted(m.id for m in messages)
    assert queued_ids() == [ids]


# --- delivery ------------------------------------------------------------------------------


SMTP_TOKEN = "tok-smtp-4Zq8nJ0bVx2LrT7yWc9e"  # as long as a real one: 20 characters or more


def test_run_jobs_delivers_over_smtp(make_app, smtp_server, run_jobs):
    smtp_app = make_app(SMTP_URL=smtp_server.url)
    with smtp_app.test_request_context():
        message = queue_reset_mail("ada@example.com", token=SMTP_TOKEN)
        db.session.commit()
        message_id, public_id = message.id, message.public_id

        assert run_jobs() == 0

        assert len(smtp_server.messages) == 1
        mail = smtp_server.messages[0]
        assert parseaddr(mail["From"])[1] == "no-reply@plutomi.localhost"
        assert mail["To"] == "ada@example.com"
        assert mail["Subject"] == "Reset your Plutomi password"
        assert mail["Message-ID"] == f"<{public_id}@localhost>"
        body = mail.get_payload(decode=True).decode()
        assert "Hello Ada," in body
        assert f"http://localhost/password/reset/{SMTP_TOKEN}" in body
        assert "within 60 minutes" in body

        done = row(message_id)
        assert done.state == OutboxState.DONE
        assert done.transport == "smtp"
        assert done.attempts == 1
        assert done.done_at is not None
        assert done.lease_until is None
        assert done.last_error is None
        # Sent, the row keeps no live link: a copy of the database resets no password.
        assert SMTP_TOKEN not in json.dumps(done.payload)
        assert "/password/reset/(removed once sent)" in done.payload["text"]
        assert done.payload["subject"] == "Reset your Plutomi password"

        # Running the jobs again sends nothing twice.
        assert run_jobs() == 0
        assert len(smtp_server.messages) == 1


def test_an_address_with_a_domain_of_other_letters_is_delivered_over_smtp(
    make_app, smtp_server, run_jobs
):
    smtp_app = make_app(SMTP_URL=smtp_server.url)
    with smtp_app.test_request_context():
        to = normalize_email("Zoe@Bücher.example")
        assert to == "zoe@bücher.example"  # kept as typed (lower case), shown so
        message = queue_reset_mail(to, token="tok-idn")
        db.session.commit()
        assert run_jobs() == 0
        assert row(message.id).state == OutboxState.DONE
        [mail] = smtp_server.messages
        assert mail["To"] == "zoe@xn--bcher-kva.example"  # the domain as mail servers take it
    # Letters beyond ASCII before the @ would need SMTPUTF8 all the way: refused when typed.
    with pytest.raises(Invalid, match="only ASCII letters"):
        normalize_email("zoë@example.com")


def test_without_smtp_the_mail_is_captured_for_the_dev_mailbox(app, client, run_jobs):
    message = queue_reset_mail("grace@example.com", token="tok-box")
    db.session.commit()
    public_id = message.public_id

    assert run_jobs() == 0
    done = row(message.id)
    assert done.state == OutboxState.DONE
    assert done.transport == "mailbox"
    assert done.attempts == 1

    assert 'href="/dev/mailbox"' in client.get("/login").text  # linked from the nav
    page = client.get("/dev/mailbox")
    assert page.status_code == 200
    assert "grace@example.com" in page.text
    assert "Reset your Plutomi password" in page.text
    assert f"/dev/mailbox/{public_id}" in page.text
    assert "done" in page.text

    one = client.get(f"/dev/mailbox/{public_id}")
    assert one.status_code == 200
    assert "http://localhost/password/reset/tok-box" in one.text
    assert client.get("/dev/mailbox/aaaaaaaaaaaaaaaa").status_code == 404


def test_the_dev_mailbox_is_404_when_disabled(make_app, app):
    message = queue_reset_mail()
    db.session.commit()
    deployed = make_app(DEV_MAILBOX=False).test_client()
    assert "/dev/mailbox" not in deployed.get("/login").text
    assert deployed.get("/dev/mailbox").status_code == 404
    assert deployed.get(f"/dev/mailbox/{message.public_id}").status_code == 404


# --- failures, retries and the dead letter --------------------------------------------------


def test_smtp_down_retries_with_backoff_until_dead(make_app):
    down = make_app(SMTP_URL=closed_port_url("smtp"))
    with time_machine.travel(START, tick=False) as clock, down.test_request_context():
        message = queue_reset_mail()
        db.session.commit()
        message_id = message.id

        assert outbox.deliver([message_id]) == {"done": 0, "retrying": 1, "dead": 0}
        failed = row(message_id)
        assert failed.state == OutboxState.RETRYING
        assert failed.attempts == 1
        assert "ConnectionRefusedError" in failed.last_error
        assert failed.lease_until is None
        assert failed.transport is None
        wait = (failed.next_attempt_at - utcnow()).total_seconds()
        assert 30 * 0.8 <= wait <= 30 * 1.2

        # Not due yet: a second delivery claims nothing and counts no attempt.
        assert outbox.deliver([message_id]) == {"done": 0, "retrying": 0, "dead": 0}
        assert outbox.due_ids() == []
        assert row(message_id).attempts == 1

        max_attempts = failed.max_attempts
        for attempt in range(2, max_attempts + 1):
            clock.move_to(row(message_id).next_attempt_at + timedelta(seconds=1))
            assert outbox.due_ids() == [message_id]
            counts = outbox.deliver([message_id])
            current = row(message_id)
            assert current.attempts == attempt
            if attempt < max_attempts:
                assert counts["retrying"] == 1
                assert current.state == OutboxState.RETRYING
                base = outbox.BACKOFF[min(attempt - 1, len(outbox.BACKOFF) - 1)]
                wait = (current.next_attempt_at - utcnow()).total_seconds()
                assert base * 0.8 <= wait <= base * 1.2
            else:
                assert counts["dead"] == 1
                assert current.state == OutboxState.DEAD
                assert "ConnectionRefusedError" in current.last_error

        # A dead row is never claimed again by itself, however long we wait.
        clock.shift(timedelta(days=30))
        assert outbox.due_ids() == []
        assert outbox.sweep() == 0
        assert outbox.deliver([message_id]) == {"done": 0, "retrying": 0, "dead": 0}
        assert row(message_id).attempts == max_attempts


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("smtp://user:secret@{host}:{port}", "SMTP AUTH extension not supported"),
        ("smtp://{host}:{port}?starttls=1", "STARTTLS extension not supported"),
        ("smtp://{host}:{port}?starttls=true", "STARTTLS extension not supported"),
        ("smtp://{host}:{port}?starttls=ture", "starttls must be 1 or 0, not 'ture'"),
        ("ftp://{host}:{port}", "SMTP_URL must start with smtp:// or smtps://"),
    ],
)
def test_a_relay_that_refuses_the_session_is_retried(make_app, smtp_server, url, error):
    relay = make_app(SMTP_URL=url.format(host=smtp_server.host, port=smtp_server.port))
    with relay.test_request_context():
        message = queue_reset_mail()
        db.session.commit()
        assert outbox.deliver([message.id])["retrying"] == 1
        failed = row(message.id)
        assert failed.state == OutboxState.RETRYING
        assert error in failed.last_error
        assert smtp_server.messages == []


def test_retry_now_delivers_a_dead_row(make_app, smtp_server, run_jobs):
    down = make_app(SMTP_URL=closed_port_url("smtp"))
    with down.test_request_context():
        message = queue_reset_mail()
        message.max_attempts = 1
        db.session.commit()
        message_id = message.id
        assert outbox.deliver([message_id])["dead"] == 1

    smtp_app = make_app(SMTP_URL=smtp_server.url)
    with smtp_app.test_request_context():
        dead = row(message_id)
        assert dead.state == OutboxState.DEAD
        outbox.requeue(OutboxMessage.id == dead.id)
        db.session.commit()
        assert row(message_id).state == OutboxState.PENDING
        assert any(message_id in ids for ids in queued_ids())

        assert run_jobs() == 0
        done = row(message_id)
        assert done.state == OutboxState.DONE
        assert done.transport == "smtp"
        assert done.attempts == 1
        assert done.last_error is None
        assert [m["Message-ID"] for m in smtp_server.messages] == [f"<{done.public_id}@localhost>"]


# --- claims --------------------------------------------------------------------------------


def test_two_claims_on_the_same_rows_never_both_win(app):
    messages = [queue_reset_mail(f"c{i}@example.com") for i in range(3)]
    db.session.commit()
    ids = [m.id for m in messages]

    first = outbox.claim(ids)
    assert sorted(m.id for m in first) == sorted(ids)
    assert outbox.claim(ids) == []
    assert outbox.due_ids() == []

    held = [row(i) for i in ids]
    assert {m.state for m in held} == {OutboxState.SENDING}
    assert len({m.claim_token for m in held}) == 1
    assert {m.attempts for m in held} == {1}
    lease = (held[0].lease_until - utcnow()).total_seconds()
    assert outbox.LEASE.total_seconds() - 60 < lease <= outbox.LEASE.total_seconds()


def test_a_row_whose_lease_ran_out_is_claimable_again(app, run_jobs):
    """A worker killed mid-send leaves the row sending; once its lease is past, it is free."""
    alive, killed = queue_reset_mail("alive@example.com"), queue_reset_mail("killed@example.com")
    db.session.commit()
    queues.queue().empty()
    now = utcnow()
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == alive.id)
        .values(
            state=OutboxState.SENDING,
            lease_until=now + timedelta(minutes=4),
            claim_token="a" * 32,
            attempts=1,
        )
    )
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == killed.id)
        .values(
            state=OutboxState.SENDING,
            lease_until=now - timedelta(seconds=1),
            claim_token="k" * 32,
            attempts=1,
        )
    )
    db.session.commit()
    alive_id, killed_id = alive.id, killed.id

    # Only the expired lease is due; the sweep hands it (and only it) out again.
    assert outbox.due_ids() == [killed_id]
    assert outbox.sweep() == 1
    assert queued_ids() == [[killed_id]]

    reclaimed = outbox.claim([alive_id, killed_id])
    assert [m.id for m in reclaimed] == [killed_id]
    assert reclaimed[0].claim_token != "k" * 32
    assert reclaimed[0].attempts == 2

    # The row is let go again (as if this claimer died too); the queued job then delivers it.
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == killed_id)
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert run_jobs() == 0
    assert row(killed_id).state == OutboxState.DONE
    assert row(killed_id).attempts == 3
    assert row(alive_id).state == OutboxState.SENDING
    assert row(alive_id).claim_token == "a" * 32


takeovers: list = []


@outbox.sender("test-takeover")
def _slow_sender(message: OutboxMessage) -> str:
    """Sends, then stalls past the lease while another worker takes the whole batch over."""
    step = takeovers[0]
    step["sent"].append(message.id)
    if len(step["sent"]) == 1:
        step["clock"].shift(outbox.LEASE + timedelta(seconds=1))
        with step["app"].app_context():  # another worker: its own context and session
            taken = outbox.claim(step["ids"])
            step["other_token"] = taken[0].claim_token
            step["other_ids"] = [m.id for m in taken]
            db.session.remove()
    return "test"


@outbox.sender("test-skewed-takeover")
def _overtaken_sender(message: OutboxMessage) -> str:
    """While the first row is sent, another worker (whose clock runs ahead) claims them all."""
    step = takeovers[0]
    step["sent"].append(message.id)
    if len(step["sent"]) == 1:
        with step["app"].app_context():
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(step["ids"]))
                .values(claim_token="b" * 32, attempts=OutboxMessage.attempts + 1)
            )
            db.session.commit()
            db.session.remove()
    return "test"


def test_a_batch_out_of_time_hands_its_untried_rows_back_with_their_attempt(app, monkeypatch):
    """A slow relay: the batch stops sending well before RQ or its lease would stop it, and
    the rows it never tried go back as they were, not one attempt nearer to dead."""
    rows = [queue_reset_mail(f"r{n}@example.com") for n in range(4)]
    db.session.commit()
    ids = [m.id for m in rows]
    # A batch stops sending before its lease ends, and RQ gives its job longer than that.
    assert outbox.SENDING_TIME < outbox.LEASE
    assert outbox.LEASE.total_seconds() < outbox.JOB_TIMEOUT
    monkeypatch.setattr(outbox, "SENDING_TIME", timedelta(seconds=0.05))
    sent = []

    def slow(message):
        sent.append(message.id)
        time.sleep(0.06)
        return "test"

    monkeypatch.setitem(outbox._senders, "email", slow)
    assert outbox.deliver(ids) == {"done": 1, "retrying": 0, "dead": 0}
    assert sent == ids[:1]
    back = [row(i) for i in ids[1:]]
    assert {(m.state, m.attempts, m.claim_token) for m in back} == {(OutboxState.PENDING, 0, None)}
    assert all(m.next_attempt_at <= utcnow() for m in back)
    # Handed to RQ, a batch's job may outlive the lease: RQ never stops it first.
    outbox.enqueue(ids)
    assert {job.timeout for job in queues.queue().get_jobs()} == {outbox.JOB_TIMEOUT}


def test_a_row_whose_last_attempt_never_finished_is_dead_not_sent_forever(app):
    message = queue_reset_mail("stuck@example.com")
    db.session.commit()
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(
            state=OutboxState.SENDING,
            lease_until=utcnow() - timedelta(seconds=1),
            claim_token="s" * 32,
            attempts=OutboxMessage.max_attempts,
        )
    )
    db.session.commit()
    assert outbox.claim([message.id]) == []
    outbox.sweep()
    dead = row(message.id)
    assert dead.state == OutboxState.DEAD and "never finished" in dead.last_error
    # Dead, it can be retried by hand like any other.
    assert outbox.requeue(OutboxMessage.id == message.id) == [message.id]


def test_a_worker_that_lost_its_claim_cannot_finish_the_row(app):
    rows = [OutboxMessage(kind="test-takeover", payload={"n": n}) for n in range(3)]
    db.session.add_all(rows)
    db.session.commit()
    ids = [m.id for m in rows]
    with time_machine.travel(utcnow(), tick=False) as clock:
        takeovers[:] = [{"sent": [], "clock": clock, "app": app, "ids": ids}]
        try:
            outbox.deliver(ids)
        finally:
            step = takeovers.pop()

    # The other worker took every row once our lease had run out.
    assert step["other_ids"] == ids
    # We sent the first row before it happened (a duplicate the receiver can drop by its id),
    # but our final update, conditional on our claim token, did not mark it done...
    assert step["sent"] == [ids[0]]
    # ...and we sent none of the rows after it: the lease was over, they are no longer ours.
    for message_id in ids:
        current = row(message_id)
        assert current.state == OutboxState.SENDING
        assert current.claim_token == step["other_token"]
        assert current.transport is None
        assert current.attempts == 2


def test_a_claim_taken_over_mid_batch_is_never_finished_by_the_old_holder(app):
    """Even when our clock says the lease still holds, rows whose claim token changed under us
    stay with their new holder: every final update is conditional on our own token."""
    rows = [OutboxMessage(kind="test-skewed-takeover", payload={"n": n}) for n in range(3)]
    db.session.add_all(rows)
    db.session.commit()
    ids = [m.id for m in rows]
    takeovers[:] = [{"sent": [], "app": app, "ids": ids}]
    try:
        outbox.deliver(ids)
    finally:
        step = takeovers.pop()
    # At-least-once: we did send them (the receiver drops duplicates by the stable id)...
    assert step["sent"] == ids
    # ...but finishing them is the new holder's job, not ours.
    for message_id in ids:
        current = row(message_id)
        assert current.state == OutboxState.SENDING
        assert current.claim_token == "b" * 32
        assert current.transport is None
        assert current.done_at is None


# --- Redis down, and the sweep --------------------------------------------------------------


def test_redis_down_at_commit_delays_the_mail_and_loses_nothing(app, make_app, client, run_jobs):
    down = make_app(REDIS_URL=closed_port_url("redis"))
    healthy_redis = app.extensions["redis"]
    try:
        with down.test_request_context():
            message = queue_reset_mail("patient@example.com")
            db.session.commit()  # no error: the hand-off is best effort
            message_id = message.id
            assert row(message_id).state == OutboxState.PENDING
            health = down.test_client().get("/healthz")
            assert health.status_code == 503
            assert health.json["redis"] == "down"
    finally:
        # The fixture flushes every app's Redis afterwards; give this one a server to flush.
        down.extensions["redis"] = healthy_redis

    assert queued_ids() == []
    assert outbox.sweep() == 1
    assert queued_ids() == [[message_id]]
    assert run_jobs() == 0
    done = row(message_id)
    assert done.state == OutboxState.DONE
    assert done.transport == "mailbox"
    assert "patient@example.com" in client.get("/dev/mailbox").text


def test_two_batches_with_the_same_ends_and_size_stay_two_jobs(app):
    """RQ overwrites a job whose id is taken: a batch must never hide another batch's ids."""
    outbox.enqueue([1, 2, 5])
    outbox.enqueue([1, 4, 5])
    assert sorted(queued_ids()) == [[1, 2, 5], [1, 4, 5]]


def test_sweep_with_nothing_due_enqueues_nothing(app):
    assert outbox.sweep() == 0
    assert queued_ids() == []

    now = utcnow()
    later = now + timedelta(minutes=10)
    not_due = [
        OutboxMessage(kind="email", payload={}, state=OutboxState.DONE, done_at=now),
        OutboxMessage(kind="email", payload={}, state=OutboxState.DEAD, attempts=6),
        OutboxMessage(kind="email", payload={}, state=OutboxState.RETRYING, next_attempt_at=later),
        OutboxMessage(kind="email", payload={}, state=OutboxState.PENDING, next_attempt_at=later),
        OutboxMessage(kind="email", payload={}, state=OutboxState.SENDING, lease_until=later),
    ]
    db.session.add_all(not_due)
    db.session.commit()
    queues.queue().empty()

    assert outbox.due_ids() == []
    assert outbox.sweep() == 0
    assert queued_ids() == []

    due = OutboxMessage(kind="email", payload={}, state=OutboxState.RETRYING, next_attempt_at=now)
    db.session.add(due)
    db.session.commit()
    queues.queue().empty()
    assert outbox.sweep() == 1
    assert queued_ids() == [[due.id]]


def test_the_sweep_hands_out_large_backlogs_in_batches(app):
    db.session.add_all(OutboxMessage(kind="email", payload={}) for _ in range(outbox.BATCH * 2 + 5))
    db.session.commit()
    queues.queue().empty()
    assert outbox.sweep() == outbox.BATCH * 2 + 5
    batches = queued_ids()
    assert [len(b) for b in batches] == [outbox.BATCH, outbox.BATCH, 5]
    assert len({i for b in batches for i in b}) == outbox.BATCH * 2 + 5


def test_a_hand_off_is_one_round_trip_to_redis_however_many_batches(app, monkeypatch):
    """Enqueued one by one, each RQ job cost two round trips; all of them go in one."""
    from redis.client import Pipeline

    executed = []
    real = Pipeline.execute
    monkeypatch.setattr(
        Pipeline, "execute", lambda pipe, *a, **k: executed.append(1) or real(pipe, *a, **k)
    )
    ids = list(range(1, outbox.BATCH * 2 + 6))
    outbox.enqueue(ids)
    assert len(executed) == 1
    assert [len(batch) for batch in queued_ids()] == [outbox.BATCH, outbox.BATCH, 5]


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_claims_are_disjoint_on_postgres(app, backend):
    if backend != "postgres":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    for _ in range(5):
        db.session.execute(update(OutboxMessage).values(state=OutboxState.DONE))
        rows = [OutboxMessage(kind="email", payload={"n": n}) for n in range(50)]
        db.session.add_all(rows)
        db.session.commit()
        ids = [m.id for m in rows]
        barrier = threading.Barrier(2)
        results: dict[str, list[int]] = {}
        errors: list[BaseException] = []

        def work(name: str, ids=ids, barrier=barrier, results=results, errors=errors) -> None:
            try:
                with app.app_context():
                    barrier.wait(timeout=10)
                    results[name] = [m.id for m in outbox.claim(ids)]
                    db.session.remove()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        # Daemon threads: one stuck on a lock fails this test, never the process's exit.
        threads = [threading.Thread(target=work, args=(name,), daemon=True) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors
        assert set(results["a"]).isdisjoint(results["b"])
        assert sorted(results["a"] + results["b"]) == sorted(ids)
