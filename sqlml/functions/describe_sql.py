"""ML.DESCRIBE_DATA as the engine's own SQL: aggregates built as sqlglot trees over the input,
so the rows never leave the engine (DuckDB and PostgreSQL).

The query is ``WITH "__sqlml_rows" AS (input) SELECT <columns> FROM (one SELECT of aggregates
per input column, UNION ALL) ORDER BY the column's position``. Per column, by its type (the
kinds of sqlml.ml.statistics): counts for every column; for a numerical one the zero count,
MIN/MAX as text, AVG, STDDEV_SAMP, the median and the quantiles (PERCENTILE_CONT: linear
interpolation, as NumPy's default); for a categorical one COUNT(DISTINCT), AVG(LENGTH) of
strings, the bounds and the ``top_k`` most frequent values (a correlated GROUP BY, ties by
value in binary order); for an array its lengths; for an ordered type (dates, timestamps) its
bounds. The ARRAY output columns are lists on DuckDB and jsonb on PostgreSQL, as every ML
function's (functions/literal.py).

Why SQL here but not for ML.VALIDATE_DATA_SKEW/DRIFT: describing needs nothing from training,
so the engine computes it where the data is; the validate functions compare histograms whose
buckets must be those training computed (functions/monitoring.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp

from sqlml.functions import Column
from sqlml.functions.literal import engine_type
from sqlml.ml import statistics as st

ROWS = "__sqlml_rows"
ORDER = "__sqlml_n"


def render(
    schema: pa.Schema,
    settings: Mapping[str, Any],
    source: exp.Expr,
    columns: Sequence[Column],
    dialect: str,
) -> exp.Expr:
    """The rows of ML.DESCRIBE_DATA over ``source`` (the input query's tree)."""
    d = _Describe(dialect, columns, settings)
    branches = [d.branch(i, field) for i, field in enumerate(schema)]
    union: exp.Expr = branches[0]
    for branch in branches[1:]:
        union = exp.union(union, branch, distinct=False)
    inner = exp.Subquery(this=union, alias=exp.TableAlias(this=_id("d")))
    select = (
        exp.select(*(exp.column(c.name, "d", quoted=True) for c in columns))
        .from_(inner)
        .order_by(exp.column(ORDER, "d", quoted=True))
    )
    select = select.with_(_id(ROWS), as_=source)
    return select.subquery()


def _id(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


class _Describe:
    def __init__(self, dialect: str, columns: Sequence[Column], settings: Mapping[str, Any]):
        self.dialect = dialect
        self.types = {c.name: engine_type(c.type, dialect) for c in columns}
        self.names = [c.name for c in columns]
        self.quantiles = int(settings.get("num_quantiles", 2))
        self.lengths = int(settings.get("num_array_length_quantiles", 10))
        self.top_k = int(settings.get("top_k", 1))

    def branch(self, position: int, field: pa.Field) -> exp.Select:
        col = exp.column(field.name, ROWS, quoted=True)
        values: dict[str, exp.Expr] = {
            "name": exp.Literal.string(field.name),
            "num_rows": exp.Count(this=exp.Star()),
            "num_nulls": exp.Sub(this=exp.Count(this=exp.Star()), expression=exp.Count(this=col)),
            "num_values": exp.Count(this=col),
        }
        kind = st.kind_of(field.type)
        if kind == st.NUMERICAL:
            values.update(self._numerical(col))
        elif kind == st.CATEGORICAL:
            values.update(self._categorical(col, field))
        elif pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            values.update(self._array(col))
        elif _ordered(field.type):
            values.update(_bounds(col))
        out = [exp.alias_(exp.Literal.number(position), ORDER, quoted=True)]
        for name in self.names:
            value = values.get(name, exp.null())
            out.append(exp.alias_(exp.cast(value, self.types[name]), name, quoted=True))
        return exp.select(*out).from_(exp.table_(ROWS, quoted=True))

    def _numerical(self, col: exp.Expr) -> dict[str, exp.Expr]:
        double = exp.DataType.build("DOUBLE")
        return {
            "num_zeros": _count_if(col.eq(0)),
            **_bounds(col),
            "mean": exp.Avg(this=exp.cast(col, double)),
            "stdev": exp.StddevSamp(this=exp.cast(col, double)),
            "median": self._percentile(col, [0.5]),
            "quantiles": self._percentile(
                col, [i / self.quantiles for i in range(self.quantiles + 1)], array=True
            ),
        }

    def _categorical(self, col: exp.Expr, field: pa.Field) -> dict[str, exp.Expr]:
        values: dict[str, exp.Expr] = {
            "unique": exp.Count(this=exp.Distinct(expressions=[col])),
            "top_values": self._top(field.name),
        }
        if pa.types.is_boolean(field.type):
            as_int = exp.cast(col, exp.DataType.build("INT"))
            values["min"] = exp.GT(this=exp.Min(this=as_int), expression=exp.Literal.number(0))
            values["max"] = exp.GT(this=exp.Max(this=as_int), expression=exp.Literal.number(0))
            values["min"] = _bool_text(values["min"])
            values["max"] = _bool_text(values["max"])
        else:
            values["avg_string_length"] = exp.Avg(this=exp.Length(this=col))
            values.update(_bounds(col, collate=self.dialect == "postgres"))
        return values

    def _array(self, col: exp.Expr) -> dict[str, exp.Expr]:
        if self.dialect == "postgres":
            length: exp.Expr = exp.Anonymous(this="cardinality", expressions=[col])
        else:
            length = exp.Anonymous(this="len", expressions=[col])
        steps = [i / self.lengths for i in range(self.lengths + 1)]
        return {
            "min_array_length": exp.Min(this=length),
            "max_array_length": exp.Max(this=length),
            "avg_array_length": exp.Avg(this=length),
            "total_array_length": exp.Sum(this=length),
            "array_length_quantiles": self._percentile(length, steps, array=True, discrete=True),
        }

    def _percentile(
        self, col: exp.Expr, steps: Sequence[float], array: bool = False, discrete: bool = False
    ) -> exp.Expr:
        fractions: exp.Expr
        if array:
            fractions = exp.Array(expressions=[exp.Literal.number(repr(float(s))) for s in steps])
        else:
            fractions = exp.Literal.number(repr(float(steps[0])))
        double = exp.DataType.build("DOUBLE")
        value = exp.cast(col, double)
        if self.dialect == "postgres":
            function = exp.Anonymous(
                this="percentile_disc" if discrete else "percentile_cont", expressions=[fractions]
            )
            order = exp.Order(expressions=[exp.Ordered(this=value)])
            found: exp.Expr = exp.WithinGroup(this=function, expression=order)
            return exp.Anonymous(this="to_jsonb", expressions=[found]) if array else found
        name = "quantile_disc" if discrete else "quantile_cont"
        return exp.Anonymous(this=name, expressions=[value, fractions])

    def _top(self, name: str) -> exp.Expr:
        """The top_k (value, count) pairs, most frequent first, ties by value."""
        col = exp.column(name, ROWS, quoted=True)
        text = exp.cast(col, exp.DataType.build("TEXT"))
        v, n = exp.column("v", "g", quoted=True), exp.column("n", "g", quoted=True)
        key: exp.Expr = v
        if self.dialect == "postgres":
            key = exp.Collate(this=v, expression=exp.to_identifier("C", quoted=True))
        order = [exp.Ordered(this=n, desc=True), exp.Ordered(this=key)]
        text_key: exp.Expr = text.copy()
        if self.dialect == "postgres":
            text_key = exp.Collate(this=text_key, expression=exp.to_identifier("C", quoted=True))
        grouped = (
            exp.select(
                exp.alias_(text, "v", quoted=True),
                exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True),
            )
            .from_(exp.table_(ROWS, quoted=True))
            .where(exp.Not(this=exp.Is(this=col, expression=exp.null())))
            .group_by(text.copy())
            .order_by(
                exp.Ordered(this=exp.Count(this=exp.Star()), desc=True), exp.Ordered(this=text_key)
            )
            .limit(self.top_k)
        )
        if self.dialect == "postgres":
            pair: exp.Expr = exp.Anonymous(
                this="jsonb_build_object",
                expressions=[exp.Literal.string("value"), v, exp.Literal.string("count"), n],
            )
            agg: exp.Expr = exp.Anonymous(
                this="jsonb_agg", expressions=[exp.Order(this=pair, expressions=order)]
            )
        else:
            pair = exp.Struct(
                expressions=[
                    exp.PropertyEQ(this=exp.to_identifier("value"), expression=v),
                    exp.PropertyEQ(this=exp.to_identifier("count"), expression=n),
                ]
            )
            agg = exp.ArrayAgg(this=exp.Order(this=pair, expressions=order))
        inner = exp.Subquery(this=grouped, alias=exp.TableAlias(this=_id("g")))
        return exp.Subquery(this=exp.select(agg).from_(inner))


def _count_if(condition: exp.Expr) -> exp.Expr:
    return exp.Count(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))]))


def _bounds(col: exp.Expr, collate: bool = False) -> dict[str, exp.Expr]:
    text = exp.DataType.build("TEXT")
    key: exp.Expr = col
    if collate:  # (binary order, as DuckDB's and Python's)
        key = exp.Collate(this=col, expression=exp.to_identifier("C", quoted=True))
    return {"min": exp.cast(exp.Min(this=key), text), "max": exp.cast(exp.Max(this=key), text)}


def _bool_text(value: exp.Expr) -> exp.Expr:
    return exp.Case(
        ifs=[exp.If(this=value, true=exp.Literal.string("true"))],
        default=exp.Case(ifs=[exp.If(this=exp.Not(this=value), true=exp.Literal.string("false"))]),
    )


def _ordered(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_temporal(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    )
