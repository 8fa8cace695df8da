"""Scoring inside the engine's own query: ML.PREDICT and ML.SCORE as SQL trees.

A model version's graph yields *raw outputs*, a flat list of numbers per row, the graph outputs
its kind names (ml/kinds.py ``raw_outputs``): ``[label, p0, p1, ...]`` for classifiers,
``[value]`` for regressors, ``[cluster, d0, d1, ...]`` for k-means. They come either
*compiled* (the graph turned into one native SQL expression per output by ml/to_sql.py: vectorized,
parallel, no Python) or from the *runtime* UDF ``sqlml_onnx`` (onnxruntime, for any graph). The
BigQuery ML output columns are then built from the raw outputs the same way for both paths, by
the model's kind (its ``columns`` and ``score``): nothing here branches on the kind.

ML.PREDICT becomes nested SELECTs over the input query (see Session.predict_subquery): the model's
common subexpressions, then the raw outputs as hidden columns, then the input columns and the
predicted columns, so each is computed once per row whatever the outer columns reference.
Everything derived from a model version's graph is cached by its sha256.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyarrow as pa
from sqlglot import exp

from sqlml import cse, errors
from sqlml.grammar.statements import Predict
from sqlml.ml import extract, kinds, multihot, nested, temporal
from sqlml.ml.features import NULL_CATEGORY, InputColumn, kind_of
from sqlml.ml.predict_sql import (  # noqa: F401  -- also scoring's names for views and the server
    PG_CENTROID_DISTANCE,
    label_literal,
    pg_label_prob_type,
)
from sqlml.store import ModelVersion

UDF = "sqlml_onnx"
HIDDEN = "__sqlml_"
MODES = ("auto", "compiled", "runtime")


def input_expression(
    column: InputColumn, qualifier: str | None, runtime: bool, dialect: str = "duckdb"
) -> exp.Expr:
    """A feature as the graph takes it: DOUBLE (NULL = missing), or a string never NULL.
    A STRUCT field or ARRAY element is read through its path (ml/nested.py)."""
    ref = input_ref(column, qualifier, dialect)
    if column.kind in temporal.KINDS:  # canonical text, or epoch seconds
        return temporal.input_sql(column.kind, ref)
    if column.kind == "numeric":
        return exp.cast(ref, exp.DataType.build("DOUBLE"))
    if column.kind == "bool":
        if runtime:
            return ref
        return (
            exp.case()
            .when(ref, exp.Literal.string("true"))
            .when(exp.not_(ref), exp.Literal.string("false"))
            .else_(exp.Literal.string(NULL_CATEGORY))
        )
    text = exp.cast(ref, exp.DataType.build("VARCHAR"))
    return text if runtime else exp.func("coalesce", text, exp.Literal.string(NULL_CATEGORY))


def input_ref(column: InputColumn, qualifier: str | None, dialect: str = "duckdb") -> exp.Expr:
    """The input column's value as it is in the rows (a STRUCT field, an ARRAY element)."""
    if column.path:
        return nested.sql_ref(column, qualifier, dialect)
    return exp.column(column.name, table=qualifier, quoted=True)


# -- raw outputs ---------------------------------------------------------------------------------

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_SIZE = 512
T = TypeVar("T")


