"""The webhooks scenario: one worker delivering webhook outbox rows to a local HTTP receiver.

Seeds one endpoint (on 127.0.0.1, so the app runs with ALLOW_PRIVATE_WEBHOOK_TARGETS) and N
outbox rows of kind "webhook" for it (default 10,000), bulk-inserted as the fan-out writes
them: an `applicant.moved` body with personal data, and the applicant's id. Then one worker,
a fresh process that builds the app as an RQ worker does, runs `outbox.deliver` over the ids
in the jobs' batches of `outbox.BATCH`, one after the other (without RQ's own overhead): per
batch one claim, the endpoint's lanes (`webhook_delivery.LANES_PER_ENDPOINT` threads, each
over one kept-alive connection), the signatures, and the outcomes and `webhook.delivered`
events written in groups. The floor, also a fresh process, POSTs the same bodies with the
same headers (signed per request with hmac, the key decoded once) over as many kept-alive
http.client connections, one thread each. See bench/README.md.

The receiver is an asyncio HTTP/1.1 server in a process of its own (so it shares no GIL with
the worker): it reads each request whole, checks its signature, answers 200 at once and
counts requests, connections, distinct webhook-ids and bad signatures per path:

    python -m bench.webhooks receiver PORT SECRET   the receiver (the scenario starts it)
    python -m bench.webhooks worker < job.json       Plutomi's worker (the scenario starts it)
    python -m bench.webhooks floor < job.json        the floor (the scenario starts it)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    ROOT,
    Timing,
    Usage,
    cpu_times,
    free_port,
    insert_applicants,
    peak_rss_mb,
    process_cpu,
    row,
    self_cpu,
    steal_share,
)

TARGET_PER_S = 500.0
PRODUCT_PATH = "/hooks/plutomi"
FLOOR_PATH = "/hooks/floor"
CAPACITY_PATH = "/hooks/capacity"
# What the receiver answers: a 200 with a short body, as many receivers do.
ANSWER = b'{"ok":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)
DELIVERIES_PER_APPLICANT = 10


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_") + "==")


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """A Standard Webhooks v1 signature."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- the receiver --------------------------------------------------------------------------


def receiver(port: int, secret: str) -> int:
    """An HTTP/1.1 keep-alive server on 127.0.0.1:port until SIGTERM; then prints its counts
    per path as JSON."""
    key = _key(secret)
    paths: dict[str, dict[str, Any]] = {}

    def stats(path: str) -> dict[str, Any]:
        if path not in paths:
            paths[path] = {"requests": 0, "connections": 0, "bad_signatures": 0, "ids": set()}
        return paths[path]

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport = transport
            self.buffer = bytearray()
            self.first = True

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            out = []
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                lines = bytes(self.buffer[:end]).split(b"\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                if len(self.buffer) < end + 4 + length:
                    break
                body = bytes(self.buffer[end + 4 : end + 4 + length])
                del self.buffer[: end + 4 + length]
                counts = stats(lines[0].split(b" ")[1].decode())
                counts["requests"] += 1
                if self.first:
                    counts["connections"] += 1
                    self.first = False
                msg_id = headers.get(b"webhook-id", b"").decode()
                counts["ids"].add(msg_id)
                expected = _signature(
                    key, msg_id, headers.get(b"webhook-timestamp", b"").decode(), body
                )
                if expected not in headers.get(b"webhook-signature", b"").decode().split(" "):
                    counts["bad_signatures"] += 1
                out.append(RESPONSE)
            if out:
                self.transport.write(b"".join(out))

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Receiver, host="127.0.0.1", port=port))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    print("ready", flush=True)
    loop.run_forever()
    server.close()
    report = {path: {**c, "ids": len(c["ids"])} for path, c in paths.items()}
    print(json.dumps(report), flush=True)
    return 0


