"""ML.PREDICTION_LOG(MODEL m): the model's logged predictions (sqlml's own; docs/sql.md,
"The prediction log"; sqlml/predlog.py), oldest first. Columns: logged_at TIMESTAMP (UTC),
version INT64 (the version that scored the row), variant STRING ('serving' | 'traffic'),
log_key STRING (the sample's key as text; NULL: a random sample), inputs STRING and outputs
STRING (JSON objects: the input row, ML.PREDICT's columns). A time range is a WHERE clause on
logged_at, which the engine applies as it reads the log.

A query over sqlml.prediction_log in the engine's own SQL, as ML.VERSIONS
(functions/versions.py): PostgreSQL's row-level security shows the rows of the models the role
may use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import NONE, OVER_ROWS, Function, Scored, register
from sqlml.functions.versions import column, of_model, store_table

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "PREDICTION_LOG"
_COLUMNS = ("logged_at", "version", "variant", "log_key", "inputs", "outputs")


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    p = "p"
    query = (
        exp.select(*(exp.alias_(column(c, p), c, quoted=True) for c in _COLUMNS))
        .from_(store_table("prediction_log", p))
        .where(of_model(version, p))
        .order_by(column("logged_at", p))
    )
    return query.subquery()


PREDICTION_LOG = register(
    Function(name=NAME, table=True, rows=NONE, runs=OVER_ROWS, render=_render)
)
