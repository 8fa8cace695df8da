"""sqlml serve over a DuckDB file, driven by real clients (psycopg2, psql) and by raw bytes."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from conftest import serving, unavailable

import sqlml
from sqlml.wire import auth
from sqlml.wire import protocol as p
from sqlml.wire.backends import DuckDBBackend
from sqlml.wire.server import ServerConfig
from sqlml.wire.session import Session, SessionConfig, StartTLS

MODEL = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'])"
    " AS SELECT tenure, spend, plan, churned FROM shop.customers"
)
PREDICT = (
    "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
    " ORDER BY id"
)


def _serving(config: ServerConfig, path: str) -> contextlib.AbstractContextManager[int]:
    return serving(config, lambda dbname, user: DuckDBBackend(path, dbname, user))


@pytest.fixture
def gateway(shop_file: str) -> Iterator[str]:
    """A gateway on a free loopback port over the shop file, run on its own event loop thread."""
    with _serving(ServerConfig(port=0), shop_file) as port:
        yield f"postgresql://analyst@127.0.0.1:{port}/shop"


def test_psycopg2_plain_sql_ml_and_errors(gateway: str, shop_file: str) -> None:
    con = psycopg2.connect(gateway)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 AS one, 'x' AS s, 2.5::DOUBLE PRECISION AS d, NULL AS n")
            assert cur.fetchall() == [(1, "x", 2.5, None)]
            cur.execute("CREATE TABLE shop.t (a INTEGER, b TEXT)")
            cur.execute("INSERT INTO shop.t VALUES (%s, %s), (%s, %s)", (1, "o'ne", 2, None))
            assert cur.rowcount == 2
            cur.execute("SELECT a, b FROM shop.t ORDER BY a")
            assert cur.fetchall() == [(1, "o'ne"), (2, None)]
            cur.execute(MODEL)
            cur.execute(PREDICT)
            through_gateway = cur.fetchall()
        con.commit()
        with con.cursor() as cur:
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT * FROM shop.missing")
            assert raised.value.pgcode == "42P01"
        con.rollback()  # psycopg2 opened a transaction; the error aborted it (25P02 until here)
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM shop.new_customers")
            assert cur.fetchone() is not None
        con.commit()
    finally:
        con.close()
    direct = sqlml.connect(shop_file)
    try:
        assert direct.execute(PREDICT).fetchall() == through_gateway
        assert len(through_gateway) > 0
    finally:
        direct.close()


def test_public_is_main_in_three_part_names_and_in_ml_statements(
    gateway: str, shop_file: str
) -> None:
    """What dbt-postgres sends (issue 16): "db"."public"."t", in plain SQL and in ML statements,
    is DuckDB's main (which the gateway shows as public), and so is MODEL public.m; a string
    that spells public.x stays as it is."""
    con = psycopg2.connect(gateway)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute('CREATE TABLE "store"."public"."c" AS SELECT * FROM shop.customers')
            cur.execute('ALTER TABLE "store"."public"."c" RENAME TO "c2"')
            cur.execute(
                'CREATE MODEL "public"."m" OPTIONS (model_type = \'logistic_reg\','
                " input_label_cols = ['churned']) AS SELECT tenure, spend, plan, churned"
                ' FROM "store"."public"."c2" WHERE plan <> \'public.x\''
            )
            cur.execute(
                'SELECT count(*) FROM ML.PREDICT(MODEL public.m, TABLE "store"."public"."c2")'
            )
            (scored,) = cur.fetchone()
    finally:
        con.close()
    direct = sqlml.connect(shop_file)
    try:
        assert direct.execute("SELECT count(*) FROM main.c2").fetchall() == [(scored,)]
        assert direct.execute("SELECT count(*) FROM ML.VERSIONS(MODEL main.m)").fetchall() == [(1,)]
        ((query,),) = direct.execute("SELECT query_sql FROM sqlml.versions").fetchall()
        assert query.endswith('FROM "store".main."c2" WHERE plan <> \'public.x\''), query
        assert scored > 0
    finally:
        direct.close()


def test_failed_transaction_gives_25P02_until_rollback(gateway: str) -> None:
    con = psycopg2.connect(gateway)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("BEGIN")
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT * FROM nowhere")
            assert raised.value.pgcode == "42P01"
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT 1")
            assert raised.value.pgcode == "25P02"
            cur.execute("ROLLBACK")
            cur.execute("SELECT 2")
            assert cur.fetchone() == (2,)
    finally:
        con.close()


def test_psql_runs_queries_and_ml(gateway: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    done = subprocess.run(
        [psql, gateway, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", MODEL, "-c", PREDICT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "|" in line]
    assert len(lines) > 0
    assert {line.split("|")[1] for line in lines} <= {"t", "f"}


def _startup(session: Session) -> bytes:
    startup = p.StartupMessage({"user": "analyst", "database": "shop"}).encode()
    return b"".join(o for o in session.receive(startup) if isinstance(o, bytes))


def test_session_bytes_in_messages_out(shop_file: str) -> None:
    """The sans-IO session driven with bytes: startup, a simple query, the extended protocol."""
    session = Session(
        SessionConfig(), lambda dbname, user: DuckDBBackend(shop_file, dbname, user), 7, 42
    )
    try:
        reader = p.BackendReader()
        reader.feed(_startup(session))
        kinds = [type(m).__name__ for m in iter(reader.next, None)]
        assert kinds[0] == "AuthenticationOk"
        assert kinds[-2:] == ["BackendKeyData", "ReadyForQuery"]
        query = p.Query("SELECT 40 + 2 AS answer; SELECT 'a' AS s").encode()
        reader.feed(b"".join(o for o in session.receive(query) if isinstance(o, bytes)))
        messages = list(iter(reader.next, None))
        rows = [m.values for m in messages if isinstance(m, p.DataRow)]
        assert rows == [(b"42",), (b"a",)]
        assert messages[-1] == p.ReadyForQuery("I")
        extended = b"".join(
            m.encode()
            for m in (
                p.Parse("", "SELECT $1::INTEGER * 2 AS doubled", (23,)),
                p.Bind("", "", (1,), ((21).to_bytes(4, "big"),), (1,)),
                p.Describe("P", ""),
                p.Execute("", 0),
                p.Sync(),
            )
        )
        reader.feed(b"".join(o for o in session.receive(extended) if isinstance(o, bytes)))
        messages = list(iter(reader.next, None))
        data = [m for m in messages if isinstance(m, p.DataRow)]
        assert len(data) == 1
        assert int.from_bytes(data[0].values[0] or b"", "big", signed=True) == 42
        assert messages[-1] == p.ReadyForQuery("I")
    finally:
        session.close()


def test_psql_describes_tables_through_the_emulated_catalog(gateway: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")

    def run(command: str) -> str:
        done = subprocess.run(
            [psql, gateway, "-X", "-c", command], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout

    listing = run(r"\dt shop.*")
    assert "customers" in listing
    assert "new_customers" in listing
    described = run(r"\d shop.customers")
    rows = {
        line.split("|")[0].strip(): line.split("|")[1].strip()
        for line in described.splitlines()
        if line.count("|") >= 4
    }
    assert rows["spend"] == "double precision"
    assert rows["plan"] == "text"
    assert rows["churned"] == "boolean"


@pytest.mark.parametrize("method", ["scram-sha-256", "md5", "password"])
def test_password_authentication_over_tls(
    method: str, shop_file: str, tls_files: tuple[str, str]
) -> None:
    """libpq (psycopg2) logs in over TLS with the right password and gets 28P01 with a wrong
    one; the secrets are PostgreSQL-format verifiers, never the password."""
    secret = auth.scram_secret("s3cret") if method != "md5" else auth.md5_secret("ana", "s3cret")
    users = auth.Users([auth.Credential("ana", secret)])
    cert, key = tls_files
    config = ServerConfig(port=0, auth_method=method, users=users, tls_cert=cert, tls_key=key)
    with _serving(config, shop_file) as port:
        common = {"host": "127.0.0.1", "port": port, "dbname": "shop", "user": "ana"}
        con = psycopg2.connect(password="s3cret", sslmode="require", **common)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT count(*) FROM shop.customers")
                assert cur.fetchone() == (800,)
            assert con.info.ssl_in_use
        finally:
            con.close()
        with pytest.raises(psycopg2.OperationalError) as raised:
            psycopg2.connect(password="wrong", sslmode="require", **common)
        # libpq does not expose the SQLSTATE of a failed connection; PostgreSQL's message
        assert 'password authentication failed for user "ana"' in str(raised.value)


def test_hostile_bytes_close_only_their_connection(gateway: str) -> None:
    """Random and mutated messages get 08P01 (or a close) on their own connection; a client
    connected meanwhile keeps working."""
    port = int(gateway.rsplit(":", 1)[1].split("/")[0])
    good = psycopg2.connect(gateway)
    good.autocommit = True
    rng = np.random.default_rng(7)
    startup = p.StartupMessage({"user": "x", "database": "shop"}).encode()
    valid = p.Query("SELECT 1").encode()
    cases = [bytes(rng.integers(0, 256, size=int(n), dtype=np.uint8)) for n in (3, 8, 64, 4096)]
    cases += [startup + bytes([b]) + valid[1:] for b in (0, 1, 0x7F, 0xFF)]
    cases += [startup + b"Q" + (2**31 - 1).to_bytes(4, "big")]  # a 2 GB message announced
    cases += [startup + b"Q" + (13).to_bytes(4, "big") + b"\xff" * 8 + b"\x00"]  # not UTF-8
    try:
        for payload in cases:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as hostile:
                hostile.sendall(payload)
                hostile.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := hostile.recv(65536):
                    answer += chunk
            if payload.startswith(startup):  # framed garbage after a good startup: 08P01
                assert b"C08P01\x00" in answer
            with good.cursor() as cur:
                cur.execute("SELECT 41 + 1")
                assert cur.fetchone() == (42,)
    finally:
        good.close()


def test_extended_protocol_describes_and_pages_an_ml_query(shop_file: str) -> None:
    """Parse / Describe S / Bind / Execute with a row limit (PortalSuspended) / Execute / Sync on
    an ML.PREDICT: the rows equal sqlml.connect's. (Parameters inside ML statements are not
    supported yet by the engine path: 0A000.)"""
    query = (
        "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn,"
        " (SELECT * FROM shop.new_customers WHERE id < 6)) ORDER BY id"
    )
    direct = sqlml.connect(shop_file, autocommit=True)
    direct.execute(MODEL)
    expected = direct.execute(query).fetchall()
    direct.close()
    session = Session(
        SessionConfig(), lambda dbname, user: DuckDBBackend(shop_file, dbname, user), 7, 42
    )
    try:
        _startup(session)
        messages = (
            p.Parse("s1", query, ()),
            p.Describe("S", "s1"),
            p.Bind("", "s1", (), (), ()),
            p.Execute("", 2),
            p.Execute("", 0),
            p.Sync(),
        )
        reader = p.BackendReader()
        data = b"".join(m.encode() for m in messages)
        reader.feed(b"".join(o for o in session.receive(data) if isinstance(o, bytes)))
        got = list(iter(reader.next, None))
    finally:
        session.close()
    kinds = [type(m).__name__ for m in got]
    assert kinds[:3] == ["ParseComplete", "ParameterDescription", "RowDescription"]
    assert "PortalSuspended" in kinds
    assert got[-1] == p.ReadyForQuery("I")
    description = got[2]
    assert isinstance(description, p.RowDescription)
    assert [f.name for f in description.fields] == ["id", "predicted_churned"]
    rows = [
        (int(m.values[0] or b""), (m.values[1] or b"") == b"t")
        for m in got
        if isinstance(m, p.DataRow)
    ]
    assert rows == [(i, bool(c)) for i, c in expected]
    assert len(rows) == 6  # ids 0..5


def _fatal_code(session: Session, *messages: p._Message) -> str:
    reader = p.BackendReader()
    for message in messages:
        reader.feed(b"".join(o for o in session.receive(message.encode()) if isinstance(o, bytes)))
    errors_seen = [m for m in iter(reader.next, None) if isinstance(m, p.ErrorResponse)]
    assert len(errors_seen) == 1
    assert errors_seen[0].fields["S"] == "FATAL"
    assert session.closed
    return errors_seen[0].fields["C"]


def test_cleartext_password_only_over_tls_or_loopback(shop_file: str) -> None:
    users = auth.Users([auth.Credential("ana", auth.scram_secret("s3cret"))])
    config = SessionConfig(auth_method="password", users=users, loopback=False)
    backend = lambda dbname, user: DuckDBBackend(shop_file, dbname, user)  # noqa: E731
    startup = p.StartupMessage({"user": "ana", "database": "shop"})
    assert _fatal_code(Session(config, backend, 1, 2), startup) == "28000"
    over_tls = Session(replace(config, tls=True), backend, 1, 2)
    assert isinstance(next(over_tls.receive(p.SSLRequest().encode())), StartTLS)
    asked = b"".join(o for o in over_tls.receive(startup.encode()) if isinstance(o, bytes))
    assert asked == p.AuthenticationCleartextPassword().encode()


def test_a_database_that_cannot_be_opened_is_a_fatal_error(tmp_path: Path) -> None:
    folder = str(tmp_path)  # a directory is no DuckDB file
    session = Session(SessionConfig(), lambda db, user: DuckDBBackend(folder, db, user), 1, 2)
    assert _fatal_code(session, p.StartupMessage({"user": "ana", "database": "x"})) == "58000"
