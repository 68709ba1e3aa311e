"""Self-check of certs.sh and grpc_tls_proxy.py against the real services (not a weft test: it proves
the test infrastructure). Temporal: the temporalio client through a proxy requiring mTLS and an API
key, good and bad credentials, and temporalio.envconfig from TEMPORAL_* alone. Hatchet: a hatchet-sdk
worker (mTLS proxy) and client (TLS proxy) run a one-task workflow, configured by HATCHET_CLIENT_* alone.

Run: set -a; . /work/svc/env; set +a; $WEFT_PYTHON tests/tls/check_proxy.py
Prints one line per check; exits 0 only if all pass. Every process it starts is stopped (by PID).
"""
import asyncio
import os
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
WORKFLOW = "weft-tls-check"
procs: list[subprocess.Popen] = []
failures: list[str] = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    try:
        os.killpg(p.pid, signal.SIGKILL)  # hatchet-sdk leaves an action-listener child in the group
    except (ProcessLookupError, PermissionError):
        pass


def finish(code=None):
    for p in reversed(procs):
        stop(p)
    print("check_proxy: " + ("FAILED" if failures or code else "passed"), flush=True)
    os._exit(1 if failures or code else 0)  # skip CPython's shutdown: gRPC threads may linger


def proxy(d, upstream, name, client_ca=False, api_key=None):
    args = [sys.executable, os.path.join(HERE, "grpc_tls_proxy.py"), "--listen", "127.0.0.1:0", "--upstream", upstream,
            "--cert", f"{d}/server.pem", "--key", f"{d}/server.key", "--log", f"{d}/{name}.calls"]
    if client_ca:
        args += ["--client-ca", f"{d}/ca.pem"]
    if api_key:
        with open(os.open(f"{d}/{name}.apikey", os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(api_key + "\n")
        args += ["--api-key-file", f"{d}/{name}.apikey"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(f"{d}/{name}.err", "w"), text=True,
                         start_new_session=True)
    procs.append(p)
    line = p.stdout.readline().split()
    if len(line) != 2 or line[0] != "listening":
        check(False, f"proxy {name} starts: {open(f'{d}/{name}.err').read()[-500:]}")
        finish(1)
    return line[1]


# ---- Temporal -------------------------------------------------------------------------------------

from temporalio import workflow  # noqa: E402


@workflow.defn(name="weft_tls_check_echo")
class Echo:
    @workflow.run
    async def run(self, s: str) -> str:
        return "echo " + s


async def temporal_checks(d):
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, GetSystemInfoRequest
    from temporalio.client import Client
    from temporalio.envconfig import ClientConfig
    from temporalio.service import RPCError, RPCStatusCode, TLSConfig

    key = "weft-check-" + uuid.uuid4().hex
    addr = proxy(d, os.environ["WEFT_TEMPORAL_ADDRESS"], "temporal", client_ca=True, api_key=key)
    ns = os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default")
    pem = lambda n: open(f"{d}/{n}", "rb").read()  # noqa: E731

    async def connect(api_key=key, ca="ca.pem", cert="client"):
        tls = TLSConfig(server_root_ca_cert=pem(ca), domain="weft-tls.test",
                        client_cert=pem(f"{cert}.pem") if cert else None,
                        client_private_key=pem(f"{cert}.key") if cert else None)
        client = await asyncio.wait_for(Client.connect(addr, namespace=ns, api_key=api_key, tls=tls), 30)
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=10))
        return client

    async def outcome(**kw):
        t = time.monotonic()
        try:
            await connect(**kw)
            return "connected", time.monotonic() - t
        except RPCError as e:
            return f"RPCError {e.status.name}: {e.message}", time.monotonic() - t
        except Exception as e:  # noqa: BLE001 - the connection errors are RuntimeErrors from the core
            return f"{type(e).__name__}: {e}", time.monotonic() - t

    got, took = await outcome()
    check(got == "connected", f"temporal (a) TLS + client cert + API key: get_system_info succeeds ({took:.1f} s): {got}")
    got, took = await outcome(api_key="wrong-" + key[::-1])
    check("UNAUTHENTICATED" in got.upper() and key[::-1] not in got,
          f"temporal (b) wrong API key fails UNAUTHENTICATED ({took:.1f} s): {got[:200]}")
    for tag, what, kw in [("c", "no client certificate", dict(cert=None)),
                          ("d", "untrusted client certificate (other-ca)", dict(cert="other-client")),
                          ("e", "server CA that does not match (other-ca.pem as root)", dict(ca="other-ca.pem"))]:
        got, took = await outcome(**kw)
        check(got != "connected", f"temporal ({tag}) {what}: fails ({took:.1f} s): {got[:200]}")

    # envconfig driven by TEMPORAL_* alone (override_env_vars: nothing else, and no config file).
    env = {"TEMPORAL_ADDRESS": addr, "TEMPORAL_NAMESPACE": ns, "TEMPORAL_API_KEY": key,
           "TEMPORAL_TLS_SERVER_CA_CERT_PATH": f"{d}/ca.pem", "TEMPORAL_TLS_CLIENT_CERT_PATH": f"{d}/client.pem",
           "TEMPORAL_TLS_CLIENT_KEY_PATH": f"{d}/client.key", "TEMPORAL_TLS_SERVER_NAME": "weft-tls.test"}
    try:
        cfg = ClientConfig.load_client_connect_config(override_env_vars=env, disable_file=True)
        client = await asyncio.wait_for(Client.connect(**cfg), 30)
        r = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=ns))
        got = f"describe_namespace -> {r.namespace_info.name}"
    except Exception as e:  # noqa: BLE001
        got = f"{type(e).__name__}: {e}"
    check(got == f"describe_namespace -> {ns}", f"temporal envconfig from TEMPORAL_* only (mTLS + API key): {got[:200]}")
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="weft-no-such-ns"))
        got = "found"
    except RPCError as e:
        got = e.status.name
    check(got == "NOT_FOUND", f"temporal: the upstream's status comes back through the proxy: {got}")

    # A worker's long polls and a workflow run, through the proxy.
    from temporalio.worker import Worker
    queue = f"weft-tls-check-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    try:
        async with Worker(client, task_queue=queue, workflows=[Echo]):
            got = await asyncio.wait_for(client.execute_workflow(Echo.run, "hi", id=f"{queue}-wf", task_queue=queue), 60)
    except Exception as e:  # noqa: BLE001
        got = f"{type(e).__name__}: {e}"
    check(got == "echo hi", f"temporal: a Python worker and workflow run via envconfig through the proxy: {got!r} "
                            f"({time.monotonic() - t0:.1f} s incl. worker shutdown)")
    calls = open(f"{d}/temporal.calls").read()
    check("GetSystemInfo OK" in calls and "PollWorkflowTaskQueue OK" in calls and "UNAUTHENTICATED" in calls and key not in calls,
          "temporal proxy call log: OK and UNAUTHENTICATED calls, no key")


