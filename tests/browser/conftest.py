"""Fixtures for tests that drive the real Chromium through Playwright's sync API.

Each test process (each xdist worker) starts its own Chromium once; every test gets fresh
browser contexts, so cookies and storage never leak between tests or between the people of
one test. Without Chromium these tests are skipped, unless PLUTOMI_BROWSER_TESTS=required.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Milliseconds: generous for a loaded CI machine, short enough to fail fast.
ACTION_TIMEOUT = 15_000
EXPECT_TIMEOUT = 10_000

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.browser)


def _chromium() -> str | None:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    path = _chromium()
    if path is None:
        if os.environ.get("PLUTOMI_BROWSER_TESTS") == "required":
            pytest.fail(
                f"PLUTOMI_BROWSER_TESTS=required but Chromium is not at {CHROMIUM} "
                "nor on PATH; install Debian's chromium package."
            )
        pytest.skip(
            "Chromium not found at /usr/bin/chromium; install Debian's chromium "
            "or set PLUTOMI_BROWSER_TESTS=required in CI"
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def app(make_app, smtp_server, live_config) -> Flask:
    """The app that test code, run_jobs() included, works in: configured like the live server's.

    run_jobs() delivers outbox rows in this app's context, so it must send over the same SMTP
    server as the live app, or invites would land in the dev mailbox instead.
    """
    return make_app(SMTP_URL=smtp_server.url, **live_config)


@pytest.fixture
def new_context(browser, live_server) -> Iterator[Callable]:
    """Open a fresh browser context (a separate person) on the live server; closed afterwards."""
    contexts = []

    def open_context(**options):
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=live_server, **options)
        context.set_default_timeout(ACTION_TIMEOUT)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
