"""The webhooks benchmark (bench/webhooks.py), end to end at a tiny size, so it never rots:
its receiver, the floor, a worker process delivering through the outbox, and its checks. The
numbers it measures are not asserted; `make bench` reports them."""

from __future__ import annotations

import http.client
from argparse import Namespace

from bench import webhooks as bench_webhooks
from plutomi.services import webhooks


def test_the_receiver_counts_requests_and_catches_a_bad_signature():
    secret = webhooks.new_secret()
    receiver = bench_webhooks.Receiver(secret)
    try:
        key = bench_webhooks._key(secret)
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        for signature in (bench_webhooks._signature(key, "msg_1", "1", b"{}"), "v1,wrong"):
            connection.request(
                "POST",
                "/hooks/test",
                body=b"{}",
                headers={
                    "webhook-id": "msg_1",
                    "webhook-timestamp": "1",
                    "webhook-signature": signature,
                },
            )
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == bench_webhooks.ANSWER
        connection.close()
    finally:
        counts = receiver.stop()
    assert counts["/hooks/test"] == {
        "requests": 2,
        "connections": 1,  # kept alive
        "bad_signatures": 1,
        "ids": 1,
    }


def test_the_webhooks_scenario_delivers_every_row_and_verifies(
    app, bench_backend, make_org, make_opening
):
    opening = make_opening(make_org())
    target = {"org_id": opening.org_id, "opening_id": opening.id}
    n = 150  # a full batch and a part one, after the warm-up batch
    result = bench_webhooks.scenario(
        Namespace(webhook_deliveries=n), app.extensions["test_config"], target
    )
    assert result["verified"], result
    assert (result["ok"], result["failed"]) == (n, 0)
    assert (result["floor"]["ok"], result["floor"]["failed"]) == (n, 0)
    assert result["requests"] == 2  # batches timed: one of 100, one of 50
    assert result["receiver"][bench_webhooks.PRODUCT_PATH]["bad_signatures"] == 0
    assert result["receiver_capacity"]["per_s"] > 0
    assert result["worker_rss_mb"] > 0
