"""Arrow columns -> PostgreSQL wire values: type mapping, column encoders, DataRow bytes.

Theory of operation. Results leave the engines as Arrow record batches and are encoded column
by column, never row by row: each column becomes one Arrow ``large_binary`` array holding every
value's wire bytes (text or binary format) and the column's nulls, computed by pyarrow.compute
kernels and numpy (big-endian ``astype`` for fixed-width binary values, casts and string
kernels for text). Rows are then assembled in one pass: a numpy record per row when every value
has the same width and none is NULL (binary numbers), else one ``binary_join_element_wise``
over the row headers, length prefixes and columns, whose result's data buffer *is* the
concatenated DataRow messages (or COPY lines or tuples). Arrays and composites run the same
encoders over their flattened children and are put back together with ``binary_join`` over the
list offsets. Arrow's kernels release the GIL, so a big batch's columns and row chunks are
encoded on every core.

Text output is exactly what PostgreSQL 15 prints with default settings (extra_float_digits 1,
DateStyle ISO, IntervalStyle postgres, bytea_output hex, TimeZone UTC). Where Arrow's own
formatting differs (floats near the fixed/exponent threshold or on a rounding bound, decimals
in scientific notation, years before 1 AD, infinite timestamps) only the rows concerned are
rendered in Python and patched in with ``replace_with_mask``. Python loops remain for numeric
in binary format, interval text and multi-dimensional arrays in binary format.

The way in lives apart: params.py turns Bind parameters into Python values (its
``decode_parameter`` is re-exported here), copy.py writes COPY TO data with these encoders
and reads COPY FROM data. The module does no I/O: Arrow in, bytes out.
"""

from __future__ import annotations

import decimal
import functools
import math
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.engines.pgtypes import (
    BOOL,
    BPCHAR,
    BYTEA,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    JSON,
    JSONB,
    NAME,
    NUMERIC,
    OID,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    VARCHAR,
)
from sqlml.wire._columns import (
    Ints,
    _as,
    _canonical,
    _fixed,
    _is_list,
    _join,
    _lengths,
    _mask_nulls,
    _numbers,
    _offsets,
    _payload,
    _prefixed,
    _replace,
    _rows_via_python,
    _valid,
    _validity,
)
from sqlml.wire._values import (
    _DAY_US,
    _NUMERIC_HEAD,
    _NUMERIC_NAN,
    _NUMERIC_NEG,
    _NUMERIC_NINF,
    _NUMERIC_PINF,
    _TYPES,
    _US,
    ARRAY_OF,
    CHAR,
    ELEMENT_OF,
    INTERVAL,
    RECORD,
    TIME,
    UNKNOWN,
    UUID,
    Interval,
)
from sqlml.wire.params import decode_parameter

__all__ = [
    "ARRAY_OF",
    "BOOL",
    "BPCHAR",
    "BYTEA",
    "CHAR",
    "DATE",
    "ELEMENT_OF",
    "FLOAT4",
    "FLOAT8",
    "INT2",
    "INT4",
    "INT8",
    "INTERVAL",
    "JSON",
    "JSONB",
    "NAME",
    "NUMERIC",
    "OID",
    "OID_TYPE",
    "RECORD",
    "TEXT",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "UNKNOWN",
    "UUID",
    "VARCHAR",
    "Interval",
    "OidType",
    "WireType",
    "data_rows",
    "decode_parameter",
    "encode_columns",
    "wire_field",
    "wire_type",
]


class OidType(pa.ExtensionType):  # type: ignore[misc]  # (pyarrow has no type hints)
    """int64 values that PostgreSQL has as ``oid``: sent as oid (4 bytes in binary). DuckDB has
    no such type; the emulated catalog's arrays of OIDs are cast to it, because a client may
    only know oid[] before it has read the catalog (asyncpg's type introspection query)."""

    def __init__(self) -> None:
        super().__init__(pa.int64(), "sqlml.oid")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    def __hash__(self) -> int:  # the type is a key of the encoders' lookups
        return hash(self.extension_name)

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> OidType:
        return cls()


OID_TYPE = OidType()


@dataclass(frozen=True)
class WireType:
    """A column's type as RowDescription announces it."""

    oid: int  # pg_type.oid
    name: str  # pg_type.typname ("_float8" for float8[])
    size: int  # pg_type.typlen: the byte width of fixed-width values, -1 for variable length
    modifier: int = -1  # atttypmod: ((precision << 16) | scale) + 4 for numeric, else -1


