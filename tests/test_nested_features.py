"""STRUCT and ARRAY-of-numbers feature columns (issue 13, point 2), on both engines.

BigQuery ML's automatic preprocessing expands a STRUCT column into one feature per field, named
``{struct}_{field}`` and preprocessed by its own type; an ARRAY of numbers is one numeric feature
per element with no transformation (NULLs still take the training mean). The references below
are scikit-learn fitted on a matrix this file builds by hand from the raw rows (numpy only, not
sqlml's encoders). The models are trained once per engine (module scope).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import module_database
from sklearn.linear_model import LinearRegression, LogisticRegression

import sqlml
from sqlml import errors

Array = np.ndarray[Any, Any]
Row = dict[str, Any]
COLORS = ("red", "green", "blue")


def _rows(n: int, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = None if i % 17 == 5 else float(np.round(rng.normal(10, 3), 3))
        a = None if i % 11 == 3 else float(np.round(rng.normal(0, 2), 3))
        b = None if i % 13 == 7 else COLORS[int(rng.integers(0, 3))]
        s = None if i % 23 == 9 else {"a": a, "b": b}
        v: list[float | None] | None = [float(np.round(e, 3)) for e in rng.normal(0, 1, 3)]
        if i % 29 == 4:
            v[1] = None  # type: ignore[index]
        if i % 19 == 2:
            v = None
        rows.append({"i": i, "x": x, "s": s, "v": v})
    for row in rows:  # the label from the same features, NULLs as 0, plus noise
        s, v = row["s"] or {}, row["v"] or [None] * 3
        score = (
            0.5 * (row["x"] or 10.0)
            + 1.5 * (s.get("a") or 0.0)
            + {"red": 2.0, "green": -1.0, "blue": 0.5}.get(s.get("b"), 0.0)
            + sum(w * (e or 0.0) for w, e in zip((2.0, -1.0, 0.7), v, strict=True))
            + float(rng.normal(0, 0.5))
        )
        row["y"], row["yc"] = score, score > 6.0
    return rows


TRAIN = _rows(240, 1)
NEW = _rows(40, 2)
NEW[0]["s"] = None  # a NULL struct: every field missing
NEW[1]["s"] = {"a": None, "b": None}  # NULL fields
NEW[2]["v"] = None  # a NULL array: every element missing
NEW[3]["s"] = {"a": 1.0, "b": "purple"}  # a category training never saw


# -- the reference preprocessing, by hand --------------------------------------------------------


def _numbers(values: list[Any]) -> Array:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _numeric(train: list[Any], new: list[Any], scale: bool) -> tuple[Array, Array]:
    a, b = _numbers(train), _numbers(new)
    mean = np.nanmean(a)
    a, b = np.where(np.isnan(a), mean, a), np.where(np.isnan(b), mean, b)
    if not scale:
        return a[:, None], b[:, None]
    std = a.std() or 1.0
    return ((a - mean) / std)[:, None], ((b - mean) / std)[:, None]


def _one_hot(train: list[Any], new: list[Any]) -> tuple[Array, Array]:
    categories = sorted({str(v) for v in train})  # NULL ('None') a category of its own
    a = np.array([[str(v) == c for c in categories] for v in train], dtype=float)
    return a, np.array([[str(v) == c for c in categories] for v in new], dtype=float)


def reference_matrix() -> tuple[Array, Array]:
    """x standardized; s.a standardized; s.b one-hot; v's three elements as they are."""

    def field(rows: list[Row], name: str) -> list[Any]:
        return [(r["s"] or {}).get(name) for r in rows]

    def element(rows: list[Row], k: int) -> list[Any]:
        return [None if r["v"] is None else r["v"][k] for r in rows]

    parts = [
        _numeric([r["x"] for r in TRAIN], [r["x"] for r in NEW], True),
        _numeric(field(TRAIN, "a"), field(NEW, "a"), True),
        _one_hot(field(TRAIN, "b"), field(NEW, "b")),
        *(_numeric(element(TRAIN, k), element(NEW, k), False) for k in range(3)),
    ]
    return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


