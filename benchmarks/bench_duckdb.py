"""Scoring and training 1M rows x 10 numeric features with logistic_reg on embedded DuckDB.

Runs sqlml side by side with what a user would do instead and with the limits, in one process, and
prints times and ratios (machines here are noisy: compare ratios, run it twice):

scoring, computing every prediction (label and probabilities), keeping none
  compiled     SELECT sum over ML.PREDICT's predicted columns: the graph compiled to native SQL
  runtime      the same through the onnxruntime Arrow UDF
  ort_numpy    onnxruntime on in-memory numpy arrays: the limit for any Python scoring
  scan         a native DuckDB scan of the same columns: sum(f0 + ... + f9), the floor
scoring and keeping the predictions (written to a table in the database file)
  compiled_write   CREATE TABLE AS SELECT * FROM ML.PREDICT(...), compiled
  runtime_write    the same through the UDF
  round_trip       fetch to pandas, scikit-learn predict_proba, write back (what a user does instead)
  write_floor      CREATE TABLE AS SELECT *, two cheap columns: the cost of the write alone
training
  create_model CREATE MODEL on 1M rows (reads the rows, preprocesses, fits, converts, checks, stores)
  sklearn_fit  scikit-learn fitting the same model on the same rows, already in memory as numpy

Usage: python benchmarks/bench_duckdb.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import sqlml
from sqlml.grammar.statements import ModelRef
from sqlml.ml.features import to_numpy

FEATURES = [f"f{i}" for i in range(10)]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def make_data(rows: int) -> pa.Table:
    rng = np.random.default_rng(42)
    x = rng.normal(size=(rows, len(FEATURES)))
    logit = x @ rng.normal(size=len(FEATURES)) + 0.3
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "y": y})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = make_data(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        con = sqlml.connect(str(Path(folder) / "bench.duckdb"), autocommit=True)
        engine = con.session.engine
        engine.register_table("_data", data)
        engine.execute('CREATE TABLE t AS SELECT * FROM "_data"')
        engine.unregister_table("_data")
        results = run(con, data, args.repeat)
        con.close()
    report(results, args.rows)


def run(con: sqlml.Connection, data: pa.Table, repeat: int) -> dict[str, float]:
    engine = con.session.engine
    r: dict[str, float] = {}
    create = "CREATE OR REPLACE MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y']) AS SELECT * FROM t"
    r["create_model"] = best(lambda: con.execute(create), repeat)
    info = con.session.store.load(ModelRef(None, "m")).training_info
    print(
        "create_model phases (last run):",
        {k: round(v, 3) for k, v in info.items() if k.endswith("seconds")},
    )
    x = np.column_stack([data.column(f).to_numpy() for f in FEATURES])
    y = data.column("y").to_numpy()
    opts = {"C": math.inf, "max_iter": 20, "tol": 0.01}
    r["sklearn_fit"] = best(
        lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression(**opts))]).fit(x, y),
        repeat,
    )
    r["sklearn_fit_raw"] = best(lambda: LogisticRegression(**opts).fit(x, y), repeat)

    score = (
        "SELECT count(*) FILTER (WHERE predicted_y), sum(predicted_y_probs[2].prob)"
        " FROM ML.PREDICT(MODEL m, TABLE t, STRUCT('{}' AS scoring))"
    )
    r["compiled"] = best(lambda: con.execute(score.format("compiled")), repeat)
    r["runtime"] = best(lambda: con.execute(score.format("runtime")), repeat)
    write = "CREATE OR REPLACE TABLE out AS SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT('{}' AS scoring))"
    r["compiled_write"] = best(lambda: con.execute(write.format("compiled")), repeat)
    r["runtime_write"] = best(lambda: con.execute(write.format("runtime")), repeat)
    # the same columns the round trip keeps: the inputs, the label and the positive probability
    same = (
        "CREATE OR REPLACE TABLE out AS SELECT * EXCLUDE (predicted_y_probs),"
        " predicted_y_probs[2].prob AS p_true FROM ML.PREDICT(MODEL m, TABLE t, STRUCT('{}' AS scoring))"
    )
    r["compiled_write_same"] = best(lambda: con.execute(same.format("compiled")), repeat)
    r["runtime_write_same"] = best(lambda: con.execute(same.format("runtime")), repeat)
    version = con.session.store.load(ModelRef(None, "m"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(version.onnx, options, providers=["CPUExecutionProvider"])
    feed = {f: to_numpy(data.column(f), "numeric").reshape(-1, 1) for f in FEATURES}
    r["ort_numpy"] = best(lambda: session.run(None, feed), repeat)
    scan = "SELECT sum(" + " + ".join(FEATURES) + ") FROM t"
    r["scan"] = best(lambda: engine.execute(scan), repeat)

    model = Pipeline([("s", StandardScaler()), ("m", LogisticRegression(**opts))]).fit(x, y)

    def round_trip() -> None:
        frame = engine.execute("SELECT * FROM t").table.to_pandas()  # type: ignore[union-attr]
        proba = model.predict_proba(frame[FEATURES].to_numpy())
        frame["predicted_y"] = proba[:, 1] > 0.5
        frame["p_true"] = proba[:, 1]
        engine.register_table("_frame", pa.Table.from_pandas(frame))
        engine.execute('CREATE OR REPLACE TABLE out_pandas AS SELECT * FROM "_frame"')
        engine.unregister_table("_frame")

    r["round_trip"] = best(round_trip, repeat)
    # the floor of every *_write path: copying the input rows plus two columns into a new table
    floor = "CREATE OR REPLACE TABLE out AS SELECT *, f0 > 0 AS predicted_y, f1 AS p_true FROM t"
    r["write_floor"] = best(lambda: engine.execute(floor), repeat)
    return r


def report(r: dict[str, float], rows: int) -> None:
    print(f"rows: {rows:,}")
    for name, seconds in r.items():
        print(f"  {name:<16} {seconds * 1000:9.1f} ms   {rows / seconds / 1e6:8.2f} M rows/s")
    checks = [
        ("compiled vs ort_numpy (target <= 1.0)", r["compiled"] / r["ort_numpy"], 1.0),
        ("round_trip / compiled_write (target >= 5)", r["round_trip"] / r["compiled_write"], None),
        ("runtime_write vs round_trip (target <= 1.0)", r["runtime_write"] / r["round_trip"], 1.0),
        (
            "round_trip / compiled_write_same (target >= 5)",
            r["round_trip"] / r["compiled_write_same"],
            None,
        ),
        (
            "runtime_write_same vs round_trip (target <= 1.0)",
            r["runtime_write_same"] / r["round_trip"],
            1.0,
        ),
        ("round_trip / compiled (scoring only)", r["round_trip"] / r["compiled"], None),
        ("runtime vs ort_numpy", r["runtime"] / r["ort_numpy"], None),
        ("compiled vs scan", r["compiled"] / r["scan"], None),
        ("compiled_write_same vs write_floor", r["compiled_write_same"] / r["write_floor"], None),
        ("round_trip vs write_floor", r["round_trip"] / r["write_floor"], None),
        ("create_model vs sklearn_fit (target <= 1.3)", r["create_model"] / r["sklearn_fit"], 1.3),
        ("create_model vs sklearn_fit_raw", r["create_model"] / r["sklearn_fit_raw"], None),
    ]
    print("ratios:")
    for label, ratio, limit in checks:
        verdict = ""
        if limit is not None:
            verdict = "met" if ratio <= limit else "NOT met"
        elif "target >= 5" in label:
            verdict = "met" if ratio >= 5 else "NOT met"
        print(f"  {label:<46} {ratio:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
