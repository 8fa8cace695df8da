"""``EXTRACT(part FROM column)`` in TRANSFORM: BigQuery's date and time parts of a DATE, DATETIME,
TIME or TIMESTAMP column, as an INT64 feature (a number; NULL in, NULL out).

Theory of operation. The parts have BigQuery's meaning in every dialect (its documentation of
EXTRACT is the reference): DAYOFWEEK 1 (Sunday) .. 7, WEEK counts weeks beginning on Sunday (or on
the day of ``WEEK(<WEEKDAY>)``) with the days before the first one in week 0, ISOWEEK and ISOYEAR
are ISO 8601's, SECOND is whole seconds and MILLISECOND / MICROSECOND the fraction of the second
(0..999, 0..999999). A TIMESTAMP's parts are in UTC, BigQuery's default time zone. A part the
column's type does not have (HOUR of a DATE) is 22023, as BigQuery refuses it.

One part is computed three ways from one tree ``Call('extract', (Lit(part), Lit(kind), Col))``
(the grammar writes ``(Lit(part), Col)``; :func:`typed` adds the column's kind at fit time):

- numpy, for the training matrix, and ONNX nodes, for the stored graph, from one formula
  written over temporal.py's tiny operations interface. The graph's input is a TIMESTAMP's Unix
  seconds (the days and the time of day by floor arithmetic) or the canonical text of the
  other three ('YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS.ffffff', 'HH:MM:SS.ffffff'). The text is parsed
  where it is: ONNX StringSplit (opset 20) and Cast of the pieces to DOUBLE, numpy through
  pyarrow's split. Parsing was chosen over feeding such a column differently because the graph's
  inputs are one per column and the column may also be used as it is (one-hot encoded); the
  canonical text has fixed separators, so the pieces are exact integers. The calendar parts then
  come from the day number (H. Hinnant's days_from_civil / civil_from_days, as temporal.py).
- compiled SQL, from the engine's own EXTRACT (in UTC for a TIMESTAMP), written so that DuckDB
  and PostgreSQL give BigQuery's values (:func:`part_sql`): the graph names each part's tensor
  (temporal.tensor_name) and compiled scoring makes it an input (temporal.promote_components),
  so neither the text parsing (StringSplit has no SQL translation) nor the arithmetic reaches
  the SQL compiler.

Exactness: every part is an integer computed from integers, except a TIMESTAMP's, whose Unix
seconds the graph holds as a double: exact to the microsecond within 1834..2106 (|seconds| <
2^32); further out MICROSECOND, and the second it rounds into, may differ by the double's
rounding (the compiled SQL reads the engine's value and stays exact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import numpy as np

from sqlml import errors
from sqlml.ml import temporal
from sqlml.ml.spec import Call, Col, Lit
from sqlml.ml.strings import NULL

if TYPE_CHECKING:
    from sqlglot import exp

    from sqlml.ml.graph import GraphBuilder

Array = np.ndarray[Any, Any]
T = TypeVar("T")
S = TypeVar("S")

DATE_PARTS = (
    *("DAYOFWEEK", "DAY", "DAYOFYEAR", "WEEK", "ISOWEEK"),
    *("MONTH", "QUARTER", "YEAR", "ISOYEAR"),
)
TIME_PARTS = ("HOUR", "MINUTE", "SECOND", "MILLISECOND", "MICROSECOND")
WEEKDAYS = ("SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY")
# WEEK(<WEEKDAY>): weeks beginning on that day
WEEK_PARTS = tuple(f"WEEK({day})" for day in WEEKDAYS)
PARTS = (*DATE_PARTS, *WEEK_PARTS, *TIME_PARTS)
# parts of BigQuery's EXTRACT that are not numbers
NOT_NUMBERS = ("DATE", "TIME", "DATETIME")
_KIND_PARTS = {
    temporal.DATE: (*DATE_PARTS, *WEEK_PARTS),
    temporal.TIME: TIME_PARTS,
    temporal.DATETIME: PARTS,
    temporal.TIMESTAMP: PARTS,
}
_TYPE_NAMES = {"date": "DATE", "time": "TIME", "datetime": "DATETIME", "timestamp": "TIMESTAMP"}


# -- types ---------------------------------------------------------------------------------------


def typed(call: Call, kinds: Mapping[str, str]) -> Call:
    """The grammar's ``extract(part, column)`` with the column's kind added (fit time): 42804
    for a column that is not a DATE, DATETIME, TIME or TIMESTAMP, 22023 for a part its type has
    not (BigQuery: "EXTRACT from DATE does not support the HOUR date part")."""
    part, column = _part(call), call.args[-1]
    assert isinstance(column, Col)
    kind = kinds.get(column.name, "numeric")
    if kind not in _KIND_PARTS:
        raise errors.DatatypeMismatch(
            f'EXTRACT takes a DATE, DATETIME, TIME or TIMESTAMP column; "{column.name}" is'
            f" {'a STRING' if kind == 'string' else 'not'}"
        )
    if part not in _KIND_PARTS[kind]:
        raise errors.InvalidParameterValue(
            f'EXTRACT from {_TYPE_NAMES[kind]} does not support the {part} part ("{column.name}")'
        )
    return Call("extract", (Lit(part), Lit(kind), column))


def _part(call: Call) -> str:
    part = call.args[0]
    assert isinstance(part, Lit)
    return str(part.value)


def _kind(call: Call) -> str:
    kind = call.args[1]
    assert isinstance(kind, Lit)
    return str(kind.value)


def _column(call: Call) -> str:
    column = call.args[-1]
    assert isinstance(column, Col)
    return column.name


# -- the parts, once over the operations interface -----------------------------------------------


@dataclass(frozen=True)
class _Text(Generic[T, S]):
    """What parsing the canonical text needs: S is a text array (numpy) or tensor (ONNX)."""

    piece: Callable[[S, str, int], S]  # the index-th piece of the text split at a separator
    number: Callable[[S], T]  # a piece (digits) as a number


class _Value(Generic[T, S]):
    """One column's value: its fields, each computed when a part asks for it."""

    def __init__(self, o: temporal.Ops[T], kind: str, value: T | S, text: _Text[T, S]):
        self.o, self.kind, self.value, self.text = o, kind, value, text

    # - from the text

    def _date_text(self) -> S:
        text: Any = self.value
        return text if self.kind == temporal.DATE else self.text.piece(text, " ", 0)

    def _time_text(self) -> S:
        text: Any = self.value
        return text if self.kind == temporal.TIME else self.text.piece(text, " ", 1)

    def _date_field(self, index: int) -> T:
        return self.text.number(self.text.piece(self._date_text(), "-", index))

    def _time_field(self, index: int) -> T:
        return self.text.number(self.text.piece(self._time_text(), ":", index))

    def _second_field(self, index: int) -> T:
        seconds = self.text.piece(self._time_text(), ":", 2)  # 'SS.ffffff'
        return self.text.number(self.text.piece(seconds, ".", index))

    # - the fields

    @property
    def _stamp(self) -> bool:
        return self.kind == temporal.TIMESTAMP

    @cached_property
    def seconds(self) -> T:
        return cast(T, self.value)  # (a TIMESTAMP: its Unix time in seconds)

    @cached_property
    def days(self) -> T:
        if self._stamp:
            return self.o.fdiv(self.seconds, 86400.0)
        return _days_from_civil(self.o, self.year, self.month, self.day)

    @cached_property
    def civil(self) -> tuple[T, T, T]:
        if self._stamp:
            return temporal.civil(self.o, self.days)
        return self._date_field(0), self._date_field(1), self._date_field(2)

    @property
    def year(self) -> T:
        return self.civil[0]

    @property
    def month(self) -> T:
        return self.civil[1]

    @property
    def day(self) -> T:
        return self.civil[2]

    @cached_property
    def of_day(self) -> T:
        """A TIMESTAMP's seconds since midnight (UTC), with the fraction."""
        return self.o.sub(self.seconds, self.o.times(self.days, 86400.0))

    @cached_property
    def hour(self) -> T:
        return self.o.fdiv(self.of_day, 3600.0) if self._stamp else self._time_field(0)

    @cached_property
    def minute(self) -> T:
        if not self._stamp:
            return self._time_field(1)
        return self.o.fdiv(self.o.sub(self.of_day, self.o.times(self.hour, 3600.0)), 60.0)

    @cached_property
    def second(self) -> T:
        if not self._stamp:
            return self._second_field(0)
        o = self.o
        hours_minutes = o.add(o.times(self.hour, 3600.0), o.times(self.minute, 60.0))
        return o.sub(o.floor(self.of_day), hours_minutes)

    @cached_property
    def micro(self) -> T:
        if not self._stamp:
            return self._second_field(1)
        o = self.o
        fraction = o.sub(self.of_day, o.floor(self.of_day))  # exact: no rounding in a subtraction
        return o.floor(o.plus(o.times(fraction, 1e6), 0.5))  # to the nearest microsecond


