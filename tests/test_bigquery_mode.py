"""BigQuery names and the BigQuery mode (issue 12, points 1 and 2).

- Backtick paths (`` `dataset.table` ``, `` `project.dataset.table` ``) split into their parts in
  ML statements, in every mode; a project that is neither the current database nor an attached
  catalog is 3D000.
- BigQuery mode (``sqlml.connect(dialect='bigquery')``, ``sqlml run --dialect bigquery``,
  ``sqlml serve --dialect bigquery``, ``SET sqlml.dialect = 'bigquery'``): GoogleSQL transpiled
  to the engine's SQL, ``@name`` parameters bound by name, 0A000 for what cannot be written.
- The public BigQuery ML tutorials' SQL (tests/data/bigquery_tutorials), unchanged, on tables
  built with the same columns (synthetic rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import TEMPLATE, client_module, gateway_parts, serving, sqlml_serve

import sqlml
from sqlml import grammar

TUTORIALS = Path(__file__).parent / "data" / "bigquery_tutorials"
PROJECT = "bigquery-public-data"  # the tutorials' project: the database's name here


def _state(call: Any) -> str:
    with pytest.raises(sqlml.Error) as info:
        call()
    return str(info.value.sqlstate)


def _rows(con: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return list(con.cursor().execute(sql, params).fetchall())


# -- 1. backtick paths in ML statements, default mode -----------------------------------------


def test_backtick_paths_in_ml_statements(con: sqlml.Connection) -> None:
    """The tutorial's way of naming tables (`` `shop.customers` ``) in every place an ML
    statement names one: the training query, ML.PREDICT's query, TABLE arguments, the query
    around the call; before, each was one name with a dot in it (42P01)."""
    con.execute(
        "CREATE MODEL `shop.bt` OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT tenure, spend, value FROM `shop.customers`"
    )
    sql = "SELECT count(*) FROM ML.PREDICT(MODEL `shop.bt`, (SELECT * FROM `shop.new_customers`))"
    assert con.execute(sql).fetchall() == [(200,)]
    sql = "SELECT count(*) FROM ML.PREDICT(MODEL `shop.bt`, TABLE `shop.new_customers`)"
    assert con.execute(sql).fetchall() == [(200,)]
    sql = (
        "SELECT count(*) FROM ML.PREDICT(MODEL shop.bt, TABLE shop.new_customers) AS p"
        " JOIN `shop.customers` AS c ON c.id = p.id"
    )
    assert con.execute(sql).fetchall() == [(200,)]
    sql = "SELECT r2_score FROM ML.EVALUATE(MODEL `shop.bt`, TABLE `shop.customers`)"
    assert con.execute(sql).fetchall()[0][0] > 0.9


def test_three_part_names(con: sqlml.Connection, request: pytest.FixtureRequest) -> None:
    """`` `project.dataset.table` ``: the current database (DuckDB: the file's catalog, named
    after the file also behind the gateway, as in its plain SQL; PostgreSQL: the database)
    works; any other project is 3D000, not 42P01 or 0A000."""
    (database,) = con.execute("SELECT current_database()").fetchall()[0]
    if str(request.node.callspec.params["con"]).startswith("duckdb"):
        database = "test"  # conftest's test.duckdb
    con.execute(
        "CREATE MODEL shop.tp OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        f" AS SELECT tenure, value FROM `{database}.shop.customers`"
    )
    sql = f"SELECT count(*) FROM ML.PREDICT(MODEL shop.tp, TABLE `{database}.shop.customers`)"
    assert con.execute(sql).fetchall() == [(800,)]
    elsewhere = "(SELECT * FROM `nope-project.shop.customers`)"
    sql = f"SELECT * FROM ML.PREDICT(MODEL shop.tp, {elsewhere})"
    assert _state(lambda: con.execute(sql)) == "3D000"
    sql = (
        "CREATE MODEL shop.tq OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT tenure, value FROM `nope-project.shop.customers`"
    )
    assert _state(lambda: con.execute(sql)) == "3D000"
    sql = "SELECT * FROM ML.PREDICT(MODEL shop.tp, TABLE `a.b.c.d`)"
    assert _state(lambda: con.execute(sql)) == "42601"
    # a model named project.dataset.model (BigQuery's full name; was 42601)
    sql = f"SELECT count(*) FROM ML.PREDICT(MODEL `{database}.shop.tp`, TABLE shop.customers)"
    assert con.execute(sql).fetchall() == [(800,)]
    sql = "SELECT * FROM ML.PREDICT(MODEL `nope-project.shop.tp`, TABLE shop.customers)"
    assert _state(lambda: con.execute(sql)) == "3D000"
    assert _state(lambda: con.execute("DROP MODEL `nope-project.shop.tp`")) == "3D000"
    con.execute(f"DROP MODEL `{database}.shop.tp`")


def test_attached_duckdb_catalog(tmp_path: Path, shop_file: str) -> None:
    """A three-part name may name a DuckDB catalog attached to the session."""
    other = tmp_path / "warehouse.duckdb"
    with sqlml.connect(str(other), autocommit=True) as loading:
        loading.execute("CREATE SCHEMA sales")
        loading.execute(
            "CREATE TABLE sales.t AS SELECT range AS x, 2.0 * range AS y FROM range(50)"
        )
    con = sqlml.connect(shop_file, autocommit=True)
    try:
        con.execute(f"ATTACH '{other}' AS warehouse")
        con.execute(
            "CREATE MODEL shop.w OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
            " AS SELECT x, y FROM `warehouse.sales.t`"
        )
        rows = _rows(
            con, "SELECT count(*) FROM ML.PREDICT(MODEL shop.w, TABLE `warehouse.sales.t`)"
        )
        assert rows == [(50,)]
    finally:
        con.close()


# -- 2. BigQuery mode ---------------------------------------------------------------------------


@pytest.fixture
def bq(database: str) -> Iterator[sqlml.Connection]:
    """A connection in BigQuery mode on each engine, with a small table ds.people."""
    con = sqlml.connect(database, autocommit=True, dialect="bigquery")
    con.execute("CREATE SCHEMA ds")
    con.execute(
        "CREATE TABLE ds.people (id INT64, age INT64, balance FLOAT64, born DATE, name STRING)"
    )
    for row in [
        (1, 30, -40.0, "2024-01-07", "ana"),  # a Sunday
        (2, 40, 10.0, "2024-01-13", "bo"),  # a Saturday
        (3, -30, 0.0, "2024-01-10", "cy"),
    ]:
        con.execute(
            "INSERT INTO ds.people VALUES (@id, @age, @balance, DATE(@born), @name)",
            dict(zip(("id", "age", "balance", "born", "name"), row, strict=True)),
        )
    yield con
    con.close()


def test_named_parameters_bind(bq: sqlml.Connection) -> None:
    """``@age`` is a parameter, bound by name; in DuckDB's own SQL it is abs(age), and
    ``age = @age`` was true for every row with age = |age| (30 and -30 alike)."""
    assert bq.paramstyle == "named"
    assert _rows(bq, "SELECT id FROM `ds.people` WHERE age = @age ORDER BY id", {"age": 30}) == [
        (1,)
    ]
    sql = "SELECT id FROM ds.people WHERE age = @age OR id = @id ORDER BY id"
    assert _rows(bq, sql, {"age": -30, "id": 2}) == [(2,), (3,)]
    assert _state(lambda: bq.execute("SELECT id FROM ds.people WHERE age = @age")) == "42P02"
    assert _state(lambda: bq.execute(sql, {"age": 1})) == "42P02"


def test_default_mode_stays_the_engines_sql(database: str) -> None:
    """Without the mode, ``@`` is what the engine says (DuckDB and PostgreSQL: abs)."""
    con = sqlml.connect(database, autocommit=True)
    try:
        assert con.paramstyle == "qmark"
        assert _rows(con, "SELECT @ (-3)") == [(3,)]
        assert _state(lambda: con.execute("SELECT 1", {"a": 1})) == "42000"  # names need the mode
    finally:
        con.close()


def test_googlesql_functions_and_types(bq: sqlml.Connection) -> None:
    """RAND, SAFE_DIVIDE, IF, EXTRACT(DAYOFWEEK) (1 = Sunday), FLOAT64 / INT64, double-quoted
    strings: GoogleSQL's meaning on both engines."""
    rows = _rows(
        bq,
        """SELECT id, SAFE_DIVIDE(balance, age) AS r, SAFE_DIVIDE(age, 0) AS z,
                  IF(age > 35, "old", 'young') AS g, EXTRACT(DAYOFWEEK FROM born) AS dow,
                  CAST(age AS FLOAT64) AS f, CAST(balance AS INT64) AS i,
                  RAND() BETWEEN 0 AND 1 AS rnd, 7 / 2 AS half
           FROM `ds.people` ORDER BY id""",
    )
    assert rows == [
        (1, pytest.approx(-40 / 30), None, "young", 1, 30.0, -40, True, 3.5),
        (2, pytest.approx(0.25), None, "old", 7, 40.0, 10, True, 3.5),
        (3, 0.0, None, "young", 4, -30.0, 0, True, 3.5),
    ]


