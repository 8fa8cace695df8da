"""sqlml.ml(statement): the ML functions from plain SQL in PostgreSQL (docs/postgres.md), with
real psql and psycopg2, checked against sqlml.connect on the same database (which renders the
statement client-side and reads the rows through its own driver: an independent path)."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pgcluster
import psycopg2
import pytest
from conftest import TEMPLATE, unavailable
from psycopg2 import sql

import sqlml

MODELS = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'],"
    " data_split_method='NO_SPLIT') AS SELECT tenure, spend, plan, churned FROM shop.customers",
    "CREATE MODEL shop.km OPTIONS (model_type='kmeans', num_clusters=3)"
    " AS SELECT tenure, spend FROM shop.customers",
    "CREATE MODEL shop.bt OPTIONS (model_type='boosted_tree_classifier',"
    " input_label_cols=['segment'], max_iterations=3, data_split_method='NO_SPLIT')"
    " AS SELECT tenure, spend, plan, segment FROM shop.customers",
    "CREATE MODEL shop.pca OPTIONS (model_type='pca', num_principal_components=2)"
    " AS SELECT tenure, spend FROM shop.customers",
    "CREATE MODEL shop.scaled TRANSFORM (ML.STANDARD_SCALER(tenure) OVER () AS tenure_z, spend,"
    " churned) OPTIONS (model_type='logistic_reg', input_label_cols=['churned'],"
    " data_split_method='NO_SPLIT') AS SELECT tenure, spend, churned FROM shop.customers",
)
PREDICT = (
    "SELECT id, predicted_churned, predicted_churned_probs FROM ML.PREDICT(MODEL shop.churn,"
    " (SELECT id, tenure, spend, plan FROM shop.new_customers)) ORDER BY id"
)
STATEMENTS = {
    "weights": "SELECT * FROM ML.WEIGHTS(MODEL shop.churn)",
    "weights_standardized": "SELECT * FROM ML.WEIGHTS(MODEL shop.churn, STRUCT(true AS standardize))",
    "feature_info": "SELECT * FROM ML.FEATURE_INFO(MODEL shop.churn)",
    "training_info": "SELECT * FROM ML.TRAINING_INFO(MODEL shop.churn)",
    "training_info_kmeans": "SELECT * FROM ML.TRAINING_INFO(MODEL shop.km)",
    "centroids": "SELECT * FROM ML.CENTROIDS(MODEL shop.km) ORDER BY centroid_id, feature",
    "feature_importance": "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL shop.bt)",
    "predict": PREDICT,
    "predict_trees": "SELECT id, predicted_segment FROM ML.PREDICT(MODEL shop.bt,"
    " TABLE shop.new_customers) ORDER BY id",
    "confusion_matrix": "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn,"
    " (SELECT tenure, spend, plan, churned FROM shop.customers))",
    "roc_curve": "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn,"
    " (SELECT tenure, spend, plan, churned FROM shop.customers), GENERATE_ARRAY(0.1, 0.9, 0.2))",
    "detect_anomalies": "SELECT * FROM ML.DETECT_ANOMALIES(MODEL shop.km,"
    " STRUCT(0.05 AS contamination), TABLE shop.new_customers) ORDER BY id",
    "filtered": "SELECT processed_input, weight FROM ML.WEIGHTS(MODEL shop.churn)"
    " WHERE processed_input <> '__INTERCEPT__' ORDER BY processed_input",
    "cte_join": "WITH w AS (SELECT * FROM ML.WEIGHTS(MODEL shop.churn))"
    " SELECT w.processed_input, w.weight, f.mean FROM w"
    " JOIN ML.FEATURE_INFO(MODEL shop.churn) AS f ON f.input = w.processed_input ORDER BY 1",
    "principal_components": "SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL shop.pca)",
    "principal_component_info": "SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL shop.pca)",
    "reconstruction_loss": "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.pca,"
    " TABLE shop.new_customers) ORDER BY id",
    "transform": "SELECT * FROM ML.TRANSFORM(MODEL shop.scaled, TABLE shop.new_customers)"
    " ORDER BY id",
    "evaluate": "SELECT * FROM ML.EVALUATE(MODEL shop.churn)",
    "describe_data": "SELECT * FROM ML.DESCRIBE_DATA(TABLE shop.customers, STRUCT(2 AS top_k))",
    "validate_data_skew": "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL shop.churn,"
    " (SELECT tenure, spend, plan FROM shop.customers WHERE id % 3 = 0))",
    "validate_data_drift": "SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE shop.customers,"
    " TABLE shop.new_customers)",
    "evaluate_rows": "SELECT * FROM ML.EVALUATE(MODEL shop.churn, (SELECT tenure, spend, plan,"
    " churned FROM shop.customers WHERE id % 5 = 0), STRUCT(0.4 AS threshold))",
    "evaluate_kmeans": "SELECT davies_bouldin_index FROM ML.EVALUATE(MODEL shop.km,"
    " TABLE shop.new_customers)",
    "score": "SELECT id, ML.SCORE(MODEL shop.churn) AS p FROM shop.new_customers"
    " WHERE spend IS NOT NULL ORDER BY id LIMIT 20",
    "non_finite": "SELECT 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, weight"
    " FROM ML.WEIGHTS(MODEL shop.churn) WHERE processed_input = 'tenure'",
}


@pytest.fixture(scope="module")
def models_db(pg_server: str) -> Iterator[str]:
    """One database for the module (from the template: sqlml installed, the shop tables), with
    the MODELS trained through sqlml.connect."""
    name = f"sqlml_plain_ml_{os.getpid()}"
    dsn = pgcluster.create_database(pg_server, name, template=TEMPLATE)
    try:
        with sqlml.connect(dsn, autocommit=True) as con:
            for statement in MODELS:
                con.execute(statement)
        yield dsn
    finally:
        pgcluster.drop_database(pg_server, name)


def _connect(dsn: str, **kwargs: Any) -> Any:
    con = psycopg2.connect(dsn, **kwargs)
    con.autocommit = True
    return con


def _plain(con: Any, statement: str) -> list[dict[str, Any]]:
    """sqlml.ml's rows, as psycopg2 reads jsonb: one dict per row."""
    with con.cursor() as cur:
        cur.execute("SELECT r FROM sqlml.ml(%s) AS r", [statement])
        return [row[0] for row in cur.fetchall()]


