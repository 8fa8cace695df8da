"""Data monitoring (issue 14; docs/sql.md, "Data monitoring"): the statistics stored with each
trained version, ML.DESCRIBE_DATA, ML.VALIDATE_DATA_SKEW, ML.VALIDATE_DATA_DRIFT and CREATE
MODEL's validate_data, on DuckDB and PostgreSQL. Values are checked against numpy and scipy on
distributions built in SQL (known shares, a shifted range), read back as rows."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import test_pgprivileges
from conftest import ENGINES, module_database
from scipy.spatial.distance import jensenshannon

import sqlml

N = 2000
X = "CAST((i * 37) % 1000 AS DOUBLE PRECISION) / 10.0"


def _rows(x: str, shares: tuple[int, int]) -> str:
    """x, a category c (a below shares[0] tenths, b below shares[1], else c), an integer n with
    NULLs and the label y."""
    a, b = shares
    return (
        f"SELECT {x} AS x,"
        f" CASE WHEN i % 10 < {a} THEN 'a' WHEN i % 10 < {b} THEN 'b' ELSE 'c' END AS c,"
        " CASE WHEN i % 4 = 0 THEN NULL ELSE i % 7 END AS n,"
        f" 2 * ({x}) + CAST(i % 5 AS DOUBLE PRECISION) AS y"
        f" FROM generate_series(1, {N}) AS g(i)"
    )


BASE = _rows(X, (6, 9))  # c: a 60%, b 30%, c 10%
SHIFTED = _rows(f"{X} * 0.5 + 60.0", (2, 5))  # x in [60, 110); c: a 20%, b 30%, c 50%
roles = test_pgprivileges.roles  # the fixture: two ordinary login roles
TRAIN = "CREATE MODEL mon.m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"


@pytest.fixture(scope="module", params=ENGINES)
def mon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """A database with mon.base, mon.shifted and the model mon.m trained on mon.base."""
    with module_database(str(request.param), request, tmp_path_factory, "mon") as database:
        con = sqlml.connect(database, autocommit=True)
        con.execute("CREATE SCHEMA mon")
        con.execute(f"CREATE TABLE mon.base AS {BASE}")
        con.execute(f"CREATE TABLE mon.shifted AS {SHIFTED}")
        con.execute(f"{TRAIN} AS SELECT x, c, n, y FROM mon.base")
        try:
            yield con
        finally:
            con.close()


def _all(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return list(con.execute(sql).fetchall())


def _column(con: Any, table: str, name: str) -> np.ndarray[Any, Any]:
    values = [r[0] for r in _all(con, f"SELECT {name} FROM {table}") if r[0] is not None]
    return np.asarray(values, dtype=np.float64)


def _state(con: Any, sql: str) -> str | None:
    try:
        con.execute(sql).fetchall()
    except sqlml.Error as e:
        return e.sqlstate
    return None


def _js(base: np.ndarray[Any, Any], study: np.ndarray[Any, Any], buckets: int = 10) -> float:
    """TFDV's Jensen-Shannon divergence, written out here: each side's equal-width histogram
    (np.histogram over its own range), both spread evenly onto the union of their edges, then
    scipy's distance (base 2) squared."""
    a_counts, a_edges = np.histogram(base, buckets)
    b_counts, b_edges = np.histogram(study, buckets)
    union = np.union1d(a_edges, b_edges)

    def spread(counts: Any, edges: Any) -> list[float]:
        out = []
        for lo, hi in itertools.pairwise(union):
            total = 0.0
            for c, e0, e1 in zip(counts, edges[:-1], edges[1:], strict=True):
                overlap = max(0.0, min(hi, e1) - max(lo, e0))
                total += c * overlap / (e1 - e0)
            out.append(total)
        return out

    p, q = spread(a_counts, a_edges), spread(b_counts, b_edges)
    return float(jensenshannon(p, q, base=2) ** 2)


def _linf(base: list[str], study: list[str]) -> float:
    keys = set(base) | set(study)
    return max(abs(base.count(k) / len(base) - study.count(k) / len(study)) for k in keys)


