"""Celery canvas as Python users write it, sent by the Python Celery client to the C++ worker, with a
Python worker as the control.

Run: scripts/with-services --need redis python tests/celery/canvas.py <celery_peer binary> [case ...]

The Python worker (prefork, so time limits and terminate work as in production) registers tasks of
the same names as tests/celery/peer.cpp's C++ steps. Each case runs once with those tasks on the C++
worker's queue and once on the Python worker's, and checks the same outcome (where the two differ
on purpose, the case says so and checks each). Callbacks and errbacks are given task ids up front,
so their results can be read; new-style errbacks, which Python calls inline, write to a Redis key.
"""
import datetime
import json
import os
import sys
import tempfile
import textwrap
import time
import uuid

import redis

import harness
from harness import Cases, Check, check, py_worker, run_cases, stop_all

PEER = os.path.abspath(sys.argv[1])
ONLY = set(sys.argv[2:])
URL = os.environ["WEFT_REDIS_URL"]
PASSWORD = os.environ.get("WEFT_REDIS_PASSWORD", "")
RUN = uuid.uuid4().hex[:10]
CQ = f"weft-canvas-cpp-{RUN}"
PQ = f"weft-canvas-py-{RUN}"
MARK = f"weft-canvas-{RUN}"  # keys the new-style errbacks write
DEAD = f"weft.dead_letter.canvas.{RUN}"
T = 20  # seconds, every wait

r = redis.Redis.from_url(URL)
task_ids = []  # result keys to delete at the end


def meta(tid):
    raw = r.get("celery-task-meta-" + tid)
    return json.loads(raw) if raw else None


