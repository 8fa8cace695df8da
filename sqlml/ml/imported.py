"""Imported ONNX models (BigQuery's ``model_type = 'onnx'``): the graph check and the kind.

A graph is checked before anything is stored: it loads (onnx), passes onnx's checker, onnxruntime
accepts it, each of its inputs is one column (an ``[N, 1]`` tensor) named as the column, and it
runs on two sample rows. Anything else is refused: bytes that are no ONNX model or that
onnxruntime refuses 22023; an INPUT/OUTPUT clause naming what the graph lacks (or the reverse)
42703; a type that does not match 42804; what sqlml cannot serve (string outputs, wider inputs,
sequence outputs other than ZipMap's) 0A000.

The stored graph is the file's, *normalized* so that it scores like a trained one, in both
scoring paths (compiled, runtime) and on both engines:
- a numeric input of another type than DOUBLE (float32 as skl2onnx writes, int64) is taken as
  DOUBLE and cast inside the graph, as sqlml feeds every number as a double;
- a ZipMap output (skl2onnx's default for classifiers: one ``{class: probability}`` map per row)
  becomes the probability tensor ZipMap reads, under the output's name: SQL has no per-row maps,
  and the probabilities are ZipMap's only content;
- the outputs are the OUTPUT clause's, in its order (else every output, in the graph's order);
- the kind is stamped into the graph's metadata, so its sha256 (which keys every scoring cache)
  is never a trained model's.
EXPORT MODEL writes this stored graph, so an export imports again to the same graph.

Why a kind of its own (``imported``): a kind owns ML.PREDICT's columns and scoring, and the
built-in kinds' columns come from a label (``predicted_<label>``) and fixed raw outputs. An
imported graph has no label and its own outputs: its ML.PREDICT columns are the graph's outputs
(BigQuery: the OUTPUT clause names them, else the graph's output names), one number (DOUBLE or
BIGINT) per ``[N]``/``[N, 1]`` output and an ARRAY for a wider one. Its raw outputs are "every
output of the stored graph" (``raw_outputs = ()``), whose widths the version records
(``training_info['outputs']``) from the sample run. ML.SCORE is the first output's first value.
ML.EVALUATE is 0A000 (BigQuery has no ML.EVALUATE for imported ONNX models either).

The ML core stays pure: this module loads onnx and onnxruntime only when a graph is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlglot import exp

from sqlml import errors
from sqlml.ml import kinds, models
from sqlml.ml.features import InputColumn
from sqlml.ml.options import Option
from sqlml.ml.predict_sql import named

if TYPE_CHECKING:
    import onnx

MODEL_TYPE = "onnx"
KIND = "imported"
SAMPLE_ROWS = 2
CAST_SUFFIX = "__sqlml_double"

# BigQuery's column types (INPUT/OUTPUT clauses) by family
_NUMERIC = {
    "FLOAT64", "FLOAT", "DOUBLE", "REAL", "INT64", "INT", "INTEGER", "BIGINT", "SMALLINT",
    "NUMERIC", "BIGNUMERIC", "DECIMAL",
}  # fmt: skip
_INTEGRAL = {"INT64", "INT", "INTEGER", "BIGINT", "SMALLINT"}
_STRING = {"STRING", "VARCHAR", "TEXT"}
_BOOL = {"BOOL", "BOOLEAN"}

# ONNX element types (onnx.TensorProto's numbers)
FLOAT, INT32, INT64_, STRING, BOOL, DOUBLE_ = 1, 6, 7, 8, 9, 11
_NUMERIC_ELEMS = {FLOAT: "float", DOUBLE_: "float", 10: "float", INT32: "int", INT64_: "int"}
_OUTPUT_ELEMS = {**_NUMERIC_ELEMS, BOOL: "int"}


@dataclass(frozen=True)
class Imported:
    """A checked graph: what the store records."""

    onnx: bytes  # the normalized graph
    inputs: list[InputColumn]
    outputs: list[dict[str, Any]]  # {"name", "type": "float" | "int", "width", "array"}


def _bad_file(what: str, e: Exception | None = None) -> errors.Error:
    detail = f": {str(e).splitlines()[0][:200]}" if e is not None and str(e) else ""
    return errors.InvalidParameterValue(f"model_path: {what}{detail}")


def load(data: bytes) -> onnx.ModelProto:
    """The file as an ONNX model that onnx's checker and onnxruntime accept (22023 otherwise)."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError (untyped), onnx's own errors
        raise _bad_file("the file is not an ONNX model", e) from e
    if not model.graph.output or not model.graph.node or model.ir_version <= 0:
        raise _bad_file("the file is not an ONNX model (no graph)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # onnx's ValidationError and its C++ checker's errors
        raise _bad_file("onnx's checker refuses the graph", e) from e
    try:
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's pybind errors derive from Exception only
        raise _bad_file("onnxruntime refuses the graph", e) from e
    return model


def check_graph(
    data: bytes,
    input_clause: Sequence[tuple[str, str]] | None,
    output_clause: Sequence[tuple[str, str]] | None,
) -> Imported:
    """The graph checked and normalized (module docstring), or the error; nothing is stored
    before this returns."""
    model = load(data)
    inputs = _inputs(model, input_clause)
    _strip_zipmaps(model)
    outputs = _select_outputs(model, output_clause)
    _cast_inputs(model)
    _stamp(model)
    normalized = model.SerializeToString()
    widths = _sample_widths(normalized, inputs, [name for name, _ in outputs])
    described = []
    for (name, declared), width in zip(outputs, widths, strict=True):
        kind = _output_kind(model, name)
        array = width > 1 or (declared is not None and declared.startswith("ARRAY<"))
        if declared is not None:
            _check_output_type(name, declared, kind, width)
        described.append({"name": name, "type": kind, "width": width, "array": array})
    return Imported(normalized, inputs, described)


def _stamp(model: onnx.ModelProto) -> None:
    """The kind in the graph's metadata, replacing a trained graph's (an exported one)."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "sqlml.kind"]
    del model.metadata_props[:]
    for key, value in [*kept, ("sqlml.kind", KIND)]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


# -- inputs ---------------------------------------------------------------------------------------


def _graph_inputs(model: onnx.ModelProto) -> list[Any]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _inputs(model: onnx.ModelProto, clause: Sequence[tuple[str, str]] | None) -> list[InputColumn]:
    """One column per graph input, by name; the clause's types checked against the graph's."""
    declared = {name.lower(): (name, type_) for name, type_ in clause or ()}
    columns = []
    for value in _graph_inputs(model):
        family = _input_family(value)
        if clause is not None:
            found = declared.pop(value.name.lower(), None)
            if found is None:
                raise errors.UndefinedColumn(
                    f'the graph\'s input "{value.name}" matches no column of INPUT',
                    hint="name each of the graph's inputs in INPUT (name type, ...)",
                )
            wanted = _clause_family(found[1])
            if wanted != family:
                raise errors.DatatypeMismatch(
                    f'column "{found[0]}" of INPUT is {found[1]} but the graph\'s input'
                    f' "{value.name}" takes a {family} tensor'
                )
        columns.append(InputColumn(value.name, family))
    if declared:
        name = next(iter(declared.values()))[0]
        raise errors.UndefinedColumn(f'column "{name}" of INPUT is no input of the graph')
    return columns


def _input_family(value: Any) -> str:
    tensor = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if tensor is None:
        raise errors.FeatureNotSupported(f'the graph\'s input "{value.name}" is not a tensor')
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
    if len(dims) != 2 or (dims[1].HasField("dim_value") and dims[1].dim_value != 1):
        raise errors.FeatureNotSupported(
            f'the graph\'s input "{value.name}" is not one column ([N, 1])',
            hint="convert the model with one input per column (skl2onnx: one initial_types"
            " entry per column, each [None, 1])",
        )
    if tensor.elem_type in _NUMERIC_ELEMS:
        return "numeric"
    if tensor.elem_type == STRING:
        return "string"
    raise errors.FeatureNotSupported(
        f'the graph\'s input "{value.name}" has ONNX element type {tensor.elem_type}: sqlml maps'
        " numbers and strings to columns"
    )


def _clause_family(type_: str) -> str:
    if type_ in _NUMERIC:
        return "numeric"
    if type_ in _STRING:
        return "string"
    if type_ in _BOOL:
        return "bool"
    raise errors.FeatureNotSupported(f"type {type_} is not supported in INPUT")


def _cast_inputs(model: onnx.ModelProto) -> None:
    """Each numeric input that is not DOUBLE becomes a DOUBLE input cast to its type inside."""
    from onnx import helper

    casts = []
    for value in _graph_inputs(model):
        tensor = value.type.tensor_type
        if tensor.elem_type not in _NUMERIC_ELEMS or tensor.elem_type == DOUBLE_:
            continue
        inner = value.name + CAST_SUFFIX
        for node in model.graph.node:
            node.input[:] = [inner if name == value.name else name for name in node.input]
        casts.append(helper.make_node("Cast", [value.name], [inner], to=tensor.elem_type))
        tensor.elem_type = DOUBLE_
    for position, node in enumerate(casts):
        model.graph.node.insert(position, node)


# -- outputs --------------------------------------------------------------------------------------


def _strip_zipmaps(model: onnx.ModelProto) -> None:
    """A ZipMap output becomes the probability tensor ZipMap reads (module docstring)."""
    from onnx import helper

    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "ZipMap"]:
        output = node.output[0]
        spot = next((i for i, o in enumerate(graph.output) if o.name == output), None)
        if spot is None:
            continue
        graph.node.remove(node)
        graph.node.append(helper.make_node("Identity", [node.input[0]], [output]))
        info = helper.make_tensor_value_info(output, FLOAT, [None, None])
        graph.output.remove(graph.output[spot])
        graph.output.insert(spot, info)


def _select_outputs(
    model: onnx.ModelProto, clause: Sequence[tuple[str, str]] | None
) -> list[tuple[str, str | None]]:
    """The outputs ML.PREDICT returns (the clause's, in its order), kept as the graph's."""
    graph = model.graph
    by_name = {o.name.lower(): o for o in graph.output}
    chosen: list[tuple[Any, str | None]] = []
    if clause is None:
        chosen = [(o, None) for o in graph.output]
    else:
        for name, type_ in clause:
            found = by_name.get(name.lower())
            if found is None:
                raise errors.UndefinedColumn(
                    f'column "{name}" of OUTPUT is no output of the graph',
                    hint="outputs: " + ", ".join(o.name for o in graph.output),
                )
            chosen.append((found, type_))
    for value, _ in chosen:
        tensor = value.type.tensor_type if value.type.HasField("tensor_type") else None
        if tensor is None or tensor.elem_type not in _OUTPUT_ELEMS:
            raise errors.FeatureNotSupported(
                f'the graph\'s output "{value.name}" is not a tensor of numbers: sqlml'
                " serves number outputs (a classifier's string labels: train it on integer"
                " class ids)"
            )
    kept = [value for value, _ in chosen]
    del graph.output[:]
    graph.output.extend(kept)
    return [(value.name, type_) for value, type_ in chosen]


def _output_kind(model: onnx.ModelProto, name: str) -> str:
    value = next(o for o in model.graph.output if o.name == name)
    return _OUTPUT_ELEMS[value.type.tensor_type.elem_type]


def _check_output_type(name: str, declared: str, kind: str, width: int) -> None:
    array = declared.startswith("ARRAY<") and declared.endswith(">")
    element = declared[len("ARRAY<") : -1].strip() if array else declared
    if element not in _NUMERIC:
        raise errors.DatatypeMismatch(
            f'column "{name}" of OUTPUT is {declared} but the graph gives numbers'
        )
    integral = element in _INTEGRAL
    if integral != (kind == "int") or (not array and width != 1):
        what = "integers" if kind == "int" else "floating-point numbers"
        shape = f"{width} per row" if width != 1 else "one per row"
        raise errors.DatatypeMismatch(
            f'column "{name}" of OUTPUT is {declared} but the graph gives {what}, {shape}'
        )


def _sample_widths(onnx_bytes: bytes, inputs: list[InputColumn], names: list[str]) -> list[int]:
    """Runs the normalized graph on sample rows (zeros, empty strings); each output's numbers
    per row. A graph that fails on them is 22023."""
    from sqlml.ml.score import Scorer

    feed: dict[str, Any] = {}
    for column in inputs:
        if column.kind == "numeric":
            feed[column.name] = np.zeros(SAMPLE_ROWS, dtype=np.float64)
        else:
            feed[column.name] = np.array([""] * SAMPLE_ROWS, dtype=object)
    try:
        outputs = Scorer(onnx_bytes, inputs).run(feed, names)
    except Exception as e:  # onnxruntime's errors derive from Exception only
        raise _bad_file("onnxruntime cannot run the graph on sample rows", e) from e
    widths = []
    for name in names:
        value = np.asarray(outputs[name])
        if value.size % SAMPLE_ROWS or (value.ndim and value.shape[0] != SAMPLE_ROWS):
            raise _bad_file(f'the graph\'s output "{name}" has not one row per input row')
        widths.append(value.size // SAMPLE_ROWS)
    return widths


# -- the kind -------------------------------------------------------------------------------------


def _outputs(version: kinds.Version) -> list[dict[str, Any]]:
    return list(version.training_info["outputs"])


def _names(version: kinds.Version) -> list[str]:
    return [o["name"] for o in _outputs(version)]


def _width(version: kinds.Version) -> int:
    return sum(int(o["width"]) for o in _outputs(version))


def _columns(
    version: kinds.Version, raw: list[exp.Expr], threshold: float | None, dialect: str
) -> list[exp.Expr]:
    columns, at = [], 0
    for output in _outputs(version):
        sql_type = exp.DataType.build("BIGINT" if output["type"] == "int" else "DOUBLE")
        values = [exp.cast(r, sql_type) for r in raw[at : at + output["width"]]]
        at += output["width"]
        value = exp.Array(expressions=values) if output["array"] else values[0]
        columns.append(named(value, output["name"]))
    return columns


def _score(version: kinds.Version, raw: list[exp.Expr]) -> exp.Expr:
    return exp.cast(raw[0], exp.DataType.build("DOUBLE"))


def _no_training(*args: Any) -> Any:
    raise errors.InternalError("an imported model is not trained")


def _no_evaluate(*args: Any) -> Any:
    raise errors.FeatureNotSupported(
        "ML.EVALUATE is not supported for imported ONNX models", hint="use ML.PREDICT"
    )


IMPORTED = kinds.register(
    kinds.Kind(
        name=KIND,
        onnx_outputs={},
        output_types=_no_training,
        expected=_no_training,
        metrics=_no_training,
        supervised=False,
        raw_outputs=(),  # every output of the stored graph, in its order
        width=_width,
        output_names=_names,
        columns=_columns,
        score=_score,
        pg_score_type=lambda version: "DOUBLE PRECISION",
        evaluate_rows=_no_evaluate,
    )
)

models.register(
    models.ModelType(
        MODEL_TYPE,
        KIND,
        (Option("model_type", "str"), Option("model_path", "str")),
        _no_training,
        lambda opts: False,
        ("kms_key_name",),
    )
)