def _mod(o: temporal.Ops[T], a: T, b: float) -> T:
    return o.sub(a, o.times(o.fdiv(a, b), b))


def _days_from_civil(o: temporal.Ops[T], year: T, month: T, day: T) -> T:
    """Days since 1970-01-01 of a (year, month, day): days_from_civil (H. Hinnant)."""
    early = o.at_least(o.const(2.0), month)  # January and February end the March-based year
    y = o.sub(year, early)
    era = o.fdiv(y, 400.0)
    yoe = o.sub(y, o.times(era, 400.0))
    mp = _mod(o, o.plus(month, 9.0), 12.0)  # March = 0
    doy = o.add(o.fdiv(o.plus(o.times(mp, 153.0), 2.0), 5.0), o.plus(day, -1.0))
    doe = o.add(o.sub(o.add(o.times(yoe, 365.0), o.fdiv(yoe, 4.0)), o.fdiv(yoe, 100.0)), doy)
    return o.plus(o.add(o.times(era, 146097.0), doe), -719468.0)


def _weekday(v: _Value[T, Any]) -> T:
    """0 = Sunday .. 6 = Saturday (1970-01-01 was a Thursday)."""
    return _mod(v.o, v.o.plus(v.days, 4.0), 7.0)


def _year_day(v: _Value[T, Any]) -> T:
    """Days since January 1st (0-based)."""
    return v.o.sub(v.days, temporal.days_to_jan1(v.o, v.year))


