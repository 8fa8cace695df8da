"""Tree ensembles (ai.onnx.ml TreeEnsemble, ml opset 5) compiled to nested CASE expressions.

Each tree becomes one ``CASE WHEN x_j < t THEN <true side> ELSE <false side> END`` per target it
adds to, with its leaf values as DOUBLE constants; the trees of a target are summed with
:func:`sqlml.ml.to_sql.fold`, so the nesting depth stays logarithmic in the number of trees. A
chain of false sides is written as one CASE with several WHENs (same value, less nesting).

Semantics (sqlml.ml.to_sql's): SQL NULL plays NaN. A comparison with NULL is not true, so a NULL
takes the false side, as NaN does in onnxruntime; a node whose missing value tracks true tests
``x IS NULL`` too. The graph's input is usually rounded to float32 and back first (sqlml's XGBoost
graphs do, sqlml.ml.trees_onnx): the Cast handler of sqlml.ml.to_sql_ops rounds exactly as
onnxruntime does, so every split compares the same float32 value with the same threshold.

Size. A compiled ensemble is as large as its trees (one comparison per interior node, one
constant per leaf): 100 trees of depth 6 are about 11,600 nodes and 0.6 MB of SQL, parsed and
planned on every query. Beyond a size measured per engine (benchmarks/bench_tree_scoring.py,
benchmarks/RESULTS.md "Tree scoring (issue 13)") onnxruntime scores faster, so :func:`check`
declares larger ensembles not compilable (:data:`MAX_NODES`) and scoring takes the runtime path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from sqlglot import exp

from sqlml.ml.to_sql import (
    Expr,
    Node,
    NotCompilable,
    Sym,
    Value,
    binary,
    build,
    coalesce,
    div,
    double,
    fold,
    greatest,
    is_null,
    least,
    register,
)
from sqlml.ml.to_sql_ops import FLOAT32_OF

ML = "ai.onnx.ml"

# nodes_modes (ONNX's enum): each a comparison of the feature with the node's split value
_COMPARE: dict[int, type[Expr]] = {0: exp.LTE, 1: exp.LT, 2: exp.GTE, 3: exp.GT, 4: exp.EQ}
_NEQ, _MEMBER = 5, 6
_AGGREGATES = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}
_NAMES = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3, "NONE": 0}

MAX_DEPTH = 64  # deeper trees nest CASEs past what the SQL parsers (and Python) recurse through

# Total tree nodes (interior + leaves) above which an ensemble scores with onnxruntime, per
# engine: below the size where compiled SQL took as long as the runtime path, at 100k and at 1M
# rows (benchmarks/RESULTS.md "Tree scoring (issue 13)"). Trees of depth 6 hold up to 127 nodes:
# DuckDB compiles about 5 of them (it plans and optimizes the whole expression on every query,
# then runs each CASE level over ever smaller selections), PostgreSQL about 16.
MAX_NODES: dict[str, int] = {"duckdb": 600, "postgres": 2_000}


@dataclasses.dataclass(frozen=True)
class _Ensemble:
    """A TreeEnsemble's attributes as plain lists (v5 layout: interior nodes and leaves apart)."""

    features: list[int]
    splits: list[float]
    modes: list[int]
    true_ids: list[int]
    true_leaf: list[bool]
    false_ids: list[int]
    false_leaf: list[bool]
    missing_true: list[bool]
    leaf_targets: list[int]
    leaf_weights: list[float]
    roots: list[int]
    n_targets: int
    aggregate: str

    @property
    def size(self) -> int:
        """Tree nodes in all: what a compiled ensemble's SQL grows with."""
        return len(self.features) + len(self.leaf_weights)


def _floats(value: Any) -> list[float]:
    return [] if value is None else [float(v) for v in np.asarray(value).ravel()]


def _ints(value: Any) -> list[int]:
    return [] if value is None else [int(v) for v in np.asarray(value).ravel()]


def _enum(value: Any, names: dict[str, int], default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str):
        if value not in names:
            raise NotCompilable(f"TreeEnsemble: unknown value {value!r}")
        return names[value]
    return int(value)


