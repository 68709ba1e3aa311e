"""A server that resets the stream of a wait: weft's C++ client waits for a run's result through a gRPC
proxy (tests/tls/grpc_tls_proxy.py, plaintext) that ends every other call of the wait's method on
each client connection with a server-side cancel (status CANCELLED, what a client also reads from an RST_STREAM(CANCEL)), as a
frontend or a load balancer does now and then: a CI run's router test met "GetWorkflowExecutionHistory
failed (CANCELLED): Received RST_STREAM with error code 8" from the Temporal dev server under load.
The wait must go on and return the run's result; the workers talk to the server directly.

  temporal: the C++ client's result wait (GetWorkflowExecutionHistory long polls); the Python SDK's
            client meets the same reset through the same proxy (and temporalio 1.35 raises it).
  hatchet:  the C++ client's result wait (GetRunDetails polls).

Run: scripts/with-services --need temporal,python python tests/faults/stream_reset.py temporal <temporal_dag_worker>
     scripts/with-services --need hatchet,python python tests/faults/stream_reset.py hatchet <hatchet_peer>
"""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tls"))
from common import check, finish, procs, proxy, stop  # noqa: E402

BACKEND, PROGRAM = sys.argv[1], os.path.abspath(sys.argv[2])
T = 90


def resets(d, name, method):
    path = os.path.join(d, f"{name}.calls")
    return open(path).read().count(f"{method} RESET") if os.path.exists(path) else 0


def wait_for(pred, what, timeout=T):
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(0.05)
    check(pred(), what)


async def temporal(d):
    sys.path.insert(0, os.path.join(HERE, "..", "temporal"))
    from temporalio.client import Client
    from temporalio.service import RPCError
    from temporalio.worker import Worker
    from weft_peer import py_triple

    method = "GetWorkflowExecutionHistory"
    upstream = os.environ["WEFT_TEMPORAL_ADDRESS"]
    namespace = os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default")
    address = proxy(d, upstream, "temporal", tls=False, reset=[method])
    queue = f"weft-reset-{uuid.uuid4().hex[:8]}"
    ready = os.path.join(d, "ready")
    worker = subprocess.Popen([PROGRAM, "--task-queue", queue, "--ready-file", ready, "--max-seconds", "200"],
                              stdout=open(os.path.join(d, "worker.log"), "w"), stderr=subprocess.STDOUT)
    procs.append(worker)
    wait_for(lambda: os.path.exists(ready) or worker.poll() is not None, "the C++ worker starts")

    direct = await Client.connect(upstream, namespace=namespace)
    through = await Client.connect(address, namespace=namespace)
    async with Worker(direct, task_queue="weft-test-python-steps", activities=[py_triple]):  # dags.hpp
        # The same reset met by the Python SDK's client (temporalio 1.35 raises it: RPCError CANCELLED;
        # its core retries CANCELLED only on worker polls). Either way the proxy's reset is the one a
        # real client sees.
        before = resets(d, "temporal", method)
        try:
            got = await asyncio.wait_for(through.execute_workflow("weft_mixed", 5, id=f"reset-py-{uuid.uuid4()}",
                                                                  task_queue=queue), T)
        except RPCError as e:
            got = f"RPCError {e.status.name}"
        check(got in ("total 315", "RPCError CANCELLED") and resets(d, "temporal", method) > before,
              f"control: the Python client's wait is reset too, and it reports {got!r}")

        before = resets(d, "temporal", method)
        env = dict(os.environ, WEFT_TEMPORAL_ADDRESS=address, WEFT_TEMPORAL_TIMEOUT_MS="5000")
        out = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
            [PROGRAM, "--task-queue", queue, "--start-mixed", "7"], env=env, capture_output=True, text=True,
            timeout=T))
        lines = out.stdout.strip().splitlines()
        verdict = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        text = out.stdout + out.stderr
        n = resets(d, "temporal", method) - before
        check(verdict.get("result") == "total 321" and n > 0,
              f"the C++ client's wait is reset {n} time(s) and returns the result: {verdict} {text.strip()[-300:]}")
        check("CANCELLED" in text and "the server reset the wait" in text,
              f"the C++ client logs the reset it went through: {text.strip()[-300:]}")
    stop(worker)


def hatchet(d):
    sys.path.insert(0, os.path.join(HERE, "..", "harness"))
    import hatchet_smoke

    method = "GetRunDetails"
    base = hatchet_smoke.hatchet_env()
    upstream = os.environ["WEFT_HATCHET_HOST_PORT"]
    address = proxy(d, upstream, "hatchet", tls=False, reset=[method])
    env = dict(os.environ, **base)
    log = os.path.join(d, "worker.log")
    worker = subprocess.Popen([PROGRAM, "worker", "python", "4", f"weft-reset-{uuid.uuid4().hex[:6]}"], env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(worker)
    wait_for(lambda: "ready " in open(log).read() or worker.poll() is not None, "the C++ worker registers")

    client_env = dict(env, HATCHET_CLIENT_HOST_PORT=address, WEFT_HATCHET_HOST_PORT=address,
                      WEFT_HATCHET_TIMEOUT_MS="5000")
    out = subprocess.run([PROGRAM, "run", "metadata", json.dumps({"sku": "tea", "qty": 5}),
                          json.dumps({"tenant": "globex"})], env=client_env, capture_output=True, text=True,
                         timeout=T + 10)
    lines = out.stdout.strip().splitlines()
    got = json.loads(lines[-1]) if out.returncode == 0 and lines else None
    text = out.stdout + out.stderr
    n = resets(d, "hatchet", method)
    check(got == {"text": "globex|tenant=globex;", "total": 5} and n > 0,
          f"the C++ client's wait is reset {n} time(s) and returns the result: {got} {text.strip()[-300:]}")
    check("GetRunDetails: CANCELLED" in text and "the engine did not answer" in text,
          f"the C++ client logs the reset it went through: {text.strip()[-300:]}")
    hatchet_smoke.stop_worker(worker)


def main():
    d = tempfile.mkdtemp(prefix="weft-reset-")
    if BACKEND == "temporal":
        asyncio.run(temporal(d))
    elif BACKEND == "hatchet":
        hatchet(d)
    else:
        check(False, f"unknown backend {BACKEND!r}: temporal or hatchet")
    finish(f"{BACKEND} stream reset")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported, and every process stopped, by finish()
        check(False, f"{type(e).__name__}: {e}")
        finish(f"{BACKEND} stream reset")
