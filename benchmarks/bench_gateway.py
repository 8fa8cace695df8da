"""sqlml serve over a DuckDB file, measured with psycopg2 against the alternatives.

  predict_latency    one single-row ML.PREDICT per call through the gateway (psycopg2, simple
                     protocol, autocommit), p50 and p99 over --calls calls
  predict_in_process the same statement through sqlml.connect in the client process (the limit)
  select_latency     SELECT 1 through the gateway (the protocol's own cost)
  bulk_gateway       SELECT of 1M rows x (id, f0..f9) through the gateway, fetched by psycopg2
  bulk_postgres      the same rows from a real PostgreSQL 15 (tests/pgcluster.py), fetched the
                     same way: what the issue compares against

pgbench against the same PostgreSQL through the gateway needs the PostgreSQL proxy mode (not
built yet); it is not measured here.

Usage: python benchmarks/bench_gateway.py [--calls N] [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg2
import pyarrow as pa

import sqlml
from sqlml.wire.backends import DuckDBBackend
from sqlml.wire.server import Server, ServerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pgcluster

PREDICT = (
    "SELECT predicted_y FROM ML.PREDICT(MODEL bench.m,"
    " (SELECT 0.1 AS f0, 0.2 AS f1, 0.3 AS f2, 0.4 AS f3, 0.5 AS f4))"
)


def data(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 10))
    columns = {"id": np.arange(rows, dtype=np.int64)}
    columns.update({f"f{i}": x[:, i] for i in range(10)})
    return pa.table(columns)


def prepare(path: str, table: pa.Table) -> None:
    con = sqlml.connect(path, autocommit=True)
    engine = con.session.engine
    engine.execute("CREATE SCHEMA bench")
    engine.register_table("_score", table)
    engine.execute("CREATE TABLE bench.score AS SELECT * FROM _score")
    engine.execute(
        "CREATE TABLE bench.train AS SELECT f0, f1, f2, f3, f4, f0 + f1 > 0 AS y"
        " FROM _score LIMIT 20000"
    )
    engine.unregister_table("_score")
    con.execute(
        "CREATE MODEL bench.m OPTIONS (model_type='logistic_reg', input_label_cols=['y'])"
        " AS SELECT * FROM bench.train"
    )
    con.close()


def latencies(cur: psycopg2.extensions.cursor, sql: str, calls: int) -> list[float]:
    for _ in range(50):  # warm-up: plan cache, scorer
        cur.execute(sql)
        cur.fetchall()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        cur.execute(sql)
        cur.fetchall()
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(name: str, seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(f"  {name:<22} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   ({len(seconds)} calls)")
    return p50, p99


def bulk(dsn: str, query: str) -> float:
    con = psycopg2.connect(dsn)
    try:
        with con.cursor() as cur:
            start = time.perf_counter()
            cur.execute(query)
            rows = cur.fetchall()
            elapsed = time.perf_counter() - start
        assert len(rows) > 0
        return elapsed
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    table = data(args.rows)
    folder = tempfile.mkdtemp(prefix="sqlml-bench-gateway-")
    path = str(Path(folder) / "store.duckdb")  # not bench.duckdb: it would shadow schema bench
    prepare(path, table)
    server = Server(ServerConfig(port=0), lambda db, user: DuckDBBackend(path, db, user))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(server.start(), loop).result()
    gateway = f"postgresql://bench@127.0.0.1:{port}/bench"
    try:
        con = psycopg2.connect(gateway)
        con.autocommit = True
        cur = con.cursor()
        print("latency (psycopg2 -> sqlml serve -> DuckDB):")
        p50, p99 = summary("predict_latency", latencies(cur, PREDICT, args.calls))
        summary("select_latency", latencies(cur, "SELECT 1", args.calls))
        con.close()
        direct = sqlml.connect(path, autocommit=True)
        in_process = []
        for i in range(args.calls // 10 + 50):
            start = time.perf_counter()
            direct.execute(PREDICT).fetchall()
            if i >= 50:
                in_process.append(time.perf_counter() - start)
        direct.close()
        limit, _ = summary("predict_in_process", in_process)
        query = "SELECT * FROM bench.score"
        through = min(bulk(gateway, query) for _ in range(2))
    finally:
        asyncio.run_coroutine_threadsafe(server.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    with pgcluster.server() as pg:
        dsn = pgcluster.create_database(pg, "sqlml_bench_gateway")
        pgcluster.load_table(dsn, "bench", "score", table)
        postgres = min(bulk(dsn, query) for _ in range(2))
        pgcluster.drop_database(pg, "sqlml_bench_gateway")
    print(f"bulk, {args.rows:,} rows x 11 columns fetched by psycopg2:")
    print(f"  bulk_gateway   {through * 1000:9.1f} ms")
    print(f"  bulk_postgres  {postgres * 1000:9.1f} ms")
    print("ratios:")
    verdict = "MET" if p50 < 2 and p99 < 10 else "NOT MET"
    print(f"  predict p50 {p50:.3f} ms (< 2), p99 {p99:.3f} ms (< 10): {verdict}")
    print(f"  predict_latency p50 / predict_in_process p50: {p50 / limit:.2f}")
    ratio = postgres / through
    print(f"  gateway throughput / direct PostgreSQL (target >= 0.5): {ratio:.2f}", end="  ")
    print("MET" if ratio >= 0.5 else "NOT MET")


if __name__ == "__main__":
    main()
