"""Arrow <-> PostgreSQL wire values, checked against a real PostgreSQL 15 server.

One table of cases (an Arrow column, the PostgreSQL type, and how to build the same values in
SQL). For each case the server is asked once for its text output (``x::text``), the column's
type OID, and ``COPY ... TO STDOUT`` in text, csv and binary format; the encoder must match
all of them byte for byte, decode_parameter must read the server's values back, and
CopyInParser fed the server's COPY output must rebuild the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlml import errors
from sqlml.wire import types as t
from sqlml.wire.copy import (
    COPY_SIGNATURE,
    CopyInParser,
    copy_binary_header,
    copy_binary_trailer,
    copy_out,
)
from sqlml.wire.protocol import DataRow

D = decimal.Decimal
INT64_MAX = 2**63 - 1
DAY_US = 86_400_000_000
# timestamp from microseconds since 1970, exact (interval * float8 is not, past 2^53 us)
TS_US = (
    "timestamp '1970-01-01' + (%s::int8 / 86400000000) * interval '1 day'"
    " + (%s::int8 %% 86400000000) * interval '1 microsecond'"
)
TSTZ_US = f"({TS_US}) AT TIME ZONE 'UTC'"


@dataclass(frozen=True)
class Case:
    id: str
    array: pa.Array
    sql_type: str  # the PostgreSQL type of the same values
    params: list[Any]  # per row: the template's parameter (a tuple when it has several)
    template: str = "%s"
    decode: bool = True  # Python can hold the values: check decode_parameter
    copy_in: bool = True  # CopyInParser can rebuild the column


def same(case_id: str, values: list[Any], sql_type: str, **kw: Any) -> Case:
    """A case whose Arrow values are passed to PostgreSQL as they are."""
    array = kw.pop("array", None) or pa.array(values, kw.pop("type", None))
    return Case(case_id, array, sql_type, list(values), **kw)


def micros(array: pa.Array) -> list[Any]:
    raw = array.cast(pa.timestamp("us", array.type.tz)).cast(pa.int64()).to_pylist()
    return [(v, v) for v in raw]


def timestamps(case_id: str, raw: list[int | None], arrow_type: pa.DataType, **kw: Any) -> Case:
    array = pa.array(raw, pa.int64()).cast(arrow_type)
    template, sql_type = (TSTZ_US, "timestamptz") if arrow_type.tz else (TS_US, "timestamp")
    return Case(case_id, array, sql_type, micros(array), template, **kw)


FLOATS = [0.0, -0.0, 0.1, 100.0, 1e100, 1e-300, 1e300, 1.5e-7, 1e15, 1.5e15, 1e16]
FLOATS += [123456789012345.6, 1e-5, 1e-4, 1.5e-4, 5e-324, 1.7976931348623157e308, 2.5]
FLOATS += [-1e-7, 12345678901.5, 0.30000000000000004, 1e-6, 9.5e-7, 1e10, -1e14, 1e22]
FLOATS += [math.nan, math.inf, -math.inf, None]
FLOAT4S = [0.1, 100.0, 1e6, 123456.7, 1e-5, 3.4e38, math.nan, math.inf, -0.0, 1.5e-7, 1e10]
FLOAT4S += [99999.0, 999999.0, 1.17549435e-38, 1e-45, None]
STRINGS = ["", "a b", 'x"y', "back\\slash", "comma,", "{brace}", "(paren)", "ünïcödé ✓"]
STRINGS += ["tab\tnew\nline\rcr", "NULL", "null", " lead", "\\.", "semi;colon", "\x01", None]
RAW_TS = [0, 1, 946_684_800_000_000, -1, 2_147_483_648_123_456, 4_102_444_800_500_000]
RAW_TS += [-2_208_988_800_000_000, -62_135_596_800_000_000, 253_402_300_800_000_000, None]
BC_TS = [-62_135_596_800_000_001, -63_524_839_200_000_000, -210_000_000_000_000_000]
UUIDS = ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", None]
RECORDS = [
    {"a": 1, "b": "abc"},
    {"a": None, "b": ""},
    {"a": 2, "b": "a(b"},
    {"a": 3, "b": 'x"y\\z'},
    None,
    {"a": None, "b": None},
    {"a": -4, "b": "with space"},
]
INTERVALS = [(14, 3, 14_706_500_000), (0, 0, 0), (-14, 0, 0), (1, -1, 0), (0, -1, 7_200_000_000)]
INTERVALS += [(-1, 1, -1000), (0, 0, -500_000), (25, 400, 1), (-12, -1, 1)]

CASES = [
    same("bool", [True, False, None], "boolean"),
    same("int8", [-128, 127, 0, None], "smallint", type=pa.int8()),
    same("int16", [-32768, 32767, None], "smallint", type=pa.int16()),
    same("int32", [-(2**31), 2**31 - 1, 0, None], "integer", type=pa.int32()),
    same("int64", [-(2**63), INT64_MAX, None], "bigint", type=pa.int64()),
    same("uint8", [0, 255], "smallint", type=pa.uint8()),
    same("uint16", [65535, None], "integer", type=pa.uint16()),
    same("uint32", [2**32 - 1], "bigint", type=pa.uint32()),
    same("uint64", [2**64 - 1, 0, None], "numeric(20,0)", type=pa.uint64()),
    same("float64", FLOATS, "float8", template="%s::float8"),
    same("float32", FLOAT4S, "float4", type=pa.float32(), template="%s::float4"),
    same("float16", [1.5, None, -2.0], "float4", type=pa.float16(), copy_in=False),
    same("numeric", [D("1.500"), D("-0.001"), D("0.000"), D("1234567.891"), None], "numeric(10,3)"),
    same("numeric_wide", [D("12345678901234567890.0123456789"), D("-1E-10")], "numeric(38,10)"),
    same("numeric_int", [D("10000"), D("-99999"), D("0")], "numeric(5,0)"),
    same(
        "numeric_big",
        [D("1E+30"), D("-123456789012345678901234567890.12345678")],
        "numeric(76,8)",
        type=pa.decimal256(76, 8),
    ),
    same("text", STRINGS, "text"),
    same("large_text", ["x", None, ""], "text", type=pa.large_string()),
    same("bytea", [b"", b"\x00\xff", b"\\", b"abc", None], "bytea"),
    Case(
        "date",
        pa.array([0, -719_162, 10_957, 2_932_896, 2_932_897, -1, None], pa.date32()),
        "date",
        [0, -719_162, 10_957, 2_932_896, 2_932_897, -1, None],
        "date '1970-01-01' + %s::int4",
        decode=False,
        copy_in=False,
    ),
    same("date_py", [dt.date(2000, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31), None], "date"),
    Case(
        "date_bc",
        pa.array([-719_163, -800_000], pa.date32()),
        "date",
        [-719_163, -800_000],
        "date '1970-01-01' + %s::int4",
        decode=False,
        copy_in=False,
    ),
    Case(
        "date_infinity",
        pa.array([2**31 - 1, -(2**31 - 1)], pa.date32()),
        "date",
        ["infinity", "-infinity"],
        "%s::date",
        decode=False,
        copy_in=False,
    ),
    timestamps("timestamp", RAW_TS, pa.timestamp("us"), decode=False, copy_in=False),
    timestamps("timestamp_py", [*RAW_TS[:7], None], pa.timestamp("us")),
    timestamps("timestamp_bc", BC_TS, pa.timestamp("us"), decode=False, copy_in=False),
    timestamps("timestamptz", [*RAW_TS[:7], None], pa.timestamp("us", "UTC")),
    timestamps(
        "timestamptz_bc",
        BC_TS + RAW_TS[8:],
        pa.timestamp("us", "Etc/UTC"),
        decode=False,
        copy_in=False,
    ),
    timestamps("timestamp_s", [0, 1_600_000_000, None], pa.timestamp("s")),
    timestamps("timestamp_ms", [1_600_000_000_123, -1], pa.timestamp("ms")),
    timestamps("timestamp_ns", [1_600_000_000_123_456_000, -1000], pa.timestamp("ns")),
    Case(
        "timestamp_infinity",
        pa.array([INT64_MAX, -INT64_MAX], pa.timestamp("us")),
        "timestamp",
        ["infinity", "-infinity"],
        "%s::timestamp",
        decode=False,
        copy_in=False,
    ),
    Case(
        "time",
        pa.array([0, 1, 43_200_500_000, 86_399_999_999, None], pa.time64("us")),
        "time",
        [0, 1, 43_200_500_000, 86_399_999_999, None],
        "time '00:00' + %s * interval '1 microsecond'",
    ),
    Case(
        "time32",
        pa.array([3600, None], pa.time32("s")),
        "time",
        [3_600_000_000, None],
        "time '00:00' + %s * interval '1 microsecond'",
    ),
    Case(
        "duration",
        pa.array([0, 93_784_000_000, -500_000, 400 * DAY_US + 1, None], pa.duration("us")),
        "interval",
        [0, 93_784_000_000, -500_000, 400 * DAY_US + 1, None],
        "%s * interval '1 microsecond'",
    ),
    Case(
        "interval",
        pa.array(
            [pa.MonthDayNano([m, d, u * 1000]) for m, d, u in INTERVALS] + [None],
            pa.month_day_nano_interval(),
        ),
        "interval",
        [*INTERVALS, (None, None, None)],
        "make_interval(months => %s, days => %s) + %s * interval '1 microsecond'",
        decode=False,
    ),
    Case(
        "uuid",
        pa.array([None if u is None else uuid.UUID(u).bytes for u in UUIDS], pa.binary(16)),
        "uuid",
        UUIDS,
        "%s::uuid",
    ),
    Case(
        "uuid_ext",
        pa.ExtensionArray.from_storage(
            pa.uuid(),
            pa.array([None if u is None else uuid.UUID(u).bytes for u in UUIDS], pa.binary(16)),
        ),
        "uuid",
        UUIDS,
        "%s::uuid",
    ),
    Case(
        "json",
        pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": [1, 2]}', "null", None])),
        "json",
        ['{"a": [1, 2]}', "null", None],
    ),
    Case(
        "dictionary",
        pa.array(["a", "b b", "a", None]).dictionary_encode(),
        "text",
        ["a", "b b", "a", None],
    ),
    Case("null", pa.nulls(2), "text", [None, None]),
    same(
        "float8_array",
        [[1.5, None, 2.0], [], None, [math.nan, -2.5, 1e300]],
        "float8[]",
        type=pa.list_(pa.float64()),
    ),
    same("int8_array", [[1, 2, None], [], None, [None]], "int8[]", type=pa.list_(pa.int64())),
    same("int4_array", [[1, -2], [None, None]], "int4[]", type=pa.large_list(pa.int32())),
    same("list_view", [[1, None], [], None, [3]], "int8[]", type=pa.list_view(pa.int64())),
    same("bool_array", [[True, False, None]], "bool[]", type=pa.list_(pa.bool_())),
    same(
        "text_array",
        [
            ["a b", 'x"y', None, "", "null", "NULL", "{}", "a\\b", "ü", " lead", "x,y", "tab\t"],
            [],
            None,
        ],
        "text[]",
        type=pa.list_(pa.string()),
    ),
    same("bytea_array", [[b"\x00", None, b""]], "bytea[]", type=pa.list_(pa.binary())),
    same(
        "numeric_array",
        [[D("1.50"), None, D("-3.00")]],
        "numeric(5,2)[]",
        type=pa.list_(pa.decimal128(5, 2)),
    ),
    same("date_array", [[dt.date(2020, 1, 2), None]], "date[]", type=pa.list_(pa.date32())),
    same(
        "timestamp_array",
        [[dt.datetime(2020, 1, 2, 3, 4, 5, 600000), None]],
        "timestamp[]",
        type=pa.list_(pa.timestamp("us")),
    ),
    same("fixed_size_array", [[1.0, 2.0], None], "float8[]", type=pa.list_(pa.float64(), 2)),
    same(
        "nested_array",
        [[[1, 2], [3, None]], None, [[5]]],
        "int8[]",
        type=pa.list_(pa.list_(pa.int64())),
    ),
    Case(
        "record_array",
        pa.array(
            [[{"a": 1, "b": "x y"}, None], []],
            pa.list_(pa.struct([("a", pa.int64()), ("b", pa.string())])),
        ),
        "record[]",
        [(True, 1, "x y"), (False, None, None)],
        "CASE WHEN %s::bool THEN ARRAY[ROW(%s::int8, %s::text), NULL] ELSE '{}' END",
        decode=False,
        copy_in=False,
    ),
    Case(
        "record",
        pa.array(RECORDS, pa.struct([("a", pa.int64()), ("b", pa.string())])),
        "record",
        [(r is not None, *(r or {"a": None, "b": None}).values()) for r in RECORDS],
        "CASE WHEN %s THEN ROW(%s::int8, %s::text) END",
        decode=False,
        copy_in=False,
    ),
    # the emulated catalog's arrays of OIDs (OidType over int64: DuckDB has no oid type)
    same(
        "oid",
        [0, 26, 4294967295, None],
        "oid",
        array=pa.array([0, 26, 4294967295, None], pa.int64()).cast(t.OID_TYPE),
        copy_in=False,
    ),
    same(
        "oid_array",
        [[1, None, 26], [], None, [4294967295]],
        "oid[]",
        array=pa.array([[1, None, 26], [], None, [4294967295]]).cast(pa.list_(t.OID_TYPE)),
        copy_in=False,
    ),
]


@pytest.fixture(scope="module")
def pg(pg_server: str) -> Iterator[psycopg2.extensions.connection]:
    import pgcluster

    name = f"sqlml_wire_types_{os.getpid()}"
    con = psycopg2.connect(pgcluster.create_database(pg_server, name))
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()
    pgcluster.drop_database(pg_server, name)


@dataclass
class Server:
    """What PostgreSQL answers for one case."""

    text: list[str | None]  # x::text
    oid: int  # the column's type OID
    copy: dict[str, bytes]  # COPY (SELECT x ...) TO STDOUT, per format
    binary: list[bytes | None]  # the fields of the binary COPY


_answers: dict[str, Server] = {}


def source(cur: Any, case: Case) -> str:
    rows = []
    for i, param in enumerate(case.params):
        args = param if isinstance(param, tuple) else (param,)
        rows.append(cur.mogrify(f"({i}, ({case.template})::{case.sql_type})", args).decode())
    return f"(VALUES {', '.join(rows)}) AS t(i, x)"


def raw_text(pg: Any, cur: Any, query: str, oid: int) -> list[str | None]:
    """The column as the server's output function writes it, untouched by psycopg2."""
    raw = psycopg2.extensions.new_type((oid,), f"RAW{oid}", lambda value, _: value)
    psycopg2.extensions.register_type(raw, pg)
    cur.execute(query)
    return [row[0] for row in cur.fetchall()]


