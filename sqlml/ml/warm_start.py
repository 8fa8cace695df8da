"""WARM_START (BigQuery ML's option): ``CREATE OR REPLACE MODEL m OPTIONS (warm_start = TRUE, ...)
AS query`` trains the model again from the weights of the version that serves (issue 15).

As BigQuery documents it: the options of that version are used unless given again; the model
type, the label and the training data's columns stay the same (42804 otherwise); the new version
is another training run (ML.TRAINING_INFO's ``training_run`` counts up) whose iterations count
from 0 again. For the model types BigQuery takes it for and sqlml trains by iterating:

- ``logistic_reg``: L-BFGS (or SAGA) starts from the serving version's weights;
- ``kmeans``: Lloyd's iterations start from its centroids (``num_clusters`` stays);
- ``linear_reg``: the normal equations have no start, so the model is what a training without
  warm start gives (as on BigQuery, a new training run); with BATCH_GRADIENT_DESCENT, SGD starts
  from the weights.

Other model types refuse it with 0A000 (models.py: pending), as does ``incremental = TRUE``
(whose RETRAIN is the way to add rows).

The weights are read from the serving version's graph (functions/weights.py reads them so for
ML.WEIGHTS: on the features as given) and put on this training's features: a numeric column's
weight times its new standard deviation (and its mean into the intercept), a category's by its
name (0 for a category the version had not seen). k-means centroids go back from the old
standardization to the values and on to the new one. NULLs are imputed with the new means:
the start is near the old model, not equal to it, which a start need not be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml.features import NULL_CATEGORY, InputColumn, NumericAuto, OneHot, Preprocessor
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

Array = np.ndarray[Any, Any]
OPTION = "warm_start"


def options(
    previous: ModelVersion, given: Mapping[str, OptionValue], as_written: Any
) -> dict[str, OptionValue]:
    """The serving version's options, those ``given`` again replacing theirs (BigQuery: "unless
    explicitly overridden"). 42804 for another model type or label."""
    merged: dict[str, OptionValue] = {k: as_written(v) for k, v in previous.options.items()}
    for name in ("model_type", "input_label_cols"):
        if name in given and name in merged and _norm(given[name]) != _norm(merged[name]):
            raise errors.DatatypeMismatch(
                f"WARM_START keeps the model's {name.upper()}: version {previous.version} has"
                f" {merged[name]!r}, not {given[name]!r}",
                hint="CREATE OR REPLACE MODEL without warm_start trains a new kind of model",
            )
    merged.update(given)
    if merged.get("incremental") is True:
        raise errors.FeatureNotSupported(
            "WARM_START does not go with incremental = TRUE: ALTER MODEL ... RETRAIN adds rows"
        )
    return merged


def _norm(value: OptionValue) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, tuple | list):
        return tuple(_norm(v) for v in value)
    return value


def check(previous: ModelVersion, inputs: list[InputColumn], label: str | None) -> None:
    """The training data's columns are the serving version's (42804)."""
    before = {(c.name, c.kind) for c in previous.inputs}
    now = {(c.name, c.kind) for c in inputs}
    was = (previous.label or {}).get("name")
    if before != now or (was or None) != (label or None):
        raise errors.DatatypeMismatch(
            f"WARM_START keeps the training data's columns: version {previous.version} was"
            f" trained on {_listed(before)}, this query gives {_listed(now)}",
            hint="CREATE OR REPLACE MODEL without warm_start trains on new columns",
        )


def _listed(columns: set[tuple[str, str]]) -> str:
    return ", ".join(f"{n} ({k})" for n, k in sorted(columns))


