"""End to end on embedded DuckDB through sqlml.connect: statements, scoring paths, errors.

Predictions and metrics are compared with scikit-learn run independently on the same rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sqlml
from sqlml import errors
from tests.conftest import shop_tables

NULL = "\u2400"
CHURN = """CREATE MODEL shop.churn
  OPTIONS (model_type = 'logistic_reg', input_label_cols = ['churned'], data_split_method = 'NO_SPLIT')
AS SELECT tenure, spend, plan, promo, churned FROM shop.customers"""


def _frame(columns: list[str], table: str = "customers") -> pd.DataFrame:
    frame = shop_tables()[table].select(columns).to_pandas()
    for c in columns:
        if frame[c].dtype == bool:
            frame[c] = frame[c].map({True: "true", False: "false"}).astype(object)
        elif not pd.api.types.is_numeric_dtype(frame[c]):
            frame[c] = frame[c].astype(object).where(frame[c].notna(), NULL)
    return frame


def _reference(model: Any, numeric: list[str], categorical: list[str]) -> Pipeline:
    steps: list[Any] = [
        (n, Pipeline([("i", SimpleImputer()), ("s", StandardScaler())]), [n]) for n in numeric
    ]
    steps += [(c, OneHotEncoder(handle_unknown="ignore"), [c]) for c in categorical]
    return Pipeline([("pre", ColumnTransformer(steps)), ("model", model)])


def _churn_reference() -> tuple[Pipeline, pd.DataFrame]:
    train = _frame(["tenure", "spend", "plan", "promo"])
    y = shop_tables()["customers"].column("churned").to_numpy()
    ref = _reference(
        LogisticRegression(C=np.inf, max_iter=20, tol=0.01), ["tenure", "spend"], ["plan", "promo"]
    )
    ref.fit(train, y)
    return ref, _frame(["tenure", "spend", "plan", "promo"], "new_customers")


PREDICT = """SELECT id, predicted_churned, predicted_churned_probs
FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM shop.new_customers){s}) ORDER BY id"""


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_logistic_predict_matches_sklearn(con: sqlml.Connection, scoring: str) -> None:
    con.execute(CHURN)
    rows = con.execute(PREDICT.format(s=f", STRUCT('{scoring}' AS scoring)")).fetchall()
    ref, new = _churn_reference()
    expected = ref.predict_proba(new)
    assert [r[0] for r in rows] == list(range(200))
    probs = np.array([[p["prob"] for p in r[2]] for r in rows])
    np.testing.assert_allclose(probs, expected, atol=1e-9)
    assert [p["label"] for p in rows[0][2]] == [False, True]
    assert [r[1] for r in rows] == list(expected[:, 1] > 0.5)


def test_compiled_and_runtime_agree_and_keep_input_columns(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    query = "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers, STRUCT('{}' AS scoring)) ORDER BY id"
    compiled = con.execute(query.format("compiled")).fetch_arrow_table()
    runtime = con.execute(query.format("runtime")).fetch_arrow_table()
    assert compiled.column_names == [
        "id",
        "tenure",
        "spend",
        "plan",
        "promo",
        "predicted_churned",
        "predicted_churned_probs",
    ]
    assert compiled.column("predicted_churned").equals(runtime.column("predicted_churned"))
    a = np.array(
        [[p["prob"] for p in r] for r in compiled.column("predicted_churned_probs").to_pylist()]
    )
    b = np.array(
        [[p["prob"] for p in r] for r in runtime.column("predicted_churned_probs").to_pylist()]
    )
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_threshold(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    rows = con.execute(
        "SELECT predicted_churned, predicted_churned_probs FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers, STRUCT(0.9 AS threshold))"
    ).fetchall()
    assert all(r[0] == (r[1][1]["prob"] > 0.9) for r in rows)
    assert any(r[1][1]["prob"] > 0.5 and not r[0] for r in rows)


def test_score_in_where_group_by_and_join(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    ref, new = _churn_reference()
    p = ref.predict_proba(new)[:, 1]
    ids = [
        r[0]
        for r in con.execute(
            "SELECT id FROM shop.new_customers WHERE ML.SCORE(MODEL shop.churn) > 0.8 ORDER BY id"
        ).fetchall()
    ]
    assert ids == [i for i in range(200) if p[i] > 0.8]
    groups = dict(
        con.execute(
            "SELECT ML.SCORE(MODEL shop.churn) > 0.5 AS risky, count(*) FROM shop.new_customers GROUP BY risky"
        ).fetchall()
    )
    assert groups.get(True, 0) == int((p > 0.5).sum())
    joined = con.execute(
        "SELECT n.id, ML.SCORE(MODEL shop.churn, n) FROM shop.new_customers n JOIN shop.customers c ON c.id = n.id ORDER BY n.id"
    ).fetchall()
    np.testing.assert_allclose([r[1] for r in joined], p, atol=1e-9)


def test_evaluate_matches_sklearn(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    table = con.execute(
        "SELECT * FROM ML.EVALUATE(MODEL shop.churn, TABLE shop.customers)"
    ).fetch_arrow_table()
    assert table.column_names == [
        "precision",
        "recall",
        "accuracy",
        "f1_score",
        "log_loss",
        "roc_auc",
    ]
    ref, _ = _churn_reference()
    frame = _frame(["tenure", "spend", "plan", "promo"])
    y = shop_tables()["customers"].column("churned").to_numpy()
    proba = ref.predict_proba(frame)
    got = table.to_pylist()[0]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba[:, 1] > 0.5))
    assert got["precision"] == pytest.approx(skm.precision_score(y, proba[:, 1] > 0.5))
    assert got["recall"] == pytest.approx(skm.recall_score(y, proba[:, 1] > 0.5))
    assert got["f1_score"] == pytest.approx(skm.f1_score(y, proba[:, 1] > 0.5))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    stored = (
        con.execute("SELECT * FROM ML.EVALUATE(MODEL shop.churn)")
        .fetch_arrow_table()
        .to_pylist()[0]
    )
    assert stored["roc_auc"] == pytest.approx(
        got["roc_auc"]
    )  # NO_SPLIT: evaluated on training rows


def test_multiclass_string_label(con: sqlml.Connection) -> None:
    con.execute(
        "CREATE MODEL shop.seg OPTIONS (model_type='logistic_reg', input_label_cols=['segment'], data_split_method='NO_SPLIT', max_iterations=100)"
        " AS SELECT tenure, spend, plan, segment FROM shop.customers"
    )
    rows = con.execute(
        "SELECT predicted_segment, predicted_segment_probs FROM ML.PREDICT(MODEL shop.seg, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()
    ref = _reference(
        LogisticRegression(C=np.inf, max_iter=100, tol=0.01), ["tenure", "spend"], ["plan"]
    )
    ref.fit(
        _frame(["tenure", "spend", "plan"]),
        shop_tables()["customers"].column("segment").to_numpy(zero_copy_only=False),
    )
    new = _frame(["tenure", "spend", "plan"], "new_customers")
    assert [r[0] for r in rows] == list(ref.predict(new))
    np.testing.assert_allclose(
        [[p["prob"] for p in r[1]] for r in rows], ref.predict_proba(new), atol=1e-9
    )
    assert [p["label"] for p in rows[0][1]] == ["high", "low", "mid"]
    evaluation = (
        con.execute("SELECT * FROM ML.EVALUATE(MODEL shop.seg, TABLE shop.customers)")
        .fetch_arrow_table()
        .to_pylist()[0]
    )
    y = shop_tables()["customers"].column("segment").to_numpy(zero_copy_only=False)
    frame = _frame(["tenure", "spend", "plan"])
    assert evaluation["precision"] == pytest.approx(
        skm.precision_score(y, ref.predict(frame), average="macro")
    )


def test_linear_reg(con: sqlml.Connection) -> None:
    con.execute(
        "CREATE MODEL shop.value OPTIONS (model_type='linear_reg', input_label_cols=['value'], data_split_method='NO_SPLIT')"
        " AS SELECT tenure, spend, plan, value FROM shop.customers"
    )
    got = [
        r[0]
        for r in con.execute(
            "SELECT predicted_value FROM ML.PREDICT(MODEL shop.value, TABLE shop.new_customers) ORDER BY id"
        ).fetchall()
    ]
    ref = _reference(LinearRegression(), ["tenure", "spend"], ["plan"])
    ref.fit(
        _frame(["tenure", "spend", "plan"]), shop_tables()["customers"].column("value").to_numpy()
    )
    np.testing.assert_allclose(
        got, ref.predict(_frame(["tenure", "spend", "plan"], "new_customers")), atol=1e-8
    )
    evaluation = con.execute(
        "SELECT * FROM ML.EVALUATE(MODEL shop.value, TABLE shop.customers)"
    ).fetch_arrow_table()
    assert evaluation.column_names == [
        "mean_absolute_error",
        "mean_squared_error",
        "mean_squared_log_error",
        "median_absolute_error",
        "r2_score",
        "explained_variance",
    ]
    y = shop_tables()["customers"].column("value").to_numpy()
    assert evaluation.column("r2_score")[0].as_py() == pytest.approx(
        skm.r2_score(y, ref.predict(_frame(["tenure", "spend", "plan"])))
    )


def test_kmeans(con: sqlml.Connection) -> None:
    con.execute(
        "CREATE MODEL shop.clusters OPTIONS (model_type='kmeans', num_clusters=4, kmeans_init_method='KMEANS++')"
        " AS SELECT tenure, spend FROM shop.customers"
    )
    for scoring in ("compiled", "runtime"):
        rows = con.execute(
            f"SELECT centroid_id, nearest_centroids_distance FROM ML.PREDICT(MODEL shop.clusters, TABLE shop.new_customers, STRUCT('{scoring}' AS scoring)) ORDER BY id"
        ).fetchall()
        ref = _reference(
            KMeans(4, init="k-means++", n_init=1, max_iter=20, tol=0.01, random_state=0),
            ["tenure", "spend"],
            [],
        )
        ref.fit(_frame(["tenure", "spend"]))
        new = _frame(["tenure", "spend"], "new_customers")
        assert [r[0] for r in rows] == list(ref.predict(new) + 1)
        distances = ref.transform(new)
        first = rows[0][1]
        assert [d["centroid_id"] for d in first] == list(np.argsort(distances[0]) + 1)
        np.testing.assert_allclose([d["distance"] for d in first], np.sort(distances[0]), atol=1e-9)
    evaluation = (
        con.execute("SELECT * FROM ML.EVALUATE(MODEL shop.clusters, TABLE shop.customers)")
        .fetch_arrow_table()
        .to_pylist()[0]
    )
    x = ref[:-1].transform(_frame(["tenure", "spend"]))
    assert evaluation["davies_bouldin_index"] == pytest.approx(
        skm.davies_bouldin_score(x, ref.predict(_frame(["tenure", "spend"])))
    )


def test_transform_clause_matches_hand_built_reference(con: sqlml.Connection) -> None:
    con.execute(
        """CREATE MODEL shop.t
        TRANSFORM (ML.STANDARD_SCALER(tenure) OVER () AS t_std,
                   ML.MIN_MAX_SCALER(spend) OVER () AS s_mm,
                   ML.IMPUTER(spend, 'median') OVER () AS s_imp,
                   ML.ONE_HOT_ENCODER(plan) OVER () AS plan_oh,
                   ML.BUCKETIZE(tenure, [12, 24, 48]) AS t_bucket,
                   tenure / 12 AS years,
                   churned)
        OPTIONS (model_type='logistic_reg', input_label_cols=['churned'], data_split_method='NO_SPLIT')
        AS SELECT * FROM shop.customers"""
    )
    customers = shop_tables()["customers"].to_pandas()
    new = shop_tables()["new_customers"].to_pandas()

    def features(df: pd.DataFrame) -> np.ndarray[Any, Any]:
        tenure, spend = customers["tenure"].astype(float), customers["spend"]
        t_std = (df["tenure"] - tenure.mean()) / tenure.std(ddof=0)
        s_mm = (
            (df["spend"].fillna(spend.mean()) - spend.min()) / (spend.max() - spend.min())
        ).clip(0, 1)
        s_imp = df["spend"].fillna(spend.median())
        bucket = 1 + (df["tenure"].to_numpy()[:, None] >= np.array([12, 24, 48])).sum(axis=1)
        years = df["tenure"] / 12
        # automatic preprocessing of the non-final outputs: standardize numbers, one-hot buckets
        train_imp, train_years = spend.fillna(spend.median()), tenure / 12
        cols = [
            (s_imp - train_imp.mean()) / train_imp.std(ddof=0),
            (years - train_years.mean()) / train_years.std(ddof=0),
        ]
        onehot_bucket = [(bucket == b).astype(float) for b in (1, 2, 3, 4)]
        plans = sorted(p for p in customers["plan"].dropna().unique())
        onehot_plan = [(df["plan"] == p).astype(float) for p in plans]
        return np.column_stack(
            [
                cols[0],
                onehot_bucket[0],
                onehot_bucket[1],
                onehot_bucket[2],
                onehot_bucket[3],
                cols[1],
                t_std,
                s_mm,
                *onehot_plan,
            ]
        )

    ref = LogisticRegression(C=np.inf, max_iter=20, tol=0.01).fit(
        features(customers), customers["churned"]
    )
    rows = con.execute(
        "SELECT predicted_churned_probs FROM ML.PREDICT(MODEL shop.t, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()
    np.testing.assert_allclose(
        [r[0][1]["prob"] for r in rows], ref.predict_proba(features(new))[:, 1], atol=1e-8
    )


def test_versions_and_failed_replace_keeps_serving(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    before = con.execute(
        "SELECT ML.SCORE(MODEL shop.churn) FROM shop.new_customers ORDER BY id"
    ).fetchall()
    with pytest.raises(errors.UnusableTrainingData):
        con.execute(CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL") + " WHERE false")
    after = con.execute(
        "SELECT ML.SCORE(MODEL shop.churn) FROM shop.new_customers ORDER BY id"
    ).fetchall()
    assert before == after
    con.execute(CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL"))
    assert con.execute("SELECT max(version) FROM sqlml.versions").fetchone() == (2,)
    con.execute(CHURN.replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS"))
    assert con.execute("SELECT count(*) FROM sqlml.versions").fetchone() == (2,)
    listed = con.execute("SHOW MODELS").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in listed] == [("shop", "churn", "logistic_reg", 2)]


def test_drop_model(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    con.execute("DROP MODEL shop.churn")
    with pytest.raises(errors.UndefinedModel):
        con.execute("DROP MODEL shop.churn")
    con.execute("DROP MODEL IF EXISTS shop.churn")
    assert con.execute("SELECT count(*) FROM sqlml.versions").fetchone() == (0,)


def test_corrupted_model_is_refused(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    con.execute("UPDATE sqlml.versions SET onnx = ?", [b"\x00\x01"])
    with pytest.raises(errors.CorruptedModel) as caught:
        con.execute(PREDICT.format(s=""))
    assert caught.value.sqlstate == "XX001"


def test_duckdb_scorer_registry_checks_the_sha256(tmp_path: Any) -> None:
    """DuckDB's runtime UDF registry and the onnxruntime session cache are keyed by a graph's
    sha256: another graph's bytes under that key are refused (XX001), never cached."""
    import importlib

    from sqlml.ml.features import InputColumn
    from sqlml.ml.score import scorer
    from tests.conftest import load_shop

    con = sqlml.connect(str(tmp_path / "registry.duckdb"), autocommit=True)
    try:
        load_shop(con)
        # options no other test uses: a graph (sha256) this process has not cached yet
        unique = CHURN.replace("data_split_method", "l2_reg = 0.0123, data_split_method")
        con.execute(unique)
        con.execute(unique.replace("shop.churn", "shop.other").replace("0.0123", "7.5"))
        rows = con.execute(
            "SELECT model_name, onnx, onnx_sha256, inputs FROM sqlml.versions ORDER BY model_name"
        ).fetchall()
    finally:
        con.close()
    (_, _, sha, inputs), (_, other, _, _) = rows
    columns = [InputColumn(c["name"], c["kind"]) for c in json.loads(inputs)]
    udfs = importlib.import_module("sqlml._udfs.duckdb_udfs")
    for load in (udfs.register_model, lambda k, b, i: scorer(b, i, key=k)):
        with pytest.raises(errors.CorruptedModel) as caught:
            load(sha, bytes(other), columns)
        assert caught.value.sqlstate == "XX001"
    assert sha not in udfs._MODELS


