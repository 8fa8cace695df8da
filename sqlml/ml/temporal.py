"""DATE, DATETIME, TIME and TIMESTAMP feature columns, as BigQuery ML's automatic preprocessing
treats them.

Theory of operation. BigQuery ML one-hot encodes DATE, DATETIME and TIME like strings (label
encodes them for boosted trees and random forests), NULL being a category of its own; a
TIMESTAMP (an absolute time) is expanded by linear and logistic regression into its Unix time in
seconds (NULL -> the training mean, then standardized) and calendar components one-hot encoded
with a NULL category of their own (:data:`COMPONENTS`, BigQuery's ``_TS_<part>_<column>``
names). The types map onto the engines as DATE = ``date``, DATETIME = ``timestamp`` without
time zone, TIME = ``time``, TIMESTAMP = ``timestamptz`` (DuckDB TIMESTAMPTZ, PostgreSQL
timestamp with time zone).

At the graph's input:
- ``date`` / ``datetime`` / ``time`` are a STRING holding a canonical text ('YYYY-MM-DD',
  'YYYY-MM-DD HH:MM:SS.ffffff', 'HH:MM:SS.ffffff', never the session's DateStyle), made the same
  way from Arrow at training (:func:`to_numpy`) and in SQL at scoring (:func:`input_sql`, rendered
  per dialect by sqlglot: DuckDB ``strftime``, PostgreSQL ``to_char``). Then the categorical
  encoders of features.py work on them unchanged.
- ``timestamp`` is one DOUBLE, its Unix time in seconds (UTC), ``EXTRACT(EPOCH FROM ts)`` in SQL.
  The components are computed inside the graph with floor/mod arithmetic (:func:`_components`,
  days to civil date by H. Hinnant's ``civil_from_days``), written once over a tiny operations
  interface that runs both on numpy and as ONNX nodes, so the compiled SQL and both runtime paths
  need nothing but the epoch.

Other model types than linear and logistic regression take a TIMESTAMP as its Unix time only
(NULL -> the mean; standardized where the model standardizes numbers; a plain number for
trees): BigQuery documents the expansion for those two only. Inside a TRANSFORM a TIMESTAMP is
its Unix time in seconds too (ML.STANDARD_SCALER(ts) scales it); a DATE, DATETIME or TIME is a
categorical column there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml.ml.features import NULL_CATEGORY, Array, NumericAuto, OneHot

if TYPE_CHECKING:  # sqlglot only where SQL is built: features.py (training) imports this module
    from sqlglot import exp

    from sqlml.ml.graph import GraphBuilder

DATE, DATETIME, TIME, TIMESTAMP = "date", "datetime", "time", "timestamp"
TEXT_KINDS = (DATE, DATETIME, TIME)  # one-hot / label encoded as their canonical text
KINDS = (*TEXT_KINDS, TIMESTAMP)

# the canonical text of each, as a strftime format (sqlglot renders it per dialect)
_FORMATS = {DATE: "%Y-%m-%d", DATETIME: "%Y-%m-%d %H:%M:%S.%f", TIME: "%H:%M:%S.%f"}


def kind_of(arrow_type: pa.DataType) -> str | None:
    """The temporal kind of an Arrow type, None for any other type."""
    if pa.types.is_date(arrow_type):
        return DATE
    if pa.types.is_time(arrow_type):
        return TIME
    if pa.types.is_timestamp(arrow_type):
        return DATETIME if arrow_type.tz is None else TIMESTAMP
    return None


def to_numpy(column: pa.ChunkedArray | pa.Array, kind: str) -> Array:
    """A temporal column as the graph takes it. Scoring SQL hands over the canonical text (or
    the epoch) already; training and scoring from Arrow convert the native type here."""
    if kind == TIMESTAMP:
        if pa.types.is_timestamp(column.type):
            micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
            column = pc.divide(pc.cast(micros, pa.float64()), 1e6)
        doubles = pc.cast(column, pa.float64())
        return np.asarray(doubles.to_numpy(zero_copy_only=False), dtype=np.float64)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = _canonical_text(column, kind)
    filled = pc.fill_null(pc.cast(column, pa.string()), NULL_CATEGORY)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object)


def _canonical_text(column: pa.ChunkedArray | pa.Array, kind: str) -> Any:
    if kind == DATE:
        return pc.cast(pc.cast(column, pa.date32()), pa.string())  # 'YYYY-MM-DD'
    if kind == TIME:
        return pc.cast(pc.cast(column, pa.time64("us")), pa.string())  # six fraction digits
    # a timestamp[us] formats its seconds with six fraction digits ("%S" -> "05.000123")
    return pc.strftime(pc.cast(column, pa.timestamp("us")), "%Y-%m-%d %H:%M:%S")


def input_sql(kind: str, ref: exp.Expr) -> exp.Expr:
    """The graph's input for a column in SQL (any dialect): the canonical text, NULL as
    :data:`NULL_CATEGORY`; a TIMESTAMP's epoch seconds as DOUBLE, NULL as NULL."""
    from sqlglot import exp

    if kind == TIMESTAMP:
        epoch = exp.Extract(this=exp.var("epoch"), expression=ref)
        return exp.cast(epoch, exp.DataType.build("DOUBLE"))
    value = ref
    if kind == TIME:  # strftime / to_char format timestamps: the time on a fixed day
        day = exp.cast(exp.Literal.string("2000-01-01"), exp.DataType.build("DATE"))
        value = exp.Add(this=day, expression=ref)
    text = exp.TimeToStr(this=value, format=exp.Literal.string(_FORMATS[kind]))
    return exp.func("coalesce", text, exp.Literal.string(NULL_CATEGORY))