def _base(oid: int, modifier: int = -1) -> WireType:
    name, size = _TYPES[oid]
    return WireType(oid, name, size, modifier)


# Unsigned integers go to the smallest signed type holding them: uint8 -> int2, uint16 -> int4,
# uint32 -> int8, uint64 -> numeric(20, 0).
_SCALARS: dict[pa.DataType, int] = {
    **{pa.bool_(): BOOL, pa.int8(): INT2, pa.uint8(): INT2, pa.int16(): INT2},
    **{pa.uint16(): INT4, pa.int32(): INT4, pa.uint32(): INT8, pa.int64(): INT8},
    **{pa.float16(): FLOAT4, pa.float32(): FLOAT4, pa.float64(): FLOAT8},
    **{pa.string(): TEXT, pa.large_string(): TEXT, pa.string_view(): TEXT, pa.null(): TEXT},
    **{pa.binary(): BYTEA, pa.large_binary(): BYTEA, pa.binary_view(): BYTEA},
    **{pa.date32(): DATE, pa.date64(): DATE, pa.month_day_nano_interval(): INTERVAL},
}


def _numeric_type(arrow_type: pa.DataType) -> WireType:
    if arrow_type.scale < 0:
        return _base(NUMERIC)
    return _base(NUMERIC, ((arrow_type.precision << 16) | arrow_type.scale) + 4)


def _array_type(arrow_type: pa.DataType) -> WireType:
    element = wire_type(arrow_type.value_type)
    oid = element.oid if element.oid in ELEMENT_OF else ARRAY_OF[element.oid]
    return WireType(oid, "_" + _TYPES[ELEMENT_OF[oid]][0], -1, element.modifier)


_RULES: list[tuple[Callable[[pa.DataType], bool], Callable[[pa.DataType], WireType]]] = [
    (lambda t: isinstance(t, pa.JsonType), lambda t: _base(JSON)),
    (lambda t: isinstance(t, pa.UuidType), lambda t: _base(UUID)),
    (lambda t: isinstance(t, OidType), lambda t: _base(OID)),
    (lambda t: isinstance(t, pa.BaseExtensionType), lambda t: wire_type(t.storage_type)),
    (pa.types.is_dictionary, lambda t: wire_type(t.value_type)),
    (pa.types.is_timestamp, lambda t: _base(TIMESTAMPTZ if t.tz else TIMESTAMP)),
    (pa.types.is_time, lambda t: _base(TIME)),
    (pa.types.is_duration, lambda t: _base(INTERVAL)),
    (pa.types.is_decimal, _numeric_type),
    (pa.types.is_uint64, lambda t: _base(NUMERIC, (20 << 16) + 4)),
    (pa.types.is_fixed_size_binary, lambda t: _base(UUID if t.byte_width == 16 else BYTEA)),
    (_is_list, _array_type),
    (pa.types.is_struct, lambda t: _base(RECORD)),
]


def wire_type(arrow_type: pa.DataType) -> WireType:
    """The PostgreSQL type a column of this Arrow type is sent as; unknown types go as text."""
    oid = _SCALARS.get(arrow_type)
    if oid is not None:
        return _base(oid)
    for test, rule in _RULES:
        if test(arrow_type):
            return rule(arrow_type)
    return _base(TEXT)


def wire_field(field: pa.Field) -> WireType:
    """wire_type, plus json for a string field that DuckDB marked as JSON in its metadata."""
    meta = field.metadata or {}
    marks = (meta.get(b"ARROW:extension:name", b""), meta.get(b"ARROW:extension:metadata", b""))
    if pa.types.is_string(field.type) and any(b"json" in mark for mark in marks):
        return _base(JSON)
    return wire_type(field.type)


# -- text format ----------------------------------------------------------------------------


def _text(arr: pa.Array) -> pa.Array:
    """Each value's PostgreSQL text output, as large_string with arr's nulls."""
    arr = _canonical(arr)
    if pa.types.is_list(arr.type):
        return _array_text(arr)
    if pa.types.is_struct(arr.type):
        return _record_text(arr)
    return _as(_TEXT_ENCODERS.get(wire_type(arr.type).oid, _any_text)(arr), pa.large_string())


def _digits(arr: pa.Array) -> pa.Array:
    """Numbers as text: Arrow's cast to string is faster than to large_string, and numbers are
    short enough for 32-bit offsets below 80 million rows."""
    if len(arr) >= 80_000_000:
        return arr.cast(pa.large_string())
    return arr.cast(pa.string()).cast(pa.large_string())