def copy_to(cur: Any, query: str, options: str) -> bytes:
    out = io.BytesIO()
    cur.copy_expert(f"COPY ({query}) TO STDOUT {options}", out)
    return out.getvalue()


def ask(pg: Any, case: Case) -> Server:
    if case.id not in _answers:
        with pg.cursor() as cur:
            query = f"SELECT x FROM {source(cur, case)} ORDER BY i"
            cur.execute(query + " LIMIT 0")
            oid = cur.description[0].type_code
            text = raw_text(pg, cur, query, oid)
            formats = {"text": "", "csv": "(FORMAT csv)", "binary": "(FORMAT binary)"}
            copy = {name: copy_to(cur, query, options) for name, options in formats.items()}
        _answers[case.id] = Server(text, oid, copy, binary_fields(copy["binary"])[0])
    return _answers[case.id]


def binary_fields(data: bytes) -> list[list[bytes | None]]:
    """COPY binary output as columns of field bytes."""
    assert data[:11] == COPY_SIGNATURE
    (extension,) = struct.unpack_from(">I", data, 15)
    pos, rows = 19 + extension, []
    while True:
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            assert pos == len(data)
            return [list(column) for column in zip(*rows, strict=True)] if rows else [[]]
        row = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, pos)
            row.append(None if length < 0 else data[pos + 4 : pos + 4 + length])
            pos += 4 + max(length, 0)
        rows.append(row)


