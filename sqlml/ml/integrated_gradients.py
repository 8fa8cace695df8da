"""Integrated gradients for sqlml's DNN models (ML.EXPLAIN_PREDICT of a dnn_regressor or
dnn_classifier; sqlml/functions/explain_dnn.py writes the SQL around it).

A DNN version's graph is sqlml's preprocessing followed by scikit-learn's perceptron as skl2onnx
writes it: per layer a MatMul by a constant weight matrix, an Add of a constant bias, then the
hidden activation (Relu, Tanh, Sigmoid; Identity writes none) or, after the last layer, the
output's (none for a regressor, Sigmoid for a binary classifier, Softmax for a multiclass one).
This module reads those weights from the graph (``layers``) and computes, in numpy over a batch
of rows as the perceptron reads them (the preprocessed features, x), the output F explained:
a regressor's value or the logit of a class (binary: the positive class's log-odds, the input of
the sigmoid; multiclass: the class's input of the softmax), and its integrated gradients from the
baseline x' = 0:

    attribution_j = (x_j - x'_j) * (1 / m) sum_{k=1..m} dF/dx_j (x' + (k / m) (x - x'))

(the right Riemann sum with m = ``integrated_gradients_num_steps`` steps; exact as m grows:
F(x') + sum_j attribution_j -> F(x), the completeness of integrated gradients). The baseline is
BigQuery's "mean across all numerical features": the training mean of each numeric column is 0
once standardized as the graph standardizes it; a one-hot category block's baseline is all
zeros (no category), the baseline BigQuery leaves open for other types of features.

``explain`` returns per row ``[a_0, ..., a_{d-1}, F(x'), F(x), output]``, ``output`` the
class's probability (binary: the positive class's) or the regressor's value. Weights are cached
per process by the graph's sha256 (content-addressed: nothing stale is served).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors

Array = np.ndarray[Any, Any]
CACHE = 16
ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "Identity")
DEFAULT_STEPS = 15
MAX_STEPS = 10_000  # (a bound on the work a row asks for)
_cache: OrderedDict[str, Perceptron] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Perceptron:
    """The perceptron after the preprocessing: per layer its weights and bias, the hidden
    activation, and the output's (None: a regressor's identity)."""

    weights: Sequence[Array]
    biases: Sequence[Array]
    activation: str
    output: str | None

    @property
    def width(self) -> int:
        return int(self.weights[0].shape[0])


def layers(onnx_bytes: bytes) -> Perceptron:
    """The perceptron of a DNN graph: the chain of MatMul-by-constant, Add-of-constant and
    activation nodes from the first MatMul by a constant (after the preprocessing)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for each in graph.node:
        for name in each.input:
            consumers.setdefault(name, []).append(each)
    first = next((n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants), None)
    if first is None:
        raise errors.CorruptedModel("the stored graph has no perceptron")
    weights: list[Array] = []
    biases: list[Array] = []
    activations: list[str] = []
    node: Any = first
    while node is not None and node.op_type == "MatMul" and node.input[1] in constants:
        weight = np.asarray(constants[node.input[1]], dtype=np.float64)
        following = consumers.get(node.output[0], [])
        if len(following) != 1 or following[0].op_type != "Add":
            raise errors.CorruptedModel("the stored graph's perceptron has a layer without bias")
        add = following[0]
        bias_name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if bias_name not in constants:
            raise errors.CorruptedModel("the stored graph's perceptron has a layer without bias")
        weights.append(weight)
        biases.append(np.asarray(constants[bias_name], dtype=np.float64).reshape(-1))
        after = consumers.get(add.output[0], [])
        node = None
        if len(after) == 1 and after[0].op_type == "MatMul":  # (Identity: no node)
            activations.append("Identity")
            node = after[0]
        elif len(after) == 1 and after[0].op_type in ACTIVATIONS:
            activations.append(after[0].op_type)
            nxt = consumers.get(after[0].output[0], [])
            if len(nxt) == 1 and nxt[0].op_type == "MatMul" and nxt[0].input[1] in constants:
                node = nxt[0]
        elif len(after) == 1 and after[0].op_type == "Softmax":
            activations.append("Softmax")
        else:
            activations.append("")
    if len(activations) == len(weights) and activations[-1] in ("Sigmoid", "Softmax"):
        output: str | None = activations[-1]
    else:
        output = None
    hidden = set(activations[: len(weights) - 1])
    if len(hidden) > 1 or not hidden <= set(ACTIVATIONS):
        raise errors.CorruptedModel("the stored graph's perceptron has an unknown activation")
    return Perceptron(weights, biases, hidden.pop() if hidden else "Identity", output)


