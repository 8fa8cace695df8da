"""Compile an ONNX graph into one native SQL expression per output column.

Theory of operation
-------------------
Scoring in SQL works row by row, so the compiler runs the graph *symbolically, for one row*:

* A tensor that does not depend on the input is a **constant**: a numpy array. Initializers,
  Constant nodes and every node whose inputs are all constant (folded by onnx's reference
  evaluator).
* A tensor that does is a :class:`Sym`: a numpy object array holding one sqlglot expression per
  element of one row. ONNX keeps the rows in one axis of a tensor (the batch axis, usually axis 0);
  a Sym keeps that axis with size 1 and remembers its index, so numpy applies ONNX's shape rules
  (broadcasting, Concat, Gather, Reshape) to the expressions themselves. An [N, k] tensor is k
  expressions, an [N] tensor one. Axes before the batch axis must have size 1, or the values of one
  row would not be contiguous.

Nodes are visited in graph order (ONNX requires a topological order). Each op's handler, found in
the registry ``OPS[(domain, op_type)]``, maps the node's input values to its output values. The
built-in handlers live in :mod:`sqlml.ml.to_sql_ops`, tree ensembles in
:mod:`sqlml.ml.to_sql_trees`; they register with :func:`register`, the door a third party would
use too. An op without a handler raises :class:`NotCompilable` naming it.

Semantics chosen for SQL
------------------------
* SQL NULL plays ONNX NaN for numeric inputs: arithmetic propagates it, Imputer replaces NULL and
  NaN, a comparison with NULL is FALSE (as with NaN in ONNX), so booleans are never NULL, and the
  ArgMax of a row holding a NULL is NULL.
* Every double constant is written ``CAST('<repr>' AS DOUBLE)``: exact (``repr`` round-trips a
  float64 and both engines parse text correctly rounded) and typed DOUBLE in DuckDB and PostgreSQL
  alike, where a bare ``0.1`` is DECIMAL/NUMERIC and ``1.5e0`` is still NUMERIC in PostgreSQL.
  Integer tensors are BIGINT, boolean tensors BOOLEAN, string tensors VARCHAR.
* float32 tensors are computed in DOUBLE, a little more precisely than onnxruntime does; a Cast to
  float rounds to float32 exactly as onnxruntime does.
* The few spellings that differ between engines sit in :data:`DIALECTS`: PostgreSQL raises where
  IEEE arithmetic gives inf or NaN (exp overflow and underflow, ln(0), sqrt of a negative, x/0), so
  its entries guard those cases.

Size
----
While compiling, the expressions form a DAG: a tensor read by several consumers is shared, and the
final copy of each output expands it into a tree. For the graphs skl2onnx emits, the size is linear
in the op count times the fan-out: a softmax over k classes reads each score O(k) times, a k-means
distance reads each feature k times, and an ArgMax reads each value twice (written as
ARRAY_POSITION(ARRAY[...], GREATEST(...)) beyond three values). DuckDB eliminates common
subexpressions within a projection. Long sums and conjunctions nest pairwise, so the nesting depth
stays logarithmic in their length (DuckDB refuses expressions nested more than 1000 deep).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from sqlglot import exp

from sqlml import errors

__all__ = [
    "CHECKS",
    "DIALECTS",
    "OPS",
    "Dialect",
    "Node",
    "NotCompilable",
    "Sym",
    "compile_onnx",
    "is_compilable",
    "register",
]

Cells: TypeAlias = npt.NDArray[np.object_]
Expr: TypeAlias = exp.Expr


class NotCompilable(errors.FeatureNotSupported):
    """The graph uses an op, attribute or shape that has no SQL translation (SQLSTATE 0A000)."""


# -- element types -----------------------------------------------------------------------------

FLOAT_TYPES = frozenset(
    {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
)
INT_TYPES = frozenset(
    {
        TensorProto.INT8,
        TensorProto.INT16,
        TensorProto.INT32,
        TensorProto.INT64,
        TensorProto.UINT8,
        TensorProto.UINT16,
        TensorProto.UINT32,
        TensorProto.UINT64,
    }
)
BOOL = TensorProto.BOOL
STRING = TensorProto.STRING
FLOAT = TensorProto.FLOAT
DOUBLE = TensorProto.DOUBLE
INT64 = TensorProto.INT64


def type_name(dtype: int) -> str:
    return str(TensorProto.DataType.Name(dtype)).lower()


def sql_type(dtype: int) -> exp.DataType:
    """The SQL type that holds an ONNX element type."""
    if dtype in FLOAT_TYPES:
        return exp.DataType(this=exp.DataType.Type.DOUBLE)
    if dtype in INT_TYPES:
        return exp.DataType(this=exp.DataType.Type.BIGINT)
    if dtype == BOOL:
        return exp.DataType(this=exp.DataType.Type.BOOLEAN)
    if dtype == STRING:
        return exp.DataType(this=exp.DataType.Type.VARCHAR)
    raise NotCompilable(f"ONNX tensors of type {type_name(dtype)} cannot be compiled to SQL")


def numpy_type(array: npt.NDArray[Any]) -> int:
    """The ONNX element type of a constant."""
    kind = array.dtype.kind
    if kind == "f":
        return FLOAT if array.dtype == np.float32 else DOUBLE
    if kind in "iu":
        return INT64
    if kind == "b":
        return BOOL
    if kind in "OUS":
        return STRING
    raise NotCompilable(f"constants of numpy type {array.dtype} cannot be compiled to SQL")


# -- symbolic tensors --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Sym:
    """A tensor that depends on the input row: one SQL expression per element of one row."""

    cells: Cells  # the tensor's shape with the batch axis set to 1; one expression per element
    batch: int  # index of the batch (row) axis in cells.shape
    dtype: int  # onnx.TensorProto element type
    nullable: bool = True  # False when no cell can evaluate to SQL NULL

    def __post_init__(self) -> None:
        if any(d != 1 for d in self.cells.shape[: self.batch + 1]):
            raise NotCompilable("a tensor whose rows are not contiguous cannot be compiled to SQL")

    @property
    def from_end(self) -> int:
        """Index of the batch axis counted from the last axis (1 = last), as broadcasting aligns."""
        return self.cells.ndim - self.batch

    @property
    def shape(self) -> list[int | None]:
        """The tensor's shape with None for the (unknown) number of rows."""
        return [None if i == self.batch else d for i, d in enumerate(self.cells.shape)]

    def like(
        self,
        cells: Cells,
        *,
        batch: int | None = None,
        dtype: int | None = None,
        nullable: bool | None = None,
    ) -> Sym:
        return Sym(
            cells,
            self.batch if batch is None else batch,
            self.dtype if dtype is None else dtype,
            self.nullable if nullable is None else nullable,
        )


