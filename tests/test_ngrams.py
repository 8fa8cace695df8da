"""ARRAY<STRING> features and ML.NGRAMS in TRANSFORM (issue 13, point 2), on both engines.

BigQuery ML multi-hot encodes an ARRAY column that is not numeric: one feature per distinct value
seen in training, NULL a category of its own, a value unseen in training weighing 0; the
indicators are not standardized. ``ML.NGRAMS(array, [low, high] [, separator])`` makes the
n-grams, which a TRANSFORM output then multi-hot encodes the same way. The references are
scikit-learn fitted on a multi-hot matrix this file builds in plain Python from the raw rows (not
sqlml's encoders). The models are trained once per engine (module scope).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import gateway_parts, module_database, serving
from sklearn.linear_model import LinearRegression, LogisticRegression

import sqlml
from sqlml import errors

Array = np.ndarray[Any, Any]
Row = dict[str, Any]
Tokens = list[str | None] | None
WORDS = ("red", "green", "blue", "teal", "gold")
WEIGHT = {"red": 1.0, "green": -0.5, "blue": 2.0, "teal": 0.3, "gold": -1.2}


def _rows(n: int, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        tags: Tokens = [WORDS[int(k)] for k in rng.integers(0, len(WORDS), rng.integers(0, 5))]
        if i % 13 == 4:
            tags = None
        elif i % 17 == 6 and tags:
            tags[0] = None  # a NULL element
        x = float(np.round(rng.normal(5, 2), 3))
        present = [t for t in tags or [] if t is not None]
        pairs = list(itertools.pairwise(tags or []))
        y = (
            0.4 * x
            + sum(WEIGHT[t] for t in present)
            + 1.5 * (("red", "blue") in pairs)
            + float(rng.normal(0, 0.3))
        )
        rows.append({"i": i, "x": x, "tags": tags, "y": y, "yc": y > 2.5})
    return rows


TRAIN = _rows(160, 1)
NEW = _rows(30, 2)
NEW[0]["tags"] = None  # a NULL array
NEW[1]["tags"] = []  # an empty array
NEW[2]["tags"] = ["red", "purple", "purple"]  # a value training never saw
NEW[3]["tags"] = ["purple", "pink"]  # nothing training saw
NEW[4]["tags"] = ["blue", None, "red"]  # a NULL element


# -- the reference encoding, by hand -------------------------------------------------------------


def _grams(tags: Tokens, low: int, high: int) -> list[str | None] | None:
    if tags is None:
        return None
    out: list[str | None] = []
    for n in range(low, high + 1):
        for i in range(len(tags) - n + 1):
            window = tags[i : i + n]
            out.append(None if None in window else " ".join(str(t) for t in window))
    return out


def _has_null(grams: list[str | None] | None) -> bool:
    return grams is None or None in grams


def multi_hot(low: int, high: int) -> tuple[Array, Array, list[str | None]]:
    """The training and new rows' matrices: x standardized, then one 0/1 column per n-gram seen
    in training (sorted), then NULL's when training saw one."""
    train = [_grams(r["tags"], low, high) for r in TRAIN]
    new = [_grams(r["tags"], low, high) for r in NEW]
    vocab: list[str | None] = sorted({g for gs in train for g in gs or [] if g is not None})
    if any(_has_null(g) for g in train):
        vocab.append(None)

    def encode(grams: list[list[str | None] | None]) -> Array:
        return np.array(
            [
                [(_has_null(g) if v is None else (g is not None and v in g)) for v in vocab]
                for g in grams
            ],
            dtype=float,
        )

    x = np.array([r["x"] for r in TRAIN])
    x_new = np.array([r["x"] for r in NEW])
    mean, std = x.mean(), x.std()
    a = np.hstack([((x - mean) / std)[:, None], encode(train)])
    b = np.hstack([((x_new - mean) / std)[:, None], encode(new)])
    return a, b, vocab


# -- the tables and models, once per engine ------------------------------------------------------


def _array(tags: Tokens, engine: str) -> str:
    cast = "VARCHAR[]" if engine == "duckdb" else "text[]"
    if tags is None:
        return f"NULL::{cast}"
    items = ", ".join("NULL" if t is None else f"'{t}'" for t in tags)
    return f"[{items}]::{cast}" if engine == "duckdb" else f"ARRAY[{items}]::{cast}"


