"""The cost of hyperparameter tuning (issue 17's benchmark "tuning overhead per trial against a
plain CREATE MODEL"), on one engine, in one run, and how closely AutoML keeps its budget.

For each model type, on the same rows:

  plain    CREATE OR REPLACE MODEL with fixed options (AUTO_SPLIT)
  tuned    the same with num_trials = K and a GRID_SEARCH over K values of one option, so that
           every trial trains as much as the plain model does (80/10/10 split)

and prints tuned / K / plain: what one trial costs beside a plain training (the split, the test
rows' scoring, each trial's graph kept in the store), and the search's own share. Then AutoML
with a budget of B seconds: its wall time / B.

Usage: python benchmarks/bench_tuning.py [--engine duckdb|postgres] [--rows 100000]
    [--trials 6] [--budget 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import time

import common

import sqlml

FEATURES = 10
MODELS = {  # name -> (model_type, fixed options, the option the grid varies and its K values)
    "linear": (
        "linear_reg",
        {"l2_reg": 1.0},
        "l2_reg",
        lambda k: [0.5 * (i + 1) for i in range(k)],
    ),
    "trees": (
        "boosted_tree_regressor",
        {"max_iterations": 10, "learn_rate": 0.3},
        "learn_rate",
        lambda k: [round(0.1 + 0.05 * i, 2) for i in range(k)],
    ),
}


def table(engine: str, rows: int) -> str:
    xs = ", ".join(f"sin(i * {j + 1}.37) AS x{j}" for j in range(FEATURES))
    return (
        f"CREATE TABLE b.t AS SELECT i, {xs},"
        " CASE i % 3 WHEN 0 THEN 'u' WHEN 1 THEN 'v' ELSE 'w' END AS s,"
        " sin(i * 1.37) + 2 * sin(i * 3.37) + (i % 3) + sin(i * 0.71) AS y"
        f" FROM {common.series(engine, 0, rows)}"
    )


def run(con: sqlml.Connection, sql: str) -> None:
    con.execute(sql)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inputs = ", ".join([*(f"x{j}" for j in range(FEATURES)), "s"])
    with common.database(args.engine, "bench_tuning") as database:
        con = sqlml.connect(database, autocommit=True)
        con.execute("CREATE SCHEMA b")
        con.execute(table(args.engine, args.rows))
        print(f"{args.engine}, {args.rows:,} rows, {args.trials} trials, best of {args.repeat}")
        for name, (model_type, fixed, varied, values) in MODELS.items():
            grid = ", ".join(repr(v) for v in values(args.trials))
            tuning = {
                **{k: v for k, v in fixed.items() if k != varied},
                "num_trials": args.trials,
                "hparam_tuning_algorithm": "'GRID_SEARCH'",
                varied: f"HPARAM_CANDIDATES([{grid}])",
            }
            plain_sql, tuned_sql = (
                f"CREATE OR REPLACE MODEL b.{name} OPTIONS (model_type = '{model_type}',"
                " input_label_cols = ['y'], "
                + ", ".join(f"{k} = {v}" for k, v in options.items())
                + f") AS SELECT {inputs}, y FROM b.t"
                for options in (fixed, tuning)
            )
            run(con, plain_sql)  # (warm: the libraries imported, the table cached)
            times = common.best_of(
                {
                    "plain": functools.partial(run, con, plain_sql),
                    "tuned": functools.partial(run, con, tuned_sql),
                },
                args.repeat,
            )
            per_trial = times["tuned"] / args.trials
            print(
                f"  {name:8} plain {times['plain']:7.3f} s   tuned {times['tuned']:7.3f} s"
                f"   per trial {per_trial:7.3f} s = {per_trial / times['plain']:.2f}x plain"
            )
        started = time.perf_counter()
        con.execute(
            "CREATE OR REPLACE MODEL b.auto OPTIONS (model_type = 'automl_regressor',"
            f" input_label_cols = ['y'], budget_hours = {args.budget / 3600!r})"
            f" AS SELECT {inputs}, y FROM b.t"
        )
        took = time.perf_counter() - started
        (trials,) = con.execute("SELECT count(*) FROM ML.TRIAL_INFO(MODEL b.auto)").fetchone()
        print(
            f"  automl   budget {args.budget:g} s: took {took:.1f} s = {took / args.budget:.2f}x"
            f" the budget, {trials} trials"
        )
        con.close()


if __name__ == "__main__":
    main()