class Receiver:
    """The receiver in a process of its own."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "receiver", str(self.port), secret],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the webhook receiver did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float | None:
        return process_cpu(self.proc.pid)  # any process's, read from /proc

    def stop(self) -> dict[str, dict[str, int]]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


def capacity(port: int, secret: str, connections: int, requests: int) -> dict[str, float]:
    """The receiver's own rate: `connections` raw sockets in threads, each sending signed
    requests pipelined 50 at a time, so the client costs little per request."""
    key = _key(secret)
    body = json.dumps({"type": "applicant.moved", "data": {"n": "x" * 600}}).encode()
    timestamp = str(int(time.time()))
    request = (
        f"POST {CAPACITY_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nwebhook-id: msg_capacity\r\n"
        f"webhook-timestamp: {timestamp}\r\n"
        f"webhook-signature: {_signature(key, 'msg_capacity', timestamp, body)}\r\n\r\n"
    ).encode() + body
    depth = 50
    each = max(depth, requests // connections // depth * depth)
    answered = [0] * connections
    ready = threading.Barrier(connections + 1)

    def client(i: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ready.wait()
            burst = request * depth
            for _ in range(each // depth):
                sock.sendall(burst)
                expect, got = depth * len(RESPONSE), 0
                while got < expect:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return
                    got += len(chunk)
                answered[i] += depth

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": sum(answered),
        "seconds": round(elapsed, 3),
        "per_s": round(sum(answered) / elapsed, 1) if elapsed else 0.0,
        "connections": connections,
        "pipelined": depth,
    }


# --- seeding -------------------------------------------------------------------------------


def seed(app, target: dict[str, Any], n: int, url: str, secret: str) -> dict[str, Any]:
    """One endpoint, n // DELIVERIES_PER_APPLICANT applicants in the opening's first stage (at
    least one) and n webhook outbox rows for the endpoint, each an applicant.moved body about
    one of them, bulk-inserted; returns the endpoint's id and the rows' ids in order."""
    from sqlalchemy import insert, select

    from plutomi.extensions import db
    from plutomi.models import (
        Applicant,
        Opening,
        OutboxMessage,
        WebhookEndpoint,
        new_public_id,
    )
    from plutomi.services import webhooks

    with app.app_context():
        opening = db.session.get(Opening, target["opening_id"])
        stage = opening.stages[0]
        endpoint = WebhookEndpoint(
            org_id=opening.org_id,
            url=url,
            description="Bench receiver",
            event_types=["applicant.moved"],
            secret=secret,
        )
        db.session.add(endpoint)
        db.session.flush()
        count = max(1, n // DELIVERIES_PER_APPLICANT)
        tag = new_public_id()[:6]  # the emails of another seed's applicants differ
        first = db.session.scalar(select(Applicant.id).order_by(Applicant.id.desc()).limit(1))
        insert_applicants(opening, stage, count, "Hook Applicant", f"hook-{tag}", "w")
        applicants = db.session.execute(
            select(Applicant.id, Applicant.public_id, Applicant.name, Applicant.email)
            .where(Applicant.opening_id == opening.id, Applicant.id > (first or 0))
            .order_by(Applicant.id)
        ).all()
        opening_data = {
            "id": opening.public_id,
            "name": opening.name,
            "slug": opening.slug,
            "state": "published",
        }
        to_stage = {"id": stage.public_id, "name": stage.name}
        from_stage = {"id": new_public_id(), "name": "Phone screen"}
        at = datetime.now(UTC) - timedelta(minutes=1)
        rows = []
        for i in range(n):
            applicant_id, applicant_pid, name, email = applicants[i % len(applicants)]
            public_id = new_public_id()
            body = {
                "id": f"msg_{public_id}",
                "type": "applicant.moved",
                "timestamp": (at + timedelta(microseconds=i)).isoformat().replace("+00:00", "Z"),
                "data": {
                    "opening": opening_data,
                    "applicant": {
                        "id": applicant_pid,
                        "name": name,
                        "email": email,
                        "status": "active",
                        "version": 2 + i // len(applicants),
                        "stage": to_stage,
                        "answers": {
                            "licence": f"DL-{applicant_id:08d}",
                            "vehicle": ("Car", "Van", "Bike")[i % 3],
                            "years": i % 40,
                        },
                    },
                    "from_stage": from_stage,
                    "to_stage": to_stage,
                    "actor": {"type": "user"},
                },
            }
            rows.append(
                {
                    "public_id": public_id,
                    "kind": "webhook",
                    "org_id": opening.org_id,
                    "endpoint_id": endpoint.id,
                    "max_attempts": webhooks.MAX_ATTEMPTS,
                    "payload": {"body": body, "applicant_id": applicant_id},
                }
            )
        db.session.execute(insert(OutboxMessage), rows)
        db.session.commit()
        endpoint_id = endpoint.id
        ids = list(
            db.session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.endpoint_id == endpoint_id)
                .order_by(OutboxMessage.id)
            )
        )
        db.session.remove()
    return {"endpoint_id": endpoint_id, "ids": ids}


def floor_deliveries(app, ids: list[int]) -> list[tuple[str, str]]:
    """(public id, body) of each row, the body serialized as the worker does."""
    from sqlalchemy import select

    from plutomi.extensions import db
    from plutomi.models import OutboxMessage

    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.public_id, OutboxMessage.payload)
            .where(OutboxMessage.id.in_(ids))
            .order_by(OutboxMessage.id)
        ).all()
        db.session.remove()
    return [(pid, json.dumps(payload["body"], separators=(",", ":"))) for pid, payload in rows]


# --- the worker and the floor --------------------------------------------------------------


def deliver_all(app, ids: list[int], batch: int) -> dict[str, Any]:
    """outbox.deliver over the ids in batches, one after the other, as one worker runs the
    queued jobs; each batch's seconds."""
    from plutomi.extensions import db
    from plutomi.services import outbox

    batches: list[float] = []
    counts = {"done": 0, "retrying": 0, "dead": 0}
    with app.app_context():
        started = time.perf_counter()
        for start in range(0, len(ids), batch):
            t0 = time.perf_counter()
            for state, n in outbox.deliver(ids[start : start + batch]).items():
                counts[state] = counts.get(state, 0) + n
            batches.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return {"seconds": elapsed, "batches": batches, "counts": counts}


