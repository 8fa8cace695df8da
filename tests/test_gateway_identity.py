"""Proxy mode: each client runs on PostgreSQL as its own role (authentication pass-through,
sqlml/wire/identity.py), checked by a real server with real clients (psql, psycopg2, psycopg 3,
asyncpg). The roles below are members of pgcluster.SCRAM_GROUP, so the throwaway cluster asks
them for a SCRAM-SHA-256 password; ``trusted`` is let in by pg_hba's trust."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from conftest import client_module, gateway_parts, message_reader, serving, unavailable
from pgcluster import SCRAM_GROUP, admin
from psycopg2 import sql

from sqlml import errors
from sqlml.wire import auth, identity
from sqlml.wire import protocol as p
from sqlml.wire.proxy import ProxySession
from sqlml.wire.proxy_backend import ProxyBackend
from sqlml.wire.server import Server, ServerConfig
from sqlml.wire.session import SessionConfig
from sqlml.wire.upstream import Target

PASSWORD = "Id-s3cret"
READER, STRANGER, TRUSTED = "sqlml_reader", "sqlml_stranger", "sqlml_trusted"
MODEL = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'])"
    " AS SELECT tenure, spend, plan, promo, churned FROM shop.customers"
)
PREDICT = "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"


@pytest.fixture(scope="module")
def roles(pg_server: str) -> Iterator[None]:
    """Two ordinary roles with a SCRAM password and one the server trusts (cluster-wide)."""
    con = admin(pg_server)
    try:
        with con.cursor() as cur:
            for role in (READER, STRANGER):
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s IN ROLE {}").format(
                        sql.Identifier(role), sql.Identifier(SCRAM_GROUP)
                    ),
                    (PASSWORD,),
                )
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(TRUSTED)))
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(TRUSTED)))
        yield
    finally:
        con.close()


@pytest.fixture
def gateway(pg_database: str, roles: None) -> Iterator[dict[str, Any]]:
    """A proxy over a fresh database where READER may read shop.customers and STRANGER not."""
    with contextlib.closing(psycopg2.connect(pg_database)) as con, con.cursor() as cur:
        con.autocommit = True
        cur.execute(f"GRANT USAGE ON SCHEMA shop TO {READER}, {STRANGER}")
        cur.execute(f"GRANT SELECT ON shop.customers TO {READER}")
    with serving(ServerConfig(port=0), *gateway_parts("postgres", pg_database)) as port:
        yield {"host": "127.0.0.1", "port": port, "dbname": "shop"}


def _direct(pg_database: str, user: str) -> psycopg2.extensions.connection:
    """A connection straight to PostgreSQL as ``user``."""
    dsn = pg_database.replace("postgres@", f"{user}:{PASSWORD}@", 1)
    con = psycopg2.connect(dsn)
    con.autocommit = True
    return con


def _sqlstate(con: psycopg2.extensions.connection, query: str) -> str | None:
    with con.cursor() as cur:
        try:
            cur.execute(query)
        except psycopg2.Error as e:
            return str(e.pgcode)
    return None


def _scalar(con: psycopg2.extensions.connection, query: str) -> Any:
    with con.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
        assert row is not None
        return row if len(row) > 1 else row[0]


def test_each_client_runs_as_its_own_role_with_its_grants(
    gateway: dict[str, Any], pg_database: str
) -> None:
    """One role reads the table, the other gets 42501, exactly as connected directly; the
    session's user is the client's role, not the gateway's."""
    for user, expected in ((READER, None), (STRANGER, "42501")):
        through = psycopg2.connect(user=user, password=PASSWORD, **gateway)
        through.autocommit = True
        direct = _direct(pg_database, user)
        try:
            assert _scalar(through, "SELECT current_user, session_user") == (user, user)
            query = "SELECT count(*) FROM shop.customers"
            assert _sqlstate(through, query) == _sqlstate(direct, query) == expected
            assert (
                _scalar(through, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                is False
            )
            assert _sqlstate(through, "SELECT 1") is None  # the session goes on
        finally:
            through.close()
            direct.close()


def test_pg_read_file_is_refused_for_an_ordinary_role(gateway: dict[str, Any]) -> None:
    con = psycopg2.connect(user=READER, password=PASSWORD, **gateway)
    try:
        assert _sqlstate(con, "SELECT pg_read_file('PG_VERSION')") == "42501"
    finally:
        con.close()


def test_a_wrong_password_is_postgresqls_28P01(gateway: dict[str, Any]) -> None:
    asyncpg = client_module("asyncpg")

    async def login() -> None:
        con = await asyncpg.connect(user=READER, password="wrong", **_asyncpg(gateway))
        await con.close()

    with pytest.raises(asyncpg.PostgresError) as raised:
        asyncio.run(login())
    assert raised.value.sqlstate == "28P01"


def _asyncpg(gateway: dict[str, Any], ssl: str = "disable") -> dict[str, Any]:
    return {
        "host": gateway["host"],
        "port": gateway["port"],
        "database": gateway["dbname"],
        "ssl": ssl,
    }


@pytest.fixture
def tls_gateway(
    pg_database: str, roles: None, tls_files: tuple[str, str]
) -> Iterator[dict[str, Any]]:
    cert, key = tls_files
    config = ServerConfig(port=0, tls_cert=cert, tls_key=key)
    with serving(config, *gateway_parts("postgres", pg_database)) as port:
        yield {"host": "127.0.0.1", "port": port, "dbname": "shop"}


@pytest.mark.parametrize("client", ["psql", "psycopg2", "psycopg", "asyncpg"])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_clients_log_in_with_scram_through_the_gateway(
    client: str, transport: str, request: pytest.FixtureRequest
) -> None:
    """The role must prove its password with SCRAM-SHA-256 (pg_hba); plain TCP and TLS to the
    gateway (libpq's channel_binding=prefer: no -PLUS is offered, plain SCRAM is used)."""
    gateway = request.getfixturevalue("tls_gateway" if transport == "tls" else "gateway")
    sslmode = "require" if transport == "tls" else "disable"
    assert _login_user(client, gateway, sslmode) == READER


def _login_user(client: str, gateway: dict[str, Any], sslmode: str) -> str:
    """``SELECT current_user`` through the gateway as READER with ``client``."""
    query = "SELECT current_user"
    libpq = {**gateway, "user": READER, "password": PASSWORD, "sslmode": sslmode}
    if client == "psql":
        psql = shutil.which("psql")
        if psql is None:
            unavailable("psql is not installed")
        url = (
            f"postgresql://{READER}:{PASSWORD}@{gateway['host']}:{gateway['port']}/shop"
            f"?sslmode={sslmode}"
        )
        done = subprocess.run(
            [psql, url, "-X", "-At", "-c", query], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()
    if client == "psycopg2":
        with contextlib.closing(psycopg2.connect(**libpq)) as con:
            return str(_scalar(con, query))
    if client == "psycopg":
        psycopg = client_module("psycopg")
        with psycopg.connect(**libpq) as con:
            return str(con.execute(query).fetchone()[0])
    asyncpg = client_module("asyncpg")

    async def run() -> str:
        ssl = "require" if sslmode == "require" else "disable"
        con = await asyncpg.connect(user=READER, password=PASSWORD, **_asyncpg(gateway, ssl))
        try:
            return str(await con.fetchval(query))
        finally:
            await con.close()

    return asyncio.run(run())


def test_ml_statements_run_as_the_clients_role(gateway: dict[str, Any]) -> None:
    """CREATE MODEL and ML.PREDICT run on the client's own connection: a role that may not
    read the training table gets 42501 (as the gateway's superuser, it trained). The model is
    the owner's: another role sees it only once granted (42704 before, docs/postgres.md), and
    then still may not read the input table (42501)."""
    owner = psycopg2.connect(user="ana", **gateway)  # a superuser role (trust)
    owner.autocommit = True
    stranger = psycopg2.connect(user=STRANGER, password=PASSWORD, **gateway)
    stranger.autocommit = True
    try:
        assert _sqlstate(stranger, MODEL) == "42501"
        assert _sqlstate(owner, MODEL) is None
        assert _sqlstate(stranger, PREDICT) == "42704"  # not granted: not visible
        assert _sqlstate(owner, f"SELECT sqlml.grant_model('shop.churn', '{STRANGER}')") is None
        assert _sqlstate(stranger, PREDICT) == "42501"  # granted, but shop.new_customers is not
        assert _sqlstate(owner, PREDICT) is None
        assert _scalar(stranger, "SELECT current_user") == STRANGER
    finally:
        owner.close()
        stranger.close()


def _raw_login(port: int, parameters: dict[str, str], tls: bool = False) -> list[Any]:
    """A raw StartupMessage as the trusted role (over TLS when ``tls``: SSLRequest first); the
    messages up to ReadyForQuery or the gateway's FATAL error."""
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=20))
        if tls:
            client.sendall(p.SSLRequest().encode())
            assert client.recv(1) == b"S"
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            client = stack.enter_context(context.wrap_socket(client))
        startup = {"user": TRUSTED, "database": "shop", **parameters}
        client.sendall(p.StartupMessage(startup).encode())
        read = message_reader(client)
        seen: list[Any] = []
        while not seen or not isinstance(seen[-1], p.ReadyForQuery | p.ErrorResponse):
            seen.extend(read(p.ReadyForQuery | p.ErrorResponse))  # type: ignore[arg-type]
        if isinstance(seen[-1], p.ReadyForQuery):
            client.sendall(p.Query("SHOW work_mem").encode())
            seen.extend(read(p.ReadyForQuery))
        return seen


