"""Model kinds, as registered entries: everything that depends on the kind of a model (regressor,
classifier, clusterer, and the kinds issue 13 adds), in one place.

Training side: the canonical outputs of a stored graph (the names scoring reads), their ONNX
types, what the graph must agree with the fitted estimator on before anything is stored (the
parity check), the metrics training records, skl2onnx's options, and what else a version records
(k-means' centroids). train.py looks the kind up and asks it.

Scoring side: which graph outputs are the *raw outputs* and in what order (the runtime UDFs
return them flattened per row; compiled scoring compiles them to SQL), how many numbers they are,
ML.PREDICT's column names and the SQL that builds them from the raw outputs per dialect (so their
types per engine), ML.SCORE's value, the PostgreSQL scoring function's return type, whether and
how a view's ML.PREDICT goes through the model's prediction function, and ML.EVALUATE over rows.
scoring.py, views.py, engine.py and the PostgreSQL server ask the kind; none of them branches on
it.

Both halves live in one entry so that a kind is one ``register`` call, from inside or outside the
package (STYLE.md rule 5): a third party registers a ``Kind`` here and a model type of that kind
in models.py, nothing else. The scoring half needs no engine-side type: it is sqlglot trees
over a ``Version`` (the protocol of what scoring reads of a stored version, which
sqlml.store.ModelVersion satisfies), so it lives here with the training half rather than in a
second registry outside sqlml.ml, and the ML core still loads neither the engine, the grammar
nor the store. The built-in kinds' SQL is in predict_sql.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlglot import exp

from sqlml import errors
from sqlml.ml import models, predict_sql

if TYPE_CHECKING:  # (pyarrow loads when rows are evaluated)
    import pyarrow as pa

Array = np.ndarray[Any, Any]

# ONNX element types (onnx.TensorProto's numbers: importing onnx here would load it for every
# reader of the registry)
DOUBLE, INT64 = 11, 7

OutputTypes = dict[str, tuple[int, list[Any]]]


class Version(Protocol):
    """What scoring reads of a stored version (sqlml.store.ModelVersion is one)."""

    @property
    def label(self) -> dict[str, Any] | None:  # {"name", "type", "classes"}; None: unsupervised
        ...

    @property
    def training_info(self) -> dict[str, Any]: ...

    @property
    def options(self) -> dict[str, Any]: ...


# ML.PREDICT's columns from the raw outputs: (version, raw outputs, threshold, dialect)
Columns = Callable[[Version, list[exp.Expr], float | None, str], list[exp.Expr]]
# ML.EVALUATE over rows: (version, the graph's outputs on the rows, the label column or None,
# threshold) -> the metrics
EvaluateRows = Callable[
    [Version, dict[str, Array], "pa.ChunkedArray | None", float | None], dict[str, float | None]
]


@dataclass(frozen=True)
class ViewPrediction:
    """How ML.PREDICT in a view goes through the model's prediction function (views.py): the
    kind's first ML.PREDICT column (a predicted label, a centroid id) travels as the first
    element of its second (an ARRAY<STRUCT>), so that a new version with other labels or
    clusters never leaves a view with the old ones. A kind with this has exactly two ML.PREDICT
    columns."""

    # the PostgreSQL composite type (in schema sqlml) of the array's elements
    element: Callable[[Version], str]
    # the element's field that carries the first column in the head element
    head_field: str
    # the first column from the head's field and the array (version, head, array, threshold,
    # dialect); None: the head's field as it is
    head: Callable[[Version, exp.Expr, exp.Expr, float | None, str], exp.Expr] | None = None


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One kind of model: its training half, then its scoring half."""

    name: str
    # skl2onnx's output names -> the stored graph's canonical names
    onnx_outputs: Mapping[str, str]
    # the canonical outputs' ONNX (element type, shape), for a fitted estimator
    output_types: Callable[[Any], OutputTypes]
    # what the graph's outputs must equal on the preprocessed rows x (to PARITY_TOLERANCE), and
    # the labels it must give exactly (None: no label output to compare)
    expected: Callable[[Any, Array], tuple[dict[str, Array], Array | None]]
    # ML.EVALUATE's metrics from the graph's own outputs, the labels y, the rows x and the
    # model's OPTIONS (k-means' DISTANCE_TYPE)
    metrics: Callable[[dict[str, Array], Array | None, Array, Mapping[str, Any]], dict[str, Any]]
    # skl2onnx options for the estimator (None: its defaults)
    skl2onnx_options: Mapping[str, Any] | None = None
    # whether its label is a number (regression) rather than classes
    numeric_label: bool = False
    # whether the graph also returns the preprocessed rows ("features": k-means evaluates in the
    # space its distances are measured in)
    returns_features: bool = False
    # a clusterer's centroids, recorded with the version (ML.CENTROIDS, training info)
    centroids: Callable[[Any], list[list[float]]] | None = None
    # whether it trains on a label column (then a version records the label's name, type and
    # classes)
    supervised: bool = True
    # CREATE MODEL's deploy = 'if_better': the metrics a gate may compare (True when higher is
    # better) and the one it compares when deploy_metric is not given (None: no gated deploys)
    gate_metrics: Mapping[str, bool] = field(default_factory=dict)
    gate_default: str | None = None

    # -- scoring --
    # the graph outputs that are the raw outputs, in order; each row's raw outputs are their
    # values flattened (``[label, p0, p1, ...]`` for a classifier). (The runtime scorers and
    # the compiled SQL are cached by the graph's sha256; train.py stamps the kind into the
    # graph, so two kinds never share one.) Empty: every output of the stored graph, in its
    # order (imported models, whose outputs are the graph's own: ml/imported.py).
    raw_outputs: tuple[str, ...]
    # how many numbers the raw outputs of one row are
    width: Callable[[Version], int]
    # ML.PREDICT's column names (for the duplicate-name check and views)
    output_names: Callable[[Version], list[str]]
    # ML.PREDICT's columns, each named, built from the raw output expressions for a dialect
    # ("duckdb" or "postgres"): their SQL decides their types on each engine
    columns: Columns
    # ML.SCORE's one value from the raw outputs (also the PostgreSQL scoring function's body)
    score: Callable[[Version, list[exp.Expr]], exp.Expr]
    # the PostgreSQL scoring function's return type (ML.SCORE's value's type)
    pg_score_type: Callable[[Version], str]
    # ML.EVALUATE over rows
    evaluate_rows: EvaluateRows
    # ML.PREDICT in a view through the model's prediction function; None: a view builds the
    # columns from the raw outputs as a query does, which on PostgreSQL (where a view reads the
    # scoring function, ML.SCORE's value) needs one raw output that is ML.SCORE's value
    view: ViewPrediction | None = None


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Adds (or replaces) a kind; returns it."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Removes a kind (a plugin unloading, a test cleaning up); models of it no longer score."""
    _KINDS.pop(name, None)


