"""What the TLS tests share: fresh certificates, the TLS proxy in front of a plaintext server, the
environment a process gets (the SDK's own variables only), and the secrets check."""
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []
procs = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def certs():
    d = tempfile.mkdtemp(prefix="weft-tls-")
    subprocess.run(["bash", os.path.join(HERE, "certs.sh"), d], check=True)
    return d


def proxy(d, upstream, name, client_ca=False, api_key=None, tls=True, reset=()):
    """Starts grpc_tls_proxy.py (plaintext with tls=False; `reset`: methods whose every other call it
    resets); returns its address. Its calls are logged in d/<name>.calls."""
    args = [sys.executable, os.path.join(HERE, "grpc_tls_proxy.py"), "--listen", "127.0.0.1:0", "--upstream", upstream,
            "--log", os.path.join(d, f"{name}.calls")]
    if tls:
        args += ["--cert", os.path.join(d, "server.pem"), "--key", os.path.join(d, "server.key")]
    for m in reset:
        args += ["--reset", m]
    if client_ca:
        args += ["--client-ca", os.path.join(d, "ca.pem")]
    if api_key:
        path = os.path.join(d, f"{name}.key-file")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(api_key)
        args += ["--api-key-file", path]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(os.path.join(d, f"{name}.log"), "w"), text=True)
    procs.append(p)
    line = p.stdout.readline().split()
    if len(line) != 2 or line[0] != "listening":
        raise RuntimeError(f"the TLS proxy did not start: {open(os.path.join(d, name + '.log')).read()}")
    return line[1]


def env_without(prefixes, **extra):
    """os.environ without WEFT_<backend>_ settings (they would win over the SDK's variables)."""
    e = {k: v for k, v in os.environ.items() if not any(k.startswith(p) for p in prefixes)}
    e.update(extra)
    return e


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    for p in reversed(procs):
        stop(p)


def cmdlines(pids):
    out = ""
    for pid in pids:
        try:
            out += open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            pass
    return out


def no_secrets(d, secrets, extra_text=""):
    """Every file this test wrote (logs, outputs, call logs), and `extra_text`, holds none of the secrets."""
    leaks = []
    skip = {"ca.key", "other-ca.key", "server.key", "client.key", "other-client.key", "elsewhere.key"}
    for root, _, files in os.walk(d):
        for f in files:
            if f in skip or f.endswith(".key-file"):
                continue  # the secrets' own files
            text = open(os.path.join(root, f), "rb").read().decode(errors="replace")
            leaks += [f"{f}: {name}" for name, s in secrets.items() if s and s in text]
    leaks += [f"output: {name}" for name, s in secrets.items() if s and s in extra_text]
    return leaks


def finish(title):
    stop_all()
    print(f"{title}: {'FAILED' if failures else 'passed'}", flush=True)
    sys.stdout.flush()
    os._exit(1 if failures else 0)
