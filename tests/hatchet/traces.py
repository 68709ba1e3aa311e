"""One trace through a weft Hatchet run with C++ and Python steps: W3C trace context in the run's
additional_metadata, under the key hatchet_sdk's OpenTelemetry instrumentor reads ("traceparent").

Run: scripts/with-services --need hatchet python tests/hatchet/traces.py <hatchet_peer>

The C++ client (hatchet_peer run mixed) triggers hx-mixed = greet (C++) >> py_mid (Python, a worker
instrumented with hatchet_sdk.opentelemetry.HatchetInstrumentor) >> shout (C++); the engine hands the
run's metadata to every step. Both sides send spans to this script's OTLP/HTTP server
(tests/otlp_collector.py). Checks one trace id, that every step's span (C++ step/..., Python
hatchet.start_step_run) is a child of the client's run span, the weft attributes on the C++ spans, and
the trace ids in the C++ worker's step log lines. Reuses interop.py's processes and workflows.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)


def run_python_worker(endpoint: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from hatchet_sdk import Hatchet
    from hatchet_sdk.opentelemetry.instrumentor import HatchetInstrumentor

    import interop
    provider = TracerProvider(resource=Resource.create({"service.name": "py-worker"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    HatchetInstrumentor(tracer_provider=provider, enable_hatchet_otel_collector=False).instrument()
    hatchet = Hatchet()
    served, mixed, _, _ = interop.define(hatchet)
    hatchet.worker("weft-traces-py", slots=4, workflows=[served, mixed]).start()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--python-worker":
        run_python_worker(sys.argv[2])
        return
    import interop
    from otlp_collector import Collector, weft_attribute_problems
    import hatchet_smoke

    interop.PREFIX = hatchet_smoke.PREFIX = "hatchet traces"
    peer = interop.PEER
    if not peer or not os.access(peer, os.X_OK):
        interop.fail("usage: traces.py <path to hatchet_peer>")
    collector = Collector()
    env = hatchet_smoke.hatchet_env()
    otel = dict(OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, WEFT_LOG_LEVEL="debug", WEFT_LOG_FORMAT="json")

    port = hatchet_smoke.free_port()
    py_env = dict(env, HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="true",
                  HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(port),
                  HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1")
    py = interop.start("python worker", [sys.executable, os.path.abspath(__file__), "--python-worker",
                                         collector.endpoint], py_env)
    interop.wait_healthy(py, port)
    cpp = interop.start("C++ worker", [peer, "worker", "mixed", "4", "weft-traces-cpp"],
                        dict(env, OTEL_SERVICE_NAME="cpp-worker", **otel))
    interop.wait_line(interop.LOGS["C++ worker"], cpp, "ready ")

    got = interop.peer_run("mixed", {"sku": "pot", "qty": 4}, dict(env, OTEL_SERVICE_NAME="cpp-client", **otel))
    if got != {"text": "HELLO POT VIA PYTHON", "total": 10050}:
        interop.fail(f"hx-mixed returned {got!r}")

    want = {("cpp-client", "run/hx-mixed"), ("cpp-worker", "step/greet"), ("py-worker", "hatchet.start_step_run"),
            ("cpp-worker", "step/shout")}
    have, names = collector.wait_for(want, interop.RUN_S)
    if not want <= set(have):
        interop.fail(f"spans missing: {sorted(want - set(have))}; got {names}")
    run = have[("cpp-client", "run/hx-mixed")]
    with collector.lock:
        in_trace = [s for s in collector.spans if s["trace"] == run["trace"]]
    by_name = {(s["service"], s["name"]): s for s in in_trace}
    if not want <= set(by_name):
        interop.fail(f"spans of the run's trace {run['trace']}: {sorted(by_name)}; wanted {sorted(want)}")
    first, middle, last = by_name[("cpp-worker", "step/greet")], by_name[("py-worker", "hatchet.start_step_run")], \
        by_name[("cpp-worker", "step/shout")]
    problems = []
    if run["parent"]:
        problems.append(f"the run span has a parent: {run}")
    for s in (first, middle, last):  # the engine gives every step the run's metadata
        if s["parent"] != run["span"]:
            problems.append(f"{s['service']}:{s['name']}'s parent is {s['parent']}, not the run span {run['span']}")
    run_id = run["attrs"].get("weft.run_id", "")
    if run["attrs"].get("weft.backend") != "hatchet" or run["attrs"].get("weft.workflow") != "hx-mixed" or not run_id:
        problems.append(f"run span attributes: {run['attrs']}")
    for s, step in ((first, "greet"), (last, "shout")):
        problems += weft_attribute_problems(s, "hatchet", "hx-mixed", run_id, step)
    if not (first["end"] <= middle["start"] and middle["end"] <= last["start"]):
        problems.append("the steps' spans are not in order")
    with open(interop.LOGS["C++ worker"], encoding="utf-8", errors="replace") as f:
        logged = [json.loads(l) for l in f if l.startswith("{")]
    done = {l["step"]: l for l in logged if l.get("event") == "step.succeeded" and l.get("run_id") == run_id}
    for step, span in (("greet", first), ("shout", last)):
        line = done.get(step, {})
        if line.get("trace_id") != run["trace"] or line.get("span_id") != span["span"]:
            problems.append(f"{step}'s step.succeeded line: {line or 'missing'}")
    if problems:
        interop.fail("; ".join(problems))
    print(f"hatchet traces: OK one trace {run['trace']}: run/hx-mixed -> step/greet, hatchet.start_step_run, step/shout")
    interop.stop_all()
    collector.close()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
