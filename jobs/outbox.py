"""Outbox jobs: deliver a batch of rows, and the periodic sweep that re-enqueues due rows."""

from __future__ import annotations

from jobs import app_context


def deliver(ids: list[int]) -> dict[str, int]:
    with app_context():
        from plutomi.services import outbox

        return outbox.deliver(ids)


def sweep() -> int:
    with app_context():
        from plutomi.services import outbox

        return outbox.sweep()
