"""sqlml.ml.trees_onnx: XGBoost models (BigQuery's boosted trees and random forests) as ONNX.

Each model is fitted on data with NaNs (BigQuery's NULLs, which XGBoost routes by each split's
learned default direction) and scored by XGBoost and by onnxruntime on the converted graph:

- classes equal, probabilities within 1e-6 (XGBoost computes them in float32: measured ~3e-7);
- regression with ai.onnx.ml v5 (the default): the graph's value is the exact float64 sum of the float32 leaves XGBoost selects
  (``pred_leaf``), to 1e-12 relative; XGBoost's own ``predict`` sums those leaves in float32, so it
  differs from the exact sum by float32 rounding, bounded by n_trees * 2^-24 * (|base| + sum|leaf|)
  per row (the standard bound of a sequential float32 sum), which the test asserts too. With
  ai.onnx.ml v3, TreeEnsembleRegressor's output is float32 whatever its input, so the graph's
  value carries float32 rounding too (within the same bound of the exact sum).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import xgboost as xgb

from sqlml.errors import FeatureNotSupported
from sqlml.ml.trees_onnx import xgboost_to_onnx

ROWS = 3000
OPSETS = [3, 5]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, 6))
    clean = x.copy()
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:50, :] = np.nan  # rows with every feature NULL take the default branch at every split
    y = (
        30 * clean[:, 0]
        + 10 * np.sin(clean[:, 1])
        + clean[:, 2] * clean[:, 3]
        + rng.normal(size=ROWS)
    )
    return x, y


def run(model: Any, x: np.ndarray[Any, Any], ml_opset: int) -> dict[str, np.ndarray[Any, Any]]:
    graph = xgboost_to_onnx(model, ml_opset=ml_opset)
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"features": x}), strict=True))


def exact_sum(
    model: Any, x: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The float64 sum of XGBoost's float32 leaves for each row, and the float32 rounding bound."""
    booster = model.get_booster()
    doc = json.loads(booster.save_raw(raw_format="json"))
    gbt = doc["learner"]["gradient_booster"]
    trees = gbt.get("gbtree", gbt)["model"]["trees"]
    weights = np.asarray(gbt.get("weight_drop", [1.0] * len(trees)))  # DART's, else 1
    leaf_ids = booster.predict(xgb.DMatrix(x), pred_leaf=True).astype(np.int64).reshape(len(x), -1)
    values = (
        np.stack(
            [
                np.asarray(trees[t]["split_conditions"], dtype=np.float32)[leaf_ids[:, t]]
                for t in range(len(trees))
            ],
            axis=1,
        ).astype(np.float64)
        * weights[None, :]
    )
    base = float(np.float32(doc["learner"]["learner_model_param"]["base_score"].strip("[]")))
    bound = len(trees) * 2.0**-24 * (abs(base) + np.abs(values).sum(axis=1))
    return base + values.sum(axis=1), bound


REGRESSORS = {
    "gbtree_hist": lambda: xgb.XGBRegressor(
        n_estimators=40, max_depth=6, learning_rate=0.3, tree_method="hist"
    ),
    "gbtree_exact": lambda: xgb.XGBRegressor(n_estimators=40, max_depth=6, tree_method="exact"),
    "gbtree_approx": lambda: xgb.XGBRegressor(n_estimators=40, max_depth=6, tree_method="approx"),
    "num_parallel_tree": lambda: xgb.XGBRegressor(
        n_estimators=5, num_parallel_tree=4, subsample=0.8
    ),
    "dart_forest": lambda: xgb.XGBRegressor(
        booster="dart", n_estimators=30, rate_drop=0.3, skip_drop=0.0, normalize_type="forest"
    ),
    "dart_tree_parallel": lambda: xgb.XGBRegressor(
        booster="dart",
        n_estimators=20,
        rate_drop=0.3,
        skip_drop=0.0,
        normalize_type="tree",
        num_parallel_tree=3,
    ),
    "every_bigquery_option": lambda: xgb.XGBRegressor(
        n_estimators=20,
        max_depth=4,
        learning_rate=0.2,
        reg_alpha=0.5,
        reg_lambda=2.0,
        gamma=0.5,
        min_child_weight=3,
        subsample=0.7,
        colsample_bytree=0.9,
        colsample_bylevel=0.8,
        colsample_bynode=0.7,
        num_parallel_tree=2,
    ),
    "random_forest": lambda: xgb.XGBRFRegressor(
        n_estimators=30, max_depth=15, subsample=0.8, colsample_bynode=0.8
    ),
}


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_regressor_matches_xgboost(data: Any, name: str, ml_opset: int) -> None:
    x, y = data
    model = REGRESSORS[name]().set_params(n_jobs=1).fit(x, y)
    value = run(model, x, ml_opset)["value"]
    assert value.dtype == np.float64
    assert value.shape == (ROWS, 1)
    exact, bound = exact_sum(model, x)
    if ml_opset == 5:
        np.testing.assert_allclose(value[:, 0], exact, rtol=1e-12, atol=0)
        assert np.all(np.abs(model.predict(x) - value[:, 0]) <= bound)
    else:  # TreeEnsembleRegressor v3 outputs float32 (the ONNX spec): float32 rounding, as XGBoost
        assert np.all(np.abs(value[:, 0] - exact) <= bound)
        assert np.all(np.abs(model.predict(x) - value[:, 0]) <= 2 * bound)


