"""ML.PREDICTION_LOG(MODEL m [, start, end]): the model's logged predictions (sqlml's own;
docs/sql.md, "The prediction log"; sqlml/predlog.py), oldest first. Columns: logged_at TIMESTAMP
(UTC), version INT64 (the version that scored the row), variant STRING ('serving' | 'traffic' |
'shadow'), log_key STRING (the sample's key as text; NULL: a random sample), inputs STRING and
outputs STRING (JSON objects: the input row, ML.PREDICT's columns).

``start`` and ``end`` (both or neither) are constant TIMESTAMPs, the rows logged at or after
start and before end (a half-open range: consecutive ranges never count a row twice); NULL is
unbounded. A TIMESTAMP WITH TIME ZONE is taken in UTC, as logged_at is; a TIMESTAMP or a string
as a UTC time. Anything else is 22023 (a range relative to now is a WHERE clause on logged_at,
which the engine applies as it reads the log, as it does the range).

A query over the log (sqlml.prediction_log; on DuckDB, whose log is typed, the view
sqlml.logged_predictions: predlog.py) in the engine's own SQL, as ML.VERSIONS
(functions/versions.py): PostgreSQL's row-level security shows the rows of the models the role
may use.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import NONE, OVER_ROWS, Function, Scored, register
from sqlml.functions.versions import column, of_model, store_table
from sqlml.grammar import nodes
from sqlml.store import log_rows

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "PREDICTION_LOG"
_COLUMNS = ("logged_at", "version", "variant", "log_key", "inputs", "outputs")
START, END = "start", "end"
_TIME_TYPES = (
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIMESTAMPNTZ,
    exp.DataType.Type.TIMESTAMPTZ,
    exp.DataType.Type.TIMESTAMPLTZ,
    exp.DataType.Type.DATE,
    exp.DataType.Type.DATETIME,
)


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    p = "p"
    where = of_model(version, p)
    at = column("logged_at", p)
    if settings.get(START) is not None:
        where = exp.and_(where, at >= _timestamp(settings[START]))
    if settings.get(END) is not None:
        where = exp.and_(where, at < _timestamp(settings[END]))
    query = (
        exp.select(*(exp.alias_(column(c, p), c, quoted=True) for c in _COLUMNS))
        .from_(store_table(log_rows(dialect), p))
        .where(where)
        .order_by(at)
    )
    return query.subquery()


def _timestamp(text: str) -> exp.Expr:
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))


def _range(arguments: Sequence[exp.Expr]) -> dict[str, Any]:
    """The positional start and end: both or neither (42601), each a constant TIMESTAMP or
    NULL (22023), kept as UTC text (``YYYY-MM-DD HH:MM:SS[.ffffff]``)."""
    if not arguments:
        return {}
    if len(arguments) != 2:
        raise errors.SyntaxError(
            f"ML.{NAME} takes MODEL m, then optionally a start and an end TIMESTAMP",
            position=nodes.start_of(arguments[0]),
        )
    return {name: _bound(node, name) for name, node in zip((START, END), arguments, strict=True)}


def _is_string(node: exp.Expr) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _bound(node: exp.Expr, name: str) -> str | None:
    """One bound: NULL, a string, or a string cast to a TIMESTAMP (``TIMESTAMP '...'``)."""
    if isinstance(node, exp.Null):
        return None
    text: str | None = None
    if isinstance(node, exp.Literal) and node.is_string:
        text = str(node.this)
    elif isinstance(node, exp.Cast) and _is_string(node.this) and node.to.this in _TIME_TYPES:
        text = str(node.this.this)
    if text is not None:
        try:
            moment = datetime.datetime.fromisoformat(text.strip())
        except ValueError:
            text = None
        else:
            if moment.tzinfo is not None:
                moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
            return moment.isoformat(sep=" ")
    raise errors.InvalidParameterValue(
        f"the {name} of ML.{NAME} must be a constant TIMESTAMP or NULL, not {nodes.text_of(node)}",
        position=nodes.start_of(node),
        hint="a range relative to now is a WHERE clause on logged_at",
    )


PREDICTION_LOG = register(
    Function(name=NAME, table=True, rows=NONE, runs=OVER_ROWS, render=_render, arguments=_range)
)
