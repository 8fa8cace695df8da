"""Honest SQLSTATEs: DuckDB's errors get PostgreSQL's codes (engines/duckdb_errors.py), checked
against the real PostgreSQL where the same SQL runs there, so the table is not self-referential;
the scoring UDF's Python errors and unusable training data get a meaningful SQLSTATE."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import client_module

import sqlml
from sqlml import errors

# Every statement of a row runs on a fresh database with these tables.
SETUP = [
    "CREATE TABLE t (a INT PRIMARY KEY, b INT NOT NULL)",
    "CREATE TABLE c (x INT REFERENCES t (a))",
    "CREATE TABLE g (a INT, b INT)",
    "INSERT INTO t VALUES (1, 1)",
]


@dataclass(frozen=True)
class Row:
    """Statements run in order; the last one's SQLSTATE is the one expected (earlier ones may
    fail). ``postgres``: the same SQL runs on PostgreSQL, which must answer the same code."""

    statements: tuple[str, ...]
    sqlstate: str
    postgres: bool = True
    gap: str | None = None  # a known difference: a strict xfail with this reason


def row(*statements: str, sqlstate: str, postgres: bool = True, gap: str | None = None) -> Row:
    return Row(statements, sqlstate, postgres, gap)


_CONSTRAINT_GAP = "DuckDB reports constraint violations without structure: 23000, their class"

GOLDEN = [
    row("CREATE TABLE t (a INT)", sqlstate="42P07"),
    row("CREATE VIEW t AS SELECT 1 AS one", sqlstate="42P07"),
    row("CREATE SCHEMA s", "CREATE SCHEMA s", sqlstate="42P06"),
    row("SELECT * FROM nope", sqlstate="42P01"),
    row("SELECT * FROM nosuch.t", sqlstate="42P01"),
    row("DROP TABLE nope", sqlstate="42P01"),
    row("SELECT 1 AS one; SELECT * FROM nope", sqlstate="42P01"),
    row("CREATE TABLE nosuch.t (a INT)", sqlstate="3F000"),
    row("SELECT zz FROM t", sqlstate="42703"),
    row("SELECT t.zz FROM t", sqlstate="42703"),
    row("SELECT nofunc(1)", sqlstate="42883"),
    row("SELECT length(1, 2, 3)", sqlstate="42883"),
    row("SELECT a + CAST('x' AS VARCHAR) FROM t", sqlstate="42883"),
    row("SELECT a, b FROM g GROUP BY a", sqlstate="42803"),
    row("SELECT a, count(*) FROM g", sqlstate="42803"),
    row("SELECT CAST('abc' AS INT)", sqlstate="22P02"),
    row("INSERT INTO t VALUES ('x', 2)", sqlstate="22P02"),
    row("SELECT 1 % 0", sqlstate="22012"),
    row("SELECT 1 // 0", sqlstate="22012", postgres=False),
    row("SELECT CAST(2147483647 AS INT) + 1", sqlstate="22003"),
    row("selec 1", sqlstate="42601"),
    row("SELECT (1", sqlstate="42601"),
    row("BEGIN", "SELECT zz FROM t", "SELECT 1", sqlstate="25P02"),
    row("BEGIN", "SELECT 1 % 0", "INSERT INTO g VALUES (1, 2)", sqlstate="25P02"),
    row("BEGIN", "BEGIN", sqlstate="25001", postgres=False),  # (PostgreSQL: a WARNING)
    row("COMMIT", sqlstate="25P01", postgres=False),  # (PostgreSQL: a WARNING)
    row("INSERT INTO t VALUES (1, 2)", sqlstate="23505", gap=_CONSTRAINT_GAP),
    row("INSERT INTO t VALUES (2, NULL)", sqlstate="23502", gap=_CONSTRAINT_GAP),
    row("INSERT INTO c VALUES (7)", sqlstate="23503", gap=_CONSTRAINT_GAP),
    row("INSERT INTO t VALUES (1, 2)", sqlstate="23000", postgres=False),
]


def _duckdb_sqlstate(statements: tuple[str, ...]) -> str | None:
    con = sqlml.connect(":memory:", autocommit=True)
    try:
        cur = con.cursor()
        for statement in SETUP:
            cur.execute(statement)
        code = None
        for statement in statements:
            try:
                cur.execute(statement)
                code = None
            except sqlml.Error as e:
                code = e.sqlstate
        return code
    finally:
        con.close()


_schemas = itertools.count(1)


def _postgres_sqlstate(dsn: str, statements: tuple[str, ...]) -> str | None:
    psycopg2 = client_module("psycopg2")
    schema = f"golden_{os.getpid()}_{next(_schemas)}"
    con = psycopg2.connect(dsn)
    con.autocommit = True
    try:
        cur = con.cursor()
        cur.execute(f"CREATE SCHEMA {schema}")
        cur.execute(f"SET search_path = {schema}")
        for statement in SETUP:
            cur.execute(statement)
        code = None
        for statement in statements:
            try:
                cur.execute(statement)
                code = None
            except psycopg2.Error as e:
                code = e.pgcode
        return code
    finally:
        con.close()


@pytest.fixture(scope="module")
def golden_pg(pg_server: str) -> Iterator[str]:
    """One PostgreSQL database for the table (each row in a schema of its own)."""
    import pgcluster

    name = f"sqlml_golden_{os.getpid()}"
    yield pgcluster.create_database(pg_server, name)
    pgcluster.drop_database(pg_server, name)


def _params() -> list[object]:
    marks = []
    for case in GOLDEN:
        gap = [pytest.mark.xfail(strict=True, reason=case.gap)] if case.gap else []
        marks.append(pytest.param(case, marks=gap, id=" ; ".join(case.statements)))
    return marks


@pytest.mark.parametrize("case", _params())
def test_duckdb_sqlstate(case: Row) -> None:
    assert _duckdb_sqlstate(case.statements) == case.sqlstate


@pytest.mark.parametrize(
    "case", [c for c in GOLDEN if c.postgres], ids=lambda c: " ; ".join(c.statements)
)
def test_postgres_agrees(case: Row, golden_pg: str) -> None:
    """The expected code is PostgreSQL's own for the same statements."""
    assert _postgres_sqlstate(golden_pg, case.statements) == case.sqlstate


