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

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml.features import NULL_CATEGORY, InputColumn, NumericAuto, OneHot, Preprocessor
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:  # (functions and the store are above the ML core: layering, test_ml_core)
    from sqlml.functions.layout import Feature
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
    values = _by_name(previous, lambda i: folded[i], lambda feature, row: row)
    intercept = bias.astype(np.float64).copy()

    def standardized(encoder: NumericAuto, raw: Array) -> Array:
        nonlocal intercept
        if encoder.std is None:
            return raw
        intercept = intercept + raw * encoder.mean  # (x = std z + mean)
        return raw * encoder.std

    columns = _placed(pre, values, np.zeros(folded.shape[1]), standardized)
    return np.array(columns).reshape(len(columns), folded.shape[1]).T.copy(), intercept


def _centroids(previous: ModelVersion, pre: Preprocessor) -> Array:
    """The previous centroids (in its preprocessed space) in ``pre``'s."""
    stored = np.asarray(previous.training_info.get("centroids") or [], dtype=np.float64)
    if not stored.size:
        raise errors.ObjectNotInPrerequisiteState(
            f"version {previous.version} recorded no centroids to start from",
            hint="CREATE OR REPLACE MODEL without warm_start",
        )

    def values_of(feature: Feature, column: Array) -> Array:  # (back to the values)
        if feature.stddev is None or feature.mean is None:
            return column
        back: Array = column * feature.stddev + feature.mean
        return back

    def standardized(encoder: NumericAuto, column: Array) -> Array:
        return column if encoder.std is None else (column - encoder.mean) / encoder.std

    values = _by_name(previous, lambda i: stored[:, i], values_of)
    return np.column_stack(_placed(pre, values, np.zeros(len(stored)), standardized))


def _by_name(
    previous: ModelVersion,
    part: Callable[[int], Array],
    numeric: Callable[[Feature, Array], Array],
) -> dict[tuple[str, Any], Array]:
    """The previous version's numbers per feature column (``part(i)``: column i's), by the
    column's name and, for one-hot, its category (NULL's as None); a numeric column's through
    ``numeric``."""
    from sqlml.functions import layout  # (lazy: see TYPE_CHECKING above)

    found: dict[tuple[str, Any], Array] = {}
    for feature in layout.features(previous):
        if feature.categories is None:
            found[feature.name, None] = numeric(feature, part(feature.start))
        else:
            for i, category in enumerate(feature.categories):
                found[feature.name, category] = part(feature.start + i)
    return found


def _placed(
    pre: Preprocessor,
    values: dict[tuple[str, Any], Array],
    zero: Array,
    numeric: Callable[[NumericAuto, Array], Array],
) -> list[Array]:
    """Each of ``pre``'s feature columns from ``values`` (0 for what the previous version had
    not), in the order of its feature matrix; a numeric column's through ``numeric``."""
    columns: list[Array] = []
    for encoder in pre.auto:
        if isinstance(encoder, NumericAuto):
            columns.append(numeric(encoder, values.get((encoder.name, None), zero)))
        elif isinstance(encoder, OneHot):
            for category in encoder.categories:
                shown = None if category == NULL_CATEGORY else category
                columns.append(values.get((encoder.name, shown), zero))
        else:  # (label encoding: one column, as is)
            columns.append(values.get((encoder.name, None), zero))
    return columns + [values.get((name, None), zero) for name in pre.finals]
