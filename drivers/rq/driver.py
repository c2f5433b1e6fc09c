"""The rq driver (docs/drivers.md): one `rq worker` process per core with RQ's default Worker,
which forks a work horse for every job (RQ has no concurrency setting: a worker runs one job at a
time, so processes are its only knob). Jobs are enqueued in bulk (`enqueue_many` in one
pipeline) and keep no result (`result_ttl=0`), as completed BullMQ jobs are removed."""
import os
import signal
import subprocess
import sys
import time

import redis
import rq

import harness
import tasks


class Rq:
    def hello(self, msg):
        self.cores = msg["cores"]
        self.redis = redis.Redis.from_url(msg["redis_url"])
        self.queue = rq.Queue(msg["queue"], connection=self.redis)
        settings = {"worker_class": "rq.Worker (fork per job)", "processes": self.cores, "concurrency": 1,
                    "result_ttl": 0}
        return f"rq {rq.__version__} (redis-py {redis.__version__})", settings

    def enqueue(self, jobs):
        now = time.time_ns()
        data = [rq.Queue.prepare_data(tasks.job, (j["seq"], now, j["kind"], j["duration_us"],
                                                  harness.payload_of(j["payload_bytes"])), result_ttl=0)
                for j in jobs]
        with self.redis.pipeline() as pipe:
            self.queue.enqueue_many(data, pipeline=pipe)
            pipe.execute()

    def start(self):
        rq_bin = os.path.join(os.path.dirname(sys.executable), "rq")  # the venv's, beside its python
        self.workers = [subprocess.Popen([rq_bin, "worker", "--url", os.environ["CONVEYOR_REDIS_URL"],
                                          "--logging_level", "WARNING", os.environ["CONVEYOR_QUEUE"]],
                                         stdout=subprocess.DEVNULL, env=os.environ)
                        for _ in range(self.cores)]
        return [w.pid for w in self.workers]

    def remaining(self):
        return self.queue.count + self.queue.started_job_registry.count

    def stop(self):
        for w in self.workers:
            w.send_signal(signal.SIGTERM)  # warm shutdown: the job in hand finishes
        for w in self.workers:
            w.wait(timeout=60)


if __name__ == "__main__":
    harness.serve("rq", Rq())
