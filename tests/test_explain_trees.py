"""ML.EXPLAIN_PREDICT for boosted_tree_regressor / _classifier and random_forest_regressor
(sqlml/functions/explain_trees.py: TreeSHAP by XGBoost, run inside the engine), on DuckDB and
PostgreSQL.

The references are the test's own: the XGBoost model stored with each version, loaded here with
xgboost and asked for ``pred_contribs`` on a feature matrix this test builds from the raw rows
with numpy (the training mean for a NULL, each category's 1-based place in sorted order, or its
one-hot block, for a category never seen: 0 or all zeros); and, independently of XGBoost's
contributions, the identity baseline + attributions = prediction_value = the model's margin, the
margin taken from ML.PREDICT (a regressor's value; a classifier's log-odds of its probability)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
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

import sqlml
from sqlml import errors

N = 240
TABLE = explain_table("ex", N)
COMMON = "data_split_method = 'NO_SPLIT', max_tree_depth = 4"
BOOSTED = f"{COMMON}, max_iterations = 6"
FOREST = f"{COMMON}, num_parallel_tree = 8, category_encoding_method = 'ONE_HOT_ENCODING'"
MODELS = {  # name -> (model_type, options, label, one-hot)
    "reg": ("boosted_tree_regressor", BOOSTED, "y", False),
    "binary": ("boosted_tree_classifier", BOOSTED, "c", False),
    "multi": ("boosted_tree_classifier", BOOSTED, "k", False),
    "forest": ("random_forest_regressor", FOREST, "y", True),
    "gone": ("boosted_tree_regressor", BOOSTED, "y", False),
}
# the rows explained: a category never seen in training (row 5), NULLs (x1 every 13th, s 7th)
ROWS = "(SELECT i, x1, x2, CASE WHEN i = 5 THEN 'unseen' ELSE s END AS s FROM ex.t WHERE i <= 120)"


class Ex(Noticing):
    def booster(self, model: str) -> Any:
        """The XGBoost model stored with the model's serving version."""
        (data,) = self.run(
            "SELECT b.booster FROM sqlml.version_boosters b JOIN sqlml.models m"
            " ON b.schema_name = m.schema_name AND b.model_name = m.model_name"
            f" AND b.version = m.current_version WHERE m.model_name = '{model}'"
        )[0]
        return xgboost.Booster(model_file=bytearray(bytes(data)))


@pytest.fixture(scope="module", params=ENGINES)
def ex(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ex]:
    with module_database(str(request.param), request, tmp_path_factory, "trees") as database:
        found = Ex(database, str(request.param))
        found.run("CREATE SCHEMA ex")
        found.run(TABLE)
        for name, (model_type, options, label, _) in MODELS.items():
            found.run(
                f"CREATE MODEL ex.{name} OPTIONS (model_type = '{model_type}',"
                f" input_label_cols = ['{label}'], {options}) AS SELECT x1, x2, s, {label} FROM ex.t"
            )
        yield found
        found.con.close()


def _matrix(ex: Ex, one_hot: bool) -> tuple[np.ndarray[Any, Any], list[tuple[str, int, int]]]:
    """The explained rows as the trees read them, built here from the raw rows: (the matrix,
    per input column its (name, first column, width))."""
    train = ex.run("SELECT x1, x2, s FROM ex.t")
    rows = ex.run(f"SELECT x1, x2, s FROM {ROWS} AS r ORDER BY i")
    columns: list[np.ndarray[Any, Any]] = []
    layout = []
    for j, name in enumerate(("x1", "x2")):
        mean = float(np.mean([r[j] for r in train if r[j] is not None]))
        columns.append(np.array([mean if r[j] is None else r[j] for r in rows]))
        layout.append((name, j, 1))
    seen = sorted({r[2] for r in train if r[2] is not None})
    categories: list[Any] = [*seen, None] if any(r[2] is None for r in train) else seen
    if one_hot:
        for category in categories:
            columns.append(np.array([1.0 if r[2] == category else 0.0 for r in rows]))
        layout.append(("s", 2, len(categories)))
    else:
        code = {c: k + 1.0 for k, c in enumerate(categories)}
        columns.append(np.array([code.get(r[2], 0.0) for r in rows]))
        layout.append(("s", 2, 1))
    return np.column_stack(columns), layout


