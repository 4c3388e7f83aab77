"""Fixtures: a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), a real
Redis (REDIS_URL, else embedded), a real SMTP server, factories and a live server.

The schema is built by the Alembic migrations, once per backend and test process, so every
run also tests the migrations from empty. Each test starts from empty tables.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select, text
from werkzeug.security import generate_password_hash

from plutomi import create_app, embedded_redis
from plutomi.extensions import db, queues
from plutomi.models import (
    Applicant,
    Membership,
    Opening,
    OpeningState,
    Org,
    Question,
    QuestionType,
    Role,
    Rule,
    Stage,
    Trigger,
    User,
    new_public_id,
)
from plutomi.services import passwords

PASSWORD = "correct horse battery staple"
_PASSWORD_HASH: str | None = None


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def _backends() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


# One id per pytest run (shared by its xdist workers), so two runs at once never collide.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]


def _admin_engine():
    base = os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    return base, create_engine(base, isolation_level="AUTOCOMMIT")


def _postgres_url() -> str:
    """A database of this test process's own, made fresh on the server of TEST_DATABASE_URL."""
    base, admin = _admin_engine()
    parts = urlsplit(base)
    name = f"{parts.path.lstrip('/') or 'test'}_plutomi_{_RUN}_{_worker()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return urlunsplit(parts._replace(path=f"/{name}"))


_DROP = """
import sys
from sqlalchemy import create_engine, text
admin = create_engine(sys.argv[1], isolation_level="AUTOCOMMIT")
with admin.connect() as conn:
    conn.execute(text(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)'))
"""


def _drop_postgres(url: str) -> None:
    """Drop the test process's database from a process of its own, not waited for: the
    DROP can take 10-25 s at the end of a long run (it waits for the sessions still on the
    database to end), and nothing of this run needs the database gone."""
    base, _ = _admin_engine()
    subprocess.Popen(
        [sys.executable, "-c", _DROP, base, urlsplit(url).path.lstrip("/")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="session", autouse=True)
def _instance_outside_the_checkout(tmp_path_factory) -> Iterator[None]:
    """Every app the suite makes reads its settings from the environment first, which makes
    an instance folder and a secret key in it: one of the test run's, not the checkout's."""
    before = os.environ.get("INSTANCE_PATH")
    os.environ["INSTANCE_PATH"] = str(tmp_path_factory.mktemp("instance"))
    yield
    if before is None:
        os.environ.pop("INSTANCE_PATH", None)
    else:
        os.environ["INSTANCE_PATH"] = before


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """REDIS_URL when set (one database number per test process), else embedded Redis."""
    if url := os.environ.get("REDIS_URL"):
        number = 1 + int(_worker().removeprefix("gw") or 0)
        parts = urlsplit(url)
        yield urlunsplit(parts._replace(path=f"/{number}"))
        return
    folder = tmp_path_factory.mktemp("redis")
    url = embedded_redis.start(folder)
    yield url
    embedded_redis.stop()


@pytest.fixture(scope="session", params=_backends())
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory) -> Iterator[str]:
    if backend == "postgres":
        url = _postgres_url()
        yield url
        _drop_postgres(url)
        return
    yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def app_config(database_url: str, redis_url: str, instance: Path) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "WTF_CSRF_ENABLED": False,
        "BASE_URL": "http://localhost",
        "SMTP_URL": None,
        "DEV_MAILBOX": True,
        "UPLOAD_DIR": str(instance / "uploads"),
    }


@pytest.fixture(scope="session")
def base_config(database_url, redis_url, tmp_path_factory) -> dict:
    return app_config(database_url, redis_url, tmp_path_factory.mktemp("instance"))


