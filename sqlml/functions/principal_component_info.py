"""ML.PRINCIPAL_COMPONENT_INFO(MODEL m): a PCA model's components' statistics, from what
training recorded (sqlml/ml/pca.py).

Columns (BigQuery's): principal_component_id INT64 (from 0, as ML.PRINCIPAL_COMPONENTS'),
eigenvalue FLOAT64 (the component's variance, scikit-learn's explained_variance_),
explained_variance_ratio FLOAT64 (its eigenvalue over the total variance: the sum of all
eigenvalues, kept or not), cumulative_explained_variance_ratio FLOAT64; in descending order of
eigenvalue.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml.functions import METADATA, NONE, Column, Function, Row, register
from sqlml.functions.principal_components import components

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

COLUMNS = [
    Column("principal_component_id", "INT64"),
    Column("eigenvalue", "FLOAT64"),
    Column("explained_variance_ratio", "FLOAT64"),
    Column("cumulative_explained_variance_ratio", "FLOAT64"),
]


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    components(version, "PRINCIPAL_COMPONENT_INFO")  # (0A000 for another model type)
    info = version.training_info
    eigenvalues = [float(v) for v in info.get("eigenvalues") or []]
    ratios = [float(v) for v in info.get("explained_variance_ratios") or []]
    cumulative = list(itertools.accumulate(ratios))
    return [
        (i, value, ratio, total)
        for i, (value, ratio, total) in enumerate(zip(eigenvalues, ratios, cumulative, strict=True))
    ]


PRINCIPAL_COMPONENT_INFO = register(
    Function(
        name="PRINCIPAL_COMPONENT_INFO",
        table=True,
        rows=NONE,
        runs=METADATA,
        columns=_columns,
        compute=_rows,
    )
)