def test_position_of_the_error() -> None:
    """The position DuckDB reports arrives, 1-based as PostgreSQL's (here PostgreSQL's 15)."""
    con = sqlml.connect(":memory:", autocommit=True)
    with pytest.raises(errors.UndefinedTable) as raised:
        con.cursor().execute("SELECT * FROM nope")
    con.close()
    assert raised.value.position == 15


def test_write_conflict_is_a_serialization_failure(tmp_path: Path) -> None:
    """Two transactions updating one row: the loser gets 40001 (retry), not 58000; its next
    statement 25P02 until it rolls back."""
    database = str(tmp_path / "c.duckdb")
    first = sqlml.connect(database, autocommit=True)
    second = sqlml.connect(database, autocommit=True)
    a, b = first.cursor(), second.cursor()
    a.execute("CREATE TABLE t (a INT PRIMARY KEY, v INT)")
    a.execute("INSERT INTO t VALUES (1, 1)")
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("UPDATE t SET v = 2 WHERE a = 1")
    with pytest.raises(sqlml.Error) as raised:
        b.execute("UPDATE t SET v = 3 WHERE a = 1")
    assert raised.value.sqlstate == "40001"
    with pytest.raises(sqlml.Error) as aborted:
        b.execute("SELECT 1")
    assert aborted.value.sqlstate == "25P02"
    b.execute("ROLLBACK")
    a.execute("COMMIT")
    b.execute("SELECT v FROM t")
    assert b.fetchall() == [(2,)]
    first.close()
    second.close()