# -- TIMESTAMP components: one formula, on numpy and as ONNX --------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class Ops(Generic[T]):
    """The arithmetic the components need: on numpy arrays or ONNX tensor names."""

    const: Callable[[float], T]
    add: Callable[[T, T], T]
    sub: Callable[[T, T], T]
    mul: Callable[[T, T], T]
    div: Callable[[T, T], T]
    floor: Callable[[T], T]
    at_least: Callable[[T, T], T]  # 1.0 where a >= b, else 0.0

    def fdiv(self, a: T, b: float) -> T:
        return self.floor(self.div(a, self.const(b)))

    def times(self, a: T, b: float) -> T:
        return self.mul(a, self.const(b))

    def plus(self, a: T, b: float) -> T:
        return self.add(a, self.const(b))


def numpy_ops() -> Ops[Array]:
    return Ops(
        const=lambda v: np.asarray(v, dtype=np.float64),
        add=np.add,
        sub=np.subtract,
        mul=np.multiply,
        div=np.divide,
        floor=np.floor,
        at_least=lambda a, b: np.where(a >= b, 1.0, 0.0),
    )


def onnx_ops(g: GraphBuilder) -> Ops[str]:
    return Ops(
        const=lambda v: g.const([[v]]),
        add=lambda a, b: g.op("Add", a, b),
        sub=lambda a, b: g.op("Sub", a, b),
        mul=lambda a, b: g.op("Mul", a, b),
        div=lambda a, b: g.op("Div", a, b),
        floor=lambda a: g.op("Floor", a),
        at_least=lambda a, b: g.to_double(g.op("GreaterOrEqual", a, b)),
    )


def _components(o: Ops[T], seconds: T) -> dict[str, T]:
    """BigQuery's TIMESTAMP components (UTC) from the Unix time in seconds; NULL stays NULL."""
    days = o.fdiv(seconds, 86400.0)
    of_day = o.sub(seconds, o.times(days, 86400.0))
    hour = o.fdiv(of_day, 3600.0)
    minute = o.fdiv(o.sub(of_day, o.times(hour, 3600.0)), 60.0)
    shifted = o.plus(days, 4.0)  # 1970-01-01 was a Thursday: 0 = Sunday
    weekday = o.sub(shifted, o.times(o.fdiv(shifted, 7.0), 7.0))
    year, month, day = civil(o, days)
    # week of the year, weeks beginning on Sunday (days before the first Sunday: week 0)
    yday = o.sub(days, days_to_jan1(o, year))
    week = o.fdiv(o.sub(o.plus(yday, 7.0), weekday), 7.0)
    return {
        "DOM": day,
        "DOW": o.plus(weekday, 1.0),  # 1 = Sunday ... 7 = Saturday, as EXTRACT(DAYOFWEEK)
        "MOY": month,
        "HOD": hour,
        "MOH": minute,
        "WOY": week,
        "YEAR": year,
    }


