"""RQ entry points. A job takes ids, sets up its own app context, and re-checks the world."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from flask import Flask, has_app_context

_app: Flask | None = None


def app_context() -> AbstractContextManager:
    """The worker's app context; in-process callers (tests, the CLI) keep their own."""
    global _app
    if has_app_context():
        return nullcontext()
    if _app is None:
        from plutomi import create_app

        _app = create_app()
    return _app.app_context()
