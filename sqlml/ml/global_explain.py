"""What training records for ML.GLOBAL_EXPLAIN (OPTIONS enable_global_explain = TRUE) and
ML.ADVANCED_WEIGHTS (calculate_p_values = TRUE): BigQuery computes both "when you create the
model" (docs/design/explanations.md), and so does sqlml, from the preprocessed rows training has
in hand. ``recorded`` returns the training-info entries; sqlml/functions/global_explain.py and
advanced_weights.py read them back.

Global explanation: per feature (an input column of automatic preprocessing, or a TRANSFORM
output: a one-hot or dummy block summed, as ML.EXPLAIN_PREDICT does), the mean absolute
attribution over the evaluation rows (the split's evaluation rows; all rows with NO_SPLIT):

- linear_reg / logistic_reg: BigQuery's rule, weight times standardized value, i.e. on the
  standardized design x the estimator is fitted on, ``coef_kj * x_j`` (a category's block sums
  to the weight of the category present; a NULL numeric is at its mean: 0). Classifiers: the
  logit of each row's predicted class (a binary model's one logit: its sign does not change the
  absolute value); per class (class_level_explain), the attribution toward that class's logit
  over every evaluation row.
- boosted trees and random forests: XGBoost's TreeSHAP (``pred_contribs``; its approximation
  with approx_global_feature_contrib = TRUE), on at most TREE_ROWS evaluation rows evenly spread
  over them (TreeSHAP costs trees x leaves x depth^2 per row); a one-hot block summed; the
  classifiers as above, in margin (log-odds) space.

Advanced weights: for linear_reg and binary logistic_reg trained with dummy encoding and
l1_reg = 0 (BigQuery's requirements), the standard errors of the intercept and of every weight
on the standardized design X (an intercept column added): the inverse of the penalized
objective's Hessian, ``sigma^2 (X'X + L)^-1`` for least squares (sigma^2 = RSS / (n - p), p
counting the intercept; L = l2_reg on the weights, not the intercept: 0 without L2) and
``(X' W X + L)^-1`` with ``W = p (1 - p)`` (times the class weights the fit used) for the
logistic regression, the inverse Fisher information. What is not computed says why
(``unavailable``), and ML.ADVANCED_WEIGHTS reports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml import temporal
from sqlml.ml.features import DUMMY, OneHot, Preprocessor

Array = np.ndarray[Any, Any]

GLOBAL = "global_explain"  # the training-info entries
ADVANCED = "advanced_weights"
LINEAR_TYPES = ("linear_reg", "logistic_reg")
TREE_TYPES = ("boosted_tree_", "random_forest_")
TREE_ROWS = 20_000  # evaluation rows TreeSHAP runs on at most
CHUNK = 65_536  # rows at a time through a linear model's attributions
MAX_CARDINALITY = 1_000  # BigQuery: "must be less than 1,000" for CALCULATE_P_VALUES
ONE_HOT_BLOCKS = ("one_hot", "one_hot_encoder", "multi_hot")  # (sqlml.functions.layout's)


def recorded(
    model_type: str,
    opts: Mapping[str, Any],
    estimator: Any,
    pre: Preprocessor,
    x_train: Array,
    y_train: Array | None,
    x_eval: Array,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The training-info entries for the options asked for (none: an empty dict)."""
    began = time.perf_counter()
    if model_type in LINEAR_TYPES and opts.get("category_encoding_method") == "DUMMY_ENCODING":
        _dummy_encoded(pre, bool(opts.get("incremental")))
    found: dict[str, Any] = {}
    if opts.get("enable_global_explain"):
        found[GLOBAL] = _global(model_type, opts, estimator, pre, x_eval)
    if opts.get("calculate_p_values") and model_type in LINEAR_TYPES:
        found[ADVANCED] = _advanced(model_type, opts, estimator, x_train, y_train, classes)
    if found:
        found["explain_seconds"] = time.perf_counter() - began
    return found


def _dummy_encoded(pre: Preprocessor, incremental: bool) -> None:
    """0A000 where preprocessing is fitted elsewhere than features.fit (incremental training,
    a training streamed from more rows than fit in memory): it does not dummy-encode yet."""
    for encoder in pre.auto:
        full = (
            isinstance(encoder, OneHot)
            and not isinstance(encoder, temporal.ComponentOneHot)
            and bool(encoder.categories)
            and not encoder.dropped
        )
        if incremental or full:
            raise errors.FeatureNotSupported(
                f"CATEGORY_ENCODING_METHOD = '{DUMMY.upper()}_ENCODING' is not supported with"
                " incremental = TRUE or a training streamed over more rows than fit in memory yet",
                hint="leave CATEGORY_ENCODING_METHOD out (one-hot encoding)",
            )


