"""Idempotency-Key on the API's POSTs: a repeat is replayed without doing the work again, another
request with the same key is refused, a failed request frees its key, concurrent repeats do the
work once, and old keys are swept."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from plutomi.extensions import db, queues
from plutomi.models import Applicant, Event, IdempotencyKey, OutboxMessage, utcnow
from plutomi.services import idempotency
from tests.conftest import owner_membership
from tests.test_reliability import at_once

HEADER = "Idempotency-Key"


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def setup(app, client, make_org, make_opening, make_api_key):
    org = make_org()
    opening = make_opening(org)
    key, token = make_api_key(org)
    return org, opening, key, token, client


def post(client, token: str, path: str, body, key: str | None = None, **headers):
    if key is not None:
        headers[HEADER] = key
    return client.post(
        f"/api/v1{path}",
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def apply_path(opening) -> str:
    return f"/openings/{opening.public_id}/applicants"


ANA = {"name": "Ana Lima", "email": "ana@example.com"}


def test_a_repeat_is_answered_with_the_first_response_and_nothing_is_done_again(setup):
    _, opening, _, token, client = setup
    first = post(client, token, apply_path(opening), ANA, "key-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    events, mails = count(Event), count(OutboxMessage)
    # The same body written differently is the same request.
    again = post(
        client,
        token,
        apply_path(opening),
        '{ "email":"ana@example.com",  "name":"Ana Lima"}',
        "key-1",
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert count(Applicant) == 1
    assert (count(Event), count(OutboxMessage)) == (events, mails)
    row = db.session.scalar(select(IdempotencyKey))
    assert (row.key, row.status, row.response) == ("key-1", 201, first.get_json())


def test_a_new_applicant_and_its_kept_answer_commit_together(setup, app):
    """Creating an applicant stores its answer in the transaction of the work: no moment in
    which the key's row says the work is done but holds no answer (no in-progress window, and
    no such row left by a crash)."""
    _, opening, _, token, client = setup
    # The key's last use is noted once a minute, in a commit of its own: done with this one.
    assert (
        post(client, token, apply_path(opening), {"name": "Bo", "email": "bo@x.org"}).status_code
        == 201
    )
    with app.app_context():
        engine = db.engine
    seen: list[tuple[int, int | None]] = []

    def at_commit(conn) -> None:
        # What another connection would see right after this commit: the key's row and answer.
        seen.append(
            conn.exec_driver_sql(
                "SELECT count(*), max(status) FROM idempotency_keys WHERE key = 'key-1'"
            ).one()
        )

    event.listen(engine, "commit", at_commit)
    try:
        response = post(client, token, apply_path(opening), ANA, "key-1")
    finally:
        event.remove(engine, "commit", at_commit)
    assert response.status_code == 201
    assert seen == [(1, 201)]


def test_without_a_key_a_repeat_is_a_new_request(setup):
    _, opening, _, token, client = setup
    applicant = post(client, token, apply_path(opening), ANA).get_json()
    path = f"/applicants/{applicant['id']}/events"
    for _ in range(2):
        assert post(client, token, path, {"type": "ping.sent"}).status_code == 201
    assert count(Event, Event.type == "applicant.external_event") == 2
    assert count(IdempotencyKey) == 0


def test_the_same_key_with_another_request_is_a_409(setup):
    _, opening, _, token, client = setup
    first = post(client, token, apply_path(opening), ANA, "key-1")
    applicant = first.get_json()
    for path, body in (
        (apply_path(opening), {**ANA, "name": "Ana Maria Lima"}),
        (f"/applicants/{applicant['id']}/events", ANA),
    ):
        response = post(client, token, path, body, "key-1")
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert error["code"] == "idempotency_mismatch"
        assert error["field"] == HEADER
        assert "different request" in error["message"]
    assert count(Applicant) == 1
    db.session.expire_all()
    assert db.session.scalar(select(IdempotencyKey.status)) == 201


def test_a_failed_request_frees_its_key(setup):
    _, opening, _, token, client = setup
    failed = post(client, token, apply_path(opening), {**ANA, "email": "nope"}, "key-1")
    assert failed.status_code == 422
    assert count(IdempotencyKey) == 0
    # Fixed, and sent with the same key: carried out, not refused as another request.
    fixed = post(client, token, apply_path(opening), ANA, "key-1")
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers
    # A refusal after the first success is not kept either: the 409 is said afresh each time.
    for _ in range(2):
        duplicate = post(client, token, apply_path(opening), ANA, "key-2")
        assert duplicate.status_code == 409
        assert duplicate.get_json()["error"]["code"] == "duplicate"
        assert "Idempotent-Replayed" not in duplicate.headers
    assert count(IdempotencyKey) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é-accent", "\x7f"])
def test_a_bad_key_is_a_400(setup, value):
    _, opening, _, token, client = setup
    response = post(client, token, apply_path(opening), ANA, value)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_idempotency_key", HEADER)
    assert count(Applicant) == 0


@pytest.mark.parametrize("value", ["a", "x" * 255, "0f8e6b8e-8a3b-4d55-9d2f-8a0f6c2e9a11", "a b~!"])
def test_keys_of_1_to_255_printable_characters_are_taken(setup, value):
    _, opening, _, token, client = setup
    assert post(client, token, apply_path(opening), ANA, value).status_code == 201


def test_keys_belong_to_one_api_key(setup, make_api_key):
    org, opening, _, token, client = setup
    _, other = make_api_key(org, name="Other")
    applicant = post(client, token, apply_path(opening), ANA).get_json()
    path = f"/applicants/{applicant['id']}/events"
    assert post(client, token, path, {"type": "ping.sent"}, "shared").status_code == 201
    second = post(client, other, path, {"type": "ping.sent"}, "shared")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert count(Event, Event.type == "applicant.external_event") == 2


def test_a_repeat_while_the_first_is_unfinished_waits_then_says_so(setup, monkeypatch):
    _, opening, key, token, client = setup
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.2)
    digest = idempotency.request_hash("POST", f"/api/v1{apply_path(opening)}", ANA)
    # The row of a request whose work committed but whose response is not stored yet.
    db.session.add(IdempotencyKey(api_key_id=key.id, key="key-1", request_hash=digest))
    db.session.commit()
    response = post(client, token, apply_path(opening), ANA, "key-1")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "idempotency_in_progress"
    assert count(Applicant) == 0


def test_a_revoked_key_gets_no_replay(setup):
    org, opening, key, token, client = setup
    from plutomi.services import api_keys

    assert post(client, token, apply_path(opening), ANA, "key-1").status_code == 201
    api_keys.revoke(owner_membership(org), key.public_id)
    assert post(client, token, apply_path(opening), ANA, "key-1").status_code == 401


# --- at the same moment ----------------------------------------------------------------------


def _at_once(app, count_: int, send) -> list:
    """send(client) in count_ threads released together (tests.test_reliability.at_once), each
    with its own client, app context and database session; (status, body, headers) each."""
    responses = at_once(app, lambda: send(app.test_client()), copies=count_)
    return [(r.status_code, r.get_json(), dict(r.headers)) for r in responses]


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_requests_with_one_key_create_one_applicant(setup, app, backend, attempt):
    if backend != "postgres":
        pytest.skip("concurrent writers are PostgreSQL's; SQLite has a single writer")
    _, opening, _, token, _ = setup
    path = apply_path(opening)  # read here: the threads have no app context of their own
    results = _at_once(app, 6, lambda client: post(client, token, path, ANA, f"once-{attempt}"))
    assert count(Applicant) == 1
    assert count(Event, Event.type == "applicant.created") == 1
    assert {status for status, _, _ in results} == {201}
    bodies = [body for _, body, _ in results]
    assert all(body == bodies[0] for body in bodies)
    replayed = [h.get("Idempotent-Replayed") for _, _, h in results]
    assert replayed.count(None) == 1 and replayed.count("true") == 5


def test_concurrent_events_with_one_key_are_recorded_once(setup, app, backend):
    if backend != "postgres":
        pytest.skip("concurrent writers are PostgreSQL's; SQLite has a single writer")
    _, opening, _, token, client = setup
    applicant = post(client, token, apply_path(opening), ANA).get_json()
    path = f"/applicants/{applicant['id']}/events"
    results = _at_once(
        app, 6, lambda c: post(c, token, path, {"type": "ping.sent", "data": {"n": 1}}, "evt")
    )
    assert count(Event, Event.type == "applicant.external_event") == 1
    assert {status for status, _, _ in results} == {201}
    assert all(body == results[0][1] for _, body, _ in results)


def test_concurrent_requests_on_sqlite_also_do_the_work_once(setup, app, backend):
    """SQLite's single write lock serialises them: the same outcome, one at a time."""
    if backend != "sqlite":
        pytest.skip("the PostgreSQL tests above cover it there")
    _, opening, _, token, _ = setup
    path = apply_path(opening)
    results = _at_once(app, 4, lambda client: post(client, token, path, ANA, "k"))
    assert count(Applicant) == 1
    assert {status for status, _, _ in results} == {201}
    assert all(body == results[0][1] for _, body, _ in results)
    replayed = [h.get("Idempotent-Replayed") for _, _, h in results]
    assert replayed.count(None) == 1 and replayed.count("true") == 3

    # And an outside event, as on PostgreSQL.
    events_path = f"/applicants/{results[0][1]['id']}/events"
    event = {"type": "ping.sent", "data": {"n": 1}}
    results = _at_once(app, 4, lambda c: post(c, token, events_path, event, "evt"))
    assert count(Event, Event.type == "applicant.external_event") == 1
    assert {status for status, _, _ in results} == {201}
    assert all(body == results[0][1] for _, body, _ in results)


def test_the_sweep_deletes_keys_past_48_hours_and_keeps_younger_ones(setup, run_jobs):
    _, _, key, _, _ = setup
    now = utcnow()
    for name, age in (("old", 49), ("day", 25), ("new", 0)):
        db.session.add(
            IdempotencyKey(
                api_key_id=key.id,
                key=name,
                request_hash="0" * 64,
                status=201,
                response={},
                created_at=now - timedelta(hours=age),
            )
        )
    db.session.commit()
    # As the cron runs it: an RQ job.
    queues.queue().enqueue("jobs.api.sweep")
    assert run_jobs() == 0
    db.session.expire_all()
    assert sorted(db.session.scalars(select(IdempotencyKey.key))) == ["day", "new"]
    assert idempotency.sweep(now + timedelta(hours=30)) == 1
    assert list(db.session.scalars(select(IdempotencyKey.key))) == ["new"]


def test_the_sweep_runs_hourly_from_the_cron():
    import importlib

    from rq import cron

    import jobs.api

    importlib.import_module("jobs.cron")
    registered = [job for job in cron._job_data_registry if job["func"] is jobs.api.sweep]
    assert registered and registered[0]["interval"] == 3600
