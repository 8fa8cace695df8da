"""sqlml serve over PostgreSQL (proxy mode): non-ML traffic reaches the real server unchanged, ML
statements run on the same server connection inside the client's transaction. Real PostgreSQL,
real clients (psycopg2, psycopg 3, psql); results compared with sqlml.connect on the server."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import client_module, gateway_parts, message_reader, serving, unavailable

import sqlml
from sqlml.wire import protocol as p
from sqlml.wire.server import ServerConfig
from sqlml.wire.upstream import Frames, Target, to_dollar

MODEL = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'])"
    " AS SELECT tenure, spend, plan, churned FROM shop.customers"
)
PREDICT = (
    "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
    " ORDER BY id"
)


@pytest.fixture
def proxy(pg_database: str) -> Iterator[dict[str, object]]:
    """A gateway in proxy mode over a fresh database (sqlml installed, the shop tables)."""
    with serving(ServerConfig(port=0), *gateway_parts("postgres", pg_database)) as port:
        yield {"host": "127.0.0.1", "port": port, "dbname": "shop", "user": "ana"}


def _direct(dsn: str, sql: str) -> list[tuple[object, ...]]:
    connection = sqlml.connect(dsn, autocommit=True)
    try:
        cursor = connection.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        connection.close()


def test_plain_sql_is_postgresql_itself(proxy: dict[str, object]) -> None:
    con = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    con.autocommit = True
    try:
        assert con.server_version >= 150000  # the server's own ParameterStatus
        with con.cursor() as cur:
            cur.execute("SELECT version(), current_setting('application_name')")
            version, _ = cur.fetchone()  # type: ignore[misc]
            assert version.startswith("PostgreSQL 15")
            cur.execute(
                "SELECT %s::numeric * 2, %s::date, %s::int[]", ("1.25", "2024-02-29", [1, 2])
            )
            assert cur.fetchone() == (2.5, __import__("datetime").date(2024, 2, 29), [1, 2])
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT * FROM shop.missing")
            assert raised.value.pgcode == "42P01"
            assert raised.value.diag.statement_position == "15"  # every field of the server's
            buffer = io.StringIO()
            cur.copy_expert(
                "COPY (SELECT id, plan FROM shop.customers ORDER BY id) TO STDOUT", buffer
            )
            assert buffer.getvalue().splitlines()[0] == "0\tplus" or len(buffer.getvalue()) > 0
            cur.execute("CREATE TABLE shop.loaded (a int, b text)")
            cur.copy_expert("COPY shop.loaded FROM STDIN (FORMAT csv)", io.StringIO("1,x\n2,\n"))
            cur.execute("SELECT a, b FROM shop.loaded ORDER BY a")
            assert cur.fetchall() == [(1, "x"), (2, None)]
    finally:
        con.close()


def test_ml_statements_run_inside_the_clients_transaction(
    proxy: dict[str, object], pg_database: str
) -> None:
    con = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    try:
        with con.cursor() as cur:
            cur.execute(MODEL)  # psycopg2 opened a transaction: the training is part of it
            assert any("shop.churn version 1" in n for n in con.notices)  # progress
            cur.execute(PREDICT)
            assert len(cur.fetchall()) == 200
        con.rollback()
        with con.cursor() as cur:
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute(PREDICT)
            assert raised.value.pgcode == "42704"  # rolled back with the transaction
        con.rollback()
        with con.cursor() as cur:
            cur.execute(MODEL)
        con.commit()
        with con.cursor() as cur:
            cur.execute(PREDICT)
            through_proxy = cur.fetchall()
            one = "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM shop.new_customers WHERE id = %s))"
            cur.execute(one, (7,))
            assert cur.fetchall() == [through_proxy[7]]
            cur.execute("SELECT count(*) FROM ML.EVALUATE(MODEL shop.churn)")
            assert cur.fetchone() == (1,)
        con.commit()
    finally:
        con.close()
    assert through_proxy == _direct(pg_database, PREDICT)


def test_an_ml_error_aborts_the_transaction_like_any_error(proxy: dict[str, object]) -> None:
    con = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("CREATE TABLE shop.kept (a int)")
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT * FROM ML.PREDICT(MODEL shop.nowhere, TABLE shop.customers)")
            assert raised.value.pgcode == "42704"
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute("SELECT 1")
            assert raised.value.pgcode == "25P02"  # from the server itself
            cur.execute("ROLLBACK")
            cur.execute("SELECT to_regclass('shop.kept') IS NULL")
            assert cur.fetchone() == (True,)
            # a Query message mixing plain and ML statements: each runs, the last result shows
            cur.execute(f"{MODEL}; SELECT 40 + 2; SELECT count(*) FROM ({PREDICT}) AS q")
            assert cur.fetchone() == (200,)
    finally:
        con.close()


def test_prepared_ml_statements_and_binary_results_with_psycopg3(
    proxy: dict[str, object], pg_database: str
) -> None:
    psycopg = client_module("psycopg")
    _direct(pg_database, MODEL)
    one = "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM shop.new_customers WHERE id = %s))"
    expected = dict(_direct(pg_database, PREDICT))
    with psycopg.connect(**proxy, autocommit=True) as con:  # type: ignore[arg-type]
        for i in range(8):  # prepared server-side after a few runs (prepare_threshold)
            row = con.execute(one, (i,), prepare=i > 2).fetchone()
            assert row == (i, expected[i])
        with con.cursor(binary=True) as cur:
            cur.execute(PREDICT)
            assert dict(cur.fetchall()) == expected
        with con.transaction(), con.cursor(name="paged") as cur:  # DECLARE over an ML query
            cur.execute(PREDICT)
            assert dict(cur.fetchmany(50) + cur.fetchall()) == expected
        with con.pipeline():
            first = con.execute("SELECT 1")
            second = con.execute(one, (3,))
            third = con.execute("SELECT 3")
        assert (first.fetchone(), second.fetchone(), third.fetchone()) == (
            (1,),
            (3, expected[3]),
            (3,),
        )


def test_psql_catalog_commands_and_copy_through_the_proxy(
    proxy: dict[str, object], tmp_path: Path
) -> None:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    url = f"postgresql://ana@127.0.0.1:{proxy['port']}/shop"
    data = tmp_path / "rows.csv"
    data.write_text("1,one\n2,two\n")
    out = tmp_path / "predicted.csv"
    done = subprocess.run(
        [
            *(psql, url, "-X", "-v", "ON_ERROR_STOP=1", "-c", r"\dt shop.*"),
            *("-c", "CREATE TABLE shop.t (a int, b text)"),
            *("-c", rf"\copy shop.t FROM '{data}' (FORMAT csv)", "-c", "SELECT sum(a) FROM shop.t"),
            *("-c", MODEL, "-c", rf"\copy ({PREDICT}) TO '{out}' (FORMAT csv)"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "new_customers" in done.stdout
    assert "COPY 2" in done.stdout
    assert " 3\n" in done.stdout
    assert len(out.read_text().splitlines()) == 200


def test_cancel_reaches_the_server_and_the_session_goes_on(proxy: dict[str, object]) -> None:
    """psycopg 3's cancel_safe (psycopg2's cancel holds the GIL while it waits for the server,
    which here is the gateway in this very process)."""
    psycopg = client_module("psycopg")
    with psycopg.connect(**proxy, autocommit=True) as con:  # type: ignore[arg-type]
        timer = threading.Timer(0.5, con.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            con.execute("SELECT pg_sleep(30)")
        timer.join()
        assert time.monotonic() - started < 20
        assert con.execute("SELECT 'still here'").fetchone() == ("still here",)


def _logged_in(
    port: int, receive_buffer: int | None = None
) -> tuple[socket.socket, Callable[[type], list[Any]]]:
    client = socket.create_connection(("127.0.0.1", port), timeout=20)
    if receive_buffer is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.sendall(p.StartupMessage({"user": "ana", "database": "shop"}).encode())
    read = message_reader(client)
    read(p.ReadyForQuery)
    return client, read


def test_a_client_that_stops_reading_plain_sql_is_cut_off(pg_database: str) -> None:
    """Plain SQL's answers are relayed on the event loop, not by a worker: a client that
    stops reading them is still cut off after the write timeout, and its slot and its server
    backend are freed."""
    config = ServerConfig(port=0, max_connections=1, write_timeout=1.0)
    with serving(config, *gateway_parts("postgres", pg_database)) as port:
        greedy, _ = _logged_in(port, receive_buffer=4096)
        big = "SELECT repeat('x', 1000) AS pad FROM generate_series(1, 200000)"  # ~200 MB
        greedy.sendall(p.Query(big).encode())  # and never read
        time.sleep(0.5)
        started = time.monotonic()
        for _ in range(200):  # the only slot is free within the write timeout
            with contextlib.suppress(psycopg2.OperationalError):
                con = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
                break
            time.sleep(0.05)
        else:
            pytest.fail("a client that does not read kept its slot")
        assert time.monotonic() - started < 8
        with con.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        con.close()
        greedy.close()


def test_plain_and_ml_messages_sent_without_waiting_keep_their_order(
    proxy: dict[str, object],
) -> None:
    """Plain SQL goes to the server from the event loop, ML through a worker thread: messages
    sent back to back, each in its own packet, are still answered in the order sent."""
    model = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    model.autocommit = True
    with model.cursor() as cur:
        cur.execute(MODEL)
    model.close()
    client, read = _logged_in(int(proxy["port"]))  # type: ignore[call-overload]
    one = "SELECT predicted_churned::text FROM ML.PREDICT(MODEL shop.churn, (SELECT 1 AS tenure,"
    one += " 99.0::float8 AS spend, 'basic' AS plan)) AS t"
    sent = [
        p.Query("SELECT 'first'"),
        p.Query(one),
        p.Query("SELECT 'third'"),
        p.Parse("", "SELECT $1::text", (0,)),
        p.Bind("", "", (), (b"fourth",), ()),
        p.Execute("", 0),
        p.Sync(),
        p.Parse("", one, ()),
        p.Bind("", "", (), (), ()),
        p.Execute("", 0),
        p.Sync(),
        p.Query("SELECT 'last'"),
    ]
    with client:
        for message in sent:
            client.sendall(message.encode())
        rows = [
            m.values[0] for _ in range(6) for m in read(p.ReadyForQuery) if isinstance(m, p.DataRow)
        ]
    assert [r for i, r in enumerate(rows) if i not in (1, 4)] == [
        b"first",
        b"third",
        b"fourth",
        b"last",
    ]
    assert rows[1] in (b"true", b"false")
    assert rows[4] == rows[1]  # the same row, scored twice


def test_notifications_reach_an_idle_client_at_once(proxy: dict[str, object]) -> None:
    """The event loop reads the server while the client waits: a NOTIFY arrives without the
    listener sending anything."""
    client, read = _logged_in(int(proxy["port"]))  # type: ignore[call-overload]
    with client:
        client.sendall(p.Query("LISTEN news").encode())
        read(p.ReadyForQuery)
        other = psycopg2.connect(**proxy)  # type: ignore[arg-type]
        other.autocommit = True
        with other.cursor() as cur:
            cur.execute("NOTIFY news, 'hello'")
        other.close()
        client.settimeout(10)
        notification = read(p.NotificationResponse)[-1]
        assert (notification.channel, notification.payload) == ("news", "hello")


def test_a_session_the_server_ends_ends_alone(proxy: dict[str, object], pg_database: str) -> None:
    """pg_terminate_backend on a proxied session: its client gets the server's FATAL 57P01 at
    once and is disconnected; the gateway's other sessions go on."""
    survivor = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    survivor.autocommit = True
    victim, read = _logged_in(int(proxy["port"]))  # type: ignore[call-overload]
    try:
        victim.sendall(p.Query("SELECT pg_backend_pid()").encode())
        rows = [m for m in read(p.ReadyForQuery) if isinstance(m, p.DataRow)]
        pid = int(rows[0].values[0] or b"")
        admin = psycopg2.connect(pg_database)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        fatal = read(p.ErrorResponse)[-1]  # while idle: nothing was sent since
        assert (fatal.fields["S"], fatal.fields["C"]) == ("FATAL", "57P01")
        assert victim.recv(1) == b""  # then the connection is closed
        with survivor.cursor() as cur:
            cur.execute("SELECT 'alive'")
            assert cur.fetchone() == ("alive",)
    finally:
        victim.close()
        survivor.close()