def _cached(key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """A small LRU over everything derived from a version's graph (keys start with its sha256).
    Values are shared: callers place the trees into new queries (copy=False), never mutate them."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return cast(T, _cache[key])
    value = make()
    with _lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def compilable(version: ModelVersion, dialect: str = "duckdb") -> bool:
    """Whether the version scores compiled on the dialect's engine (a large tree ensemble is
    compilable but scores faster with onnxruntime: each engine has its own limit)."""
    import onnx  # lazy, as the compiler: not every session scores

    from sqlml.ml.to_sql import NotCompilable, is_compilable

    def check() -> bool:
        model, _ = graph_inputs(version, onnx.load_from_string(version.onnx), None, dialect)
        if not is_compilable(_only(model, tuple(o.name for o in model.graph.output)), dialect):
            return False
        # (the operators have SQL; the graph may still be too large for it: MAX_TREE_NODES)
        try:
            compiled_outputs(version, None, dialect)
        except NotCompilable:
            return False
        return True

    return _cached((version.sha256, "compilable", dialect), check)


def compiled_outputs(version: ModelVersion, qualifier: str | None, dialect: str) -> list[exp.Expr]:
    """The raw outputs as native SQL expressions (per version, qualifier and dialect)."""

    def compile_() -> list[exp.Expr]:
        import onnx

        from sqlml.ml.to_sql import compile_onnx

        model = onnx.load_from_string(version.onnx)
        model, inputs = graph_inputs(version, model, qualifier, dialect)
        model = _only(model, raw_outputs(version))
        outputs = compile_onnx(model, inputs, dialect=dialect)
        return [e for name in raw_outputs(version) for e in outputs[name]]

    return list(_cached((version.sha256, "outputs", qualifier, dialect, _paths(version)), compile_))


def graph_inputs(
    version: ModelVersion, model: Any, qualifier: str | None, dialect: str
) -> tuple[Any, dict[str, exp.Expr]]:
    """The graph as compiled scoring takes it (``model``, modified) and the SQL of its inputs:
    the temporal parts the graph computes (a TIMESTAMP's components, EXTRACT in TRANSFORM) come
    from the engine's own EXTRACT, as inputs (temporal.py and ml/extract.py say why); the nodes
    that computed them are left unused (``_only`` drops them)."""
    inputs = {
        c.name: input_expression(c, qualifier, runtime=False, dialect=dialect)
        for c in version.inputs
    }
    for column in version.inputs:
        if column.kind in temporal.KINDS:
            ref = input_ref(column, qualifier, dialect)
            if column.kind == temporal.TIMESTAMP:
                inputs.update(temporal.components_sql(column.name, ref))
            inputs.update(extract.promoted_sql(model, column.name, column.kind, ref))
    return temporal.promote_components(model), inputs


def _paths(version: ModelVersion) -> tuple[tuple[str | int, ...], ...]:
    """Part of the cache keys of compiled SQL: two versions with one graph may read their
    inputs from different places (a STRUCT's fields, or columns of those names)."""
    return tuple(c.path for c in version.inputs)


def _only(model: Any, names: tuple[str, ...]) -> Any:
    """The graph with only the outputs ``names`` and the nodes they need: an output scoring
    never reads (an autoencoder's reconstruction, k-means' features) is not compiled, nor
    counted against the expression budget."""
    graph = model.graph
    needed = set(names)
    kept = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(n for n in node.input if n)
    outputs = [o for o in graph.output if o.name in names]
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.output[:]
    graph.output.extend(outputs)
    return model


def compiled_stages(
    version: ModelVersion, qualifier: str, dialect: str, prefix: str = f"{HIDDEN}c"
) -> tuple[list[cse.Stage], list[exp.Expr]]:
    """The raw outputs with their common subexpressions lifted out (cse.hoist_stages):
    ``(stages, raw)``, where each stage's expressions and ``raw`` read the stages before them
    as columns ``qualifier.<name>``.

    A 8-cluster k-means over 10 features shrinks from 181 KB of SQL to 46 KB and scores 4x
    faster in DuckDB; a binary logistic model computes its linear score once instead of five
    times in PostgreSQL (which has no common subexpression elimination of its own). The lifted
    columns are named ``<prefix>1, <prefix>2, ...`` (versions side by side in one query, a
    traffic split, each take a prefix of their own).
    """

    def lift() -> tuple[list[cse.Stage], list[exp.Expr]]:
        outputs = compiled_outputs(version, qualifier, dialect)
        column = lambda name: exp.column(name, table=qualifier, quoted=True)  # noqa: E731
        return cse.hoist_stages(outputs, column, prefix)

    key = (version.sha256, "stages", qualifier, dialect, _paths(version), prefix)
    return _cached(key, lift)


def staged(
    version: ModelVersion,
    source: exp.Expr,
    alias: str,
    dialect: str,
    fence: Callable[[exp.Select, int], exp.Select],
    *,
    prefix: str = f"{HIDDEN}c",
    guard: Callable[[exp.Expr], exp.Expr] | None = None,
    first: int = 0,
) -> tuple[exp.Expr, list[exp.Expr]]:
    """``source`` (a subquery aliased ``alias``) under one SELECT per stage of the compiled raw
    outputs' common subexpressions (compiled_stages), each level made a plan node of its own by
    ``fence(level, its number from first)``: ``(the last level, the raw outputs that read it)``.
    Shared by ML.PREDICT and PostgreSQL's prediction functions; traffic splits stage several
    versions together (staged_together)."""
    source, (raw,) = staged_together(
        [Staging(version, prefix, guard)], source, alias, dialect, fence, first=first
    )
    return source, raw


@dataclass(frozen=True)
class Staging:
    """One version's part of staged_together: its hoisted columns' prefix, and the guard each
    of its expressions goes under (a traffic split's ``CASE WHEN`` the row is the version's)."""

    version: ModelVersion
    prefix: str = f"{HIDDEN}c"
    guard: Callable[[exp.Expr], exp.Expr] | None = None


def staged_together(
    parts: Sequence[Staging],
    source: exp.Expr,
    alias: str,
    dialect: str,
    fence: Callable[[exp.Select, int], exp.Select],
    *,
    first: int = 0,
) -> tuple[exp.Expr, list[list[exp.Expr]]]:
    """staged for several versions side by side: level i holds stage i of each (their stages
    read only their own prefixed columns and the input), so a split of two versions is as deep
    as its deepest version, not as both together (on PostgreSQL each level is a plan node that
    copies every column of the row). Returns the last level and each part's raw outputs. The
    cached trees are taken over, not copied (they run to megabytes; generating SQL from them
    does not change them)."""
    lifted = [compiled_stages(p.version, alias, dialect, p.prefix) for p in parts]
    depth = max((len(stages) for stages, _ in lifted), default=0)
    for number in range(depth):
        shared = [
            exp.alias_(p.guard(e) if p.guard else e, n, quoted=True, copy=False)
            for p, (stages, _) in zip(parts, lifted, strict=True)
            if number < len(stages)
            for n, e in stages[number]
        ]
        star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
        level = exp.select(star, *shared, copy=False).from_(source, copy=False)
        source = subquery(fence(level, first + number), alias)
    return source, [raw for _, raw in lifted]


def subquery(query: exp.Expr, alias: str) -> exp.Subquery:
    """``(query) AS "alias"``."""
    return exp.Subquery(
        this=query, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


# A graph output graph_stages adds to a linear model's graph: the rows as its linear layer
# reads them (numeric features imputed, categories one-hot; ML.EXPLAIN_PREDICT's attributions).
LINEAR_FEATURES = f"{HIDDEN}linear_features"


def _tap_linear(model: Any) -> None:
    """Adds LINEAR_FEATURES to the outputs of ``model``: the input of its linear layer (the
    MatMul by a constant that an Add of a constant follows, as functions/weights.py reads)."""
    import onnx

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    for matmul in (n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants):
        if any(n.op_type == "Add" and matmul.output[0] in n.input for n in graph.node):
            width = constants[matmul.input[1]].dims[0]
            graph.node.append(
                onnx.helper.make_node("Identity", [matmul.input[0]], [LINEAR_FEATURES])
            )
            graph.output.append(
                onnx.helper.make_tensor_value_info(
                    LINEAR_FEATURES, onnx.TensorProto.DOUBLE, [None, width]
                )
            )
            return
    raise errors.CorruptedModel("the stored graph has no linear layer")


# A graph output graph_stages adds to a tree model's graph: the rows as its tree ensemble reads
# them (numeric features imputed, categories label-encoded or one-hot, rounded to float32 as
# XGBoost reads them; ML.EXPLAIN_PREDICT's TreeSHAP).
TREE_FEATURES = f"{HIDDEN}tree_features"


def _tap_trees(model: Any) -> None:
    """Adds TREE_FEATURES to the outputs of ``model``: the input of its tree ensemble, before
    the casts that round it to float32 (XGBoost rounds them so itself, and SQL's rounding is
    long)."""
    found = _tap_input(
        model, TREE_FEATURES, lambda node, constants: node.op_type.startswith("TreeEnsemble")
    )
    if not found:
        raise errors.CorruptedModel("the stored graph has no tree ensemble")


def _tap_input(model: Any, name: str, wanted: Callable[[Any, set[str]], bool]) -> bool:
    """Adds output ``name``: the input of the first node ``wanted`` picks (given the graph's
    constants), before the casts in front of it; False when there is none."""
    import onnx

    graph = model.graph
    constants = {init.name for init in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if wanted(node, constants):
            tensor = node.input[0]
            while tensor in producer and producer[tensor].op_type == "Cast":
                tensor = producer[tensor].input[0]
            graph.node.append(onnx.helper.make_node("Identity", [tensor], [name]))
            graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.DOUBLE, None)
            )
            return True
    return False


# A graph output graph_stages adds to a DNN's graph: the rows as its perceptron reads them
# (numeric features imputed and standardized, categories one-hot; ML.EXPLAIN_PREDICT's integrated
# gradients, sqlml/ml/integrated_gradients.py).
DNN_FEATURES = f"{HIDDEN}dnn_features"


def _tap_dnn(model: Any) -> None:
    """Adds DNN_FEATURES to the outputs of ``model``: the input of its perceptron's first layer
    (the first MatMul by a constant), before the casts skl2onnx puts in front of it."""
    found = _tap_input(
        model,
        DNN_FEATURES,
        lambda node, constants: node.op_type == "MatMul" and node.input[1] in constants,
    )
    if not found:
        raise errors.CorruptedModel("the stored graph has no perceptron")


def graph_stages(
    version: ModelVersion, names: tuple[str, ...], qualifier: str, dialect: str
) -> tuple[list[cse.Stage], dict[str, list[exp.Expr]]]:
    """Graph outputs other than the raw outputs (an autoencoder's reconstruction, the
    preprocessed features) compiled to SQL, their common subexpressions lifted into stages as
    in :func:`compiled_stages`: ``(stages, {output: its column expressions})``. A graph that
    SQL cannot express is 0A000 (these functions have no runtime path yet)."""

    def lift() -> tuple[list[cse.Stage], dict[str, list[exp.Expr]]]:
        import onnx

        from sqlml.ml.to_sql import NotCompilable, compile_onnx

        model, inputs = graph_inputs(
            version, onnx.load_from_string(version.onnx), qualifier, dialect
        )
        if LINEAR_FEATURES in names:
            _tap_linear(model)
        if TREE_FEATURES in names:
            _tap_trees(model)
        if DNN_FEATURES in names:
            _tap_dnn(model)
        model = _only(model, names)
        try:
            outputs = compile_onnx(model, inputs, dialect=dialect)
        except NotCompilable as e:
            raise errors.FeatureNotSupported(
                f"model {version.ref} cannot be compiled to SQL, which this function needs"
            ) from e
        flat = [e for name in names for e in outputs[name]]
        column = lambda name: exp.column(name, table=qualifier, quoted=True)  # noqa: E731
        stages, rewritten = cse.hoist_stages(flat, column, f"{HIDDEN}g")
        split, at = {}, 0
        for name in names:
            split[name] = rewritten[at : at + len(outputs[name])]
            at += len(outputs[name])
        return stages, split

    return _cached((version.sha256, "graph", names, qualifier, dialect, _paths(version)), lift)


def runtime_call(version: ModelVersion, qualifier: str | None) -> exp.Expr:
    args = [input_expression(c, qualifier, runtime=True) for c in version.inputs]
    return exp.Anonymous(this=UDF, expressions=[exp.Literal.string(version.sha256), *args])


def runtime_outputs(call: exp.Expr, width: int) -> list[exp.Expr]:
    # offset=1: the index is written as is (1-based in DuckDB and PostgreSQL); without it sqlglot
    # treats the index as 0-based and shifts it.
    return [
        exp.Bracket(this=call.copy(), expressions=[exp.Literal.number(i + 1)], offset=1)
        for i in range(width)
    ]


def width(version: ModelVersion) -> int:
    """How many numbers a row's raw outputs are (the kind says)."""
    return model_kind(version).width(version)


# -- BigQuery ML's output columns ------------------------------------------------------------------


def model_kind(version: ModelVersion) -> kinds.Kind:
    """The version's kind: everything below that depends on it asks this entry."""
    return kinds.kind(version.kind)


def raw_outputs(version: ModelVersion) -> tuple[str, ...]:
    """The graph outputs that are the raw outputs, in order (both scoring paths); a kind that
    names none (imported models) takes every output of the stored graph, in its order."""
    names = model_kind(version).raw_outputs
    if names:
        return names

    def graph_outputs() -> tuple[str, ...]:
        import onnx

        return tuple(o.name for o in onnx.load_from_string(version.onnx).graph.output)

    return _cached((version.sha256, "raw_outputs"), graph_outputs)


def output_names(version: ModelVersion) -> list[str]:
    """ML.PREDICT's output columns, the label spelled as in training (``predicted_Churned``)."""
    return model_kind(version).output_names(version)


def check_output_names(version: ModelVersion, names: list[str]) -> None:
    """An input column with an output's name (compared case-insensitively, as BigQuery compares
    column names) is 42701: the result would have two columns of one name."""
    taken = {n.lower(): n for n in names}
    for output in output_names(version):
        if output.lower() in taken:
            raise errors.DuplicateColumn(
                f'the input of ML.PREDICT has a column "{taken[output.lower()]}", the name of'
                f" an output column of model {version.ref}",
                hint="rename or leave out that input column",
            )


def predicted_columns(
    version: ModelVersion, raw: list[exp.Expr], threshold: float | None, dialect: str = "duckdb"
) -> list[exp.Expr]:
    """The BigQuery ML output columns of ML.PREDICT, from the raw outputs (the kind builds
    them; ml/predict_sql.py for the built-in kinds)."""
    return model_kind(version).columns(version, raw, threshold, dialect)


BATCH_ROWS = 16384
ROW_NUMBER = f"{HIDDEN}rn"


def chunked(query: exp.Expr, rows: int) -> tuple[exp.Subquery, exp.Expr]:
    """``(SELECT q.*, row_number() OVER () AS __sqlml_rn FROM (query) AS q) AS q`` and the
    chunk number of a row, ``(__sqlml_rn - 1) / rows``, to GROUP BY."""
    numbered = exp.select(
        exp.Column(this=exp.Star(), table=exp.to_identifier("q")),
        exp.alias_(exp.Window(this=exp.RowNumber()), ROW_NUMBER, quoted=True),
    ).from_(exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("q"))))
    rn = exp.column(ROW_NUMBER, quoted=True)
    chunk = exp.Div(
        this=exp.paren(exp.Sub(this=rn, expression=exp.Literal.number(1))),
        expression=exp.Literal.number(rows),
        typed=True,
    )
    return numbered.subquery("q"), chunk