def _fatal_code(messages: list[Any]) -> str | None:
    errors_ = [m for m in messages if isinstance(m, p.ErrorResponse)]
    if not errors_:
        return None
    assert errors_[-1].fields["S"] == "FATAL"
    return str(errors_[-1].fields["C"])


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"replication": "database"}, "0A000"),
        ({"replication": "true"}, "0A000"),
        ({"options": "-D /tmp"}, "0A000"),
        ({"options": "-c work_mem=1MB -P"}, "0A000"),
        ({"options": "-c"}, "0A000"),
        ({"options": "-c work_mem"}, "0A000"),
        ({"options": "-c work_mem=1234kB"}, None),
        ({"options": "--work_mem=1234kB"}, None),
        ({"options": "-cwork_mem=1234kB"}, None),
        ({"_pq_.unknown": "1", "work_mem": "1234kB"}, None),
        ({"replication": "false", "work_mem": "1234kB"}, None),
        ({"session_authorization": "postgres"}, "42501"),  # the server checks rights
        ({"options": "-c role=postgres"}, "42501"),
    ],
)
def test_startup_parameters_are_filtered(
    gateway: dict[str, Any], parameters: dict[str, str], expected: str | None
) -> None:
    """replication and backend switches are refused; settings pass to the server; _pq_.*
    extensions stop at the gateway."""
    messages = _raw_login(gateway["port"], parameters)
    assert _fatal_code(messages) == expected
    if expected is None:
        rows = [m.values[0] for m in messages if isinstance(m, p.DataRow)]
        assert rows == [b"1234kB"]


