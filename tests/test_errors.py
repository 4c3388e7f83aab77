"""Our own error pages (JSON for API clients), the health check, and running with Redis down."""

from __future__ import annotations

import pytest
from flask import abort, g
from sqlalchemy import func, select, text

from plutomi.extensions import db
from plutomi.models import Membership, Org, OutboxMessage, OutboxState, Role, User
from plutomi.services import orgs
from tests.conftest import PASSWORD, Auth

CLOSED_REDIS = "redis://127.0.0.1:1/0"


def assert_our_page(response, status: int, title: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = response.text
    assert title in page
    assert 'class="topbar"' in page  # our layout, navigation included
    assert "error-page" in page
    for leak in ("Traceback", 'File "', "werkzeug", "sqlalchemy", "psycopg"):
        assert leak not in page


def test_unknown_url_is_our_404_page(client):
    response = client.get("/no/such/page")
    assert_our_page(response, 404, "Not found")
    assert "There is nothing here" in response.text


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/no/such/page", {"Accept": "application/json"}),
        ("/api/no-such-thing", {}),
        ("/api/no-such-thing", {"Accept": "text/html"}),
    ],
)
def test_json_clients_get_json_errors(client, path, headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 404
    assert response.is_json
    error = response.get_json()["error"]
    assert error["status"] == 404
    assert error["message"]
    # The API's shape: a stable code for programs, and the field at fault (none here).
    assert error["code"] == "not_found"
    assert error["field"] is None
    assert set(error) == {"code", "message", "field", "status"}


def test_wrong_method_is_our_405_page(client):
    response = client.get("/logout")
    assert_our_page(response, 405, "Not allowed")
    assert "POST" in response.headers["Allow"]
    json = client.get("/logout", headers={"Accept": "application/json"})
    assert json.status_code == 405
    assert json.get_json()["error"]["status"] == 405


@pytest.fixture
def boom_app(make_app):
    """An app with test-only routes that fail, added before its first request."""
    app = make_app()
    app.extensions["after_error"] = seen = []

    def raises():
        db.session.add(User(email="half-written@example.com", name="Half", password_hash="x"))
        db.session.flush()
        raise RuntimeError("secret internals: password=hunter2")

    def bad_sql():
        db.session.execute(text("SELECT * FROM no_such_table"))
        return "unreachable"

    def aborts_500():
        db.session.add(User(email="aborted@example.com", name="Aborted", password_hash="x"))
        db.session.flush()
        abort(500)

    app.add_url_rule("/test-only/raises", view_func=raises, methods=["GET", "POST"])
    app.add_url_rule("/test-only/bad-sql", view_func=bad_sql)
    app.add_url_rule("/test-only/aborts", view_func=aborts_500)

    @app.after_request
    def record_session_state(response):
        # Runs after the error handler: the session must hold nothing of the failed view.
        if g.get("_recorded") is None and response.status_code == 500:
            seen.append({"new": list(db.session.new), "open": db.session().in_transaction()})
            g._recorded = True
        return response

    return app


@pytest.mark.parametrize("path", ["/test-only/raises", "/test-only/aborts"])
def test_an_error_in_a_view_is_our_500_page_and_rolls_back(app, boom_app, path):
    client = boom_app.test_client()
    response = client.get(path)
    assert_our_page(response, 500, "Something went wrong")
    assert "hunter2" not in response.text
    assert boom_app.extensions["after_error"] == [{"new": [], "open": False}]
    assert db.session.scalar(select(func.count()).select_from(User)) == 0

    json = client.get(path, headers={"Accept": "application/json"})
    assert json.status_code == 500
    assert json.get_json()["error"]["status"] == 500
    assert "hunter2" not in json.text
    assert "Traceback" not in json.text


@pytest.mark.parametrize(
    "path", ["/login", "/no-such-page", "/api/v1/openings", "/test-only/raises"]
)
def test_every_answer_forbids_framing_sniffing_and_referrers_abroad(boom_app, path):
    response = boom_app.test_client().get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_failed_query_still_renders_the_page_for_a_logged_in_user(app, boom_app, make_org):
    """On PostgreSQL a failed statement aborts the transaction; the page's own queries (the
    nav's org switcher) only work because the handler rolled back first."""
    org = make_org("Errorland")
    client = boom_app.test_client()
    assert Auth(client).login(org.memberships[0].user.email).status_code == 302
    response = client.get("/test-only/bad-sql")
    assert_our_page(response, 500, "Something went wrong")
    assert "Errorland" in response.text  # the layout's org switcher ran its queries
    assert "no_such_table" not in response.text
    # And the next request of the same app is fine.
    assert client.get("/openings").status_code == 200


def test_a_viewer_trying_an_admin_action_gets_our_403_page(client, auth, make_org, make_member):
    org = make_org()
    viewer = make_member(org, Role.VIEWER)
    auth.login(viewer.email)
    response = client.post("/settings/invites", data={"email": "new@example.com", "role": "viewer"})
    assert_our_page(response, 403, "Not allowed")
    assert "This needs the Admin role or higher." in response.text
    htmx = client.post(
        "/settings/invites",
        data={"email": "new@example.com", "role": "viewer"},
        headers={"HX-Request": "true"},
    )
    assert htmx.status_code == 403
    assert "Not allowed" in htmx.text
    # A setting a viewer may see but not change.
    response = client.post("/settings", data={"name": "Renamed", "slug": "renamed"})
    assert_our_page(response, 403, "Not allowed")
    db.session.refresh(org)
    assert org.name != "Renamed"
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


# --- Redis down ---------------------------------------------------------------------------


@pytest.fixture
def redis_down(app, make_app):
    """An app whose Redis is a closed port. Before make_app's cleanup flushes each app's
    Redis, this one is pointed back at the test Redis."""
    down = make_app(REDIS_URL=CLOSED_REDIS)
    yield down
    down.extensions["redis"] = app.extensions["redis"]


def test_healthz_is_503_when_redis_is_down(redis_down):
    response = redis_down.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "database": "ok", "redis": "down"}


