"""What the Celery integration scripts share: checks that fail a case, and the processes they start
(each stopped by its PID, never by name)."""
import json
import os
import signal
import subprocess
import sys
import time
import traceback


class Check(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Check(what)


procs = []  # every process started, for the scripts' teardown


def start(cmd, env=None, log=None):
    p = subprocess.Popen(cmd, env=env or os.environ, stdin=subprocess.DEVNULL, stdout=log or subprocess.PIPE,
                         stderr=subprocess.STDOUT if log else subprocess.PIPE, start_new_session=True)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        os.kill(p.pid, sig)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def cpp_worker(peer, queue, *extra, log_path, env, concurrency=2, timeout=30):
    """Starts tests/celery/peer.cpp's worker on `queue`; returns it once it logs "ready"."""
    log = open(log_path, "w")
    p = start([peer, "worker", queue, str(concurrency), *extra], env=env, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready" in open(log_path).read():
            return p
        check(p.poll() is None, f"the C++ worker exited with {p.returncode}: {open(log_path).read()[-2000:]}")
        time.sleep(0.05)
    raise Check("the C++ worker did not start")


def py_worker(module, queue, node, log_path, env, pool="solo", concurrency=1):
    """Starts a Python Celery worker of `module` (importable through env's PYTHONPATH) on `queue`."""
    return start([sys.executable, "-m", "celery", "-A", module, "worker", f"--pool={pool}", f"--concurrency={concurrency}",
                  "-Q", queue, "-n", node, "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
                 env=env, log=open(log_path, "w"))


class Cases(list):
    """The cases of a script, in order; an instance is also the decorator that adds one."""

    def __call__(self, fn):
        self.append(fn)
        return fn


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def run_cases(cases, only=(), logs=()):
    """Runs each case (all, or those named in `only`), printing one line each; returns the failures.
    A failed case is followed by what each of `logs` (worker log paths) gained while it ran: the
    tails printed at the end are often written long after."""
    failures = 0
    for fn in cases:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        marks = {path: _size(path) for path in logs}
        try:
            fn()
            print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL {fn.__name__}: {e}", flush=True)
            if not isinstance(e, Check):
                traceback.print_exc()
            for path, mark in marks.items():
                with open(path, errors="replace") as f:
                    f.seek(mark)
                    lines = f.read().splitlines()
                print(f"---- {os.path.basename(path)} during {fn.__name__} ({len(lines)} lines, the last 40)")
                print("\n".join(lines[-40:]), flush=True)
    return failures


def stop_all(failures, cpp_log, py_log, password):
    """Stops every process started; a C++ worker log that shows the Redis password is one failure
    more. With failures, prints the tails of both logs. Returns the failures."""
    for p in procs:
        stop(p)
    log = open(cpp_log).read()
    if password and password in log:
        failures += 1
        print("FAIL the C++ worker log contains the Redis password")
    if failures:
        print("---- C++ worker log (tail)\n" + log[-3000:])
        print("---- Python worker log (tail)\n" + open(py_log).read()[-3000:])
    return failures


def queue_keys(*queues):
    """kombu's lists of `queues`: each plain list and its priority lists."""
    return [q + sfx for q in queues for sfx in ("", "\x06\x163", "\x06\x166", "\x06\x169")]


def delete_run(r, task_ids, before_keys, run, extra=()):
    """Deletes what a run made on `r`: the metas of `task_ids` and of every chain, chord and group
    member linked to them (found among the metas not in `before_keys`), their chord keys, the
    kombu bindings naming `run`, and the keys in `extra`."""
    ours = set(task_ids)
    new = {}
    for k in r.scan_iter(match="celery-task-meta-*"):
        if k not in before_keys:
            try:
                new[k] = json.loads(r.get(k) or b"{}")
            except ValueError:
                pass
    grew = True
    while grew:
        grew = False
        for m in new.values():
            linked = set()
            if m.get("task_id") in ours:
                linked.add(m.get("group_id"))
                for child in m.get("children") or []:
                    try:
                        linked.add(child[0][0])
                    except (TypeError, IndexError):
                        pass
            elif m.get("parent_id") in ours or m.get("group_id") in ours:
                linked.add(m.get("task_id"))
            linked.discard(None)
            if not linked <= ours:
                ours |= linked
                grew = True
    doomed = list(extra) + ["celery-task-meta-" + t for t in ours]
    doomed += [f"celery-taskset-meta-{g}{x}" for g in ours for x in ("", ".j", ".s", ".t", ".d", ".c")]
    doomed += list(r.scan_iter(match=f"_kombu.binding*{run}*"))
    for i in range(0, len(doomed), 500):
        r.delete(*doomed[i:i + 500])