def _ensemble(attrs: dict[str, Any]) -> _Ensemble:
    modes = _ints(attrs.get("nodes_modes"))
    post = _enum(attrs.get("post_transform"), {"NONE": 0}, 0)
    if post != 0:
        raise NotCompilable(f"TreeEnsemble with post_transform {post} is not compiled")
    aggregate = _enum(attrs.get("aggregate_function"), _NAMES, 1)
    if aggregate not in _AGGREGATES:
        raise NotCompilable(f"TreeEnsemble with aggregate_function {aggregate} is not compiled")
    if _MEMBER in modes:  # onnxruntime tests the value cast to an integer (0.5 is in {0}),
        # the spec the value itself: SQL could not agree with both
        raise NotCompilable("TreeEnsemble with BRANCH_MEMBER nodes is not compiled")
    unknown = sorted(set(modes) - set(_COMPARE) - {_NEQ})
    if unknown:
        raise NotCompilable(f"TreeEnsemble with node modes {unknown} is not compiled")
    features = _ints(attrs.get("nodes_featureids"))
    missing = _ints(attrs.get("nodes_missing_value_tracks_true")) or [0] * len(features)
    ensemble = _Ensemble(
        features=features,
        splits=_floats(attrs.get("nodes_splits")),
        modes=modes,
        true_ids=_ints(attrs.get("nodes_truenodeids")),
        true_leaf=[bool(v) for v in _ints(attrs.get("nodes_trueleafs"))],
        false_ids=_ints(attrs.get("nodes_falsenodeids")),
        false_leaf=[bool(v) for v in _ints(attrs.get("nodes_falseleafs"))],
        missing_true=[bool(v) for v in missing],
        leaf_targets=_ints(attrs.get("leaf_targetids")),
        leaf_weights=_floats(attrs.get("leaf_weights")),
        roots=_ints(attrs.get("tree_roots")),
        n_targets=int(attrs.get("n_targets", 1)),
        aggregate=_AGGREGATES[aggregate],
    )
    lengths = {len(getattr(ensemble, name)) for name in _PER_NODE}
    if len(lengths) != 1 or len(ensemble.leaf_targets) != len(ensemble.leaf_weights):
        raise NotCompilable("TreeEnsemble: its node attributes differ in length")
    _check_ids(ensemble)
    return ensemble


def _check_ids(e: _Ensemble) -> None:
    """Every id points into its list, so compiling never indexes past one (a corrupt graph)."""
    nodes, leaves = len(e.features), len(e.leaf_weights)
    sides = zip(e.true_ids + e.false_ids, e.true_leaf + e.false_leaf, strict=True)
    bad = any(not 0 <= i < (leaves if is_leaf else nodes) for i, is_leaf in sides)
    bad = bad or any(not 0 <= r < nodes for r in e.roots)
    bad = bad or any(not 0 <= t < e.n_targets for t in e.leaf_targets)
    if bad:
        raise NotCompilable("TreeEnsemble: a node, leaf or target id is out of range")


_PER_NODE: tuple[str, ...] = ("features", "splits", "modes", "true_ids", "true_leaf")
_PER_NODE += ("false_ids", "false_leaf", "missing_true")


# -- one tree ----------------------------------------------------------------------------------

# A compiled subtree for one target: a leaf's value (None where the leaf adds to another target)
# or a CASE expression.
_Sub = float | None | Expr


def _same(a: _Sub, b: _Sub) -> bool:
    """Both sides are the same leaf value (bit for bit: 0.0 and -0.0 differ), so the test goes."""
    if isinstance(a, exp.Expr) or isinstance(b, exp.Expr):
        return False
    if a is None or b is None:
        return a is b
    return bool(np.float64(a).tobytes() == np.float64(b).tobytes())


def _condition(e: _Ensemble, i: int, row: Sequence[Expr], maybe_null: bool) -> Expr:
    """Node i's test; true sends the row to the true side. NULL (NaN) must give true or false."""
    x = row[e.features[i]]
    mode = e.modes[i]
    if mode == _NEQ:  # NaN != t is true in ONNX, NULL <> t is NULL in SQL
        test = binary(exp.NEQ, x.copy(), double(e.splits[i]))
        return coalesce(test, exp.true()) if maybe_null else test
    test = _split(x, mode, e.splits[i])
    if e.missing_true[i] and maybe_null:  # else NULL is not true: the false side, as NaN
        raw: Expr = x.meta.get(FLOAT32_OF, x)  # NULL exactly where its float32 rounding is
        return binary(exp.Or, test, is_null(raw.copy()))
    return test


