"""Celery backend benchmarks, C++ and Python side by side on the harness's Redis (docs/celery.md).

Run: scripts/with-services --need redis python tests/celery/bench.py <celery_peer binary> [n] [rounds] [ceiling binary]

Every round runs each measure once, interleaved, and the script prints the medians over the rounds
(and each round's figures):
1. worker pace: n no-op tasks queued beforehand (built, pushed to a parked list and RENAMEd onto the
   worker's queue in one step), the worker's pace from its first to its last date_done; the C++
   worker (2 threads, prefetch multiplier 4 = Celery's default, and 64) against a Python worker
   (prefork, 2 processes, Celery's defaults; n/4 tasks, it is slow);
2. streaming: the same n tasks pushed (pipelined LPUSH, 1,000 a round trip) while the C++ worker
   (multiplier 4) consumes, end to end until every result is stored;
3. redis-benchmark LPUSH and RPOP (50 clients, its defaults; BRPOP has no redis-benchmark test and
   RPOP is the same work), and the C++ pace as a fraction of each; and the ceiling for Celery's
   protocol (bench.celery_ceiling, benchmarks/celery_ceiling.cpp): the same n tasks drained by the
   cheapest client that issues the worker's commands in the worker's batches (8 and 128 a fetch, for
   the multipliers 4 and 64 with 2 threads, on 2 connections), and the client's LPUSHes one and 100 a
   round trip, alone and with the run records weft's client writes beside each; each C++ rate as a
   fraction of its ceiling;
4. enqueue rate: weft::client<celery>::start() once per task, and start_many() 100 runs a call,
   against Python apply_async() (n/4);
5. once: median latency of a 3-step chain on the C++ worker, idle RSS of both workers; and in every
   round each worker's RSS under load, the peak of its process tree while it drains
   (benchmarks/procstat.py).
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
from procstat import PeakRss, tree_rss_kib  # noqa: E402

PEER = os.path.abspath(sys.argv[1])
# The ceiling client, built in the same tree (benchmarks/bench.celery_ceiling), or the 4th argument.
CEILING = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else os.path.join(
    os.path.dirname(PEER), "..", "..", "benchmarks", "bench.celery_ceiling")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
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


def wait_results(ids, deadline_s=600):
    keys = ["celery-task-meta-" + t for t in ids]
    deadline = time.monotonic() + deadline_s
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        while r.exists(*chunk) < len(chunk):
            if time.monotonic() > deadline:
                raise SystemExit("bench: results did not arrive in time")
            time.sleep(0.02)
    # The worker's own pace: from its first result to its last (date_done, written by the worker),
    # which leaves out this script's pushing and polling.
    done = []
    for start in range(0, len(keys), 1000):
        for raw in r.mget(keys[start:start + 1000]):
            done.append(datetime.datetime.fromisoformat(json.loads(raw)["date_done"]).timestamp())
        r.delete(*keys[start:start + 1000])
    span = max(done) - min(done)
    return (len(done) - 1) / span if span > 0 else float("inf")


def queue_up(queue, n):
    """n tasks queued at once: pushed to a parked list, then RENAMEd onto the queue."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    park = queue + ".park"
    pipe = r.pipeline(transaction=False)
    for i, tid in enumerate(ids):
        pipe.lpush(park, envelope("weft.bench.noop", tid, [i], queue))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    r.rename(park, queue)
    return ids


def drain(queue, n):
    """The pace of the worker serving `queue` on n tasks queued beforehand."""
    return wait_results(queue_up(queue, n))