def test_login_fails_open_when_redis_is_down(redis_down, make_org):
    org = make_org()
    email = org.memberships[0].user.email
    client = redis_down.test_client()
    auth = Auth(client)
    # Failures cannot be counted, and are still refused one by one.
    for _ in range(6):
        response = auth.login(email, "wrong password!")
        assert response.status_code == 422
        assert "Wrong email or password." in response.text
    assert auth.login(email).status_code == 302
    assert client.get("/openings").status_code == 200


def test_signup_and_mail_work_with_redis_down_and_the_outbox_keeps_the_mail(redis_down):
    client = redis_down.test_client()
    response = client.post(
        "/signup",
        data={"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "org_name": "Acme"},
    )
    assert response.status_code == 302
    assert client.get("/openings").status_code == 200
    user = db.session.scalar(select(User).where(User.email == "ada@example.com"))
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert membership.role == Role.OWNER

    # Signing up sends no mail; inviting and password resets do. Their hand-off to Redis
    # fails, and the rows stay pending for the sweep.
    response = client.post("/settings/invites", data={"email": "bo@example.com", "role": "admin"})
    assert response.status_code == 302
    response = redis_down.test_client().post("/password/forgot", data={"email": user.email})
    assert response.status_code == 302
    rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert [(r.payload["to"], r.payload["template"]) for r in rows] == [
        ("bo@example.com", "invite"),
        ("ada@example.com", "password_reset"),
    ]
    assert all(r.state == OutboxState.PENDING and r.attempts == 0 for r in rows)
    org = db.session.scalar(select(Org).where(Org.id == membership.org_id))
    assert [i.email for i in orgs.pending_invites(org)] == ["bo@example.com"]