@pytest.fixture(scope="session")
def _migrated(base_config) -> dict:
    app = create_app(base_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return base_config


def _empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def make_app(_migrated) -> Iterator:
    """Build an app on the test database with extra config; tables are emptied afterwards."""
    apps: list[Flask] = []

    def build(**overrides) -> Flask:
        config = {**_migrated, **overrides}
        app = create_app(config)
        app.extensions["test_config"] = config
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            _empty_tables()
            queues.connection.flushdb()
            db.engine.dispose()


def _receivers_here(request) -> dict:
    """Config for tests marked local_receivers, whose webhook receivers listen on this
    machine: production refuses such private addresses (tests/test_webhook_targets.py)."""
    if request.node.get_closest_marker("local_receivers"):
        return {"ALLOW_PRIVATE_WEBHOOK_TARGETS": True}
    return {}


@pytest.fixture
def app(make_app, request) -> Flask:
    return make_app(**_receivers_here(request))


@pytest.fixture
def bench_backend(backend) -> str:
    """For the benchmarks' smoke runs: once per suite, on PostgreSQL (where `make bench`
    runs) when the suite has it, else on SQLite, so the smoke runs do not cost twice."""
    if backend == "sqlite" and os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("the benchmarks' smoke run takes PostgreSQL when the suite has it")
    return backend


@pytest.fixture
def client(app):
    """Replaces pytest-flask's client, which keeps each request's context pushed afterwards:
    a second client's request would then reuse that context and its logged-in user."""
    return app.test_client()


@pytest.fixture(autouse=True)
def _push_request_context(request) -> Iterator[None]:
    """Replaces pytest-flask's fixture of this name: test code gets a context of a twin app.

    Flask reuses an app context that is already pushed for the same app, so with pytest-flask's
    context every request of the test client would share one `g` (and Flask-Login's cached
    user). A twin app on the same database and Redis keeps each request as separate as in
    production, while test code still uses db.session and url_for freely.
    """
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    twin = create_app(app.extensions["test_config"])
    ctx = twin.test_request_context()
    ctx.push()
    yield
    db.session.remove()
    ctx.pop()
    with twin.app_context():
        db.engine.dispose()


# --- factories ---------------------------------------------------------------------------


def _password_hash() -> str:
    """The factory users' hash: cheap to check (a login with the product's scrypt costs 170 ms
    of CPU, and the suite logs in thousands of times). Logins check any method the hash
    names; the product's own hashing is tested where users sign up and change passwords."""
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    return _PASSWORD_HASH


@pytest.fixture
def make_user(app):
    def make(email: str | None = None, name: str = "Test User", password: str = PASSWORD) -> User:
        email = email or f"user-{new_public_id()[:8]}@example.com"
        hashed = _password_hash() if password == PASSWORD else passwords.hash_password(password)
        user = User(email=email, name=name, password_hash=hashed)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def make_org(app, make_user):
    def make(name: str = "Acme", owner: User | None = None, slug: str | None = None) -> Org:
        owner = owner or make_user(name=f"{name} Owner")
        org = Org(name=name, slug=slug or f"{name.lower()}-{new_public_id()[:6]}")
        db.session.add(org)
        db.session.flush()
        db.session.add(Membership(org_id=org.id, user_id=owner.id, role=Role.OWNER))
        db.session.commit()
        return org

    return make


@pytest.fixture
def make_member(app, make_user):
    def make(org: Org, role: Role = Role.RECRUITER, email: str | None = None) -> User:
        user = make_user(email=email, name=f"{role.label} of {org.name}")
        db.session.add(Membership(org_id=org.id, user_id=user.id, role=role))
        db.session.commit()
        return user

    return make


def owner_of(org: Org) -> User:
    return next(m.user for m in org.memberships if m.role == Role.OWNER)


def owner_membership(org: Org) -> Membership:
    """The owner's membership: the actor service calls take."""
    return db.session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.role == Role.OWNER)
    )


def logged_in(app, user: User):
    """A test client of its own, logged in as user."""
    client = app.test_client()
    response = Auth(client).login(user.email)
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def make_opening(app):
    def make(
        org: Org, name: str = "Delivery Driver", stages: tuple[str, ...] = ("Applied", "Review")
    ) -> Opening:
        opening = Opening(
            org_id=org.id, name=name, slug=new_public_id()[:10], state=OpeningState.PUBLISHED
        )
        db.session.add(opening)
        db.session.flush()
        for position, stage_name in enumerate(stages):
            db.session.add(
                Stage(org_id=org.id, opening_id=opening.id, name=stage_name, position=position)
            )
        db.session.commit()
        return opening

    return make


