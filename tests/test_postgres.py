"""What only the PostgreSQL engine has: sqlml install / uninstall, the plain-SQL API used from psql
with no Python on the client, in-server errors, cancellation, NOTICE progress, parallel query.
The engine-level behaviour shared with DuckDB is in the conformance tests (``con`` fixture)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pgcluster
import psycopg2
import psycopg2.sql
import pytest
from sklearn.linear_model import LogisticRegression

import sqlml
from sqlml import errors
from tests.conftest import free_parallelism, load_shop, unavailable

CHURN = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'],"
    " data_split_method='NO_SPLIT')"
    " AS SELECT tenure, spend, promo, churned FROM shop.customers WHERE spend IS NOT NULL"
)


def _psql(dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Runs SQL with the real psql client: unaligned, tuples only, stop on the first error."""
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    return subprocess.run(
        [psql, dsn, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )


def _reference() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn on the same rows, built independently (tests/test_engine.py's pipeline:
    standardized numbers, one-hot booleans, BigQuery's defaults), the positive class's
    probability for the new customers with a spend."""
    from tests.test_engine import _frame, _reference

    columns = ["tenure", "spend", "promo"]
    train = _frame([*columns, "churned"])
    train = train[train["spend"].notna()]
    model = _reference(
        LogisticRegression(C=np.inf, max_iter=20, tol=0.01), ["tenure", "spend"], ["promo"]
    )
    model.fit(train[columns], train["churned"].astype(str) == "true")
    new = _frame(["id", *columns], "new_customers")
    new = new[new["spend"].notna()]
    return new["id"].to_numpy(), model.predict_proba(new[columns])[:, 1]


def test_plain_sql_api_from_psql(pg_database: str) -> None:
    """psql only: train, evaluate and score with the extension's SQL functions."""
    created = _psql(
        pg_database,
        "SELECT sqlml.create_model('shop.churn', 'logistic_reg',"
        " 'SELECT tenure, spend, promo, churned FROM shop.customers WHERE spend IS NOT NULL',"
        ' \'{"input_label_cols": ["churned"], "data_split_method": "NO_SPLIT"}\')',
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "1"
    # NOTICE progress reaches psql; sent inside the function's transaction, it says so
    assert "wrote shop.churn version 1: it is stored and serves once" in created.stderr
    metrics = _psql(pg_database, "SELECT metric, value FROM sqlml.evaluate('shop.churn')")
    assert metrics.returncode == 0, metrics.stderr
    names = [line.split("|")[0] for line in metrics.stdout.split()]
    assert names == ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"]
    scored = _psql(
        pg_database,
        'SELECT id, sqlml."shop.churn"(tenure, spend, promo) FROM shop.new_customers'
        " WHERE spend IS NOT NULL ORDER BY id",
    )
    assert scored.returncode == 0, scored.stderr
    rows = [line.split("|") for line in scored.stdout.split()]
    ids, expected = _reference()
    assert [int(r[0]) for r in rows] == ids.tolist()
    np.testing.assert_allclose([float(r[1]) for r in rows], expected, atol=1e-6)
    functions = _psql(pg_database, "SELECT scoring_function FROM sqlml.model_functions")
    assert 'sqlml."shop.churn"' in functions.stdout
    dropped = _psql(pg_database, "SELECT sqlml.drop_model('shop.churn')")
    assert dropped.stdout.strip() == "t"
    assert _psql(pg_database, "SELECT count(*) FROM sqlml.model_functions").stdout.strip() == "0"


def test_errors_raised_in_plpython_carry_their_sqlstate(pg_database: str) -> None:
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    cases = [
        ("SELECT sqlml.create_model('shop.x', 'no_such_type', 'SELECT 1 AS a')", "22023"),
        ("SELECT * FROM sqlml.evaluate('shop.missing')", "42704"),
        ("SELECT sqlml.create_model('shop.x', 'linear_reg', 'SELECT * FROM shop.nope')", "42P01"),
        (
            "SELECT sqlml.execute('CREATE MODEL shop.x OPTIONS (model_type = ) AS SELECT 1')",
            "42601",
        ),
        ("SELECT sqlml.execute('SELECT 1')", "0A000"),
        ("SELECT sqlml.create_model('a.b.c', 'linear_reg', 'SELECT 1')", "42601"),
        (  # a transform text that closes the TRANSFORM list early
            "SELECT sqlml.create_model('shop.x', 'linear_reg', 'SELECT 1 AS a, 2 AS y',"
            " '{\"input_label_cols\": [\"y\"]}', 'a) OPTIONS (model_type = ''kmeans'')"
            " AS SELECT 2 AS a UNION SELECT (1')",
            "42601",
        ),
    ]
    try:
        for sql, sqlstate in cases:
            with con.cursor() as cur:
                with pytest.raises(psycopg2.Error) as raised:
                    cur.execute(sql)
                assert raised.value.pgcode == sqlstate, (sql, raised.value)
            with con.cursor() as cur:  # the session goes on
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
    finally:
        con.close()


def test_cancelled_training_keeps_the_previous_version(pg_database: str) -> None:
    con = sqlml.connect(pg_database, autocommit=True)
    try:
        con.execute(CHURN)
        before = con.execute(
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
        ).fetchall()
        slow = CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL").replace(
            "WHERE spend IS NOT NULL", "WHERE spend IS NOT NULL AND pg_sleep(0.005) IS NOT NULL"
        )
        con.execute("SET statement_timeout = '300ms'")
        with pytest.raises(errors.OperationalError) as raised:
            con.execute(slow)
        assert raised.value.sqlstate == "57014"
        con.execute("SET statement_timeout = 0")
        # pg_cancel_backend from another session, in the middle of the training
        pid = con.execute("SELECT pg_backend_pid()").fetchone()[0]
        admin = psycopg2.connect(pg_database)
        admin.autocommit = True

        def cancel() -> None:
            time.sleep(0.5)
            with admin.cursor() as cur:
                cur.execute("SELECT pg_cancel_backend(%s)", [pid])

        thread = threading.Thread(target=cancel)
        thread.start()
        with pytest.raises(errors.OperationalError) as raised:
            con.execute(slow)
        thread.join()
        admin.close()
        assert raised.value.sqlstate == "57014"
        assert con.execute("SELECT max(version) FROM sqlml.versions").fetchone() == (1,)
        after = con.execute(
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
        ).fetchall()
        assert after == before
    finally:
        con.close()


def test_training_progress_reaches_the_client(pg_database: str) -> None:
    con = sqlml.connect(pg_database, autocommit=True)
    messages: list[str] = []
    con.set_progress(messages.append)
    try:
        con.execute(CHURN)
    finally:
        con.close()
    assert any("reading the training rows" in m for m in messages)
    assert any("wrote shop.churn version 1" in m for m in messages)


def test_version_notice_says_what_is_true_before_the_commit(pg_database: str) -> None:
    """The NOTICE about the new version leaves before the function's transaction commits: it
    must not say the version is stored (here the transaction then rolls back)."""
    con = psycopg2.connect(pg_database)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT sqlml.create_model('shop.churn', 'logistic_reg',"
                " 'SELECT tenure, spend, promo, churned FROM shop.customers',"
                ' \'{"input_label_cols": ["churned"]}\')'
            )
        said = [n for n in con.notices if "shop.churn version 1" in n]
        assert said, con.notices
        assert not any("stored shop.churn version 1" in n for n in said)
        assert all("once this transaction commits" in n for n in said)
        con.rollback()
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM sqlml.versions")
            assert cur.fetchone() == (0,)
        # a version that will not serve (deploy = 'manual') is not said to serve
        con.rollback()
        con.autocommit = True
        options = '\'{"input_label_cols": ["churned"], "deploy": "manual"}\''
        for given in ('\'{"input_label_cols": ["churned"]}\'', options):
            del con.notices[:]
            with con.cursor() as cur:
                cur.execute(
                    "SELECT sqlml.create_model('shop.churn', 'logistic_reg',"
                    f" 'SELECT tenure, spend, promo, churned FROM shop.customers', {given},"
                    " NULL, true)"
                )
        said = [n for n in con.notices if "wrote shop.churn version 2" in n]
        assert len(said) == 1
        assert "it is stored once this transaction commits" in said[0]
        assert any("does not serve (deploy = 'manual')" in n for n in con.notices)
    finally:
        con.close()


def test_postgres_matches_duckdb_compiled_and_runtime(pg_database: str, tmp_path: Path) -> None:
    """The same model trained by each engine scores the same on both paths of both engines."""
    duck = sqlml.connect(str(tmp_path / "d.duckdb"), autocommit=True)
    load_shop(duck)
    pg = sqlml.connect(pg_database, autocommit=True)
    model = (
        "CREATE MODEL shop.m OPTIONS (model_type='logistic_reg', input_label_cols=['segment'])"
        " AS SELECT tenure, spend, plan, promo, segment FROM shop.customers"
    )
    predict = (
        "SELECT id, predicted_segment, predicted_segment_probs FROM ML.PREDICT(MODEL shop.m,"
        " TABLE shop.new_customers, STRUCT('{}' AS scoring)) ORDER BY id"
    )
    try:
        duck.execute(model)
        pg.execute(model)
        reference = duck.execute(predict.format("compiled")).fetchall()
        for mode in ("compiled", "runtime"):
            rows = pg.execute(predict.format(mode)).fetchall()
            assert [r[:2] for r in rows] == [r[:2] for r in reference]
            for got, want in zip(rows, reference, strict=True):
                probs = {p["label"]: p["prob"] for p in got[2]}
                expected = {p["label"]: p["prob"] for p in want[2]}
                assert probs.keys() == expected.keys()
                np.testing.assert_allclose(
                    [probs[k] for k in expected], list(expected.values()), atol=1e-9
                )
    finally:
        duck.close()
        pg.close()


def test_scoring_function_runs_in_parallel_workers(pg_database: str) -> None:
    """The per-model SQL function is PARALLEL SAFE (no SPI, no Python): a parallel plan uses it;
    so does compiled ML.PREDICT."""
    con = sqlml.connect(pg_database, autocommit=True)
    try:
        con.execute(CHURN)
        con.execute(
            "CREATE TABLE shop.big AS SELECT c.* FROM shop.customers c, generate_series(1, 50) g"
        )
        con.execute("ANALYZE shop.big")
        free_parallelism(con)
        query = (
            'SELECT count(*), sum(sqlml."shop.churn"(tenure, spend, promo)) FROM shop.big'
            " WHERE spend IS NOT NULL"
        )
        plan = "\n".join(r[0] for r in con.execute(f"EXPLAIN {query}").fetchall())
        assert "Gather" in plan
        count, total = con.execute(query).fetchone()
        # Compiled ML.PREDICT too: its stages (cse.hoist_stages) stay plan nodes of their own,
        # each computed once, and run in the workers (scoring.kept_apart; OFFSET 0 kept them
        # out of parallel plans).
        predict = (
            "SELECT count(*), sum((predicted_churned_probs[2]).prob) FROM ML.PREDICT("
            "MODEL shop.churn, (SELECT * FROM shop.big WHERE spend IS NOT NULL))"
        )
        plan = "\n".join(r[0] for r in con.execute(f"EXPLAIN {predict}").fetchall())
        gather, stage = plan.find("Gather"), plan.find("Subquery Scan")
        assert 0 <= gather < stage, plan
        assert plan.find("Parallel Seq Scan") > stage, plan
        parallel = con.execute(predict).fetchone()
        con.execute("SET max_parallel_workers_per_gather = 0")
        assert con.execute(query).fetchone() == pytest.approx((count, total), rel=1e-12)
        assert con.execute(predict).fetchone() == pytest.approx(parallel, rel=1e-12)
    finally:
        con.close()


def _sqlml_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("sqlml") or "sqlml", *args], capture_output=True, text=True, check=False
    )