def _week(v: _Value[T, Any], first: int) -> T:
    """Weeks beginning on weekday ``first`` (0 = Sunday); the days before the first: week 0."""
    o = v.o
    since_start = _mod(o, o.plus(v.days, 4.0 - first), 7.0)
    return o.fdiv(o.sub(o.plus(_year_day(v), 7.0), since_start), 7.0)


def _iso_thursday(v: _Value[T, Any]) -> T:
    """The day number of the Thursday of the ISO week (Monday to Sunday) the day is in."""
    o = v.o
    since_monday = _mod(o, o.plus(v.days, 3.0), 7.0)
    return o.plus(o.sub(v.days, since_monday), 3.0)


def _iso_year(v: _Value[T, Any]) -> T:
    return temporal.civil(v.o, _iso_thursday(v))[0]


def _iso_week(v: _Value[T, Any]) -> T:
    o = v.o
    since_jan1 = o.sub(_iso_thursday(v), temporal.days_to_jan1(o, _iso_year(v)))
    return o.plus(o.fdiv(since_jan1, 7.0), 1.0)


_PARTS: dict[str, Callable[[_Value[Any, Any]], Any]] = {
    "DAYOFWEEK": lambda v: v.o.plus(_weekday(v), 1.0),
    "DAY": lambda v: v.day,
    "DAYOFYEAR": lambda v: v.o.plus(_year_day(v), 1.0),
    "WEEK": lambda v: _week(v, 0),
    "ISOWEEK": _iso_week,
    "MONTH": lambda v: v.month,
    "QUARTER": lambda v: v.o.fdiv(v.o.plus(v.month, 2.0), 3.0),
    "YEAR": lambda v: v.year,
    "ISOYEAR": _iso_year,
    "HOUR": lambda v: v.hour,
    "MINUTE": lambda v: v.minute,
    "SECOND": lambda v: v.second,
    "MILLISECOND": lambda v: v.o.fdiv(v.micro, 1000.0),
    "MICROSECOND": lambda v: v.micro,
}