def test_hostile_bytes_close_only_their_connection(proxy: dict[str, object]) -> None:
    good = psycopg2.connect(**proxy)  # type: ignore[arg-type]
    good.autocommit = True
    try:
        startup = p.StartupMessage({"user": "ana", "database": "shop"}).encode()
        for payload in (startup + b"\x00" * 9, startup + b"Q" + (2**31 - 1).to_bytes(4, "big")):
            with socket.create_connection(("127.0.0.1", int(proxy["port"])), timeout=10) as bad:  # type: ignore[call-overload]
                bad.sendall(payload)
                answer = b""
                while chunk := bad.recv(65536):
                    answer += chunk
                assert b"08P01" in answer
        with good.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        good.close()


@pytest.mark.parametrize("method", ["scram-sha-256", "md5", "password"])
def test_the_client_logs_in_to_postgresql_through_the_gateway(
    method: str, pg_database: str, tls_files: tuple[str, str]
) -> None:
    """Authentication pass-through: PostgreSQL asks the client (SCRAM-SHA-256, md5, cleartext),
    the gateway relays; the client is its own role, and the gateway knows no password (none is
    in its environment). A wrong password is PostgreSQL's FATAL 28P01. The client reaches the
    gateway over TLS."""
    role = f"sqlml_{method.replace('-', '_')}"
    admin = psycopg2.connect(pg_database)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SHOW hba_file")
            hba = Path(cur.fetchone()[0])  # type: ignore[index]
            encryption = "md5" if method == "md5" else "scram-sha-256"
            cur.execute(f"SET password_encryption = '{encryption}'")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
            cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'up-secret'")
        original = hba.read_text()
        hba.write_text(f"host all {role} 127.0.0.1/32 {method}\n" + original)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        cert, key = tls_files
        config = ServerConfig(port=0, tls_cert=cert, tls_key=key)
        with serving(config, *gateway_parts("postgres", pg_database)) as port:
            login = {"host": "127.0.0.1", "port": port, "dbname": "shop", "user": role}
            con = psycopg2.connect(password="up-secret", sslmode="require", **login)
            with con.cursor() as cur:
                cur.execute("SELECT current_user, session_user")
                assert cur.fetchone() == (role, role)
            con.close()
            with pytest.raises(psycopg2.OperationalError) as raised:
                psycopg2.connect(password="wrong", sslmode="require", **login)
            assert "28P01" in str(raised.value) or "password authentication failed" in str(
                raised.value
            )
    finally:
        hba.write_text(original)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