def test_substr_positions(bq: sqlml.Connection) -> None:
    """SUBSTR counts a position of 0 as 1 and a negative one from the end, as BigQuery does
    (DuckDB and PostgreSQL would give 'a' and '' for the first two)."""
    rows = _rows(
        bq,
        "SELECT SUBSTR(name, 0, 2), SUBSTR(name, -5, 2), SUBSTR(name, -2) FROM ds.people WHERE id = 1",
    )
    assert rows == [("an", "an", "na")]
    if bq.session.engine.dialect == "postgres":
        assert (
            _state(lambda: bq.execute("SELECT SAFE_CAST(name AS INT64) FROM ds.people")) == "0A000"
        )
    else:
        assert _rows(bq, "SELECT SAFE_CAST(name AS INT64) FROM ds.people WHERE id = 1") == [(None,)]


def test_select_star_except(bq: sqlml.Connection) -> None:
    """``* EXCEPT (...)``: DuckDB's EXCLUDE, and on PostgreSQL the other columns."""
    cur = bq.cursor().execute("SELECT * EXCEPT (born, name) FROM ds.people ORDER BY id")
    assert [d[0] for d in cur.description or []] == ["id", "age", "balance"]
    assert cur.fetchall()[0] == (1, 30, -40.0)
    assert _state(lambda: bq.execute("SELECT * EXCEPT (nope) FROM ds.people")) in (
        "42703",
        "42601",
    )


def test_struct_and_unnest_literals(bq: sqlml.Connection) -> None:
    """An array of STRUCT literals as a table, and UNNEST of an array literal."""
    rows = _rows(
        bq,
        "SELECT a, b FROM UNNEST([STRUCT(1 AS a, 'x' AS b), STRUCT(2 AS a, 'y' AS b)]) ORDER BY a",
    )
    assert rows == [(1, "x"), (2, "y")]
    assert _rows(bq, "SELECT x FROM UNNEST([3, 1, 2]) AS x ORDER BY x") == [(1,), (2,), (3,)]


