"""Celery's side of compare/run: a no-op task that counts itself done in Redis."""
import os

import redis
from celery import Celery

PORT = int(os.environ.get("REDIS_PORT", "6379"))
QUEUE = os.environ.get("COMPARE_QUEUE", "compare")
app = Celery("compare", broker=f"redis://127.0.0.1:{PORT}/0")
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE, worker_hijack_root_logger=False)
counter = redis.Redis(port=PORT)


@app.task(name="noop")
def noop(seq, payload):
    counter.incr(f"{QUEUE}:done")
