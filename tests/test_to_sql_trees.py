"""Tree ensembles compiled to SQL (sqlml.ml.to_sql_trees) against onnxruntime, on real DuckDB and
real PostgreSQL.

The graphs are sqlml's own XGBoost conversions (sqlml.ml.trees_onnx: the input rounded to float32
and back, then ai.onnx.ml TreeEnsemble v5) behind one [N, 1] input per feature, as a stored model
takes its columns, plus hand-built ensembles for the node modes and aggregates XGBoost does not
write. The scoring rows hold NULLs (onnxruntime gets NaN), rows that are all NULL, every split
value itself and the doubles around the float32 rounding boundary next to it (the compiled SQL
compares the raw double with that boundary instead of rounding, so those rows are where an error
would show). Values must match onnxruntime to 1e-12 relative, labels exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest
import xgboost as xgb
from conftest import client_module, unavailable
from graphs import per_column
from onnx import TensorProto, helper, numpy_helper
from sqlglot import exp

from sqlml.ml import to_sql_trees
from sqlml.ml.to_sql import NotCompilable, compile_onnx, is_compilable
from sqlml.ml.trees_onnx import xgboost_to_onnx

D = TensorProto.DOUBLE
FEATURES = 4
NAMES = [f"f{i}" for i in range(FEATURES)]
DIALECTS = ["duckdb", "postgres"]


# -- harness -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    """A psycopg2 connection to a fresh database of a throwaway PostgreSQL cluster."""
    import pgcluster

    try:
        context = pgcluster.server()
        server = context.__enter__()
    except pgcluster.Unavailable as e:
        unavailable(str(e))
    try:
        dsn = pgcluster.create_database(server, "sqlml_test_trees")
        con = client_module("psycopg2").connect(dsn)
        con.autocommit = True
        try:
            yield con
        finally:
            con.close()
            pgcluster.drop_database(server, "sqlml_test_trees")
    finally:
        context.__exit__(None, None, None)


def run_ort(model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {info.name: x[:, i : i + 1] for i, info in enumerate(model.graph.input)}
    names = [o.name for o in model.graph.output]
    return dict(zip(names, session.run(None, feeds), strict=True))


def compiled_select(model: onnx.ModelProto, dialect: str) -> tuple[str, dict[str, int]]:
    inputs = {info.name: exp.column(info.name, quoted=True) for info in model.graph.input}
    compiled = compile_onnx(model, inputs, dialect=dialect)
    columns = [
        e.as_(f"{name}:{i}", quoted=True) for name, es in compiled.items() for i, e in enumerate(es)
    ]
    query = exp.select(*columns).from_("scoring").order_by(exp.column("id", quoted=True))
    return query.sql(dialect), {name: len(es) for name, es in compiled.items()}


def rows_of(x: np.ndarray[Any, Any]) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row] for row in x]


def run_duckdb(model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> list[tuple[Any, ...]]:
    sql, _ = compiled_select(model, "duckdb")
    columns = {"id": pa.array(range(len(x)), pa.int64())}
    for i, info in enumerate(model.graph.input):
        columns[info.name] = pa.array([r[i] for r in rows_of(x)], pa.float64())
    with duckdb.connect() as con:
        con.register("scoring", pa.table(columns))
        return con.sql(sql).fetchall()


def run_postgres(pg: Any, model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> list[tuple[Any, ...]]:
    sql, _ = compiled_select(model, "postgres")
    names = [info.name for info in model.graph.input]
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS scoring")
        columns = ", ".join(f'"{n}" double precision' for n in names)
        cur.execute(f"CREATE TABLE scoring (id bigint, {columns})")
        marks = ", ".join(["%s"] * (len(names) + 1))
        cur.executemany(
            f"INSERT INTO scoring VALUES ({marks})",
            [(i, *row) for i, row in enumerate(rows_of(x))],
        )
        cur.execute(sql)
        return list(cur.fetchall())


def outputs(
    model: onnx.ModelProto, rows: Sequence[tuple[Any, ...]], dialect: str
) -> dict[str, np.ndarray[Any, Any]]:
    _, widths = compiled_select(model, dialect)
    shapes = {o.name: len(o.type.tensor_type.shape.dim) for o in model.graph.output}
    table = np.asarray(rows, dtype=object)
    found, start = {}, 0
    for name, width in widths.items():
        part = table[:, start : start + width]
        start += width
        found[name] = part[:, 0] if shapes[name] == 1 else part
    return found


def assert_matches_onnxruntime(
    model: onnx.ModelProto, x: np.ndarray[Any, Any], dialect: str, pg: Any = None
) -> None:
    rows = run_duckdb(model, x) if dialect == "duckdb" else run_postgres(pg, model, x)
    got = outputs(model, rows, dialect)
    want = run_ort(model, x)
    assert set(got) == set(want)
    for name, expected in want.items():
        actual = got[name].reshape(expected.shape)
        if expected.dtype.kind in "iub":
            assert actual.astype(np.int64).tolist() == expected.astype(np.int64).tolist(), name
        else:
            assert not any(v is None for v in actual.ravel()), f"{name}: a NULL"
            np.testing.assert_allclose(
                actual.astype(np.float64), expected, rtol=1e-12, atol=0, err_msg=name
            )


# -- data --------------------------------------------------------------------------------------


def training(seed: int = 3) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1500, FEATURES))
    y = 5 * x[:, 0] + 3 * np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3] + rng.normal(size=len(x)) * 0.3
    x[rng.random(x.shape) < 0.15] = np.nan
    return x, y


def splits_of(model: onnx.ModelProto) -> list[tuple[int, float]]:
    """(feature, split) of every interior node of the graph's TreeEnsemble."""
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsemble")
    attrs = {a.name: a for a in node.attribute}
    features = list(attrs["nodes_featureids"].ints)
    splits = numpy_helper.to_array(attrs["nodes_splits"].t).astype(np.float64)
    return list(zip(features, splits.tolist(), strict=True))


