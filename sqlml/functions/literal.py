"""A METADATA function's rows as a literal subquery of the engine's SQL, built as a sqlglot tree.

The rows are few (a model's features, weights, centroids), so they travel inside the statement:
nothing is registered around its run, the same SQL serves DuckDB, PostgreSQL through
sqlml.connect and the gateway's PostgreSQL proxy (which sends it to the server as it is), and
a kept plan stays right while the model serves the same version.

BigQuery's types map to each engine's: FLOAT64 -> DOUBLE / double precision, INT64 -> BIGINT,
STRING -> VARCHAR / text, BOOL -> BOOLEAN; ARRAY<STRUCT<...>> -> a DuckDB LIST of STRUCT, and on
PostgreSQL jsonb (an array of objects with the struct's field names: PostgreSQL has no anonymous
struct type, and jsonb needs no type installed per shape; sqlml.connect reads it back as a list
of dicts, as DuckDB's).

The subquery is ``SELECT cols FROM (VALUES (0, ...), (1, ...)) AS t(n, cols) ORDER BY n``: each
value cast to its column's type, and the rows in the order the function gave them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from sqlml.functions import Column, Row

_ORDER = "__sqlml_n"


def subquery(columns: Sequence[Column], rows: Sequence[Row], dialect: str) -> exp.Expr:
    types = [_engine_type(c.type, dialect) for c in columns]
    names = [exp.to_identifier(c.name, quoted=True) for c in columns]
    if not rows:  # one row of NULLs, filtered away: the columns keep their types
        select = exp.select(
            *(
                exp.alias_(exp.cast(exp.null(), t), n, copy=False)
                for t, n in zip(types, names, strict=True)
            )
        )
        return select.where(exp.false()).subquery()
    values = exp.values(
        [
            tuple(
                [
                    exp.Literal.number(i),
                    *(_value(v, t, dialect) for v, t in zip(row, types, strict=True)),
                ]
            )
            for i, row in enumerate(rows)
        ],
        alias="t",
        columns=[_ORDER, *(c.name for c in columns)],
    )
    for identifier in values.args["alias"].columns:
        identifier.set("quoted", True)
    order = exp.column(_ORDER, table="t", quoted=True)
    select = exp.select(*(exp.column(n.this, table="t", quoted=True) for n in names))
    return select.from_(values).order_by(order).subquery()


def engine_type(bigquery_type: str, dialect: str) -> exp.DataType:
    """A BigQuery type as the engine's (ARRAY: jsonb on PostgreSQL)."""
    return _engine_type(bigquery_type, dialect)


def _engine_type(bigquery_type: str, dialect: str) -> exp.DataType:
    built = exp.DataType.build(bigquery_type, dialect="bigquery")
    if dialect == "postgres" and built.is_type(exp.DataType.Type.ARRAY):
        return exp.DataType.build("JSONB", dialect="postgres")
    return built


def _value(value: Any, type_: exp.DataType, dialect: str) -> exp.Expr:
    if value is None:
        return exp.cast(exp.null(), type_)
    if type_.is_type(exp.DataType.Type.JSONB):
        return exp.cast(exp.Literal.string(json.dumps(value, allow_nan=False)), type_)
    if type_.is_type(exp.DataType.Type.ARRAY):
        items = [_struct(item) if isinstance(item, dict) else exp.convert(item) for item in value]
        return exp.cast(exp.Array(expressions=items), type_)
    if isinstance(value, float):  # as text: the engine parses it to the same double
        text = repr(value) if math.isfinite(value) else _NON_FINITE[str(value)]
        return exp.cast(exp.Literal.string(text), type_)
    return exp.cast(exp.convert(value), type_)


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _struct(item: dict[str, Any]) -> exp.Expr:
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(k), expression=exp.convert(v))
            for k, v in item.items()
        ]
    )
