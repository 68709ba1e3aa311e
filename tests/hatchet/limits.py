"""Concurrency limits on a workflow that Python and C++ both register, on the harness's engine.

Run through scripts/with-services --need hatchet python tests/hatchet/limits.py <hatchet_peer>.

hatchet-sdk registers hx-limited with a concurrency limit of one run at a time; its one task,
timed_nap, is served by the C++ worker (hatchet_peer), which returns when it ran. Two runs triggered
together from Python must not overlap while the limit applies. Three C++ worker starts:

A. replace_definitions = never: the worker does not register, Python's limit applies.
B. replace_definitions = always and no limits declared in weft: weft's definition replaces Python's
   and the runs overlap. This is the hazard the setting exists for, and it proves that the check
   sees an overlap when there is one.
C. replace_definitions = always with the limit declared in weft (hatchet::options::limits): the
   definition weft registers has it, so the runs do not overlap again.

Then a rate limit, on hx-rated (the same task): hatchet-sdk creates the key with 1 unit a minute.
R1. weft declares no rate limit: three runs all finish at once (the control).
R2. weft declares timed_nap takes one unit of the key: one run finishes, the two others stay queued
    while the minute lasts (left queued: the harness's engine serves no REST API to cancel them, and
    no worker serves hx-rated afterwards).
"""
import os
import sys
import threading
import time
import uuid
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop as io  # noqa: E402  (process helpers shared with the interop test)

io.PREFIX = io.hatchet_smoke.PREFIX = "hatchet limits"
WORKFLOW = "hx-limited"
NAP_MS = 1500
# The engine resolves a trigger's workflow name through a cache that keeps a version for 5 s
# (tenantIdWorkflowNameCache, pkg/repository/shared.go): a new definition applies after that.
NAME_CACHE_S = 6


def register_from_python(hatchet) -> None:
    from hatchet_sdk import ConcurrencyExpression, ConcurrencyLimitStrategy, Context

    wf = hatchet.workflow(name=WORKFLOW, concurrency=ConcurrencyExpression(
        expression="'all'", max_runs=1, limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN))

    @wf.task(execution_timeout=timedelta(seconds=30))
    def timed_nap(input, ctx: Context) -> dict:
        raise RuntimeError("timed_nap runs in C++")

    # What a Python worker does when it starts, without serving the task.
    hatchet._client.admin.put_workflow(wf.to_proto())


def two_runs(hatchet) -> list[dict]:
    wf = hatchet.workflow(name=WORKFLOW)
    refs = [wf.run({"$args": [NAP_MS]}, wait_for_result=False) for _ in range(2)]
    out = []
    for ref in refs:
        box = io.bounded(ref.result, f"run {ref.workflow_run_id} of {WORKFLOW}")
        if "error" in box:
            io.fail(f"run {ref.workflow_run_id} of {WORKFLOW} failed: {box['error']!r}")
        out.append(box["value"]["timed_nap"])
    return out


def phase(hatchet, env: dict[str, str], name: str, worker_set: str, replace: str, want_overlap: bool) -> None:
    log = f"C++ worker {name}"
    p = io.start(log, [io.PEER, "worker", worker_set, "4", f"weft-limits-{name}"],
                 dict(env, WEFT_HATCHET_REPLACE_DEFINITIONS=replace))
    io.LOGS["C++ worker"] = io.LOGS[log]
    io.wait_line(io.LOGS[log], p, "ready ")
    time.sleep(NAME_CACHE_S)
    a, b = two_runs(hatchet)
    io.hatchet_smoke.stop_worker(p)
    io.PROCS.remove(p)
    overlap = a["start_ms"] < b["end_ms"] and b["start_ms"] < a["end_ms"]
    if overlap != want_overlap:
        fail = "overlapped" if overlap else "ran one after the other"
        io.fail(f"phase {name} (replace_definitions={replace}, worker set {worker_set}): the two runs {fail}: {a} {b}")
    if replace == "never":
        with open(io.LOGS[log], encoding="utf-8", errors="replace") as f:
            if f"not registering workflow '{WORKFLOW}'" not in f.read():
                io.fail(f"phase {name}: the worker did not say it left {WORKFLOW}'s definition alone")
    print(f"{io.PREFIX}: OK {name}: replace_definitions={replace}, {worker_set}: "
          f"{'overlap' if overlap else 'no overlap'} ({a['start_ms']}..{a['end_ms']}, {b['start_ms']}..{b['end_ms']})")


RATED = "hx-rated"
HELD_S = 8  # how long the two rate-limited runs must stay queued (the limit refills after 60 s)


def rate_phase(hatchet, env: dict[str, str], name: str, worker_set: str, key: str, want_held: bool) -> None:
    log = f"C++ worker {name}"
    p = io.start(log, [io.PEER, "worker", worker_set, "4", f"weft-limits-{name}"],
                 dict(env, WEFT_HATCHET_REPLACE_DEFINITIONS="always", WEFT_TEST_RATE_KEY=key))
    io.LOGS["C++ worker"] = io.LOGS[log]
    io.wait_line(io.LOGS[log], p, "ready ")
    time.sleep(NAME_CACHE_S)
    wf = hatchet.workflow(name=RATED)
    refs = [wf.run({"$args": [100]}, wait_for_result=False) for _ in range(3)]
    finished: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def wait(ref) -> None:  # the harness serves no REST API: results come over gRPC, as a caller waits
        try:
            ref.result()
            with lock:
                finished.append(time.monotonic())
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"{ref.workflow_run_id}: {e!r}")

    for ref in refs:
        threading.Thread(target=wait, args=(ref,), daemon=True).start()
    # Until the first is done (each is, at once, without the limit), then HELD_S more.
    deadline = time.monotonic() + io.RUN_S
    while time.monotonic() < deadline:
        with lock:
            done, first = len(finished), min(finished, default=None)
        if errors or done == 3 or (first and time.monotonic() - first >= HELD_S):
            break
        time.sleep(0.2)
    io.hatchet_smoke.stop_worker(p)
    io.PROCS.remove(p)
    if errors:
        io.fail(f"phase {name}: a run of {RATED} failed: {errors}")
    want = 1 if want_held else 3
    if done != want:
        io.fail(f"phase {name} ({worker_set}): {done} of 3 runs finished, expected {want} "
                f"({'1 unit a minute' if want_held else 'no rate limit in the definition'})")
    print(f"{io.PREFIX}: OK {name}: {worker_set}: {done} of 3 finished"
          f"{f', 2 held for {HELD_S} s by the rate limit (left queued)' if want_held else ''}")


def main() -> None:
    from hatchet_sdk.rate_limit import RateLimitDuration

    env, hatchet = io.connect("limits.py")

    register_from_python(hatchet)
    phase(hatchet, env, "A", "limited", "never", want_overlap=False)
    phase(hatchet, env, "B", "limited", "always", want_overlap=True)
    phase(hatchet, env, "C", "limited-declared", "always", want_overlap=False)
    key = f"weft-test-rate-{uuid.uuid4().hex[:8]}"
    hatchet.rate_limits.put(key, 1, RateLimitDuration.MINUTE)
    rate_phase(hatchet, env, "R1", "rated", key, want_held=False)
    rate_phase(hatchet, env, "R2", "rated-declared", key, want_held=True)
    io.passed()


if __name__ == "__main__":
    io.run_script(main)
