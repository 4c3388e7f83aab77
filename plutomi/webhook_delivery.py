"""Delivering a batch of webhook outbox rows over HTTP, signed per Standard Webhooks.

The receivers of one batch are called in parallel: each endpoint gets its own lanes (at most
LANES_PER_ENDPOINT connections at once, kept alive between its deliveries), so one slow or dead
receiver holds only its own lanes. A lane that meets a timeout or a refused connection gives
its endpoint's remaining rows back, to be tried with that failure's backoff, instead of
spending 15 seconds on each. Only the main thread touches the database: the lanes get plain
copies of what they send and report outcomes, which are written in groups as they arrive.

A 2xx within TIMEOUT seconds is success. Redirects are not followed. A timeout, a connection
error, 3xx, 408, 429 or 5xx is retried (a Retry-After is honoured); 410 Gone turns the endpoint off;
any other 4xx is a refusal and the delivery is dead at once (it can be replayed).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, insert, select, update
from standardwebhooks import Webhook

from plutomi import targets
from plutomi.extensions import db
from plutomi.models import Event, OutboxMessage, OutboxState, WebhookEndpoint, utcnow
from plutomi.services import outbox, webhooks

log = logging.getLogger(__name__)

TIMEOUT = 15.0
LANES_PER_ENDPOINT = 4
MAX_THREADS = 32
# A batch stops starting new deliveries after this long; the rest go back, not lost.
BATCH_BUDGET = 120.0
BODY_KEPT = 2000
BODY_READ = 64 * 1024
USER_AGENT = "Plutomi-Webhooks/1.0"
# Write outcomes in groups: one UPDATE round per group, not per row.
WRITE_EVERY = 0.2
WRITE_AT = 200
SOON = timedelta(seconds=30)


@dataclass(frozen=True)
class _Endpoint:
    id: int
    url: str
    enabled: bool
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class _Delivery:
    id: int
    public_id: str
    body: str


@dataclass
class Outcome:
    delivery: _Delivery
    endpoint: _Endpoint
    status: int | None = None
    body: str | None = None
    error: str | None = None
    retry_after: float | None = None
    # "done", "retry", "dead" (refused), "gone" (410), "off" (endpoint turned off) or
    # "released" (not tried)
    kind: str = "done"


def sign(secrets: tuple[str, ...], msg_id: str, at: datetime, body: str) -> str:
    """The webhook-signature header: one v1 signature per secret, space separated."""
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Lane:
    """One connection's worth of deliveries to one endpoint, in order."""

    def __init__(self, endpoint: _Endpoint, rows: list[_Delivery], allow_private: bool):
        self.endpoint = endpoint
        self.rows = rows
        self.allow_private = allow_private
        self.connection = None
        self.pinned: tuple[str, targets.Target] | None = None
        self.target: targets.Target | None = None  # the URL parsed, once it parsed

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _connection(self, target: targets.Target, address: str):
        if self.pinned != (address, target) or self.connection is None:
            self.close()
            self.connection = targets.connect(target, address, TIMEOUT)
            self.pinned = (address, target)
        return self.connection

    def _post(self, target: targets.Target, address: str, body: str, headers: dict[str, str]):
        connection = self._connection(target, address)
        connection.request("POST", target.path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        data = response.read(BODY_READ)
        if not response.isclosed():
            self.close()  # a body too long to read whole: the connection is spent
        elif response.will_close:
            self.close()
        return response, data

    def send(self, delivery: _Delivery) -> Outcome:
        outcome = Outcome(delivery, self.endpoint)
        try:
            target = self.target = self.target or targets.parse(self.endpoint.url)
            # Resolved again at every delivery: DNS can change after the endpoint was saved.
            address = targets.resolve(target, self.allow_private)
        except targets.Refused as exc:
            outcome.kind, outcome.error = "retry", f"Refused: {exc}"
            return outcome
        msg_id = f"msg_{delivery.public_id}"
        now = datetime.now(UTC)
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(self.endpoint.secrets, msg_id, now, delivery.body),
        }
        started = time.monotonic()
        try:
            reused = self.connection is not None and self.pinned == (address, target)
            try:
                response, data = self._post(target, address, delivery.body, headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The receiver closed the connection kept alive since our last delivery (its
                # idle or per-connection limit): once more on a new one, as HTTP clients do.
                self.close()
                response, data = self._post(target, address, delivery.body, headers)
        except TimeoutError:
            self.close()
            outcome.kind, outcome.error = "retry", f"Timed out after {TIMEOUT:.0f} s"
            return outcome
        except OSError as exc:
            self.close()
            outcome.kind, outcome.error = "retry", f"Connection failed: {exc}"
            return outcome
        except Exception as exc:  # a malformed answer (http.client's own errors)
            self.close()
            outcome.kind, outcome.error = "retry", f"Bad response: {type(exc).__name__}: {exc}"
            return outcome
        outcome.status = response.status
        outcome.body = data[:BODY_KEPT].decode("utf-8", "replace")
        status = response.status
        if time.monotonic() - started > TIMEOUT:
            outcome.kind = "retry"
            outcome.error = f"Answered {status} after more than {TIMEOUT:.0f} s"
        elif 200 <= status < 300:
            outcome.kind = "done"
        elif status == 410:
            outcome.kind, outcome.error = "gone", "Answered 410 Gone"
        elif 300 <= status < 400 or status in (408, 429) or status >= 500:
            outcome.kind, outcome.error = "retry", f"Answered {status}"
            outcome.retry_after = _retry_after(response.getheader("Retry-After"))
        else:
            outcome.kind, outcome.error = "dead", f"Answered {status}: the receiver refused it"
        return outcome

    def run(self, report: Callable[[Outcome], None], stop: threading.Event, cut: set[int]) -> None:
        try:
            for delivery in self.rows:
                if stop.is_set() or self.endpoint.id in cut:
                    report(Outcome(delivery, self.endpoint, kind="released"))
                    continue
                outcome = self.send(delivery)
                # Reported before the cut below, so the writer reads this failure (and the
                # backoff it sets) before any row another lane gives back because of it.
                report(outcome)
                if outcome.kind == "retry" and outcome.status is None:
                    # Timed out or unreachable: the endpoint's other rows wait for its backoff.
                    cut.add(self.endpoint.id)
        finally:
            self.close()


@dataclass
class _Writer:
    """Writes outcomes to the database from the main thread, in groups."""

    claim: outbox.Claim
    rows: dict[int, OutboxMessage]
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "retrying": 0, "dead": 0})
    pending: list[Outcome] = field(default_factory=list)
    released_after: dict[int, datetime] = field(default_factory=dict)
    succeeded: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    # Retries due before the next sweep, handed to RQ's scheduler at the latest one's time.
    soon: list[int] = field(default_factory=list)
    soon_at: datetime = field(default_factory=utcnow)

    def values(self, o: Outcome, now: datetime) -> dict[str, Any]:
        message = self.rows[o.delivery.id]
        base = {"response_status": o.status, "response_body": o.body}
        if o.kind == "done":
            self.succeeded.add(o.endpoint.id)
            # One time for the group written: the rows that end alike share one UPDATE.
            return base | outbox.done_values("http") | {"done_at": now, "next_attempt_at": now}
        if o.kind == "released":
            # Not tried: the attempt the claim counted is given back.
            # (The failure that cut the lane may not be written yet: then its first backoff.)
            when = self.released_after.get(o.endpoint.id) or utcnow() + outbox.backoff(1, "webhook")
            return {
                "response_status": message.response_status,
                "response_body": message.response_body,
                "state": OutboxState.RETRYING,
                "last_error": message.last_error,
                "lease_until": None,
                "next_attempt_at": when,
                "attempts": message.attempts - 1,
            }
        if o.kind == "off":
            return base | outbox.failed_values(message, o.error or "") | {"state": OutboxState.DEAD}
        self.failed.add(o.endpoint.id)
        if o.kind in ("dead", "gone"):
            if o.kind == "gone":
                self.gone.add(o.endpoint.id)
            values = outbox.failed_values(message, o.error or "") | {"state": OutboxState.DEAD}
        else:
            values = outbox.failed_values(message, o.error or "", o.retry_after)
            self.released_after.setdefault(o.endpoint.id, values["next_attempt_at"])
        if values["state"] == OutboxState.RETRYING and values["next_attempt_at"] < utcnow() + SOON:
            self.soon.append(o.delivery.id)
            self.soon_at = max(self.soon_at, values["next_attempt_at"])
        return base | values

    def add(self, outcome: Outcome) -> None:
        self.pending.append(outcome)

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        table = OutboxMessage.__table__
        mine = table.c.claim_token == self.claim.token
        now = utcnow()
        alike: dict[tuple, list[int]] = {}
        events = []
        for o in batch:
            values = self.values(o, now)
            alike.setdefault(tuple(sorted(values.items())), []).append(o.delivery.id)
            state = values["state"]
            if o.kind != "released":
                self.counts[state] = self.counts.get(state, 0) + 1
            event = self._event(o, state)
            if event is not None:
                events.append(event)
        # Rows that end with the same values (successes with the same answer, most often)
        # take one UPDATE ... WHERE id IN (...); the others one UPDATE per set of columns,
        # executed for all its rows at once.
        groups: dict[tuple, list[dict]] = {}
        for items, ids in alike.items():
            if len(ids) > 1:
                db.session.execute(
                    update(table).where(table.c.id.in_(ids), mine).values(dict(items))
                )
            else:
                values = dict(items)
                groups.setdefault(tuple(values), []).append({"row_id": ids[0], **values})
        for names, params in groups.items():
            db.session.execute(
                update(table)
                .where(table.c.id == bindparam("row_id"), mine)
                .values({name: bindparam(name) for name in names}),
                params,
            )
        if events:
            db.session.execute(insert(Event.__table__), events)
        db.session.commit()

    def _event(self, o: Outcome, state: str) -> dict | None:
        """A line on the applicant's timeline when a delivery ends (sent, or given up)."""
        message = self.rows[o.delivery.id]
        applicant_id = (message.payload or {}).get("applicant_id")
        if applicant_id is None or state not in (OutboxState.DONE, OutboxState.DEAD):
            return None
        body = message.payload["body"]
        return {
            "org_id": message.org_id,
            "opening_id": None,
            "applicant_id": applicant_id,
            "type": "webhook.delivered" if state == OutboxState.DONE else "webhook.failed",
            "actor_type": "system",
            "actor_id": None,
            "payload": {
                "event_type": body.get("type"),
                "url": o.endpoint.url,
                "status": o.status,
                "error": o.error,
            },
            "created_at": utcnow(),
        }