@contextlib.contextmanager
def _server_tls(admin: psycopg2.extensions.connection, cert: str, key: str) -> Iterator[str]:
    """TLS switched on in the test server (a reload; off again afterwards); yields the CA file
    (the self-signed certificate, CN=localhost)."""
    folder = Path(tempfile.mkdtemp(prefix="sqlml-pgtls-"))
    folder.chmod(0o755)
    served_cert, served_key = folder / "server.crt", folder / "server.key"
    shutil.copy(cert, served_cert)
    shutil.copy(key, served_key)
    served_key.chmod(0o600)
    if os.geteuid() == 0:  # the server runs as postgres and must own its key
        shutil.chown(served_key, "postgres")
    settings = {"ssl": "on", "ssl_cert_file": str(served_cert), "ssl_key_file": str(served_key)}
    try:
        with admin.cursor() as cur:
            for name, value in settings.items():
                cur.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
            cur.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        yield str(served_cert)
    finally:
        with admin.cursor() as cur:
            for name in settings:
                cur.execute(f"ALTER SYSTEM RESET {name}")
            cur.execute("SELECT pg_reload_conf()")
        shutil.rmtree(folder, ignore_errors=True)


def test_the_gateway_speaks_tls_to_postgresql_per_sslmode(
    pg_database: str, tls_files: tuple[str, str], tmp_path: Path
) -> None:
    """Each sslmode against a PostgreSQL with TLS on, checked by the server (pg_stat_ssl): the
    connection is encrypted when it should be, and a certificate that does not verify is a
    FATAL 08001 for the client (the event loop does the TLS, as for the client's side)."""
    from sqlml.wire.proxy import ProxySession
    from sqlml.wire.proxy_backend import ProxyBackend

    admin = psycopg2.connect(pg_database)
    admin.autocommit = True
    port = pg_database.rsplit(":", 1)[1].split("/")[0]
    home = tmp_path / "home"  # no ~/.postgresql/root.crt
    home.mkdir()
    try:
        with _server_tls(admin, *tls_files) as ca:
            cases = [
                ("127.0.0.1", "disable", None, False),
                ("127.0.0.1", "prefer", None, True),
                ("127.0.0.1", "require", None, True),
                ("127.0.0.1", "verify-ca", ca, True),
                ("localhost", "verify-full", ca, True),
                ("127.0.0.1", "verify-full", ca, "08001"),  # the name is localhost
                ("127.0.0.1", "verify-ca", None, "08001"),  # no root.crt
            ]
            for host, sslmode, root, expected in cases:
                dsn = f"host={host} port={port} dbname={pg_database.rsplit('/', 1)[1]}"
                dsn += f" user=postgres sslmode={sslmode}" + (
                    f" sslrootcert={root}" if root else ""
                )
                target = Target.parse(dsn, {"HOME": str(home)})
                parts = (lambda d, u, t=target: ProxyBackend(t)), ProxySession
                with (
                    mock_home(home),
                    serving(ServerConfig(port=0), *parts) as gateway,
                    socket.create_connection(("127.0.0.1", gateway), timeout=20) as client,
                ):
                    startup = {"user": "ana", "database": target.dbname}
                    client.sendall(p.StartupMessage(startup).encode())
                    read = message_reader(client)
                    if isinstance(expected, str):
                        error = read(p.ErrorResponse)[-1]
                        assert (error.fields["S"], error.fields["C"]) == ("FATAL", expected), dsn
                        continue
                    read(p.ReadyForQuery)
                    client.sendall(
                        p.Query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").encode()
                    )
                    rows = [m for m in read(p.ReadyForQuery) if isinstance(m, p.DataRow)]
                    assert rows[0].values[0] == (b"t" if expected else b"f"), dsn
    finally:
        admin.close()


