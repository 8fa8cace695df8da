"""Bind parameters in text and binary format: what decode_parameter reads and what it refuses
(with PostgreSQL's SQLSTATE). Checks against a real server are in test_wire_types.py."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import numpy as np
import pytest

from sqlml import errors
from sqlml.wire import types as t
from tests.test_wire_types import equal_values

D = decimal.Decimal

PARAMETERS = [
    (b"42", t.INT4, 0, 42),
    (b" -7 ", t.INT8, 0, -7),
    (b"\x00\x00\x00\x2a", t.INT4, 1, 42),
    (b"yes", t.BOOL, 0, True),
    (b"OFF", t.BOOL, 0, False),
    (b"f", t.BOOL, 0, False),
    (b"-Infinity", t.FLOAT8, 0, -math.inf),
    (b"1e-5", t.FLOAT4, 0, float(np.float32(1e-5))),
    (b"1.50", t.NUMERIC, 0, D("1.50")),
    (b"NaN", t.NUMERIC, 0, D("NaN")),
    (b"\\x00ff", t.BYTEA, 0, b"\x00\xff"),
    (b"a\\\\b\\001", t.BYTEA, 0, b"a\\b\x01"),
    (b"2020-01-02 03:04:05+02", t.TIMESTAMPTZ, 0, dt.datetime(2020, 1, 2, 1, 4, 5, tzinfo=dt.UTC)),
    (b"2020-01-02 03:04:05+02", t.TIMESTAMP, 0, dt.datetime(2020, 1, 2, 3, 4, 5)),
    (b"1 day 02:00:00", t.INTERVAL, 0, dt.timedelta(days=1, hours=2)),
    (b"90 minutes", t.INTERVAL, 0, dt.timedelta(minutes=90)),
    (b"-1 days +02:03:04.5", t.INTERVAL, 0, dt.timedelta(days=-1, hours=2, minutes=3, seconds=4.5)),
    (b"1.5 days", t.INTERVAL, 0, dt.timedelta(days=1, hours=12)),
    (b"{1,NULL,3}", 1007, 0, [1, None, 3]),
    (b'{"a b",NULL,"x\\"y", c , "NULL"}', 1009, 0, ["a b", None, 'x"y', "c", "NULL"]),
    (b"{{1,2},{3,4}}", 1016, 0, [[1, 2], [3, 4]]),
    (b"{}", 1022, 0, []),
    (b"anything", 0, 0, "anything"),
    (b"\x01\x02", 0, 1, b"\x01\x02"),
    (b"{x}", t.JSON, 0, "{x}"),
    (b'\x01{"a": 1}', t.JSONB, 1, '{"a": 1}'),
    (None, t.INT4, 1, None),
]


@pytest.mark.parametrize(("value", "oid", "fmt", "expected"), PARAMETERS)
def test_decode_parameter(value: bytes | None, oid: int, fmt: int, expected: Any) -> None:
    assert equal_values(t.decode_parameter(value, oid, fmt), expected)


BAD_PARAMETERS = [
    (b"abc", t.INT4, 0, "22P02"),
    (b"1_000", t.INT4, 0, "22P02"),
    (b"99999", t.INT2, 0, "22003"),
    (b"1e400", t.FLOAT8, 0, "22003"),
    (b"1e-400", t.FLOAT8, 0, "22003"),
    (b"1e39", t.FLOAT4, 0, "22003"),
    (b"maybe", t.BOOL, 0, "22P02"),
    (b"o", t.BOOL, 0, "22P02"),
    (b"1,5", t.NUMERIC, 0, "22P02"),
    (b"not-a-uuid", t.UUID, 0, "22P02"),
    (b"\\xzz", t.BYTEA, 0, "22P02"),
    (b"yesterday", t.DATE, 0, "22007"),
    (b"2020-13-01 00:00", t.TIMESTAMP, 0, "22007"),
    (b"3 fortnights", t.INTERVAL, 0, "22007"),
    (b"1 mon", t.INTERVAL, 0, "0A000"),
    (b"{1,2", 1007, 0, "22P02"),
    (b"{1,,2}", 1007, 0, "22P02"),
    (b"\xff", t.TEXT, 0, "22021"),
    (b"\x00\x01", t.INT4, 1, "08P01"),
    (b"\x00" * 9, t.FLOAT8, 1, "08P01"),
    (b"\x00" * 15, t.UUID, 1, "08P01"),
    (
        b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x17\x00\x00\x00\x02\x00\x00\x00\x01",
        1007,
        1,
        "08P01",
    ),
    (b"\x02{}", t.JSONB, 1, "08P01"),
    (b"42", 600, 1, "0A000"),
    (b"42", t.INT4, 2, "22023"),
]


@pytest.mark.parametrize(("value", "oid", "fmt", "sqlstate"), BAD_PARAMETERS)
def test_decode_parameter_refuses_bad_input(
    value: bytes, oid: int, fmt: int, sqlstate: str
) -> None:
    with pytest.raises(errors.Error) as caught:
        t.decode_parameter(value, oid, fmt)
    assert caught.value.sqlstate == sqlstate
