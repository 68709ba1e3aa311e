"""Records real histories of weft runs for the replay test (tests/temporal/replay.cpp).

    scripts/with-services --need temporal,python python tests/temporal/capture_fixtures.py \
        --worker build-temporal/tests/temporal/temporal_dag_worker --out tests/temporal/fixtures

Starts the C++ worker process (dags.hpp) on a fresh task queue, and a Python activity worker for the
Python step of weft_mixed; runs each test workflow once (a success, a fan-out/fan-in, retries, a final
failure, a cancellation, a timeout, a Python step); writes each run's history as the protobuf JSON of
temporal.api.history.v1.History to <out>/<name>.json. Stops what it started by PID.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import List

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker


@dataclass
class Order:
    customer: str
    quantities: List[int]


@activity.defn(name="weft_test.py_triple")
async def py_triple(n: int) -> int:
    return n * 3


RUNS = [  # fixture name, workflow type, input, cancel after seconds
    ("chain", "weft_chain", Order("ada", [2, 3, 5]), None),
    ("fan", "weft_fan", 3, None),
    ("retry", "weft_retry", 7, None),
    ("fail", "weft_fail", 5, None),
    ("cancel", "weft_slow", 20000, 2.0),
    ("timeout", "weft_timeout", 5000, None),
    ("mixed", "weft_mixed", 5, None),
]


async def capture(args):
    client = await Client.connect(os.environ["WEFT_TEMPORAL_ADDRESS"])
    queue = f"weft-capture-{uuid.uuid4()}"
    ready = os.path.join(tempfile.gettempdir(), queue + ".ready")
    worker = subprocess.Popen([args.worker, "--task-queue", queue, "--ready-file", ready, "--max-seconds", "300"])
    try:
        for _ in range(300):
            if os.path.exists(ready):
                break
            time.sleep(0.1)
        async with Worker(client, task_queue="weft-test-python-steps", activities=[py_triple]):
            for name, wf_type, arg, cancel_after in RUNS:
                handle = await client.start_workflow(wf_type, arg, id=f"capture-{name}-{uuid.uuid4()}", task_queue=queue)
                if cancel_after:
                    await asyncio.sleep(cancel_after)
                    await handle.cancel()
                try:
                    outcome = await asyncio.wait_for(handle.result(), 60)
                except (WorkflowFailureError, Exception) as e:
                    outcome = f"{type(e).__name__}: {e}"
                history = await handle.fetch_history()
                path = os.path.join(args.out, name + ".json")
                with open(path, "w") as f:
                    f.write(history.to_json())
                    f.write("\n")
                print(f"{name}: {len(history.events)} events, outcome {outcome!r} -> {path}", flush=True)
    finally:
        worker.terminate()
        worker.wait(30)
        if os.path.exists(ready):
            os.remove(ready)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--worker", required=True, help="the temporal_dag_worker binary")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    try:
        code = asyncio.run(asyncio.wait_for(capture(args), 600))
    except Exception as e:
        print(f"capture failed: {type(e).__name__}: {e}", flush=True)
        code = 1
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
