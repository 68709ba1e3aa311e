"""One trace through C++ and Python Celery steps: W3C trace context on Celery's own carrier.

Run: scripts/with-services --need redis python tests/celery/traces.py <celery_peer binary>

A C++ client (tests/celery/peer.cpp) starts the workflow `mixed`: weft.test.add on the C++ worker,
weft.py.double on a Python Celery worker instrumented with opentelemetry-instrumentation-celery, and
weft.test.to_text on the C++ worker again. Both sides send their spans to a small OTLP/HTTP server of
this script's (127.0.0.1, port 0): the C++ side as OTLP JSON (weft::cli's exporter), the Python side
as OTLP protobuf (opentelemetry-exporter-otlp-proto-http). Checks that every span shares one trace id,
that each span's parent is the one before it (run/mixed -> step/weft.test.add -> run/weft.py.double ->
apply_async/weft.test.to_text -> step/weft.test.to_text), that the C++ spans carry the weft attributes,
and that the C++ worker's step log lines carry the trace and span ids.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import redis

from harness import Cases, check, run_cases, start, stop_all

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from otlp_collector import Collector, weft_attribute_problems  # noqa: E402

PEER = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
URL = os.environ["WEFT_REDIS_URL"]
RUN = uuid.uuid4().hex[:10]
CQ = f"weft-trace-cpp-{RUN}"
PQ = f"weft-trace-py-{RUN}"
T = 30

def main():
    collector = Collector()
    endpoint = collector.endpoint

    tmp = tempfile.mkdtemp(prefix="weft-celery-traces-")
    with open(os.path.join(tmp, "weft_trace_tasks.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import os
            from celery import Celery
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.celery import CeleryInstrumentor
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            provider = TracerProvider(resource=Resource.create({{"service.name": "py-worker"}}))
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint={endpoint + "/v1/traces"!r})))
            trace.set_tracer_provider(provider)
            CeleryInstrumentor().instrument()  # --pool=solo: tasks run in this process

            app = Celery("weft_traces", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
            app.conf.update(result_expires=600, task_default_queue={PQ!r}, broker_connection_retry_on_startup=True)

            @app.task(name="weft.py.double")
            def double(x):
                return 2 * x
        """))
    env = dict(os.environ, PYTHONPATH=tmp)
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(k, None)
    py_log = os.path.join(tmp, "py-worker.log")
    start([sys.executable, "-m", "celery", "-A", "weft_trace_tasks", "worker", "--pool=solo", "-Q", PQ,
           "-n", f"py-{RUN}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
          env=env, log=open(py_log, "w"))
    cpp_env = dict(env, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="cpp-worker",
                   WEFT_LOG_LEVEL="debug", WEFT_LOG_FORMAT="json")
    cpp_log = os.path.join(tmp, "cpp-worker.log")
    start([PEER, "worker", CQ, "2"], env=cpp_env, log=open(cpp_log, "w"))

    r = redis.Redis.from_url(URL)
    deadline = time.monotonic() + T
    while time.monotonic() < deadline and not ("ready" in open(cpp_log).read() and " ready." in open(py_log).read()):
        time.sleep(0.05)
    check("ready" in open(cpp_log).read(), f"the C++ worker did not start: {open(cpp_log).read()[-2000:]}")
    check(" ready." in open(py_log).read(), f"the Python worker did not start: {open(py_log).read()[-2000:]}")

    cases = case = Cases()
    task_ids = []

    @case
    def one_trace_runs_from_a_cpp_client_through_cpp_python_cpp_steps():
        client_env = dict(cpp_env, OTEL_SERVICE_NAME="cpp-client")
        out = subprocess.run([PEER, "client", "mixed", CQ, PQ, "2", "3"], env=client_env, capture_output=True,
                             text=True, timeout=T + 15)
        lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
        check(lines, f"no JSON from the client: rc={out.returncode} stderr={out.stderr[-2000:]!r}")
        res = json.loads(lines[-1])
        check(res.get("result") == "n=10", res)
        run_id = res["id"]
        task_ids.append(run_id)

        want = {("cpp-client", "run/mixed"), ("cpp-worker", "step/weft.test.add"), ("py-worker", "run/weft.py.double"),
                ("py-worker", "apply_async/weft.test.to_text"), ("cpp-worker", "step/weft.test.to_text")}
        have, names = collector.wait_for(want, T)
        check(want <= set(have), f"spans missing: {sorted(want - set(have))}; got {names}")
        check(collector.requests["json"] > 0 and collector.requests["protobuf"] > 0,
              f"requests by encoding: {collector.requests}")

        run = have[("cpp-client", "run/mixed")]
        first = have[("cpp-worker", "step/weft.test.add")]
        py_run = have[("py-worker", "run/weft.py.double")]
        py_send = have[("py-worker", "apply_async/weft.test.to_text")]
        last = have[("cpp-worker", "step/weft.test.to_text")]
        chain = [run, first, py_run, py_send, last]
        traces = {s["trace"] for s in chain}
        check(len(traces) == 1, f"more than one trace id: {[(s['name'], s['trace']) for s in chain]}")
        check(run["parent"] == "", f"the run span has a parent: {run}")
        for child, parent in zip(chain[1:], chain):
            check(child["parent"] == parent["span"],
                  f"{child['name']}'s parent is {child['parent']}, not {parent['name']} ({parent['span']})")
        check(run["kind"] == 4, f"the run span's kind is {run['kind']}, not PRODUCER (4)")
        for s, step in ((first, "weft.test.add"), (last, "weft.test.to_text")):
            problems = weft_attribute_problems(s, "celery", "mixed", run_id, step)
            check(not problems, problems)
        check(run["attrs"].get("weft.run_id") == run_id and run["attrs"].get("weft.workflow") == "mixed", run["attrs"])

        # The C++ worker's step lines carry the attempt's span.
        lines = [json.loads(l) for l in open(cpp_log) if l.startswith("{")]
        done = [l for l in lines if l.get("event") == "step.succeeded" and l.get("run_id") == run_id]
        check(len(done) == 2, f"step.succeeded lines for the run: {done}")
        by_step = {l["step"]: l for l in done}
        check(by_step["weft.test.add"].get("trace_id") == run["trace"], by_step["weft.test.add"])
        check(by_step["weft.test.add"].get("span_id") == first["span"], by_step["weft.test.add"])
        check(by_step["weft.test.to_text"].get("span_id") == last["span"], by_step["weft.test.to_text"])

    failures = run_cases(cases, ONLY, logs=(cpp_log, py_log))
    failures = stop_all(failures, cpp_log, py_log, os.environ.get("WEFT_REDIS_PASSWORD", ""))
    for tid in task_ids:
        for k in r.scan_iter(f"*{tid}*"):
            r.delete(k)
    for q in (CQ, PQ):
        r.delete(q, f"_kombu.binding.{q}")
    collector.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
