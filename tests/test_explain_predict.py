"""ML.EXPLAIN_PREDICT for linear_reg and logistic_reg (sqlml/functions/explain_predict.py), on
DuckDB and PostgreSQL, checked against computations of the test's own: scikit-learn's OLS on
the same numeric rows (its attributions coef * (x - mean) and its mean prediction as the
baseline), BigQuery's rule "weight * standardized value" from ML.WEIGHTS' standardized weights
and numpy's means and standard deviations, and ML.PREDICT's own outputs for the identity
baseline + attributions = prediction and for the classifiers' probabilities and logits."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import (
    ENGINES,
    EXPLAINED,
    Noticing,
    attributions,
    class_probability,
    explain_table,
    module_database,
    psycopg_gateway,
    wire_attributions,
)
from sklearn.linear_model import LinearRegression

from sqlml import errors

N = 400
TABLE = explain_table("ex", N)
NO_SPLIT = "data_split_method = 'NO_SPLIT'"


Ex = Noticing  # (the connection the tests of this module share)


@pytest.fixture(scope="module", params=ENGINES)
def ex(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ex]:
    with module_database(str(request.param), request, tmp_path_factory, "explain") as database:
        found = Ex(database, str(request.param))
        found.run("CREATE SCHEMA ex")
        found.run(TABLE)
        found.run(
            "CREATE MODEL ex.numeric OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {NO_SPLIT}) AS SELECT x2, y FROM ex.t"
        )
        found.run(
            "CREATE MODEL ex.mixed OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {NO_SPLIT}) AS SELECT x1, x2, s, y FROM ex.t"
        )
        found.run(
            "CREATE MODEL ex.binary OPTIONS (model_type = 'logistic_reg', input_label_cols = ['c'],"
            f" {NO_SPLIT}) AS SELECT x1, x2, s, c FROM ex.t"
        )
        found.run(
            "CREATE MODEL ex.multi OPTIONS (model_type = 'logistic_reg', input_label_cols = ['k'],"
            f" {NO_SPLIT}) AS SELECT x1, x2, s, k FROM ex.t"
        )
        yield found
        found.con.close()


def _mean_and_std(values: list[float | None]) -> tuple[float, float]:
    """The training mean of the non-NULL values, and the standard deviation sqlml standardizes
    with: the population one, a NULL counted at the mean (it is imputed so)."""
    known = np.array([v for v in values if v is not None])
    mean = float(known.mean())
    imputed = np.array([mean if v is None else v for v in values])
    return mean, float(imputed.std())


def test_ols_attributions_are_coef_times_the_distance_to_the_mean(ex: Ex) -> None:
    """Numeric features only: scikit-learn's OLS on the same rows gives the reference
    attributions coef * (x - mean); the baseline (the standardized intercept) is then the mean
    prediction, which for OLS with an intercept is the mean of y."""
    data = ex.run("SELECT x2, y FROM ex.t ORDER BY i")
    x = np.array([[r[0]] for r in data])
    y = np.array([r[1] for r in data])
    reference = LinearRegression().fit(x, y)
    rows = ex.explained(
        "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.numeric, (SELECT i, x2 FROM ex.t)) ORDER BY i"
    )
    assert len(rows) == N
    for row, xi in zip(rows, x[:, 0], strict=True):
        expected = reference.coef_[0] * (xi - x[:, 0].mean())
        assert attributions(row)["x2"] == pytest.approx(expected, abs=1e-8)
        assert row["baseline_prediction_value"] == pytest.approx(y.mean(), abs=1e-8)
        assert row["prediction_value"] == pytest.approx(reference.predict([[xi]])[0], abs=1e-8)
        assert row["predicted_y"] == pytest.approx(row["prediction_value"])
        assert row["approximation_error"] == 0.0


def test_mixed_features_follow_bigquerys_rule(ex: Ex) -> None:
    """weight * standardized value (numpy's mean and population standard deviation of the
    training rows, NULL imputed to the mean: 0), the weight of the category present (a category
    not seen in training: 0), the standardized intercept as the baseline; they add up to
    ML.PREDICT's prediction; the top 2 by absolute value, in that order."""
    weights = ex.weights("ex.mixed")
    data = ex.run("SELECT x1, x2 FROM ex.t")
    stats = {}
    for j, name in enumerate(("x1", "x2")):
        stats[name] = _mean_and_std([r[j] for r in data])
    rows = ex.explained(
        "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.mixed,"
        " (SELECT i, x1, x2, CASE WHEN i = 5 THEN 'unseen' ELSE s END AS s FROM ex.t),"
        " STRUCT(2 AS top_k_features)) ORDER BY i"
    )
    full = ex.explained(
        "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.mixed,"
        " (SELECT i, x1, x2, CASE WHEN i = 5 THEN 'unseen' ELSE s END AS s FROM ex.t),"
        " STRUCT(10 AS top_k_features)) ORDER BY i"
    )
    predicted = ex.run(
        "SELECT predicted_y FROM ML.PREDICT(MODEL ex.mixed,"
        " (SELECT i, x1, x2, CASE WHEN i = 5 THEN 'unseen' ELSE s END AS s FROM ex.t)) ORDER BY i"
    )
    for row, every, (value,) in zip(rows, full, predicted, strict=True):
        expected = {}
        for name in ("x1", "x2"):
            x = row[name]
            mean, std = stats[name]
            expected[name] = 0.0 if x is None else weights[name] * (x - mean) / std
        expected["s"] = weights["s"].get(row["s"], 0.0)
        got = attributions(every)
        assert set(got) == {"x1", "x2", "s"}
        for name, want in expected.items():
            assert got[name] == pytest.approx(want, abs=1e-8), (row["i"], name)
        assert row["baseline_prediction_value"] == pytest.approx(weights["__INTERCEPT__"])
        total = row["baseline_prediction_value"] + sum(got.values())
        assert total == pytest.approx(value, abs=1e-8)
        assert row["prediction_value"] == pytest.approx(value, abs=1e-8)
        top = [a["feature"] for a in row["top_feature_attributions"]]
        assert top == sorted(expected, key=lambda n: -abs(expected[n]))[:2]
    unseen = next(r for r in full if r["i"] == 5)
    assert attributions(unseen)["s"] == 0.0


