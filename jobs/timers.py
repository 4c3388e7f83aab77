"""Timer jobs: the periodic sweep that evaluates due timers in batches."""

from __future__ import annotations

from jobs import app_context

# Under the cron's 20 s interval (jobs/cron.py), the only thing that schedules this job: a
# run ends before the next tick enqueues another, which takes whatever is still due.
BUDGET_SECONDS = 15.0


def sweep() -> dict[str, int]:
    with app_context():
        from plutomi.services import rules

        claimed, fired = rules.sweep(BUDGET_SECONDS)
        return {"claimed": claimed, "fired": fired}