def batch_predict(
    version: ModelVersion,
    query: exp.Expr,
    names: list[str],
    threshold: float | None,
    fields: list[pa.Field] | None = None,
) -> exp.Expr:
    """ML.PREDICT through the PostgreSQL extension's batch scorer (runtime scoring).

    The input rows are numbered and grouped into chunks; per chunk, every input column is
    collected with array_agg (passed through) and every feature also as one binary array for
    ``sqlml.score_batch``, which returns the raw outputs output by output; ``unnest`` then turns
    the chunk back into rows, input columns and raw outputs side by side (all aggregates of a
    group see its rows in the same order). One PL/Python call per chunk, not per row.
    """
    n, out = f"{HIDDEN}n", f"{HIDDEN}raw"
    numbered, chunk = chunked(query, BATCH_ROWS)
    arrays = [_as_text(f) for f in fields] if fields else [None] * len(names)
    passed = [
        exp.alias_(
            exp.ArrayAgg(this=_passed(exp.column(name, table="q", quoted=True), array)),
            f"{HIDDEN}a{i}",
            quoted=True,
        )
        for i, (name, array) in enumerate(zip(names, arrays, strict=True))
    ]
    features = [
        exp.Anonymous(this="array_send", expressions=[exp.ArrayAgg(this=_null_free(c))])
        for c in version.inputs
    ]
    # VARIADIC ARRAY[...]: one argument however many features (a call takes at most 100)
    call = exp.Anonymous(
        this="sqlml.score_batch",
        expressions=[
            exp.Literal.string(version.sha256),
            exp.Variadic(this=exp.Array(expressions=features)),
        ],
    )
    batches = (
        exp.select(
            *passed,
            exp.alias_(exp.Count(this=exp.Star()), n, quoted=True),
            exp.alias_(call, out, quoted=True),
        )
        .from_(numbered)
        .group_by(chunk)
    )
    count = exp.column(n, table="b", quoted=True)
    slices = []
    for k in range(width(version)):
        start = exp.Add(
            this=exp.Mul(this=exp.Literal.number(k), expression=count.copy()),
            expression=exp.Literal.number(1),
        )
        stop = exp.Mul(this=exp.Literal.number(k + 1), expression=count.copy())
        slices.append(
            exp.Bracket(
                this=exp.column(out, table="b", quoted=True),
                expressions=[exp.Slice(this=start, expression=stop)],
                offset=1,
            )
        )
    hidden = [f"{HIDDEN}{k}" for k in range(len(slices))]
    unnest = exp.Unnest(
        expressions=[exp.column(f"{HIDDEN}a{i}", table="b", quoted=True) for i in range(len(names))]
        + slices,
        alias=exp.TableAlias(
            this=exp.to_identifier("u"),
            columns=[exp.to_identifier(c, quoted=True) for c in [*names, *hidden]],
        ),
    )
    raw: list[exp.Expr] = [exp.column(h, table="u", quoted=True) for h in hidden]
    select = (
        exp.select(
            *(
                _unpassed(exp.column(name, table="u", quoted=True), name, array)
                for name, array in zip(names, arrays, strict=True)
            ),
            *predicted_columns(version, raw, threshold, "postgres"),
        )
        .from_(batches.subquery("b"))
        .join(unnest, join_type="cross")
    )
    return select.subquery()