Value: TypeAlias = Sym | npt.NDArray[Any]


def dtype_of(value: Value) -> int:
    return value.dtype if isinstance(value, Sym) else numpy_type(value)


def nullable(*values: Value | None) -> bool:
    return any(isinstance(v, Sym) and v.nullable for v in values)


def build(shape: Sequence[int], fill: Callable[[tuple[int, ...]], Expr]) -> Cells:
    """An object array of the given shape holding fill(index) at each index."""
    out = np.empty(tuple(shape), dtype=object)
    for index in np.ndindex(*shape):
        out[index] = fill(index)
    return out


def reshape(sym: Sym, shape: Sequence[int | None]) -> Sym:
    """Relabel sym to shape (None marks the batch axis); the cells keep their row-major order."""
    if list(shape).count(None) != 1:
        raise NotCompilable(f"a reshape to {list(shape)} would mix the rows")
    if math.prod(d for d in shape if d is not None) != sym.cells.size:
        raise NotCompilable(f"a reshape of {sym.shape} to {list(shape)} would mix the rows")
    cells = sym.cells.reshape([1 if d is None else d for d in shape])
    return sym.like(cells, batch=list(shape).index(None))


# -- SQL building ------------------------------------------------------------------------------

_PRECEDENCE: dict[type[Expr], int] = {
    exp.Or: 1,
    exp.And: 2,
    exp.Not: 3,
    exp.EQ: 4,
    exp.NEQ: 4,
    exp.GT: 4,
    exp.GTE: 4,
    exp.LT: 4,
    exp.LTE: 4,
    exp.Is: 4,
    exp.Add: 5,
    exp.Sub: 5,
    exp.Mul: 6,
    exp.Div: 6,
}
_NON_ASSOCIATIVE = (
    4  # comparisons do not chain in PostgreSQL: always parenthesize one inside another
)


def _precedence(node: Expr) -> int:
    if isinstance(node, exp.Neg):
        return 0  # a negation used as an operand is always parenthesized ("- -x", "a - -b")
    return _PRECEDENCE.get(type(node), 9)