def worker_process(job: dict[str, Any]) -> dict[str, Any]:
    """Plutomi's worker: the app built once, a warm-up batch, then every id."""
    started = time.perf_counter()
    from plutomi import create_app
    from plutomi.extensions import db
    from plutomi.services import outbox

    app = create_app(job["config"])
    db_cpu = None
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db_cpu = Usage(db.engine)
    deliver_all(app, job["warm"], outbox.BATCH)  # imports, statements, the pool: not timed
    startup = time.perf_counter() - started
    if db_cpu is not None:
        db_cpu.start()
    cpu = self_cpu()
    report = deliver_all(app, job["ids"], outbox.BATCH)
    report["worker_cpu_seconds"] = self_cpu() - cpu
    report["db_cpu_seconds"] = db_cpu.report()["db_cpu_seconds"] if db_cpu else None
    report["startup_seconds"] = startup
    report["rss_mb"] = peak_rss_mb()
    return report


def floor_process(job: dict[str, Any]) -> dict[str, Any]:
    """The floor: `lanes` threads, each over one kept-alive http.client connection, POSTing
    the bodies batch by batch (each thread its share of a batch, as the lanes split it)."""
    lanes, size = job["lanes"], job["batch"]
    key = _key(job["secret"])
    host, port, path = job["host"], job["port"], job["path"]
    host_header = f"{host}:{port}"
    deliveries = [(pid, body.encode()) for pid, body in job["deliveries"]]
    current: list[list[tuple[str, bytes]] | None] = [[]]
    gate = threading.Barrier(lanes + 1)
    failures = [0] * lanes

    def lane(i: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=15)
        try:
            while True:
                gate.wait()
                chunk = current[0]
                if chunk is None:
                    return
                for public_id, body in chunk[i::lanes]:
                    msg_id = f"msg_{public_id}"
                    timestamp = str(int(time.time()))
                    connection.request(
                        "POST",
                        path,
                        body=body,
                        headers={
                            "Host": host_header,
                            "Content-Type": "application/json",
                            "User-Agent": "Plutomi-Webhooks/1.0",
                            "webhook-id": msg_id,
                            "webhook-timestamp": timestamp,
                            "webhook-signature": _signature(key, msg_id, timestamp, body),
                        },
                    )
                    response = connection.getresponse()
                    response.read()
                    if not 200 <= response.status < 300:
                        failures[i] += 1
                gate.wait()
        finally:
            connection.close()

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for thread in threads:
        thread.start()
    batches = []
    cpu = self_cpu()
    started = time.perf_counter()
    for start in range(0, len(deliveries), size):
        t0 = time.perf_counter()
        current[0] = deliveries[start : start + size]
        gate.wait()  # go
        gate.wait()  # all done
        batches.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    current[0] = None
    gate.wait()
    for thread in threads:
        thread.join()
    return {
        "seconds": elapsed,
        "batches": batches,
        "counts": {"done": len(deliveries) - sum(failures), "failed": sum(failures)},
        "worker_cpu_seconds": self_cpu() - cpu,
        "db_cpu_seconds": None,
        "rss_mb": peak_rss_mb(),
    }


