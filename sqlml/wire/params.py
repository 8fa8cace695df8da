"""Bind parameters -> Python values: PostgreSQL's text and binary input formats, per value.

Theory of operation. The way in is per value: ``decode_parameter`` turns one Bind parameter
into the Python value DuckDB binds. Text goes through parsers that accept what PostgreSQL's
input functions accept (boolin's prefixes, ' 1', 'Infinity', bytea hex and escape format,
interval unit lists, array_in's braces and quotes) and fail with PostgreSQL's SQLSTATEs; binary
is read in the layouts of the send functions that types.py writes (big-endian fixed widths from
the 2000 epoch, numeric's base-10000 digits, array_send). Intervals become timedelta, as DuckDB
binds no months. copy.py's CopyInParser decodes COPY FROM values with the same
``_decode_text`` and ``_decode_binary``. The module does no I/O: bytes in, Python values out.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
import re
import struct
import uuid
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.engines.pgtypes import (
    BOOL,
    BYTEA,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    JSONB,
    NUMERIC,
    OID,
    TIMESTAMP,
    TIMESTAMPTZ,
)
from sqlml.wire._values import (
    _DAY_US,
    _NUMERIC_HEAD,
    _NUMERIC_NAN,
    _NUMERIC_NEG,
    _NUMERIC_NINF,
    _NUMERIC_PINF,
    _STRINGS,
    _TYPES,
    _US,
    ELEMENT_OF,
    INTERVAL,
    TIME,
    UUID,
    Interval,
)

__all__ = ["decode_parameter"]

# -- values in: Bind parameters and COPY FROM ------------------------------------------------


def _bad(type_name: str, text: str, sqlstate: str = "22P02") -> errors.Error:
    return errors.from_sqlstate(sqlstate, f'invalid input syntax for type {type_name}: "{text}"')


def _out_of_range(type_name: str, text: str) -> errors.Error:
    return errors.from_sqlstate("22003", f'value "{text}" is out of range for type {type_name}')


def _bools() -> dict[str, bool]:
    """Every spelling boolin accepts: unique prefixes of true/yes/false/no, on/off, 1/0."""
    words = {"true": True, "yes": True, "false": False, "no": False}
    found = {word[:i]: value for word, value in words.items() for i in range(1, len(word) + 1)}
    return found | {"on": True, "off": False, "of": False, "1": True, "0": False}


_BOOLS = _bools()


def _parse_bool(text: str) -> bool:
    value = _BOOLS.get(text.strip().lower())
    if value is None:
        raise _bad("boolean", text)
    return value


_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_INT_RANGE = {INT2: ("smallint", 15), INT4: ("integer", 31), INT8: ("bigint", 63), OID: ("oid", 32)}


def _parse_int(text: str, oid: int) -> int:
    name, bits = _INT_RANGE[oid]
    if not _INT_TEXT.fullmatch(text):
        raise _bad(name, text)
    value = int(text)
    low = 0 if oid == OID else -(2**bits)
    if not low <= value < 2**bits:
        raise _out_of_range(name, text)
    return value


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_FLOAT_TEXT = re.compile(rf"\s*(?:{_NUMBER}|[+-]?(?:inf|infinity)|[+-]?nan)\s*", re.I)


def _parse_float(text: str, oid: int) -> float:
    name = "real" if oid == FLOAT4 else "double precision"
    if not _FLOAT_TEXT.fullmatch(text):
        raise _bad(name, text)
    value = float(text)
    if oid == FLOAT4 and math.isfinite(value):
        with np.errstate(over="ignore"):
            value = float(np.float32(value))
    overflow = math.isinf(value) and "inf" not in text.lower()
    if overflow or (value == 0 and re.search(r"[1-9]", text.lower().split("e")[0])):
        raise _out_of_range(name, text.strip())
    return value


_NUMERIC_TEXT = re.compile(rf"\s*(?:{_NUMBER}|[+-]?(?:inf|infinity)|nan)\s*", re.I)


def _parse_numeric(text: str) -> decimal.Decimal:
    if not _NUMERIC_TEXT.fullmatch(text):
        raise _bad("numeric", text)
    return decimal.Decimal(text.strip())


_BYTEA_ESCAPE = re.compile(r"\\(\\|[0-3][0-7]{2})|\\")


def _parse_bytea(text: str) -> bytes:
    """bytea input: hex ('\\x00ff') or escape format ('a\\000\\\\')."""
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError as e:
            raise _bad("bytea", text) from e
    out = bytearray()
    pos = 0
    for match in _BYTEA_ESCAPE.finditer(text):
        if not match.group(1):
            raise _bad("bytea", text)
        out += text[pos : match.start()].encode()
        escaped = match.group(1)
        out.append(92 if escaped == "\\" else int(escaped, 8))
        pos = match.end()
    return bytes(out + text[pos:].encode())


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as e:
        raise _bad("date", text, "22007") from e


def _parse_timestamp(text: str, oid: int) -> dt.datetime:
    """ISO 8601 timestamps; timestamp ignores a zone as PostgreSQL does, timestamptz without one
    is UTC (the session's TimeZone)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as e:
        name = "timestamp with time zone" if oid == TIMESTAMPTZ else "timestamp"
        raise _bad(name, text, "22007") from e
    if oid == TIMESTAMP:
        return value.replace(tzinfo=None)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _parse_time(text: str) -> dt.time:
    try:
        return dt.time.fromisoformat(text.strip())
    except ValueError as e:
        raise _bad("time without time zone", text, "22007") from e


_INTERVAL_UNITS = {
    **dict.fromkeys(("year", "years", "y"), (12, 0, 0)),
    **dict.fromkeys(("mon", "mons", "month", "months"), (1, 0, 0)),
    **dict.fromkeys(("week", "weeks", "w"), (0, 7, 0)),
    **dict.fromkeys(("day", "days", "d"), (0, 1, 0)),
    **dict.fromkeys(("hour", "hours", "h"), (0, 0, 3600 * _US)),
    **dict.fromkeys(("min", "mins", "minute", "minutes", "m"), (0, 0, 60 * _US)),
    **dict.fromkeys(("sec", "secs", "second", "seconds", "s"), (0, 0, _US)),
    **dict.fromkeys(("millisecond", "milliseconds", "ms"), (0, 0, 1000)),
    **dict.fromkeys(("microsecond", "microseconds", "us"), (0, 0, 1)),
}
_INTERVAL_PART = re.compile(
    r"\s*(?:([+-]?\d+(?:\.\d*)?)\s*([a-z]+)|([+-]?)(\d+):(\d+)(?::(\d+(?:\.\d*)?))?)", re.I
)


def _parse_interval(text: str) -> Interval:
    """PostgreSQL's interval output ('1 year 2 mons -3 days +04:05:06.5') and unit lists
    ('90 minutes'); fractions of a unit spill into the smaller fields as in PostgreSQL."""
    months, days, micros, pos = Fraction(0), Fraction(0), Fraction(0), 0
    for match in _INTERVAL_PART.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        if match.group(2):
            unit = _INTERVAL_UNITS.get(match.group(2).lower())
            if unit is None:
                raise _bad("interval", text, "22007")
            number = Fraction(match.group(1))
            months, days, micros = (
                months + number * unit[0],
                days + number * unit[1],
                micros + number * unit[2],
            )
        else:
            sign = -1 if match.group(3) == "-" else 1
            clock = (
                int(match.group(4)) * 3600
                + int(match.group(5)) * 60
                + Fraction(match.group(6) or 0)
            )
            micros += sign * clock * _US
    if pos != len(text.rstrip()) or not text.strip():
        raise _bad("interval", text, "22007")
    days += (months - int(months)) * 30
    micros += (days - int(days)) * _DAY_US
    return Interval(int(months), int(days), round(micros))


def _parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as e:
        raise _bad("uuid", text) from e


_TEXT_PARSERS: dict[int, Callable[[str], Any]] = {
    BOOL: _parse_bool,
    **{oid: functools.partial(_parse_int, oid=oid) for oid in (INT2, INT4, INT8, OID)},
    FLOAT4: lambda t: _parse_float(t, FLOAT4),
    FLOAT8: lambda t: _parse_float(t, FLOAT8),
    NUMERIC: _parse_numeric,
    BYTEA: _parse_bytea,
    DATE: _parse_date,
    TIMESTAMP: lambda t: _parse_timestamp(t, TIMESTAMP),
    TIMESTAMPTZ: lambda t: _parse_timestamp(t, TIMESTAMPTZ),
    TIME: _parse_time,
    INTERVAL: _parse_interval,
    UUID: _parse_uuid,
}
_ARRAY_TOKEN = re.compile(r'([{},])|"((?:[^"\\]|\\.)*)"|((?:[^{},"\\]|\\.)+)', re.S)
_BACKSLASHED = re.compile(r"\\(.)", re.S)


def _decode_text(text: str, oid: int) -> Any:
    """One value in PostgreSQL's text format as Python (strings for unknown types)."""
    if oid in ELEMENT_OF:
        return _parse_array(text, ELEMENT_OF[oid])
    parser = _TEXT_PARSERS.get(oid)
    return parser(text) if parser else text


def _parse_array(text: str, element: int) -> list[Any]:
    """array_in: '{1,NULL,"a \\"b\\""}', nested braces as nested lists."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for match in _ARRAY_TOKEN.finditer(text):
        if match.start() != pos:
            raise _bad("array", text)
        pos = match.end()
        if match.group(3) is not None and not match.group(3).strip():
            continue  # whitespace between tokens
        if match.group(1):
            tokens.append(("sep", match.group(1)))
        elif match.group(2) is not None:
            tokens.append(("quoted", match.group(2)))
        else:
            tokens.append(("bare", match.group(3).strip()))
    try:
        items, end = _array_items(tokens, 0, element)
    except IndexError as e:
        raise _bad("array", text) from e
    if end != len(tokens) or pos != len(text):
        raise _bad("array", text)
    return items


def _array_items(tokens: list[tuple[str, str]], pos: int, element: int) -> tuple[list[Any], int]:
    if tokens[pos] != ("sep", "{"):
        raise IndexError(pos)
    items: list[Any] = []
    item: Any
    pos += 1
    if tokens[pos] == ("sep", "}"):
        return items, pos + 1
    while True:
        kind, value = tokens[pos]
        if (kind, value) == ("sep", "{"):
            item, pos = _array_items(tokens, pos, element)
        elif kind == "sep":
            raise IndexError(pos)
        else:
            null = kind == "bare" and value.lower() == "null"
            item = None if null else _decode_text(_BACKSLASHED.sub(r"\1", value), element)
            pos += 1
        items.append(item)
        if tokens[pos] == ("sep", "}"):
            return items, pos + 1
        if tokens[pos] != ("sep", ","):
            raise IndexError(pos)
        pos += 1


_FIXED_RECV: dict[int, struct.Struct] = {
    **{BOOL: struct.Struct("?"), INT2: struct.Struct(">h"), INT4: struct.Struct(">i")},
    **{INT8: struct.Struct(">q"), OID: struct.Struct(">I"), FLOAT4: struct.Struct(">f")},
    **{FLOAT8: struct.Struct(">d"), DATE: struct.Struct(">i"), TIME: struct.Struct(">q")},
    **{TIMESTAMP: struct.Struct(">q"), TIMESTAMPTZ: struct.Struct(">q")},
    **{INTERVAL: struct.Struct(">qii")},
}
_PG_EPOCH = dt.datetime(2000, 1, 1)


def _from_fixed(oid: int, fields: tuple[Any, ...]) -> Any:
    value = fields[0]
    if oid == DATE:
        return dt.date(2000, 1, 1) + dt.timedelta(days=value)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        stamp = _PG_EPOCH + dt.timedelta(microseconds=value)
        return stamp.replace(tzinfo=dt.UTC) if oid == TIMESTAMPTZ else stamp
    if oid == TIME:
        return (dt.datetime.min + dt.timedelta(microseconds=value)).time()
    if oid == INTERVAL:
        return Interval(fields[2], fields[1], fields[0])
    return value


def _malformed(oid: int) -> errors.Error:
    name = _TYPES.get(ELEMENT_OF.get(oid, oid), (str(oid), 0))[0]
    return errors.ProtocolViolation(f"incorrect binary data format for type {name}")


def _decode_binary(data: bytes, oid: int) -> Any:
    """One value in PostgreSQL's binary (send) format as Python."""
    try:
        if oid in ELEMENT_OF:
            return _recv_array(data, oid)
        if oid in _FIXED_RECV:
            return _from_fixed(oid, _FIXED_RECV[oid].unpack(data))
        return _BINARY_PARSERS[oid](data)
    except (struct.error, ValueError, OverflowError) as e:
        raise _malformed(oid) from e


def _utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise errors.from_sqlstate("22021", "invalid byte sequence for encoding UTF8") from e


def _recv_numeric(data: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(data)
    specials = {_NUMERIC_NAN: "NaN", _NUMERIC_PINF: "Infinity", _NUMERIC_NINF: "-Infinity"}
    if sign in specials:
        return decimal.Decimal(specials[sign])
    if len(data) != _NUMERIC_HEAD.size + 2 * ndigits or sign not in (0, _NUMERIC_NEG):
        raise ValueError("numeric length")
    coefficient = 0
    for group in struct.unpack_from(f">{ndigits}H", data, _NUMERIC_HEAD.size):
        coefficient = coefficient * 10_000 + group
    exponent = 4 * (weight - ndigits + 1)
    if exponent > -dscale:  # restore the display scale's trailing zeros
        coefficient, exponent = coefficient * 10 ** (exponent + dscale), -dscale
    elif exponent < -dscale:  # drop the zeros padding the last base-10000 digit
        coefficient, exponent = coefficient // 10 ** (-dscale - exponent), -dscale
    digits = tuple(int(d) for d in str(coefficient))
    return decimal.Decimal((int(sign == _NUMERIC_NEG), digits, exponent))


def _recv_jsonb(data: bytes) -> str:
    if data[:1] != b"\x01":
        raise ValueError("unsupported jsonb version")
    return _utf8(data[1:])


_BINARY_PARSERS: dict[int, Callable[[bytes], Any]] = {
    **dict.fromkeys(_STRINGS - {0}, _utf8),
    0: bytes,
    BYTEA: bytes,
    NUMERIC: _recv_numeric,
    UUID: lambda data: uuid.UUID(bytes=data),
    JSONB: _recv_jsonb,
}


def _recv_array(data: bytes, oid: int) -> list[Any]:
    """array_recv: the header, dimensions and elements of array_send as nested lists."""
    ndim, _, element = struct.unpack_from(">iiI", data)
    dims = [struct.unpack_from(">i", data, 12 + 8 * i)[0] for i in range(ndim)]
    pos = 12 + 8 * ndim
    flat: list[Any] = []
    for _ in range(math.prod(dims) if ndim else 0):
        (length,) = struct.unpack_from(">i", data, pos)
        value = data[pos + 4 : pos + 4 + max(length, 0)]
        if length >= 0 and len(value) != length:
            raise ValueError("array element length")
        flat.append(None if length < 0 else _decode_binary(value, element))
        pos += 4 + max(length, 0)
    if pos != len(data):
        raise ValueError("array length")
    for n in reversed(dims[1:]):
        flat = [flat[i : i + n] for i in range(0, len(flat), n)]
    return flat


def _for_duckdb(value: Any) -> Any:
    """Intervals as timedelta (DuckDB binds no months from Python), inside arrays too."""
    if isinstance(value, Interval):
        if value.months:
            message = "interval parameters with months or years are not supported"
            raise errors.FeatureNotSupported(message, hint="Pass days, e.g. '30 days'.")
        return dt.timedelta(days=value.days, microseconds=value.microseconds)
    return [_for_duckdb(v) for v in value] if isinstance(value, list) else value


def decode_parameter(value: bytes | None, type_oid: int, format: int) -> Any:
    """A Bind parameter as the Python value to bind in DuckDB; None for NULL. Unknown types
    (and type OID 0) in text format stay strings; binary OID 0 stays bytes."""
    if value is None:
        return None
    if format == 0:
        return _for_duckdb(_decode_text(_utf8(value), type_oid))
    if format == 1:
        if (
            type_oid not in _BINARY_PARSERS
            and type_oid not in _FIXED_RECV
            and type_oid not in ELEMENT_OF
        ):
            raise errors.FeatureNotSupported(
                f"binary format for type OID {type_oid} is not supported"
            )
        return _for_duckdb(_decode_binary(value, type_oid))
    raise errors.InvalidParameterValue(f"unsupported format code: {format}")