def _operand(node: Expr, parent: int, right: bool) -> Expr:
    mine = _precedence(node)
    tight = mine < parent or (mine == parent and (right or parent == _NON_ASSOCIATIVE))
    return exp.Paren(this=node) if tight else node


def binary(cls: type[Expr], left: Expr, right: Expr, **args: Any) -> Expr:
    """left <op> right, parenthesizing operands as SQL precedence requires (sqlglot does not)."""
    prec = _PRECEDENCE[cls]
    return cls(this=_operand(left, prec, False), expression=_operand(right, prec, True), **args)


def div(left: Expr, right: Expr) -> Expr:
    """left / right in floating point (typed: sqlglot must not add casts for integer division)."""
    return binary(exp.Div, left, right, typed=True)


def neg(node: Expr) -> Expr:
    return exp.Neg(this=_operand(node, 7, False))


def not_(node: Expr) -> Expr:
    return exp.Not(this=_operand(node, _PRECEDENCE[exp.Not], False))


def is_null(node: Expr) -> Expr:
    return exp.Is(this=_operand(node, _NON_ASSOCIATIVE, True), expression=exp.Null())


def case(branches: Sequence[tuple[Expr, Expr]], default: Expr | None = None) -> Expr:
    """CASE WHEN c1 THEN v1 ... ELSE default END."""
    ifs = [exp.If(this=cond, true=value) for cond, value in branches]
    return exp.Case(ifs=ifs, default=default)


def coalesce(node: Expr, fallback: Expr) -> Expr:
    return exp.Coalesce(this=node, expressions=[fallback])


def greatest(nodes: Sequence[Expr]) -> Expr:
    """GREATEST(...), which ignores NULLs in both engines."""
    return exp.Greatest(this=nodes[0], expressions=list(nodes[1:]), ignore_nulls=True)


def least(nodes: Sequence[Expr]) -> Expr:
    """LEAST(...), which ignores NULLs in both engines."""
    return exp.Least(this=nodes[0], expressions=list(nodes[1:]), ignore_nulls=True)


def fold(cls: type[Expr], terms: Sequence[Expr]) -> Expr:
    """terms combined with an associative operator: in order when short, else pairwise halves.

    The nesting depth stays logarithmic for long sums (DuckDB's limit is 1000 levels); short sums
    keep numpy's left-to-right order.
    """
    if len(terms) <= 8:
        result = terms[0]
        for term in terms[1:]:
            result = binary(cls, result, term)
        return result
    half = len(terms) // 2
    return binary(cls, fold(cls, terms[:half]), fold(cls, terms[half:]))


def any_null(nodes: Sequence[Expr]) -> Expr:
    """A condition true when any of the nodes is NULL."""
    return fold(exp.Or, [is_null(node) for node in nodes])


# -- constants ---------------------------------------------------------------------------------


def double(value: float) -> Expr:
    """A DOUBLE constant: exact (repr round-trips) and typed DOUBLE in DuckDB and PostgreSQL."""
    if math.isnan(value):
        text = "NaN"
    elif math.isinf(value):
        text = "Infinity" if value > 0 else "-Infinity"
    else:
        text = repr(float(value))
    return exp.Cast(this=exp.Literal.string(text), to=sql_type(DOUBLE))


def integer(value: int) -> Expr:
    """A BIGINT constant."""
    return exp.Cast(this=exp.Literal.number(int(value)), to=sql_type(INT64))


def literal(value: Any, dtype: int) -> Expr:
    """A constant of the given ONNX element type."""
    if dtype in FLOAT_TYPES:
        return double(float(value))
    if dtype in INT_TYPES:
        return integer(int(value))
    if dtype == BOOL:
        return exp.true() if value else exp.false()
    if dtype == STRING:
        return exp.Literal.string(value.decode() if isinstance(value, bytes) else str(value))
    raise NotCompilable(f"constants of ONNX type {type_name(dtype)} cannot be compiled to SQL")


def literal_cells(array: npt.NDArray[Any]) -> Cells:
    dtype = numpy_type(array)
    return build(array.shape, lambda index: literal(array[index], dtype))


def constant_value(node: Expr) -> float | None:
    """The number a constant written by double() or integer() holds, else None."""
    if not isinstance(node, exp.Cast):
        return None
    inner: Expr = node.this
    if node.to.is_type("double") and isinstance(inner, exp.Literal) and inner.is_string:
        return float(inner.name)
    if node.to.is_type("bigint") and inner.is_int:  # a Literal, or a Neg of one
        return float(inner.to_py())
    return None


