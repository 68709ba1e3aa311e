"""Payload codecs across languages: weft's C++ worker and client, and a Python client and activity
worker, all with the same codec, serve and call the same workflows; the server holds only encoded
bytes. Two codecs, each as Python teams write them:

  - zlib: {"encoding": "binary/zlib"}, data = zlib.compress(payload.SerializeToString())
    (weft::temporal::zlib_codec());
  - AES-256-GCM, the temporalio samples' EncryptionCodec: {"encoding": "binary/encrypted",
    "encryption-key-id": id}, data = nonce || ciphertext || tag (examples/temporal_encryption.hpp).

For each: a typed struct run, a run whose middle step is a Python activity, the same run from the C++
client, two sinks (a tuple the interpreter assembles), a failed run (its details decode), a query,
the raw history read without the codec (every payload encoded; no plaintext), and a C++ worker with
the wrong codec or key failing the step with a clear error while it goes on serving.

Run: scripts/with-services --need temporal,python python tests/temporal/codecs.py <temporal_dag_worker>
"""
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from typing import List, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import Worker
from weft_peer import Invoice, Order, py_triple  # the Python mirrors of dags.hpp

DAG_WORKER = os.path.abspath(sys.argv[1])
PYTHON_QUEUE = "weft-test-python-steps"  # dags.hpp: py_triple's queue
T = 30
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


class ZlibCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> List[Payload]:
        return [Payload(metadata={"encoding": b"binary/zlib"}, data=zlib.compress(p.SerializeToString()))
                for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> List[Payload]:
        return [Payload.FromString(zlib.decompress(p.data)) if p.metadata.get("encoding") == b"binary/zlib" else p
                for p in payloads]


class EncryptionCodec(PayloadCodec):
    def __init__(self, key_id: str, key: bytes):
        self.key_id, self.aes = key_id, AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(Payload(metadata={"encoding": b"binary/encrypted", "encryption-key-id": self.key_id.encode()},
                               data=nonce + self.aes.encrypt(nonce, p.SerializeToString(), None)))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"").decode() != "binary/encrypted":
                out.append(p)
                continue
            key_id = p.metadata.get("encryption-key-id", b"").decode()
            if key_id != self.key_id:
                raise ValueError(f"unknown key id {key_id}")
            out.append(Payload.FromString(self.aes.decrypt(p.data[:12], p.data[12:], None)))
        return out


def start_worker(queue, codec_arg):
    d = tempfile.mkdtemp(prefix="weft-codecs-")
    ready = os.path.join(d, "ready")
    log = open(os.path.join(d, "worker.log"), "w+")
    args = [DAG_WORKER, "--task-queue", queue, "--ready-file", ready, "--max-seconds", "200"]
    if codec_arg:
        args += ["--codec", codec_arg]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + T
    while not os.path.exists(ready):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"dag_worker did not start: {open(log.name).read()}")
        time.sleep(0.05)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def payloads_of(history):
    """Every payload a step or the run carried: inputs, results, failure details."""
    out = []
    for e in history.events:
        for attrs, field in (("workflow_execution_started_event_attributes", "input"),
                             ("activity_task_scheduled_event_attributes", "input"),
                             ("activity_task_completed_event_attributes", "result"),
                             ("workflow_execution_completed_event_attributes", "result")):
            if e.HasField(attrs):
                out += list(getattr(getattr(e, attrs), field).payloads)
        if e.HasField("workflow_execution_failed_event_attributes"):
            f = e.workflow_execution_failed_event_attributes.failure
            out += list(f.application_failure_info.details.payloads)
    return out


