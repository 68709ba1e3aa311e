"""A live migration between two real backends under load (tests/router/migration.cpp does the driving).

Run: scripts/with-services --need <services>,python python tests/router/migration.py <migration binary> <from> <to>

Starts one weft worker per backend (`migration worker --backend <b>`, each logging its step
executions to a shared file with its side), runs `migration drive`, which streams runs through the
router while it rewrites the flag file (0 -> 10 -> 50 -> 100 %), then checks from the execution log
that every run's steps ran exactly once, on the backend the run's id names (a shadowed run: once more,
on the shadow's). Then drains the old side's worker with SIGTERM while the new side takes a run from
the CLI (`migration run --backend router`), and reads `flags eval` and `migration status`. Stops every
process it started, by PID.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

BIN, FROM, TO = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
PHASE_S = float(os.environ.get("WEFT_TEST_PHASE_S", "6"))
RUN = uuid.uuid4().hex[:8]
tmp = tempfile.mkdtemp(prefix="weft-migration-")
exec_log = os.path.join(tmp, "executions.log")
flags = os.path.join(tmp, "flags.json")

env = dict(os.environ, WEFT_TEST_EXEC_LOG=exec_log, WEFT_LOG_FORMAT="json")
env.pop("WEFT_LOG_LEVEL", None)
if "WEFT_REDIS_URL" in os.environ:
    env.update(WEFT_CELERY_BROKER_URL=os.environ["WEFT_REDIS_URL"], WEFT_CELERY_QUEUE=f"weft-migrate-{RUN}")
env.update(WEFT_TEMPORAL_TASK_QUEUE=f"weft-migrate-{RUN}")
router_env = dict(env, WEFT_BACKEND="router", WEFT_ROUTER_BACKENDS=f"{FROM}, {TO}", WEFT_ROUTER_FLAGS=flags)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


procs = {}


def start_worker(side):
    log = open(os.path.join(tmp, f"worker-{side}.log"), "w")
    p = subprocess.Popen([BIN, "worker", "--backend", side, "--concurrency", "4", "--drain-timeout", "20"],
                         env=dict(env, WEFT_BACKEND=side, WEFT_TEST_SIDE=side), stdout=log, stderr=subprocess.STDOUT)
    procs[side] = p
    return p


def worker_log(side):
    return open(os.path.join(tmp, f"worker-{side}.log")).read()


def wait_ready(side, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if '"worker.started"' in worker_log(side):
            return
        if procs[side].poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"the {side} worker did not start: {worker_log(side)[-3000:]}")


try:
    for side in (FROM, TO):
        start_worker(side)
    for side in (FROM, TO):
        wait_ready(side)
    if "hatchet" in (FROM, TO):
        time.sleep(2)  # the engine assigns to a worker once its first heartbeat is in

    # The server may hold runs of `migrate` from earlier, aborted test runs (stuck on task queues no
    # worker serves): runs left in flight are compared with this baseline, not with zero.
    def status(env=router_env):
        st = subprocess.run([BIN, "migration", "status", "--limit", "100", "--output", "json"], env=env,
                            capture_output=True, text=True, timeout=120)
        check(st.returncode == 0, f"migration status: exit {st.returncode}: {st.stderr[-1500:]}")
        if st.returncode != 0:
            return None
        return json.loads(st.stdout.strip().splitlines()[-1])

    def rows_of(s):
        return {(r["workflow"], r["backend"]): r for r in s["backends"]} if s else {}

    empty_flags = os.path.join(tmp, "no-flags.json")  # drive writes the real file; status only needs one
    with open(empty_flags, "w") as f:
        f.write('{"flags": {}}\n')
    baseline = rows_of(status(dict(router_env, WEFT_ROUTER_FLAGS=empty_flags)))

    t0 = time.time()
    drive = subprocess.run([BIN, "drive", FROM, TO, flags, str(PHASE_S)], env=router_env, capture_output=True, text=True,
                           timeout=600)
    sys.stderr.write(drive.stderr[-6000:])
    check(drive.returncode == 0, f"drive exited {drive.returncode}")
    print(f"drive: {time.time() - t0:.1f} s", flush=True)

    runs = [json.loads(line) for line in drive.stdout.splitlines() if line.startswith("{\"seq\"")]
    check(len(runs) > 50, f"only {len(runs)} runs")

    # Exactly once, on the backend the id names (a shadowed run: plus once on the other side).
    time.sleep(1.0)  # the last shadow's steps have reported; give the log's writers a moment
    seen = collections.Counter()
    sides = collections.defaultdict(set)
    for line in open(exec_log):
        seq, step, side = line.split()
        seen[(int(seq), step)] += 1
        sides[(int(seq), step)].add(side)
    steps = {"plain": ["migrate.tag", "migrate.score"], "notified": ["migrate.tag", "migrate.score", "migrate.notify"]}
    bad = 0
    for r in runs:
        kind = "notified" if r.get("notified") else "plain"
        for step in steps[kind]:
            want = 2 if r.get("shadowed") else 1
            got = seen[(r["seq"], step)]
            want_sides = {FROM, TO} if r.get("shadowed") else {r["backend"]}
            if got != want or sides[(r["seq"], step)] != want_sides:
                bad += 1
                if bad <= 10:
                    print(f"run {r['id']} step {step}: ran {got} times on {sorted(sides[(r['seq'], step)])}, "
                          f"expected {want} on {sorted(want_sides)}", flush=True)
    check(bad == 0, f"{bad} step executions were not exactly once on the run's backend")
    by_backend = collections.Counter(r["backend"] for r in runs)
    print(f"runs by backend: {dict(by_backend)}; step executions: {sum(seen.values())}", flush=True)

    # The old side drains while the new one takes runs.
    procs[FROM].send_signal(signal.SIGTERM)
    cli = subprocess.run([BIN, "run", "migrate", "--input", json.dumps({"seq": 900000, "key": "after", "diverge_on": ""}),
                          "--output", "json"], env=router_env, capture_output=True, text=True, timeout=120)
    check(cli.returncode == 0, f"`run migrate` through the router: exit {cli.returncode}: {cli.stderr[-1500:]}")
    if cli.returncode == 0:
        out = json.loads(cli.stdout.strip().splitlines()[-1])
        check(out.get("state") == "succeeded" and out["output"]["seq"] == 900000 and out["id"].startswith(f"{TO}:"),
              f"`run migrate` output: {cli.stdout!r}")
    check(procs[FROM].wait(timeout=60) == 0, f"the {FROM} worker did not drain cleanly: {worker_log(FROM)[-2000:]}")

    ev = subprocess.run([BIN, "flags", "eval", "migrate", "--key", "tenant-7", "--output", "json"], env=router_env,
                        capture_output=True, text=True, timeout=60)
    check(ev.returncode == 0, f"flags eval: exit {ev.returncode}: {ev.stderr[-1500:]}")
    if ev.returncode == 0:
        d = json.loads(ev.stdout.strip().splitlines()[-1])
        check(d.get("backend") == TO and "fractional" in d.get("why", "") + d.get("reason", ""), f"flags eval: {d}")
        print(f"flags eval: {d}", flush=True)
    s = status()
    if s:
        print(f"migration status: {s}", flush=True)
        rows = rows_of(s)
        for b in (FROM, TO):
            r = rows.get(("migrate", b))
            check(r is not None, f"migration status has no row for migrate on {b}: {s}")
            if r and "error" not in r:
                before = baseline.get(("migrate", b), {})
                if "error" in before:
                    before = {}
                check(r["done"] >= 1, f"migration status: nothing done on {b}: {r}")
                check(r["in_flight"] <= before.get("in_flight", 0),
                      f"migration status: runs left in flight on {b}: {r} (before the test: {before})")
finally:
    for side, p in procs.items():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

if failures:
    print(f"migration {FROM} -> {TO}: {len(failures)} failed", flush=True)
    for side in (FROM, TO):
        print(f"---- {side} worker log (tail)\n{worker_log(side)[-2500:]}")
    sys.exit(1)
print(f"migration {FROM} -> {TO}: ok", flush=True)