def test_install_upgrade_refusal_and_uninstall(pg_server: str) -> None:
    dsn = pgcluster.create_database(pg_server, "sqlml_install_test")
    try:
        # the server's own Python has none of sqlml's dependencies: refused, nothing written
        refused = _sqlml_cli("install", "--database", dsn, "--python-path", "/nonexistent")
        assert refused.returncode == 1
        assert "ERROR 58000" in refused.stderr
        assert "cannot import" in refused.stderr
        con = psycopg2.connect(dsn)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT to_regnamespace('sqlml')")
            assert cur.fetchone() == (None,)
        for _ in range(2):  # installs, then upgrades in place
            done = _sqlml_cli(
                "install", "--database", dsn, "--python-path", pgcluster.pydeps_folder()
            )
            assert done.returncode == 0, done.stderr
        with con.cursor() as cur:
            cur.execute(
                "SELECT sqlml.version(), value FROM sqlml.store_info WHERE key = %s",
                ["extension_version"],
            )
            assert cur.fetchone() == (sqlml.__version__, sqlml.__version__)
            cur.execute(
                "CREATE TABLE t AS SELECT g::float8 AS x, g % 2 = 0 AS y"
                " FROM generate_series(1, 100) g"
            )
            cur.execute(
                "SELECT sqlml.create_model('public.m', 'logistic_reg', 'SELECT * FROM t',"
                ' \'{"input_label_cols": ["y"]}\')'
            )
        with sqlml.connect(dsn, autocommit=True) as client:  # predictions kept in a user table
            client.execute("CREATE TABLE p AS SELECT * FROM ML.PREDICT(MODEL public.m, TABLE t)")
        with con.cursor() as cur:
            cur.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'p'::regclass AND attname = 'predicted_y_probs'"
            )
            assert cur.fetchone() == ("sqlml.label_prob_bool[]",)
        upgraded = _sqlml_cli(
            "install", "--database", dsn, "--python-path", pgcluster.pydeps_folder()
        )
        assert upgraded.returncode == 0, upgraded.stderr  # the table keeps its composite type
        con.close()
        assert _sqlml_cli("uninstall", "--database", dsn).returncode == 0
        con = psycopg2.connect(dsn)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(
                "SELECT to_regprocedure('sqlml.create_model(text,text,text,jsonb,text,boolean)')"
            )
            assert cur.fetchone() == (None,)
            cur.execute("SELECT count(*) FROM sqlml.versions")  # the models stay
            assert cur.fetchone() == (1,)
            cur.execute('SELECT sqlml."public.m"(3.0) < 1')  # and so do their SQL functions
            assert cur.fetchone() == (True,)
        with pytest.raises(errors.OperationalError) as raised:
            sqlml.connect(dsn)
        assert raised.value.sqlstate == "55000"  # not installed: a clear error, with a hint
        # dropping everything would drop the user's prediction column with the type: refused
        kept = _sqlml_cli("uninstall", "--database", dsn, "--drop-models")
        assert kept.returncode == 1
        assert "ERROR 2BP01" in kept.stderr
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM p WHERE predicted_y_probs IS NOT NULL")
            assert cur.fetchone() == (100,)
            cur.execute("DROP TABLE p")
        assert _sqlml_cli("uninstall", "--database", dsn, "--drop-models").returncode == 0
        with con.cursor() as cur:
            cur.execute("SELECT to_regnamespace('sqlml')")
            assert cur.fetchone() == (None,)
        con.close()
    finally:
        pgcluster.drop_database(pg_server, "sqlml_install_test")


