"""weft::cli end to end, as an operator drives it, on one backend (tests/cli/peer.cpp).

Run: scripts/with-services --need <services>,python python tests/cli/cli.py <cli_peer> local|celery|temporal|hatchet <corpus dir>

On a server backend: `worker` starts with JSON logs and a metrics address; `run` follows a run (plain
lines when stderr is a file, a redrawn table on a pseudo-terminal) and prints the output; `run
--no-wait`, then `status`, `steps`, `result --wait` from other processes; `cancel` of a run that waits;
a failing step's exit code and error; `describe` in every format; `doctor` against the real server and
with each backend's usual mistake (a wrong or missing Redis password, a missing database or namespace,
an expired, forged or malformed Hatchet token: exit 4, the problem named, the secret not printed); bad input, an unknown
workflow and an unknown id with their exit codes; /metrics against the work done and /healthz; every
line the worker wrote parses as JSON with the schema's fields; no secret (on Celery, the password of a
Redis user made for the session, recognizable; the harness's password; the Hatchet token; the wrong ones
doctor was given) in anything the programs wrote: stdout, stderr, the worker's log, /metrics, /healthz,
and every file left in the session's directory;
SIGTERM drains the worker. On local: the commands that need no worker, `worker` refused, and `doctor`
on local and durable.
"""
import atexit
import base64
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

PEER, BACKEND, CORPUS = os.path.abspath(sys.argv[1]), sys.argv[2], os.path.abspath(sys.argv[3])
RUN = uuid.uuid4().hex[:8]
env = dict(os.environ, WEFT_BACKEND=BACKEND)
env.pop("WEFT_LOG_FORMAT", None)
env.pop("WEFT_LOG_LEVEL", None)
if BACKEND == "celery":
    env.update(WEFT_CELERY_BROKER_URL=os.environ["WEFT_REDIS_URL"], WEFT_CELERY_QUEUE=f"weft-cli-{RUN}")
elif BACKEND == "temporal":
    env.update(WEFT_TEMPORAL_TASK_QUEUE=f"weft-cli-{RUN}")

SECRETS = []
if "WEFT_REDIS_URL" in os.environ:
    m = re.match(r"redis://:([^@]+)@", os.environ["WEFT_REDIS_URL"])
    if m:
        SECRETS.append(m.group(1))
if os.environ.get("WEFT_HATCHET_TOKEN_FILE"):
    SECRETS.append(open(os.environ["WEFT_HATCHET_TOKEN_FILE"]).read().strip())
SEEN = []  # everything the programs wrote, searched for secrets at the end

SCHEMA = {"time", "level", "event", "backend", "workflow", "run_id", "step", "attempt", "duration_ms", "error",
          "worker", "message", "count", "trace_id", "span_id"}  # docs/operate.md
INPUT = json.dumps({"directory": CORPUS, "top_words": 3})
STEPS = ["corpus.scan", "corpus.count_words", "corpus.measure_readability", "corpus.index_titles", "corpus.compile_report"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def redis_admin(*args):
    """One command to the harness's Redis, authenticated as its default user; the reply's first line."""
    with socket.create_connection((os.environ["WEFT_REDIS_HOST"], int(os.environ["WEFT_REDIS_PORT"])), timeout=5) as s:
        replies = []
        for command in (("AUTH", os.environ["WEFT_REDIS_PASSWORD"]), args):
            s.sendall(b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in map(str.encode, command)))
            replies.append(s.recv(65536).split(b"\r\n")[0].decode())
    check(replies[0] == "+OK" and not replies[1].startswith("-"), f"Redis: {args[:2]}: {replies}")
    return replies[1]


if BACKEND == "celery":
    # The whole session (worker, runs, a failing run, doctor, metrics) authenticates as a user made for
    # it, with a password that cannot be mistaken for anything else: any trace of it is a leak.
    SECRET_USER, SECRET = f"weft-cli-{RUN}", f"weft-recognizable-secret-{RUN}"
    atexit.register(redis_admin, "ACL", "DELUSER", SECRET_USER)
    redis_admin("ACL", "SETUSER", SECRET_USER, "on", ">" + SECRET, "~*", "&*", "+@all")
    env["WEFT_CELERY_BROKER_URL"] = (f"redis://{SECRET_USER}:{SECRET}@{os.environ['WEFT_REDIS_HOST']}:"
                                     f"{os.environ['WEFT_REDIS_PORT']}/0")
    SECRETS.append(SECRET)


