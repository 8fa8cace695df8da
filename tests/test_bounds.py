"""Bounded state, released on close or failure: the DuckDB scoring UDF's model registry, the
per-engine generations of ``:memory:`` databases, the gateway's prepared statements and portals
(53400 past the limit, the session goes on), and a failed open that must not keep the DuckDB
file open."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import gateway_parts, message_reader, serving

import sqlml
from sqlml.engines import duckdb as duck
from sqlml.wire import protocol as p
from sqlml.wire import session as wire_session
from sqlml.wire.server import ServerConfig

MODEL = (
    "CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS"
    " SELECT i::DOUBLE AS x, 2 * i::DOUBLE AS label FROM range(50) r(i)"
)


def _registry() -> dict[str, object]:
    return duck._udfs()._MODELS  # type: ignore[no-any-return]


def test_the_scoring_registry_holds_an_engines_latest_versions_until_it_closes() -> None:
    before = set(_registry())
    con = sqlml.connect(":memory:", autocommit=True, scoring="runtime")
    try:
        con.execute(MODEL)
        for _ in range(3):  # each retraining is a new graph (the same one here: one entry)
            rows = con.execute("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 3.0 AS x))").fetchall()
            assert rows[0][-1] == pytest.approx(6.0)
        engine = con.session.engine
        assert isinstance(engine, duck.DuckDBEngine)
        for i in range(duck.MAX_SCORERS * 3):  # a long session scores many versions
            graph = f"graph {i}".encode()  # (keys are the bytes' sha256, checked when registered)
            engine.register_scorer(hashlib.sha256(graph).hexdigest(), graph, [])
        assert len(set(_registry()) - before) <= duck.MAX_SCORERS
        # the engine registers a version again before a query uses it
        rows = con.execute("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 3.0 AS x))").fetchall()
        assert rows[0][-1] == pytest.approx(6.0)
    finally:
        con.close()
    assert set(_registry()) - before == set()


def test_closed_memory_databases_leave_no_generations() -> None:
    before = len(duck._generations)
    for _ in range(20):
        con = sqlml.connect(":memory:", autocommit=True)
        con.execute("CREATE TABLE t (x INTEGER)")  # (a change: counted for the database)
        con.close()
    assert len(duck._generations) <= before


def test_a_failed_open_does_not_keep_the_file_open(tmp_path: Path) -> None:
    path = str(tmp_path / "broken.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE SCHEMA sqlml; CREATE TABLE sqlml.store_info (x INTEGER)")
    con.close()
    with pytest.raises(sqlml.Error):  # the store cannot be set up in it
        sqlml.connect(path)
    # another process can lock the file: this one let it go
    opened = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({path!r}).close()"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    # and this process opens it again (the first attempt's DDL got as far as the INSERT)
    sqlml.connect(path).close()


def _session(port: int) -> tuple[socket.socket, object]:
    client = socket.create_connection(("127.0.0.1", port), timeout=60)
    client.sendall(p.StartupMessage({"user": "ana", "database": "shop"}).encode())
    read = message_reader(client)
    read(p.ReadyForQuery)
    return client, read


def test_a_session_that_prepares_forever_gets_53400_and_goes_on(shop_file: str) -> None:
    limit = wire_session.MAX_STATEMENTS
    with serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port:
        client, read = _session(port)
        with client:
            batch = b"".join(p.Parse(f"s{i}", "SELECT 1").encode() for i in range(limit + 1))
            client.sendall(batch + p.Sync().encode())
            answers = read(p.ReadyForQuery)  # type: ignore[operator]
            errors = [m for m in answers if isinstance(m, p.ErrorResponse)]
            assert [e.fields["C"] for e in errors] == ["53400"]
            assert sum(isinstance(m, p.ParseComplete) for m in answers) == limit
            # closing one makes room; the session answers as before
            client.sendall(
                p.Close("S", "s0").encode()
                + p.Parse("again", "SELECT 1").encode()
                + p.Sync().encode()
            )
            answers = read(p.ReadyForQuery)  # type: ignore[operator]
            assert not [m for m in answers if isinstance(m, p.ErrorResponse)]
            client.sendall(p.Query("SELECT 7").encode())
            answers = read(p.ReadyForQuery)  # type: ignore[operator]
            assert next(m for m in answers if isinstance(m, p.DataRow)).values == (b"7",)


def test_a_session_that_binds_portals_forever_gets_53400(shop_file: str) -> None:
    limit = wire_session.MAX_PORTALS
    with serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port:
        client, read = _session(port)
        with client:
            binds = b"".join(p.Bind(f"p{i}", "s", (), (), ()).encode() for i in range(limit + 1))
            client.sendall(p.Parse("s", "SELECT 1").encode() + binds + p.Sync().encode())
            answers = read(p.ReadyForQuery)  # type: ignore[operator]
            errors = [m for m in answers if isinstance(m, p.ErrorResponse)]
            assert [e.fields["C"] for e in errors] == ["53400"]
            assert sum(isinstance(m, p.BindComplete) for m in answers) == limit
            client.sendall(p.Query("SELECT 7").encode())
            answers = read(p.ReadyForQuery)  # type: ignore[operator]
            assert next(m for m in answers if isinstance(m, p.DataRow)).values == (b"7",)
