"""Timer jobs: the periodic sweep that evaluates due timers in batches."""

from __future__ import annotations

import threading

from jobs import app_context

# Under the cron's 20 s interval (jobs/cron.py), the only thing that schedules this job: a
# run ends before the next tick enqueues another, which takes whatever is still due.
BUDGET_SECONDS = 15.0
# Sweeps side by side in one job on PostgreSQL, each with its own connection: while one lane
# evaluates a chunk in Python, the database writes another's, so a backlog takes about the
# longer of the two instead of their sum. Their claims never overlap (SKIP LOCKED). SQLite
# takes one writer at a time: one lane there.
LANES = 2


def sweep() -> dict[str, int]:
    with app_context():
        from flask import current_app

        from plutomi.extensions import db
        from plutomi.services import rules

        lanes = LANES if db.engine.dialect.name == "postgresql" else 1
        app = current_app._get_current_object()
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def lane() -> None:
            try:
                with app.app_context():  # a session and connection of its own
                    try:
                        results.append(rules.sweep(BUDGET_SECONDS))
                    finally:
                        db.session.remove()
            except BaseException as exc:  # raised again by the job's own thread
                errors.append(exc)

        others = [threading.Thread(target=lane, daemon=True) for _ in range(lanes - 1)]
        for thread in others:
            thread.start()
        results.append(rules.sweep(BUDGET_SECONDS))
        for thread in others:
            thread.join()
        if errors:
            raise errors[0]
        return {
            "claimed": sum(claimed for claimed, _ in results),
            "fired": sum(fired for _, fired in results),
        }
