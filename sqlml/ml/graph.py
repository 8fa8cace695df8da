"""A small builder for ONNX graphs, and the splice of a converted estimator onto them.

sqlml builds the preprocessing part of every model's graph itself (imputation, scaling, one-hot,
bucketizing, TRANSFORM arithmetic) from standard ONNX operators on doubles and strings: onnxruntime
runs them on float64 (its ai.onnx.ml Imputer/Scaler kernels do not), and the SQL compiler knows
them.
The estimator comes from skl2onnx and is spliced on behind a single ``features`` tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 19  # highest main-domain opset that skl2onnx 1.20 and onnxruntime 1.31 both handle here
ML_OPSET = 3
CONTRIB, CONTRIB_OPSET = "com.microsoft", 1  # onnxruntime's contrib operators (MurmurHash3)
IR_VERSION = 9  # onnxruntime 1.31 refuses IR 14, which onnx 1.23 writes by default

DOUBLE = TensorProto.DOUBLE
STRING = TensorProto.STRING


class GraphBuilder:
    """Nodes, constants and inputs, with generated tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"pre_{hint}_{self._count}"

    def input(self, name: str, elem_type: int) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, [None, 1]))
        return name

    def const(self, value: Any, hint: str = "c") -> str:
        array = np.asarray(value)
        if array.dtype.kind in "US":
            array = array.astype(object)
        elif array.dtype.kind in "fiu":
            array = array.astype(np.float64)
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def const_exact(self, array: np.ndarray[Any, Any], hint: str = "c") -> str:
        """A constant of exactly the given dtype (e.g. int64 axes)."""
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def to_double(self, tensor: str) -> str:
        return self.op("Cast", tensor, to=DOUBLE)

    def mark(self, tensor: str, name: str, doc: str) -> None:
        """An Identity naming an intermediate tensor ``name`` (not a graph output: nothing
        scores it), described by ``doc``; ML.TRANSFORM compiles a sub-graph up to it."""
        self.nodes.append(helper.make_node("Identity", [tensor], [name], doc_string=doc))


def finish(
    builder: GraphBuilder, outputs: dict[str, str], types: dict[str, tuple[int, list[Any]]]
) -> onnx.ModelProto:
    """A model of the builder's graph whose outputs are ``outputs`` (name -> tensor), renamed."""
    for name, tensor in outputs.items():
        builder.nodes.append(helper.make_node("Identity", [tensor], [name]))
    infos = [helper.make_tensor_value_info(n, *types[n]) for n in outputs]
    graph = helper.make_graph(builder.nodes, "sqlml", builder.inputs, infos, builder.initializers)
    opsets = {"": _main_opset(builder), **_preprocessing_opsets(builder)}
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=IR_VERSION,
        producer_name="sqlml",
    )


# StringConcat (TRANSFORM's CONCAT and ||) and StringSplit (EXTRACT from a DATE, DATETIME or
# TIME: sqlml.ml.extract) are in the main domain from opset 20 on; the graphs that use them
# import opset 20, the others keep OPSET.
STRING_CONCAT_OPSET = 20
_OPSET_20 = ("StringConcat", "StringSplit")


def _main_opset(builder: GraphBuilder) -> int:
    uses_20 = any(n.op_type in _OPSET_20 for n in builder.nodes)
    return max(OPSET, STRING_CONCAT_OPSET) if uses_20 else OPSET


def _preprocessing_opsets(builder: GraphBuilder) -> dict[str, int]:
    """ai.onnx.ml when preprocessing uses it (ML.LABEL_ENCODER's LabelEncoder) even where the
    estimator's graph does not; com.microsoft for onnxruntime's MurmurHash3 (sqlml.ml.hashing)."""
    used = {n.domain for n in builder.nodes}
    opsets = {"ai.onnx.ml": ML_OPSET} if "ai.onnx.ml" in used else {}
    return opsets | ({CONTRIB: CONTRIB_OPSET} if CONTRIB in used else {})


def splice(
    builder: GraphBuilder,
    features: str,
    estimator: onnx.ModelProto,
    outputs: dict[str, str],
) -> onnx.ModelProto:
    """One model: the builder's graph feeding ``features`` into the estimator's single input.

    ``outputs`` renames the estimator's outputs (skl2onnx's names) to sqlml's canonical names;
    outputs not named there are dropped.
    """
    graph = estimator.graph
    prefix = "est_"
    rename = {graph.input[0].name: features}
    names = {n for node in graph.node for n in [*node.input, *node.output]}
    names |= {init.name for init in graph.initializer}
    for name in names:
        rename.setdefault(name, prefix + name if name else name)
    for old, new in outputs.items():
        rename[old] = new
    nodes = [_renamed(node, rename) for node in graph.node]
    inits = []
    for init in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = rename[init.name]
        inits.append(copy)
    outs = []
    for out in graph.output:
        if out.name in outputs:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(out)
            copy.name = outputs[out.name]
            outs.append(copy)
    merged = helper.make_graph(
        builder.nodes + nodes, "sqlml", builder.inputs, outs, builder.initializers + inits
    )
    opsets = {**_preprocessing_opsets(builder)}
    opsets.update({op.domain: op.version for op in estimator.opset_import})
    opsets[""] = max(opsets.get("", OPSET), _main_opset(builder))
    model = helper.make_model(
        merged,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=IR_VERSION,
        producer_name="sqlml",
    )
    onnx.checker.check_model(model)
    return model


def _renamed(node: onnx.NodeProto, rename: dict[str, str]) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = "est_" + node.name if node.name else ""
    del copy.input[:]
    copy.input.extend(rename.get(n, n) if n else n for n in node.input)
    del copy.output[:]
    copy.output.extend(rename.get(n, n) if n else n for n in node.output)
    return copy
