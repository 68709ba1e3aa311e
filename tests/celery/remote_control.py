"""Celery's own tooling against the C++ worker: `celery inspect`, `celery status`, remote control
from app.control, and the events a monitor (Flower, `celery events`) receives.

Run: scripts/with-services --need redis python tests/celery/remote_control.py <celery_peer binary> [case ...]

Uses its own database of the harness's Redis (remote control and events are per database: the
pidbox and celeryev channels are /<db>.celery.pidbox and /<db>.celeryev/*), so other tests' workers
neither answer nor disturb. Starts an events receiver, the C++ worker (tests/celery/peer.cpp, node
cpp-<run>@<host>, one thread, task events on) and a Python worker (node py-<run>@<host>), runs each
case, stops every process by its PID and deletes the keys it made. Exits non-zero if any case fails.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import redis

from harness import Cases, Check, check, run_cases, start, stop, stop_all

PEER = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
DB = 12
URL = re.sub(r"/\d*$", "", os.environ["WEFT_REDIS_URL"]) + f"/{DB}"
PASSWORD = os.environ.get("WEFT_REDIS_PASSWORD", "")
RUN = uuid.uuid4().hex[:10]
CQ = f"weft-inspect-cpp-{RUN}"
PQ = f"weft-inspect-py-{RUN}"
HOST = os.uname().nodename
CPP = f"cpp-{RUN}@{HOST}"
PY = f"py-{RUN}@{HOST}"
DEAD = f"weft.dead_letter.{RUN}"
T = 30  # seconds, every wait
SERVED = {"weft.bench.noop", "weft.test.add", "weft.test.boom", "weft.test.fail", "weft.test.flaky", "weft.test.inc",
          "weft.test.join2", "weft.test.sleepy", "weft.test.slow", "weft.test.to_text", "weft.test.total",
          "weft.test.twice", "weft.test.tenant_of", "weft.test.metadata_seen",
          "weft.test.echo", "weft.test.area"}

r = redis.Redis.from_url(URL)
task_ids = []


def wait_for(what, cond, timeout=T):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise Check(f"timed out waiting for {what}")


def main():
    tmp = tempfile.mkdtemp(prefix="weft-celery-inspect-")
    with open(os.path.join(tmp, "weft_inspect_app.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import os
            from celery import Celery
            app = Celery("weft_inspect", broker={URL!r}, backend={URL!r})
            app.conf.update(result_expires=600, task_default_queue={PQ!r}, broker_connection_retry_on_startup=True)

            @app.task(name="weft.py.mul")
            def mul(x, y):
                return x * y
        """))
    sys.path.insert(0, tmp)
    import weft_inspect_app  # noqa: E402

    app = weft_inspect_app.app
    env = dict(os.environ, PYTHONPATH=tmp, WEFT_REDIS_URL=URL)

    def celery_cli(*args):
        """`celery -A weft_inspect_app <args>`, as a user types it; returns its stdout."""
        out = subprocess.run([sys.executable, "-m", "celery", "-A", "weft_inspect_app", *args], env=env, cwd=tmp,
                             capture_output=True, text=True, timeout=T + 15)
        return out.stdout + out.stderr

    def inspect_json(command, *extra, node=CPP):
        """`celery inspect <command> -j -d <node>`: the node's reply, decoded."""
        text = celery_cli("inspect", command, "-j", "-t", "2", "-d", node, *extra)
        start_ = text.find("{")
        check(start_ >= 0, f"celery inspect {command}: no JSON in {text!r}")
        try:
            replies = json.JSONDecoder().raw_decode(text[start_:])[0]
        except ValueError as e:
            raise Check(f"celery inspect {command}: {e}: {text!r}")
        check(node in replies, f"celery inspect {command}: {node} did not answer: {text!r}")
        return replies[node]

    # The events receiver, before the workers start, so it sees worker-online.
    events = []
    events_m = threading.Lock()
    receiver = {}

    def on_event(e):
        with events_m:
            events.append(e)

    def capture():
        with app.connection() as conn:
            rcv = app.events.Receiver(conn, handlers={"*": on_event})
            receiver["r"] = rcv
            try:
                rcv.capture(limit=None, timeout=None, wakeup=True)
            except Exception as e:  # noqa: BLE001
                receiver["error"] = repr(e)

    listener = threading.Thread(target=capture, daemon=True)
    listener.start()
    wait_for("the events receiver", lambda: r.pubsub_numpat() > 0 or "error" in receiver, timeout=10)
    time.sleep(1.0)  # PUBSUB NUMPAT counts every database's patterns: give ours a moment
    check("error" not in receiver, f"the events receiver failed: {receiver.get('error')}")

    def cpp_events(type_, uuid_=None):
        with events_m:
            return [e for e in events if e.get("hostname") == CPP and e.get("type") == type_
                    and (uuid_ is None or e.get("uuid") == uuid_)]

    def wait_event(type_, uuid_=None, timeout=T):
        return wait_for(f"event {type_} {uuid_ or ''} from {CPP}", lambda: cpp_events(type_, uuid_), timeout)[0]

    cpp_log = os.path.join(tmp, "cpp-worker.log")
    cpp = start([PEER, "worker", CQ, "1"], env=dict(env, WEFT_TEST_NODENAME=f"cpp-{RUN}@%h", WEFT_TEST_TASK_EVENTS="1",
                                                    WEFT_TEST_DEAD_LETTER=DEAD),
                log=open(cpp_log, "w"))
    wait_for("the C++ worker", lambda: "ready" in open(cpp_log).read() or cpp.poll() is not None)
    check(cpp.poll() is None, f"the C++ worker exited: {open(cpp_log).read()[-2000:]}")
    py_log = os.path.join(tmp, "py-worker.log")
    # With mingle on, the Python worker's startup asks every node for its revoked set (hello).
    py = start([sys.executable, "-m", "celery", "-A", "weft_inspect_app", "worker", "--pool=solo", "-Q", PQ,
                "-n", f"py-{RUN}@%h", "--without-gossip", "-l", "INFO"], env=env, log=open(py_log, "w"))
    wait_for("the Python worker", lambda: " ready." in open(py_log).read() or py.poll() is not None)
    check(py.poll() is None, f"the Python worker exited: {open(py_log).read()[-2000:]}")

    def send_cpp(name, *args, **options):
        res = app.send_task(name, args, queue=CQ, **options)
        task_ids.append(res.id)
        return res

    cases = case = Cases()

    @case
    def celery_inspect_ping_lists_the_cpp_worker_next_to_the_python_one():
        text = celery_cli("inspect", "ping", "-t", "2")
        check(re.search(rf"->\s+{re.escape(CPP)}: OK\s+pong", text), f"no pong from {CPP}: {text!r}")
        check(re.search(rf"->\s+{re.escape(PY)}: OK\s+pong", text), f"no pong from {PY}: {text!r}")
        replies = app.control.inspect(timeout=2).ping() or {}
        check(replies.get(CPP) == {"ok": "pong"}, f"app.control.inspect().ping(): {replies!r}")
        check(replies.get(PY) == {"ok": "pong"}, f"app.control.inspect().ping(): {replies!r}")
        only = app.control.ping(destination=[CPP], timeout=2)
        check(only == [{CPP: {"ok": "pong"}}], f"ping(destination=[{CPP}]): {only!r}")

    @case
    def celery_status_counts_both_nodes():
        text = celery_cli("status", "-t", "2")
        check(f"{CPP}: OK" in text and f"{PY}: OK" in text, f"celery status: {text!r}")
        check(re.search(r"\b2 nodes online", text), f"celery status does not count two nodes: {text!r}")

    @case
    def the_python_worker_synced_with_the_cpp_one_at_mingle():
        log = open(py_log).read()
        check("mingle: sync with 1 nodes" in log, f"the Python worker's mingle: {log[-1500:]!r}")
        check("sync complete" in log and not re.search(r"mingle: sync with .* failed", log), log[-1500:])

    @case
    def task_events_follow_a_cpp_task_from_received_to_succeeded():
        res = send_cpp("weft.test.add", 2, 3)
        check(res.get(timeout=T) == 5, "add(2, 3) != 5")
        received = wait_event("task-received", res.id)
        check(received["name"] == "weft.test.add" and received["args"] == "(2, 3)" and received["kwargs"] == "{}",
              received)
        check(received["root_id"] == res.id and received["retries"] == 0 and received["eta"] is None, received)
        started = wait_event("task-started", res.id)
        succeeded = wait_event("task-succeeded", res.id)
        check(succeeded["result"] == "5", succeeded)
        check(isinstance(succeeded["runtime"], float) and 0 <= succeeded["runtime"] < 5, succeeded)
        check(received["clock"] < started["clock"] < succeeded["clock"], "the Lamport clock does not advance")
        check(succeeded["pid"] == cpp.pid, f"pid {succeeded['pid']} != {cpp.pid}")
        check(abs(succeeded["timestamp"] - time.time()) < 60, succeeded)

    @case
    def task_events_report_a_failure_and_a_retry():
        res = send_cpp("weft.test.fail", "bad thing")
        try:
            res.get(timeout=T)
            raise Check("get() did not raise")
        except ValueError:
            pass
        failed = wait_event("task-failed", res.id)
        check(failed["exception"] == "ValueError('bad thing')", failed)
        check("weft C++ step 'weft.test.fail'" in failed["traceback"], failed)
        flaky = send_cpp("weft.test.flaky", f"inspect-{RUN}")
        check(flaky.get(timeout=T) == 3, "flaky did not succeed on its third attempt")
        retried = wait_for("two task-retried events", lambda: len(cpp_events("task-retried", flaky.id)) >= 2 and
                           cpp_events("task-retried", flaky.id))
        check(retried[0]["exception"] == "RuntimeError('flaky attempt 1')", retried[0])
        wait_event("task-succeeded", flaky.id)

    @case
    def a_revoked_task_sends_task_revoked():
        tid = str(uuid.uuid4())
        app.control.revoke(tid)
        time.sleep(0.3)  # the broadcast reaches the worker before the task
        revoked = inspect_json("revoked")
        check(tid in revoked, f"inspect revoked: {revoked!r}")
        send_cpp("weft.test.add", 1, 1, task_id=tid)
        ev = wait_event("task-revoked", tid)
        check(ev["terminated"] is False and ev["expired"] is False, ev)

    @case
    def worker_events_come_online_and_beat_every_two_seconds():
        online = wait_event("worker-online")
        check(online["sw_ident"] == "weft-celery" and online["freq"] == 2.0, online)
        wait_for("three heartbeats", lambda: len(cpp_events("worker-heartbeat")) >= 3, timeout=15)
        beats = cpp_events("worker-heartbeat")
        for b in beats:
            check(isinstance(b["active"], int) and isinstance(b["processed"], int), b)
            check(isinstance(b["loadavg"], list) and len(b["loadavg"]) == 3, b)
        gaps = [b2["timestamp"] - b1["timestamp"] for b1, b2 in zip(beats, beats[1:])]
        check(any(1.5 < g < 3.0 for g in gaps), f"heartbeat gaps {gaps}")
        # The tasks above may have run since the last beat: the next one (at most 2 s on) counts them.
        wait_for("a heartbeat counting the tasks above",
                 lambda: any(b["processed"] >= 1 for b in cpp_events("worker-heartbeat")), timeout=10)

    @case
    def inspect_active_reserved_and_scheduled_while_a_step_is_in_flight():
        busy = send_cpp("weft.test.sleepy", 15000)  # outlasts the inspect calls on a loaded machine
        waiting = send_cpp("weft.test.add", 20, 22)
        later = send_cpp("weft.test.add", 1, 2, countdown=60)
        wait_event("task-started", busy.id)
        wait_event("task-received", later.id)
        active = inspect_json("active")
        check([t["id"] for t in active] == [busy.id], f"inspect active: {active!r}")
        a = active[0]
        check(a["name"] == "weft.test.sleepy" and a["type"] == "weft.test.sleepy" and a["args"] == [15000]
              and a["kwargs"] == {}, a)
        check(a["hostname"] == CPP and a["worker_pid"] == cpp.pid and abs(a["time_start"] - time.time()) < 30, a)
        check(a["delivery_info"]["routing_key"] == CQ and a["acknowledged"] is False, a)
        reserved = inspect_json("reserved")
        check([t["id"] for t in reserved] == [waiting.id], f"inspect reserved: {reserved!r}")
        check(reserved[0]["args"] == [20, 22] and reserved[0]["time_start"] is None, reserved)
        scheduled = inspect_json("scheduled")
        check([s["request"]["id"] for s in scheduled] == [later.id], f"inspect scheduled: {scheduled!r}")
        check(scheduled[0]["eta"] and scheduled[0]["eta"].startswith(time.strftime("%Y-", time.gmtime())), scheduled)
        query = app.control.inspect(timeout=2, destination=[CPP]).query_task([busy.id, waiting.id, later.id, "nope"])
        states = {k: v[0] for k, v in (query or {}).get(CPP, {}).items()}
        check(states == {busy.id: "active", waiting.id: "reserved", later.id: "scheduled"}, f"query_task: {query!r}")
        text = celery_cli("inspect", "active", "-t", "2", "-d", CPP)
        check(busy.id in text and "weft.test.sleepy" in text, f"celery inspect active: {text!r}")
        check(busy.get(timeout=T) >= 5000 and waiting.get(timeout=T) == 42, "the in-flight tasks did not finish")
        later.revoke()
        check(inspect_json("active") == [], "inspect active after the step returned")

    @case
    def inspect_registered_stats_queues_and_clock():
        check(set(inspect_json("registered")) == SERVED, "inspect registered")
        text = celery_cli("inspect", "registered", "-t", "2", "-d", CPP)
        check("* weft.test.sleepy" in text, f"celery inspect registered: {text!r}")
        stats = inspect_json("stats")
        check(stats["pid"] == cpp.pid, stats)
        check(stats["pool"]["max-concurrency"] == 1, stats["pool"])
        # Celery's prefetch count grows by one per ETA task held: the revoked countdown task above waits
        # for its time on the timers, as Python keeps it.
        held = len(inspect_json("scheduled"))
        check(stats["prefetch_count"] == 4 + held, f"prefetch_count {stats['prefetch_count']}, {held} ETA task(s) held")
        check(stats["total"].get("weft.test.add", 0) >= 2 and stats["total"].get("weft.test.sleepy") == 1,
              stats["total"])
        check(stats["broker"]["transport"] == "redis" and stats["broker"]["virtual_host"] == str(DB), stats["broker"])
        check(stats["rusage"]["maxrss"] > 0 and isinstance(stats["rusage"]["utime"], float), stats["rusage"])
        check(int(stats["clock"]) > 0 and stats["uptime"] >= 1, stats)
        queues = inspect_json("active_queues")
        check([q["name"] for q in queues] == [CQ] and queues[0]["exchange"]["type"] == "direct", queues)
        clock = inspect_json("clock")
        check(clock["clock"] > int(stats["clock"]), f"clock {clock} did not move past stats' {stats['clock']}")
        hello = app.control.inspect(timeout=2, destination=[CPP]).hello("someone@else", [f"hello-{RUN}"])
        check(hello and f"hello-{RUN}" in hello[CPP]["revoked"], f"hello: {hello!r}")

    @case
    def commands_it_does_not_implement_get_celerys_error_reply():
        unknown = app.control.broadcast("no_such_command", reply=True, timeout=2, destination=[CPP])
        check(unknown == [{CPP: {"error": "KeyError('no_such_command')"}}], f"unknown command: {unknown!r}")
        report = app.control.broadcast("report", reply=True, timeout=2, destination=[CPP])
        check(len(report) == 1 and "error" in report[0][CPP], f"report: {report!r}")
        text = celery_cli("inspect", "conf", "-t", "2", "-d", CPP)
        check(f"{CPP}: ERROR" in text, f"celery inspect conf: {text!r}")

    @case
    def disable_events_stops_task_events_and_enable_events_restarts_them():
        off = app.control.broadcast("disable_events", reply=True, timeout=2, destination=[CPP])
        check(off == [{CPP: {"ok": "task events disabled"}}], f"disable_events: {off!r}")
        quiet = send_cpp("weft.test.add", 5, 5)
        check(quiet.get(timeout=T) == 10, "add(5, 5)")
        on = app.control.broadcast("enable_events", reply=True, timeout=2, destination=[CPP])
        check(on == [{CPP: {"ok": "task events enabled"}}], f"enable_events: {on!r}")
        loud = send_cpp("weft.test.add", 6, 6)
        check(loud.get(timeout=T) == 12, "add(6, 6)")
        wait_event("task-succeeded", loud.id)
        time.sleep(0.5)
        check(not cpp_events("task-received", quiet.id) and not cpp_events("task-succeeded", quiet.id),
              "task events were sent while disabled")
        check(cpp_events("worker-heartbeat"), "worker events stop with task events")

    @case
    def with_a_global_keyprefix_control_and_events_travel_on_prefixed_keys():
        prefix = f"weft-{RUN}:"
        node = f"cpp2-{RUN}@{HOST}"
        from celery import Celery
        papp = Celery("weft_inspect_prefixed", broker=URL, backend=URL)
        papp.conf.update(broker_transport_options={"global_keyprefix": prefix})
        sub = r.pubsub()
        sub.psubscribe(f"{prefix}/{DB}.celeryev/*")
        log_path = os.path.join(tmp, "cpp2-worker.log")
        w = start([PEER, "worker", CQ + "-prefixed", "1"],
                  env=dict(env, WEFT_TEST_NODENAME=f"cpp2-{RUN}@%h", WEFT_TEST_KEYPREFIX=prefix,
                           WEFT_TEST_DEAD_LETTER=DEAD, WEFT_TEST_HEARTBEAT_MS="500"),
                  log=open(log_path, "w"))
        try:
            wait_for("the prefixed C++ worker", lambda: "ready" in open(log_path).read() or w.poll() is not None)
            pong = papp.control.ping(destination=[node], timeout=2)
            check(pong == [{node: {"ok": "pong"}}], f"prefixed ping: {pong!r}")
            unprefixed = app.control.ping(destination=[node], timeout=1)
            check(unprefixed == [], f"a client without the prefix reached the prefixed worker: {unprefixed!r}")
            deadline = time.monotonic() + 10
            seen = None
            while time.monotonic() < deadline and not seen:
                msg = sub.get_message(timeout=0.5)
                if msg and msg["type"] == "pmessage" and node.encode() in base64.b64decode(json.loads(msg["data"])["body"]):
                    seen = msg["channel"].decode()
            check(seen and seen.startswith(f"{prefix}/{DB}.celeryev/worker."), f"prefixed events: {seen!r}")
        finally:
            sub.close()
            stop(w)
        for k in list(r.scan_iter(match=f"{prefix}*")):
            r.delete(k)

    @case
    def hostile_control_messages_never_stop_the_mailbox():
        # Python Celery 5.7's worker itself dies on one of these (a JSON list on the pidbox channel:
        # kombu's _deliver raises TypeError, "Unrecoverable error"): stop it first.
        check(py.poll() is None, "the Python worker died before the hostile messages")
        stop(py)
        channel = f"/{DB}.celery.pidbox"

        def envelope(body_bytes):
            return json.dumps({"body": base64.b64encode(body_bytes).decode(), "content-encoding": "utf-8",
                               "content-type": "application/json", "headers": {"clock": 1},
                               "properties": {"delivery_mode": 2, "body_encoding": "base64",
                                              "delivery_info": {"exchange": "celery.pidbox", "routing_key": ""},
                                              "priority": 0, "delivery_tag": str(uuid.uuid4())}})
        garbage = [b"not json at all {", b"\xff\xfe\x00binary", b"[1, 2, 3]", b'{"body": 42}',
                   b'{"body": "%%% not base64 %%%"}', envelope(b"not json").encode(), envelope(b"[]").encode(),
                   envelope(b'{"method": 5}').encode(), envelope(b'{"method": "ping", "arguments": [1]}').encode(),
                   envelope(b'{"method": "ping", "destination": 7}').encode(),
                   envelope(b'{"method": "ping", "reply_to": "nowhere", "ticket": "x"}').encode(),
                   envelope(b'{"method": "ping", "reply_to": {"exchange": "reply.celery.pidbox", '
                            b'"routing_key": "nobody-listens"}, "ticket": "x"}').encode(),
                   envelope(b'{"method": "revoke", "arguments": {"task_id": {"a": 1}}}').encode(),
                   envelope(b'{"method": "ping", "pattern": "(((", "matcher": "pcre"}').encode(),
                   envelope(b'[' * 100000).encode(), b"x" * 1000000]
        for g in garbage:
            r.publish(channel, g)
        bad_args = app.control.broadcast("query_task", arguments={"ids": 5}, reply=True, timeout=2, destination=[CPP])
        check(len(bad_args) == 1 and "error" in bad_args[0][CPP], f"query_task(ids=5): {bad_args!r}")
        check(app.control.ping(destination=[CPP], timeout=2) == [{CPP: {"ok": "pong"}}],
              "no pong after the hostile messages")
        check(cpp.poll() is None, "the C++ worker died")
        res = send_cpp("weft.test.add", 7, 8)
        check(res.get(timeout=T) == 15, "the C++ worker stopped serving tasks after the hostile messages")
        log = open(cpp_log).read()
        check(log.count("pidbox: dropping a control message") >= 8, f"the drops are not logged: {log[-3000:]!r}")
        check("is not JSON" in log and "method is not a string" in log and "nested" in log, log[-3000:])

    @case
    def worker_offline_when_the_cpp_worker_stops():
        stop(cpp)
        check(cpp.returncode == 0, f"the C++ worker exited with {cpp.returncode}")
        offline = wait_event("worker-offline", timeout=10)
        check(offline["sw_ident"] == "weft-celery", offline)
        replies = app.control.inspect(timeout=1).ping() or {}
        check(CPP not in replies, f"after the stop, ping: {replies!r}")

    failures = 0
    try:
        failures += run_cases(cases, ONLY, logs=(cpp_log, py_log))
    except Check as e:
        failures += 1
        print(f"FAIL setup: {e}")
    finally:
        if "r" in receiver:
            receiver["r"].should_stop = True
        failures = stop_all(failures, cpp_log, py_log, PASSWORD)
        keys = ["celery-task-meta-" + t for t in task_ids] + [DEAD]
        for q in (CQ, PQ):
            keys += [q] + [q + "\x06\x16" + s for s in "369"]
        r.delete(*keys)
        for k in list(r.scan_iter(match=f"*{RUN}*")):
            r.delete(k)
        for k in list(r.scan_iter(match="_kombu.binding.*", _type="SET")):
            for m in r.smembers(k):
                if RUN.encode() in m:
                    r.srem(k, m)
    print(f"celery inspect: {len(cases) - failures if not ONLY else '-'} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
