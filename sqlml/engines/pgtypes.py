"""PostgreSQL types as Arrow, and the binary array format (``array_send``) decoded into Arrow.

Used on both sides of the wire: the client engine maps result OIDs to Arrow types; inside the
server, training reads and runtime scoring move whole columns as one ``array_send(array_agg(col))``
bytea per chunk. PL/Python hands a bytea over as one Python ``bytes`` (one copy), where a
``float8[]`` argument becomes a Python list element by element; numbers then need no Python loop
at all (a strided numpy view), strings one loop. Types without a decoder here are cast to text
(or float8 for numeric) in the SQL that feeds the arrays.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON = 16, 17, 20, 21, 23, 25, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ = (
    700,
    701,
    1042,
    1043,
    1082,
    1114,
    1184,
)
NUMERIC, JSONB, NAME, OID = 1700, 3802, 19, 26
TIME = 1083

# OID -> Arrow type of a result column. Unlisted types come back as strings (their text form).
ARROW: dict[int, pa.DataType] = {
    BOOL: pa.bool_(),
    BYTEA: pa.binary(),
    INT2: pa.int16(),
    INT4: pa.int32(),
    INT8: pa.int64(),
    OID: pa.int64(),
    FLOAT4: pa.float32(),
    FLOAT8: pa.float64(),
    NUMERIC: pa.float64(),
    TEXT: pa.string(),
    VARCHAR: pa.string(),
    BPCHAR: pa.string(),
    NAME: pa.string(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
    TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    TIME: pa.time64("us"),
}

# The composite types (in schema sqlml) of ML.PREDICT's ARRAY<STRUCT<...>> columns on PostgreSQL:
# created by ``sqlml install``, read back by the client engine as lists of dicts (like DuckDB's
# lists of structs). The label field is widened to one type per family.
COMPOSITES: dict[str, tuple[tuple[str, int], ...]] = {
    "label_prob_bool": (("label", BOOL), ("prob", FLOAT8)),
    "label_prob_int": (("label", INT8), ("prob", FLOAT8)),
    "label_prob_float": (("label", FLOAT8), ("prob", FLOAT8)),
    "label_prob_text": (("label", TEXT), ("prob", FLOAT8)),
    "centroid_distance": (("centroid_id", INT8), ("distance", FLOAT8)),
}
SQL_NAMES = {BOOL: "boolean", INT8: "bigint", FLOAT8: "double precision", TEXT: "text"}


def composite_arrow(name: str) -> pa.DataType:
    """An array of the composite type ``name`` as Arrow: a list of structs."""
    return pa.list_(pa.struct([(field, ARROW[oid]) for field, oid in COMPOSITES[name]]))


# Element types the decoder reads as they are; the SQL casts every other type first.
_FIXED: dict[int, tuple[int, str, pa.DataType]] = {
    BOOL: (1, "?", pa.bool_()),
    INT2: (2, ">i2", pa.int16()),
    INT4: (4, ">i4", pa.int32()),
    INT8: (8, ">i8", pa.int64()),
    FLOAT4: (4, ">f4", pa.float32()),
    FLOAT8: (8, ">f8", pa.float64()),
}
TEXT_TYPES = frozenset({TEXT, VARCHAR, BPCHAR, NAME})
DECODABLE = frozenset(_FIXED) | TEXT_TYPES


def arrow_type(oid: int) -> pa.DataType:
    return ARROW.get(oid, pa.string())


# Temporal types travel as whole numbers (DATE: days since 1970-01-01, int4; TIME, TIMESTAMP and
# TIMESTAMPTZ: microseconds, int8; sqlml/postgres/server.py chunk_query): exact, and free of the
# session's DateStyle and TimeZone. ``restore`` gives them back their Arrow type.
TEMPORAL = frozenset({DATE, TIME, TIMESTAMP, TIMESTAMPTZ})


def restore(oid: int, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column fed as numbers (TEMPORAL) as its Arrow type; any other column as it is."""
    if oid not in TEMPORAL or not pa.types.is_integer(column.type):
        return column
    return column.cast(ARROW[oid])


def feed_cast(oid: int) -> str | None:
    """The SQL type a column of this OID is cast to before it goes into an array (None: as is)."""
    if oid in DECODABLE:
        return None
    if oid == NUMERIC:
        return "DOUBLE PRECISION"
    return "TEXT"


_HEADER = struct.Struct(">iiI")  # ndim, has_nulls flag, element OID
_DIM = struct.Struct(">ii")  # length, lower bound


def decode_array(data: bytes | memoryview) -> pa.Array:
    """One array in PostgreSQL's binary format (array_send) as an Arrow array."""
    buf = memoryview(data)
    ndim, has_nulls, oid = _HEADER.unpack_from(buf, 0)
    if ndim == 0:
        return pa.array([], type=arrow_type(oid))
    if ndim != 1:
        raise ValueError(f"expected a one-dimensional array, got {ndim} dimensions")
    n, _ = _DIM.unpack_from(buf, _HEADER.size)
    start = _HEADER.size + _DIM.size
    if oid in _FIXED:
        _, dtype, arrow = _FIXED[oid]
        if not has_nulls:  # every element: 4-byte length, then `size` bytes
            record = np.dtype([("len", ">i4"), ("v", dtype)])
            values = np.frombuffer(buf, dtype=record, count=n, offset=start)["v"]
            return pa.array(values.astype(np.dtype(dtype).newbyteorder("="), copy=True), type=arrow)
        return pa.array(_walk(buf, start, n, lambda b: np.frombuffer(b, dtype)[0]), type=arrow)
    if oid in TEXT_TYPES:
        return pa.array(_walk(buf, start, n, lambda b: bytes(b).decode()), type=pa.string())
    raise ValueError(f"no binary decoder for element type {oid}")


def _walk(buf: memoryview, pos: int, n: int, convert: Any) -> list[Any]:
    out: list[Any] = []
    unpack = struct.Struct(">i").unpack_from
    for _ in range(n):
        (length,) = unpack(buf, pos)
        pos += 4
        if length < 0:
            out.append(None)
            continue
        out.append(convert(buf[pos : pos + length]))
        pos += length
    return out
