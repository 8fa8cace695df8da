"""The dbt integration (issue 16; integrations/dbt, examples/dbt): real `dbt build`s of the
example project on each target: ``duckdb``, the dbt adapter ``type: sqlml`` (dbt-duckdb on a
DuckDB file, sqlml in the dbt process), and ``gateway``, dbt-postgres through `sqlml serve` over
a DuckDB file (the gateway runs in this process). The steps run in order on one project: a first build trains, scores and
tests; a second with no change trains nothing; new rows train a version the deploy gate judges;
a failing metric test and a bad option fail the build and leave the serving version in place;
`dbt docs generate` documents the model's node.

dbt runs from an environment of its own (tests/dbtenv.py); the adapter is found on PYTHONPATH
(what `pip install ./integrations/dbt/adapter` installs)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dbtenv
import pytest
from conftest import gateway_parts, module_database, serving

import sqlml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "dbt"
PACKAGE = REPO / "integrations" / "dbt"
ADAPTER = PACKAGE / "adapter"


class Project:
    def __init__(self, folder: Path, target: str, database: str | None = None) -> None:
        self.folder = folder
        self.target = target
        # (the gateway's: catalog "shop", its dbname; PostgreSQL's: a test database)
        self.database = database or str(folder / "shop.duckdb")
        self.schema = "public" if target == "postgres" else "main"  # (the gateway's main)
        self.command = dbtenv.dbt()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ADAPTER),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(folder),
            "SQLML_DBT_PATH": self.database,
        }

    def dbt(self, *args: str, ok: bool = True) -> str:
        target = ["--target", self.target] if args[0] not in ("deps", "clean") else []
        done = subprocess.run(
            [self.command, *args, *target, "--no-use-colors"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = done.stdout + done.stderr
        assert (done.returncode == 0) == ok, output
        return output

    @property
    def model(self) -> str:
        return f"{self.schema}.churn_model"

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with sqlml.connect(self.database, autocommit=True) as con:
            cursor = con.execute(statement)
            return cursor.fetchall() if cursor.description is not None else []

    @contextlib.contextmanager
    def node(self, name: str, text: str) -> Iterator[None]:
        """A model of the project for the while: models/<name>.sql holding ``text``."""
        path = self.folder / "models" / f"{name}.sql"
        path.write_text(text)
        try:
            yield
        finally:
            path.unlink()

    def versions(self) -> list[tuple[int, str]]:
        found = self.sql(f"SELECT version, status FROM ML.VERSIONS(MODEL {self.model})")
        return sorted((int(v), str(s)) for v, s in found)


@pytest.fixture(scope="module", params=["duckdb", "gateway", "postgres"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    target = str(request.param)
    folder = tmp_path_factory.mktemp(f"dbt-{target}") / "shop"
    made = ("target", "dbt_packages", "logs", "*.duckdb*", "package-lock.yml")
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(*made))
    # (the example names the package by its place in the repository; the copy by its path)
    (folder / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE}\n")
    if target == "postgres":
        with module_database("postgres", request, tmp_path_factory, "dbt") as dsn:
            found = Project(folder, target, dsn)
            address = urllib.parse.urlsplit(dsn)
            found.env.update(
                SQLML_DBT_HOST=str(address.hostname),
                SQLML_DBT_PORT=str(address.port),
                SQLML_DBT_USER=str(address.username),
                SQLML_DBT_DBNAME=address.path.lstrip("/"),
            )
            found.dbt("deps")
            yield found
        return
    found = Project(folder, target)
    found.dbt("deps")
    if target == "duckdb":
        yield found
        return
    from sqlml.wire.server import ServerConfig

    with serving(ServerConfig(port=0), *gateway_parts("duckdb", found.database)) as port:
        found.env["SQLML_DBT_PORT"] = str(port)
        yield found


def test_a_first_build_trains_scores_and_tests(project: Project) -> None:
    output = project.dbt("build")
    assert "TRAINED version 1" in output
    assert "PASS sqlml_metric_at_least_churn_model_roc_auc" in output
    assert project.versions() == [(1, "serving")]
    # the node's relation lists the versions; the scores are the new customers' (churned NULL)
    relation = f"{project.schema}.churn_model"
    assert project.sql(f"SELECT version, status FROM {relation}") == [(1, "serving")]
    assert "PASS sqlml_no_skew_churn_model" in output
    ((scored, new),) = project.sql(
        f"SELECT (SELECT count(*) FROM {project.schema}.churn_scores),"
        " (SELECT count(*) FROM raw.customers WHERE churned IS NULL)"
    )
    assert scored == new == 500
    # the scores are the model's: ML.PREDICT run directly gives the same labels
    direct = project.sql(
        f"SELECT id, predicted_churned FROM ML.PREDICT(MODEL {project.model},"
        f" (SELECT * FROM {project.schema}.customer_features WHERE churned IS NULL)) ORDER BY id"
    )
    scores = f"SELECT id, predicted_churned FROM {project.schema}.churn_scores ORDER BY id"
    assert project.sql(scores) == direct


def test_a_second_build_with_no_change_trains_nothing(project: Project) -> None:
    output = project.dbt("build")
    assert "SKIP (unchanged)" in output
    assert project.versions() == [(1, "serving")]


def test_new_rows_train_a_version_that_the_gate_judges(project: Project) -> None:
    project.sql(
        "INSERT INTO raw.customers SELECT id + 10000, tenure, monthly_spend, plan, churned"
        " FROM raw.customers WHERE id <= 300"
    )
    output = project.dbt("build")
    assert "TRAINED version 2" in output
    assert [v for v, _ in project.versions()] == [1, 2]
    # deploy = if_better on roc_auc: the audit trail has the comparison when version 2 serves,
    # else version 1 still does
    serving = [v for v, s in project.versions() if s == "serving"]
    deployments = project.sql(f"SELECT version, metrics FROM ML.DEPLOYMENTS(MODEL {project.model})")
    if serving == [2]:
        gate = json.loads(dict(deployments)[2])
        assert gate["deploy_metric"] == "roc_auc"
        assert gate["serving_version"] == 1
    else:
        assert serving == [1]
    assert project.sql(f"SELECT count(*) FROM {project.schema}.churn_model") == [(2,)]


def test_a_failing_metric_test_fails_the_build(project: Project) -> None:
    output = project.dbt("build", "--vars", "{min_roc_auc: 0.99}", ok=False)
    assert "FAIL 1 sqlml_metric_at_least_churn_model_roc_auc" in output
    # (downstream of the failed test; the gateway shows DuckDB's schema main as public)
    assert re.search(r"SKIP relation (main|public)\.churn_scores", output), output


def test_skewed_rows_fail_the_skew_test(project: Project) -> None:
    output = project.dbt("build", "--vars", "{max_skew: 0.000001}", ok=False)
    assert re.search(r"FAIL \d+ sqlml_no_skew_churn_model", output), output


VIEW = """
{{ config(materialized='view') }}
select id, predicted_churned, predicted_churned_probs
from {{ sqlml.predict(ref('churn_model'), ref('new_customers')) }}
"""


def test_a_view_of_predictions_follows_deploys(project: Project) -> None:
    """A dbt view over sqlml.predict scores with the version that serves when it is read,
    on every target (on PostgreSQL: sqlml.ml_query(..., follow_deploys))."""
    with project.node("scores_view", VIEW):
        project.dbt("build", "--select", "scores_view")
    rows = f"(SELECT * FROM {project.schema}.customer_features WHERE churned IS NULL)"
    of_version = {
        v: project.sql(
            f"SELECT id, predicted_churned, predicted_churned_probs FROM ML.PREDICT(MODEL"
            f" {project.model} VERSION {v}, {rows}) ORDER BY id"
        )
        for v in (1, 2)
    }
    assert of_version[1] != of_version[2]  # (else the test could not tell them apart)
    read = f"SELECT * FROM {project.schema}.scores_view ORDER BY id"
    (serving,) = [v for v, s in project.versions() if s == "serving"]
    assert project.sql(read) == of_version[serving]
    other = 3 - serving
    project.sql(f"ALTER MODEL {project.model} DEPLOY VERSION {other}")
    try:
        assert project.sql(read) == of_version[other]
    finally:
        project.sql(f"ALTER MODEL {project.model} DEPLOY VERSION {serving}")
    assert project.sql(read) == of_version[serving]


EXPLAINED = """
{{ config(materialized='table') }}
select id, predicted_churned, probability, top_feature_attributions, prediction_value
from {{ sqlml.explain(ref('churn_model'), ref('new_customers'), top_k_features=2) }}
"""


def test_explain_gives_the_rows_ml_explain_predict_gives(project: Project) -> None:
    with project.node("churn_explained", EXPLAINED):
        project.dbt("build", "--select", "churn_explained")
    columns = "id, predicted_churned, probability, top_feature_attributions, prediction_value"
    built = project.sql(f"SELECT {columns} FROM {project.schema}.churn_explained ORDER BY id")
    direct = project.sql(
        f"SELECT {columns} FROM ML.EXPLAIN_PREDICT(MODEL {project.model},"
        f" (SELECT * FROM {project.schema}.new_customers), STRUCT(2 AS top_k_features))"
        " ORDER BY id"
    )
    ((new,),) = project.sql(f"SELECT count(*) FROM {project.schema}.new_customers")
    assert len(built) == new >= 500
    assert built == direct
    assert all(len(row[3]) == 2 for row in built)


BROKEN = """
{{{{ config(materialized='sqlml_model', ml_config={{'model_type': 'logistic_reg',
    'input_label_cols': ['{label}'], {extra}}}) }}}}
