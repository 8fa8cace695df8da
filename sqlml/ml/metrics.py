"""ML.EVALUATE's metric columns, as BigQuery ML names them, computed by scikit-learn.

Classification: precision, recall, accuracy, f1_score, log_loss, roc_auc. Binary models use the
positive class (the second label in sorted order) at the threshold; multiclass models macro-average.
Regression: mean_absolute_error, mean_squared_error, mean_squared_log_error, median_absolute_error,
r2_score, explained_variance. K-means: davies_bouldin_index, mean_squared_distance.

median_absolute_error is BigQuery's, not scikit-learn's: BigQuery takes the median from its
(approximate, exact at these sizes) quantiles, which give the lower median, the element at 0-based
index ceil(n/2) - 1 of the sorted absolute errors, never the mean of the two middle ones. On the
penguins tutorial (342 rows) that is 173.080816, as BigQuery prints, where the midpoint would be
174.998647.
A metric that is not defined for the data (e.g. roc_auc with one class present) is NULL.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm

Array = np.ndarray[Any, Any]

REGRESSION = (
    "mean_absolute_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "median_absolute_error",
    "r2_score",
    "explained_variance",
)
CLASSIFICATION = ("precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc")
CLUSTERING = ("davies_bouldin_index", "mean_squared_distance")


def _safe(fn: Callable[[], float]) -> float | None:
    """A metric, or None where scikit-learn says it is undefined for these rows."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(fn())
    except ValueError:
        return None
    return None if np.isnan(value) else value


def regression(y: Array, predicted: Array) -> dict[str, float | None]:
    msle = None
    if (y > -1).all() and (predicted > -1).all():
        msle = _safe(lambda: skm.mean_squared_log_error(y, predicted))
    return {
        "mean_absolute_error": _safe(lambda: skm.mean_absolute_error(y, predicted)),
        "mean_squared_error": _safe(lambda: skm.mean_squared_error(y, predicted)),
        "mean_squared_log_error": msle,
        "median_absolute_error": lower_median(np.abs(y - predicted)),
        "r2_score": _safe(lambda: skm.r2_score(y, predicted)),
        "explained_variance": _safe(lambda: skm.explained_variance_score(y, predicted)),
    }


def lower_median(values: Array) -> float | None:
    """The element at 0-based index ceil(n/2) - 1 of the sorted values (BigQuery's median)."""
    if len(values) == 0:
        return None
    value = float(np.partition(values, (len(values) - 1) // 2)[(len(values) - 1) // 2])
    return None if np.isnan(value) else value


def classification(
    y: Array, probs: Array, n_classes: int, threshold: float
) -> dict[str, float | None]:
    """``y``: class indexes 0..n_classes-1; ``probs``: [n, n_classes] probabilities."""
    labels = list(range(n_classes))
    if n_classes == 2:
        predicted = (probs[:, 1] > threshold).astype(np.int64)
        kw: dict[str, Any] = {"average": "binary", "pos_label": 1, "zero_division": 0}
        auc = _safe(lambda: skm.roc_auc_score(y, probs[:, 1]))
    else:
        predicted = np.argmax(probs, axis=1)
        kw = {"average": "macro", "labels": labels, "zero_division": 0}
        auc = _safe(
            lambda: skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels)
        )
    return {
        "precision": _safe(lambda: skm.precision_score(y, predicted, **kw)),
        "recall": _safe(lambda: skm.recall_score(y, predicted, **kw)),
        "accuracy": _safe(lambda: skm.accuracy_score(y, predicted)),
        "f1_score": _safe(lambda: skm.f1_score(y, predicted, **kw)),
        "log_loss": _safe(lambda: skm.log_loss(y, probs, labels=labels)),
        "roc_auc": auc,
    }


def clustering(
    features: Array, cluster: Array, distances: Array, cosine: bool = False
) -> dict[str, float | None]:
    """``cluster``: 0-based nearest centroid; ``distances``: [n, k] distances in the model's
    DISTANCE_TYPE (Euclidean, or 1 - cosine similarity when ``cosine``), as is the
    Davies-Bouldin index (cosine_davies_bouldin)."""
    nearest = distances[np.arange(len(cluster)), cluster]
    index = cosine_davies_bouldin if cosine else skm.davies_bouldin_score
    return {
        "davies_bouldin_index": _safe(lambda: index(features, cluster)),
        "mean_squared_distance": _safe(lambda: float(np.mean(nearest**2))),
    }


def cosine_davies_bouldin(features: Array, cluster: Array) -> float:
    """scikit-learn's davies_bouldin_score with cosine distance (1 - cosine similarity) in
    place of the Euclidean one, for a COSINE k-means model: each cluster's center is the
    normalized mean of its normalized rows (spherical k-means' centroid), its scatter S_i the
    mean distance of its rows to it; the index is the mean over clusters of
    max_j (S_i + S_j) / d(c_i, c_j). Conventions as scikit-learn's: 2 <= clusters < rows (else
    undefined), centers at distance 0 do not count, and 0.0 when every S_i or every center
    distance is 0."""
    labels, codes = np.unique(cluster, return_inverse=True)
    if not 1 < len(labels) < len(features):
        raise ValueError("the Davies-Bouldin index needs 2 <= clusters < rows")
    from sqlml.ml.kmeans_cosine import normalized

    unit = normalized(features)
    centers = normalized(np.array([unit[codes == k].mean(axis=0) for k in range(len(labels))]))
    scatter = np.array([np.mean(1.0 - unit[codes == k] @ centers[k]) for k in range(len(labels))])
    apart = 1.0 - centers @ centers.T
    if np.allclose(scatter, 0) or np.allclose(apart, 0):
        return 0.0
    apart[np.isclose(apart, 0)] = np.inf
    ratios = (scatter[:, None] + scatter[None, :]) / apart
    np.fill_diagonal(ratios, -np.inf)
    return float(np.mean(np.max(ratios, axis=1)))
