"""String functions in TRANSFORM (issue 13): LOWER, UPPER, CONCAT, ||, COALESCE and CASE over
strings, trained on numpy and scored by the stored graph (compiled to SQL, and onnxruntime), on
both engines; checked against Python's own string operations and scikit-learn on the same rows. What ONNX cannot compute
as both engines do is 0A000, and a string where a number goes 42804.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression

import sqlml
from sqlml import errors

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
CITIES = ["Paris", "paris", "PARIS", "Lyon", "LYON", "Zürich", "ZÜRICH", "École", None]


def _rows(n: int = 240, seed: int = 3) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    city = [CITIES[i % len(CITIES)] for i in range(n)]
    a = [["x", "y", None, "Zz"][i % 4] for i in range(n)]
    b = [["1", "two", "Ä"][i % 3] if i % 7 else None for i in range(n)]
    x = rng.normal(0, 1, n)
    bump = {"paris": 3.0, "lyon": -2.0, "zürich": 1.0, "zÜrich": 0.5, "École": 4.0}
    y = [
        float(2 * x[i]) + bump.get((c or "").translate(ASCII_LOWER), 0.0)
        for i, c in enumerate(city)
    ]
    return {"id": list(range(n)), "city": city, "a": a, "b": b, "x": [float(v) for v in x], "y": y}


ROWS = _rows()


def _load(connection: sqlml.Connection) -> None:
    table = pa.table(ROWS)
    if connection.session.engine.dialect == "duckdb":
        engine = connection.session.engine
        engine.register_table("_rows", table)
        engine.execute("CREATE TABLE towns AS SELECT * FROM _rows")
        engine.unregister_table("_rows")
        return
    connection.execute(
        "CREATE TABLE towns (id bigint, city text, a text, b text, x double precision,"
        " y double precision)"
    )
    for row in zip(*ROWS.values(), strict=True):
        connection.execute("INSERT INTO towns VALUES (%s, %s, %s, %s, %s, %s)", list(row))


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def towns(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """One connection per engine, with the rows and two trained models, for the module."""
    import os

    name, server = "", ""
    if request.param == "postgres":
        import pgcluster

        server = str(request.getfixturevalue("pg_server"))
        name = f"sqlml_strings_{os.getpid()}"
        database = pgcluster.create_database(server, name, template="sqlml_template")
        connection = sqlml.connect(database, autocommit=True)
    else:
        connection = sqlml.connect(str(tmp_path_factory.mktemp("s") / "t.duckdb"))
        connection.autocommit = True
    _load(connection)
    connection.execute(
        "CREATE MODEL towns_lower TRANSFORM ("
        " ML.ONE_HOT_ENCODER(LOWER(city), 'none', 100, 0) OVER () AS city, x, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT city, x, y FROM towns"
    )
    connection.execute(
        "CREATE MODEL towns_text TRANSFORM ("
        " CONCAT(a, '_', b) AS ab, a || b AS piped, UPPER(city) AS loud,"
        " COALESCE(a, 'none') AS a_or_none,"
        " CASE WHEN LOWER(city) = 'paris' THEN 1.0 WHEN city IS NULL THEN -1.0 ELSE 0.0 END"
        " AS is_paris,"
        " IF(a <> 'x', LOWER(b), 'X') AS picked,"
        " ML.LABEL_ENCODER(LOWER(city), 100, 0) OVER () AS city_code, x, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT city, a, b, x, y FROM towns"
    )
    yield connection
    connection.close()
    if name:
        import pgcluster

        pgcluster.drop_database(server, name)


def _fetch(con: Any, sql: str) -> dict[str, list[Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _lower(value: str | None) -> str | None:
    return None if value is None else value.translate(ASCII_LOWER)


def test_lower_then_one_hot_matches_python(towns: sqlml.Connection) -> None:
    got = _fetch(
        towns, "SELECT city, id FROM ML.TRANSFORM(MODEL towns_lower, TABLE towns) ORDER BY id"
    )
    lowered = [_lower(c) for c in ROWS["city"]]
    vocabulary = sorted({c for c in lowered if c is not None})
    assert vocabulary == ["lyon", "paris", "zÜrich", "zürich", "École"]  # ASCII letters only
    index = [vocabulary.index(c) + 1 if c is not None else 0 for c in lowered]
    assert [[(int(e["index"]), e["value"]) for e in v] for v in got["city"]] == [
        [(i, 1.0)] for i in index
    ]


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_lower_trains_and_predicts_as_scikit_learn(towns: sqlml.Connection, scoring: str) -> None:
    """The model's predictions equal an ordinary least squares fit on the same features: the
    one-hot encoding of LOWER(city) made in Python, and x."""
    lowered = [_lower(c) for c in ROWS["city"]]
    vocabulary = sorted({c for c in lowered if c is not None})
    one_hot = np.array([[float(c == v) for v in vocabulary] for c in lowered])
    features = np.column_stack([one_hot, np.array(ROWS["x"])])
    expected = LinearRegression().fit(features, ROWS["y"]).predict(features)
    got = _fetch(
        towns,
        "SELECT predicted_y FROM ML.PREDICT(MODEL towns_lower, TABLE towns,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id",
    )
    np.testing.assert_allclose(got["predicted_y"], expected, rtol=1e-6, atol=1e-9)


def test_string_expressions_match_python(towns: sqlml.Connection) -> None:
    got = _fetch(
        towns,
        "SELECT ab, piped, loud, a_or_none, is_paris, picked, city_code, id"
        " FROM ML.TRANSFORM(MODEL towns_text, TABLE towns) ORDER BY id",
    )
    a, b, city = list(ROWS["a"]), list(ROWS["b"]), list(ROWS["city"])

    def concat(*parts: str | None) -> str:  # DuckDB's and PostgreSQL's: NULL counts as ''
        return "".join(p for p in parts if p is not None)

    assert got["ab"] == [concat(x, "_", y) for x, y in zip(a, b, strict=True)]
    assert got["piped"] == [
        None if x is None or y is None else x + y for x, y in zip(a, b, strict=True)
    ]
    assert got["loud"] == [None if c is None else c.translate(ASCII_UPPER) for c in city]
    assert got["a_or_none"] == ["none" if x is None else x for x in a]
    paris = [1.0 if _lower(c) == "paris" else -1.0 if c is None else 0.0 for c in city]
    assert got["is_paris"] == paris
    picked = [_lower(y) if x is not None and x != "x" else "X" for x, y in zip(a, b, strict=True)]
    assert got["picked"] == picked
    lowered = [_lower(c) for c in city]
    vocabulary = sorted({c for c in lowered if c is not None})
    assert got["city_code"] == [0 if c is None else vocabulary.index(c) + 1 for c in lowered]


def test_compiled_and_runtime_scoring_agree(towns: sqlml.Connection) -> None:
    """The string nodes compiled to SQL (translate, ||, =, CASE) score as onnxruntime does."""
    runs = [
        _fetch(
            towns,
            "SELECT predicted_y FROM ML.PREDICT(MODEL towns_text, TABLE towns,"
            f" STRUCT('{scoring}' AS scoring)) ORDER BY id",
        )["predicted_y"]
        for scoring in ("compiled", "runtime")
    ]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("item", "sqlstate"),
    [
        ("TRIM(a) AS t", "0A000"),
        ("SUBSTR(a, 1, 1) AS t", "0A000"),
        ("LENGTH(a) AS t", "0A000"),
        ("REPLACE(a, 'x', 'y') AS t", "0A000"),
        ("CASE WHEN a > 'x' THEN 1 ELSE 0 END AS t", "0A000"),
        ("'constant' AS t", "0A000"),
        ("LOWER(x) AS t", "42804"),
        ("CONCAT(a, x) AS t", "42804"),
        ("x + a AS t", "42804"),
        ("CASE WHEN a = 1 THEN 1 ELSE 0 END AS t", "42804"),
        ("COALESCE(a, 1) AS t", "42804"),
    ],
)
def test_what_cannot_be_computed_is_refused(
    towns: sqlml.Connection, item: str, sqlstate: str
) -> None:
    with pytest.raises(errors.Error) as caught:
        towns.execute(
            f"CREATE MODEL towns_bad TRANSFORM ({item}, y)"
            " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
            " AS SELECT a, x, y FROM towns"
        )
    assert caught.value.sqlstate == sqlstate
    with pytest.raises(errors.Error) as missing:  # nothing was stored
        towns.execute("SELECT * FROM ML.PREDICT(MODEL towns_bad, TABLE towns)")
    assert missing.value.sqlstate == "42704"


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_no_rows(towns: sqlml.Connection, scoring: str) -> None:
    """onnxruntime's StringNormalizer refuses an empty vector: no rows must not reach it."""
    got = towns.execute(
        "SELECT predicted_y FROM ML.PREDICT(MODEL towns_lower,"
        f" (SELECT * FROM towns WHERE id < 0), STRUCT('{scoring}' AS scoring))"
    ).fetchall()
    assert got == []
    assert (
        towns.execute(
            "SELECT * FROM ML.TRANSFORM(MODEL towns_text, (SELECT * FROM towns WHERE id < 0))"
        ).fetchall()
        == []
    )
