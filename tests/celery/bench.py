"""Celery backend benchmarks, C++ and Python side by side on the harness's Redis (docs/celery.md).

Run: scripts/with-services --need redis python tests/celery/bench.py <celery_peer binary> [n]

1. worker throughput: n no-op tasks pushed (pipelined LPUSH) at an idle worker: the worker's pace
   from its first to its last date_done, and end to end until every result is stored; the C++ worker
   (2 threads) against a Python worker (prefork, 2 processes);
2. enqueue rate: n runs via weft::client<celery>::start() against n Python apply_async() calls;
3. redis-benchmark LPUSH and RPOP (BRPOP has no redis-benchmark test; RPOP is the same work);
4. median latency of a 3-step chain on the C++ worker, idle RSS of both workers.
"""
import base64
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import redis

PEER = os.path.abspath(sys.argv[1])
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
URL = os.environ["WEFT_REDIS_URL"]
r = redis.Redis.from_url(URL)
RUN = uuid.uuid4().hex[:8]


def envelope(task, tid, args, queue):
    body = base64.b64encode(json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None,
                                                    "chord": None}]).encode()).decode()
    return json.dumps({"body": body, "content-encoding": "utf-8", "content-type": "application/json",
                       "headers": {"lang": "py", "task": task, "id": tid, "shadow": None, "eta": None,
                                   "expires": None, "group": None, "group_index": None, "retries": 0,
                                   "timelimit": [None, None], "root_id": tid, "parent_id": None,
                                   "argsrepr": "", "kwargsrepr": "{}", "origin": "bench", "ignore_result": False,
                                   "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}},
                       "properties": {"correlation_id": tid, "reply_to": "", "delivery_mode": 2,
                                      "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                                      "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}})


def rss_kb(pid):
    total = 0
    out = subprocess.run(["ps", "-o", "rss=", "--pid", str(pid), "--ppid", str(pid)], capture_output=True, text=True)
    for line in out.stdout.split():
        total += int(line)
    return total


def drain(queue, ids):
    pipe = r.pipeline(transaction=False)
    t0 = time.monotonic()
    for i, tid in enumerate(ids):
        pipe.lpush(queue, envelope("weft.bench.noop", tid, [i], queue))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    keys = ["celery-task-meta-" + t for t in ids]
    pending = 0
    deadline = time.monotonic() + 600
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        while r.exists(*chunk) < len(chunk):
            if time.monotonic() > deadline:
                raise SystemExit("bench: results did not arrive within 600 s")
            time.sleep(0.01)
    secs = time.monotonic() - t0
    # The worker's own pace: from its first result to its last (date_done, written by the worker),
    # which leaves out this script's enqueueing and polling.
    done = []
    for start in range(0, len(keys), 1000):
        for raw in r.mget(keys[start:start + 1000]):
            done.append(datetime.datetime.fromisoformat(json.loads(raw)["date_done"]).timestamp())
        r.delete(*keys[start:start + 1000])
    span = max(done) - min(done)
    return secs, (len(done) - 1) / span if span > 0 else float("inf")


def main():
    tmp = tempfile.mkdtemp(prefix="weft-celery-bench-")
    pq, cq = f"weft-bench-py-{RUN}", f"weft-bench-cpp-{RUN}"
    with open(os.path.join(tmp, "weft_bench_tasks.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import os
            from celery import Celery
            app = Celery("weft_bench", broker=os.environ["WEFT_REDIS_URL"], backend=os.environ["WEFT_REDIS_URL"])
            app.conf.update(result_expires=600, task_default_queue={pq!r}, broker_connection_retry_on_startup=True)

            @app.task(name="weft.bench.noop")
            def noop(x):
                return x
        """))
    sys.path.insert(0, tmp)
    import weft_bench_tasks as tasks  # noqa: E402
    env = dict(os.environ, PYTHONPATH=tmp)
    procs = []
    results = {}
    try:
        py_log = os.path.join(tmp, "py.log")
        py = subprocess.Popen([sys.executable, "-m", "celery", "-A", "weft_bench_tasks", "worker", "--pool=prefork",
                               "--concurrency=2", "-Q", pq, "-n", f"bench-{RUN}@%h", "--without-heartbeat",
                               "--without-gossip", "--without-mingle", "-l", "WARNING"],
                              cwd=tmp, env=env, stdout=open(py_log, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
        procs.append(py)
        cpp_log = os.path.join(tmp, "cpp.log")
        cpp = subprocess.Popen([PEER, "worker", cq, "2"], stdout=open(cpp_log, "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        procs.append(cpp)
        # Both ready: one round trip each.
        warm = tasks.noop.apply_async((1,), queue=pq)
        assert warm.get(timeout=60) == 1
        r.delete("celery-task-meta-" + warm.id)
        cw = str(uuid.uuid4())
        r.lpush(cq, envelope("weft.bench.noop", cw, [1], cq))
        deadline = time.monotonic() + 60
        while not r.exists("celery-task-meta-" + cw):
            assert time.monotonic() < deadline, "the C++ worker did not answer"
            time.sleep(0.05)
        r.delete("celery-task-meta-" + cw)
        time.sleep(1)
        results["idle_rss_kb"] = {"cpp": rss_kb(cpp.pid), "python_prefork_2": rss_kb(py.pid)}

        secs, pace = drain(cq, [str(uuid.uuid4()) for _ in range(N)])
        results["worker_tasks_per_s"] = {"cpp_2_threads": pace}
        results["end_to_end_tasks_per_s"] = {"cpp_2_threads": N / secs}
        secs, pace = drain(pq, [str(uuid.uuid4()) for _ in range(N)])
        results["worker_tasks_per_s"]["python_prefork_2"] = pace
        results["end_to_end_tasks_per_s"]["python_prefork_2"] = N / secs

        # Enqueue: C++ client.start() loop vs Python apply_async loop, into parked queues.
        park_c, park_p = f"weft-bench-park-c-{RUN}", f"weft-bench-park-p-{RUN}"
        out = subprocess.run([PEER, "bench-enqueue", park_c, str(N)], capture_output=True, text=True, timeout=600)
        c = json.loads(out.stdout.strip().splitlines()[-1])
        t0 = time.monotonic()
        for i in range(N):
            tasks.noop.apply_async((i,), queue=park_p)
        py_secs = time.monotonic() - t0
        results["enqueue_per_s"] = {"cpp_client_start": N / c["seconds"], "python_apply_async": N / py_secs}
        r.delete(park_c, park_p)

        # The physical limit: redis-benchmark with its defaults (50 clients, no pipelining).
        host, port, pw = os.environ["WEFT_REDIS_HOST"], os.environ["WEFT_REDIS_PORT"], os.environ.get("WEFT_REDIS_PASSWORD", "")
        key = f"weft-bench-rb-{RUN}"
        rb = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-a", pw, "-n", "200000",
                             "-q", "lpush", key, "x"], capture_output=True, text=True, timeout=600)
        rb2 = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-a", pw, "-n", "200000",
                              "-q", "rpop", key], capture_output=True, text=True, timeout=600)
        r.delete(key)

        def rate(text):
            for tok in text.replace("\r", "\n").split("\n"):
                if "requests per second" in tok:
                    return float(tok.split(":")[1].split("requests")[0].strip())
            return None
        results["redis_benchmark_per_s"] = {"lpush": rate(rb.stdout), "rpop": rate(rb2.stdout)}

        out = subprocess.run([PEER, "bench-chain", cq, "51"], capture_output=True, text=True, timeout=600)
        results["chain3_median_ms_cpp"] = json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
        for q in (pq, cq):
            r.delete(q)
    w = results["worker_tasks_per_s"]
    e = results["enqueue_per_s"]
    results["ratios"] = {
        "worker_cpp_over_python": w["cpp_2_threads"] / w["python_prefork_2"],
        "enqueue_cpp_over_python": e["cpp_client_start"] / e["python_apply_async"],
        "worker_cpp_over_redis_lpush": w["cpp_2_threads"] / (results["redis_benchmark_per_s"]["lpush"] or 1),
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
