"""Periodic jobs for `rq cron jobs/cron.py`: several cron processes may run; claims keep it safe."""

from rq import cron

from jobs.outbox import sweep

cron.register(sweep, queue_name="default", interval=30, job_timeout=300)