select tenure, plan, churned from {{{{ ref('customer_features') }}}} where churned is not null
"""


@pytest.mark.parametrize(
    ("label", "extra", "message"),
    [
        ("churned", "'l2_regg': 1", "option L2_REGG is not an option of model_type LOGISTIC_REG"),
        ("nope", "", 'label column "nope" is not in the training query'),
    ],
)
def test_a_bad_config_fails_its_node_and_stores_nothing(
    project: Project, label: str, extra: str, message: str
) -> None:
    with project.node("broken", BROKEN.format(label=label, extra=extra)):
        output = project.dbt("build", "--select", "broken", ok=False)
    assert message in output
    stored = project.sql("SELECT count(*) FROM sqlml.versions WHERE model_name = 'broken'")
    assert stored == [(0,)]


def test_a_bad_option_fails_the_node_with_sqlmls_error(project: Project) -> None:
    before = project.versions()
    output = project.dbt("build", "--vars", "{model_type: logistic_regg}", ok=False)
    assert "sqlml 22023: model_type 'logistic_regg' is not supported" in output
    assert "supported: " in output  # (the HINT)
    assert project.versions() == before


INCREMENTAL = """
{{ config(materialized='sqlml_model', retrain='incremental',
          ml_config={'model_type': 'linear_reg', 'input_label_cols': ['monthly_spend'],
                     'incremental': true, 'watermark_col': 'id'}) }}