def test_binary_logistic_explains_the_predicted_class_in_log_odds(ex: Ex) -> None:
    """prediction_value is the log-odds of the predicted class (of ML.PREDICT's probability);
    probability is that class's; the attributions are the positive class's standardized weights
    times the features, negated when the negative class is predicted; a threshold moves rows to
    the negative class."""
    weights = ex.weights("ex.binary")
    query = "(SELECT i, x1, x2, s FROM ex.t WHERE x1 IS NOT NULL AND s IS NOT NULL)"
    data = ex.run("SELECT x1, x2 FROM ex.t")
    stats = {}
    for j, name in enumerate(("x1", "x2")):
        stats[name] = _mean_and_std([r[j] for r in data])
    for threshold in (0.5, 0.9):
        rows = ex.explained(
            f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.binary, {query},"
            f" STRUCT({threshold} AS threshold)) ORDER BY i"
        )
        probs = ex.run(
            f"SELECT predicted_c, predicted_c_probs FROM ML.PREDICT(MODEL ex.binary, {query},"
            f" STRUCT({threshold} AS threshold)) ORDER BY i"
        )
        negatives = 0
        for row, (label, by_class) in zip(rows, probs, strict=True):
            p = class_probability(label, by_class)
            assert row["predicted_c"] == label
            assert row["probability"] == pytest.approx(p, abs=1e-9)
            assert row["prediction_value"] == pytest.approx(math.log(p / (1 - p)), abs=1e-7)
            sign = 1.0 if label else -1.0
            negatives += not label
            got = attributions(row)
            for name in ("x1", "x2"):
                mean, std = stats[name]
                want = sign * weights[name] * (row[name] - mean) / std
                assert got[name] == pytest.approx(want, abs=1e-8)
            assert got["s"] == pytest.approx(sign * weights["s"][row["s"]], abs=1e-8)
            assert row["baseline_prediction_value"] == pytest.approx(
                sign * weights["__INTERCEPT__"], abs=1e-8
            )
            total = row["baseline_prediction_value"] + sum(got.values())
            assert total == pytest.approx(row["prediction_value"], abs=1e-8)
        assert 0 < negatives < len(rows)  # (both classes explained)
        if threshold == 0.9:
            assert negatives > len(rows) // 2