def _any_text(arr: pa.Array) -> pa.Array:
    if pa.types.is_integer(arr.type):
        return _digits(arr)
    try:
        return arr.cast(pa.large_string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.large_string())


def _float_text(arr: pa.Array) -> pa.Array:
    """Arrow's shortest round-trip digits, laid out as PostgreSQL does. Python renders the rows
    where the two differ: Arrow prints exponents -6..9 in fixed point, PostgreSQL -4..14 (float4
    -4..5); and from 2^53 (float4: 2^24) a shortest candidate can sit exactly on the rounding
    interval's bound, which Arrow takes and PostgreSQL's Ryu (acceptBounds false) does not."""
    single = pa.types.is_float32(arr.type)
    values = _numbers(arr)
    text = _digits(arr)
    size = np.abs(values)
    special = ~np.isfinite(values)
    names = np.array(["NaN", "Infinity", "-Infinity"])
    text = _replace(text, special, names[np.where(np.isnan(values), 0, 1 + (values < 0))[special]])
    high = (9e5, 2e10) if single else (9e9, 2e15)
    odd = ((size >= 9e-7) & (size < 2e-4)) | ((size >= high[0]) & (size < high[1]))
    odd |= (size >= _EXACT_FROM[single]) & ~special
    text = _rows_via_python(text, odd, lambda i: _pg_float(float(values[i]), single))
    tiny = (size > 0) & (size < 1.1e-6)  # Arrow's e-7..e-9 have one digit, PostgreSQL's two
    if tiny.any():
        padded = pc.replace_substring_regex(text.filter(pa.array(tiny)), r"e-(\d)$", r"e-0\1")
        text = _replace(text, tiny, padded)
    return text


_EXACT_FROM = {False: 2.0**53, True: 2.0**24}  # from here on ulp >= 2: bounds can be integers


