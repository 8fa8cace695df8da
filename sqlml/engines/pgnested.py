"""PostgreSQL composite and array columns as Arrow structs and lists (STRUCT and ARRAY features).

A composite type (``CREATE TYPE point2 AS (x float8, label text)``, or a table's row type) plays
the part of BigQuery's STRUCT, an array the part of its ARRAY (sqlml.ml.nested). Their OIDs are
not in pgtypes.ARROW: :func:`arrow_of` reads the catalog once per OID (both engines cache it), so
the feature checks of ML.PREDICT see a struct or list and training knows the fields to read.

Inside the server, training reads a composite column one field at a time (``(q.s).f``, each field
its own binary array) and an array column as its text form, parsed here into a list of doubles
(an array of strings as its JSON text, into a list of strings: quoting rules are JSON's):
``array_agg`` cannot gather arrays of different lengths or NULL arrays, and such rows must reach
the feature checks (22000) rather than fail inside the aggregate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from sqlml import errors
from sqlml.engines.pgtypes import ARROW

RECORD = 2249  # the pseudo-type of an anonymous ROW(...)
Query = Callable[[str, list[Any]], list[tuple[Any, ...]]]  # SQL with ? markers -> rows

_TYPE = (
    "SELECT typtype::text, typelem::int8, typcategory::text, typrelid::int8"
    " FROM pg_catalog.pg_type WHERE oid = CAST(? AS oid)"
)
_FIELDS = (
    "SELECT attname::text, atttypid::int8 FROM pg_catalog.pg_attribute"
    " WHERE attrelid = CAST(? AS oid) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
)


def arrow_of(oid: int, query: Query, depth: int = 0) -> pa.DataType | None:
    """The Arrow type of a composite (struct) or array (list) OID; None for any other."""
    if oid in ARROW:
        return ARROW[oid]
    if oid == RECORD:  # ROW(...) without a type: a STRUCT whose fields have no names
        return pa.struct([])
    rows = query(_TYPE, [oid])
    if not rows:
        return None
    typtype, element, category, relation = rows[0]
    if category == "A" and element:
        inner = arrow_of(int(element), query, depth + 1) if depth < 2 else None
        return pa.list_(inner if inner is not None else pa.string())
    if typtype == "c" and relation:
        fields = []
        for name, field_oid in query(_FIELDS, [relation]):
            inner = arrow_of(int(field_oid), query, depth + 1) if depth < 2 else None
            fields.append(pa.field(str(name), inner if inner is not None else pa.string()))
        return pa.struct(fields)
    return None


PG_TYPE = b"pg_type"  # Arrow field metadata: the SQL name of a composite or array column's type


def type_name(oid: int, query: Query) -> str:
    """The type's name as SQL writes it (``nest.pair``, ``double precision[]``)."""
    return str(query("SELECT CAST(? AS oid)::regtype::text", [oid])[0][0])


def is_nested(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_struct(arrow_type) or pa.types.is_list(arrow_type))


def fields(arrow_type: pa.DataType) -> list[str]:
    return [arrow_type.field(i).name for i in range(arrow_type.num_fields)]


def parse_array(text: str | None) -> list[float | None] | None:
    """``{1,2.5,NULL}`` (a one-dimensional array of numbers as text) as a list; also
    ``[0:2]={...}`` (other bounds than 1) and ``1 2`` (int2vector, oidvector). 0A000 for an
    array of several dimensions (no feature shape), 22P02 for an element that is no number."""
    if text is None:
        return None
    body = text.strip()
    if "=" in body:  # '[0:2]={...}': other bounds than 1
        body = body.split("=", 1)[1].strip()
    if not body.startswith("{"):  # int2vector, oidvector: numbers between spaces
        return [_number(v, text) for v in body.split()]
    if not body.endswith("}"):
        raise errors.InvalidTextRepresentation(f"malformed array: {text[:40]}")
    if "{" in body[1:-1]:
        raise errors.FeatureNotSupported(
            f"not a one-dimensional array: {text[:40]}: an ARRAY feature is a one-dimensional"
            " array of numbers"
        )
    inner = body[1:-1].strip()
    if not inner:
        return []
    return [None if v.strip() == "NULL" else _number(v, text) for v in inner.split(",")]


