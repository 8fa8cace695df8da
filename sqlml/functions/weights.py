"""ML.WEIGHTS(MODEL m [, STRUCT(TRUE AS standardize)]): a linear or logistic regression's
weights, read from the stored ONNX graph.

Columns (BigQuery's): processed_input STRING, weight FLOAT64, category_weights
ARRAY<STRUCT<category STRING, weight FLOAT64>>, and class_label STRING for a multiclass model
(one row per class and feature). A numeric feature has its weight and an empty
category_weights; a one-hot feature a NULL weight and one (category, weight) per category seen in
training (NULL is a category of its own when it was seen); the row ``__INTERCEPT__`` holds the
intercept.

Where the numbers come from: sqlml's graph for a linear model is ``z = X W' + b'`` with the
standardization of the numeric features folded into W' and b' (sqlml.ml.estimator_onnx): for a
standardized column j, W'_j = w_j / stddev_j and b' = b - sum_j w_j mean_j / stddev_j, where w
and b are the estimator's coef_ and intercept_ on standardized features. So W' and b' are the
weights on the features as the user gives them, BigQuery's default (standardize FALSE); with
standardize TRUE the folding is undone from the stored means and standard deviations, giving
w and b (BigQuery: weights "standardized to assume that all features have a mean of 0 and a
standard deviation of 1"). A binary logistic regression's weights are those of the second class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.functions import METADATA, NONE, Column, Field, Function, Row, layout, register
from sqlml.functions import not_supported as refused
from sqlml.functions.layout import category_name

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

Array = np.ndarray[Any, Any]
LINEAR_TYPES = ("linear_reg", "logistic_reg")
INTERCEPT = "__INTERCEPT__"
CATEGORY_WEIGHTS = "ARRAY<STRUCT<category STRING, weight FLOAT64>>"


def _multiclass(version: ModelVersion) -> bool:
    classes = (version.label or {}).get("classes") or []
    return len(classes) > 2


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    columns = [
        Column("processed_input", "STRING"),
        Column("weight", "FLOAT64"),
        Column("category_weights", CATEGORY_WEIGHTS),
    ]
    return [*columns, Column("class_label", "STRING")] if _multiclass(version) else columns


def linear_layer(onnx_bytes: bytes) -> tuple[Array, Array]:
    """(W' [features, outputs], b' [outputs]) of the graph's MatMul and the Add after it."""
    import onnx  # (0.8 s to import: only when weights are asked for)
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for matmul in (n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants):
        add = next(
            (n for n in graph.node if n.op_type == "Add" and matmul.output[0] in n.input), None
        )
        bias = next((constants[i] for i in add.input if i in constants), None) if add else None
        if bias is not None:
            weights = np.asarray(constants[matmul.input[1]], dtype=np.float64)
            return weights, np.asarray(bias, dtype=np.float64).reshape(-1)
    raise errors.CorruptedModel("the stored graph has no linear layer to read weights from")


def weights(version: ModelVersion, standardize: bool) -> tuple[Array, Array]:
    """(weights [features, outputs], intercepts [outputs]), on the features as given or
    standardized."""
    folded, bias = linear_layer(version.onnx)
    if not standardize:
        return folded, bias
    scale, mean = np.ones(folded.shape[0]), np.zeros(folded.shape[0])
    for feature in layout.features(version):
        if feature.stddev is not None and feature.mean is not None:
            scale[feature.start], mean[feature.start] = feature.stddev, feature.mean
    return folded * scale[:, None], bias + mean @ folded


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    if version.model_type not in LINEAR_TYPES:
        raise refused("WEIGHTS", version.model_type)
    matrix, intercepts = weights(version, bool(settings.get("standardize", False)))
    classes = (version.label or {}).get("classes") or []
    if not _multiclass(version):
        return _class_rows(version, matrix[:, -1], float(intercepts[-1]))
    rows: list[Row] = []
    for k, label in enumerate(classes):
        rows += [(*r, str(label)) for r in _class_rows(version, matrix[:, k], float(intercepts[k]))]
    return rows


def _class_rows(version: ModelVersion, column: Array, intercept: float) -> list[Row]:
    rows: list[Row] = []
    for feature in layout.features(version):
        values = column[feature.start : feature.start + feature.width]
        if feature.categories is None:
            rows.append((feature.name, float(values[0]), []))
            continue
        pairs = [
            {"category": category_name(c), "weight": float(w)}
            for c, w in zip(feature.categories, values, strict=True)
        ]
        rows.append((feature.name, None, pairs))
    rows.append((INTERCEPT, intercept, []))
    return rows


WEIGHTS = register(
    Function(
        name="WEIGHTS",
        table=True,
        rows=NONE,
        runs=METADATA,
        fields=(Field("standardize", "BOOL"),),
        columns=_columns,
        compute=_rows,
    )
)
