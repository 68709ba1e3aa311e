"""Graceful drains of the C++ Hatchet worker, driven from hatchet-sdk, on the harness's engine (the
sibling of tests/temporal/teams.py's drains).

Run through scripts/with-services --need hatchet python tests/hatchet/drain.py <hatchet_peer>.

hx-drain-a's and hx-drain-b's one step, drain_nap, naps on its first attempt (unless asked to stop) and returns the attempt
it finished on; it may run twice.

A. SIGTERM 1 s into a 4 s nap, with a 10 s drain: the worker keeps heartbeating, the step finishes
   and its result is delivered; it ran once (the result is 1), and the worker exits when it is done,
   not before the step ends and not at the drain deadline.
B. SIGTERM into a 60 s nap with a 1 s drain: the step is asked to stop at the deadline, fails as
   weft.worker_shutdown, retryable, and a second worker runs attempt 2 (the result is 2); the first
   worker exits within a few seconds.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop as io  # noqa: E402  (process helpers shared with the interop test)

io.PREFIX = io.hatchet_smoke.PREFIX = "hatchet drain"


def worker(env, name, drain_ms):
    log = f"C++ worker {name}"
    p = io.start(log, [io.PEER, "worker", f"drain-{name[0]}", "2", f"weft-drain-{name}", str(drain_ms)],
                 dict(env, WEFT_LOG_LEVEL="debug"))  # step.started tells when to stop it
    io.LOGS["C++ worker"] = io.LOGS[log]
    io.wait_line(io.LOGS[log], p, "ready ")
    return p


def wait_started(name, ref) -> None:
    # This run's, by id: a run an earlier, failed invocation left may be retried here too.
    wf = f"hx-drain-{name[0]}"
    want = f'"event":"step.started","backend":"hatchet","workflow":"{wf}","run_id":"hatchet:{wf}:{ref.workflow_run_id}"'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(io.LOGS[f"C++ worker {name}"], encoding="utf-8", errors="replace") as f:
            if want in f.read():
                return
        time.sleep(0.1)
    io.fail(f"worker {name}: drain_nap did not start within 30 s")


def stop_timed(p) -> float:
    t0 = time.monotonic()
    io.hatchet_smoke.stop_worker(p)
    io.PROCS.remove(p)
    return time.monotonic() - t0


def result_of(ref) -> int:
    box = io.bounded(ref.result, f"run {ref.workflow_run_id}")
    if "error" in box:
        io.fail(f"run {ref.workflow_run_id} failed: {box['error']!r}")
    return box["value"]["drain_nap"]["$value"]  # a non-object output, as weft returns it (docs/hatchet.md)


def main() -> None:
    env, hatchet = io.connect("drain.py")
    # A: the drain outlasts the step.
    first = worker(env, "a", 10000)
    ref = hatchet.workflow(name="hx-drain-a").run({"$args": [4000]}, wait_for_result=False)
    wait_started("a", ref)
    time.sleep(1.0)
    took = stop_timed(first)
    if not 2.0 <= took < 8:
        io.fail(f"A: the drain should wait for the step (about 2.5 s left), and no longer; it took {took:.1f} s")
    second = worker(env, "a2", 0)
    attempt = result_of(ref)
    if attempt != 1:
        io.fail(f"A: the drained step's own result should be delivered (attempt 1), got attempt {attempt}")
    stop_timed(second)
    print(f"{io.PREFIX}: OK A: SIGTERM waited {took:.1f} s for the step, whose result (attempt 1) was delivered")

    # B: the drain deadline comes first.
    first = worker(env, "b", 1000)
    ref = hatchet.workflow(name="hx-drain-b").run({"$args": [60000]}, wait_for_result=False)
    wait_started("b", ref)
    time.sleep(0.5)
    took = stop_timed(first)
    if took >= 4:
        io.fail(f"B: the drain should end at its 1 s deadline; it took {took:.1f} s")
    with open(io.LOGS["C++ worker b"], encoding="utf-8", errors="replace") as f:
        log = f.read()
    if "weft.worker_shutdown" not in log and "stopped by a worker shutdown" not in log:
        io.fail("B: the worker did not report the step as stopped by its shutdown")
    t0 = time.monotonic()
    second = worker(env, "b2", 0)
    attempt = result_of(ref)
    if attempt != 2:
        io.fail(f"B: the stopped step should be retried (attempt 2), got attempt {attempt}")
    waited = time.monotonic() - t0
    stop_timed(second)
    print(f"{io.PREFIX}: OK B: the drain ended after {took:.1f} s; attempt 2 ran on the next worker ({waited:.1f} s)")
    io.passed()


if __name__ == "__main__":
    io.run_script(main)
