"""ML.GLOBAL_EXPLAIN(MODEL m [, STRUCT(TRUE AS class_level_explain)]): each feature's importance
to the model overall, "the mean absolute attribution that each feature receives for all the rows
in the evaluation dataset" (BigQuery's Explainable AI overview), computed at training when the
model was created with OPTIONS (enable_global_explain = TRUE) (sqlml/ml/global_explain.py says
how, per model type); a model trained without it is 22023, as BigQuery refuses it.

Columns (BigQuery's): feature STRING, attribution FLOAT64, largest first (ties by name). With
class_level_explain a classifier has one set per class, each its 10 most important features
(BigQuery: "only the top 10 most important features are returned"), after a class_label STRING
column (BigQuery documents it as ``<class_name>``, "the name of the class in the label column";
ML.WEIGHTS names the same column class_label), the classes in the model's order. A regression
model has only the model-level explanation, whatever class_level_explain says.

Model types: linear_reg, logistic_reg, boosted_tree_* and random_forest_*; others are 0A000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml import errors
from sqlml.functions import METADATA, NONE, Column, Field, Function, Row, register
from sqlml.functions import not_supported as refused
from sqlml.ml.global_explain import GLOBAL, LINEAR_TYPES, TREE_TYPES

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "GLOBAL_EXPLAIN"
TOP_PER_CLASS = 10


def _class_level(version: ModelVersion, settings: Mapping[str, Any]) -> bool:
    classes = (version.label or {}).get("classes") or []
    return bool(settings.get("class_level_explain")) and len(classes) >= 2


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    columns = [Column("feature", "STRING"), Column("attribution", "FLOAT64")]
    if _class_level(version, settings):
        return [Column("class_label", "STRING"), *columns]
    return columns


def recorded(version: ModelVersion, name: str = NAME) -> dict[str, Any]:
    """The global explanation training stored, or the error that says why there is none."""
    model_type = version.model_type
    if model_type not in LINEAR_TYPES and not model_type.startswith(TREE_TYPES):
        raise refused(name, model_type)
    found = version.training_info.get(GLOBAL)
    if found is None:
        raise errors.InvalidParameterValue(
            f"model {version.ref} was not trained with ENABLE_GLOBAL_EXPLAIN = TRUE:"
            f" ML.{name} reads the global explanation computed at training",
            hint="CREATE OR REPLACE MODEL ... OPTIONS (enable_global_explain = TRUE, ...)",
        )
    if "unavailable" in found:
        raise errors.FeatureNotSupported(
            f"model {version.ref} has no global explanation: {found['unavailable']}"
        )
    return dict(found)


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    found = recorded(version)
    if not _class_level(version, settings):
        return [(str(f), float(a)) for f, a in found["features"]]
    labels = (version.label or {}).get("classes") or []
    per_class = found.get("classes") or []
    rows: list[Row] = []
    for label, ranked in zip(labels, per_class, strict=False):
        rows += [(str(label), str(f), float(a)) for f, a in ranked[:TOP_PER_CLASS]]
    return rows


GLOBAL_EXPLAIN = register(
    Function(
        name=NAME,
        table=True,
        rows=NONE,
        runs=METADATA,
        fields=(Field("class_level_explain", "BOOL"),),
        columns=_columns,
        compute=_rows,
    )
)