def _by_input(rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {r[0]: r for r in rows}


# -- training statistics ---------------------------------------------------------------------------


def test_training_stores_statistics_of_every_column_and_the_label(mon: sqlml.Connection) -> None:
    rows = _all(mon, "SELECT version, statistics FROM sqlml.version_statistics")
    assert [r[0] for r in rows] == [1]
    stats = json.loads(rows[0][1])
    assert stats["label"] == "y"
    assert set(stats["columns"]) == {"x", "c", "n", "y"}
    x = _column(mon, "mon.base", "x")
    got = stats["columns"]["x"]
    assert got["num_rows"] == N
    assert got["num_nulls"] == 0
    assert got["mean"] == pytest.approx(x.mean())
    assert got["stdev"] == pytest.approx(x.std(ddof=1))
    assert got["histogram"]["counts"] == list(np.histogram(x, np.linspace(x.min(), x.max(), 11))[0])
    n = stats["columns"]["n"]
    assert n["num_nulls"] == N // 4
    assert n["type"] == "numerical"
    c = stats["columns"]["c"]
    assert c["type"] == "categorical"
    assert c["unique"] == 3
    assert c["top_values"] == [["a", 1200], ["b", 600], ["c", 200]]


def test_feature_info_agrees_with_the_stored_statistics(mon: sqlml.Connection) -> None:
    stats = json.loads(_all(mon, "SELECT statistics FROM sqlml.version_statistics")[0][0])
    info = _by_input(
        _all(
            mon,
            "SELECT input, min, max, mean, median, null_count FROM ML.FEATURE_INFO(MODEL mon.m)",
        )
    )
    for name in ("x", "n"):
        s = stats["columns"][name]
        _, lo, hi, mean, median, nulls = info[name]
        assert (lo, hi, nulls) == (s["min"], s["max"], s["num_nulls"])
        assert mean == pytest.approx(s["mean"])
        assert median == pytest.approx(s["median"])
    assert info["c"][5] == stats["columns"]["c"]["num_nulls"] == 0


# -- ML.DESCRIBE_DATA ------------------------------------------------------------------------------


def test_describe_data_defaults(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT name, num_rows, num_nulls, num_zeros, min, max, mean, stdev, median,"
            ' quantiles, "unique", avg_string_length, num_values, top_values'
            " FROM ML.DESCRIBE_DATA(TABLE mon.base)",
        )
    )
    assert list(rows) == ["x", "c", "n", "y"]
    x = _column(mon, "mon.base", "x")
    _, num_rows, nulls, zeros, lo, hi, mean, stdev, median, quantiles = rows["x"][:10]
    assert (num_rows, nulls, zeros) == (N, 0, int((x == 0).sum()))
    assert (float(lo), float(hi)) == (x.min(), x.max())
    assert mean == pytest.approx(x.mean())
    assert stdev == pytest.approx(x.std(ddof=1))
    assert median == pytest.approx(np.median(x))
    assert quantiles == pytest.approx(list(np.quantile(x, [0, 0.5, 1])))  # num_quantiles 2
    n = rows["n"]
    assert (n[2], n[12], n[4]) == (N // 4, N - N // 4, "0")  # integers shown as integers
    c = rows["c"]
    assert (c[10], c[11], c[12]) == (3, 1.0, N)
    assert c[6] is None
    assert c[9] is None
    assert _top(c[13]) == [("a", 1200)]  # top_k 1


def _top(value: Any) -> list[tuple[str, int]]:
    items = json.loads(value) if isinstance(value, str) else value
    return [(item["value"], item["count"]) for item in items]


def test_describe_data_settings(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT name, quantiles, top_values FROM ML.DESCRIBE_DATA("
            "(SELECT x, c FROM mon.base WHERE x < 50), STRUCT(4 AS num_quantiles, 2 AS top_k))",
        )
    )
    x = _column(mon, "mon.base", "x")
    x = x[x < 50]
    assert rows["x"][1] == pytest.approx(list(np.quantile(x, np.linspace(0, 1, 5))))
    assert _top(rows["c"][2]) == [("a", 600), ("b", 300)]


@pytest.mark.parametrize(
    ("sql", "state"),
    [
        ("ML.DESCRIBE_DATA(TABLE mon.base, STRUCT(0 AS num_quantiles))", "22023"),
        ("ML.DESCRIBE_DATA(TABLE mon.base, STRUCT(2 AS num_quantile))", "22023"),
        ("ML.DESCRIBE_DATA(TABLE mon.base, STRUCT('2' AS top_k))", "22023"),
        ("ML.DESCRIBE_DATA(MODEL mon.m, TABLE mon.base)", "42601"),
        ("ML.DESCRIBE_DATA(TABLE mon.base, TABLE mon.base)", "42601"),
        ("ML.VALIDATE_DATA_SKEW(TABLE mon.base)", "42601"),
        ("ML.VALIDATE_DATA_SKEW(MODEL mon.nope, TABLE mon.base)", "42704"),
        ("ML.VALIDATE_DATA_SKEW(MODEL mon.m VERSION 9, TABLE mon.base)", "42704"),
        ("ML.VALIDATE_DATA_SKEW(MODEL mon.m, (SELECT 1 AS other))", "42703"),
        (
            "ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.base,"
            " STRUCT([STRUCT('nope' AS name, 0.1 AS threshold)] AS thresholds))",
            "22023",
        ),
        (
            "ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.base,"
            " STRUCT([STRUCT('x' AS name, 1.5 AS threshold)] AS thresholds))",
            "22023",
        ),
        (
            "ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.base,"
            " STRUCT(-0.1 AS numerical_default_threshold))",
            "22023",
        ),
        (
            "ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.base,"
            " STRUCT('L_INFTY' AS numerical_metric_type))",
            "22023",
        ),
        ("ML.VALIDATE_DATA_DRIFT(TABLE mon.base)", "42601"),
        (
            "ML.VALIDATE_DATA_DRIFT(TABLE mon.base, TABLE mon.shifted, STRUCT(0 AS num_histogram_buckets))",
            "22023",
        ),
    ],
)
def test_refusals(mon: sqlml.Connection, sql: str, state: str) -> None:
    assert _state(mon, f"SELECT * FROM {sql}") == state
    assert _all(mon, "SELECT 1") == [(1,)]  # the session goes on


# -- ML.VALIDATE_DATA_SKEW / DRIFT -----------------------------------------------------------------


def test_skew_of_the_training_rows_is_zero(mon: sqlml.Connection) -> None:
    rows = _all(mon, "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.base)")
    assert rows == [
        ("c", "L_INFTY", 0.3, 0.0, False),
        ("n", "JENSEN_SHANNON_DIVERGENCE", 0.3, 0.0, False),
        ("x", "JENSEN_SHANNON_DIVERGENCE", 0.3, 0.0, False),
    ]  # the label is not a feature


def test_skew_of_shifted_rows_against_scipy(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(mon, "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.shifted)")
    )
    expected = _js(_column(mon, "mon.base", "x"), _column(mon, "mon.shifted", "x"))
    assert rows["x"][3] == pytest.approx(expected, abs=1e-12)
    assert rows["x"][4] is True
    base = [r[0] for r in _all(mon, "SELECT c FROM mon.base")]
    study = [r[0] for r in _all(mon, "SELECT c FROM mon.shifted")]
    assert rows["c"][3] == pytest.approx(_linf(base, study)) == pytest.approx(0.4)
    assert rows["c"][4] is True
    assert rows["n"][3] == 0.0
    assert rows["n"][4] is False


def test_skew_thresholds_per_feature_and_default(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL mon.m, TABLE mon.shifted, STRUCT("
            "0.5 AS categorical_default_threshold, 0.01 AS numerical_default_threshold,"
            " [STRUCT('X' AS name, 1.0 AS threshold)] AS thresholds))",
        )
    )
    assert (rows["c"][2], rows["c"][4]) == (0.5, False)  # 0.4 <= 0.5
    assert (rows["x"][2], rows["x"][4]) == (1.0, False)  # the feature's own
    assert (rows["n"][2], rows["n"][4]) == (0.01, False)


def test_skew_of_a_version(mon: sqlml.Connection) -> None:
    rows = _all(
        mon, "SELECT input, value FROM ML.VALIDATE_DATA_SKEW(MODEL mon.m VERSION 1, TABLE mon.base)"
    )
    assert [v for _, v in rows] == [0.0, 0.0, 0.0]


def test_drift_against_scipy(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE mon.base,"
            " (SELECT x, c FROM mon.shifted), STRUCT(5 AS num_histogram_buckets))",
        )
    )
    assert sorted(rows) == ["c", "x"]
    expected = _js(_column(mon, "mon.base", "x"), _column(mon, "mon.shifted", "x"), 5)
    assert rows["x"][3] == pytest.approx(expected, abs=1e-12)
    assert rows["c"][3] == pytest.approx(0.4)
    assert rows["c"][4] is True
    same = _all(mon, "SELECT value FROM ML.VALIDATE_DATA_DRIFT(TABLE mon.base, TABLE mon.base)")
    assert [v for (v,) in same] == [0.0] * 4


