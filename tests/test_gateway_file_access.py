"""Per-user file access over DuckDB (docs/gateway.md, "Security"): on one gateway, the user the
users file gives ``files=allow`` reads and writes the server's files and attaches databases;
every other user gets 42501 for each way of reaching a file (the hostile suite's list, CREATE
MODEL and ML.PREDICT over read_csv, a view over read_text), and keeps everything else. Nobody
unlocks a setting. Real clients (psycopg2, psql) with SCRAM, sockets on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import client_module, serving, sqlml_serve
from test_gateway_hostile import (
    FILE_SPELLINGS,
    MODEL,
    PASSWORD,
    PREDICT,
    _connect,
    _files,
    _one,
    _psql,
    _sqlstate,
    psycopg2,
    trained,
)

import sqlml
from sqlml.engines.duckdb import DuckDBEngine, locked_down
from sqlml.wire import auth
from sqlml.wire.backends import DuckDBBackend, duckdb_opener
from sqlml.wire.server import ServerConfig

__all__ = ["trained"]  # (the fixture, imported from the hostile suite)

ALLOWED, OTHER = "alice", "bob"
CSV_MODEL = (
    "CREATE OR REPLACE MODEL shop.from_csv OPTIONS (model_type='linear_reg',"
    " input_label_cols=['b']) AS SELECT * FROM read_csv('{tmp}/train.csv')"
)
CSV_PREDICT = (
    "SELECT count(*) FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM read_csv('{tmp}/new.csv')))"
)


def _users() -> auth.Users:
    return auth.Users(
        [
            auth.Credential(ALLOWED, auth.scram_secret(PASSWORD), files=True),
            auth.Credential(OTHER, auth.scram_secret(PASSWORD)),
        ]
    )


@contextlib.contextmanager
def _gateway(database: str) -> Iterator[int]:
    users = _users()
    config = ServerConfig(port=0, auth_method="scram-sha-256", users=users)
    with serving(config, duckdb_opener(database, users=users)) as port:
        yield port


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The hostile suite's files, and CSV files to train on and to score."""
    _files(tmp_path)
    (tmp_path / "train.csv").write_text("a,b\n1,2\n2,4\n3,6\n4,8\n")
    rows = "\n".join(f"{t},{s},basic" for t, s in [(3, 40.0), (50, 80.5)])
    (tmp_path / "new.csv").write_text("tenure,spend,plan\n" + rows + "\n")
    return tmp_path


@pytest.fixture
def gateway(trained: str, folder: Path) -> Iterator[int]:
    with _gateway(trained) as port:
        yield port


@pytest.fixture
def allowed(gateway: int) -> Iterator[Any]:
    connection = _connect(gateway, ALLOWED)
    yield connection
    connection.close()


@pytest.fixture
def other(gateway: int) -> Iterator[Any]:
    connection = _connect(gateway, OTHER)
    yield connection
    connection.close()


# -- the allowed user ----------------------------------------------------------------------------


def test_the_allowed_user_reads_copies_and_attaches(allowed: Any, folder: Path) -> None:
    assert _one(allowed, f"SELECT sum(b) FROM read_csv('{folder}/train.csv')") == 20
    assert _sqlstate(allowed, f"COPY shop.customers TO '{folder}/out.csv'") is None
    assert (folder / "out.csv").read_text().count("\n") == 801
    assert (
        _sqlstate(allowed, "CREATE TABLE shop.copied AS SELECT * FROM shop.customers LIMIT 0")
        is None
    )
    assert _sqlstate(allowed, f"COPY shop.copied FROM '{folder}/out.csv'") is None
    assert _one(allowed, "SELECT count(*) FROM shop.copied") == 800
    assert _sqlstate(allowed, "COPY shop.copied FROM PROGRAM 'ls'") == "42501"
    assert _sqlstate(allowed, f"ATTACH '{folder}/other.duckdb' AS other") is None
    assert _sqlstate(allowed, "CREATE TABLE other.t AS SELECT 1 AS x") is None
    assert _one(allowed, "SELECT x FROM other.t") == 1
    assert _sqlstate(allowed, "DETACH other") is None


