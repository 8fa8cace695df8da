"""What ML.CONFUSION_MATRIX and ML.ROC_CURVE share: both are computed over a classifier's
predictions on rows, written into the engine's SQL around ML.PREDICT's subquery, so the rows
are scored and counted where they live (on PostgreSQL nothing but the result leaves the server,
and only a model that cannot be compiled to SQL sends its rows to PL/Python to be scored, as
ML.PREDICT does).

Without rows BigQuery uses the evaluation split of the training data (or all of it); sqlml's
store keeps the metrics computed at training, not those rows: 0A000, naming what to give.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import Scored
from sqlml.functions import not_supported as refused
from sqlml.ml import models
from sqlml.ml.predict_sql import label_literal

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

ROWS = "__sqlml_scored"  # the alias of ML.PREDICT's subquery


def classes(version: ModelVersion, function: str) -> tuple[str, str, list[Any]]:
    """(label column, its training type, the classes in order) of a classifier; else 0A000."""
    if version.kind != models.CLASSIFIER or version.label is None:
        raise refused(function, version.model_type)
    label = version.label
    return str(label["name"]), str(label["type"]), list(label["classes"])


def rows_of(scored: Scored | None, function: str, label: str) -> Scored:
    """The scored rows, which must carry the label column (42703)."""
    if scored is None:
        raise errors.FeatureNotSupported(
            f"ML.{function} without rows is not supported: the store keeps the metrics computed"
            " at training, not the evaluation rows; give them as (query) or TABLE t"
        )
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
