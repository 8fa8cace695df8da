"""The built-in op handlers of the ONNX-to-SQL compiler (sqlml.ml.to_sql has the theory).

Each handler takes a Node (input values, attributes, opset, dialect) and returns the node's output
values, building SQL with the helpers of to_sql. Nodes whose inputs are all constant never get here:
the compiler folds them. Sections: arithmetic, comparisons and logic, casts, shapes, linear algebra
and reductions, activations, and the ai.onnx.ml domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from onnx import TensorProto
from sqlglot import exp

from sqlml.ml.to_sql import (
    BOOL,
    DOUBLE,
    FLOAT,
    FLOAT_TYPES,
    IMPUTED,
    INT64,
    INT_TYPES,
    STRING,
    Cells,
    Dialect,
    Expr,
    Node,
    NotCompilable,
    Sym,
    Value,
    add,
    along,
    any_null,
    binary,
    build,
    case,
    coalesce,
    constant_value,
    div,
    dot,
    double,
    dtype_of,
    elementwise,
    fold,
    greatest,
    int_case,
    is_null,
    key_literal,
    least,
    literal,
    lookup,
    mul,
    neg,
    not_,
    nullable,
    numpy_type,
    reduce_axes,
    register,
    reshape,
    sql_type,
    sub,
    type_name,
)

ML = "ai.onnx.ml"


def _present(node: Node) -> list[Value]:
    return [v for v in node.inputs if v is not None]


def _cells(sym: Sym, fn: Callable[[Expr], Expr]) -> Cells:
    return build(sym.cells.shape, lambda index: fn(sym.cells[index]))


# -- arithmetic --------------------------------------------------------------------------------


def _divide(sql: Dialect, a: Expr, b: Expr) -> Expr:
    divisor = constant_value(b)
    if divisor == 1:
        return a
    return sql.divide(a, b) if divisor is None or divisor == 0 else div(a, b)


_ARITHMETIC: dict[str, Callable[[Expr, Expr], Expr]] = {"Add": add, "Sub": sub, "Mul": mul}


@register(*_ARITHMETIC)
def _arithmetic(node: Node) -> list[Value]:
    values = _present(node)
    return [elementwise(values, _ARITHMETIC[node.op_type], dtype_of(values[0]))]


@register("Div")
def _div(node: Node) -> list[Value]:
    values = _present(node)
    dtype = dtype_of(values[0])
    if dtype not in FLOAT_TYPES:
        raise NotCompilable(f"Div of {type_name(dtype)} tensors (integer division) is not compiled")
    return [elementwise(values, lambda a, b: _divide(node.dialect, a, b), dtype)]


@register("Pow")
def _pow(node: Node) -> list[Value]:
    values = _present(node)
    return [elementwise(values, lambda a, b: exp.Pow(this=a, expression=b), dtype_of(values[0]))]


def _sign(x: Expr, dtype: int) -> Expr:
    return exp.Cast(this=exp.Sign(this=x), to=sql_type(dtype))  # DuckDB's sign() is TINYINT


def _relu(x: Expr, dtype: int) -> Expr:
    zero = literal(0, dtype)
    return case([(binary(exp.LT, x, zero), zero)], x)  # NULL falls through to x


def _sigmoid(sql: Dialect, x: Expr) -> Expr:
    # 1 / (1 + e^-x) is exact for both signs under IEEE: e^-x = inf gives 0, e^-x = 0 gives 1
    return div(double(1.0), binary(exp.Add, double(1.0), sql.exponential(neg(x))))


_UNARY: dict[str, Callable[[Dialect, Expr, int], Expr]] = {
    "Neg": lambda sql, x, t: neg(x),
    "Abs": lambda sql, x, t: exp.Abs(this=x),
    "Sqrt": lambda sql, x, t: sql.sqrt(x),
    "Exp": lambda sql, x, t: sql.exponential(x),
    "Log": lambda sql, x, t: sql.log(x),
    "Floor": lambda sql, x, t: exp.Floor(this=x),
    "Ceil": lambda sql, x, t: exp.Ceil(this=x),
    "Round": lambda sql, x, t: sql.round_even(x),
    "Sign": lambda sql, x, t: _sign(x, t),
    "Reciprocal": lambda sql, x, t: _divide(sql, double(1.0), x),
    "Relu": lambda sql, x, t: _relu(x, t),
    "Sigmoid": lambda sql, x, t: _sigmoid(sql, x),
    # (both engines have tanh, and it cannot overflow: dnn models' TANH activation)
    "Tanh": lambda sql, x, t: exp.Anonymous(this="tanh", expressions=[x]),
}


@register(*_UNARY)
def _unary(node: Node) -> list[Value]:
    x = node.sym(0)
    fn = _UNARY[node.op_type]
    return [x.like(_cells(x, lambda cell: fn(node.dialect, cell, x.dtype)))]


@register("Identity")
def _identity(node: Node) -> list[Value]:
    return [node.sym(0)]


@register("Clip")
def _clip(node: Node) -> list[Value]:
    x = node.sym(0)
    low, high = (node.const(1), node.const(2)) if node.opset >= 11 else (None, None)
    low = np.asarray(node.attr("min")) if node.attr("min") is not None else low
    high = np.asarray(node.attr("max")) if node.attr("max") is not None else high
    branches: list[tuple[type[Expr], Expr]] = []
    if low is not None:
        branches.append((exp.LT, literal(low.item(), x.dtype)))
    if high is not None:
        branches.append((exp.GT, literal(high.item(), x.dtype)))

    def clip(v: Expr) -> Expr:
        return case([(binary(cmp, v, bound), bound) for cmp, bound in branches], v)

    return [x.like(_cells(x, clip)) if branches else x]


@register("Max", "Min", "Sum", "Mean")
def _variadic(node: Node) -> list[Value]:
    values = _present(node)
    guarded = [isinstance(v, Sym) and v.nullable for v in values]
    pick = {"Max": greatest, "Min": least}.get(node.op_type)

    def combine(*cells: Expr) -> Expr:
        if pick is None:
            total = fold(exp.Add, cells)
            return total if node.op_type == "Sum" else div(total, double(float(len(cells))))
        result = pick(cells) if len(cells) > 1 else cells[0]
        maybe_null = [c for c, g in zip(cells, guarded, strict=True) if g]  # GREATEST skips NULLs
        return case([(any_null(maybe_null), exp.Null())], result) if maybe_null else result

    return [elementwise(values, combine, dtype_of(values[0]))]


# -- comparisons and logic ---------------------------------------------------------------------

_COMPARISONS: dict[str, type[Expr]] = {
    "Equal": exp.EQ,
    "Less": exp.LT,
    "LessOrEqual": exp.LTE,
    "Greater": exp.GT,
    "GreaterOrEqual": exp.GTE,
}


def _false_if_null(condition: Expr, maybe_null: bool) -> Expr:
    # ONNX compares NaN as false; SQL NULL compares as NULL. Booleans stay two-valued.
    return coalesce(condition, exp.false()) if maybe_null else condition


@register(*_COMPARISONS)
def _compare(node: Node) -> list[Value]:
    values = _present(node)
    cls, maybe_null = _COMPARISONS[node.op_type], nullable(*values)

    def compare(a: Expr, b: Expr) -> Expr:
        return _false_if_null(binary(cls, a, b), maybe_null)

    return [elementwise(values, compare, BOOL, is_nullable=False)]


_LOGIC: dict[str, type[Expr]] = {"And": exp.And, "Or": exp.Or, "Xor": exp.NEQ}


@register(*_LOGIC)
def _logic(node: Node) -> list[Value]:
    cls = _LOGIC[node.op_type]
    return [elementwise(_present(node), lambda a, b: binary(cls, a, b), BOOL, is_nullable=False)]


@register("Not")
def _not(node: Node) -> list[Value]:
    x = node.sym(0)
    return [x.like(_cells(x, not_))]


@register("IsNaN")
def _is_nan(node: Node) -> list[Value]:
    x = node.sym(0)
    if x.dtype not in FLOAT_TYPES:
        return [x.like(_cells(x, lambda _: exp.false()), dtype=BOOL, nullable=False)]

    def test(v: Expr) -> Expr:  # NaN = NaN is true in both engines, which order NaN above all
        is_nan = binary(exp.EQ, v, double(math.nan))
        tested = coalesce(is_nan, exp.true()) if x.nullable else is_nan  # NULL plays NaN
        tested.meta[_NAN_TEST] = v
        return tested

    return [x.like(_cells(x, test), dtype=BOOL, nullable=False)]


@register("IsInf")
def _is_inf(node: Node) -> list[Value]:
    x = node.sym(0)
    wanted = [(math.inf, "detect_positive"), (-math.inf, "detect_negative")]
    infinities = [value for value, flag in wanted if node.attr(flag, 1)]

    def test(v: Expr) -> Expr:
        if not infinities:
            return exp.false()
        tests = [binary(exp.EQ, v, double(value)) for value in infinities]
        return _false_if_null(fold(exp.Or, tests), x.nullable)

    return [x.like(_cells(x, test), dtype=BOOL, nullable=False)]


_NAN_TEST = "sqlml_nan_test"  # meta key of an IsNaN test: the value it tests


@register("Where")
def _where(node: Node) -> list[Value]:
    values = _present(node)
    dtype = dtype_of(values[1])

    def where(c: Expr, a: Expr, b: Expr) -> Expr:
        chosen = case([(c, a)], b)
        if isinstance(c, exp.Expr) and c.meta.get(_NAN_TEST) is b:  # Where(IsNaN(x), fill, x)
            chosen.meta[IMPUTED] = b
        return chosen

    return [elementwise(values, where, dtype, nullable(*values[1:]))]


# -- casts -------------------------------------------------------------------------------------


_SMALL_INT = "sqlml_small_int"  # meta tag of an index expression, exact as a DOUBLE


def _small_int(node: Expr) -> bool:
    value = constant_value(node)
    exact = value is not None and value.is_integer() and abs(value) < 2**53
    return exact or int_case(node) is not None or bool(node.meta.get(_SMALL_INT))


def _to_int(x: Expr) -> Expr:
    inner: Expr = x.this
    if isinstance(x, exp.Cast) and x.to.is_type("double") and _small_int(inner):
        return inner  # CAST(CAST(i AS DOUBLE) AS BIGINT), i a small integer: i itself
    # ONNX truncates toward zero (SQL's CAST rounds); out of BIGINT range (and NaN) gives NULL
    in_range = binary(exp.LT, exp.Abs(this=x), double(2.0**63))
    return case([(in_range, exp.Cast(this=exp.Trunc(this=x), to=sql_type(INT64)))])


FLOAT32_OF = "sqlml_float32_of"  # meta key of a float32 rounding: the double it rounds
_FLOAT32_INFINITE = 2.0**128 - 2.0**103  # a double this large rounds to +-inf in float32
_FLOAT32_ZERO = 2.0**-150  # a double this small rounds to +-0 in float32


def _to_float32(x: Expr) -> Expr:
    """x rounded to float32 as onnxruntime's Cast rounds, held in a DOUBLE.

    Both engines raise where float32 overflows, and PostgreSQL where it underflows, so those
    ranges are written out; NaN and NULL fall through unchanged.
    """
    size = exp.Abs(this=x)
    overflow = (binary(exp.GTE, size, double(_FLOAT32_INFINITE)), mul(x, double(math.inf)))
    underflow = (binary(exp.LTE, size, double(_FLOAT32_ZERO)), mul(x, double(0.0)))
    real = exp.Cast(
        this=exp.Cast(this=x, to=exp.DataType(this=exp.DataType.Type.FLOAT)), to=sql_type(DOUBLE)
    )
    rounded = case([overflow, underflow], real)
    rounded.meta[FLOAT32_OF] = x  # a comparison with a float32 constant can skip the rounding
    return rounded


def _from_bool(x: Expr, dtype: int) -> Expr:
    return case([(x, literal(1, dtype))], literal(0, dtype))


def _to_bool(x: Expr, dtype: int, maybe_null: bool) -> Expr:
    nonzero = binary(exp.NEQ, x, literal(0, dtype))
    return coalesce(nonzero, exp.true()) if maybe_null else nonzero  # NaN is true, as NULL


def _kind(dtype: int) -> str:
    kinds = [(FLOAT_TYPES, "float"), (INT_TYPES, "int"), ({BOOL}, "bool"), ({STRING}, "string")]
    return next((kind for types, kind in kinds if dtype in types), "")


_HALF_FLOATS = (TensorProto.FLOAT16, TensorProto.BFLOAT16)  # no SQL type rounds to these


def _caster(source: int, target: int, maybe_null: bool) -> Callable[[Expr], Expr]:
    casts: dict[tuple[str, str], Callable[[Expr], Expr]] = {
        ("float", "int"): _to_int,
        ("int", "float"): lambda x: exp.Cast(this=x, to=sql_type(DOUBLE)),
        ("bool", "float"): lambda x: _from_bool(x, target),
        ("bool", "int"): lambda x: _from_bool(x, target),
        ("float", "bool"): lambda x: _to_bool(x, source, maybe_null),
        ("int", "bool"): lambda x: _to_bool(x, source, maybe_null),
        ("int", "string"): lambda x: exp.Cast(this=x, to=sql_type(STRING)),
    }
    kinds = (_kind(source), _kind(target))
    if target == FLOAT and source in FLOAT_TYPES - {FLOAT}:
        return _to_float32  # (int and bool values that models cast are small: exact in float32)
    if kinds[0] == kinds[1] and kinds[0] and target not in _HALF_FLOATS:
        return lambda x: x
    if kinds not in casts:
        raise NotCompilable(f"Cast from {type_name(source)} to {type_name(target)} is not compiled")
    return casts[kinds]


@register("Cast")
def _cast(node: Node) -> list[Value]:
    x, target = node.sym(0), int(node.attr("to"))
    maybe_null = target != BOOL and (x.nullable or _kind(x.dtype) + _kind(target) == "floatint")
    return [
        x.like(_cells(x, _caster(x.dtype, target, x.nullable)), dtype=target, nullable=maybe_null)
    ]


# -- shapes ------------------------------------------------------------------------------------


def _resolve(x: Sym, target: Sequence[int], allowzero: bool) -> list[int | None]:
    """Reshape's target with 0 (copy a dim) and -1 (infer a dim) resolved; None marks the rows."""
    current = x.shape
    copy = [d == 0 and not allowzero and i < len(current) for i, d in enumerate(target)]
    shape = [current[i] if copy[i] else d for i, d in enumerate(target)]
    if -1 in shape:
        at = shape.index(-1)
        if None in shape:  # the rows are placed: -1 is the rest of one row
            known = math.prod(d for d in shape if d is not None and d != -1)
            shape[at] = x.cells.size // known if known else 0
        else:  # -1 is the row axis, valid when the other dims hold exactly one row
            shape[at] = None
    return shape