class _Remote(Server):
    """The gateway as if its clients were not on loopback (no traffic leaves 127.0.0.0/8)."""

    def _session_config(self, writer: Any, slot: Any) -> SessionConfig:
        return dataclasses.replace(super()._session_config(writer, slot), loopback=False)


@contextlib.contextmanager
def _remote(
    pg_database: str, allow_trust: bool, tls: tuple[str, str] | None = None
) -> Iterator[int]:
    target = Target.parse(pg_database)
    aliases = {"shop": target.dbname}
    cert, key = tls or (None, None)
    server = _Remote(
        ServerConfig(port=0, tls_cert=cert, tls_key=key),
        lambda db, user: ProxyBackend(target, allow_trust, aliases),
        ProxySession,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(server.aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_a_remote_client_must_prove_a_password(
    pg_database: str, roles: None, tls_files: tuple[str, str]
) -> None:
    """Off loopback, a role PostgreSQL trusts is refused (28000) unless the operator allows
    it; a role that proved its password with SCRAM gets in. Off loopback TLS is required too
    (28000 in the clear, whatever the role)."""
    with _remote(pg_database, allow_trust=False, tls=tls_files) as port:
        assert _fatal_code(_raw_login(port, {})) == "28000"  # no TLS
        assert _fatal_code(_raw_login(port, {}, tls=True)) == "28000"  # trusted, no password
        login = {"host": "127.0.0.1", "port": port, "dbname": "shop", "sslmode": "require"}
        with contextlib.closing(psycopg2.connect(user=READER, password=PASSWORD, **login)) as con:
            assert _scalar(con, "SELECT current_user") == READER
    with _remote(pg_database, allow_trust=True, tls=tls_files) as port:
        assert _fatal_code(_raw_login(port, {}, tls=True)) is None


def test_the_trust_decision() -> None:
    identity.check_trust(loopback=True, asked_password=False, allow_trust=False)
    identity.check_trust(loopback=False, asked_password=True, allow_trust=False)
    identity.check_trust(loopback=False, asked_password=False, allow_trust=True)
    with pytest.raises(errors.Error) as raised:
        identity.check_trust(loopback=False, asked_password=False, allow_trust=False)
    assert raised.value.sqlstate == "28000"


def test_options_are_split_as_postgresql_splits_them() -> None:
    assert identity.split_options(r"-c a=b\ c  --x=y") == ["-c", "a=b c", "--x=y"]
    identity.check_options(r"-c search_path=a\ b -csearch_path=c --work_mem=1MB")
    for bad in ("-D /tmp", "-c", "--x", "-P", "-f i", "x=y"):
        with pytest.raises(errors.Error) as raised:
            identity.check_options(bad)
        assert raised.value.sqlstate == "0A000", bad


def test_channel_binding_is_not_offered() -> None:
    plus = (auth.SCRAM_MECHANISM + "-PLUS", auth.SCRAM_MECHANISM)
    assert identity.offered_mechanisms(plus) == (auth.SCRAM_MECHANISM,)
    identity.check_channel_binding(b"y,,n=,r=abc", upstream_tls=False)
    identity.check_channel_binding(b"n,,n=,r=abc", upstream_tls=True)
    with pytest.raises(errors.Error) as raised:
        identity.check_channel_binding(b"y,,n=,r=abc", upstream_tls=True)
    assert raised.value.sqlstate == "08P01"


def test_channel_binding_downgrade_is_explained(
    pg_database: str, roles: None, tls_files: tuple[str, str]
) -> None:
    """TLS on both legs: libpq (channel_binding=prefer) says it could bind (gs2 ``y``), which
    PostgreSQL would refuse as a downgrade; the gateway answers 08P01 with a hint. With
    channel_binding=disable, or a plain client leg, SCRAM passes."""
    from test_gateway_proxy import _server_tls

    cert, key = tls_files
    with contextlib.closing(psycopg2.connect(pg_database)) as con:
        con.autocommit = True
        with _server_tls(con, cert, key):
            dsn = pg_database + "?sslmode=require"
            parts = gateway_parts("postgres", dsn)
            config = ServerConfig(port=0, tls_cert=cert, tls_key=key)
            with serving(config, *parts) as port:
                login = {"host": "127.0.0.1", "port": port, "dbname": "shop", "user": READER}
                login |= {"password": PASSWORD}
                with pytest.raises(psycopg2.OperationalError) as raised:
                    psycopg2.connect(sslmode="require", **login)
                assert "channel_binding=disable" in str(raised.value)  # the hint
                for options in (
                    {"sslmode": "require", "channel_binding": "disable"},
                    {"sslmode": "disable"},
                ):
                    with contextlib.closing(psycopg2.connect(**login, **options)) as client:
                        assert _scalar(client, "SELECT current_user") == READER
                        ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                        assert _scalar(client, ssl) is True  # the gateway's leg is TLS


@pytest.mark.parametrize("given", [["--auth", "scram"], ["--users-file", "users"]])
def test_serve_refuses_gateway_logins_in_proxy_mode(given: list[str], tmp_path: Any) -> None:
    """In proxy mode PostgreSQL authenticates: the gateway's own --auth and --users-file would
    be ignored, so they are refused (22023) before anything listens."""
    from click.testing import CliRunner

    from sqlml.cli import main

    users = tmp_path / "users"
    users.write_text("ana:plain:x\n")
    users.chmod(0o600)
    arguments = [str(users) if a == "users" else a for a in given]
    command = ["serve", "--database", "postgresql://nobody@127.0.0.1:1/x", *arguments]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    assert "ERROR 22023" in result.output


def test_cleartext_requests_reach_only_clients_on_loopback_or_tls(
    pg_database: str, roles: None, tls_files: tuple[str, str]
) -> None:
    """pg_hba's ``password`` method: the request is relayed to a client off loopback only over
    TLS to the gateway; in the clear it is refused (28000) before the password travels."""
    role = "sqlml_cleartext"
    with contextlib.closing(psycopg2.connect(pg_database)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SHOW hba_file")
            hba = Path(cur.fetchone()[0])  # type: ignore[index]
            cur.execute(f"DROP ROLE IF EXISTS {role}")
            cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (PASSWORD,))
        original = hba.read_text()
        hba.write_text(f"host all {role} 127.0.0.1/32 password\n" + original)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
            cert, key = tls_files
            with _remote(pg_database, allow_trust=False, tls=(cert, key)) as port:
                login = {"host": "127.0.0.1", "port": port, "dbname": "shop", "user": role}
                login |= {"password": PASSWORD}
                with pytest.raises(psycopg2.OperationalError):
                    psycopg2.connect(sslmode="disable", **login)
                with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
                    startup = {"user": role, "database": "shop"}
                    client.sendall(p.StartupMessage(startup).encode())
                    assert _fatal_code(message_reader(client)(p.ErrorResponse)) == "28000"
                with contextlib.closing(psycopg2.connect(sslmode="require", **login)) as client:
                    assert _scalar(client, "SELECT current_user") == role
        finally:
            hba.write_text(original)
            with con.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
                cur.execute(f"DROP ROLE IF EXISTS {role}")


def test_sqlml_serve_needs_no_login_of_its_own(gateway: dict[str, Any], pg_database: str) -> None:
    """``sqlml serve`` in proxy mode with a URL whose role does not exist and no password: it
    starts (the check only needs an answer) and each client logs in as itself."""
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = pg_database.replace("postgres@", "sqlml_nobody@", 1)
    command = [sys.executable, "-m", "sqlml.cli", "serve", "--database", url, "--port", str(port)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        login = {"host": "127.0.0.1", "port": port, "dbname": pg_database.rsplit("/", 1)[1]}
        for _ in range(100):
            try:
                con = psycopg2.connect(user=READER, password=PASSWORD, **login)
                break
            except psycopg2.OperationalError:
                assert server.poll() is None, server.communicate()[1]
                time.sleep(0.2)
        with contextlib.closing(con):
            assert _scalar(con, "SELECT current_user") == READER
    finally:
        server.terminate()
        server.communicate(timeout=30)
