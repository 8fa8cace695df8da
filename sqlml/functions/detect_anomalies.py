"""ML.DETECT_ANOMALIES(MODEL m, STRUCT(c AS contamination), {(query) | TABLE t}) for kmeans, pca
and autoencoder models (BigQuery's IID anomaly detection), computed in the engine's SQL over the
rows (functions/graph_outputs.py).

A row is an anomaly when its target metric is above the (1 - c) quantile of the training rows'
metric, read from the quantiles recorded at training (ml/anomaly.py); contamination must be in
[0, 0.5] (22023 otherwise, or when the STRUCT does not give it).

Columns (BigQuery's):
- pca, autoencoder: is_anomaly BOOL, mean_squared_error FLOAT64 (the row's reconstruction error
  over its preprocessed features, as ML.RECONSTRUCTION_LOSS), then the input's columns;
- kmeans: is_anomaly BOOL, normalized_distance FLOAT64 (the smallest of the row's distances to
  each centroid divided by that cluster's radius), centroid_id INT64 (the centroid of that
  smallest normalized distance; the first of equals), then the input's columns.

Rows are required, as in BigQuery's syntax for these models (42601 without them); other model
types are 0A000 (BigQuery's time-series models, ARIMA_PLUS, are not in sqlml). A k-means model
trained before sqlml recorded its cluster radii is 0A000: train it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import OVER_ROWS, REQUIRED, Field, Function, Scored, register
from sqlml.functions import not_supported as refused
from sqlml.functions.graph_outputs import check_names, fenced, input_columns, rows_with
from sqlml.functions.reconstruction_loss import LEVEL, reconstructed, squared_error
from sqlml.ml import anomaly, pca
from sqlml.ml.predict_sql import double

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "DETECT_ANOMALIES"
MODEL_TYPES = ("kmeans", "pca", "autoencoder")
METRIC, CENTROID = "__sqlml_metric", "__sqlml_centroid"
MEASURED = "__sqlml_metrics"


def contamination(value: Any) -> None:
    if not 0 <= value <= 0.5:
        raise errors.InvalidParameterValue(
            f"contamination must be a number in [0, 0.5], not {value!r}"
        )


def _threshold(version: ModelVersion, settings: Mapping[str, Any]) -> float:
    given = settings.get("contamination")
    if given is None:
        raise errors.InvalidParameterValue(
            f"ML.{NAME} of a {version.model_type} model needs STRUCT(c AS contamination),"
            " c in [0, 0.5]"
        )
    key = anomaly.DISTANCE_QUANTILES if version.model_type == "kmeans" else pca.ERROR_QUANTILES
    recorded = version.training_info.get(key)
    if not recorded:
        raise errors.FeatureNotSupported(
            f"model {version.ref} was trained before sqlml recorded what ML.{NAME} needs",
            hint="train it again (CREATE OR REPLACE MODEL)",
        )
    return anomaly.threshold(recorded, float(given))


def _reconstruction(version: ModelVersion, scored: Scored, dialect: str) -> exp.Select:
    level, features, back = reconstructed(version, scored, dialect)
    inputs = [exp.column(n, table=LEVEL, quoted=True) for n in scored.names]
    metric = exp.alias_(squared_error(features, back), METRIC, quoted=True)
    return exp.select(*inputs, metric).from_(level)


def _normalized(version: ModelVersion, scored: Scored, dialect: str) -> exp.Select:
    """The smallest normalized distance and its centroid (1-based, the first of equals)."""
    rows, outputs = rows_with(version, scored, ("distances",), dialect)
    radii = version.training_info[anomaly.RADII]
    each = [
        exp.Div(this=d.copy(), expression=double(r))
        for d, r in zip(outputs["distances"], radii, strict=True)
    ]
    least = exp.Least(this=each[0].copy(), expressions=[e.copy() for e in each[1:]])
    centroid = exp.case()
    for number, value in enumerate(each, start=1):
        centroid = centroid.when(exp.EQ(this=value.copy(), expression=least.copy()),
                                 exp.cast(exp.Literal.number(number), "BIGINT"))  # fmt: skip
    return exp.select(
        *input_columns(scored),
        exp.alias_(least, METRIC, quoted=True),
        exp.alias_(centroid, CENTROID, quoted=True),
    ).from_(rows)


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    if version.model_type not in MODEL_TYPES:
        raise refused(NAME, version.model_type)
    cut = _threshold(version, settings)
    assert scored is not None  # rows are REQUIRED
    kmeans = version.model_type == "kmeans"
    names = ["is_anomaly", "normalized_distance", "centroid_id"] if kmeans else [
        "is_anomaly", "mean_squared_error"
    ]  # fmt: skip
    check_names(scored, names, NAME)
    inner = _normalized(version, scored, dialect) if kmeans else _reconstruction(
        version, scored, dialect
    )  # fmt: skip
    measured = exp.Subquery(
        this=fenced(inner, dialect),
        alias=exp.TableAlias(this=exp.to_identifier(MEASURED, quoted=True)),
    )
    metric = exp.column(METRIC, table=MEASURED, quoted=True)
    columns = [
        exp.alias_(exp.GT(this=metric.copy(), expression=double(cut)), names[0], quoted=True),
        exp.alias_(exp.cast(metric.copy(), "DOUBLE"), names[1], quoted=True),
    ]
    if kmeans:
        centroid = exp.column(CENTROID, table=MEASURED, quoted=True)
        columns.append(exp.alias_(centroid, names[2], quoted=True))
    inputs = [exp.column(n, table=MEASURED, quoted=True) for n in scored.names]
    return exp.select(*columns, *inputs).from_(measured).subquery()


DETECT_ANOMALIES = register(
    Function(
        name=NAME,
        table=True,
        rows=REQUIRED,
        runs=OVER_ROWS,
        fields=(Field("contamination", "FLOAT64", contamination),),
        pending=("anomaly_prob_threshold",),
        render=_render,
    )
)