def kind(name: str) -> Kind:
    found = _KINDS.get(name)
    if found is None:
        # the kinds of model types in their own modules (pca.py) register when those load: a
        # process that scores before it trains (PostgreSQL's server) loads them here
        models._builtins()
        found = _KINDS.get(name)
    if found is None:
        raise errors.InternalError(f"no model kind {name!r} is registered")
    return found


# -- the kinds sqlml has ----------------------------------------------------------------------


def _regression_metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    from sqlml.ml import metrics  # (scikit-learn: only once a model is evaluated)

    assert y is not None
    return metrics.regression(y, outputs["value"].reshape(-1))


def _classification_metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    from sqlml.ml import metrics

    assert y is not None
    probabilities = outputs["probabilities"]
    return metrics.classification(y, probabilities, probabilities.shape[1], 0.5)


def _clustering_metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    from sqlml.ml import metrics

    cosine = options.get("distance_type") == "COSINE"
    return metrics.clustering(x, outputs["label"], outputs["distances"], cosine)


# ML.EVALUATE over rows: the label column as Arrow (NULL labels are left out)


def _evaluate_regression(
    version: Version, outputs: dict[str, Array], y: pa.ChunkedArray | None, threshold: float | None
) -> dict[str, float | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from sqlml.ml import metrics

    assert y is not None
    keep = np.asarray(pc.is_valid(y).to_numpy(zero_copy_only=False), dtype=bool)
    truth = np.asarray(pc.cast(y, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return metrics.regression(truth[keep], np.asarray(outputs["value"]).reshape(-1)[keep])


def _evaluate_classification(
    version: Version, outputs: dict[str, Array], y: pa.ChunkedArray | None, threshold: float | None
) -> dict[str, float | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from sqlml.ml import metrics

    assert y is not None
    assert version.label is not None
    classes = version.label["classes"]
    index = pc.index_in(y, value_set=pa.array(classes, type=y.type))
    keep = np.asarray(pc.is_valid(index).to_numpy(zero_copy_only=False), dtype=bool)
    truth = np.asarray(pc.fill_null(index, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    cut = 0.5 if threshold is None else threshold
    probabilities = np.asarray(outputs["probabilities"])[keep]
    return metrics.classification(truth[keep], probabilities, len(classes), cut)


def _evaluate_clustering(
    version: Version, outputs: dict[str, Array], y: pa.ChunkedArray | None, threshold: float | None
) -> dict[str, float | None]:
    from sqlml.ml import metrics

    cosine = version.options.get("distance_type") == "COSINE"
    return metrics.clustering(outputs["features"], outputs["label"], outputs["distances"], cosine)


def _one(version: Version) -> int:
    return 1


def _first(version: Version, raw: list[exp.Expr]) -> exp.Expr:
    return raw[0]


def _double_precision(version: Version) -> str:
    return "DOUBLE PRECISION"


def _bigint(version: Version) -> str:
    return "BIGINT"


def _clusterer_names(version: Version) -> list[str]:
    return ["centroid_id", "nearest_centroids_distance"]


def _centroid_distance(version: Version) -> str:
    return predict_sql.PG_CENTROID_DISTANCE


REGRESSOR = register(
    Kind(
        name=models.REGRESSOR,
        onnx_outputs={"variable": "value"},
        output_types=lambda estimator: {"value": (DOUBLE, [None, 1])},
        expected=lambda estimator, x: ({"value": estimator.predict(x).reshape(-1, 1)}, None),
        metrics=_regression_metrics,
        numeric_label=True,
        raw_outputs=("value",),
        width=_one,
        output_names=predict_sql.regressor_names,
        columns=predict_sql.regressor_columns,
        score=_first,
        pg_score_type=_double_precision,
        evaluate_rows=_evaluate_regression,
        gate_metrics={
            "mean_absolute_error": False,
            "mean_squared_error": False,
            "mean_squared_log_error": False,
            "median_absolute_error": False,
            "r2_score": True,
            "explained_variance": True,
        },
        gate_default="r2_score",
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
        raw_outputs=("label", "probabilities"),
        width=predict_sql.classifier_width,
        output_names=predict_sql.classifier_names,
        columns=predict_sql.classifier_columns,
        score=predict_sql.classifier_score,
        pg_score_type=predict_sql.classifier_pg_score_type,
        evaluate_rows=_evaluate_classification,
        gate_metrics={
            "precision": True,
            "recall": True,
            "accuracy": True,
            "f1_score": True,
            "log_loss": False,
            "roc_auc": True,
        },
        gate_default="roc_auc",
        view=ViewPrediction(
            element=predict_sql.classifier_pg_element,
            head_field="label",
            head=predict_sql.classifier_view_head,
        ),
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
        supervised=False,
        raw_outputs=("label", "distances"),
        width=predict_sql.clusterer_width,
        output_names=_clusterer_names,
        columns=predict_sql.clusterer_columns,
        score=lambda version, raw: predict_sql.centroid_id(raw),
        pg_score_type=_bigint,
        evaluate_rows=_evaluate_clustering,
        gate_metrics={"davies_bouldin_index": False, "mean_squared_distance": False},
        gate_default="davies_bouldin_index",
        view=ViewPrediction(element=_centroid_distance, head_field="centroid_id"),
    )
)