def test_the_allowed_user_trains_and_predicts_over_files(allowed: Any, folder: Path) -> None:
    assert _sqlstate(allowed, CSV_MODEL.format(tmp=folder)) is None
    assert _one(allowed, CSV_PREDICT.format(tmp=folder)) == 2


@pytest.mark.parametrize("sql", ["LOAD json", "INSTALL httpfs", "UPDATE EXTENSIONS"])
def test_extensions_stay_off_for_the_allowed_user(allowed: Any, sql: str) -> None:
    """Extensions belong to the instance: only --allow-file-access (everyone) loads them."""
    assert _sqlstate(allowed, sql) == "42501"
    assert _one(allowed, "SELECT 1") == 1


# -- the other user ------------------------------------------------------------------------------


def test_the_other_user_reaches_no_file(other: Any, folder: Path) -> None:
    before = set(folder.iterdir())
    refused = {}
    for spelling in FILE_SPELLINGS:
        refused[spelling] = _sqlstate(other, spelling.format(tmp=folder))
        assert _one(other, "SELECT 1") == 1  # the session goes on
    assert refused == dict.fromkeys(FILE_SPELLINGS, "42501")
    assert set(folder.iterdir()) == before  # nothing written


@pytest.mark.parametrize(
    "sql",
    [
        CSV_MODEL,
        CSV_PREDICT,
        "SELECT * FROM ML.EVALUATE(MODEL shop.churn, (SELECT * FROM read_csv('{tmp}/new.csv')))",
        "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')",
        "SELECT * FROM \"read_text\"('/etc/hostname')",
        "EXPLAIN SELECT * FROM read_text('/etc/hostname')",
        "EXPLAIN ANALYZE SELECT 1",
        "PRAGMA version",
        "CALL pragma_version()",
        "PREPARE p AS SELECT 1",
        "CREATE MACRO leak(p) AS TABLE SELECT * FROM read_text(p)",
    ],
)
def test_the_other_user_cannot_train_or_score_over_files(
    other: Any, folder: Path, sql: str
) -> None:
    assert _sqlstate(other, sql.format(tmp=folder)) == "42501"
    assert _one(other, "SELECT 1") == 1


def test_a_view_of_the_allowed_users_over_a_file(allowed: Any, other: Any) -> None:
    """DuckDB plans a view as what it reads: the view's read_text is the other user's."""
    assert (
        _sqlstate(allowed, "CREATE VIEW shop.host AS SELECT * FROM read_text('/etc/hostname')")
        is None
    )
    assert _one(allowed, "SELECT count(*) FROM shop.host") == 1
    assert _sqlstate(other, "SELECT count(*) FROM shop.host") == "42501"
    assert _sqlstate(other, "SELECT (SELECT count(*) FROM shop.host)") == "42501"
    macro = "CREATE MACRO shop.lines(p) AS TABLE SELECT * FROM read_text(p)"
    assert _sqlstate(allowed, macro) is None
    assert _sqlstate(other, "SELECT * FROM shop.lines('/etc/hostname')") == "42501"
    assert _one(other, "SELECT 1") == 1


def test_a_view_over_a_file_that_is_gone(allowed: Any, other: Any, folder: Path) -> None:
    """Planning the view opens its file: the IO error is a refusal, not DuckDB's message."""
    gone = folder / "gone.csv"
    gone.write_text("a\n1\n")
    assert _sqlstate(allowed, f"CREATE VIEW shop.gone AS SELECT * FROM read_csv('{gone}')") is None
    gone.unlink()
    assert _sqlstate(other, "SELECT * FROM shop.gone") == "42501"
    assert _sqlstate(allowed, "SELECT * FROM shop.gone") == "58030"  # (DuckDB's IO error)