# ---- Hatchet --------------------------------------------------------------------------------------

def define(hatchet):
    from hatchet_sdk import Context
    from pydantic import BaseModel

    class Ping(BaseModel):
        nonce: str

    wf = hatchet.workflow(name=WORKFLOW, input_validator=Ping)

    @wf.task(execution_timeout=timedelta(seconds=30), schedule_timeout=timedelta(minutes=2))
    def pong(input: Ping, ctx: Context) -> dict:
        return {"pong": input.nonce}

    return wf, Ping


def hatchet_worker():  # the child: configured by its environment only
    from hatchet_sdk import Hatchet
    hatchet = Hatchet()
    wf, _ = define(hatchet)
    hatchet.worker(f"weft-tls-check-{os.getpid()}", slots=2, workflows=[wf]).start()


def hatchet_env(d, addr, strategy, cert=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}  # no namespace, no strays
    e.update(HATCHET_CLIENT_HOST_PORT=addr, HATCHET_CLIENT_TLS_STRATEGY=strategy,
             HATCHET_CLIENT_TLS_ROOT_CA_FILE=f"{d}/ca.pem", HATCHET_CLIENT_TLS_SERVER_NAME="weft-tls.test",
             HATCHET_CLIENT_TOKEN=open(os.environ["WEFT_HATCHET_TOKEN_FILE"]).read().strip(),
             HATCHET_CLIENT_LOG_LEVEL="WARNING")
    if cert:
        e.update(HATCHET_CLIENT_TLS_CERT_FILE=f"{d}/{cert}.pem", HATCHET_CLIENT_TLS_KEY_FILE=f"{d}/{cert}.key")
    return e