def test_what_cannot_be_transpiled_is_0a000(bq: sqlml.Connection) -> None:
    """A construct whose meaning differs (BigQuery's WEEK counts from Sunday) or that sqlglot
    cannot write for the engine is 0A000, never a different query."""
    assert _state(lambda: bq.execute("SELECT EXTRACT(WEEK FROM born) FROM ds.people")) == "0A000"
    engine = bq.session.engine.dialect
    if engine == "postgres":
        assert _state(lambda: bq.execute("SELECT STRUCT(1 AS a) AS s")) == "0A000"


def test_ml_statements_in_bigquery_mode(bq: sqlml.Connection, database: str) -> None:
    """CREATE MODEL's query, ML.PREDICT's query and the STRUCT of settings, in GoogleSQL."""
    bq.execute(
        """CREATE OR REPLACE MODEL `ds.m`
           OPTIONS (model_type = 'logistic_reg', input_label_cols = ['old']) AS
           SELECT CAST(age AS FLOAT64) AS age, IF(age > 35, TRUE, FALSE) AS old
           FROM `ds.people`, UNNEST([1, 2, 3, 4]) AS copies"""
    )
    rows = _rows(
        bq,
        """SELECT id, predicted_old FROM ML.PREDICT(MODEL `ds.m`,
             (SELECT id, CAST(age AS FLOAT64) AS age FROM ds.people WHERE id <> @skip),
             STRUCT(0.5 AS threshold)) ORDER BY id""",
        {"skip": 3},
    )
    assert rows == [(1, False), (2, True)]


def test_set_dialect_in_a_session(database: str) -> None:
    """``SET sqlml.dialect`` through sqlml.connect (and so in a script of sqlml run) too."""
    con = sqlml.connect(database, autocommit=True)
    try:
        assert _state(lambda: con.execute("SELECT SAFE_DIVIDE(1, 0)")) == "42883"
        con.execute("SET sqlml.dialect = 'bigquery'")
        assert con.paramstyle == "named"
        assert _rows(con, "SELECT SAFE_DIVIDE(1, 0), @x", {"x": 2}) == [(None, 2)]
        assert _state(lambda: con.execute("SET sqlml.dialect = 'oracle'")) == "22023"
        con.execute("SET sqlml.dialect TO default")
        assert con.paramstyle == "qmark"
        assert _rows(con, "SELECT @ (-4)") == [(4,)]
    finally:
        con.close()


