"""Throughput and idle RSS of weft's C++ Hatchet worker against the Python hatchet-sdk worker, on the
same engine, with no-op tasks, side by side in one run.

    scripts/with-services --need hatchet python benchmarks/hatchet_bench.py build-hatchet/benchmarks/bench.hatchet_peer

Both workers serve the same workflow, hx-bench (one task `noop` returning its input), with the same
number of slots; only one of them is connected at a time. The load is the same for both: the C++
client (`bench.hatchet_peer bench RUNS PARALLEL`: PARALLEL threads, each triggering a run and waiting
for its result) — so a round measures runs/s end to end through the engine with that worker. Rounds
alternate (C++, Python, C++, ...); the script prints each round and the medians. Worker CPU: user +
system time of the worker's process tree during the timed runs, per run. Idle RSS: the
worker's process tree (the Python SDK runs its action listener in a child process), 3 s after it is
ready and before any load. Options: --rounds N (3), --runs N (300), --parallel N (16), --slots N (16).
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


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        out.append(p)
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU time of the process tree, in seconds."""
    ticks = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_kib(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


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
    a = ap.parse_args()
    env = hatchet_smoke.hatchet_env()
    rate: dict[str, list[float]] = {"weft": [], "python": []}
    rss: dict[str, list[int]] = {"weft": [], "python": []}
    cpu: dict[str, list[float]] = {"weft": [], "python": []}   # worker CPU ms per run
    for r in range(a.rounds):
        for kind in ("weft", "python"):
            proc = start_worker(kind, a.peer, a.slots, env)
            try:
                time.sleep(3)
                rss[kind].append(tree_rss_kib(proc.pid))
                # Warm-up: the client's registration and the first assignment.
                subprocess.run([a.peer, "bench", "5", "1"], env=env, check=True, capture_output=True, timeout=120)
                cpu0 = tree_cpu_s(proc.pid)
                out = subprocess.run([a.peer, "bench", str(a.runs), str(a.parallel)], env=env, check=True,
                                     capture_output=True, text=True, timeout=600).stdout
                res = json.loads(out.strip().splitlines()[-1])
                if res["wrong"]:
                    sys.exit(f"hatchet bench: {res['wrong']} wrong results with the {kind} worker")
                rate[kind].append(res["runs"] / res["seconds"])
                cpu[kind].append((tree_cpu_s(proc.pid) - cpu0) * 1000 / res["runs"])
                print(f"round {r + 1} {kind:6}: {res['runs']} runs in {res['seconds']:.2f} s = "
                      f"{rate[kind][-1]:.1f} runs/s; worker CPU {cpu[kind][-1]:.2f} ms/run; idle RSS {rss[kind][-1] / 1024:.1f} MiB", flush=True)
            finally:
                hatchet_smoke.stop_worker(proc)
            time.sleep(6)  # the stopped worker's heartbeat expires before the next one serves
    mw, mp = statistics.median(rate["weft"]), statistics.median(rate["python"])
    print(f"median throughput: weft {mw:.1f} runs/s, python {mp:.1f} runs/s, ratio {mw / mp:.2f}x")
    cw, cp = statistics.median(cpu["weft"]), statistics.median(cpu["python"])
    print(f"median worker CPU per run: weft {cw:.2f} ms, python {cp:.2f} ms, ratio {cp / cw:.1f}x")
    print(f"median idle RSS: weft {statistics.median(rss['weft']) / 1024:.1f} MiB, "
          f"python {statistics.median(rss['python']) / 1024:.1f} MiB (process tree)")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