def batch_of(*arrays: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(arrays), names=[f"c{i}" for i in range(len(arrays))])


def encoded(array: pa.Array, fmt: int) -> list[bytes | None]:
    return t.encode_columns(batch_of(array), [fmt])[0]


def as_text(values: list[bytes | None]) -> list[str | None]:
    return [None if v is None else v.decode() for v in values]


def feed_in_pieces(parser: CopyInParser, data: bytes, size: int = 7) -> list[pa.RecordBatch]:
    batches = []
    for start in range(0, len(data), size):
        parser.feed(data[start : start + size])
        if (found := parser.batch()) is not None:
            batches.append(found)
    if (last := parser.finish()) is not None:
        batches.append(last)
    return batches


def equal_values(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal_values(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def expected_python(value: Any, arrow_type: pa.DataType) -> Any:
    """What decode_parameter should give back for an Arrow value."""
    if isinstance(value, uuid.UUID) or value is None:
        return value
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp, for nanosecond timestamps
        return value.to_pydatetime()
    if isinstance(arrow_type, pa.UuidType | pa.JsonType):
        return expected_python(value, arrow_type.storage_type)
    if pa.types.is_dictionary(arrow_type):
        return value
    if pa.types.is_fixed_size_binary(arrow_type):
        return None if value is None else uuid.UUID(bytes=value)
    if isinstance(value, list):
        return [expected_python(v, arrow_type.value_type) for v in value]
    if pa.types.is_integer(arrow_type) and pa.types.is_uint64(arrow_type):
        return None if value is None else D(value)
    if pa.types.is_floating(arrow_type) and value is not None:
        return float(np.float32(value)) if not pa.types.is_float64(arrow_type) else value
    if pa.types.is_time(arrow_type) and value is not None:
        return value
    return value


# -- the table, against the server -----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_type_oid_matches_server(pg: Any, case: Case) -> None:
    assert t.wire_type(case.array.type).oid == ask(pg, case).oid


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_text_matches_server(pg: Any, case: Case) -> None:
    assert as_text(encoded(case.array, 0)) == ask(pg, case).text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_binary_matches_server(pg: Any, case: Case) -> None:
    assert encoded(case.array, 1) == ask(pg, case).binary


@pytest.mark.parametrize("fmt", ["text", "csv", "binary"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_copy_out_matches_server(pg: Any, case: Case, fmt: str) -> None:
    ours = copy_out(batch_of(case.array), fmt)
    if fmt == "binary":
        ours = copy_binary_header() + ours + copy_binary_trailer()
    assert ours == ask(pg, case).copy[fmt]


@pytest.mark.parametrize("fmt", ["text", "csv", "binary"])
@pytest.mark.parametrize("case", [c for c in CASES if c.copy_in], ids=lambda c: c.id)
def test_copy_in_reads_server_output(pg: Any, case: Case, fmt: str) -> None:
    schema = pa.schema([pa.field("x", case.array.type)])
    batches = feed_in_pieces(CopyInParser(schema, fmt), ask(pg, case).copy[fmt])
    got = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()
    column = got[0].column(0) if got else pa.array([], case.array.type)
    assert column.type == case.array.type
    assert encoded(column, 1) == encoded(case.array, 1)


@pytest.mark.parametrize("case", [c for c in CASES if c.decode], ids=lambda c: c.id)
def test_decode_parameter_reads_server_values(pg: Any, case: Case) -> None:
    server = ask(pg, case)
    expected = [expected_python(v, case.array.type) for v in case.array.to_pylist()]
    for fmt, values in (
        (0, [None if v is None else v.encode() for v in server.text]),
        (1, server.binary),
    ):
        got = [t.decode_parameter(v, server.oid, fmt) for v in values]
        assert all(equal_values(a, b) for a, b in zip(got, expected, strict=True)), (
            fmt,
            got,
            expected,
        )


def test_interval_parameters_read_server_text(pg: Any) -> None:
    """Intervals with months have no timedelta: decode_parameter refuses them; COPY keeps them."""
    server = ask(pg, next(c for c in CASES if c.id == "interval"))
    for text, parts in zip(server.text, [*INTERVALS, None], strict=True):
        if text is None or parts is None:
            continue
        months, days, us = parts
        if months:
            with pytest.raises(errors.FeatureNotSupported):
                t.decode_parameter(text.encode(), t.INTERVAL, 0)
        else:
            assert t.decode_parameter(text.encode(), t.INTERVAL, 0) == dt.timedelta(
                days=days, microseconds=us
            )


def test_many_columns_and_rows_match_server(pg: Any) -> None:
    cases = [c for c in CASES if c.id in ("text", "float64", "int64", "bool", "bytea", "numeric")]
    n = min(len(c.array) for c in cases)
    batch = batch_of(*(c.array.slice(0, n) for c in cases))
    with pg.cursor() as cur:
        columns = ", ".join(f"({c.template})::{c.sql_type}" for c in cases)
        rows = []
        for i in range(n):
            args = [
                p
                for c in cases
                for p in (c.params[i] if isinstance(c.params[i], tuple) else (c.params[i],))
            ]
            rows.append(cur.mogrify(f"({i}, {columns})", args).decode())
        names = ", ".join(f"c{i}" for i in range(len(cases)))
        query = f"SELECT {names} FROM (VALUES {', '.join(rows)}) AS t(i, {names}) ORDER BY i"
        assert copy_out(batch, "text") == copy_to(cur, query, "")
        assert copy_out(batch, "csv") == copy_to(cur, query, "(FORMAT csv)")
        binary = copy_binary_header() + copy_out(batch, "binary") + copy_binary_trailer()
        assert binary == copy_to(cur, query, "(FORMAT binary)")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(),
            st.floats(min_value=1e9, max_value=1e16),
            st.floats(min_value=1e-8, max_value=1e-3),
            st.floats(min_value=-1e-300, max_value=1e-300),
            st.integers(-(2**53), 2**53).map(float),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_float8_text_matches_server(pg: Any, values: list[float]) -> None:
    with pg.cursor() as cur:
        query = "SELECT x::float8 FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i"
        expected = raw_text(pg, cur, cur.mogrify(query, ([repr(v) for v in values],)).decode(), 701)
        assert as_text(encoded(pa.array(values, pa.float64()), 0)) == expected


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(width=32), min_size=1, max_size=300))
def test_float4_text_matches_server(pg: Any, values: list[float]) -> None:
    with pg.cursor() as cur:
        query = "SELECT x::float4 FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i"
        expected = raw_text(pg, cur, cur.mogrify(query, ([repr(v) for v in values],)).decode(), 700)
        assert as_text(encoded(pa.array(values, pa.float32()), 0)) == expected


# -- wire types ------------------------------------------------------------------------------

WIRE_TYPES = [
    (pa.bool_(), t.WireType(16, "bool", 1)),
    (pa.int8(), t.WireType(21, "int2", 2)),
    (pa.uint16(), t.WireType(23, "int4", 4)),
    (pa.uint32(), t.WireType(20, "int8", 8)),
    (pa.uint64(), t.WireType(1700, "numeric", -1, (20 << 16) + 4)),
    (pa.float16(), t.WireType(700, "float4", 4)),
    (pa.float64(), t.WireType(701, "float8", 8)),
    (pa.decimal128(10, 2), t.WireType(1700, "numeric", -1, (10 << 16 | 2) + 4)),
    (pa.large_string(), t.WireType(25, "text", -1)),
    (pa.binary(), t.WireType(17, "bytea", -1)),
    (pa.binary(16), t.WireType(2950, "uuid", 16)),
    (pa.uuid(), t.WireType(2950, "uuid", 16)),
    (pa.json_(), t.WireType(114, "json", -1)),
    (pa.date32(), t.WireType(1082, "date", 4)),
    (pa.timestamp("ns"), t.WireType(1114, "timestamp", 8)),
    (pa.timestamp("us", "Europe/Paris"), t.WireType(1184, "timestamptz", 8)),
    (pa.time64("us"), t.WireType(1083, "time", 8)),
    (pa.duration("s"), t.WireType(1186, "interval", 16)),
    (pa.month_day_nano_interval(), t.WireType(1186, "interval", 16)),
    (pa.list_(pa.float64()), t.WireType(1022, "_float8", -1)),
    (pa.list_(pa.int64()), t.WireType(1016, "_int8", -1)),
    (pa.list_(pa.string()), t.WireType(1009, "_text", -1)),
    (pa.list_(pa.bool_()), t.WireType(1000, "_bool", -1)),
    (pa.large_list(pa.int32()), t.WireType(1007, "_int4", -1)),
    (pa.list_(pa.decimal128(5, 2)), t.WireType(1231, "_numeric", -1, (5 << 16 | 2) + 4)),
    (pa.list_(pa.list_(pa.int16())), t.WireType(1005, "_int2", -1)),
    (pa.struct([("a", pa.int64())]), t.WireType(2249, "record", -1)),
    (pa.dictionary(pa.int8(), pa.string()), t.WireType(25, "text", -1)),
    (pa.null(), t.WireType(25, "text", -1)),
    (pa.map_(pa.string(), pa.int64()), t.WireType(25, "text", -1)),
]


@pytest.mark.parametrize(("arrow_type", "expected"), WIRE_TYPES, ids=str)
def test_wire_type(arrow_type: pa.DataType, expected: t.WireType) -> None:
    assert t.wire_type(arrow_type) == expected


def test_wire_field_sees_duckdb_json_metadata() -> None:
    marked = pa.field("j", pa.string(), metadata={"ARROW:extension:name": "arrow.json"})
    assert t.wire_field(marked).oid == t.JSON
    assert t.wire_field(pa.field("s", pa.string())).oid == t.TEXT


def test_duckdb_results_map_to_postgres_types() -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET arrow_lossless_conversion = true")
    sql = "SELECT '{}'::json j, uuid() u, interval 1 day i, 1.5::decimal(4,1) d, [1] l, {'a': 1} s"
    schema = con.sql(sql).arrow().read_all().schema
    assert [t.wire_field(f).oid for f in schema] == [
        t.JSON,
        t.UUID,
        t.INTERVAL,
        t.NUMERIC,
        1007,
        t.RECORD,
    ]


def test_unknown_type_is_sent_as_text() -> None:
    array = pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64()))
    assert encoded(array, 0) == [b"[('k', 1)]", None]
    assert encoded(array, 1) == [b"[('k', 1)]", None]