@register("Reshape")
def _reshape(node: Node) -> list[Value]:
    x, target = node.sym(0), node.ints("shape", 1)
    if target is None:
        raise NotCompilable("Reshape without a constant shape")
    return [reshape(x, _resolve(x, target, bool(node.attr("allowzero", 0))))]


def _merge(dims: Sequence[int | None]) -> int | None:
    if None not in dims:
        return math.prod(d for d in dims if d is not None)
    if math.prod(d for d in dims if d is not None) != 1:
        raise NotCompilable("Flatten would mix the rows")
    return None


@register("Flatten")
def _flatten(node: Node) -> list[Value]:
    x = node.sym(0)
    axis = int(node.attr("axis", 1)) % (x.cells.ndim + 1)
    return [reshape(x, [_merge(x.shape[:axis]), _merge(x.shape[axis:])])]


@register("Squeeze")
def _squeeze(node: Node) -> list[Value]:
    x, axes = node.sym(0), node.ints("axes", 1)
    shape = x.shape
    drop = {i for i, d in enumerate(shape) if d == 1}
    if axes is not None:
        drop = {a % len(shape) for a in axes}
    return [reshape(x, [d for i, d in enumerate(shape) if i not in drop])]


@register("Unsqueeze")
def _unsqueeze(node: Node) -> list[Value]:
    x, axes = node.sym(0), node.ints("axes", 1) or []
    rank = x.cells.ndim + len(axes)
    positions = {a % rank for a in axes}
    dims = iter(x.shape)
    return [reshape(x, [1 if i in positions else next(dims) for i in range(rank)])]