# -- engine dialects ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dialect:
    """The SQL spellings that differ between engines; all else the compiler writes is portable."""

    name: str
    exponential: Callable[[Expr], Expr]  # e ** x; IEEE: inf on overflow, 0 on underflow
    log: Callable[[Expr], Expr]  # natural log; IEEE: ln(0) = -inf, ln(x < 0) = NaN
    sqrt: Callable[[Expr], Expr]  # IEEE: sqrt(x < 0) = NaN
    divide: Callable[[Expr, Expr], Expr]  # x / y for a divisor that may be 0
    round_even: Callable[[Expr], Expr]  # round half to even, as ONNX Round


def _nan() -> Expr:
    return double(math.nan)


def _pg_exponential(x: Expr) -> Expr:
    # PostgreSQL raises "value out of range" where exp() overflows or underflows to 0
    overflow = (binary(exp.GT, x, double(709.78)), double(math.inf))
    underflow = (binary(exp.LT, x, double(-745.0)), double(0.0))
    return case([overflow, underflow], exp.Exp(this=x))


def _pg_log(x: Expr) -> Expr:
    # PostgreSQL raises on ln(0) and ln(x < 0); NULL falls through every branch to NULL
    positive = (binary(exp.GT, x, double(0.0)), exp.Ln(this=x))
    zero = (binary(exp.EQ, x, double(0.0)), double(-math.inf))
    return case([positive, zero, (binary(exp.LT, x, double(0.0)), _nan())])


def _pg_sqrt(x: Expr) -> Expr:
    return case([(binary(exp.LT, x, double(0.0)), _nan())], exp.Sqrt(this=x))


def _pg_divide(x: Expr, y: Expr) -> Expr:
    # PostgreSQL raises on division by zero: NULL there instead of +-Infinity/NaN
    return div(x, exp.Nullif(this=y, expression=double(0.0)))


DIALECTS: Mapping[str, Dialect] = {
    "duckdb": Dialect(
        name="duckdb",
        exponential=lambda x: exp.Exp(this=x),
        log=lambda x: exp.Ln(this=x),
        sqrt=lambda x: exp.Sqrt(this=x),
        divide=div,
        round_even=lambda x: exp.Anonymous(
            this="round_even", expressions=[x, exp.Literal.number(0)]
        ),
    ),
    "postgres": Dialect(
        name="postgres",
        exponential=_pg_exponential,
        log=_pg_log,
        sqrt=_pg_sqrt,
        divide=_pg_divide,
        round_even=lambda x: exp.Round(this=x),  # round(float8) is rint(): half to even
    ),
}


# -- broadcasting ------------------------------------------------------------------------------


def broadcast(values: Sequence[Value]) -> tuple[list[Cells], int]:
    """The cells of values broadcast together (numpy rules), and the batch axis of the result."""
    ends = {v.from_end for v in values if isinstance(v, Sym)}
    if len(ends) != 1:
        raise NotCompilable("broadcasting would pair values of different rows")
    end = ends.pop()
    arrays = [v.cells if isinstance(v, Sym) else _lift(v, end) for v in values]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    return [np.broadcast_to(a, shape) for a in arrays], len(shape) - end


def _lift(array: npt.NDArray[Any], end: int) -> Cells:
    if array.ndim >= end and array.shape[array.ndim - end] != 1:
        raise NotCompilable("a constant spans the row axis; it cannot be compiled to SQL")
    return literal_cells(array)


def elementwise(
    values: Sequence[Value],
    fn: Callable[..., Expr],
    dtype: int,
    is_nullable: bool | None = None,
) -> Sym:
    """fn applied to the broadcast cells of values, element by element."""
    arrays, batch = broadcast(values)
    cells = build(arrays[0].shape, lambda index: fn(*(a[index] for a in arrays)))
    return Sym(cells, batch, dtype, nullable(*values) if is_nullable is None else is_nullable)


# -- building blocks for op handlers ----------------------------------------------------------


def add(a: Expr, b: Expr) -> Expr:
    if constant_value(b) == 0:  # x + 0 is x, NULL and NaN included
        return a
    return b if constant_value(a) == 0 else binary(exp.Add, a, b)


def sub(a: Expr, b: Expr) -> Expr:
    return a if constant_value(b) == 0 else binary(exp.Sub, a, b)