def _client(dsn: str, statement: str) -> list[dict[str, Any]]:
    """sqlml.connect's rows for the same statement, as dicts."""
    with sqlml.connect(dsn, autocommit=True) as con:
        cursor = con.execute(statement)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _rows(con: Any, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with con.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()  # type: ignore[no-any-return]


def _sqlstate(con: Any, statement: str, params: list[Any] | None = None) -> str | None:
    with pytest.raises(psycopg2.Error) as raised:
        _rows(con, statement, params)
    return raised.value.pgcode  # type: ignore[no-any-return]


def _psql(dsn: str, statement: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    return subprocess.run(
        [psql, dsn, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", statement],
        capture_output=True,
        text=True,
        check=False,
    )


def _same(found: Any, expected: Any) -> bool:
    """Equal values; floats to 1e-12 relative (jsonb writes a double's shortest exact text,
    psycopg2 reads float8's; both round-trip, the tolerance only spares a last-digit quibble);
    jsonb has no NaN or infinity: PostgreSQL writes them as the strings float8 prints."""
    if isinstance(expected, float) and not math.isfinite(expected):
        return bool(found == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(expected)])
    if isinstance(expected, float) and isinstance(found, int | float):
        return found == pytest.approx(expected, rel=1e-12, abs=1e-300)
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(_same(found[k], expected[k]) for k in found)
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return len(found) == len(expected) and all(
            _same(f, e) for f, e in zip(found, expected, strict=True)
        )
    return bool(found == expected)


def test_each_function_equals_sqlml_connect(models_db: str) -> None:
    """Every statement's rows through sqlml.ml (psycopg2) equal sqlml.connect's, in order."""
    con = _connect(models_db)
    try:
        for label, statement in STATEMENTS.items():
            expected = _client(models_db, statement)
            found = _plain(con, statement)
            assert expected, label
            assert len(found) == len(expected), label
            for f, e in zip(found, expected, strict=True):
                assert _same(f, e), (label, f, e)
    finally:
        con.close()


def test_psql_reads_the_weights(models_db: str) -> None:
    """The documented call with the real psql: columns picked out of the jsonb rows."""
    shown = _psql(
        models_db,
        "SELECT r->>'processed_input', (r->>'weight')::float8"
        " FROM sqlml.ml('SELECT * FROM ML.WEIGHTS(MODEL shop.churn)') AS r",
    )
    assert shown.returncode == 0, shown.stderr
    found = [line.split("|") for line in shown.stdout.splitlines()]
    expected = _client(
        models_db, "SELECT processed_input, weight FROM ML.WEIGHTS(MODEL shop.churn)"
    )
    assert [f[0] for f in found] == [e["processed_input"] for e in expected]
    for (_, weight), row in zip(found, expected, strict=True):
        if row["weight"] is None:  # a categorical feature: its weights are category_weights
            assert weight == ""
        else:
            assert float(weight) == pytest.approx(row["weight"], rel=1e-12)
    # through sqlml.connect it is plain SQL (the ML call is inside a string): passed through
    with sqlml.connect(models_db, autocommit=True) as client:
        rows = client.execute("SELECT r FROM sqlml.ml(?) AS r", [STATEMENTS["weights"]])
        assert [r[0] for r in rows.fetchall()] == _client(models_db, STATEMENTS["weights"])
    refused = _psql(models_db, "SELECT * FROM sqlml.ml('DROP MODEL shop.churn')")
    assert refused.returncode != 0
    assert refused.stderr.startswith("ERROR:  sqlml.ml runs one SELECT"), refused.stderr


REFUSED = [
    ("CREATE MODEL shop.other OPTIONS (model_type='linear_reg', input_label_cols=['value'])"
     " AS SELECT tenure, value FROM shop.customers", "0A000"),
    ("DROP MODEL shop.churn", "0A000"),
    ("SELECT 1", "0A000"),
    ("INSERT INTO shop.w SELECT * FROM ML.WEIGHTS(MODEL shop.churn)", "0A000"),
    ("CREATE TABLE shop.w AS SELECT * FROM ML.WEIGHTS(MODEL shop.churn)", "0A000"),
    ("SELECT * INTO shop.w FROM ML.WEIGHTS(MODEL shop.churn)", "0A000"),
    ("SELECT * FROM ML.EVALUATE(MODEL shop.churn), ML.WEIGHTS(MODEL shop.churn)", "0A000"),
    ("SELECT * FROM ML.CENTROIDS(MODEL shop.churn)", "0A000"),  # not a k-means
    ("SELECT * FROM ML.WEIGHTS(MODEL shop.churn, STRUCT(true AS standardise))", "22023"),
    ("SELEC * FROM ML.WEIGHTS(MODEL shop.churn)", "42601"),
    ("SELECT * FROM ML.WEIGHTS(MODEL shop.churn); DROP TABLE shop.customers", "42601"),
    ("SELECT * FROM ML.WEIGHTS(MODEL shop.missing)", "42704"),
    ("SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.missing)", "42P01"),
    ("SELECT * FROM ML.WEIGHTS(MODEL shop.churn) WHERE weight > $1", "42P02"),
]  # fmt: skip


def test_refusals_have_their_sqlstates(models_db: str) -> None:
    """Each refusal with its SQLSTATE; nothing is written, the session goes on."""
    con = _connect(models_db)
    try:
        for statement, state in REFUSED:
            assert _sqlstate(con, "SELECT * FROM sqlml.ml(%s)", [statement]) == state, statement
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM sqlml.models")
            assert cur.fetchone() == (len(MODELS),)
            cur.execute("SELECT to_regclass('shop.w')")
            assert cur.fetchone() == (None,)
        assert len(_plain(con, STATEMENTS["feature_info"])) == 3
    finally:
        con.close()


@contextlib.contextmanager
def _role(models_db: str) -> Iterator[str]:
    """A login role that may read shop.new_customers but not shop.customers."""
    role = f"plain_ml_{os.getpid()}"
    admin = _connect(models_db)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA shop TO {}").format(sql.Identifier(role)))
        cur.execute(
            sql.SQL("GRANT SELECT ON shop.new_customers TO {}").format(sql.Identifier(role))
        )
    try:
        yield role
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.close()


def test_model_privileges_and_the_callers_rights(models_db: str) -> None:
    """Without USAGE the model does not exist for the role (42704, as for sqlml.evaluate and
    ML.PREDICT through sqlml.connect); with it the rows are the owner's; the input rows are read
    with the caller's own rights (42501 on a table it may not read)."""
    weights = STATEMENTS["weights"]
    with _role(models_db) as role:
        other = _connect(models_db, user=role)
        try:
            assert _sqlstate(other, "SELECT * FROM sqlml.ml(%s)", [weights]) == "42704"
            evaluate = "SELECT * FROM sqlml.evaluate('shop.churn')"
            assert _sqlstate(other, evaluate) == "42704"
            with contextlib.closing(_connect(models_db)) as owner:
                with owner.cursor() as cur:
                    cur.execute("SELECT sqlml.grant_model('shop.churn', %s)", [role])
                for same in (weights, STATEMENTS["evaluate"]):
                    assert _plain(other, same) == _plain(owner, same)
            assert _same(_plain(other, PREDICT), _client(models_db, PREDICT))
            for reads_customers in ("confusion_matrix", "evaluate_rows"):
                statement = STATEMENTS[reads_customers]
                assert _sqlstate(other, "SELECT * FROM sqlml.ml(%s)", [statement]) == "42501"
            # USAGE is per model
            bt = "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL shop.bt)"
            assert _sqlstate(other, "SELECT * FROM sqlml.ml(%s)", [bt]) == "42704"
        finally:
            other.close()


def test_install_again_adds_it_to_an_older_install(models_db: str) -> None:
    """An install from before sqlml.ml: `sqlml install` again creates it (functions.sql is
    CREATE OR REPLACE throughout)."""
    from sqlml.postgres.install import Installer

    con = _connect(models_db)
    try:
        with con.cursor() as cur:
            cur.execute("DROP FUNCTION sqlml.ml(text)")
            cur.execute("DROP FUNCTION sqlml.ml_sql_plpy(text)")
        assert _sqlstate(con, "SELECT * FROM sqlml.ml('SELECT 1')") == "42883"
        installer = Installer(models_db)
        try:
            installer.install([pgcluster.pydeps()])
        finally:
            installer.close()
        assert len(_plain(con, STATEMENTS["feature_info"])) == 3
    finally:
        con.close()