def hatchet_checks(d):
    upstream = os.environ["WEFT_HATCHET_HOST_PORT"]
    tls_addr = proxy(d, upstream, "hatchet-tls")
    mtls_addr = proxy(d, upstream, "hatchet-mtls", client_ca=True)
    with socket.create_server(("127.0.0.1", 0)) as s:
        health = s.getsockname()[1]
    env = hatchet_env(d, mtls_addr, "mtls", cert="client")
    env.update(HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="true", HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(health),
               HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1")
    worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--hatchet-worker"], env=env,
                              stdin=subprocess.DEVNULL, stdout=open(f"{d}/worker.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    procs.append(worker)
    deadline, healthy = time.monotonic() + 90, False
    while not healthy and worker.poll() is None and time.monotonic() < deadline:
        try:
            healthy = urllib.request.urlopen(f"http://127.0.0.1:{health}/health", timeout=2).status == 200
        except OSError:
            time.sleep(0.3)
    check(healthy, f"hatchet worker over mTLS (HATCHET_CLIENT_TLS_STRATEGY=mtls) is healthy: "
                   f"{'' if healthy else open(f'{d}/worker.log').read()[-400:]}")
    if not healthy:
        return

    client_env = hatchet_env(d, tls_addr, "tls")
    os.environ.clear()  # hatchet-sdk reads its settings from the environment
    os.environ.update(client_env)
    from hatchet_sdk import Hatchet
    wf, Ping = define(Hatchet())
    nonce = uuid.uuid4().hex[:10]
    box: dict = {}

    def go():
        try:
            box["value"] = wf.run(Ping(nonce=nonce), wait_for_result=False).result()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t0 = time.monotonic()
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(90)
    got = box.get("value", box.get("error", "no answer within 90 s"))
    check(got == {"pong": {"pong": nonce}},
          f"hatchet run over TLS (client) on the mTLS worker: {got!r} ({time.monotonic() - t0:.1f} s)")
    stop(worker)
    tls_calls, mtls_calls = open(f"{d}/hatchet-tls.calls").read(), open(f"{d}/hatchet-mtls.calls").read()
    check("/Dispatcher/Register OK" in mtls_calls and "TriggerWorkflow OK" in tls_calls,
          "hatchet proxy call logs: the worker registered via mTLS, the client triggered via TLS")


def main():
    if sys.argv[1:] == ["--hatchet-worker"]:
        return hatchet_worker()
    for k in ("WEFT_TEMPORAL_ADDRESS", "WEFT_HATCHET_HOST_PORT", "WEFT_HATCHET_TOKEN_FILE"):
        if not os.environ.get(k):
            sys.exit(f"{k} not set: set -a; . /work/svc/env; set +a")
    signal.signal(signal.SIGALRM, lambda *_: (check(False, "watchdog: no verdict within 300 s"), finish(1)))
    signal.alarm(300)
    d = tempfile.mkdtemp(prefix="weft-tls-check-")
    try:
        subprocess.run(["bash", os.path.join(HERE, "certs.sh"), d], check=True)
        modes = {f: oct(os.stat(f"{d}/{f}").st_mode & 0o777) for f in os.listdir(d) if f.endswith(".key")}
        check(len(modes) == 6 and set(modes.values()) == {"0o600"}, f"certs.sh: six keys, mode 600: {modes}")
        asyncio.run(temporal_checks(d))
        hatchet_checks(d)
    except Exception as e:  # noqa: BLE001
        check(False, f"unexpected {type(e).__name__}: {e}")
    finally:
        print(f"check_proxy: files in {d}", flush=True)
        finish()


if __name__ == "__main__":
    main()