def cli(*args, timeout=120, expect=0, over=None):
    p = subprocess.run([PEER, *args], env=dict(env, **(over or {})), capture_output=True, text=True, timeout=timeout)
    SEEN.extend([p.stdout, p.stderr])
    check(expect is None or p.returncode == expect,
          f"`{' '.join(args)}` exited {p.returncode}, expected {expect}: stdout={p.stdout[-1500:]!r} stderr={p.stderr[-1500:]!r}")
    return p


def jwt(claims):
    """A token shaped as Hatchet's (ES256 JWT) with these claims and a signature nobody made."""
    part = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return part({"alg": "ES256", "typ": "JWT"}) + "." + part(claims) + "." + part({"sig": uuid.uuid4().hex})


def doctor_fails(over, secret, *names_the_problem):
    """`doctor` with a broken setting: exit 4, a FAIL line and a fix naming the problem, and not the secret."""
    if secret:
        SECRETS.append(secret)
    p = cli("doctor", "--log-level", "debug", expect=4, over=over)  # debug: every log line is searched too
    check("FAIL " in p.stdout and "      fix: " in p.stdout, p.stdout)
    for words in names_the_problem:
        check(words in p.stdout, f"{words!r} not in: {p.stdout}")
    checks = cli_json("doctor", expect=4, over=over)
    check(any(not c["ok"] and c["fix"] for c in checks), checks)
    return p.stdout


def doctor():
    """`doctor` against the real server (the worker is up), then with each backend's usual mistake."""
    ok = cli("doctor")
    check(f"backend: {BACKEND}" in ok.stdout and "FAIL" not in ok.stdout, ok.stdout)
    checks = cli_json("doctor")
    check(checks and all(c["ok"] and c["name"] and c["detail"] for c in checks), checks)
    by = {c["name"]: c["detail"] for c in checks}
    if BACKEND == "celery":
        check(re.match(r"Redis \d+\.\d+", by["celery.broker.version"]), by)
        check("the password is accepted" in by["celery.broker.auth"], by)
        check("worker(s) answered a ping" in by["celery.workers"], by)
        url = os.environ["WEFT_REDIS_URL"]
        wrong = f"weft-wrong-password-{RUN}"
        doctor_fails({"WEFT_CELERY_BROKER_URL": re.sub(r"//:[^@]+@", f"//:{wrong}@", url)}, wrong,
                     "FAIL celery.broker.auth", "refused the password in broker_url")
        bare = re.sub(r"//:[^@]+@", "//", url)
        doctor_fails({"WEFT_CELERY_BROKER_URL": bare}, None, "requires a password and broker_url (WEFT_CELERY_BROKER_URL) gives none")
        doctor_fails({"WEFT_CELERY_BROKER_URL": re.sub(r"/\d+$", "/99", url)}, wrong, "FAIL celery.broker.database",
                     "has no database 99")
    elif BACKEND == "temporal":
        check(re.match(r"Temporal \d+\.\d+", by["temporal.server"]), by)
        check("is NAMESPACE_STATE_REGISTERED" in by["temporal.namespace"], by)
        check(not by["temporal.pollers"].startswith("warning") and "poller(s)" in by["temporal.pollers"], by)
        missing = f"weft-missing-{RUN}"
        doctor_fails({"WEFT_TEMPORAL_NAMESPACE": missing}, None,
                     f"FAIL temporal.namespace  namespace '{missing}' does not exist",
                     f"temporal operator namespace create --namespace {missing}")
    elif BACKEND == "hatchet":
        check(re.search(r"tenant [0-9a-f-]{36}, expires \d{4}-", by["hatchet.token"]), by)
        check("accepts the token" in by["hatchet.engine"], by)
        tenant = os.environ.get("WEFT_HATCHET_TENANT_ID", "")
        expired = jwt({"sub": tenant, "iat": 1700000000, "exp": 1700003600, "marker": RUN})
        doctor_fails({"WEFT_HATCHET_TOKEN": expired}, expired, "FAIL hatchet.token",
                     "expired at 2023-11-14T23:13:20Z", "hatchet-admin token create")
        forged = jwt({"sub": tenant, "iat": int(time.time()), "exp": int(time.time()) + 3600, "marker": RUN})
        doctor_fails({"WEFT_HATCHET_TOKEN": forged}, forged, "FAIL hatchet.engine", "rejected the token")
        garbage = f"not-a-jwt-{RUN}"
        doctor_fails({"WEFT_HATCHET_TOKEN": garbage}, garbage, "FAIL hatchet.token", "is not a JWT")


