"""ML.PREDICT under a traffic split or with its prediction log (issue 14) against ML.PREDICT of
one version, in one run.

1M rows x 10 float features with an integer key, two versions of one model trained on the first
100k rows with different regularization. The features are uniform in [-1, 1), drawn for each
row and feature from the MD5 of its number (the same on both engines), so that neighbouring
rows are unalike, as in most tables (``--data ordered``: the earlier ``sin(i * (k + 1).7)``,
whose rows nearly repeat every 11, which a tree model scored 40% faster in table order than
in any other: an advantage of one version that a per-row split, which takes half the rows of
each vector, cannot have). The model: ``--model logistic_reg`` (the cheapest model to score:
~20 ns a row, less than the split's hashing and routing) or ``boosted_tree_classifier`` (30
trees of depth 6: what a typical tabular model costs; DuckDB scores it through onnxruntime,
PostgreSQL as compiled SQL). Each variant's cost is
printed as a ratio to one version (the issue's bounds: a split and a 10% shadow within 1.3x, a
1% log within 1.1x), twice: ``cold``, the first run after the ALTER MODEL that set the variant
up (the kept plan is rebuilt: what the first query after a deploy pays), and ``warm``, the run
after it (what a serving loop pays). Each repeat sets every variant up in turn and times a
cold pair and two warm pairs (WARM) of ``one`` and the variant, run back to back (which runs first
alternates). A ratio is the median of the pairs' ratios, with the lowest and highest in
brackets; ``adds`` the median of the warm pairs' differences in ms. The machines here are noisy
(``one`` itself moved by 30% between runs, and by 2x within one): a pair's two queries run
within a second, so their ratio moves less than either time.

  one              ML.PREDICT of version 1 of a model that has no split (bench.one, trained as
                   bench.m's version 1): what a user has without one. Each variant's query
                   (on bench.m) is run in pairs with it, in turn, neither's plan made again
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
           [--model logistic_reg|boosted_tree_classifier] [--role] [--data independent|ordered]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyarrow as pa
from common import database, series
from sqlglot import exp

import sqlml
from sqlml import traffic

FEATURES = [f"f{i}" for i in range(10)]


MODELS = {  # the two versions' OPTIONS (the second is not deployed)
    "logistic_reg": ("", ", l2_reg = 10.0"),
    "boosted_tree_classifier": (
        ", num_parallel_tree = 1, max_iterations = 30, max_tree_depth = 6",
        ", num_parallel_tree = 1, max_iterations = 30, max_tree_depth = 6, l2_reg = 10.0",
    ),
}


def uniform(engine: str, k: int) -> str:
    """Feature ``k`` of row ``i``: uniform in [-1, 1), from the first 32 bits of the MD5 of
    ``i * 16 + k`` as text (traffic.hash_value's hash of a text key: alike on both engines)."""
    number = exp.Add(
        this=exp.Mul(this=exp.column("i"), expression=exp.Literal.number(16)),
        expression=exp.Literal.number(k),
    )
    bits = traffic.hash_value(number, pa.string(), engine)
    return exp.Sub(
        this=exp.Div(this=exp.paren(bits), expression=exp.Literal.number(2.0**31)),
        expression=exp.Literal.number(1),
    ).sql(dialect=engine)


def load(
    con: sqlml.Connection,
    engine: str,
    rows: int,
    model: str = "logistic_reg",
    data: str = "independent",
) -> None:
    cur = con.cursor()
    cur.execute("CREATE SCHEMA bench")
    if data == "ordered":
        made = [f"sin(i * {k + 1}.7)" for k in range(len(FEATURES))]
        label = "sin(i * 1.7) + cos(i * 3.1) > 0"
    else:  # (a label the features explain in part, so that trees have splits to learn)
        made = [uniform(engine, k) for k in range(len(FEATURES) + 1)]
        label = f"f{len(FEATURES)} * 0.5 + f0 - f1 * f2 + 0.3 * f3 > 0"
    features = ", ".join(f"CAST({m} AS DOUBLE PRECISION) AS f{k}" for k, m in enumerate(made))
    cur.execute(
        f"CREATE TABLE bench.rows AS SELECT CAST(i AS BIGINT) AS id, {', '.join(FEATURES)},"
        f" {label} AS label FROM (SELECT i, {features} FROM {series(engine, 0, rows)}) AS d"
    )
    train = "SELECT * EXCLUDE (id) FROM bench.rows WHERE id < 100000"
    if engine == "postgres":
        train = f"SELECT {', '.join(FEATURES)}, label FROM bench.rows WHERE id < 100000"
    first, second = MODELS[model]
    # bench.one: version 1 again (the same training, the same graph), which never has a split:
    # the one-version query each variant's query on bench.m is paired with
    for name, options in (("m", first), ("m", f"{second}, deploy = 'manual'"), ("one", first)):
        cur.execute(
            f"CREATE OR REPLACE MODEL bench.{name} OPTIONS (model_type = '{model}',"
            f" input_label_cols = ['label']{options}) AS {train}"
        )


PREDICT = "ML.PREDICT(MODEL bench.{m}, TABLE bench.rows)"
WARM = 2  # warm pairs a repeat, after the cold one


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
    parser.add_argument("--data", default="independent", choices=["independent", "ordered"])
    args = parser.parse_args()
    with database(args.engine, "bench_traffic") as db:
        con = sqlml.connect(db, autocommit=True)
        load(con, args.engine, args.rows, args.model, args.data)
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
                "SELECT sqlml.grant_model('bench.one', 'bench_analyst')",
            ):
                owner.execute(statement)
            joiner = "&" if "?" in db else "?"
            cur = sqlml.connect(f"{db}{joiner}user=bench_analyst", autocommit=True).cursor()
        shapes = {
            "sum": "SELECT count(*), sum(CAST(predicted_label AS INT)) FROM {predict}",
            "write": "CREATE TABLE bench.{out} AS SELECT * FROM {predict}",
        }
        clear = [
            "ALTER MODEL bench.{m} CLEAR TRAFFIC",
            "ALTER MODEL bench.{m} CLEAR SHADOW",
            "ALTER MODEL bench.{m} SET OPTIONS (prediction_log_sample = NULL,"
            " prediction_log_key = NULL)",
        ]
        splits = {  # the statements that set each variant up on bench.m (untimed)
            "split_key": [
                "ALTER MODEL bench.m SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id"
            ],
            "split_random": ["ALTER MODEL bench.m SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)"],
            "log_1pct": [
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_sample = 0.01,"
                " prediction_log_key = 'id')",
            ],
            "log_10pct": [
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_sample = 0.1,"
                " prediction_log_key = 'id')",
            ],
            "shadow_10pct": [
                "ALTER MODEL bench.m SET OPTIONS (prediction_log_key = 'id')",
                "ALTER MODEL bench.m SET SHADOW VERSION 2 SAMPLE 10 PERCENT",
            ],
        }
        print(
            f"{args.engine}, {args.model}, {args.data} rows, {args.rows:,} rows, {args.repeat}"
            f" repeats of {1 + WARM} pairs; a ratio: the median (lowest-highest) of the pairs'"
        )
        renewals = 0
        for shape, template in shapes.items():
            one = template.format(predict=PREDICT.format(m="one"), out="out_one")
            sql = template.format(predict=PREDICT.format(m="m"), out="out")
            pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in splits}
            for turn in range(args.repeat):
                for name, setup in splits.items():
                    # (untimed) bench.one's plan made again too: a key for a log it does not
                    # write (no sample), set and cleared in turn, changes its settings
                    renewals += 1
                    key = "'id'" if renewals % 2 else "NULL"
                    renew = f"ALTER MODEL bench.one SET OPTIONS (prediction_log_key = {key})"
                    for statement in [*(c.format(m="m") for c in clear), *setup, renew]:
                        owner.execute(statement)
                    for _ in range(1 + WARM):  # (the first pair cold, the next ones warm)
                        first = [(one, "out_one"), (sql, "out")][:: 1 if turn % 2 else -1]
                        seconds = {}
                        for query, out in first:  # (which runs first alternates by repeat)
                            cur.execute(f"DROP TABLE IF EXISTS bench.{out}")
                            started = time.perf_counter()
                            _run(cur, query)
                            seconds[query] = time.perf_counter() - started
                        pairs[name].append((seconds[one], seconds[sql]))
            for name, timed in pairs.items():
                cold = [p for i, p in enumerate(timed) if i % (1 + WARM) == 0]
                warm = [p for i, p in enumerate(timed) if i % (1 + WARM)]
                adds = [(v - o) * 1000 for o, v in warm]
                print(
                    f"  {shape:5} {name:12}  one {statistics.median(o for o, _ in cold) * 1000:6.1f}"
                    f" / {statistics.median(o for o, _ in warm) * 1000:6.1f} ms"
                    f"  cold {_ratio(cold)}  warm {_ratio(warm)}"
                    f"  adds {statistics.median(adds):+5.0f} ms"
                )
        con.close()


def _ratio(pairs: list[tuple[float, float]]) -> str:
    """The median of a variant's ratios to ``one`` in its pairs, and their range."""
    ratios = [v / o for o, v in pairs]
    return f"{statistics.median(ratios):4.2f}x ({min(ratios):4.2f}-{max(ratios):4.2f})"


if __name__ == "__main__":
    main()
