"""Hatchet engine: a hatchet-sdk worker (subprocess) serves a 2-task DAG that a hatchet-sdk client runs.

Run through scripts/with-services --need hatchet python tests/harness/hatchet_smoke.py.

The parent process starts `python hatchet_smoke.py --worker` with the HATCHET_CLIENT_* environment
built from the WEFT_HATCHET_* one (the token is read from WEFT_HATCHET_TOKEN_FILE and never printed),
waits until the worker's own health endpoint (127.0.0.1, a free port) says it is registered and
heartbeating, triggers one run of the DAG, checks both task outputs, then stops the worker by its PID.
Every wait is bounded; the worker's log is shown when something fails.

Why wait for the worker: a run triggered before the worker has registered the workflow (PutWorkflow)
can be dropped by the engine, and a task queued while no worker is connected waits for the
scheduler's next requeue pass (~50 s observed) — see docs/hatchet-engine.md.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from ports import free_port  # tests/harness/ports.py, beside this script
import uuid
from datetime import timedelta

WORKER_READY_S = 90      # worker process start + PutWorkflow + Register + first heartbeat
RUN_TIMEOUT_S = 90       # trigger -> both tasks completed
WORKER_STOP_S = 20       # SIGTERM, then SIGKILL
WATCHDOG_S = WORKER_READY_S + RUN_TIMEOUT_S + 30   # anything else that could hang (SDK calls)
WORKFLOW = "weft-smoke-dag"   # lowercase: the engine lowercases action ids

PREFIX = "hatchet smoke"


def fail(msg: str, worker_log: str | None = None) -> None:
    print(f"{PREFIX}: FAIL: {msg}", file=sys.stderr)
    if worker_log and os.path.exists(worker_log):
        with open(worker_log, encoding="utf-8", errors="replace") as f:
            tail = f.read().splitlines()[-40:]
        print(f"{PREFIX}: last {len(tail)} lines of the worker log {worker_log}:", file=sys.stderr)
        for line in tail:
            print(f"    {line}", file=sys.stderr)
    sys.exit(1)


def hatchet_env() -> dict[str, str]:
    """The environment the official SDK reads, derived from the one scripts/services writes."""
    need = ("WEFT_HATCHET_HOST_PORT", "WEFT_HATCHET_TOKEN_FILE")
    missing = [k for k in need if not os.environ.get(k)]
    if missing:
        fail(f"{', '.join(missing)} not set — run me through "
             "scripts/with-services --need hatchet python tests/harness/hatchet_smoke.py")
    token_file = os.environ["WEFT_HATCHET_TOKEN_FILE"]
    try:
        with open(token_file, encoding="ascii") as f:
            token = f.read().strip()
    except OSError as e:
        fail(f"cannot read the token file {token_file}: {e}")
    if not token.startswith("ey"):
        fail(f"{token_file} does not hold a JWT")
    env = dict(os.environ)
    # A namespace set by the caller would rename the workflow and its actions: keep it out.
    env.pop("HATCHET_CLIENT_NAMESPACE", None)
    env.update({
        "HATCHET_CLIENT_TOKEN": token,
        "HATCHET_CLIENT_HOST_PORT": os.environ["WEFT_HATCHET_HOST_PORT"],
        "HATCHET_CLIENT_TLS_STRATEGY": os.environ.get("WEFT_HATCHET_TLS_STRATEGY", "none"),
        "HATCHET_CLIENT_LOG_LEVEL": "WARNING",
    })
    if os.environ.get("WEFT_HATCHET_TENANT_ID"):
        env["HATCHET_CLIENT_TENANT_ID"] = os.environ["WEFT_HATCHET_TENANT_ID"]
    if os.environ.get("WEFT_HATCHET_API_URL"):
        env["HATCHET_CLIENT_SERVER_URL"] = os.environ["WEFT_HATCHET_API_URL"]
    return env


def define_workflow():
    """The same definition in the worker and in the client (identical definitions share a version)."""
    from hatchet_sdk import Context, Hatchet
    from pydantic import BaseModel

    class SmokeInput(BaseModel):
        nonce: str
        n: int

    hatchet = Hatchet()
    wf = hatchet.workflow(name=WORKFLOW, input_validator=SmokeInput)

    @wf.task(execution_timeout=timedelta(seconds=30), schedule_timeout=timedelta(minutes=2))
    def first(input: SmokeInput, ctx: Context) -> dict:
        return {"nonce": input.nonce, "value": input.n + 1}

    @wf.task(parents=[first], execution_timeout=timedelta(seconds=30),
             schedule_timeout=timedelta(minutes=2))
    def second(input: SmokeInput, ctx: Context) -> dict:
        parent = ctx.task_output(first)
        return {"nonce": parent["nonce"], "value": parent["value"] * 2}

    return hatchet, wf, SmokeInput


def run_worker() -> None:
    hatchet, wf, _ = define_workflow()
    worker = hatchet.worker("weft-smoke-worker", slots=2, workflows=[wf])
    worker.start()   # blocks until SIGTERM/SIGINT


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(WORKER_STOP_S)
    except subprocess.TimeoutExpired:
        print(f"{PREFIX}: worker {proc.pid} ignored SIGTERM for {WORKER_STOP_S}s; killing it",
              file=sys.stderr)
        proc.kill()
        proc.wait(5)
    # The SDK runs its action listener in a child process of the worker; the worker has its own
    # process group (start_new_session), so whatever it left behind goes with that group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_worker_healthy(port: int) -> None:
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + WORKER_READY_S
    last = "no answer"
    while time.monotonic() < deadline:
        if WORKER["proc"].poll() is not None:
            fail(f"the worker exited (code {WORKER['proc'].returncode}) while starting", WORKER["log"])
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.5)
    fail(f"the worker was not healthy within {WORKER_READY_S}s ({url}: {last})", WORKER["log"])


def run_client(env: dict[str, str]) -> None:
    os.environ.update(env)
    _, wf, SmokeInput = define_workflow()
    nonce = uuid.uuid4().hex[:12]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    ref = wf.run(SmokeInput(nonce=nonce, n=20), wait_for_result=False) if _has_wait_flag(wf) \
        else wf.run_no_wait(SmokeInput(nonce=nonce, n=20))
    run_id = ref.workflow_run_id

    # ref.result() polls without a limit: run it in a daemon thread and wait for it, bounded.
    box: dict = {}

    def wait_result() -> None:
        try:
            box["result"] = ref.result()
        except BaseException as e:  # noqa: BLE001 - reported below
            box["error"] = e

    t = threading.Thread(target=wait_result, daemon=True)
    t.start()
    while t.is_alive() and time.monotonic() < deadline:
        if WORKER["proc"].poll() is not None:
            fail(f"the worker exited (code {WORKER['proc'].returncode}) before run {run_id} finished",
                 WORKER["log"])
        t.join(0.5)
    if t.is_alive():
        fail(f"run {run_id} did not finish within {RUN_TIMEOUT_S}s", WORKER["log"])
    if "error" in box:
        fail(f"run {run_id} failed: {box['error']!r}", WORKER["log"])
    result = box["result"]
    want = {"first": {"nonce": nonce, "value": 21}, "second": {"nonce": nonce, "value": 42}}
    if result != want:
        fail(f"run {run_id} returned {result!r}, wanted {want!r}", WORKER["log"])
    print(f"{PREFIX}: OK (run {run_id} of {WORKFLOW}: first -> {result['first']}, "
          f"second -> {result['second']})")


WORKER: dict = {}


def _has_wait_flag(wf) -> bool:
    """hatchet-sdk >= 1.4x: run(wait_for_result=False) replaces the deprecated run_no_wait()."""
    import inspect
    return "wait_for_result" in inspect.signature(wf.run).parameters


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        run_worker()
        return
    env = hatchet_env()
    port = free_port()
    env.update({
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED": "true",
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT": str(port),
        "HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS": "127.0.0.1",
    })
    fd, log_path = tempfile.mkstemp(prefix="hatchet-smoke-worker-", suffix=".log")
    os.close(fd)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    WORKER.update(proc=proc, log=log_path)

    def watchdog(signum, frame) -> None:
        fail(f"no result within {WATCHDOG_S}s (watchdog)", log_path)

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(WATCHDOG_S)
    ok = False
    try:
        t0 = time.monotonic()
        wait_worker_healthy(port)
        print(f"{PREFIX}: worker {proc.pid} healthy after {time.monotonic() - t0:.1f}s")
        run_client(env)
        ok = True
    finally:
        signal.alarm(0)
        stop_worker(proc)
        if ok:
            os.unlink(log_path)


if __name__ == "__main__":
    main()
    # The verdict is in; gRPC's native threads can abort CPython's finalization (seen with temporalio's),
    # which would turn a passed smoke test into a crash: leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
