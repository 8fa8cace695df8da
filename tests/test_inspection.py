"""The inspection functions computed from stored metadata (issue 13, point 4): ML.FEATURE_INFO,
ML.TRAINING_INFO, ML.WEIGHTS, ML.CENTROIDS, and ML.EVALUATE without rows, through every front
door (sqlml.connect on DuckDB and PostgreSQL, the gateway over DuckDB and the PostgreSQL proxy
with psycopg 3). Columns and types are BigQuery ML's; the weights and centroids are checked
against scikit-learn fitted independently on the same rows and preprocessing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import shop_tables

import sqlml

RIDGE = (
    "CREATE OR REPLACE MODEL shop.lin OPTIONS (model_type='linear_reg', input_label_cols=['value'],"
    " l2_reg=1.0, data_split_method='NO_SPLIT') AS SELECT tenure, spend, plan, value"
    " FROM shop.customers"
)
MULTICLASS = (
    "CREATE OR REPLACE MODEL shop.seg OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['segment'], l2_reg=1.0, max_iterations=200, early_stop=FALSE,"
    " data_split_method='NO_SPLIT') AS SELECT tenure, spend, plan, segment FROM shop.customers"
)
BINARY = (
    "CREATE OR REPLACE MODEL shop.churn OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['churned']) AS SELECT tenure, spend, plan, churned FROM shop.customers"
)
KMEANS = (
    "CREATE OR REPLACE MODEL shop.km OPTIONS (model_type='kmeans', num_clusters=3)"
    " AS SELECT tenure, spend, plan FROM shop.customers"
)
PLAN_CATEGORIES = ["basic", "plus", "premium", None]  # sorted; NULL seen in training, last


def rows(con: Any, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    cursor = con.execute(sql)
    names = [c[0] for c in cursor.description]
    return names, [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def structs(value: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """An ARRAY<STRUCT> value as dicts, whichever way the front door gave it: dicts (DuckDB's
    structs through sqlml.connect, PostgreSQL's jsonb) or, over the DuckDB gateway, anonymous
    records that psycopg reads as tuples of text."""
    out = []
    for element in value:
        if isinstance(element, dict):
            out.append(element)
        else:
            out.append(dict(zip(fields, element, strict=True)))
    return out


def number(value: Any) -> float | None:
    return None if value is None else float(value)


def fails(con: Any, sql: str) -> str | None:
    with pytest.raises(sqlml.Error) as caught:
        con.execute(sql).fetchall()
    return caught.value.sqlstate


# -- the reference: scikit-learn on the same rows, preprocessed as BigQuery ML documents --------


def reference_matrix() -> tuple[np.ndarray[Any, Any], list[float], list[float]]:
    """tenure and spend (NULL -> mean) standardized, plan one-hot over its sorted categories with
    NULL a category of its own: (X, means, standard deviations)."""
    customers = shop_tables()["customers"]
    columns, means, stds = [], [], []
    for name in ("tenure", "spend"):
        x = np.asarray(customers.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        x = np.where(np.isnan(x), np.nanmean(x), x)
        means.append(float(x.mean()))
        stds.append(float(x.std()))
        columns.append((x - x.mean()) / x.std())
    plan = customers.column("plan").to_pylist()
    for category in PLAN_CATEGORIES:
        columns.append(np.array([p == category for p in plan], dtype=np.float64))
    return np.column_stack(columns), means, stds


def label(name: str) -> np.ndarray[Any, Any]:
    return np.asarray(shop_tables()["customers"].column(name).to_pylist())


# -- ML.WEIGHTS ---------------------------------------------------------------------------------


def _weights(found: list[dict[str, Any]]) -> tuple[list[float], list[float], float]:
    """(numeric weights, plan's category weights, intercept) from ML.WEIGHTS rows of one class."""
    by = {r["processed_input"]: r for r in found}
    assert list(by) == ["tenure", "spend", "plan", "__INTERCEPT__"]
    plan = structs(by["plan"]["category_weights"], ("category", "weight"))
    assert [p["category"] for p in plan] == PLAN_CATEGORIES
    assert by["plan"]["weight"] is None
    assert structs(by["tenure"]["category_weights"], ("category", "weight")) == []
    numeric = [float(by["tenure"]["weight"]), float(by["spend"]["weight"])]
    return numeric, [float(p["weight"]) for p in plan], float(by["__INTERCEPT__"]["weight"])


def test_weights_of_a_linear_regression_equal_scikit_learns(con: Any) -> None:
    from sklearn.linear_model import Ridge

    x, means, stds = reference_matrix()
    fitted = Ridge(alpha=1.0).fit(x, label("value").astype(np.float64))
    con.execute(RIDGE)
    names, found = rows(
        con, "SELECT * FROM ML.WEIGHTS(MODEL shop.lin, STRUCT(TRUE AS standardize))"
    )
    assert names == ["processed_input", "weight", "category_weights"]
    numeric, plan, intercept = _weights(found)
    np.testing.assert_allclose(numeric + plan, fitted.coef_, rtol=1e-6, atol=1e-9)
    assert math.isclose(intercept, float(fitted.intercept_), rel_tol=1e-6)
    # BigQuery's default: the weights on the features as given (the standardization undone)
    _, raw = rows(con, "SELECT * FROM ML.WEIGHTS(MODEL shop.lin)")
    numeric, plan, intercept = _weights(raw)
    expected = [fitted.coef_[j] / stds[j] for j in range(2)]
    np.testing.assert_allclose(numeric, expected, rtol=1e-6)
    np.testing.assert_allclose(plan, fitted.coef_[2:], rtol=1e-6, atol=1e-9)
    shift = sum(fitted.coef_[j] * means[j] / stds[j] for j in range(2))
    assert math.isclose(intercept, float(fitted.intercept_) - shift, rel_tol=1e-6)


def test_weights_of_a_multiclass_model_per_class(con: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, _, _ = reference_matrix()
    y = label("segment")
    fitted = LogisticRegression(C=1.0, solver="lbfgs", max_iter=200, tol=0.0).fit(x, y)
    con.execute(MULTICLASS)
    names, found = rows(
        con, "SELECT * FROM ML.WEIGHTS(MODEL shop.seg, STRUCT(TRUE AS standardize))"
    )
    assert names == ["processed_input", "weight", "category_weights", "class_label"]
    assert [r["class_label"] for r in found] == [c for c in fitted.classes_ for _ in range(4)]
    for k, cls in enumerate(fitted.classes_):
        numeric, plan, intercept = _weights([r for r in found if r["class_label"] == cls])
        np.testing.assert_allclose(numeric + plan, fitted.coef_[k], rtol=1e-5, atol=1e-6)
        assert math.isclose(intercept, float(fitted.intercept_[k]), rel_tol=1e-5, abs_tol=1e-6)


def test_weights_of_a_binary_model_have_no_class_label(con: Any) -> None:
    con.execute(BINARY)
    names, found = rows(con, "SELECT processed_input, weight FROM ML.WEIGHTS(MODEL shop.churn)")
    assert [r["processed_input"] for r in found] == ["tenure", "spend", "plan", "__INTERCEPT__"]
    names, _ = rows(con, "SELECT * FROM ML.WEIGHTS(MODEL shop.churn)")
    assert "class_label" not in names


# -- ML.CENTROIDS -------------------------------------------------------------------------------


def test_centroids_equal_scikit_learns_kmeans(con: Any) -> None:
    from sklearn.cluster import KMeans

    x, means, stds = reference_matrix()
    fitted = KMeans(n_clusters=3, init="random", n_init=1, max_iter=20, tol=0.01, random_state=0)
    fitted.fit(x)
    con.execute(KMEANS)
    names, found = rows(con, "SELECT * FROM ML.CENTROIDS(MODEL shop.km)")
    assert names == [
        "centroid_id", "feature", "numerical_value", "categorical_value", "geography_value"
    ]  # fmt: skip
    assert [(r["centroid_id"], r["feature"]) for r in found] == [
        (k, f) for k in (1, 2, 3) for f in ("tenure", "spend", "plan")
    ]
    for r in found:
        center = fitted.cluster_centers_[r["centroid_id"] - 1]
        assert r["geography_value"] is None
        if r["feature"] == "plan":
            assert r["numerical_value"] is None
            values = structs(r["categorical_value"], ("category", "value"))
            assert [v["category"] for v in values] == PLAN_CATEGORIES
            np.testing.assert_allclose([float(v["value"]) for v in values], center[2:], atol=1e-9)
        else:
            j = ("tenure", "spend").index(r["feature"])
            expected = center[j] * stds[j] + means[j]
            assert math.isclose(float(r["numerical_value"]), expected, rel_tol=1e-6)
    _, standardized = rows(
        con, "SELECT * FROM ML.CENTROIDS(MODEL shop.km, STRUCT(TRUE AS standardize))"
    )
    tenure = [number(r["numerical_value"]) for r in standardized if r["feature"] == "tenure"]
    np.testing.assert_allclose(tenure, fitted.cluster_centers_[:, 0], rtol=1e-6, atol=1e-9)


def test_functions_that_do_not_apply_to_the_model_type_are_0A000(con: Any) -> None:
    con.execute(RIDGE)
    con.execute(KMEANS)
    # each applies to its own model type...
    assert rows(con, "SELECT centroid_id FROM ML.CENTROIDS(MODEL shop.km)")[1]
    assert rows(con, "SELECT weight FROM ML.WEIGHTS(MODEL shop.lin)")[1]
    # ...and not to the other
    assert fails(con, "SELECT * FROM ML.CENTROIDS(MODEL shop.lin)") == "0A000"
    assert fails(con, "SELECT * FROM ML.WEIGHTS(MODEL shop.km)") == "0A000"


def test_struct_fields_of_the_inspection_functions_are_checked(con: Any) -> None:
    con.execute(RIDGE)
    assert (
        fails(con, "SELECT * FROM ML.WEIGHTS(MODEL shop.lin, STRUCT('yes' AS standardize))")
        == "22023"
    )
    assert (
        fails(con, "SELECT * FROM ML.WEIGHTS(MODEL shop.lin, STRUCT(TRUE AS standardise))")
        == "22023"
    )
    assert (
        fails(con, "SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin, STRUCT(TRUE AS standardize))")
        == "22023"
    )
    assert (
        fails(con, "SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin, TABLE shop.customers)") == "42601"
    )


# -- ML.FEATURE_INFO and ML.TRAINING_INFO -------------------------------------------------------


def test_feature_info(con: Any) -> None:
    _, means, stds = reference_matrix()
    con.execute(RIDGE)
    names, found = rows(con, "SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin)")
    assert names == [
        "input", "min", "max", "mean", "median", "stddev", "category_count", "null_count",
        "dimension",
    ]  # fmt: skip
    assert [r["input"] for r in found] == ["tenure", "spend", "plan"]
    for j, r in enumerate(found[:2]):
        assert math.isclose(float(r["mean"]), means[j], rel_tol=1e-9)
        assert math.isclose(float(r["stddev"]), stds[j], rel_tol=1e-9)
        assert r["category_count"] is None
    assert found[2]["mean"] is None
    assert found[2]["category_count"] == 3


def test_training_info(con: Any) -> None:
    con.execute(RIDGE)
    con.execute(KMEANS)
    names, found = rows(con, "SELECT * FROM ML.TRAINING_INFO(MODEL shop.lin)")
    assert names == [
        "training_run", "iteration", "loss", "eval_loss", "learning_rate", "duration_ms"
    ]  # fmt: skip
    assert len(found) == 1
    _, metrics = rows(con, "SELECT mean_squared_error FROM ML.EVALUATE(MODEL shop.lin)")
    assert found[0]["training_run"] == 0
    assert math.isclose(float(found[0]["loss"]), float(metrics[0]["mean_squared_error"]))
    assert found[0]["eval_loss"] is None  # NO_SPLIT: the loss is on the training rows
    assert int(found[0]["duration_ms"]) >= 0
    names, found = rows(con, "SELECT * FROM ML.TRAINING_INFO(MODEL shop.km)")
    assert names == [
        "training_run", "iteration", "loss", "learning_rate", "duration_ms", "cluster_info"
    ]  # fmt: skip
    clusters = structs(found[0]["cluster_info"], ("centroid_id", "cluster_radius", "cluster_size"))
    assert [int(c["centroid_id"]) for c in clusters] == [1, 2, 3]
    # BigQuery's cluster_radius: the mean distance of the training rows nearest the centroid
    # (scikit-learn's k-means fitted on the same rows, as in the ML.CENTROIDS test above)
    from sklearn.cluster import KMeans

    x, _, _ = reference_matrix()
    fitted = KMeans(n_clusters=3, init="random", n_init=1, max_iter=20, tol=0.01, random_state=0)
    distances = fitted.fit(x).transform(x)
    nearest = np.argmin(distances, axis=1)
    sizes = [int(np.sum(nearest == k)) for k in range(3)]
    radii = [float(np.mean(distances[nearest == k, k])) for k in range(3)]
    assert [int(c["cluster_size"]) for c in clusters] == sizes
    np.testing.assert_allclose([float(c["cluster_radius"]) for c in clusters], radii, rtol=1e-6)


def test_evaluate_without_rows_at_another_threshold(con: Any) -> None:
    """BigQuery allows ML.EVALUATE(MODEL m, STRUCT(0.6 AS threshold)) without rows: a binary
    classifier keeps its evaluation rows' probabilities, and the metrics at another cut equal
    those computed on the same evaluation rows given again; at 0.5 they are the stored ones."""
    con.execute(
        "CREATE OR REPLACE MODEL shop.churn OPTIONS (model_type='logistic_reg',"
        " input_label_cols=['churned'], data_split_method='CUSTOM', data_split_col='is_eval')"
        " AS SELECT tenure, spend, plan, churned, id % 4 = 0 AS is_eval FROM shop.customers"
    )
    held = "(SELECT tenure, spend, plan, churned FROM shop.customers WHERE id % 4 = 0)"
    names = ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"]
    columns = ", ".join(names)
    for cut in (0.3, 0.6):
        _, kept = rows(
            con, f"SELECT {columns} FROM ML.EVALUATE(MODEL shop.churn, STRUCT({cut} AS threshold))"
        )
        _, given = rows(
            con,
            f"SELECT {columns} FROM ML.EVALUATE(MODEL shop.churn, {held},"
            f" STRUCT({cut} AS threshold))",
        )
        for name in names:
            assert float(kept[0][name]) == pytest.approx(float(given[0][name]), rel=1e-9)
    _, stored = rows(con, f"SELECT {columns} FROM ML.EVALUATE(MODEL shop.churn)")
    _, half = rows(
        con, f"SELECT {columns} FROM ML.EVALUATE(MODEL shop.churn, STRUCT(0.5 AS threshold))"
    )
    assert [float(half[0][n]) for n in names] == pytest.approx([float(stored[0][n]) for n in names])
    # a multiclass model has no threshold to move: 0A000, and the session goes on
    con.execute(
        "CREATE OR REPLACE MODEL shop.seg OPTIONS (model_type='logistic_reg',"
        " input_label_cols=['segment']) AS SELECT tenure, spend, segment FROM shop.customers"
    )
    assert fails(con, "SELECT * FROM ML.EVALUATE(MODEL shop.seg, STRUCT(0.6 AS threshold))") == (
        "0A000"
    )
    assert rows(con, "SELECT 1 AS one")[1] == [{"one": 1}]


# -- types, as each engine holds them (sqlml.connect) ---------------------------------------------


def test_types_on_each_engine(database: str) -> None:
    from conftest import load_shop

    con = sqlml.connect(database, autocommit=True)
    if not database.startswith("postgresql"):
        load_shop(con)
    con.execute(RIDGE)
    con.execute(KMEANS)
    weights = con.execute("SELECT * FROM ML.WEIGHTS(MODEL shop.lin)").fetch_arrow_table().schema
    assert weights.field("processed_input").type == pa.string()
    assert weights.field("weight").type == pa.float64()
    category = weights.field("category_weights").type
    assert pa.types.is_list(category)
    info = con.execute("SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin)").fetch_arrow_table().schema
    assert [info.field(n).type for n in ("mean", "category_count")] == [pa.float64(), pa.int64()]
    training = con.execute("SELECT * FROM ML.TRAINING_INFO(MODEL shop.km)").fetch_arrow_table()
    assert training.schema.field("duration_ms").type == pa.int64()
    if database.startswith("postgresql"):
        # jsonb on PostgreSQL (literal.py): read back as a list of structs
        kinds = con.execute(
            "SELECT pg_typeof(category_weights)::text FROM ML.WEIGHTS(MODEL shop.lin) LIMIT 1"
        ).fetchall()
        assert kinds == [("jsonb",)]
    else:
        assert category.value_type == pa.struct(
            [("category", pa.string()), ("weight", pa.float64())]
        )
    con.close()


# -- the real `sqlml serve` command, psycopg2 as the client ---------------------------------------


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_through_sqlml_serve_with_psycopg2(
    engine: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    import psycopg2
    from conftest import load_shop, sqlml_serve

    from sqlml.wire.upstream import Target

    if engine == "postgres":
        database = str(request.getfixturevalue("pg_database"))
        dbname = Target.parse(database).dbname
    else:
        database, dbname = str(tmp_path / "inspect.duckdb"), "inspect"
        loading = sqlml.connect(database, autocommit=True)
        load_shop(loading)
        loading.close()
    with sqlml_serve("-d", database) as port:
        con = psycopg2.connect(host="127.0.0.1", port=port, dbname=dbname, user="ana")
        con.autocommit = True
        with con.cursor() as cursor:
            cursor.execute(RIDGE)
            cursor.execute("SELECT processed_input, weight FROM ML.WEIGHTS(MODEL shop.lin)")
            assert [r[0] for r in cursor.fetchall()] == ["tenure", "spend", "plan", "__INTERCEPT__"]
            cursor.execute("SELECT input, mean FROM ML.FEATURE_INFO(MODEL shop.lin)")
            assert [r[0] for r in cursor.fetchall()] == ["tenure", "spend", "plan"]
            cursor.execute("SELECT training_run FROM ML.TRAINING_INFO(MODEL shop.lin)")
            assert cursor.fetchall() == [(0,)]
            with pytest.raises(psycopg2.Error) as caught:
                cursor.execute("SELECT * FROM ML.CENTROIDS(MODEL shop.lin)")
            assert caught.value.pgcode == "0A000"
        con.close()


def test_a_new_version_is_seen_and_a_view_is_refused(con: Any) -> None:
    """The rendered rows are kept with the plan only while the model serves the same version;
    in a view they would go stale (0A000), in CREATE TABLE AS they are kept."""
    weights = "SELECT weight FROM ML.WEIGHTS(MODEL shop.lin) WHERE processed_input = 'tenure'"
    con.execute(RIDGE)
    first = con.execute(weights).fetchall()
    assert con.execute(weights).fetchall() == first  # (the kept plan)
    con.execute(RIDGE.replace("FROM shop.customers", "FROM shop.customers WHERE id < 400"))
    assert con.execute(weights).fetchall() != first
    error = fails(con, "CREATE VIEW shop.w AS SELECT * FROM ML.WEIGHTS(MODEL shop.lin)")
    assert error == "0A000"
    con.execute("CREATE TABLE shop.w AS SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin)")
    assert len(con.execute("SELECT input FROM shop.w").fetchall()) == 3


def test_in_bigquery_mode(database: str) -> None:
    """As BigQuery's reference writes them: backtick paths, STRUCT(TRUE AS standardize)."""
    from conftest import load_shop

    con = sqlml.connect(database, autocommit=True, dialect="bigquery")
    if not database.startswith("postgresql"):
        load_shop(con)
    con.execute(RIDGE.replace("shop.lin", "`shop.lin`"))
    found = con.execute(
        "SELECT processed_input FROM ML.WEIGHTS(MODEL `shop.lin`, STRUCT(TRUE AS standardize))"
    ).fetchall()
    assert [r[0] for r in found] == ["tenure", "spend", "plan", "__INTERCEPT__"]
    assert con.execute("SELECT COUNT(*) FROM ML.FEATURE_INFO(MODEL `shop.lin`)").fetchall() == [
        (3,)
    ]
    con.close()


def test_types_on_the_wire(con: Any) -> None:
    """Through the gateway (DuckDB) and the proxy (PostgreSQL) the columns arrive with
    PostgreSQL's types for BigQuery's: FLOAT64 float8, INT64 int8, STRING text or varchar."""
    if isinstance(con, sqlml.Connection):
        return  # (sqlml.connect's Arrow types: test_types_on_each_engine)
    con.execute(RIDGE)
    cursor = con.execute("SELECT * FROM ML.FEATURE_INFO(MODEL shop.lin)")
    oids = {c.name: c.type_code for c in cursor.description}
    float8, int8, text = 701, 20, (25, 1043)
    assert oids["input"] in text
    assert [oids[n] for n in ("min", "max", "mean", "median", "stddev")] == [float8] * 5
    assert [oids[n] for n in ("category_count", "null_count", "dimension")] == [int8] * 3
    cursor.fetchall()