@register("Transpose")
def _transpose(node: Node) -> list[Value]:
    x = node.sym(0)
    perm = [int(p) for p in node.attr("perm", range(x.cells.ndim - 1, -1, -1))]
    return [x.like(x.cells.transpose(perm), batch=perm.index(x.batch))]


@register("Concat")
def _concat(node: Node) -> list[Value]:
    parts = [node.sym(i) for i in range(len(node.inputs))]
    first = parts[0]
    axis = int(node.attr("axis")) % first.cells.ndim
    if axis == first.batch or any(p.shape[:axis] != first.shape[:axis] for p in parts):
        raise NotCompilable("Concat along the row axis, or of tensors whose rows differ")
    cells = np.concatenate([p.cells for p in parts], axis=axis)
    return [first.like(cells, nullable=nullable(*parts))]


def _take(x: Sym, indices: npt.NDArray[Any], axis: int) -> Sym:
    """x gathered along a (non-row) axis at constant indices."""
    axis %= x.cells.ndim
    if axis == x.batch:
        raise NotCompilable("a gather along the row axis")
    try:
        cells = np.take(x.cells, indices.astype(np.int64), axis=axis)
    except IndexError as e:
        raise NotCompilable(f"a gather with indices out of range: {e}") from e
    return x.like(cells, batch=x.batch + (indices.ndim - 1 if axis < x.batch else 0))