def mul(a: Expr, b: Expr) -> Expr:
    if constant_value(b) == 1:  # x * 1 is x exactly; x * 0 is kept, as NaN * 0 is NaN
        return a
    if constant_value(a) == 1:
        return b
    scaled = _scaled_case(a, b)
    return binary(exp.Mul, a, b) if scaled is None else scaled


def _scaled_case(a: Expr, b: Expr) -> Expr | None:
    """CASE .. THEN c1 ELSE c2 END * w as CASE .. THEN c1*w ELSE c2*w END (one-hot times weight).

    Python multiplies the doubles exactly as the engine would, so the result is unchanged.
    """
    weight = constant_value(b)
    if weight is None or not isinstance(a, exp.Case) or a.this is not None:
        return None
    values = [branch.args["true"] for branch in a.args["ifs"]] + [a.args.get("default")]
    # Every branch must be a constant: CAST("x" AS DOUBLE) is a Cast to double but not one.
    constants = [constant_value(v) if isinstance(v, exp.Expr) else None for v in values]
    if any(c is None for c in constants):
        return None
    result = a.copy()
    branches = [branch.args["true"] for branch in result.args["ifs"]] + [result.args["default"]]
    for node, value in zip(branches, constants, strict=True):
        node.replace(double(float(value or 0.0) * weight))
    return result


def int_case(node: Expr) -> exp.Case | None:
    """The CASE of CAST(CASE ... THEN <int> ... END AS BIGINT), as ArgMax and lookup write it."""
    if not (isinstance(node, exp.Cast) and node.to.is_type("bigint")):
        return None
    inner: Expr = node.this
    if not isinstance(inner, exp.Case):
        return None
    values = [branch.args["true"] for branch in inner.args["ifs"]] + [inner.args.get("default")]
    small = all(v is None or isinstance(v, exp.Null) or (v.is_int and v.is_number) for v in values)
    return inner if small else None


def lookup(index: Expr, table: Mapping[Any, Any], dtype: int, default: Any = None) -> Expr:
    """table[index] as SQL; an unknown (or NULL) index gives default, NULL when None."""
    integers = dtype in INT_TYPES
    if integers and table and default is None and all(k == v for k, v in table.items()):
        return index  # the identity map, as for classes 0..C-1
    known = int_case(index)
    if known is not None:  # map the branch values of the CASE that computed the index
        result: Expr = _remap(known, table, dtype, default)
    else:
        ifs = [exp.If(this=key_literal(k), true=_branch(v, dtype)) for k, v in table.items()]
        result = exp.Case(this=index, ifs=ifs, default=_branch(default, dtype))
    return exp.Cast(this=result, to=sql_type(INT64)) if integers else result


def _branch(value: Any, dtype: int) -> Expr:
    """A CASE branch value: integers stay plain (the CASE is cast to BIGINT once); None is NULL."""
    if value is None:
        return exp.Null()
    return exp.Literal.number(int(value)) if dtype in INT_TYPES else literal(value, dtype)


def _remap(known: exp.Case, table: Mapping[Any, Any], dtype: int, default: Any) -> Expr:
    def mapped(node: Expr | None) -> Expr:
        found = None if node is None or isinstance(node, exp.Null) else int(node.to_py())
        return _branch(None if found is None else table.get(found, default), dtype)

    result = known.copy()
    for branch in result.args["ifs"]:
        branch.set("true", mapped(branch.args["true"]))
    result.set("default", mapped(result.args.get("default")))
    return result


def key_literal(key: Any) -> Expr:
    if isinstance(key, str | bytes):
        return literal(key, STRING)
    if isinstance(key, int | np.integer):
        return exp.Literal.number(int(key))
    return double(float(key))


IMPUTED = "sqlml_imputed"  # meta key of an imputation's expression: the value it imputes