def _pg_float(x: float, single: bool) -> str:
    """x as PostgreSQL prints it: shortest round-trip digits, fixed point for decimal exponents
    -4..14 (float4: -4..5), else d.ddde+XX."""
    if math.isnan(x) or math.isinf(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    sign = "-" if math.copysign(1, x) < 0 else ""
    digits, exp = _shortest(abs(x), single)
    if digits == "0":
        return sign + "0"
    if -4 <= exp < (6 if single else 15):
        return sign + _fixed_point(digits, exp)
    point = "." + digits[1:] if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{point}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _shortest(x: float, single: bool) -> tuple[str, int]:
    """The shortest digits strictly inside x's rounding interval and the decimal exponent of
    the first. Below _EXACT_FROM no candidate can lie on a bound, so numpy's digits serve."""
    if x < _EXACT_FROM[single]:
        scientific = np.format_float_scientific(
            np.float32(x) if single else x, unique=True, trim="-"
        )
        mantissa, exp_text = scientific.split("e")
        return mantissa.replace(".", ""), int(exp_text)
    below = x - float(
        np.nextafter(np.float32(x), np.float32(0)) if single else math.nextafter(x, 0)
    )
    with np.errstate(over="ignore"):  # no spacing above the largest float4: it is as below
        above = float(np.spacing(np.float32(x))) if single else math.ulp(x)
    above = below if math.isinf(above) else above
    value, low, high = int(x) * 2, int(x) * 2 - int(below), int(x) * 2 + int(above)
    for length in range(1, 18):
        step = 10 ** max(len(str(int(x))) - length, 0)
        floor = int(x) // step
        for n in sorted((floor, floor + 1), key=lambda c: (abs(2 * c * step - value), c % 2)):
            if low < 2 * n * step < high:
                text = str(n * step)
                return text.rstrip("0"), len(text) - 1
    raise AssertionError(x)  # unreachable: x's own digits lie inside


def _fixed_point(digits: str, exp: int) -> str:
    if exp < 0:
        return "0." + "0" * (-exp - 1) + digits
    if exp + 1 >= len(digits):
        return digits + "0" * (exp + 1 - len(digits))
    return digits[: exp + 1] + "." + digits[exp + 1 :]


_PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01
_FIRST_DAY = -719_162  # 0001-01-01: Arrow prints no BC years
_INT32_MAX, _INT64_MAX = 2**31 - 1, 2**63 - 1
_UNIT_US = {"s": (_US, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}


def _raw(arr: pa.Array) -> Ints:
    """The integers under a temporal array (nulls as 0)."""
    width = pa.int32() if arr.type.bit_width == 32 else pa.int64()
    return _numbers(arr.view(width)).astype(np.int64)


def _micros(arr: pa.Array, raw: Ints) -> Ints:
    multiply, divide = _UNIT_US[arr.type.unit]
    return raw * multiply if divide == 1 else raw // divide


def _fraction_text(micros: Ints) -> pa.Array | str:
    """'.ffffff' without trailing zeros ('' when zero) for micros in 0..999999."""
    if not micros.any():
        return ""
    text = pc.utf8_rtrim(pa.array(micros + _US).cast(pa.large_string()), characters="0")
    return pc.utf8_rtrim(pc.utf8_replace_slice(text, 0, 1, "."), characters=".")


def _timestamp_text(arr: pa.Array) -> pa.Array:
    zone = "+00" if arr.type.tz else ""
    raw = _raw(arr)
    micros = _micros(arr, raw)
    seconds = micros // _US
    whole = pa.Array.from_buffers(
        pa.timestamp("s"), len(arr), [_validity(arr), pa.py_buffer(seconds)]
    )
    text = _join([whole.cast(pa.large_string()), _fraction_text(micros - seconds * _US), zone])
    odd = ((micros < _FIRST_DAY * _DAY_US) | (np.abs(raw) >= _INT64_MAX)) & _valid(arr)
    return _rows_via_python(text, odd, lambda i: _timestamp_py(int(raw[i]), int(micros[i]), zone))


def _timestamp_py(raw: int, micros: int, zone: str) -> str:
    if abs(raw) >= _INT64_MAX:
        return "infinity" if raw > 0 else "-infinity"
    days, time_of_day = divmod(micros, _DAY_US)
    date, era = _date_py(days)
    return f"{date} {_clock_py(time_of_day)}{zone}{era}"


def _date_text(arr: pa.Array) -> pa.Array:
    days = _raw(arr)
    odd = ((days < _FIRST_DAY) | (np.abs(days) >= _INT32_MAX)) & _valid(arr)
    return _rows_via_python(
        arr.cast(pa.large_string()), odd, lambda i: "".join(_date_py(int(days[i])))
    )


def _date_py(days: int) -> tuple[str, str]:
    """Days since 1970-01-01 as PostgreSQL's date and era suffix (proleptic Gregorian)."""
    if abs(days) >= _INT32_MAX:
        return ("infinity" if days > 0 else "-infinity"), ""
    z = days + 719_468
    era, day_of_era = divmod(z, 146_097)
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted + 2) // 5 + 1
    month = shifted + 3 if shifted < 10 else shifted - 9
    year = year_of_era + era * 400 + (month <= 2)
    bc = year <= 0
    return f"{1 - year if bc else year:04d}-{month:02d}-{day:02d}", " BC" if bc else ""


def _clock_py(micros: int) -> str:
    seconds, fraction = divmod(micros, _US)
    minutes, second = divmod(seconds, 60)
    text = f"{minutes // 60:02d}:{minutes % 60:02d}:{second:02d}"
    return text + ("." + f"{fraction:06d}".rstrip("0") if fraction else "")


def _time_text(arr: pa.Array) -> pa.Array:
    micros = _micros(arr, _raw(arr))
    seconds = micros // _US
    buffers = [_validity(arr), pa.py_buffer(seconds.astype(np.int32))]
    whole = pa.Array.from_buffers(pa.time32("s"), len(arr), buffers)
    return _join([whole.cast(pa.large_string()), _fraction_text(micros - seconds * _US)])


def _interval_parts(arr: pa.Array) -> tuple[Ints, Ints, Ints]:
    """months, days, microseconds of a duration or month_day_nano interval array."""
    if pa.types.is_duration(arr.type):
        micros = _micros(arr, _raw(arr))
        return np.zeros_like(micros), np.zeros_like(micros), micros
    layout = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])
    fields = np.frombuffer(arr.buffers()[1], layout, len(arr), arr.offset * 16)
    nanos = fields["nanos"].astype(np.int64)
    micros = np.sign(nanos) * (np.abs(nanos) // 1000)
    return fields["months"].astype(np.int64), fields["days"].astype(np.int64), micros


def _interval_text(arr: pa.Array) -> pa.Array:
    months, days, micros = _interval_parts(arr)
    parts = zip(months.tolist(), days.tolist(), micros.tolist(), strict=True)
    texts = [_interval_py(Interval(*p)) for p in parts]
    return _mask_nulls(pa.array(texts, pa.large_string()), arr)


def _interval_py(value: Interval) -> str:
    """Interval output in IntervalStyle postgres: '1 year 2 mons -3 days +04:05:06'."""
    years = int(value.months / 12)
    fields = ((years, "year"), (value.months - 12 * years, "mon"), (value.days, "day"))
    parts: list[str] = []
    before = False  # the previous field was negative: a positive one after it shows its sign
    for number, unit in fields:
        if number:
            sign = "+" if before and number > 0 else ""
            parts.append(f"{sign}{number} {unit}{'' if number == 1 else 's'}")
            before = number < 0
    if not parts or value.microseconds:
        sign = "-" if value.microseconds < 0 else ("+" if before else "")
        parts.append(sign + _clock_py(abs(value.microseconds)))
    return " ".join(parts)


def _numeric_text(arr: pa.Array) -> pa.Array:
    """Arrow's decimal text, but never in scientific notation (Arrow's for exponents < -6)."""
    text = arr.cast(pa.large_string())
    if not pa.types.is_decimal(arr.type):
        return text
    odd = np.asarray(pc.match_substring(text, "E").fill_null(False).to_numpy(zero_copy_only=False))
    return _rows_via_python(text, odd, lambda i: format(arr[i].as_py(), "f"))


_HEX = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), np.uint8).reshape(256, 2)
_UUID_HEX_SLOTS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _bytea_text(arr: pa.Array) -> pa.Array:
    col = arr.cast(pa.large_binary())
    offsets = _offsets(col)
    data = np.frombuffer(col.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
    hexed = pa.py_buffer(np.ascontiguousarray(_HEX[data]))
    buffers = [_validity(col), pa.py_buffer((offsets - offsets[0]) * 2), hexed]
    return _join(["\\x", pa.Array.from_buffers(pa.large_string(), len(col), buffers)])


def _uuid_text(arr: pa.Array) -> pa.Array:
    n = len(arr)
    data = np.frombuffer(arr.buffers()[1], np.uint8, 16 * n, 16 * arr.offset).reshape(n, 16)
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _UUID_HEX_SLOTS] = _HEX[data].reshape(n, 32)
    return _fixed(text, 36, n, _validity(arr)).cast(pa.large_string())