def _load(con: Any, engine: str, table: str, rows: list[Row]) -> None:
    array = "VARCHAR[]" if engine == "duckdb" else "text[]"
    con.execute(
        f"CREATE TABLE ng.{table} (i INTEGER, x DOUBLE PRECISION, tags {array},"
        " y DOUBLE PRECISION, yc BOOLEAN)"
    )
    values = ", ".join(
        f"({r['i']}, {r['x']!r}, {_array(r['tags'], engine)}, {r['y']!r},"
        f" {'TRUE' if r['yc'] else 'FALSE'})"
        for r in rows
    )
    con.execute(f"INSERT INTO ng.{table} VALUES {values}")


LIN = "model_type = 'linear_reg', input_label_cols = ['y']"
LOG = (
    "model_type = 'logistic_reg', input_label_cols = ['yc'], l2_reg = 1.0,"
    " max_iterations = 500, early_stop = FALSE"
)
NGRAMS = "TRANSFORM (ML.STANDARD_SCALER(x) OVER () AS x, ML.NGRAMS(tags, [1, 2]) AS g, {label})"
MODELS = {  # name -> CREATE MODEL
    "raw_lin": f"CREATE MODEL ng.raw_lin OPTIONS ({LIN}) AS SELECT x, tags, y FROM ng.train",
    "raw_log": f"CREATE MODEL ng.raw_log OPTIONS ({LOG}) AS SELECT x, tags, yc FROM ng.train",
    "ng_lin": f"CREATE MODEL ng.ng_lin {NGRAMS.format(label='y')} OPTIONS ({LIN})"
    " AS SELECT x, tags, y FROM ng.train",
    "ng_log": f"CREATE MODEL ng.ng_log {NGRAMS.format(label='yc')} OPTIONS ({LOG})"
    " AS SELECT x, tags, yc FROM ng.train",
}
RANGES = {"raw_lin": (1, 1), "raw_log": (1, 1), "ng_lin": (1, 2), "ng_log": (1, 2)}


def _setup(con: Any, engine: str) -> None:
    con.execute("CREATE SCHEMA ng")
    _load(con, engine, "train", TRAIN)
    _load(con, engine, "new", NEW)
    for statement in MODELS.values():
        con.execute(statement)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def ng(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sqlml.Connection, str]]:
    engine = request.param
    with module_database(engine, request, tmp_path_factory, "ngrams") as database:
        con = sqlml.connect(database, autocommit=True)
        _setup(con, engine)
        yield con, engine
        con.close()


def _predict(con: Any, model: str, scoring: str, column: str) -> list[Any]:
    cursor = con.execute(
        f"SELECT i, {column} FROM ML.PREDICT(MODEL ng.{model}, TABLE ng.new,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY i"
    )
    return [row[1] for row in cursor.fetchall()]


def _linear_reference(model: str) -> Array:
    x, x_new, _ = multi_hot(*RANGES[model])
    return LinearRegression().fit(x, [r["y"] for r in TRAIN]).predict(x_new)  # type: ignore[no-any-return]