def test_cli_run_dialect(tmp_path: Path) -> None:
    """``sqlml run --dialect bigquery``; without it the same script fails (SAFE_DIVIDE is no
    DuckDB function)."""
    script = tmp_path / "s.sql"
    script.write_text("SELECT SAFE_DIVIDE(1, 0) AS z, IF(TRUE, 'y', 'n') AS w;\n")
    command = [sys.executable, "-m", "sqlml.cli", "run"]
    done = subprocess.run([*command, "--dialect", "bigquery", str(script)], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"y" in done.stdout
    plain = subprocess.run([*command, str(script)], capture_output=True)
    assert plain.returncode == 1


# -- over the wire ------------------------------------------------------------------------------


def test_set_dialect_over_the_wire(shop_file: str) -> None:
    """``SET sqlml.dialect = 'bigquery'`` in a session of the DuckDB gateway (psycopg 3); an
    ``@name`` has no value on the wire (42P02); the session is usable after each error."""
    from sqlml.wire.server import ServerConfig

    psycopg = client_module("psycopg")
    with (
        serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port,
        psycopg.connect(host="127.0.0.1", port=port, dbname="shop", autocommit=True) as c,
    ):
        with pytest.raises(psycopg.Error):
            c.execute("SELECT SAFE_DIVIDE(1, 0)")
        c.execute("SET sqlml.dialect = 'bigquery'")
        rows = c.execute("SELECT SAFE_DIVIDE(1, 0), IF(1 > 0, 'a', 'b')").fetchall()
        assert rows == [(None, "a")]
        rows = c.execute("SELECT count(*) FROM `shop.customers` WHERE tenure > %s", [10])
        assert rows.fetchall()[0][0] > 0
        with pytest.raises(psycopg.Error) as info:
            c.execute("SELECT id FROM shop.customers WHERE tenure = @t")
        assert info.value.sqlstate == "42P02"
        cur = c.execute("SELECT * EXCEPT (spend, plan) FROM `shop.new_customers` LIMIT 1")
        assert [d.name for d in cur.description or []] == ["id", "tenure", "promo"]
        c.execute(
            "CREATE MODEL `shop.wire_bq` OPTIONS (model_type = 'linear_reg',"
            " input_label_cols = ['value']) AS SELECT CAST(tenure AS FLOAT64) AS tenure, value"
            " FROM `shop.customers` WHERE MOD(id, 2) = 0"
        )
        sql = "SELECT count(*) FROM ML.PREDICT(MODEL `shop.wire_bq`, TABLE `shop.new_customers`)"
        assert c.execute(sql).fetchall() == [(200,)]
        c.execute("SET sqlml.dialect = 'default'")
        assert c.execute("SELECT @ (-2)").fetchall() == [(2,)]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
@pytest.mark.parametrize("default", ["", "bigquery"])
def test_the_dialect_setting_on_both_gateways(
    engine: str, default: str, request: pytest.FixtureRequest
) -> None:
    """SET, SHOW and RESET sqlml.dialect (and RESET ALL, DISCARD ALL, SET LOCAL) answer the
    same over the DuckDB gateway and the PostgreSQL proxy, through psycopg 3 (extended
    protocol: the SHOW is described) and psycopg2 (simple protocol)."""
    from sqlml.wire.server import ServerConfig

    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    psycopg2 = client_module("psycopg2")
    shown = default or "default"
    with serving(ServerConfig(port=0, dialect=default), *gateway_parts(engine, database)) as port:
        with _connect3(port, autocommit=True) as c:
            cur = c.execute("SHOW sqlml.dialect")
            assert [d.name for d in cur.description or []] == ["sqlml.dialect"]
            assert cur.fetchall() == [(shown,)]
            for other in ("bigquery", "default"):
                c.execute(f"SET SESSION sqlml.dialect TO {other}")
                assert c.execute("SHOW sqlml.dialect").fetchall() == [(other,)]
                c.execute("RESET sqlml.dialect")
                assert c.execute("SHOW sqlml.dialect").fetchall() == [(shown,)]
            for back in ("RESET ALL", "DISCARD ALL"):
                c.execute(
                    "SET sqlml.dialect = 'bigquery'" if not default else "SET sqlml.dialect = ''"
                )
                c.execute(back)
                assert c.execute("SHOW sqlml.dialect").fetchall() == [(shown,)], back
            assert _sqlstate(lambda: c.execute("SET sqlml.dialect = 'oracle'")) == "22023"
            assert _sqlstate(lambda: c.execute("SET LOCAL sqlml.dialect = 'bigquery'")) == "0A000"
            assert c.execute("SHOW sqlml.dialect").fetchall() == [(shown,)]
        con = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
        with con.cursor() as cur:
            cur.execute("SET sqlml.dialect = 'bigquery'")
            cur.execute("SHOW sqlml.dialect")
            assert cur.fetchall() == [("bigquery",)]
            assert _sqlstate(lambda: cur.execute("SELECT * FROM no_such_table")) == "42P01"
            assert _sqlstate(lambda: cur.execute("SHOW sqlml.dialect")) == "25P02"
            con.rollback()
            cur.execute("SHOW sqlml.dialect")  # (a ROLLBACK does not undo a SET of it)
            assert cur.fetchall() == [("bigquery",)]
        con.close()


def test_serve_dialect_option(shop_file: str) -> None:
    """``sqlml serve --dialect bigquery``: sessions start in BigQuery mode."""
    from sqlml.wire.server import ServerConfig

    psycopg = client_module("psycopg")
    config = ServerConfig(port=0, dialect="bigquery")
    with (
        serving(config, *gateway_parts("duckdb", shop_file)) as port,
        psycopg.connect(host="127.0.0.1", port=port, dbname="shop", autocommit=True) as c,
    ):
        assert c.execute("SELECT IF(TRUE, 'y', 'n')").fetchall() == [("y",)]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_transactions_and_wrapped_queries_in_bigquery_mode(
    engine: str, request: pytest.FixtureRequest
) -> None:
    """BEGIN/COMMIT (what psycopg sends with autocommit off), COPY (query) TO STDOUT, EXPLAIN
    and a server-side cursor: the engine's statements, with the query inside in GoogleSQL;
    over DuckDB and over the PostgreSQL proxy."""
    from sqlml.wire.server import ServerConfig

    psycopg = client_module("psycopg")
    config = ServerConfig(port=0, dialect="bigquery")
    database = str(request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database"))
    with (
        serving(config, *gateway_parts(engine, database)) as port,
        psycopg.connect(host="127.0.0.1", port=port, dbname="shop", user="ana") as c,
    ):
        rows = c.execute("SELECT IF(tenure > 10, 'long', 'short') FROM `shop.customers` LIMIT 1")
        assert rows.fetchall()[0][0] in ("long", "short")
        c.commit()
        with c.cursor() as cur:
            with cur.copy(
                "COPY (SELECT SAFE_DIVIDE(1, 0) AS z, IF(TRUE, 'y', 'n')) TO STDOUT"
            ) as cp:
                data = b"".join(bytes(chunk) for chunk in cp)
            assert data == b"\\N\ty\n"
            assert cur.execute("EXPLAIN SELECT IF(TRUE, 1, 2)").fetchall()
        with c.cursor(name="bq_cursor") as named:
            named.execute("SELECT id FROM `shop.customers` WHERE MOD(id, 100) = 0 ORDER BY id")
            assert [r[0] for r in named.fetchall()] == list(range(0, 800, 100))
        c.rollback()


# -- over the gateway's PostgreSQL proxy ------------------------------------------------------


@contextlib.contextmanager
def _proxy(dsn: str, dialect: str = "") -> Iterator[int]:
    """The gateway in proxy mode over PostgreSQL database ``dsn`` (clients ask for "shop")."""
    from sqlml.wire.server import ServerConfig

    with serving(ServerConfig(port=0, dialect=dialect), *gateway_parts("postgres", dsn)) as port:
        yield port


def _connect3(port: int, **kwargs: Any) -> Any:
    psycopg = client_module("psycopg")
    return psycopg.connect(host="127.0.0.1", port=port, dbname="shop", user="ana", **kwargs)


def _sqlstate(call: Any) -> str:
    """The SQLSTATE of a client library's error (psycopg 3, psycopg2, asyncpg)."""
    with pytest.raises(Exception) as info:  # noqa: PT011 (any client's error class)
        call()
    error = info.value
    return str(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None))


def test_set_dialect_over_the_proxy(pg_database: str) -> None:
    """``SET sqlml.dialect`` in a session of the PostgreSQL proxy (psycopg 3: the extended
    protocol): GoogleSQL transpiled before it goes to PostgreSQL; SHOW and RESET answered by
    the gateway (PostgreSQL kept the setting as a custom one and transpiled nothing: 42883)."""
    with _proxy(pg_database) as port, _connect3(port, autocommit=True) as c:
        assert _sqlstate(lambda: c.execute("SELECT SAFE_DIVIDE(1, 0)")) == "42883"
        assert c.execute("SHOW sqlml.dialect").fetchall() == [("default",)]
        c.execute("SET sqlml.dialect = 'bigquery'")
        cur = c.execute("SHOW sqlml.dialect")
        assert [d.name for d in cur.description or []] == ["sqlml.dialect"]
        assert cur.fetchall() == [("bigquery",)]
        rows = c.execute("SELECT SAFE_DIVIDE(1, 0), SAFE_DIVIDE(6, 4), IF(1 > 0, 'a', 'b')")
        assert rows.fetchall() == [(None, 1.5, "a")]
        sql = "SELECT count(*) FROM `shop.customers` WHERE tenure > %s AND MOD(id, 2) = 0"
        assert c.execute(sql, [10]).fetchall()[0][0] > 0
        cur = c.execute("SELECT * EXCEPT (spend, plan) FROM `shop.new_customers` LIMIT 1")
        assert [d.name for d in cur.description or []] == ["id", "tenure", "promo"]
        assert _sqlstate(lambda: c.execute("SET sqlml.dialect = 'oracle'")) == "22023"
        assert c.execute("SHOW sqlml.dialect").fetchall() == [("bigquery",)]
        c.execute("RESET sqlml.dialect")
        assert c.execute("SHOW sqlml.dialect").fetchall() == [("default",)]
        assert c.execute("SELECT @ (-2)").fetchall() == [(2,)]  # PostgreSQL's abs again
        sql = "SELECT IF(TRUE, 'y', 'n')"  # (unprepared: a prepared one keeps its mode)
        for back in (
            "SET sqlml.dialect = ''",
            "RESET ALL",
            "DISCARD ALL",
            "SET sqlml.dialect TO default",
        ):
            c.execute("SET SESSION sqlml.dialect TO bigquery")
            assert c.execute(sql, prepare=False).fetchall() == [("y",)]
            c.execute(back)
            assert _sqlstate(lambda: c.execute(sql, prepare=False)) == "42883", back


def test_what_cannot_be_transpiled_over_the_proxy(pg_database: str) -> None:
    """0A000 naming the construct, in and out of a transaction; the session goes on (inside
    a transaction block it is aborted, 25P02, until ROLLBACK, as PostgreSQL's errors do)."""
    with _proxy(pg_database, "bigquery") as port, _connect3(port, autocommit=True) as c:
        for sql in (
            "SELECT EXTRACT(WEEK FROM DATE '2024-01-07')",
            "SELECT STRUCT(1 AS a) AS s",
            "SELECT SAFE_CAST(plan AS INT64) FROM shop.customers",
        ):
            assert _sqlstate(lambda sql=sql: c.execute(sql)) == "0A000", sql
            assert c.execute("SELECT SAFE_DIVIDE(4, 2)").fetchall() == [(2.0,)]
        assert _sqlstate(lambda: c.execute("SELECT id FROM shop.customers WHERE id = @id")) == (
            "42P02"  # the wire has no parameters by name
        )
        assert _sqlstate(lambda: c.execute("SELEC 1")) == "42601"
        from sqlml.wire.upstream import Target

        project = Target.parse(pg_database).dbname  # a project is the database
        sql = f"SELECT count(*) FROM `{project}.shop.customers`"
        assert c.execute(sql).fetchall() == [(800,)]
        sql = "SELECT count(*) FROM `nope-project.shop.customers`"
        assert _sqlstate(lambda: c.execute(sql)) == "3D000"
        c.execute("BEGIN")
        c.execute("CREATE TABLE shop.kept (x INT64)")
        assert _sqlstate(lambda: c.execute("SELECT EXTRACT(WEEK FROM CURRENT_DATE())")) == "0A000"
        assert _sqlstate(lambda: c.execute("SELECT 1")) == "25P02"
        assert _sqlstate(lambda: c.execute("SHOW sqlml.dialect")) == "25P02"
        c.execute("ROLLBACK")
        assert c.execute("SELECT to_regclass('shop.kept') IS NULL").fetchall() == [(True,)]
        assert c.execute("SELECT IF(TRUE, 1, 2)").fetchall() == [(1,)]


def test_serve_dialect_over_the_proxy(pg_database: str) -> None:
    """``sqlml serve --dialect bigquery`` over PostgreSQL: sessions start in BigQuery mode,
    with psycopg2 (the simple protocol, several statements in one Query too) and psycopg 3's
    prepared statements; RESET brings back the server's default, BigQuery mode."""
    psycopg2 = client_module("psycopg2")
    with _proxy(pg_database, "bigquery") as port:
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
        ) as c2:
            c2.autocommit = True
            with c2.cursor() as cur:
                cur.execute("SELECT SAFE_DIVIDE(1, 0) AS z, id FROM `shop.customers` WHERE id = 3")
                assert cur.fetchall() == [(None, 3)]
                cur.execute(
                    "SET sqlml.dialect = 'default'; SELECT @ (-5);"
                    " SET sqlml.dialect = 'bigquery'; SELECT IF(TRUE, 'y', 'n')"
                )
                assert cur.fetchall() == [("y",)]
                cur.execute("SET sqlml.dialect = 'default'")
                cur.execute("RESET sqlml.dialect")
                cur.execute("SHOW sqlml.dialect")
                assert cur.fetchall() == [("bigquery",)]
                cur.execute("CREATE TABLE shop.copied (x INT64, s STRING)")
                cur.copy_expert("COPY shop.copied FROM STDIN", io.StringIO("1\ta\n2\t\\N\n"))
                out = io.StringIO()
                cur.copy_expert("COPY (SELECT IF(x > 1, 'big', s) FROM shop.copied) TO STDOUT", out)
                assert out.getvalue() == "a\nbig\n"
        with _connect3(port, autocommit=True) as c3:
            sql = "SELECT id, SAFE_DIVIDE(spend, tenure) FROM `shop.customers` WHERE id = %s"
            for _ in range(3):  # prepared on the server after a few runs (psycopg 3)
                assert c3.execute(sql, [4], prepare=True).fetchall()[0][0] == 4
            c3.execute("SET sqlml.dialect = ''")
            c3.execute("RESET ALL")
            assert c3.execute("SHOW sqlml.dialect", prepare=True).fetchall() == [("bigquery",)]
            assert c3.execute("SELECT IF(TRUE, 'y', 'n')").fetchall() == [("y",)]


