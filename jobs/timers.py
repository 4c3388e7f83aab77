"""Timer jobs: the periodic sweep that evaluates due timers in batches."""

from __future__ import annotations

from jobs import app_context

# Under the cron interval's worth of work per run, leaving time to hand over to the next run.
BUDGET_SECONDS = 50.0


def sweep() -> dict[str, int]:
    with app_context():
        from plutomi.extensions import queues
        from plutomi.services import rules

        claimed, fired = rules.sweep(BUDGET_SECONDS)
        if claimed and rules.any_due():
            # More are due than one run could take: carry on at once rather than at the
            # next tick, so a burst of due timers drains at full speed.
            queues.queue().enqueue("jobs.timers.sweep", job_timeout=300, result_ttl=60)
        return {"claimed": claimed, "fired": fired}
