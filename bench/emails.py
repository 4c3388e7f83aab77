"""The emails scenario: one worker delivering email outbox rows to a local SMTP server.

Seeds N applicants (default 2000) in the apply target's opening and writes one email per
applicant with `email_templates.send` (the rules engine's path: rendered, with a fresh portal
link and an unsubscribe link), then times `outbox.deliver` over them in the RQ jobs' batches
of `outbox.BATCH`, in this process, as one worker runs them: claim, build, send, an
`applicant.emailed` event and the row marked done, one commit per `outbox.GROUP` emails, one
SMTP session per batch. The floor sends the same messages (built beforehand) with a bare
smtplib loop over one connection to the same server, in the same run. See bench/README.md.

The server is aiosmtpd in a process of its own (so it does not share this process's GIL),
counting the messages and connections it accepts:

    python -m bench.emails sink PORT    the SMTP server (bench.run starts it)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import smtplib
import subprocess
import sys
import time
from typing import Any

from bench.common import (
    ROOT,
    Timing,
    cpu_times,
    free_port,
    insert_applicants,
    row,
    steal_share,
)

TARGET_PER_S = 200.0
SUBJECT = "Your documents for {{ opening_name }}"
BODY = """Hello {{ applicant_name }},

Thank you for applying to {{ opening_name }} at {{ org_name }}. You are now in
{{ stage_name }}: please upload your driving licence and proof of insurance.

Continue your application: {{ portal_link }}

{{ org_name }}

No more updates like this one: {{ unsubscribe_link }}"""


# --- the SMTP server -----------------------------------------------------------------------


def sink(port: int) -> int:
    """An aiosmtpd server on 127.0.0.1:port until SIGTERM; then prints its counts as JSON."""
    from aiosmtpd.smtp import SMTP

    counts = {"messages": 0, "connections": 0, "bytes": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counts["messages"] += 1
            counts["bytes"] += len(envelope.original_content or b"")
            return "250 OK"

    class CountingSMTP(SMTP):
        def connection_made(self, transport):
            counts["connections"] += 1
            super().connection_made(transport)

    loop = asyncio.new_event_loop()
    handler = Handler()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: CountingSMTP(handler, hostname="sink.localhost"), host="127.0.0.1", port=port
        )
    )
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("ready", flush=True)
    loop.run_forever()
    server.close()
    print(json.dumps(counts), flush=True)
    return 0


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.emails", "sink", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the SMTP sink did not start")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


# --- seeding -------------------------------------------------------------------------------


def seed(app, opening_id: int, n: int) -> list[int]:
    """n applicants in the opening's first stage and one email each, written by
    email_templates.send in one transaction; returns the outbox ids in order."""
    from sqlalchemy import select

    from plutomi.extensions import db
    from plutomi.models import Applicant, EmailTemplate, Opening
    from plutomi.services import email_templates
    from plutomi.services.events import Actor

    with app.app_context():
        opening = db.session.get(Opening, opening_id)
        stage = opening.stages[0]
        subject, body = email_templates.check(SUBJECT, BODY)
        template = EmailTemplate(
            org_id=opening.org_id, name="Bench: documents", subject=subject, body=body
        )
        db.session.add(template)
        insert_applicants(opening, stage, n, "Mail Applicant", "mail", "m")
        applicants = db.session.scalars(
            select(Applicant)
            .where(Applicant.opening_id == opening.id, Applicant.email.like("mail-%"))
            .order_by(Applicant.id)
        ).all()
        rows = [
            email_templates.send(template, applicant, actor=Actor.system(), stage=stage)
            for applicant in applicants
        ]
        db.session.commit()
        ids = [row.id for row in rows]
        db.session.remove()
    return ids


# --- the two runs --------------------------------------------------------------------------


def time_deliver(app, ids: list[int]) -> Timing:
    """One worker: outbox.deliver over the ids in the jobs' batches; latencies are each
    batch's time per email."""
    from plutomi.extensions import db
    from plutomi.services import outbox

    timing = Timing()
    with app.app_context():
        started = time.perf_counter()
        for start in range(0, len(ids), outbox.BATCH):
            batch = ids[start : start + outbox.BATCH]
            t0 = time.perf_counter()
            counts = outbox.deliver(batch)
            timing.latencies.append((time.perf_counter() - t0) / len(batch))
            timing.ok += counts["done"]
            timing.failed += len(batch) - counts["done"]
        timing.elapsed = time.perf_counter() - started
        db.session.remove()
    return timing