select id, tenure, plan, monthly_spend from {{ source('raw', 'customers') }}
"""


def test_incremental_retraining_reads_the_new_rows_only(project: Project) -> None:
    with project.node("spend_model", INCREMENTAL):
        assert "TRAINED version 1" in project.dbt("build", "--select", "spend_model")
        assert "SKIP (no new rows)" in project.dbt("build", "--select", "spend_model")
        project.sql(
            "INSERT INTO raw.customers SELECT id + 20000, tenure, monthly_spend, plan, churned"
            " FROM raw.customers WHERE id <= 100"
        )
        assert "TRAINED version 2" in project.dbt("build", "--select", "spend_model")
    info = project.sql(
        "SELECT training_info FROM sqlml.versions WHERE model_name = 'spend_model' ORDER BY version"
    )
    last = json.loads(info[-1][0]) if isinstance(info[-1][0], str) else info[-1][0]
    assert last["rows_read"] == 100  # (RETRAIN: the rows past the watermark, not all of them)


def test_docs_generate_documents_the_model(project: Project) -> None:
    project.dbt("docs", "generate")
    catalog = json.loads((project.folder / "target" / "catalog.json").read_text())
    node = catalog["nodes"]["model.sqlml_shop.churn_model"]
    assert {"version", "status", "metrics"} <= set(node["columns"])
    manifest = json.loads((project.folder / "target" / "manifest.json").read_text())
    scores = manifest["nodes"]["model.sqlml_shop.churn_scores"]
    assert "model.sqlml_shop.churn_model" in scores["depends_on"]["nodes"]  # (lineage)