def _null_free(column: InputColumn) -> exp.Expr:
    """A feature for sqlml.score_batch's arrays: a numeric NULL as NaN, which the graph reads as
    missing just the same (the DuckDB runtime hands it NULLs as NaN too). An array with a NULL
    in it decodes one element at a time (pgtypes.decode_array); without, as one numpy view."""
    value = input_expression(column, "q", runtime=True, dialect="postgres")
    if column.kind != "numeric":
        return value
    nan = exp.cast(exp.Literal.string("NaN"), exp.DataType.build("DOUBLE"))
    return exp.func("coalesce", value, nan)


# An array column passes through batch_predict as its text: array_agg of arrays would make one
# two-dimensional array (and refuses NULL arrays and arrays of different lengths). The types by
# Arrow type, when the engine did not name the column's type (metadata pg_type).
_PG_ARRAYS = {
    pa.float64(): "DOUBLE PRECISION[]",
    pa.float32(): "REAL[]",
    pa.int16(): "SMALLINT[]",
    pa.int32(): "INTEGER[]",
    pa.int64(): "BIGINT[]",
    pa.bool_(): "BOOLEAN[]",
    pa.string(): "TEXT[]",
}


def _as_text(field: pa.Field) -> str | None:
    """The SQL type of a column that passes through batch_predict as text (None: as it is):
    arrays, and composites (unnest would spread their fields over columns of their own)."""
    named = (field.metadata or {}).get(b"pg_type")
    if named is not None:
        return str(named.decode())
    if not pa.types.is_list(field.type):
        return None
    return _PG_ARRAYS.get(field.type.value_type, "TEXT")


