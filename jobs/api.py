"""API jobs: the hourly sweep of idempotency keys past their keeping time."""

from __future__ import annotations

from jobs import app_context


def sweep() -> int:
    with app_context():
        from plutomi.services import idempotency

        return idempotency.sweep()
