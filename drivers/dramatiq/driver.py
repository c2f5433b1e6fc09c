"""The dramatiq driver (docs/drivers.md): the `dramatiq` command with one worker process per core
and 8 threads each (its defaults, which suit both short and waiting jobs), the Redis broker.
Messages are sent one `send` at a time: dramatiq has no bulk enqueue."""
import os
import signal
import subprocess
import sys
import time

import harness


class Dramatiq:
    def hello(self, msg):
        import dramatiq
        import tasks

        self.cores = msg["cores"]
        self.actor = tasks.job
        settings = {"processes": self.cores, "threads": 8, "broker": "RedisBroker", "max_retries": 0}
        return f"dramatiq {dramatiq.__version__}", settings

    def enqueue(self, jobs):
        now = time.time_ns()
        for j in jobs:
            self.actor.send(j["seq"], now, j["kind"], j["duration_us"], harness.payload_of(j["payload_bytes"]))

    def start(self):
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "tasks", "--processes", str(self.cores), "--threads", "8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
        return [self.worker.pid]

    def remaining(self):
        # The Redis broker keeps every message not yet acknowledged in <namespace>:<queue>.msgs.
        import redis
        r = redis.Redis.from_url(os.environ["CONVEYOR_REDIS_URL"])
        return r.hlen(f"dramatiq:{os.environ['CONVEYOR_QUEUE']}.msgs")

    def stop(self):
        self.worker.send_signal(signal.SIGTERM)  # graceful: workers finish the messages they hold
        self.worker.wait(timeout=60)


if __name__ == "__main__":
    harness.serve("dramatiq", Dramatiq())