# -- global explanation ----------------------------------------------------------------------


def blocks(pre: Preprocessor) -> list[tuple[str, int]]:
    """(feature name, its columns in the feature matrix), in matrix order: the rule of
    sqlml.functions.layout over the feature info the version stores."""
    found = []
    for info in pre.info():
        width = len(info.get("categories") or ()) if info["encoding"] in ONE_HOT_BLOCKS else 1
        found.append((str(info["column"]), width))
    return found


def _global(
    model_type: str, opts: Mapping[str, Any], estimator: Any, pre: Preprocessor, x: Array
) -> dict[str, Any]:
    layout = blocks(pre)
    if sum(width for _, width in layout) != x.shape[1]:
        return {"unavailable": "its feature columns do not map back to its features"}
    if model_type in LINEAR_TYPES:
        coef = getattr(estimator, "coef_", None)
        if coef is None:
            return {"unavailable": f"its estimator ({type(estimator).__name__}) has no weights"}
        per_row = _linear(np.atleast_2d(np.asarray(coef, dtype=np.float64)), layout, x)
        margins = _linear_margins(estimator, x) if np.atleast_2d(coef).shape[0] > 1 else None
        rows = len(x)
    elif model_type.startswith(TREE_TYPES):
        x = _spread(x, TREE_ROWS)
        per_row, margins = _trees(
            estimator, layout, x, bool(opts.get("approx_global_feature_contrib"))
        )
        rows = len(x)
    else:
        return {"unavailable": f"model type {model_type} has no global explanation"}
    names = [name for name, _ in layout]
    # per_row: [outputs, rows, features]; one output (regression, binary): that one
    if per_row.shape[0] == 1:
        overall = np.abs(per_row[0]).mean(axis=0) if rows else np.zeros(len(names))
    else:
        assert margins is not None
        chosen = per_row[np.argmax(margins, axis=1), np.arange(rows)]
        overall = np.abs(chosen).mean(axis=0) if rows else np.zeros(len(names))
    record: dict[str, Any] = {"rows": rows, "features": _ranked(names, overall)}
    n_classes = _n_classes(model_type, estimator, per_row)
    if n_classes:
        by_class = (
            np.abs(per_row).mean(axis=1) if rows else np.zeros((per_row.shape[0], len(names)))
        )
        if per_row.shape[0] == 1:  # (binary: the two logits are z and -z)
            by_class = np.repeat(by_class, n_classes, axis=0)
        record["classes"] = [_ranked(names, by_class[k]) for k in range(n_classes)]
    return record


def _n_classes(model_type: str, estimator: Any, per_row: Array) -> int:
    if model_type == "logistic_reg":
        return len(getattr(estimator, "classes_", ())) or max(2, per_row.shape[0])
    if model_type.endswith("_classifier"):
        return int(getattr(estimator, "classes", None) or 0)
    return 0


def _ranked(names: Sequence[str], values: Array) -> list[list[Any]]:
    """[feature, attribution] by attribution, largest first (ties by name)."""
    pairs = [[name, float(value)] for name, value in zip(names, values, strict=True)]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def _summed(columns: Array, layout: Sequence[tuple[str, int]]) -> Array:
    """[..., matrix columns] -> [..., features]: each feature's columns added up."""
    starts = np.cumsum([0] + [width for _, width in layout])[:-1]
    out = np.zeros((*columns.shape[:-1], len(layout)))
    for i, (start, (_, width)) in enumerate(zip(starts, layout, strict=True)):
        if width:
            out[..., i] = columns[..., start : start + width].sum(axis=-1)
    return out


def _linear(coef: Array, layout: Sequence[tuple[str, int]], x: Array) -> Array:
    """[outputs, rows, features]: coef_kj * x_j summed over each feature's columns."""
    out = np.empty((coef.shape[0], len(x), len(layout)))
    for at in range(0, len(x), CHUNK):
        part = np.asarray(x[at : at + CHUNK])
        for k in range(coef.shape[0]):
            out[k, at : at + len(part)] = _summed(part * coef[k], layout)
    return out


def _linear_margins(estimator: Any, x: Array) -> Array:
    return np.asarray(estimator.decision_function(x), dtype=np.float64)