def civil(o: Ops[T], days: T) -> tuple[T, T, T]:
    """(year, month, day) of a day number (days since 1970-01-01): civil_from_days."""
    z = o.plus(days, 719468.0)
    era = o.fdiv(z, 146097.0)
    doe = o.sub(z, o.times(era, 146097.0))
    yoe_days = o.add(
        o.sub(doe, o.fdiv(doe, 1460.0)), o.sub(o.fdiv(doe, 36524.0), o.fdiv(doe, 146096.0))
    )
    yoe = o.fdiv(yoe_days, 365.0)
    doy = o.sub(doe, o.sub(o.add(o.times(yoe, 365.0), o.fdiv(yoe, 4.0)), o.fdiv(yoe, 100.0)))
    mp = o.fdiv(o.plus(o.times(doy, 5.0), 2.0), 153.0)
    day = o.plus(o.sub(doy, o.fdiv(o.plus(o.times(mp, 153.0), 2.0), 5.0)), 1.0)
    january = o.at_least(mp, o.const(10.0))  # January and February end the March-based year
    month = o.sub(o.plus(mp, 3.0), o.times(january, 12.0))
    year = o.add(o.add(yoe, o.times(era, 400.0)), january)
    return year, month, day


def days_to_jan1(o: Ops[T], year: T) -> T:
    """days_from_civil(year, 1, 1): January 1st is day 306 of the March-based year before."""
    before = o.plus(year, -1.0)
    era = o.fdiv(before, 400.0)
    yoe = o.sub(before, o.times(era, 400.0))
    doe = o.plus(o.sub(o.add(o.times(yoe, 365.0), o.fdiv(yoe, 4.0)), o.fdiv(yoe, 100.0)), 306.0)
    return o.plus(o.add(o.times(era, 146097.0), doe), -719468.0)


def component_name(part: str, column: str) -> str:
    """BigQuery's processed_input name of a component: ``_TS_DOW_<column>``."""
    return f"_TS_{part}_{column}"


def components_numpy(seconds: Array) -> dict[str, Array]:
    with np.errstate(all="ignore"):
        return _components(numpy_ops(), np.asarray(seconds, dtype=np.float64))


def components_onnx(g: GraphBuilder, seconds: str, column: str) -> dict[str, str]:
    """The components as ONNX tensors, each under its :func:`tensor_name` (an Identity node):
    compiled scoring finds them by it (:func:`promote_components`)."""
    from onnx import helper

    named = {}
    for part, tensor in _components(onnx_ops(g), seconds).items():
        named[part] = tensor_name(column, part)
        g.nodes.append(helper.make_node("Identity", [tensor], [named[part]]))
    return named


# -- compiled scoring: the engine's own EXTRACT for the components --------------------------------
# Written out as SQL trees, the floor/mod arithmetic of a component is thousands of nodes, and
# one-hot encoding repeats it once per category: past the compiler's expression budget
# (to_sql.MAX_TREE_NODES). So compiled scoring takes the components from the engine's EXTRACT
# (in UTC) instead: the Identity nodes that name them become graph inputs of the compiled copy
# of the graph. The stored graph, which onnxruntime runs, keeps the arithmetic; the tests check
# that both agree.

_TENSOR_PREFIX = "sqlml_timestamp_component:"


def tensor_name(column: str, part: str) -> str:
    return f"{_TENSOR_PREFIX}{part}:{column}"


def promote_components(model: Any) -> Any:
    """``model`` (modified) with each component tensor a graph input instead of computed."""
    from onnx import TensorProto, helper

    graph = model.graph
    named = [n for n in graph.node if n.op_type == "Identity" and _is_component(n.output[0])]
    for node in named:
        graph.node.remove(node)
        graph.input.append(
            helper.make_tensor_value_info(node.output[0], TensorProto.DOUBLE, [None, 1])
        )
    return model


