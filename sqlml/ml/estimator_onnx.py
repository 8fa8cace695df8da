"""ONNX for the estimators whose graph sqlml writes itself: linear models and k-means.

skl2onnx's graphs for these are correct but roundabout for scoring: a binary logistic regression
becomes two sigmoids over [-w, w] and an L1 normalization, and k-means distances come from
|x|^2 - 2x.c + |c|^2, which can dip below zero and give NaN. Written directly:

- linear models: z = X W' + b' where the standardization of the numeric features is folded into
  W' and b' (X holds the imputed, unscaled features); regression outputs z, binary classification
  sigmoid(z) and 1 - sigmoid(z) with label z > 0, multiclass softmax(z) with label argmax(z),
  exactly as scikit-learn's predict and predict_proba compute them;
- k-means: distance_k = sqrt(sum_j (x_j - c_kj)^2), label argmin; with DISTANCE_TYPE COSINE,
  distance_k = 1 - (x . c_k) / max(|x|, tiny) over the unit centroids c_k (kmeans_cosine.py).

Compiled to SQL this is one multiply-add per feature, the form measured to run near a plain scan.
Anything else goes through skl2onnx (train.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import (
    ElasticNet,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDRegressor,
)

from sqlml.ml.graph import GraphBuilder
from sqlml.ml.kmeans_cosine import CosineKMeans

Array = np.ndarray[Any, Any]
LINEAR = (LinearRegression, Ridge, ElasticNet, SGDRegressor, LogisticRegression)


def handles(estimator: Any) -> bool:
    return isinstance(estimator, (*LINEAR, KMeans))


def folds_scaling(estimator: Any) -> bool:
    """Whether the graph takes unscaled features (the scaling folded into the weights)."""
    return isinstance(estimator, LINEAR)


def build(
    g: GraphBuilder, features: str, estimator: Any, scale: Array, offset: Array
) -> dict[str, str]:
    """Adds the estimator's nodes; returns canonical output name -> tensor name.

    ``scale`` and ``offset`` describe the standardization left out of ``features``:
    standardized = features * scale + offset (ones and zeros where nothing was left out).
    """
    if isinstance(estimator, CosineKMeans):
        return _cosine(g, features, np.asarray(estimator.cluster_centers_, dtype=np.float64))
    if isinstance(estimator, KMeans):
        return _kmeans(g, features, np.asarray(estimator.cluster_centers_, dtype=np.float64))
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))  # [classes or 1, d]
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    weights = (coef * scale[None, :]).T  # [d, k]
    bias = intercept + coef @ offset
    z = g.op("Add", g.op("MatMul", features, g.const(weights)), g.const(bias[None, :]))
    if not isinstance(estimator, LogisticRegression):
        return {"value": z}
    if coef.shape[0] == 1:
        return _binary(g, z)
    return {
        "probabilities": g.op("Softmax", z, axis=1),
        "label": g.op("ArgMax", z, axis=1, keepdims=0),
    }


def _binary(g: GraphBuilder, z: str) -> dict[str, str]:
    p1 = g.op("Sigmoid", z)
    p0 = g.op("Sub", g.const([[1.0]]), p1)
    positive = g.op("Greater", z, g.const([[0.0]]))
    label = g.op("Cast", g.op("Squeeze", positive, g.const_exact(np.array([1]))), to=7)  # int64
    return {"probabilities": g.op("Concat", p0, p1, axis=1), "label": label}


def _kmeans(g: GraphBuilder, features: str, centers: Array) -> dict[str, str]:
    axes = g.const_exact(np.array([1]))
    parts = []
    for center in centers:
        diff = g.op("Sub", features, g.const(center[None, :]))
        parts.append(g.op("ReduceSumSquare", diff, axes, keepdims=1))
    squared = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    return {
        "distances": g.op("Sqrt", squared),
        "label": g.op("ArgMin", squared, axis=1, keepdims=0),
    }


def _cosine(g: GraphBuilder, features: str, centers: Array) -> dict[str, str]:
    axes = g.const_exact(np.array([1]))
    norm = g.op("Sqrt", g.op("ReduceSumSquare", features, axes, keepdims=1))
    tiny = g.const([[float(np.finfo(np.float64).tiny)]])
    # (x . c) / |x| rather than (x / |x|) . c: the norm once per centroid, not once per
    # feature, in the compiled SQL
    dots = g.op("MatMul", features, g.const(centers.T))
    distances = g.op("Sub", g.const([[1.0]]), g.op("Div", dots, g.op("Max", norm, tiny)))
    return {"distances": distances, "label": g.op("ArgMin", distances, axis=1, keepdims=0)}
