"""CASE, IF and COALESCE in TRANSFORM expressions, on numpy and as ONNX nodes.

A condition follows SQL's three-valued logic: it is evaluated to a pair of masks (surely true,
surely false), and a comparison with NULL is neither, so ``NOT (x > 1)`` is not taken for a NULL
x, exactly as the engines do. CASE takes the first branch whose condition is surely true, else
its ELSE (NULL without one); COALESCE the first non-NULL argument. The ONNX side uses only
Where, IsNaN, Not, And, Or and the comparisons, which the SQL compiler compiles.

The evaluators of numbers come from sqlml.ml.features (passed in, so this module needs none);
those of strings likewise (``text``): ``s = 'x'``, ``s <> t`` and ``s IS NULL`` compare strings
(sqlml.ml.strings), a NULL string being neither equal nor unequal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml import strings
from sqlml.ml.spec import Call, Expr

if TYPE_CHECKING:
    from sqlml.ml.graph import GraphBuilder

Array = np.ndarray[Any, Any]
CONDITIONS = ("gt", "ge", "lt", "le", "eq", "ne", "and", "or", "not", "is_null")
_NP_COMPARE: dict[str, Callable[[Array, Array], Array]] = {
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}
_ONNX_COMPARE = {
    "gt": "Greater",
    "ge": "GreaterOrEqual",
    "lt": "Less",
    "le": "LessOrEqual",
    "eq": "Equal",
    "ne": "Equal",  # then Not
}


def not_a_number() -> errors.FeatureNotSupported:
    return errors.FeatureNotSupported(
        "a condition (comparison, AND, OR, NOT, IS NULL) is supported in TRANSFORM only inside"
        " CASE WHEN or IF; a number is expected here"
    )


def _condition(expr: Expr) -> Call:
    if not isinstance(expr, Call) or expr.name not in CONDITIONS:
        raise errors.FeatureNotSupported("CASE WHEN and IF take a condition, not a number")
    return expr


TextNumpy = Callable[[Expr], Array] | None


def truth_numpy(
    expr: Expr, number: Callable[[Expr], Array], text: TextNumpy = None
) -> tuple[Array, Array]:
    call = _condition(expr)
    name, args = call.name, call.args
    strings_in = text is not None and any(strings.is_string(a) for a in args)
    if name == "is_null":
        missing = (
            (text(args[0]) == strings.NULL) if text and strings_in else np.isnan(number(args[0]))
        )
        return missing, ~missing
    if name == "not":
        true, false = truth_numpy(args[0], number, text)
        return false, true
    if name in ("and", "or"):
        (t1, f1), (t2, f2) = truth_numpy(args[0], number, text), truth_numpy(args[1], number, text)
        return (t1 & t2, f1 | f2) if name == "and" else (t1 | t2, f1 & f2)
    if text is not None and strings_in:
        return strings.compare_numpy(name, text(args[0]), text(args[1]))
    left, right = number(args[0]), number(args[1])
    known = ~(np.isnan(left) | np.isnan(right))
    holds = _NP_COMPARE[name](left, right)
    return holds & known, ~holds & known


def case_numpy(
    args: tuple[Expr, ...], number: Callable[[Expr], Array], text: TextNumpy = None
) -> Array:
    """args = (condition 1, value 1, ..., else)."""
    result = number(args[-1])
    for at in range(len(args) - 3, -1, -2):
        true, _ = truth_numpy(args[at], number, text)
        result = np.where(true, number(args[at + 1]), result)
    return np.asarray(result)


def coalesce_numpy(
    args: tuple[Expr, ...], number: Callable[[Expr], Array], text: TextNumpy = None
) -> Array:
    result = number(args[-1])
    for arg in reversed(args[:-1]):
        value = number(arg)
        result = np.where(np.isnan(value), result, value)
    return np.asarray(result)


TextOnnx = Callable[[Expr], str] | None


def truth_onnx(
    expr: Expr, g: GraphBuilder, number: Callable[[Expr], str], text: TextOnnx = None
) -> tuple[str, str]:
    call = _condition(expr)
    name, args = call.name, call.args
    strings_in = text is not None and any(strings.is_string(a) for a in args)
    if name == "is_null":
        if text is not None and strings_in:
            missing = strings.is_null_onnx(g, text(args[0]))
        else:
            missing = g.op("IsNaN", number(args[0]))
        return missing, g.op("Not", missing)
    if name == "not":
        true, false = truth_onnx(args[0], g, number, text)
        return false, true
    if name in ("and", "or"):
        (t1, f1) = truth_onnx(args[0], g, number, text)
        (t2, f2) = truth_onnx(args[1], g, number, text)
        if name == "and":
            return g.op("And", t1, t2), g.op("Or", f1, f2)
        return g.op("Or", t1, t2), g.op("And", f1, f2)
    if text is not None and strings_in:
        return strings.compare_onnx(name, text(args[0]), text(args[1]), g)
    left, right = number(args[0]), number(args[1])
    known = g.op("Not", g.op("Or", g.op("IsNaN", left), g.op("IsNaN", right)))
    holds = g.op(_ONNX_COMPARE[name], left, right)
    if name == "ne":
        holds = g.op("Not", holds)
    return g.op("And", holds, known), g.op("And", g.op("Not", holds), known)


def case_onnx(
    args: tuple[Expr, ...], g: GraphBuilder, number: Callable[[Expr], str], text: TextOnnx = None
) -> str:
    result = number(args[-1])
    for at in range(len(args) - 3, -1, -2):
        true, _ = truth_onnx(args[at], g, number, text)
        result = g.op("Where", true, number(args[at + 1]), result)
    return result


def coalesce_onnx(
    args: tuple[Expr, ...], g: GraphBuilder, number: Callable[[Expr], str], text: TextOnnx = None
) -> str:
    result = number(args[-1])
    for arg in reversed(args[:-1]):
        value = number(arg)
        result = g.op("Where", g.op("IsNaN", value), result, value)
    return result