def _logistic_reference(model: str) -> Array:
    x, x_new, _ = multi_hot(*RANGES[model])
    reference = LogisticRegression(C=1.0, max_iter=10_000, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(x, [r["yc"] for r in TRAIN])
    return reference.predict_proba(x_new)[:, 1]  # type: ignore[no-any-return]


def _true_probs(rows: list[Any]) -> Array:
    # (a wire client reading the column alone may see the label as text)
    true = (True, "t", "true")
    return np.array([next(p["prob"] for p in row if p["label"] in true) for row in rows])


@pytest.mark.parametrize("model", ["raw_lin", "ng_lin"])
def test_linear_reg_matches_scikit_learn(ng: tuple[sqlml.Connection, str], model: str) -> None:
    """Also the defined behaviour at scoring: a NULL array and a NULL element set the NULL
    indicator, an empty array and values unseen in training set nothing."""
    con, _ = ng
    expected = _linear_reference(model)
    compiled = np.array(_predict(con, model, "compiled", "predicted_y"), dtype=float)
    runtime = np.array(_predict(con, model, "runtime", "predicted_y"), dtype=float)
    np.testing.assert_allclose(compiled, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(runtime, expected, rtol=1e-6, atol=1e-9)
    scored = con.execute(f"SELECT ML.SCORE(MODEL ng.{model}, n) FROM ng.new AS n ORDER BY i")
    np.testing.assert_allclose([r[0] for r in scored.fetchall()], expected, rtol=1e-6)
    metrics = con.execute(
        f"SELECT mean_absolute_error FROM ML.EVALUATE(MODEL ng.{model}, TABLE ng.new)"
    )
    error = np.abs(expected - np.array([r["y"] for r in NEW])).mean()
    assert metrics.fetchall()[0][0] == pytest.approx(error, rel=1e-6)


@pytest.mark.parametrize("model", ["raw_log", "ng_log"])
def test_logistic_reg_matches_scikit_learn(ng: tuple[sqlml.Connection, str], model: str) -> None:
    con, _ = ng
    expected = _logistic_reference(model)
    for scoring in ("compiled", "runtime"):
        got = _true_probs(_predict(con, model, scoring, "predicted_yc_probs"))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    labels = _predict(con, model, "compiled", "predicted_yc")
    assert labels == [bool(p > 0.5) for p in expected]


def test_unseen_null_and_empty(ng: tuple[sqlml.Connection, str]) -> None:
    """Unseen values weigh 0: ['red', 'purple', 'purple'] scores as ['red'], an array of only
    unseen values as the empty array; a NULL array as an array holding a NULL element."""
    con, engine = ng
    arrays = [["red", "purple", "purple"], ["red"], ["purple", "pink"], [], None, [None]]
    rows = " UNION ALL ".join(
        f"SELECT {k} AS i, 5.0 AS x, {_array(a, engine)} AS tags" for k, a in enumerate(arrays)
    )
    for model in ("raw_lin", "ng_lin"):
        for scoring in ("compiled", "runtime"):
            got = con.execute(
                f"SELECT predicted_y FROM ML.PREDICT(MODEL ng.{model}, ({rows}),"
                f" STRUCT('{scoring}' AS scoring)) ORDER BY i"
            ).fetchall()
            y = [r[0] for r in got]
            assert y[0] == pytest.approx(y[1], rel=1e-9)
            assert y[2] == pytest.approx(y[3], rel=1e-9)
            assert y[4] == pytest.approx(y[5], rel=1e-9)
            assert y[1] != pytest.approx(y[3], rel=1e-6)


def test_weights_show_the_vocabulary(ng: tuple[sqlml.Connection, str]) -> None:
    """The raw column and ML.NGRAMS' output: one feature with a weight per value or n-gram
    (category_weights), as BigQuery shows a multi-hot column."""
    con, _ = ng
    _, _, vocab = multi_hot(1, 1)
    info = con.execute("SELECT input, category_count FROM ML.FEATURE_INFO(MODEL ng.raw_lin)")
    assert info.fetchall() == [("x", None), ("tags", len(vocab) - 1)]  # (NULL aside)
    rows = con.execute("SELECT * FROM ML.WEIGHTS(MODEL ng.raw_lin)").fetchall()
    tags = next(r for r in rows if r[0] == "tags")
    assert [c["category"] for c in tags[2]] == vocab
    _, _, grams = multi_hot(1, 2)
    rows = con.execute("SELECT * FROM ML.WEIGHTS(MODEL ng.ng_lin)").fetchall()
    g = next(r for r in rows if r[0] == "g")
    assert [c["category"] for c in g[2]] == grams
    assert any(c["category"] == "red blue" for c in g[2])


def test_trees_compiled_as_runtime(ng: tuple[sqlml.Connection, str]) -> None:
    """Trees split on the 0/1 indicators; a forest's trees share branches, which the compiled
    SQL's common subexpressions must not lift apart (sqlml.cse)."""
    con, _ = ng
    con.execute(
        "CREATE OR REPLACE MODEL ng.forest OPTIONS (model_type = 'random_forest_classifier',"
        " input_label_cols = ['yc'], num_parallel_tree = 5) AS SELECT x, tags, yc FROM ng.train"
    )
    compiled = _true_probs(_predict(con, "forest", "compiled", "predicted_yc_probs"))
    runtime = _true_probs(_predict(con, "forest", "runtime", "predicted_yc_probs"))
    np.testing.assert_allclose(compiled, runtime, rtol=1e-6, atol=1e-9)


def _fails(con: Any, statement: str) -> str:
    with pytest.raises(errors.Error) as raised:
        con.execute(statement).fetchall()
    return str(raised.value.sqlstate)


def test_bad_inputs(ng: tuple[sqlml.Connection, str]) -> None:
    con, engine = ng
    train = "OPTIONS (model_type = 'linear_reg', input_label_cols = ['y']) AS"
    query = " SELECT x, tags, y FROM ng.train"

    def create(transform: str, select: str = query) -> str:
        return _fails(
            con, f"CREATE OR REPLACE MODEL ng.bad TRANSFORM ({transform}, y) {train}{select}"
        )

    for bad in ("0", "[0, 2]", "[3, 2]", "[1, 11]", "[1, 2, 3]", "'a'", "[1.5, 2]"):
        assert create(f"ML.NGRAMS(tags, {bad}) AS g") == "22023", bad
    assert create("ML.NGRAMS(tags, [1, 2], 7) AS g") == "22023"
    assert create("ML.NGRAMS(tags, [1, 2], NULL) AS g") == "22023"
    assert create("ML.NGRAMS(tags) AS g") == "22023"
    # other uses of an ARRAY<STRING> or of ML.NGRAMS' output: 0A000 with the reason
    assert create("ARRAY_LENGTH(ML.NGRAMS(tags, 2)) AS g") == "0A000"
    assert create("ML.NGRAMS(tags, 2)[OFFSET(0)] AS g") in ("0A000", "42601")
    assert create("ML.NGRAMS(ML.NGRAMS(tags, 1), 2) AS g") == "0A000"
    assert create("tags") == "0A000"
    assert create("x, tags AS t") == "0A000"
    # ML.NGRAMS over what is not an ARRAY<STRING>; arrays too short for any n-gram
    assert create("ML.NGRAMS(x, 2) AS g") == "42804"
    assert create("ML.NGRAMS(tags, 9) AS g", query + " WHERE tags IS NOT NULL") == "22000"
    # without TRANSFORM: an array of booleans; no value in any array
    flags = "[TRUE, FALSE]" if engine == "duckdb" else "ARRAY[TRUE, FALSE]"
    empty = "[]::VARCHAR[]" if engine == "duckdb" else "ARRAY[]::text[]"
    assert (
        _fails(con, f"CREATE OR REPLACE MODEL ng.bad {train} SELECT {flags} AS f, y FROM ng.train")
        == "0A000"
    )
    assert (
        _fails(con, f"CREATE OR REPLACE MODEL ng.bad {train} SELECT {empty} AS f, y FROM ng.train")
        == "22000"
    )
    # scoring: a column of another type where the model read an ARRAY<STRING>
    for model in ("raw_lin", "ng_lin"):
        wrong = f"SELECT * FROM ML.PREDICT(MODEL ng.{model}, (SELECT x, 'red' AS tags FROM ng.new))"
        assert _fails(con, wrong) == "42804"
    assert _fails(con, "SELECT * FROM ML.TRANSFORM(MODEL ng.ng_lin, TABLE ng.new)") == "0A000"
    assert con.execute("SELECT count(*) FROM ng.new").fetchall()[0][0] == len(NEW)


def test_through_the_gateway(database: str) -> None:
    """The gateway over DuckDB and the PostgreSQL proxy (psycopg 3) trains and predicts the
    same, compiled and runtime."""
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    engine = "postgres" if database.startswith("postgresql://") else "duckdb"
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        client = GatewayConnection(port)
        try:
            client.execute("CREATE SCHEMA ng")
            _load(client, engine, "train", TRAIN)
            _load(client, engine, "new", NEW)
            client.execute(MODELS["ng_lin"])
            client.execute(MODELS["raw_log"])
            for scoring in ("compiled", "runtime"):
                got = np.array(_predict(client, "ng_lin", scoring, "predicted_y"), dtype=float)
                np.testing.assert_allclose(got, _linear_reference("ng_lin"), rtol=1e-6, atol=1e-9)
                probs = _true_probs(_predict(client, "raw_log", scoring, "predicted_yc_probs"))
                np.testing.assert_allclose(
                    probs, _logistic_reference("raw_log"), rtol=1e-6, atol=1e-7
                )
        finally:
            client.close()
