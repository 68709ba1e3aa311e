"""What the Celery integration scripts share: checks that fail a case, and the processes they start
(each stopped by its PID, never by name)."""
import os
import signal
import subprocess


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