def test_multiclass_explains_the_predicted_classs_logit(ex: Ex) -> None:
    """The predicted class's softmax logit: its attributions are that class's weights (ML.WEIGHTS
    per class_label) times the features, they add up to its logit, and the logits' softmax
    gives ML.PREDICT's probability."""
    query = "(SELECT i, x1, x2, s FROM ex.t WHERE i <= 120)"
    rows = ex.explained(f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.multi, {query}) ORDER BY i")
    probs = ex.run(
        f"SELECT predicted_k, predicted_k_probs FROM ML.PREDICT(MODEL ex.multi, {query}) ORDER BY i"
    )
    seen = set()
    for row, (label, by_class) in zip(rows, probs, strict=True):
        p = class_probability(label, by_class)
        assert row["predicted_k"] == label
        assert row["probability"] == pytest.approx(p, abs=1e-9)
        weights = ex.weights("ex.multi", class_label=label)
        got = attributions(row)
        assert got["s"] == pytest.approx(weights["s"].get(row["s"], 0.0), abs=1e-8)
        assert row["baseline_prediction_value"] == pytest.approx(weights["__INTERCEPT__"])
        total = row["baseline_prediction_value"] + sum(got.values())
        assert total == pytest.approx(row["prediction_value"], abs=1e-8)
        seen.add(label)
    assert len(seen) >= 2


