"""The celery driver (docs/drivers.md): Celery's prefork pool, one worker with a pool process per
core (`--concurrency cores`), `-O fair` and prefetch multiplier 1, Redis as the broker, no result
backend. Jobs are published one `apply_async` at a time over one producer connection: Celery has
no bulk publish."""
import os
import signal
import subprocess
import sys
import time

import harness


class Celery:
    def hello(self, msg):
        import celery
        import tasks

        self.cores = msg["cores"]
        self.task = tasks.job
        self.producer = tasks.app.producer_or_acquire().__enter__()
        settings = {"pool": "prefork", "concurrency": self.cores, "optimization": "-O fair",
                    "prefetch_multiplier": 1, "result_backend": "none", "processes": 1 + self.cores}
        return f"celery {celery.__version__} (kombu {__import__('kombu').__version__})", settings

    def enqueue(self, jobs):
        now = time.time_ns()
        for j in jobs:
            args = (j["seq"], now, j["kind"], j["duration_us"], harness.payload_of(j["payload_bytes"]))
            self.task.apply_async(args, producer=self.producer)

    def start(self):
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork",
             "--concurrency", str(self.cores), "-O", "fair", "--without-heartbeat", "--without-gossip",
             "--without-mingle", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, env=os.environ)
        return [self.worker.pid]

    def remaining(self):
        # kombu's Redis transport: the queue is a list; reserved messages sit in the "unacked" hash.
        import redis
        r = redis.Redis.from_url(os.environ["CONVEYOR_REDIS_URL"])
        return r.llen(os.environ["CONVEYOR_QUEUE"]) + r.hlen("unacked")

    def stop(self):
        self.worker.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        self.worker.wait(timeout=60)


if __name__ == "__main__":
    harness.serve("celery", Celery())