def run_process(which: str, job: dict[str, Any]) -> dict[str, Any]:
    """The worker or the floor in a fresh process; its report is the last line it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.webhooks", which],
        cwd=ROOT,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the webhooks {which} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the scenario --------------------------------------------------------------------------


def _timing(report: dict[str, Any], steal: float | None) -> Timing:
    return Timing(
        latencies=report["batches"] or [0.0],
        elapsed=report["seconds"],
        ok=report["counts"]["done"],
        failed=sum(n for state, n in report["counts"].items() if state != "done"),
        steal=steal,
    )


def _timed(receiver_: Receiver, run) -> tuple[dict[str, Any], float | None, float | None]:
    """run() -> report, with the machine's steal share and the receiver's CPU seconds."""
    before, receiver_cpu = cpu_times(), receiver_.cpu_seconds()
    report = run()
    spent = receiver_.cpu_seconds()
    receiver_seconds = None if spent is None or receiver_cpu is None else spent - receiver_cpu
    return report, steal_share(before, cpu_times()), receiver_seconds


def _delivered_events() -> int:
    from sqlalchemy import func, select

    from plutomi.extensions import db
    from plutomi.models import Event

    return db.session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "webhook.delivered")
    )


def scenario(args, config: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Seed, measure the receiver, then time the floor and the worker against it."""
    from sqlalchemy import func, select, update

    from plutomi import create_app, webhook_delivery
    from plutomi.extensions import db
    from plutomi.models import OutboxMessage, OutboxState, WebhookEndpoint
    from plutomi.services import outbox, webhooks

    n = args.webhook_deliveries
    lanes = webhook_delivery.LANES_PER_ENDPOINT
    secret = webhooks.new_secret()
    # No hand-off to RQ: the worker process is started by hand below.
    config = {**config, "OUTBOX_HANDOFF": False, "ALLOW_PRIVATE_WEBHOOK_TARGETS": True}
    app = create_app(config)
    receiver_ = Receiver(secret)
    try:
        print(f"webhooks: seeding {n:,} webhook outbox rows ...", flush=True)
        t0 = time.perf_counter()
        seeded = seed(app, target, n + outbox.BATCH, receiver_.url(PRODUCT_PATH), secret)
        warm, ids = seeded["ids"][: outbox.BATCH], seeded["ids"][outbox.BATCH :]
        seed_seconds = time.perf_counter() - t0
        print(f"  seeded in {seed_seconds:.1f} s", flush=True)
        with app.app_context():
            # Another run on this database left its own events: count only this run's.
            delivered_before = _delivered_events()
        deliveries = floor_deliveries(app, ids)

        requests = max(2000, min(4 * n, 40_000))
        print(f"webhooks: the receiver's capacity, {requests:,} pipelined requests ...")
        receiver_capacity = capacity(receiver_.port, secret, lanes, requests)
        print(f"  {receiver_capacity['per_s']:,.0f} requests/s", flush=True)

        print(f"webhooks: floor, {n:,} POSTs over {lanes} kept-alive connections ...", flush=True)
        floor_job = {
            "host": "127.0.0.1",
            "port": receiver_.port,
            "path": FLOOR_PATH,
            "secret": secret,
            "lanes": lanes,
            "batch": outbox.BATCH,
            "deliveries": deliveries,
        }
        floor_run, floor_steal, floor_receiver = _timed(
            receiver_, lambda: run_process("floor", floor_job)
        )
        print(f"webhooks: one worker delivering {n:,} outbox rows ...", flush=True)
        worker_job = {"config": config, "warm": warm, "ids": ids}
        worker_run, worker_steal, worker_receiver = _timed(
            receiver_, lambda: run_process("worker", worker_job)
        )
    finally:
        received = receiver_.stop()

    with app.app_context():
        done = db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.state == OutboxState.DONE,
                OutboxMessage.response_status == 200,
            )
        )
        delivered = _delivered_events() - delivered_before
        # Nothing else in the bench's org should be sent to the receiver, now gone.
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == seeded["endpoint_id"])
            .values(enabled=False)
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    total = n + outbox.BATCH
    sizes = [len(ids[i : i + outbox.BATCH]) for i in range(0, n, outbox.BATCH)]
    expected = {
        PRODUCT_PATH: {
            "requests": total,
            "ids": total,
            # One kept-alive connection per lane, per batch (and the warm-up's).
            "connections": sum(min(lanes, size) for size in [outbox.BATCH, *sizes]),
        },
        FLOOR_PATH: {"requests": n, "ids": n, "connections": lanes},
    }
    got = {
        path: {key: received.get(path, {}).get(key) for key in counts}
        for path, counts in expected.items()
    }
    bad = sum(counts["bad_signatures"] for counts in received.values())
    verified = done == n and delivered == total and got == expected and bad == 0
    if not verified:
        print(
            f"  ! done {done}, delivered events {delivered}, bad signatures {bad},"
            f" receiver {got}, expected {expected}",
            file=sys.stderr,
        )
    worker = _timing(worker_run, worker_steal)
    floor = _timing(floor_run, floor_steal)
    print(
        f"  worker {worker.rate:,.0f}/s (peak RSS {worker_run['rss_mb']:.0f} MB),"
        f" floor {floor.rate:,.0f}/s; receiver {received}",
        flush=True,
    )

    def busy(seconds: float | None, run: dict[str, Any]) -> float | None:
        return None if seconds is None else round(seconds / run["seconds"], 3)

    return row(
        "webhooks/s",
        worker,
        floor,
        floor.rate / worker.rate if worker.rate else float("inf"),
        "floor rate / worker rate (times slower than the floor); p50/p95 are ms per batch "
        f"of {outbox.BATCH}",
        f">= {TARGET_PER_S:.0f}/s",
        worker.rate >= TARGET_PER_S and worker.failed == 0 and verified,
        deliveries=n,
        batch=outbox.BATCH,
        lanes_per_endpoint=lanes,
        floor_signs="each request, hmac-sha256 with the key decoded once",
        worker_seconds=round(worker_run["seconds"], 2),
        floor_seconds=round(floor_run["seconds"], 2),
        worker_rss_mb=round(worker_run["rss_mb"]),
        floor_rss_mb=round(floor_run["rss_mb"]),
        worker_cpu_seconds=round(worker_run["worker_cpu_seconds"], 2),
        worker_db_cpu_seconds=(
            None if worker_run["db_cpu_seconds"] is None else round(worker_run["db_cpu_seconds"], 2)
        ),
        floor_cpu_seconds=round(floor_run["worker_cpu_seconds"], 2),
        worker_startup_seconds=round(worker_run["startup_seconds"], 2),
        receiver_capacity=receiver_capacity,
        # The receiver's CPU seconds per second of each run: far below 1, it waited.
        receiver_busy={
            "worker": busy(worker_receiver, worker_run),
            "floor": busy(floor_receiver, floor_run),
        },
        receiver=received,
        receiver_expected=expected,
        delivered_events=delivered,
        seed_seconds=round(seed_seconds, 1),
        verified=verified,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the webhooks scenario's processes")
    parser.add_argument("what", choices=["receiver", "worker", "floor"])
    parser.add_argument("port", type=int, nargs="?")
    parser.add_argument("secret", nargs="?")
    args = parser.parse_args(argv)
    if args.what == "receiver":
        return receiver(args.port, args.secret)
    job = json.load(sys.stdin)
    report = worker_process(job) if args.what == "worker" else floor_process(job)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
