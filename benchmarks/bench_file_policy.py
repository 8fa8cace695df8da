"""What the per-user file policy (sqlml/wire/file_policy.py) costs a user without file access.

One DuckDB file, two gateways, psycopg2 (simple protocol, autocommit), one connection each:

  locked      the default gateway: the instance locked down by DuckDB, no check (baseline)
  allowed     per-user mode, the user with files=allow: no check
  checked     per-user mode, a user without: every statement planned (EXPLAIN) and checked

for three single-row statements: ``SELECT 1``, a primary-key lookup, and a compiled single-row
ML.PREDICT (its kept plan: checked at PREPARE and at each EXECUTE); then the lookup and the
prediction with a bind parameter through psycopg 3 (extended protocol, prepared on the server). The
rounds alternate between the three connections so that the machine's noise falls on all of
them; p50 over --calls calls per statement and connection, and the ratio checked / locked.

Usage: python benchmarks/bench_file_policy.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import psycopg2

import sqlml
from sqlml.wire import auth
from sqlml.wire.backends import duckdb_opener
from sqlml.wire.server import Server, ServerConfig

PASSWORD = "bench-Pa55"
STATEMENTS = {
    "select_1": "SELECT 1",
    "lookup": "SELECT v FROM bench.t WHERE id = 4242",
    "predict": ("SELECT predicted_y FROM ML.PREDICT(MODEL bench.m, (SELECT 0.5::DOUBLE AS x))"),
}

PARAMS = {
    "lookup_params": "SELECT v FROM bench.t WHERE id = %s",
    "predict_params": (
        "SELECT predicted_y FROM ML.PREDICT(MODEL bench.m, (SELECT %s::DOUBLE AS x))"
    ),
}


def prepare(path: str) -> None:
    con = sqlml.connect(path, autocommit=True)
    cur = con.cursor()
    cur.execute("CREATE SCHEMA bench")
    cur.execute("CREATE TABLE bench.t AS SELECT range AS id, range * 2.0 AS v FROM range(100000)")
    cur.execute("ALTER TABLE bench.t ADD PRIMARY KEY (id)")
    cur.execute(
        "CREATE MODEL bench.m OPTIONS (model_type='linear_reg', input_label_cols=['y'])"
        " AS SELECT v / 1000.0 AS x, v / 500.0 + 1 AS y FROM bench.t"
    )
    con.close()


@contextlib.contextmanager
def gateway(path: str, users: auth.Users | None) -> Iterator[int]:
    method = "scram-sha-256" if users is not None else "trust"
    server = Server(
        ServerConfig(port=0, auth_method=method, users=users), duckdb_opener(path, users=users)
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(server.start(), loop).result()
    finally:
        asyncio.run_coroutine_threadsafe(server.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def connect(port: int, user: str) -> psycopg2.extensions.connection:
    con = psycopg2.connect(
        host="127.0.0.1", port=port, dbname="bench", user=user, password=PASSWORD
    )
    con.autocommit = True
    return con


def bound(con: psycopg.Connection[tuple[object, ...]], sql: str) -> Callable[[], object]:
    def run() -> object:
        return con.execute(
            sql, (0.5 if "predict" in sql.lower() else 4242,), prepare=True
        ).fetchall()

    return run


def call(cur: psycopg2.extensions.cursor, sql: str) -> Callable[[], object]:
    def run() -> object:
        cur.execute(sql)
        return cur.fetchall()

    return run


def measure(calls: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Seconds per call of each, in alternating rounds of 100 after a warm-up."""
    for run in calls.values():
        for _ in range(50):
            run()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, n // 100)):
        for name, run in calls.items():
            for _ in range(100):
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    path = str(Path(tempfile.mkdtemp(prefix="sqlml-bench-files-")) / "store.duckdb")
    prepare(path)
    other = str(Path(path).with_name("locked.duckdb"))
    Path(other).write_bytes(Path(path).read_bytes())
    secret = auth.scram_secret(PASSWORD)
    users = auth.Users(
        [auth.Credential("alice", secret, files=True), auth.Credential("bob", secret)]
    )
    with gateway(other, None) as locked_port, gateway(path, users) as port:
        connections = {
            "locked": connect(locked_port, "bench"),
            "allowed": connect(port, "alice"),
            "checked": connect(port, "bob"),
        }
        print("p50 per single-row statement (psycopg2 -> sqlml serve -> DuckDB):")
        for label, sql in STATEMENTS.items():
            runs = {name: call(c.cursor(), sql) for name, c in connections.items()}
            p50 = {k: statistics.median(v) * 1000 for k, v in measure(runs, args.calls).items()}
            cells = "  ".join(f"{k} {v:6.3f} ms" for k, v in p50.items())
            ratio = p50["checked"] / p50["locked"]
            print(f"  {label:<14} {cells}   checked/locked {ratio:.2f}")
        for con in connections.values():
            con.close()
        ports = {
            "locked": (locked_port, "bench"),
            "allowed": (port, "alice"),
            "checked": (port, "bob"),
        }
        bound_connections = {
            name: psycopg.connect(
                f"postgresql://{user}:{PASSWORD}@127.0.0.1:{p}/bench", autocommit=True
            )
            for name, (p, user) in ports.items()
        }
        print("p50 with a bind parameter (psycopg 3, prepared on the server):")
        for label, sql in PARAMS.items():
            runs = {name: bound(c, sql) for name, c in bound_connections.items()}
            p50 = {k: statistics.median(v) * 1000 for k, v in measure(runs, args.calls).items()}
            cells = "  ".join(f"{k} {v:6.3f} ms" for k, v in p50.items())
            ratio = p50["checked"] / p50["locked"]
            print(f"  {label:<14} {cells}   checked/locked {ratio:.2f}")
        for bound_con in bound_connections.values():
            bound_con.close()


if __name__ == "__main__":
    main()