@contextlib.contextmanager
def mock_home(home: Path) -> Iterator[None]:
    """HOME for the gateway's lookups of ~/.postgresql (libpq's defaults)."""
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


def test_frames_cut_whole_messages_across_reads() -> None:
    stream = b"".join(
        m.encode()
        for m in (p.ParseComplete(), p.DataRow((b"1", None)), p.CommandComplete("SELECT 1"))
    )
    frames = Frames()
    got: list[int] = []
    for i in range(0, len(stream), 3):
        frames.feed(stream[i : i + 3])
        chunk, spans = frames.take()
        got += [chunk[start] for _, start, _ in spans]
        assert all(chunk[start] == kind for kind, start, _ in spans)
    assert bytes(got) == b"1DC"


def test_placeholders_become_numbered() -> None:
    assert to_dollar("SELECT %s, ? FROM t WHERE a LIKE '%s?' -- ?") == (
        "SELECT $1, $2 FROM t WHERE a LIKE '%s?' -- ?"
    )
    assert to_dollar("SELECT 1") == "SELECT 1"


def test_targets_come_from_urls_and_the_environment(tmp_path: Path) -> None:
    target = Target.parse("postgresql://u@db.example:6000/shop?sslmode=require", {})
    assert (target.host, target.port, target.dbname, target.user) == (
        "db.example",
        6000,
        "shop",
        "u",
    )
    assert target.sslmode == "require"
    assert target.password is None
    passfile = tmp_path / "pgpass"
    passfile.write_text("db.example:6000:shop:u:from-file\n")
    passfile.chmod(0o600)
    assert (
        Target.parse(
            "host=db.example port=6000 dbname=shop user=u", {"PGPASSFILE": str(passfile)}
        ).password
        == "from-file"
    )
    passfile.chmod(0o644)  # readable by others: ignored, as libpq does
    assert (
        Target.parse(
            "host=db.example port=6000 dbname=shop user=u", {"PGPASSFILE": str(passfile)}
        ).password
        is None
    )
    assert "from-file" not in repr(target)