def test_concurrent_sessions_keep_their_own_failure_state(tmp_path: Path) -> None:
    """One session's failed transaction is not another's: the other gets no 25P02."""
    database = str(tmp_path / "s.duckdb")
    bad = sqlml.connect(database, autocommit=True)
    good = sqlml.connect(database, autocommit=True)
    bad.cursor().execute("BEGIN")
    with pytest.raises(sqlml.Error):
        bad.cursor().execute("SELECT zz")
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(good.cursor().execute("SELECT 1")))
    worker.start()
    worker.join()
    assert len(done) == 1
    bad.close()
    good.close()


# -- the scoring UDF ------------------------------------------------------------------------------


def test_udf_with_an_unknown_graph_is_undefined_not_keyerror() -> None:
    con = sqlml.connect(":memory:", autocommit=True)
    with pytest.raises(sqlml.Error) as raised:
        con.cursor().execute("SELECT sqlml_onnx('0123', 1.0)")
    con.close()
    assert raised.value.sqlstate == "42704"
    assert "KeyError" not in raised.value.message


def test_udf_with_corrupted_bytes_is_xx001() -> None:
    """Bytes that match their sha256 but are no graph onnxruntime loads: XX001 from the UDF;
    bytes that do not match their sha256 are refused before they are registered (XX001)."""
    import hashlib

    garbage = b"not an onnx graph"
    sha = hashlib.sha256(garbage).hexdigest()
    with sqlml.connect(":memory:", autocommit=True) as con:
        con.session.engine.register_scorer(sha, garbage, [])
        with pytest.raises(sqlml.Error) as raised:
            con.cursor().execute(f"SELECT sqlml_onnx('{sha}', 1.0)")
        assert raised.value.sqlstate == "XX001"
        with pytest.raises(sqlml.Error) as refused:
            con.session.engine.register_scorer("feedbeef", garbage, [])
        assert refused.value.sqlstate == "XX001"


def test_udf_with_inputs_the_graph_does_not_take_is_42804() -> None:
    """A loaded graph called with other inputs than it takes: 42804, and the session goes on."""
    con = sqlml.connect(":memory:", autocommit=True, scoring="runtime")
    cur = con.cursor()
    cur.execute("CREATE TABLE d AS SELECT i::DOUBLE AS x, (i * 2)::DOUBLE AS y FROM range(30) t(i)")
    options = "model_type = 'linear_reg', input_label_cols = ['y']"
    cur.execute(f"CREATE MODEL m OPTIONS ({options}) AS SELECT x, y FROM d")
    cur.execute("SELECT * FROM ML.PREDICT(MODEL m, TABLE d)")  # (registers the graph)
    cur.execute("SELECT onnx_sha256 FROM sqlml.versions")
    (sha,) = cur.fetchone() or ("",)
    for args in ("'text'", "1.0, 2.0"):
        with pytest.raises(sqlml.Error) as raised:
            cur.execute(f"SELECT sqlml_onnx('{sha}', {args})")
        assert raised.value.sqlstate == "42804", raised.value
    cur.execute("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE d)")
    assert cur.fetchall() == [(30,)]
    con.close()


# -- unusable training data (both engines: the ML core is shared) ---------------------------------


# 40 rows of (f1, y); the statements below make them unusable in one way each.
_ROWS = ", ".join(f"({i}, {i % 7})" for i in range(40))

BAD_DATA = [
    ("SELECT f1, f1, y FROM train_data", "42701"),
    ("SELECT CAST('Infinity' AS DOUBLE PRECISION) AS f1, y FROM train_data", "22000"),
    (
        "SELECT CASE WHEN f1 = 3 THEN CAST('-Infinity' AS DOUBLE PRECISION) ELSE f1 END AS f1, y"
        " FROM train_data",
        "22000",
    ),
    ("SELECT f1 * 1e306 AS f1, y FROM train_data", "22000"),
    ("SELECT f1, y * 1e307 AS y FROM train_data", "22000"),
    (
        "SELECT f1, CASE WHEN f1 = 3 THEN CAST('Infinity' AS DOUBLE PRECISION) ELSE y END AS y"
        " FROM train_data",
        "22000",
    ),
]