def dot(cells: Sequence[Expr], weights: npt.NDArray[Any], dtype: int = DOUBLE) -> Expr:
    """sum_i cells[i] * weights[i]; zero weights are kept, so a NULL or NaN still propagates.

    Over imputed values (an expression tagged IMPUTED: ``CASE WHEN x is NULL or NaN THEN fill
    ELSE x END``) the sum is guarded: first computed over the raw values, and over the imputed
    ones only where that gave NULL or NaN, which it does whenever any raw value is NULL or NaN
    (both propagate through every product and sum, a zero weight too). Elsewhere the two sums
    are the same operations on the same values, so the result is bit for bit the same, and the
    common row pays one NaN test per sum instead of one per feature (issue 12: compiled scoring
    took 2x a hand-written expression, the per-feature tests being most of the difference)."""
    if len(cells) != len(weights):
        raise NotCompilable(f"a product of {len(cells)} values with {len(weights)} weights")

    def terms(xs: Sequence[Expr]) -> list[Expr]:
        return [mul(c, literal(w, dtype)) for c, w in zip(xs, weights, strict=True)]

    imputed = fold(exp.Add, terms(cells))
    raw = [c.meta.get(IMPUTED, c) if isinstance(c, exp.Expr) else c for c in cells]
    if all(r is c for r, c in zip(raw, cells, strict=True)) or dtype not in FLOAT_TYPES:
        return imputed
    fast = fold(exp.Add, terms(raw))
    missing = coalesce(binary(exp.EQ, fast, double(math.nan)), exp.true())
    return case([(missing, imputed)], fast.copy())


def reduce_axes(
    x: Sym, axes: Sequence[int], keepdims: bool, combine: Callable[[list[Expr]], Expr]
) -> Sym:
    """combine applied over the given axes (never the row axis)."""
    axes = sorted({a % x.cells.ndim for a in axes})
    if x.batch in axes:
        raise NotCompilable("a reduction over the row axis")
    moved = np.moveaxis(x.cells, axes, list(range(-len(axes), 0)))
    lead = moved.shape[: moved.ndim - len(axes)]
    flat = moved.reshape((*lead, -1))
    cells = build(lead, lambda i: combine(list(flat[i])))
    if keepdims:
        return x.like(np.expand_dims(cells, tuple(axes)))
    return x.like(cells, batch=x.batch - sum(a < x.batch for a in axes))


def along(x: Sym, axis: int, fn: Callable[[list[Expr]], list[Expr]]) -> Sym:
    """fn maps each vector of x along axis (never the row axis) to a vector of the same length."""
    axis %= x.cells.ndim
    if axis == x.batch:
        raise NotCompilable("an operation along the row axis")
    moved = np.moveaxis(x.cells, axis, -1)
    out = np.empty(moved.shape, dtype=object)
    for i in np.ndindex(*moved.shape[:-1]):
        for k, cell in enumerate(fn(list(moved[i]))):
            out[(*i, k)] = cell
    return x.like(np.moveaxis(out, -1, axis))


# -- the op registry ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    """What an op handler sees: one node with its input values, attributes, opset and dialect."""

    proto: onnx.NodeProto
    inputs: tuple[Value | None, ...]  # None for an omitted optional input
    attrs: Mapping[str, Any]  # attribute values; strings decoded, tensors as numpy arrays
    opset: int  # the version of the node's domain that the model imports
    dialect: Dialect

    @property
    def op_type(self) -> str:
        return str(self.proto.op_type)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def sym(self, i: int = 0) -> Sym:
        """Input i, which must depend on the row."""
        value = self.inputs[i] if i < len(self.inputs) else None
        if not isinstance(value, Sym):
            raise NotCompilable(f"{self.op_type}: input {i} must depend on the input row")
        return value

    def const(self, i: int) -> npt.NDArray[Any] | None:
        """Input i, which must be constant; None when omitted."""
        value = self.inputs[i] if i < len(self.inputs) else None
        if isinstance(value, Sym):
            raise NotCompilable(f"{self.op_type}: input {i} must be a constant")
        return value

    def ints(self, name: str, i: int) -> list[int] | None:
        """An int list given as attribute `name` (older opsets) or as constant input i (newer)."""
        if name in self.attrs:
            return [int(v) for v in self.attrs[name]]
        value = self.const(i)
        return None if value is None else [int(v) for v in value.ravel()]


Handler: TypeAlias = Callable[[Node], Sequence[Value]]
Check: TypeAlias = Callable[[onnx.NodeProto, str], None]  # (node, dialect name) -> None or raise
OPS: dict[tuple[str, str], Handler] = {}  # (domain, op_type) -> handler; "" is the default domain
CHECKS: dict[tuple[str, str], Check] = {}  # is_compilable's extra test of a node, per dialect