_TEXT_ENCODERS: dict[int, Callable[[pa.Array], pa.Array]] = {
    BOOL: lambda arr: pc.if_else(arr, "t", "f"),
    **dict.fromkeys((INT2, INT4, INT8, TEXT, JSON), _any_text),
    NUMERIC: _numeric_text,
    FLOAT4: _float_text,
    FLOAT8: _float_text,
    BYTEA: _bytea_text,
    DATE: _date_text,
    TIMESTAMP: _timestamp_text,
    TIMESTAMPTZ: _timestamp_text,
    TIME: _time_text,
    INTERVAL: _interval_text,
    UUID: _uuid_text,
}


def _list_parts(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A list array's offsets from 0 and the child values they index."""
    offsets = arr.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, start), arr.values.slice(start, end - start)


_ARRAY_QUOTE = r'^$|[{},"\\ \t\n\r\v\f]|^[Nn][Uu][Ll][Ll]$'
_RECORD_QUOTE = r'^$|[(),"\\ \t\n\r\v\f]'
_UNQUOTED = frozenset({BOOL, INT2, INT4, INT8, OID, FLOAT4, FLOAT8, NUMERIC, DATE, UUID})


def _quote(text: pa.Array, needs: str, escape: str) -> pa.Array:
    """text in double quotes where the regex ``needs`` matches, '"' and '\\' escaped."""
    escaped = pc.replace_substring_regex(text, r'(["\\])', escape)
    return pc.if_else(pc.match_substring_regex(text, needs), _join(['"', escaped, '"']), text)


def _array_text(arr: pa.Array) -> pa.Array:
    """array_out: '{1,2,NULL}', '{"a b","x\\"y"}', nested arrays as '{{1,2},{3,4}}'."""
    offsets, values = _list_parts(arr)
    elements = _text(values)
    if not pa.types.is_list(values.type) and wire_type(values.type).oid not in _UNQUOTED:
        elements = _quote(elements, _ARRAY_QUOTE, r"\\\1")
    lists = pa.ListArray.from_arrays(offsets, elements.fill_null("NULL"), mask=pc.is_null(arr))
    return _join(["{", pc.binary_join(lists, pa.scalar(",", pa.large_string())), "}"])


def _record_text(arr: pa.Array) -> pa.Array:
    """record_out: '(1,abc,,"a b")', a NULL field as nothing."""
    fields = [_quote(_text(child), _RECORD_QUOTE, r"\1\1").fill_null("") for child in arr.flatten()]
    inner = _join(fields, ",") if fields else pa.array([""] * len(arr), pa.large_string())
    return _mask_nulls(_join(["(", inner, ")"]), arr)


