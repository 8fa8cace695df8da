"""ALTER MODEL ... RETRAIN with 1% new rows against a full retrain, in one run (issue 15).

N rows x 8 numeric features, a string feature (4 categories and NULL) and a timestamp watermark;
linear_reg. Then 1% more rows arrive, and the model is brought up to date three ways:

  full          CREATE OR REPLACE MODEL of the plain model (scikit-learn on every row): what a
                user does today, and what BigQuery ML does
  full_incr     CREATE OR REPLACE MODEL with incremental = TRUE (the sufficient statistics of
                every row: the same model, computed another way)
  retrain       ALTER MODEL ... RETRAIN of the incremental model: reads the new rows only

Each is timed once per repeat (the table grows by 1% before each RETRAIN, as it would each
day), and printed as a ratio to ``full`` (the issue's bound: at most 0.1x); the models' mean
squared errors on all rows are printed side by side (the bound: within 1%).

Usage: python benchmarks/bench_retrain.py [--engine duckdb|postgres] [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import time

from common import database, series

import sqlml

FEATURES = [f"f{i}" for i in range(8)]


def rows_sql(engine: str, start: int, stop: int) -> str:
    features = ", ".join(
        f"CAST(sin(i * {k + 1}.3) AS DOUBLE PRECISION) AS f{k}" for k in range(len(FEATURES))
    )
    label = " + ".join(f"{k + 1} * sin(i * {k + 1}.3)" for k in range(len(FEATURES)))
    return (
        f"SELECT {features},"
        " CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || CAST(i % 4 AS TEXT) END AS c,"
        f" CAST({label} + cos(i * 0.7) + (i % 4) AS DOUBLE PRECISION) AS y,"
        " TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 second' AS ts"
        f" FROM {series(engine, start, stop)}"
    )


def timed(cur: sqlml.Cursor, sql: str) -> float:
    started = time.perf_counter()
    cur.execute(sql)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with database(args.engine, "bench_retrain") as db:
        con = sqlml.connect(db, autocommit=True)
        cur = con.cursor()
        cur.execute("CREATE SCHEMA bench")
        cur.execute(f"CREATE TABLE bench.rows AS {rows_sql(args.engine, 0, args.rows)}")
        base = "model_type = 'linear_reg', input_label_cols = ['y'], data_split_method = 'NO_SPLIT'"
        columns = ", ".join([*FEATURES, "c", "y"])  # (the watermark is not a feature)
        plain = (
            f"CREATE OR REPLACE MODEL bench.full OPTIONS ({base})"
            f" AS SELECT {columns} FROM bench.rows"
        )
        incremental = (
            f"CREATE OR REPLACE MODEL bench.incr OPTIONS ({base}, incremental = TRUE,"
            " watermark_col = 'ts') AS SELECT * FROM bench.rows"
        )
        cur.execute(incremental)  # (the model RETRAIN brings up to date)
        print(f"{args.engine}, {args.rows:,} rows, 1% new rows per RETRAIN")
        n = args.rows
        for _ in range(args.repeat):
            new = max(1, n // 100)
            cur.execute(f"INSERT INTO bench.rows {rows_sql(args.engine, n, n + new)}")
            n += new
            times = {
                "retrain": timed(cur, "ALTER MODEL bench.incr RETRAIN"),
                "full": timed(cur, plain),
                "full_incr": timed(cur, incremental.replace("bench.incr", "bench.again")),
            }
            errors = {}
            for name, model in (("full", "full"), ("retrain", "incr"), ("full_incr", "again")):
                cur.execute(
                    "SELECT avg((predicted_y - y) * (predicted_y - y))"
                    f" FROM ML.PREDICT(MODEL bench.{model}, TABLE bench.rows)"
                )
                errors[name] = float(cur.fetchall()[0][0])
            for name in ("full", "full_incr", "retrain"):
                print(
                    f"  {n:>11,} rows  {name:9} {times[name]:8.2f} s"
                    f"  {times[name] / times['full']:6.3f}x"
                    f"  mse {errors[name]:.9g} ({errors[name] / errors['full'] - 1:+.2e})"
                )
        con.close()


if __name__ == "__main__":
    main()