@register("Gather")
def _gather(node: Node) -> list[Value]:
    data, axis = node.inputs[0], int(node.attr("axis", 0))
    if isinstance(data, Sym):
        return [_take(data, _required(node, 1), axis)]
    table, index = _required(node, 0), node.sym(1)
    if axis % table.ndim != 0:
        raise NotCompilable("Gather from a constant along an axis other than 0")
    dtype, rank = numpy_type(table), index.cells.ndim

    def pick(i: tuple[int, ...]) -> Expr:
        column = np.moveaxis(table, 0, -1)[i[rank:]]
        return lookup(index.cells[i[:rank]], dict(enumerate(column)), dtype)

    return [Sym(build(index.cells.shape + table.shape[1:], pick), index.batch, dtype)]


def _required(node: Node, i: int) -> npt.NDArray[Any]:
    value = node.const(i)
    if value is None:
        raise NotCompilable(f"{node.op_type}: input {i} is missing")
    return value


@register("Slice")
def _slice(node: Node) -> list[Value]:
    x = node.sym(0)
    starts, ends = node.ints("starts", 1) or [], node.ints("ends", 2) or []
    axes = node.ints("axes", 3) or list(range(len(starts)))
    steps = node.ints("steps", 4) or [1] * len(starts)
    index: list[slice] = [slice(None)] * x.cells.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if axis % x.cells.ndim == x.batch:
            if (start, step) == (0, 1) and end >= 2**31 - 1:
                continue  # the whole row axis
            raise NotCompilable("Slice along the row axis")
        index[axis % x.cells.ndim] = slice(start, end, step)
    return [x.like(x.cells[tuple(index)])]