def _check(ex: Ex, model: str, approx: bool = False) -> list[dict[str, Any]]:
    """The model's explanations against the stored booster's contributions on the test's own
    matrix, and against ML.PREDICT's margin."""
    model_type, _, label, one_hot = MODELS[model]
    setting = ", TRUE AS approx_feature_contrib" if approx else ""
    rows = ex.explained(
        f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.{model}, {ROWS},"
        f" STRUCT(10 AS top_k_features{setting})) ORDER BY i"
    )
    predicted = ex.run(f"SELECT * FROM ML.PREDICT(MODEL ex.{model}, {ROWS}) ORDER BY i")
    x, layout = _matrix(ex, one_hot)
    booster = ex.booster(model)
    contribs = booster.predict(xgboost.DMatrix(x), pred_contribs=True, approx_contribs=approx)
    margins = booster.predict(xgboost.DMatrix(x), output_margin=True)
    classes = sorted({r[0] for r in ex.run(f"SELECT {label} FROM ex.t")})
    assert len(rows) == len(predicted) == len(x)
    for n, (row, scored) in enumerate(zip(rows, predicted, strict=True)):
        predicted_label = scored[4]  # (i, x1, x2, s, predicted_<label>, [probs])
        assert row[f"predicted_{label}"] == predicted_label
        sign, block = 1.0, contribs[n]
        if contribs.ndim == 3:  # multiclass: the predicted class's block
            block = contribs[n, classes.index(predicted_label)]
        elif model_type.endswith("classifier") and predicted_label != classes[-1]:
            sign = -1.0
        got = attributions(row)
        assert set(got) == {"x1", "x2", "s"}
        for name, start, width in layout:
            want = sign * float(block[start : start + width].sum())
            assert got[name] == pytest.approx(want, abs=1e-5), (row["i"], name)
        assert row["baseline_prediction_value"] == pytest.approx(sign * block[-1], abs=1e-5)
        total = row["baseline_prediction_value"] + sum(got.values())
        assert total == pytest.approx(row["prediction_value"], abs=1e-5)
        if model_type.endswith("classifier"):
            p = class_probability(predicted_label, scored[5])
            assert row["probability"] == pytest.approx(p, abs=1e-5)
            if contribs.ndim == 3:  # the softmax logit: XGBoost's margin for the class
                want = margins[n, classes.index(predicted_label)]
            else:  # the log-odds of ML.PREDICT's probability
                want = math.log(p / (1 - p))
            assert row["prediction_value"] == pytest.approx(want, abs=1e-5)
        else:
            assert "probability" not in row
            assert row["prediction_value"] == pytest.approx(predicted_label, abs=1e-9)
        if approx:
            assert 0.0 <= row["approximation_error"] < 1e-4
        else:
            assert row["approximation_error"] == 0.0
        ordered = [a["attribution"] for a in row["top_feature_attributions"]]
        assert ordered == sorted(ordered, key=lambda a: -abs(a))
    return rows


@pytest.mark.parametrize("model", ["reg", "binary", "multi", "forest"])
def test_treeshap_is_xgboosts_own_on_the_rows_as_the_trees_read_them(ex: Ex, model: str) -> None:
    rows = _check(ex, model)
    unseen = next(r for r in rows if r["i"] == 5)  # (label-encoded 0, or no one-hot column)
    assert set(attributions(unseen)) == {"x1", "x2", "s"}


def test_both_classes_of_a_binary_model_are_explained(ex: Ex) -> None:
    labels = {r["predicted_c"] for r in _check(ex, "binary")}
    assert labels == {True, False}
    multi = {r["predicted_k"] for r in _check(ex, "multi")}
    assert len(multi) >= 2


@pytest.mark.parametrize("model", ["reg", "multi", "forest"])
def test_approx_feature_contrib_gives_xgboosts_approximate_contributions(
    ex: Ex, model: str
) -> None:
    exact = _check(ex, model)
    approx = _check(ex, model, approx=True)
    assert any(  # (another method: other numbers)
        abs(attributions(a)["x1"] - attributions(e)["x1"]) > 1e-6
        for a, e in zip(approx, exact, strict=True)
    )


def test_top_k_features_keeps_the_largest(ex: Ex) -> None:
    full = ex.explained(
        f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(5 AS top_k_features))"
        " ORDER BY i"
    )
    top = ex.explained(
        f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(1 AS top_k_features))"
        " ORDER BY i"
    )
    for every, one in zip(full, top, strict=True):
        (first,) = one["top_feature_attributions"]
        assert first == every["top_feature_attributions"][0]
        assert len(every["top_feature_attributions"]) == 3


def test_more_rows_than_one_batch(ex: Ex) -> None:
    """17,040 rows (PostgreSQL explains 16,384 a call; DuckDB 2,048 a vector): each row is
    explained as its copy in a small call is, whatever batch it falls in."""
    one = {
        r["i"]: r for r in ex.explained(f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.multi, {ROWS})")
    }
    many = ex.explained(
        "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.multi, (SELECT r.* FROM"
        f" {ROWS} AS r, generate_series(1, 142) AS g(n)))"
    )
    assert len(many) == 120 * 142
    for row in many:
        alone = one[row["i"]]
        assert row["predicted_k"] == alone["predicted_k"]
        assert row["prediction_value"] == pytest.approx(alone["prediction_value"], abs=1e-9)
        assert row["top_feature_attributions"] == alone["top_feature_attributions"]