@pytest.fixture(scope="module")
def churn(con_module: sqlml.Connection) -> sqlml.Connection:
    """shop.churn trained once per front for the error cases: each leaves it serving."""
    con_module.execute(CHURN)
    return con_module


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SELECT * FROM ML.PREDICT(MODEL shop.nope, TABLE shop.new_customers)", "42704"),
        ("SELECT * FROM ML.EVALUATE(MODEL shop.nope)", "42704"),
        (CHURN, "42710"),
        (CHURN.replace("'logistic_reg'", "'svm'").replace("shop.churn", "shop.x"), "22023"),
        (
            CHURN.replace("NO_SPLIT'", "NO_SPLIT', l2_reg = -1").replace("shop.churn", "shop.x"),
            "22023",
        ),
        (
            CHURN.replace("NO_SPLIT'", "NO_SPLIT', colour = 'red'").replace("shop.churn", "shop.x"),
            "22023",
        ),
        (CHURN.replace("['churned']", "['nope']").replace("shop.churn", "shop.x"), "42703"),
        (
            CHURN.replace("shop.customers", "shop.customers WHERE false").replace(
                "shop.churn", "shop.x"
            ),
            "22000",
        ),
        (
            CHURN.replace("shop.customers", "shop.customers WHERE churned").replace(
                "shop.churn", "shop.x"
            ),
            "22000",
        ),
        (
            "CREATE MODEL shop.x OPTIONS (model_type='logistic_reg', input_label_cols=['l']) AS SELECT 1.0 AS a, CAST(NULL AS BOOLEAN) AS l FROM shop.customers LIMIT 10",
            "22000",
        ),
        (
            CHURN.replace("shop.customers", "shop.missing_table").replace("shop.churn", "shop.x"),
            "42P01",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, (SELECT id, tenure, plan FROM shop.new_customers))",
            "42703",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, (SELECT tenure, 'x' AS spend, plan, promo FROM shop.new_customers))",
            "42804",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers, STRUCT('fast' AS scoring))",
            "22023",
        ),
        ("CREATE MODEL shop.x OPTIONS (model_type='logistic_reg' AS SELECT 1", "42601"),
    ],
)
def test_errors_have_sqlstates(churn: sqlml.Connection, sql: str, sqlstate: str) -> None:
    con = churn
    with pytest.raises(sqlml.Error) as caught:
        con.execute(sql)
    assert caught.value.sqlstate == sqlstate, caught.value
    # the session survives and the stored model still serves
    assert con.execute(
        "SELECT count(*) FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
    ).fetchone() == (200,)


