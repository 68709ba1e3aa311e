"""Celery over Redis TLS, as Python Celery reaches it: rediss:// URLs with the parameters Celery and
redis-py read (ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_check_hostname), the same
URL for weft's C++ worker and client and for a Python Celery worker and client. The servers are real
Redis TLS ports (Debian's redis-server is built with TLS), private to this test:

  mtls:  TLS only, a client certificate from the test CA required, requirepass
  tls:   TLS only, no client certificate, an ACL user with its own password
  other: TLS with a certificate for elsewhere.test only (the name check must refuse 127.0.0.1)

Checks: a Python client runs tasks on the C++ worker and a C++ client runs a chain across the C++ and
the Python worker, over mTLS and over TLS with an ACL user; the C++ side refuses what redis-py refuses
(no client certificate, an untrusted CA, a wrong name, a plaintext port), each with a clear error that
names the URL (its password hidden); bad URL parameters fail before any connection; no password or
private key appears in any log, output or process title.

Run: scripts/with-services --need redis,python python tests/tls/celery_tls.py <celery_peer>
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
from common import certs, check, cmdlines, finish, no_secrets, procs, stop  # noqa: E402
from ports import free_port  # noqa: E402
import redis  # noqa: E402
from celery import Celery  # noqa: E402

PEER = os.path.abspath(sys.argv[1])
T = 30
CQ, PQ = f"weft-tls-cpp-{uuid.uuid4().hex[:6]}", f"weft-tls-py-{uuid.uuid4().hex[:6]}"


def redis_tls(d, name, cert="server", client_certs="no", extra=()):
    """A private Redis with a TLS port only; returns the port once it answers."""
    port = free_port()
    cmd = ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--save", "",
           "--appendonly", "no", "--dir", d, "--tls-cert-file", os.path.join(d, f"{cert}.pem"),
           "--tls-key-file", os.path.join(d, f"{cert}.key"), "--tls-ca-cert-file", os.path.join(d, "ca.pem"),
           "--tls-auth-clients", client_certs, *extra]
    p = subprocess.Popen(cmd, stdout=open(os.path.join(d, f"redis-{name}.log"), "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            if p.poll() is not None:
                raise RuntimeError(f"redis-server {name} exited: {open(os.path.join(d, f'redis-{name}.log')).read()}")
            time.sleep(0.05)
    raise RuntimeError(f"redis-server {name} did not listen on {port}")


def tasks_module(d):
    with open(os.path.join(d, "weft_tls_tasks.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            import os
            from celery import Celery
            url = os.environ["WEFT_REDIS_URL"]
            app = Celery("weft_tls", broker=url, backend=url)
            app.conf.update(result_expires=600, task_default_queue={PQ!r}, broker_connection_retry_on_startup=True)

            @app.task(name="weft.py.double")
            def double(x):
                return x * 2

            @app.task(name="weft.py.mul")
            def mul(x, y):
                return x * y
        """))


def python_worker(d, url, name):
    env = dict(os.environ, WEFT_REDIS_URL=url, PYTHONPATH=d)
    log = os.path.join(d, f"py-worker-{name}.log")
    p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "weft_tls_tasks", "worker", "--pool=solo", "-Q", PQ,
                          "-n", f"py-tls-{name}@%h", "--without-heartbeat", "--without-gossip", "--without-mingle",
                          "-l", "INFO"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=d)
    procs.append(p)
    return p, log