def test_drift_categorical_js(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT * FROM ML.VALIDATE_DATA_DRIFT((SELECT c FROM mon.base), (SELECT c FROM"
            " mon.shifted), STRUCT('JENSEN_SHANNON_DIVERGENCE' AS categorical_metric_type))",
        )
    )
    expected = jensenshannon([6, 3, 1], [2, 3, 5], base=2) ** 2
    assert rows["c"][1] == "JENSEN_SHANNON_DIVERGENCE"
    assert rows["c"][3] == pytest.approx(expected)


# -- validate_data at training ----------------------------------------------------------------------


def _versions(con: Any, model: str) -> list[tuple[Any, ...]]:
    return _all(con, f"SELECT version, status, data_warnings FROM ML.VERSIONS(MODEL {model})")


def test_validate_data_warns_and_stores_the_findings(mon: sqlml.Connection) -> None:
    mon.execute(
        "CREATE MODEL mon.w OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT x, c, y FROM mon.base"
    )
    messages: list[str] = []
    mon.set_progress(messages.append)
    try:
        mon.execute(
            "CREATE OR REPLACE MODEL mon.w OPTIONS (model_type = 'linear_reg',"
            " input_label_cols = ['y']) AS SELECT x, c, y FROM mon.base"
        )
        assert not [m for m in messages if m.startswith("validate_data")]
        mon.execute(
            "CREATE OR REPLACE MODEL mon.w OPTIONS (model_type = 'linear_reg',"
            " input_label_cols = ['y']) AS SELECT x, c, n, y FROM mon.shifted"
        )
    finally:
        mon.set_progress(None)
    said = [m for m in messages if m.startswith("validate_data")]
    assert any("column n is new" in m for m in said), said
    assert any("label shift in column y" in m for m in said), said
    versions = _versions(mon, "mon.w")
    assert [(v, s) for v, s, _ in versions] == [(1, "available"), (2, "available"), (3, "serving")]
    assert versions[0][2] is None
    assert versions[1][2] is None
    found = {(f["input"], f["kind"]) for f in json.loads(versions[2][2])}
    assert {("n", "added"), ("x", "distribution_shift"), ("c", "distribution_shift")} <= found
    assert ("y", "label_shift") in found


def test_validate_data_error_keeps_the_serving_version(mon: sqlml.Connection) -> None:
    mon.execute(
        "CREATE MODEL mon.e OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT x, c, y FROM mon.base"
    )
    strict = (
        "CREATE OR REPLACE MODEL mon.e OPTIONS (model_type = 'linear_reg',"
        " input_label_cols = ['y'], validate_data = 'error') AS SELECT x, c, y FROM "
    )
    assert _state(mon, strict + "mon.shifted") == "22000"
    assert _state(mon, strict.replace("x, c, y", "x, y") + "mon.base") == "22000"  # c removed
    assert [(v, s) for v, s, _ in _versions(mon, "mon.e")] == [(1, "serving")]
    mon.execute(strict + "mon.base")  # the same data passes
    options = _all(mon, "SELECT options FROM ML.VERSIONS(MODEL mon.e) WHERE version = 2")
    assert json.loads(options[0][0])["validate_data"] == "error"
    off = strict.replace("'error'", "'off'") + "mon.shifted"
    mon.execute(off)
    assert [(v, w) for v, _, w in _versions(mon, "mon.e")][-1] == (3, None)
    bad = strict.replace("'error'", "'sometimes'") + "mon.base"
    assert _state(mon, bad) == "22023"


def test_skew_of_an_imported_model_is_55000(tmp_path: Path) -> None:
    import test_byom

    path = test_byom._write(test_byom._fit("regressor"), tmp_path / "reg.onnx")
    con = test_byom._duckdb(tmp_path)
    try:
        con.execute(test_byom._create(path, "imported"))
        sql = "SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL imported, TABLE rows)"
        assert _state(con, sql) == "55000"
    finally:
        con.close()


@pytest.mark.parametrize("front", ["duckdb-gateway", "postgres-gateway"])
def test_through_the_gateway(request: pytest.FixtureRequest, tmp_path: Path, front: str) -> None:
    """psycopg 3 through sqlml serve: the functions' rows and validate_data's refusal."""
    from conftest import front_connection

    engine = front.partition("-")[0]
    database = (
        str(request.getfixturevalue("pg_database"))
        if engine == "postgres"
        else str(tmp_path / "gw.duckdb")
    )
    with front_connection(front, database) as con:
        con.execute(
            "CREATE MODEL shop.g OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned']) AS SELECT tenure, plan, churned FROM shop.customers"
        )
        described = _all(
            con, "SELECT name, num_rows FROM ML.DESCRIBE_DATA(TABLE shop.new_customers)"
        )
        assert [r[1] for r in described] == [200] * 5
        skew = _all(
            con,
            "SELECT input, value, is_anomaly FROM ML.VALIDATE_DATA_SKEW(MODEL shop.g,"
            " (SELECT tenure, plan FROM shop.customers))",
        )
        assert skew == [("plan", 0.0, False), ("tenure", 0.0, False)]
        refused = (
            "CREATE OR REPLACE MODEL shop.g OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned'], validate_data = 'error')"
            " AS SELECT tenure + 100 AS tenure, plan, churned FROM shop.customers"
        )
        assert _state(con, refused) == "22000"
        versions = _all(con, "SELECT version, status FROM ML.VERSIONS(MODEL shop.g)")
        assert versions == [(1, "serving")]


def test_describe_data_of_other_types_and_edge_cases(mon: sqlml.Connection) -> None:
    rows = _by_input(
        _all(
            mon,
            "SELECT name, num_rows, num_nulls, min, max, mean, top_values FROM ML.DESCRIBE_DATA(("
            "SELECT CAST('2026-01-0' || CAST(i AS VARCHAR) AS DATE) AS d,"
            " CAST(NULL AS VARCHAR) AS s, CAST(NULL AS DOUBLE PRECISION) AS f"
            " FROM generate_series(1, 3) AS g(i)))",
        )
    )
    assert rows["d"][1:5] == (3, 0, "2026-01-01", "2026-01-03")
    assert rows["s"][1:3] == (3, 3)
    assert rows["s"][3] is None
    assert rows["f"][1:3] == (3, 3)
    assert rows["f"][5] is None
    empty = _all(
        mon, "SELECT name, num_rows FROM ML.DESCRIBE_DATA((SELECT x FROM mon.base WHERE x < 0))"
    )
    assert empty == [("x", 0)]


def test_parameters_in_the_rows(mon: sqlml.Connection) -> None:
    """ML.DESCRIBE_DATA is the engine's SQL: a parameter binds as in any query; the validate
    functions read the rows before the statement runs: 0A000."""
    rows = "(SELECT x FROM mon.base WHERE x < ?)"
    described = mon.execute(f"SELECT num_rows FROM ML.DESCRIBE_DATA({rows})", [5.0]).fetchall()
    assert described == [(int((_column(mon, "mon.base", "x") < 5).sum()),)]
    with pytest.raises(sqlml.Error) as caught:
        mon.execute(f"SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE mon.base, {rows})", [5.0])
    assert caught.value.sqlstate == "0A000"


def test_statistics_go_with_their_version(mon: sqlml.Connection) -> None:
    create = "CREATE OR REPLACE MODEL mon.d OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
    mon.execute(f"{create} AS SELECT x, y FROM mon.base")
    mon.execute(f"{create} AS SELECT x, y FROM mon.base")
    count = "SELECT version FROM sqlml.version_statistics WHERE model_name = 'd' ORDER BY 1"
    assert _all(mon, count) == [(1,), (2,)]
    mon.execute("ALTER MODEL mon.d DEPLOY VERSION 1")
    mon.execute("DROP MODEL mon.d VERSION 2")
    assert _all(mon, count) == [(1,)]
    mon.execute("DROP MODEL mon.d")
    assert _all(mon, count) == []


def test_validate_data_with_transform(mon: sqlml.Connection) -> None:
    """The statistics are the query's columns, before TRANSFORM (as BigQuery's)."""
    create = (
        "CREATE OR REPLACE MODEL mon.t TRANSFORM (ML.STANDARD_SCALER(x) OVER () AS xs, y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'], validate_data = 'error')"
    )
    mon.execute(f"{create} AS SELECT x, y FROM mon.base")
    stats = _all(mon, "SELECT statistics FROM sqlml.version_statistics WHERE model_name = 't'")
    assert set(json.loads(stats[0][0])["columns"]) == {"x", "y"}
    assert _state(mon, f"{create} AS SELECT x, y FROM mon.shifted") == "22000"
    rows = _all(mon, "SELECT input FROM ML.VALIDATE_DATA_SKEW(MODEL mon.t, TABLE mon.shifted)")
    assert rows == [("x",)]


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.5, 1.0), (0.0, 3.0), (4.0, 0.5)])
def test_js_divergence_against_scipy_on_normals(shift: float, scale: float) -> None:
    """statistics.numerical_distance on generated normal samples, against the written-out
    TFDV computation with scipy; and point masses (a column of one value)."""
    from sqlml.ml import statistics as st

    rng = np.random.default_rng(7)
    base, study = rng.normal(0, 1, 5000), rng.normal(shift, scale, 3000)
    stats = st.column(pa.chunked_array([pa.array(base)]))
    assert st.numerical_distance(stats, study) == pytest.approx(_js(base, study), abs=1e-12)
    constant = st.column(pa.chunked_array([pa.array([5.0] * 10)]))
    assert st.numerical_distance(constant, np.full(3, 5.0)) == 0.0
    assert st.numerical_distance(constant, study) == 1.0


