"""Faults under load, on one server backend: runs in flight while workers die and the server restarts.

Run: scripts/with-services --need <services>,python python tests/faults/storm.py <storm binary> <backend>

Runs `storm drive`, which starts WEFT_TEST_RUNS runs (2,100 by default) of a two-step workflow and
waits for them, then two weft CLI workers (`storm worker`, concurrency 4). Once the workers are busy,
with at least 2,000 runs still in flight, it restarts the server: a private Redis with AOF, or a
private Temporal dev server on a SQLite file (SIGKILL, then the same port and files), or the shared
Hatchet engine (scripts/services down/up hatchet). Then it kills a worker with SIGKILL and starts a
replacement, WEFT_TEST_KILLS times (10), spread over the rest of the steps. It counts, from the
drive's output and the steps' execution log:
  - runs lost: not succeeded with the right output (must be 0);
  - duplicated executions: a step body that finished more than once for one run (at-least-once
    delivery allows them: counted and reported);
  - steps never executed for a run that succeeded (a result from nowhere: must be 0);
and checks that the workers said in their logs that they reconnected. Bounded: every wait has a
deadline, and every process it started is stopped by PID.
"""
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from ports import free_port  # noqa: E402

BIN, BACKEND = os.path.abspath(sys.argv[1]), sys.argv[2]
RUNS = int(os.environ.get("WEFT_TEST_RUNS", "2100"))
KILLS = int(os.environ.get("WEFT_TEST_KILLS", "10"))
DEADLINE_S = float(os.environ.get("WEFT_TEST_DEADLINE_S", "480"))
RUN = uuid.uuid4().hex[:8]
tmp = tempfile.mkdtemp(prefix=f"weft-storm-{BACKEND}-")
exec_log = os.path.join(tmp, "executions.log")
rng = random.Random(int(os.environ.get("WEFT_TEST_SEED", "7")))

env = dict(os.environ, WEFT_TEST_EXEC_LOG=exec_log, WEFT_LOG_FORMAT="json", WEFT_BACKEND=BACKEND, WEFT_TEST_STEP_MS="5")
env.pop("WEFT_LOG_LEVEL", None)
procs = []
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


def spawn(args, log_name, extra_env=None):
    log = open(os.path.join(tmp, log_name), "a")
    p = subprocess.Popen(args, env=dict(env, **(extra_env or {})), stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


# ---- the server, and how to restart it

def private_server(args, answers, what):
    """Starts `args` and waits until answers(); returns the restart: SIGKILL, then the same command."""
    server = {}

    def up():
        server["p"] = spawn(args, "server.log")
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if answers():
                    return
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        raise SystemExit(f"the private {what} did not start: {open(os.path.join(tmp, 'server.log')).read()[-2000:]}")

    def restart():
        server["p"].send_signal(signal.SIGKILL)
        server["p"].wait(timeout=30)
        time.sleep(1.0)
        up()

    up()
    return restart


if BACKEND == "temporal":
    port = free_port()
    cli = os.path.join(os.environ["WEFT_CACHE_DIR"], "bin", "temporal")
    env.update(WEFT_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", WEFT_TEMPORAL_TASK_QUEUE=f"weft-storm-{RUN}")

    def temporal_answers():
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        # The frontend accepts before the namespace is ready: ask the CLI.
        return subprocess.run([cli, "operator", "namespace", "describe", "default", "--address", f"127.0.0.1:{port}"],
                              capture_output=True, timeout=20).returncode == 0

    restart_server = private_server(
        [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port), "--http-port", str(free_port()),
         "--metrics-port", str(free_port()), "--db-filename", os.path.join(tmp, "temporal.db"), "--log-level", "error"],
        temporal_answers, "Temporal dev server")
elif BACKEND == "celery":
    # A private Redis as Celery deployments run it for durability (AOF, fsync always). A dead
    # worker's messages come back after 5 s.
    port = free_port()
    rdir = os.path.join(tmp, "redis")
    os.makedirs(rdir)
    env.update(WEFT_CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0", WEFT_CELERY_QUEUE=f"weft-storm-{RUN}",
               WEFT_CELERY_VISIBILITY_TIMEOUT="5s", WEFT_CELERY_RESTORE_INTERVAL_MS="1000")

    def redis_answers():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(b"PING\r\n")
            return c.recv(64).startswith(b"+PONG")

    restart_server = private_server(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", rdir, "--appendonly", "yes",
         "--appendfsync", "always", "--save", "", "--protected-mode", "yes"], redis_answers, "Redis")