def _act(name: str, a: Array) -> tuple[Array, Array]:
    """The activation of ``a`` and its derivative."""
    if name == "Relu":
        return np.maximum(a, 0.0), (a > 0).astype(np.float64)
    if name == "Tanh":
        t = np.tanh(a)
        return t, 1.0 - t * t
    if name == "Sigmoid":
        s = 1.0 / (1.0 + np.exp(-a))
        return s, s * (1.0 - s)
    return a, np.ones_like(a)


def forward(model: Perceptron, x: Array) -> Array:
    """The last layer's pre-activation outputs (the logits, or a regressor's value)."""
    h = x
    for layer, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        a = h @ w + b
        if layer == len(model.weights) - 1:
            return a
        h, _ = _act(model.activation, a)
    raise AssertionError("no layer")


def gradient(model: Perceptron, x: Array, which: Array) -> tuple[Array, Array]:
    """(F(x), dF/dx) per row, F the output ``which[row]`` of the last layer."""
    rows = np.arange(len(x))
    h, slopes = x, []
    for w, b in zip(model.weights[:-1], model.biases[:-1], strict=True):
        h, slope = _act(model.activation, h @ w + b)
        slopes.append(slope)
    value = (h @ model.weights[-1] + model.biases[-1])[rows, which]
    g = model.weights[-1][:, which].T  # (rows, last hidden width)
    for w, slope in zip(reversed(model.weights[:-1]), reversed(slopes), strict=True):
        g = (g * slope) @ w.T
    return value, g


def perceptron(key: str, load: Callable[[], bytes]) -> Perceptron:
    """The perceptron of the graph of sha256 ``key``, read once per process."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    found = layers(load())
    with _lock:
        _cache[key] = found
        while len(_cache) > CACHE:
            _cache.popitem(last=False)
    return found


def check_steps(steps: int) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise errors.InvalidParameterValue(
            f"integrated_gradients_num_steps must be between 1 and {MAX_STEPS}, not {steps}"
        )


def explain(key: str, load: Callable[[], bytes], x: Array, which: Array, steps: int) -> Array:
    """Per row ``[a_0, ..., a_{d-1}, F(x'), F(x), output]`` (module docstring); ``x`` the rows
    as the perceptron reads them (NaN, which the graph's preprocessing never gives, reads as
    0), ``which`` each row's class index (0 for a regressor or a binary model)."""
    check_steps(steps)
    model = perceptron(key, load)
    n, d = x.shape
    if d != model.width:
        raise errors.CorruptedModel(f"the perceptron of graph {key} reads {model.width} features")
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    which = np.clip(np.asarray(which, dtype=np.int64), 0, model.weights[-1].shape[1] - 1)
    total = np.zeros((n, d))
    for k in range(1, steps + 1):  # (one pass per step over the batch: bounded memory)
        _, g = gradient(model, x * (k / steps), which)
        total += g
    attributions = x * total / steps
    rows = np.arange(n)
    logits = forward(model, x)
    value = logits[rows, which]
    base = forward(model, np.zeros((1, d)))[0][which]
    if model.output == "Sigmoid":
        output = 1.0 / (1.0 + np.exp(-value))
    elif model.output == "Softmax":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        output = shifted[rows, which] / shifted.sum(axis=1)
    else:
        output = value
    return np.column_stack([attributions, base, value, output])
