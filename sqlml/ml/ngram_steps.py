"""ML.NGRAMS as a TRANSFORM output: the multi-hot encoding of an ARRAY<STRING> column's n-grams.

Theory of operation. ``ML.NGRAMS(tags, [1, 2]) AS g`` returns an ARRAY<STRING>, which BigQuery's
automatic preprocessing multi-hot encodes (sqlml.ml.multihot cites both pages). The vocabulary
depends on the training rows, so it is learnt where the model's input columns are made: each
n-gram seen in training is an input of its own (``g["a b"]``: 0/1, read through its path), and
the item is *bound* to them (its ``inputs``), after which it is an ordinary step over a STRUCT of
features (sqlml.ml.feature_steps): its output is the indicators side by side, used as they are
(not standardized, as one-hot columns). ML.WEIGHTS shows them as one feature with a weight per
category, as BigQuery shows a multi-hot column.

The surface is kept small on purpose: ML.NGRAMS reads a column and is a TRANSFORM output of its
own; an ARRAY<STRING> column under TRANSFORM is read by ML.NGRAMS only (``ML.NGRAMS(tags, 1)``
is its plain multi-hot encoding); anything else that reads it (``ARRAY_LENGTH``, a subscript,
passing it through) is 0A000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sqlml import errors
from sqlml.ml import feature_steps, multihot
from sqlml.ml.expressions import columns_of
from sqlml.ml.features import Array, InputColumn, Step
from sqlml.ml.spec import Col, TransformItem

if TYPE_CHECKING:
    from sqlml.ml.graph import GraphBuilder

FUNCTION = "ngrams"


def check_uses(transform: Sequence[TransformItem], table: pa.Table) -> None:
    """0A000 for an ARRAY<STRING> column read by anything but ML.NGRAMS."""
    arrays = {n for n in table.column_names if multihot.is_string_list(table.schema.field(n).type)}
    for item in transform:
        expressions = [item.expression, *(expr for _, expr in item.inputs)]
        read = set().union(*(columns_of(e) for e in expressions)) & arrays
        if read and item.function != FUNCTION:
            raise errors.FeatureNotSupported(
                f"TRANSFORM item {item.alias} reads ARRAY<STRING> column {sorted(read)[0]}: under"
                " TRANSFORM such a column is read by ML.NGRAMS only (ML.NGRAMS(x, 1) is its"
                " multi-hot encoding)",
                detail=item.source or None,
            )


def inputs(transform: Sequence[TransformItem], table: pa.Table) -> list[InputColumn]:
    """The indicator inputs of every ML.NGRAMS item: one per n-gram seen in training."""
    out = []
    for item in transform:
        if item.function != FUNCTION:
            continue
        assert isinstance(item.expression, Col)
        source = item.expression.name
        low, high, separator = _args(item)
        found = multihot.indicators(source, item.alias, table.column(source), low, high, separator)
        out += [InputColumn(name, "numeric", path) for name, path in found]
    return out


def bind(
    transform: Sequence[TransformItem] | None, columns: Sequence[InputColumn]
) -> list[TransformItem] | None:
    """Each ML.NGRAMS item with its indicator inputs (``inputs``: (value, Col(input name)))."""
    if not transform:
        return None
    names = {c.name: c.path for c in columns if multihot.is_indicator(c.path)}
    bound = []
    for item in transform:
        if item.function == FUNCTION:
            mine = [(name, path) for name, path in names.items() if _owned(item, name, path)]
            fields = tuple((_label(path[5]), Col(name)) for name, path in mine)
            item = replace(item, inputs=fields)
        bound.append(item)
    return bound


def _owned(item: TransformItem, name: str, path: tuple[Any, ...]) -> bool:
    assert isinstance(item.expression, Col)
    low, high, separator = _args(item)
    same = path == multihot.path(item.expression.name, low, high, separator, path[5])
    return same and name == multihot.name(item.alias, path[5])


def _label(value: Any) -> str:
    return "NULL" if value is None else str(value)


def _args(item: TransformItem) -> tuple[int, int, str]:
    low, high, separator = item.args
    assert isinstance(low, int)
    assert isinstance(high, int)
    assert isinstance(separator, str)
    return low, high, separator


# -- the step ------------------------------------------------------------------------------------


def _fit(step: Step, item: TransformItem, raw: dict[str, Array], kinds: dict[str, str]) -> None:
    low, high, separator = _args(item)
    step.kind = "final"
    step.inputs = item.inputs
    step.input_kind = "numeric"
    categories = [None if _is_null(expr) else label for label, expr in item.inputs]
    step.params = {
        "range": [low, high],
        "separator": separator,
        "width": len(item.inputs),
        "vocabulary": categories,
    }


def _is_null(expr: Any) -> bool:
    """The NULL category's indicator (multihot.name: a value's is quoted, ``g["NULL"]``)."""
    return isinstance(expr, Col) and expr.name.endswith("[NULL]")


def _numpy(step: Step, arrays: dict[str, Array]) -> Array:
    columns = [np.asarray(arrays[expr.name], dtype=np.float64) for _, expr in _cols(step)]
    return np.column_stack(columns)


def _onnx(step: Step, g: GraphBuilder, tensors: dict[str, str]) -> str:
    parts = [tensors[expr.name] for _, expr in _cols(step)]
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)


def _cols(step: Step) -> list[tuple[str, Col]]:
    return [(label, expr) for label, expr in step.inputs if isinstance(expr, Col)]


def _infos(step: Step) -> list[dict[str, Any]]:
    """One feature, a weight per category (ML.WEIGHTS' category_weights), as BigQuery shows a
    multi-hot encoded column."""
    return [
        {
            "column": step.alias,
            "encoding": "multi_hot",
            "categories": list(step.params["vocabulary"]),
            "range": step.params["range"],
            "separator": step.params["separator"],
        }
    ]


feature_steps.FIELD_FITTERS[FUNCTION] = _fit
feature_steps.FIELD_NUMPY[FUNCTION] = _numpy
feature_steps.FIELD_ONNX[FUNCTION] = _onnx
feature_steps.INFOS[FUNCTION] = _infos
