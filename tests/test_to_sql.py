"""The ONNX-to-SQL compiler against onnxruntime, scikit-learn and a real DuckDB.

Each case fits a scikit-learn pipeline (or builds a small ONNX graph by hand), converts it with
skl2onnx, compiles it to SQL, runs the SQL in an in-memory DuckDB over a table of scoring data, and
compares the result with onnxruntime (or onnx's reference evaluator where onnxruntime has no kernel)
and with scikit-learn. SQL NULL plays NaN: onnxruntime gets NaN where the table holds NULL.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sqlglot import exp

from sqlml import errors
from sqlml.ml.to_sql import NotCompilable, compile_onnx, double, is_compilable

SENTINEL = "\u2400"  # what the caller puts in place of a NULL category
OPSETS = {"": 17, "ai.onnx.ml": 3}
D, F, I64, S, B = (
    TensorProto.DOUBLE,
    TensorProto.FLOAT,
    TensorProto.INT64,
    TensorProto.STRING,
    TensorProto.BOOL,
)


# -- harness -----------------------------------------------------------------------------------


def arrow_table(data: Mapping[str, Sequence[Any]]) -> pa.Table:
    """The scoring table: None is NULL, float('nan') stays NaN."""
    columns = {}
    for name, values in data.items():
        kind = pa.string() if any(isinstance(v, str) for v in values) else pa.float64()
        columns[name] = pa.array(values, type=kind)
    return pa.table(columns)


def feeds(model: onnx.ModelProto, data: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """The same data as onnxruntime inputs of shape [N, 1]: NULL becomes NaN."""
    out = {}
    for info in model.graph.input:
        values = data[info.name]
        if info.type.tensor_type.elem_type == S:
            out[info.name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            floats = [math.nan if v is None else v for v in values]
            out[info.name] = np.array(floats, dtype=np.float64).reshape(-1, 1)
    return out


def run_sql(
    model: onnx.ModelProto, data: Mapping[str, Sequence[Any]], dialect: str = "duckdb"
) -> dict[str, np.ndarray]:
    """Compile the model, run the SQL in DuckDB over the data, return each output as an array."""
    inputs = {info.name: exp.column(info.name, quoted=True) for info in model.graph.input}
    compiled = compile_onnx(model, inputs, dialect=dialect)
    columns = [
        e.as_(f"{name}:{i}", quoted=True) for name, es in compiled.items() for i, e in enumerate(es)
    ]
    sql = exp.select(*columns).from_("scoring").sql(dialect)
    with duckdb.connect() as con:
        con.register("scoring", arrow_table(data))
        result = con.sql(sql).to_arrow_table()
    shapes = {o.name: len(o.type.tensor_type.shape.dim) for o in model.graph.output}
    out = {}
    for name, es in compiled.items():
        parts = [
            np.asarray(result.column(f"{name}:{i}").to_pylist(), dtype=object)
            for i in range(len(es))
        ]
        stacked = np.stack(parts, axis=1)
        out[name] = stacked[:, 0] if shapes[name] == 1 else stacked
    return out


def as_float(values: np.ndarray) -> np.ndarray:
    return np.array(
        [math.nan if v is None else v for v in values.ravel()], dtype=np.float64
    ).reshape(values.shape)


def run_ort(model: onnx.ModelProto, data: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    return dict(zip(names, session.run(None, feeds(model, data)), strict=True))


def run_reference(
    model: onnx.ModelProto, data: Mapping[str, Sequence[Any]]
) -> dict[str, np.ndarray]:
    names = [o.name for o in model.graph.output]
    results = ReferenceEvaluator(model).run(None, feeds(model, data))
    return dict(zip(names, results, strict=True))


def assert_same(
    sql: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    rtol: float = 1e-9,
    atol: float = 1e-9,
) -> None:
    """Doubles to rtol/atol (NULL = NaN); strings and integers exactly, NULL where a row is NULL."""
    assert set(sql) == set(expected)
    for name, want in expected.items():
        got = sql[name]
        assert got.shape == want.reshape(got.shape).shape, name
        want = want.reshape(got.shape)
        if want.dtype.kind in "OUSib":
            assert got.tolist() == want.tolist(), name
        else:
            np.testing.assert_allclose(
                as_float(got), want.astype(np.float64), rtol, atol, err_msg=name
            )


def graph_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[tuple[str, int]],
    outputs: Sequence[tuple[str, int, Sequence[int | None]]],
    initializers: Sequence[onnx.TensorProto] = (),
    opsets: Mapping[str, int] = OPSETS,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "hand_built",
        [helper.make_tensor_value_info(name, t, [None, 1]) for name, t in inputs],
        [helper.make_tensor_value_info(name, t, list(shape)) for name, t, shape in outputs],
        list(initializers),
    )
    imports = [helper.make_opsetid(domain, version) for domain, version in opsets.items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=8)


def const(name: str, values: Any, dtype: int = D) -> onnx.TensorProto:
    array = np.asarray(values)
    return helper.make_tensor(name, dtype, array.shape, array.ravel().tolist())


# -- scikit-learn pipelines --------------------------------------------------------------------

rng = np.random.default_rng(7)
N_TRAIN = 80
TRAIN = pd.DataFrame(
    {
        "age": rng.normal(40, 12, N_TRAIN),
        "income": rng.lognormal(3, 0.5, N_TRAIN),
        "plan": rng.choice(["basic", "plus", "pro"], N_TRAIN),
        "region": rng.choice(["north", "south"], N_TRAIN),
        "rooms": rng.choice([1.0, 2.0, 3.0, 4.0], N_TRAIN),
        "score": rng.normal(0, 1, N_TRAIN),
    }
)
NS = ["north", "south"]
SCORE: dict[str, list[Any]] = {
    "age": [25.0, 61.5, 40.0, 33.3, 18.0, 90.0, 47.2, 52.0, 29.9, None],
    "income": [10.0, 55.5, 20.1, 3.2, 31.0, 15.0, 22.2, 80.0, 12.5, 19.0],
    "plan": ["basic", "pro", "plus", "gold", SENTINEL, "basic", "pro", "plus", "basic", "pro"],
    "region": [*NS, "south", "north", "east", "north", SENTINEL, "south", *NS],
    "rooms": [1.0, 2.0, 3.0, 4.0, 5.0, 2.0, 1.0, 3.0, 2.0, 4.0],
    "score": [0.5, -1.2, 0.0, 2.2, -0.3, 1.1, -2.0, 0.7, 0.1, 0.3],
}
NULL_ROWS = [9]  # rows holding a NULL numeric input
KINDS = {"plan": "string", "region": "string"}
# The scoring data holds unseen categories on purpose; scikit-learn warns that they encode as zeros.
UNSEEN_CATEGORIES = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")


def initial_types(columns: Sequence[str]) -> list[tuple[str, Any]]:
    return [
        (c, StringTensorType([None, 1]) if KINDS.get(c) else DoubleTensorType([None, 1]))
        for c in columns
    ]


def preprocessing() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("std", StandardScaler(), ["age"]),
            ("minmax", MinMaxScaler(), ["income"]),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("ifbin", OneHotEncoder(handle_unknown="ignore", drop="if_binary"), ["region"]),
            ("first", OneHotEncoder(handle_unknown="ignore", drop="first"), ["rooms"]),
            ("keep", "passthrough", ["score"]),
        ]
    )


def convert(pipeline: Pipeline, columns: Sequence[str]) -> onnx.ModelProto:
    options = {id(pipeline): {"zipmap": False}} if hasattr(pipeline, "predict_proba") else None
    return convert_sklearn(
        pipeline, initial_types=initial_types(columns), target_opset=OPSETS, options=options
    )


def score_frame(rows: Sequence[int] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in SCORE.items()})
    for column in frame:
        if not KINDS.get(column):
            frame[column] = frame[column].astype(np.float64)
    return frame if rows is None else frame.iloc[list(rows)]


COLUMNS = list(SCORE)
FULL_ROWS = [i for i in range(len(SCORE["age"])) if i not in NULL_ROWS]
TARGET = TRAIN["age"] * 0.3 - TRAIN["income"] * 0.1 + TRAIN["score"] + (TRAIN["plan"] == "pro")
CLASS3 = np.digitize(TARGET, np.quantile(TARGET, [0.33, 0.66]))
CLASS2 = np.where(TARGET.to_numpy() > TARGET.median(), 1, 0)


@UNSEEN_CATEGORIES
def test_preprocessing_alone_matches_transform() -> None:
    prep = preprocessing().fit(TRAIN)
    model = convert(Pipeline([("prep", prep)]), COLUMNS)
    sql = run_sql(model, SCORE)
    (name,) = sql
    assert_same(sql, run_ort(model, SCORE))
    expected = prep.transform(score_frame())
    np.testing.assert_allclose(as_float(sql[name]), expected.astype(np.float64), 1e-9, 1e-9)


@pytest.mark.parametrize(
    "estimator",
    [
        LinearRegression(),
        Ridge(alpha=0.5),
        Lasso(alpha=0.01),
        ElasticNet(alpha=0.01, l1_ratio=0.3),
        SGDRegressor(random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
@UNSEEN_CATEGORIES
def test_regressors(estimator: Any) -> None:
    pipeline = Pipeline([("prep", preprocessing()), ("model", estimator)]).fit(TRAIN, TARGET)
    model = convert(pipeline, COLUMNS)
    sql = run_sql(model, SCORE)
    assert_same(sql, run_ort(model, SCORE))
    expected = pipeline.predict(score_frame(FULL_ROWS))
    np.testing.assert_allclose(as_float(sql["variable"])[FULL_ROWS, 0], expected, 1e-9, 1e-9)
    assert sql["variable"][NULL_ROWS[0], 0] is None


@pytest.mark.parametrize(
    ("estimator", "target"),
    [
        (LogisticRegression(max_iter=1000), CLASS2),
        (LogisticRegression(max_iter=1000), CLASS3),
        (LogisticRegression(max_iter=1000, class_weight="balanced"), CLASS3),
        (LogisticRegression(max_iter=1000, class_weight={0: 1.0, 1: 3.0}), CLASS2),
        (SGDClassifier(loss="log_loss", random_state=0, max_iter=5000, tol=1e-6), CLASS2),
        (SGDClassifier(loss="log_loss", random_state=0, max_iter=5000, tol=1e-6), CLASS3),
    ],
    ids=[
        "logistic-binary",
        "logistic-3",
        "logistic-balanced",
        "logistic-weights",
        "sgd-2",
        "sgd-3",
    ],
)
@UNSEEN_CATEGORIES
def test_classifiers(estimator: Any, target: np.ndarray) -> None:
    pipeline = Pipeline([("prep", preprocessing()), ("model", estimator)]).fit(TRAIN, target)
    model = convert(pipeline, COLUMNS)
    sql, onnx_out = run_sql(model, SCORE), run_ort(model, SCORE)
    np.testing.assert_allclose(
        as_float(sql["probabilities"]), onnx_out["probabilities"], 1e-9, 1e-9
    )
    assert sql["label"][FULL_ROWS].tolist() == onnx_out["label"][FULL_ROWS].tolist()
    assert [sql["label"][i] for i in NULL_ROWS] == [None]  # a NULL feature: a NULL prediction
    frame = score_frame(FULL_ROWS)
    assert sql["label"][FULL_ROWS].tolist() == pipeline.predict(frame).tolist()
    expected = pipeline.predict_proba(frame)
    np.testing.assert_allclose(as_float(sql["probabilities"])[FULL_ROWS], expected, 1e-9, 1e-9)


def test_kmeans_label_and_distances() -> None:
    columns = ["age", "income", "score"]
    pipeline = Pipeline(
        [
            ("scale", ColumnTransformer([("s", StandardScaler(), columns)])),
            ("model", KMeans(n_clusters=4, n_init=3, random_state=0)),
        ]
    )
    pipeline.fit(TRAIN[columns])
    model = convert(pipeline, columns)
    data = {c: SCORE[c] for c in columns}
    sql, onnx_out = run_sql(model, data), run_ort(model, data)
    assert_same({"scores": sql["scores"]}, {"scores": onnx_out["scores"]})
    assert sql["label"][FULL_ROWS].tolist() == onnx_out["label"][FULL_ROWS].tolist()
    frame = score_frame(FULL_ROWS)[columns]
    assert sql["label"][FULL_ROWS].tolist() == pipeline.predict(frame).tolist()
    np.testing.assert_allclose(
        as_float(sql["scores"])[FULL_ROWS], pipeline.transform(frame), 1e-9, 1e-9
    )


# SimpleImputer: skl2onnx writes ai.onnx.ml Imputer with float32 statistics, which onnxruntime
# cannot run on double inputs; onnx's reference evaluator is the ONNX oracle here. The training values
# are multiples of 1/4, 16 of them per column, so that mean, median and mode are exact in float32.
QUARTERS_A = [1, 6, None, 8, 8, 15, -4, 2, None, 4, 8, 16, 3, -2, 5, 12, 10, 0]
QUARTERS_B = [4, None, 8, 12, 8, 0, 20, 8, 4, 16, 8, None, 12, 24, 8, 4, 0, 2]
IMPUTE_TRAIN = pd.DataFrame(
    {
        "a": [np.nan if q is None else q / 4 for q in QUARTERS_A],
        "b": [np.nan if q is None else q / 4 for q in QUARTERS_B],
    }
)
IMPUTE_SCORE: dict[str, list[Any]] = {
    "a": [None, math.nan, 0.0, 1.75, -3.0, 10.0],
    "b": [2.0, None, math.nan, 1.0, None, 7.5],
}


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
def test_imputer_pipelines(strategy: str) -> None:
    numeric = Pipeline([("impute", SimpleImputer(strategy=strategy)), ("scale", StandardScaler())])
    prep = ColumnTransformer([("num", numeric, ["a", "b"])])
    target = IMPUTE_TRAIN["a"].fillna(0) * 2 - IMPUTE_TRAIN["b"].fillna(1)
    pipeline = Pipeline([("prep", prep), ("model", Ridge(alpha=0.1))]).fit(IMPUTE_TRAIN, target)
    model = convert(pipeline, ["a", "b"])
    sql = run_sql(model, IMPUTE_SCORE)
    assert_same(sql, run_reference(model, IMPUTE_SCORE))
    frame = pd.DataFrame(
        {k: [math.nan if v is None else v for v in vs] for k, vs in IMPUTE_SCORE.items()}
    )
    np.testing.assert_allclose(as_float(sql["variable"])[:, 0], pipeline.predict(frame), 1e-9, 1e-9)


def test_extreme_scores_keep_probabilities_finite() -> None:
    # |z| ~ 1e3: exp(1000) is inf in DuckDB; the compiled sigmoid/softmax must still give 0 and 1
    train = pd.DataFrame({"x": np.linspace(-1, 1, 40), "w": np.tile([0.0, 1.0], 20)})
    for target in (train["x"] > 0, np.digitize(train["x"], [-0.3, 0.3])):
        pipeline = Pipeline(
            [
                ("prep", ColumnTransformer([("p", "passthrough", ["x", "w"])])),
                ("model", LogisticRegression(C=1e4, max_iter=5000)),
            ]
        )
        pipeline.fit(train, target)
        model = convert(pipeline, ["x", "w"])
        data = {"x": [-1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3, 1e5], "w": [0.0] * 8}
        sql, onnx_out = run_sql(model, data), run_ort(model, data)
        probabilities = as_float(sql["probabilities"])
        assert np.isfinite(probabilities).all()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, 1e-12)
        np.testing.assert_allclose(probabilities, onnx_out["probabilities"], 1e-9, 1e-9)
        np.testing.assert_allclose(
            probabilities, pipeline.predict_proba(pd.DataFrame(data)), 1e-9, 1e-9
        )
        assert sql["label"].tolist() == pipeline.predict(pd.DataFrame(data)).tolist()


# -- hand-built graphs: one op (or a few) at a time --------------------------------------------

X = [-2.5, -1.0, -0.5, 0.0, 0.5, 1.5, 2.5, 3.0, 7.0, None]
Y = [1.0, 2.0, -3.0, 0.5, 4.0, -1.5, 2.5, 8.0, 0.0, 1.0]
XY = {"x": X, "y": Y}


def n(
    op: str, inputs: Sequence[str], outputs: Sequence[str] = ("out",), **attrs: Any
) -> onnx.NodeProto:
    domain = "ai.onnx.ml" if op in ML_OPS else ""
    return helper.make_node(op, list(inputs), list(outputs), domain=domain, **attrs)


ML_OPS = {
    "Scaler",
    "Imputer",
    "OneHotEncoder",
    "Normalizer",
    "LinearClassifier",
    "LinearRegressor",
    "Binarizer",
    "LabelEncoder",
    "ArrayFeatureExtractor",
}

ELEMENTWISE = {
    "Add": n("Add", ["x", "y"]),
    "Sub": n("Sub", ["x", "y"]),
    "Mul": n("Mul", ["x", "y"]),
    "Div": n("Div", ["x", "y"]),
    "Pow": n("Pow", ["y", "two"]),
    "Max": n("Max", ["x", "y", "two"]),
    "Min": n("Min", ["x", "y"]),
    "Sum": n("Sum", ["x", "y", "two"]),
    "Mean": n("Mean", ["x", "y"]),
    "Neg": n("Neg", ["x"]),
    "Abs": n("Abs", ["x"]),
    "Sqrt": n("Sqrt", ["x"]),
    "Exp": n("Exp", ["x"]),
    "Log": n("Log", ["x"]),
    "Floor": n("Floor", ["x"]),
    "Ceil": n("Ceil", ["x"]),
    "Round": n("Round", ["x"]),
    "Sign": n("Sign", ["x"]),
    "Reciprocal": n("Reciprocal", ["y"]),
    "Relu": n("Relu", ["x"]),
    "Sigmoid": n("Sigmoid", ["x"]),
    "Tanh": n("Tanh", ["x"]),
    "Clip": n("Clip", ["x", "lo", "hi"]),
    "Identity": n("Identity", ["x"]),
}
CONSTANTS = [const("two", [2.0]), const("lo", -0.75), const("hi", 2.0)]


@pytest.mark.parametrize("op", list(ELEMENTWISE))
def test_elementwise_ops(op: str) -> None:
    model = graph_model([ELEMENTWISE[op]], [("x", D), ("y", D)], [("out", D, [None, 1])], CONSTANTS)
    oracle = run_reference if op == "Mean" else run_ort  # onnxruntime has no double Mean kernel
    assert_same(run_sql(model, XY), oracle(model, XY))


def test_bucketize_with_where_and_sum_of_comparisons() -> None:
    nodes = [
        n("GreaterOrEqual", ["x", "five"], ["ge5"]),
        n("Where", ["ge5", "one", "zero"], ["w"]),
        n("Greater", ["x", "zero"], ["gt0"]),
        n("LessOrEqual", ["x", "two"], ["le2"]),
        n("Equal", ["x", "y"], ["eq"]),
        n("Less", ["x", "y"], ["lt"]),
        n("And", ["gt0", "le2"], ["between"]),
        n("Or", ["eq", "lt"], ["le"]),
        n("Not", ["le"], ["gt"]),
        n("Cast", ["between"], ["c1"], to=D),
        n("Cast", ["gt"], ["c2"], to=D),
        n("Cast", ["gt0"], ["c3"], to=D),
        n("Sum", ["w", "c1", "c2", "c3"]),
    ]
    initializers = [
        const("five", [5.0]),
        const("one", [1.0]),
        const("zero", [0.0]),
        const("two", [2.0]),
    ]
    model = graph_model(nodes, [("x", D), ("y", D)], [("out", D, [None, 1])], initializers)
    assert_same(run_sql(model, XY), run_ort(model, XY))


def test_is_nan_and_casts() -> None:
    data = {"x": [1.5, math.nan, None, -2.7, 0.0, 3.0]}
    nodes = [
        n("IsNaN", ["x"], ["nan"]),
        n("Cast", ["x"], ["i"], to=I64),
        n("Cast", ["i"], ["back"], to=D),
        n("Cast", ["x"], ["b"], to=B),
        n("Cast", ["b"], ["bi"], to=I64),
        n("Cast", ["i"], ["s"], to=S),
        n("Cast", ["x"], ["f"], to=F),
    ]
    outputs = [
        ("nan", B, [None, 1]),
        ("bi", I64, [None, 1]),
        ("s", S, [None, 1]),
        ("back", D, [None, 1]),
        ("f", F, [None, 1]),
    ]
    model = graph_model(nodes, [("x", D)], outputs)
    sql, want = run_sql(model, data), run_ort(model, data)
    assert_same({k: sql[k] for k in ("nan", "bi", "f")}, {k: want[k] for k in ("nan", "bi", "f")})
    finite = [0, 3, 4, 5]  # onnxruntime casts NaN to an arbitrary integer; SQL gives NULL
    assert sql["s"][finite].tolist() == want["s"][finite].tolist()
    np.testing.assert_array_equal(as_float(sql["back"])[finite], want["back"][finite])
    assert sql["s"][1].tolist() == [None]
    assert sql["back"][2].tolist() == [None]


def test_shape_ops() -> None:
    nodes = [
        n("Concat", ["x", "y", "x"], ["xyx"], axis=1),
        n("Unsqueeze", ["xyx", "axes1"], ["u"]),  # [N, 1, 3]
        n("Flatten", ["u"], ["flat"], axis=1),  # [N, 3]
        n("Reshape", ["flat", "shape"], ["r"]),  # [N, 3, 1]
        n("Squeeze", ["r", "axes2"], ["sq"]),  # [N, 3]
        n("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # [N, 1, 3]
        n("Reshape", ["t", "flat_shape"], ["t2"]),  # [N, 3]
        n("Slice", ["sq", "starts", "ends", "axes1b", "steps"], ["sl"]),  # columns 2, 0
        n("Gather", ["t2", "pick"], ["g"], axis=1),  # columns 1, 1, 2
        n("Concat", ["sl", "g"], ["out"], axis=-1),
    ]
    initializers = [
        const("axes1", [1], I64),
        const("axes2", [2], I64),
        const("shape", [-1, 3, 1], I64),
        const("flat_shape", [0, -1], I64),
        const("starts", [2], I64),
        const("ends", [-(10**9)], I64),
        const("axes1b", [1], I64),
        const("steps", [-2], I64),
        const("pick", [1, 1, 2], I64),
    ]
    model = graph_model(nodes, [("x", D), ("y", D)], [("out", D, [None, 5])], initializers)
    assert_same(run_sql(model, XY), run_ort(model, XY))


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize(
    "op",
    [
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceMax",
        "ReduceMin",
        "ReduceMean",
        "ReduceL1",
        "ReduceL2",
    ],
)
def test_reductions(op: str, keepdims: int) -> None:
    nodes = [
        n("Concat", ["x", "y", "x"], ["xyx"], axis=1),
        n(op, ["xyx", "axes"], keepdims=keepdims),
    ]
    opsets = {"": 18, "ai.onnx.ml": 3}  # axes as an input for every reduction
    shape = [None, 1] if keepdims else [None]
    model = graph_model(
        nodes, [("x", D), ("y", D)], [("out", D, shape)], [const("axes", [1], I64)], opsets
    )
    assert_same(run_sql(model, XY), run_ort(model, XY))


@pytest.mark.parametrize("columns", [["x", "y", "x"], ["y", "x", "y", "x", "x"]])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_extremes_break_ties_like_onnxruntime(op: str, last: int, columns: list[str]) -> None:
    nodes = [
        n("Concat", columns, ["xyx"], axis=1),
        n(op, ["xyx"], axis=1, select_last_index=last),
    ]
    model = graph_model(nodes, [("x", D), ("y", D)], [("out", I64, [None, 1])])
    sql, want = run_sql(model, XY), run_ort(model, XY)
    assert sql["out"][:-1].tolist() == want["out"][:-1].tolist()
    assert sql["out"][-1].tolist() == [None]  # NULL in, NULL out


def test_softmax_and_sigmoid_with_extreme_inputs() -> None:
    data = {"x": [-1e308, -1e3, -745.5, -40.0, 0.0, 1e-300, 40.0, 709.9, 1e3, 1e308]}
    nodes = [
        n("Mul", ["x", "minus"], ["neg"]),
        n("Div", ["x", "two"], ["half"]),
        n("Concat", ["x", "half", "neg", "x"], ["z"], axis=1),
        n("Softmax", ["z"], ["soft"], axis=1),
        n("Sigmoid", ["x"], ["sig"]),
    ]
    outputs = [("soft", D, [None, 4]), ("sig", D, [None, 1])]
    model = graph_model(nodes, [("x", D)], outputs, [const("minus", [-1.0]), const("two", [2.0])])
    sql = run_sql(model, data)
    assert np.isfinite(as_float(sql["soft"])).all()
    assert np.isfinite(as_float(sql["sig"])).all()
    assert_same(sql, run_ort(model, data))


def test_linear_algebra_ops() -> None:
    weights = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])
    nodes = [
        n("Concat", ["x", "y"], ["xy"], axis=1),
        n("MatMul", ["xy", "w"], ["mm"]),
        n("Gemm", ["xy", "wt", "c"], ["gemm"], alpha=-2.0, beta=0.5, transB=1),
        n("MatMul", ["xy", "v"], ["vec"]),
    ]
    initializers = [
        const("w", weights),
        const("wt", weights.T),
        const("c", [[1.0, 2.0, 3.0]]),
        const("v", [1.0, -1.0]),
    ]
    outputs = [("mm", D, [None, 3]), ("gemm", D, [None, 3]), ("vec", D, [None])]
    model = graph_model(nodes, [("x", D), ("y", D)], outputs, initializers)
    assert_same(run_sql(model, XY), run_ort(model, XY))


def test_a_product_of_imputed_values_is_guarded_and_exact() -> None:
    """Where(IsNaN(x), fill, x) feeding a MatMul (sqlml's own preprocessing): the compiled sum is
    computed over the raw values and over the imputed ones only where it gave NULL or NaN. Rows
    with NULL, NaN, +-inf (inf - inf is NaN: the imputed sum then gives NaN too) and a zero
    weight must all match onnxruntime; the output is the guard's CASE."""
    nodes = [
        n("IsNaN", ["x"], ["xn"]),
        n("Where", ["xn", "fx", "x"], ["xi"]),
        n("IsNaN", ["y"], ["yn"]),
        n("Where", ["yn", "fy", "y"], ["yi"]),
        n("Concat", ["xi", "yi"], ["xy"], axis=1),
        n("MatMul", ["xy", "w"], ["mm"]),
    ]
    initializers = [
        const("fx", [[0.25]]),
        const("fy", [[-1.5]]),
        const("w", [[0.5, 0.0], [-2.0, 0.0]]),  # the second output: zero weights only
    ]
    model = graph_model(nodes, [("x", D), ("y", D)], [("mm", D, [None, 2])], initializers)
    data = {
        "x": [1.0, None, math.nan, math.inf, math.inf, 2.0, -math.inf, 3.0],
        "y": [2.0, 3.0, 4.0, 1.0, math.inf, None, math.nan, -0.5],
    }
    assert_same(run_sql(model, data), run_ort(model, data))
    inputs = {name: exp.column(name, quoted=True) for name in ("x", "y")}
    compiled = compile_onnx(model, inputs, dialect="duckdb")["mm"]
    assert all(isinstance(e, exp.Case) for e in compiled)


# -- hand-built ai.onnx.ml graphs --------------------------------------------------------------


def test_ml_scaler_normalizer_regressor() -> None:
    nodes = [
        n("Concat", ["x", "y"], ["xy_double"], axis=1),
        n("Cast", ["xy_double"], ["xy"], to=F),  # onnxruntime's LinearRegressor is float only
        n("Scaler", ["xy"], ["scaled"], offset=[0.5, -1.0], scale=[2.0, 0.25]),
        n("Normalizer", ["xy"], ["l1"], norm="L1"),
        n("Normalizer", ["xy"], ["l2"], norm="L2"),
        n("Normalizer", ["xy"], ["max"], norm="MAX"),
        n(
            "LinearRegressor",
            ["xy"],
            ["reg"],
            coefficients=[0.5, -2.0, 1.0, 1.0],
            intercepts=[0.25, -1.0],
            targets=2,
        ),
    ]
    outputs = [(name, F, [None, 2]) for name in ("scaled", "l1", "l2", "max", "reg")]
    model = graph_model(nodes, [("x", D), ("y", D)], outputs)
    data = {"x": [*X[:-1], 0.0, -4.0], "y": [*Y[:-1], 0.0, -2.0]}  # a zero row, a negative row
    assert_same(run_sql(model, data), run_ort(model, data), rtol=1e-6, atol=1e-6)  # float32 in ORT


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX"])
@pytest.mark.parametrize("classes", [2, 3])
def test_ml_linear_classifier(post: str, classes: int) -> None:
    binary = classes == 2
    coefficients = [1.0, 2.0] if binary else [1.0, 2.0, 0.0, 0.0, -1.0, 1.0]
    intercepts = [0.5] if binary else [0.5, 0.0, 0.0]
    labels = {"classlabels_ints": [5, 7]} if binary else {"classlabels_strings": ["a", "b", "c"]}
    node = n(
        "LinearClassifier",
        ["xy"],
        ["label", "scores"],
        coefficients=coefficients,
        intercepts=intercepts,
        post_transform=post,
        **labels,
    )
    outputs = [("label", I64 if binary else S, [None]), ("scores", F, [None, classes])]
    model = graph_model(
        [n("Concat", ["x", "y"], ["xy"], axis=1), node], [("x", D), ("y", D)], outputs
    )
    sql, want = run_sql(model, XY), run_ort(model, XY)
    np.testing.assert_allclose(as_float(sql["scores"]), want["scores"], 1e-6, 1e-6)
    assert sql["label"][:-1].tolist() == want["label"][:-1].tolist()
    assert sql["label"][-1] is None


def test_ml_encoders_and_lookups() -> None:
    data = {"x": [0.0, 1.7, 2.0, -1.0, None, 3.0], "s": ["a", "b", "zz", SENTINEL, "c", "a"]}
    nodes = [
        n("Cast", ["x"], ["i"], to=I64),
        n("OneHotEncoder", ["i"], ["hot_i"], cats_int64s=[0, 1, 2, 3], zeros=1),
        n("OneHotEncoder", ["s"], ["hot_s"], cats_strings=["a", "b", "c"], zeros=1),
        n(
            "LabelEncoder",
            ["s"],
            ["code"],
            keys_strings=["a", "b", "c"],
            values_int64s=[2, 0, 1],
            default_int64=-1,
        ),
        n(
            "LabelEncoder",
            ["code"],
            ["decoded"],
            keys_int64s=[-1, 0, 1, 2],
            values_strings=["none", "x", "y", "z"],
        ),
        n("Cast", ["x"], ["xf"], to=F),
        n(
            "Imputer",
            ["xf"],
            ["imputed"],
            imputed_value_floats=[0.5],
            replaced_value_float=math.nan,
        ),
        n("Binarizer", ["imputed"], ["bin"], threshold=1.0),
        n("Concat", ["hot_s"], ["hot_s2"], axis=1),
        n("Reshape", ["hot_s2", "row3"], ["hot_flat"]),
        n("ArgMax", ["hot_flat"], ["idx"], axis=1),
        n(
            "LabelEncoder",
            ["idx"],
            ["name"],
            keys_int64s=[0, 1, 2],
            values_strings=["A", "B", "C"],
            default_string="?",
        ),
        n("ArrayFeatureExtractor", ["hot_flat", "cols"], ["picked"]),
        n("ArrayFeatureExtractor", ["classes", "idx"], ["klass"]),
    ]
    outputs = [
        ("hot_i", F, [None, 1, 4]),
        ("hot_s", F, [None, 1, 3]),
        ("code", I64, [None, 1]),
        ("decoded", S, [None, 1]),
        ("imputed", F, [None, 1]),
        ("bin", F, [None, 1]),
        ("name", S, [None, 1]),
        ("picked", F, [None, 2]),
        ("klass", I64, [1, None]),
    ]
    initializers = [
        const("row3", [-1, 3], I64),
        const("cols", [2, 0], I64),
        const("classes", [10, 20, 30], I64),
    ]
    model = graph_model(nodes, [("x", D), ("s", S)], outputs, initializers)
    assert_same(run_sql(model, data), run_ort(model, data))


# -- compilability, errors, constants, size ----------------------------------------------------


def test_is_compilable_and_not_compilable() -> None:
    ok = graph_model([n("Add", ["x", "x"])], [("x", D)], [("out", D, [None, 1])])
    assert is_compilable(ok)
    bad = graph_model(
        [n("Sin", ["x"], ["t"]), n("Add", ["t", "x"])], [("x", D)], [("out", D, [None, 1])]
    )
    assert not is_compilable(bad)
    with pytest.raises(NotCompilable, match="Sin") as caught:
        compile_onnx(bad, {"x": exp.column("x", quoted=True)})
    assert caught.value.sqlstate == "0A000"
    assert isinstance(caught.value, errors.NotSupportedError)


def test_tree_models_are_not_compilable_yet() -> None:
    columns = ["age", "income"]
    tree = Pipeline(
        [
            ("prep", ColumnTransformer([("p", "passthrough", columns)])),
            ("model", DecisionTreeClassifier(max_depth=2)),
        ]
    )
    model = convert(tree.fit(TRAIN[columns], CLASS2), columns)
    assert not is_compilable(model)
    with pytest.raises(NotCompilable, match="TreeEnsembleClassifier"):
        compile_onnx(model, {c: exp.column(c, quoted=True) for c in columns})


def test_constant_subgraphs_fold_and_inputs_stay_untouched() -> None:
    two = helper.make_tensor("two", D, [1], [2.0])
    shape = helper.make_tensor("shape", I64, [2], [1, 1])
    one = helper.make_tensor("one", D, [1], [1.0])
    nodes = [
        n("Constant", [], ["c"], value=two),
        n("Constant", [], ["s"], value=shape),
        n("ConstantOfShape", ["s"], ["ones"], value=one),  # no handler: folded as a constant
        n("Mul", ["c", "ones"], ["k"]),
        n("Mul", ["x", "k"]),
    ]
    model = graph_model(nodes, [("x", D)], [("out", D, [None, 1])])
    assert is_compilable(model)
    column = exp.column("x", quoted=True)
    compiled = compile_onnx(model, {"x": column})
    assert compiled["out"][0].sql("duckdb") == """"x" * CAST('2.0' AS DOUBLE)"""
    assert column.parent is None
    assert_same(run_sql(model, XY), run_ort(model, XY))


def test_refusals_name_the_reason() -> None:
    to_string = graph_model([n("Cast", ["x"], to=S)], [("x", D)], [("out", S, [None, 1])])
    assert is_compilable(to_string)  # the op is supported; the double-to-string cast is not
    with pytest.raises(NotCompilable, match="Cast from double to string"):
        compile_onnx(to_string, {"x": exp.column("x")})
    rows = graph_model([n("ReduceSum", ["x"], keepdims=0)], [("x", D)], [("out", D, [])])
    with pytest.raises(NotCompilable, match="combine the rows"):
        compile_onnx(rows, {"x": exp.column("x")})
    wide = helper.make_model(
        helper.make_graph(
            [n("Identity", ["x"])],
            "g",
            [helper.make_tensor_value_info("x", D, [None, 3])],
            [helper.make_tensor_value_info("out", D, [None, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    assert not is_compilable(wide)


def test_caller_errors_are_internal() -> None:
    model = graph_model([n("Neg", ["x"])], [("x", D)], [("out", D, [None, 1])])
    with pytest.raises(errors.InternalError):
        compile_onnx(model, {})
    with pytest.raises(errors.InternalError):
        compile_onnx(model, {"x": exp.column("x")}, dialect="oracle")


TRICKY = [
    0.1,
    1 / 3,
    -2.5e-17,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    123456789.123456789,
    -0.0,
    math.inf,
    -math.inf,
]


def test_constants_are_exact_doubles() -> None:
    with duckdb.connect() as con:
        for value in [*TRICKY, math.nan]:
            sql = double(value).sql("duckdb")
            kind, got = con.execute(f"SELECT typeof({sql}), {sql}").fetchone()
            assert kind == "DOUBLE", sql
            assert struct.pack("<d", got) == struct.pack("<d", value) or (
                math.isnan(value) and math.isnan(got)
            )
    assert double(0.1).sql("postgres") == "CAST('0.1' AS DOUBLE PRECISION)"


def test_compiled_sql_has_no_decimal_literals_and_typed_outputs() -> None:
    pipeline = Pipeline([("prep", preprocessing()), ("model", LogisticRegression(max_iter=1000))])
    model = convert(pipeline.fit(TRAIN, CLASS3), COLUMNS)
    compiled = compile_onnx(model, {c: exp.column(c, quoted=True) for c in COLUMNS})
    expressions = [e for es in compiled.values() for e in es]
    for expression in expressions:
        numbers = [lit for lit in expression.find_all(exp.Literal) if not lit.is_string]
        # every fractional constant is CAST('...' AS DOUBLE), never a DECIMAL literal
        assert all(lit.is_int for lit in numbers)
    select = ", ".join(f"typeof({e.sql('duckdb')})" for e in expressions)
    with duckdb.connect() as con:
        con.register("scoring", arrow_table(SCORE))
        types = con.execute(f"SELECT {select} FROM scoring LIMIT 1").fetchone()
    assert types == ("BIGINT", "DOUBLE", "DOUBLE", "DOUBLE")


def test_postgres_spellings_differ_only_in_the_dialect_table() -> None:
    nodes = [n("Round", ["x"], ["r"]), n("Exp", ["r"], ["e"]), n("Div", ["e", "x"])]
    model = graph_model(nodes, [("x", D)], [("out", D, [None, 1])])
    duck = compile_onnx(model, {"x": exp.column("x")})["out"][0].sql("duckdb")
    pg = compile_onnx(model, {"x": exp.column("x")}, dialect="postgres")["out"][0].sql("postgres")
    assert "ROUND_EVEN(" in duck
    assert "NULLIF" not in duck
    assert "ROUND_EVEN(" not in pg
    assert "NULLIF(" in pg  # x / 0 raises in PostgreSQL
    assert "'Infinity'" in pg  # exp() overflow raises in PostgreSQL
    assert "DOUBLE PRECISION" in pg


def test_wide_one_hot_stays_within_duckdb_depth_limit() -> None:
    categories = [f"c{i}" for i in range(1500)]
    nodes = [
        n("OneHotEncoder", ["s"], ["hot"], cats_strings=categories, zeros=1),
        n("Reshape", ["hot", "row"], ["flat"]),
        n("Cast", ["flat"], ["hot_d"], to=D),
        n("MatMul", ["hot_d", "w"], ["out"]),
    ]
    weights = const("w", np.linspace(-1, 1, len(categories)).reshape(-1, 1))
    model = graph_model(
        nodes,
        [("s", S)],
        [("out", D, [None, 1])],
        [const("row", [-1, len(categories)], I64), weights],
    )
    data = {"s": ["c0", "c777", "c1499", "nope"]}
    assert_same(run_sql(model, data), run_ort(model, data))


def test_kmeans_sql_size_is_linear() -> None:
    sizes = []
    for features in (5, 10, 20):
        columns = [f"f{i}" for i in range(features)]
        frame = pd.DataFrame(rng.normal(size=(60, features)), columns=columns)
        pipeline = Pipeline(
            [
                ("scale", ColumnTransformer([("s", StandardScaler(), columns)])),
                ("model", KMeans(n_clusters=5, n_init=2, random_state=0)),
            ]
        )
        model = convert(pipeline.fit(frame), columns)
        compiled = compile_onnx(model, {c: exp.column(c, quoted=True) for c in columns})
        sizes.append(sum(len(e.sql("duckdb")) for es in compiled.values() for e in es))
    assert sizes[2] / sizes[1] < 2.3
    assert sizes[1] / sizes[0] < 2.3


def test_case_times_weight_keeps_a_cast_column() -> None:
    """Regression: CASE .. ELSE CAST(col AS DOUBLE) END * w was folded as if the column were 0."""
    import duckdb
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("IsNaN", ["x"], ["missing"]),
        helper.make_node("Where", ["missing", "mean", "x"], ["filled"]),
        helper.make_node("Mul", ["filled", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])],
        [
            numpy_helper.from_array(np.array([[2.5]]), "mean"),
            numpy_helper.from_array(np.array([[3.0]]), "w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    column = exp.cast(exp.column("v", quoted=True), exp.DataType.build("DOUBLE"))
    (expression,) = compile_onnx(model, {"x": column})["y"]
    con = duckdb.connect()
    try:
        got = con.sql(
            f"SELECT {expression.sql('duckdb')} FROM (VALUES (1), (NULL), (4)) AS t(v)"
        ).fetchall()
    finally:
        con.close()
    session = onnxruntime.InferenceSession(model.SerializeToString())
    want = session.run(None, {"x": np.array([[1.0], [np.nan], [4.0]])})[0]
    assert [r[0] for r in got] == list(want.reshape(-1))