@outbox.batch_sender("webhook")
def deliver(rows: list[OutboxMessage], claim: outbox.Claim) -> dict[str, int]:
    """Send a claimed batch of webhook rows; each ends done, retrying or dead."""
    now = utcnow()
    endpoint_ids = {row.endpoint_id for row in rows if row.endpoint_id is not None}
    endpoints = {
        e.id: _Endpoint(e.id, e.url, e.enabled, tuple(webhooks.signing_secrets(e, now)))
        for e in db.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
        )
    }
    writer = _Writer(claim, {row.id: row for row in rows})
    by_endpoint: dict[int, list[_Delivery]] = {}
    for row in rows:
        endpoint = endpoints.get(row.endpoint_id)
        delivery = _Delivery(
            row.id,
            row.public_id,
            json.dumps(row.payload["body"], separators=(",", ":")),
        )
        if endpoint is None or not endpoint.enabled:
            off = endpoint or _Endpoint(row.endpoint_id or 0, "", False, ())  # its URL, if any
            writer.add(Outcome(delivery, off, kind="off", error="The endpoint is turned off"))
            continue
        by_endpoint.setdefault(endpoint.id, []).append(delivery)
    allow_private = current_app.config["ALLOW_PRIVATE_WEBHOOK_TARGETS"]
    lanes = []
    for endpoint_id, deliveries in by_endpoint.items():
        n = min(LANES_PER_ENDPOINT, len(deliveries))
        for i in range(n):
            lanes.append(_Lane(endpoints[endpoint_id], deliveries[i::n], allow_private))
    if lanes:
        _run_lanes(lanes, writer, claim)
    writer.flush()
    # Failures and successes count per endpoint only for what was really tried.
    webhooks.record_failures(writer.succeeded, writer.failed, writer.gone)
    db.session.commit()
    if writer.soon:
        outbox.enqueue_at(writer.soon, max(writer.soon_at, utcnow()))
    return writer.counts


def _run_lanes(lanes: list[_Lane], writer: _Writer, claim: outbox.Claim) -> None:
    results: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
    stop = threading.Event()
    cut: set[int] = set()
    deadline = time.monotonic() + min(
        BATCH_BUDGET, (claim.lease_until - utcnow()).total_seconds() - 30
    )
    with ThreadPoolExecutor(min(MAX_THREADS, len(lanes)), "webhook") as pool:
        futures = [pool.submit(lane.run, results.put, stop, cut) for lane in lanes]
        for future in futures:
            future.add_done_callback(lambda _: results.put(None))
        running, last_write = len(futures), time.monotonic()
        while running:
            try:
                item = results.get(timeout=WRITE_EVERY)
            except queue.Empty:
                item = False
            if item is None:
                running -= 1
            elif item is not False:
                writer.add(item)
            now = time.monotonic()
            if now >= deadline:
                stop.set()
            if len(writer.pending) >= WRITE_AT or (
                writer.pending and now - last_write >= WRITE_EVERY
            ):
                writer.flush()
                last_write = now
        for future in futures:
            if future.exception() is not None:
                log.error("a webhook lane failed: %s", future.exception())