# -- linear algebra and reductions -------------------------------------------------------------


def _project(x: Sym, weights: npt.NDArray[Any]) -> Sym:
    """x [..., F] times the constant weights [F, K]: [..., K]."""
    if x.batch == x.cells.ndim - 1:
        raise NotCompilable("a matrix product over the row axis")
    lead = x.cells.shape[:-1]
    cells = build(
        (*lead, weights.shape[1]), lambda i: dot(x.cells[i[:-1]], weights[:, i[-1]], x.dtype)
    )
    return x.like(cells)


@register("MatMul")
def _matmul(node: Node) -> list[Value]:
    x, weights = node.sym(0), _required(node, 1)
    if weights.ndim not in (1, 2):
        raise NotCompilable("MatMul with weights of more than two dimensions")
    product = _project(x, weights.reshape(weights.shape[0], -1))
    return [reshape(product, product.shape[:-1]) if weights.ndim == 1 else product]


@register("Gemm")
def _gemm(node: Node) -> list[Value]:
    a, b = node.sym(0), _required(node, 1)
    if node.attr("transA", 0) or a.cells.ndim != 2 or a.batch != 0:
        raise NotCompilable("Gemm whose first input is not [rows, features]")
    y = _project(a, b.T if node.attr("transB", 0) else b)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        y = elementwise([y, np.asarray(alpha)], mul, y.dtype)
    c = node.inputs[2] if len(node.inputs) > 2 else None
    if c is None:
        return [y]
    if isinstance(c, Sym):
        c = elementwise([c, np.asarray(beta)], mul, y.dtype)
    else:
        c = np.asarray(c, dtype=np.float64) * beta
    return [elementwise([y, c], add, y.dtype)]


def _squares(xs: list[Expr]) -> Expr:
    return fold(exp.Add, [binary(exp.Mul, v, v) for v in xs])


_REDUCERS: dict[str, Callable[[list[Expr], bool], Expr]] = {
    "ReduceSum": lambda xs, n: fold(exp.Add, xs),
    "ReduceSumSquare": lambda xs, n: _squares(xs),
    "ReduceMean": lambda xs, n: div(fold(exp.Add, xs), double(float(len(xs)))),
    # as onnxruntime skips NaN here, GREATEST and LEAST skip NULL (unlike the Max and Min ops)
    "ReduceMax": lambda xs, n: greatest(xs) if len(xs) > 1 else xs[0],
    "ReduceMin": lambda xs, n: least(xs) if len(xs) > 1 else xs[0],
    "ReduceL1": lambda xs, n: fold(exp.Add, [exp.Abs(this=v) for v in xs]),
    "ReduceL2": lambda xs, n: exp.Sqrt(this=_squares(xs)),
    "ReduceProd": lambda xs, n: fold(exp.Mul, xs),
}


