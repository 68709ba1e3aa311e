"""What a worker process tree costs, read from /proc: CPU time, resident memory now, and its peak while
a block of work runs. Shared by the backend benchmarks (benchmarks/*_bench.py, tests/celery/bench.py)
so that every figure in docs/benchmarks.md' footprint table is measured the same way.

A worker's footprint is its whole process tree: Celery's prefork pool and hatchet-sdk's action
listener run in child processes, and their memory is the worker's as much as the parent's.
"""
import os
import threading


def tree(pid: int) -> list[int]:
    """pid and every process descended from it."""
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


def process_cpu_s(pid: int) -> float:
    """User + system CPU time of one process so far, in seconds (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU time of the process tree so far, in seconds."""
    return sum(process_cpu_s(p) for p in tree(pid))


def tree_rss_kib(pid: int, pids: list[int] | None = None) -> int:
    """Resident memory of the process tree now (the sum of VmRSS), in KiB; `pids`, if given, is the
    tree already walked."""
    total = 0
    for p in pids if pids is not None else tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakRss:
    """The largest tree RSS sampled while the block runs (every `interval` s), in KiB:

        with PeakRss(worker.pid) as peak:
            run_the_load()
        print(peak.kib)

    Sampled rather than VmHWM, because VmHWM is per process and a pool's children come and go;
    a sample every 50 ms misses only peaks shorter than that."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        n = 0
        while True:
            if n % 20 == 0:  # walking all of /proc costs more than reading the tree's status files
                pids = tree(self.pid)
            n += 1
            self.kib = max(self.kib, tree_rss_kib(self.pid, pids))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.kib = max(self.kib, tree_rss_kib(self.pid))