def test_a_version_without_its_xgboost_model_is_0a000(ex: Ex) -> None:
    ex.run("DELETE FROM sqlml.version_boosters WHERE model_name = 'gone'")
    with pytest.raises(errors.Error) as raised:
        ex.run(f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.gone, {ROWS})")
    assert raised.value.sqlstate == "0A000"
    assert ex.run(f"SELECT count(*) FROM ML.PREDICT(MODEL ex.gone, {ROWS})") == [(120,)]


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        (f"ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(0 AS top_k_features))", "22023"),
        (f"ML.EXPLAIN_PREDICT(MODEL ex.binary, {ROWS}, STRUCT(1.5 AS threshold))", "22023"),
        (f"ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(1 AS approx_feature_contrib))", "22023"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.lin, TABLE ex.t, STRUCT(TRUE AS approx_feature_contrib))", "0A000"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.reg, (SELECT x1, x2, s, 1 AS probability FROM ex.t))", "42701"),
        ("ML.EXPLAIN_PREDICT(MODEL ex.reg, (SELECT x1, s FROM ex.t))", "42703"),
    ],
)  # fmt: skip
def test_bad_calls_are_refused_with_their_sqlstate(ex: Ex, call: str, sqlstate: str) -> None:
    if not ex.run("SELECT count(*) FROM sqlml.versions WHERE model_name = 'lin'")[0][0]:
        ex.run(
            "CREATE MODEL ex.lin OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            " data_split_method = 'NO_SPLIT') AS SELECT x2, y FROM ex.t"
        )
    with pytest.raises(errors.Error) as raised:
        ex.run(f"SELECT * FROM {call}")
    assert raised.value.sqlstate == sqlstate, raised.value
    assert ex.run("SELECT 1") == [(1,)]  # the session goes on


def test_the_xgboost_model_is_dropped_with_its_version(ex: Ex) -> None:
    options = f"model_type = 'boosted_tree_regressor', input_label_cols = ['y'], {BOOSTED}"
    for _ in range(2):
        ex.run(f"CREATE OR REPLACE MODEL ex.dropped OPTIONS ({options}) AS SELECT x2, y FROM ex.t")
    count = "SELECT count(*) FROM sqlml.version_boosters WHERE model_name = 'dropped'"
    assert ex.run(count) == [(2,)]
    ex.run("DROP MODEL ex.dropped VERSION 1")
    assert ex.run(count) == [(1,)]
    ex.run("DROP MODEL ex.dropped")
    assert ex.run(count) == [(0,)]


def test_an_older_duckdb_store_gains_the_table(tmp_path: Path) -> None:
    """A store of version 5 (before sqlml.version_boosters) is upgraded when opened: its tree
    model predicts and is 0A000 to explain; trained again, it explains."""
    path = str(tmp_path / "old.duckdb")
    con = sqlml.connect(path, autocommit=True)
    con.execute("CREATE TABLE t AS SELECT i * 1.0 AS x, sin(i) AS y FROM range(50) g(i)")
    create = (
        "CREATE OR REPLACE MODEL m OPTIONS (model_type = 'boosted_tree_regressor',"
        " max_iterations = 2, data_split_method = 'NO_SPLIT') AS SELECT x, y AS label FROM t"
    )
    con.execute(create)
    con.execute("DROP TABLE sqlml.version_boosters")
    con.execute("UPDATE sqlml.store_info SET value = '5' WHERE key = 'store_version'")
    con.close()
    con = sqlml.connect(path, autocommit=True)
    try:
        assert con.execute("SELECT count(*) FROM sqlml.version_boosters").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE t)").fetchall() == [
            (50,)
        ]
        with pytest.raises(errors.Error) as raised:
            con.execute("SELECT * FROM ML.EXPLAIN_PREDICT(MODEL m, TABLE t)")
        assert raised.value.sqlstate == "0A000"
        con.execute(create)
        rows = con.execute(
            "SELECT baseline_prediction_value, prediction_value FROM"
            " ML.EXPLAIN_PREDICT(MODEL m, TABLE t)"
        ).fetchall()
        assert len(rows) == 50
    finally:
        con.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_over_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    """Through `sqlml serve` (psycopg 3): the columns and the identity."""
    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    with psycopg_gateway(engine, database) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.trees OPTIONS (model_type = 'boosted_tree_classifier',"
            " input_label_cols = ['churned'], max_iterations = 4) AS"
            " SELECT tenure, plan, churned FROM shop.customers"
        )
        cur = c.execute(
            "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL shop.trees,"
            " (SELECT id, tenure, plan FROM shop.new_customers)) ORDER BY id LIMIT 5"
        )
        assert [d.name for d in cur.description or []][:6] == EXPLAINED
        for row in cur.fetchall():
            top = wire_attributions(row[2])
            assert {feature for feature, _ in top} == {"tenure", "plan"}
            total = row[3] + sum(attribution for _, attribution in top)
            assert total == pytest.approx(row[4], abs=1e-5)
            assert row[5] == 0