def register(
    *op_types: str, domain: str = "", check: Check | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler for ops of a domain (the built-in ops use this door too).

    ``check``, if given, is what :func:`is_compilable` asks of each such node besides having a
    handler: it raises NotCompilable where compiled SQL would score worse than the runtime on
    that dialect's engine (a tree ensemble too large, sqlml.ml.to_sql_trees).
    """

    def decorate(handler: Handler) -> Handler:
        for op_type in op_types:
            OPS[(domain, op_type)] = handler
            if check is not None:
                CHECKS[(domain, op_type)] = check
        return handler

    return decorate


# -- the graph walk ----------------------------------------------------------------------------

_NEVER_FOLD = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
    | {"Bernoulli"}
)
_FOLD_ERRORS = (ValueError, TypeError, RuntimeError, NotImplementedError, IndexError, KeyError)


def compile_onnx(
    model: onnx.ModelProto,
    inputs: Mapping[str, Expr],
    dialect: str = "duckdb",
    max_nodes: int | None = None,
) -> dict[str, list[Expr]]:
    """One SQL expression per output column of each graph output.

    inputs maps each graph input name to a scalar SQL expression (each input has shape [N, 1]).
    The result maps each graph output name to its column expressions: an [N] output gives a list of
    one, an [N, k] output a list of k. Raises NotCompilable for what SQL cannot express, and for
    an op output that would expand to more than ``max_nodes`` (default MAX_TREE_NODES; 0: no
    limit, for measurements) expression nodes.
    """
    if dialect not in DIALECTS:
        raise errors.InternalError(f"no SQL dialect {dialect!r} for compiled models")
    graph = model.graph
    env: dict[str, Value] = dict(_constants(graph))
    for info in graph.input:
        if info.name not in env:
            env[info.name] = _input(info, inputs)
    opsets = _opsets(model)
    sizes: dict[int, tuple[Expr, int]] = {}
    budget = MAX_TREE_NODES if max_nodes is None else max_nodes
    for proto in graph.node:
        _run(proto, env, opsets, DIALECTS[dialect])
        if budget:
            _within_budget(proto, env, sizes, budget)
    return {out.name: _columns(out.name, env) for out in graph.output}


# The most tree nodes one op's output may expand to. Expressions are shared while compiling but
# each output is written out as a tree, and the size multiplies through every layer that reads
# all of the one before it: a k-means of 8 clusters over 10 features is 22,000-28,000 nodes, a
# 5-class logistic model 24,000-59,000, a 64-unit one-layer perceptron 39,000, but a perceptron
# of two 8-unit layers 14 million (9 minutes to compile, and SQL no engine plans in time). Above
# the budget the graph is not compiled: onnxruntime scores it.
MAX_TREE_NODES = 100_000


def _within_budget(
    proto: onnx.NodeProto,
    env: Mapping[str, Value],
    sizes: dict[int, tuple[Expr, int]],
    budget: int,
) -> None:
    for name in proto.output:
        value = env.get(name) if name else None
        if not isinstance(value, Sym):
            continue
        total = sum(_tree_size(cell, sizes) for cell in value.cells.ravel())
        if total > budget:
            raise NotCompilable(
                f"the model's SQL would have more than {budget:,} expression nodes"
                f" (at ONNX node {proto.op_type} {proto.name!r})"
            )


def _tree_size(root: Expr, sizes: dict[int, tuple[Expr, int]]) -> int:
    """Nodes of ``root`` written out as a tree, counting each shared subexpression as often as
    it is read; memoized per node object (kept alive in ``sizes``, so ids stay unique)."""
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = list(node.iter_expressions())
        if children_done:
            sizes[id(node)] = (node, 1 + sum(sizes[id(c)][1] for c in children))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)][1]


def is_compilable(model: onnx.ModelProto, dialect: str = "duckdb") -> bool:
    """Whether every input type and op of the graph has a SQL translation (without compiling),
    and each op's registered check accepts it for the dialect's engine (a tree ensemble above
    that engine's size limit scores faster with onnxruntime: not compilable).

    compile_onnx may still refuse an attribute or shape that SQL cannot express, or a graph
    whose SQL would be too large (MAX_TREE_NODES: scoring.compilable compiles to find out); it
    compiles what the checks refuse (they are about speed, not meaning).
    """
    try:
        _check(model.graph, dialect)
    except NotCompilable:
        return False
    return True


def _check(graph: onnx.GraphProto, dialect: str) -> None:
    constant = set(_constants(graph))
    for info in graph.input:
        if info.name not in constant:
            _input_type(info)
    for proto in graph.node:
        if _foldable(proto) and all(name in constant for name in proto.input if name):
            constant.update(proto.output)
        elif _key(proto) not in OPS:
            raise NotCompilable(_unsupported(proto))
        elif _key(proto) in CHECKS:
            CHECKS[_key(proto)](proto, dialect)


def _constants(graph: onnx.GraphProto) -> dict[str, Value]:
    found: dict[str, Value] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for sparse in graph.sparse_initializer:
        found[sparse.values.name] = numpy_helper.to_array(sparse)
    return found


def _input_type(info: onnx.ValueInfoProto) -> int:
    if not info.type.HasField("tensor_type"):
        raise NotCompilable(f"graph input {info.name!r} is not a tensor")
    dtype = int(info.type.tensor_type.elem_type)
    sql_type(dtype)
    dims = info.type.tensor_type.shape.dim
    if len(dims) not in (1, 2) or (len(dims) == 2 and dims[1].dim_value != 1):
        raise NotCompilable(f"graph input {info.name!r} must have shape [N, 1] to compile to SQL")
    return dtype


def _input(info: onnx.ValueInfoProto, inputs: Mapping[str, Expr]) -> Sym:
    dtype = _input_type(info)
    if info.name not in inputs:
        raise errors.InternalError(f"no SQL expression for graph input {info.name!r}")
    rank = len(info.type.tensor_type.shape.dim)
    cells = build((1,) * rank, lambda _: inputs[info.name].copy())
    return Sym(cells, 0, dtype, nullable=dtype != STRING)  # strings arrive with NULL mapped


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    found = {
        ("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in model.opset_import
    }
    found.setdefault("", 17)
    return found


def _key(proto: onnx.NodeProto) -> tuple[str, str]:
    domain = "" if proto.domain == "ai.onnx" else str(proto.domain)
    return domain, str(proto.op_type)


def _unsupported(proto: onnx.NodeProto) -> str:
    domain, op_type = _key(proto)
    name = f"{domain}.{op_type}" if domain else op_type
    return f"ONNX op {name} cannot be compiled to SQL"


def _foldable(proto: onnx.NodeProto) -> bool:
    graphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    has_graph = any(a.type in graphs for a in proto.attribute)
    return not has_graph and proto.op_type not in _NEVER_FOLD


def _run(
    proto: onnx.NodeProto, env: dict[str, Value], opsets: Mapping[str, int], sql: Dialect
) -> None:
    missing = [name for name in proto.input if name and name not in env]
    if missing:
        raise errors.CorruptedModel(f"ONNX node {proto.name!r} reads undefined tensors {missing}")
    values = tuple(env[name] if name else None for name in proto.input)
    outputs: Sequence[Value]
    if _foldable(proto) and not any(isinstance(v, Sym) for v in values):
        outputs = _fold(proto, values, opsets)
    else:
        outputs = _handle(proto, values, opsets, sql)
    for name, value in zip(proto.output, outputs, strict=False):
        if name:
            env[name] = value


def _handle(
    proto: onnx.NodeProto, values: tuple[Value | None, ...], opsets: Mapping[str, int], sql: Dialect
) -> Sequence[Value]:
    key = _key(proto)
    handler = OPS.get(key)
    if handler is None:
        raise NotCompilable(_unsupported(proto))
    attrs = {a.name: _attribute(a) for a in proto.attribute}
    return handler(Node(proto, values, attrs, opsets.get(key[0], 1), sql))


def _fold(
    proto: onnx.NodeProto, values: tuple[Value | None, ...], opsets: Mapping[str, int]
) -> list[Value]:
    feeds = {name: v for name, v in zip(proto.input, values, strict=True) if name}
    try:
        results = ReferenceEvaluator(proto, opsets=dict(opsets)).run(None, feeds)
    except _FOLD_ERRORS as e:
        raise NotCompilable(f"{_unsupported(proto)}: folding its constants failed") from e
    return [np.asarray(r) for r in results]


def _attribute(attribute: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def _columns(name: str, env: Mapping[str, Value]) -> list[Expr]:
    value = env[name]
    if not isinstance(value, Sym):
        raise NotCompilable(f"graph output {name!r} does not depend on the input")
    # copy: each output becomes a tree of its own instead of sharing nodes with the others
    return [cell.copy() for cell in value.cells.ravel()]


# registering the built-in op handlers (to_sql_trees: TreeEnsemble; to_sql_strings: TRANSFORM's
# string functions)
from sqlml.ml import to_sql_ops, to_sql_strings, to_sql_trees  # noqa: E402, F401