@register(*_REDUCERS)
def _reduce(node: Node) -> list[Value]:
    x, axes = node.sym(0), node.ints("axes", 1)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return [x]
        raise NotCompilable(f"{node.op_type} over all axes would combine the rows")
    reducer = _REDUCERS[node.op_type]
    keep = bool(node.attr("keepdims", 1))
    return [reduce_axes(x, axes, keep, lambda xs: reducer(xs, x.nullable))]


def arg_index(xs: Sequence[Expr], wins: type[Expr], maybe_null: bool) -> Expr:
    """BIGINT index of the first x that `wins` (>= for ArgMax) over all later x; NULL if one is."""
    guard: list[tuple[Expr, Expr]] = [(any_null(xs), exp.Null())] if maybe_null else []
    if len(xs) > 3 and wins in (exp.GTE, exp.LTE):  # shorter than k(k-1)/2 comparisons
        extreme = greatest(xs) if wins is exp.GTE else least(xs)
        vector = exp.Array(expressions=list(xs))
        position = exp.Anonymous(this="array_position", expressions=[vector, extreme])  # 1-based
        found = binary(exp.Sub, position, exp.Literal.number(1))
        found = case(guard, found) if guard else found
    else:
        branches = list(guard)
        for i in range(len(xs) - 1):
            beats_later = fold(exp.And, [binary(wins, xs[i], later) for later in xs[i + 1 :]])
            branches.append((beats_later, exp.Literal.number(i)))
        last = exp.Literal.number(len(xs) - 1)
        found = case(branches, last) if branches else last
    index = exp.Cast(this=found, to=sql_type(INT64))
    index.meta[_SMALL_INT] = True
    return index


@register("ArgMax", "ArgMin")
def _arg_extreme(node: Node) -> list[Value]:
    x = node.sym(0)
    last = bool(node.attr("select_last_index", 0))
    beats: dict[tuple[str, bool], type[Expr]] = {
        ("ArgMax", False): exp.GTE,  # ties go to the first index, as numpy
        ("ArgMax", True): exp.GT,
        ("ArgMin", False): exp.LTE,
        ("ArgMin", True): exp.LT,
    }
    wins = beats[(node.op_type, last)]
    keep = bool(node.attr("keepdims", 1))
    found = reduce_axes(
        x, [int(node.attr("axis", 0))], keep, lambda xs: arg_index(xs, wins, x.nullable)
    )
    return [found.like(found.cells, dtype=INT64)]


# -- activations over an axis ------------------------------------------------------------------


def softmax(sql: Dialect, zs: list[Expr], maybe_null: bool) -> list[Expr]:
    """p_i = 1 / sum_j e^(z_j - z_i): needs no max(), and a huge term just gives p_i = 0."""
    if len(zs) == 1:
        one = double(1.0)
        return [case([(is_null(zs[0]), exp.Null())], one) if maybe_null else one]

    def probability(i: int) -> Expr:  # by index: equal columns may share one expression object
        terms = [sql.exponential(binary(exp.Sub, zj, zs[i])) for j, zj in enumerate(zs) if j != i]
        return div(double(1.0), fold(exp.Add, [double(1.0), *terms]))

    return [probability(i) for i in range(len(zs))]


@register("Softmax")
def _softmax(node: Node) -> list[Value]:
    x = node.sym(0)
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1)) % x.cells.ndim
    if node.opset < 13 and axis != x.cells.ndim - 1:
        raise NotCompilable("Softmax before opset 13 over an axis other than the last")
    return [along(x, axis, lambda zs: softmax(node.dialect, zs, x.nullable))]


# -- ai.onnx.ml --------------------------------------------------------------------------------


def _floats(node: Node, name: str, default: Sequence[float]) -> npt.NDArray[np.float64]:
    return np.asarray(node.attr(name, default), dtype=np.float64)  # float32 values, held exactly


@register("Scaler", domain=ML)
def _scaler(node: Node) -> list[Value]:
    x = node.sym(0)
    shifted = elementwise([x, _floats(node, "offset", [0.0])], sub, FLOAT)
    return [elementwise([shifted, _floats(node, "scale", [1.0])], mul, FLOAT)]


def _impute(value: Expr, fill: Expr, missing: float, dtype: int) -> Expr:
    if math.isnan(missing):  # NULL and NaN both: NULLIF turns NaN into NULL (NaN = NaN in SQL)
        imputed = coalesce(exp.Nullif(this=value, expression=double(math.nan)), fill)
        imputed.meta[IMPUTED] = value
        return imputed
    return case([(binary(exp.EQ, value, literal(missing, dtype)), fill)], value)