def _number(element: str, text: str) -> float:
    try:
        return float(element)
    except ValueError as e:
        raise errors.InvalidTextRepresentation(
            f"not a number in an ARRAY feature: {element.strip()[:40]!r} in {text[:40]}"
        ) from e


# -- training reads inside the server ------------------------------------------------------------

_FEED = {"numeric": ("DOUBLE PRECISION", 701), "bool": ("BOOLEAN", 16)}
_TEXT = ("TEXT", 25)


def feeds(name: str, oid: int, arrow_type: pa.DataType) -> list[tuple[str | Any, int]]:
    """What the chunked read aggregates for one column: the column itself, a composite's fields
    (``(q.s).f`` cast to a type the decoder reads), or an array's text form."""
    from sqlglot import exp

    from sqlml.ml.features import kind_of

    column = exp.column(name, table="q", quoted=True)
    if pa.types.is_struct(arrow_type) and arrow_type.num_fields == 0:
        return [(exp.cast(column, exp.DataType.build("TEXT")), _TEXT[1])]  # (an anonymous ROW)
    if pa.types.is_struct(arrow_type):
        out: list[tuple[str | Any, int]] = []
        for field in fields(arrow_type):
            kind = kind_of(arrow_type.field(field).type)
            sql_type, feed_oid = _FEED.get(kind or "", _TEXT)
            ref = exp.Dot(
                this=exp.paren(column.copy()), expression=exp.to_identifier(field, quoted=True)
            )
            out.append((exp.cast(ref, exp.DataType.build(sql_type, dialect="postgres")), feed_oid))
        return out
    if pa.types.is_list(arrow_type) and pa.types.is_string(arrow_type.value_type):
        as_json = exp.Anonymous(this="to_json", expressions=[column])
        return [(exp.cast(as_json, exp.DataType.build("TEXT")), _TEXT[1])]
    if pa.types.is_list(arrow_type):
        return [(exp.cast(column, exp.DataType.build("TEXT")), _TEXT[1])]
    return [(name, oid)]


def assemble(arrow_type: pa.DataType, parts: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """A composite or array column from what :func:`feeds` read."""
    if pa.types.is_struct(arrow_type) and arrow_type.num_fields == 0:
        return pa.chunked_array([pa.nulls(len(parts[0]), type=arrow_type)])
    if pa.types.is_struct(arrow_type):
        children = [p.combine_chunks() for p in parts]
        for i, child in enumerate(children):  # a nested field was read as text: keep its type
            declared = arrow_type.field(i).type  # (refused as a feature, sqlml.ml.nested)
            if pa.types.is_struct(declared) or pa.types.is_list(declared):
                children[i] = pa.nulls(len(child), type=declared)
        return pa.chunked_array([pa.StructArray.from_arrays(children, fields(arrow_type))])
    texts = parts[0].to_pylist()
    if pa.types.is_string(arrow_type.value_type):  # (JSON text: feeds)
        lists = [None if t is None else json.loads(t) for t in texts]
        try:
            return pa.chunked_array([pa.array(lists, type=pa.list_(pa.string()))])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            from sqlml import errors

            raise errors.FeatureNotSupported(
                "an ARRAY<STRING> feature is a one-dimensional array of strings"
            ) from e
    if not (
        pa.types.is_floating(arrow_type.value_type) or pa.types.is_integer(arrow_type.value_type)
    ):
        return pa.chunked_array([pa.nulls(len(texts), type=arrow_type)])  # (refused as a feature)
    values = [parse_array(t) for t in texts]
    return pa.chunked_array([pa.array(values, type=pa.list_(pa.float64()))])