def _spread(x: Array, most: int) -> Array:
    if len(x) <= most:
        return x
    return x[np.linspace(0, len(x) - 1, most).astype(np.int64)]


def _trees(
    estimator: Any, layout: Sequence[tuple[str, int]], x: Array, approximate: bool
) -> tuple[Array, Array | None]:
    """TreeSHAP per row: ([outputs, rows, features], the margins per class or None)."""
    import xgboost

    contribs = np.asarray(
        estimator.booster.predict(
            xgboost.DMatrix(x), pred_contribs=True, approx_contribs=approximate
        ),
        dtype=np.float64,
    )
    if contribs.ndim == 2:  # regression, binary: [rows, features + bias]
        return _summed(contribs[:, :-1], layout)[None], None
    margins = contribs.sum(axis=2)  # [rows, classes]
    per_class = np.transpose(contribs[:, :, :-1], (1, 0, 2))
    return _summed(per_class, layout), margins


# -- advanced weights ------------------------------------------------------------------------


def _advanced(
    model_type: str,
    opts: Mapping[str, Any],
    estimator: Any,
    x: Array,
    y: Array | None,
    classes: Sequence[Any] | None,
) -> dict[str, Any]:
    coef = getattr(estimator, "coef_", None)
    if coef is None or y is None:
        return {"unavailable": f"its estimator ({type(estimator).__name__}) has no weights"}
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    if coef.shape[0] != 1:
        return {"unavailable": "multiclass logistic regression models are not supported"}
    if opts.get("category_encoding_method") != "DUMMY_ENCODING":
        return {
            "unavailable": "it was not trained with CATEGORY_ENCODING_METHOD = 'DUMMY_ENCODING'"
        }
    if float(opts.get("l1_reg") or 0.0) > 0:
        return {"unavailable": "it was trained with L1_REG above 0"}
    n, width = x.shape
    if width >= MAX_CARDINALITY:
        return {
            "unavailable": f"its {width} feature columns are too many: the total cardinality of"
            f" the features must be less than {MAX_CARDINALITY}"
        }
    intercept = float(
        np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64).ravel()[0]
    )
    design = np.empty((n, width + 1))
    design[:, 0] = 1.0
    design[:, 1:] = x
    beta = np.concatenate([[intercept], coef[0]])
    penalty = np.full(width + 1, float(opts.get("l2_reg") or 0.0))
    penalty[0] = 0.0  # (the intercept is not penalized)
    if model_type == "linear_reg":
        residuals = np.asarray(y, dtype=np.float64) - design @ beta
        freedom = n - (width + 1)
        if freedom <= 0:
            return {"unavailable": f"its {n} training rows are too few for {width + 1} weights"}
        sigma2 = float(residuals @ residuals) / freedom
        hessian = design.T @ design
        scale = sigma2
    else:
        weights = _class_weights(opts, np.asarray(y, dtype=np.int64), list(classes or []))
        if weights is None:
            return {"unavailable": "its class weights name labels it does not have"}
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        hessian = design.T @ (design * (weights * p * (1.0 - p))[:, None])
        scale = 1.0
    hessian[np.diag_indices_from(hessian)] += penalty
    if np.linalg.matrix_rank(hessian) < width + 1:
        return {
            "unavailable": "its features are collinear (a constant column, or categories that"
            " always go together): the weights' standard errors are not defined"
        }
    covariance = scale * np.linalg.inv(hessian)
    variances = np.diag(covariance)
    errors_ = np.sqrt(np.where(variances >= 0, variances, np.nan))
    return {
        "rows": n,
        "intercept_standard_error": float(errors_[0]),
        "standard_errors": [float(e) for e in errors_[1:]],
    }


def _class_weights(opts: Mapping[str, Any], y: Array, classes: list[Any]) -> Array | None:
    """Each training row's weight in the logistic fit: AUTO_CLASS_WEIGHTS' n / (classes x
    count), CLASS_WEIGHTS', or 1."""
    from sqlml.ml import models

    if opts.get("auto_class_weights"):
        counts = np.bincount(y, minlength=2).astype(np.float64)
        per_class = np.where(counts > 0, len(y) / (2 * np.maximum(counts, 1)), 0.0)
        return np.asarray(per_class[y])
    if opts.get("class_weights"):
        try:
            return np.asarray(models.class_weight_vector(opts["class_weights"], classes)[y])
        except errors.Error:
            return None
    return np.ones(len(y))
