"""ML.TRAINING_INFO(MODEL m): the training of the version that serves, from its stored training
info and metrics.

Columns (BigQuery's): training_run INT64, iteration INT64, loss FLOAT64, eval_loss FLOAT64,
learning_rate FLOAT64, duration_ms INT64; k-means models have no eval_loss and add cluster_info
ARRAY<STRUCT<centroid_id INT64, cluster_radius FLOAT64, cluster_size INT64>>.

Boosted trees, random forests and DNNs record each round / epoch (training_info["history"]:
iteration, loss on the training rows, eval_loss on the evaluation rows when there was a split,
learning_rate, duration_ms): one row each, the last iteration first (BigQuery's order). Other
model types record the final state only, so there is one row: training_run 0 (every CREATE
MODEL is a new model, as without BigQuery's warm_start; an incremental model's ALTER MODEL ...
RETRAIN counts 1, 2, ... as BigQuery's warm-started runs do; such a version has two more
columns, sqlml's own: ``incremental`` ('exact' or 'approximate': ml/incremental.py) and
``rows_read``, the rows that training read), iteration the last one (the solver's
iteration count - 1; 0 for a closed-form fit), duration_ms the fit's time. The loss is the
version's stored metric (mean_squared_error for linear_reg,
log_loss for logistic_reg, mean_squared_distance for kmeans), on the rows it was computed on:
``loss`` when there was no evaluation split (the training rows), ``eval_loss`` when there was
one (the other is NULL: it was not recorded). learning_rate is the LEARN_RATE of a
BATCH_GRADIENT_DESCENT fit, else NULL. cluster_info lists each centroid with its cluster's
size (the training rows nearest it) and radius (their mean distance to it, in the model's
DISTANCE_TYPE), as training recorded them (anomaly.clusters); NULL for a model trained before
sqlml recorded them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml.functions import METADATA, NONE, Column, Function, Row, register
from sqlml.ml import anomaly, models

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

CLUSTER_INFO = "ARRAY<STRUCT<centroid_id INT64, cluster_radius FLOAT64, cluster_size INT64>>"
_LOSS = {
    models.REGRESSOR: "mean_squared_error",
    models.CLASSIFIER: "log_loss",
    models.CLUSTERER: "mean_squared_distance",
}


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    head = [
        Column("training_run", "INT64"),
        Column("iteration", "INT64"),
        Column("loss", "FLOAT64"),
    ]
    tail = [Column("learning_rate", "FLOAT64"), Column("duration_ms", "INT64")]
    if version.training_info.get("incremental"):  # (sqlml's own: how RETRAIN learns)
        tail += [Column("incremental", "STRING"), Column("rows_read", "INT64")]
    if version.kind == models.CLUSTERER:
        return [*head, *tail, Column("cluster_info", CLUSTER_INFO)]
    return [*head, Column("eval_loss", "FLOAT64"), *tail]


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    info = version.training_info
    history = info.get("history")
    if history and version.kind != models.CLUSTERER:
        return _history_rows(history, info)
    iterations = info.get("iterations")
    iteration = max(int(iterations) - 1, 0) if iterations is not None else 0
    name = _LOSS.get(version.kind)
    metric = version.metrics.get(name) if name is not None else None
    split = bool(info.get("evaluation_rows"))
    loss, eval_loss = (None, metric) if split else (metric, None)
    rate = None
    if version.options.get("optimize_strategy") == "BATCH_GRADIENT_DESCENT":
        rate = float(version.options["learn_rate"])
    fit = info.get("fit_seconds")
    duration = round(float(fit) * 1000) if fit is not None else None
    run = int(info.get("training_run", 0))
    extra: tuple[Any, ...] = ()
    if info.get("incremental"):
        extra = (str(info["incremental"]), int(info.get("rows_read", 0)))
    if version.kind == models.CLUSTERER:
        return [(run, iteration, loss, rate, duration, *extra, _clusters(info))]
    return [(run, iteration, loss, eval_loss, rate, duration, *extra)]


def _clusters(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """cluster_info: each centroid's recorded radius and size (NULL when not recorded)."""
    count = len(info.get("centroids") or [])
    recorded = info.get(anomaly.CLUSTERS) or [{}] * count
    return [
        {
            "centroid_id": i + 1,
            "cluster_radius": _number(c.get("radius")),
            "cluster_size": None if c.get("size") is None else int(c["size"]),
        }
        for i, c in enumerate(recorded)
    ]


def _history_rows(history: list[dict[str, Any]], info: Mapping[str, Any]) -> list[Row]:
    """One row per recorded iteration, the last one first (an incremental version's with its
    training_run and the incremental columns)."""
    extra: tuple[Any, ...] = ()
    if info.get("incremental"):
        extra = (str(info["incremental"]), int(info.get("rows_read", 0)))
    rows: list[Row] = []
    for entry in sorted(history, key=lambda e: int(e["iteration"]), reverse=True):
        rows.append(
            (
                int(info.get("training_run", 0)),
                int(entry["iteration"]),
                _number(entry.get("loss")),
                _number(entry.get("eval_loss")),
                _number(entry.get("learning_rate")),
                None if entry.get("duration_ms") is None else int(entry["duration_ms"]),
                *extra,
            )
        )
    return rows


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


TRAINING_INFO = register(
    Function(
        name="TRAINING_INFO",
        table=True,
        rows=NONE,
        runs=METADATA,
        columns=_columns,
        compute=_rows,
    )
)
