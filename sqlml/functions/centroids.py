"""ML.CENTROIDS(MODEL m [, STRUCT(TRUE AS standardize)]): a k-means model's centroids, from the
centroids recorded with the version at training.

Columns (BigQuery's): centroid_id INT64 (from 1, as ML.PREDICT's), feature STRING,
numerical_value FLOAT64, categorical_value ARRAY<STRUCT<category STRING, value STRING>>,
geography_value STRING; one row per centroid and feature, in that order. A numeric feature has
its numerical_value and an empty categorical_value; a one-hot feature a NULL numerical_value and
the centroid's coordinate for each category (BigQuery's reference types that value STRING: it
is the number as text). geography_value is always NULL (sqlml has no GEOGRAPHY features).

The recorded centroids are in the space k-means measured distances in: standardized numeric
features when STANDARDIZE_FEATURES was TRUE (the default). BigQuery's default (standardize
FALSE) gives them on the features' own scale (value * stddev + mean); standardize TRUE as
recorded. A model trained with STANDARDIZE_FEATURES = FALSE has its centroids on the features'
own scale already and no standard deviations to standardize them with: standardize TRUE is
0A000 there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml import errors
from sqlml.functions import METADATA, NONE, Column, Field, Function, Row, layout, register
from sqlml.functions import not_supported as refused
from sqlml.functions.layout import category_name

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

CATEGORICAL_VALUE = "ARRAY<STRUCT<category STRING, value STRING>>"
COLUMNS = [
    Column("centroid_id", "INT64"),
    Column("feature", "STRING"),
    Column("numerical_value", "FLOAT64"),
    Column("categorical_value", CATEGORICAL_VALUE),
    Column("geography_value", "STRING"),
]


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    if version.model_type != "kmeans":
        raise refused("CENTROIDS", version.model_type)
    standardize = bool(settings.get("standardize", False))
    scaled = bool(version.options.get("standardize_features", True))
    if standardize and not scaled:
        raise errors.FeatureNotSupported(
            "ML.CENTROIDS with standardize TRUE needs a model trained with"
            " STANDARDIZE_FEATURES = TRUE: this one recorded no standard deviations"
        )
    rows: list[Row] = []
    for number, centroid in enumerate(version.training_info.get("centroids") or []):
        for feature in layout.features(version):
            values = centroid[feature.start : feature.start + feature.width]
            rows.append((number + 1, feature.name, *_value(feature, values, standardize), None))
    return rows


def _value(feature: layout.Feature, values: list[float], standardize: bool) -> tuple[Any, Any]:
    if feature.categories is None:
        value = float(values[0])
        if not standardize and feature.stddev is not None and feature.mean is not None:
            value = value * feature.stddev + feature.mean
        return value, []
    pairs = [
        {"category": category_name(c), "value": repr(float(v))}
        for c, v in zip(feature.categories, values, strict=True)
    ]
    return None, pairs


CENTROIDS = register(
    Function(
        name="CENTROIDS",
        table=True,
        rows=NONE,
        runs=METADATA,
        fields=(Field("standardize", "BOOL"),),
        columns=_columns,
        compute=_rows,
    )
)
