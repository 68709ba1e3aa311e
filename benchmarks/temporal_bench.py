"""weft's Temporal workers against the Python SDK's, side by side on the same dev server.

    scripts/with-services --need temporal,python python benchmarks/temporal_bench.py \
        --weft-worker build-temporal/benchmarks/bench.temporal_worker [--rounds 3] [--activities 1000]

1. Activity throughput: a Python workflow (the same driver for both) runs --activities no-op
   activities "weft_test.noop" at once, split over 4 workflow runs, on a task queue served either by
   the weft C++ activity worker or by a Python SDK activity worker (each in its own process, both with
   the Python SDK's default limits: 5 pollers, 100 concurrent activities). Activities per second,
   median of --rounds, alternating the two; and the CPU time each worker process spent per activity
   (from /proc), which is the worker's own cost when the server sets the pace.
2. End-to-end latency of a 10-step DAG: weft_chain10 (weft workflow worker + C++ steps) against the
   same ten sequential activities written as a Python SDK workflow (Python workflow and activities),
   started and awaited by the same Python client, one run at a time; median over --latency-runs.
3. Idle RSS of both worker processes, read from /proc after they started and before any work.

Prints one table; exits with os._exit (gRPC threads can abort CPython's shutdown).
"""
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@activity.defn(name="weft_test.noop")
async def noop(n: int) -> int:
    return n


@activity.defn(name="weft_test.bump")
async def bump(n: int) -> int:
    return n + 1


@workflow.defn(name="BenchActivities")
class BenchActivities:
    """Runs n no-op activities at once on the given queue."""

    @workflow.run
    async def run(self, n: int, queue: str) -> int:
        results = await asyncio.gather(*[
            workflow.execute_activity("weft_test.noop", i, task_queue=queue, start_to_close_timeout=timedelta(seconds=60))
            for i in range(n)])
        return len(results)


