"""Interop between weft's Hatchet backend and the official Python hatchet-sdk on the harness's engine.

Run through scripts/with-services --need hatchet python tests/hatchet/interop.py <hatchet_peer>.

1. A Python client triggers hx-from-python, served by the C++ worker (hatchet_peer), and reads the
   typed result of each task; a malformed input fails the C++ step with the step and JSON path in the
   error, and the same worker serves the next run. A throwing C++ step (hx-py-fail) reaches Python
   with the C++ exception's type as exc_type.
2. The C++ client (hatchet_peer run) triggers hx-python-served, served by a Python worker.
3. One DAG with C++ and Python steps: hx-mixed = greet (C++) >> py_mid (Python) >> shout (C++).
   Routing is by action id ("hx-mixed:py_mid" is registered by the Python worker only). The Python
   worker registers its own, partial, definition of hx-mixed; the C++ worker starts after it and
   registers the full one, which becomes the latest version that triggers use.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import hatchet_smoke  # noqa: E402  (the harness's environment and process helpers)

PEER = sys.argv[1] if len(sys.argv) > 1 else ""
PREFIX = "hatchet interop"
READY_S = 90
RUN_S = 90
WATCHDOG_S = 240
hatchet_smoke.PREFIX = PREFIX


def fail(msg: str) -> None:
    print(f"{PREFIX}: FAIL: {msg}", file=sys.stderr)
    for name, path in LOGS.items():
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.read().splitlines()[-30:]
            print(f"{PREFIX}: last lines of the {name} log:", file=sys.stderr)
            for line in tail:
                print(f"    {line}", file=sys.stderr)
    stop_all()
    sys.stderr.flush()
    os._exit(1)


LOGS: dict[str, str] = {}
PROCS: list[subprocess.Popen] = []


def stop_all() -> None:
    for p in PROCS:
        hatchet_smoke.stop_worker(p)


def define(hatchet):
    from hatchet_sdk import Context
    from pydantic import BaseModel
    from datetime import timedelta

    class Order(BaseModel):
        sku: str
        qty: int

    served = hatchet.workflow(name="hx-python-served", input_validator=Order)

    @served.task(execution_timeout=timedelta(seconds=30))
    def py_first(input: Order, ctx: Context) -> dict:
        return {"text": f"py {input.sku}", "total": input.qty * 100}

    @served.task(parents=[py_first], execution_timeout=timedelta(seconds=30))
    def py_second(input: Order, ctx: Context) -> dict:
        p = ctx.task_output(py_first)
        # A weft client's run metadata, as a Python step reads it (weft's own keys are there too).
        tenant = (ctx.additional_metadata or {}).get("tenant", "")
        return {"text": p["text"] + "!" + tenant, "total": p["total"] + 1}

    # Only the Python step of hx-mixed: its parent's output arrives under its readable id.
    mixed = hatchet.workflow(name="hx-mixed")

    @mixed.task(execution_timeout=timedelta(seconds=30))
    def py_mid(input, ctx: Context) -> dict:
        p = ctx.data.parents["greet"]
        return {"text": p["text"] + " via python", "total": p["total"] + 1000}

    from_python = hatchet.workflow(name="hx-from-python", input_validator=Order)
    return served, mixed, from_python, Order


def run_python_worker() -> None:
    from hatchet_sdk import Hatchet
    hatchet = Hatchet()
    served, mixed, _, _ = define(hatchet)
    hatchet.worker("weft-interop-py", slots=4, workflows=[served, mixed]).start()


def passed() -> None:
    """The end of a script that passed: stop what it started, drop its logs, say OK."""
    stop_all()
    for path in LOGS.values():
        if os.path.exists(path):
            os.unlink(path)
    print(f"{PREFIX}: OK")


def connect(script: str):
    """A script's start: the peer binary from argv, the engine's environment, and a hatchet-sdk client."""
    global PEER
    PEER = sys.argv[1] if len(sys.argv) > 1 else ""
    if not PEER or not os.access(PEER, os.X_OK):
        fail(f"usage: {script} <path to hatchet_peer>")
    env = hatchet_smoke.hatchet_env()
    os.environ.update(env)
    from hatchet_sdk import Hatchet
    return env, Hatchet()


def run_script(main) -> None:
    """Runs a script's main under the watchdog, then leaves without CPython's shutdown (gRPC threads)."""
    signal.signal(signal.SIGALRM, lambda *_: fail(f"no verdict within {WATCHDOG_S}s (watchdog)"))
    signal.alarm(WATCHDOG_S)
    try:
        main()
    except Exception:  # noqa: BLE001 - a script that raises still stops every process it started
        fail("the script raised:\n" + traceback.format_exc())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    fd, path = tempfile.mkstemp(prefix=f"hatchet-interop-{name}-", suffix=".log")
    os.close(fd)
    LOGS[name] = path
    with open(path, "wb") as log:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    PROCS.append(p)
    return p


def wait_healthy(proc: subprocess.Popen, port: int) -> None:
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"the Python worker exited ({proc.returncode}) while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    fail(f"the Python worker was not healthy within {READY_S}s")


def wait_line(path: str, proc: subprocess.Popen, prefix: str) -> str:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.strip()
        if proc.poll() is not None:
            fail(f"the C++ worker exited ({proc.returncode}) while starting")
        time.sleep(0.1)
    fail(f"the C++ worker did not print '{prefix}' within {READY_S}s")


def bounded(fn, what: str):
    box: dict = {}

    def go() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            box["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(RUN_S)
    if t.is_alive():
        fail(f"{what}: no answer within {RUN_S}s")
    return box


def peer_run(case: str, payload: dict, env: dict[str, str], metadata: dict | None = None) -> dict:
    argv = [PEER, "run", case, json.dumps(payload)] + ([json.dumps(metadata)] if metadata else [])
    r = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=RUN_S + 10)
    if r.returncode != 0:
        fail(f"hatchet_peer run {case} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:] == ["--python-worker"]:
        run_python_worker()
        return
    if not PEER or not os.access(PEER, os.X_OK):
        fail("usage: interop.py <path to hatchet_peer>")
    env = hatchet_smoke.hatchet_env()
    signal.signal(signal.SIGALRM, lambda *_: fail(f"no verdict within {WATCHDOG_S}s (watchdog)"))
    signal.alarm(WATCHDOG_S)

    # The Python worker first (it registers partial hx-mixed), then the C++ worker (full hx-mixed).
    port = hatchet_smoke.free_port()
    py_env = dict(env, HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="true",
                  HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(port),
                  HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1")
    py = start("python worker", [sys.executable, os.path.abspath(__file__), "--python-worker"], py_env)
    wait_healthy(py, port)
    cpp = start("C++ worker", [PEER, "worker", "python,mixed", "4", "weft-interop-cpp"], env)
    print(f"{PREFIX}: C++ worker {wait_line(LOGS['C++ worker'], cpp, 'ready ')}; Python worker healthy")

    os.environ.update(env)
    from hatchet_sdk import Hatchet
    hatchet = Hatchet()
    _, _, from_python, Order = define(hatchet)

    # 1. Python client -> C++ worker.
    nonce = uuid.uuid4().hex[:6]
    ref = from_python.run(Order(sku=f"tea{nonce}", qty=3), wait_for_result=False)
    box = bounded(ref.result, f"run {ref.workflow_run_id} of hx-from-python")
    if "error" in box:
        fail(f"hx-from-python failed: {box['error']!r}")
    want = {"greet": {"text": f"hello tea{nonce}", "total": 4}, "shout": {"text": f"HELLO TEA{nonce.upper()}", "total": 40}}
    if box["value"] != want:
        fail(f"hx-from-python returned {box['value']!r}, wanted {want!r}")
    print(f"{PREFIX}: OK Python client -> C++ worker: {box['value']['shout']}")

    # 1b. A malformed input from Python: the C++ step fails, naming itself and the JSON path.
    import warnings
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings")
    untyped = hatchet.workflow(name="hx-from-python")   # no input validator: any JSON object
    ref = untyped.run({"sku": "tea", "qty": "three"}, wait_for_result=False)
    box = bounded(ref.result, f"run {ref.workflow_run_id} (malformed input)")
    e = box.get("error")
    err = " ".join([repr(e)] + [str(x) for x in getattr(e, "exceptions", [])])
    if "error" not in box or "step 'greet' of workflow 'hx-from-python'" not in err or "$[0].qty" not in err:
        fail(f"a malformed input gave {box!r}; wanted a failure naming step 'greet' and $[0].qty")
    types = [x.exc_type for x in getattr(e, "exceptions", [])]
    if types != ["weft.bad_payload"]:
        fail(f"a malformed input failed with exc_type {types!r}; wanted ['weft.bad_payload']")
    print(f"{PREFIX}: OK malformed input fails the C++ step: {err[:200]}")

    # 1c. A C++ step that throws: Python reads the C++ exception's type.
    ref = hatchet.workflow(name="hx-py-fail").run({"sku": "ink", "qty": 1}, wait_for_result=False)
    box = bounded(ref.result, f"run {ref.workflow_run_id} of hx-py-fail")
    excs = getattr(box.get("error"), "exceptions", [])
    if [x.exc_type for x in excs] != ["std::runtime_error"] or "out of stock: ink" not in excs[0].exc:
        fail(f"a throwing C++ step gave {box!r} ({[(x.exc_type, x.exc) for x in excs]!r}); wanted exc_type "
             "'std::runtime_error' and the exception's message")
    print(f"{PREFIX}: OK a C++ step's exception reaches Python as exc_type={excs[0].exc_type!r}: {excs[0].exc}")

    # 1d. A bare list as the run input: the engine keeps only objects (it stores null), and the C++
    # step says which form to send.
    ref = hatchet.workflow(name="hx-py-fail").run([{"sku": "ink", "qty": 1}], wait_for_result=False)
    box = bounded(ref.result, f"run {ref.workflow_run_id} of hx-py-fail (a list as input)")
    excs = getattr(box.get("error"), "exceptions", [])
    if [x.exc_type for x in excs] != ["weft.bad_payload"] or '{"$args": [...]}' not in excs[0].exc:
        fail(f"a list as the run input gave {box!r}; wanted a bad payload that names the $args form")
    print(f"{PREFIX}: OK a list as the run input is refused with the form to send: {excs[0].exc[:160]}")
    ref = from_python.run(Order(sku="cup", qty=1), wait_for_result=False)
    box = bounded(ref.result, "the run after the malformed one")
    if box.get("value", {}).get("shout") != {"text": "HELLO CUP", "total": 20}:
        fail(f"after a malformed input the worker answered {box!r}")
    print(f"{PREFIX}: OK the C++ worker serves the next run")

    # 1c. Run metadata from a Python caller (additional_metadata) reaches both C++ steps; a number
    # arrives as its JSON text, and weft's own keys (the trace context here) are not shown.
    from hatchet_sdk import TriggerWorkflowOptions
    untyped_meta = hatchet.workflow(name="hx-metadata")
    ref = untyped_meta.run({"sku": "tea", "qty": 2}, wait_for_result=False, options=TriggerWorkflowOptions(
        additional_metadata={"tenant": f"acme{nonce}", "attempt_of": 7, "traceparent": "not-a-step-key"}))
    box = bounded(ref.result, f"run {ref.workflow_run_id} of hx-metadata")
    want = {"text": f"acme{nonce}|attempt_of=7;tenant=acme{nonce};", "total": 2}
    if box.get("value", {}).get("metadata_all") != want:
        fail(f"hx-metadata from Python returned {box!r}, wanted metadata_all = {want!r}")
    print(f"{PREFIX}: OK Python additional_metadata -> every C++ step: {want['text']}")

    # 1d. Run metadata from a C++ client (run_options::metadata) reaches the C++ steps.
    got = peer_run("metadata", {"sku": "tea", "qty": 5}, env, {"tenant": "globex", "trace_id": "t-42"})
    if got != {"text": "globex|tenant=globex;trace_id=t-42;", "total": 5}:
        fail(f"hx-metadata from a C++ client returned {got!r}")
    print(f"{PREFIX}: OK C++ run_options::metadata -> every C++ step: {got['text']}")

    # 2. C++ client -> Python worker.
    got = peer_run("python-served", {"sku": "tea", "qty": 2}, env)
    if got != {"text": "py tea!", "total": 201}:
        fail(f"hx-python-served returned {got!r}")
    got = peer_run("python-served", {"sku": "tea", "qty": 2}, env, {"tenant": "initech"})
    if got != {"text": "py tea!initech", "total": 201}:
        fail(f"hx-python-served with run metadata returned {got!r}: the Python step did not read it")
    print(f"{PREFIX}: OK C++ client -> Python worker: {got}")

    # 3. One DAG, C++ and Python steps.
    got = peer_run("mixed", {"sku": "pot", "qty": 4}, env)
    if got != {"text": "HELLO POT VIA PYTHON", "total": 10050}:
        fail(f"hx-mixed returned {got!r}")
    print(f"{PREFIX}: OK mixed DAG greet (C++) >> py_mid (Python) >> shout (C++): {got}")

    signal.alarm(0)
    stop_all()
    for path in LOGS.values():
        os.unlink(path)
    print(f"{PREFIX}: OK")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