def test_a_refusal_in_a_transaction(gateway: int) -> None:
    """A refused statement fails the transaction as any error does; ROLLBACK ends it."""
    connection = _connect(gateway, OTHER)
    try:
        connection.autocommit = False
        with connection.cursor() as cur:
            cur.execute("INSERT INTO shop.customers (id) VALUES (-1)")
            cur.execute("COMMENT ON TABLE shop.customers IS 'c'")  # (DuckDB cannot EXPLAIN it)
            cur.execute("SET VARIABLE v = (SELECT count(*) FROM shop.customers)")
            cur.execute("SELECT getvariable('v')")
            assert cur.fetchone() == (801,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT * FROM read_text('/etc/hostname')")
            with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
                cur.execute("SELECT 1")
        connection.rollback()
        connection.autocommit = True
        assert _one(connection, "SELECT count(*) FROM shop.customers WHERE id = -1") == 0
    finally:
        connection.close()


def test_the_other_user_keeps_everything_else(other: Any, gateway: int) -> None:
    assert _sqlstate(other, "CREATE TABLE shop.notes (id INTEGER, note VARCHAR)") is None
    assert _sqlstate(other, "INSERT INTO shop.notes VALUES (1, 'a'), (2, 'b')") is None
    with other.cursor() as cur:
        cur.execute("SELECT note FROM shop.notes WHERE id = %s", (2,))
        assert cur.fetchone() == ("b",)
        cur.copy_expert("COPY shop.notes FROM STDIN", io.StringIO("3\tc\n"))
        out = io.StringIO()
        cur.copy_expert("COPY (SELECT id FROM shop.notes ORDER BY id) TO STDOUT", out)
        assert out.getvalue() == "1\n2\n3\n"
    assert _one(other, PREDICT) == 200
    assert _one(other, "SELECT count(*) FROM ML.EVALUATE(MODEL shop.churn)") == 1
    retrain = MODEL.replace("CREATE MODEL", "CREATE OR REPLACE MODEL")
    assert _sqlstate(other, retrain) is None
    assert _one(other, "SELECT count(*) FROM generate_series(1, 3)") == 3
    assert _sqlstate(other, "SET search_path = shop") is None
    assert _one(other, "EXPLAIN SELECT * FROM customers") is not None
    url = f"postgresql://{OTHER}@127.0.0.1:{gateway}/shop?sslmode=disable"
    out = subprocess.run(
        [_psql(), "-X", "-c", r"\dt shop.*", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGPASSWORD": PASSWORD},
    )
    assert out.returncode == 0, out.stderr
    assert "notes" in out.stdout
    out = subprocess.run(
        [_psql(), "-X", "-c", r"\d shop.customers", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGPASSWORD": PASSWORD},
    )
    assert out.returncode == 0, out.stderr
    assert "tenure" in out.stdout


def test_bind_parameters_are_planned_with_their_values(gateway: int) -> None:
    """psycopg 3 binds on the server ($1, extended protocol, Describe included): the check
    plans the statement with its values; ML.PREDICT with parameters is checked the same way."""
    psycopg = client_module("psycopg")
    url = f"postgresql://{OTHER}:{PASSWORD}@127.0.0.1:{gateway}/shop?sslmode=disable"
    with psycopg.connect(url, autocommit=True) as connection:
        expected = _scalar(connection, "SELECT count(*) FROM shop.customers WHERE tenure > 10")
        for _ in range(3):  # (psycopg prepares it on the server)
            sql = "SELECT count(*) FROM shop.customers WHERE tenure > %s"
            assert connection.execute(sql, (10,), prepare=True).fetchone() == (expected,)
        expected = _scalar(connection, "SELECT count(*) FROM shop.new_customers WHERE tenure > 10")
        predict = (
            "SELECT count(*) FROM ML.PREDICT(MODEL shop.churn,"
            " (SELECT * FROM shop.new_customers WHERE tenure > %s))"
        )
        for _ in range(3):  # (the second time from the kept plan)
            assert connection.execute(predict, (10,)).fetchone() == (expected,)
        for sql in [
            "SELECT * FROM read_text(%s)",
            "SELECT count(*) FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM read_csv(%s)))",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(sql, ("/etc/hostname",))
        assert connection.execute("SELECT %s::int", (7,)).fetchone() == (7,)
    with psycopg.connect(url) as connection:  # in a transaction: no check may abort it
        for _ in range(3):
            assert connection.execute(predict, (10,)).fetchone() == (expected,)
        connection.commit()


def _scalar(connection: Any, sql: str) -> int:
    row = connection.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = false",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "RESET lock_configuration",
        "SET autoload_known_extensions = true",
    ],
)
@pytest.mark.parametrize("user", [ALLOWED, OTHER])
def test_nobody_unlocks_a_setting(gateway: int, user: str, sql: str) -> None:
    connection = _connect(gateway, user)
    try:
        assert _sqlstate(connection, sql) == "42501"
        expected = None if user == ALLOWED else "42501"
        assert _sqlstate(connection, "SELECT * FROM read_text('/etc/hostname')") == expected
    finally:
        connection.close()


# -- configuration -------------------------------------------------------------------------------


def test_users_file_attributes(tmp_path: Path) -> None:
    secret = auth.scram_secret(PASSWORD)
    path = tmp_path / "users"
    path.write_text(
        f"alice:role=read-write,files=allow:{secret}\nbob:files=deny:{secret}\ncarl:{secret}\n"
    )
    path.chmod(0o600)
    users = auth.Users.from_file(path)
    assert [users[u].files for u in ("alice", "bob", "carl")] == [True, False, False]
    for bad in ["files=yes", "role=read-only,role=read-write", "files=allow,", "file=allow"]:
        path.write_text(f"alice:{bad}:{secret}\n")
        with pytest.raises(sqlml.errors.InvalidParameterValue):
            auth.Users.from_file(path)


def test_files_allow_needs_password_authentication(tmp_path: Path) -> None:
    """Under trust any client may log in as the allowed user: the server refuses to start
    (22023). With SCRAM the same users file is taken, and the start goes on to open the
    database (a directory here: it fails there, with 58000)."""
    from click.testing import CliRunner

    from sqlml.cli import main

    path = tmp_path / "users"
    path.write_text(f"alice:files=allow:{auth.scram_secret(PASSWORD)}\n")
    path.chmod(0o600)
    serve = ["serve", "-d", str(tmp_path), "--port", "0", "--users-file", str(path)]
    answers = {}
    for method in ("trust", "scram"):
        result = CliRunner().invoke(main, [*serve, "--auth", method])
        assert result.exit_code != 0
        answers[method] = result.output.split("ERROR ", 1)[-1][:5]
    assert answers == {"trust": "22023", "scram": "58000"}


def test_sqlml_serve_gives_files_to_the_allowed_user_only(trained: str, folder: Path) -> None:
    """Through the real command: ``sqlml serve`` holds its file from the start (opened as the
    backends open it: per-user, not locked down), so the allowed user reads a CSV and the other
    gets 42501."""
    users = folder / "users"
    secret = auth.scram_secret(PASSWORD)
    users.write_text(f"{ALLOWED}:files=allow:{secret}\n{OTHER}:{secret}\n")
    users.chmod(0o600)
    options = ["-d", trained, "--auth", "scram", "--users-file", str(users)]
    with sqlml_serve(*options) as port:
        csv = f"SELECT count(*) FROM read_csv('{folder}/train.csv')"
        allowed = _connect(port, ALLOWED)
        assert _one(allowed, csv) == 4
        allowed.close()
        other = _connect(port, OTHER)
        assert _sqlstate(other, csv) == "42501"
        other.close()


def test_without_files_allow_the_instance_is_locked_down_unchecked(trained: str) -> None:
    """The default stays DuckDB's own lock-down, with no check (and no EXPLAIN) on top."""
    users = auth.Users([auth.Credential(OTHER, auth.scram_secret(PASSWORD))])
    backend = duckdb_opener(trained, users=users)("shop", OTHER)
    try:
        assert backend.engine.guard is None
        assert locked_down(backend.engine.con)
    finally:
        backend.close()


def test_per_user_and_locked_down_do_not_mix_on_one_file(trained: str) -> None:
    """One instance per file and process: an engine that asks for the full lock-down after
    per-user access opened the file fails to open, rather than run less locked than asked."""
    allowed = duckdb_opener(trained, users=_users())("shop", ALLOWED)
    try:
        assert not locked_down(allowed.engine.con)
        with pytest.raises(sqlml.errors.OperationalError):
            DuckDBEngine(trained, external_access=False)
    finally:
        allowed.close()


# -- check and run see one catalog ---------------------------------------------------------------


@pytest.fixture
def pair(trained: str) -> Iterator[tuple[DuckDBBackend, DuckDBBackend]]:
    """The allowed user's and the other user's sessions on one per-user instance, with a
    view the other user may read."""
    opener = duckdb_opener(trained, users=_users())
    allowed, other = opener("shop", ALLOWED), opener("shop", OTHER)
    try:
        allowed.execute("CREATE VIEW shop.swapped AS SELECT 'harmless' AS content")
        yield allowed, other
    finally:
        other.close()
        allowed.close()


def _swap_after_the_check(pair: tuple[DuckDBBackend, DuckDBBackend]) -> None:
    """The race, made certain: the view becomes one over a file right after each check of the
    other user's statements (as another connection may do at any moment)."""
    allowed, other = pair
    check = other.engine.guard
    assert check is not None

    def checked_then_swapped(sql: str, params: Any) -> None:
        check(sql, params)
        allowed.execute(f"CREATE OR REPLACE VIEW shop.swapped AS {SWAPPED}")

    other.engine.guard = checked_then_swapped


SWAPPED = "SELECT content FROM read_text('/etc/hostname')"


def test_a_view_replaced_between_check_and_run(pair: tuple[DuckDBBackend, DuckDBBackend]) -> None:
    _, other = pair
    _swap_after_the_check(pair)
    table = other.execute("SELECT content FROM shop.swapped").table
    assert table is not None
    assert table.column(0).to_pylist() == ["harmless"]  # the view that was checked
    with pytest.raises(sqlml.errors.InsufficientPrivilege):  # and now the new one is seen
        other.execute("SELECT content FROM shop.swapped")


def test_a_view_replaced_under_a_kept_plan(pair: tuple[DuckDBBackend, DuckDBBackend]) -> None:
    """A kept ML plan runs as EXECUTE, which DuckDB binds again after the view changed: the
    check runs with it, whenever the token says nothing changed."""
    allowed, other = pair
    allowed.execute(
        "CREATE VIEW shop.scored AS SELECT c.*, v.content FROM shop.new_customers c, shop.swapped v"
    )
    predict = "SELECT count(*) FROM ML.PREDICT(MODEL shop.churn, TABLE shop.scored)"
    for _ in range(3):  # (kept and prepared)
        table = other.execute(predict).table
        assert table is not None
        assert table.column(0).to_pylist() == [200]
    prepared = other.engine.run_prepared

    def swapped_first(name: str, params: Any) -> Any:
        allowed.engine.con.execute(
            f"CREATE OR REPLACE VIEW shop.swapped AS {SWAPPED}"
        )  # (no token bump)
        return prepared(name, params)

    other.engine.run_prepared = swapped_first  # type: ignore[method-assign]
    with pytest.raises(sqlml.errors.InsufficientPrivilege):
        other.execute(predict)
