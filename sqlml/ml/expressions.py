"""The tiny expression language of TRANSFORM items (sqlml.ml.spec's trees: numbers, strings,
CASE/IF/COALESCE), evaluated on numpy arrays at training and written as ONNX nodes for the
stored graph, from one definition each so that the two agree (the parity check compares them).
String expressions are sqlml.ml.strings', conditions sqlml.ml.conditions'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml.ml import conditions, strings
from sqlml.ml.spec import BinOp, Call, Col, Expr, Lit, Neg

if TYPE_CHECKING:  # onnx (0.8 s to import) only where a graph is built or read
    from sqlml.ml.graph import GraphBuilder

Array = np.ndarray[Any, Any]


def _np_round(x: Array) -> Array:
    return np.asarray(np.sign(x) * np.floor(np.abs(x) + 0.5))  # SQL ROUND: half away from zero


_NP_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "^": np.power,
}
_ONNX_BINARY = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "^": "Pow"}
_NP_UNARY: dict[str, Callable[[Array], Array]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "ln": np.log,
    "floor": np.floor,
    "ceil": np.ceil,
    "sign": np.sign,
    "round": _np_round,
    "cast_double": np.asarray,
}
_ONNX_UNARY = {
    "abs": "Abs",
    "sqrt": "Sqrt",
    "exp": "Exp",
    "ln": "Log",
    "floor": "Floor",
    "ceil": "Ceil",
    "sign": "Sign",
}


def _normal_call(call: Call) -> Call:
    """log/log10/pow/power/greatest/least spelled as the core operations."""
    name, args = call.name, call.args
    if name == "log" and len(args) == 1:
        return Call("ln", args)
    if name == "log" and len(args) == 2:  # LOG(x, base) as in BigQuery
        return Call("/", (Call("ln", args[:1]), Call("ln", args[1:])))
    if name == "log10":
        return Call("/", (Call("ln", args), Call("ln", (Lit(10.0),))))
    if name in ("pow", "power"):
        return Call("^", args)
    return call


def eval_numpy(expr: Expr, data: dict[str, Array]) -> Array:
    with np.errstate(all="ignore"):
        return _eval_numpy(expr, data)


def _eval_numpy(expr: Expr, data: dict[str, Array]) -> Array:
    if isinstance(expr, Col):
        return np.asarray(data[expr.name], dtype=np.float64)
    if isinstance(expr, Lit):
        return np.asarray(float(expr.value if expr.value is not None else np.nan))
    if isinstance(expr, Neg):
        return np.negative(_eval_numpy(expr.operand, data))
    if isinstance(expr, BinOp):
        return _NP_BINARY[expr.op](_eval_numpy(expr.left, data), _eval_numpy(expr.right, data))
    call = _normal_call(expr)
    if call.name == "extract":  # a date or time part (sqlml.ml.extract)
        from sqlml.ml import extract  # (it imports temporal.py, which imports this module)

        return extract.eval_numpy(call, data)
    if call.name in ("case", "coalesce"):
        combine = conditions.case_numpy if call.name == "case" else conditions.coalesce_numpy
        return combine(call.args, lambda e: _eval_numpy(e, data), lambda e: _text_numpy(e, data))
    if call.name in conditions.CONDITIONS:
        raise conditions.not_a_number()
    args = [_eval_numpy(a, data) for a in call.args]
    if call.name in _NP_BINARY:
        return _NP_BINARY[call.name](args[0], args[1])
    if call.name in ("greatest", "least"):
        fold = np.fmax if call.name == "greatest" else np.fmin  # SQL: NULLs are ignored
        result = args[0]
        for arg in args[1:]:
            result = fold(result, arg)
        return result
    return _NP_UNARY[call.name](args[0])


def eval_onnx(expr: Expr, g: GraphBuilder, tensors: dict[str, str]) -> str:
    if isinstance(expr, Col):
        return tensors[expr.name]
    if isinstance(expr, Lit):
        return g.const(np.array([[float(expr.value if expr.value is not None else np.nan)]]))
    if isinstance(expr, Neg):
        return g.op("Neg", eval_onnx(expr.operand, g, tensors))
    if isinstance(expr, BinOp):
        left, right = eval_onnx(expr.left, g, tensors), eval_onnx(expr.right, g, tensors)
        return g.op(_ONNX_BINARY[expr.op], left, right)
    call = _normal_call(expr)
    if call.name == "extract":
        from sqlml.ml import extract

        return extract.eval_onnx(call, g, tensors)
    if call.name in ("case", "coalesce"):
        combine = conditions.case_onnx if call.name == "case" else conditions.coalesce_onnx
        return combine(
            call.args, g, lambda e: eval_onnx(e, g, tensors), lambda e: text_onnx(e, g, tensors)
        )
    args = [eval_onnx(a, g, tensors) for a in call.args]
    if call.name in _ONNX_BINARY:
        return g.op(_ONNX_BINARY[call.name], args[0], args[1])
    if call.name in ("greatest", "least"):
        return _onnx_fold(call.name, args, g)
    if call.name == "round":
        floor = g.op("Floor", g.op("Add", g.op("Abs", args[0]), g.const([[0.5]])))
        return g.op("Mul", g.op("Sign", args[0]), floor)
    if call.name == "cast_double":
        return args[0]
    return g.op(_ONNX_UNARY[call.name], args[0])


def text_numpy(expr: Expr, data: dict[str, Array]) -> Array:
    """A string expression's values (sqlml.ml.strings), its conditions read with both
    evaluators."""
    with np.errstate(all="ignore"):
        return _text_numpy(expr, data)


def _text_numpy(expr: Expr, data: dict[str, Array]) -> Array:
    def true(condition: Expr) -> Array:
        number = lambda e: _eval_numpy(e, data)  # noqa: E731
        return conditions.truth_numpy(condition, number, lambda e: _text_numpy(e, data))[0]

    return strings.eval_numpy(expr, data, true)


def text_onnx(expr: Expr, g: GraphBuilder, tensors: dict[str, str]) -> str:
    def true(condition: Expr) -> str:
        number = lambda e: eval_onnx(e, g, tensors)  # noqa: E731
        return conditions.truth_onnx(condition, g, number, lambda e: text_onnx(e, g, tensors))[0]

    return strings.eval_onnx(expr, g, tensors, true)


def _onnx_fold(name: str, args: list[str], g: GraphBuilder) -> str:
    """GREATEST/LEAST ignoring NULL (NaN), as SQL does: NaN loses to any number."""
    result = args[0]
    for arg in args[1:]:
        pick = g.op("Greater" if name == "greatest" else "Less", arg, result)
        pick = g.op("Or", pick, g.op("IsNaN", result))
        result = g.op("Where", pick, arg, result)
    return result


def columns_of(expr: Expr) -> set[str]:
    if isinstance(expr, Col):
        return {expr.name}
    if isinstance(expr, Lit):
        return set()
    if isinstance(expr, Neg):
        return columns_of(expr.operand)
    if isinstance(expr, BinOp):
        return columns_of(expr.left) | columns_of(expr.right)
    return set().union(*(columns_of(a) for a in expr.args))