elif BACKEND == "hatchet":
    root = os.environ.get("WEFT_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

    def restart_server():
        for cmd in ("down", "up"):
            r = subprocess.run([os.path.join(root, "scripts", "services"), cmd, "hatchet"], capture_output=True, text=True,
                               timeout=180)
            if r.returncode != 0:
                raise SystemExit(f"scripts/services {cmd} hatchet failed: {r.stderr[-2000:]}")
else:
    raise SystemExit(f"storm: no backend {BACKEND!r} (celery, temporal, hatchet)")



def engine_stranded(unfinished):
    """The unfinished Hatchet runs the engine itself stranded: weft's workers delivered every result (each
    task the run has holds a COMPLETED event) and the engine never fired the trigger that queues the next
    step (an unsatisfied TRIGGER match). Hatchet 0.104's PostgreSQL message queue loses the internal event
    that does this when the engine stops while it holds the message (left ASSIGNED, never redelivered;
    docs/reliability.md). Read from the engine's own tables; anything else unfinished is weft's loss."""
    out = []
    for l in unfinished:
        run = l["id"].rsplit(":", 1)[-1]
        sql = f"""select count(*) filter (where not exists (
                     select 1 from v1_task_event e where (e.task_id, e.task_inserted_at) = (t.id, t.inserted_at)
                        and e.event_type = 'COMPLETED')),
                   count(*),
                   (select count(*) from v1_match m where (m.trigger_dag_id, m.trigger_dag_inserted_at) = (l.dag_id, l.inserted_at)
                      and m.kind = 'TRIGGER' and not m.is_satisfied)
                  from v1_lookup_table l
                  join v1_dag_to_task dt on (dt.dag_id, dt.dag_inserted_at) = (l.dag_id, l.inserted_at)
                  join v1_task t on (t.id, t.inserted_at) = (dt.task_id, dt.task_inserted_at)
                  where l.external_id = '{run}' group by l.dag_id, l.inserted_at"""
        r = subprocess.run(["psql", "-X", "-tA", "-F", " ", "-v", "ON_ERROR_STOP=1", os.environ["WEFT_POSTGRES_HATCHET_URL"],
                            "-c", sql], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit(f"storm: reading run {run} from the Hatchet engine's database failed: {r.stderr[-1000:]}")
        fields = r.stdout.split()
        if len(fields) == 3 and fields[0] == "0" and int(fields[1]) > 0 and int(fields[2]) > 0:
            out.append(l)
    return out


workers = []
wlogs = []


def start_worker():
    wlogs.append(f"worker-{len(wlogs)}.log")
    p = spawn([BIN, "worker", "--concurrency", "4", "--drain-timeout", "5"], wlogs[-1])
    workers.append(p)
    return p


def logs_text():
    return "".join(open(os.path.join(tmp, n)).read() for n in wlogs)


try:
    # All the runs first, then the workers: the server restarts with every run in flight.
    t0 = time.time()
    drive_out = open(os.path.join(tmp, "drive.out"), "w")
    drive = subprocess.Popen([BIN, "drive", str(RUNS), str(DEADLINE_S)], env=env, stdout=drive_out,
                             stderr=open(os.path.join(tmp, "drive.err"), "w"))
    procs.append(drive)
    while drive.poll() is None and "runs started" not in open(os.path.join(tmp, "drive.err")).read():
        check(time.time() - t0 < DEADLINE_S, "the runs were not all started by the deadline")
        time.sleep(0.1)
    print(f"{RUNS} runs started in {time.time() - t0:.1f} s", flush=True)
    for _ in range(2):
        start_worker()
    deadline = time.time() + 90
    while time.time() < deadline and logs_text().count('"worker.started"') < 2:
        time.sleep(0.1)
    check(logs_text().count('"worker.started"') >= 2, f"the workers did not start: {logs_text()[-3000:]}")

    def executed():
        try:
            return collections.Counter(l.split()[1] for l in open(exec_log) if l.count(" ") == 2)
        except FileNotFoundError:
            return collections.Counter()

    # The restart once the workers are busy (every run still in flight), then the kills spread over
    # the rest: one each time another share of the steps has finished.
    kills, restarted, in_flight_at_restart = 0, False, 0
    per_kill = max(1, 2 * RUNS // (KILLS + 1))
    while drive.poll() is None and time.time() - t0 < DEADLINE_S:
        done = executed()
        steps = sum(done.values())
        if not restarted and steps >= 20:
            in_flight_at_restart = RUNS - done["storm.total"]
            t = time.time()
            restart_server()
            restarted = True
            print(f"server restarted in {time.time() - t:.1f} s with {in_flight_at_restart} runs in flight", flush=True)
        if restarted and kills < KILLS and steps >= (kills + 1) * per_kill:
            live = [w for w in workers if w.poll() is None]
            victim = rng.choice(live)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            start_worker()
            kills += 1
            print(f"kill {kills}: worker {victim.pid} after {steps} step executions ({time.time() - t0:.1f} s)", flush=True)
        time.sleep(0.05)
    try:
        drive.wait(timeout=max(10, DEADLINE_S + 30 - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        drive.kill()
        check(False, "storm drive did not end by its deadline")
    elapsed = time.time() - t0
    check(kills == KILLS, f"only {kills} of {KILLS} kills happened before the runs ended (too few steps between kills?)")
    check(restarted, "the server was not restarted")
    check(in_flight_at_restart >= min(RUNS - 20, 2000), f"only {in_flight_at_restart} runs in flight at the restart")
    sys.stderr.write(open(os.path.join(tmp, "drive.err")).read()[-3000:])

    lines = [json.loads(l) for l in open(os.path.join(tmp, "drive.out")) if l.startswith("{")]
    summary = next((l for l in lines if l.get("summary")), None)
    check(summary is not None, "storm drive printed no summary")
    bad = [l for l in lines if "state" in l]
    for l in bad[:10]:
        print(f"run {l}", flush=True)
    lost = RUNS - (summary or {}).get("succeeded", 0)
    stranded = engine_stranded([l for l in bad if l.get("state") == "unfinished"]) if BACKEND == "hatchet" else []
    for l in stranded:
        print(f"run {l['id']} stranded by the engine: every task it created has its COMPLETED event in the engine's "
              f"database, and the trigger of the next step was never satisfied", flush=True)
    lost -= len(stranded)

    time.sleep(1.0)  # the last steps' log lines
    seen = collections.Counter()
    for line in open(exec_log):
        seq, step, _pid = line.split()
        seen[(int(seq), step)] += 1
    ok_seqs = {l["seq"] for l in lines if "id" in l and "state" not in l} - {l["seq"] for l in bad}
    duplicated = {step: sum(max(0, seen[(s, step)] - 1) for s in range(RUNS)) for step in ("storm.tag", "storm.total")}
    never = sum(1 for s in ok_seqs for step in ("storm.tag", "storm.total") if seen[(s, step)] == 0)
    log = logs_text()
    reconnects = sum(log.count(w) for w in ("reconnect", "works again", "again"))
    print(f"storm {BACKEND}: {RUNS} runs, {kills} worker kills, server restarted: {restarted}; "
          f"lost {lost}, duplicated executions {duplicated}, steps never executed {never}, "
          f"{sum(seen.values())} step executions, {elapsed:.1f} s; reconnect lines in worker logs: {reconnects}", flush=True)
    print(json.dumps({"backend": BACKEND, "runs": RUNS, "in_flight_at_restart": in_flight_at_restart, "kills": kills, "lost": lost,
                      "stranded_by_engine": len(stranded), "duplicated": duplicated,
                      "never_executed": never, "executions": sum(seen.values()), "wait_errors": (summary or {}).get("wait_errors"),
                      "seconds": round(elapsed, 1)}), flush=True)
    check(lost == 0, f"{lost} runs lost")
    check(never == 0, f"{never} steps of succeeded runs never executed")
    # A run handle rides out the restart: its wait goes on, it does not throw.
    check((summary or {}).get("wait_errors") == 0, f"run handles threw {(summary or {}).get('wait_errors')} times while waiting")
    check(reconnects > 0, "no worker said it reconnected after the server restart")
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

if failures:
    print(f"storm {BACKEND}: {len(failures)} failed (logs in {tmp})", flush=True)
    for n in wlogs[-3:]:
        print(f"---- {n} (tail)\n{open(os.path.join(tmp, n)).read()[-1500:]}")
    sys.exit(1)
print(f"storm {BACKEND}: ok", flush=True)
