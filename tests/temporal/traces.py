"""One trace through a weft Temporal run with C++ and Python steps: W3C trace context in the
`_tracer-data` header, as temporalio.contrib.opentelemetry.TracingInterceptor carries it.

Run: scripts/with-services --need temporal,python python tests/temporal/traces.py <temporal_dag_worker>

A C++ client (dag_worker --start-mixed) starts weft_mixed: weft_test.prepare on the C++ worker,
weft_test.py_triple on a Python activity worker with the TracingInterceptor, weft_test.finish on the C++
worker. weft's workflow interpreter hands the start's header on to every step it schedules. Both sides
send spans to this script's OTLP/HTTP server (tests/otlp_collector.py). Checks one trace id, that every
step's span (C++ step/..., Python RunActivity:...) is a child of the client's run span, the weft
attributes on the C++ spans, and the trace ids in the C++ worker's step log lines.
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from otlp_collector import Collector, weft_attribute_problems  # noqa: E402

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from temporalio import activity  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.opentelemetry import TracingInterceptor  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

DAG_WORKER = os.path.abspath(sys.argv[1])
PYTHON_QUEUE = "weft-test-python-steps"  # dags.hpp: py_triple's queue
QUEUE = f"weft-traces-{uuid.uuid4().hex[:10]}"
T = 60
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", flush=True)
    return cond


@activity.defn(name="weft_test.py_triple")
async def py_triple(n: int) -> int:
    return n * 3


def python_worker(endpoint, ready, stop):
    provider = TracerProvider(resource=Resource.create({"service.name": "py-worker"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    trace.set_tracer_provider(provider)

    async def serve():
        client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                      namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"),
                                      interceptors=[TracingInterceptor()])
        async with Worker(client, task_queue=PYTHON_QUEUE, activities=[py_triple]):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(serve())


def main():
    collector = Collector()
    tmp = tempfile.mkdtemp(prefix="weft-temporal-traces-")
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, WEFT_LOG_LEVEL="debug", WEFT_LOG_FORMAT="json")
    ready_file = os.path.join(tmp, "cpp.ready")
    cpp_log_path = os.path.join(tmp, "cpp-worker.log")
    cpp = subprocess.Popen([DAG_WORKER, "--task-queue", QUEUE, "--ready-file", ready_file, "--max-seconds", "150"],
                           env=dict(env, OTEL_SERVICE_NAME="cpp-worker"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(cpp_log_path, "w"), start_new_session=True)
    ready, stop = threading.Event(), threading.Event()
    py = threading.Thread(target=python_worker, args=(collector.endpoint, ready, stop), daemon=True)
    py.start()
    try:
        deadline = time.monotonic() + T
        while time.monotonic() < deadline and not (os.path.exists(ready_file) and ready.is_set()):
            time.sleep(0.1)
        if not check(os.path.exists(ready_file) and ready.is_set(), "the workers did not start"):
            return
        out = subprocess.run([DAG_WORKER, "--task-queue", QUEUE, "--start-mixed", "5"],
                             env=dict(env, OTEL_SERVICE_NAME="cpp-client", WEFT_LOG_LEVEL="warning"),
                             capture_output=True, text=True, timeout=T)
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not check(lines, f"no JSON from the client: rc={out.returncode} stderr={out.stderr[-2000:]!r}"):
            return
        res = json.loads(lines[-1])
        if not check(res.get("result") == "total 315", res):
            return

        want = {("cpp-client", "run/weft_mixed"), ("cpp-worker", "step/weft_test.prepare"),
                ("py-worker", "RunActivity:weft_test.py_triple"), ("cpp-worker", "step/weft_test.finish")}
        have, names = collector.wait_for(want, T)
        if not check(want <= set(have), f"spans missing: {sorted(want - set(have))}; got {names}"):
            return
        run = have[("cpp-client", "run/weft_mixed")]
        first = have[("cpp-worker", "step/weft_test.prepare")]
        middle = have[("py-worker", "RunActivity:weft_test.py_triple")]
        last = have[("cpp-worker", "step/weft_test.finish")]
        steps = [first, middle, last]
        check(len({s["trace"] for s in [run, *steps]}) == 1,
              f"more than one trace id: {[(s['name'], s['trace']) for s in [run, *steps]]}")
        check(run["parent"] == "", f"the run span has a parent: {run}")
        for s in steps:  # Temporal: the workflow schedules every step, each a child of the start's context
            check(s["parent"] == run["span"], f"{s['name']}'s parent is {s['parent']}, not the run span {run['span']}")
        run_id = run["attrs"].get("weft.run_id")
        check(run_id and run_id in res["id"], f"the run span's weft.run_id {run_id!r} is not the run's ({res['id']})")
        check(run["attrs"].get("weft.backend") == "temporal" and run["attrs"].get("weft.workflow") == "weft_mixed",
              run["attrs"])
        for s, step in ((first, "weft_test.prepare"), (last, "weft_test.finish")):
            problems = weft_attribute_problems(s, "temporal", "weft_mixed", run_id, step)
            check(not problems, problems)
        check(first["end"] <= middle["start"] and middle["end"] <= last["start"], "the steps' spans are in order")

        logged = [json.loads(l) for l in open(cpp_log_path) if l.startswith("{")]
        done = {l["step"]: l for l in logged if l.get("event") == "step.succeeded" and l.get("run_id") == run_id}
        check(set(done) == {"weft_test.prepare", "weft_test.finish"}, f"step.succeeded lines: {done}")
        for step, span in (("weft_test.prepare", first), ("weft_test.finish", last)):
            if step in done:
                check(done[step].get("trace_id") == run["trace"] and done[step].get("span_id") == span["span"],
                      f"{step}'s log line: {done[step]}")
    finally:
        stop.set()
        if cpp.poll() is None:
            cpp.terminate()
            try:
                cpp.wait(timeout=20)
            except subprocess.TimeoutExpired:
                cpp.kill()
        py.join(timeout=20)
        collector.close()
        if failures:
            print("---- C++ worker log (tail)\n" + open(cpp_log_path).read()[-3000:])
        else:
            print("ok   one_trace_runs_from_a_cpp_client_through_cpp_python_cpp_steps")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        failures.append(repr(e))
        print(f"FAIL {e!r}", flush=True)
    sys.stdout.flush()
    os._exit(1 if failures else 0)  # gRPC threads can abort CPython's shutdown
