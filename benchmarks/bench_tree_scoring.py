"""Tree ensembles: compiled SQL against onnxruntime against XGBoost itself (issue 13, point 5).

An XGBoost regressor of T trees at depth D (sqlml's own conversion, sqlml.ml.trees_onnx) is stored
as a model version over 10 numeric columns (one [N, 1] input per column, as CREATE MODEL stores
them) and scored three ways over the same N rows, alternately in one process, best of R:

  compiled   SELECT sum(predicted_y) FROM ML.PREDICT(MODEL m, TABLE t, STRUCT('compiled' AS
             scoring)): the trees as nested CASE expressions in the engine's own SQL
  runtime    the same with 'runtime': onnxruntime in the engine (a vectorized DuckDB UDF, a
             PL/Python function on PostgreSQL)
  xgboost    Booster.inplace_predict on the rows already in a numpy array (no database at all:
             the floor a Python user would see)
  compile    compile_onnx of the graph alone (what the first query after a change pays, cached
             afterwards), and the SQL text size of the compiled output

The ratio compiled / runtime decides: where it passes 1, onnxruntime scores faster, so
sqlml.ml.to_sql_trees.MAX_NODES (total tree nodes, interior and leaves) is set below that size
per engine. The sums printed must agree (compiled and runtime within 1e-9 relative).

Usage: python benchmarks/bench_tree_scoring.py [--engine duckdb|postgres] [--rows N]
           [--trees 10,30,100,300] [--depth 6] [--repeat R] [--no-jit] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import xgboost as xgb
from common import best_of, database
from graphs import per_column
from sqlglot import exp

import sqlml
from sqlml.grammar.statements import ModelRef
from sqlml.ml import to_sql_trees
from sqlml.ml.to_sql import compile_onnx
from sqlml.ml.train import TrainResult
from sqlml.ml.trees_onnx import xgboost_to_onnx
from sqlml.store import InputColumn

FEATURES = [f"f{i}" for i in range(10)]
TABLE = {
    "duckdb": "CREATE TABLE t AS SELECT i AS id, {cols} FROM range({rows}) AS r(i)",
    "postgres": "CREATE TABLE t AS SELECT i AS id, {cols} FROM generate_series(0, {rows} - 1) AS i",
}
NORMAL = {  # a standard normal draw (Box-Muller), as both engines spell it
    "duckdb": "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())",
    "postgres": "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())",
}


def fit(x: np.ndarray[Any, Any], trees: int, depth: int) -> xgb.XGBRegressor:
    y = 3 * x[:, 0] + np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3] - np.abs(x[:, 4]) + 0.1 * x[:, 5]
    y = y + np.random.default_rng(1).normal(size=len(y)) * 0.3
    model = xgb.XGBRegressor(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=1)
    return model.fit(x, y)


def store(con: sqlml.Connection, graph: onnx.ModelProto) -> None:
    """The graph as the current version of model m (a regressor over FEATURES)."""
    result = TrainResult(
        onnx=graph.SerializeToString(),
        model_type="linear_reg",
        kind="regressor",
        inputs=[InputColumn(f, "numeric") for f in FEATURES],
        label="y",
        label_type="double",
        classes=None,
        options={},
        metrics={},
        training_info={},
        feature_info=[],
        row_count=0,
        data_hash="",
    )
    con.session.store.save(
        ModelRef(None, "m"), result, query_sql=None, transform_sql=None, replace=True
    )


def compiled_size(graph: onnx.ModelProto, dialect: str) -> tuple[float, int]:
    """Seconds to compile the graph, and the compiled output's SQL text in bytes."""
    inputs = {f: exp.column(f, quoted=True) for f in FEATURES}
    started = time.perf_counter()
    outputs = compile_onnx(graph, inputs, dialect=dialect, max_nodes=0)  # (measure any size)
    seconds = time.perf_counter() - started
    return seconds, sum(len(e.sql(dialect)) for es in outputs.values() for e in es)


def run(engine: str, rows: int, sizes: list[int], depth: int, repeat: int, jit: bool) -> None:
    limit = to_sql_trees.MAX_NODES[engine]
    to_sql_trees.MAX_NODES[engine] = 10**9  # 'compiled' at every size, to measure it
    with database(engine, "sqlml_bench_trees") as target:
        con = sqlml.connect(target, autocommit=True)
        con.execute("SELECT setseed(0.42)")
        if engine == "postgres" and not jit:
            con.execute("SET jit = off")
        cols = ", ".join(f"{NORMAL[engine]} AS {f}" for f in FEATURES)
        con.execute(TABLE[engine].format(cols=cols, rows=rows))
        con.execute("ANALYZE t")
        x = np.asarray(
            con.execute(f"SELECT {', '.join(FEATURES)} FROM t ORDER BY id").fetchall(),
            dtype=np.float64,
        )
        train = x[: min(len(x), 50_000)]
        jit_note = ", jit off" if engine == "postgres" and not jit else ""
        print(
            f"{engine}{jit_note}: {rows:,} rows x {len(FEATURES)} features, depth {depth},"
            f" best of {repeat}"
        )
        header = (
            f"{'trees':>5} {'nodes':>6} {'SQL KB':>7} {'compile':>8} {'compiled':>9}"
            f" {'runtime':>9} {'xgboost':>8} {'compiled/runtime':>17}"
        )
        print(header)
        for trees in sizes:
            booster = fit(train, trees, depth)
            graph = per_column(xgboost_to_onnx(booster), FEATURES)
            node = next(n for n in graph.graph.node if n.op_type == "TreeEnsemble")
            nodes = to_sql_trees.tree_nodes(node)
            compile_s, sql_bytes = compiled_size(graph, engine)
            store(con, graph)

            def query(mode: str) -> Callable[[], Any]:
                sql = (
                    "SELECT sum(predicted_y) FROM ML.PREDICT(MODEL m, TABLE t,"
                    f" STRUCT('{mode}' AS scoring))"
                )
                return lambda: con.execute(sql).fetchone()[0]  # type: ignore[index]

            compiled, runtime = query("compiled"), query("runtime")
            sums = (compiled(), runtime(), float(booster.predict(x).astype(np.float64).sum()))
            if abs(sums[0] - sums[1]) > 1e-9 * max(1.0, abs(sums[1])):
                raise SystemExit(f"compiled sum {sums[0]!r} differs from runtime {sums[1]!r}")
            timed = best_of(
                {
                    "compiled": compiled,
                    "runtime": runtime,
                    "xgboost": functools.partial(booster.get_booster().inplace_predict, x),
                },
                repeat,
            )
            ratio = timed["compiled"] / timed["runtime"]
            print(
                f"{trees:>5} {nodes:>6} {sql_bytes / 1024:>7.0f} {compile_s * 1000:>6.0f}ms"
                f" {timed['compiled'] * 1000:>7.0f}ms {timed['runtime'] * 1000:>7.0f}ms"
                f" {timed['xgboost'] * 1000:>6.0f}ms {ratio:>17.2f}"
            )
        print(f"MAX_NODES[{engine!r}] = {limit:,} (compiled at or below, onnxruntime above)")
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trees", default="10,30,100,300")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-jit", action="store_true", help="PostgreSQL: SET jit = off")
    parser.add_argument("--quick", action="store_true", help="20k rows, 10 and 100 trees, once")
    args = parser.parse_args()
    sizes = [int(t) for t in args.trees.split(",")]
    if args.quick:
        args.rows, sizes, args.repeat = 20_000, [10, 100], 1
    run(args.engine, args.rows, sizes, args.depth, args.repeat, not args.no_jit)


if __name__ == "__main__":
    main()