def test_describe_data_follows_the_data_in_kept_plans_and_views(mon: sqlml.Connection) -> None:
    mon.execute("CREATE TABLE mon.grow AS SELECT 1.0 AS v")
    mon.execute(
        "CREATE VIEW mon.grow_stats AS SELECT name, num_rows FROM ML.DESCRIBE_DATA(TABLE mon.grow)"
    )
    query = "SELECT num_rows, max FROM ML.DESCRIBE_DATA(TABLE mon.grow)"
    assert [r[0] for r in _all(mon, query)] == [1]
    mon.execute("INSERT INTO mon.grow VALUES (2.5)")
    assert _all(mon, query) == [(2, _all(mon, query)[0][1])]
    assert float(_all(mon, query)[0][1]) == 2.5
    assert _all(mon, "SELECT * FROM mon.grow_stats") == [("v", 2)]


def test_postgres_ordinary_roles(roles: test_pgprivileges.Roles) -> None:
    """PostgreSQL: a role trains (the statistics written with the owner's rights), reads its
    model's skew and versions; another role sees no statistics of a model it may not use."""
    alice = sqlml.connect(roles.dsn(roles.a), autocommit=True)
    bob = sqlml.connect(roles.dsn(roles.b), autocommit=True)
    try:
        create = (
            "CREATE OR REPLACE MODEL a_models.m OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned']) AS SELECT tenure, plan, churned FROM shop.customers"
        )
        alice.execute(create)
        alice.execute(create.replace("SELECT tenure,", "SELECT tenure * 3 AS tenure,"))
        skew = _all(
            alice,
            "SELECT input, value FROM ML.VALIDATE_DATA_SKEW(MODEL a_models.m VERSION 1,"
            " (SELECT tenure, plan FROM shop.customers))",
        )
        assert skew == [("plan", 0.0), ("tenure", 0.0)]
        versions = _all(alice, "SELECT version, data_warnings FROM ML.VERSIONS(MODEL a_models.m)")
        assert versions[0][1] is None
        assert "tenure" in versions[1][1]
        seen = "SELECT count(*) FROM sqlml.version_statistics"
        assert _all(alice, seen) == [(2,)]
        assert _all(bob, seen) == [(0,)]
        assert (
            _state(bob, "INSERT INTO sqlml.version_statistics VALUES ('a', 'b', 1, '{}', NULL)")
            == "42501"
        )
    finally:
        alice.close()
        bob.close()
