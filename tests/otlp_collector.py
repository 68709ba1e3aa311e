"""A small OTLP/HTTP trace collector for the traces tests (tests/*/traces.py): 127.0.0.1, a free port,
POST /v1/traces in either encoding (JSON, as weft's C++ exporter sends; protobuf, as the Python SDK's
opentelemetry-exporter-otlp-proto-http sends). Every span becomes one dict:
{"service", "name", "trace", "span", "parent", "kind", "start", "end", "attrs"}, ids as lowercase hex."""
import http.server
import json
import threading
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def _attr_value(v):
    for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if k in v:
            return int(v[k]) if k == "intValue" else v[k]
    return None


def _pb_value(v):
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


class Collector:
    def __init__(self):
        self.spans = []
        self.requests = {"json": 0, "protobuf": 0}
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                is_json = self.headers.get("Content-Type", "").startswith("application/json")
                got = collector._from_json(body) if is_json else collector._from_protobuf(body)
                with collector.lock:
                    collector.spans.extend(got)
                    collector.requests["json" if is_json else "protobuf"] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def _from_json(body):
        out = []
        for rs in json.loads(body)["resourceSpans"]:
            service = {a["key"]: _attr_value(a["value"]) for a in rs["resource"]["attributes"]}.get("service.name")
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    out.append({"service": service, "name": s["name"], "trace": s["traceId"], "span": s["spanId"],
                                "parent": s.get("parentSpanId", ""), "kind": s["kind"],
                                "start": int(s["startTimeUnixNano"]), "end": int(s["endTimeUnixNano"]),
                                "attrs": {a["key"]: _attr_value(a["value"]) for a in s["attributes"]}})
        return out

    @staticmethod
    def _from_protobuf(body):
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        out = []
        for rs in req.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), None)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append({"service": service, "name": s.name, "trace": s.trace_id.hex(), "span": s.span_id.hex(),
                                "parent": s.parent_span_id.hex(), "kind": s.kind,
                                "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                                "attrs": {a.key: _pb_value(a.value) for a in s.attributes}})
        return out

    def wait_for(self, wanted, timeout):
        """Waits until a span exists for every (service, name) in `wanted`; returns {(service, name): span}
        (the last of each) and the sorted "service:name" list of all spans, for messages."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                have = {(s["service"], s["name"]): s for s in self.spans}
                names = sorted(f"{s['service']}:{s['name']}" for s in self.spans)
            if set(wanted) <= set(have) or time.monotonic() > deadline:
                return have, names
            time.sleep(0.2)

    def close(self):
        self.server.shutdown()


def weft_attribute_problems(span, backend, workflow, run_id, step, attempt=1):
    """What is wrong with a C++ attempt span's weft attributes and kind (CONSUMER, 5); [] when nothing."""
    a = span["attrs"]
    want = {"weft.backend": backend, "weft.workflow": workflow, "weft.run_id": run_id, "weft.step": step,
            "weft.attempt": attempt}
    out = [f"{span['name']}: {k} is {a.get(k)!r}, not {v!r}" for k, v in want.items() if a.get(k) != v]
    if span["kind"] != 5:
        out.append(f"{span['name']}: kind {span['kind']}, not CONSUMER (5)")
    if not span["start"] <= span["end"]:
        out.append(f"{span['name']}: ends before it starts")
    return out
