"""Records real Celery wire bytes as fixtures for the codec unit tests (tests/celery/fixtures/).

Run: scripts/with-services --need redis python tests/celery/capture_fixtures.py
It publishes with Python apply_async to a queue nobody consumes, takes the raw envelopes off Redis,
runs a Python worker for result metas (success, failure, unknown task), its remote-control reply and
its events, and deletes every key it made.
"""
import json, os, signal, subprocess, sys, tempfile, textwrap, time, uuid
import redis

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "fixtures")
url = os.environ["WEFT_REDIS_URL"]
r = redis.Redis.from_url(url)
run = uuid.uuid4().hex[:10]
queue = f"weft-capture-{run}"

with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "capture_tasks.py"), "w") as f:
        f.write(textwrap.dedent("""
            import os
            from celery import Celery
            app = Celery("capture", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
            app.conf.update(result_expires=600, broker_connection_retry_on_startup=True)

            @app.task(name="etl.add")
            def add(x, y):
                return x + y

            @app.task(name="etl.scale")
            def scale(x, k):
                return x * k

            @app.task(name="etl.tsum")
            def tsum(xs):
                return sum(xs)

            @app.task(name="etl.fail")
            def fail(msg):
                raise ValueError(msg)
        """))
    sys.path.insert(0, tmp)
    from capture_tasks import app, add, scale, tsum, fail
    from celery import chain, group, chord

    def take(name):
        raw = r.rpop(queue)
        assert raw is not None, f"nothing queued for {name}"
        with open(os.path.join(out, name + ".json"), "wb") as f:
            f.write(raw)
        return json.loads(raw)

    add.apply_async((2, 3), queue=queue)
    take("envelope_simple")
    add.apply_async((2, 3), queue=queue, priority=5, countdown=30, expires=600, time_limit=10, soft_time_limit=5)
    # priority 5 goes to the "\x06\x163" list
    raw = r.rpop(queue + "\x06\x163")
    assert raw is not None, "priority 5 message not on the \\x06\\x163 list"
    open(os.path.join(out, "envelope_priority_eta.json"), "wb").write(raw)
    chain(add.s(2, 3).set(queue=queue), scale.s(10).set(queue=queue), tsum.si([1, 2]).set(queue=queue)).apply_async()
    take("envelope_chain")
    res = chord([add.s(1, 1).set(queue=queue), add.s(2, 2).set(queue=queue)], tsum.s().set(queue=queue)).apply_async()
    take("envelope_chord_header0")
    take("envelope_chord_header1")
    gid = res.parent.id if res.parent is not None else None
    for k in r.scan_iter("celery-taskset-meta-*"):
        r.delete(k)

    # A remote-control revoke, as app.control.revoke() broadcasts it on the pidbox fanout.
    sub = r.pubsub()
    sub.subscribe("/0.celery.pidbox")
    sub.get_message(timeout=1)
    app.control.revoke("11111111-2222-4333-8444-555555555555")
    deadline = time.time() + 5
    while time.time() < deadline:
        msg = sub.get_message(timeout=0.5)
        if msg and msg["type"] == "message":
            open(os.path.join(out, "pidbox_revoke.json"), "wb").write(msg["data"])
            break
    else:
        raise SystemExit("no revoke broadcast seen")
    # A call that wants replies, as app.control.inspect(destination=[...]).ping() sends it.
    app.control.broadcast("ping", reply=True, destination=[f"cap-{run}@nowhere"], timeout=0.5)
    deadline = time.time() + 5
    while time.time() < deadline:
        msg = sub.get_message(timeout=0.5)
        if msg and msg["type"] == "message" and b"reply_to" in __import__("base64").b64decode(json.loads(msg["data"])["body"]):
            open(os.path.join(out, "pidbox_ping.json"), "wb").write(msg["data"])
            break
    else:
        raise SystemExit("no ping broadcast seen")
    sub.close()

    # The worker's events, on the fanout Celery makes of celeryev on Redis.
    events = r.pubsub()
    events.psubscribe("/0.celeryev/*")
    events.get_message(timeout=1)

    # Result metas from a real worker.
    env = dict(os.environ, PYTHONPATH=tmp)
    log = open(os.path.join(tmp, "w.log"), "w")
    w = subprocess.Popen([sys.executable, "-m", "celery", "-A", "capture_tasks", "worker", "--pool=solo",
                          "-Q", queue, "-n", f"cap-{run}@%h", "-E", "--without-gossip",
                          "--without-mingle", "-l", "INFO"], cwd=tmp, env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    ids = []
    try:
        ok = add.apply_async((20, 22), queue=queue); ids.append(ok.id)
        assert ok.get(timeout=30) == 42
        open(os.path.join(out, "meta_success.json"), "wb").write(r.get("celery-task-meta-" + ok.id))
        bad = fail.apply_async(("bad thing",), queue=queue); ids.append(bad.id)
        try:
            bad.get(timeout=30)
        except ValueError:
            pass
        open(os.path.join(out, "meta_failure.json"), "wb").write(r.get("celery-task-meta-" + bad.id))
        unk = app.send_task("etl.nope", (1,), queue=queue); ids.append(unk.id)
        deadline = time.time() + 30
        while r.get("celery-task-meta-" + unk.id) is None and time.time() < deadline:
            time.sleep(0.1)
        open(os.path.join(out, "meta_not_registered.json"), "wb").write(r.get("celery-task-meta-" + unk.id))

        # Its events so far: the first worker-heartbeat, and the task events of add(20, 22).
        wanted = {"worker.heartbeat": "event_worker_heartbeat.json", "task.multi": "event_task_multi.json",
                  "task.succeeded": "event_task_succeeded.json"}
        deadline = time.time() + 10
        while time.time() < deadline and "worker.heartbeat" in wanted:
            msg = events.get_message(timeout=0.5)
            if msg and msg["type"] == "pmessage":
                key = msg["channel"].decode().split("/", 2)[-1]
                if key in wanted:
                    open(os.path.join(out, wanted.pop(key)), "wb").write(msg["data"])
        events.close()

        # Its reply to a ping, where kombu routes it: a reply queue bound as app.control binds its own.
        oid = f"cap-{run}-oid"
        binding = f"{oid}\x06\x16\x06\x16{oid}.reply.celery.pidbox"
        r.sadd("_kombu.binding.reply.celery.pidbox", binding)
        try:
            ping = json.loads(open(os.path.join(out, "pidbox_ping.json"), "rb").read())
            body = json.loads(__import__("base64").b64decode(ping["body"]))
            body.update(destination=[f"cap-{run}@{os.uname().nodename}"],
                        reply_to={"exchange": "reply.celery.pidbox", "routing_key": oid})
            ping["body"] = __import__("base64").b64encode(json.dumps(body).encode()).decode()
            r.publish("/0.celery.pidbox", json.dumps(ping))
            got = r.brpop(f"{oid}.reply.celery.pidbox", timeout=10)
            assert got, "no reply from the Python worker"
            open(os.path.join(out, "pidbox_reply_ping.json"), "wb").write(got[1])
        finally:
            r.srem("_kombu.binding.reply.celery.pidbox", binding)
            r.delete(f"{oid}.reply.celery.pidbox")
    finally:
        os.kill(w.pid, signal.SIGTERM)
        w.wait(timeout=20)
        for i in ids:
            r.delete("celery-task-meta-" + i)
        for k in [queue] + [queue + "\x06\x16" + p for p in "369"]:
            r.delete(k)
    print("captured into", out)
