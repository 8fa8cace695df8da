"""STRUCT and ARRAY-of-numbers feature columns, expanded into ordinary input columns.

Theory of operation. BigQuery ML's automatic preprocessing expands a STRUCT column: each field is
a feature of its own, named ``{struct}_{field}`` and preprocessed by its own type (numbers
standardized, strings one-hot encoded, ...); every field must be named and a STRUCT inside a
STRUCT is refused. An ARRAY of numbers gets "no transformation": each element is a numeric
feature as it is (not standardized), so every array has the same length, fixed at training.

Here both become :class:`~sqlml.ml.features.InputColumn` s with a *path*: ``(column, field)`` for
a STRUCT field, ``(column, i, width)`` for element ``i`` (1-based) of an ARRAY of ``width``
numbers. Everything after the input boundary (preprocessing, the ONNX graph, its compilation to
SQL, ML.FEATURE_INFO, ML.WEIGHTS) sees ordinary numeric, string or boolean columns named
``s_f`` and ``v_1`` ... ``v_n``. Only the two ends follow the path: training reads the field or
element out of Arrow (:func:`values`), scoring renders the field access or subscript in the
engine's SQL (:func:`sql_ref`), with a check that raises 22023 for an array whose length is not
the training width (a NULL array is a row of missing values: each element takes its training
mean, as a NULL element does). An ARRAY of strings is multi-hot encoded instead: one 0/1 input
per value seen in training (sqlml.ml.multihot), on the same path machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from sqlml import errors
from sqlml.ml import multihot
from sqlml.ml.features import InputColumn, kind_of


def is_nested(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_struct(arrow_type)) or _is_list(arrow_type)


def _is_list(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    )


def expand(name: str, column: pa.ChunkedArray) -> list[InputColumn]:
    """The input columns a STRUCT or ARRAY training column becomes."""
    if pa.types.is_struct(column.type):
        return _fields(name, column.type)
    if multihot.is_string_list(column.type):  # BigQuery's multi-hot encoding, as ML.NGRAMS(x, 1)
        found = multihot.indicators(name, name, column, 1, 1, " ")
        return [InputColumn(n, "numeric", p) for n, p in found]
    return _elements(name, column)


def _fields(name: str, struct: pa.StructType) -> list[InputColumn]:
    if struct.num_fields == 0:
        raise errors.InvalidParameterValue(
            f"STRUCT column {name} has no named fields (on PostgreSQL, cast ROW(...) to a"
            " composite type)"
        )
    out = []
    for i in range(struct.num_fields):
        field = struct.field(i)
        if not field.name:
            raise errors.InvalidParameterValue(
                f"STRUCT column {name} has an unnamed field: every field of a STRUCT feature"
                " must be named"
            )
        if is_nested(field.type):
            raise errors.FeatureNotSupported(
                f"field {field.name} of STRUCT column {name} is a {field.type}: a STRUCT feature"
                " cannot hold a STRUCT or an ARRAY"
            )
        kind = kind_of(field.type)
        if kind is None:
            raise errors.FeatureNotSupported(
                f"field {field.name} of STRUCT column {name} has type {field.type}, not"
                " supported as a feature"
            )
        out.append(InputColumn(f"{name}_{field.name}", kind, (name, field.name)))
    return out


def _elements(name: str, column: pa.ChunkedArray) -> list[InputColumn]:
    element = column.type.value_type
    if kind_of(element) != "numeric":
        raise errors.FeatureNotSupported(
            f"column {name} is an ARRAY of {element}: only ARRAYs of numbers (one feature per"
            " element) and of strings (multi-hot encoded) are features"
        )
    lengths = pc.unique(pc.drop_null(pc.list_value_length(column))).to_pylist()
    if not lengths:
        raise errors.UnusableTrainingData(f"column {name} has only NULL values")
    if len(lengths) > 1 or lengths[0] == 0:
        shown = ", ".join(str(n) for n in sorted(lengths)[:5])
        raise errors.UnusableTrainingData(
            f"ARRAY column {name} has arrays of lengths {shown}: an ARRAY feature's arrays"
            " must all have one length, at least 1"
        )
    width = int(lengths[0])
    return [InputColumn(f"{name}_{i}", "numeric", (name, i, width)) for i in range(1, width + 1)]


def unscaled(inputs: Sequence[InputColumn], transformed: bool) -> set[str]:
    """The inputs automatic preprocessing does not standardize: ARRAY elements ("no
    transformation" in BigQuery ML; NULLs still take the training mean) and multi-hot
    indicators (encoded columns, as one-hot ones)."""
    indicators = {c.name for c in inputs if multihot.is_indicator(c.path)}
    if transformed:
        return indicators
    return indicators | {c.name for c in inputs if len(c.path) == 3}


def info_rows(rows: list[dict[str, Any]], inputs: Sequence[InputColumn]) -> list[dict[str, Any]]:
    """ML.FEATURE_INFO / ML.WEIGHTS rows: an ARRAY<STRING>'s indicators as the one multi-hot
    feature they are (BigQuery shows its category weights under the column's name)."""
    return multihot.merged(rows, {c.name: c.path for c in inputs})


# -- Arrow ---------------------------------------------------------------------------------------


def values(table: pa.Table, column: InputColumn) -> pa.ChunkedArray:
    """The column's values in ``table`` (which has the source column under its exact name)."""
    if not column.path:
        return table.column(column.name)
    source = table.column(column.path[0])
    if multihot.is_indicator(column.path):
        return multihot.values(source, column.path)
    key = column.path[1]
    if isinstance(key, str):
        return pc.struct_field(source, [source.type.get_field_index(key)])
    return pc.list_element(source, key - 1)


def check_lengths(table: pa.Table, inputs: Sequence[InputColumn]) -> None:
    """22023 when a row's ARRAY feature has another length than in training."""
    for column in inputs:
        if len(column.path) == 3 and column.path[1] == 1:
            width = column.path[2]
            lengths = pc.list_value_length(table.column(column.path[0]))
            wrong = pc.any(pc.not_equal(lengths, width)).as_py()
            if wrong:
                raise _wrong_length(str(column.path[0]), int(width))


def _wrong_length(name: str, width: int) -> errors.Error:
    return errors.InvalidParameterValue(
        f"ARRAY feature {name} must have {width} elements, as in training"
    )


def arrow_type_ok(column: InputColumn, arrow_type: pa.DataType) -> bool:
    """Whether a scoring input's source column has a type the path and kind fit (42804 else)."""
    if pa.types.is_null(arrow_type):
        return True
    if multihot.is_indicator(column.path):
        return multihot.arrow_type_ok(arrow_type)
    key = column.path[1]
    if isinstance(key, str):
        if not pa.types.is_struct(arrow_type) or arrow_type.get_field_index(key) < 0:
            return False
        inner = arrow_type.field(key).type
    else:
        if not _is_list(arrow_type):
            return False
        inner = arrow_type.value_type
    return bool(pa.types.is_null(inner)) or kind_of(inner) == column.kind


def find_source(column: InputColumn, names: Sequence[str]) -> str | None:
    """The input's source column among ``names``: exact, else case-insensitive."""
    wanted = str(column.path[0])
    if wanted in names:
        return wanted
    lower = [n for n in names if n.lower() == wanted.lower()]
    return lower[0] if len(lower) == 1 else None


# -- SQL -----------------------------------------------------------------------------------------

_FAIL = {"duckdb": "error", "postgres": "sqlml.invalid_value"}
_LENGTH = {"duckdb": "len", "postgres": "cardinality"}


def sql_ref(column: InputColumn, qualifier: str | None, dialect: str) -> exp.Expr:
    """The field access ``(q.s).f`` or the checked subscript ``q.v[i]`` in the engine's SQL."""
    source = exp.column(str(column.path[0]), table=qualifier, quoted=True)
    if multihot.is_indicator(column.path):
        return multihot.sql_ref(column.path, source, dialect)
    key = column.path[1]
    if isinstance(key, str):
        return exp.Dot(this=exp.paren(source), expression=exp.to_identifier(key, quoted=True))
    width = int(column.path[2])
    element = exp.Bracket(this=source, expressions=[exp.Literal.number(key)], offset=1)
    length = exp.Anonymous(this=_LENGTH.get(dialect, "len"), expressions=[source.copy()])
    message = _wrong_length(str(column.path[0]), width).message
    fail = exp.Anonymous(
        this=_FAIL.get(dialect, "error"), expressions=[exp.Literal.string(message)]
    )
    wrong = exp.NEQ(this=length, expression=exp.Literal.number(width))
    return exp.case().when(wrong, fail).else_(element)


# -- the stored form -----------------------------------------------------------------------------


def to_json(column: InputColumn) -> dict[str, object]:
    out: dict[str, object] = {"name": column.name, "kind": column.kind}
    if column.path:
        out["path"] = list(column.path)
    return out


def from_json(value: dict[str, object]) -> InputColumn:
    path = value.get("path") or ()
    assert isinstance(path, list | tuple)
    return InputColumn(str(value["name"]), str(value["kind"]), tuple(path))