# -- binary format --------------------------------------------------------------------------


def _binary(arr: pa.Array) -> pa.Array:
    """Each value's PostgreSQL binary (send function) bytes, as large_binary with arr's nulls."""
    if isinstance(arr.type, OidType):
        return _oid_binary(arr.storage)
    arr = _canonical(arr)
    if pa.types.is_list(arr.type):
        return _array_binary(arr)
    if pa.types.is_struct(arr.type):
        return _record_binary(arr)
    oid = wire_type(arr.type).oid
    encoder = _BINARY_ENCODERS.get(oid)
    return encoder(arr) if encoder else _text(arr).cast(pa.large_binary())


def _big_endian(dtype: str) -> Callable[[pa.Array], pa.Array]:
    def encode(arr: pa.Array) -> pa.Array:
        fill = False if pa.types.is_boolean(arr.type) else 0
        data = _numbers(arr, fill).astype(dtype)
        return _fixed(data, data.itemsize, len(arr), _validity(arr))

    return encode


def _oid_binary(arr: pa.Array) -> pa.Array:
    try:
        unsigned = arr.cast(pa.uint32())
    except pa.ArrowInvalid as e:
        raise errors.from_sqlstate("22003", "OID out of range") from e
    return _big_endian(">u4")(unsigned)


def _shifted(dtype: str, shift: int, infinity: int) -> Callable[[pa.Array], pa.Array]:
    """Dates and timestamps: from 1970 to PostgreSQL's 2000 epoch, infinities kept."""

    def encode(arr: pa.Array) -> pa.Array:
        raw = _raw(arr)
        values = raw - shift if pa.types.is_date(arr.type) else _micros(arr, raw) - shift
        values = np.where(
            raw >= infinity, infinity, np.where(raw <= -infinity, -infinity - 1, values)
        )
        return _fixed(values.astype(dtype), np.dtype(dtype).itemsize, len(arr), _validity(arr))

    return encode


def _time_binary(arr: pa.Array) -> pa.Array:
    return _fixed(_micros(arr, _raw(arr)).astype(">i8"), 8, len(arr), _validity(arr))


def _interval_binary(arr: pa.Array) -> pa.Array:
    months, days, micros = _interval_parts(arr)
    data = np.empty(len(arr), [("micros", ">i8"), ("days", ">i4"), ("months", ">i4")])
    data["micros"], data["days"], data["months"] = micros, days, months
    return _fixed(data, 16, len(arr), _validity(arr))


def _numeric_binary(arr: pa.Array) -> pa.Array:
    scale = max(arr.type.scale, 0) if pa.types.is_decimal(arr.type) else 0
    values = [
        None if v is None else _numeric_send(decimal.Decimal(v), scale) for v in arr.to_pylist()
    ]
    return pa.array(values, pa.large_binary())


def _numeric_send(value: decimal.Decimal, dscale: int) -> bytes:
    """numeric_send: base-10000 digits with the weight of the first, sign and display scale."""
    if not value.is_finite():
        sign = _NUMERIC_NAN if value.is_nan() else (_NUMERIC_NINF if value < 0 else _NUMERIC_PINF)
        return _NUMERIC_HEAD.pack(0, 0, sign, 0)
    negative, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    shift = exponent % 4  # align the exponent down to a multiple of 4
    coefficient = int("".join(map(str, digits)) or "0") * 10**shift
    groups: list[int] = []  # base-10000 digits, least significant first
    while coefficient:
        coefficient, group = divmod(coefficient, 10_000)
        groups.append(group)
    low = (exponent - shift) // 4
    while groups and groups[0] == 0:
        groups.pop(0)
        low += 1
    weight = low + len(groups) - 1 if groups else 0
    sign = _NUMERIC_NEG if negative and groups else 0
    head = _NUMERIC_HEAD.pack(len(groups), weight, sign, max(dscale, -exponent, 0))
    return head + struct.pack(f">{len(groups)}H", *reversed(groups))


