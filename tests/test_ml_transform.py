"""ML.TRANSFORM(MODEL m, {TABLE t | (query)}) (issue 13): the TRANSFORM clause's outputs with the
statistics learned in training, on both engines and through the gateway, against scikit-learn's
scalers fitted independently on the same training rows, and BigQuery's column types.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import load_shop, shop_tables
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

import sqlml
from sqlml import errors

Array = np.ndarray[Any, Any]
MODEL = """
CREATE MODEL shop.tf
  TRANSFORM (
    ML.STANDARD_SCALER(tenure) OVER () AS tenure_std,
    ML.MIN_MAX_SCALER(spend) OVER () AS spend_mm,
    ML.MAX_ABS_SCALER(spend) OVER () AS spend_ma,
    ML.ONE_HOT_ENCODER(plan) OVER () AS plan_oh,
    ML.LABEL_ENCODER(plan) OVER () AS plan_le,
    ML.BUCKETIZE(tenure, [12, 24, 48]) AS tenure_bin,
    ML.IMPUTER(plan, 'most_frequent') OVER () AS plan_filled,
    tenure * 12 AS months,
    promo,
    value)
  OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])
AS SELECT tenure, spend, plan, promo, value FROM shop.customers
"""
OUTPUTS = [
    "tenure_std",
    "spend_mm",
    "spend_ma",
    "plan_oh",
    "plan_le",
    "tenure_bin",
    "plan_filled",
    "months",
    "promo",
]
SPLITS = [12.0, 24.0, 48.0]


def _connect(engine: str, request: pytest.FixtureRequest, folder: Path) -> tuple[Any, str]:
    if engine == "postgres":
        import os

        import pgcluster

        server = str(request.getfixturevalue("pg_server"))
        name = f"sqlml_tf_{os.getpid()}"
        database = pgcluster.create_database(server, name, template="sqlml_template")
        return sqlml.connect(database, autocommit=True), name
    connection = sqlml.connect(str(folder / "t.duckdb"), autocommit=True)
    load_shop(connection)
    return connection, ""


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """One connection and one trained model per engine for the whole module."""
    connection, name = _connect(request.param, request, tmp_path_factory.mktemp("tf"))
    connection.execute(MODEL)
    connection.execute(
        "CREATE MODEL shop.plain OPTIONS (model_type = 'linear_reg', input_label_cols ="
        " ['value']) AS SELECT tenure, spend, value FROM shop.customers"
    )
    yield connection
    connection.close()
    if name:
        import pgcluster

        pgcluster.drop_database(str(request.getfixturevalue("pg_server")), name)


def _column(table: Any, name: str) -> Array:
    return np.array([np.nan if v is None else v for v in table.column(name).to_pylist()], float)


def _rows(con: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql)
    return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]


def _by_name(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _scaled(scaler: Any, train: Array, new: Array) -> Array:
    """scikit-learn's scaler fitted on the training rows (it leaves NaN out of the fit); a NULL
    input takes the value the model uses for it: the training mean, scaled."""
    scaler.fit(train.reshape(-1, 1))
    filled = np.where(np.isnan(new), np.nanmean(train), new)
    return np.asarray(scaler.transform(filled.reshape(-1, 1))).ravel()


def test_scalers_and_encoders_match_independent_computation(shop: sqlml.Connection) -> None:
    names, rows = _rows(
        shop, "SELECT * FROM ML.TRANSFORM(MODEL shop.tf, TABLE shop.new_customers) ORDER BY id"
    )
    got = _by_name(names, rows)
    tables = shop_tables()
    train, new = tables["customers"], tables["new_customers"]
    tenure, spend = _column(new, "tenure"), _column(new, "spend")
    expected_std = _scaled(StandardScaler(), _column(train, "tenure"), tenure)
    np.testing.assert_allclose(got["tenure_std"], expected_std, rtol=1e-9)
    expected_mm = _scaled(MinMaxScaler(), _column(train, "spend"), spend)
    np.testing.assert_allclose(got["spend_mm"], expected_mm, rtol=1e-9)
    expected_ma = _scaled(MaxAbsScaler(), _column(train, "spend"), spend)
    np.testing.assert_allclose(got["spend_ma"], expected_ma, rtol=1e-9)
    plans = new.column("plan").to_pylist()
    vocabulary = sorted({p for p in train.column("plan").to_pylist() if p is not None})
    index = [vocabulary.index(p) + 1 if p in vocabulary else 0 for p in plans]
    assert [_one_hot(v) for v in got["plan_oh"]] == [[(i, 1.0)] for i in index]
    assert got["plan_le"] == index
    bins = np.searchsorted(SPLITS, tenure, side="right") + 1
    assert got["tenure_bin"] == [f"bin_{b}" for b in bins]
    counts = {p: train.column("plan").to_pylist().count(p) for p in vocabulary}
    most = max(vocabulary, key=lambda p: (counts[p], [-ord(c) for c in p]))
    assert got["plan_filled"] == [most if p is None else p for p in plans]
    np.testing.assert_allclose(got["months"], tenure * 12, rtol=1e-12)
    assert got["promo"] == new.column("promo").to_pylist()
    assert got["id"] == new.column("id").to_pylist()


def _one_hot(value: Any) -> list[tuple[int, float]]:
    """An ARRAY<STRUCT<index, value>> as (index, value) pairs (a DuckDB list of dicts, or the
    decoded jsonb of PostgreSQL)."""
    return [(int(item["index"]), float(item["value"])) for item in value]


def test_columns_and_types_as_bigquery(shop: sqlml.Connection) -> None:
    """The TRANSFORM's outputs in its order (the label's own item left out), then the input's
    columns the model does not read; each value of its BigQuery type."""
    names, rows = _rows(
        shop,
        "SELECT * FROM ML.TRANSFORM(MODEL shop.tf, (SELECT * FROM shop.customers WHERE id < 5))",
    )
    assert names == [*OUTPUTS, "id", "churned", "segment", "value"]
    first = dict(zip(names, rows[0], strict=True))
    kinds = {
        "tenure_std": float,
        "spend_mm": float,
        "spend_ma": float,
        "plan_oh": list,
        "plan_le": int,
        "tenure_bin": str,
        "plan_filled": str,
        "months": float,
        "promo": bool,
        "id": int,
        "churned": bool,
        "segment": str,
        "value": float,
    }
    assert {n: type(first[n]) for n in names} == kinds
    assert set(first["plan_oh"][0]) == {"index", "value"}


def test_a_query_with_expressions_and_filters(shop: sqlml.Connection) -> None:
    _, rows = _rows(
        shop,
        "SELECT t.tenure_bin, count(*) AS n FROM ML.TRANSFORM(MODEL shop.tf,"
        " (SELECT tenure, spend, plan, promo FROM shop.customers)) AS t"
        " GROUP BY t.tenure_bin ORDER BY t.tenure_bin",
    )
    tenure = _column(shop_tables()["customers"], "tenure")
    bins, counts = np.unique(np.searchsorted(SPLITS, tenure, side="right") + 1, return_counts=True)
    assert rows == [(f"bin_{b}", int(c)) for b, c in zip(bins, counts, strict=True)]


def test_a_model_without_transform_is_refused(shop: sqlml.Connection) -> None:
    assert shop.execute("SELECT * FROM ML.TRANSFORM(MODEL shop.tf, TABLE shop.new_customers)")
    with pytest.raises(errors.Error) as caught:
        shop.execute("SELECT * FROM ML.TRANSFORM(MODEL shop.plain, TABLE shop.new_customers)")
    assert caught.value.sqlstate == "0A000"


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        (
            "SELECT * FROM ML.TRANSFORM(MODEL shop.tf, (SELECT tenure, promo FROM shop.customers))",
            "42703",
        ),
        (
            "SELECT * FROM ML.TRANSFORM(MODEL shop.tf,"
            " (SELECT plan AS tenure, spend, plan, promo FROM shop.customers))",
            "42804",
        ),
        ("SELECT * FROM ML.TRANSFORM(MODEL shop.nope, TABLE shop.new_customers)", "42704"),
        ("SELECT * FROM ML.TRANSFORM(MODEL shop.tf)", "42601"),
        ("SELECT * FROM ML.TRANSFORM(MODEL shop.tf, TABLE shop.nope)", "42P01"),
    ],
)
def test_bad_input(shop: sqlml.Connection, sql: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as caught:
        shop.execute(sql)
    assert caught.value.sqlstate == sqlstate
    assert shop.execute("SELECT 1").fetchall() == [(1,)]  # the session goes on


def test_feature_cross_outputs_are_refused(shop: sqlml.Connection) -> None:
    shop.execute(
        "CREATE OR REPLACE MODEL shop.crossed TRANSFORM (ML.FEATURE_CROSS(STRUCT(plan, segment))"
        " AS ps, value) OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT plan, segment, value FROM shop.customers"
    )
    assert shop.execute("SELECT * FROM ML.TRANSFORM(MODEL shop.tf, TABLE shop.customers)")
    with pytest.raises(errors.Error) as caught:
        shop.execute("SELECT * FROM ML.TRANSFORM(MODEL shop.crossed, TABLE shop.customers)")
    assert caught.value.sqlstate == "0A000"


def test_struct_and_array_outputs(shop: sqlml.Connection) -> None:
    """ML.POLYNOMIAL_EXPAND's STRUCT and ML.NORMALIZER's ARRAY<FLOAT64>."""
    shop.execute(
        "CREATE OR REPLACE MODEL shop.expanded TRANSFORM ("
        " ML.POLYNOMIAL_EXPAND(STRUCT(tenure AS a, tenure + 1 AS b)) AS poly,"
        " ML.NORMALIZER([tenure, tenure + 1]) AS unit, value)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT tenure, value FROM shop.customers"
    )
    _, rows = _rows(
        shop,
        "SELECT poly, unit FROM ML.TRANSFORM(MODEL shop.expanded,"
        " (SELECT id, tenure FROM shop.new_customers)) ORDER BY id LIMIT 20",
    )
    tenure = _column(shop_tables()["new_customers"], "tenure")[:20]
    for (poly, unit), a in zip(rows, tenure, strict=True):
        b = a + 1
        assert poly == pytest.approx({"a": a, "a_a": a * a, "a_b": a * b, "b": b, "b_b": b * b})
        norm = np.hypot(a, b)
        assert list(unit) == pytest.approx([a / norm, b / norm])


def test_through_every_front_door(con: Any) -> None:
    """sqlml.connect and the gateway (psycopg 3), over both engines: the same entry."""
    con.execute(
        "CREATE MODEL shop.small TRANSFORM (ML.STANDARD_SCALER(tenure) OVER () AS t, value)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT tenure, value FROM shop.customers"
    )
    cursor = con.execute(
        "SELECT t, id FROM ML.TRANSFORM(MODEL shop.small, TABLE shop.new_customers) ORDER BY id"
    )
    assert [d[0] for d in cursor.description] == ["t", "id"]
    got = [row[0] for row in cursor.fetchall()]
    tables = shop_tables()
    expected = _scaled(
        StandardScaler(),
        _column(tables["customers"], "tenure"),
        _column(tables["new_customers"], "tenure"),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-9)
