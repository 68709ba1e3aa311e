"""weft's Temporal workers against the Python SDK's, side by side on the same dev server.

    scripts/with-services --need temporal,python python benchmarks/temporal_bench.py \
        --weft-worker build-temporal/benchmarks/bench.temporal_worker [--rounds 3] [--activities 1000]
        [--server shared|private] [--db memory|file] [--partitions N] [--drivers N] [--latency-runs 0]

--server shared (the default) uses the harness's dev server ($WEFT_TEMPORAL_ADDRESS). --server private
starts this benchmark's own `temporal server start-dev` (the binary the harness installed, or
--temporal-bin) on free loopback ports, with an in-memory SQLite database (--db memory, the default)
or a SQLite file in a temporary directory (--db file, as the harness's server), and with
--partitions N task queue read/write partitions (0: the server's default, 4); it is stopped by its
PID at the end. Both workers always run against the same server, so whatever the server costs is
the same for both.

1. Activity throughput: a Python workflow (the same driver for both) runs --activities no-op
   activities "weft_test.noop" at once, split over --drivers (4) workflow runs, on a task queue served
   either by the weft C++ activity worker or by a Python SDK activity worker (each in its own process,
   both with the same --pollers and --concurrency, by default the Python SDK's: 5 pollers, 100
   concurrent activities). Activities per second,
   median of --rounds, alternating the two; and the CPU time each worker process spent per activity
   (from /proc), which is the worker's own cost when the server sets the pace.
2. End-to-end latency of a 10-step DAG: weft_chain10 (weft workflow worker + C++ steps) against the
   same ten sequential activities written as a Python SDK workflow (Python workflow and activities),
   started and awaited by the same Python client, one run at a time; median over --latency-runs.
3. Idle RSS of both worker processes, read from /proc after they started and before any work, and
   their RSS under load: the peak of each throughput round (benchmarks/procstat.py).

Prints one table; exits with os._exit (gRPC threads can abort CPython's shutdown).
"""
import argparse
import asyncio
import os
import shutil
import socket
import signal
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

from procstat import PeakRss, process_cpu_s, tree_rss_kib


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
                      workflow_runner=UnsandboxedWorkflowRunner(), max_concurrent_activities=args.concurrency,
                      max_concurrent_activity_task_polls=args.pollers, max_concurrent_workflow_task_polls=args.pollers):
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
        await asyncio.sleep(args.max_seconds)


def start_peers(args, cxx_queue, py_queue):
    tmp = tempfile.gettempdir()
    cxx_ready, py_ready = os.path.join(tmp, cxx_queue + ".ready"), os.path.join(tmp, py_queue + ".ready")
    cxx = subprocess.Popen([args.weft_worker, "--task-queue", cxx_queue, "--ready-file", cxx_ready, "--max-seconds", "900",
                            "--concurrency", str(args.concurrency), "--pollers", str(args.pollers)], stderr=subprocess.DEVNULL)
    py = subprocess.Popen([sys.executable, __file__, "py-worker", "--queue", py_queue, "--ready-file", py_ready,
                           "--max-seconds", "900", "--concurrency", str(args.concurrency), "--pollers", str(args.pollers)])
    wait_file(cxx_ready)
    wait_file(py_ready)
    os.remove(cxx_ready)
    os.remove(py_ready)
    return cxx, py


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