@register("Imputer", domain=ML)
def _imputer(node: Node) -> list[Value]:
    x = node.sym(0)
    integers = x.dtype in INT_TYPES
    fills = _floats(node, "imputed_value_int64s" if integers else "imputed_value_floats", [])
    if fills.size == 0:
        raise NotCompilable("Imputer without imputed values")
    fills = fills.astype(np.int64) if integers else fills
    missing = float(node.attr("replaced_value_int64" if integers else "replaced_value_float", 0))
    still_null = bool(np.isnan(fills).any()) if math.isnan(missing) else x.nullable
    impute = lambda v, f: _impute(v, f, missing, x.dtype)  # noqa: E731
    return [elementwise([x, fills], impute, x.dtype, still_null)]


@register("OneHotEncoder", domain=ML)
def _one_hot(node: Node) -> list[Value]:
    # zeros=0 asks for an error on an unseen category; SQL scoring gives the all-zero row instead
    x = node.sym(0)
    strings = node.attr("cats_strings")
    categories = list(strings) if strings is not None else list(node.attr("cats_int64s", []))
    truncate = x.dtype in FLOAT_TYPES  # as onnxruntime, which casts a float input to int64

    def hot(i: tuple[int, ...]) -> Expr:
        value = exp.Trunc(this=x.cells[i[:-1]]) if truncate else x.cells[i[:-1]]
        return case(
            [(binary(exp.EQ, value, key_literal(categories[i[-1]])), double(1.0))], double(0.0)
        )

    return [Sym(build((*x.cells.shape, len(categories)), hot), x.batch, FLOAT, nullable=False)]


def _normalize(norm: str, xs: list[Expr]) -> list[Expr]:
    # as onnxruntime: MAX divides by the largest value (not the largest magnitude); a zero norm
    # leaves the row unchanged
    if norm == "MAX":
        scale = greatest(xs) if len(xs) > 1 else xs[0]
    elif norm == "L1":
        scale = fold(exp.Add, [exp.Abs(this=v) for v in xs])
    elif norm == "L2":
        scale = _squares(xs)
    else:
        raise NotCompilable(f"Normalizer with norm {norm!r}")
    divisor = exp.Sqrt(this=scale) if norm == "L2" else scale
    safe = case([(binary(exp.EQ, scale, double(0.0)), double(1.0))], divisor)
    return [div(v, safe) for v in xs]


@register("Normalizer", domain=ML)
def _normalizer(node: Node) -> list[Value]:
    x = node.sym(0)
    norm = str(node.attr("norm", "MAX"))
    normalized = along(x, -1, lambda xs: _normalize(norm, xs))
    return [normalized.like(normalized.cells, dtype=FLOAT)]


def _row(node: Node) -> list[Expr]:
    x = node.sym(0)
    if x.cells.ndim != 2 or x.batch != 0:
        raise NotCompilable(f"{node.op_type} needs a [rows, features] input")
    return list(x.cells[0])


def _scores(node: Node, count: int) -> list[Expr]:
    row = _row(node)
    weights = _floats(node, "coefficients", []).reshape(count, -1)
    intercepts = _floats(node, "intercepts", [0.0] * count)
    return [add(dot(row, weights[k]), double(intercepts[k])) for k in range(count)]


def _as_row(cells: Sequence[Expr], dtype: int, maybe_null: bool) -> Sym:
    return Sym(build((1, len(cells)), lambda i: cells[i[1]]), 0, dtype, maybe_null)


@register("LinearRegressor", domain=ML)
def _linear_regressor(node: Node) -> list[Value]:
    if node.attr("post_transform", "NONE") != "NONE":
        raise NotCompilable(f"LinearRegressor with post_transform {node.attr('post_transform')}")
    scores = _scores(node, int(node.attr("targets", 1)))
    return [_as_row(scores, FLOAT, node.sym(0).nullable)]


def _labels(node: Node) -> tuple[list[Any], int]:
    strings = node.attr("classlabels_strings")
    if strings is not None:
        return list(strings), STRING
    return [int(v) for v in node.attr("classlabels_ints", [])], INT64


def _transform(sql: Dialect, post: str, scores: list[Expr], maybe_null: bool) -> list[Expr]:
    if post == "NONE":
        return scores
    if post == "LOGISTIC":
        return [_sigmoid(sql, s) for s in scores]
    if post == "SOFTMAX":
        return softmax(sql, scores, maybe_null)
    raise NotCompilable(f"post_transform {post} is not compiled")


