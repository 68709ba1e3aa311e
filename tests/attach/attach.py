"""Runs attached by id from another process, on one server backend (tests/attach/peer.cpp).

Run: scripts/with-services --need <services> python tests/attach/attach.py <attach_peer binary> celery|temporal|hatchet

A worker process serves weft_attach; one process starts a run and exits; a second process attaches
by the id alone, mid-run, and reads the typed result, the state and every step's state; attaching
to an id nobody started is run_not_found, and attaching as another workflow is refused.

Describe and list, from processes that know no workflow type: the run's steps, states, output JSON
and times; a run of weft_attach_idle, which no worker serves (on Celery and Temporal it is also sent
to a queue nobody polls), is queued; the lists hold both runs, newest first (Hatchet refuses to
list, saying why); bogus ids are run_not_found. Run ids read as <backend>:<workflow>:<key>; a run a
Python client started (Temporal's SDK, Celery's send_task) is described by its native id.
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


def peer(*args, extra_env=None):
    p = subprocess.run([PEER, *args], env=dict(env, **(extra_env or {})), capture_output=True, text=True, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    check(lines, f"no JSON from attach_peer {' '.join(args)}: rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr[-2000:]!r}")
    out = json.loads(lines[-1])
    out["_rc"] = p.returncode
    return out


STEPS = ["weft_attach.seed", "weft_attach.square", "weft_attach.negate", "weft_attach.total"]
SKEW = 5000  # ms of clock difference allowed between this machine and a server's clock


def describe_and_list(started, t0, t_done):
    rid = started["id"]
    # The id names its backend and workflow.
    check(rid.startswith(f"{BACKEND}:weft_attach:") and len(rid) > len(f"{BACKEND}:weft_attach:"), started)

    # The finished run, described by a process that never held its workflow type.
    out = peer("describe", rid)
    check(out["_rc"] == 0, out)
    d = out["description"]
    check(d["backend"] == BACKEND and d["workflow"] == "weft_attach" and d["id"] == rid, d)
    check(d["id_parts"] == [BACKEND, "weft_attach", rid.split(":", 2)[2]], d)
    check(d["state"] == "succeeded", d)
    check(d["output"] == "49/-7", d)  # the run's output as JSON: the last step's string
    check(d["error"] == "" and d["failed_step"] == "", d)
    check([s["name"] for s in d["steps"]] == STEPS, d)  # every node, in node order
    for s in d["steps"]:
        check(s["state"] == "succeeded" and s["attempts"] >= 1 and s["error"] == "", s)
    check(d["created"] is not None and t0 - SKEW <= d["created"] <= t_done + SKEW, (t0, t_done, d))
    if BACKEND in ("celery", "temporal"):
        check(d["finished"] is not None and d["created"] <= d["finished"] + SKEW and d["finished"] <= t_done + SKEW, d)
        for s in d["steps"]:
            check(s["finished"] is not None and t0 - SKEW <= s["finished"] <= t_done + SKEW, s)
        # The seed sleeps 1.5 s before the others can finish.
        seed, total = d["steps"][0], d["steps"][3]
        check(total["finished"] - seed["finished"] >= 0, d)
    if BACKEND == "temporal":  # the history has every attempt's start
        for s in d["steps"]:
            check(s["started"] is not None and s["started"] <= s["finished"], s)
        check(d["started"] is not None and d["created"] <= d["started"] <= d["finished"], d)
        check(d["steps"][0]["finished"] - d["steps"][0]["started"] >= 1400, d["steps"][0])
    if BACKEND == "hatchet":  # also by the engine's own id of the run, as a Python client holds it
        native = peer("describe", rid.split(":", 2)[2])
        check(native["_rc"] == 0 and native["description"]["id"] == rid and native["description"]["state"] == "succeeded", native)

    # A run no worker serves: queued, as described by another process, until it is cancelled.
    idle_env = {}
    if BACKEND == "celery":
        idle_env = {"WEFT_CELERY_QUEUE": f"weft-attach-idle-{RUN}"}
    elif BACKEND == "temporal":
        idle_env = {"WEFT_TEMPORAL_TASK_QUEUE": f"weft-attach-idle-{RUN}"}
    idle = peer("start-idle", "3", extra_env=idle_env)
    check(idle["_rc"] == 0 and idle["id"].startswith(f"{BACKEND}:weft_attach_idle:"), idle)
    check(idle["state"] == "queued", idle)  # what the starting handle says
    try:
        time.sleep(1)  # long enough for a worker to take it, if one served it
        q = peer("describe", idle["id"], extra_env=idle_env)
        check(q["_rc"] == 0, q)
        qd = q["description"]
        check(qd["state"] == "queued" and qd["workflow"] == "weft_attach_idle" and qd["output"] is None, qd)
        check([s["name"] for s in qd["steps"]] == ["weft_attach.idle"], qd)
        check(all(s["state"] == "pending" and s["attempts"] == 0 for s in qd["steps"]), qd)
        check(qd["created"] is not None and qd["finished"] is None, qd)

        # Lists: newest first, holding both runs.
        if BACKEND == "hatchet":
            refused = peer("list", "weft_attach", "10")
            check(refused["_rc"] == 1 and refused["error"] == "config_error", refused)
            check("hatchet" in refused["what"] and "REST" in refused["what"], refused)
        else:
            for _ in range(100):  # Temporal's visibility store is written after the run starts
                runs = peer("list", "weft_attach_idle", "5", extra_env=idle_env)
                if runs["_rc"] == 0 and any(r["id"] == idle["id"] for r in runs["runs"]):
                    break
                time.sleep(0.2)
            check(runs["_rc"] == 0, runs)
            mine = [r for r in runs["runs"] if r["id"] == idle["id"]]
            check(len(mine) == 1 and mine[0]["state"] == "queued" and mine[0]["workflow"] == "weft_attach_idle", runs)
            for _ in range(100):
                runs = peer("list", "weft_attach", "50")
                if runs["_rc"] == 0 and any(r["id"] == rid for r in runs["runs"]):
                    break
                time.sleep(0.2)
            check(runs["_rc"] == 0 and 1 <= len(runs["runs"]) <= 50, runs)
            mine = [r for r in runs["runs"] if r["id"] == rid]
            check(len(mine) == 1 and mine[0]["state"] == "succeeded", runs)
            check(mine[0]["created"] is not None and abs(mine[0]["created"] - d["created"]) < 1000, (mine, d))
            created = [r["created"] for r in runs["runs"]]
            check(created == sorted(created, reverse=True), runs)  # newest first
            check(all(r["workflow"] == "weft_attach" for r in runs["runs"]), runs)
            one = peer("list", "weft_attach", "1")
            check(one["_rc"] == 0 and len(one["runs"]) == 1, one)
    finally:
        peer("cancel-idle", idle["id"], extra_env=idle_env)
        if BACKEND == "celery":  # its message stays in the list nobody serves
            import redis
            redis.Redis.from_url(os.environ["WEFT_REDIS_URL"]).delete(idle_env["WEFT_CELERY_QUEUE"])
        elif BACKEND == "temporal":  # a cancel request needs a worker to close the run: terminate it
            import asyncio
            from temporalio.client import Client

            async def terminate():
                client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                              namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"))
                await client.get_workflow_handle(idle["id"]).terminate("weft attach test: no worker serves it")

            asyncio.run(terminate())

    # Ids nobody started: run_not_found, naming the id, from describe too.
    for nobody in ("weft-attach-nobody-" + RUN, str(uuid.uuid4()), f"{BACKEND}:weft_attach:nobody-{RUN}"):
        missing = peer("describe", nobody)
        check(missing["_rc"] == 1 and missing["error"] == "run_not_found", missing)
        check(nobody in missing["what"] or nobody.split(":", 2)[-1] in missing["what"], missing)


def python_started():
    """A run a Python client started, described by its native id (no weft prefix, no weft record)."""
    if BACKEND == "temporal":
        import asyncio
        from temporalio.client import Client

        native = f"py-attach-{RUN}"

        async def run():
            client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                          namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"))
            handle = await client.start_workflow("weft_attach", args=[7, 10], id=native,
                                                 task_queue=env["WEFT_TEMPORAL_TASK_QUEUE"])
            return await asyncio.wait_for(handle.result(), 60)

        check(asyncio.run(run()) == "49/-7", "the Python client's run of weft_attach")
        out = peer("describe", native)
        check(out["_rc"] == 0, out)
        d = out["description"]
        check(d["id"] == native and "id_parts" not in d and d["workflow"] == "weft_attach", d)
        check(d["state"] == "succeeded" and d["output"] == "49/-7", d)
        # No memo: the steps are the activities the history shows, in the order they were scheduled.
        check([s["name"] for s in d["steps"]] == STEPS and all(s["state"] == "succeeded" for s in d["steps"]), d)
        attached = peer("attach", native)
        check(attached["_rc"] == 0 and attached["result"] == "49/-7", attached)
    elif BACKEND == "celery":
        from celery import Celery

        app = Celery("weft_attach_py", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
        res = app.send_task("weft_attach.square", (6,), queue=env["WEFT_CELERY_QUEUE"])
        check(res.get(timeout=60) == 36, "the Python client's task on the C++ worker")
        out = peer("describe", res.id)
        check(out["_rc"] == 0, out)
        d = out["description"]
        check(d["id"] == res.id and d["workflow"] == "" and d["state"] == "succeeded" and d["output"] == 36, d)
        check(len(d["steps"]) == 1 and d["steps"][0]["state"] == "succeeded" and d["finished"] is not None, d)
        res.forget()


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
        t0 = time.time() * 1000
        started = peer("start", "7", "1500")
        check(started["_rc"] == 0 and started.get("id"), started)
        check(started["backend"] == BACKEND, started)
        # Mid-run, by the id alone: not over yet (queued, if no worker took it yet, or running).
        mid = peer("describe", started["id"])
        check(mid["_rc"] == 0, mid)
        check(mid["description"]["state"] in ("queued", "running"), mid)
        check(any(s["state"] != "succeeded" for s in mid["description"]["steps"]), mid)
        out = peer("attach", started["id"])
        t_done = time.time() * 1000
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
        describe_and_list(started, t0, t_done)
        python_started()
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