async def one_codec(name, codec, codec_arg, wrong_arg, plain_client):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                  namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"),
                                  data_converter=dataclasses.replace(DataConverter.default, payload_codec=codec))
    queue = f"weft-codecs-{name}-{uuid.uuid4().hex[:8]}"
    cpp = start_worker(queue, codec_arg)
    try:
        async with Worker(client, task_queue=PYTHON_QUEUE, activities=[py_triple]):
            inv = await asyncio.wait_for(client.execute_workflow(
                "weft_chain", Order("ada", [2, 3, 5]), id=f"codec-chain-{uuid.uuid4()}", task_queue=queue,
                result_type=Invoice), T)
            check(inv == Invoice("ada", 10, 3000), f"{name}: a typed run through C++ steps: {inv}")

            wid = f"codec-mixed-{uuid.uuid4()}"
            mixed = await asyncio.wait_for(client.execute_workflow("weft_mixed", 5, id=wid, task_queue=queue), T)
            check(mixed == "total 315", f"{name}: C++ -> Python -> C++ steps with one codec: {mixed!r}")

            # In a thread: the Python activity worker on this event loop runs its middle step meanwhile.
            out = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
                [DAG_WORKER, "--task-queue", queue, "--start-mixed", "7", "--codec", codec_arg],
                capture_output=True, text=True, timeout=T))
            verdict = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
            check(verdict.get("result") == "total 321", f"{name}: the C++ client with the codec: {verdict} {out.stderr[-300:]}")

            sinks = await asyncio.wait_for(client.execute_workflow("weft_two_sinks", 2, id=f"codec-sinks-{uuid.uuid4()}",
                                                                   task_queue=queue), T)
            check(sinks == [9, 27], f"{name}: two sinks, the tuple assembled under the codec: {sinks}")

            fid = f"codec-fail-{uuid.uuid4()}"
            try:
                await asyncio.wait_for(client.execute_workflow("weft_fail", 1, id=fid, task_queue=queue), T)
                check(False, f"{name}: weft_fail fails")
            except WorkflowFailureError as e:
                d = e.cause.details[0] if getattr(e.cause, "details", None) else {}
                check(d.get("step") == "weft_test.doomed" and d.get("attempts") == 2,
                      f"{name}: a failed run's details decode through the codec: {d}")

            # The memo (run metadata) is codec-encoded by the Python SDK too: the steps still read it.
            meta = await asyncio.wait_for(client.execute_workflow(
                "weft_metadata", 1, id=f"codec-meta-{uuid.uuid4()}", task_queue=queue, memo={"tenant": "acme"}), T)
            check(meta == "acme|tenant=acme;", f"{name}: run metadata in a codec-encoded memo reaches the steps: {meta!r}")

            steps = await asyncio.wait_for(client.get_workflow_handle(wid).query("weft.steps"), T)
            check([s["state"] for s in steps] == ["succeeded"] * 3, f"{name}: a query answer through the codec: {steps}")

            for run_id in (wid, fid, verdict.get("id", "")):
                if not run_id:
                    continue
                h = await plain_client.get_workflow_handle(run_id).fetch_history()
                ps = payloads_of(h)
                encodings = {p.metadata.get("encoding", b"").decode() for p in ps}
                want = "binary/zlib" if name == "zlib" else "binary/encrypted"
                check(len(ps) >= 3 and encodings == {want}, f"{name}: the server holds only {want} payloads: {encodings} in {len(ps)}")
                if name == "aes":
                    leaked = [p.data for p in ps if b"total" in p.data or b"weft_test.doomed" in p.data]
                    check(not leaked, f"{name}: no plaintext result or error detail in the history")

        # A worker with the wrong codec (or key): the step fails at once, naming why; the worker lives.
        wrong_queue = f"weft-codecs-wrong-{name}-{uuid.uuid4().hex[:8]}"
        wrong = start_worker(wrong_queue, wrong_arg)
        try:
            # Read without the codec: the wrong worker's own failure detail is encoded with its key.
            h = await client.start_workflow("weft_noop", 1, id=f"codec-wrong-{uuid.uuid4()}", task_queue=wrong_queue)
            failed, deadline = None, time.time() + T
            while failed is None and time.time() < deadline:
                for e in (await plain_client.get_workflow_handle(h.id).fetch_history()).events:
                    if e.HasField("activity_task_failed_event_attributes"):
                        failed = e.activity_task_failed_event_attributes.failure
                await asyncio.sleep(0.2)
            info = failed.application_failure_info if failed else None
            msg = failed.message if failed else ""
            check(info is not None and info.type == "weft.bad_payload" and info.non_retryable
                  and ("binary/zlib" in msg or "does not decrypt" in msg),
                  f"{name}: the wrong codec fails the step as a bad payload naming why: {msg}")
            check(wrong.poll() is None, f"{name}: and that worker goes on")
        finally:
            stop(wrong)
    finally:
        stop(cpp)


async def main():
    plain = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"],
                                 namespace=os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default"))
    key = os.urandom(32)
    other = os.urandom(32)
    cases = [
        ("zlib", ZlibCodec(), "zlib", ""),
        ("aes", EncryptionCodec("weft-test", key), f"aes:weft-test:{key.hex()}", f"aes:weft-test:{other.hex()}"),
    ]
    for name, codec, arg, wrong in cases:
        try:
            await one_codec(name, codec, arg, wrong, plain)
        except Exception as e:
            check(False, f"{name}: {type(e).__name__}: {e}")
    print(json.dumps({"failures": failures}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)
