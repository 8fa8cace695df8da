"""What ML.CONFUSION_MATRIX and ML.ROC_CURVE share: both are computed over a classifier's
predictions on rows, written into the engine's SQL around ML.PREDICT's subquery, so the rows
are scored and counted where they live (on PostgreSQL nothing but the result leaves the server,
and only a model that cannot be compiled to SQL sends its rows to PL/Python to be scored, as
ML.PREDICT does).

Without rows BigQuery uses the evaluation split of the training data (or all of it). A binary
classifier keeps its evaluation rows' labels and positive-class probabilities at training (up to
20,000 rows: train.EVALUATION_KEPT), and both functions are computed from those, in Python, the
few result rows sent as a literal subquery (functions/literal.py). A multiclass model, or a
binary one whose evaluation rows were too many to keep, is 0A000 without rows, naming what to
give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlglot import exp

from sqlml import errors
from sqlml.functions import Column, Row, Scored
from sqlml.functions import not_supported as refused
from sqlml.ml import models
from sqlml.ml.predict_sql import label_family, label_literal

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

ROWS = "__sqlml_scored"  # the alias of ML.PREDICT's subquery
Array = np.ndarray[Any, Any]


def classes(version: ModelVersion, function: str) -> tuple[str, str, list[Any]]:
    """(label column, its training type, the classes in order) of a classifier; else 0A000."""
    if version.kind != models.CLASSIFIER or version.label is None:
        raise refused(function, version.model_type)
    label = version.label
    return str(label["name"]), str(label["type"]), list(label["classes"])


def rows_of(scored: Scored | None, function: str, label: str) -> Scored:
    """The scored rows, which must carry the label column (42703)."""
    assert scored is not None  # (without rows: kept_matrix, kept_curve)
    if label not in scored.names:
        raise errors.UndefinedColumn(f'label column "{label}" is missing from the rows')
    return scored


def literal(value: Any, label_type: str) -> exp.Expr:
    """A class as ML.PREDICT writes it (a literal of the label's training type)."""
    return label_literal(value, label_type)


def column(name: str, table: str = ROWS) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def aliased(query: exp.Expr, alias: str) -> exp.Subquery:
    inner = query.this if isinstance(query, exp.Subquery) else query
    return exp.Subquery(
        this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


def count_when(condition: exp.Expr) -> exp.Expr:
    """COUNT(CASE WHEN condition THEN 1 END): a BIGINT on both engines."""
    return exp.Count(this=exp.case().when(condition, exp.Literal.number(1)))


# -- without rows: the evaluation rows kept at training ---------------------------------------


def kept(version: ModelVersion, function: str) -> tuple[Array, Array]:
    """(is the label the positive class, the positive class's probability) per kept row."""
    evaluation = version.training_info.get("evaluation")
    if evaluation is None:
        raise errors.FeatureNotSupported(
            f"ML.{function} without rows needs a binary classifier whose evaluation rows were"
            " kept at training (at most 20,000 of them)",
            hint=f"give the rows: ML.{function}(MODEL m, TABLE t)",
        )
    labels = np.asarray(evaluation["labels"], dtype=np.int64) == 1
    return labels, np.asarray(evaluation["positive"], dtype=np.float64)


_BIGQUERY_TYPES = {"bool": "BOOL", "int": "INT64", "float": "FLOAT64", "text": "STRING"}


def bigquery_type(label_type: str) -> str:
    """The label column's training type (Arrow's name) as BigQuery's."""
    return _BIGQUERY_TYPES[label_family(label_type)]


def kept_matrix(
    version: ModelVersion, function: str, names: list[str], threshold: float | None, dialect: str
) -> exp.Expr:
    """The confusion matrix of the kept rows at the threshold (ML.PREDICT's rule: the positive
    class when its probability is above it), with BigQuery's columns ``names``."""
    _, label_type, known = classes(version, function)
    truth, positive = kept(version, function)
    predicted = positive > (0.5 if threshold is None else threshold)
    columns = [Column(names[0], bigquery_type(label_type))]
    columns += [Column(name, "INT64") for name in names[1:]]
    rows = [
        (
            known[int(expected)],
            *(int(np.sum((truth == expected) & (predicted == p))) for p in (0, 1)),
        )
        for expected in (False, True)
        if np.any(truth == expected)
    ]
    return literal_rows(columns, rows, dialect)


def percentile_thresholds(positive: Array) -> list[float]:
    """ML.ROC_CURVE's default thresholds (roc_curve.py), the highest first."""
    ordered = np.sort(positive)
    n = len(ordered)
    ranks = {max(1, -(-k * n // 100)) for k in range(101)} if n else set()
    return sorted({float(ordered[r - 1]) for r in ranks}, reverse=True)


ROC_COLUMNS = [
    Column("threshold", "FLOAT64"),
    Column("recall", "FLOAT64"),
    Column("false_positive_rate", "FLOAT64"),
    *(
        Column(name, "INT64")
        for name in ("true_positives", "false_positives", "true_negatives", "false_negatives")
    ),
]


def kept_curve(
    version: ModelVersion, function: str, given: tuple[float, ...] | None, dialect: str
) -> exp.Expr:
    """The ROC curve of the kept rows (a row is positive at a threshold at or below its
    probability), at the given thresholds or the percentiles."""
    known = classes(version, function)[2]
    if len(known) != 2:
        raise errors.FeatureNotSupported(
            f"ML.{function} is for binary classifiers; model {version.ref} has {len(known)} classes"
        )
    truth, positive = kept(version, function)
    cuts = percentile_thresholds(positive) if given is None else sorted(given, reverse=True)
    pos, neg = int(truth.sum()), int((~truth).sum())
    rows: list[Row] = []
    for cut in cuts:
        tp, fp = int(np.sum(truth & (positive >= cut))), int(np.sum(~truth & (positive >= cut)))
        rows.append(
            (cut, tp / pos if pos else None, fp / neg if neg else None, tp, fp, neg - fp, pos - tp)
        )
    return literal_rows(ROC_COLUMNS, rows, dialect)


def literal_rows(columns: list[Column], rows: Sequence[Row], dialect: str) -> exp.Expr:
    from sqlml.functions import literal as literals

    return literals.subquery(columns, rows, dialect)