def cli_json(*args, **kw):
    p = cli(*args, "--output", "json", **kw)
    return json.loads(p.stdout.strip().splitlines()[-1])


def in_pty(*args, timeout=120):
    """Runs the program on a pseudo-terminal (stdout and stderr both), as a user at a terminal would."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(PEER, [PEER, *args], env)
    out, end = b"", time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode("utf-8", "replace")
    SEEN.append(text)
    return os.waitstatus_to_exitcode(status), text


def check_output(out):
    check(len(out["index"]["titles"]) == 5, out)
    check(out["words"]["total_words"] == 349, out)
    check(len(out["words"]["top"]) == 3, out)


def local_only():
    code, text = in_pty("run", "corpus_report", "--input", INPUT)
    check(code == 0, text)
    check("\x1b[" in text and "A" in text, f"no redraw on a terminal: {text!r}")
    for s in STEPS:
        check(re.search(r"✓\x1b\[0m " + re.escape(s) + r" +succeeded", text), f"{s} not shown succeeded: {text!r}")
    done = cli_json("run", "corpus_report", "--input", INPUT)
    check(done["state"] == "succeeded", done)
    check_output(done["output"])
    check([s["state"] for s in done["steps"]] == ["succeeded"] * 5, done)
    # --meta: run metadata every step reads; a key weft keeps is a usage error.
    tagged = cli_json("run", "cli_metadata", "--input", "1", "--meta", "tenant=acme", "--meta", "request_id=r-1")
    check(tagged["state"] == "succeeded" and tagged["output"] == "acme", tagged)
    check(cli_json("run", "cli_metadata", "--input", "1")["output"] == "<none>", "a run without --meta")
    reserved = cli("run", "cli_metadata", "--input", "1", "--meta", "weft_x=1", expect=2)
    check("'weft_x' is weft's own" in reserved.stderr, reserved.stderr)
    w = cli("worker", expect=2)
    check("has no workers" in w.stderr, w.stderr)
    # --no-wait on an engine that keeps runs in memory would print an id that names nothing.
    nw = cli("run", "corpus_report", "--input", INPUT, "--no-wait", expect=2)
    check("keeps runs in this process's memory" in nw.stderr and nw.stdout == "", nw.stderr)
    d = cli("doctor")
    check("ok   local.connection" in d.stdout, d.stdout)
    # durable: the journal's schema and whether it can be written (a read-only directory cannot).
    journal_dir = tempfile.mkdtemp(prefix="weft-cli-journal-")
    journal = os.path.join(journal_dir, "journal.db")
    checks = cli_json("doctor", "--backend", "durable", over={"WEFT_DURABLE_JOURNAL": journal})
    by = {c["name"]: c for c in checks}
    check(by["durable.schema"]["ok"] and "schema version 2" in by["durable.schema"]["detail"], checks)
    check(by["durable.writable"]["ok"], checks)
    if os.geteuid() != 0:  # root writes anywhere: the read-only case cannot fail for it
        os.chmod(journal, 0o444)
        ro = cli("doctor", "--backend", "durable", expect=4, over={"WEFT_DURABLE_JOURNAL": journal})
        check("FAIL durable.writable" in ro.stdout and "cannot write" in ro.stdout, ro.stdout)


def scrape(address, path):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def series(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}"):
            return float(line.rsplit(" ", 1)[1])
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="weft-cli-")

    # describe, in every format: no backend needed.
    d = cli_json("describe", "corpus_report", "--format", "json")
    check([s["name"] for s in d["steps"]] == STEPS, d)
    check(d["steps"][4]["parents"] == STEPS[1:4], d)
    check(d["input"]["properties"]["directory"] == {"type": "string"}, d)
    check(d["input"]["required"] == ["directory", "top_words"], d)
    check(d["output"]["type"] == "object" and "hardest_to_read" in d["output"]["properties"], d)
    check(d["steps"][0]["policy"]["max_attempts"] >= 1, d)
    dot = cli("describe", "corpus_report", "--format", "dot").stdout
    check('"corpus.scan" -> "corpus.count_words";' in dot and dot.startswith('digraph "corpus_report"'), dot)
    mermaid = cli("describe", "corpus_report", "--format", "mermaid").stdout
    check(mermaid.startswith("flowchart LR") and "n0 --> n1" in mermaid, mermaid)
    unknown = cli("describe", "no_such_workflow", expect=2)
    check("declares no workflow 'no_such_workflow'" in unknown.stderr and "corpus_report" in unknown.stderr, unknown.stderr)
    bad = cli("run", "corpus_report", "--input", "{not json", expect=2)
    check("--input is not JSON" in bad.stderr, bad.stderr)
    misfit = cli("run", "corpus_report", "--input", '{"directory": 7}', expect=2)
    check("does not fit workflow 'corpus_report'" in misfit.stderr and "directory" in misfit.stderr, misfit.stderr)
    check(cli("frobnicate", expect=2).returncode == 2, "an unknown subcommand")

    if BACKEND == "local":
        local_only()
        print("cli on local: ok")
        return

    log_path = os.path.join(tmp, "worker.log")
    log = open(log_path, "w")
    worker = subprocess.Popen([PEER, "worker", "--concurrency", "4", "--metrics-address", "127.0.0.1:0",
                               "--log-format", "json", "--log-level", "debug", "--drain-timeout", "20"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        address = None
        for _ in range(600):
            text = open(log_path).read()
            m = re.search(r"metrics on http://([0-9.]+:[0-9]+)/metrics", text)
            if m or worker.poll() is not None:
                address = m and m.group(1)
                break
            time.sleep(0.05)
        check(address, f"the worker did not start: {open(log_path).read()[-3000:]}")
        if BACKEND == "hatchet":
            time.sleep(2)  # the engine assigns to a worker once its first heartbeat is in

        # A run followed on a terminal, then one whose output goes to a script.
        code, text = in_pty("run", "corpus_report", "--input", INPUT, timeout=180)
        check(code == 0, text)
        for s in STEPS:
            check(re.search(r"✓\x1b\[0m " + re.escape(s) + r" +succeeded", text), f"{s} not shown succeeded: {text!r}")
        plain = cli("run", "corpus_report", "--input", INPUT, timeout=180)
        check(json.loads(plain.stdout)["words"]["total_words"] == 349, plain.stdout)
        check("\x1b[" not in plain.stderr and "corpus.compile_report succeeded (attempt 1)" in plain.stderr, plain.stderr)
        done = cli_json("run", "corpus_report", "--input", INPUT, timeout=180)
        check(done["state"] == "succeeded" and done["id"], done)
        check_output(done["output"])

        # Started by one process, followed by others with the id alone.
        started = cli("run", "corpus_report", "--input", INPUT, "--no-wait").stdout.strip()
        check(started, "no id printed")
        res = cli_json("result", started, "--wait", timeout=180)
        check(res["state"] == "succeeded" and res["id"] == started, res)
        check_output(res["output"])
        st = cli_json("status", started)
        check(st["state"] == "succeeded" and st["workflow"] == "corpus_report" and st["backend"] == BACKEND, st)
        check({s["name"]: s["state"] for s in st["steps"]} == {s: "succeeded" for s in STEPS}, st)
        check(st["output"]["words"]["total_words"] == 349 and st["created"], st)  # describe: from the records alone
        check(started.startswith(f"{BACKEND}:corpus_report:"), f"not a self-describing id: {started}")
        if BACKEND == "hatchet":
            refused = cli("list", "--workflow", "corpus_report", expect=2)
            check("cannot list" in refused.stderr, refused.stderr)
        else:
            listed = cli_json("list", "--workflow", "corpus_report")
            check(started in [r["id"] for r in listed], listed)
            check(all(r["workflow"] == "corpus_report" for r in listed), listed)
        steps_text = cli("steps", started).stdout
        check(all(re.search(re.escape(s) + r" +succeeded", steps_text) for s in STEPS), steps_text)

        # Cancel a run that waits for it; the CLI that follows it reports it cancelled.
        waiting = cli("run", "cli_waiting", "--input", "5", "--no-wait").stdout.strip()
        follower = subprocess.Popen([PEER, "result", waiting, "--wait", "--output", "json"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        running = cli_json("status", waiting)
        check(running["state"] in ("queued", "running"), running)
        cli("cancel", waiting)
        out, err = follower.communicate(timeout=120)
        SEEN.extend([out, err])
        check(follower.returncode == 5, f"result of a cancelled run exited {follower.returncode}: {out!r} {err!r}")
        check(json.loads(out)["state"] == "cancelled", out)

        # A step that fails for good: exit 1 and the step's error.
        failing = cli("run", "cli_refusing", "--input", "3", expect=1, timeout=180)
        check("cli.refuse" in failing.stderr and "refusing 3" in failing.stderr, failing.stderr)

        # An id nobody started.
        nobody = cli("status", f"weft-cli-nobody-{RUN}", expect=3)
        check(f"weft-cli-nobody-{RUN}" in nobody.stderr, nobody.stderr)
        # register: Hatchet needs its workflows put; the others say there is nothing to do. A dry
        # run says it for every backend the program links.
        dry = cli("register", "--dry-run", "--workflow", "corpus_report").stdout
        check('hatchet: would put workflow {"workflow":"corpus_report"' in dry and '"parents":["corpus.count_words"' in dry, dry)
        check("celery: nothing to register for 'corpus_report'" in dry and "local: nothing to register for 'corpus_report': "
              "the engine runs its steps" in dry, dry)
        done_reg = cli("register", "--workflow", "corpus_report").stdout
        if BACKEND == "hatchet":
            check(re.search(r"hatchet: put workflow 'corpus_report' \(workflow [0-9a-f-]+, version [0-9a-f-]+\)", done_reg), done_reg)
        else:
            check(f"{BACKEND}: nothing to register for 'corpus_report'" in done_reg, done_reg)
        doctor()

        # Metrics against the work done: four corpus runs, two attempts of the refusing step.
        status, health = scrape(address, "/healthz")
        SEEN.append(health)
        check(status == 200 and "failing" not in health, health)
        _, metrics = scrape(address, "/metrics")
        SEEN.append(metrics)
        for s in STEPS:
            n = series(metrics, "weft_steps_succeeded_total", backend=BACKEND, workflow="corpus_report", step=s)
            check(n == 4, f"{s}: weft_steps_succeeded_total = {n}\n{metrics}")
        check(series(metrics, "weft_steps_retried_total", backend=BACKEND, workflow="cli_refusing", step="cli.refuse") == 1, metrics)
        check(series(metrics, "weft_steps_failed_total", backend=BACKEND, workflow="cli_refusing", step="cli.refuse") == 1, metrics)
        count = series(metrics, "weft_step_duration_seconds_count", backend=BACKEND, workflow="corpus_report", step="corpus.scan")
        check(count == 4, metrics)
        check((series(metrics, "weft_fetch_duration_seconds_count", backend=BACKEND) or 0) > 0, metrics)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            rc = "killed"
        log.close()
    text = open(log_path).read()
    SEEN.append(text)
    check(rc == 0, f"the worker exited {rc} after SIGTERM: {text[-3000:]}")

    # Every line the worker wrote is one JSON object of the schema.
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            o = json.loads(line)
        except ValueError:
            raise AssertionError(f"worker log line {n} is not JSON: {line!r}")
        check(set(o) <= SCHEMA and {"time", "level", "event"} <= set(o), f"line {n}: {o}")
        events.append(o)
    names = [e["event"] for e in events]
    for ev in ("worker.started", "step.started", "step.succeeded", "step.retrying", "step.failed", "worker.draining",
               "worker.stopped"):
        check(ev in names, f"no {ev} in the worker's log: {sorted(set(names))}")
    ok = [e for e in events if e["event"] == "step.succeeded" and e.get("run_id") == started]
    check(sorted(e["step"] for e in ok) == sorted(STEPS), ok)
    check(all(e["backend"] == BACKEND and e["workflow"] == "corpus_report" and e["attempt"] == 1 and e["worker"]
              and e["duration_ms"] >= 0 for e in ok), ok)
    failed = [e for e in events if e["event"] == "step.failed" and e.get("step") == "cli.refuse"]
    check(failed and failed[0]["attempt"] == 2 and "refusing 3" in failed[0]["error"], failed)

    # And every file the session left (the worker's log, the journal, inputs), byte for byte.
    for root, _, files in os.walk(tmp):
        for f in files:
            SEEN.append(open(os.path.join(root, f), "rb").read().decode("utf-8", "replace"))
    check(len(SEEN) > 50 and any("step.failed" in chunk for chunk in SEEN), "the search for secrets saw too little")
    for secret in SECRETS:
        for chunk in SEEN:
            at = chunk.find(secret)
            # The excerpt around it, with the secret masked: a failing test must not print it either.
            check(at < 0, "a secret appeared in what the programs wrote: ..."
                  + repr(chunk[max(0, at - 200):at + len(secret) + 100].replace(secret, "<SECRET>")))
    print(f"cli on {BACKEND}: ok")


if __name__ == "__main__":
    main()
