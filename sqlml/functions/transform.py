"""ML.TRANSFORM(MODEL m, {(query) | TABLE t}): the rows as the model's TRANSFORM clause makes them,
with the statistics learned in training, computed in the engine's own SQL.

Theory of operation. The TRANSFORM is part of the stored ONNX graph; training names each
item's output tensor with an Identity node ``sqlml_transform.<alias>`` outside the scoring path
(sqlml.ml.features.TRANSFORM_OUTPUT), whose doc_string says the item's function. This module cuts
the graph down to those tensors, compiles them to SQL with the same compiler as ML.PREDICT
(every TRANSFORM step is made of operators it compiles) and writes one SELECT over the input.

Columns, in BigQuery's types: the TRANSFORM's outputs in its order (the label's own item
excepted), then the input's columns the model does not read (the label, ids), passed through:
- a column passed as is (``x`` or ``x AS y``): the input column itself, its type kept;
- arithmetic, the scalers and ML.IMPUTER of a number: FLOAT64 (ML.IMPUTER of a string: STRING);
- ML.BUCKETIZE and ML.QUANTILE_BUCKETIZE: STRING ``bin_<n>`` (NULL stays NULL);
- ML.LABEL_ENCODER: INT64 (0 for a category not seen in training, and for NULL unless seen);
- ML.ONE_HOT_ENCODER: ARRAY<STRUCT<index INT64, value FLOAT64>>, one element: the category's
  1-based place in the sorted vocabulary, 0 for NULL and unknown categories (BigQuery's);
- ML.POLYNOMIAL_EXPAND: STRUCT of FLOAT64 named as BigQuery names the products;
- ML.NORMALIZER: ARRAY<FLOAT64>.
On PostgreSQL a STRUCT or an ARRAY is jsonb (as in sqlml.functions.literal: PostgreSQL has no
anonymous struct type; sqlml.connect reads it back as DuckDB's dicts and lists).
ML.FEATURE_CROSS and ML.NGRAMS (one-hot and multi-hot encoded straight away in sqlml's graph)
are 0A000, and so is ML.HASH_BUCKETIZE (its hash has no SQL: sqlml.ml.hashing). A model trained
without TRANSFORM is 0A000 (BigQuery refuses it too), as is one trained before sqlml named the
TRANSFORM outputs (train it again).

Differences from BigQuery, kept on purpose: the scalers return, for a NULL input, the value the
model used for it (the training mean), and a dropped category of ML.ONE_HOT_ENCODER(...,
'most_frequent') comes out as index 0.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import OVER_ROWS, REQUIRED, Function, Scored, register

if TYPE_CHECKING:
    from sqlml.cse import Stage
    from sqlml.store import ModelVersion

NAME = "TRANSFORM"
ALIAS = "__sqlml_input"


@dataclass(frozen=True)
class Output:
    """One TRANSFORM output as the stored graph names it."""

    alias: str
    function: str
    input_kind: str  # 'numeric' | 'categorical'
    width: int
    fields: tuple[str, ...]  # ML.POLYNOMIAL_EXPAND's STRUCT fields
    tensor: str  # the Identity's output in the graph
    source: str | None  # a column passed as is: its input column


def outputs(version: ModelVersion) -> list[Output]:
    """The TRANSFORM outputs recorded in the version's graph (0A000 when there are none)."""
    import onnx

    from sqlml.ml.features import TRANSFORM_OUTPUT

    graph = onnx.load_from_string(version.onnx).graph
    found = [_output(n) for n in graph.node if n.output[0].startswith(TRANSFORM_OUTPUT)]
    if not found:
        raise errors.FeatureNotSupported(
            f"ML.TRANSFORM needs a model trained with a TRANSFORM clause; model {version.ref}"
            " has none (or was trained before sqlml recorded it: train it again)"
        )
    return found


def _output(node: Any) -> Output:
    doc = json.loads(node.doc_string)
    return Output(
        alias=doc["alias"],
        function=doc["function"],
        input_kind=doc["input_kind"],
        width=int(doc["width"]),
        fields=tuple(doc.get("fields") or ()),
        tensor=node.output[0],
        source=node.input[0] if doc["function"] == "column" else None,
    )


# -- compiling the cut graph ----------------------------------------------------------------------

_lock = threading.Lock()
_compiled: OrderedDict[tuple[str, str], Compiled] = OrderedDict()


