"""weft's Celery backend against real Python Celery 5 on the harness's Redis.

Run: scripts/with-services --need redis python tests/celery/interop.py <celery_peer binary> [case ...]

Starts a Python Celery worker (queue py-<run>) and the C++ worker (tests/celery/peer.cpp, queue
cpp-<run>) as subprocesses, runs each case with bounded timeouts, stops both by PID and deletes every
Redis key it made. Exits non-zero if any case fails; prints one line per case.
"""
import base64
import datetime
import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import redis

import harness
from harness import Cases, Check, check, py_worker, run_cases, start, stop, stop_all

PEER = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
URL = os.environ["WEFT_REDIS_URL"]
PASSWORD = os.environ.get("WEFT_REDIS_PASSWORD", "")
RUN = uuid.uuid4().hex[:10]
CQ = f"weft-cpp-{RUN}"
PQ = f"weft-py-{RUN}"
KQ = f"weft-crash-{RUN}"
RQ = f"weft-restore-{RUN}"
UQ = f"weft-unreadable-{RUN}"
BQ = f"weft-batch-{RUN}"
SQ = f"weft-stop-{RUN}"
EQ = f"weft-eta-{RUN}"
XQ = f"weft-prefixed-{RUN}"
SPQ = f"weft-split-{RUN}"
OQ = f"weft-order-{RUN}"
DEAD = f"weft.dead_letter.{RUN}"
T = 30  # seconds, every wait

r = redis.Redis.from_url(URL)
# The crash and restore cases run workers with a 2 s visibility timeout, whose sweep would restore
# ANY unacked message of the database: they run in a database of their own, so they cannot
# redeliver what other tests hold on the shared Redis.
ISO_URL = re.sub(r"/\d*$", "", URL) + "/9"
r_iso = redis.Redis.from_url(ISO_URL)
task_ids = []  # result keys to delete at the end
iso_ids = []   # the same, in the isolated database


def raises_malformed(res, what):
    """get() of a task whose message could not be read raises Celery's ValueError saying so."""
    try:
        res.get(timeout=T)
        raise Check(f"get() on {what} did not raise")
    except ValueError as e:
        check("malformed Celery message" in str(e), str(e))


def wait_llen(client, key, n):
    deadline = time.monotonic() + T
    while client.llen(key) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return client.llen(key)


def cpp_worker(queue, *extra, log_path, url=URL, concurrency=2, keyprefix=None, result_url=None, drain_ms=None):
    """extra: visibility_timeout_s restore_interval_ms [prefetch_multiplier]"""
    env = dict(os.environ, WEFT_TEST_DEAD_LETTER=DEAD, WEFT_REDIS_URL=url)
    if drain_ms is not None:
        env["WEFT_TEST_DRAIN_MS"] = str(drain_ms)
    if keyprefix:
        env["WEFT_TEST_KEYPREFIX"] = keyprefix
    if result_url:
        env["WEFT_TEST_RESULT_URL"] = result_url
    return harness.cpp_worker(PEER, queue, *extra, log_path=log_path, env=env, concurrency=concurrency, timeout=T)


def peer_client(*args, env=None):
    out = subprocess.run([PEER, *args], env=env or os.environ, capture_output=True, text=True, timeout=T + 15)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    check(lines, f"no JSON from celery_peer {' '.join(args)}: rc={out.returncode} stdout={out.stdout!r} "
                 f"stderr={out.stderr[-2000:]!r}")
    res = json.loads(lines[-1])
    res["_rc"] = out.returncode
    res["_stderr"] = out.stderr
    if "id" in res:
        task_ids.append(res["id"])
    return res


def track(res):
    """Remembers a Python result and its parents (a chain's earlier steps, a chord's group)."""
    while res is not None:
        task_ids.append(res.id)
        res = getattr(res, "parent", None)


def meta(tid):
    raw = r.get("celery-task-meta-" + tid)
    return json.loads(raw) if raw else None


def unacked_mentions(tid, client=r):
    return any(tid.encode() in v for v in client.hvals("unacked"))


def wait_unacked(ids, client=r):
    """Waits (at most T) until workers hold every task of `ids` in kombu's unacked; whether they do."""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        vals = client.hvals("unacked")
        if all(any(t.encode() in v for v in vals) for t in ids):
            return True
        time.sleep(0.05)
    return False