@register("LinearClassifier", domain=ML)
def _linear_classifier(node: Node) -> list[Value]:
    labels, label_type = _labels(node)
    count, post = len(node.attr("intercepts", [])), str(node.attr("post_transform", "NONE"))
    scores, maybe_null = _scores(node, count), node.sym(0).nullable
    if count == 1:  # one score s: labels[1] when s > 0; onnxruntime's scores are [1 - p, p]
        if len(labels) != 2 or post not in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"):
            raise NotCompilable("LinearClassifier with one score needs two labels")
        s = scores[0]
        p = _sigmoid(node.dialect, s) if post == "LOGISTIC" else s
        sides = [(binary(exp.GT, s, double(0.0)), 1), (binary(exp.LTE, s, double(0.0)), 0)]
        branches = [(side, exp.Literal.number(v)) for side, v in sides]
        index: Expr = exp.Cast(this=case(branches), to=sql_type(INT64))
        probabilities = [binary(exp.Sub, double(1.0), p), p]
    else:
        index = arg_index(scores, exp.GTE, maybe_null)
        probabilities = _transform(node.dialect, post, scores, maybe_null)
    label = lookup(index, dict(enumerate(labels)), label_type)
    labels_out = Sym(build((1,), lambda _: label), 0, label_type, maybe_null)
    return [labels_out, _as_row(probabilities, FLOAT, maybe_null)]


@register("Binarizer", domain=ML)
def _binarizer(node: Node) -> list[Value]:
    x = node.sym(0)
    threshold = double(float(node.attr("threshold", 0.0)))
    one, zero = literal(1, x.dtype), literal(0, x.dtype)

    def binarize(v: Expr) -> Expr:
        above = (binary(exp.GT, v, threshold), one)
        if x.nullable:  # onnxruntime refuses NaN; NULL stays NULL
            return case([above, (binary(exp.LTE, v, threshold), zero)])
        return case([above], zero)

    return [x.like(_cells(x, binarize))]


_DEFAULTS: dict[int, tuple[str, Any]] = {
    STRING: ("default_string", "_Unused"),
    INT64: ("default_int64", -1),
    FLOAT: ("default_float", -0.0),
}


def _attr_list(node: Node, prefix: str) -> tuple[list[Any], int]:
    for suffix, dtype in (("strings", STRING), ("int64s", INT64), ("floats", FLOAT)):
        if f"{prefix}_{suffix}" in node.attrs:
            return list(node.attrs[f"{prefix}_{suffix}"]), dtype
    tensor = node.attr(f"{prefix}_tensor")
    if tensor is None:
        raise NotCompilable(f"LabelEncoder without {prefix}")
    return list(tensor.ravel()), numpy_type(tensor)


def _label_map(node: Node, source: int) -> tuple[dict[Any, Any], int, Any]:
    """(key -> value, value type, default) of a LabelEncoder of any ai.onnx.ml version."""
    if node.opset < 2:
        classes = list(node.attr("classes_strings", []))
        if source == STRING:
            return {c: i for i, c in enumerate(classes)}, INT64, node.attr("default_int64", -1)
        return dict(enumerate(classes)), STRING, node.attr("default_string", "_Unused")
    keys, _ = _attr_list(node, "keys")
    values, target = _attr_list(node, "values")
    tensor = node.attr("default_tensor")
    name, fallback = _DEFAULTS.get(target, ("", None))
    default = tensor.ravel()[0] if tensor is not None else node.attr(name, fallback)
    return dict(zip(keys, values, strict=True)), target, default


@register("LabelEncoder", domain=ML)
def _label_encoder(node: Node) -> list[Value]:
    x = node.sym(0)
    table, target, default = _label_map(node, x.dtype)
    cells = _cells(x, lambda v: lookup(v, table, target, default))
    return [x.like(cells, dtype=target, nullable=default is None)]


@register("ArrayFeatureExtractor", domain=ML)
def _array_feature_extractor(node: Node) -> list[Value]:
    data = node.inputs[0]
    if isinstance(data, Sym):
        return [_take(data, _required(node, 1).ravel(), -1)]
    table, index = _required(node, 0), node.sym(1)
    if index.cells.size != 1:
        raise NotCompilable("ArrayFeatureExtractor from a constant with several indices per row")
    # as onnxruntime: the output is [..., N] ([1, N] for a vector): the rows move to the last axis
    lead = table.shape[:-1] if table.ndim > 1 else (1,)
    rows, cell = table.reshape((*lead, table.shape[-1])), index.cells.ravel()[0]
    dtype = numpy_type(table)
    cells = build((*lead, 1), lambda i: lookup(cell, dict(enumerate(rows[i[:-1]])), dtype))
    return [Sym(cells, len(lead), dtype, index.nullable)]
