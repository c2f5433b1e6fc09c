"""The driver protocol (docs/drivers.md) for the Python drivers: the stdin/stdout loop, the
records file the workers append to, and the job body every queue runs. A driver module gives
`serve()` an adapter with four methods:

    hello(msg) -> (library, settings)   connect to msg["redis_url"], queue msg["queue"]
    enqueue(jobs)                       put the protocol jobs in the queue; return when it has them
    start() -> [pid, ...]               start the worker processes
    stop()                              stop them, letting them finish what they hold
    remaining() -> int | None           jobs still in the queue after stop() (waiting or held)

Workers call `run_job(...)` as their task body: it does the work the job asks for and appends one
record line to the file named by CONVEYOR_RECORDS (O_APPEND, one write per line, so lines from
many processes never interleave). A thread here tails that file and sends the records to conveyor.
"""
import json
import os
import sys
import tempfile
import threading
import time

FLUSH_EVERY = 0.05  # seconds between record messages
_out_lock = threading.Lock()
_fd = None
_fd_pid = None


def send(message):
    line = json.dumps(message, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def payload_of(size):
    return "x" * size


def run_job(seq, enqueued_ns, kind, duration_us, payload):
    """The task body: run the job, then append its record (seq enqueued started finished pid)."""
    started = time.time_ns()
    if kind == "sleep":
        time.sleep(duration_us / 1e6)
    elif kind == "cpu":
        until = time.perf_counter_ns() + duration_us * 1000
        while time.perf_counter_ns() < until:
            pass
    finished = time.time_ns()
    global _fd, _fd_pid
    if _fd is None or _fd_pid != os.getpid():  # after a fork the child opens its own
        _fd = os.open(os.environ["CONVEYOR_RECORDS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fd_pid = os.getpid()
    os.write(_fd, f"{seq} {enqueued_ns} {started} {finished} {os.getpid()}\n".encode())


class _Tail(threading.Thread):
    """Sends the records file's new lines as records messages."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.offset, self.partial, self.sent = path, 0, b"", 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(FLUSH_EVERY):
            self.flush()

    def flush(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        records = []
        for line in lines:
            seq, enq, start, end, pid = (int(v) for v in line.split())
            records.append({"seq": seq, "enqueued_ns": enq, "started_ns": start, "finished_ns": end, "pid": pid})
        if records:
            send({"type": "records", "records": records})
            self.sent += len(records)


def serve(driver, adapter):
    records_dir = tempfile.mkdtemp(prefix=f"conveyor-{driver}-")
    path = os.path.join(records_dir, "records")
    open(path, "wb").close()
    os.environ["CONVEYOR_RECORDS"] = path
    tail = _Tail(path)
    started = False
    try:
        for line in sys.stdin:
            msg = json.loads(line)
            kind = msg["type"]
            if kind == "hello":
                os.environ["CONVEYOR_REDIS_URL"] = msg["redis_url"]
                os.environ["CONVEYOR_QUEUE"] = msg["queue"]
                library, settings = adapter.hello(msg)
                send({"type": "hello", "driver": driver, "library": library, "settings": settings})
            elif kind == "enqueue":
                adapter.enqueue(msg["jobs"])
                send({"type": "enqueued", "batch": msg["batch"]})
            elif kind == "start":
                pids = adapter.start()
                started = True
                tail.start()
                send({"type": "started", "pids": pids})
            elif kind == "stop":
                break
    except Exception as e:  # tell conveyor, which stops the run with the message
        send({"type": "error", "message": f"{type(e).__name__}: {e}"})
        raise
    finally:
        if started:
            adapter.stop()
            tail.stopping.set()
            tail.join()
            tail.flush()
        remaining = adapter.remaining() if started else None
        send({"type": "stopped", "records_sent": tail.sent, "remaining": remaining})
        os.remove(path)
        os.rmdir(records_dir)
