"""weft::durable against DBOS Transact (the Python `dbos` package), side by side on SQLite and on
PostgreSQL, same shapes.

    scripts/with-services --need python python benchmarks/dbos_bench.py build/benchmarks/bench.durable_steps \
        [--runs 200] [--rounds 5] [--dir /tmp] [--postgres "$WEFT_POSTGRES_URL"]

Each round runs, one after the other, each in a fresh process on a fresh database file in --dir:
  - `bench.durable_steps --rounds 1` (weft::local, weft::durable with synchronous = normal and = full);
  - this script's DBOS side: an 8-step chain workflow (`@DBOS.workflow` calling the `@DBOS.step`
    `x + 1` eight times), --runs runs started at once with `DBOS.start_workflow` and then all awaited
    (steps/s), and one run at a time (wall time per step, start to result, over 8 steps): once on
    DBOS's default SQLite system database, once with weft::durable's settings (WAL, synchronous =
    normal) through a SQLAlchemy engine handed to DBOS (`system_database_engine`).
With --postgres (a superuser's URL; `scripts/with-services --need postgres,python` sets
WEFT_POSTGRES_URL), each round also creates two fresh databases on that server, one for each side,
both with `synchronous_commit = on` (every commit waits for the server's disk, whatever the server's
default), and runs weft::durable's PostgreSQL rows (`--postgres`) and DBOS with its system database
there. The figures are the medians over rounds; the journal mode is read back from each SQLite file.
"""
import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time