def test_dart_drop_weights_are_exercised(data: Any) -> None:
    """DART scales each tree by its weight_drop at prediction (onnxmltools 1.16 cannot convert DART):
    the DART cases above only prove that if some weights differ from 1."""
    x, y = data
    model = REGRESSORS["dart_forest"]().set_params(n_jobs=1).fit(x, y)
    doc = json.loads(model.get_booster().save_raw(raw_format="json"))
    assert min(doc["learner"]["gradient_booster"]["weight_drop"]) < 1.0


CLASSIFIERS = {
    "binary": (lambda: xgb.XGBClassifier(n_estimators=40, max_depth=6), 2),
    "binary_dart": (
        lambda: xgb.XGBClassifier(booster="dart", n_estimators=20, rate_drop=0.3, skip_drop=0.0),
        2,
    ),
    "binary_forest": (
        lambda: xgb.XGBRFClassifier(
            n_estimators=30, max_depth=15, subsample=0.8, colsample_bynode=0.8
        ),
        2,
    ),
    "multiclass": (lambda: xgb.XGBClassifier(n_estimators=30, max_depth=6), 4),
}


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_matches_xgboost(data: Any, name: str, ml_opset: int) -> None:
    x, y = data
    factory, classes = CLASSIFIERS[name]
    label = np.digitize(y, np.quantile(y, np.linspace(0, 1, classes + 1)[1:-1]))
    model = factory().set_params(n_jobs=1).fit(x, label)
    out = run(model, x, ml_opset)
    assert out["probabilities"].dtype == np.float64
    assert out["probabilities"].shape == (ROWS, classes)
    np.testing.assert_array_equal(out["label"], model.predict(x))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), rtol=0, atol=1e-6)


def test_model_json_bytes_and_booster_convert_alike(data: Any) -> None:
    """The stored form is XGBoost's JSON: converting it needs no xgboost object."""
    x, y = data
    model = xgb.XGBRegressor(n_estimators=5, n_jobs=1).fit(x, y)
    raw = bytes(model.get_booster().save_raw(raw_format="json"))
    from_bytes = xgboost_to_onnx(raw)
    from_booster = xgboost_to_onnx(model.get_booster())
    assert from_bytes.SerializeToString() == from_booster.SerializeToString()


def test_unsupported_models_are_0a000(data: Any) -> None:
    x, y = data
    poisson = xgb.XGBRegressor(n_estimators=2, objective="count:poisson", n_jobs=1).fit(
        x, np.abs(y)
    )
    linear = xgb.XGBRegressor(n_estimators=2, booster="gblinear", n_jobs=1).fit(np.nan_to_num(x), y)
    for model in (poisson, linear):
        with pytest.raises(FeatureNotSupported) as info:
            xgboost_to_onnx(model)
        assert info.value.sqlstate == "0A000"


@pytest.mark.parametrize("ml_opset", OPSETS)
def test_single_leaf_trees(data: Any, ml_opset: int) -> None:
    """min_split_loss (gamma) so large that no split pays: every tree is one leaf (v5 needs a dummy split)."""
    x, y = data
    model = xgb.XGBRegressor(n_estimators=3, gamma=1e12, n_jobs=1).fit(x, y)
    value = run(model, x, ml_opset)["value"][:, 0]
    np.testing.assert_allclose(value, model.predict(x), rtol=1e-6)
    assert np.unique(value).size == 1


def test_categorical_splits_are_0a000() -> None:
    """BigQuery label-encodes categories before XGBoost; XGBoost's own categorical splits are refused."""
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"c": pd.Categorical(rng.choice(list("abcd"), 500)), "x": rng.normal(size=500)}
    )
    target = (frame["c"].isin(["a", "c"])).astype(float) + frame["x"]
    model = xgb.XGBRegressor(n_estimators=3, enable_categorical=True, tree_method="hist", n_jobs=1)
    model.fit(frame, target)
    with pytest.raises(FeatureNotSupported) as info:
        xgboost_to_onnx(model)
    assert info.value.sqlstate == "0A000"


def test_early_stopping_keeps_the_best_rounds(data: Any) -> None:
    """XGBoost keeps the rounds after best_iteration in the model; its predict ignores them."""
    x, y = data
    model = xgb.XGBRegressor(
        n_estimators=200, learning_rate=0.9, early_stopping_rounds=2, n_jobs=1
    ).fit(x[:2000], y[:2000], eval_set=[(x[2000:], y[2000:])], verbose=False)
    rounds = (
        len(
            json.loads(model.get_booster().save_raw(raw_format="json"))["learner"][
                "gradient_booster"
            ]["model"]["iteration_indptr"]
        )
        - 1
    )
    assert model.best_iteration + 1 < rounds  # trailing rounds really are stored
    value = run(model, x, 5)["value"][:, 0]
    np.testing.assert_allclose(value, model.predict(x), rtol=1e-5, atol=1e-5 * np.abs(y).max())
    every = xgboost_to_onnx(model, rounds=rounds)
    sess = ort.InferenceSession(every.SerializeToString(), providers=["CPUExecutionProvider"])
    all_rounds = model.get_booster().predict(xgb.DMatrix(x))
    np.testing.assert_allclose(
        sess.run(None, {"features": x})[0][:, 0], all_rounds, rtol=1e-5, atol=1e-5 * np.abs(y).max()
    )


def test_module_is_pure() -> None:
    """The converter imports neither xgboost nor sqlml's grammar, DB-API or engine path."""
    import subprocess
    import sys

    code = "import sys, sqlml.ml.trees_onnx; print(' '.join(sorted(sys.modules)))"
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(run_.stdout.split())
    assert "sqlml.ml.trees_onnx" in loaded
    banned = ("xgboost", "sqlglot", "duckdb", "sqlml.grammar", "sqlml.engine", "sqlml.dbapi")
    assert not [m for m in loaded if m.startswith(banned)]
