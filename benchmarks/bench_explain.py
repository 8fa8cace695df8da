"""The cost of ML.EXPLAIN_PREDICT against ML.PREDICT (issue 17's benchmark "explanation cost per
row against prediction cost"), on one engine, in one run: a linear_reg and a binary and a
3-class logistic_reg model, and a boosted_tree_regressor (20 rounds of depth 6: TreeSHAP by
XGBoost in the engine's UDF, functions/explain_trees.py) and a 3-class boosted_tree_classifier,
over 10 numeric features and 2 categorical ones, each query
aggregated so that the rows are computed, not sent:

  predict   SELECT sum(<predicted>) FROM ML.PREDICT(MODEL m, TABLE t)
  explain   SELECT sum(prediction_value), sum(len(top_feature_attributions)) FROM
            ML.EXPLAIN_PREDICT(MODEL m, TABLE t)   (top_k_features 5, BigQuery's default)
  explain_1 the same with STRUCT(1 AS top_k_features)

and prints explain / predict, and the time per row of each.

Usage: python benchmarks/bench_explain.py [--engine duckdb|postgres] [--rows 1000000] [--repeat 5]
    [--models linear,binary,multiclass,trees,trees_multiclass]
"""

from __future__ import annotations

import argparse
import functools

import common

import sqlml

FEATURES = 10
MODELS = {  # name -> (model_type, label, what to sum of ML.PREDICT, more options)
    "linear": ("linear_reg", "y", "predicted_y", "max_iterations = 5"),
    "binary": (
        "logistic_reg",
        "c",
        "CASE WHEN predicted_c THEN 1 ELSE 0 END",
        "max_iterations = 5",
    ),
    "multiclass": ("logistic_reg", "k", "length(predicted_k)", "max_iterations = 5"),
    "trees": ("boosted_tree_regressor", "y", "predicted_y", "max_iterations = 20"),
    "trees_multiclass": (
        "boosted_tree_classifier",
        "k",
        "length(predicted_k)",
        "max_iterations = 20",
    ),
}


def table(engine: str, rows: int) -> str:
    xs = ", ".join(f"sin(i * {j + 1}.37) AS x{j}" for j in range(FEATURES))
    return (
        f"CREATE TABLE b.t AS SELECT i, {xs},"
        " CASE i % 4 WHEN 0 THEN 'a' WHEN 1 THEN 'b' WHEN 2 THEN 'c' ELSE NULL END AS s1,"
        " CASE i % 3 WHEN 0 THEN 'u' WHEN 1 THEN 'v' ELSE 'w' END AS s2,"
        " sin(i * 1.37) + 2 * sin(i * 3.37) + (i % 4) AS y,"
        " sin(i * 1.37) + sin(i * 7.37) > 0 AS c,"
        " CASE WHEN sin(i * 2.37) > 0.4 THEN 'hi' WHEN sin(i * 2.37) < -0.4 THEN 'lo'"
        f" ELSE 'mid' END AS k FROM {common.series(engine, 0, rows)}"
    )


def run(con: sqlml.Connection, sql: str) -> None:
    con.execute(sql).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    inputs = ", ".join([*(f"x{j}" for j in range(FEATURES)), "s1", "s2"])
    size = "len" if args.engine == "duckdb" else "jsonb_array_length"
    with common.database(args.engine, "bench_explain") as database:
        con = sqlml.connect(database, autocommit=True)
        con.execute("CREATE SCHEMA b")
        con.execute(table(args.engine, args.rows))
        print(f"{args.engine}, {args.rows:,} rows, best of {args.repeat}")
        for name in args.models.split(","):
            model_type, label, predicted, options = MODELS[name]
            con.execute(
                f"CREATE MODEL b.{name} OPTIONS (model_type = '{model_type}',"
                f" input_label_cols = ['{label}'], data_split_method = 'NO_SPLIT',"
                f" {options}) AS SELECT {inputs}, {label} FROM b.t WHERE i < 20000"
            )
            source = f"(SELECT {inputs} FROM b.t)"
            explain = (
                f"SELECT sum(prediction_value), sum({size}(top_feature_attributions))"
                f" FROM ML.EXPLAIN_PREDICT(MODEL b.{name}, {source}"
            )
            queries = {
                "predict": f"SELECT sum({predicted}) FROM ML.PREDICT(MODEL b.{name}, {source})",
                "explain": explain + ")",
                "explain_1": explain + ", STRUCT(1 AS top_k_features))",
            }
            times = common.best_of(
                {case: functools.partial(run, con, sql) for case, sql in queries.items()},
                args.repeat,
            )
            per_row = {case: seconds / args.rows * 1e9 for case, seconds in times.items()}
            print(
                f"  {name:16} predict {times['predict']:6.3f} s ({per_row['predict']:5.0f} ns/row)"
                f"  explain {times['explain']:6.3f} s ({per_row['explain']:5.0f} ns/row,"
                f" {times['explain'] / times['predict']:.2f}x)"
                f"  top 1 {times['explain_1']:6.3f} s"
                f" ({times['explain_1'] / times['predict']:.2f}x)"
            )
        con.close()


if __name__ == "__main__":
    main()
