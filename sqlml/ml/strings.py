"""String functions in TRANSFORM expressions, on numpy (training) and as ONNX nodes (the stored
graph), computing the same strings as the compiled SQL on DuckDB and PostgreSQL.

Theory of operation. A string value is an object array (numpy) or a string tensor of shape
[N, 1] (ONNX) in which NULL is :data:`sqlml.ml.features.NULL_CATEGORY`, as string columns
arrive at the graph. At fit time :func:`typed` checks the types of an expression against the
training columns and marks each string column ``Call('text', (Col,))``, so the evaluators below
and those of numbers (sqlml.ml.features) can tell strings from numbers by the tree alone.

Only what ONNX and both engines compute identically is built:
- ``LOWER(s)``, ``UPPER(s)``: ASCII letters only (A-Z <-> a-z), other characters kept. ONNX's
  StringNormalizer in the "C" locale does exactly that (in another locale onnxruntime follows
  the machine's, and PostgreSQL's LOWER follows the database's LC_CTYPE), and compiled SQL
  writes it as ``translate(s, 'A..Z', 'a..z')``, which both engines compute the same way.
- ``CONCAT(a, b, ...)``: as DuckDB and PostgreSQL define it, a NULL argument counts as '' (the
  result is never NULL); ``a || b`` is NULL when an argument is NULL (as BigQuery's CONCAT).
  ONNX StringConcat (opset 20); compiled SQL ``a || b`` over NULL-free values.
- ``COALESCE``, ``CASE`` and ``IF`` over strings, and the conditions ``s = t``, ``s <> t``,
  ``s IS [NOT] NULL`` (ONNX Equal and Where, SQL = and CASE).
The others (TRIM, SUBSTR, LENGTH, REPLACE, ordering comparisons of strings) have no ONNX operator
that computes them as both engines do, and stay 0A000 in the grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml.spec import BinOp, Call, Col, Expr, Lit, Neg

if TYPE_CHECKING:
    from sqlml.ml.graph import GraphBuilder

Array = np.ndarray[Any, Any]
NULL = "\u2400"  # sqlml.ml.features.NULL_CATEGORY (that module imports this one)
UPPER_ASCII = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER_ASCII = UPPER_ASCII.lower()
_TO_LOWER = str.maketrans(UPPER_ASCII, LOWER_ASCII)
_TO_UPPER = str.maketrans(LOWER_ASCII, UPPER_ASCII)
# 'concat' skips NULL arguments (DuckDB's and PostgreSQL's CONCAT); 'dpipe' is NULL when one is
STRING_FUNCTIONS = ("text", "lower", "upper", "concat", "dpipe")
_PICKS = ("coalesce", "case")


# -- types -----------------------------------------------------------------------------------------


def is_string(expr: Expr) -> bool:
    """Whether a typed expression (see :func:`typed`) is a string."""
    if isinstance(expr, Lit):
        return isinstance(expr.value, str)
    if not isinstance(expr, Call):
        return False
    if expr.name in STRING_FUNCTIONS:
        return True
    if expr.name == "coalesce":
        return any(is_string(a) for a in expr.args)
    if expr.name == "case":
        return any(is_string(a) for a in _values(expr.args))
    return False


def _values(args: tuple[Expr, ...]) -> tuple[Expr, ...]:
    """A CASE's values (condition 1, value 1, ..., else)."""
    return (*args[1:-1:2], args[-1])


def typed(expr: Expr, kinds: Mapping[str, str]) -> Expr:
    """``expr`` with its string columns marked, its types checked (42804 for a string where a
    number is wanted or the other way round; a BOOL column is neither)."""
    marked = _mark(expr, kinds)
    _check(marked)
    return marked


def _mark(expr: Expr, kinds: Mapping[str, str]) -> Expr:
    if isinstance(expr, Col):
        kind = kinds.get(expr.name, "numeric")
        if kind not in ("numeric", "string", "timestamp"):  # (a TIMESTAMP: its epoch seconds)
            raise errors.DatatypeMismatch(
                f'TRANSFORM expressions take numbers and strings; "{expr.name}" is a'
                f" {kind.upper()} column"
            )
        return Call("text", (expr,)) if kind == "string" else expr
    if isinstance(expr, Neg):
        return Neg(_mark(expr.operand, kinds))
    if isinstance(expr, BinOp):
        return BinOp(expr.op, _mark(expr.left, kinds), _mark(expr.right, kinds))
    if isinstance(expr, Call) and expr.name == "extract":  # of a temporal column
        from sqlml.ml import extract  # (it imports temporal.py, which imports this module)

        return extract.typed(expr, kinds)
    if isinstance(expr, Call):
        return Call(expr.name, tuple(_mark(a, kinds) for a in expr.args))
    return expr


