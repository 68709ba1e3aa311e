"""Runs attached by id from another process, on one server backend (tests/attach/peer.cpp).

Run: scripts/with-services --need <services> python tests/attach/attach.py <attach_peer binary> celery|temporal|hatchet

A worker process serves weft_attach; one process starts a run and exits; a second process attaches
by the id alone, mid-run, and reads the typed result, the state and every step's state; attaching
to an id nobody started is run_not_found, and attaching as another workflow is refused.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

PEER, BACKEND = os.path.abspath(sys.argv[1]), sys.argv[2]
RUN = uuid.uuid4().hex[:8]
env = dict(os.environ, WEFT_BACKEND=BACKEND)
if BACKEND == "celery":
    env.update(WEFT_CELERY_BROKER_URL=os.environ["WEFT_REDIS_URL"], WEFT_CELERY_QUEUE=f"weft-attach-{RUN}")
elif BACKEND == "temporal":
    env.update(WEFT_TEMPORAL_TASK_QUEUE=f"weft-attach-{RUN}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def peer(*args):
    p = subprocess.run([PEER, *args], env=env, capture_output=True, text=True, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    check(lines, f"no JSON from attach_peer {' '.join(args)}: rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr[-2000:]!r}")
    out = json.loads(lines[-1])
    out["_rc"] = p.returncode
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="weft-attach-")
    ready = os.path.join(tmp, "ready")
    log = open(os.path.join(tmp, "worker.log"), "w")
    worker = subprocess.Popen([PEER, "serve", ready], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if os.path.exists(ready) or worker.poll() is not None:
                break
            time.sleep(0.05)
        check(os.path.exists(ready), f"the worker did not start (see {log.name})")

        # A run started by a process that then exits; attached from another, while its first step sleeps.
        started = peer("start", "7", "1500")
        check(started["_rc"] == 0 and started.get("id"), started)
        check(started["backend"] == BACKEND, started)
        out = peer("attach", started["id"])
        check(out["_rc"] == 0, out)
        check(out["id"] == started["id"], out)
        check(out["state_at_attach"] in ("queued", "running"), out)  # attached mid-run
        check(out["result"] == "49/-7", out)                       # typed, through the workflow's codec
        check(out["state"] == "succeeded", out)
        check(out["steps"] == {s: "succeeded" for s in ("weft_attach.seed", "weft_attach.square",
                                                        "weft_attach.negate", "weft_attach.total")}, out)
        # Again, once it is over: a third process reads the same outcome.
        again = peer("attach", started["id"])
        check(again["_rc"] == 0 and again["result"] == "49/-7" and again["state_at_attach"] == "succeeded", again)

        # An id nobody started, and a run attached as the wrong workflow: clear errors, no handle.
        for nobody in ("weft-attach-nobody-" + RUN, str(uuid.uuid4())):  # not even an id, and one never used
            missing = peer("attach", nobody)
            check(missing["_rc"] == 1 and missing["error"] == "run_not_found", missing)
            check(nobody in missing["what"] and "weft_attach" in missing["what"], missing)
        wrong = peer("attach-as-other", started["id"])
        check(wrong["_rc"] == 1 and wrong["error"] in ("config_error", "run_not_found"), wrong)
        check("weft_attach_other" in wrong["what"], wrong)
        print(f"attach on {BACKEND}: ok")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    main()