_BINARY_ENCODERS: dict[int, Callable[[pa.Array], pa.Array]] = {
    BOOL: _big_endian("u1"),
    INT2: _big_endian(">i2"),
    INT4: _big_endian(">i4"),
    INT8: _big_endian(">i8"),
    FLOAT4: _big_endian(">f4"),
    FLOAT8: _big_endian(">f8"),
    DATE: _shifted(">i4", _PG_EPOCH_DAYS, _INT32_MAX),
    TIMESTAMP: _shifted(">i8", _PG_EPOCH_DAYS * _DAY_US, _INT64_MAX),
    TIMESTAMPTZ: _shifted(">i8", _PG_EPOCH_DAYS * _DAY_US, _INT64_MAX),
    TIME: _time_binary,
    INTERVAL: _interval_binary,
    NUMERIC: _numeric_binary,
    BYTEA: lambda arr: arr.cast(pa.large_binary()),
    UUID: lambda arr: arr.cast(pa.large_binary()),
}


_ARRAY_HEAD = np.dtype(
    [("ndim", ">i4"), ("nulls", ">i4"), ("oid", ">u4"), ("n", ">i4"), ("lb", ">i4")]
)


def _array_binary(arr: pa.Array) -> pa.Array:
    """array_send: ndim, has-null flag, element OID, (length, lower bound 1) per dimension,
    then each element's length (-1 for NULL) and bytes. Nested lists go through Python."""
    offsets, values = _list_parts(arr)
    if pa.types.is_list(values.type):
        return _nested_array_binary(arr)
    elements = _binary(values)
    prefixes, lengths = _prefixed(elements)
    pieces = _join([prefixes, elements], b"", null_handling="replace", null_replacement=b"")
    body = pc.binary_join(
        pa.ListArray.from_arrays(offsets, pieces), pa.scalar(b"", pa.large_binary())
    )
    bounds = np.asarray(offsets.to_numpy(), dtype=np.int64)
    nulls = np.concatenate([[0], np.cumsum(lengths < 0)])
    head = np.zeros(len(arr), _ARRAY_HEAD)
    head["n"] = np.diff(bounds)
    head["ndim"], head["lb"] = head["n"] > 0, 1
    head["nulls"] = (nulls[bounds[1:]] - nulls[bounds[:-1]]) > 0
    head["oid"] = wire_type(values.type).oid
    heads = _fixed(head, _ARRAY_HEAD.itemsize, len(arr), _validity(arr))
    heads = pc.if_else(pa.array(head["n"] == 0), pc.binary_slice(heads, 0, 12), heads)
    return _join([heads, body], b"")


def _nested_array_binary(arr: pa.Array) -> pa.Array:
    """Lists of lists as multi-dimensional arrays, which PostgreSQL requires to be rectangular."""
    leaf_type = arr.type
    while pa.types.is_list(leaf_type):
        leaf_type = leaf_type.value_type
    oid = wire_type(leaf_type).oid
    out: list[bytes | None] = []
    for value in arr.to_pylist():
        out.append(None if value is None else _array_send_py(value, leaf_type, oid))
    return pa.array(out, pa.large_binary())


def _array_send_py(value: list[Any], leaf_type: pa.DataType, oid: int) -> bytes:
    dims: list[int] = []
    level: Any = value
    while isinstance(level, list):
        dims.append(len(level))
        level = level[0] if level else None
    flat = _flatten(value, dims)
    elements = _binary(pa.array(flat, leaf_type)).to_pylist()
    head = struct.pack(">iiI", len(dims) if flat else 0, None in elements, oid)
    head += b"".join(struct.pack(">ii", n, 1) for n in dims) if flat else b""
    body = (struct.pack(">i", -1) if e is None else struct.pack(">i", len(e)) + e for e in elements)
    return head + b"".join(body)


def _flatten(value: list[Any], dims: list[int]) -> list[Any]:
    if len(value) != dims[0] or (len(dims) > 1 and not all(isinstance(v, list) for v in value)):
        raise errors.from_sqlstate("2202E", "multidimensional arrays must have matching dimensions")
    if len(dims) == 1:
        return value
    return [leaf for v in value for leaf in _flatten(v, dims[1:])]


def _record_binary(arr: pa.Array) -> pa.Array:
    """record_send: field count, then per field its type OID, length (-1 for NULL) and bytes."""
    n = len(arr)
    pieces: list[pa.Array] = [_fixed(np.full(n, arr.type.num_fields, ">i4"), 4, n)]
    for child in arr.flatten():
        values = _binary(child)
        head = np.empty(n, [("oid", ">u4"), ("length", ">i4")])
        head["oid"], head["length"] = wire_type(child.type).oid, _lengths(values)
        pieces += [_fixed(head, 8, n), values]
    joined = _join(pieces, b"", null_handling="replace", null_replacement=b"")
    return _mask_nulls(joined, arr)


# -- rows -----------------------------------------------------------------------------------