def test_asyncpg_prepared_statements_in_bigquery_mode_over_the_proxy(pg_database: str) -> None:
    """asyncpg prepares every statement (Parse, Describe of the statement): GoogleSQL with
    ``$1``, SET and SHOW sqlml.dialect among them."""
    asyncpg = client_module("asyncpg")

    async def scenario(port: int) -> None:
        c = await asyncpg.connect(host="127.0.0.1", port=port, database="shop", user="ana")
        try:
            await c.execute("SET sqlml.dialect = 'bigquery'")
            assert await c.fetchval("SHOW sqlml.dialect") == "bigquery"
            value = await c.fetchval(
                "SELECT SAFE_DIVIDE(CAST(count(*) AS FLOAT64), $1) FROM `shop.customers`", 8
            )
            assert value == 100.0
            statement = await c.prepare("SELECT IF($1 > 2, 'big', 'small')")
            assert [await statement.fetchval(n) for n in (1, 3)] == ["small", "big"]
            assert (
                _sqlstate_of(await _error(c.fetch("SELECT EXTRACT(WEEK FROM CURRENT_DATE())")))
                == "0A000"
            )
            assert await c.fetchval("SELECT SAFE_DIVIDE(1, 0)") is None
        finally:
            await c.close()

    with _proxy(pg_database) as port:
        asyncio.run(scenario(port))