# -- rows ------------------------------------------------------------------------------------


def mixed_batch() -> pa.RecordBatch:
    return batch_of(
        pa.array([1.5, None, -0.0, 1e100]),
        pa.array(["a", "", None, "ü"]),
        pa.array([1, 2, None, 4], pa.int32()),
        pa.array([[1, None], [], None, [2]]),
    )


@pytest.mark.parametrize("formats", [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]])
def test_data_rows_equal_the_codec_datarows(
    formats: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = mixed_batch()
    columns = t.encode_columns(batch, formats)
    expected = b"".join(DataRow(tuple(row)).encode() for row in zip(*columns, strict=True))
    assert t.data_rows(batch, formats) == expected
    monkeypatch.setattr(t, "_CHUNK_ROWS", 3)  # rows assembled in several chunks
    assert t.data_rows(batch, formats) == expected


def test_data_rows_of_fixed_width_values_without_nulls() -> None:
    batch = batch_of(
        pa.array([1.5, -0.0, 2.0]), pa.array([1, 2, 3], pa.int16()), pa.array([True, False, True])
    )
    for formats in ([1, 1, 1], [0, 1, 1], [0, 0, 0]):
        columns = t.encode_columns(batch.slice(1), formats)
        expected = b"".join(DataRow(tuple(row)).encode() for row in zip(*columns, strict=True))
        assert t.data_rows(batch.slice(1), formats) == expected


def test_big_batches_use_every_core_with_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = mixed_batch()
    expected = t.data_rows(batch, [0, 1, 0, 1]), copy_out(batch, "binary")
    monkeypatch.setattr(t, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(t, "_CHUNK_ROWS", 2)
    assert (t.data_rows(batch, [0, 1, 0, 1]), copy_out(batch, "binary")) == expected


def test_data_rows_of_no_columns_and_sliced_batches() -> None:
    assert t.data_rows(pa.RecordBatch.from_pydict({}), []) == b""
    empty = pa.RecordBatch.from_arrays([pa.array([1, 2])], names=["a"]).select([])
    assert t.data_rows(empty, []) == DataRow(()).encode() * 2
    batch = mixed_batch().slice(1, 2)
    columns = t.encode_columns(batch, [0, 1, 0, 1])
    expected = b"".join(DataRow(tuple(row)).encode() for row in zip(*columns, strict=True))
    assert t.data_rows(batch, [0, 1, 0, 1]) == expected
    assert columns[1] == [b"", None]


def test_wrong_formats_are_refused() -> None:
    with pytest.raises(errors.ProtocolViolation):
        t.data_rows(mixed_batch(), [0])
    with pytest.raises(errors.InvalidParameterValue):
        t.encode_columns(mixed_batch(), [0, 2, 0, 0])
    with pytest.raises(errors.InvalidParameterValue):
        copy_out(mixed_batch(), "xml")


def test_ragged_nested_lists_are_refused_in_binary() -> None:
    array = pa.array([[[1, 2], [3]]], pa.list_(pa.list_(pa.int64())))
    with pytest.raises(errors.DataError) as caught:
        encoded(array, 1)
    assert caught.value.sqlstate == "2202E"
