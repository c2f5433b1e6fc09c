"""The Celery app of the celery driver: one task that runs a protocol job (harness.run_job). The
broker and queue come from the environment the driver sets; no result backend (nobody reads
results), as a user who only needs the work done would configure it."""
import os

from celery import Celery

import harness

app = Celery("conveyor-driver", broker=os.environ["CONVEYOR_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    task_default_queue=os.environ["CONVEYOR_QUEUE"],
    # One message reserved per pool process: with -O fair no job waits behind a busy process.
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="conveyor.job")
def job(seq, enqueued_ns, kind, duration_us, payload):
    harness.run_job(seq, enqueued_ns, kind, duration_us, payload)