def _passed(ref: exp.Expr, array: str | None) -> exp.Expr:
    return ref if array is None else exp.cast(ref, exp.DataType.build("TEXT"))


def _unpassed(ref: exp.Expr, name: str, array: str | None) -> exp.Expr:
    if array is None:
        return ref
    sql_type = exp.DataType.build(array, dialect="postgres", udt=True)
    return exp.alias_(exp.cast(ref, sql_type), name, quoted=True)


def score_expression(version: ModelVersion, raw: list[exp.Expr]) -> exp.Expr:
    """ML.SCORE's one value (the kind's): the prediction (regression), the positive class's
    probability (binary), the predicted label (multiclass), the 1-based centroid id (k-means)."""
    return model_kind(version).score(version, raw)


# -- type checks ---------------------------------------------------------------------------------


def check_input(version: ModelVersion, schema: pa.Schema) -> None:
    """Every feature present (42703) with a type of the same family as in training (42804)."""
    names = {n.lower(): n for n in schema.names}
    for column in version.inputs:
        if column.path:
            _check_nested(version, column, schema)
            continue
        found = column.name if column.name in schema.names else names.get(column.name.lower())
        if found is None:
            raise errors.UndefinedColumn(
                f'column "{column.name}" of model {version.ref} is missing from the input'
            )
        arrow_type = schema.field(found).type
        if not _same_family(column.kind, arrow_type):
            raise errors.DatatypeMismatch(
                f'column "{column.name}" is {arrow_type} but model {version.ref} was trained on'
                f" a {column.kind} column"
            )


