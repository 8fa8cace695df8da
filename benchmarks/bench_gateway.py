"""sqlml serve over a DuckDB file, measured with psycopg2 against the alternatives.

  predict_latency    one single-row ML.PREDICT per call through the gateway (psycopg2, simple
                     protocol, autocommit), p50 and p99 over --calls calls
  predict_params     the same prediction with the five features as bind parameters (psycopg 3,
                     extended protocol, server-side binding: a prepared single-row predict)
  client_side        what a client would do instead: SELECT the row's features through the
                     gateway and score them in the client with onnxruntime on the stored graph
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psycopg
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
PREDICT_PARAMS = (
    "SELECT predicted_y FROM ML.PREDICT(MODEL bench.m, (SELECT %s::float8 AS f0,"
    " %s::float8 AS f1, %s::float8 AS f2, %s::float8 AS f3, %s::float8 AS f4))"
)
FEATURES = "SELECT 0.1 AS f0, 0.2 AS f1, 0.3 AS f2, 0.4 AS f3, 0.5 AS f4"


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
    def call() -> None:
        cur.execute(sql)
        cur.fetchall()

    return timed(call, calls)


def timed(call: Callable[[], object], calls: int) -> list[float]:
    for _ in range(50):  # warm-up: plan cache, scorer, prepared statements
        call()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def with_params(gateway: str, calls: int) -> list[float]:
    """psycopg 3 binds on the server (Parse/Bind/Execute); after a few calls it keeps the
    statement prepared, so each call is Bind + Execute of the same statement."""
    with psycopg.connect(gateway, autocommit=True) as con, con.cursor() as cur:
        rng = np.random.default_rng(1)

        def call() -> None:
            cur.execute(PREDICT_PARAMS, [float(v) for v in rng.normal(size=5)])
            cur.fetchall()

        return timed(call, calls)


def client_side(cur: psycopg2.extensions.cursor, path: str, calls: int) -> list[float]:
    """The alternative: fetch the features, score them here with the stored graph."""
    con = sqlml.connect(path, autocommit=True)
    onnx = con.execute(
        "SELECT v.onnx FROM sqlml.versions v JOIN sqlml.models m USING (schema_name, model_name)"
        " WHERE v.version = m.current_version AND m.model_name = 'm'"
    ).fetchone()
    con.close()
    assert onnx is not None
    session = ort.InferenceSession(bytes(onnx[0]), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def call() -> None:
        cur.execute(FEATURES)
        row = cur.fetchall()[0]
        feed = {n: np.array([[float(v)]]) for n, v in zip(names, row, strict=True)}
        session.run(None, feed)

    return timed(call, calls)


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
        print("latency (psycopg2 / psycopg 3 -> sqlml serve -> DuckDB):")
        p50, p99 = summary("predict_latency", latencies(cur, PREDICT, args.calls))
        params_p50, params_p99 = summary("predict_params", with_params(gateway, args.calls))
        alternative, _ = summary("client_side", client_side(cur, path, args.calls))
        select, _ = summary("select_latency", latencies(cur, "SELECT 1", args.calls))
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
    verdict = "MET" if params_p50 < 2 and params_p99 < 10 else "NOT MET"
    print(f"  predict_params p50 {params_p50:.3f} ms, p99 {params_p99:.3f} ms: {verdict}")
    print(f"  predict_latency p50 / predict_in_process p50: {p50 / limit:.2f}")
    print(f"  predict_latency p50 / select_latency p50: {p50 / select:.2f}")
    print(f"  predict_latency p50 / client_side p50: {p50 / alternative:.2f}")
    print(f"  predict_params p50 / predict_latency p50: {params_p50 / p50:.2f}")
    ratio = postgres / through
    print(f"  gateway throughput / direct PostgreSQL (target >= 0.5): {ratio:.2f}", end="  ")
    print("MET" if ratio >= 0.5 else "NOT MET")


if __name__ == "__main__":
    main()