# -- the tables and models, once per engine ------------------------------------------------------


def _literal(value: Any, kind: str, engine: str) -> str:
    if value is None:
        return "NULL"
    if kind == "s":
        b = "NULL" if value["b"] is None else f"'{value['b']}'"
        a = "NULL" if value["a"] is None else repr(value["a"])
        if engine == "duckdb":
            return f"{{'a': {a}::DOUBLE, 'b': {b}::VARCHAR}}"
        return f"ROW({a}, {b})::nest.pair"
    if kind == "v":
        items = ", ".join("NULL" if e is None else repr(e) for e in value)
        return f"[{items}]" if engine == "duckdb" else f"ARRAY[{items}]::float8[]"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def _load(con: sqlml.Connection, engine: str, table: str, rows: list[Row]) -> None:
    struct = "STRUCT(a DOUBLE, b VARCHAR)" if engine == "duckdb" else "nest.pair"
    array = "DOUBLE[]" if engine == "duckdb" else "float8[]"
    con.execute(
        f"CREATE TABLE nest.{table} (i INTEGER, x DOUBLE PRECISION, s {struct}, v {array},"
        " y DOUBLE PRECISION, yc BOOLEAN)"
    )
    values = ", ".join(
        "(" + ", ".join(_literal(r[k], k, engine) for k in ("i", "x", "s", "v", "y", "yc")) + ")"
        for r in rows
    )
    con.execute(f"INSERT INTO nest.{table} VALUES {values}")


MODELS = {
    "lin": "model_type = 'linear_reg', input_label_cols = ['y']",
    "log": "model_type = 'logistic_reg', input_label_cols = ['yc'], l2_reg = 1.0,"
    " max_iterations = 500, early_stop = FALSE",
}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def nest(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sqlml.Connection, str]]:
    engine = request.param
    with module_database(engine, request, tmp_path_factory, "nest") as database:
        con = sqlml.connect(database, autocommit=True)
        _setup(con, engine)
        yield con, engine
        con.close()


def _setup(con: sqlml.Connection, engine: str) -> None:
    """The nest schema: its composite type, the rows and the models of MODELS."""
    con.execute("CREATE SCHEMA nest")
    if engine == "postgres":
        con.execute("CREATE TYPE nest.pair AS (a double precision, b text)")
    _load(con, engine, "train", TRAIN)
    _load(con, engine, "new", NEW)
    for model, options in MODELS.items():
        label = "y" if model == "lin" else "yc"
        con.execute(
            f"CREATE MODEL nest.{model} OPTIONS ({options}) AS"
            f" SELECT x, s, v, {label} FROM nest.train"
        )


def _predict(con: sqlml.Connection, model: str, scoring: str, column: str) -> list[Any]:
    cursor = con.execute(
        f"SELECT i, {column} FROM ML.PREDICT(MODEL nest.{model}, TABLE nest.new,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY i"
    )
    return [row[1] for row in cursor.fetchall()]


