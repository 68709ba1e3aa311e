"""The Python (temporalio) side of the weft worker tests: Python meets workflows served by weft's C++
workers.

    weft_peer.py client --task-queue Q
        A Python client starts the weft workflow "weft_chain" with a dataclass and reads its typed
        result; then starts it with a wrong-typed input (the bad payload fault) and reports the failure;
        then starts a good run again (the worker kept serving); then starts "weft_metadata" with a memo,
        which its C++ steps read as the run's metadata. Prints one JSON verdict line.
    weft_peer.py steps --ready-file F [--max-seconds N]
        A Python activity worker serving the step "weft_test.py_triple" of weft_mixed on its own task
        queue (weft-test-python-steps), until SIGTERM or --max-seconds.

Server from WEFT_TEMPORAL_ADDRESS. Exits with os._exit (gRPC threads can abort CPython's shutdown).
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass
from typing import List

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

PYTHON_QUEUE = "weft-test-python-steps"


@dataclass
class Order:
    customer: str
    quantities: List[int]


@dataclass
class Invoice:
    customer: str
    items: int
    cents: int


@activity.defn(name="weft_test.py_triple")
async def py_triple(n: int) -> int:
    return n * 3


def chain_of_causes(err):
    out = []
    while err is not None:
        out.append({"class": type(err).__name__, "message": str(err),
                    "type": getattr(err, "type", None), "non_retryable": getattr(err, "non_retryable", None)})
        err = err.__cause__
    return out


async def client_main(args):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    verdict = {}
    # (a) typed input and typed result through three C++ steps.
    result = await client.execute_workflow("weft_chain", Order("ada", [2, 3, 5]), id=f"py-chain-{uuid.uuid4()}",
                                           task_queue=args.task_queue, result_type=Invoice)
    verdict["typed"] = {"type": type(result).__name__, "customer": result.customer, "items": result.items,
                        "cents": result.cents}
    # (ii) a wrong-typed input: the first step fails with a clear message; the run fails.
    try:
        await client.execute_workflow("weft_chain", {"customer": "bob", "quantities": "many"},
                                      id=f"py-bad-{uuid.uuid4()}", task_queue=args.task_queue, result_type=Invoice)
        verdict["bad"] = "completed?!"
    except WorkflowFailureError as e:
        verdict["bad"] = chain_of_causes(e)
    # ... and the worker serves the next run.
    again = await client.execute_workflow("weft_chain", Order("cy", [1]), id=f"py-again-{uuid.uuid4()}",
                                          task_queue=args.task_queue, result_type=Invoice)
    verdict["again"] = {"customer": again.customer, "cents": again.cents}
    # (b) run metadata: the start's memo reaches every C++ step; a number arrives as its JSON text.
    verdict["metadata"] = await client.execute_workflow(
        "weft_metadata", 1, id=f"py-metadata-{uuid.uuid4()}", task_queue=args.task_queue,
        memo={"tenant": "acme", "shard": 7}, result_type=str)
    print(json.dumps(verdict), flush=True)
    return 0


async def steps_main(args):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=PYTHON_QUEUE, activities=[py_triple]):
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
        except asyncio.TimeoutError:
            pass
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--task-queue", required=True)
    s = sub.add_parser("steps")
    s.add_argument("--ready-file", required=True)
    s.add_argument("--max-seconds", type=float, default=240)
    args = p.parse_args()
    try:
        code = asyncio.run(asyncio.wait_for(client_main(args), 120) if args.cmd == "client" else steps_main(args))
    except Exception as e:  # the verdict is the exit code and this line
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        code = 1
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
