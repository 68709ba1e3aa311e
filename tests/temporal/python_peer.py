"""A temporalio (Python SDK) worker serving the workflows the weft C++ client starts in the interop test.

    python_peer.py --task-queue Q --ready-file F [--max-seconds N]

Writes F once the worker polls, stops on SIGTERM/SIGINT, and exits by itself after --max-seconds so a
test that dies cannot leave it behind.
"""
import argparse
import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import List

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker


@dataclass
class Line:
    sku: str
    qty: int


@dataclass
class Order:
    customer: str
    lines: List[Line]
    rush: bool


@dataclass
class Receipt:
    customer: str
    total_qty: int
    skus: List[str]
    rush: bool
    priced_by: str


@activity.defn(name="weft_interop_price")
async def price(order: Order) -> Receipt:
    return Receipt(customer=order.customer.upper(),
                   total_qty=sum(line.qty for line in order.lines),
                   skus=sorted(line.sku for line in order.lines),
                   rush=order.rush,
                   priced_by=f"python-activity-{os.getpid()}")


@workflow.defn(name="WeftInteropOrder")
class OrderWorkflow:
    """Typed input (a dataclass) and typed output, through one activity."""

    @workflow.run
    async def run(self, order: Order, discount_percent: int) -> Receipt:
        receipt = await workflow.execute_activity(price, order, start_to_close_timeout=timedelta(seconds=30))
        receipt.total_qty -= receipt.total_qty * discount_percent // 100
        return receipt


@workflow.defn(name="WeftInteropFail")
class FailWorkflow:
    @workflow.run
    async def run(self, sku: str) -> str:
        raise ApplicationError(f"no stock left for {sku}", {"sku": sku, "left": 0},
                               type="OutOfStock", non_retryable=True)


@workflow.defn(name="WeftInteropWait")
class WaitWorkflow:
    """Runs until cancelled or terminated."""

    @workflow.run
    async def run(self, label: str) -> str:
        await workflow.wait_condition(lambda: False)
        return label


@workflow.defn(name="WeftInteropSlow")
class SlowWorkflow:
    """Answers after a durable timer, longer than the server's history long poll (20 s)."""

    @workflow.run
    async def run(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds:g} s"


@workflow.defn(name="WeftInteropNone")
class NoneWorkflow:
    """Returns None, which Python sends as a binary/null payload."""

    @workflow.run
    async def run(self) -> None:
        return None


async def serve(args: argparse.Namespace) -> None:
    address = os.environ.get("WEFT_TEMPORAL_ADDRESS")
    namespace = os.environ.get("WEFT_TEMPORAL_NAMESPACE", "default")
    if not address:
        sys.exit("python_peer: WEFT_TEMPORAL_ADDRESS is not set — run through scripts/with-services --need temporal")
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=args.task_queue,
                      workflows=[OrderWorkflow, FailWorkflow, WaitWorkflow, SlowWorkflow, NoneWorkflow],
                      activities=[price], graceful_shutdown_timeout=timedelta(seconds=2)):
        with open(args.ready_file, "w") as f:
            f.write(str(os.getpid()))
        try:
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        except asyncio.TimeoutError:
            print(f"python_peer: stopping after {args.max_seconds}s", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task-queue", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
