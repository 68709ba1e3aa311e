"""Throughput, CPU and idle RSS of weft's C++ Hatchet worker against the Python hatchet-sdk worker, on
the same engine, with no-op tasks, side by side in one run.

    scripts/with-services --need hatchet python benchmarks/hatchet_bench.py \
        build-hatchet/benchmarks/bench.hatchet_peer --rounds 3 --runs 500 --slots 64 --shape drain

Both workers serve the same workflow, hx-bench (one task `noop` returning its input), with the same
number of slots; only one of them is connected at a time; rounds alternate (C++, Python, C++, ...)
and the script prints each round and the medians. Two shapes:

  drain (default)  measures the worker's side of the engine: with no worker connected, the C++ client
                   (`bench.hatchet_peer enqueue RUNS PARALLEL`) triggers RUNS runs, which stay queued;
                   then the worker starts and drains them. The time is the engine's own record
                   (v1_task_events_olap in its database, read with psql): from the first task's
                   SENT_TO_WORKER event to the row of the last FINISHED event. Neither run creation
                   nor result polling is in it, and the Python SDK's slower start-up is not either.
  trigger          end to end: the worker is connected, the C++ client (`bench.hatchet_peer bench
                   RUNS PARALLEL`) triggers all runs (PARALLEL threads), then waits for each result
                   (GetRunDetails polled every 100 ms); runs / time from the first trigger to the last
                   result.

CPU per run: user + system time, during the timed part, of the worker's process tree (the Python SDK
runs its action listener in a child process), of the hatchet-engine process and of all postgres
processes (the harness's postgres; only the engine uses it in a normal run), and how busy the whole
machine was (cores, from /proc/stat) — the machine is shared, so the load average is printed too.
Idle RSS (trigger shape): the worker's process tree 3 s after it is ready, before any load. RSS under
load (both shapes): the tree's peak while it serves the timed part (benchmarks/procstat.py).
Options: --shape drain|trigger, --rounds N (3), --runs N (300), --parallel N (16; trigger threads),
--slots N (16).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "harness"))
import hatchet_smoke  # noqa: E402
from procstat import PeakRss, tree_cpu_s, tree_rss_kib  # noqa: E402

READY_S = 90


def python_worker(slots: int) -> None:
    from hatchet_sdk import Context, Hatchet
    hatchet = Hatchet()
    wf = hatchet.workflow(name="hx-bench")

    @wf.task()
    def noop(input, ctx: Context) -> dict:
        # weft's envelope for a non-object output; the C++ client decodes it as int.
        return {"$value": ctx.workflow_input["$args"][0]}

    hatchet.worker("weft-bench-py", slots=slots, workflows=[wf]).start()

def start_worker(kind: str, peer: str, slots: int, env: dict[str, str]):
    log = open(f"/tmp/hatchet-bench-{kind}.log", "wb")
    if kind == "weft":
        argv = [peer, "worker", "bench", str(slots), "weft-bench-cpp"]
        wenv = env
    else:
        port = hatchet_smoke.free_port()
        argv = [sys.executable, os.path.abspath(__file__), "--python-worker", str(slots)]
        wenv = dict(env, HATCHET_CLIENT_WORKER_HEALTHCHECK_ENABLED="true",
                    HATCHET_CLIENT_WORKER_HEALTHCHECK_PORT=str(port),
                    HATCHET_CLIENT_WORKER_HEALTHCHECK_BIND_ADDRESS="127.0.0.1")
    proc = subprocess.Popen(argv, env=wenv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"hatchet bench: the {kind} worker exited ({proc.returncode}); see {log.name}")
        if kind == "weft":
            with open(log.name, errors="replace") as f:
                if any(line.startswith("ready ") for line in f):
                    return proc
        else:
            import urllib.request
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return proc
            except OSError:
                pass
        time.sleep(0.2)
    hatchet_smoke.stop_worker(proc)
    sys.exit(f"hatchet bench: the {kind} worker was not ready within {READY_S}s; see {log.name}")


def psql(sql: str) -> list[list[str]]:
    """Rows of a read-only query on the engine's own database (psql, unaligned, tab-separated)."""
    out = subprocess.run(["psql", "-X", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          os.environ["WEFT_POSTGRES_HATCHET_URL"], "-c", sql],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def cpu_s(pids: list[int]) -> float:
    """User + system CPU time of the processes, with that of their exited (reaped) children: a postgres
    backend that ends during a round is counted in the postmaster's cutime/cstime."""
    ticks = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in fields[11:15])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def others_cpu() -> dict[str, float]:
    return {"engine": cpu_s(pids_named("hatchet-engine")), "postgres": cpu_s(pids_named("postgres")),
            "machine": machine_cpu_s()}