@workflow.defn(name="PyChain10")
class PyChain10:
    """weft_chain10 written with the Python SDK: ten sequential activities."""

    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(10):
            n = await workflow.execute_activity(bump, n, start_to_close_timeout=timedelta(seconds=60))
        return n


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    """User + system CPU time the process used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_file(path, seconds=60):
    end = time.time() + seconds
    while not os.path.exists(path):
        if time.time() > end:
            raise RuntimeError(f"{path} did not appear within {seconds} s")
        time.sleep(0.05)


async def py_worker_main(args):
    """The Python SDK peer: PyChain10 and the activities, in their own process."""
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    async with Worker(client, task_queue=args.queue, workflows=[PyChain10], activities=[noop, bump],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
        await asyncio.sleep(args.max_seconds)


def start_peers(args, cxx_queue, py_queue):
    tmp = tempfile.gettempdir()
    cxx_ready, py_ready = os.path.join(tmp, cxx_queue + ".ready"), os.path.join(tmp, py_queue + ".ready")
    cxx = subprocess.Popen([args.weft_worker, "--task-queue", cxx_queue, "--ready-file", cxx_ready, "--max-seconds", "900",
                            "--concurrency", "100", "--pollers", "5"], stderr=subprocess.DEVNULL)
    py = subprocess.Popen([sys.executable, __file__, "py-worker", "--queue", py_queue, "--ready-file", py_ready,
                           "--max-seconds", "900"])
    wait_file(cxx_ready)
    wait_file(py_ready)
    os.remove(cxx_ready)
    os.remove(py_ready)
    return cxx, py


async def throughput(client, driver_queue, queue, total):
    runs = 4
    t0 = time.perf_counter()
    handles = [await client.start_workflow("BenchActivities", args=[total // runs, queue], id=f"bench-tp-{uuid.uuid4()}",
                                           task_queue=driver_queue) for _ in range(runs)]
    done = sum([await h.result() for h in handles])
    elapsed = time.perf_counter() - t0
    assert done == total // runs * runs
    return done / elapsed


async def latency(client, wf_type, queue, runs):
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        r = await client.execute_workflow(wf_type, i, id=f"bench-lat-{uuid.uuid4()}", task_queue=queue)
        out.append(time.perf_counter() - t0)
        assert r == i + 10, r
    return out


async def bench_main(args):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    cxx_queue, py_queue, driver_queue = (f"bench-{k}-{uuid.uuid4()}" for k in ("weft", "py", "driver"))
    cxx, py = start_peers(args, cxx_queue, py_queue)
    try:
        await asyncio.sleep(3)
        idle = {"weft": rss_kib(cxx.pid), "python": rss_kib(py.pid)}
        async with Worker(client, task_queue=driver_queue, workflows=[BenchActivities],
                          workflow_runner=UnsandboxedWorkflowRunner(), max_cached_workflows=100):
            await throughput(client, driver_queue, cxx_queue, 200)  # warm-up, both
            await throughput(client, driver_queue, py_queue, 200)
            tp = {"weft": [], "python": []}
            cpu = {"weft": [], "python": []}  # worker CPU ms per activity
            for _ in range(args.rounds):
                for k, proc, queue in (("weft", cxx, cxx_queue), ("python", py, py_queue)):
                    c0 = cpu_seconds(proc.pid)
                    tp[k].append(await throughput(client, driver_queue, queue, args.activities))
                    cpu[k].append((cpu_seconds(proc.pid) - c0) * 1000 / args.activities)
        await latency(client, "weft_chain10", cxx_queue, 2)  # warm-up
        await latency(client, "PyChain10", py_queue, 2)
        lat = {"weft": [], "python": []}
        for _ in range(args.latency_runs):
            lat["weft"] += await latency(client, "weft_chain10", cxx_queue, 1)
            lat["python"] += await latency(client, "PyChain10", py_queue, 1)
    finally:
        for p in (cxx, py):
            p.terminate()
        for p in (cxx, py):
            p.wait(30)

    med = {k: statistics.median(v) for k, v in tp.items()}
    lmed = {k: statistics.median(v) * 1000 for k, v in lat.items()}
    print(f"activity throughput, {args.activities} no-op activities per round, {args.rounds} rounds (activities/s):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {med[k]:8.1f}   rounds {', '.join(f'{x:.1f}' for x in tp[k])}")
    print(f"  ratio weft/python: {med['weft'] / med['python']:.2f}x")
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print("worker CPU per activity in those rounds (ms; the worker's own cost, whatever the server's pace):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {cmed[k]:6.3f}   rounds {', '.join(f'{x:.3f}' for x in cpu[k])}")
    print(f"  ratio python/weft: {cmed['python'] / cmed['weft']:.2f}x")
    print(f"10-step DAG end-to-end latency, {args.latency_runs} runs each (ms):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {lmed[k]:7.1f}   min {min(lat[k]) * 1000:7.1f}   max {max(lat[k]) * 1000:7.1f}")
    print(f"  ratio python/weft: {lmed['python'] / lmed['weft']:.2f}x")
    print("idle RSS of the worker processes (MiB):")
    for k in ("weft", "python"):
        print(f"  {k:7s} {idle[k] / 1024:7.1f}")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    w = sub.add_parser("py-worker")
    w.add_argument("--queue", required=True)
    w.add_argument("--ready-file", required=True)
    w.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--weft-worker")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--activities", type=int, default=1000)
    p.add_argument("--latency-runs", type=int, default=20)
    args = p.parse_args()
    try:
        if args.cmd == "py-worker":
            code = asyncio.run(py_worker_main(args)) or 0
        else:
            if not args.weft_worker:
                p.error("--weft-worker is required")
            code = asyncio.run(asyncio.wait_for(bench_main(args), 900))
    except Exception as e:
        print(f"benchmark failed: {type(e).__name__}: {e}", flush=True)
        code = 1
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
