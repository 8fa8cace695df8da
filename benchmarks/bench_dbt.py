"""The time dbt adds (issue 16): the example project (examples/dbt) built by `dbt build` through
the sqlml adapter, against the same statements run directly by `sqlml run` on a DuckDB file of
their own, in one run:

  dbt_first     `dbt build` on a new file: raw data, features, the model trained, the scores,
                the six data tests
  direct_first  the same statements in one `sqlml run` (a process, as dbt is)
  dbt_again     `dbt build` with nothing changed: retrain='if_changed' reads the rows and
                trains nothing
  direct_again  the same statements again (retrain = 'if_changed' too)

Each is a fresh process, timed from outside (startup included: a user waits for it too).
dbt runs from tests/dbtenv.py's environment (made on first use).

Usage: python benchmarks/bench_dbt.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts tests/ on the path: dbtenv)
import dbtenv

REPO = Path(__file__).resolve().parents[1]


def raw_customers() -> str:
    """The example's raw.customers statement, taken from its on-run-start macro (one source
    for the rows both sides build)."""
    macro = (REPO / "examples" / "dbt" / "macros" / "create_raw_customers.sql").read_text()
    body = macro.partition("{% call statement('raw_customers') %}")[2].partition("{% endcall %}")[0]
    assert body.strip().startswith("CREATE TABLE raw.customers AS"), "the macro changed"
    return body.strip().replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)


# What the example's nodes run, in their order, as one would write it without dbt.
DIRECT = """
CREATE SCHEMA IF NOT EXISTS raw;
{raw};
CREATE OR REPLACE VIEW main.customer_features AS
SELECT id, tenure, monthly_spend, plan, tenure * monthly_spend AS lifetime_spend, churned
FROM raw.customers;
CREATE OR REPLACE MODEL main.churn_model
  OPTIONS (model_type = 'logistic_reg', input_label_cols = ['churned'], retrain = 'if_changed',
           deploy = 'if_better', deploy_metric = 'roc_auc')
AS SELECT tenure, monthly_spend, plan, lifetime_spend, churned FROM main.customer_features
   WHERE churned IS NOT NULL;
CREATE OR REPLACE TABLE main.churn_model_versions AS SELECT * FROM ML.VERSIONS(MODEL main.churn_model);
SELECT count(*) FROM ML.EVALUATE(MODEL main.churn_model) WHERE roc_auc < 0.6;
CREATE OR REPLACE VIEW main.new_customers AS
SELECT * FROM main.customer_features WHERE churned IS NULL;
SELECT count(*) FROM ML.VALIDATE_DATA_SKEW(MODEL main.churn_model, TABLE main.new_customers,
  STRUCT(0.3 AS categorical_default_threshold, 0.3 AS numerical_default_threshold)) WHERE is_anomaly;
CREATE OR REPLACE TABLE main.churn_scores AS
SELECT id, predicted_churned, predicted_churned_probs
FROM ML.PREDICT(MODEL main.churn_model, TABLE main.new_customers);
SELECT count(*) FROM main.churn_scores WHERE id IS NULL;
SELECT count(*) FROM main.churn_scores WHERE predicted_churned IS NULL;
SELECT count(*) FROM (SELECT id FROM main.churn_scores GROUP BY id HAVING count(*) > 1) AS d;
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dbt = dbtenv.dbt()
    sqlml = shutil.which("sqlml") or sys.exit("the sqlml command is not installed")
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for run in range(args.repeat):
            project = Path(folder) / f"shop{run}"
            made = ("target", "dbt_packages", "logs", "*.duckdb*", "package-lock.yml")
            shutil.copytree(
                REPO / "examples" / "dbt", project, ignore=shutil.ignore_patterns(*made)
            )
            package = REPO / "integrations" / "dbt"
            (project / "packages.yml").write_text(f"packages:\n  - local: {package}\n")
            env = {
                **os.environ,
                "PYTHONPATH": str(package / "adapter"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_PROFILES_DIR": str(project),
                "SQLML_DBT_PATH": str(project / "shop.duckdb"),
            }
            timed([dbt, "deps"], project, env)
            (project / "direct.sql").write_text(DIRECT.replace("{raw}", raw_customers()))
            direct = [sqlml, "run", "--database", "direct.duckdb", "direct.sql"]
            for case, command in (
                ("dbt_first", [dbt, "build"]),
                ("direct_first", direct),
                ("dbt_again", [dbt, "build"]),
                ("direct_again", direct),
            ):
                times.setdefault(case, []).append(timed(command, project, env))
    best = {case: min(t) for case, t in times.items()}
    print(f"best of {args.repeat} (seconds, a process each, startup included):")
    for case, seconds in best.items():
        print(f"  {case:13} {seconds:6.2f}")
    for step in ("first", "again"):
        dbt_s, direct_s = best[f"dbt_{step}"], best[f"direct_{step}"]
        print(
            f"{step}: dbt adds {dbt_s - direct_s:.2f} s to the same statements"
            f" ({dbt_s / direct_s:.2f}x)"
        )


if __name__ == "__main__":
    main()