def drain_round(kind: str, a, env: dict[str, str]) -> dict:
    """Queue a.runs runs with no worker connected, then start the worker and time the drain from the
    engine's own records: first SENT_TO_WORKER event to the last FINISHED event's row (v1_task_events_olap)."""
    t0 = psql("select now()")[0][0]
    res = json.loads(subprocess.run([a.peer, "enqueue", str(a.runs), str(a.parallel)], env=env, check=True,
                                    capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1])
    where = f"t.action_id = 'hx-bench:noop' and t.inserted_at >= '{t0}'"
    for _ in range(100):  # the engine writes its OLAP rows in batches, shortly after the triggers
        queued = int(psql(f"select count(*) from v1_tasks_olap t where {where}")[0][0])
        if queued >= a.runs:
            break
        time.sleep(0.2)
    proc = start_worker(kind, a.peer, a.slots, env)
    try:
        c0, w0, wcpu0 = others_cpu(), time.monotonic(), tree_cpu_s(proc.pid)
        deadline = time.monotonic() + 240
        with PeakRss(proc.pid) as peak:
            while True:
                done = int(psql(f"select count(*) from v1_tasks_olap t where {where} and t.readable_status = 'COMPLETED'")[0][0])
                if done >= a.runs or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        wcpu = tree_cpu_s(proc.pid) - wcpu0
        c1, w1 = others_cpu(), time.monotonic()
    finally:
        hatchet_smoke.stop_worker(proc)
    if done < a.runs:
        sys.exit(f"hatchet bench: only {done} of {a.runs} queued runs completed with the {kind} worker in 240 s")
    first, last = psql(f"""select extract(epoch from min(e.event_timestamp) filter (where e.event_type = 'SENT_TO_WORKER')),
                                  extract(epoch from max(e.inserted_at) filter (where e.event_type = 'FINISHED'))
                           from v1_task_events_olap e join v1_tasks_olap t
                             on t.id = e.task_id and t.inserted_at = e.task_inserted_at where {where}""")[0]
    seconds = float(last) - float(first)
    wall = w1 - w0
    return {"runs": a.runs, "queued": queued, "enqueue_s": res["seconds"], "seconds": seconds,
            "rate": a.runs / seconds, "worker_ms": wcpu * 1000 / a.runs,
            "engine_ms": (c1["engine"] - c0["engine"]) * 1000 / a.runs,
            "postgres_ms": (c1["postgres"] - c0["postgres"]) * 1000 / a.runs,
            "machine_busy": (c1["machine"] - c0["machine"]) / wall, "wall": wall, "peak_rss": peak.kib}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--python-worker":
        python_worker(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("peer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--shape", choices=("trigger", "drain"), default="drain")
    a = ap.parse_args()
    env = hatchet_smoke.hatchet_env()
    print(f"shape {a.shape}: {a.runs} runs, {a.parallel} trigger threads, {a.slots} slots; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rate: dict[str, list[float]] = {"weft": [], "python": []}
    rss: dict[str, list[int]] = {"weft": [], "python": []}
    peak: dict[str, list[int]] = {"weft": [], "python": []}   # tree RSS under load
    cpu: dict[str, list[float]] = {"weft": [], "python": []}   # worker CPU ms per run
    for r in range(a.rounds):
        for kind in ("weft", "python"):
            if a.shape == "drain":
                d = drain_round(kind, a, env)
                rate[kind].append(d["rate"])
                cpu[kind].append(d["worker_ms"])
                peak[kind].append(d["peak_rss"])
                print(f"round {r + 1} {kind:6}: {d['queued']} queued (in {d['enqueue_s']:.1f} s), drained in "
                      f"{d['seconds']:.2f} s = {d['rate']:.1f} runs/s; CPU ms/run: worker {d['worker_ms']:.2f}, "
                      f"engine {d['engine_ms']:.2f}, postgres {d['postgres_ms']:.2f}; machine busy "
                      f"{d['machine_busy']:.2f} of {os.cpu_count()} cores over {d['wall']:.1f} s; "
                      f"RSS under load {d['peak_rss'] / 1024:.1f} MiB; load {os.getloadavg()[0]:.1f}", flush=True)
                time.sleep(6)
                continue
            proc = start_worker(kind, a.peer, a.slots, env)
            try:
                time.sleep(3)
                rss[kind].append(tree_rss_kib(proc.pid))
                # Warm-up: the client's registration and the first assignment.
                subprocess.run([a.peer, "bench", "5", "1"], env=env, check=True, capture_output=True, timeout=120)
                cpu0, c0, w0 = tree_cpu_s(proc.pid), others_cpu(), time.monotonic()
                with PeakRss(proc.pid) as p:
                    out = subprocess.run([a.peer, "bench", str(a.runs), str(a.parallel)], env=env, check=True,
                                         capture_output=True, text=True, timeout=600).stdout
                peak[kind].append(p.kib)
                c1, w1 = others_cpu(), time.monotonic()
                res = json.loads(out.strip().splitlines()[-1])
                if res["wrong"]:
                    sys.exit(f"hatchet bench: {res['wrong']} wrong results with the {kind} worker")
                rate[kind].append(res["runs"] / res["seconds"])
                cpu[kind].append((tree_cpu_s(proc.pid) - cpu0) * 1000 / res["runs"])
                n = res["runs"]
                print(f"round {r + 1} {kind:6}: {n} runs in {res['seconds']:.2f} s = "
                      f"{rate[kind][-1]:.1f} runs/s; CPU ms/run: worker {cpu[kind][-1]:.2f}, "
                      f"engine {(c1['engine'] - c0['engine']) * 1000 / n:.2f}, "
                      f"postgres {(c1['postgres'] - c0['postgres']) * 1000 / n:.2f}; machine busy "
                      f"{(c1['machine'] - c0['machine']) / (w1 - w0):.2f} of {os.cpu_count()} cores; "
                      f"idle RSS {rss[kind][-1] / 1024:.1f} MiB, under load {peak[kind][-1] / 1024:.1f} MiB; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                hatchet_smoke.stop_worker(proc)
            time.sleep(6)  # the stopped worker's heartbeat expires before the next one serves
    mw, mp = statistics.median(rate["weft"]), statistics.median(rate["python"])
    print(f"median throughput: weft {mw:.1f} runs/s, python {mp:.1f} runs/s, ratio {mw / mp:.2f}x")
    cw, cp = statistics.median(cpu["weft"]), statistics.median(cpu["python"])
    print(f"median worker CPU per run: weft {cw:.2f} ms, python {cp:.2f} ms, ratio {cp / cw:.1f}x")
    if rss["weft"]:
        print(f"median idle RSS: weft {statistics.median(rss['weft']) / 1024:.1f} MiB, "
              f"python {statistics.median(rss['python']) / 1024:.1f} MiB (process tree)")
    print(f"median RSS under load (peak, sampled every 50 ms): weft {statistics.median(peak['weft']) / 1024:.1f} MiB, "
          f"python {statistics.median(peak['python']) / 1024:.1f} MiB (process tree)")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
