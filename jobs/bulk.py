"""Bulk board actions: run one, and the periodic sweep that hands out stuck ones again."""

from __future__ import annotations

from jobs import app_context


def run(bulk_id: int) -> str:
    with app_context():
        from plutomi.services import bulk

        return bulk.run(bulk_id)


def sweep() -> int:
    with app_context():
        from plutomi.services import bulk

        return bulk.sweep()