def prime(
    estimator: Any, previous: ModelVersion, pre: Preprocessor, opts: Mapping[str, Any]
) -> bool:
    """Starts ``estimator`` from ``previous``'s weights or centroids, on ``pre``'s features;
    whether it could (False: the estimator has no start, a closed form)."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor

    if isinstance(estimator, KMeans):
        centroids = _centroids(previous, pre)
        if opts.get("num_clusters") is None:  # (the default depends on the rows: keep k)
            estimator.n_clusters = len(centroids)
        if len(centroids) != estimator.n_clusters:
            raise errors.InvalidParameterValue(
                f"WARM_START keeps the number of clusters: version {previous.version} has"
                f" {len(centroids)}, not {estimator.n_clusters}"
            )
        from sqlml.ml.kmeans_cosine import CosineKMeans, normalized

        estimator.init = normalized(centroids) if isinstance(estimator, CosineKMeans) else centroids
        estimator.n_init = 1
        return True
    if not isinstance(estimator, LogisticRegression | SGDClassifier | SGDRegressor):
        return False
    from sqlml.functions.weights import weights

    folded, bias = weights(previous, standardize=False)  # [features, outputs], [outputs]
    coef, intercept = _onto(previous, pre, folded, bias)
    if isinstance(estimator, SGDRegressor):
        coef, intercept = coef[0], intercept
    estimator.warm_start = True
    estimator.coef_, estimator.intercept_ = coef, intercept
    return True


def _onto(
    previous: ModelVersion, pre: Preprocessor, folded: Array, bias: Array
) -> tuple[Array, Array]:
    """The linear layer on the features as given, put on ``pre``'s (standardized) features:
    (coef [outputs, features], intercept [outputs])."""
    from sqlml.functions import layout

    by_name: dict[tuple[str, Any], Array] = {}
    for feature in layout.features(previous):
        if feature.categories is None:
            by_name[feature.name, None] = folded[feature.start]
        else:
            for i, category in enumerate(feature.categories):
                by_name[feature.name, category] = folded[feature.start + i]
    outputs = folded.shape[1]
    zero = np.zeros(outputs)
    columns: list[Array] = []
    intercept = bias.astype(np.float64).copy()
    for encoder in pre.auto:
        if isinstance(encoder, NumericAuto):
            raw = by_name.get((encoder.name, None), zero)
            if encoder.std is not None:
                columns.append(raw * encoder.std)
                intercept = intercept + raw * encoder.mean
            else:
                columns.append(raw)
        elif isinstance(encoder, OneHot):
            for category in encoder.categories:
                shown = None if category == NULL_CATEGORY else category
                columns.append(by_name.get((encoder.name, shown), zero))
        else:  # (label encoding: one column, as is)
            columns.append(by_name.get((encoder.name, None), zero))
    columns += [by_name.get((name, None), zero) for name in pre.finals]
    matrix = np.array(columns).reshape(len(columns), outputs)
    return matrix.T.copy(), intercept


def _centroids(previous: ModelVersion, pre: Preprocessor) -> Array:
    """The previous centroids (in its preprocessed space) in ``pre``'s."""
    from sqlml.functions import layout

    stored = np.asarray(previous.training_info.get("centroids") or [], dtype=np.float64)
    if not stored.size:
        raise errors.ObjectNotInPrerequisiteState(
            f"version {previous.version} recorded no centroids to start from",
            hint="CREATE OR REPLACE MODEL without warm_start",
        )
    values: dict[tuple[str, Any], Array] = {}
    for feature in layout.features(previous):
        if feature.categories is None:
            column = stored[:, feature.start]
            if feature.stddev is not None and feature.mean is not None:
                column = column * feature.stddev + feature.mean  # (back to the values)
            values[feature.name, None] = column
        else:
            for i, category in enumerate(feature.categories):
                values[feature.name, category] = stored[:, feature.start + i]
    zero = np.zeros(len(stored))
    columns: list[Array] = []
    for encoder in pre.auto:
        if isinstance(encoder, NumericAuto):
            column = values.get((encoder.name, None), zero)
            if encoder.std is not None:
                column = (column - encoder.mean) / encoder.std
            columns.append(column)
        elif isinstance(encoder, OneHot):
            for category in encoder.categories:
                shown = None if category == NULL_CATEGORY else category
                columns.append(values.get((encoder.name, shown), zero))
        else:
            columns.append(values.get((encoder.name, None), zero))
    columns += [values.get((name, None), zero) for name in pre.finals]
    return np.column_stack(columns)
