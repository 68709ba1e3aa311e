"""Celery on our Redis: a worker subprocess and a client round-trip one task.

Run through scripts/with-services --need redis python tests/harness/celery_smoke.py.
Broker and result backend are the Redis that scripts/services started (with its password).
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

TIMEOUT_S = 60


def fail(msg: str) -> None:
    print(f"celery smoke: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    url = os.environ.get("WEFT_REDIS_URL")
    if not url:
        fail("WEFT_REDIS_URL is not set — run me through scripts/with-services --need redis")

    # The server must refuse a client without the password (requirepass is on).
    import redis

    try:
        redis.Redis(host=os.environ["WEFT_REDIS_HOST"], port=int(os.environ["WEFT_REDIS_PORT"]),
                    socket_timeout=5).ping()
        fail("Redis answered PING without a password")
    except redis.AuthenticationError:
        pass
    except redis.ResponseError as e:  # older redis-py report NOAUTH as a plain ResponseError
        if "NOAUTH" not in str(e):
            raise

    run = uuid.uuid4().hex[:12]
    queue = f"weft-smoke-{run}"
    with tempfile.TemporaryDirectory(prefix="weft-celery-smoke-") as tmp:
        with open(os.path.join(tmp, "weft_smoke_tasks.py"), "w") as f:
            f.write(textwrap.dedent(f"""
                import os
                from celery import Celery

                app = Celery("weft_smoke", broker=os.environ["WEFT_REDIS_URL"],
                             backend=os.environ["WEFT_REDIS_URL"])
                app.conf.update(result_expires=600, task_default_queue={queue!r},
                                broker_connection_retry_on_startup=True)

                @app.task(name="weft.smoke.add")
                def add(x, y):
                    return {{"sum": x + y, "pid": os.getpid()}}
            """))
        env = dict(os.environ, PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""))
        log_path = os.path.join(tmp, "worker.log")
        with open(log_path, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "weft_smoke_tasks", "worker",
                 "--pool=solo", "--concurrency=1", "-Q", queue, "-n", f"smoke-{run}@%h",
                 "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        ok = False
        try:
            sys.path.insert(0, tmp)
            from weft_smoke_tasks import add  # noqa: E402  (the module is generated above)

            res = add.apply_async((2, 3), queue=queue)
            deadline = time.monotonic() + TIMEOUT_S
            while not res.ready():
                if worker.poll() is not None:
                    fail(f"the Celery worker exited with {worker.returncode} before the task ran")
                if time.monotonic() > deadline:
                    fail(f"no result within {TIMEOUT_S}s")
                time.sleep(0.2)
            value = res.get(timeout=5)
            if res.status != "SUCCESS" or value.get("sum") != 5:
                fail(f"unexpected result: status={res.status} value={value!r}")
            if value.get("pid") != worker.pid:
                fail(f"the task ran in pid {value.get('pid')}, not in our worker {worker.pid}")
            ok = True
            print(f"celery smoke: OK (task {res.id} -> {value['sum']} from worker pid {worker.pid})")
        finally:
            # Stop our worker by its PID: SIGTERM is Celery's warm shutdown.
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)
            if not ok:
                with open(log_path) as f:
                    tail = f.read().splitlines()[-40:]
                print("celery smoke: worker log (last 40 lines):", *tail, sep="\n    ", file=sys.stderr)


if __name__ == "__main__":
    main()