def scoring_rows(model: onnx.ModelProto, seed: int = 11) -> np.ndarray[Any, Any]:
    """Random rows with NULLs, all-NULL rows, and for many splits t of feature j a row with
    x_j = t, the float32 neighbours of t, the midpoints between them (where float32 rounding
    flips, ties to even) and the doubles just beside those midpoints."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, FEATURES)) * 1.5
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:5] = np.nan
    edges = []
    for feature, split in splits_of(model)[:120]:
        t = np.float32(split)
        below = np.nextafter(t, np.float32(-np.inf))
        above = np.nextafter(t, np.float32(np.inf))
        lower = (float(below) + float(t)) / 2
        upper = (float(t) + float(above)) / 2
        for value in (
            float(t),
            float(below),
            float(above),
            lower,
            upper,
            np.nextafter(lower, -np.inf),
            np.nextafter(lower, np.inf),
            np.nextafter(upper, -np.inf),
            np.nextafter(upper, np.inf),
        ):
            row = rng.normal(size=FEATURES)
            row[feature] = value
            edges.append(row)
    return np.vstack([x, np.asarray(edges)]) if edges else x


# -- XGBoost graphs ----------------------------------------------------------------------------


def xgboost_graph(kind: str) -> onnx.ModelProto:
    x, y = training()
    small = {"n_estimators": 12, "max_depth": 4, "random_state": 0}
    if kind == "regressor":
        fitted: Any = xgb.XGBRegressor(**small).fit(x, y)
    elif kind == "binary":
        fitted = xgb.XGBClassifier(**small).fit(x, (y > 0).astype(int))
    elif kind == "multiclass":
        fitted = xgb.XGBClassifier(**small).fit(x, np.digitize(y, [-2.0, 2.0]))
    elif kind == "dart":
        fitted = xgb.XGBRegressor(booster="dart", rate_drop=0.3, **small).fit(x, y)
    elif kind == "forest":
        fitted = xgb.XGBRFRegressor(n_estimators=20, max_depth=5, random_state=0).fit(x, y)
    else:
        raise AssertionError(kind)
    return per_column(xgboost_to_onnx(fitted), NAMES)


KINDS = ["regressor", "binary", "multiclass", "dart", "forest"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_xgboost_graphs_match_onnxruntime(kind: str, dialect: str, request: Any) -> None:
    model = xgboost_graph(kind)
    size = to_sql_trees.tree_nodes(next(n for n in model.graph.node if n.op_type == "TreeEnsemble"))
    assert is_compilable(model, dialect) == (size <= to_sql_trees.MAX_NODES[dialect])
    pg = request.getfixturevalue("pg") if dialect == "postgres" else None
    assert_matches_onnxruntime(model, scoring_rows(model), dialect, pg)


def test_compiled_trees_skip_the_float32_rounding() -> None:
    """The split tests read the raw column against the rounding boundary: no CAST AS REAL."""
    model = xgboost_graph("regressor")
    sql, _ = compiled_select(model, "postgres")
    assert "REAL" not in sql.upper()
    assert "FLOAT)" not in sql.upper()
    assert sql.count("CASE WHEN") >= 12


# -- hand-built ensembles ----------------------------------------------------------------------

# two trees over features 0 and 1; target ids chosen so each target misses some leaves
MODES = {"LEQ": 0, "LT": 1, "GTE": 2, "GT": 3, "EQ": 4, "NEQ": 5}
MEMBER = 6


def hand_ensemble(
    mode: int, missing_true: int, aggregate: int, n_targets: int, round32: bool
) -> onnx.ModelProto:
    """Tree 0: node0 (f0 <mode> 0.5) -> node1 (f1 <mode> -1.25) | leaf 2; node1 -> leaf0 | leaf1.
    Tree 1: node2 (f1 <mode> 2.0) -> leaf 3 | leaf 4. Leaves go to targets 0,1,0,1,0 (mod n)."""
    splits = [0.5, -1.25, 2.0]
    members = [1.0, 3.0, math.nan, -5.0, 0.0, math.nan, 2.0, math.nan]  # integers (onnxruntime)
    weights = [1.5, -2.25, 0.75, 10.0, -0.125]
    attrs: dict[str, Any] = {
        "n_targets": n_targets,
        "aggregate_function": aggregate,
        "post_transform": 0,
        "tree_roots": [0, 2],
        "nodes_featureids": [0, 1, 1],
        "nodes_splits": numpy_helper.from_array(np.asarray(splits), "s"),
        "nodes_modes": numpy_helper.from_array(np.asarray([mode] * 3, dtype=np.uint8), "m"),
        "nodes_truenodeids": [1, 0, 3],
        "nodes_trueleafs": [0, 1, 1],
        "nodes_falsenodeids": [2, 1, 4],
        "nodes_falseleafs": [1, 1, 1],
        "nodes_missing_value_tracks_true": [missing_true, 0, missing_true],
        "leaf_targetids": [i % n_targets for i in (0, 1, 0, 1, 0)],
        "leaf_weights": numpy_helper.from_array(np.asarray(weights), "w"),
    }
    if mode == MEMBER:
        attrs["membership_values"] = numpy_helper.from_array(np.asarray(members), "mv")
    nodes = [helper.make_node("Concat", ["f0", "f1"], ["x"], axis=1)]
    source = "x"
    if round32:
        nodes += [
            helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["x32"], ["x64"], to=D),
        ]
        source = "x64"
    nodes.append(helper.make_node("TreeEnsemble", [source], ["y"], domain="ai.onnx.ml", **attrs))
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info(n, D, [None, 1]) for n in ("f0", "f1")],
        [helper.make_tensor_value_info("y", D, [None, n_targets])],
    )
    opsets = [helper.make_opsetid("", 19), helper.make_opsetid("ai.onnx.ml", 5)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


def hand_rows() -> np.ndarray[Any, Any]:
    values = [math.nan, 0.5, -1.25, 2.0, 3.0, 1.0, 0.0, -5.0, 0.49999999, 0.5000001, 2.0000001]
    values += [float(np.nextafter(np.float32(0.5), np.float32(1))), 1e-50, -1e300, math.inf]
    values += [(0.5 + float(np.nextafter(np.float32(0.5), np.float32(1)))) / 2]
    return np.asarray([[a, b] for a in values for b in values], dtype=np.float64)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("missing_true", [0, 1])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_node_mode_matches_onnxruntime(
    mode: str, missing_true: int, dialect: str, request: Any
) -> None:
    pg = request.getfixturevalue("pg") if dialect == "postgres" else None
    for round32 in (False, True):
        model = hand_ensemble(MODES[mode], missing_true, 1, 2, round32)
        assert_matches_onnxruntime(model, hand_rows(), dialect, pg)


@pytest.mark.parametrize("aggregate", ["AVERAGE", "SUM", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets", [1, 2, 3])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_aggregates_match_onnxruntime(
    aggregate: str, n_targets: int, dialect: str, request: Any
) -> None:
    """Three targets: target 2 gets no leaf at all; with two, each tree misses some targets."""
    code = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}[aggregate]
    pg = request.getfixturevalue("pg") if dialect == "postgres" else None
    model = hand_ensemble(MODES["LEQ"], 1, code, n_targets, True)
    assert_matches_onnxruntime(model, hand_rows(), dialect, pg)


def test_set_membership_is_not_compiled() -> None:
    """onnxruntime tests BRANCH_MEMBER on the value cast to an integer (0.5 is a member of {0}),
    the spec on the value: such a graph scores with onnxruntime."""
    model = hand_ensemble(MEMBER, 0, 1, 2, False)
    assert run_ort(model, np.asarray([[1.0, 0.5]]))["y"][0, 0] == 1.5 - 0.125  # true, true
    assert not is_compilable(model)
    with pytest.raises(NotCompilable, match="BRANCH_MEMBER") as caught:
        compile_onnx(model, {n: exp.column(n) for n in ("f0", "f1")})
    assert caught.value.sqlstate == "0A000"


def test_post_transforms_other_than_none_are_not_compiled() -> None:
    model = hand_ensemble(MODES["LT"], 0, 1, 2, False)
    node = model.graph.node[-1]
    next(a for a in node.attribute if a.name == "post_transform").i = 2  # LOGISTIC
    with pytest.raises(NotCompilable, match="post_transform") as caught:
        compile_onnx(model, {n: exp.column(n) for n in ("f0", "f1")})
    assert caught.value.sqlstate == "0A000"


def chain(depth: int) -> onnx.ModelProto:
    """One tree whose interior nodes nest on their true sides only: CASE inside THEN, depth
    levels deep (a false side would join its parent's CASE as one more WHEN)."""
    n = depth
    attrs: dict[str, Any] = {
        "n_targets": 1,
        "aggregate_function": 1,
        "post_transform": 0,
        "tree_roots": [0],
        "nodes_featureids": [i % 2 for i in range(n)],
        "nodes_splits": numpy_helper.from_array(np.asarray([float(n - i) for i in range(n)]), "s"),
        "nodes_modes": numpy_helper.from_array(np.zeros(n, dtype=np.uint8), "m"),
        "nodes_truenodeids": [i + 1 if i + 1 < n else n for i in range(n)],
        "nodes_trueleafs": [0 if i + 1 < n else 1 for i in range(n)],
        "nodes_falsenodeids": list(range(n)),
        "nodes_falseleafs": [1] * n,
        "nodes_missing_value_tracks_true": [i % 2 for i in range(n)],
        "leaf_targetids": [0] * (n + 1),
        "leaf_weights": numpy_helper.from_array(np.arange(n + 1, dtype=np.float64), "w"),
    }
    nodes = [
        helper.make_node("Concat", ["f0", "f1"], ["x"], axis=1),
        helper.make_node("TreeEnsemble", ["x"], ["y"], domain="ai.onnx.ml", **attrs),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info(c, D, [None, 1]) for c in ("f0", "f1")],
        [helper.make_tensor_value_info("y", D, [None, 1])],
    )
    opsets = [helper.make_opsetid("", 19), helper.make_opsetid("ai.onnx.ml", 5)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_tree_at_the_depth_limit_runs_and_a_deeper_one_is_not_compiled(
    dialect: str, request: Any
) -> None:
    pg = request.getfixturevalue("pg") if dialect == "postgres" else None
    x = np.random.default_rng(0).uniform(-5, 70, size=(300, 2))
    x[::7, 0] = np.nan
    deepest = chain(to_sql_trees.MAX_DEPTH)
    assert is_compilable(deepest, dialect)
    assert_matches_onnxruntime(deepest, x, dialect, pg)
    deeper = chain(to_sql_trees.MAX_DEPTH + 1)
    assert not is_compilable(deeper, dialect)
    with pytest.raises(NotCompilable, match="deeper"):
        compile_onnx(deeper, {n: exp.column(n) for n in ("f0", "f1")}, dialect=dialect)


# -- the size threshold ------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_ensemble_above_the_engines_limit_is_not_compilable(dialect: str) -> None:
    """Above MAX_NODES the ensemble scores with onnxruntime (the runtime path); at it, compiled."""
    model = xgboost_graph("regressor")
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsemble")
    size = to_sql_trees.tree_nodes(node)
    limits = dict(to_sql_trees.MAX_NODES)
    try:
        to_sql_trees.MAX_NODES[dialect] = size
        assert is_compilable(model, dialect)
        to_sql_trees.MAX_NODES[dialect] = size - 1
        assert not is_compilable(model, dialect)
        other = next(d for d in DIALECTS if d != dialect)
        to_sql_trees.MAX_NODES[other] = size
        assert is_compilable(model, other)  # each engine's own limit
        # compile_onnx still compiles it: the limit is about speed, not meaning
        compile_onnx(model, {n: exp.column(n) for n in NAMES}, dialect=dialect)
    finally:
        to_sql_trees.MAX_NODES.clear()
        to_sql_trees.MAX_NODES.update(limits)


def test_the_measured_limits_on_depth_6_ensembles() -> None:
    """What the measurements decided (RESULTS.md "Tree scoring"): one tree of depth 6 compiles
    on both engines, 100 (the issue's benchmark shape) score with onnxruntime on both, and 10
    compile on PostgreSQL only."""
    x, y = training()
    expected = {1: (True, True), 10: (False, True), 100: (False, False)}
    for trees, (on_duckdb, on_postgres) in expected.items():
        fitted = xgb.XGBRegressor(n_estimators=trees, max_depth=6, random_state=0).fit(x, y)
        model = per_column(xgboost_to_onnx(fitted), NAMES)
        assert is_compilable(model, "duckdb") == on_duckdb, trees
        assert is_compilable(model, "postgres") == on_postgres, trees


def scoring_version(model: onnx.ModelProto) -> Any:
    from sqlml.store import InputColumn, ModelVersion

    data = model.SerializeToString()
    return ModelVersion(
        schema="main",
        name="m",
        version=1,
        model_type="linear_reg",
        onnx=data,
        sha256=f"test-trees-{len(data)}-{hash(data)}",
        inputs=[InputColumn(name, "numeric") for name in NAMES],
        label=None,
        options={},
        metrics={},
        training_info={},
        feature_info=[],
    )


def test_scoring_asks_the_engines_limit() -> None:
    """scoring.compilable(version, dialect) and choose_mode: runtime above the limit."""
    from sqlml import scoring

    model = xgboost_graph("regressor")
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsemble")
    size = to_sql_trees.tree_nodes(node)
    limits = dict(to_sql_trees.MAX_NODES)
    try:
        to_sql_trees.MAX_NODES.update({"duckdb": size, "postgres": size - 1})
        version = scoring_version(model)
        assert scoring.compilable(version, "duckdb")
        assert not scoring.compilable(version, "postgres")
        assert scoring.choose_mode(version, None, "auto", "duckdb") == "compiled"
        assert scoring.choose_mode(version, None, "auto", "postgres") == "runtime"
    finally:
        to_sql_trees.MAX_NODES.clear()
        to_sql_trees.MAX_NODES.update(limits)


# -- end to end: ML.PREDICT over a stored tree model -------------------------------------------


def store_tree_model(con: Any, model: onnx.ModelProto) -> None:
    """The graph as the current version of model m (a regressor over NAMES), as CREATE MODEL
    stores one (the CREATE MODEL options for trees are another point of issue 13)."""
    from sqlml.grammar.statements import ModelRef
    from sqlml.ml.train import TrainResult
    from sqlml.store import InputColumn

    result = TrainResult(
        onnx=model.SerializeToString(),
        model_type="linear_reg",
        kind="regressor",
        inputs=[InputColumn(name, "numeric") for name in NAMES],
        label="y",
        label_type="double",
        classes=None,
        options={},
        metrics={},
        training_info={},
        feature_info=[],
        row_count=0,
        data_hash="",
    )
    con.session.store.save(
        ModelRef(None, "m"), result, query_sql=None, transform_sql=None, replace=True
    )


def test_ml_predict_scores_trees_compiled_and_runtime_alike(database: str) -> None:
    """Through ML.PREDICT on each engine: compiled (hoisted stages and all) equals the runtime
    path row for row; above the engine's limit 'auto' scores at runtime and 'compiled' is 0A000."""
    import sqlml
    from sqlml import errors

    model, bigger = xgboost_graph("dart"), xgboost_graph("regressor")
    x = scoring_rows(model)[:400]
    con = sqlml.connect(database, autocommit=True)
    try:
        columns = ", ".join(f"{n} double precision" for n in NAMES)
        con.execute(f"CREATE TABLE t (id bigint, {columns})")
        marks = ", ".join(["?"] * (FEATURES + 1))  # sqlml's paramstyle: qmark
        con.cursor().executemany(
            f"INSERT INTO t VALUES ({marks})", [(i, *row) for i, row in enumerate(rows_of(x))]
        )

        def predict(mode: str) -> list[Any]:
            sql = (
                "SELECT id, predicted_y FROM ML.PREDICT(MODEL m, TABLE t,"
                f" STRUCT('{mode}' AS scoring)) ORDER BY id"
            )
            rows = con.execute(sql).fetchall()
            assert [r[0] for r in rows] == list(range(len(x)))
            return [r[1] for r in rows]

        store_tree_model(con, model)
        np.testing.assert_allclose(predict("compiled"), predict("runtime"), rtol=1e-12, atol=0)
        engine = "postgres" if database.startswith("postgres") else "duckdb"
        node = next(n for n in bigger.graph.node if n.op_type == "TreeEnsemble")
        limits = dict(to_sql_trees.MAX_NODES)
        try:
            to_sql_trees.MAX_NODES[engine] = to_sql_trees.tree_nodes(node) - 1
            store_tree_model(con, bigger)
            with pytest.raises(errors.NotSupportedError) as caught:
                predict("compiled")
            assert caught.value.sqlstate == "0A000"
            np.testing.assert_allclose(predict("auto"), predict("runtime"), rtol=1e-12, atol=0)
        finally:
            to_sql_trees.MAX_NODES.clear()
            to_sql_trees.MAX_NODES.update(limits)
    finally:
        con.close()