_PARALLEL_FROM = 1 << 17  # values in a batch from which its columns and chunks use every core


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(os.cpu_count(), thread_name_prefix="sqlml-wire-types")


def _map(function: Callable[[Any], Any], items: list[Any], work: int) -> list[Any]:
    """function over items, on all cores for big batches: Arrow's kernels release the GIL."""
    if work < _PARALLEL_FROM or len(items) < 2 or (os.cpu_count() or 1) < 2:
        return [function(item) for item in items]
    return list(_pool().map(function, items))


def _encode(arr: pa.Array, fmt: int) -> pa.Array:
    if fmt == 0:
        return _text(arr).cast(pa.large_binary())
    if fmt == 1:
        return _binary(arr)
    raise errors.InvalidParameterValue(f"unsupported format code: {fmt}")


def _encoded(batch: pa.RecordBatch, formats: Sequence[int]) -> list[pa.Array]:
    if len(formats) != batch.num_columns:
        message = f"{len(formats)} result formats for {batch.num_columns} columns"
        raise errors.ProtocolViolation(message)
    work = batch.num_rows * batch.num_columns
    return _map(lambda pair: _encode(*pair), list(zip(batch.columns, formats, strict=True)), work)


def encode_columns(batch: pa.RecordBatch, formats: Sequence[int]) -> list[list[bytes | None]]:
    """Each column's values in wire format (0 text, 1 binary per column), None for NULL."""
    return [column.to_pylist() for column in _encoded(batch, formats)]


_CHUNK_ROWS = 1 << 16  # rows assembled per kernel call: keeps the intermediates in cache


def data_rows(batch: pa.RecordBatch, formats: Sequence[int]) -> bytes:
    """The DataRow messages of every row of the batch, back to back."""
    return _tuples(_encoded(batch, formats), batch.num_rows, data_row=True)


def _tuples(columns: list[pa.Array], n: int, data_row: bool) -> bytes:
    chunks = range(0, n, _CHUNK_ROWS)
    parts = [([c.slice(start, _CHUNK_ROWS) for c in columns], start) for start in chunks]
    work = n * len(columns)
    done = _map(lambda p: _tuple_chunk(p[0], min(_CHUNK_ROWS, n - p[1]), data_row), parts, work)
    return done[0].to_pybytes() if len(done) == 1 else b"".join(done)


def _tuple_chunk(columns: list[pa.Array], n: int, data_row: bool) -> pa.Buffer:
    """'D', int32 length, int16 count (COPY binary: the count only), then per value its int32
    length or -1 and its bytes."""
    widths = [_width(column) for column in columns]
    if n and all(widths):
        return _uniform_rows(columns, [w for w in widths if w], n, data_row)
    size = np.full(n, 6, np.int64)
    pieces: list[pa.Array] = []
    for column in columns:
        prefixes, lengths = _prefixed(column)
        size += 4 + np.maximum(lengths, 0)
        pieces += [prefixes, column]
    head = np.empty(n, _HEAD if data_row else _HEAD[2:])
    head["count"] = len(columns)
    if data_row:
        head["kind"], head["length"] = b"D", size
    heads = _fixed(head, head.itemsize, n)
    return _payload(_join([heads, *pieces], b"", null_handling="replace", null_replacement=b""))


_HEAD = [("kind", "S1"), ("length", ">i4"), ("count", ">i2")]


def _width(column: pa.Array) -> int | None:
    """The byte width shared by every value of a column without NULLs (None: they differ)."""
    lengths = np.diff(_offsets(column))
    if column.null_count or not len(lengths) or not lengths[0] or (lengths != lengths[0]).any():
        return None
    return int(lengths[0])


def _uniform_rows(columns: list[pa.Array], widths: list[int], n: int, data_row: bool) -> pa.Buffer:
    """Rows of fixed-width values without NULLs (binary numbers, dates, ...) as one numpy
    record per row: no join needed."""
    fields = [
        (f"{kind}{j}", f"V{w}" if kind == "v" else ">i4")
        for j, w in enumerate(widths)
        for kind in "nv"
    ]
    rows = np.empty(n, (_HEAD if data_row else _HEAD[2:]) + fields)
    rows["count"] = len(columns)
    if data_row:
        rows["kind"], rows["length"] = b"D", 6 + sum(4 + w for w in widths)
    for j, (column, width) in enumerate(zip(columns, widths, strict=True)):
        start = int(_offsets(column)[0])
        rows[f"n{j}"] = width
        rows[f"v{j}"] = np.frombuffer(column.buffers()[2], f"V{width}", n, start)
    return pa.py_buffer(rows)
