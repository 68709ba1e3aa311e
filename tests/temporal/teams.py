"""Temporal as Python teams drive it, against weft's C++ worker (dag_worker, dags.hpp):

  - queries: weft.steps, __stack_trace (also through `temporal workflow stack`), the UI's
    __temporal_workflow_metadata, an unknown name failing cleanly, a closed run, and a query the
    server holds for a workflow task (a run whose first task no worker has taken yet);
  - a caller's RetryPolicy on the workflow runs a run whose step failed again, as with an SDK
    workflow, and a non-retryable step error is not retried;
  - graceful drain: SIGTERM during a long step keeps heartbeating past the heartbeat timeout and
    delivers the step's result; past the drain deadline the step is stopped, reported as
    weft.worker_shutdown and retried at once by the next worker;
  - the failure shape a failed run gives Python (docs/temporal.md, "Failures").

Run: scripts/with-services --need temporal,python python tests/temporal/teams.py <temporal_dag_worker>
Every wait is bounded: a query that hangs fails the test. Stops what it started, by PID.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta

import temporalio.api.enums.v1 as enums
import temporalio.api.sdk.v1 as sdk
from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

DAG_WORKER = os.path.abspath(sys.argv[1])
T = 20  # seconds any one query or wait may take
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


class Worker:
    """A dag_worker process on `queue`; stop() sends SIGTERM and times the drain."""

    def __init__(self, queue, *extra):
        self.dir = tempfile.mkdtemp(prefix="weft-teams-")
        ready = os.path.join(self.dir, "ready")
        self.log = open(os.path.join(self.dir, "worker.log"), "w+")
        self.proc = subprocess.Popen([DAG_WORKER, "--task-queue", queue, "--ready-file", ready, "--max-seconds", "200",
                                      *extra], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + T
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"dag_worker did not start: {self.output()}")
            time.sleep(0.05)

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self, timeout=60):
        """SIGTERM; returns the seconds until the process exited."""
        t0 = time.time()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.time() - t0


async def bounded(aw, what):
    try:
        return await asyncio.wait_for(aw, T)
    except asyncio.TimeoutError:
        check(False, f"{what}: no answer within {T} s (it hangs)")
        raise


async def pending_nap(handle):
    d = await handle.describe()
    for a in d.raw_description.pending_activities:
        if a.activity_id == "weft_test.nap":
            return a
    return None


async def wait_started(handle, attempt=1):
    deadline = time.time() + T
    while time.time() < deadline:
        a = await pending_nap(handle)
        if a and a.state == enums.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and a.attempt == attempt:
            return a
        await asyncio.sleep(0.1)
    raise RuntimeError(f"weft_test.nap attempt {attempt} never started")


async def queries(client):
    queue = f"weft-teams-q-{uuid.uuid4().hex[:8]}"
    worker = Worker(queue)
    try:
        h = await client.start_workflow("weft_slow", 3000, id=f"teams-query-{uuid.uuid4()}", task_queue=queue)
        await wait_started(h)
        steps = await bounded(h.query("weft.steps"), "weft.steps on a running run")
        by_name = {s["name"]: s for s in steps}
        check(by_name.get("weft_test.nap", {}).get("state") == "running" and by_name["weft_test.nap"]["attempts"] == 1
              and by_name.get("weft_test.after_nap", {}).get("state") == "pending",
              f"weft.steps shows the running step and the one waiting: {steps}")
        stack = await bounded(h.query("__stack_trace"), "__stack_trace")
        check(isinstance(stack, str) and "weft_test.nap: running, attempt 1" in stack and "after_nap" not in stack,
              f"__stack_trace names the step running now, not the one waiting: {stack!r}")
        meta = await bounded(h.query("__temporal_workflow_metadata", result_type=sdk.WorkflowMetadata),
                             "__temporal_workflow_metadata")
        names = [q.name for q in meta.definition.query_definitions]
        check(meta.definition.type == "weft_slow" and "weft.steps" in names and "__stack_trace" in names
              and "| weft_test.nap | running | 1 |" in meta.current_details,
              f"the UI's metadata query lists weft's queries and the step table: {names} {meta.current_details!r}")
        try:
            await bounded(h.query("no_such_query"), "an unknown query")
            check(False, "an unknown query fails")
        except WorkflowQueryFailedError as e:
            check("no_such_query" in str(e) and "known queries" in str(e) and "weft.steps" in str(e),
                  f"an unknown query fails at once, naming the known ones: {e}")
        try:
            await bounded(h.execute_update("bump", 1), "an update")
            check(False, "an update on a weft workflow fails")
        except WorkflowUpdateFailedError as e:
            check("bump" in str(e.cause) and "expected but not found" in str(e.cause),
                  f"an update is rejected at once, as an SDK workflow without the handler rejects it: {e.cause}")
        # A signal is taken and read by nothing: the run completes as before (checked below).
        await bounded(h.signal("poke", 1), "a signal")
        cli = os.environ.get("WEFT_HARNESS_TEMPORAL_CLI")
        check(bool(cli), "WEFT_HARNESS_TEMPORAL_CLI is set (scripts/services up writes it)")
        if cli:
            out = subprocess.run([cli, "workflow", "stack", "--workflow-id", h.id, "--address",
                                  os.environ["WEFT_TEMPORAL_ADDRESS"], "--namespace",
                                  os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default")],
                                 capture_output=True, text=True, timeout=T)
            check(out.returncode == 0 and "weft_test.nap" in out.stdout,
                  f"`temporal workflow stack` shows the running step: rc {out.returncode} {out.stdout!r} {out.stderr!r}")
        check(await bounded(h.result(), "the run") == "slept 3000 ms", "the queried run completes")
        closed = await bounded(h.query("weft.steps"), "weft.steps on a closed run")
        check([s["state"] for s in closed] == ["succeeded", "succeeded"], f"a closed run answers: {closed}")
    finally:
        worker.stop()

    # A query on a run whose first workflow task no worker has taken: the server holds it for that
    # task, and the worker answers it there (or as a query task after it).
    queue = f"weft-teams-held-{uuid.uuid4().hex[:8]}"
    h = await client.start_workflow("weft_fan", 2, id=f"teams-held-{uuid.uuid4()}", task_queue=queue)
    held = asyncio.ensure_future(h.query("weft.steps"))
    await asyncio.sleep(1.0)
    worker = Worker(queue)
    try:
        steps = await bounded(held, "a query held for the first workflow task")
        check(len(steps) == 5 and {s["name"] for s in steps} >= {"weft_test.seed", "weft_test.describe3"},
              f"a query held for a workflow task is answered: {steps}")
        check(await bounded(h.result(), "weft_fan") == "9,27,-3", "and the run goes on")
    finally:
        worker.stop()


async def retries(client):
    queue = f"weft-teams-r-{uuid.uuid4().hex[:8]}"
    worker = Worker(queue)
    try:
        wid = f"teams-retry-{uuid.uuid4()}"
        try:
            await bounded(client.execute_workflow("weft_fail", 1, id=wid, task_queue=queue,
                                                  retry_policy=RetryPolicy(maximum_attempts=2,
                                                                           initial_interval=timedelta(milliseconds=100))),
                          "weft_fail with a retry policy")
            check(False, "weft_fail fails")
        except WorkflowFailureError as e:
            shape(e)
        runs = [r async for r in client.list_workflows(f"WorkflowId = '{wid}'")]
        check(len(runs) == 2, f"RetryPolicy(maximum_attempts=2) on the workflow gives 2 runs: {len(runs)}")

        wid = f"teams-noretry-{uuid.uuid4()}"
        try:
            await bounded(client.execute_workflow("weft_chain", {"customer": "x", "quantities": "many"}, id=wid,
                                                  task_queue=queue, retry_policy=RetryPolicy(maximum_attempts=3)),
                          "weft_chain with a bad payload")
            check(False, "a bad payload fails")
        except WorkflowFailureError as e:
            check(isinstance(e.cause, ApplicationError) and e.cause.non_retryable,
                  f"a non-retryable step error makes the run's failure non-retryable: {e.cause!r}")
        runs = [r async for r in client.list_workflows(f"WorkflowId = '{wid}'")]
        check(len(runs) == 1, f"... and the retry policy does not run it again: {len(runs)} runs")
    finally:
        worker.stop()


def shape(e):
    """The failure shape docs/temporal.md describes, and the way it tells Python code to catch it."""
    c = e.cause
    check(isinstance(c, ApplicationError) and c.type == "weft.step_failed" and not c.non_retryable
          and c.details and c.details[0].get("step") == "weft_test.doomed" and c.details[0].get("attempts") == 2,
          f"e.cause is ApplicationError(weft.step_failed), retryable, naming the step: {c!r}")
    act = next((x for x in chain(e) if isinstance(x, ActivityError)), None)
    check(act is not None and isinstance(act.cause, ApplicationError) and act.cause.type == "dags::out_of_stock"
          and "no stock left" in act.cause.message,
          f"the ActivityError is one level deeper, caused by the C++ exception's type: {chain(e)}")


def chain(e):
    out = []
    while e is not None:
        out.append(e)
        e = e.__cause__
    return out


async def drains(client):
    # (a) A 3 s step under a 1 s heartbeat timeout, and SIGTERM 0.5 s in with a 10 s drain: the worker
    # goes on heartbeating, the step finishes and its result is delivered; nothing runs twice.
    queue = f"weft-teams-d-{uuid.uuid4().hex[:8]}"
    first = Worker(queue, "--heartbeat-ms", "1000", "--drain-ms", "10000")
    h = await client.start_workflow("weft_slow", 3000, id=f"teams-drain-{uuid.uuid4()}", task_queue=queue)
    await wait_started(h)
    await asyncio.sleep(0.5)
    took = await asyncio.get_running_loop().run_in_executor(None, first.stop)
    check(2.0 <= took < 8.0, f"the drain waits for the step, and only as long as it runs: {took:.1f} s")
    second = Worker(queue)
    try:
        check(await bounded(h.result(), "the drained run") == "slept 3000 ms", "the drained step's result is delivered")
        steps = await bounded(h.query("weft.steps"), "weft.steps after a drain")
        nap = next(s for s in steps if s["name"] == "weft_test.nap")
        check(nap["attempts"] == 1, f"the step ran once: {nap}")
    finally:
        second.stop()

    # (b) A 30 s step and a 1 s drain: the step is asked to stop at the deadline, reported as stopped by
    # the shutdown (retryable), and the next worker runs attempt 2 at once, not after a timeout.
    queue = f"weft-teams-e-{uuid.uuid4().hex[:8]}"
    first = Worker(queue, "--heartbeat-ms", "3000", "--drain-ms", "1000")
    h = await client.start_workflow("weft_slow", 30000, id=f"teams-deadline-{uuid.uuid4()}", task_queue=queue)
    await wait_started(h)
    took = await asyncio.get_running_loop().run_in_executor(None, first.stop)
    check(took < 4.0, f"a drain ends at its deadline: {took:.1f} s")
    a = await pending_nap(h)
    check(a is not None and a.attempt == 2 and a.last_failure.application_failure_info.type == "weft.worker_shutdown"
          and "worker shutdown" in a.last_failure.message,
          "the step is reported as stopped by the shutdown, to be retried: " +
          (f"attempt {a.attempt}, {a.last_failure.application_failure_info.type}: {a.last_failure.message}" if a else "none"))
    t0 = time.time()
    second = Worker(queue)
    try:
        await wait_started(h, attempt=2)
        check(time.time() - t0 < 5.0, f"the next worker runs it at once: {time.time() - t0:.1f} s")
        await h.terminate("test over")
    finally:
        second.stop()


async def main():
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                  namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"))
    for part in (queries, retries, drains):
        try:
            await part(client)
        except Exception as e:  # a part that broke is a failure, and the next still runs
            check(False, f"{part.__name__}: {type(e).__name__}: {e}")
    print(json.dumps({"failures": failures}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)