async def _error(call: Any) -> BaseException:
    try:
        await call
    except Exception as e:  # noqa: BLE001 (the client's error, examined by the caller)
        return e
    raise AssertionError("no error")


def _sqlstate_of(error: BaseException) -> str:
    return str(getattr(error, "sqlstate", None))


def test_ml_statements_in_bigquery_mode_over_the_proxy(pg_database: str) -> None:
    """CREATE MODEL with a GoogleSQL query and backtick names, ML.PREDICT and ML.EVALUATE
    through the proxy in BigQuery mode (psycopg 3 and psycopg2)."""
    psycopg2 = client_module("psycopg2")
    with _proxy(pg_database, "bigquery") as port:
        with _connect3(port, autocommit=True) as c:
            c.execute(
                "CREATE MODEL `shop.proxy_bq` OPTIONS (model_type = 'linear_reg',"
                " input_label_cols = ['value']) AS SELECT CAST(tenure AS FLOAT64) AS tenure,"
                " value FROM `shop.customers` WHERE MOD(id, 2) = 0  # even rows"
            )
            sql = (
                "SELECT count(*), countif(predicted_value > 0) FROM ML.PREDICT(MODEL"
                " `shop.proxy_bq`, (SELECT id, CAST(tenure AS FLOAT64) AS tenure FROM"
                " `shop.new_customers`))"
            )
            assert c.execute(sql).fetchall() == [(200, 200)]
            sql = (
                "SELECT * EXCEPT (tenure) FROM ML.PREDICT(MODEL `shop.proxy_bq`,"
                " TABLE `shop.new_customers`) LIMIT 1"
            )
            names = [d.name for d in c.execute(sql).description or []]
            assert "tenure" not in names
            assert "predicted_value" in names
            sql = "SELECT r2_score FROM ML.EVALUATE(MODEL `shop.proxy_bq`)"
            assert c.execute(sql).fetchall()[0][0] > 0.5
        with (
            contextlib.closing(
                psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
            ) as c2,
            c2.cursor() as cur,
        ):
            cur.execute(
                "SELECT id, IF(predicted_value > 100, 'high', 'low') FROM ML.PREDICT(MODEL"
                " `shop.proxy_bq`, TABLE `shop.new_customers`) ORDER BY id LIMIT 2"
            )
            assert [r[0] for r in cur.fetchall()] == [0, 1]
            c2.rollback()
            cur.execute("DROP MODEL `shop.proxy_bq`")
            c2.commit()