def wait_meta(tid, states=("SUCCESS", "FAILURE", "REVOKED"), timeout=T):
    """The task's meta once it is in one of `states`; fails the case after `timeout`."""
    task_ids.append(tid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = meta(tid)
        if m and m["status"] in states:
            return m
        time.sleep(0.05)
    raise Check(f"task {tid} reached none of {states} in {timeout}s (meta: {meta(tid)})")


def new_id():
    tid = str(uuid.uuid4())
    task_ids.append(tid)
    return tid


TASKS = f"""
import json, os, time
import redis
from celery import Celery
app = Celery("weft_canvas", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
app.conf.update(result_expires=600, task_default_queue={PQ!r}, broker_connection_retry_on_startup=True,
                worker_prefetch_multiplier=1)
r = redis.Redis.from_url(os.environ["WEFT_REDIS_URL"])

# The C++ steps of tests/celery/peer.cpp, the Python way.
@app.task(name="weft.test.add")
def add(x, y):
    return x + y

@app.task(name="weft.test.fail")
def fail(why):
    raise ValueError(why)

@app.task(name="weft.test.to_text")
def to_text(x):
    return "n=" + str(x)

@app.task(name="weft.test.inc")
def inc(x):
    return x + 1

@app.task(name="weft.test.twice")
def twice(x):
    return 2 * x

@app.task(name="weft.test.total")
def total(xs):
    return sum(xs)

@app.task(name="weft.test.echo")
def echo(s):
    return "echo:" + s

@app.task(name="weft.test.slow")
def slow(ms):
    time.sleep(ms / 1000)
    return ms

@app.task(name="weft.test.sleepy")
def sleepy(ms):
    time.sleep(ms / 1000)
    return ms

@app.task(name="weft.test.area")
def area(w, h):
    return w * h

# Python-only: a new-style errback, which a Python worker calls inline with the failed request.
@app.task(name="weft.py.on_error")
def on_error(request, exc, traceback):
    r.set({MARK!r} + ":" + request.id, json.dumps({{"id": request.id, "exc": type(exc).__name__,
                                                    "args": list(exc.args)}}), ex=600)
    return "seen"
"""


def main():
    tmp = tempfile.mkdtemp(prefix="weft-celery-canvas-")
    with open(os.path.join(tmp, "weft_canvas_tasks.py"), "w") as f:
        f.write(textwrap.dedent(TASKS))
    sys.path.insert(0, tmp)
    import weft_canvas_tasks as tasks  # noqa: E402
    from celery import chain, chord, group

    app = tasks.app
    env = dict(os.environ, PYTHONPATH=tmp)
    py_log = os.path.join(tmp, "py-worker.log")
    cpp_log = os.path.join(tmp, "cpp-worker.log")
    py = py_worker("weft_canvas_tasks", PQ, f"pycanvas-{RUN}@%h", py_log, env, pool="prefork", concurrency=2)
    cpp = harness.cpp_worker(PEER, CQ, log_path=cpp_log, env=dict(os.environ, WEFT_TEST_DEAD_LETTER=DEAD), timeout=T)

    def sig(name, *args, q, tid=None, immutable=False):
        s = app.signature(name, args=args, queue=q, immutable=immutable)
        if tid:
            s.set(task_id=tid)
        return s

    def both(fn):
        """A case run with its tasks on the C++ worker, then on the Python worker."""
        def run():
            for q in (CQ, PQ):
                try:
                    fn(q)
                except Check as e:
                    raise Check(f"[{'C++' if q == CQ else 'Python'} worker] {e}") from None
        run.__name__ = fn.__name__
        return run

    cases = Cases()
    case = lambda fn: cases(both(fn))  # noqa: E731

    # ---- link and link_error ---------------------------------------------------------------------

    @case
    def a_link_on_either_worker_receives_the_result(q):
        for cbq in (CQ, PQ):  # the callback a C++ task, then a Python one
            cb = new_id()
            res = sig("weft.test.add", 2, 3, q=q).apply_async(link=sig("weft.test.to_text", q=cbq, tid=cb))
            check(res.get(timeout=T) == 5, "add(2, 3)")
            m = wait_meta(cb)
            check(m["status"] == "SUCCESS" and m["result"] == "n=5", f"the link's meta {m}")
            check(m.get("parent_id") == res.id, f"the link's parent is not the task: {m}")

    @case
    def an_immutable_link_keeps_its_own_args(q):
        cb = new_id()
        res = sig("weft.test.add", 2, 3, q=q).apply_async(link=sig("weft.test.to_text", 7, q=q, tid=cb, immutable=True))
        task_ids.append(res.id)
        check(wait_meta(cb)["result"] == "n=7", f"to_text.si(7) got the parent's result: {meta(cb)}")

    @case
    def two_links_each_receive_the_result(q):
        a, b = new_id(), new_id()
        res = sig("weft.test.add", 1, 2, q=q).apply_async(
            link=[sig("weft.test.to_text", q=CQ, tid=a), sig("weft.test.inc", q=PQ, tid=b)])
        task_ids.append(res.id)
        check(wait_meta(a)["result"] == "n=3" and wait_meta(b)["result"] == 4, f"links: {meta(a)} {meta(b)}")

    @case
    def an_old_style_errback_receives_the_failed_task_id(q):
        for ebq in (CQ, PQ):
            eb = new_id()
            res = sig("weft.test.fail", "nope", q=q).apply_async(link_error=sig("weft.test.echo", q=ebq, tid=eb))
            task_ids.append(res.id)
            m = wait_meta(eb)
            check(m["status"] == "SUCCESS" and m["result"] == "echo:" + res.id, f"the errback's meta {m}")
            check(meta(res.id)["status"] == "FAILURE", f"the task's meta {meta(res.id)}")

    @case
    def an_immutable_errback_keeps_its_own_args(q):
        eb = new_id()
        res = sig("weft.test.fail", "nope", q=q).apply_async(
            link_error=sig("weft.test.echo", "fixed", q=q, tid=eb, immutable=True))
        task_ids.append(res.id)
        check(wait_meta(eb)["result"] == "echo:fixed", f"echo.si('fixed') got other args: {meta(eb)}")

    @case
    def a_partial_errback_gets_the_failed_id_before_its_own_args(q):
        # Celery applies errbacks as group(errbacks).apply_async((task_id,)): the id goes first.
        eb = new_id()
        res = sig("weft.test.fail", "nope", q=q).apply_async(link_error=sig("weft.test.add", q=PQ, tid=eb).clone(args=("-x",)))
        task_ids.append(res.id)
        check(wait_meta(eb)["result"] == res.id + "-x", f"add(id, '-x'): {meta(eb)}")

    @case
    def a_new_style_errback(q):
        # A Python worker calls an errback that takes (request, exc, traceback) inline. The C++
        # worker cannot call Python: it sends the errback as Celery sends one the failing worker does
        # not have, a task with [task_id], which then fails on the Python worker for its missing
        # arguments (docs/celery.md says so).
        eb = new_id()
        res = sig("weft.test.fail", "nope", q=q).apply_async(link_error=sig("weft.py.on_error", q=PQ, tid=eb))
        task_ids.append(res.id)
        if q == PQ:
            deadline = time.monotonic() + T
            while not r.exists(f"{MARK}:{res.id}") and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = json.loads(r.get(f"{MARK}:{res.id}") or "null")
            check(seen == {"id": res.id, "exc": "ValueError", "args": ["nope"]}, f"inline errback saw {seen}")
        else:
            m = wait_meta(eb)
            check(m["status"] == "FAILURE" and m["result"]["exc_type"] == "TypeError" and
                  "missing 2 required positional arguments" in m["result"]["exc_message"][0], f"errback meta {m}")
            check(not r.exists(f"{MARK}:{res.id}"), "the errback ran with a request")

    # ---- options the caller sets through apply_async ---------------------------------------------

    @case
    def ignore_result_stores_no_meta_but_links_still_run(q):
        cb, eb = new_id(), new_id()
        ok = sig("weft.test.add", 4, 5, q=q).apply_async(ignore_result=True, link=sig("weft.test.to_text", q=q, tid=cb))
        bad = sig("weft.test.fail", "quiet", q=q).apply_async(ignore_result=True, link_error=sig("weft.test.echo", q=q, tid=eb))
        task_ids.extend([ok.id, bad.id])
        check(wait_meta(cb)["result"] == "n=9", "the link did not run")
        check(wait_meta(eb)["result"] == "echo:" + bad.id, "the errback did not run")
        time.sleep(0.3)
        check(meta(ok.id) is None, f"a meta was stored for ignore_result: {meta(ok.id)}")
        check(meta(bad.id) is None, f"a failure meta was stored for ignore_result: {meta(bad.id)}")

    @case
    def an_expired_task_is_revoked_not_run(q):
        eb = new_id()
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
        res = sig("weft.test.add", 1, 1, q=q).apply_async(expires=past, link_error=sig("weft.test.echo", q=q, tid=eb))
        m = wait_meta(res.id)
        check(m["status"] == "REVOKED" and m["result"]["exc_type"] == "TaskRevokedError" and
              m["result"]["exc_message"] == ["expired"], f"meta {m}")
        # Celery sends no errback for a revoked task.
        time.sleep(0.5)
        check(meta(eb) is None, f"an errback ran for an expired task: {meta(eb)}")

    @case
    def a_task_expiring_during_its_countdown_is_revoked(q):
        res = sig("weft.test.add", 1, 1, q=q).apply_async(countdown=1.5, expires=0.5)
        m = wait_meta(res.id)
        check(m["status"] == "REVOKED" and m["result"]["exc_message"] == ["expired"], f"meta {m}")

    @case
    def countdown_and_eta_delay_the_task(q):
        t0 = datetime.datetime.now(datetime.timezone.utc)
        a = sig("weft.test.add", 1, 2, q=q).apply_async(countdown=1.5)
        b = sig("weft.test.add", 3, 4, q=q).apply_async(eta=t0 + datetime.timedelta(seconds=1.5))
        for res, want in ((a, 3), (b, 7)):
            task_ids.append(res.id)
            check(res.get(timeout=T) == want, "result")
            done = datetime.datetime.fromisoformat(meta(res.id)["date_done"])
            done = done if done.tzinfo else done.replace(tzinfo=datetime.timezone.utc)
            check(done - t0 >= datetime.timedelta(seconds=1.4), f"ran {done - t0} after sending")

    @case
    def a_callers_time_limit_fails_the_task_with_time_limit_exceeded(q):
        res = sig("weft.test.slow", 5000, q=q).apply_async(time_limit=1)
        m = wait_meta(res.id, timeout=10)
        check(m["status"] == "FAILURE" and m["result"]["exc_type"] == "TimeLimitExceeded", f"meta {m}")

    # ---- revoke ------------------------------------------------------------------------------------

    @case
    def a_revoked_queued_task_never_runs(q):
        cb = new_id()
        res = sig("weft.test.add", 1, 1, q=q).apply_async(countdown=1.5, link=sig("weft.test.to_text", q=q, tid=cb))
        time.sleep(0.3)
        res.revoke()
        m = wait_meta(res.id, states=("REVOKED",), timeout=10)
        check(m["result"]["exc_type"] == "TaskRevokedError", f"meta {m}")
        time.sleep(0.3)
        check(meta(cb) is None, "the link of a revoked task ran")

    @case
    def revoke_with_terminate_stops_a_running_task(q):
        res = sig("weft.test.sleepy", 4000, q=q).apply_async()
        task_ids.append(res.id)
        time.sleep(1)  # running, not only fetched
        t0 = time.monotonic()
        res.revoke(terminate=True)
        m = wait_meta(res.id, states=("REVOKED",), timeout=10)
        check(time.monotonic() - t0 < 3.5, "the task ran to its end")
        check(m["result"]["exc_type"] == "TaskRevokedError", f"meta {m}")

    # ---- chords and groups with chains -------------------------------------------------------------

    @case
    def a_chord_whose_header_holds_chains(q):
        res = chord([chain(sig("weft.test.add", 1, 2, q=q), sig("weft.test.inc", q=q)),
                     chain(sig("weft.test.add", 3, 4, q=q), sig("weft.test.twice", q=q)),
                     sig("weft.test.add", 10, 0, q=q)],
                    sig("weft.test.total", q=q)).apply_async()
        task_ids.append(res.id)
        check(res.get(timeout=T) == 4 + 14 + 10, f"chord of chains: {meta(res.id)}")

    @case
    def an_expired_chord_header_fails_the_body_with_a_chord_error(q):
        # Celery's mark_as_revoked returns the header's part: the body fails instead of waiting.
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
        res = chord([sig("weft.test.add", 1, 2, q=q), sig("weft.test.add", 3, 4, q=q).set(expires=past)],
                    sig("weft.test.total", q=q)).apply_async()
        m = wait_meta(res.id)
        check(m["status"] == "FAILURE" and m["result"]["exc_type"] == "ChordError" and
              "TaskRevokedError" in m["result"]["exc_message"][0], f"the body's meta {m}")

    @case
    def a_group_of_chains(q):
        res = group(chain(sig("weft.test.add", 1, 2, q=q), sig("weft.test.to_text", q=q)),
                    chain(sig("weft.test.add", 5, 5, q=q), sig("weft.test.inc", q=q), sig("weft.test.twice", q=q))).apply_async()
        for x in res.results:
            task_ids.append(x.id)
        check(res.get(timeout=T) == ["n=3", 22], "group of chains")

    @case
    def a_chain_ending_in_a_group_then_a_task_is_a_chord(q):
        res = chain(sig("weft.test.add", 1, 1, q=q), group(sig("weft.test.inc", q=q), sig("weft.test.twice", q=q)),
                    sig("weft.test.total", q=q), sig("weft.test.to_text", q=q)).apply_async()
        task_ids.append(res.id)
        check(res.get(timeout=T) == "n=7", "chain(add, group(inc, twice), total, to_text)")

    @case
    def a_chain_ending_in_a_group(q):
        res = chain(sig("weft.test.add", 2, 2, q=q), group(sig("weft.test.inc", q=q), sig("weft.test.twice", q=q))).apply_async()
        check(res.get(timeout=T) == [5, 8], "chain(add, group(inc, twice))")

    # ---- kwargs -------------------------------------------------------------------------------------

    @case
    def kwargs_fill_a_struct_parameter_by_member_name(q):
        res = app.send_task("weft.test.area", kwargs={"w": 3, "h": 7}, queue=q)
        task_ids.append(res.id)
        check(res.get(timeout=T) == 21, "area(w=3, h=7)")

    @case
    def kwargs_the_step_cannot_take_fail_the_task_saying_why(q):
        # Python binds kwargs by parameter name; a C++ step's parameters have none, so the C++
        # worker refuses them (never drops them) unless its one parameter is a described struct.
        res = app.send_task("weft.test.add", kwargs={"x": 1, "y": 2}, queue=q)
        # send_task: apply_async would refuse the unknown name before sending (the client knows area).
        typo = app.send_task("weft.test.area", kwargs={"w": 3, "hh": 7}, queue=q)
        task_ids.extend([res.id, typo.id])
        if q == PQ:
            check(res.get(timeout=T) == 3, "add(x=1, y=2) in Python")
            m = wait_meta(typo.id)
            check(m["status"] == "FAILURE" and m["result"]["exc_type"] == "TypeError", f"area(hh=7) in Python: {m}")
            return
        m = wait_meta(res.id)
        check(m["status"] == "FAILURE" and m["result"]["exc_type"] == "TypeError", f"meta {m}")
        text = m["result"]["exc_message"][0]
        check("weft.test.add" in text and "keyword arguments" in text and "x" in text, text)
        m = wait_meta(typo.id)
        text = m["result"]["exc_message"][0]
        check(m["status"] == "FAILURE" and "weft.test.area" in text and "hh" in text, f"meta {m}")
        check(sig("weft.test.add", 1, 1, q=q).apply_async().get(timeout=T) == 2, "the worker is gone")

    failures = 0
    before_keys = set(r.scan_iter(match="celery-task-meta-*"))
    try:
        for q in (CQ, PQ):  # both workers ready: a round trip each
            rt = sig("weft.test.add", 0, 0, q=q).apply_async()
            task_ids.append(rt.id)
            check(rt.get(timeout=T) == 0, f"round trip on {q}")
        failures += run_cases(cases, ONLY, logs=(cpp_log, py_log))
        check(py.poll() is None, "the Python worker died")
        check(cpp.poll() is None, "the C++ worker died")
        dead = r.llen(DEAD)
        check(dead == 0, f"{dead} message(s) dead-lettered: {r.lrange(DEAD, 0, 2)}")
    except Check as e:
        failures += 1
        print(f"FAIL setup: {e}")
    finally:
        failures = stop_all(failures, cpp_log, py_log, PASSWORD)
        harness.delete_run(r, task_ids, before_keys, RUN, [DEAD] + harness.queue_keys(CQ, PQ) +
                           list(r.scan_iter(match=MARK + ":*")))
    print(f"celery canvas: {len(cases) - failures if not ONLY else '-'} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