def test_syntax_error_has_position(con: sqlml.Connection) -> None:
    with pytest.raises(errors.SyntaxError) as caught:
        con.execute("CREATE MODEL shop.x OPTIONS (model_type = ) AS SELECT 1")
    assert caught.value.position is not None
    assert caught.value.position > 1


def test_plain_sql_passes_through(con: sqlml.Connection) -> None:
    cur = con.execute("SELECT 1 AS one, 'a' AS letter")
    assert cur.description is not None
    assert [d[0] for d in cur.description] == ["one", "letter"]
    assert cur.fetchall() == [(1, "a")]
    assert con.execute("SELECT ? + 1", [41]).fetchone() == (42,)


def test_rendered_queries_follow_new_versions_and_changed_inputs(con: sqlml.Connection) -> None:
    query = "SELECT ML.SCORE(MODEL shop.churn) FROM shop.new_customers ORDER BY id"
    con.execute(CHURN)
    first = con.execute(query).fetchall()
    assert con.execute(query).fetchall() == first  # the kept plan gives the same answer
    con.execute(
        CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL").replace(
            "shop.customers", "shop.customers WHERE id % 2 = 0"
        )
    )
    second = con.execute(query).fetchall()
    assert second != first
    predict = "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
    assert len(con.execute(predict).fetchall()) == 200  # kept as a plan
    con.execute("ALTER TABLE shop.new_customers RENAME TO old_customers")
    con.execute(
        "CREATE TABLE shop.new_customers AS SELECT id, tenure, 'x' AS spend, plan, promo FROM shop.old_customers"
    )
    with pytest.raises(errors.DatatypeMismatch):
        con.execute(predict)  # the kept plan checks its input again