def main():
    tmp = tempfile.mkdtemp(prefix="weft-celery-interop-")
    with open(os.path.join(tmp, "weft_interop_tasks.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import os
            from celery import Celery
            app = Celery("weft_interop", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
            app.conf.update(result_expires=600, task_default_queue={PQ!r}, broker_connection_retry_on_startup=True)

            @app.task(name="weft.py.mul")
            def mul(x, y):
                return x * y

            @app.task(name="weft.py.double")
            def double(x):
                return 2 * x

            @app.task(name="weft.py.tsum")
            def tsum(xs):
                return sum(xs)

            @app.task(name="weft.py.tenant", bind=True)
            def tenant(self, s):
                # Celery puts message headers on task.request: weft's run metadata is one of them.
                return s + "|py:" + (getattr(self.request, "weft_metadata", None) or {{}}).get("tenant", "<none>")
        """))
    sys.path.insert(0, tmp)
    import weft_interop_tasks as tasks  # noqa: E402
    from celery import chain, chord, group
    from celery.exceptions import NotRegistered

    app = tasks.app
    from celery import Celery
    iso_app = Celery("weft_interop_iso", broker=ISO_URL, backend=ISO_URL)
    iso_app.conf.update(result_expires=600)
    env = dict(os.environ, PYTHONPATH=tmp)
    py_log = os.path.join(tmp, "py-worker.log")
    py = py_worker("weft_interop_tasks", PQ, f"py-{RUN}@%h", py_log, env)
    cpp_log = os.path.join(tmp, "cpp-worker.log")
    cpp = cpp_worker(CQ, log_path=cpp_log)

    def cpp_sig(name, *args):
        s = app.signature(name, args=args, queue=CQ)
        return s

    def send_cpp(name, *args):
        res = app.send_task(name, args, queue=CQ)
        task_ids.append(res.id)
        return res

    cases = case = Cases()

    @case
    def python_apply_async_reaches_the_cpp_worker():
        res = send_cpp("weft.test.add", 2, 3)
        check(res.get(timeout=T) == 5, "add(2, 3) != 5")
        check(res.status == "SUCCESS", f"status {res.status}")
        check(r.ttl("celery-task-meta-" + res.id) > 0, "the result has no TTL")
        time.sleep(0.2)
        check(not unacked_mentions(res.id), "the message is still in unacked after the result")

    @case
    def a_cpp_failure_raises_the_original_exception_in_python_get():
        res = send_cpp("weft.test.fail", "bad thing")
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except ValueError as e:
            check(e.args == ("bad thing",), f"args {e.args!r}")
        check(res.status == "FAILURE", res.status)
        check("weft C++ step 'weft.test.fail'" in (res.traceback or ""), f"traceback {res.traceback!r}")

    @case
    def an_unknown_task_is_not_registered_and_dead_lettered():
        before = r.llen(DEAD)
        res = send_cpp("weft.test.nope", 1)
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except NotRegistered as e:
            check("weft.test.nope" in str(e), str(e))
        check(r.llen(DEAD) == before + 1, "no dead letter")
        entry = json.loads(r.lindex(DEAD, 0))
        check(entry["reason"].startswith("NotRegistered"), entry["reason"])
        check(cpp.poll() is None, "the C++ worker died")

    @case
    def malformed_and_truncated_messages_never_stop_the_cpp_worker():
        before = r.llen(DEAD)
        r.lpush(CQ, b"this is not json {")
        r.lpush(CQ, b"\xff\xfe binary garbage")
        tid = str(uuid.uuid4())
        task_ids.append(tid)
        env_ = {"body": base64.b64encode(b'[[1, 2], {}').decode(), "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"lang": "py", "task": "weft.test.add", "id": tid, "root_id": tid},
                "properties": {"correlation_id": tid, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                               "delivery_tag": str(uuid.uuid4()),
                               "delivery_info": {"exchange": "", "routing_key": CQ}}}
        r.lpush(CQ, json.dumps(env_))
        raises_malformed(app.AsyncResult(tid), "a truncated message")
        check(wait_llen(r, DEAD, before + 3) == before + 3, f"dead letters: {r.llen(DEAD) - before}, expected 3")
        reasons = [json.loads(x)["reason"] for x in r.lrange(DEAD, 0, 2)]
        check(any("not JSON" in x for x in reasons), reasons)
        check(cpp.poll() is None, "the C++ worker died")
        ok = send_cpp("weft.test.add", 1, 1)
        check(ok.get(timeout=T) == 2, "the C++ worker stopped serving after bad input")

    @case
    def a_cpp_client_starts_a_python_task():
        out = peer_client("client", "py_mul", CQ, PQ, "6", "7")
        check(out.get("result") == 42, out)
        check(out.get("state") == "succeeded", out)

    @case
    def one_chain_runs_cpp_python_cpp_steps_routed_by_queue():
        out = peer_client("client", "mixed", CQ, PQ, "2", "3")
        check(out.get("result") == "n=10", out)
        check(set(out["steps"].values()) == {"succeeded"}, out["steps"])

    @case
    def python_headers_weft_metadata_reach_every_cpp_step_of_a_chain():
        # Only the first message carries the header (Celery does not copy it down a chain): the C++
        # worker sends it on. A number arrives as its JSON text.
        res = chain(cpp_sig("weft.test.tenant_of", 1), app.signature("weft.test.metadata_seen", queue=CQ)).apply_async(
            headers={"weft_metadata": {"tenant": "acme", "shard": 7}})
        track(res)
        got = res.get(timeout=T)
        check(got == "acme|shard=7;tenant=acme;", f"got {got!r}")

    @case
    def a_weft_metadata_header_that_is_not_an_object_fails_the_task_clearly():
        res = app.send_task("weft.test.tenant_of", (1,), queue=CQ, headers={"weft_metadata": "tenant=acme"})
        task_ids.append(res.id)
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except ValueError as e:
            check("malformed Celery message: headers.weft_metadata is string" in str(e), str(e))
        check(cpp.poll() is None, "the C++ worker died")
        check(send_cpp("weft.test.tenant_of", 1).get(timeout=T) == "<none>", "the next task without metadata")

    @case
    def a_cpp_clients_run_metadata_reaches_cpp_and_python_steps():
        out = peer_client("client", "metadata", CQ, PQ, "1")
        check(out.get("result") == "globex|py:globex|tenant=globex;trace_id=t-42;", out)

    @case
    def a_cpp_client_runs_fan_out_and_fan_in_as_chain_chord_chain_across_both_workers():
        # add(2, 3) = 5 >> (inc = 6, py double = 10) >> join2 = 610 >> to_text
        for _ in range(3):  # either worker may finish the header last and run the join
            out = peer_client("client", "diamond", CQ, PQ, "2", "3")
            check(out.get("result") == "n=610", out)
            # on_step reported each step's success once, the last step last
            check(sorted(out.get("on_step", [])) == sorted(["weft.test.add", "weft.test.inc", "weft.py.double",
                                                            "weft.test.join2", "weft.test.to_text"]), out)
            check(out["on_step"][-1] == "weft.test.to_text", out)

    @case
    def a_cpp_client_starts_a_chord_of_first_steps():
        out = peer_client("client", "fan_in", CQ, PQ, "4")
        check(out.get("result") == 508, out)  # inc(4) * 100 + twice(4)

    @case
    def a_cpp_client_starts_a_final_group():
        out = peer_client("client", "fan_out", CQ, PQ, "1", "2")
        check(out.get("result") == [4, 6], out)

    @case
    def a_cpp_worker_applies_a_python_built_chord_in_a_chain():
        res = chain(cpp_sig("weft.test.add", 1, 2),
                    chord([tasks.double.s().set(queue=PQ), app.signature("weft.test.inc", queue=CQ)],
                          app.signature("weft.test.join2", queue=CQ))).apply_async()
        track(res)
        check(res.get(timeout=T) == 604, "chain(add, chord([double, inc], join2))")

    @case
    def a_cpp_step_failure_fails_the_chain_and_its_pending_steps():
        out = peer_client("client", "boom", CQ, PQ)
        check(out.get("state") == "failed", out)
        check(out.get("failed_step") == "weft.test.boom", out)
        check("boom from C++" in out.get("error", ""), out)
        check(out["steps"]["weft.test.to_text"] == "failed", out["steps"])

    @case
    def python_chain_with_cpp_members():
        res = chain(cpp_sig("weft.test.add", 1, 2), tasks.double.s().set(queue=PQ),
                    app.signature("weft.test.to_text", queue=CQ)).apply_async()
        track(res)
        check(res.get(timeout=T) == "n=6", "chain result")

    @case
    def python_chain_reraises_a_cpp_failure():
        res = chain(cpp_sig("weft.test.add", 1, 2), app.signature("weft.test.boom", queue=CQ),
                    tasks.double.s().set(queue=PQ)).apply_async()
        track(res)
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except RuntimeError as e:
            check("boom from C++" in str(e), str(e))

    @case
    def python_group_with_cpp_members():
        res = group(cpp_sig("weft.test.add", 1, 1), tasks.mul.s(2, 3).set(queue=PQ)).apply_async()
        task_ids.append(res.id)
        check(res.get(timeout=T) == [2, 6], "group result")
        task_ids.extend(x.id for x in res.results)

    def no_taskset_keys(gid):
        # Celery 5.7 leaves only the ".c" = "done" marker (expiring) after the body was sent. The
        # joiner cleans up after publishing the body, so the body's result can come first: poll.
        check(gid, "no group id")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not any(r.exists(f"celery-taskset-meta-{gid}{s}") for s in (".j", ".s", ".t", ".d")):
                return True
            time.sleep(0.05)
        return False

    @case
    def python_chord_with_mixed_header_and_cpp_body():
        res = chord([cpp_sig("weft.test.add", 1, 2), tasks.mul.s(2, 2).set(queue=PQ),
                     cpp_sig("weft.test.add", 3, 3)], app.signature("weft.test.total", queue=CQ)).apply_async()
        task_ids.extend([res.id, res.parent.id])
        check(res.get(timeout=T) == 13, "chord result")
        check(no_taskset_keys(res.parent.id), "chord keys left behind")

    @case
    def python_chord_with_cpp_header_and_python_body():
        res = chord([cpp_sig("weft.test.add", 1, 1), cpp_sig("weft.test.add", 2, 2)],
                    tasks.tsum.s().set(queue=PQ)).apply_async()
        task_ids.extend([res.id, res.parent.id])
        check(res.get(timeout=T) == 6, "chord result (joined by the C++ worker)")
        gid = res.parent.id
        check(no_taskset_keys(gid), "chord keys left behind by the C++ join")
        check(r.get(f"celery-taskset-meta-{gid}.c") == b"done", "no done marker after the C++ join")

    @case
    def python_chord_with_python_header_and_cpp_body():
        res = chord([tasks.mul.s(1, 2).set(queue=PQ), tasks.mul.s(3, 3).set(queue=PQ)],
                    app.signature("weft.test.total", queue=CQ)).apply_async()
        task_ids.extend([res.id, res.parent.id])
        check(res.get(timeout=T) == 11, "chord result (body on the C++ worker)")

    @case
    def a_failed_cpp_header_fails_the_chord_with_chord_error():
        res = chord([cpp_sig("weft.test.fail", "header broke"), cpp_sig("weft.test.add", 1, 1)],
                    tasks.tsum.s().set(queue=PQ)).apply_async()
        task_ids.extend([res.id, res.parent.id])
        # Python's get() re-raises the failed parent first (the header's ValueError); the body's own
        # result is the ChordError the joining worker stored.
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except ValueError as e:
            check("header broke" in str(e), str(e))
        deadline = time.monotonic() + T
        while (meta(res.id) or {}).get("status") != "FAILURE" and time.monotonic() < deadline:
            time.sleep(0.05)
        m = meta(res.id)
        check(m and m["result"]["exc_type"] == "ChordError", f"body meta {m}")
        check("raised ValueError('header broke')" in m["result"]["exc_message"][0], m["result"])

    @case
    def the_cpp_worker_runs_tasks_concurrently_on_its_threads():
        # The worker runs with concurrency 2: two 1.2 s steps finish together, not one after the other.
        t0 = time.monotonic()
        a, b = send_cpp("weft.test.slow", 1200), send_cpp("weft.test.slow", 1201)
        check(a.get(timeout=T) == 1200 and b.get(timeout=T) == 1201, "slow results")
        elapsed = time.monotonic() - t0
        check(elapsed < 2.2, f"two 1.2 s steps took {elapsed:.2f}s: not concurrent")

    @case
    def priority_messages_land_on_kombus_priority_lists_and_are_consumed():
        # Park a priority-5 message while the worker is busy elsewhere? Simpler: a queue nobody
        # consumes shows where Python puts it, and the C++ worker then drains that list.
        parked = f"weft-prio-{RUN}"
        res = app.send_task("weft.test.add", (4, 4), queue=parked, priority=5)
        task_ids.append(res.id)
        check(r.llen(parked + "\x06\x163") == 1, "priority 5 is not on the \\x06\\x163 list")
        raw = r.rpop(parked + "\x06\x163")
        env_ = json.loads(raw)
        env_["properties"]["delivery_info"]["routing_key"] = CQ
        r.lpush(CQ + "\x06\x163", json.dumps(env_))
        check(res.get(timeout=T) == 8, "the C++ worker did not consume the priority list")

    @case
    def time_limits_stop_a_cpp_step_soft_then_hard():
        # soft limit: the step sees stop_requested() and returns early, with its result kept
        t0 = time.monotonic()
        res = app.send_task("weft.test.sleepy", (10000,), queue=CQ, soft_time_limit=0.3, time_limit=5)
        task_ids.append(res.id)
        worked = res.get(timeout=T)
        check(250 <= worked < 2000, f"the step worked {worked} ms under a 0.3 s soft limit")
        # hard limit: the late result is discarded and Python raises TimeLimitExceeded
        res = app.send_task("weft.test.sleepy", (10000,), queue=CQ, time_limit=0.4)
        task_ids.append(res.id)
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except Exception as e:  # noqa: BLE001
            check(type(e).__name__ == "TimeLimitExceeded", repr(e))
        check(time.monotonic() - t0 < 5, "the time limits did not stop the step")

    @case
    def a_failing_step_is_retried_with_an_eta_and_the_retry_state():
        p = r.pubsub()
        res_id = str(uuid.uuid4())
        task_ids.append(res_id)
        p.subscribe("celery-task-meta-" + res_id)
        t0 = time.monotonic()
        res = app.send_task("weft.test.flaky", (f"k-{RUN}",), queue=CQ, task_id=res_id)
        check(res.get(timeout=T) == 3, "attempts")
        elapsed = time.monotonic() - t0
        states = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            m = p.get_message(timeout=0.2)
            if m and m["type"] == "message":
                states.append(json.loads(m["data"])["status"])
                if states[-1] == "SUCCESS":
                    break
        p.close()
        check(states == ["RETRY", "RETRY", "SUCCESS"], f"published states {states}")
        # backoff 300 ms then 600 ms
        check(elapsed >= 0.85, f"retried too early: {elapsed:.2f}s")

    @case
    def a_cpp_client_starts_many_runs_in_one_round_trip():
        out = peer_client("client", "many", CQ, PQ)
        check(out.get("result") == [2 * i for i in range(50)], out)

    @case
    def a_cpp_runs_step_status_counts_its_attempts():
        out = peer_client("client", "flaky", CQ, PQ, f"attempts-{RUN}")
        check(out.get("result") == 3, out)
        check(out.get("attempts") == 3, f"attempts {out.get('attempts')}, expected 3")
        check(meta(out["id"]).get("retries") == 2, meta(out["id"]))

    @case
    def cancelling_a_run_keeps_its_pending_steps_from_running():
        out = peer_client("client", "cancel", CQ, PQ, "1500")
        check(out.get("state") == "cancelled", out)
        check("cancelled" in out.get("error", ""), out)
        time.sleep(2.5)  # the running step finishes; the next one must not run
        # The chain's second step stays REVOKED: find it through the first step's children.
        root = meta(out["id"])
        check(root is not None and root["children"], f"first step meta {root}")
        nxt = root["children"][0][0][0]
        task_ids.append(nxt)
        check(meta(nxt)["status"] == "REVOKED", f"the pending step ran: {meta(nxt)}")
        check(out["steps"]["weft.test.to_text"] == "cancelled", out["steps"])

    @case
    def python_revoke_keeps_a_pending_task_from_running_on_the_cpp_worker():
        res = app.send_task("weft.test.add", (5, 5), queue=CQ, countdown=1.5)  # held unacked until due
        task_ids.append(res.id)
        time.sleep(0.3)
        res.revoke()
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except Exception as e:  # noqa: BLE001
            check(type(e).__name__ == "TaskRevokedError", repr(e))
        # Celery 5.7's revoke() also stores REVOKED itself; what proves the C++ worker heard the
        # broadcast is that it discards the task when it falls due, instead of running it.
        deadline = time.monotonic() + 5
        needle = f"discarding revoked task weft.test.add[{res.id}]"
        while needle not in open(cpp_log).read() and time.monotonic() < deadline:
            time.sleep(0.1)
        check(needle in open(cpp_log).read(), "the C++ worker did not discard the revoked task")
        check(meta(res.id)["status"] == "REVOKED", meta(res.id))

    @case
    def python_revoke_with_terminate_stops_a_running_cpp_step():
        res = app.send_task("weft.test.sleepy", (10000,), queue=CQ)
        task_ids.append(res.id)
        wait_unacked([res.id])
        time.sleep(0.3)  # running now
        t0 = time.monotonic()
        res.revoke(terminate=True)
        needle = f"task weft.test.sleepy[{res.id}] terminated by a revoke"
        while needle not in open(cpp_log).read() and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        check(needle in open(cpp_log).read(), "the running step was not terminated")
        check(time.monotonic() - t0 < 3, "the step went on after the terminate")
        time.sleep(0.2)
        m = meta(res.id)
        check(m["status"] == "REVOKED", m)
        check(not unacked_mentions(res.id), "still unacked after the terminate")

    def drained(drain_ms, step_ms, name):
        """SIGTERM 1 s into weft.test.sleepy(step_ms) on a worker with drain_ms: (seconds to exit, ms worked)."""
        q = f"weft-drain-{name}-{RUN}"
        w = cpp_worker(q, log_path=os.path.join(tmp, f"drain-{name}.log"), drain_ms=drain_ms)
        res = app.send_task("weft.test.sleepy", (step_ms,), queue=q)
        task_ids.append(res.id)
        wait_unacked([res.id])
        time.sleep(1.0)  # running now
        t0 = time.monotonic()
        stop(w)
        took = time.monotonic() - t0
        return took, res.get(timeout=T)

    @case
    def sigterm_drains_a_running_cpp_step_and_stores_its_own_result():
        # Celery's warm shutdown: the running task finishes before the worker exits.
        took, worked = drained(10000, 3000, "long")
        check(worked >= 2900, f"the step was stopped early: it worked {worked} ms of 3000")
        check(1.5 <= took < 8, f"the drain should last as long as the step (about 2 s), took {took:.1f} s")

    @case
    def a_drain_deadline_asks_the_running_step_to_stop():
        took, worked = drained(500, 30000, "short")
        check(worked < 5000, f"the step went on past the drain deadline: it worked {worked} ms")
        check(took < 4, f"the drain should end at its 0.5 s deadline, took {took:.1f} s")

    @case
    def cancelling_a_run_keeps_its_pending_python_step_from_running():
        # slow (C++, 1.5 s) >> py_double (Python) >> to_text (C++): cancelled while slow runs.
        out = peer_client("client", "cancel_mixed", CQ, PQ, "1500")
        check(out.get("state") == "cancelled", out)
        time.sleep(2.5)
        root = meta(out["id"])
        check(root is not None and root["children"], f"first step meta {root}")
        nxt = root["children"][0][0][0]
        task_ids.append(nxt)
        log = open(py_log).read()
        check(nxt in log, "the Python worker never saw the revoked step")
        check(f"weft.py.double[{nxt}] succeeded" not in log, "the Python worker ran a revoked step")
        check(meta(nxt)["status"] == "REVOKED", meta(nxt))

    @case
    def weft_backend_celery_selects_this_backend_through_any_client():
        env_ = dict(os.environ, WEFT_BACKEND="celery", WEFT_CELERY_BROKER_URL=URL, WEFT_CELERY_QUEUE=CQ)
        out = peer_client("anyclient", "20", "22", env=env_)
        check(out.get("backend") == "celery" and out.get("result") == 42, out)
        secret = "wrong-" + uuid.uuid4().hex
        bad = URL.replace(":" + PASSWORD + "@", ":" + secret + "@") if PASSWORD else URL
        env_["WEFT_CELERY_BROKER_URL"] = bad
        out = peer_client("anyclient", "1", "2", env=env_)
        check(out["_rc"] != 0 and "exception" in out, out)
        check(secret not in out["exception"] and secret not in out["_stderr"], "the password leaked: " + out["exception"])
        check("***" in out["exception"], out["exception"])

    @case
    def a_cpp_worker_killed_mid_step_is_replaced_and_the_result_stored_once():
        log1 = os.path.join(tmp, "crash1.log")
        k1 = cpp_worker(KQ, "2", "300", log_path=log1, url=ISO_URL)
        tid = str(uuid.uuid4())
        iso_ids.append(tid)
        p = r_iso.pubsub()
        p.subscribe("celery-task-meta-" + tid)
        res = iso_app.send_task("weft.test.slow", (2500,), queue=KQ, task_id=tid)
        check(wait_unacked([tid], r_iso), "the message never showed up in unacked")
        time.sleep(0.3)
        os.kill(k1.pid, signal.SIGKILL)
        k1.wait(timeout=10)
        check(r_iso.get("celery-task-meta-" + tid) is None, "the killed worker stored a result")
        k2 = cpp_worker(KQ, "2", "300", log_path=os.path.join(tmp, "crash2.log"), url=ISO_URL)
        try:
            check(res.get(timeout=T) == 2500, "result after the crash")
            published = []
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                m = p.get_message(timeout=0.2)
                if m and m["type"] == "message":
                    published.append(json.loads(m["data"])["status"])
            p.close()
            check(published.count("SUCCESS") == 1, f"result stored {published.count('SUCCESS')} times")
            check("restored unacked message" in open(os.path.join(tmp, "crash2.log")).read(), "no restore logged")
        finally:
            stop(k2)

    @case
    def unacked_entries_that_do_not_parse_are_restored_or_dead_lettered_never_dropped():
        # A worker died holding a truncated message (the fetch recorded it under the tag it could
        # read) and an entry nothing can read. The sweep must neither drop nor loop on them: the
        # first goes back to its queue and is then dead-lettered with a FAILURE meta for its id, so
        # get() raises instead of waiting for ever; the second is dead-lettered as it is.
        tid = str(uuid.uuid4())
        iso_ids.append(tid)
        tag_a, tag_b = "trunc-" + RUN, "junk-" + RUN
        truncated = ('{"body": "W1sxLCAy", "headers": {"lang": "py", "task": "weft.test.add", "id": "%s", '
                     '"root_id": "%s"}, "properties": {"delivery_tag": "%s", "delivery_info": {"exchange": "", '
                     '"routing_key": "%s"' % (tid, tid, tag_a, UQ))  # cut off mid-envelope
        long_ago = time.time() - 3600
        r_iso.hset("unacked", tag_a, "[" + truncated + ', "", "' + UQ + '"]')
        r_iso.zadd("unacked_index", {tag_a: long_ago})
        r_iso.hset("unacked", tag_b, "not an entry at all " + RUN)
        r_iso.zadd("unacked_index", {tag_b: long_ago})
        dead_before = r_iso.llen(DEAD)
        w = cpp_worker(UQ, "2", "300", log_path=os.path.join(tmp, "unreadable.log"), url=ISO_URL)
        try:
            raises_malformed(iso_app.AsyncResult(tid), "a restored truncated message")
            wait_llen(r_iso, DEAD, dead_before + 2)
            dead = [json.loads(x) for x in r_iso.lrange(DEAD, 0, r_iso.llen(DEAD) - dead_before - 1)]
            check(any(RUN in d["message"] and "not [envelope" in d["reason"] for d in dead), dead)
            check(any(tid in d["message"] for d in dead), dead)
            check(r_iso.hget("unacked", tag_a) is None and r_iso.hget("unacked", tag_b) is None, "left in unacked")
            check(r_iso.zscore("unacked_index", tag_a) is None and r_iso.zscore("unacked_index", tag_b) is None,
                  "left in unacked_index")
            check(w.poll() is None, "the C++ worker died")
        finally:
            stop(w)

    @case
    def a_redis_restart_under_load_strands_no_result():
        # A private Redis (AOF, fsync always), killed with SIGKILL while the C++ worker is storing
        # results and acks, and started again on the same port and files: every task's result is
        # stored once Redis is back, and nothing stays in unacked (the visibility timeout is an
        # hour: a stranded task would not come back within the test).
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        rdir = os.path.join(tmp, "redis-restart")
        os.makedirs(rdir)
        # key-load-delay (µs per command read back) holds the restarted Redis in LOADING for a
        # while, as a big dataset would: the worker must take that for "not yet", never a failure.
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", rdir, "--appendonly", "yes",
               "--appendfsync", "always", "--save", "", "--protected-mode", "yes", "--key-load-delay", "300"]
        url = f"redis://127.0.0.1:{port}/0"
        rr = redis.Redis.from_url(url)

        def up():
            p = start(cmd, log=open(os.path.join(rdir, "redis.log"), "a"))
            deadline = time.monotonic() + T
            while time.monotonic() < deadline:
                try:
                    rr.ping()
                    return p
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            raise Check("the private Redis did not start")

        srv = up()
        w = None
        try:
            n, q = 2000, f"weft-redis-restart-{RUN}"
            rapp = Celery("weft_restart", broker=url, backend=url)
            rapp.conf.update(result_expires=600)
            ids = [str(uuid.uuid4()) for _ in range(n)]
            with rapp.producer_or_acquire() as prod:
                for i, tid in enumerate(ids):
                    rapp.send_task("weft.test.slow", (2,), queue=q, task_id=tid, producer=prod)
            w = cpp_worker(q, "3600", "60000", log_path=os.path.join(tmp, "redis-restart.log"), url=url, concurrency=4)
            deadline = time.monotonic() + T
            while time.monotonic() < deadline and sum(1 for k in rr.scan_iter("celery-task-meta-*", count=1000)) < n // 4:
                time.sleep(0.05)
            os.kill(srv.pid, signal.SIGKILL)  # mid-run: results and acks in flight
            srv.wait(timeout=10)
            time.sleep(1.0)
            srv = up()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = sum(1 for k in rr.scan_iter("celery-task-meta-*", count=1000))
                if done >= n and rr.hlen("unacked") == 0:
                    break
                time.sleep(0.2)
            done = sum(1 for k in rr.scan_iter("celery-task-meta-*", count=1000))
            stranded = rr.hlen("unacked")
            check(done == n, f"{n - done} of {n} results missing after the restart ({stranded} still unacked)")
            check(stranded == 0 and rr.zcard("unacked_index") == 0, f"{stranded} messages stranded in unacked")
            check(w.poll() is None, "the C++ worker died")
            log = open(os.path.join(tmp, "redis-restart.log")).read()
            check("flusher" in log and "again" in log, "the flusher's reconnect was not logged")
            check("is not ready: LOADING" in log, "the worker never met the restarted Redis still loading")
        finally:
            if w:
                stop(w)
            stop(srv)

    @case
    def a_python_worker_restores_what_a_killed_cpp_worker_held():
        # Same unacked bookkeeping as kombu: a Python worker's restore_visible puts the message back.
        with open(os.path.join(tmp, "weft_restore_tasks.py"), "w") as f:
            f.write(textwrap.dedent("""
                import os
                from celery import Celery
                app = Celery("weft_restore", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
                app.conf.update(broker_connection_retry_on_startup=True, broker_transport_options={
                    "visibility_timeout": 2, "unacked_restore_interval": 1, "unacked_restore_throttle": 1})
            """))
        k1 = cpp_worker(RQ, log_path=os.path.join(tmp, "restore1.log"), url=ISO_URL)
        res = iso_app.send_task("weft.test.slow", (1500,), queue=RQ)
        iso_ids.append(res.id)
        check(wait_unacked([res.id], r_iso), "the message never showed up in unacked")
        os.kill(k1.pid, signal.SIGKILL)
        k1.wait(timeout=10)
        pyr = py_worker("weft_restore_tasks", "py" + RQ, f"pyr-{RUN}@%h", os.path.join(tmp, "py-restore.log"),
                        dict(env, WEFT_REDIS_URL=ISO_URL))
        try:
            deadline = time.monotonic() + T
            while r_iso.llen(RQ) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            check(r_iso.llen(RQ) == 1, "the Python worker did not restore the message")
            raw = json.loads(r_iso.lindex(RQ, 0))
            check(raw["headers"].get("redelivered") is True, "restored without the redelivered flag")
        finally:
            stop(pyr)
        k2 = cpp_worker(RQ, log_path=os.path.join(tmp, "restore2.log"), url=ISO_URL)
        try:
            check(res.get(timeout=T) == 1500, "the restored task did not run")
            check(not unacked_mentions(res.id, r_iso), "still unacked after the second run")
        finally:
            stop(k2)


    def successes(p, n, within):
        """SUCCESS publications per task id seen on pubsub `p` until n ids have one, plus a grace period."""
        seen = {}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            m = p.get_message(timeout=0.2)
            if m and m["type"] == "message":
                meta_ = json.loads(m["data"])
                if meta_["status"] == "SUCCESS":
                    seen[meta_["task_id"]] = seen.get(meta_["task_id"], 0) + 1
                    if len(seen) == n:
                        deadline = min(deadline, time.monotonic() + 1.5)  # would a duplicate follow?
        return seen

    @case
    def a_cpp_worker_killed_holding_a_prefetched_batch_loses_none_of_it():
        # Queued before the worker starts, so one fetch takes all four (prefetch 4 × 1 thread):
        # the first runs, three wait in the worker's memory, all four in kombu's unacked.
        ids = [str(uuid.uuid4()) for _ in range(4)]
        iso_ids.extend(ids)
        p = r_iso.pubsub()
        p.subscribe(*["celery-task-meta-" + t for t in ids])
        iso_app.send_task("weft.test.slow", (1500,), queue=BQ, task_id=ids[0])
        for k, t in enumerate(ids[1:]):
            iso_app.send_task("weft.test.add", (k, k), queue=BQ, task_id=t)
        k1 = cpp_worker(BQ, "2", "300", "4", log_path=os.path.join(tmp, "batch1.log"), url=ISO_URL, concurrency=1)
        check(wait_unacked(ids, r_iso), "the batch never showed up in unacked")
        check(r_iso.llen(BQ) == 0, "the worker did not take the whole batch")
        time.sleep(0.3)
        os.kill(k1.pid, signal.SIGKILL)
        k1.wait(timeout=10)
        check(all(r_iso.get("celery-task-meta-" + t) is None for t in ids), "the killed worker stored a result")
        k2 = cpp_worker(BQ, "2", "300", log_path=os.path.join(tmp, "batch2.log"), url=ISO_URL)
        try:
            seen = successes(p, len(ids), T)
            p.close()
            check(set(seen) == set(ids), f"results for {len(seen)} of {len(ids)} tasks")
            check(all(n == 1 for n in seen.values()), f"stored more than once: {seen}")
            check(iso_app.AsyncResult(ids[3]).get(timeout=T) == 4, "add(2, 2) after the restore")
            check(not any(unacked_mentions(t, r_iso) for t in ids), "still unacked after the second run")
        finally:
            stop(k2)

    @case
    def a_stopped_cpp_worker_puts_its_prefetched_messages_back():
        ids = [str(uuid.uuid4()) for _ in range(4)]
        task_ids.extend(ids)
        app.send_task("weft.test.slow", (1000,), queue=SQ, task_id=ids[0])
        for k, t in enumerate(ids[1:]):
            app.send_task("weft.test.add", (k, 1), queue=SQ, task_id=t)
        k1 = cpp_worker(SQ, "3600", "60000", "4", log_path=os.path.join(tmp, "stop1.log"), concurrency=1)
        check(wait_unacked(ids, r), "the batch never showed up in unacked")
        time.sleep(0.2)
        stop(k1)  # SIGTERM: the running step finishes, the rest goes back to the queue
        check(meta(ids[0]) and meta(ids[0])["status"] == "SUCCESS", f"the running step: {meta(ids[0])}")
        check(r.llen(SQ) == 3, f"{r.llen(SQ)} messages back on the queue, expected 3")
        check(not any(unacked_mentions(t) for t in ids), "put back but still unacked")
        check(all(meta(t) is None for t in ids[1:]), "a prefetched task ran after stop")
        k2 = cpp_worker(SQ, log_path=os.path.join(tmp, "stop2.log"))
        try:
            check([app.AsyncResult(t).get(timeout=T) for t in ids[1:]] == [1, 2, 3], "the put-back tasks")
        finally:
            stop(k2)

    @case
    def an_eta_task_waits_on_a_timer_without_holding_the_only_thread():
        # One thread, prefetch 1: the countdown task is held (unacked) on the timer heap, and the
        # tasks sent after it still run at once, as in Celery.
        k1 = cpp_worker(EQ, "3600", "60000", "1", log_path=os.path.join(tmp, "eta.log"), concurrency=1)
        try:
            t0 = time.monotonic()
            later = app.send_task("weft.test.add", (20, 22), queue=EQ, countdown=5)
            task_ids.append(later.id)
            time.sleep(0.3)
            check(unacked_mentions(later.id), "the countdown task is not held in unacked")
            now = [app.send_task("weft.test.add", (k, k), queue=EQ) for k in range(3)]
            task_ids.extend(x.id for x in now)
            check([x.get(timeout=T) for x in now] == [0, 2, 4], "tasks after the countdown one")
            check(time.monotonic() - t0 < 3, f"the other tasks waited {time.monotonic() - t0:.1f}s")
            check(later.status == "PENDING", f"the countdown task ran early: {later.status}")
            check(later.get(timeout=T) == 42, "countdown result")
            took = time.monotonic() - t0
            check(4.9 <= took < 8, f"the countdown task finished after {took:.1f}s, not ~5s")
            time.sleep(0.2)
            check(not unacked_mentions(later.id), "still unacked after it ran")
        finally:
            stop(k1)

    @case
    def far_dates_and_bad_header_values_from_python_get_one_clear_outcome_each():
        # Past 2262 system_clock's nanoseconds overflowed: expires=2300 was revoked on arrival and
        # eta=9999 ran at once. One thread: the eta task must wait without holding it.
        utc = datetime.timezone.utc
        k1 = cpp_worker(EQ, log_path=os.path.join(tmp, "far.log"), concurrency=1)
        try:
            never = app.send_task("weft.test.add", (1, 1), queue=EQ, eta=datetime.datetime(9999, 12, 31, tzinfo=utc))
            task_ids.append(never.id)
            far = app.send_task("weft.test.add", (1, 2), queue=EQ, expires=datetime.datetime(2300, 1, 1, tzinfo=utc))
            task_ids.append(far.id)
            check(far.get(timeout=T) == 3, f"expires=2300: {far.status}")
            huge = app.send_task("weft.test.add", (3, 4), queue=EQ, time_limit=1e300, soft_time_limit=1e300)
            task_ids.append(huge.id)
            check(huge.get(timeout=T) == 7, f"time_limit=1e300: {huge.status}")
            for opts, why in (({"retries": -1}, "headers.retries is negative"),
                              ({"time_limit": -1}, "headers.timelimit[0] (the hard time limit) is negative")):
                bad = app.send_task("weft.test.add", (1, 1), queue=EQ, **opts)
                task_ids.append(bad.id)
                try:
                    bad.get(timeout=T)
                    raise Check(f"{opts} ran")
                except ValueError as e:
                    check(why in str(e), str(e))
            check(never.status == "PENDING", f"eta=9999 did not wait: {never.status}")
            check(unacked_mentions(never.id), "the eta=9999 task is not held in unacked")
            check(k1.poll() is None, "the C++ worker died")
        finally:
            stop(k1)

    @case
    def global_keyprefix_on_both_sides_matches_python_key_for_key():
        # Python with kombu's and the result backend's global_keyprefix; the C++ worker and client
        # with the same prefixes. Nothing may land on an unprefixed key.
        pfx = f"weft-pfx-{RUN}:"
        papp = Celery("weft_interop_pfx", broker=URL, backend=URL)
        papp.conf.update(result_expires=600, broker_transport_options={"global_keyprefix": pfx},
                         result_backend_transport_options={"global_keyprefix": pfx})
        k1 = cpp_worker(XQ, log_path=os.path.join(tmp, "prefix.log"), keyprefix=pfx)
        try:
            res = papp.send_task("weft.test.add", (20, 3), queue=XQ)
            check(res.get(timeout=T) == 23, "Python (prefixed) -> C++ worker (prefixed)")
            check(r.exists(pfx + "celery-task-meta-" + res.id), "no prefixed result key")
            check(not r.exists("celery-task-meta-" + res.id), "an unprefixed result key")
            env_ = dict(os.environ, WEFT_BACKEND="celery", WEFT_CELERY_BROKER_URL=URL, WEFT_CELERY_QUEUE=XQ,
                        WEFT_CELERY_GLOBAL_KEYPREFIX=pfx, WEFT_CELERY_RESULT_KEYPREFIX=pfx)
            out = peer_client("anyclient", "4", "5", env=env_)
            check(out.get("result") == 9, out)
            check(papp.AsyncResult(out["id"]).get(timeout=T) == 9, "Python reads the C++ run's prefixed result")
            # Python's revoke is a PUBLISH on the prefixed pidbox channel.
            later = papp.send_task("weft.test.add", (1, 1), queue=XQ, countdown=1.5)
            time.sleep(0.3)
            check(any(later.id.encode() in v for v in r.hvals(pfx + "unacked")), "not in the prefixed unacked hash")
            later.revoke()
            needle = f"discarding revoked task weft.test.add[{later.id}]"
            deadline = time.monotonic() + 5
            while needle not in open(os.path.join(tmp, "prefix.log")).read() and time.monotonic() < deadline:
                time.sleep(0.1)
            check(needle in open(os.path.join(tmp, "prefix.log")).read(), "the prefixed revoke did not reach the worker")
            check(not any(x.id.encode() in v for x in (res, later) for v in r.hvals("unacked")), "unprefixed unacked")
        finally:
            stop(k1)
            left = r.keys(pfx + "*")  # one pass on the server; SCAN from here is slow on a full database
            if left:
                r.delete(*left)

    @case
    def a_cpp_worker_with_results_in_another_database_serves_python_chains():
        # broker in database 0, results in database 10: the worker's second connection, the metas
        # read one by one and the flusher's two pipelines (results first, then acks).
        res_url = re.sub(r"/\d*$", "", URL) + "/10"
        r10 = redis.Redis.from_url(res_url)
        sapp = Celery("weft_interop_split", broker=URL, backend=res_url)
        sapp.conf.update(result_expires=600)
        k1 = cpp_worker(SPQ, log_path=os.path.join(tmp, "split.log"), result_url=res_url)
        ids = []
        try:
            res = chain(sapp.signature("weft.test.add", (2, 3), queue=SPQ),
                        sapp.signature("weft.test.to_text", queue=SPQ)).apply_async()
            ids += [res.id, res.parent.id]
            check(res.get(timeout=T) == "n=5", "chain with results in database 10")
            check(r10.exists("celery-task-meta-" + res.id) and not r.exists("celery-task-meta-" + res.id),
                  "the result is not (only) in database 10")
            bad = sapp.send_task("weft.test.fail", ("split",), queue=SPQ)
            ids.append(bad.id)
            try:
                bad.get(timeout=T)
                raise Check("get() did not raise")
            except ValueError as e:
                check(e.args == ("split",), e.args)
            time.sleep(0.3)
            check(not any(t.encode() in v for t in ids for v in r.hvals("unacked")), "left unacked in database 0")
        finally:
            stop(k1)
            r10.delete(*["celery-task-meta-" + t for t in ids])

    @case
    def a_batch_is_taken_in_kombus_priority_order():
        # Queued before the worker starts: three priority-6 tasks sent first, then three priority-0
        # ones. kombu consumes the plain list before \x06\x166, and so must the batched fetch.
        low = [app.send_task("weft.test.add", (k, 100), queue=OQ, priority=6) for k in range(3)]
        high = [app.send_task("weft.test.add", (k, 0), queue=OQ, priority=0) for k in range(3)]
        task_ids.extend(x.id for x in low + high)
        check(r.llen(OQ + "\x06\x166") == 3 and r.llen(OQ) == 3, "not on kombu's priority lists")
        k1 = cpp_worker(OQ, "3600", "60000", "4", log_path=os.path.join(tmp, "order.log"), concurrency=1)
        try:
            check([x.get(timeout=T) for x in high + low] == [0, 1, 2, 100, 101, 102], "results")
            done = {x.id: meta(x.id)["date_done"] for x in high + low}
            check(max(done[x.id] for x in high) < min(done[x.id] for x in low),
                  f"a priority-6 task ran before a priority-0 one: {done}")
        finally:
            stop(k1)

    failures = 0
    before_keys = set(r.scan_iter(match="celery-task-meta-*"))
    try:
        # Both workers ready: a round trip each.
        check(send_cpp("weft.test.add", 0, 0).get(timeout=T) == 0, "C++ worker round trip")
        rr = tasks.mul.apply_async((1, 1), queue=PQ)
        task_ids.append(rr.id)
        check(rr.get(timeout=T) == 1, "Python worker round trip")
        failures += run_cases(cases, ONLY, logs=(cpp_log, py_log))
        check(py.poll() is None, "the Python worker died")
        check(cpp.poll() is None, "the C++ worker died")
    except Check as e:
        failures += 1
        print(f"FAIL setup: {e}")
    finally:
        failures = stop_all(failures, cpp_log, py_log, PASSWORD)
        harness.delete_run(r, task_ids, before_keys, RUN, [DEAD] + harness.queue_keys(CQ, PQ, KQ, RQ, "py" + RQ, SQ, EQ, SPQ, OQ))
        r_iso.delete(*(["celery-task-meta-" + t for t in iso_ids] + harness.queue_keys(KQ, RQ, "py" + RQ, BQ)))
        for k in r_iso.scan_iter(match=f"_kombu.binding*{RUN}*"):
            r_iso.delete(k)
    print(f"celery interop: {len(cases) - failures if not ONLY else '-'} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
