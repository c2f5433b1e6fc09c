"""The rq driver's job function: RQ imports it by name in each work horse."""
import harness


def job(seq, enqueued_ns, kind, duration_us, payload):
    harness.run_job(seq, enqueued_ns, kind, duration_us, payload)
