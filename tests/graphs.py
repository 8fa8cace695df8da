"""ONNX graph helpers shared by the tests and the benchmarks (which put tests/ on sys.path)."""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper


def per_column(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """``model`` behind one [N, 1] DOUBLE input per column (a Concat into its single matrix
    input), the way a stored model takes its features."""
    concat = helper.make_node("Concat", list(names), [model.graph.input[0].name], axis=1)
    graph = helper.make_graph(
        [concat, *model.graph.node],
        "per_column",
        [helper.make_tensor_value_info(name, TensorProto.DOUBLE, [None, 1]) for name in names],
        list(model.graph.output),
        list(model.graph.initializer),
    )
    wrapped = helper.make_model(graph, opset_imports=list(model.opset_import))
    wrapped.ir_version = model.ir_version
    return wrapped