def ceiling(*args):
    """bench.celery_ceiling's rate (benchmarks/celery_ceiling.cpp): Celery's commands per task from the
    cheapest client, the limit a worker or client on this Redis could reach."""
    out = subprocess.run([CEILING, *map(str, args)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"bench: {CEILING} {' '.join(map(str, args))} failed: {out.stderr[-1000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def ceiling_drain(queue, n, batch):
    """The same n tasks queued, drained by the ceiling client in the worker's batches (2 connections)."""
    ids = queue_up(queue, n)
    rate = ceiling("drain", URL, queue, n, batch, 2)
    keys = ["celery-task-meta-" + t for t in ids]
    for start in range(0, len(keys), 1000):
        r.delete(*keys[start:start + 1000])
    return rate


def stream(queue, n):
    """n tasks pushed while the worker consumes; end to end, from the first push to the last result."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    msgs = [envelope("weft.bench.noop", tid, [i], queue) for i, tid in enumerate(ids)]
    t0 = time.monotonic()
    pipe = r.pipeline(transaction=False)
    for i, m in enumerate(msgs):
        pipe.lpush(queue, m)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    wait_results(ids)
    return n / (time.monotonic() - t0)


def redis_benchmark(command, key):
    host, port, pw = os.environ["WEFT_REDIS_HOST"], os.environ["WEFT_REDIS_PORT"], os.environ.get("WEFT_REDIS_PASSWORD", "")
    out = subprocess.run(["redis-benchmark", "-h", host, "-p", port, "-a", pw, "-n", "200000", "-q", command, key]
                         + (["x"] if command == "lpush" else []), capture_output=True, text=True, timeout=600)
    for tok in out.stdout.replace("\r", "\n").split("\n"):
        if "requests per second" in tok:
            return float(tok.split(":")[1].split("requests")[0].strip())
    raise SystemExit("bench: no rate from redis-benchmark: " + out.stdout[-500:] + out.stderr[-500:])


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def main():
    tmp = tempfile.mkdtemp(prefix="weft-celery-bench-")
    pq, cq, cq64 = f"weft-bench-py-{RUN}", f"weft-bench-cpp-{RUN}", f"weft-bench-cpp64-{RUN}"
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
    rounds = []
    once = {}
    try:
        py = subprocess.Popen([sys.executable, "-m", "celery", "-A", "weft_bench_tasks", "worker", "--pool=prefork",
                               "--concurrency=2", "-Q", pq, "-n", f"bench-{RUN}@%h", "--without-heartbeat",
                               "--without-gossip", "--without-mingle", "-l", "WARNING"],
                              cwd=tmp, env=env, stdout=open(os.path.join(tmp, "py.log"), "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(py)
        cpp = subprocess.Popen([PEER, "worker", cq, "2", "3600", "60000", "4"], stdout=open(os.path.join(tmp, "cpp.log"), "w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(cpp)
        cpp64 = subprocess.Popen([PEER, "worker", cq64, "2", "3600", "60000", "64"],
                                 stdout=open(os.path.join(tmp, "cpp64.log"), "w"), stderr=subprocess.STDOUT,
                                 start_new_session=True)
        procs.append(cpp64)
        # All ready: one round trip each.
        warm = tasks.noop.apply_async((1,), queue=pq)
        assert warm.get(timeout=60) == 1
        r.delete("celery-task-meta-" + warm.id)
        for q in (cq, cq64):
            cw = str(uuid.uuid4())
            r.lpush(q, envelope("weft.bench.noop", cw, [1], q))
            wait_results([cw], 60)
        time.sleep(1)
        once["idle_rss_kb"] = {"cpp": tree_rss_kib(cpp.pid), "python_prefork_2": tree_rss_kib(py.pid)}

        key = f"weft-bench-rb-{RUN}"
        park_c, park_p = f"weft-bench-park-c-{RUN}", f"weft-bench-park-p-{RUN}"
        for k in range(ROUNDS):
            f = {}
            f["redis_lpush"] = redis_benchmark("lpush", key)
            with PeakRss(cpp.pid) as peak:
                f["cpp_pace_pf4"] = drain(cq, N)
            f["cpp_pf4_loaded_rss_kb"] = peak.kib
            with PeakRss(py.pid) as peak:
                f["python_pace"] = drain(pq, N // 4)
            f["python_loaded_rss_kb"] = peak.kib
            with PeakRss(cpp64.pid) as peak:
                f["cpp_pace_pf64"] = drain(cq64, N)
            f["cpp_pf64_loaded_rss_kb"] = peak.kib
            f["ceiling_pf4"] = ceiling_drain(f"weft-bench-ceiling-{RUN}", N, 8)
            f["ceiling_pf64"] = ceiling_drain(f"weft-bench-ceiling-{RUN}", N, 128)
            f["redis_rpop"] = redis_benchmark("rpop", key)
            r.delete(key)
            f["cpp_stream_pf4"] = stream(cq, N)
            out = subprocess.run([PEER, "bench-enqueue", park_c, str(N)], capture_output=True, text=True, timeout=600)
            f["cpp_enqueue"] = N / json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
            out = subprocess.run([PEER, "bench-enqueue", park_c, str(N), "100"], capture_output=True, text=True,
                                 timeout=600)
            f["cpp_enqueue_batch100"] = N / json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
            f["ceiling_enqueue"] = ceiling("enqueue", URL, park_c, N, 1)
            f["ceiling_enqueue_batch100"] = ceiling("enqueue", URL, park_c, N, 100)
            # weft's client also writes each run's record and index entry (describe, list): its own ceiling.
            f["ceiling_enqueue_records"] = ceiling("enqueue", URL, park_c, N, 1, "records")
            f["ceiling_enqueue_records_batch100"] = ceiling("enqueue", URL, park_c, N, 100, "records")
            t0 = time.monotonic()
            for i in range(N // 4):
                tasks.noop.apply_async((i,), queue=park_p)
            f["python_enqueue"] = (N // 4) / (time.monotonic() - t0)
            r.delete(park_c, park_p)
            f["load"] = os.getloadavg()[0]
            rounds.append(f)
            print(json.dumps({"round": k + 1, **{a: round(b, 2) for a, b in f.items()}}), flush=True)

        out = subprocess.run([PEER, "bench-chain", cq, "51"], capture_output=True, text=True, timeout=600)
        once["chain3_median_ms_cpp"] = json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
        for q in (pq, cq, cq64):
            r.delete(q)
    med = {k: median([f[k] for f in rounds]) for k in rounds[0]}
    ratios = {
        "worker_cpp_pf4_over_python": median([f["cpp_pace_pf4"] / f["python_pace"] for f in rounds]),
        "enqueue_cpp_over_python": median([f["cpp_enqueue"] / f["python_enqueue"] for f in rounds]),
        "enqueue_cpp_batch100_over_python": median([f["cpp_enqueue_batch100"] / f["python_enqueue"] for f in rounds]),
    }
    for pf in ("pf4", "pf64"):
        for rb in ("lpush", "rpop"):
            ratios[f"cpp_pace_{pf}_over_redis_{rb}"] = median([f[f"cpp_pace_{pf}"] / f[f"redis_{rb}"] for f in rounds])
    for a, b in (("cpp_pace_pf4", "ceiling_pf4"), ("cpp_pace_pf64", "ceiling_pf64"), ("cpp_enqueue", "ceiling_enqueue"),
                 ("cpp_enqueue_batch100", "ceiling_enqueue_batch100"), ("cpp_enqueue", "ceiling_enqueue_records"),
                 ("cpp_enqueue_batch100", "ceiling_enqueue_records_batch100")):
        ratios[f"{a}_over_{b}"] = median([f[a] / f[b] for f in rounds])
    ratios["loaded_rss_python_over_cpp_pf4"] = median([f["python_loaded_rss_kb"] / f["cpp_pf4_loaded_rss_kb"] for f in rounds])
    ratios["cpp_stream_pf4_over_redis_lpush"] = median([f["cpp_stream_pf4"] / f["redis_lpush"] for f in rounds])
    print(json.dumps({"n": N, "rounds": ROUNDS, "medians": med, "median_ratios": ratios, **once}, indent=1))


if __name__ == "__main__":
    main()
