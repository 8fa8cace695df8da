"""Training within a memory budget (issue 15, point 3; sqlml/ml/streamed.py), in one run.

A table of N rows x 20 DOUBLE features, a DOUBLE label and a BOOL label (176 bytes a row in
Arrow: 15M rows are 2.5 GiB) is trained on with ``max_training_memory_mb`` = B (256 by
default: the table is 10x the budget), each training in a fresh process so its peak RSS is its
own (on PostgreSQL, the backend's: VmHWM of pg_backend_pid()):

  fixed          CREATE MODEL linear_reg on 1,000 rows: the process with sqlml, scikit-learn,
                 onnxruntime and the engine loaded (the fixed overhead)
  linear_big     linear_reg on the N rows, streamed (the Gram matrix; exact)
  logistic_big   logistic_reg on the N rows, streamed (Newton's method, a pass per step)

and, for throughput, on M rows that fit in memory (N / 8 by default), each model trained as
the user would without a budget (in memory) and streamed (a budget that forces it):

  linear_memory / linear_stream, logistic_memory / logistic_stream

Printed: peak RSS per case, the budget plus the fixed overhead (the bound), seconds, and the
streamed / in-memory time ratios (the issue's bound: within 1.5x).

Usage: python benchmarks/bench_memory.py [--engine duckdb|postgres] [--rows N] [--budget-mb B]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import database, series

import sqlml

FEATURES = 20
CHILD = r"""
import json, resource, sys, time
import sqlml
db, sql, engine = sys.argv[1], sys.argv[2], sys.argv[3]
con = sqlml.connect(db, autocommit=True)
cur = con.cursor()
pid = None
if engine == "postgres":
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
started = time.perf_counter()
cur.execute(sql)
seconds = time.perf_counter() - started
if pid is not None:
    with open(f"/proc/{pid}/status") as status:
        peak = [int(l.split()[1]) for l in status if l.startswith("VmHWM")][0] / 1024
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cur.execute("SELECT training_info FROM sqlml.versions ORDER BY created_at DESC LIMIT 1")
info = cur.fetchone()[0]
info = json.loads(info) if isinstance(info, str) else info
print(json.dumps({"seconds": seconds, "peak_mb": peak, "passes": info.get("passes", 0),
                  "streamed": bool(info.get("streamed"))}))
"""


def table_sql(engine: str, name: str, rows: int) -> str:
    features = ", ".join(
        f"CAST(sin(i * {k + 1}.37) AS DOUBLE PRECISION) AS f{k}" for k in range(FEATURES)
    )
    signal = " + ".join(f"{(k % 5) - 2} * sin(i * {k + 1}.37)" for k in range(FEATURES))
    return (
        f"CREATE TABLE bench.{name} AS SELECT {features},"
        f" CAST({signal} + cos(i * 0.61) AS DOUBLE PRECISION) AS y,"
        f" {signal} + 2 * cos(i * 0.61) > 0 AS c FROM {series(engine, 0, rows)}"
    )


def train(db: str, engine: str, sql: str) -> dict[str, float]:
    found = subprocess.run(
        [sys.executable, "-c", CHILD, db, sql, engine],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(found.stdout.strip().splitlines()[-1]))


def create(model: str, label: str, table: str, budget: float | None) -> str:
    kind = "linear_reg" if label == "y" else "logistic_reg"
    columns = ", ".join(f"f{k}" for k in range(FEATURES))
    options = f"model_type = '{kind}', input_label_cols = ['{label}']"
    if budget is not None:
        options += f", max_training_memory_mb = {budget}"
    return (
        f"CREATE OR REPLACE MODEL bench.{model} OPTIONS ({options})"
        f" AS SELECT {columns}, {label} FROM bench.{table}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=15_000_000)
    parser.add_argument("--small", type=int, default=0, help="rows of the throughput table")
    parser.add_argument("--budget-mb", type=float, default=256)
    args = parser.parse_args()
    small = args.small or args.rows // 8
    with database(args.engine, "bench_memory") as db:
        con = sqlml.connect(db, autocommit=True)
        cur = con.cursor()
        cur.execute("CREATE SCHEMA bench")
        started = time.perf_counter()
        for name, rows in (("big", args.rows), ("small", small), ("tiny", 1000)):
            cur.execute(table_sql(args.engine, name, rows))
        con.close()
        arrow_gib = args.rows * (FEATURES + 1) * 8 / (1 << 30)
        print(
            f"{args.engine}: {args.rows} rows x {FEATURES} features (~{arrow_gib:.2f} GiB of"
            f" Arrow doubles), budget {args.budget_mb:g} MiB; tables made in"
            f" {time.perf_counter() - started:.0f}s"
        )
        cases = {
            "fixed": create("m_fixed", "y", "tiny", None),
            "linear_big": create("m_lb", "y", "big", args.budget_mb),
            "logistic_big": create("m_gb", "c", "big", args.budget_mb),
            "linear_memory": create("m_lm", "y", "small", None),
            "linear_stream": create("m_ls", "y", "small", 16),
            "logistic_memory": create("m_gm", "c", "small", None),
            "logistic_stream": create("m_gs", "c", "small", 16),
        }
        got = {name: train(db, args.engine, sql) for name, sql in cases.items()}
    fixed = got["fixed"]["peak_mb"]
    bound = args.budget_mb + fixed
    print(f"{'case':16} {'peak MiB':>9} {'seconds':>8} {'passes':>6} streamed")
    for name, g in got.items():
        print(
            f"{name:16} {g['peak_mb']:9.0f} {g['seconds']:8.2f} {g['passes']:6.0f} {g['streamed']}"
        )
    for name in ("linear_big", "logistic_big"):
        peak = got[name]["peak_mb"]
        verdict = "under" if peak <= bound else "OVER"
        print(
            f"{name}: peak {peak:.0f} MiB, {verdict} the budget + the fixed overhead"
            f" ({args.budget_mb:g} + {fixed:.0f} = {bound:.0f} MiB)"
        )
    for model in ("linear", "logistic"):
        ratio = got[f"{model}_stream"]["seconds"] / got[f"{model}_memory"]["seconds"]
        print(f"{model}: streamed / in memory on {small} rows = {ratio:.2f}x (bound 1.5x)")


if __name__ == "__main__":
    main()