def _week_from(first: int) -> Callable[[_Value[Any, Any]], Any]:
    return lambda v: _week(v, first)


_PARTS.update({f"WEEK({day})": _week_from(i) for i, day in enumerate(WEEKDAYS)})


def _compute(o: temporal.Ops[T], part: str, kind: str, value: Any, text: _Text[T, Any]) -> T:
    return cast(T, _PARTS[part](_Value(o, kind, value, text)))


# a valid text in place of NULL, parsed like any other (the result is NULL again after)
_PLACEHOLDERS = {
    temporal.DATE: "1970-01-01",
    temporal.DATETIME: "1970-01-01 00:00:00.000000",
    temporal.TIME: "00:00:00.000000",
}


# -- numpy ---------------------------------------------------------------------------------------


def _numpy_text() -> _Text[Array, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    def piece(text: Any, separator: str, index: int) -> Any:
        return pc.list_element(pc.split_pattern(text, separator), index)

    def number(text: Any) -> Array:
        return np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))

    return _Text(piece, number)


def eval_numpy(call: Call, data: Mapping[str, Array]) -> Array:
    """The part's values (float64, NaN for NULL), one per row."""
    import pyarrow as pa

    part, kind, column = _part(call), _kind(call), data[_column(call)]
    o = temporal.numpy_ops()
    with np.errstate(all="ignore"):
        if kind == temporal.TIMESTAMP:
            seconds = np.asarray(column, dtype=np.float64)
            value: Array = _compute(o, part, kind, seconds, _numpy_text())
            return np.asarray(value + seconds * 0.0)  # NaN where the input is NULL
        text = np.asarray(column, dtype=object)
        missing = text == NULL
        filled = pa.array(np.where(missing, _PLACEHOLDERS[kind], text), pa.string())
        value = _compute(o, part, kind, filled, _numpy_text())
        return np.where(missing, np.nan, value)


# -- ONNX ----------------------------------------------------------------------------------------


def _onnx_text(g: GraphBuilder) -> _Text[str, str]:
    from onnx import TensorProto

    def piece(text: str, separator: str, index: int) -> str:
        pieces = g.op("StringSplit", text, delimiter=separator)  # [N, 1, most pieces]
        g.nodes[-1].output.append(f"{pieces}_count")  # (its second output, the counts: unused)
        at = g.const_exact(np.array(index, dtype=np.int64))
        return g.op("Gather", pieces, at, axis=2)

    def number(text: str) -> str:
        return g.op("Cast", text, to=TensorProto.DOUBLE)

    return _Text(piece, number)


def eval_onnx(call: Call, g: GraphBuilder, tensors: Mapping[str, str]) -> str:
    """The part as a DOUBLE tensor [N, 1] (NaN for NULL), named for compiled scoring
    (:func:`promoted_sql`); computed once per graph for a column and part."""
    from onnx import helper

    part, kind, column = _part(call), _kind(call), _column(call)
    name = temporal.tensor_name(column, f"{_PREFIX}{part}")
    if any(name in node.output for node in g.nodes):
        return name
    x, o = tensors[column], temporal.onnx_ops(g)
    if kind == temporal.TIMESTAMP:
        value = _compute(o, part, kind, x, _onnx_text(g))
        value = g.op("Add", value, g.op("Mul", x, g.const([[0.0]])))  # NaN where x is NULL
    else:
        missing = g.op("Equal", x, g.const(np.array([[NULL]], dtype=object)))
        placeholder = g.const(np.array([[_PLACEHOLDERS[kind]]], dtype=object))
        filled = g.op("Where", missing, placeholder, x)
        value = _compute(o, part, kind, filled, _onnx_text(g))
        value = g.op("Where", missing, g.const([[np.nan]]), value)
    g.nodes.append(helper.make_node("Identity", [value], [name]))
    return name


