#!/usr/bin/env python3
"""durable.interop: a run started by one program resumes in another program that serves the same
workflow (tests/durable/interop/workflow.hpp), on one SQLite journal, both ways:

1. `durable_interop_batch` (weft::client<weft::durable>) starts 4 runs and is SIGKILLed while their
   second step waits; `durable_interop_tool` (weft::cli, WEFT_BACKEND=durable, a second workflow of
   its own) finds them with `list`, reads them with `status`, and finishes each with `result --wait`.
2. The tool records a run with `run --no-wait` (it returns at once: the run waits in the journal)
   and drives another with `run`, SIGKILLed the same way; the batch's `resume` finishes both.

Checks: every run ends with the right output; a step whose result the first program committed did
not run again in the second; the step that was cut short ran exactly once to completion, in the
program that resumed it.

usage: interop.py BATCH TOOL
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def wait_for(predicate, what, seconds=30):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.05)
    check(False, "timed out waiting for " + what)
    return False


def committed(journal, step):
    try:
        with sqlite3.connect(journal, timeout=5) as db:
            return db.execute("SELECT count(*) FROM step_results WHERE step = ?", (step,)).fetchone()[0]
    except sqlite3.OperationalError:  # the journal is not created yet
        return 0


def marks(side):
    out = []
    if os.path.exists(side):
        with open(side) as f:
            for line in f:
                key, step, pid = line.split()
                out.append((int(key), step, int(pid)))
    return out


def letters(key):
    return len("alpha") + len("beta") + len(str(key))


def main():
    batch, tool = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="weft-durable-interop-")
    journal = os.path.join(tmp, "journal.db")
    side = os.path.join(tmp, "executions")
    block = os.path.join(tmp, "block")
    env = dict(os.environ, WEFT_BACKEND="durable", WEFT_DURABLE_JOURNAL=journal, WEFT_TEST_SIDE=side,
               WEFT_TEST_BLOCK=block, WEFT_LOG_LEVEL="warning")

    def run_tool(*args, timeout=60):
        r = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            print(f"tool {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}", flush=True)
        return r

    # ---- 1. started by the batch, finished by the tool ----
    open(block, "w").close()
    started = subprocess.Popen([batch, journal, "start", "9", "4"], env=env, stdout=subprocess.PIPE, text=True)
    ids = [started.stdout.readline().strip() for _ in range(4)]
    check(all(i.startswith("durable:interop_ingest:") for i in ids), f"the batch started 4 runs: {ids}")
    wait_for(lambda: committed(journal, "fetch") == 4, "the batch to commit fetch for its 4 runs")
    os.kill(started.pid, signal.SIGKILL)
    started.wait()
    batch_pid = started.pid
    os.remove(block)

    listed = run_tool("list", "--workflow", "interop_ingest", "--output", "json")
    check(listed.returncode == 0 and sorted(r["id"] for r in json.loads(listed.stdout)) == sorted(ids),
          "the tool lists the batch's 4 runs")
    status = run_tool("status", ids[0], "--output", "json")
    check(status.returncode == 0 and json.loads(status.stdout).get("state") == "running",
          f"the tool reads an unfinished run's status: {status.stdout.strip()[:200]}")
    for key, rid in enumerate(ids, start=9):  # keys 9..12: outputs of 10 and 11 letters
        r = run_tool("result", rid, "--wait")
        check(r.returncode == 0 and json.loads(r.stdout) == f"stored {letters(key)} letters",
              f"the tool finishes run {rid}: {r.stdout.strip()}")
    status = run_tool("status", ids[0], "--output", "json")
    check(status.returncode == 0 and json.loads(status.stdout).get("state") == "succeeded", "the run reads succeeded")

    m = marks(side)
    for key in range(9, 13):
        fetches = [p for k, s, p in m if k == key and s == "fetch"]
        parses = [p for k, s, p in m if k == key and s == "parse"]
        check(fetches == [batch_pid], f"key {key}: fetch ran once, in the batch, not again in the tool ({fetches})")
        check(len(parses) == 1 and parses[0] != batch_pid, f"key {key}: parse finished once, in the tool ({parses})")
    check(committed(journal, "store") == 4, "4 store results committed")

    # ---- 2. started by the tool, finished by the batch ----
    # `run --no-wait` records the run and exits: the durable engine runs steps in the process that
    # drives the run, so it waits in the journal, unfinished, for a process to resume it.
    queued = run_tool("run", "interop_ingest", "--input", "77", "--no-wait")
    qid = queued.stdout.strip()
    check(queued.returncode == 0 and qid.startswith("durable:interop_ingest:"), f"the tool recorded a run and returned: {qid}")
    # A run the tool drives, killed while its second step waits.
    open(block, "w").close()
    started = subprocess.Popen([tool, "run", "interop_ingest", "--input", "123"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run_of_123():
        with sqlite3.connect(journal, timeout=5) as db:
            row = db.execute("SELECT id FROM runs WHERE input = '[123]'").fetchone()
            return row[0] if row else None

    wait_for(lambda: any(k == 123 and s == "fetch" for k, s, _ in marks(side)) and committed(journal, "fetch") >= 5,
             "the tool to commit fetch of key 123")
    os.kill(started.pid, signal.SIGKILL)
    started.wait()
    tool_pid = started.pid
    rid = run_of_123()
    os.remove(block)
    resumed = subprocess.run([batch, journal, "resume"], env=env, capture_output=True, text=True, timeout=60)
    lines = sorted(resumed.stdout.strip().splitlines())
    check(resumed.returncode == 0 and lines == sorted([f"{qid} stored {letters(77)} letters", f"{rid} stored {letters(123)} letters"]),
          f"the batch resumed both of the tool's runs: {lines} {resumed.stderr.strip()[-300:]}")
    m = marks(side)
    check(len([p for k, s, p in m if k == 77 and s == "fetch"]) == 1, "key 77: fetch ran once")
    check([p for k, s, p in m if k == 123 and s == "fetch"] == [tool_pid], "key 123: fetch ran once, in the tool")
    parses = [p for k, s, p in m if k == 123 and s == "parse"]
    check(len(parses) == 1 and parses[0] != tool_pid, f"key 123: parse finished once, in the batch ({parses})")

    print(f"{len(failures)} failed" if failures else "all passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