def _split(x: Expr, mode: int, split: float) -> Expr:
    """x <mode> split; when x is a float32 rounding of r and split a float32 number, the same
    test on r itself against the midpoint where the rounding changes, so no row pays for the
    rounding (one per split otherwise, in expressions that are not hoisted: ML.SCORE's)."""
    raw = x.meta.get(FLOAT32_OF)
    bound = None if raw is None else _raw_bound(mode, split)
    if raw is None or bound is None:
        return binary(_COMPARE[mode], x.copy(), double(split))
    cls, value = bound
    return binary(cls, raw.copy(), double(value))


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_LEQ, _LT, _GTE, _GT = 0, 1, 2, 3


def _raw_bound(mode: int, split: float) -> tuple[type[Expr], float] | None:
    """(comparison, m) such that ``round32(r) <mode> split`` is ``r <comparison> m`` for every
    double r (NaN aside), or None.

    Rounding to float32 is monotone, so the test flips at the midpoint m between split and its
    float32 neighbour (exact in a double); m itself rounds to the neighbour with the even
    significand, which decides whether m belongs to the true side.
    """
    t32 = np.float32(split)
    if not math.isfinite(split) or float(t32) != split or abs(split) >= _FLOAT32_MAX:
        return None
    if mode in (_LEQ, _GT):  # the flip is between split and the next float32 up
        above = np.nextafter(t32, np.float32(math.inf))
        middle = (float(t32) + float(above)) / 2
        rounds_up = bool(np.float32(middle) == above)
        if mode == _LEQ:
            return (exp.LT if rounds_up else exp.LTE), middle
        return (exp.GTE if rounds_up else exp.GT), middle
    if mode in (_LT, _GTE):  # between the next float32 down and split
        below = np.nextafter(t32, np.float32(-math.inf))
        middle = (float(below) + float(t32)) / 2
        rounds_up = bool(np.float32(middle) == t32)
        if mode == _LT:
            return (exp.LT if rounds_up else exp.LTE), middle
        return (exp.GTE if rounds_up else exp.GT), middle
    return None


def _leaf(e: _Ensemble, i: int, target: int) -> _Sub:
    return e.leaf_weights[i] if e.leaf_targets[i] == target else None


def _tree(
    e: _Ensemble, i: int, target: int, row: Sequence[Expr], maybe_null: bool, depth: int = 0
) -> _Sub:
    """Interior node i's subtree as its value for one target."""
    if depth >= MAX_DEPTH:  # depth counts from 0 at the root
        raise NotCompilable(f"a tree deeper than {MAX_DEPTH} levels is not compiled")

    def side(index: int, is_leaf: bool) -> _Sub:
        if is_leaf:
            return _leaf(e, index, target)
        return _tree(e, index, target, row, maybe_null, depth + 1)

    true = side(e.true_ids[i], e.true_leaf[i])
    false = side(e.false_ids[i], e.false_leaf[i])
    if _same(true, false):
        return true
    return _case(_condition(e, i, row, maybe_null), _expr(true, e), _expr(false, e))


def _expr(sub: _Sub, e: _Ensemble) -> Expr:
    if isinstance(sub, exp.Expr):
        return sub
    if sub is None:  # a leaf of another target: adds nothing
        return exp.Null() if e.aggregate in ("MIN", "MAX") else double(0.0)
    return double(sub)


def _case(condition: Expr, true: Expr, false: Expr) -> Expr:
    """CASE WHEN condition THEN true ELSE false END; a CASE on the false side joins this one."""
    first = exp.If(this=condition, true=true)
    if isinstance(false, exp.Case) and false.this is None:
        return exp.Case(ifs=[first, *false.args["ifs"]], default=false.args.get("default"))
    return exp.Case(ifs=[first], default=false)


def _root_is_leaf(e: _Ensemble, root: int) -> bool:
    """v5's degenerate tree: a root whose both sides are the same leaf."""
    return e.true_leaf[root] and e.false_leaf[root] and e.true_ids[root] == e.false_ids[root]


# -- the ensemble ------------------------------------------------------------------------------


def _combine(e: _Ensemble, terms: list[Expr], all_reach: bool) -> Expr:
    """One target's value from its trees' values, as onnxruntime aggregates them."""
    if not terms:
        return double(0.0)  # no tree adds to this target: onnxruntime's score is its base, 0
    if e.aggregate in ("SUM", "AVERAGE"):
        total = fold(exp.Add, terms)
        return div(total, double(float(len(e.roots)))) if e.aggregate == "AVERAGE" else total
    pick = least if e.aggregate == "MIN" else greatest  # both skip NULLs: trees that add nothing
    chosen = pick(terms) if len(terms) > 1 else terms[0]
    return chosen if all_reach else coalesce(chosen, double(0.0))