@pytest.mark.parametrize(("query", "sqlstate"), BAD_DATA)
@pytest.mark.parametrize("model_type", ["linear_reg", "kmeans"])
def test_unusable_training_data(database: str, query: str, sqlstate: str, model_type: str) -> None:
    """A clear 22000 (42701 for a duplicated column), never a raw Python exception, and
    nothing stored; on PostgreSQL the code arrives from PL/Python."""
    options = f"model_type = '{model_type}'"
    if model_type == "linear_reg":
        options += ", input_label_cols = ['y']"
    con = sqlml.connect(database, autocommit=True)
    try:
        cur = con.cursor()
        cur.execute("CREATE TABLE train_data (f1 DOUBLE PRECISION, y DOUBLE PRECISION)")
        cur.execute(f"INSERT INTO train_data VALUES {_ROWS}")
        with pytest.raises(sqlml.Error) as raised:
            cur.execute(f"CREATE MODEL m OPTIONS ({options}) AS {query}")
        assert raised.value.sqlstate == sqlstate, raised.value
        cur.execute("SHOW MODELS")
        assert cur.fetchall() == []
    finally:
        con.close()


# -- the CLI on a database that cannot be opened ---------------------------------------------------


def _refusing_url() -> str:
    """A postgresql:// URL of a local port nothing listens on (the connection is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/x?connect_timeout=5"


def _database(kind: str, tmp_path: Path) -> str:
    if kind == "directory":
        (tmp_path / "a_directory").mkdir()
        return str(tmp_path / "a_directory")
    if kind == "locked":
        return str(tmp_path / "locked.duckdb")
    return {"bad url": "postgresql://[bad", "refused": _refusing_url()}[kind]


EXPECTED = {"directory": "58000", "locked": "58000", "bad url": "22023", "refused": "08001"}
COMMANDS = {
    "run": ["run", "--database", "{db}", "-"],
    "models": ["models", "--database", "{db}"],
    "serve": ["serve", "--database", "{db}", "--port", "0"],
    "install": ["install", "--database", "{db}"],
    "uninstall": ["uninstall", "--database", "{db}"],
}
# (each CLI process starts in seconds: every command and every kind of failure, not all pairs)
CLI_CASES = [
    ("run", "directory"),
    ("run", "refused"),
    ("models", "locked"),
    ("models", "bad url"),
    ("serve", "directory"),
    ("serve", "locked"),
    ("serve", "bad url"),
    ("serve", "refused"),
    ("install", "refused"),
    ("uninstall", "bad url"),
]


@pytest.mark.parametrize(("command", "kind"), CLI_CASES)
def test_cli_reports_a_database_that_cannot_be_opened(
    tmp_path: Path, command: str, kind: str
) -> None:
    """``ERROR <sqlstate>: message`` and a non-zero exit, never a traceback (nor a server
    that starts)."""
    database = _database(kind, tmp_path)
    holder = None
    if kind == "locked":  # another process holds the DuckDB file's lock
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, database], stdout=subprocess.PIPE, text=True
        )
    try:
        if holder is not None:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sqlml.cli",
                *(a.replace("{db}", database) for a in COMMANDS[command]),
            ],
            input="SELECT 1;\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"ERROR {EXPECTED[kind]}: "), done.stderr


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    ("query", "sqlstate"),
    [
        ("SELECT tenure, tenure, churned FROM shop.customers", "42701"),
        (
            "SELECT tenure, CAST('Infinity' AS DOUBLE PRECISION) AS spend, churned"
            " FROM shop.customers",
            "22000",
        ),
    ],
)
def test_unusable_training_data_everywhere(con: Any, query: str, sqlstate: str) -> None:
    """The same code on both engines, in process and through the gateway (not XX000 over the
    wire, not 38000 from PL/Python); the session goes on."""
    options = "model_type = 'logistic_reg', input_label_cols = ['churned']"
    with pytest.raises(errors.Error) as raised:
        con.execute(f"CREATE MODEL shop.bad OPTIONS ({options}) AS {query}")
    assert raised.value.sqlstate == sqlstate, raised.value
    assert con.execute("SELECT 1").fetchall() == [(1,)]


# -- through the gateway, on both protocols --------------------------------------------------------

WIRE = [
    ("SELECT nope FROM shop.customers WHERE id = %s", "42703"),
    ("SELECT nofunc(%s)", "42883"),
    ("SELECT * FROM shop.missing WHERE id = %s", "42P01"),
    ("SELECT id, plan FROM shop.customers WHERE tenure = %s GROUP BY id", "42803"),
    ("SELECT CAST('abc' AS INT) + %s", "22P02"),
]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_gateway_answers_the_same_codes(engine: str, request: pytest.FixtureRequest) -> None:
    """psycopg 3 (Parse, Describe, Bind: DuckDB's own binder behind the gateway) and psycopg2
    (a simple Query) get PostgreSQL's codes over DuckDB as through the proxy to PostgreSQL."""
    from conftest import gateway_parts, serving

    from sqlml.wire.server import ServerConfig

    psycopg = client_module("psycopg")
    psycopg2 = client_module("psycopg2")
    database = str(request.getfixturevalue("pg_database" if engine == "postgres" else "shop_file"))
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        dsn = f"host=127.0.0.1 port={port} dbname=shop user=ana"
        with psycopg.connect(dsn, autocommit=True) as extended:
            for sql, sqlstate in WIRE:
                with pytest.raises(psycopg.Error) as raised:
                    extended.execute(sql, (1,), prepare=True)
                assert raised.value.sqlstate == sqlstate, (sql, raised.value)
            assert extended.execute("SELECT 1").fetchall() == [(1,)]
        simple = psycopg2.connect(dsn)
        simple.autocommit = True
        try:
            for sql, sqlstate in WIRE:
                with pytest.raises(psycopg2.Error) as failed:
                    simple.cursor().execute(sql, (1,))
                assert failed.value.pgcode == sqlstate, (sql, failed.value)
        finally:
            simple.close()


DESCRIBED = [
    ("SELECT nofunc($1)", "42883"),
    ("SELECT zz FROM shop.customers WHERE id = $1", "42703"),
    ("SELECT id + CAST('x' AS VARCHAR) FROM shop.customers WHERE id = $1", "42883"),
    ("SELECT * FROM shop.missing WHERE id = $1", "42P01"),
]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_describe_of_a_statement_answers_the_same_codes(
    engine: str, request: pytest.FixtureRequest
) -> None:
    """Parse and Describe of a statement, alone (no Execute): over DuckDB the gateway binds it
    with DuckDB's own API, whose bind errors carry no structure; the codes are PostgreSQL's."""
    from conftest import gateway_parts, message_reader, serving

    from sqlml.wire import protocol as p
    from sqlml.wire.server import ServerConfig

    database = str(request.getfixturevalue("pg_database" if engine == "postgres" else "shop_file"))
    gateway = serving(ServerConfig(port=0), *gateway_parts(engine, database))
    with gateway as port, socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(p.StartupMessage({"user": "ana", "database": "shop"}).encode())
        read = message_reader(client)
        read(p.ReadyForQuery)
        for number, (sql, sqlstate) in enumerate(DESCRIBED):
            name = f"s{number}"
            client.sendall(p.Parse(name, sql, (23,)).encode())
            client.sendall(p.Describe("S", name).encode() + p.Sync().encode())
            answer = read(p.ReadyForQuery)
            codes = [m.fields["C"] for m in answer if isinstance(m, p.ErrorResponse)]
            assert codes == [sqlstate], (sql, answer)
