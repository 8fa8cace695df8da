"""BigQuery ML's TRANSFORM functions (issue 13): each trained in a TRANSFORM, its features checked
against values computed here independently (numpy / scikit-learn), through ML.PREDICT of a
linear_reg model compared with scikit-learn's LinearRegression fitted on the reference-transformed
rows, in both scoring modes; the affine scalers are also checked through ML.WEIGHTS (predictions
of an unregularized linear model do not see an affine rescaling)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations, combinations_with_replacement
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import MaxAbsScaler, Normalizer, PolynomialFeatures

import sqlml

N = 120
Array = np.ndarray[Any, Any]


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    a = np.round(rng.normal(2.0, 3.0, N), 3)
    b = np.round(rng.normal(-1.0, 1.0, N), 3)
    a_null = np.zeros(N, dtype=bool)
    a_null[::13] = True
    c = rng.choice(["red", "green", "blue", "teal", "gray"], N, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    c_list: list[str | None] = [str(v) for v in c]
    for i in range(5, N, 17):
        c_list[i] = None
    d = [str(v) for v in rng.choice(["p", "q", "r"], N)]
    a_val = np.where(a_null, 0.0, a)
    y = 1.5 * a_val - 2.0 * b**2 + a_val * b + np.array([len(v or "") for v in c_list]) * 0.7
    y = y + (np.array(d) == "q") * 1.3 + rng.normal(0, 0.2, N)
    return {"a": np.where(a_null, np.nan, a), "b": b, "c": c_list, "d": d, "y": np.round(y, 4)}


DATA = _data()


def _literal(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NULL"
    if isinstance(value, str):
        return "'" + value + "'"
    return repr(float(value))


def _load(con: sqlml.Connection) -> None:
    con.execute(
        "CREATE TABLE rows_t (id INTEGER, a DOUBLE PRECISION, b DOUBLE PRECISION, c TEXT,"
        " d TEXT, y DOUBLE PRECISION)"
    )
    values = ", ".join(
        "(" + ", ".join([str(i)] + [_literal(DATA[k][i]) for k in ("a", "b", "c", "d", "y")]) + ")"
        for i in range(N)
    )
    con.execute(f"INSERT INTO rows_t VALUES {values}")


@pytest.fixture
def con(database: str) -> Any:
    connection = sqlml.connect(database)
    _load(connection)
    yield connection
    connection.close()


@pytest.fixture
def duck() -> Any:
    connection = sqlml.connect(":memory:")
    _load(connection)
    yield connection
    connection.close()


def _train(con: sqlml.Connection, transform: str) -> None:
    con.execute(
        f"CREATE OR REPLACE MODEL m TRANSFORM ({transform}, y) OPTIONS (model_type = 'linear_reg',"
        " input_label_cols = ['y'], data_split_method = 'NO_SPLIT') AS SELECT * FROM rows_t"
    )


def _predictions(con: sqlml.Connection, scoring: str) -> Array:
    rows = con.execute(
        "SELECT id, predicted_y FROM ML.PREDICT(MODEL m, TABLE rows_t,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    return np.array([float(r[1]) for r in rows])


def _check_predictions(con: sqlml.Connection, x: Array) -> None:
    """sqlml's predictions equal LinearRegression's on the reference features ``x``, both ways."""
    reference = LinearRegression().fit(x, DATA["y"]).predict(x)
    for scoring in ("compiled", "runtime"):
        np.testing.assert_allclose(_predictions(con, scoring), reference, rtol=1e-6, atol=1e-6)


def _weights(con: sqlml.Connection) -> dict[str, float]:
    rows = con.execute("SELECT processed_input, weight FROM ML.WEIGHTS(MODEL m)").fetchall()
    return {str(r[0]): float(r[1]) for r in rows if r[1] is not None}


def _mean_filled(x: Array) -> Array:
    """What automatic preprocessing does to a NULL output: the training mean."""
    return np.where(np.isnan(x), np.nanmean(x), x)


def _bq_quantiles(x: Array, qs: list[float]) -> Array:
    return np.quantile(x[~np.isnan(x)], qs, method="inverted_cdf")


# -- the scalers --------------------------------------------------------------------------------


def test_max_abs_scaler(con: sqlml.Connection) -> None:
    _train(con, "ML.MAX_ABS_SCALER(a) OVER () AS a_s, b")
    a = DATA["a"]
    scaled = _mean_filled(MaxAbsScaler().fit_transform(a.reshape(-1, 1)).ravel())
    x = np.column_stack([scaled, DATA["b"]])
    _check_predictions(con, x)
    fitted = LinearRegression().fit(x, DATA["y"])
    assert _weights(con)["a_s"] == pytest.approx(fitted.coef_[0], rel=1e-6)


def test_robust_scaler_defaults_and_arguments(con: sqlml.Connection) -> None:
    _train(
        con, "ML.ROBUST_SCALER(a) OVER () AS r1, ML.ROBUST_SCALER(b, [10, 90], FALSE) OVER () AS r2"
    )
    a, b = DATA["a"], DATA["b"]
    q25, med, q75 = _bq_quantiles(a, [0.25, 0.5, 0.75])
    r1 = _mean_filled((a - med) / (q75 - q25))
    q10, q90 = _bq_quantiles(b, [0.1, 0.9])
    r2 = b / (q90 - q10)  # with_median FALSE: not centered
    x = np.column_stack([r1, r2])
    _check_predictions(con, x)
    fitted = LinearRegression().fit(x, DATA["y"])
    found = _weights(con)
    assert [found["r1"], found["r2"]] == pytest.approx(list(fitted.coef_), rel=1e-6)


def test_robust_scaler_matches_bigquerys_documented_example(duck: sqlml.Connection) -> None:
    # BigQuery's page: ROBUST_SCALER over [NULL, -3, 1, 2, 3, 4, 5] gives -5/3, -1/3, 0, 1/3, ...
    duck.execute("CREATE TABLE ex (f DOUBLE, y DOUBLE)")
    duck.execute("INSERT INTO ex VALUES (-3, 1), (1, 2), (2, 3), (3, 4), (4, 8), (5, 6)")
    duck.execute(
        "CREATE MODEL ex_m TRANSFORM (ML.ROBUST_SCALER(f) OVER () AS s, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        " data_split_method = 'NO_SPLIT') AS SELECT * FROM ex"
    )
    weight = dict(
        duck.execute("SELECT processed_input, weight FROM ML.WEIGHTS(MODEL ex_m)").fetchall()
    )
    scaled = np.array([-5 / 3, -1 / 3, 0.0, 1 / 3, 2 / 3, 1.0])
    fitted = LinearRegression().fit(scaled.reshape(-1, 1), [1, 2, 3, 4, 8, 6])
    assert float(weight["s"]) == pytest.approx(fitted.coef_[0], rel=1e-9)


# -- encoders and buckets -------------------------------------------------------------------------


def _bucket_one_hot(x: Array, points: Array) -> Array:
    index = 1 + (x[:, None] >= points[None, :]).sum(axis=1)
    index = np.where(np.isnan(x), 0, index)  # NULL: a category of its own
    return np.column_stack([(index == k).astype(float) for k in np.unique(index)])


def test_quantile_bucketize(con: sqlml.Connection) -> None:
    _train(con, "ML.QUANTILE_BUCKETIZE(a, 4) OVER () AS a_q, b")
    a = DATA["a"]
    points = np.unique(_bq_quantiles(a, [0.25, 0.5, 0.75]))
    _check_predictions(con, np.column_stack([_bucket_one_hot(a, points), DATA["b"]]))


def test_quantile_bucketize_matches_bigquerys_documented_example() -> None:
    # BigQuery's page: [1, 2, 3, 4, 5] in 3 buckets -> bin_1, bin_2, bin_2, bin_3, bin_3
    points = np.unique(_bq_quantiles(np.array([1.0, 2, 3, 4, 5]), [1 / 3, 2 / 3]))
    index = 1 + (np.array([1.0, 2, 3, 4, 5])[:, None] >= points).sum(axis=1)
    assert index.tolist() == [1, 2, 2, 3, 3]
    from sqlml.ml import feature_steps

    assert feature_steps._quantiles(np.array([1.0, 2, 3, 4, 5]), [1 / 3, 2 / 3]) == [2.0, 4.0]


def _label_codes(values: list[str | None], top_k: int, threshold: int) -> Array:
    counts = Counter(v for v in values if v is not None)
    ranked = sorted(counts, key=lambda v: (-counts[v], v))
    vocabulary = sorted([v for v in ranked if counts[v] >= threshold][:top_k])
    return np.array([vocabulary.index(v) + 1 if v in vocabulary else 0 for v in values], float)


def test_label_encoder(con: sqlml.Connection) -> None:
    _train(con, "ML.LABEL_ENCODER(c) OVER () AS c1, ML.LABEL_ENCODER(c, 2, 1) OVER () AS c2, b")
    c = DATA["c"]
    x = np.column_stack([_label_codes(c, 32000, 5), _label_codes(c, 2, 1), DATA["b"]])
    assert len(set(x[:, 0])) == 5  # gray (seen < 5 times) and NULL encode as 0
    _check_predictions(con, x)


# -- STRUCT and ARRAY functions -------------------------------------------------------------------


def test_polynomial_expand(con: sqlml.Connection) -> None:
    _train(con, "ML.POLYNOMIAL_EXPAND(STRUCT(a, b AS bb), 3) AS p")
    a, b = DATA["a"], DATA["b"]
    poly = PolynomialFeatures(3, include_bias=False)
    terms = poly.fit_transform(np.column_stack([np.nan_to_num(a), b]))
    # a term with a NULL factor is NULL, then takes its training mean
    terms[np.isnan(a)[:, None] & (poly.powers_[:, 0] > 0)[None, :]] = np.nan
    x = np.column_stack([_mean_filled(terms[:, j]) for j in range(terms.shape[1])])
    _check_predictions(con, x)
    names = [n for n in _weights(con) if n != "__INTERCEPT__"]
    # BigQuery's order and names: the combinations sorted, field names joined by '_'
    terms = sorted(t for d in (1, 2, 3) for t in combinations_with_replacement(range(2), d))
    assert names == ["p." + "_".join(("a", "bb")[i] for i in t) for t in terms]


def test_normalizer(con: sqlml.Connection) -> None:
    _train(con, "ML.NORMALIZER([a, b, a * b]) AS n2, ML.NORMALIZER([a, b], 1) AS n1")
    a, b = np.nan_to_num(DATA["a"]), DATA["b"]
    n2 = Normalizer("l2").fit_transform(np.column_stack([a, b, a * b]))
    n1 = Normalizer("l1").fit_transform(np.column_stack([a, b]))
    _check_predictions(con, np.column_stack([n2, n1]))


def test_normalizer_other_norms(con: sqlml.Connection) -> None:
    _train(
        con,
        "ML.NORMALIZER([a, b], CAST('+INF' AS DOUBLE)) AS ninf, ML.NORMALIZER([a, b], 3) AS n3,"
        " ML.NORMALIZER([a, b], 0) AS n0",
    )
    x = np.column_stack([np.nan_to_num(DATA["a"]), DATA["b"]])
    ninf = Normalizer("max").fit_transform(x)
    n3 = x / (np.abs(x) ** 3).sum(axis=1, keepdims=True) ** (1 / 3)
    count = (x != 0).sum(axis=1, keepdims=True)
    n0 = x / np.where(count == 0, 1, count)
    _check_predictions(con, np.column_stack([ninf, n3, n0]))


def test_feature_cross(con: sqlml.Connection) -> None:
    _train(con, "ML.FEATURE_CROSS(STRUCT(c, d)) AS x, b")
    c, d = DATA["c"], DATA["d"]
    crossed = [None if ci is None else f"{ci}_{di}" for ci, di in zip(c, d, strict=True)]
    seen = sorted({v for v in crossed if v is not None})
    columns = [[float(v == s) for v in crossed] for s in seen]
    columns.append([float(v is None) for v in crossed])
    _check_predictions(con, np.column_stack([*columns, DATA["b"]]))


def test_feature_cross_of_three_features_has_the_pairs_only(duck: sqlml.Connection) -> None:
    duck.execute("CREATE TABLE t3 AS SELECT c, d, d || 'z' AS e, y FROM rows_t")
    duck.execute(
        "CREATE MODEL m3 TRANSFORM (ML.FEATURE_CROSS(STRUCT(c, d, e)) AS x, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS SELECT * FROM t3"
    )
    rows = duck.execute("SELECT processed_input FROM ML.WEIGHTS(MODEL m3)").fetchall()
    names = [r[0] for r in rows if r[0] != "__INTERCEPT__"]
    assert names == ["x." + "_".join(p) for p in combinations(("c", "d", "e"), 2)]


# -- what is refused -----------------------------------------------------------------------------

BAD_ARGUMENTS = [
    "ML.ROBUST_SCALER(a, [0, 75]) OVER () AS s",
    "ML.ROBUST_SCALER(a, [75, 25]) OVER () AS s",
    "ML.ROBUST_SCALER(a, [25, 100]) OVER () AS s",
    "ML.ROBUST_SCALER(a, [25, 75], 'yes') OVER () AS s",
    "ML.ROBUST_SCALER(a, 25) OVER () AS s",
    "ML.MAX_ABS_SCALER(a, 2) OVER () AS s",
    "ML.QUANTILE_BUCKETIZE(a, 0) OVER () AS s",
    "ML.QUANTILE_BUCKETIZE(a, 'four') OVER () AS s",
    "ML.QUANTILE_BUCKETIZE(a, 2.5) OVER () AS s",
    "ML.LABEL_ENCODER(c, 0) OVER () AS s",
    "ML.LABEL_ENCODER(c, 1000000) OVER () AS s",
    "ML.LABEL_ENCODER(c, 10, -1) OVER () AS s",
    "ML.POLYNOMIAL_EXPAND(STRUCT(a, b), 5) AS s",
    "ML.POLYNOMIAL_EXPAND(STRUCT(a, b), 0) AS s",
    "ML.POLYNOMIAL_EXPAND(STRUCT(a, a), 2) AS s",
    "ML.POLYNOMIAL_EXPAND(STRUCT(a, b * 2), 2) AS s",
    "ML.POLYNOMIAL_EXPAND(a, 2) AS s",
    "ML.FEATURE_CROSS(STRUCT(c, d), 1) AS s",
    "ML.FEATURE_CROSS(STRUCT(c, d), 5) AS s",
    "ML.NORMALIZER([a, b], 0.5) AS s",
    "ML.NORMALIZER([a, b], -1) AS s",
    "ML.NORMALIZER([a, b], 'two') AS s",
    "ML.NORMALIZER(a) AS s",
]


@pytest.mark.parametrize("item", BAD_ARGUMENTS)
def test_bad_arguments_are_22023(con: sqlml.Connection, item: str) -> None:
    with pytest.raises(sqlml.Error) as raised:
        _train(con, item)
    assert raised.value.sqlstate == "22023"


@pytest.mark.parametrize(
    "item",
    [
        "ML.LABEL_ENCODER(a) OVER () AS s",
        "ML.FEATURE_CROSS(STRUCT(a, d)) AS s",
        "ML.POLYNOMIAL_EXPAND(STRUCT(a, c)) AS s",
        "ML.MAX_ABS_SCALER(c) OVER () AS s",
    ],
)
def test_wrong_input_types_are_42804(duck: sqlml.Connection, item: str) -> None:
    with pytest.raises(sqlml.Error) as raised:
        _train(duck, item)
    assert raised.value.sqlstate == "42804"


@pytest.mark.parametrize(
    "item",
    [
        "ML.QUANTILE_BUCKETIZE(a, 3, 'bucket_ranges') OVER () AS s",
    ],
)
def test_refused_functions_are_0A000(con: sqlml.Connection, item: str) -> None:
    with pytest.raises(sqlml.Error) as raised:
        _train(con, item)
    assert raised.value.sqlstate == "0A000"


@pytest.mark.parametrize(
    "item",
    ["ML.MAX_ABS_SCALER(a) AS s", "ML.POLYNOMIAL_EXPAND(STRUCT(a, b)) OVER () AS s"],
)
def test_window_rules_are_42601(duck: sqlml.Connection, item: str) -> None:
    with pytest.raises(sqlml.Error) as raised:
        _train(duck, item)
    assert raised.value.sqlstate == "42601"


# -- CASE, IF, COALESCE in TRANSFORM expressions ------------------------------------------------


def test_case_if_and_coalesce(con: sqlml.Connection) -> None:
    _train(
        con,
        "CASE WHEN a > 1 AND b IS NOT NULL THEN a * b WHEN a IS NULL THEN -1 ELSE b END AS e1,"
        " COALESCE(a, b * 2) AS e2, IF(b >= 0, b, 0) AS e3,"
        " CASE WHEN NOT (a <= 2) OR b <> b THEN 1 ELSE 0 END AS e4, b",
    )
    a, b = DATA["a"], DATA["b"]
    with np.errstate(invalid="ignore"):
        e1 = np.where(a > 1, a * b, np.where(np.isnan(a), -1.0, b))
        e4 = np.where(a > 2, 1.0, 0.0)  # NOT (NULL <= 2) is NULL: the ELSE branch, as in SQL
    e2 = np.where(np.isnan(a), b * 2, a)
    e3 = np.where(b >= 0, b, 0.0)
    _check_predictions(con, np.column_stack([e1, e2, e3, e4, b]))


@pytest.mark.parametrize(
    "item",
    # (strings compare with = and <> since test_transform_strings.py; ordering them is 0A000)
    ["(a > 1) * 2 AS s", "CASE WHEN a THEN 1 ELSE 0 END AS s", "CASE WHEN c > 'x' THEN 1 END AS s"],
)
def test_conditions_outside_case_are_0A000(duck: sqlml.Connection, item: str) -> None:
    with pytest.raises(sqlml.Error) as raised:
        _train(duck, item)
    assert raised.value.sqlstate == "0A000"
