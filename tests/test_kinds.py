"""The door for model kinds (issue 13, STYLE.md rule 5): a kind and a model type registered from
outside the package, through ``kinds.register`` and ``models.register`` only, train, predict
(compiled and runtime), score and evaluate like the built-in ones, on DuckDB.

The kind here is a toy anomaly detector over k-means: its raw outputs are the distances to the
centroids only (not k-means' ``[label, d1, ...]``), its ML.PREDICT columns are ``anomaly_score``
(``d / (1 + d)`` for the nearest distance ``d``, in [0, 1)) and ``is_anomaly`` (the score above
ML.PREDICT's threshold, 0.75 by default), ML.SCORE is the score, and ML.EVALUATE reports the mean
score and the share of anomalies. Its estimator is scikit-learn's KMeans, fitted on the same rows
as a built-in k-means model in one test: the kind, not the graph, decides how it is read.

PostgreSQL is not covered: there the scoring functions and the batch scorer run in the server's
Python, where a kind registered in the test process does not exist (a third party would register
it in a module the server imports).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlglot import exp

import sqlml
from sqlml import errors
from sqlml.ml import kinds, models
from sqlml.ml.options import COMMON, Option

KIND = "toy_anomaly_detector"
MODEL_TYPE = "toy_anomaly"
CUT = 0.75
K = 2
Array = np.ndarray[Any, Any]


# -- the kind: its SQL from the raw outputs, as any third party would write it ---------------------


def _width(version: kinds.Version) -> int:
    return len(version.training_info["centroids"])


def _score_sql(version: kinds.Version, raw: list[exp.Expr]) -> exp.Expr:
    nearest = exp.Least(this=raw[0], expressions=raw[1:]) if len(raw) > 1 else raw[0]
    distance = exp.cast(nearest, exp.DataType.build("DOUBLE"))
    one = exp.cast(exp.Literal.string("1"), exp.DataType.build("DOUBLE"))
    return exp.Div(
        this=distance, expression=exp.paren(exp.Add(this=one, expression=distance.copy()))
    )


def _columns(
    version: kinds.Version, raw: list[exp.Expr], threshold: float | None, dialect: str
) -> list[exp.Expr]:
    score = _score_sql(version, raw)
    cut = exp.cast(
        exp.Literal.string(repr(CUT if threshold is None else threshold)),
        exp.DataType.build("DOUBLE"),
    )
    return [
        exp.alias_(score, "anomaly_score", quoted=True),
        exp.alias_(exp.GT(this=score.copy(), expression=cut), "is_anomaly", quoted=True),
    ]


def _scores(distances: Array) -> Array:
    nearest = np.asarray(distances, dtype=np.float64).min(axis=1)
    return np.asarray(nearest / (1.0 + nearest))


def _summary(distances: Array, cut: float) -> dict[str, float | None]:
    scores = _scores(distances)
    return {
        "mean_anomaly_score": float(scores.mean()),
        "anomaly_fraction": float((scores > cut).mean()),
    }


def _metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    return _summary(outputs["distances"], CUT)


def _evaluate_rows(
    version: kinds.Version, outputs: dict[str, Array], y: Any, threshold: float | None
) -> dict[str, float | None]:
    return _summary(outputs["distances"], CUT if threshold is None else threshold)


def _build(opts: dict[str, Any], ctx: models.FitContext) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(
        n_clusters=opts["num_clusters"],
        init="random",
        n_init=1,
        max_iter=opts["max_iterations"],
        tol=opts["min_rel_progress"],
        random_state=0,
    )


def _kind() -> kinds.Kind:
    return kinds.Kind(
        name=KIND,
        # training: k-means' graph (sqlml writes it itself: 'label' and 'distances')
        onnx_outputs={"label": "label", "scores": "distances"},
        output_types=lambda estimator: {
            "label": (kinds.INT64, [None]),
            "distances": (kinds.DOUBLE, [None, len(estimator.cluster_centers_)]),
        },
        expected=lambda estimator, x: ({"distances": estimator.transform(x)}, estimator.predict(x)),
        metrics=_metrics,
        centroids=lambda estimator: [[float(v) for v in c] for c in estimator.cluster_centers_],
        returns_features=True,  # (unused: only so that its graph is k-means' own, bar the kind)
        supervised=False,
        # scoring
        raw_outputs=("distances",),
        width=_width,
        output_names=lambda version: ["anomaly_score", "is_anomaly"],
        columns=_columns,
        score=_score_sql,
        pg_score_type=lambda version: "DOUBLE PRECISION",
        evaluate_rows=_evaluate_rows,
    )


@pytest.fixture
def registered() -> Iterator[None]:
    """The kind and its model type, registered from outside for one test, then removed."""
    kinds.register(_kind())
    models.register(
        models.ModelType(
            MODEL_TYPE,
            KIND,
            (*COMMON, Option("num_clusters", "int", K)),
            _build,
            lambda opts: True,
        )
    )
    yield
    models.unregister(MODEL_TYPE)
    kinds.unregister(KIND)


# -- the data: two clusters, and new rows near them and far away ---------------------------------

POINTS = (
    "CREATE TABLE pts AS SELECT (i % 2) * 10 + sin(i) AS f1, (i % 2) * 10 + cos(i * 1.3) AS f2"
    " FROM range(200) r(i)"
)
PROBE_ROWS = [(1, 0.2, 0.1), (2, 10.5, 9.0), (3, 30.0, -20.0), (4, 5.0, 5.0), (5, -9.0, 25.0)]
PROBE = "CREATE TABLE probe AS SELECT * FROM (VALUES {}) AS v(id, f1, f2)".format(
    ", ".join(f"({i}, {x}::DOUBLE, {y}::DOUBLE)" for i, x, y in PROBE_ROWS)
)
TRAIN = (
    f"CREATE MODEL m OPTIONS (model_type = '{MODEL_TYPE}', num_clusters = {K})"
    " AS SELECT f1, f2 FROM pts"
)


@pytest.fixture
def con(registered: None, tmp_path: Path) -> Iterator[sqlml.Connection]:
    connection = sqlml.connect(str(tmp_path / "kinds.duckdb"), autocommit=True)
    connection.execute(POINTS)
    connection.execute(PROBE)
    yield connection
    connection.close()


def _reference(con: sqlml.Connection) -> Array:
    """The distances of the probe rows to scikit-learn's own centroids (standardized space)."""
    from sklearn.cluster import KMeans

    train = np.asarray(con.execute("SELECT f1, f2 FROM pts").fetchall(), dtype=np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    model = KMeans(K, init="random", n_init=1, max_iter=20, tol=0.01, random_state=0)
    model.fit((train - mean) / std)
    probe = np.asarray([row[1:] for row in PROBE_ROWS], dtype=np.float64)
    return np.asarray(model.transform((probe - mean) / std))


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_a_kind_registered_from_outside_predicts(con: sqlml.Connection, scoring: str) -> None:
    con.execute(TRAIN)
    expected = _scores(_reference(con))
    rows = con.execute(
        "SELECT id, anomaly_score, is_anomaly FROM ML.PREDICT(MODEL m, TABLE probe,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    np.testing.assert_allclose([r[1] for r in rows], expected, rtol=1e-9)
    assert [r[2] for r in rows] == [bool(s > CUT) for s in expected]
    assert any(r[2] for r in rows)
    assert not all(r[2] for r in rows)
    lower = con.execute(
        "SELECT is_anomaly FROM ML.PREDICT(MODEL m, TABLE probe,"
        f" STRUCT(0.3 AS threshold, '{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    assert [r[0] for r in lower] == [bool(s > 0.3) for s in expected]


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_a_kind_registered_from_outside_scores(
    registered: None, tmp_path: Path, scoring: str
) -> None:
    """ML.SCORE is the kind's value, on either path (the connection's scoring setting)."""
    with sqlml.connect(str(tmp_path / "s.duckdb"), autocommit=True, scoring=scoring) as con:
        con.execute(POINTS)
        con.execute(PROBE)
        con.execute(TRAIN)
        rows = con.execute("SELECT id, ML.SCORE(MODEL m) FROM probe ORDER BY id").fetchall()
        expected = _scores(_reference(con))
    np.testing.assert_allclose([r[1] for r in rows], expected, rtol=1e-9)


def test_a_kind_registered_from_outside_evaluates(con: sqlml.Connection) -> None:
    con.execute(TRAIN)
    expected = _summary(_reference(con), CUT)
    trained = con.execute("SELECT * FROM ML.EVALUATE(MODEL m)").fetch_arrow_table().to_pylist()
    assert sorted(trained[0]) == ["anomaly_fraction", "mean_anomaly_score"]
    rows = (
        con.execute("SELECT * FROM ML.EVALUATE(MODEL m, TABLE probe)")
        .fetch_arrow_table()
        .to_pylist()[0]
    )
    assert rows == pytest.approx(expected, rel=1e-9)
    with_cut = (
        con.execute("SELECT * FROM ML.EVALUATE(MODEL m, TABLE probe, STRUCT(0.3 AS threshold))")
        .fetch_arrow_table()
        .to_pylist()[0]
    )
    assert with_cut == pytest.approx(_summary(_reference(con), 0.3), rel=1e-9)


def test_an_output_name_of_the_kind_in_the_input_is_42701(con: sqlml.Connection) -> None:
    con.execute(TRAIN)
    with pytest.raises(errors.DuplicateColumn):
        con.execute(
            "SELECT * FROM ML.PREDICT(MODEL m, (SELECT f1, f2, 1.0 AS anomaly_score FROM probe))"
        )


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_the_kind_decides_how_a_graph_is_read(con: sqlml.Connection, scoring: str) -> None:
    """A built-in k-means model fitted on the same rows with the same estimator has the same
    graph but for the kind stamped in it (train.py), so the two never share a scorer or compiled
    SQL cached by the graph's sha256: both answer in one query, each read as its kind says."""
    con.execute(TRAIN)
    con.execute(
        f"CREATE MODEL km OPTIONS (model_type = 'kmeans', num_clusters = {K},"
        " kmeans_init_method = 'RANDOM') AS SELECT f1, f2 FROM pts"
    )
    setting = f"STRUCT('{scoring}' AS scoring)"
    rows = con.execute(
        "SELECT a.id, a.anomaly_score, k.nearest_centroids_distance[1].distance"
        f" FROM ML.PREDICT(MODEL m, TABLE probe, {setting}) AS a"
        f" JOIN ML.PREDICT(MODEL km, TABLE probe, {setting}) AS k ON a.id = k.id ORDER BY a.id"
    ).fetchall()
    for _, score, nearest in rows:
        assert math.isclose(score, nearest / (1 + nearest), rel_tol=1e-9)


def test_unregistered_the_kind_is_gone(registered: None) -> None:
    assert kinds.kind(KIND).raw_outputs == ("distances",)
    assert models.get(MODEL_TYPE).kind == KIND
    kinds.unregister(KIND)
    with pytest.raises(errors.InternalError):
        kinds.kind(KIND)


def test_kmeans_predicts_with_an_input_column_named_x(tmp_path: Path) -> None:
    """ML.PREDICT's nearest_centroids_distance sorts its pairs with a lambda; a feature column
    named like its parameter was bound instead of it (42703 on DuckDB)."""
    con = sqlml.connect(str(tmp_path / "x.duckdb"), autocommit=True)
    try:
        con.execute("CREATE TABLE t AS SELECT i % 7 AS x, (i * 3) % 11 AS pair FROM range(60) r(i)")
        con.execute(
            "CREATE MODEL k OPTIONS (model_type = 'kmeans', num_clusters = 2) AS SELECT * FROM t"
        )
        rows = con.execute(
            "SELECT x, centroid_id, nearest_centroids_distance FROM ML.PREDICT(MODEL k, TABLE t)"
        ).fetchall()
        assert len(rows) == 60
        assert all(len(r[2]) == 2 and r[1] == r[2][0]["centroid_id"] for r in rows)
    finally:
        con.close()
