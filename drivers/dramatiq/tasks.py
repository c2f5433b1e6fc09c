"""The dramatiq driver's broker and actor: the Redis broker from the environment, one actor on
the run's queue, no retries (a benchmark job never fails)."""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

import harness

dramatiq.set_broker(RedisBroker(url=os.environ["CONVEYOR_REDIS_URL"]))


@dramatiq.actor(queue_name=os.environ["CONVEYOR_QUEUE"], max_retries=0)
def job(seq, enqueued_ns, kind, duration_us, payload):
    harness.run_job(seq, enqueued_ns, kind, duration_us, payload)