def test_sqlml_serve_dialect_option_in_proxy_mode(pg_database: str) -> None:
    """The real ``sqlml serve -d postgresql://... --dialect bigquery`` (was 0A000 at start)."""
    from sqlml.wire.upstream import Target

    psycopg = client_module("psycopg")
    dbname = Target.parse(pg_database).dbname
    with (
        sqlml_serve("-d", pg_database, "--dialect", "bigquery") as port,
        psycopg.connect(
            host="127.0.0.1", port=port, dbname=dbname, user="ana", autocommit=True
        ) as c,
    ):
        assert c.execute("SHOW sqlml.dialect").fetchall() == [("bigquery",)]
        rows = c.execute("SELECT SAFE_DIVIDE(COUNTIF(promo), COUNT(*)) FROM `shop.customers`")
        assert 0 < rows.fetchall()[0][0] < 1


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_psql_catalog_commands_in_bigquery_mode(
    engine: str, request: pytest.FixtureRequest
) -> None:
    """psql's \\dt and \\d in BigQuery mode over the proxy too: their catalog queries stay
    PostgreSQL's SQL (they name pg_catalog), as over DuckDB."""
    import shutil

    from sqlml.wire.server import ServerConfig

    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed")
    fixture = "shop_file" if engine == "duckdb" else "pg_database"
    database = str(request.getfixturevalue(fixture))
    config = ServerConfig(port=0, dialect="bigquery")
    with serving(config, *gateway_parts(engine, database)) as port:
        url = f"postgresql://ana@127.0.0.1:{port}/shop?sslmode=disable"
        for command, shown in (
            (r"\dt shop.*", b"customers"),
            (r"\d shop.customers", b"tenure"),
            ("SELECT IF(TRUE, 'yes', 'no') AS w", b" yes"),
        ):
            done = subprocess.run([psql, url, "-c", command], capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert shown in done.stdout, command


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SET sqlml.dialect = 'bigquery'", "SET"),
        ("set session SQLML.Dialect to default;", "SET"),
        ("SET LOCAL sqlml.dialect = 'bigquery'", "LOCAL"),
        ("/* c */ SHOW sqlml.dialect", "SHOW"),
        ("RESET sqlml.dialect;", "RESET"),
        ("RESET ALL", "ALL"),
        ("discard all", "ALL"),
        ("RESET search_path", None),
        ("SHOW sqlml.dialect_x", None),
        ("SET sqlml.other = 1", None),
        ("DISCARD PLANS", None),
        ("SELECT 'SET sqlml.dialect = 1'", None),
    ],
)
def test_the_proxys_dialect_statements(sql: str, kind: str | None) -> None:
    """What the proxy answers itself (from the one lexer's tokens)."""
    from sqlml.wire.proxy import _setting_statement

    assert _setting_statement(sql) == kind


# -- 3. the public tutorials, unchanged ---------------------------------------------------------


