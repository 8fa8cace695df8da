"""ML.ADVANCED_WEIGHTS (sqlml/functions/advanced_weights.py; standard errors computed at
training by sqlml/ml/global_explain.py) and CATEGORY_ENCODING_METHOD = 'DUMMY_ENCODING' for
linear models, on DuckDB and PostgreSQL, checked against the test's own computations, written
independently: numpy's OLS on the dummy-coded design it builds itself (the most frequent
category dropped), sigma^2 (X'X)^-1 with sigma^2 = RSS / (n - p); a Newton (IRLS) logistic
regression and its inverse Fisher information; scipy's normal two-sided p-values; and
scipy.stats.linregress on a one-feature model (its slope's standard error is the textbook OLS
one; its p-value uses Student's t with n - 2 degrees of freedom where BigQuery's formula uses
the normal distribution: at n = 4000 they agree to 1e-3)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, Noticing, module_database, psycopg_gateway
from scipy import stats

from sqlml import errors

N = 400
BIG = 4000
TABLE = (
    "CREATE TABLE aw.t AS SELECT i,"
    " CASE WHEN i % 13 = 0 THEN NULL ELSE CAST(sin(i) * 4 AS DOUBLE PRECISION) END AS x1,"
    " CAST(cos(i * 0.3) * 2 AS DOUBLE PRECISION) AS x2,"
    " CASE WHEN i % 11 = 0 THEN NULL WHEN i % 5 < 2 THEN 'a' WHEN i % 5 < 4 THEN 'b' ELSE 'c'"
    " END AS s,"
    " CAST(0.5 * sin(i) - 0.8 * cos(i * 0.3) + (i % 5) * 0.3 + 2 * sin(i * 7.1) AS DOUBLE"
    " PRECISION) AS y,"
    " 0.4 * sin(i) - 0.5 * cos(i * 0.3) + 1.5 * sin(i * 5.3) > 0 AS c,"
    " CASE WHEN sin(i * 2.1) > 0.4 THEN 'hi' WHEN sin(i * 2.1) < -0.4 THEN 'lo' ELSE 'mid' END"
    f" AS k FROM generate_series(1, {N}) AS g(i)"
)
# a weak slope in noise: p-values well inside (0, 1), where t and normal can be compared
WEAK = (
    "CREATE TABLE aw.w AS SELECT CAST(cos(i * 0.7) AS DOUBLE PRECISION) AS x,"
    " CAST(0.03 * cos(i * 0.7) + 2 * sin(i * 12.9898) AS DOUBLE PRECISION) AS y"
    f" FROM generate_series(1, {BIG}) AS g(i)"
)
DUMMY = "category_encoding_method = 'DUMMY_ENCODING', calculate_p_values = TRUE"
NO_SPLIT = "data_split_method = 'NO_SPLIT'"


class Aw(Noticing):
    def advanced(self, model: str, standardize: bool = False) -> dict[tuple[str, Any], tuple]:
        rows = self.run(
            f"SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL {model},"
            f" STRUCT({str(standardize).upper()} AS standardize))"
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}

    def weights(self, model: str, standardize: bool) -> dict[tuple[str, Any], float]:
        rows = self.run(
            f"SELECT * FROM ML.WEIGHTS(MODEL {model}, STRUCT({str(standardize).upper()}"
            " AS standardize))"
        )
        found = {}
        for name, weight, categories in rows:
            if isinstance(categories, str):
                categories = json.loads(categories)
            if weight is not None:
                found[(name, None)] = weight
            for c in categories:
                found[(name, c["category"])] = c["weight"]
        return found


@pytest.fixture(scope="module", params=ENGINES)
def aw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aw]:
    with module_database(str(request.param), request, tmp_path_factory, "advanced") as database:
        found = Aw(database, str(request.param))
        found.run("CREATE SCHEMA aw")
        found.run(TABLE)
        found.run(WEAK)
        found.run(
            "CREATE MODEL aw.ols OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {DUMMY}, {NO_SPLIT}) AS SELECT x1, x2, s, y FROM aw.t"
        )
        found.run(
            "CREATE MODEL aw.logit OPTIONS (model_type = 'logistic_reg',"
            f" input_label_cols = ['c'], {DUMMY}, {NO_SPLIT}, max_iterations = 500,"
            " early_stop = FALSE) AS SELECT x1, x2, s, c FROM aw.t"
        )
        found.run(
            "CREATE MODEL aw.weak OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {DUMMY}, {NO_SPLIT}) AS SELECT x, y FROM aw.w"
        )
        yield found
        found.con.close()


def _design(aw: Aw, label: str) -> tuple[np.ndarray, np.ndarray, list[tuple[str, Any]], Any]:
    """The test's own design: intercept, x1 (NULL at its mean), x2, and s dummy-coded
    without its most frequent category (NULL a category of its own); the label as floats."""
    rows = aw.run(f"SELECT x1, x2, s, {label} FROM aw.t ORDER BY i")
    x1 = np.array([np.nan if r[0] is None else r[0] for r in rows])
    x1 = np.where(np.isnan(x1), np.nanmean(x1), x1)
    x2 = np.array([r[1] for r in rows])
    s = [r[2] for r in rows]
    counts = {v: s.count(v) for v in set(s)}
    dropped = max(counts, key=lambda v: (counts[v], v is not None, v or ""))
    kept = sorted((v for v in counts if v != dropped), key=lambda v: (v is None, v or ""))
    columns = [np.ones(len(rows)), x1, x2] + [np.array([v == k for v in s], float) for k in kept]
    names = [("x1", None), ("x2", None)] + [("s", k) for k in kept]
    y = np.array([float(r[3]) for r in rows])
    return np.column_stack(columns), y, names, dropped


def _p(beta: np.ndarray, se: np.ndarray) -> np.ndarray:
    return 2 * stats.norm.sf(np.abs(beta) / se)


def test_ols_standard_errors_and_p_values(aw: Aw) -> None:
    x, y, names, dropped = _design(aw, "y")
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ beta
    sigma2 = residuals @ residuals / (len(y) - x.shape[1])
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    p = _p(beta, se)
    got = aw.advanced("aw.ols")
    assert len(got) == len(names) + 2  # (+ the dropped category, + the intercept)
    for j, key in enumerate(names, start=1):
        weight, error, p_value = got[key]
        assert weight == pytest.approx(beta[j], rel=1e-7, abs=1e-10), key
        assert error == pytest.approx(se[j], rel=1e-7), key
        assert p_value == pytest.approx(p[j], rel=1e-6, abs=1e-12), key
    weight, error, p_value = got[("s", dropped)]
    assert weight == 0.0
    assert math.isnan(error)
    assert math.isnan(p_value)
    intercept = got[("__INTERCEPT__", None)]
    assert intercept[1] is None  # (BigQuery: only when standardized)
    assert intercept[2] is None


def test_standardized_weights_and_the_intercepts_error(aw: Aw) -> None:
    """Standardized: numeric columns centred and scaled by the population standard deviation
    (NULL at the mean); the intercept then has a standard error; p-values do not change."""
    x, y, names, _ = _design(aw, "y")
    z = x.copy()
    z[:, 1:3] = (x[:, 1:3] - x[:, 1:3].mean(axis=0)) / x[:, 1:3].std(axis=0)
    beta, *_ = np.linalg.lstsq(z, y, rcond=None)
    residuals = y - z @ beta
    sigma2 = residuals @ residuals / (len(y) - z.shape[1])
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(z.T @ z)))
    got = aw.advanced("aw.ols", standardize=True)
    raw = aw.advanced("aw.ols")
    for j, key in enumerate([("__INTERCEPT__", None), *names]):
        weight, error, p_value = got[key]
        assert weight == pytest.approx(beta[j], rel=1e-7, abs=1e-10), key
        assert error == pytest.approx(se[j], rel=1e-7), key
        assert p_value == pytest.approx(_p(beta, se)[j], rel=1e-6, abs=1e-12), key
        if key[0] != "__INTERCEPT__":
            assert p_value == pytest.approx(raw[key][2], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("standardize", [False, True])
def test_weights_are_ml_weights(aw: Aw, standardize: bool) -> None:
    got = aw.advanced("aw.ols", standardize)
    weights = aw.weights("aw.ols", standardize)
    for key, weight in weights.items():
        assert got[key][0] == weight, key
    # (the dropped category: in ML.ADVANCED_WEIGHTS with weight 0, as BigQuery documents)
    assert set(got) - set(weights) == {("s", "b")}


def test_one_feature_matches_linregress(aw: Aw) -> None:
    rows = aw.run("SELECT x, y FROM aw.w")
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    reference = stats.linregress(x, y)
    weight, error, p_value = aw.advanced("aw.weak")[("x", None)]
    assert weight == pytest.approx(reference.slope, rel=1e-8)
    assert error == pytest.approx(reference.stderr, rel=1e-8)
    assert 0.01 < reference.pvalue < 0.9  # (a p-value where the two distributions differ)
    assert p_value == pytest.approx(reference.pvalue, abs=1e-3)
    assert p_value == pytest.approx(2 * stats.norm.sf(abs(weight / error)), rel=1e-9)


def test_logistic_standard_errors_are_the_inverse_fisher_information(aw: Aw) -> None:
    """The test's own maximum likelihood (Newton's method) on its own dummy design."""
    x, y, names, dropped = _design(aw, "c")
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ beta)))
        hessian = x.T @ (x * (p * (1 - p))[:, None])
        beta = beta + np.linalg.solve(hessian, x.T @ (y - p))
    p = 1 / (1 + np.exp(-(x @ beta)))
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]))))
    got = aw.advanced("aw.logit")
    for j, key in enumerate(names, start=1):
        weight, error, p_value = got[key]
        assert weight == pytest.approx(beta[j], rel=1e-3, abs=1e-4), key
        assert error == pytest.approx(se[j], rel=1e-3), key
        assert p_value == pytest.approx(_p(beta, se)[j], rel=1e-2, abs=1e-4), key
    assert math.isnan(got[("s", dropped)][1])


def test_dummy_encoding_drops_the_most_frequent_category(aw: Aw) -> None:
    """'b' (i % 5 in 2, 3, NULL aside) is the most frequent: ML.WEIGHTS lists the others;
    ML.PREDICT scores a 'b' row as the intercept's baseline for s (all indicators 0)."""
    weights = aw.weights("aw.ols", False)
    assert {k[1] for k in weights if k[0] == "s"} == {"a", "c", None}
    rows = aw.run(
        "SELECT s, predicted_y FROM ML.PREDICT(MODEL aw.ols, (SELECT 1.0 AS x1, 0.5 AS x2,"
        " s FROM (VALUES ('a'), ('b'), ('zzz')) AS v(s))) ORDER BY s"
    )
    by_s = dict(rows)
    base = weights[("__INTERCEPT__", None)] + weights[("x1", None)] + 0.5 * weights[("x2", None)]
    assert by_s["b"] == pytest.approx(base)
    assert by_s["zzz"] == pytest.approx(base)  # (unseen: all zeros, as the dropped one)
    assert by_s["a"] == pytest.approx(base + weights[("s", "a")])


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        # trained without calculate_p_values, with one-hot encoding, with L1
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.plain)", "22023"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.onehot)", "22023"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.lasso)", "22023"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.multi)", "0A000"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.tree)", "0A000"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.ols, STRUCT(1 AS standardize))", "22023"),
        ("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL aw.nope)", "42704"),
        (
            "CREATE MODEL aw.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            " category_encoding_method = 'LABEL_ENCODING') AS SELECT x1, s, y FROM aw.t",
            "22023",
        ),
        (
            "CREATE MODEL aw.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {DUMMY}, {NO_SPLIT}, incremental = TRUE) AS SELECT x1, s, y FROM aw.t",
            "0A000",
        ),
        (
            "CREATE MODEL aw.bad OPTIONS (model_type = 'boosted_tree_regressor',"
            " input_label_cols = ['y'], calculate_p_values = TRUE) AS SELECT x1, y FROM aw.t",
            "22023",
        ),
    ],
)
def test_refusals(aw: Aw, sql: str, sqlstate: str) -> None:
    if not aw.run("SELECT count(*) FROM sqlml.versions WHERE model_name = 'plain'")[0][0]:
        for name, options in (
            ("plain", "model_type = 'linear_reg', input_label_cols = ['y']"),
            (
                "onehot",
                "model_type = 'linear_reg', input_label_cols = ['y'], calculate_p_values = TRUE",
            ),
            (
                "lasso",
                f"model_type = 'linear_reg', input_label_cols = ['y'], {DUMMY}, l1_reg = 0.1",
            ),
            ("multi", f"model_type = 'logistic_reg', input_label_cols = ['k'], {DUMMY}"),
            ("tree", "model_type = 'boosted_tree_regressor', input_label_cols = ['y']"),
        ):
            label = "k" if name == "multi" else "y"
            aw.run(f"CREATE MODEL aw.{name} OPTIONS ({options}) AS SELECT x1, s, {label} FROM aw.t")
    with pytest.raises(errors.Error) as raised:
        aw.run(sql)
    assert raised.value.sqlstate == sqlstate, raised.value
    assert aw.run("SELECT 1") == [(1,)]


def test_over_the_gateway(shop_file: str) -> None:
    """Through `sqlml serve` over DuckDB (psycopg 3): the columns, and the dropped category's
    NaN as a client reads it."""
    with psycopg_gateway("duckdb", shop_file) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.aw OPTIONS (model_type = 'linear_reg',"
            f" input_label_cols = ['value'], {DUMMY}) AS SELECT tenure, plan, value"
            " FROM shop.customers"
        )
        cur = c.execute("SELECT * FROM ML.ADVANCED_WEIGHTS(MODEL shop.aw)")
        names = [d.name for d in cur.description or []]
        assert names == ["processed_input", "category", "weight", "standard_error", "p_value"]
        rows = cur.fetchall()
        dropped = [r for r in rows if r[0] == "plan" and r[2] == 0.0]
        assert len(dropped) == 1
        assert math.isnan(dropped[0][3])
        assert rows[0][0] == "tenure"
        assert 0 < rows[0][3] < abs(rows[0][2])