def _check_nested(version: ModelVersion, column: InputColumn, schema: pa.Schema) -> None:
    found = nested.find_source(column, schema.names)
    if found is None:
        raise errors.UndefinedColumn(
            f'column "{column.path[0]}" of model {version.ref} is missing from the input'
        )
    if not nested.arrow_type_ok(column, schema.field(found).type):
        what = "STRUCT field" if isinstance(column.path[1], str) else "ARRAY of numbers"
        if multihot.is_indicator(column.path):
            what = "ARRAY<STRING>"
        raise errors.DatatypeMismatch(
            f'column "{found}" is {schema.field(found).type} but model {version.ref} was trained'
            f" on a {what} there ({column.name}: {column.kind})"
        )


def _same_family(kind: str, arrow_type: pa.DataType) -> bool:
    # an all-NULL input column is a column of missing values, whatever the training type
    return bool(pa.types.is_null(arrow_type)) or kind_of(arrow_type) == kind


def choose_mode(
    version: ModelVersion, predict: Predict | None, default: str, dialect: str = "duckdb"
) -> str:
    mode = default
    if predict is not None and "scoring" in predict.settings:
        mode = str(predict.settings["scoring"]).lower()
    if mode not in MODES:
        raise errors.InvalidParameterValue(
            f"scoring must be one of {', '.join(MODES)}, not {mode!r}"
        )
    if mode == "auto":
        return "compiled" if compilable(version, dialect) else "runtime"
    if mode == "compiled" and not compilable(version, dialect):
        raise errors.FeatureNotSupported(f"model {version.ref} cannot be compiled to SQL")
    return mode


def kept_apart(level: exp.Select, number: int) -> exp.Select:
    """A stage of compiled scoring with a column that keeps it a plan node of its own on
    PostgreSQL.

    PostgreSQL pulls a plain subquery up into the query above, substituting its expressions
    at every use: a lifted common subexpression would be computed as often as before. A
    volatile function in the select list stops that (is_simple_subquery); clock_timestamp()
    is volatile, PARALLEL SAFE and costs a clock read. OFFSET 0, the usual fence, also stopped
    parallel plans: 1M rows x 10 features, binary logistic, ML.PREDICT took 2.0x a hand-written
    expression with it and 1.7x with this (benchmarks/RESULTS.md)."""
    call = exp.Anonymous(this="clock_timestamp", expressions=[])
    kept = exp.alias_(call, f"{HIDDEN}stage{number}", quoted=True)
    return level.select(kept, copy=False)
