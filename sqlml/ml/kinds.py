"""Model kinds, as registered entries: what a kind of model (regressor, classifier, clusterer,
and the kinds issue 13 adds) owns on the training side, in one place.

A kind decides the canonical outputs of a stored graph (the names the engine and the scoring code
read), their ONNX types, what the graph must agree with the fitted estimator on before anything
is stored (the parity check), the metrics ML.EVALUATE reports, and what else a version records
(k-means' centroids). train.py looks the kind up and asks it; adding a kind is one entry here (or
``register`` from outside, STYLE.md rule 5), not a branch in each of those places.

(The scoring side, ML.PREDICT's columns and the SQL per kind, is still dispatched in scoring.py;
moving it under the same entries is the next step of issue 13.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml import models

Array = np.ndarray[Any, Any]

# ONNX element types (onnx.TensorProto's numbers: importing onnx here would load it for every
# reader of the registry)
DOUBLE, INT64 = 11, 7

OutputTypes = dict[str, tuple[int, list[Any]]]


@dataclass(frozen=True)
class Kind:
    """One kind of model, as training sees it."""

    name: str
    # skl2onnx's output names -> the stored graph's canonical names
    onnx_outputs: Mapping[str, str]
    # the canonical outputs' ONNX (element type, shape), for a fitted estimator
    output_types: Callable[[Any], OutputTypes]
    # what the graph's outputs must equal on the preprocessed rows x (to PARITY_TOLERANCE), and
    # the labels it must give exactly (None: no label output to compare)
    expected: Callable[[Any, Array], tuple[dict[str, Array], Array | None]]
    # ML.EVALUATE's metrics from the graph's own outputs, the labels y and the rows x
    metrics: Callable[[dict[str, Array], Array | None, Array], dict[str, Any]]
    # skl2onnx options for the estimator (None: its defaults)
    skl2onnx_options: Mapping[str, Any] | None = None
    # whether its label is a number (regression) rather than classes
    numeric_label: bool = False
    # whether the graph also returns the preprocessed rows ("features": k-means evaluates in the
    # space its distances are measured in)
    returns_features: bool = False
    # a clusterer's centroids, recorded with the version (ML.CENTROIDS, training info)
    centroids: Callable[[Any], list[list[float]]] | None = None


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Adds (or replaces) a kind; returns it."""
    _KINDS[kind.name] = kind
    return kind


def kind(name: str) -> Kind:
    found = _KINDS.get(name)
    if found is None:
        raise errors.InternalError(f"no model kind {name!r} is registered")
    return found


# -- the kinds sqlml has ----------------------------------------------------------------------


def _regression_metrics(outputs: dict[str, Array], y: Array | None, x: Array) -> dict[str, Any]:
    from sqlml.ml import metrics  # (scikit-learn: only once a model is evaluated)

    assert y is not None
    return metrics.regression(y, outputs["value"].reshape(-1))


def _classification_metrics(outputs: dict[str, Array], y: Array | None, x: Array) -> dict[str, Any]:
    from sqlml.ml import metrics

    assert y is not None
    probabilities = outputs["probabilities"]
    return metrics.classification(y, probabilities, probabilities.shape[1], 0.5)


def _clustering_metrics(outputs: dict[str, Array], y: Array | None, x: Array) -> dict[str, Any]:
    from sqlml.ml import metrics

    return metrics.clustering(x, outputs["label"], outputs["distances"])


REGRESSOR = register(
    Kind(
        name=models.REGRESSOR,
        onnx_outputs={"variable": "value"},
        output_types=lambda estimator: {"value": (DOUBLE, [None, 1])},
        expected=lambda estimator, x: ({"value": estimator.predict(x).reshape(-1, 1)}, None),
        metrics=_regression_metrics,
        numeric_label=True,
    )
)

CLASSIFIER = register(
    Kind(
        name=models.CLASSIFIER,
        onnx_outputs={"label": "label", "probabilities": "probabilities"},
        output_types=lambda estimator: {
            "label": (INT64, [None]),
            "probabilities": (DOUBLE, [None, len(estimator.classes_)]),
        },
        expected=lambda estimator, x: (
            {"probabilities": estimator.predict_proba(x)},
            estimator.predict(x),
        ),
        metrics=_classification_metrics,
        skl2onnx_options={"zipmap": False},
    )
)

CLUSTERER = register(
    Kind(
        name=models.CLUSTERER,
        onnx_outputs={"label": "label", "scores": "distances"},
        output_types=lambda estimator: {
            "label": (INT64, [None]),
            "distances": (DOUBLE, [None, len(estimator.cluster_centers_)]),
        },
        expected=lambda estimator, x: ({"distances": estimator.transform(x)}, estimator.predict(x)),
        metrics=_clustering_metrics,
        returns_features=True,
        centroids=lambda estimator: [[float(v) for v in row] for row in estimator.cluster_centers_],
    )
)