def _mismatch(what: str) -> errors.DatatypeMismatch:
    return errors.DatatypeMismatch(f"TRANSFORM: {what}")


def _check(expr: Expr) -> None:
    """Strings only where strings go, numbers only where numbers go (NULL goes anywhere)."""
    if isinstance(expr, Neg):
        _want_number(expr.operand, "unary -")
    elif isinstance(expr, BinOp):
        _want_number(expr.left, expr.op)
        _want_number(expr.right, expr.op)
    elif isinstance(expr, Call):
        _check_call(expr)


def _check_call(call: Call) -> None:
    for arg in call.args:
        _check(arg)
    name, args = call.name, call.args
    if name in ("lower", "upper", "concat", "dpipe"):
        for arg in args:
            if not is_string(arg) and not _null(arg):
                raise _mismatch(f"{name.upper()} takes strings (cast numbers in the query)")
    elif name in _PICKS:
        values = args if name == "coalesce" else _values(args)
        kinds = {is_string(v) for v in values if not _null(v)}
        if len(kinds) > 1:
            raise _mismatch(f"{name.upper()} mixes strings and numbers")
    elif name in ("eq", "ne"):
        if len({is_string(a) for a in args if not _null(a)}) > 1:
            raise _mismatch("a comparison of a string with a number")
    elif name in ("gt", "ge", "lt", "le") and any(is_string(a) for a in args):
        raise errors.FeatureNotSupported(
            "ordering comparisons of strings are not supported in TRANSFORM: the engines order"
            " strings by their collation, which ONNX cannot follow (= and <> are supported)"
        )
    elif name not in ("and", "or", "not", "is_null", "text", "extract"):
        for arg in args:
            _want_number(arg, name.upper())


def _want_number(expr: Expr, where: str) -> None:
    if is_string(expr):
        raise _mismatch(f"{where} takes numbers, not strings")


def _null(expr: Expr) -> bool:
    return isinstance(expr, Lit) and expr.value is None


# -- numpy -----------------------------------------------------------------------------------------

Truth = Callable[[Expr], Array]  # a condition -> its surely-true mask


def eval_numpy(expr: Expr, data: Mapping[str, Array], true: Truth) -> Array:
    """A string expression's values (object array, NULL as the sentinel), one per row."""
    rows = len(next(iter(data.values()))) if data else 1
    value = _eval_numpy(expr, data, true)
    return np.asarray(np.broadcast_to(value, (rows,)), dtype=object).copy()


def _eval_numpy(expr: Expr, data: Mapping[str, Array], true: Truth) -> Array:
    if isinstance(expr, Lit):
        return np.asarray(NULL if expr.value is None else str(expr.value), dtype=object)
    assert isinstance(expr, Call)
    name = expr.name
    if name == "text":
        column = expr.args[0]
        assert isinstance(column, Col)
        return np.asarray(data[column.name], dtype=object)
    args = [
        _eval_numpy(a, data, true) for a in (_values(expr.args) if name == "case" else expr.args)
    ]
    return _NUMPY[name](expr, args, true)


def _apply(function: Callable[[str], str], x: Array) -> Array:
    changed = np.vectorize(lambda v: v if v == NULL else function(v), otypes=[object])(x)
    return np.asarray(changed, dtype=object)


def _lower_numpy(call: Call, args: list[Array], true: Truth) -> Array:
    return _apply(lambda v: v.translate(_TO_LOWER), args[0])


def _upper_numpy(call: Call, args: list[Array], true: Truth) -> Array:
    return _apply(lambda v: v.translate(_TO_UPPER), args[0])


def _join(parts: list[Array], skip_null: bool) -> Array:
    def join(*values: str) -> str:
        if not skip_null and NULL in values:
            return NULL
        return "".join(v for v in values if v != NULL)

    return np.asarray(np.vectorize(join, otypes=[object])(*parts), dtype=object)


def _concat_numpy(call: Call, args: list[Array], true: Truth) -> Array:
    return _join(args, skip_null=True)


def _dpipe_numpy(call: Call, args: list[Array], true: Truth) -> Array:
    return _join(args, skip_null=False)


def _coalesce_numpy(call: Call, args: list[Array], true: Truth) -> Array:
    result = args[-1]
    for value in reversed(args[:-1]):
        result = np.where(value == NULL, result, value)
    return np.asarray(result, dtype=object)


def _case_numpy(call: Call, values: list[Array], true: Truth) -> Array:
    conditions = call.args[0:-1:2]
    result = values[-1]
    for condition, value in reversed(list(zip(conditions, values[:-1], strict=True))):
        result = np.where(true(condition), value, result)
    return np.asarray(result, dtype=object)


