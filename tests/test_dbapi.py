"""PEP 249 conformance of sqlml.connect, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import sqlml
from sqlml import cli, errors


def test_module_globals() -> None:
    assert sqlml.apilevel == "2.0"
    assert sqlml.threadsafety in (0, 1, 2, 3)
    assert sqlml.paramstyle == "qmark"
    for name in (
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(sqlml, name), Exception)
    assert issubclass(sqlml.ProgrammingError, sqlml.DatabaseError)
    assert sqlml.Date(2026, 1, 2).year == 2026
    assert sqlml.Binary(b"x") == b"x"
    assert sqlml.TimestampFromTicks(0).year in (1969, 1970)
    assert issubclass(sqlml.DatabaseError, sqlml.Error)


def test_cursor_fetches(database: str) -> None:
    con = sqlml.connect(database)
    cur = con.cursor()
    cur.execute("CREATE TABLE t (i BIGINT, x DOUBLE PRECISION)")
    cur.execute("INSERT INTO t VALUES (0, 0.0), (1, 1.5), (2, 3.0), (3, 4.5), (4, 6.0)")
    assert cur.description is None
    cur.execute("SELECT i, x FROM t ORDER BY i")
    assert [d[0] for d in cur.description or []] == ["i", "x"]
    assert [d[1] for d in cur.description or []] == [sqlml.NUMBER, sqlml.NUMBER]
    assert cur.description is not None
    assert cur.description[0][1] != sqlml.STRING
    assert cur.rowcount == 5
    assert cur.fetchone() == (0, 0.0)
    assert cur.fetchmany(2) == [(1, 1.5), (2, 3.0)]
    assert cur.fetchall() == [(3, 4.5), (4, 6.0)]
    assert cur.fetchone() is None
    cur.execute("SELECT * FROM t")
    assert cur.fetch_arrow_table().num_rows == 5
    cur.execute("SELECT * FROM t")
    assert list(cur.fetchdf()["x"]) == [0.0, 1.5, 3.0, 4.5, 6.0]
    cur.executemany("INSERT INTO t VALUES (?, ?)", [(10, 1.0), (11, 2.0)])
    assert cur.rowcount == 2
    con.close()
    with pytest.raises(errors.InterfaceError):
        cur.execute("SELECT 1")


def test_commit_and_rollback(database: str) -> None:
    path = database
    con = sqlml.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.execute("INSERT INTO t VALUES (1)")
    con.rollback()
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    con.execute("INSERT INTO t VALUES (2)")
    con.commit()
    con.close()
    again = sqlml.connect(path)
    assert again.execute("SELECT a FROM t").fetchall() == [(2,)]
    again.close()


def test_model_rolls_back_with_the_transaction(database: str) -> None:
    con = sqlml.connect(database)
    con.execute("CREATE TABLE d (x DOUBLE PRECISION, y BOOLEAN)")
    con.cursor().executemany(
        "INSERT INTO d VALUES (?, ?)", [(float(i), i % 2 == 0) for i in range(100)]
    )
    con.commit()
    con.execute(
        "CREATE MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y']) AS SELECT * FROM d"
    )
    con.rollback()
    with pytest.raises(errors.UndefinedModel):
        con.execute("SELECT * FROM ML.EVALUATE(MODEL m)")
    con.close()


def test_errors_keep_the_connection_usable(database: str) -> None:
    con = sqlml.connect(database, autocommit=True)
    with pytest.raises(sqlml.ProgrammingError) as caught:
        con.execute("SELECT * FROM nowhere")
    assert caught.value.sqlstate == "42P01"
    assert con.execute("SELECT 1").fetchone() == (1,)
    con.close()


def test_bad_scoring_setting() -> None:
    with pytest.raises(errors.InvalidParameterValue):
        sqlml.connect(":memory:", scoring="fast")


def test_cli_run_and_models(tmp_path: Path) -> None:
    script = tmp_path / "s.sql"
    script.write_text(
        "CREATE TABLE d AS SELECT range::DOUBLE AS x, (range * 7) % 10 < 5 AS y FROM range(200);\n"
        "CREATE MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y']) AS SELECT * FROM d;\n"
        "SELECT count(*) AS n FROM ML.PREDICT(MODEL m, TABLE d);\n"
    )
    database = str(tmp_path / "cli.duckdb")
    runner = CliRunner()
    result = runner.invoke(cli.main, ["run", "--database", database, str(script)])
    assert result.exit_code == 0, result.output
    assert "200" in result.output
    listed = runner.invoke(cli.main, ["models", "--database", database])
    assert listed.exit_code == 0
    assert "logistic_reg" in listed.output
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT * FROM ML.PREDICT(MODEL nope, TABLE d);")
    failed = runner.invoke(cli.main, ["run", "--database", database, str(bad)])
    assert failed.exit_code == 1
    assert "42704" in failed.output


def test_the_default_in_memory_database_runs_statements() -> None:
    """sqlml.connect() with no file: a database of its own, on the engine's own connection (a
    set-up query left unconsumed there made every later statement fail with 58000)."""
    con = sqlml.connect()
    try:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
        con.execute("CREATE TABLE t AS SELECT 2 AS x")
        assert con.execute("SELECT x FROM t").fetchall() == [(2,)]
    finally:
        con.close()
