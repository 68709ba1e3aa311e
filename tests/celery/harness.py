"""What the Celery integration scripts share: checks that fail a case, and the processes they start
(each stopped by its PID, never by name)."""
import os
import signal
import subprocess
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


class Cases(list):
    """The cases of a script, in order; an instance is also the decorator that adds one."""

    def __call__(self, fn):
        self.append(fn)
        return fn


def run_cases(cases, only=()):
    """Runs each case (all, or those named in `only`), printing one line each; returns the failures."""
    failures = 0
    for fn in cases:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
            print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL {fn.__name__}: {e}", flush=True)
            if not isinstance(e, Check):
                traceback.print_exc()
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
