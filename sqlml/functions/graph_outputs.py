"""The rows with outputs of the model's graph other than ML.PREDICT's, for the functions that
measure a row against the model (ML.DETECT_ANOMALIES, ML.RECONSTRUCTION_LOSS): the preprocessed
features, an autoencoder's reconstruction, PCA's components, k-means' distances to each
centroid. They are compiled to SQL (scoring.graph_stages) and computed in the engine's query
around the input, as ML.PREDICT's compiled scoring is, so the rows never leave the engine:

    SELECT <input columns>, <output values> AS __sqlml_o0, ...
    FROM (SELECT __sqlml_input.*, <lifted subexpressions> FROM (...) AS __sqlml_input)
        AS __sqlml_input

and the function writes its own columns over that subquery.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors, scoring
from sqlml.functions import Scored

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

INPUT = "__sqlml_input"
ROWS = "__sqlml_measured"
PREFIX = f"{scoring.HIDDEN}o"
_fences = itertools.count(1)


def rows_with(
    version: ModelVersion, scored: Scored, names: tuple[str, ...], dialect: str
) -> tuple[exp.Subquery, dict[str, list[exp.Column]]]:
    """The input rows with the graph outputs ``names`` as hidden columns: (the subquery,
    aliased ROWS, and per output the columns that hold its values)."""
    if scored.schema is not None:
        scoring.check_input(version, scored.schema)
    stages, outputs = scoring.graph_stages(version, names, INPUT, dialect)
    if scored.source is None:
        raise errors.InternalError("a function over rows was called without its rows")
    source = _aliased(scored.source.copy(), INPUT)
    for stage in stages:
        star = exp.Column(this=exp.Star(), table=exp.to_identifier(INPUT, quoted=True))
        shared = [exp.alias_(e, n, quoted=True) for n, e in stage]
        source = _aliased(fenced(exp.select(star, *shared).from_(source), dialect), INPUT)
    columns: dict[str, list[exp.Column]] = {}
    values: list[exp.Expr] = []
    for name in names:
        columns[name] = []
        for value in outputs[name]:
            hidden = f"{PREFIX}{len(values)}"
            values.append(exp.alias_(exp.cast(value, "DOUBLE"), hidden, quoted=True))
            columns[name].append(exp.column(hidden, table=ROWS, quoted=True))
    inputs = [exp.column(n, table=INPUT, quoted=True) for n in scored.names]
    query = fenced(exp.select(*inputs, *values).from_(source), dialect)
    return _aliased(query, ROWS), columns


def fenced(query: exp.Select, dialect: str) -> exp.Select:
    """``query`` kept a plan node of its own on PostgreSQL, which would otherwise pull the
    subquery up and substitute its expressions at every use in the levels above: each level
    reads every column of the one below several times, so the substituted SQL grows
    exponentially with the levels (a [6, 2, 6] autoencoder's reconstruction took PostgreSQL
    minutes and gigabytes to plan). A volatile function in the select list stops the pull-up
    (scoring.kept_apart has the measurements)."""
    if dialect != "postgres":
        return query
    call = exp.Anonymous(this="clock_timestamp", expressions=[])
    name = f"{scoring.HIDDEN}fence{next(_fences)}"  # (a level's star reads the one below's)
    return query.select(exp.alias_(call, name, quoted=True))


def input_columns(scored: Scored) -> list[exp.Expr]:
    """The input's columns, read from the ROWS subquery."""
    return [exp.column(n, table=ROWS, quoted=True) for n in scored.names]


def check_names(scored: Scored, outputs: list[str], function: str) -> None:
    """An input column with an output column's name is 42701 (two columns of one name)."""
    taken = {n.lower(): n for n in scored.names}
    for output in outputs:
        if output.lower() in taken:
            raise errors.DuplicateColumn(
                f'the input of ML.{function} has a column "{taken[output.lower()]}", the name'
                " of one of its output columns",
                hint="rename or leave out that input column",
            )


def _aliased(query: exp.Expr, alias: str) -> exp.Subquery:
    inner = query.this if isinstance(query, exp.Subquery) else query
    return exp.Subquery(
        this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


# -- a network compiled layer by layer -------------------------------------------------------------
#
# A network's later layers read every unit of the one before, so compiled as one expression the
# reconstruction of even a [4, 2, 4] autoencoder is over the compiler's budget (to_sql's
# MAX_TREE_NODES). Layer by layer it is small: the graph is cut at the input of each dense layer
# (a MatMul by a constant), each piece compiled on its own over the columns of the piece before,
# one SELECT level per piece.

Piece = tuple[str, list[Any], str, int, int]  # (start tensor, nodes, end tensor, widths in, out)


def layered(
    version: ModelVersion, scored: Scored, output: str, dialect: str
) -> tuple[exp.Subquery, list[exp.Column], list[exp.Column]]:
    """The rows with the preprocessed features and the graph output ``output`` (reached from
    the features through dense layers) as hidden columns: (the subquery aliased ROWS, the
    features' columns, the output's columns)."""
    import onnx

    model = onnx.load_from_string(version.onnx)
    pieces = _pieces(model, output)
    rows, outputs = rows_with(version, scored, ("features",), dialect)
    current = outputs["features"]
    for number, piece in enumerate(pieces):
        values = _compile_piece(model, piece, current, dialect)
        names = [f"{scoring.HIDDEN}l{number}_{j}" for j in range(len(values))]
        star = exp.Column(this=exp.Star(), table=exp.to_identifier(ROWS, quoted=True))
        level = exp.select(
            star, *(exp.alias_(v, n, quoted=True) for v, n in zip(values, names, strict=True))
        )
        rows = _aliased(fenced(level.from_(rows), dialect), ROWS)
        current = [exp.column(n, table=ROWS, quoted=True) for n in names]
    return rows, outputs["features"], current


def _pieces(model: Any, output: str) -> list[Piece]:
    """The dense layers from the features to ``output``, first to last."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    constants = {i.name: i for i in graph.initializer}
    features = producer["features"].input[0]
    end = producer[output].input[0] if producer[output].op_type == "Identity" else output
    pieces: list[Piece] = []
    while end != features:
        nodes: list[Any] = []
        tensor = end
        while True:
            node = producer.get(tensor)
            if node is None:
                raise errors.FeatureNotSupported(f"graph output {output} is not a dense network")
            nodes.insert(0, node)
            if node.op_type == "MatMul" and node.input[1] in constants:
                break
            tensor = node.input[0]
        weights = constants[nodes[0].input[1]].dims
        pieces.insert(0, (nodes[0].input[0], nodes, end, int(weights[0]), int(weights[1])))
        end = nodes[0].input[0]
    return pieces


def _compile_piece(
    model: Any, piece: Piece, columns: list[exp.Column], dialect: str
) -> list[exp.Expr]:
    from onnx import TensorProto, helper

    from sqlml.ml.to_sql import compile_onnx

    start, nodes, end, width_in, width_out = piece
    names = [f"x{j}" for j in range(width_in)]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        [helper.make_node("Concat", names, [start], axis=1), *nodes],
        "piece",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, [None, 1]) for n in names],
        [helper.make_tensor_value_info(end, TensorProto.DOUBLE, [None, width_out])],
        [i for i in model.graph.initializer if i.name in used],
    )
    piece_model = helper.make_model(graph, opset_imports=list(model.opset_import))
    inputs = {n: c.copy() for n, c in zip(names, columns, strict=True)}
    return compile_onnx(piece_model, inputs, dialect=dialect)[end]
