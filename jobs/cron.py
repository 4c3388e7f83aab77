"""Periodic jobs for `rq cron jobs/cron.py`: several cron processes may run; claims keep it safe."""

from rq import cron

from jobs import api, bulk, outbox, timers

cron.register(outbox.sweep, queue_name="default", interval=30, job_timeout=300)
cron.register(bulk.sweep, queue_name="default", interval=30, job_timeout=300)
# Every 20 s, so a timer fires well within a minute of its due time.
cron.register(timers.sweep, queue_name="default", interval=20, job_timeout=300)
# Idempotency keys are promised for 24 h and deleted past 48 h: hourly is plenty.
cron.register(api.sweep, queue_name="default", interval=3600, job_timeout=300)