@pytest.fixture(params=["duckdb", "postgres", "postgres-proxy"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database named like the tutorials' project (a DuckDB file bigquery-public-data.duckdb,
    a PostgreSQL database "bigquery-public-data"), with the public tables' columns."""
    tables = _public_tables()
    if request.param == "duckdb":
        path = str(tmp_path / f"{PROJECT}.duckdb")
        loading = sqlml.connect(path, autocommit=True)
        raw = loading.session.engine
        for (schema, name), table in tables.items():
            raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            raw.register_table("_load", table)
            raw.execute(f'CREATE TABLE "{schema}"."{name}" AS SELECT * FROM "_load"')
            raw.unregister_table("_load")
        raw.execute("CREATE MACRO st_geogpoint(lon, lat) AS [lon, lat]")
        raw.execute(
            f"CREATE MACRO st_distance(a, b) AS {_haversine('a[1]', 'a[2]', 'b[1]', 'b[2]')}"
        )
        loading.close()
        yield path
        return
    import pgcluster

    server = str(request.getfixturevalue("pg_server"))
    dsn = pgcluster.create_database(server, PROJECT, template=TEMPLATE)
    try:
        for (schema, name), table in tables.items():
            texts = pa.table(
                {
                    f.name: table.column(f.name).cast(pa.string())
                    if pa.types.is_timestamp(f.type)
                    else table.column(f.name)
                    for f in table.schema
                }
            )
            pgcluster.load_table(dsn, schema, name, texts)
        loading = sqlml.connect(dsn, autocommit=True)
        raw = loading.session.engine
        raw.execute(
            "ALTER TABLE london_bicycles.cycle_hire ALTER COLUMN start_date TYPE timestamp"
            " USING start_date::timestamp"
        )
        raw.execute(
            "CREATE FUNCTION st_geogpoint(lon float8, lat float8) RETURNS float8[]"
            " LANGUAGE sql IMMUTABLE AS 'SELECT ARRAY[lon, lat]'"
        )
        body = _haversine("a[1]", "a[2]", "b[1]", "b[2]")
        raw.execute(
            "CREATE FUNCTION st_distance(a float8[], b float8[]) RETURNS float8"
            f" LANGUAGE sql IMMUTABLE AS 'SELECT {body}'"
        )
        loading.close()
        yield dsn
    finally:
        pgcluster.drop_database(server, PROJECT)


@pytest.fixture
def bq_project(project: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A connection in BigQuery mode to the tutorials' project: sqlml.connect on each engine,
    and psycopg 3 through the gateway's PostgreSQL proxy started with --dialect bigquery."""
    if request.node.callspec.params["project"] != "postgres-proxy":
        con = sqlml.connect(project, autocommit=True, dialect="bigquery")
        yield con
        con.close()
        return
    with _proxy(project, "bigquery") as port, _connect3(port, autocommit=True) as c:
        yield c


def _haversine(lon1: str, lat1: str, lon2: str, lat2: str) -> str:
    """The great-circle distance in metres (ST_DISTANCE of two points on the sphere)."""
    a = (
        f"power(sin(radians({lat2} - {lat1}) / 2), 2) + cos(radians({lat1}))"
        f" * cos(radians({lat2})) * power(sin(radians({lon2} - {lon1}) / 2), 2)"
    )
    return f"2 * 6371008.8 * asin(sqrt({a}))"


def _public_tables(seed: int = 7) -> dict[tuple[str, str], pa.Table]:
    rng = np.random.default_rng(seed)
    return {
        ("ml_datasets", "penguins"): _bigquerys_penguins(),
        ("ml_datasets", "census_adult_income"): _census(rng),
        ("london_bicycles", "cycle_stations"): _stations(),
        ("london_bicycles", "cycle_hire"): _hires(rng),
    }


def _bigquerys_penguins() -> pa.Table:
    """BigQuery's own ml_datasets.penguins (tests/data/penguins.csv, from palmerpenguins): the
    tutorial's published numbers are checked on it."""
    from test_bigquery_surface import penguins

    return penguins()


def _census(rng: np.random.Generator, n: int = 1000) -> pa.Table:
    """census_adult_income's columns; the income bracket from age, education and hours."""
    age = rng.integers(17, 80, size=n)
    education_num = rng.integers(1, 17, size=n)
    hours = rng.integers(10, 70, size=n)
    logit = 0.04 * (age - 40) + 0.35 * (education_num - 10) + 0.05 * (hours - 40) - 1.0
    rich = rng.random(n) < 1 / (1 + np.exp(-logit))
    strings = {
        "workclass": [" Private", " Self-emp-not-inc", " Local-gov"],
        "education": [" HS-grad", " Bachelors", " Masters"],
        "marital_status": [" Married-civ-spouse", " Never-married", " Divorced"],
        "occupation": [" Sales", " Exec-managerial", " Craft-repair"],
        "relationship": [" Husband", " Not-in-family", " Own-child"],
        "race": [" White", " Black", " Other"],
        "sex": [" Male", " Female"],
        "native_country": [" United-States", " Mexico"],
    }
    columns: dict[str, Any] = {"age": age, "functional_weight": rng.integers(10000, 500000, n)}
    for name, values in strings.items():
        columns[name] = rng.choice(values, size=n).tolist()
    columns |= {
        "education_num": education_num,
        "capital_gain": rng.integers(0, 5000, n),
        "capital_loss": rng.integers(0, 500, n),
        "hours_per_week": hours,
        "income_bracket": np.where(rich, " >50K", " <=50K").tolist(),
    }
    return pa.table(columns)


def _stations() -> pa.Table:
    names = [
        "Kennington Road, Vauxhall",
        "Kennington Oval, Oval",
        "Borough Road, Elephant & Castle",
        "Webber Street, Southwark",
        "Hyde Park Corner, Hyde Park",
        "Stratford Station, Stratford",
        "Wandsworth Town Station, Wandsworth",
        "Putney Pier, Wandsworth",
    ]
    longitude = [-0.111, -0.113, -0.098, -0.104, -0.153, -0.004, -0.189, -0.216]
    latitude = [51.488, 51.484, 51.498, 51.500, 51.503, 51.541, 51.460, 51.466]
    return pa.table(
        {
            "id": list(range(1, len(names) + 1)),
            "installed": [True] * len(names),
            "latitude": latitude,
            "longitude": longitude,
            "name": names,
            "bikes_count": [10] * len(names),
            "docks_count": [20] * len(names),
        }
    )


def _hires(rng: np.random.Generator, n: int = 2000) -> pa.Table:
    names = _stations().column("name").to_pylist()
    station = rng.integers(1, len(names) + 1, size=n)
    start = datetime.datetime(2014, 12, 1)
    starts = [start + datetime.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 420, n)]
    duration = (rng.gamma(2.0, 600, size=n) * (1 + station / 4)).astype(np.int64)
    return pa.table(
        {
            "rental_id": np.arange(n),
            "duration": duration,
            "bike_id": rng.integers(1, 500, n),
            "end_station_id": rng.integers(1, len(names) + 1, size=n),
            "start_date": pa.array(starts, type=pa.timestamp("us")),
            "start_station_id": station,
            "start_station_name": [names[s - 1] for s in station],
        }
    )


def _tutorial(con: Any, name: str) -> list[Any]:
    """Every statement of a tutorial's SQL file, run as written; each one's cursor."""
    cursors = []
    for sql in grammar.split_script((TUTORIALS / name).read_text()):
        if grammar.lexer.is_blank(sql):
            continue
        cursors.append(con.cursor().execute(sql))
    return cursors


def _columns(cursor: Any) -> list[str]:
    return [d[0] for d in cursor.description or []]


def test_linear_regression_tutorial(bq_project: Any) -> None:
    con = bq_project
    con.execute("CREATE SCHEMA bqml_tutorial")
    _, evaluate, predict = _tutorial(con, "linear_regression_penguins.sql")
    from test_bigquery_surface import BIGQUERY

    metrics = dict(zip(_columns(evaluate), evaluate.fetchall()[0], strict=True))
    assert list(metrics) == list(BIGQUERY)
    for name, printed in BIGQUERY.items():  # the numbers the tutorial page prints
        assert round(float(metrics[name]), 6) == pytest.approx(printed, abs=1.5e-6), name
    rows = predict.fetchall()
    assert "predicted_body_mass_g" in _columns(predict)
    islands = [r[_columns(predict).index("island")] for r in rows]
    assert rows
    assert set(islands) == {"Biscoe"}


def test_logistic_regression_tutorial(bq_project: Any) -> None:
    con = bq_project
    con.execute("CREATE SCHEMA census")
    _, _, evaluate, predict = _tutorial(con, "logistic_regression_census.sql")
    metrics = dict(zip(_columns(evaluate), evaluate.fetchall()[0], strict=True))
    assert metrics["roc_auc"] > 0.75
    assert "predicted_income_bracket" in _columns(predict)
    assert "dataframe" in _columns(predict)
    assert len(predict.fetchall()) > 50


def test_kmeans_tutorial(bq_project: Any) -> None:
    con = bq_project
    con.execute("CREATE SCHEMA bqml_tutorial")
    _, predict = _tutorial(con, "kmeans_london_bicycles.sql")
    columns = _columns(predict)
    assert "centroid_id" in columns
    assert "nearest_centroids_distance" not in columns
    rows = predict.fetchall()
    names = {r[columns.index("station_name")] for r in rows}
    assert names == {"Kennington Road, Vauxhall", "Kennington Oval, Oval"}
    assert all(1 <= r[columns.index("centroid_id")] <= 4 for r in rows)
