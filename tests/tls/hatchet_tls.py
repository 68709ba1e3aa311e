"""Hatchet over TLS and mTLS: weft's C++ worker and client and hatchet-sdk, each configured only by
hatchet-sdk's own variables (HATCHET_CLIENT_HOST_PORT, HATCHET_CLIENT_TOKEN, HATCHET_CLIENT_TLS_*),
through TLS proxies in front of the engine (grpc_tls_proxy.py: one TLS only, one that requires a
client certificate from the test CA), so the shared engine's plaintext port stays as the other tests use it.

Checks: the C++ worker serves over mTLS; a Python client runs hx-from-python on it over TLS; the C++
client runs a workflow with run metadata over TLS; tls without a client certificate against the mTLS
listener, and the wrong CA, fail with a clear error; the token and the private key appear in no log,
output or process title.

Run: scripts/with-services --need hatchet,python python tests/tls/hatchet_tls.py <hatchet_peer>
"""
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hatchet"))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
import hatchet_smoke  # noqa: E402
import interop  # noqa: E402  (the workflow definitions hatchet_peer's "python" set mirrors)
from common import certs, check, cmdlines, env_without, finish, no_secrets, procs, proxy, stop  # noqa: E402

PEER = os.path.abspath(sys.argv[1])
T = 90


def sdk_env(base, d, address, strategy, cert=None, ca="ca.pem"):
    e = env_without(["WEFT_HATCHET_", "HATCHET_CLIENT_"])
    e.update({k: v for k, v in base.items() if k.startswith("HATCHET_CLIENT_")})
    e.update(HATCHET_CLIENT_HOST_PORT=address, HATCHET_CLIENT_TLS_STRATEGY=strategy,
             HATCHET_CLIENT_TLS_ROOT_CA_FILE=os.path.join(d, ca), HATCHET_CLIENT_TLS_SERVER_NAME="weft-tls.test",
             WEFT_HATCHET_TIMEOUT_MS="5000")
    if cert:
        e.update(HATCHET_CLIENT_TLS_CERT_FILE=os.path.join(d, f"{cert}.pem"),
                 HATCHET_CLIENT_TLS_KEY_FILE=os.path.join(d, f"{cert}.key"))
    return e


def peer_run(env, case, payload, metadata=None):
    argv = [PEER, "run", case, json.dumps(payload)] + ([json.dumps(metadata)] if metadata else [])
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=T + 10)
    lines = r.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if r.returncode == 0 and lines else None, r.stdout + r.stderr
    except ValueError:
        return None, r.stdout + r.stderr


def main():
    base = hatchet_smoke.hatchet_env()
    d = certs()
    token = base["HATCHET_CLIENT_TOKEN"]
    secrets = {"token": token, "client private key": open(os.path.join(d, "client.key")).read().split("\n")[1]}
    upstream = os.environ["WEFT_HATCHET_HOST_PORT"]
    tls_addr = proxy(d, upstream, "hatchet-tls")
    mtls_addr = proxy(d, upstream, "hatchet-mtls", client_ca=True)

    log_path = os.path.join(d, "worker.log")
    worker = subprocess.Popen([PEER, "worker", "python", "4", f"weft-tls-{uuid.uuid4().hex[:6]}"],
                              env=sdk_env(base, d, mtls_addr, "mtls", cert="client"),
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(worker)
    deadline = time.time() + T
    while "ready " not in open(log_path).read() and worker.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    check("ready " in open(log_path).read(), "the C++ worker registers over mTLS, from HATCHET_CLIENT_* alone")
    titles = cmdlines([worker.pid])

    # hatchet-sdk from the same variables, over TLS.
    os.environ.clear()
    os.environ.update(sdk_env(base, d, tls_addr, "tls"))
    from hatchet_sdk import Hatchet
    hatchet = Hatchet()
    _, _, from_python, Order = interop.define(hatchet)
    nonce = uuid.uuid4().hex[:6]
    ref = from_python.run(Order(sku=f"tea{nonce}", qty=3), wait_for_result=False)
    box = interop.bounded(ref.result, "hx-from-python over TLS")
    want = {"greet": {"text": f"hello tea{nonce}", "total": 4}, "shout": {"text": f"HELLO TEA{nonce.upper()}", "total": 40}}
    check(box.get("value") == want, f"a Python client over TLS runs hx-from-python on the C++ worker (mTLS): {box}")

    got, text = peer_run(sdk_env(base, d, tls_addr, "tls"), "metadata", {"sku": "tea", "qty": 5}, {"tenant": "globex"})
    outputs = text
    check(got == {"text": "globex|tenant=globex;", "total": 5}, f"the C++ client over TLS: {got} {text[-300:]}")

    cases = [
        ("tls without a client certificate against the mTLS listener", sdk_env(base, d, mtls_addr, "tls")),
        ("the wrong CA", sdk_env(base, d, tls_addr, "tls", ca="other-ca.pem")),
        ("an untrusted client certificate", sdk_env(base, d, mtls_addr, "mtls", cert="other-client")),
    ]
    for what, env in cases:
        t = time.time()
        got, text = peer_run(env, "metadata", {"sku": "tea", "qty": 1})
        outputs += text
        check(got is None and "UNAVAILABLE" in text and time.time() - t < 60,
              f"{what}: the C++ client fails ({time.time() - t:.1f} s): {text.strip()[-200:]}")
    got, text = peer_run(dict(sdk_env(base, d, mtls_addr, "mtls")), "metadata", {"sku": "tea", "qty": 1})
    outputs += text
    check(got is None and "mutual TLS needs a client certificate" in text,
          f"mtls without a certificate is a configuration error: {text.strip()[-200:]}")

    interop.hatchet_smoke.stop_worker(worker)
    calls = open(os.path.join(d, "hatchet-mtls.calls")).read()
    check("/Dispatcher/Register OK" in calls or "Register OK" in calls,
          "the worker registered through the mTLS proxy")
    leaks = no_secrets(d, secrets, outputs + titles)
    check(not leaks, f"no secret in any log, output or process title: {leaks}")
    finish("hatchet TLS")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported, and every process stopped, by finish()
        check(False, f"{type(e).__name__}: {e}")
        finish("hatchet TLS")
