"""The PostgreSQL types and value shapes shared by types.py, params.py and copy.py.

The OIDs of the types that engines/pgtypes does not name, each type's pg_type name and length,
every element type's array type, the strings-as-is types, an interval's three fields and
numeric's binary header: what the encoders (Arrow -> wire), the Bind parameter decoders (wire
-> Python) and COPY both ways agree on. It lives apart so that types.py can re-export
params.decode_parameter without an import cycle.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

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

CHAR, UNKNOWN, TIME, INTERVAL, RECORD, UUID = 18, 705, 1083, 1186, 2249, 2950

# pg_type.typname and typlen of the types sent or read here.
_TYPES: dict[int, tuple[str, int]] = {
    BOOL: ("bool", 1),
    BYTEA: ("bytea", -1),
    CHAR: ("char", 1),
    NAME: ("name", 64),
    INT8: ("int8", 8),
    INT2: ("int2", 2),
    INT4: ("int4", 4),
    TEXT: ("text", -1),
    OID: ("oid", 4),
    JSON: ("json", -1),
    FLOAT4: ("float4", 4),
    FLOAT8: ("float8", 8),
    UNKNOWN: ("unknown", -2),
    BPCHAR: ("bpchar", -1),
    VARCHAR: ("varchar", -1),
    DATE: ("date", 4),
    TIME: ("time", 8),
    TIMESTAMP: ("timestamp", 8),
    TIMESTAMPTZ: ("timestamptz", 8),
    INTERVAL: ("interval", 16),
    NUMERIC: ("numeric", -1),
    RECORD: ("record", -1),
    UUID: ("uuid", 16),
    JSONB: ("jsonb", -1),
}
# element type OID -> its array type OID (pg_type.typarray)
ARRAY_OF: dict[int, int] = {
    **{BOOL: 1000, BYTEA: 1001, CHAR: 1002, NAME: 1003, INT2: 1005, INT4: 1007, TEXT: 1009},
    **{BPCHAR: 1014, VARCHAR: 1015, INT8: 1016, FLOAT4: 1021, FLOAT8: 1022, OID: 1028},
    **{TIMESTAMP: 1115, DATE: 1182, TIME: 1183, TIMESTAMPTZ: 1185, INTERVAL: 1187},
    **{NUMERIC: 1231, RECORD: 2287, UUID: 2951, JSON: 199, JSONB: 3807},
}
ELEMENT_OF: dict[int, int] = {array: element for element, array in ARRAY_OF.items()}
_STRINGS = frozenset({TEXT, VARCHAR, BPCHAR, NAME, CHAR, JSON, UNKNOWN, 0})

_US = 1_000_000
_DAY_US = 86_400 * _US


class Interval(NamedTuple):
    """A PostgreSQL interval's three fields."""

    months: int
    days: int
    microseconds: int


_NUMERIC_HEAD = struct.Struct(">hhHh")  # ndigits, weight, sign, dscale
_NUMERIC_NAN, _NUMERIC_NEG, _NUMERIC_PINF, _NUMERIC_NINF = 0xC000, 0x4000, 0xD000, 0xF000