def dbos_side(runs: int, path: str, wal: bool) -> dict:
    from dbos import DBOS, DBOSConfig

    on_postgres = path.startswith("postgresql://")
    url = path if on_postgres else f"sqlite:///{path}"
    config = DBOSConfig(name="weft-bench", system_database_url=url, run_admin_server=False)
    if wal:  # weft::durable's settings, through the engine DBOS lets a user hand it
        import sqlalchemy

        engine = sqlalchemy.create_engine(f"sqlite:///{path}")

        @sqlalchemy.event.listens_for(engine, "connect")
        def pragmas(conn, _record):
            c = conn.cursor()
            c.execute("pragma journal_mode = wal")
            c.execute("pragma synchronous = normal")
            c.close()

        config["system_database_engine"] = engine
    DBOS(config=config)

    @DBOS.step()
    def inc(x: int) -> int:
        return x + 1

    @DBOS.workflow()
    def chain(x: int) -> int:
        for _ in range(8):
            x = inc(x)
        return x

    DBOS.launch()
    chain(0)  # warm: the first workflow creates what DBOS creates lazily
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(chain, i) for i in range(runs)]
    wrong = sum(h.get_result() != i + 8 for i, h in enumerate(handles))
    chain_sps = runs * 8 / (time.perf_counter() - t0)
    n = max(10, runs // 10)
    t0 = time.perf_counter()
    for i in range(n):
        wrong += chain(i) != i + 8
    step_us = (time.perf_counter() - t0) * 1e6 / (n * 8)
    DBOS.destroy()
    if on_postgres:
        import psycopg

        with psycopg.connect(path) as db:
            mode = "synchronous_commit " + db.execute("show synchronous_commit").fetchone()[0]
    else:
        db = sqlite3.connect(path)
        mode = db.execute("pragma journal_mode").fetchone()[0]
        db.close()
    return {"chain_sps": chain_sps, "step_us": step_us, "wrong": wrong, "journal_mode": mode}


DBOS_VARIANTS = {"dbos (its default SQLite)": False, "dbos, WAL + synchronous = normal": True}
DBOS_PG = "dbos on PostgreSQL"


def weft_side(binary: str, runs: int, directory: str, postgres: str | None) -> dict:
    out = subprocess.run([binary, "--runs", str(runs), "--rounds", "1", "--dir", directory] +
                         (["--postgres", postgres] if postgres else []), capture_output=True,
                         text=True, timeout=600, check=True).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()  # <engine name, maybe with spaces> <chain> <fan> <us per step> <peak RSS>
        if line.startswith("weft::") and len(parts) >= 5:
            rows[" ".join(parts[:-4])] = {"chain_sps": float(parts[-4]), "fan_sps": float(parts[-3]),
                                          "step_us": float(parts[-2])}
    return rows


def with_database(server: str, name: str) -> str:
    """The URL of database `name` on `server`, created afresh with synchronous_commit = on."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {name}")
        db.execute(f"ALTER DATABASE {name} SET synchronous_commit = on")
    head, _, tail = server.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + ("?" + tail if tail else "")


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_dbos(runs: int, path: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--dbos-side", str(runs), path, mode],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"dbos bench: the DBOS side failed: {out.stderr[-2000:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    if d["wrong"]:
        sys.exit(f"dbos bench: DBOS returned {d['wrong']} wrong results")
    return d


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--dbos-side":  # one DBOS round, in its own process
        print(json.dumps(dbos_side(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "wal")))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("durable_steps")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--postgres", help="a PostgreSQL superuser's URL: adds the PostgreSQL rows")
    a = ap.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError:
        sys.exit("dbos bench: the Python package dbos is missing from this interpreter: "
                 "run it through scripts/with-services --need python (the peer venv pins it)")
    figures: dict[str, dict[str, list[float]]] = {}
    modes = set()
    for r in range(a.rounds):
        pg_weft = with_database(a.postgres, f"weft_bench_w{os.getpid()}_{r}") if a.postgres else None
        try:
            for name, row in weft_side(a.durable_steps, a.runs, a.dir, pg_weft).items():
                for k, v in row.items():
                    figures.setdefault(name, {}).setdefault(k, []).append(v)
        finally:
            if a.postgres:
                drop_database(a.postgres, f"weft_bench_w{os.getpid()}_{r}")
        for variant, wal in DBOS_VARIANTS.items():
            path = os.path.join(a.dir, f"weft-bench-dbos-{os.getpid()}-{r}.sqlite")
            try:
                d = run_dbos(a.runs, path, "wal" if wal else "default")
            finally:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)
            modes.add(f"{variant}: {d.pop('journal_mode')}")
            d.pop("wrong")
            for k, v in d.items():
                figures.setdefault(variant, {}).setdefault(k, []).append(v)
        if a.postgres:
            name = f"weft_bench_d{os.getpid()}_{r}"
            try:
                d = run_dbos(a.runs, with_database(a.postgres, name), "default")
            finally:
                drop_database(a.postgres, name)
            modes.add(f"{DBOS_PG}: {d.pop('journal_mode')}")
            d.pop("wrong")
            for k, v in d.items():
                figures.setdefault(DBOS_PG, {}).setdefault(k, []).append(v)
        print(f"round {r + 1}: " + "; ".join(f"{n} chain {f['chain_sps'][-1]:.0f} steps/s, {f['step_us'][-1]:.1f} us/step"
                                          for n, f in figures.items()) + f"; load {os.getloadavg()[0]:.1f}", flush=True)
    med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}
    print(f"\n{a.runs} runs at once, medians of {a.rounds} rounds; journal modes read back: {'; '.join(sorted(modes))}")
    base = [med[v]["chain_sps"] for v in DBOS_VARIANTS] + ([med[DBOS_PG]["chain_sps"]] if a.postgres else [])
    heads = ["÷ DBOS default", "÷ DBOS WAL"] + (["÷ DBOS PG"] if a.postgres else [])
    print(f"{'engine':36s} {'chain steps/s':>14s} {'us per step':>12s} " + " ".join(f"{h:>15s}" for h in heads))
    for n, m in med.items():
        print(f"{n:36s} {m['chain_sps']:14.0f} {m['step_us']:12.1f} " +
              " ".join(f"{m['chain_sps'] / b:14.1f}x" for b in base))


if __name__ == "__main__":
    main()