# -- compiled SQL: the engine's own EXTRACT ------------------------------------------------------

_PREFIX = "EXTRACT."  # after temporal's prefix: sqlml_timestamp_component:EXTRACT.<part>:<column>


def promoted_sql(model: Any, column: str, kind: str, ref: exp.Expr) -> dict[str, exp.Expr]:
    """SQL for each part of ``column`` the graph computes (the tensors compiled scoring turns
    into inputs), by name."""
    head = temporal.tensor_name("", _PREFIX)[:-1]  # the names without ':<column>'
    found = {}
    for node in model.graph.node:
        name = node.output[0] if node.op_type == "Identity" else ""
        part, colon, named = name[len(head) :].partition(":")
        if name.startswith(head) and colon and named == column and part in _PARTS:
            found[name] = part_sql(kind, part, ref)
    return found


def part_sql(kind: str, part: str, ref: exp.Expr) -> exp.Expr:
    """The part as DOUBLE in SQL that DuckDB and PostgreSQL compute alike, as BigQuery defines
    it: both engines' DOW counts from 0 = Sunday, their WEEK is ISO's, their MICROSECOND counts
    the whole seconds too (hence % 1000000), PostgreSQL's SECOND has the fraction."""
    from sqlglot import exp

    value = ref
    if kind == temporal.TIMESTAMP:
        value = exp.AtTimeZone(this=ref, zone=exp.Literal.string("UTC"))
    double = exp.DataType.build("DOUBLE")

    def field(unit: str) -> exp.Expr:
        extracted = exp.Extract(this=exp.var(unit), expression=value.copy())
        return exp.cast(extracted, exp.DataType.build("BIGINT"))

    def number(n: float) -> exp.Expr:
        return exp.cast(exp.Literal.number(n), double)

    def floor_div(a: exp.Expr, b: float) -> exp.Expr:
        return exp.func("floor", exp.Div(this=exp.cast(a, double), expression=number(b)))

    def mod(a: exp.Expr, b: int) -> exp.Expr:
        return exp.Mod(this=exp.paren(a), expression=exp.Literal.number(b))

    def week(first: int) -> exp.Expr:
        since_start = mod(exp.Add(this=field("dow"), expression=exp.Literal.number(7 - first)), 7)
        days = exp.Sub(
            this=exp.Add(this=field("doy"), expression=exp.Literal.number(6)),
            expression=since_start,
        )
        return floor_div(days, 7)

    micro = mod(field("microsecond"), 1000000)
    second = exp.Extract(this=exp.var("second"), expression=value.copy())
    parts: dict[str, Callable[[], exp.Expr]] = {
        "DAYOFWEEK": lambda: exp.Add(this=field("dow"), expression=exp.Literal.number(1)),
        "DAY": lambda: field("day"),
        "DAYOFYEAR": lambda: field("doy"),
        "WEEK": lambda: week(0),
        "ISOWEEK": lambda: field("week"),
        "MONTH": lambda: field("month"),
        "QUARTER": lambda: field("quarter"),
        "YEAR": lambda: field("year"),
        "ISOYEAR": lambda: field("isoyear"),
        "HOUR": lambda: field("hour"),
        "MINUTE": lambda: field("minute"),
        "SECOND": lambda: exp.func("floor", exp.cast(second, double)),
        "MILLISECOND": lambda: floor_div(micro, 1000),
        "MICROSECOND": lambda: micro,
    }
    if part.startswith("WEEK("):
        return exp.cast(week(WEEKDAYS.index(part[5:-1])), double)
    return exp.cast(parts[part](), double)
