"""Celery's side of compare/run: the same work as conveyor's noop-10w scenario. One process
publishes JOBS no-op tasks (100-byte payload) while a worker (POOL, CONCURRENCY slots: prefork
with 10 by default, the best of prefork 2, prefork 10 and threads 10 measured here) runs them; no
result backend; each task counts itself done with one INCR. Prints one JSON line: tasks/s from
the first publish to the last completion."""
import json, os, subprocess, sys, time

jobs = int(os.environ.get("JOBS", "20000"))
pool = os.environ.get("POOL", "prefork")
concurrency = os.environ.get("CONCURRENCY", "10")
queue = f"compare-{os.getpid()}"
os.environ["COMPARE_QUEUE"] = queue
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import celery
from celery_app import app, counter, noop

worker = subprocess.Popen(
    [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", pool, "--concurrency", concurrency,
     "-Q", queue, "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "warning"],
    cwd=os.path.dirname(os.path.abspath(__file__)), env=os.environ, stdout=subprocess.DEVNULL)
try:
    time.sleep(3)  # the worker connects and starts consuming
    payload = "x" * 100
    start = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for seq in range(jobs):
            noop.apply_async((seq, payload), producer=producer)
    enqueue_seconds = time.perf_counter() - start
    while int(counter.get(f"{queue}:done") or 0) < jobs:
        time.sleep(0.005)
    total = time.perf_counter() - start
    print(json.dumps({"queue": f"celery {celery.__version__}", "pool": pool, "concurrency": int(concurrency),
                      "jobs": jobs, "enqueue_seconds": enqueue_seconds, "jobs_per_second": jobs / total}))
finally:
    worker.terminate()
    worker.wait(timeout=30)
    counter.delete(f"{queue}:done", queue)