def test_runtime_ml_score_is_refused_with_a_sqlstate(pg_database: str) -> None:
    """ML.SCORE on PostgreSQL scores compiled models only; asked for runtime it says so (0A000)
    and the session goes on."""
    con = sqlml.connect(pg_database, autocommit=True, scoring="runtime")
    try:
        con.execute(CHURN)
        with pytest.raises(errors.NotSupportedError) as raised:
            con.execute("SELECT ML.SCORE(MODEL shop.churn) FROM shop.new_customers")
        assert raised.value.sqlstate == "0A000"
        predicted = con.execute(
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
        ).fetchall()
        assert len(predicted) == 200
    finally:
        con.close()


def _score_batch_sql() -> str:
    """sqlml.score_batch called as ML.PREDICT's runtime path calls it, on shop.churn's inputs."""
    features = ", ".join(
        f"array_send(array_agg({c} ORDER BY id))"
        for c in ("tenure::float8", "spend::float8", "promo")
    )
    return (
        f"SELECT sqlml.score_batch(%s, {features}) FROM shop.new_customers WHERE spend IS NOT NULL"
    )


def test_corrupted_graph_is_refused_on_every_path(pg_database: str) -> None:
    """Stored bytes replaced in place by another valid graph: every load by sha256 refuses them
    (XX001), and after a retrain to the same graph the backend that met them scores right (it
    used to cache the corrupted bytes under the sha256 and serve them: 20/20 rows wrong)."""
    ids, expected = _reference()
    client = sqlml.connect(pg_database, autocommit=True)
    raw = psycopg2.connect(pg_database)
    raw.autocommit = True
    try:
        client.execute(CHURN)
        client.execute(CHURN.replace("shop.churn", "shop.other").replace("IS NOT NULL", "> 50"))
        (sha,) = client.execute(
            "SELECT onnx_sha256 FROM sqlml.versions WHERE model_name = 'churn'"
        ).fetchone()
        client.execute(
            "UPDATE sqlml.versions SET onnx = (SELECT onnx FROM sqlml.versions"
            " WHERE model_name = 'other') WHERE model_name = 'churn'"
        )
        with raw.cursor() as cur:
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute(_score_batch_sql(), [sha])
            assert raised.value.pgcode == "XX001"
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT * FROM sqlml.evaluate('shop.churn')")
            assert raised.value.pgcode == "XX001"
        for mode in ("compiled", "runtime"):
            with sqlml.connect(pg_database, autocommit=True, scoring=mode) as fresh:
                with pytest.raises(errors.CorruptedModel) as caught:
                    fresh.execute(
                        "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
                    )
                assert caught.value.sqlstate == "XX001"
        client.execute(CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL"))
        assert client.execute(
            "SELECT onnx_sha256 FROM sqlml.versions WHERE model_name = 'churn' AND version = 2"
        ).fetchone() == (sha,)
        with raw.cursor() as cur:
            cur.execute(_score_batch_sql(), [sha])
            (flat,) = cur.fetchone()
        n = len(ids)
        np.testing.assert_allclose(flat[2 * n : 3 * n], expected, atol=1e-6)
        with sqlml.connect(pg_database, autocommit=True, scoring="runtime") as fresh:
            rows = fresh.execute(
                "SELECT id, predicted_churned_probs FROM ML.PREDICT(MODEL shop.churn,"
                " (SELECT * FROM shop.new_customers WHERE spend IS NOT NULL)) ORDER BY id"
            ).fetchall()
        probs = [next(p["prob"] for p in r[1] if p["label"] is True) for r in rows]
        np.testing.assert_allclose(probs, expected, atol=1e-6)
    finally:
        raw.close()
        client.close()


def _linear(cur: Any, model: str, slope: float, replace: bool = False) -> None:
    """Trains ``model`` (a name as SQL writes it) on y = slope * x + 1."""
    cur.execute(
        "SELECT sqlml.create_model(%s, 'linear_reg', %s, %s, replace => %s)",
        [
            model,
            f"SELECT g::float8 AS x, {slope} * g + 1 AS y FROM generate_series(1, 50) g",
            '{"input_label_cols": ["y"], "data_split_method": "NO_SPLIT"}',
            replace,
        ],
    )


def _score(cur: Any, schema: str, model: str, x: float) -> float:
    """Scores x through the model's function, found by name in sqlml.model_functions."""
    cur.execute(
        "SELECT function_name FROM sqlml.model_functions WHERE schema_name = %s"
        " AND model_name = %s",
        [schema, model],
    )
    (name,) = cur.fetchone()
    assert name is not None
    assert len(name.encode()) <= 63
    cur.execute(psycopg2.sql.SQL("SELECT sqlml.{}(%s)").format(psycopg2.sql.Identifier(name)), [x])
    return float(cur.fetchone()[0])


def test_scoring_functions_are_one_per_model(pg_database: str) -> None:
    """ "a.b".c and a."b.c" used to share sqlml."a.b.c" (the second replaced the first); names
    over 63 bytes were cut and every later replace failed with 42723."""
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    long_schema, long_model = "s" * 59 + "1", "m" * 59 + "2"
    try:
        with con.cursor() as cur:
            _linear(cur, '"a.b".c', 2.0)
            _linear(cur, 'a."b.c"', -3.0)
            assert _score(cur, "a.b", "c", 10.0) == pytest.approx(21.0)
            assert _score(cur, "a", "b.c", 10.0) == pytest.approx(-29.0)
            for slope in (1.0, 4.0, 5.0):  # replaced again and again
                _linear(cur, f'"{long_schema}"."{long_model}"', slope, replace=slope != 1.0)
                assert _score(cur, long_schema, long_model, 2.0) == pytest.approx(2 * slope + 1)
            _linear(cur, '"' + "é" * 40 + '"."' + "ü" * 40 + '"', 6.0)  # 2 bytes a character
            assert _score(cur, "é" * 40, "ü" * 40, 1.0) == pytest.approx(7.0)
            cur.execute("SELECT count(DISTINCT function_name) FROM sqlml.model_functions")
            assert cur.fetchone() == (4,)
            cur.execute("SELECT sqlml.drop_model('\"a.b\".c')")
            assert _score(cur, "a", "b.c", 1.0) == pytest.approx(-2.0)
            cur.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'a.b%'")
            assert cur.fetchone() == (1,)
    finally:
        con.close()


def test_ml_query_renders_sql_that_queries_wrap(pg_database: str) -> None:
    """sqlml.ml_query (dbt's sqlml.predict on PostgreSQL): the query of an ML.PREDICT, its
    columns ML.PREDICT's own, which plain SQL wraps and filters; ML.EVALUATE is refused."""
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    predict = (
        "SELECT x, predicted_y FROM ML.PREDICT(MODEL shop.mq,"
        " (SELECT g::float8 AS x FROM generate_series(1, 6) g))"
    )
    try:
        with con.cursor() as cur:
            _linear(cur, "shop.mq", 3.0)
            cur.execute("SELECT sqlml.ml_query(%s)", [predict])
            (rendered,) = cur.fetchone()
            cur.execute(f"SELECT * FROM ({rendered}) AS p WHERE x > 2 ORDER BY x")
            assert [d.name for d in cur.description] == ["x", "predicted_y"]
            got = cur.fetchall()
            assert [x for x, _ in got] == [3.0, 4.0, 5.0, 6.0]
            for x, y in got:  # y = 3x + 1, fitted exactly
                assert y == pytest.approx(3 * x + 1)
            cases = [
                ("SELECT * FROM ML.EVALUATE(MODEL shop.mq)", "0A000"),
                ("SELECT * FROM ML.PREDICT(MODEL shop.nope, (SELECT 1.0 AS x))", "42704"),
                ("SELECT * FROM ML.PREDICT(MODEL shop.mq, (SELECT 1.0 AS x)", "42601"),
            ]
            for statement, sqlstate in cases:
                with pytest.raises(psycopg2.Error) as raised:
                    cur.execute("SELECT sqlml.ml_query(%s)", [statement])
                assert raised.value.pgcode == sqlstate, (statement, raised.value)
            cur.execute("SELECT 1")  # the session goes on
            assert cur.fetchone() == (1,)
            # follow_deploys: a view of the query scores with the version serving when read;
            # the inlined query keeps the version it was rendered with
            for name, follows in (("mq_follows", True), ("mq_kept", False)):
                cur.execute("SELECT sqlml.ml_query(%s, %s)", [predict, follows])
                cur.execute(f"CREATE VIEW shop.{name} AS {cur.fetchone()[0]}")
            _linear(cur, "shop.mq", -2.0, replace=True)
            for name, slope in (("mq_follows", -2.0), ("mq_kept", 3.0)):
                cur.execute(f"SELECT x, predicted_y FROM shop.{name} ORDER BY x")
                for x, y in cur.fetchall():
                    assert y == pytest.approx(slope * x + 1), name
    finally:
        con.close()


def test_install_renames_scoring_functions_of_the_old_scheme(pg_database: str) -> None:
    """An install over one that named functions sqlml."schema.model" (cut to 63 bytes, shared by
    ambiguous pairs) brings them to today's names: the models score through the new function
    and the old one is gone."""
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    long_schema, long_model = "s" * 60, "m" * 60
    old_long = f"{long_schema}.{long_model}"[:63]
    try:
        with con.cursor() as cur:
            _linear(cur, '"a.b".c', 2.0)
            _linear(cur, 'a."b.c"', -3.0)
            _linear(cur, f'"{long_schema}"."{long_model}"', 4.0)
            # the old scheme: the long model's function under its cut name; "a.b".c's function
            # replaced by a."b.c"'s under their shared name "a.b.c"
            cur.execute(
                "SELECT scoring_function::text, schema_name FROM sqlml.model_functions"
                " WHERE schema_name <> 'a'"
            )
            for signature, schema in cur.fetchall():
                if schema == "a.b":
                    cur.execute(f"DROP FUNCTION {signature}")
                else:
                    old = psycopg2.sql.Identifier(old_long).as_string(con)
                    cur.execute(f"ALTER FUNCTION {signature} RENAME TO {old}")
            cur.execute(
                "CREATE VIEW kept AS SELECT sqlml.{}(2.0) AS p".replace(
                    "{}", psycopg2.sql.Identifier(old_long).as_string(con)
                )
            )
            cur.execute("SELECT count(*) FROM sqlml.model_functions WHERE function_name IS NULL")
            assert cur.fetchone() == (2,)
        done = _sqlml_cli(
            "install", "--database", pg_database, "--python-path", pgcluster.pydeps_folder()
        )
        assert done.returncode == 0, done.stderr
        with con.cursor() as cur:
            assert _score(cur, "a.b", "c", 10.0) == pytest.approx(21.0)
            assert _score(cur, "a", "b.c", 10.0) == pytest.approx(-29.0)
            assert _score(cur, long_schema, long_model, 2.0) == pytest.approx(9.0)
            cur.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [old_long])
            assert cur.fetchone() == (0,)
            cur.execute("SELECT p FROM kept")  # renamed, not dropped: the view still works
            assert cur.fetchone()[0] == pytest.approx(9.0)
    finally:
        con.close()