def test_linear_reg_matches_scikit_learn(nest: tuple[sqlml.Connection, str]) -> None:
    """Also the defined NULL behaviour: a NULL struct, NULL fields and a NULL array score as
    missing values (the training means; NULL is a category of s_b), an unseen category as
    all zeros, exactly as the reference matrix encodes them."""
    con, _ = nest
    x, x_new = reference_matrix()
    expected = LinearRegression().fit(x, [r["y"] for r in TRAIN]).predict(x_new)
    compiled = np.array(_predict(con, "lin", "compiled", "predicted_y"), dtype=float)
    runtime = np.array(_predict(con, "lin", "runtime", "predicted_y"), dtype=float)
    np.testing.assert_allclose(compiled, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(runtime, compiled, rtol=1e-9, atol=1e-9)
    scored = con.execute("SELECT ML.SCORE(MODEL nest.lin, n) FROM nest.new AS n ORDER BY i")
    np.testing.assert_allclose([r[0] for r in scored.fetchall()], compiled, rtol=1e-9)


def test_logistic_reg_matches_scikit_learn(nest: tuple[sqlml.Connection, str]) -> None:
    con, _ = nest
    x, x_new = reference_matrix()
    reference = LogisticRegression(C=1.0, max_iter=10_000, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(x, [r["yc"] for r in TRAIN])
    expected = reference.predict_proba(x_new)[:, 1]
    for scoring in ("compiled", "runtime"):
        probs = _predict(con, "log", scoring, "predicted_yc_probs")
        got = np.array([next(p["prob"] for p in row if p["label"] is True) for row in probs])
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    labels = _predict(con, "log", "compiled", "predicted_yc")
    assert labels == [bool(p > 0.5) for p in expected]


def test_expanded_names_in_inspection(nest: tuple[sqlml.Connection, str]) -> None:
    con, _ = nest
    info = con.execute("SELECT * FROM ML.FEATURE_INFO(MODEL nest.lin)").fetchall()
    assert [row[0] for row in info] == ["x", "s_a", "s_b", "v_1", "v_2", "v_3"]
    weights = con.execute("SELECT processed_input FROM ML.WEIGHTS(MODEL nest.lin)").fetchall()
    assert [row[0] for row in weights][:6] == ["x", "s_a", "s_b", "v_1", "v_2", "v_3"]


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_wrong_array_length_is_22023(nest: tuple[sqlml.Connection, str], scoring: str) -> None:
    con, engine = nest
    short = "[1.0, 2.0]" if engine == "duckdb" else "ARRAY[1.0, 2.0]::float8[]"
    with pytest.raises(errors.Error) as raised:
        con.execute(
            f"SELECT * FROM ML.PREDICT(MODEL nest.lin, (SELECT x, s, {short} AS v FROM"
            f" nest.new), STRUCT('{scoring}' AS scoring))"
        ).fetchall()
    assert raised.value.sqlstate == "22023"
    con.execute("SELECT 1").fetchall()  # the session goes on


def test_wrong_array_length_in_evaluate_is_22023(nest: tuple[sqlml.Connection, str]) -> None:
    con, engine = nest
    long = "[1.0, 2.0, 3.0, 4.0]" if engine == "duckdb" else "ARRAY[1, 2, 3, 4]::float8[]"
    with pytest.raises(errors.Error) as raised:
        con.execute(
            f"SELECT * FROM ML.EVALUATE(MODEL nest.lin, (SELECT x, s, {long} AS v, y FROM"
            " nest.new))"
        ).fetchall()
    assert raised.value.sqlstate == "22023"


def _refused(con: sqlml.Connection, query: str, options: str = MODELS["lin"]) -> str:
    with pytest.raises(errors.Error) as raised:
        con.execute(f"CREATE OR REPLACE MODEL nest.bad OPTIONS ({options}) AS {query}")
    return str(raised.value.sqlstate)


def test_refusals(nest: tuple[sqlml.Connection, str]) -> None:
    """A STRUCT inside a STRUCT and an ARRAY of booleans are 0A000 (BigQuery refuses the first;
    sqlml multi-hot encodes ARRAYs of strings only: tests/test_ngrams.py), arrays of several
    lengths 22000, and a column of another type where the model was trained on a STRUCT
    42804."""
    con, engine = nest
    if engine == "postgres":
        con.execute("CREATE TYPE nest.outer_pair AS (p nest.pair, c double precision)")
        deep = "ROW(ROW(1.0, 'x')::nest.pair, 2.0)::nest.outer_pair"
        words, ragged = (
            "ARRAY[TRUE, FALSE]",
            "CASE WHEN i % 2 = 0 THEN ARRAY[1.0] ELSE ARRAY[1.0, 2.0] END",
        )
    else:
        deep = "{'p': {'a': 1.0, 'b': 'x'}, 'c': 2.0}"
        words, ragged = "[TRUE, FALSE]", "CASE WHEN i % 2 = 0 THEN [1.0] ELSE [1.0, 2.0] END"
    assert _refused(con, f"SELECT {deep} AS d, y FROM nest.train") == "0A000"
    assert _refused(con, f"SELECT {words} AS w, y FROM nest.train") == "0A000"
    assert _refused(con, f"SELECT {ragged} AS r, y FROM nest.train") == "22000"
    if engine == "postgres":  # an anonymous ROW(...): its fields have no names
        assert _refused(con, "SELECT ROW(x, 'a') AS r, y FROM nest.train") == "22023"
    with pytest.raises(errors.Error) as raised:
        con.execute(
            "SELECT * FROM ML.PREDICT(MODEL nest.lin, (SELECT x, 'text' AS s, v FROM nest.new))"
        ).fetchall()
    assert raised.value.sqlstate == "42804"


def test_boosted_tree_with_a_struct(nest: tuple[sqlml.Connection, str]) -> None:
    """A boosted tree over a STRUCT predicts as the same model over the fields as columns of
    their own (label encoding of s_b included), compiled and runtime alike."""
    con, engine = nest
    fields = "(s).a AS s_a, (s).b AS s_b" if engine == "postgres" else "s.a AS s_a, s.b AS s_b"
    options = "model_type = 'boosted_tree_regressor', input_label_cols = ['y'], max_iterations = 5"
    con.execute(
        f"CREATE OR REPLACE MODEL nest.bt OPTIONS ({options}) AS SELECT x, s, y FROM nest.train"
    )
    con.execute(
        f"CREATE OR REPLACE MODEL nest.bt_flat OPTIONS ({options}) AS"
        f" SELECT x, {fields}, y FROM nest.train"
    )
    flat = con.execute(
        f"SELECT i, predicted_y FROM ML.PREDICT(MODEL nest.bt_flat, (SELECT i, x, {fields} FROM"
        " nest.new)) ORDER BY i"
    ).fetchall()
    expected = np.array([row[1] for row in flat], dtype=float)
    for scoring in ("compiled", "runtime"):
        got = np.array(_predict(con, "bt", scoring, "predicted_y"), dtype=float)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_postgres_array_shapes(nest: tuple[sqlml.Connection, str]) -> None:
    """PostgreSQL's other one-dimensional arrays of numbers (int2vector's ``1 2``, other lower
    bounds) train as the same float8[] would; several dimensions are 0A000 (on DuckDB, whose
    arrays have one lower bound and no vectors, a list of lists)."""
    con, engine = nest
    if engine == "duckdb":
        deep = "SELECT [[1.0, 2.0], [3.0, y]]::DOUBLE[][] AS w, y FROM nest.train"
        assert _refused(con, deep) == "0A000"
        return
    options = "model_type = 'linear_reg', input_label_cols = ['y']"
    weights = {}
    for name, array in (
        ("plain", "ARRAY[i % 5, i % 3]::float8[]"),
        ("vector", "((i % 5)::text || ' ' || (i % 3)::text)::int2vector"),
        ("bounds", "('[0:1]={' || (i % 5)::text || ',' || (i % 3)::text || '}')::float8[]"),
    ):
        con.execute(
            f"CREATE OR REPLACE MODEL nest.shape_{name} OPTIONS ({options}) AS"
            f" SELECT {array} AS w, y FROM nest.train"
        )
        weights[name] = con.execute(
            f"SELECT processed_input, weight FROM ML.WEIGHTS(MODEL nest.shape_{name})"
            " ORDER BY processed_input"
        ).fetchall()
    names = [row[0] for row in weights["plain"]]
    assert names == ["__INTERCEPT__", "w_1", "w_2"]
    for other in ("vector", "bounds"):
        assert [row[0] for row in weights[other]] == names
        plain = [row[1] for row in weights["plain"]]
        assert [row[1] for row in weights[other]] == pytest.approx(plain, rel=1e-9)
    deep = "SELECT ARRAY[[1.0, 2.0], [3.0, 4.0]]::float8[] AS w, y FROM nest.train"
    assert _refused(con, deep) == "0A000"