def _leaves(e: _Ensemble, root: int) -> list[int]:
    """The leaves of the tree at root (a walk, not recursion: any depth)."""
    found: list[int] = []
    pending = [root]
    for _ in range(len(e.features) + 1):  # a well-formed tree visits each node once
        if not pending:
            return found
        i = pending.pop()
        for index, is_leaf in ((e.true_ids[i], e.true_leaf[i]), (e.false_ids[i], e.false_leaf[i])):
            (found if is_leaf else pending).append(index)
    raise NotCompilable("TreeEnsemble: a tree's nodes form a cycle")


def _target(e: _Ensemble, target: int, row: Sequence[Expr], maybe_null: bool) -> Expr:
    terms: list[Expr] = []
    all_reach = True  # every tree gives this target a value on every path
    for root in e.roots:
        targets = {e.leaf_targets[i] for i in _leaves(e, root)}
        if target not in targets:  # the tree adds nothing to this target
            all_reach = False
            continue
        all_reach = all_reach and targets == {target}
        if _root_is_leaf(e, root):
            sub = _leaf(e, e.true_ids[root], target)
        else:
            sub = _tree(e, root, target, row, maybe_null)
        terms.append(_expr(sub, e))
    return _combine(e, terms, all_reach)


def _tree_ensemble(node: Node) -> list[Value]:
    x = node.sym(0)
    if x.cells.ndim != 2 or x.batch != 0:
        raise NotCompilable("TreeEnsemble needs a [rows, features] input")
    e = _ensemble(dict(node.attrs))
    row = list(x.cells[0])
    if any(not 0 <= f < len(row) for f in e.features):
        raise NotCompilable("TreeEnsemble reads a feature its input does not have")
    values = [_target(e, k, row, x.nullable) for k in range(e.n_targets)]
    cells = build((1, e.n_targets), lambda index: values[index[1]])
    return [Sym(cells, 0, x.dtype, nullable=False)]  # a tree's value is never NULL


# -- the size check ----------------------------------------------------------------------------


def _attributes(proto: onnx.NodeProto) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attribute in proto.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        found[attribute.name] = value
    return found


def tree_nodes(proto: onnx.NodeProto) -> int:
    """A TreeEnsemble node's tree nodes in all (interior nodes and leaves)."""
    attrs = _attributes(proto)
    interior: npt.NDArray[Any] = np.asarray(attrs.get("nodes_featureids", []))
    return int(interior.size) + int(np.asarray(attrs.get("leaf_weights", [])).size)


def _depth(e: _Ensemble, root: int) -> int:
    """The tree's depth in interior nodes (a walk, not recursion)."""
    deepest, pending = 0, [(root, 1)]
    for _ in range(len(e.features) + 1):
        if not pending:
            return deepest
        i, level = pending.pop()
        deepest = max(deepest, level)
        for index, is_leaf in ((e.true_ids[i], e.true_leaf[i]), (e.false_ids[i], e.false_leaf[i])):
            if not is_leaf:
                pending.append((index, level + 1))
    raise NotCompilable("TreeEnsemble: a tree's nodes form a cycle")


def check(proto: onnx.NodeProto, dialect: str) -> None:
    """What is_compilable asks of a TreeEnsemble: attributes the handler compiles (modes,
    aggregate, post_transform), trees at most MAX_DEPTH deep, and at most the dialect's
    MAX_NODES nodes in all; a larger ensemble scores faster with onnxruntime."""
    ensemble = _ensemble(_attributes(proto))
    if any(_depth(ensemble, root) > MAX_DEPTH for root in ensemble.roots):
        raise NotCompilable(f"a tree deeper than {MAX_DEPTH} levels is not compiled")
    limit = MAX_NODES.get(dialect, min(MAX_NODES.values()))
    if ensemble.size > limit:
        raise NotCompilable(
            f"a tree ensemble of {ensemble.size} nodes is above {dialect}'s compiled-SQL limit"
            f" of {limit} (onnxruntime scores it faster)"
        )


register("TreeEnsemble", domain=ML, check=check)(_tree_ensemble)