def test_transform_outputs_of_a_linear_model(ex: Ex) -> None:
    """TRANSFORM outputs used as they are: each column's attribution is its weight (ML.WEIGHTS,
    unstandardized: the weight of the value the linear layer reads) times its distance to its
    training mean, the values computed here with numpy from the scalers' definitions; an
    ML.ONE_HOT_ENCODER block's is the weight of the category present; they add up to
    ML.PREDICT's value from the standardized intercept."""
    ex.run(
        "CREATE OR REPLACE MODEL ex.transformed TRANSFORM (ML.STANDARD_SCALER(x2) OVER () AS x2s,"
        " ML.MIN_MAX_SCALER(x2 * x2) OVER () AS sq, ML.ONE_HOT_ENCODER(k) OVER () AS ko, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        f" {NO_SPLIT}) AS SELECT x2, k, y FROM ex.t"
    )
    raw = ex.run("SELECT x2, k FROM ex.t ORDER BY i")
    x2 = np.array([r[0] for r in raw])
    scaled = (x2 - x2.mean()) / x2.std()  # (sqlml's ML.STANDARD_SCALER: the population sd)
    square = x2 * x2
    minmax = (square - square.min()) / (square.max() - square.min())
    rows = ex.run("SELECT * FROM ML.WEIGHTS(MODEL ex.transformed)")
    weights: dict[str, Any] = {}
    for name, weight, categories in (r[:3] for r in rows):
        if isinstance(categories, str):
            categories = json.loads(categories)
        weights[name] = {c["category"]: c["weight"] for c in categories} if categories else weight
    explained = ex.explained(
        "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.transformed, (SELECT i, x2, k FROM ex.t),"
        " STRUCT(3 AS top_k_features)) ORDER BY i"
    )
    predicted = ex.run(
        "SELECT predicted_y FROM ML.PREDICT(MODEL ex.transformed, (SELECT i, x2, k FROM ex.t))"
        " ORDER BY i"
    )
    assert len(explained) == len(raw) == N
    for n, row in enumerate(explained):
        got = attributions(row)
        assert set(got) == {"x2s", "sq", "ko"}
        x2s = weights["x2s"] * (scaled[n] - scaled.mean())
        assert got["x2s"] == pytest.approx(x2s, abs=1e-8)
        assert got["sq"] == pytest.approx(weights["sq"] * (minmax[n] - minmax.mean()), abs=1e-8)
        assert got["ko"] == pytest.approx(weights["ko"][raw[n][1]], abs=1e-8)
        total = row["baseline_prediction_value"] + sum(got.values())
        assert total == pytest.approx(row["prediction_value"], abs=1e-8)
        assert row["prediction_value"] == pytest.approx(predicted[n][0], abs=1e-8)


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        ("ML.EXPLAIN_PREDICT(MODEL ex.mixed, TABLE ex.t, STRUCT(0 AS top_k_features))", "22023"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.binary, TABLE ex.t, STRUCT(1.5 AS threshold))", "22023"),
        (
            "ML.EXPLAIN_PREDICT(MODEL ex.mixed, TABLE ex.t, STRUCT(TRUE AS approx_feature_contrib))",
            "0A000",
        ),
        ("ML.EXPLAIN_PREDICT(MODEL ex.km, TABLE ex.t)", "0A000"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.transformed_dnn, TABLE ex.t)", "0A000"),
        (
            "ML.EXPLAIN_PREDICT(MODEL ex.mixed, (SELECT x1, x2, s, 1 AS probability FROM ex.t))",
            "42701",
        ),
        ("ML.EXPLAIN_PREDICT(MODEL ex.mixed, (SELECT x1, s FROM ex.t))", "42703"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.nope, TABLE ex.t)", "42704"),
    ],
)
def test_bad_calls_are_refused_with_their_sqlstate(ex: Ex, call: str, sqlstate: str) -> None:
    if not ex.run("SELECT count(*) FROM sqlml.versions WHERE model_name = 'km'")[0][0]:
        ex.run(
            "CREATE MODEL ex.km OPTIONS (model_type = 'kmeans', num_clusters = 2)"
            " AS SELECT x2 FROM ex.t"
        )
        ex.run(  # (a DNN's TRANSFORM outputs are not explained yet)
            "CREATE MODEL ex.transformed_dnn TRANSFORM (ML.MIN_MAX_SCALER(x2) OVER () AS x2, y)"
            " OPTIONS (model_type = 'dnn_regressor', input_label_cols = ['y'],"
            f" hidden_units = [4], max_iterations = 2, {NO_SPLIT}) AS SELECT x2, y FROM ex.t"
        )
    with pytest.raises(errors.Error) as raised:
        ex.run(f"SELECT * FROM {call}")
    assert raised.value.sqlstate == sqlstate, raised.value
    assert ex.run("SELECT 1") == [(1,)]  # the session goes on


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_over_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    """Through `sqlml serve` (psycopg 3): the columns, and the attributions as a client reads
    them."""
    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    with psycopg_gateway(engine, database) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.explained OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned']) AS SELECT tenure, plan, churned FROM shop.customers"
        )
        cur = c.execute(
            "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL shop.explained,"
            " (SELECT id, tenure, plan FROM shop.new_customers), STRUCT(2 AS top_k_features))"
            " ORDER BY id LIMIT 5"
        )
        assert [d.name for d in cur.description or []][:6] == EXPLAINED
        for row in cur.fetchall():
            top = wire_attributions(row[2])
            assert {feature for feature, _ in top} == {"tenure", "plan"}
            assert abs(top[0][1]) >= abs(top[1][1])
            total = row[3] + sum(attribution for _, attribution in top)
            assert total == pytest.approx(row[4], abs=1e-9)
            assert row[5] == 0