def _is_component(name: str) -> bool:
    return name.startswith(_TENSOR_PREFIX)


def components_sql(column: str, ref: exp.Expr) -> dict[str, exp.Expr]:
    """Each component of a TIMESTAMP column as SQL (DuckDB and PostgreSQL alike), in UTC."""
    from sqlglot import exp

    utc = exp.AtTimeZone(this=ref, zone=exp.Literal.string("UTC"))

    def extract(unit: str) -> exp.Expr:
        return exp.Extract(this=exp.var(unit), expression=utc.copy())

    day_of_year, weekday = extract("doy"), extract("dow")  # DOW: 0 = Sunday in both engines
    days_on = exp.Sub(this=exp.Add(this=day_of_year, expression=_n(6)), expression=weekday)
    week = exp.func("floor", exp.Div(this=exp.paren(days_on), expression=_n(7)))
    parts: dict[str, exp.Expr] = {
        "DOM": extract("day"),
        "DOW": exp.Add(this=extract("dow"), expression=_n(1)),
        "MOY": extract("month"),
        "HOD": extract("hour"),
        "MOH": extract("minute"),
        "WOY": week,
        "YEAR": extract("year"),
    }
    double = exp.DataType.build("DOUBLE")
    return {tensor_name(column, p): exp.cast(e, double) for p, e in parts.items()}


def _n(value: int) -> exp.Expr:
    from sqlglot import exp

    return exp.cast(exp.Literal.number(value), exp.DataType.build("DOUBLE"))


# -- fitting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentOneHot(OneHot):
    """A TIMESTAMP component one-hot encoded: categories are numbers, NaN the NULL category;
    shown as BigQuery shows them (``'3'``, NULL)."""

    def info(self) -> dict[str, Any]:
        shown = [None if np.isnan(c) else str(int(c)) for c in self.categories]
        return {"column": self.name, "encoding": "one_hot", "categories": shown}


def fit_unix(name: str, seconds: Array, standardize: bool) -> NumericAuto:
    """The Unix time column: NULL -> the training mean ("the mean Unix time across the original
    columns", BigQuery's automatic preprocessing page), then standardized by the mean and
    standard deviation of the filled column (scikit-learn's SimpleImputer(strategy='mean')
    followed by StandardScaler), as any numeric column."""
    from sqlml import errors

    present = seconds[~np.isnan(seconds)]
    if present.size == 0:
        raise errors.UnusableTrainingData(f"feature {name} has only NULL values")
    mean = float(present.mean())
    filled = np.where(np.isnan(seconds), mean, seconds)
    std = float(filled.std()) if standardize else None
    return NumericAuto(name, mean, std or (1.0 if standardize else None))


def fit_component(name: str, values: Array) -> ComponentOneHot:
    uniques = np.unique(values.astype(np.float64))  # NaN (NULL) sorts last, kept once
    return ComponentOneHot(name, tuple(float(v) for v in uniques), numeric=True)


def expand_numpy(arrays: dict[str, Array], kinds: dict[str, str]) -> None:
    """Adds each TIMESTAMP column's components right after it (kind 'component')."""
    new_arrays: dict[str, Array] = {}
    new_kinds: dict[str, str] = {}
    for name, kind in kinds.items():
        new_arrays[name], new_kinds[name] = arrays[name], kind
        if kind == TIMESTAMP:
            for part, values in components_numpy(arrays[name]).items():
                new_arrays[component_name(part, name)] = values
                new_kinds[component_name(part, name)] = "component"
    arrays.clear()
    arrays.update(new_arrays)
    kinds.clear()
    kinds.update(new_kinds)


def expand_onnx(g: GraphBuilder, tensors: dict[str, str], timestamps: list[str]) -> None:
    for name in timestamps:
        for part, tensor in components_onnx(g, tensors[name], name).items():
            tensors[component_name(part, name)] = tensor
