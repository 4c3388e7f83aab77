"""Test-only: the production RQ worker (SimpleWorker, as in the Procfile) with hooks that
tests/test_reliability.py switches on through the environment of the `rq worker` subprocess.

`rq worker --worker-class tests.reliability_worker.Worker` imports this module, which builds
the worker's app (as jobs.app_context would at the first job) and installs the hooks the
environment asks for. The jobs the worker runs are the real ones, enqueued by their names.

PLUTOMI_TEST_STALL=timers:n|emails:n  after the n-th timer evaluation, or the n-th email the
    SMTP server accepted, in this process: write PLUTOMI_TEST_STALL_FILE and hang, so the test
    SIGKILLs the worker at exactly that point (a claimed batch, uncommitted work, an email
    sent whose row is not yet marked done).
PLUTOMI_TEST_BARRIER=dir:n  the first claim of timers waits until n workers have reached it.
PLUTOMI_TEST_CLAIMS=dir     each claim of timers appends its ids to dir/<pid>.claims.
PLUTOMI_TEST_TIMER_BATCH=n  claim timers n at a time instead of rules.TIMER_BATCH.
PLUTOMI_TEST_TIMER_CHUNK=n  evaluate (and commit) them n at a time instead of rules.TIMER_CHUNK.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rq.worker import SimpleWorker

import jobs

# What `jobs.app_context()` would build at the first job, built now: from the environment.
with jobs.app_context():
    pass

from plutomi.services import outbox, rules  # after the app registered the senders

STALL_SECONDS = 120  # a stalled worker is killed by its test long before this


def _stall() -> None:
    Path(os.environ["PLUTOMI_TEST_STALL_FILE"]).write_text(str(os.getpid()))
    time.sleep(STALL_SECONDS)
    os._exit(3)  # never carry on: the test expected to kill us here


def _install_stall(spec: str) -> None:
    kind, _, count = spec.partition(":")
    stall_after = int(count)
    done = 0

    if kind == "timers":
        real_evaluate = rules._evaluate

        def evaluate(timer, applicant, rule):
            nonlocal done
            outcome = real_evaluate(timer, applicant, rule)
            done += 1
            if done == stall_after:
                _stall()
            return outcome

        rules._evaluate = evaluate
    elif kind == "emails":
        real_send = outbox._senders["email"]

        def send(message):
            nonlocal done
            transport = real_send(message)  # the SMTP server has accepted it
            done += 1
            if done == stall_after:
                _stall()  # ...but its row is never marked done
            return transport

        outbox._senders["email"] = send
    else:
        raise ValueError(f"PLUTOMI_TEST_STALL: unknown kind {kind!r}")


def _install_claim_hooks() -> None:
    real_claim = rules.claim
    barrier = os.environ.get("PLUTOMI_TEST_BARRIER")
    claims = os.environ.get("PLUTOMI_TEST_CLAIMS")
    batch = os.environ.get("PLUTOMI_TEST_TIMER_BATCH")
    first = True

    def claim(limit: int = rules.TIMER_BATCH):
        nonlocal first
        if barrier and first:
            folder, _, count = barrier.rpartition(":")
            Path(folder, str(os.getpid())).touch()
            deadline = time.monotonic() + 30
            while len(os.listdir(folder)) < int(count) and time.monotonic() < deadline:
                time.sleep(0.005)
        first = False
        token, timers = real_claim(min(limit, int(batch)) if batch else limit)
        if claims and timers:
            with open(Path(claims, f"{os.getpid()}.claims"), "a") as fh:
                fh.write("".join(f"{t.id}\n" for t in timers))
        return token, timers

    rules.claim = claim


if chunk := os.environ.get("PLUTOMI_TEST_TIMER_CHUNK"):
    rules.TIMER_CHUNK = int(chunk)
if spec := os.environ.get("PLUTOMI_TEST_STALL"):
    _install_stall(spec)
if any(
    os.environ.get(name)
    for name in ("PLUTOMI_TEST_BARRIER", "PLUTOMI_TEST_CLAIMS", "PLUTOMI_TEST_TIMER_BATCH")
):
    _install_claim_hooks()


class Worker(SimpleWorker):
    """The Procfile's worker class; this module's import is what adds the hooks."""