def cpp_worker(d, url, name):
    log = os.path.join(d, f"cpp-worker-{name}.log")
    p = subprocess.Popen([PEER, "worker", CQ, "2"], env=dict(os.environ, WEFT_REDIS_URL=url),
                         stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        if "ready" in open(log).read():
            return p, log
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the C++ worker on {name} did not start: {open(log).read()[-2000:]}")


def cpp_run(url, *args, mode="client", celery_env=False):
    """The C++ client: `client <case> CQ PQ args` (WEFT_REDIS_URL) or `anyclient a b` (WEFT_CELERY_*,
    or with `celery_env` Python Celery's own CELERY_BROKER_URL and CELERY_RESULT_BACKEND)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEFT_CELERY_", "CELERY_"))}
    env.update(WEFT_REDIS_URL=url, WEFT_BACKEND="celery", WEFT_CELERY_QUEUE=CQ, WEFT_CELERY_TIMEOUT_MS="3000")
    if celery_env:
        env.update(CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)
    else:
        env.update(WEFT_CELERY_BROKER_URL=url)
    argv = [PEER, "client", args[0], CQ, PQ, *args[1:]] if mode == "client" else [PEER, "anyclient", *args]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=2 * T)
    lines = out.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else {}
    except ValueError:
        verdict = {}
    return verdict, out.stdout + out.stderr


def python_refuses(url):
    """redis-py's verdict on the same URL, the control: the error it raises, or None."""
    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
        return None
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def main():
    d = certs()
    tasks_module(d)
    pw, acl_pw = "pw-" + uuid.uuid4().hex, "acl-" + uuid.uuid4().hex
    secrets = {"requirepass": pw, "ACL password": acl_pw,
               "client private key": open(os.path.join(d, "client.key")).read().split("\n")[1]}
    ca, client, client_key = (os.path.join(d, f) for f in ("ca.pem", "client.pem", "client.key"))
    mtls = redis_tls(d, "mtls", client_certs="yes", extra=["--requirepass", pw])
    tls = redis_tls(d, "tls", extra=["--user", "default", "off", "--user", "weft", "on", f">{acl_pw}", "~*", "&*",
                                     "+@all"])
    other = redis_tls(d, "other", cert="elsewhere")
    plain = free_port()
    plain_p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(plain), "--save", "",
                                "--appendonly", "no", "--dir", d], stdout=open(os.path.join(d, "redis-plain.log"), "w"),
                               stderr=subprocess.STDOUT)
    procs.append(plain_p)

    mtls_url = (f"rediss://:{pw}@localhost:{mtls}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
                f"&ssl_certfile={client}&ssl_keyfile={client_key}")
    tls_url = f"rediss://weft:{acl_pw}@127.0.0.1:{tls}/2?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    outputs = ""

    # The control first: redis-py takes both URLs as they are.
    check(python_refuses(mtls_url) is None, f"redis-py reaches the mTLS Redis ({python_refuses(mtls_url)})")
    check(python_refuses(tls_url) is None, f"redis-py reaches the TLS Redis as the ACL user ({python_refuses(tls_url)})")

    for name, url in (("mtls", mtls_url), ("tls", tls_url)):
        cpp, cpp_log = cpp_worker(d, url, name)
        outputs += cmdlines([cpp.pid])  # the URL reaches it by the environment, never by argv
        py, py_log = python_worker(d, url, name)
        app = Celery("weft_tls_client", broker=url, backend=url)
        app.conf.update(result_expires=600)
        try:
            got = [app.send_task("weft.test.add", (i, 10), queue=CQ) for i in range(20)]
            check([r.get(timeout=T) for r in got] == [i + 10 for i in range(20)],
                  f"{name}: a Python client's 20 tasks ran on the C++ worker over {url.split(':')[0]}")
            verdict, text = cpp_run(url, "mixed", "2", "3")
            outputs += text
            check(verdict.get("result") == "n=10" and set(verdict.get("steps", {}).values()) == {"succeeded"},
                  f"{name}: the C++ client's chain ran C++, Python, C++ steps ({verdict or text[-500:]})")
            verdict, text = cpp_run(url, "4", "5", mode="anyclient")
            outputs += text
            check(verdict.get("result") == 9 and verdict.get("backend") == "celery",
                  f"{name}: weft::any_client configured by WEFT_CELERY_BROKER_URL ({verdict or text[-500:]})")
            verdict, text = cpp_run(url, "5", "6", mode="anyclient", celery_env=True)
            outputs += text
            check(verdict.get("result") == 11,
                  f"{name}: weft::any_client configured by Celery's CELERY_BROKER_URL ({verdict or text[-500:]})")
            check("weft.py.double" in open(py_log).read(), f"{name}: the Python worker ran its step over TLS")
        finally:
            stop(cpp)
            stop(py)
        check(cpp.returncode == 0, f"{name}: the C++ worker stopped cleanly ({cpp.returncode})")

    # What redis-py refuses, the C++ side refuses too, saying why.
    refused = [
        ("no client certificate", f"rediss://:{pw}@localhost:{mtls}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}",
         "does the server want a client certificate"),
        ("an untrusted server CA", f"rediss://weft:{acl_pw}@127.0.0.1:{tls}/0?ssl_ca_certs={d}/other-ca.pem",
         "the server's certificate was refused"),
        ("a certificate for another name", f"rediss://127.0.0.1:{other}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}",
         "it is not for '127.0.0.1'"),
        ("TLS to a plaintext port", f"rediss://127.0.0.1:{plain}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}",
         "is it a TLS port?"),
        ("plaintext to a TLS port", f"redis://weft:{acl_pw}@127.0.0.1:{tls}/0", "Redis at redis://weft:***@127.0.0.1"),
    ]
    for what, url, says in refused:
        py_says = python_refuses(url)
        verdict, text = cpp_run(url, "1", "2", mode="anyclient")
        outputs += text
        err = verdict.get("exception", "")
        check(py_says is not None and says in err, f"refused, {what}: C++ says {err[:300]!r}; redis-py: {py_says}")
    # The name check can be turned off as in redis-py, and then the same server is accepted.
    loose = f"rediss://127.0.0.1:{other}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}&ssl_check_hostname=false"
    cpp, _ = cpp_worker(d, loose, "loose")
    try:
        verdict, text = cpp_run(loose, "4", "5", mode="anyclient")
        check(verdict.get("result") == 9 and python_refuses(loose) is None,
              f"ssl_check_hostname=false accepts the same certificate, as redis-py does ({verdict or text[-300:]})")
    finally:
        stop(cpp)

    # Mistakes in the URL fail before any connection, naming the parameter.
    bad = [
        (f"rediss://127.0.0.1:{tls}/0?ssl_ca_certs={d}/missing.pem", "ssl_ca_certs: cannot read"),
        (f"rediss://127.0.0.1:{tls}/0?ssl_ca_certs={d}/redis-tls.log", "holds no PEM block"),
        (f"rediss://127.0.0.1:{tls}/0?ssl_cert_reqs=maybe", "ssl_cert_reqs is 'maybe'"),
        (f"redis://127.0.0.1:{tls}/0?ssl_cert_reqs=required", "needs the rediss:// scheme"),
        (f"rediss://127.0.0.1:{tls}/0?ssl_keyfile={client_key}", "ssl_keyfile is set without ssl_certfile"),
        (f"rediss://127.0.0.1:{tls}/0?sslcert_reqs=none", "unknown parameter 'sslcert_reqs'"),
    ]
    for url, says in bad:
        verdict, text = cpp_run(url, "1", "2", mode="anyclient")
        outputs += text
        check(says in verdict.get("exception", ""), f"bad URL {url.split('?')[1]!r}: {verdict or text[-300:]}")

    leaks = no_secrets(d, secrets, outputs)
    check(not leaks, f"no password or private key in any log, output or process title ({leaks})")
    finish("tls.celery")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        check(False, "the test itself raised")
        finish("tls.celery")