@dataclass(frozen=True)
class Compiled:
    """The TRANSFORM outputs' SQL: the common subexpressions lifted into stages (one SELECT
    each, reading the one below as ``__sqlml_input``; sqlml.cse), then each output's columns."""

    stages: list[Stage]
    columns: dict[str, list[exp.Expr]]


def compiled(version: ModelVersion, dialect: str) -> Compiled:
    """Cached per version and dialect; copies are handed out."""
    key = (version.sha256, dialect)
    with _lock:
        found = _compiled.get(key)
    if found is None:
        found = _staged(_compile(version, dialect))
        with _lock:
            _compiled[key] = found
            while len(_compiled) > 64:
                _compiled.popitem(last=False)
    return Compiled(
        [[(n, e.copy()) for n, e in stage] for stage in found.stages],
        {name: [e.copy() for e in columns] for name, columns in found.columns.items()},
    )


def _staged(columns: dict[str, list[exp.Expr]]) -> Compiled:
    from sqlml import cse, scoring

    flat = [e for name in columns for e in columns[name]]
    column = lambda name: exp.column(name, table=ALIAS, quoted=True)  # noqa: E731
    stages, rewritten = cse.hoist_stages(flat, column, f"{scoring.HIDDEN}t")
    regrouped, at = {}, 0
    for name, values in columns.items():
        regrouped[name] = rewritten[at : at + len(values)]
        at += len(values)
    return Compiled(stages, regrouped)


def _compile(version: ModelVersion, dialect: str) -> dict[str, list[exp.Expr]]:
    import onnx
    from onnx import helper

    from sqlml import scoring
    from sqlml.ml.to_sql import compile_onnx

    wanted = [o for o in outputs(version) if o.source is None]
    _no_hash(version, wanted)
    model = onnx.load_from_string(version.onnx)
    model, inputs = scoring.graph_inputs(version, model, ALIAS, dialect)  # EXTRACT's parts
    _cut(model.graph, [o.tensor for o in wanted])
    model.graph.output.extend(helper.make_empty_tensor_value_info(o.tensor) for o in wanted)
    try:
        return compile_onnx(model, inputs, dialect=dialect, max_nodes=0)
    except errors.FeatureNotSupported as e:
        raise errors.FeatureNotSupported(
            f"ML.TRANSFORM cannot compile the TRANSFORM of model {version.ref} to SQL: {e}"
        ) from e


def _no_hash(version: ModelVersion, wanted: list[Output]) -> None:
    """ML.HASH_BUCKETIZE's MurmurHash3 runs in onnxruntime only (sqlml.ml.hashing): neither
    engine's SQL computes it, and ML.TRANSFORM is compiled SQL."""
    hashed = [o.alias for o in wanted if o.function == "hash_bucketize"]
    if hashed:
        raise errors.FeatureNotSupported(
            f"ML.TRANSFORM does not return ML.HASH_BUCKETIZE outputs ({', '.join(hashed)}) of"
            f" model {version.ref}: the hash is computed by onnxruntime only, not by SQL"
            " (ML.PREDICT scores the model with onnxruntime)"
        )


def _cut(graph: Any, names: list[str]) -> None:
    """Only the nodes the tensors ``names`` need, and no graph outputs."""
    needed, kept = set(names), []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.output[:]


# -- BigQuery's column values ---------------------------------------------------------------------


def _double(value: exp.Expr) -> exp.Expr:
    return exp.cast(value, exp.DataType.build("DOUBLE"))


def _bigint(value: exp.Expr) -> exp.Expr:
    return exp.cast(value, exp.DataType.build("BIGINT"))


def _bin(value: exp.Expr) -> exp.Expr:
    from sqlml.ml.to_sql import double

    value = exp.Nullif(this=value, expression=double(math.nan))  # a NULL input's bucket is NaN
    text = exp.cast(_bigint(value.copy()), exp.DataType.build("VARCHAR"))
    named = exp.DPipe(this=exp.Literal.string("bin_"), expression=text, safe=True)
    return exp.case().when(exp.Is(this=value, expression=exp.null()), exp.null()).else_(named)


def _string(value: exp.Expr) -> exp.Expr:
    from sqlml.ml.features import NULL_CATEGORY

    return exp.Nullif(this=value, expression=exp.Literal.string(NULL_CATEGORY))