async def start_private_server(args):
    """This benchmark's own dev server; returns (process, address, temporary directory)."""
    binary = args.temporal_bin or os.path.join(
        os.environ.get("WEFT_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "weft")), "bin", "temporal")
    tmp = tempfile.mkdtemp(prefix="weft-temporal-bench-")
    port = free_port()
    cmd = [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
           "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--log-level", "error"]
    if args.db == "file":
        cmd += ["--db-filename", os.path.join(tmp, "temporal.db")]
    for pragma in args.sqlite_pragma:
        cmd += ["--sqlite-pragma", pragma]
    if args.partitions > 0:
        cmd += ["--dynamic-config-value", f"matching.numTaskqueueReadPartitions={args.partitions}",
                "--dynamic-config-value", f"matching.numTaskqueueWritePartitions={args.partitions}"]
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    address = f"127.0.0.1:{port}"
    end = time.time() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the private dev server exited with {proc.returncode}; see {tmp}/server.log")
        try:
            await Client.connect(address)  # a GetSystemInfo round trip
            break
        except Exception:
            if time.time() > end:
                raise
            await asyncio.sleep(0.5)
    print(f"private dev server: pid {proc.pid}, {address}, db {args.db}, partitions "
          f"{args.partitions or 'default'}: {' '.join(cmd[1:])}", flush=True)
    return proc, address, tmp


def stop_private_server(proc, tmp):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    shutil.rmtree(tmp, ignore_errors=True)


async def throughput(client, driver_queue, queue, total, runs=4):
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
    server = None
    if args.server == "private":
        server = await start_private_server(args)
        os.environ["WEFT_TEMPORAL_ADDRESS"] = server[1]  # inherited by both worker processes
    try:
        return await bench_on(args, server[0] if server else None)
    finally:
        if server:
            stop_private_server(server[0], server[2])


async def bench_on(args, server_proc):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    print(f"server {os.environ['WEFT_TEMPORAL_ADDRESS']}; load average at start {load_average():.2f}", flush=True)
    cxx_queue, py_queue, driver_queue = (f"bench-{k}-{uuid.uuid4()}" for k in ("weft", "py", "driver"))
    cxx, py = start_peers(args, cxx_queue, py_queue)
    loads = [load_average()]
    scpu = {"weft": [], "python": []}  # private server's CPU ms per activity
    dcpu = {"weft": [], "python": []}  # this process's (client + driver workflows' worker) CPU ms per activity
    lat = {"weft": [], "python": []}
    loaded = {"weft": [], "python": []}  # the worker's peak RSS in each throughput round
    try:
        await asyncio.sleep(3)
        idle = {"weft": tree_rss_kib(cxx.pid), "python": tree_rss_kib(py.pid)}
        async with Worker(client, task_queue=driver_queue, workflows=[BenchActivities],
                          workflow_runner=UnsandboxedWorkflowRunner(), max_cached_workflows=100):
            await throughput(client, driver_queue, cxx_queue, 200, args.drivers)  # warm-up, both
            await throughput(client, driver_queue, py_queue, 200, args.drivers)
            tp = {"weft": [], "python": []}
            cpu = {"weft": [], "python": []}  # worker CPU ms per activity
            for r in range(args.rounds):
                order = (("weft", cxx, cxx_queue), ("python", py, py_queue))
                for k, proc, queue in (order if r % 2 == 0 else order[::-1]):  # alternate who goes first
                    c0 = process_cpu_s(proc.pid)
                    s0 = process_cpu_s(server_proc.pid) if server_proc else 0
                    d0 = process_cpu_s(os.getpid())
                    with PeakRss(proc.pid) as peak:
                        tp[k].append(await throughput(client, driver_queue, queue, args.activities, args.drivers))
                    loaded[k].append(peak.kib)
                    cpu[k].append((process_cpu_s(proc.pid) - c0) * 1000 / args.activities)
                    dcpu[k].append((process_cpu_s(os.getpid()) - d0) * 1000 / args.activities)
                    if server_proc:
                        scpu[k].append((process_cpu_s(server_proc.pid) - s0) * 1000 / args.activities)
                    loads.append(load_average())
        if args.latency_runs > 0:
            await latency(client, "weft_chain10", cxx_queue, 2)  # warm-up
            await latency(client, "PyChain10", py_queue, 2)
            for _ in range(args.latency_runs):
                lat["weft"] += await latency(client, "weft_chain10", cxx_queue, 1)
                lat["python"] += await latency(client, "PyChain10", py_queue, 1)
    finally:
        for p in (cxx, py):
            p.terminate()
        for p in (cxx, py):
            p.wait(30)

    med = {k: statistics.median(v) for k, v in tp.items()}
    lmed = {k: statistics.median(v) * 1000 for k, v in lat.items() if v}
    print(f"activity throughput, {args.activities} no-op activities per round from {args.drivers} driver workflows, "
          f"{args.pollers} pollers and {args.concurrency} concurrent activities per worker, "
          f"{args.rounds} rounds (activities/s); load average {min(loads):.2f}-{max(loads):.2f}:")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {med[k]:8.1f}   rounds {', '.join(f'{x:.1f}' for x in tp[k])}")
    print(f"  ratio weft/python: {med['weft'] / med['python']:.2f}x")
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print("worker CPU per activity in those rounds (ms; the worker's own cost, whatever the server's pace):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {cmed[k]:6.3f}   rounds {', '.join(f'{x:.3f}' for x in cpu[k])}")
    print(f"  ratio python/weft: {cmed['python'] / cmed['weft']:.2f}x")
    print("driver (this process: client + the driver workflows' Python worker) CPU per activity (ms):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {statistics.median(dcpu[k]):6.3f}   rounds {', '.join(f'{x:.3f}' for x in dcpu[k])}")
    if server_proc:
        print("private dev server's CPU per activity in those rounds (ms):")
        for k in ("weft", "python"):
            print(f"  {k:7s} median {statistics.median(scpu[k]):6.3f}   rounds {', '.join(f'{x:.3f}' for x in scpu[k])}")
    if args.latency_runs > 0:
        print(f"10-step DAG end-to-end latency, {args.latency_runs} runs each (ms):")
        for k in ("weft", "python"):
            print(f"  {k:7s} median {lmed[k]:7.1f}   min {min(lat[k]) * 1000:7.1f}   max {max(lat[k]) * 1000:7.1f}")
        print(f"  ratio python/weft: {lmed['python'] / lmed['weft']:.2f}x")
    print("idle RSS of the worker processes (MiB):")
    for k in ("weft", "python"):
        print(f"  {k:7s} {idle[k] / 1024:7.1f}")
    print("RSS of the worker processes under load (MiB; peak of each throughput round, sampled every 50 ms):")
    for k in ("weft", "python"):
        print(f"  {k:7s} median {statistics.median(loaded[k]) / 1024:7.1f}   rounds "
              f"{', '.join(f'{x / 1024:.1f}' for x in loaded[k])}")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    w = sub.add_parser("py-worker")
    w.add_argument("--queue", required=True)
    w.add_argument("--ready-file", required=True)
    w.add_argument("--max-seconds", type=float, default=900)
    for q in (w, p):
        q.add_argument("--pollers", type=int, default=5, help="activity (and workflow) task pollers of each worker")
        q.add_argument("--concurrency", type=int, default=100, help="concurrent activities of each worker")
    p.add_argument("--weft-worker")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--activities", type=int, default=1000)
    p.add_argument("--latency-runs", type=int, default=20, help="0: skip the 10-step DAG latency part")
    p.add_argument("--drivers", type=int, default=4, help="driver workflows the activities of a round are split over")
    p.add_argument("--server", choices=("shared", "private"), default="shared")
    p.add_argument("--db", choices=("memory", "file"), default="memory", help="--server private: SQLite in memory or in a file")
    p.add_argument("--partitions", type=int, default=0, help="--server private: task queue partitions (0: default)")
    p.add_argument("--sqlite-pragma", action="append", default=[], help="--server private: passed to start-dev")
    p.add_argument("--temporal-bin", help="--server private: the temporal CLI (default: the harness's)")
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
