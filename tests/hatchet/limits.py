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
"""
import os
import sys
import time
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


def main() -> None:
    env, hatchet = io.connect("limits.py")

    register_from_python(hatchet)
    phase(hatchet, env, "A", "limited", "never", want_overlap=False)
    phase(hatchet, env, "B", "limited", "always", want_overlap=True)
    phase(hatchet, env, "C", "limited-declared", "always", want_overlap=False)
    io.passed()


if __name__ == "__main__":
    io.run_script(main)