_NUMPY: dict[str, Callable[[Call, list[Array], Truth], Array]] = {
    "lower": _lower_numpy,
    "upper": _upper_numpy,
    "concat": _concat_numpy,
    "dpipe": _dpipe_numpy,
    "coalesce": _coalesce_numpy,
    "case": _case_numpy,
}


def compare_numpy(name: str, left: Array, right: Array) -> tuple[Array, Array]:
    """``=`` or ``<>`` of strings as (surely true, surely false) masks: NULL is neither."""
    known = (left != NULL) & (right != NULL)
    holds = (left == right) if name == "eq" else (left != right)
    return holds & known, ~holds & known


# -- ONNX ------------------------------------------------------------------------------------------

OnnxTruth = Callable[[Expr], str]


def eval_onnx(expr: Expr, g: GraphBuilder, tensors: Mapping[str, str], true: OnnxTruth) -> str:
    """A string expression as a string tensor [N, 1] (or [1, 1] for a constant)."""
    if isinstance(expr, Lit):
        return _const(g, NULL if expr.value is None else str(expr.value))
    assert isinstance(expr, Call)
    name = expr.name
    if name == "text":
        column = expr.args[0]
        assert isinstance(column, Col)
        return tensors[column.name]
    picked = _values(expr.args) if name == "case" else expr.args
    args = [eval_onnx(a, g, tensors, true) for a in picked]
    return _ONNX[name](expr, args, g, true)


def _const(g: GraphBuilder, value: str) -> str:
    return g.const(np.array([[value]], dtype=object))


def is_null_onnx(g: GraphBuilder, x: str) -> str:
    return g.op("Equal", x, _const(g, NULL))


def _case_change(action: str) -> Callable[[Call, list[str], GraphBuilder, OnnxTruth], str]:
    def change(call: Call, args: list[str], g: GraphBuilder, true: OnnxTruth) -> str:
        # StringNormalizer takes [C] or [1, C]: the rows as one vector, then back to [N, 1]
        flat = g.op("Reshape", args[0], g.const_exact(np.array([-1], dtype=np.int64)))
        changed = g.op("StringNormalizer", flat, case_change_action=action, locale="C")
        return g.op("Reshape", changed, g.const_exact(np.array([-1, 1], dtype=np.int64)))

    return change


def _concat_onnx(call: Call, args: list[str], g: GraphBuilder, true: OnnxTruth) -> str:
    empty = _const(g, "")
    parts = [g.op("Where", is_null_onnx(g, a), empty, a) for a in args]
    return _fold_concat(parts, g)


def _fold_concat(parts: list[str], g: GraphBuilder) -> str:
    result = parts[0]
    for part in parts[1:]:
        result = g.op("StringConcat", result, part)
    return result


def _dpipe_onnx(call: Call, args: list[str], g: GraphBuilder, true: OnnxTruth) -> str:
    missing = is_null_onnx(g, args[0])
    for arg in args[1:]:
        missing = g.op("Or", missing, is_null_onnx(g, arg))
    return g.op("Where", missing, _const(g, NULL), _fold_concat(args, g))


def _coalesce_onnx(call: Call, args: list[str], g: GraphBuilder, true: OnnxTruth) -> str:
    result = args[-1]
    for value in reversed(args[:-1]):
        result = g.op("Where", is_null_onnx(g, value), result, value)
    return result


def _case_onnx(call: Call, values: list[str], g: GraphBuilder, true: OnnxTruth) -> str:
    conditions = call.args[0:-1:2]
    result = values[-1]
    for condition, value in reversed(list(zip(conditions, values[:-1], strict=True))):
        result = g.op("Where", true(condition), value, result)
    return result


_ONNX: dict[str, Callable[[Call, list[str], GraphBuilder, OnnxTruth], str]] = {
    "lower": _case_change("LOWER"),
    "upper": _case_change("UPPER"),
    "concat": _concat_onnx,
    "dpipe": _dpipe_onnx,
    "coalesce": _coalesce_onnx,
    "case": _case_onnx,
}


def compare_onnx(name: str, left: str, right: str, g: GraphBuilder) -> tuple[str, str]:
    """``=`` or ``<>`` of string tensors as (surely true, surely false): NULL is neither."""
    known = g.op("Not", g.op("Or", is_null_onnx(g, left), is_null_onnx(g, right)))
    holds = g.op("Equal", left, right)
    if name == "ne":
        holds = g.op("Not", holds)
    return g.op("And", holds, known), g.op("And", g.op("Not", holds), known)
