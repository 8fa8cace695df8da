"""What the training statistics (sqlml/ml/statistics.py, issue 14) cost CREATE MODEL, and what the
data monitoring functions take, on 1M rows in an embedded DuckDB file.

CREATE OR REPLACE MODEL (logistic_reg, 10 float features, one string feature with 5 values,
a boolean label) runs alternately with the statistics as shipped and with them switched off
(validation.describe and validation.check replaced by no-ops in this process), --runs times
each; the statistics step itself is also timed alone on the same Arrow table. Then
ML.DESCRIBE_DATA, ML.VALIDATE_DATA_SKEW and ML.VALIDATE_DATA_DRIFT over the 1M rows.

Usage: python benchmarks/bench_statistics.py [--rows N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlml
from sqlml import validation

FEATURES = 10


def _load(con: sqlml.Connection, rows: int) -> None:
    columns = ", ".join(
        f"CAST(hash(i * {k + 1}) % 10000 AS DOUBLE) / 100.0 AS f{k}" for k in range(FEATURES)
    )
    con.execute(
        f"CREATE TABLE t AS SELECT {columns}, 'v' || CAST(i % 5 AS VARCHAR) AS s,"
        f" (hash(i) % 3 = 0) AS label FROM range({rows}) AS r(i)"
    )


def _time(con: sqlml.Connection, sql: str, rows: bool = True) -> float:
    started = time.perf_counter()
    cursor = con.execute(sql)
    if rows:
        cursor.fetchall()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    create = (
        "CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg',"
        " data_split_method = 'NO_SPLIT', max_iterations = 5) AS SELECT * FROM t"
    )
    describe, check = validation.describe, validation.check

    def off(flag: bool) -> None:
        validation.describe = (
            (lambda table, label: {"columns": {}, "label": label}) if flag else describe
        )  # type: ignore[assignment]
        validation.check = (lambda *a: []) if flag else check  # type: ignore[assignment]

    with tempfile.TemporaryDirectory() as folder:
        con = sqlml.connect(str(Path(folder) / "bench.duckdb"), autocommit=True)
        _load(con, args.rows)
        con.execute(create)  # warm-up (imports, first version)
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(args.runs):
            for mode in ("without", "with"):
                off(mode == "without")
                times[mode].append(_time(con, create, rows=False))
        off(False)
        table = con.execute("SELECT * FROM t").fetch_arrow_table()
        started = time.perf_counter()
        validation.describe(table, "label")
        alone = time.perf_counter() - started
        shifted = "(SELECT f0 + 10 AS f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, s FROM t)"
        functions: dict[str, Any] = {
            "ML.DESCRIBE_DATA(TABLE t)": "SELECT * FROM ML.DESCRIBE_DATA(TABLE t)",
            "ML.VALIDATE_DATA_SKEW(MODEL m, shifted)": (
                f"SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL m, {shifted})"
            ),
            "ML.VALIDATE_DATA_DRIFT(TABLE t, shifted)": (
                f"SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE t, {shifted})"
            ),
        }
        timed = {name: _time(con, sql) for name, sql in functions.items()}
        con.close()
    w, wo = statistics.median(times["with"]), statistics.median(times["without"])
    print(f"rows {args.rows}, runs {args.runs}")
    print(f"CREATE MODEL without statistics: {[round(t, 2) for t in times['without']]} s")
    print(f"CREATE MODEL with statistics:    {[round(t, 2) for t in times['with']]} s")
    print(f"median ratio with / without: {w / wo:.3f} (+{w - wo:.2f} s)")
    print(f"statistics alone on the Arrow table: {alone:.2f} s")
    for name, seconds in timed.items():
        print(f"{name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
