"""ML.FEATURE_IMPORTANCE(MODEL m): how much a boosted tree or random forest model used each
feature, from the importances recorded with the version at training.

Columns (BigQuery's): feature STRING, importance_weight FLOAT64 (the number of splits on the
feature across all trees), importance_gain FLOAT64 and importance_cover FLOAT64 (the average gain
and the average cover over those splits: XGBoost's get_score 'weight', 'gain' and 'cover'). One
row per input feature, in the model's feature order.

Training records, per column of the preprocessed matrix, XGBoost's 'weight', 'total_gain' and
'total_cover' (sqlml.ml.trees._importance). A feature is one column with label encoding (the
default for trees) and one column per category with one-hot encoding; its weight and totals are
the sums over its columns, its gain and cover the totals divided by its weight, so a one-hot
feature reads as XGBoost would report a single column split as often. A feature no tree split on
has weight 0 and a NULL gain and cover (XGBoost leaves it out: there is no split to average).
With a TRANSFORM clause the rows are the TRANSFORM's outputs the model was trained on (BigQuery
maps them back to the query's columns; sqlml does not yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml import errors
from sqlml.functions import METADATA, NONE, Column, Function, Row, layout, register
from sqlml.functions import not_supported as refused

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

TREE_TYPES = ("boosted_tree_", "random_forest_")
COLUMNS = [
    Column("feature", "STRING"),
    Column("importance_weight", "FLOAT64"),
    Column("importance_gain", "FLOAT64"),
    Column("importance_cover", "FLOAT64"),
]


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    if not version.model_type.startswith(TREE_TYPES):
        raise refused("FEATURE_IMPORTANCE", version.model_type)
    recorded = version.training_info.get("feature_importance")
    if recorded is None:
        raise errors.FeatureNotSupported(
            f"model {version.ref} recorded no feature importance at training:"
            " CREATE OR REPLACE MODEL trains it again with them"
        )
    features = layout.features(version)
    if sum(f.width for f in features) != len(recorded):  # a TRANSFORM output layout.py lacks
        raise errors.FeatureNotSupported(
            f"ML.FEATURE_IMPORTANCE cannot map the feature columns of model {version.ref}"
            " back to its features"
        )
    rows: list[Row] = []
    for feature in features:
        columns = recorded[feature.start : feature.start + feature.width]
        weight = sum(float(c["weight"]) for c in columns)
        gain = sum(float(c["total_gain"]) for c in columns)
        cover = sum(float(c["total_cover"]) for c in columns)
        if weight == 0:
            rows.append((feature.name, 0.0, None, None))
        else:
            rows.append((feature.name, weight, gain / weight, cover / weight))
    return rows


FEATURE_IMPORTANCE = register(
    Function(
        name="FEATURE_IMPORTANCE",
        table=True,
        rows=NONE,
        runs=METADATA,
        columns=_columns,
        compute=_rows,
    )
)
