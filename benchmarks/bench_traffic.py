"""ML.PREDICT under a traffic split or with its prediction log (issue 14) against ML.PREDICT of
one version, in one run.

1M rows x 10 float features with an integer key, two versions of one model trained on the first
100k rows with different regularization: ``--model logistic_reg`` (the cheapest model to score:
~20 ns a row, less than the split's hashing and routing) or ``boosted_tree_classifier`` (30
trees of depth 6, compiled to SQL: what a typical tabular model costs). Each variant's cost is
printed as a ratio to one version (the issue's bounds: a split and a 10% shadow within 1.3x, a
1% log within 1.1x), twice: ``cold``, the first run after the ALTER MODEL that set the variant
up (the kept plan is rebuilt: what the first query after a deploy pays), and ``warm``, the best
of the next runs of the kept plan (what a serving loop pays).

  one              ML.PREDICT of the serving version (no split): what a user has without one
  split_key        SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id
  split_random     the same without a key (a random split per row)
  log_1pct         no split; SET OPTIONS (prediction_log_sample = 0.01, prediction_log_key = 'id')
                   (the issue's bound: within 1.1x)
  log_10pct        the log at 10%: what writing a 10% sample costs (the floor of a 10% shadow)
  shadow_10pct     no split; SET SHADOW VERSION 2 SAMPLE 10 PERCENT by key id, no log sample:
                   version 2 scores 10% of the rows into the log (the issue's bound: within 1.3x)

Two shapes of query: ``sum``: every predicted column computed, summed (scoring alone), and
``write``: CREATE TABLE AS SELECT * FROM ML.PREDICT(...) (scoring and keeping the predictions).

``--role`` (PostgreSQL): the queries run as an ordinary login role with USAGE on the model and
SELECT on the rows, as an analyst would, not as the superuser the benchmark sets up with (which
row-level security lets by: the prediction log's policies cost an ordinary role more).

Usage: python benchmarks/bench_traffic.py [--engine duckdb|postgres] [--rows N] [--repeat R]
           [--model logistic_reg|boosted_tree_classifier] [--role]
"""

from __future__ import annotations

import argparse

from common import best_of, database, series

import sqlml

FEATURES = [f"f{i}" for i in range(10)]


MODELS = {  # the two versions' OPTIONS (the second is not deployed)
    "logistic_reg": ("", ", l2_reg = 10.0"),
    "boosted_tree_classifier": (
        ", num_parallel_tree = 1, max_iterations = 30, max_tree_depth = 6",
        ", num_parallel_tree = 1, max_iterations = 30, max_tree_depth = 6, l2_reg = 10.0",
    ),
}


def load(con: sqlml.Connection, engine: str, rows: int, model: str = "logistic_reg") -> None:
    cur = con.cursor()
    cur.execute("CREATE SCHEMA bench")
    features = ", ".join(
        f"CAST(sin(i * {k + 1}.7) AS DOUBLE PRECISION) AS f{k}" for k in range(len(FEATURES))
    )
    cur.execute(
        f"CREATE TABLE bench.rows AS SELECT CAST(i AS BIGINT) AS id, {features},"
        f" sin(i * 1.7) + cos(i * 3.1) > 0 AS label FROM {series(engine, 0, rows)}"
    )
    train = "SELECT * EXCLUDE (id) FROM bench.rows WHERE id < 100000"
    if engine == "postgres":
        train = f"SELECT {', '.join(FEATURES)}, label FROM bench.rows WHERE id < 100000"
    first, second = MODELS[model]
    for options in (first, f"{second}, deploy = 'manual'"):
        cur.execute(
            f"CREATE OR REPLACE MODEL bench.m OPTIONS (model_type = '{model}',"
            f" input_label_cols = ['label']{options}) AS {train}"
        )


def _run(cur: sqlml.Cursor, sql: str) -> None:
    cur.execute(sql)
    if cur.description is not None:
        cur.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "postgres"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="logistic_reg", choices=sorted(MODELS))
    parser.add_argument("--role", action="store_true", help="PostgreSQL: query as a plain role")
    args = parser.parse_args()
    with database(args.engine, "bench_traffic") as db:
        con = sqlml.connect(db, autocommit=True)
        load(con, args.engine, args.rows, args.model)
        owner = con.cursor()  # (ALTER MODEL: the owner's)
        cur = owner
        if args.role and args.engine == "postgres":
            for statement in (
                "DO $$BEGIN CREATE ROLE bench_analyst LOGIN;"
                " EXCEPTION WHEN duplicate_object THEN NULL; END$$",  # (a server of one's own)
                "GRANT USAGE ON SCHEMA bench TO bench_analyst",
                "GRANT SELECT ON bench.rows TO bench_analyst",
                "GRANT CREATE ON SCHEMA bench TO bench_analyst",  # (the write shape's table)
                "SELECT sqlml.grant_model('bench.m', 'bench_analyst')",
            ):
                owner.execute(statement)
            joiner = "&" if "?" in db else "?"
            cur = sqlml.connect(f"{db}{joiner}user=bench_analyst", autocommit=True).cursor()
        predict = "ML.PREDICT(MODEL bench.m, TABLE bench.rows)"
        shapes = {
            "sum": f"SELECT count(*), sum(CAST(predicted_label AS INT)) FROM {predict}",
            "write": f"CREATE TABLE bench.out AS SELECT * FROM {predict}",
        }
        clear = [
            "ALTER MODEL bench.m CLEAR TRAFFIC",
            "ALTER MODEL bench.m CLEAR SHADOW",
            "ALTER MODEL bench.m SET OPTIONS (prediction_log_sample = NULL,"
            " prediction_log_key = NULL)",
        ]
        splits = {  # the statements that set each variant up (untimed)
            "one": clear,
            "split_key": [
                *clear,
                "ALTER MODEL bench.m SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id",
            ],
            "split_random": [
                *clear,
                "ALTER MODEL bench.m SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)",
            ],
            "log_1pct": [
                *clear,
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_sample = 0.01,"
                " prediction_log_key = 'id')",
            ],
            "log_10pct": [
                *clear,
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_sample = 0.1,"
                " prediction_log_key = 'id')",
            ],
            "shadow_10pct": [
                *clear,
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_key = 'id')",
                "ALTER MODEL bench.m SET SHADOW VERSION 2 SAMPLE 10 PERCENT",
            ],
        }
        print(f"{args.engine}, {args.model}, {args.rows:,} rows, best of {args.repeat}")
        for shape, sql in shapes.items():
            cold: dict[str, float] = {}
            warm: dict[str, float] = {}
            for _ in range(args.repeat):
                for name, setup in splits.items():  # (set up untimed)
                    for statement in setup:
                        owner.execute(statement)
                    for times in (cold, warm):  # (the first run after the setup, then the next)
                        cur.execute("DROP TABLE IF EXISTS bench.out")
                        seconds = best_of({name: lambda sql=sql: _run(cur, sql)}, 1)[name]
                        times[name] = min(times.get(name, seconds), seconds)
            for name in splits:
                print(
                    f"  {shape:5} {name:12}"
                    f"  cold {cold[name] * 1000:8.1f} ms {cold[name] / cold['one']:5.2f}x"
                    f"  warm {warm[name] * 1000:8.1f} ms {warm[name] / warm['one']:5.2f}x"
                )
        con.close()


if __name__ == "__main__":
    main()
