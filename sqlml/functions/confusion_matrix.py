"""ML.CONFUSION_MATRIX(MODEL m [, {(query) | TABLE t}] [, STRUCT(0.5 AS threshold)]): a
classifier's confusion matrix on the given rows, computed in the engine's SQL around ML.PREDICT;
without rows, a binary classifier's on the evaluation rows kept at training (classification.py).

Columns (BigQuery's): expected_label (the label column's values as the rows give them, one row
per distinct non-NULL value, in ascending order), then one INT64 column per class the model
knows, in the classes' ascending order, counting the rows of that expected label predicted as
that class. A class that is not a valid column name is made one as BigQuery does: characters
other than letters, digits and underscores become underscores, and a name starting with a digit
gets a leading underscore (classes 0 and 1 give columns _0 and _1); a name already taken gets a
numeric suffix. The threshold (binary models) is ML.PREDICT's: the positive class when its
probability is above it. Rows whose label is NULL are left out. BigQuery's trial_id is pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import OPTIONAL, OVER_ROWS, TRIAL_ID, Field, Function, Scored, register
from sqlml.functions.classification import (
    ROWS,
    aliased,
    classes,
    column,
    count_when,
    kept_matrix,
    literal,
    rows_of,
)
from sqlml.functions.predict import threshold

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "CONFUSION_MATRIX"
EXPECTED = "expected_label"


def column_names(labels: list[Any]) -> list[str]:
    """Each class as a column name, BigQuery's way (module docstring)."""
    taken, names = {EXPECTED}, []
    for value in labels:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)
        if not name or name[0].isdigit():
            name = f"_{name}"
        unique, n = name, 1
        while unique.lower() in taken:
            unique, n = f"{name}_{n}", n + 1
        taken.add(unique.lower())
        names.append(unique)
    return names


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    label, label_type, known = classes(version, NAME)
    if scored is None:
        names = [EXPECTED, *column_names(known)]
        return kept_matrix(version, NAME, names, settings.get("threshold"), dialect)
    rows = rows_of(scored, NAME, label)
    source = aliased(rows.subquery(settings.get("threshold")), ROWS)
    expected = column(label)
    predicted = column(f"predicted_{label}")
    counts = [
        exp.alias_(
            exp.cast(
                count_when(exp.EQ(this=predicted.copy(), expression=literal(c, label_type))),
                exp.DataType.build("BIGINT"),
            ),
            name,
            quoted=True,
        )
        for c, name in zip(known, column_names(known), strict=True)
    ]
    query = (
        exp.select(exp.alias_(expected.copy(), EXPECTED, quoted=True), *counts)
        .from_(source)
        .where(exp.Not(this=exp.Is(this=expected.copy(), expression=exp.null())))
        .group_by(expected.copy())
        .order_by(expected.copy())
    )
    return query.subquery()


CONFUSION_MATRIX = register(
    Function(
        name=NAME,
        table=True,
        rows=OPTIONAL,
        runs=OVER_ROWS,
        fields=(Field("threshold", "FLOAT64", threshold), TRIAL_ID),
        render=_render,
    )
)
