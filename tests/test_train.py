"""The ML core against scikit-learn run independently on the same data and preprocessing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sqlml import errors
from sqlml.ml.features import NULL_CATEGORY, InputColumn
from sqlml.ml.score import Scorer
from sqlml.ml.train import train


def _data(n: int = 600, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(2.0, 3.0, size=n)
    c = rng.choice(["x", "y", "z"], size=n).astype(object)
    a[::17] = np.nan
    c[::23] = None
    logit = 1.5 * np.nan_to_num(a) - 0.4 * b + (c == "x") * 1.0
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    plan = np.where(logit > 1, "gold", np.where(logit > -1, "silver", "bronze"))
    spend = 3.0 * np.nan_to_num(a) + 0.5 * b + (c == "y") * 2 + rng.normal(size=n)
    return pa.table(
        {
            "a": pa.array(a, from_pandas=True),
            "b": b,
            "c": pa.array(c.tolist(), type=pa.string()),
            "churned": churned,
            "plan": plan,
            "spend": spend,
        }
    )


def _reference_pre(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    steps: list[Any] = [
        (n, Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), [n])
        for n in numeric
    ]
    steps += [(c, OneHotEncoder(handle_unknown="ignore"), [c]) for c in categorical]
    return ColumnTransformer(steps)


def _frame(table: pa.Table, columns: list[str]) -> Any:
    frame = table.select(columns).to_pandas()
    for column in columns:
        if frame[column].dtype == object or str(frame[column].dtype).startswith("str"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), NULL_CATEGORY)
    return frame


def _score(result: Any, table: pa.Table) -> dict[str, np.ndarray[Any, Any]]:
    return Scorer(result.onnx, result.inputs).run_table(table)


FEATURES = ["a", "b", "c"]


def test_logistic_binary_matches_sklearn() -> None:
    table = _data()
    options = {"model_type": "logistic_reg", "input_label_cols": ("churned",)}
    result = train(
        {**options, "data_split_method": "NO_SPLIT"}, table.select([*FEATURES, "churned"])
    )
    reference = Pipeline(
        [
            ("pre", _reference_pre(["a", "b"], ["c"])),
            ("model", LogisticRegression(C=np.inf, max_iter=20, tol=0.01)),
        ]
    )
    frame = _frame(table, FEATURES)
    y = table.column("churned").to_numpy()
    reference.fit(frame, y)
    outputs = _score(result, table)
    np.testing.assert_allclose(outputs["probabilities"], reference.predict_proba(frame), atol=1e-9)
    assert result.classes == [False, True]
    assert result.kind == "classifier"
    assert set(result.metrics) == {
        "precision",
        "recall",
        "accuracy",
        "f1_score",
        "log_loss",
        "roc_auc",
    }
    accuracy = float(np.mean(reference.predict(frame) == y))
    assert result.metrics["accuracy"] == pytest.approx(accuracy)


def test_logistic_multiclass_string_labels_with_l2() -> None:
    table = _data()
    options = {
        "model_type": "logistic_reg",
        "input_label_cols": ("plan",),
        "l2_reg": 0.5,
        "max_iterations": 50,
        "data_split_method": "NO_SPLIT",
    }
    result = train(options, table.select([*FEATURES, "plan"]))
    reference = Pipeline(
        [
            ("pre", _reference_pre(["a", "b"], ["c"])),
            ("model", LogisticRegression(C=2.0, max_iter=50, tol=0.01)),
        ]
    )
    frame = _frame(table, FEATURES)
    reference.fit(frame, table.column("plan").to_numpy(zero_copy_only=False))
    outputs = _score(result, table)
    np.testing.assert_allclose(outputs["probabilities"], reference.predict_proba(frame), atol=1e-9)
    assert result.classes == ["bronze", "gold", "silver"]
    labels = np.array(result.classes)[outputs["label"]]
    assert (labels == reference.predict(frame)).all()


@pytest.mark.parametrize(
    ("extra", "estimator"),
    [
        ({}, LinearRegression()),
        ({"l2_reg": 2.0}, Ridge(alpha=2.0)),
        (
            {"l1_reg": 0.1, "l2_reg": 0.1, "max_iterations": 1000},
            ElasticNet(alpha=0.2, l1_ratio=0.5, max_iter=1000, tol=0.01, random_state=0),
        ),
    ],
)
def test_linear_reg_matches_sklearn(extra: dict[str, Any], estimator: Any) -> None:
    table = _data()
    options = {
        "model_type": "linear_reg",
        "input_label_cols": ("spend",),
        "data_split_method": "NO_SPLIT",
        **extra,
    }
    result = train(options, table.select([*FEATURES, "spend"]))
    reference = Pipeline([("pre", _reference_pre(["a", "b"], ["c"])), ("model", estimator)])
    frame = _frame(table, FEATURES)
    reference.fit(frame, table.column("spend").to_numpy())
    predicted = _score(result, table)["value"].reshape(-1)
    np.testing.assert_allclose(predicted, reference.predict(frame), atol=1e-8)
    assert result.metrics["r2_score"] > 0.8


def test_kmeans_matches_sklearn() -> None:
    table = _data().select(["a", "b", "c"])
    result = train(
        {"model_type": "kmeans", "num_clusters": 3, "kmeans_init_method": "KMEANS++"}, table
    )
    reference = Pipeline(
        [
            ("pre", _reference_pre(["a", "b"], ["c"])),
            (
                "model",
                KMeans(
                    n_clusters=3, init="k-means++", n_init=1, max_iter=20, tol=0.01, random_state=0
                ),
            ),
        ]
    )
    frame = _frame(table, FEATURES)
    reference.fit(frame)
    outputs = _score(result, table)
    assert (outputs["label"] == reference.predict(frame)).all()
    np.testing.assert_allclose(outputs["distances"], reference.transform(frame), atol=1e-9)
    assert set(result.metrics) == {"davies_bouldin_index", "mean_squared_distance"}


def test_unseen_and_null_categories_encode_as_bigquery_does() -> None:
    table = _data()
    result = train(
        {
            "model_type": "linear_reg",
            "input_label_cols": ("spend",),
            "data_split_method": "NO_SPLIT",
        },
        table.select([*FEATURES, "spend"]),
    )
    names = [c.name for c in result.inputs]
    assert names == FEATURES
    info = {f["column"]: f for f in result.feature_info}
    assert info["c"]["categories"] == ["x", "y", "z", None]  # NULL seen in training: a category
    probe = pa.table({"a": [None, 0.0], "b": [0.0, 0.0], "c": ["never-seen", None]})
    values = Scorer(
        result.onnx,
        [InputColumn("a", "numeric"), InputColumn("b", "numeric"), InputColumn("c", "string")],
    ).run_table(probe)
    assert np.isfinite(values["value"]).all()


def test_auto_split_sizes() -> None:
    small = train(
        {"model_type": "linear_reg", "input_label_cols": ("spend",)},
        _data(400).select(["a", "b", "spend"]),
    )
    assert small.training_info["evaluation_rows"] == 0
    medium = train(
        {"model_type": "linear_reg", "input_label_cols": ("spend",)},
        _data(1000).select(["a", "b", "spend"]),
    )
    assert medium.training_info["evaluation_rows"] == 200
    assert medium.training_info["training_rows"] == 800


@pytest.mark.parametrize(
    ("options", "table", "error"),
    [
        (
            {"model_type": "logistic_reg", "input_label_cols": ("nope",)},
            _data(),
            errors.UndefinedColumn,
        ),
        ({"model_type": "svm"}, _data(), errors.InvalidParameterValue),
        (
            {"model_type": "logistic_reg", "input_label_cols": ("churned",), "l2_reg": -1},
            _data(),
            errors.InvalidParameterValue,
        ),
        (
            {"model_type": "logistic_reg", "input_label_cols": ("churned",), "bogus": 1},
            _data(),
            errors.InvalidParameterValue,
        ),
        (
            {"model_type": "logistic_reg", "input_label_cols": ("churned",)},
            _data().slice(0, 0),
            errors.UnusableTrainingData,
        ),
        (
            {"model_type": "logistic_reg", "input_label_cols": ("churned",)},
            pa.table({"a": [1.0, 2.0], "churned": [True, True]}),
            errors.UnusableTrainingData,
        ),
        (
            {"model_type": "logistic_reg", "input_label_cols": ("churned",)},
            pa.table({"a": [1.0, 2.0], "churned": pa.array([None, None], type=pa.bool_())}),
            errors.UnusableTrainingData,
        ),
        (
            {"model_type": "linear_reg", "input_label_cols": ("plan",)},
            _data(),
            errors.DatatypeMismatch,
        ),
    ],
)
def test_training_errors(
    options: dict[str, Any], table: pa.Table, error: type[errors.Error]
) -> None:
    with pytest.raises(error) as caught:
        train(options, table)
    assert caught.value.sqlstate == error.sqlstate


def _no_split(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_type": "logistic_reg",
        "input_label_cols": ("churned",),
        "data_split_method": "NO_SPLIT",
        **extra,
    }


def _lr_reference(table: pa.Table, model: Any, **fit: Any) -> Any:
    reference = Pipeline([("pre", _reference_pre(["a", "b"], ["c"])), ("model", model)])
    frame = _frame(table, FEATURES)
    reference.fit(frame, table.column("churned").to_numpy(), **fit)
    return reference.predict_proba(frame)


def test_auto_class_weights() -> None:
    table = _data()
    result = train(_no_split({"auto_class_weights": True}), table.select([*FEATURES, "churned"]))
    want = _lr_reference(
        table, LogisticRegression(C=np.inf, max_iter=20, tol=0.01, class_weight="balanced")
    )
    np.testing.assert_allclose(_score(result, table)["probabilities"], want, atol=1e-9)


def test_class_weights() -> None:
    table = _data()
    weights = (("true", 3.0), ("false", 0.5))
    result = train(_no_split({"class_weights": weights}), table.select([*FEATURES, "churned"]))
    y = table.column("churned").to_numpy()
    want = _lr_reference(
        table,
        LogisticRegression(C=np.inf, max_iter=20, tol=0.01),
        model__sample_weight=np.where(y, 3.0, 0.5),
    )
    np.testing.assert_allclose(_score(result, table)["probabilities"], want, atol=1e-9)


def test_batch_gradient_descent_with_constant_learn_rate() -> None:
    from sklearn.linear_model import SGDClassifier

    table = _data()
    options = {
        "optimize_strategy": "BATCH_GRADIENT_DESCENT",
        "learn_rate_strategy": "CONSTANT",
        "learn_rate": 0.05,
        "l2_reg": 0.01,
    }
    result = train(_no_split(options), table.select([*FEATURES, "churned"]))
    model = SGDClassifier(
        loss="log_loss",
        penalty="elasticnet",
        alpha=0.01,
        l1_ratio=0.0,
        learning_rate="constant",
        eta0=0.05,
        max_iter=20,
        tol=0.01,
        random_state=0,
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        want = _lr_reference(table, model)
    np.testing.assert_allclose(_score(result, table)["probabilities"], want, atol=1e-9)


# the reference stops at max_iter on purpose, and says so
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stop_false_runs_all_iterations() -> None:
    table = _data()
    result = train(
        _no_split({"early_stop": False, "max_iterations": 7}), table.select([*FEATURES, "churned"])
    )
    want = _lr_reference(table, LogisticRegression(C=np.inf, max_iter=7, tol=0.0))
    np.testing.assert_allclose(_score(result, table)["probabilities"], want, atol=1e-9)
    assert result.training_info["iterations"] == 7
    assert result.training_info["converged"] is False  # reported, not raised


def test_random_seq_and_custom_splits() -> None:
    n = 1000
    table = (
        _data(n)
        .append_column("day", pa.array(np.arange(n)[::-1]))
        .append_column("is_eval", pa.array(np.arange(n) % 4 == 0))
    )
    base = {"model_type": "linear_reg", "input_label_cols": ("spend",)}
    random = train(
        {**base, "data_split_method": "RANDOM", "data_split_eval_fraction": 0.3},
        table.select(["a", "b", "spend"]),
    )
    assert random.training_info["evaluation_rows"] == 300
    seq = train(
        {
            **base,
            "data_split_method": "SEQ",
            "data_split_col": "day",
            "data_split_eval_fraction": 0.1,
        },
        table.select(["a", "b", "day", "spend"]),
    )
    assert seq.training_info["evaluation_rows"] == 100
    assert [c.name for c in seq.inputs] == ["a", "b"]  # the split column is not a feature
    custom = train(
        {**base, "data_split_method": "CUSTOM", "data_split_col": "is_eval"},
        table.select(["a", "b", "is_eval", "spend"]),
    )
    assert custom.training_info["evaluation_rows"] == 250
    # SEQ evaluates the rows with the largest values: the first 100 rows here (day runs down)
    first = table.slice(0, 100)
    values = _score(seq, first)["value"].reshape(-1)
    from sklearn.metrics import mean_absolute_error

    assert seq.metrics["mean_absolute_error"] == pytest.approx(
        mean_absolute_error(first.column("spend").to_numpy(), values)
    )
    with pytest.raises(errors.InvalidParameterValue):
        train({**base, "data_split_method": "CUSTOM"}, table.select(["a", "b", "spend"]))


def test_kmeans_custom_init_and_unscaled() -> None:
    table = _data().select(["a", "b"])
    init = np.zeros(table.num_rows, dtype=bool)
    init[[0, 1, 2]] = True
    with_init = table.append_column("seed", pa.array(init))
    result = train(
        {
            "model_type": "kmeans",
            "kmeans_init_method": "CUSTOM",
            "kmeans_init_col": "seed",
            "standardize_features": False,
        },
        with_init,
    )
    assert [c.name for c in result.inputs] == ["a", "b"]
    x = np.column_stack(
        [
            np.nan_to_num(
                table.column("a").to_numpy(zero_copy_only=False),
                nan=np.nanmean(table.column("a").to_numpy(zero_copy_only=False)),
            ),
            table.column("b").to_numpy(),
        ]
    )
    reference = KMeans(
        n_clusters=3, init=x[:3], n_init=1, max_iter=20, tol=0.01, random_state=0
    ).fit(x)
    outputs = _score(result, table)
    assert (outputs["label"] == reference.predict(x)).all()
    np.testing.assert_allclose(outputs["distances"], reference.transform(x), atol=1e-9)