def test_model_with_more_inputs_than_a_function_takes(pg_database: str) -> None:
    """120 input columns (a PostgreSQL function takes at most 100 arguments): CREATE MODEL
    succeeds (the model gets no scoring function), ML.PREDICT matches scikit-learn on both paths."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    features = [f"f{i}" for i in range(120)]
    x = rng.normal(size=(400, len(features)))
    y = x @ rng.normal(size=len(features)) + rng.normal(scale=0.1, size=400)
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            columns = ", ".join(f"{f} float8" for f in features)
            cur.execute(f"CREATE TABLE wide (id int, {columns}, y float8)")
            marks = ", ".join(["%s"] * (len(features) + 2))
            cur.executemany(
                f"INSERT INTO wide VALUES ({marks})",
                [[i, *map(float, x[i]), float(y[i])] for i in range(len(x))],
            )
    finally:
        con.close()
    expected = LinearRegression().fit(x[:300], y[:300]).predict(x[300:])
    client = sqlml.connect(pg_database, autocommit=True)
    try:
        client.execute(
            "CREATE MODEL public.wide OPTIONS (model_type='linear_reg', input_label_cols=['y'],"
            f" data_split_method='NO_SPLIT') AS SELECT {', '.join(features)}, y FROM wide"
            " WHERE id < 300"
        )
        (function,) = client.execute(
            "SELECT scoring_function FROM sqlml.model_functions WHERE model_name = 'wide'"
        ).fetchone()
        assert function is None
        for mode in ("compiled", "runtime"):
            rows = client.execute(
                "SELECT id, predicted_y FROM ML.PREDICT(MODEL public.wide,"
                f" (SELECT * FROM wide WHERE id >= 300), STRUCT('{mode}' AS scoring)) ORDER BY id"
            ).fetchall()
            assert [r[0] for r in rows] == list(range(300, 400))
            np.testing.assert_allclose([r[1] for r in rows], expected, atol=1e-6)
        scored = client.execute(
            "SELECT ML.SCORE(MODEL public.wide) FROM wide WHERE id >= 300 ORDER BY id"
        ).fetchall()
        np.testing.assert_allclose([r[0] for r in scored], expected, atol=1e-6)
    finally:
        client.close()