@pytest.fixture
def make_applicant(app):
    def make(opening: Opening, stage: Stage | None = None, name: str = "Ada Okafor") -> Applicant:
        stage = stage or opening.stages[0]
        applicant = Applicant(
            org_id=opening.org_id,
            opening_id=opening.id,
            stage_id=stage.id,
            name=name,
            email=f"{new_public_id()[:8]}@example.net",
            rank="i",
        )
        db.session.add(applicant)
        db.session.commit()
        return applicant

    return make


@pytest.fixture
def make_question(app):
    def make(stage, key: str, type: QuestionType = QuestionType.SHORT_TEXT, **fields) -> Question:
        position = db.session.scalar(
            select(func.count()).select_from(Question).where(Question.stage_id == stage.id)
        )
        question = Question(
            org_id=stage.org_id,
            opening_id=stage.opening_id,
            stage_id=stage.id,
            key=key,
            type=type,
            label=fields.pop("label", key.replace("_", " ").capitalize()),
            position=position,
            **fields,
        )
        db.session.add(question)
        db.session.commit()
        return question

    return make


@pytest.fixture
def make_rule(app):
    """A rule of a stage, given as the engine stores it (the editor's checks are not run)."""

    def make(stage: Stage, trigger: Trigger, actions: list, **fields) -> Rule:
        position = db.session.scalar(
            select(func.count()).select_from(Rule).where(Rule.stage_id == stage.id)
        )
        rule = Rule(
            org_id=stage.org_id,
            opening_id=stage.opening_id,
            stage_id=stage.id,
            position=position,
            name=fields.pop("name", f"Rule {position + 1}"),
            trigger=trigger,
            actions=actions,
            **fields,
        )
        db.session.add(rule)
        db.session.commit()
        return rule

    return make


@pytest.fixture
def make_api_key(app):
    """An API key of the org made by its owner: (the row, the key to send)."""
    from plutomi.services import api_keys

    def make(org: Org, scope: str = "write", name: str = "Integration"):
        return api_keys.create(owner_membership(org), name, scope)

    return make


# --- logging in, jobs, mail ---------------------------------------------------------------


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = PASSWORD, remember: bool = False):
        data = {"email": email, "password": password}
        if remember:
            data["remember"] = "y"
        return self.client.post("/login", data=data)

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


@pytest.fixture
def run_jobs(app):
    """Run every queued RQ job now, in this process, on the real Redis."""
    from rq import SimpleWorker

    def run() -> int:
        queue = queues.queue()
        worker = SimpleWorker([queue], connection=queues.connection)
        # The worker installs its own SIGINT/SIGTERM handlers; put pytest's back afterwards.
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker.work(burst=True, with_scheduler=False)
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        return len(queue.failed_job_registry)

    return run


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port, keeping what it receives."""
    from aiosmtpd.controller import Controller

    box = Mailbox("127.0.0.1", _free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            box.messages.append(message_from_bytes(envelope.original_content))
            return "250 OK"

    controller = Controller(Handler(), hostname=box.host, port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def live_config(request) -> dict:
    """Extra config of the live server's app (and the browser tests' app beside it)."""
    return _receivers_here(request)


@pytest.fixture
def live_server(make_app, smtp_server, live_config) -> Iterator[str]:
    """The app served by a real threaded HTTP server on a free port; yields its base URL."""
    from werkzeug.serving import make_server

    app = make_app(SMTP_URL=smtp_server.url, **live_config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = url
    app.config["LIVE_MAILBOX"] = smtp_server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join(5)


@pytest.fixture
def webhook_receiver() -> Iterator:
    """A real HTTP receiver on a free local port (tests/receivers.py), stopped afterwards."""
    from tests.receivers import Receiver

    with Receiver() as receiver:
        yield receiver


# --- reading pages ---------------------------------------------------------------------------


def field_error(page: str, field: str) -> str | None:
    """The error shown next to a form field (the p#<field>-error), as the user reads it."""
    match = re.search(rf'<p class="error" id="{field}-error"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)).strip() if match else None


def flashed(response) -> list[dict]:
    """The flashes an htmx answer carries in its HX-Trigger header."""
    return json.loads(response.headers["HX-Trigger"])["flash"]