def build_messages(app, ids: list[int]) -> list:
    """The same messages the worker sends (same headers, Message-IDs and text)."""
    from sqlalchemy import select

    from plutomi import mailer
    from plutomi.extensions import db
    from plutomi.models import OutboxMessage

    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        messages = [mailer.build(row) for row in sorted(rows, key=lambda r: r.id)]
        db.session.remove()
    return messages


def time_floor(port: int, messages: list, batch: int) -> Timing:
    """A bare smtplib loop over one connection (connect and QUIT included)."""
    timing = Timing()
    started = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", port, timeout=15)
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        t0 = time.perf_counter()
        for mail in chunk:
            client.send_message(mail)
        timing.latencies.append((time.perf_counter() - t0) / len(chunk))
        timing.ok += len(chunk)
    client.quit()
    timing.elapsed = time.perf_counter() - started
    return timing


def scenario(args, config: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Seed, then time the floor and the worker against one sink."""
    from sqlalchemy import func, select

    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.models import Event, OutboxMessage, OutboxState
    from plutomi.services import outbox

    n = args.email_messages
    sink_server = Sink()
    try:
        # No hand-off to RQ: this process is the worker, and times the deliveries itself.
        app = create_app({**config, "SMTP_URL": sink_server.url, "OUTBOX_HANDOFF": False})
        print(f"emails: seeding {n:,} applicants and their emails ...", flush=True)
        t0 = time.perf_counter()
        ids = seed(app, target["opening_id"], n + outbox.BATCH)
        warm, ids = ids[: outbox.BATCH], ids[outbox.BATCH :]
        print(f"  seeded in {time.perf_counter() - t0:.1f} s", flush=True)
        time_deliver(app, warm)  # imports, compiled statements, the pool: not timed
        messages = build_messages(app, ids)

        print(f"emails: floor, {n:,} messages over one smtplib connection ...", flush=True)
        before = cpu_times()
        floor = time_floor(sink_server.port, messages, outbox.BATCH)
        floor.steal = steal_share(before, cpu_times())
        print(f"emails: one worker delivering {n:,} outbox rows ...", flush=True)
        before = cpu_times()
        worker = time_deliver(app, ids)
        worker.steal = steal_share(before, cpu_times())
    finally:
        counts = sink_server.stop()

    with app.app_context():
        done = db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.state == OutboxState.DONE)
        )
        emailed = db.session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "applicant.emailed")
        )
        db.session.remove()
    batches = -(-n // outbox.BATCH)
    warm_batches = 1
    expected = {
        "messages": 2 * n + outbox.BATCH,  # floor + worker + warm-up
        "connections": 1 + batches + warm_batches,
    }
    verified = (
        done == n
        and emailed == n + outbox.BATCH
        and counts["messages"] == expected["messages"]
        and counts["connections"] == expected["connections"]
    )
    if not verified:
        print(
            f"  ! done {done}, emailed events {emailed}, sink {counts}, expected {expected}",
            file=sys.stderr,
        )
    print(f"  worker {worker.rate:,.0f}/s, floor {floor.rate:,.0f}/s; sink {counts}", flush=True)
    return row(
        "emails/s",
        worker,
        floor,
        floor.rate / worker.rate if worker.rate else float("inf"),
        "floor rate / worker rate (times slower than the floor); p50/p95 are ms per email "
        f"within each batch of {outbox.BATCH}",
        f">= {TARGET_PER_S:.0f}/s",
        worker.rate >= TARGET_PER_S and worker.failed == 0 and verified,
        messages=n,
        batch=outbox.BATCH,
        worker_seconds=round(worker.elapsed, 2),
        floor_seconds=round(floor.elapsed, 2),
        sink=counts,
        smtp_sessions_expected=expected["connections"],
        emailed_events=emailed,
        verified=verified,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the emails scenario's SMTP server")
    parser.add_argument("what", choices=["sink"])
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    return sink(args.port)


if __name__ == "__main__":
    raise SystemExit(main())