def _one_hot(columns: list[exp.Expr], dialect: str) -> exp.Expr:
    index: exp.Expr = exp.Literal.number(0)
    for place, column in enumerate(columns, start=1):
        index = exp.Add(this=index, expression=exp.Mul(this=column, expression=_number(place)))
    return _array([_struct({"index": _bigint(index), "value": _number(1.0)}, dialect)], dialect)


def _number(value: float) -> exp.Expr:
    return _double(exp.Literal.number(value))


def _struct(fields: Mapping[str, exp.Expr], dialect: str) -> exp.Expr:
    if dialect == "postgres":
        pairs = [e for name, value in fields.items() for e in (exp.Literal.string(name), value)]
        return exp.Anonymous(this="jsonb_build_object", expressions=pairs)
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(name, quoted=True), expression=value)
            for name, value in fields.items()
        ]
    )


def _array(items: list[exp.Expr], dialect: str) -> exp.Expr:
    if dialect == "postgres":
        return exp.Anonymous(this="jsonb_build_array", expressions=items)
    return exp.Array(expressions=items)


def _value(output: Output, columns: list[exp.Expr], dialect: str) -> exp.Expr:
    function = output.function
    if function in ("bucketize", "quantile_bucketize"):
        return _bin(columns[0])
    if function == "label_encoder":
        return _bigint(columns[0])
    if function == "one_hot_encoder":
        return _one_hot(columns, dialect)
    if function == "polynomial_expand":
        named = dict(zip(output.fields, (_double(c) for c in columns), strict=True))
        return _struct(named, dialect)
    if function == "normalizer":
        return _array([_double(c) for c in columns], dialect)
    if function == "feature_cross":
        raise errors.FeatureNotSupported(
            f"ML.TRANSFORM does not return ML.FEATURE_CROSS outputs ({output.alias}) yet: sqlml"
            " one-hot encodes the crosses inside the model"
        )
    if function == "ngrams":
        raise errors.FeatureNotSupported(
            f"ML.TRANSFORM does not return ML.NGRAMS outputs ({output.alias}): sqlml multi-hot"
            " encodes the n-grams seen in training inside the model, not the array"
        )
    if output.input_kind != "numeric":  # ML.IMPUTER of a string
        return _string(columns[0])
    return _double(columns[0])


# -- the query -----------------------------------------------------------------------------------


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    from sqlml import scoring

    if scored is None or scored.source is None or scored.schema is None:
        raise errors.InternalError("ML.TRANSFORM needs its rows")
    made = outputs(version)
    scoring.check_input(version, scored.schema)
    sql = compiled(version, dialect)
    selected = [_selected(o, sql.columns, dialect) for o in made]
    taken = {o.alias.lower() for o in made} | {c.name.lower() for c in version.inputs}
    passed = [
        exp.alias_(exp.column(n, table=ALIAS, quoted=True), n, quoted=True)
        for n in scored.names
        if n.lower() not in taken
    ]
    source = _stages(scored.source, sql.stages, dialect)
    return exp.select(*selected, *passed).from_(source).subquery()


def _stages(source: exp.Expr, stages: list[Stage], dialect: str) -> exp.Expr:
    """One SELECT per stage of lifted subexpressions over the rows, each aliased as the rows.
    On PostgreSQL each keeps a plan node of its own (scoring.kept_apart says why)."""
    for number, stage in enumerate(stages):
        star = exp.Column(this=exp.Star(), table=exp.to_identifier(ALIAS, quoted=True))
        shared = [exp.alias_(e, n, quoted=True) for n, e in stage]
        level = exp.select(star, *shared).from_(source)
        if dialect == "postgres":
            fence = exp.Anonymous(this="clock_timestamp", expressions=[])
            level = level.select(exp.alias_(fence, f"__sqlml_tstage{number}", quoted=True))
        source = level.subquery(exp.to_identifier(ALIAS, quoted=True))
    return source


def _selected(output: Output, values: dict[str, list[exp.Expr]], dialect: str) -> exp.Expr:
    if output.source is not None:
        value: exp.Expr = exp.column(output.source, table=ALIAS, quoted=True)
    else:
        value = _value(output, values[output.tensor], dialect)
    return exp.alias_(value, output.alias, quoted=True)


TRANSFORM = register(Function(name=NAME, table=True, rows=REQUIRED, runs=OVER_ROWS, render=_render))
