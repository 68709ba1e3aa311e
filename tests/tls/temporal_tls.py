"""Temporal over TLS, mTLS and an API key, as Temporal Cloud is reached: weft's C++ worker and client
and the Python SDK, each configured only by the SDK's own variables (TEMPORAL_ADDRESS, TEMPORAL_API_KEY,
TEMPORAL_TLS_*), through a TLS proxy in front of the dev server that requires a client certificate
from the test CA and `authorization: Bearer <key>` (grpc_tls_proxy.py; the dev server has no TLS).

Checks: a Python client (temporalio.envconfig) runs a weft DAG on the C++ worker, with a Python
activity in the middle; the C++ client runs one too; a wrong API key, no client certificate, an
untrusted client certificate and the wrong server CA each fail with a clear error; the API key and
the private key appear in no log, output or process title.

Run: scripts/with-services --need temporal,python python tests/tls/temporal_tls.py <temporal_dag_worker>
"""
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "temporal"))
from common import certs, check, env_without, finish, no_secrets, procs, proxy, stop, cmdlines  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.envconfig import ClientConfigProfile  # noqa: E402
from temporalio.worker import Worker  # noqa: E402
from weft_peer import Invoice, Order, py_triple  # noqa: E402

DAG_WORKER = os.path.abspath(sys.argv[1])
PYTHON_QUEUE = "weft-test-python-steps"  # dags.hpp: py_triple's queue
T = 60


def sdk_env(d, address, key, cert="client", ca="ca.pem"):
    e = env_without(["WEFT_TEMPORAL_", "TEMPORAL_"], TEMPORAL_ADDRESS=address,
                    TEMPORAL_NAMESPACE=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"),
                    TEMPORAL_API_KEY=key, TEMPORAL_TLS_SERVER_CA_CERT_PATH=os.path.join(d, ca),
                    TEMPORAL_TLS_SERVER_NAME="weft-tls.test")
    if cert:
        e.update(TEMPORAL_TLS_CLIENT_CERT_PATH=os.path.join(d, f"{cert}.pem"),
                 TEMPORAL_TLS_CLIENT_KEY_PATH=os.path.join(d, f"{cert}.key"))
    return e


def cpp_client(env, queue, n):
    """dag_worker's client mode: weft_mixed(n) through the C++ client; (verdict, stderr)."""
    env = dict(env, WEFT_TEMPORAL_TIMEOUT_MS="5000")
    out = subprocess.run([DAG_WORKER, "--task-queue", queue, "--start-mixed", str(n)], env=env,
                         capture_output=True, text=True, timeout=T)
    lines = out.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), out.stdout + out.stderr


async def main():
    d = certs()
    key = "weft-test-key-" + uuid.uuid4().hex
    secrets = {"API key": key, "client private key": open(os.path.join(d, "client.key")).read().split("\n")[1]}
    address = proxy(d, os.environ["WEFT_TEMPORAL_ADDRESS"], "temporal", client_ca=True, api_key=key)
    env = sdk_env(d, address, key)
    queue = f"weft-tls-{uuid.uuid4().hex[:8]}"
    ready = os.path.join(d, "ready")
    log = open(os.path.join(d, "worker.log"), "w")
    worker = subprocess.Popen([DAG_WORKER, "--task-queue", queue, "--ready-file", ready, "--max-seconds", "200"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(worker)
    deadline = time.time() + T
    while not os.path.exists(ready) and worker.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    check(os.path.exists(ready), "the C++ worker starts over mTLS with the API key, from TEMPORAL_* alone")
    titles = cmdlines([worker.pid])

    # The Python SDK from the same variables (temporalio.envconfig), as a team's code connects.
    profile = ClientConfigProfile.load(override_env_vars=env)
    client = await Client.connect(**profile.to_client_connect_config())
    async with Worker(client, task_queue=PYTHON_QUEUE, activities=[py_triple]):
        inv = await asyncio.wait_for(client.execute_workflow(
            "weft_chain", Order("ada", [2, 3, 5]), id=f"tls-chain-{uuid.uuid4()}", task_queue=queue,
            result_type=Invoice), T)
        check(inv == Invoice("ada", 10, 3000), f"a Python client runs a weft DAG on the C++ worker over mTLS: {inv}")
        mixed = await asyncio.wait_for(client.execute_workflow("weft_mixed", 5, id=f"tls-mixed-{uuid.uuid4()}",
                                                               task_queue=queue), T)
        check(mixed == "total 315", f"C++ -> Python -> C++ steps, every worker over mTLS: {mixed!r}")
        verdict, text = await asyncio.get_running_loop().run_in_executor(None, cpp_client, env, queue, 7)
        check(verdict.get("result") == "total 321", f"the C++ client over mTLS with the API key: {verdict} {text[-300:]}")
        outputs = text

        # Each mistake fails at once with an error that says what (and never quotes the key).
        cases = [
            ("a wrong API key", dict(env, TEMPORAL_API_KEY="wrong-" + key[::-1]), "UNAUTHENTICATED"),
            ("no client certificate", sdk_env(d, address, key, cert=None), "UNAVAILABLE"),
            ("an untrusted client certificate", sdk_env(d, address, key, cert="other-client"), "UNAVAILABLE"),
            ("the wrong server CA", sdk_env(d, address, key, ca="other-ca.pem"), "UNAVAILABLE"),
        ]
        for what, bad_env, code in cases:
            t = time.time()
            verdict, text = await asyncio.get_running_loop().run_in_executor(None, cpp_client, bad_env, queue, 1)
            outputs += text
            check("result" not in verdict and code in text and time.time() - t < 30,
                  f"{what}: the C++ client fails with {code} ({time.time() - t:.1f} s): {text.strip()[-240:]}")
        t = time.time()
        verdict, text = await asyncio.get_running_loop().run_in_executor(
            None, cpp_client, dict(env, TEMPORAL_TLS_CLIENT_KEY_PATH=os.path.join(d, "missing.key")), queue, 1)
        outputs += text
        check("temporal.tls_key_file" in text and "missing.key" in text,
              f"a missing key file is named with its setting: {text.strip()[-200:]}")

    stop(worker)
    log.close()
    calls = open(os.path.join(d, "temporal.calls")).read()
    check("PollActivityTaskQueue OK" in calls and "RespondActivityTaskCompleted OK" in calls,
          "the worker's polls and completions went through the TLS proxy")
    leaks = no_secrets(d, secrets, outputs + titles)
    check(not leaks, f"no secret in any log, output or process title: {leaks}")
    finish("temporal TLS")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - reported, and every process stopped, by finish()
        check(False, f"{type(e).__name__}: {e}")
        finish("temporal TLS")
