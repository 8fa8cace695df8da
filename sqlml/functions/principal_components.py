"""ML.PRINCIPAL_COMPONENTS(MODEL m): a PCA model's principal components (eigenvectors), from the
components recorded with the version at training (sqlml/ml/pca.py).

Columns (BigQuery's): principal_component_id INT64, feature STRING, numerical_value FLOAT64,
categorical_value ARRAY<STRUCT<category STRING, value FLOAT64>>; one row per component and
feature, components in descending order of their eigenvalues. principal_component_id counts from
0 (as BigQuery's, whose component 0 is ML.PREDICT's principal_component_1). A numeric feature has
its loading as numerical_value and an empty categorical_value; a one-hot feature a NULL
numerical_value and one loading per category. Loadings are in the space PCA ran in: standardized
numeric features when SCALE_FEATURES was TRUE (the default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml.functions import METADATA, NONE, Column, Function, Row, layout, register
from sqlml.functions import not_supported as refused
from sqlml.functions.layout import category_name

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

COLUMNS = [
    Column("principal_component_id", "INT64"),
    Column("feature", "STRING"),
    Column("numerical_value", "FLOAT64"),
    Column("categorical_value", "ARRAY<STRUCT<category STRING, value FLOAT64>>"),
]


def components(version: ModelVersion, name: str) -> list[list[float]]:
    """The recorded components of a PCA model (0A000 for any other model type)."""
    if version.model_type != "pca":
        raise refused(name, version.model_type)
    return list(version.training_info.get("principal_components") or [])


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for number, component in enumerate(components(version, "PRINCIPAL_COMPONENTS")):
        for feature in layout.features(version):
            values = component[feature.start : feature.start + feature.width]
            rows.append((number, feature.name, *_value(feature, values)))
    return rows


def _value(feature: layout.Feature, values: list[float]) -> tuple[Any, Any]:
    if feature.categories is None:
        return float(values[0]), []
    pairs = [
        {"category": category_name(c), "value": float(v)}
        for c, v in zip(feature.categories, values, strict=True)
    ]
    return None, pairs


PRINCIPAL_COMPONENTS = register(
    Function(
        name="PRINCIPAL_COMPONENTS",
        table=True,
        rows=NONE,
        runs=METADATA,
        columns=_columns,
        compute=_rows,
    )
)
