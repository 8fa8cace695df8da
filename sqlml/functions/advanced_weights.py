"""ML.ADVANCED_WEIGHTS(MODEL m [, STRUCT(TRUE AS standardize)]): ML.WEIGHTS with each weight's
standard error and p-value, for linear_reg and binary logistic_reg models trained with
OPTIONS (calculate_p_values = TRUE, category_encoding_method = 'DUMMY_ENCODING') and l1_reg = 0
(BigQuery's requirements; the standard errors are computed at training: sqlml/ml/global_explain.py).

Columns (BigQuery's): processed_input STRING, category STRING (NULL for a numeric feature; one
row per category of a categorical one, NULL being a category of its own when it was seen),
weight FLOAT64 (ML.WEIGHTS' own numbers, on the features as given or standardized),
standard_error FLOAT64 and p_value FLOAT64, ``2 * (1 - norm.cdf(|weight| / standard_error))``:
BigQuery's two-sided normal (Wald) test, not Student's t. The category dummy encoding dropped
(the most frequent) has weight 0.0 and a NaN standard error and p-value, as BigQuery documents.
The row ``__INTERCEPT__`` comes last; without standardize its standard error and p-value are
NULL ("un-standardizing the standard error for the intercept column is computationally
expensive, the standard error and p-value aren't provided", BigQuery's page).

Standardizing a weight divides it and its standard error by the same standard deviation, so a
p-value is the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml import errors
from sqlml.functions import METADATA, NONE, Column, Field, Function, Row, layout, register
from sqlml.functions import not_supported as refused
from sqlml.functions.layout import category_name
from sqlml.functions.weights import INTERCEPT, LINEAR_TYPES, weights
from sqlml.ml.global_explain import ADVANCED

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "ADVANCED_WEIGHTS"
COLUMNS = [
    Column("processed_input", "STRING"),
    Column("category", "STRING"),
    Column("weight", "FLOAT64"),
    Column("standard_error", "FLOAT64"),
    Column("p_value", "FLOAT64"),
]
NAN = float("nan")


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return COLUMNS


def p_value(weight: float, standard_error: float) -> float:
    """Two-sided, normal: 2 (1 - Phi(|w| / se)) = erfc(|w| / (se sqrt 2))."""
    if not math.isfinite(standard_error) or standard_error <= 0:
        return NAN
    return math.erfc(abs(weight) / (standard_error * math.sqrt(2.0)))


def _recorded(version: ModelVersion) -> dict[str, Any]:
    if version.model_type not in LINEAR_TYPES:
        raise refused(NAME, version.model_type)
    if len((version.label or {}).get("classes") or []) > 2:
        raise errors.FeatureNotSupported(
            f"ML.{NAME} is not supported for multiclass logistic regression models"
            f" ({version.ref}: BigQuery's limitation too)"
        )
    options = version.options
    needs = []
    if not options.get("calculate_p_values"):
        needs.append("CALCULATE_P_VALUES = TRUE")
    if options.get("category_encoding_method") != "DUMMY_ENCODING":
        needs.append("CATEGORY_ENCODING_METHOD = 'DUMMY_ENCODING'")
    if float(options.get("l1_reg") or 0.0) > 0:
        needs.append("L1_REG = 0")
    if needs:
        raise errors.InvalidParameterValue(
            f"ML.{NAME} needs a model trained with "
            + ", ".join(needs)
            + f": {version.ref} was not",
            hint="CREATE OR REPLACE MODEL ... OPTIONS (calculate_p_values = TRUE,"
            " category_encoding_method = 'DUMMY_ENCODING', ...)",
        )
    found = version.training_info.get(ADVANCED)
    if found is None or "unavailable" in found:
        why = found["unavailable"] if found else "none were recorded at training"
        raise errors.FeatureNotSupported(
            f"model {version.ref} has no standard errors for ML.{NAME}: {why}"
        )
    return dict(found)


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    found = _recorded(version)
    standardize = bool(settings.get("standardize", False))
    matrix, intercepts = weights(version, standardize)
    column, intercept = matrix[:, -1], float(intercepts[-1])
    errors_ = [float(e) for e in found["standard_errors"]]
    features = layout.features(version)
    if len(errors_) != len(column) or sum(f.width for f in features) != len(column):
        raise errors.CorruptedModel(f"the standard errors of model {version.ref} do not fit it")
    infos = {str(info["column"]): info for info in version.feature_info}
    rows: list[Row] = []
    for feature in features:
        at = feature.start
        if feature.categories is None:
            weight = float(column[at])
            # (standardized: se_j; as given: se_j / stddev_j, the weight's own scaling)
            se = errors_[at]
            if not standardize and feature.stddev:
                se /= feature.stddev
            rows.append((feature.name, None, weight, se, p_value(weight, se)))
            continue
        by_category = [
            (category_name(c), float(column[at + i]), errors_[at + i])
            for i, c in enumerate(feature.categories)
        ]
        dropped = infos.get(feature.name, {}).get("dropped") or []
        by_category += [(category_name(c), 0.0, NAN) for c in dropped]
        by_category.sort(key=lambda r: (r[0] is None, r[0] or ""))
        rows += [(feature.name, c, w, se, p_value(w, se)) for c, w, se in by_category]
    if standardize:
        se = float(found["intercept_standard_error"])
        rows.append((INTERCEPT, None, intercept, se, p_value(intercept, se)))
    else:
        rows.append((INTERCEPT, None, intercept, None, None))
    return rows


ADVANCED_WEIGHTS = register(
    Function(
        name=NAME,
        table=True,
        rows=NONE,
        runs=METADATA,
        fields=(Field("standardize", "BOOL"),),
        columns=_columns,
        compute=_rows,
    )
)
