"""ML.FEATURE_INFO(MODEL m): one row per feature the model was trained on, computed from the
version's stored feature_info.

Columns (BigQuery's): input STRING, min FLOAT64, max FLOAT64, mean FLOAT64, median FLOAT64,
stddev FLOAT64, category_count INT64, null_count INT64, dimension INT64. Training records each
feature's statistics over all input rows (ml/features.py column_stats): min, max, mean and
median of a numeric feature's non-NULL values, its standard deviation (population, NULLs
counted at the mean: the spread standardization uses), and every feature's NULL count; the
mean and standard deviation preprocessing used are shown where it recorded them (the same
values). Models trained before statistics were recorded show NULL for what they lack;
dimension is NULL for every non-ARRAY feature. category_count counts the categories seen, NULL
aside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml.functions import METADATA, NONE, Column, Function, Row, layout, register

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

COLUMNS = [
    Column("input", "STRING"),
    Column("min", "FLOAT64"),
    Column("max", "FLOAT64"),
    Column("mean", "FLOAT64"),
    Column("median", "FLOAT64"),
    Column("stddev", "FLOAT64"),
    Column("category_count", "INT64"),
    Column("null_count", "INT64"),
    Column("dimension", "INT64"),
]


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for feature, info in zip(layout.features(version), version.feature_info, strict=True):
        count = None
        if feature.categories is not None:
            count = sum(1 for c in feature.categories if c is not None)
        stats = feature.stats
        mean = feature.mean if feature.mean is not None else stats.get("mean")
        stddev = feature.stddev if feature.stddev is not None else stats.get("stddev")
        rows.append(
            (
                feature.name,
                stats.get("min"),
                stats.get("max"),
                mean,
                stats.get("median", info.get("median")),
                stddev,
                count,
                stats.get("null_count"),
                None,
            )
        )
    return rows


FEATURE_INFO = register(
    Function(
        name="FEATURE_INFO",
        table=True,
        rows=NONE,
        runs=METADATA,
        columns=_columns,
        compute=_rows,
    )
)
