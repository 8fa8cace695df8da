"""Shared fixtures: a sqlml connection per test, over embedded DuckDB and over PostgreSQL (one
conformance suite for both engines), with a small shop data set."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pytest

import sqlml


def shop_tables(n: int = 800, seed: int = 0) -> dict[str, pa.Table]:
    """customers (with labels) and new_customers (without): numbers, strings, booleans, NULLs."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, size=n).astype(np.float64)
    spend = rng.normal(60, 20, size=n)
    plan = rng.choice(["basic", "plus", "premium"], size=n).astype(object)
    promo = rng.random(n) < 0.3
    spend[::19] = np.nan
    plan[::29] = None
    logit = 1.0 - 0.06 * tenure + 0.02 * np.nan_to_num(spend, nan=60) + (plan == "basic") * 1.0
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    segment = np.where(logit > 1, "high", np.where(logit > -0.5, "mid", "low"))
    value = 5 * tenure + 2 * np.nan_to_num(spend, nan=60) + rng.normal(0, 5, size=n)
    ids = np.arange(n)
    customers = pa.table(
        {
            "id": ids,
            "tenure": tenure.astype(np.int64),
            "spend": pa.array(spend, from_pandas=True),
            "plan": pa.array(plan.tolist(), type=pa.string()),
            "promo": promo,
            "churned": churned,
            "segment": segment,
            "value": value,
        }
    )
    new = customers.select(["id", "tenure", "spend", "plan", "promo"]).slice(0, 200)
    return {"customers": customers, "new_customers": new}


def unavailable(reason: str) -> NoReturn:
    """A missing PostgreSQL or client: a skip on a workstation, a failure in CI (CI set), so
    that nothing the CI machine should have can be skipped silently."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def free_parallelism(con: Any) -> None:
    """PostgreSQL plans in parallel wherever it may (no setup or tuple cost, any table size):
    a plan without parallel workers then says the query was not parallel safe."""
    for setting in (
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
        "max_parallel_workers_per_gather = 2",
    ):
        con.execute(f"SET {setting}")


def client_module(name: str) -> Any:
    """A client library (psycopg, ADBC, ...): imported, or ``unavailable`` (a failure in CI)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"{name} is not installed")


def load_shop(connection: sqlml.Connection) -> None:
    """The shop tables into a DuckDB connection's database, from Arrow."""
    raw = connection.session.engine
    raw.execute("CREATE SCHEMA shop")
    for name, table in shop_tables().items():
        raw.register_table(f"_load_{name}", table)
        raw.execute(f'CREATE TABLE shop."{name}" AS SELECT * FROM "_load_{name}"')
        raw.unregister_table(f"_load_{name}")


# The engines the conformance tests run on: every test that takes ``con`` runs on both.
ENGINES = ["duckdb", "postgres"]
TEMPLATE = "sqlml_template"
_databases = itertools.count(1)


def shop_database(engine: str, request: pytest.FixtureRequest) -> str:
    """A fresh database of the engine with the shop tables, for the test: on PostgreSQL one
    copied from the template, on DuckDB a file."""
    return str(request.getfixturevalue("pg_database" if engine == "postgres" else "shop_file"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server with a template database: sqlml installed, the shop tables loaded.
    Without PostgreSQL the postgres tests are skipped, except in CI (CI=true), where they fail."""
    import pgcluster

    try:
        context = pgcluster.server()
        server = context.__enter__()
    except pgcluster.Unavailable as e:
        unavailable(str(e))
    try:
        dsn = pgcluster.create_database(server, TEMPLATE)
        pgcluster.create_roles(server)
        pgcluster.install(dsn)
        for name, table in shop_tables().items():
            pgcluster.load_table(dsn, "shop", name, table)
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh database per test, copied from the template (sqlml and the shop tables in it)."""
    import pgcluster

    name = f"sqlml_test_{os.getpid()}_{next(_databases)}"
    dsn = pgcluster.create_database(pg_server, name, template=TEMPLATE)
    yield dsn
    pgcluster.drop_database(pg_server, name)


FRONTS = [*ENGINES, "duckdb-gateway", "postgres-gateway"]


@pytest.fixture(params=FRONTS)
def con(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlml.Connection]:
    """The conformance suite's connection: sqlml.connect on each engine, and the same engines
    through the gateway (sqlml serve) with psycopg 3 as the client (gateway_client.py)."""
    engine = str(request.param).partition("-")[0]
    if engine == "postgres":
        database = str(request.getfixturevalue("pg_database"))
    else:
        database = str(tmp_path / "test.duckdb")
    with front_connection(str(request.param), database) as connection:
        yield connection


@pytest.fixture(scope="module", params=FRONTS)
def con_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """Like ``con``, one database per front for a whole module: for refusal tests that share a
    model trained once (a database and a training per case cost more than the case)."""
    engine = str(request.param).partition("-")[0]
    with (
        module_database(engine, request, tmp_path_factory, "front") as database,
        front_connection(str(request.param), database) as connection,
    ):
        yield connection


@contextlib.contextmanager
def front_connection(front: str, database: str) -> Iterator[sqlml.Connection]:
    """A connection of ``front`` (an entry of FRONTS) to ``database``: a DuckDB file (the
    shop tables loaded here) or a PostgreSQL DSN (copied from the template)."""
    engine, _, via = front.partition("-")
    if engine == "duckdb":
        loading = sqlml.connect(database, autocommit=True)
        load_shop(loading)
        loading.close()
    if not via:
        connection = sqlml.connect(database, autocommit=True)
        try:
            yield connection
        finally:
            connection.close()
        return
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        client = GatewayConnection(port)
        try:
            yield client  # type: ignore[misc]
        finally:
            client.close()


class Noticing:
    """A sqlml.connect connection (autocommit) that keeps the NOTICEs and progress messages
    its statements send, for module fixtures of one engine's database."""

    def __init__(self, database: str, engine: str = "") -> None:
        self.database, self.engine = database, engine
        self.messages: list[str] = []
        self.con = self.reopen()

    def reopen(self) -> sqlml.Connection:
        self.con = sqlml.connect(self.database, autocommit=True)
        self.con.set_progress(self.messages.append)
        return self.con

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.con.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []

    def weights(self, model: str, class_label: Any = None) -> dict[str, Any]:
        """ML.WEIGHTS(standardize TRUE): feature -> weight, or category -> weight (of one
        class's rows when ``class_label`` is given)."""
        rows = self.run(f"SELECT * FROM ML.WEIGHTS(MODEL {model}, STRUCT(TRUE AS standardize))")
        found: dict[str, Any] = {}
        for row in rows:
            if class_label is not None and row[3] != class_label:
                continue
            name, weight, categories = row[0], row[1], row[2]
            if isinstance(categories, str):  # (PostgreSQL: jsonb as text)
                categories = json.loads(categories)
            found[name] = (
                {c["category"]: c["weight"] for c in categories} if weight is None else weight
            )
        return found

    def explained(self, sql: str) -> list[dict[str, Any]]:
        """ML.EXPLAIN_PREDICT's rows as dicts, top_feature_attributions a list of dicts (on
        PostgreSQL jsonb, which sqlml.connect gives as text)."""
        cursor = self.con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for row in rows:
            top = row["top_feature_attributions"]
            if isinstance(top, str):
                row["top_feature_attributions"] = json.loads(top)
        return rows


@contextlib.contextmanager
def module_database(
    engine: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    prefix: str,
) -> Iterator[str]:
    """A database for a module-scoped fixture: on PostgreSQL one copied from the template
    (sqlml and the shop tables in it), dropped afterwards; on DuckDB a new, empty file."""
    import pgcluster

    if engine != "postgres":
        yield str(tmp_path_factory.mktemp(prefix) / "test.duckdb")  # (catalog "test")
        return
    server = str(request.getfixturevalue("pg_server"))
    name = f"sqlml_{prefix}_{os.getpid()}_{next(_databases)}"
    yield pgcluster.create_database(server, name, template=TEMPLATE)
    pgcluster.drop_database(server, name)


@pytest.fixture(params=ENGINES)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlml.Connection]:
    """sqlml.connect (autocommit) on each engine, with the shop tables: a fresh database per
    test."""
    if request.param == "postgres":
        connection = sqlml.connect(str(request.getfixturevalue("pg_database")), autocommit=True)
    else:
        connection = sqlml.connect(str(tmp_path / "test.duckdb"), autocommit=True)
        load_shop(connection)
    yield connection
    connection.close()


@pytest.fixture(scope="module", params=ENGINES)
def shop_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """Like ``shop``, one database per engine for a whole module: for refusal tests and for
    models trained once and read by many tests (a PostgreSQL database per test costs more than
    the statements they run)."""
    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, "shop") as database:
        connection = sqlml.connect(database, autocommit=True)
        if engine == "duckdb":
            load_shop(connection)
        yield connection
        connection.close()


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for sqlml.connect() on each engine: a DuckDB file, or a PostgreSQL
    database with sqlml installed."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return str(tmp_path / "test.duckdb")


# -- the gateway (sqlml serve) -------------------------------------------------------------------

# The engines behind the gateway in the client tests: a DuckDB file, and PostgreSQL through the
# proxy mode. The transports: plain TCP with trust, and TLS with SCRAM-SHA-256 (over DuckDB; in
# proxy mode PostgreSQL authenticates, and it trusts these roles: tests/test_gateway_identity.py
# has the SCRAM logins through the proxy).
GATEWAY_ENGINES = ["duckdb", "postgres"]
GATEWAY_TRANSPORTS = ["tcp", "tls"]
GATEWAY_USER, GATEWAY_PASSWORD = "ana", "s3cret-Pa55"


def message_reader(client: socket.socket) -> Callable[[type], list[Any]]:
    """Reads a raw socket's messages from the gateway up to the next one of a kind (those after
    it stay for the next call)."""
    from sqlml.wire import protocol as p

    reader = p.BackendReader()

    def read(kind: type) -> list[Any]:
        seen: list[Any] = []
        while not seen or not isinstance(seen[-1], kind):
            message = reader.next()
            if message is not None:
                seen.append(message)
                continue
            chunk = client.recv(65536)
            assert chunk, "the gateway closed the connection"
            reader.feed(chunk)
        return seen

    return read


@contextlib.contextmanager
def serving(config: Any, open_backend: Any, session_class: Any = None) -> Iterator[int]:
    """A gateway (sqlml.wire.server.Server) on its own event loop thread; yields its port."""
    from sqlml.wire.server import Server
    from sqlml.wire.session import Session

    server = Server(config, open_backend, session_class or Session)
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


@pytest.fixture
def shop_file(tmp_path: Path) -> str:
    """A DuckDB file with the shop tables (named store.duckdb: a file named like the schema,
    shop.duckdb, would make its catalog shadow schema shop)."""
    path = str(tmp_path / "store.duckdb")
    connection = sqlml.connect(path, autocommit=True)
    load_shop(connection)
    connection.close()
    return path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throwaway self-signed certificate and key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "c.pem", folder / "k.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
    command += ["-days", "1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, capture_output=True, check=True, timeout=60)
    return str(cert), str(key)


@dataclass(frozen=True)
class Served:
    """A running gateway and how to reach it, for any client."""

    engine: str  # what stands behind it: 'duckdb' | 'postgres'
    transport: str  # 'tcp' (trust) | 'tls' (TLS + SCRAM-SHA-256)
    port: int
    database: str  # the DuckDB file or the PostgreSQL DSN behind the gateway
    host: str = "127.0.0.1"
    dbname: str = "shop"

    @property
    def user(self) -> str:
        return GATEWAY_USER

    @property
    def password(self) -> str | None:
        return GATEWAY_PASSWORD if self.transport == "tls" else None

    @property
    def sslmode(self) -> str:
        return "require" if self.transport == "tls" else "disable"

    def kwargs(self) -> dict[str, Any]:
        """libpq-style keywords (psycopg2, psycopg 3)."""
        found: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": self.dbname}
        found |= {"user": self.user, "sslmode": self.sslmode}
        if self.password is not None:
            found["password"] = self.password
        return found

    @property
    def url(self) -> str:
        """A postgresql:// URL (psql, SQLAlchemy, ADBC, pgbench via PG* variables)."""
        secret = f":{self.password}" if self.password is not None else ""
        return (
            f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{self.dbname}"
            f"?sslmode={self.sslmode}"
        )

    def env(self) -> dict[str, str]:
        """PG* environment variables for command-line clients (psql, pgbench)."""
        found = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.dbname}
        found |= {"PGUSER": self.user, "PGSSLMODE": self.sslmode}
        if self.password is not None:
            found["PGPASSWORD"] = self.password
        return {**os.environ, **found}


def explain_table(schema: str, rows: int) -> str:
    """The rows the explanation tests train and explain on: NULLs in a number and a string,
    a numeric and a boolean and a 3-class label."""
    return (
        f"CREATE TABLE {schema}.t AS SELECT i,"
        " CASE WHEN i % 13 = 0 THEN NULL ELSE CAST(sin(i) * 4 AS DOUBLE PRECISION) END AS x1,"
        " CAST(cos(i * 0.3) * 2 AS DOUBLE PRECISION) AS x2,"
        " CASE WHEN i % 7 = 0 THEN NULL WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b'"
        " ELSE 'c' END AS s,"
        " CAST(3 * sin(i) - 2 * cos(i * 0.3) + (i % 3) + sin(i * 7.1) AS DOUBLE PRECISION) AS y,"
        " sin(i) - cos(i * 0.3) + sin(i * 5.3) > 0 AS c,"
        " CASE WHEN sin(i * 2.1) > 0.4 THEN 'hi' WHEN sin(i * 2.1) < -0.4 THEN 'lo' ELSE 'mid'"
        f" END AS k FROM generate_series(1, {rows}) AS g(i)"
    )


# ML.EXPLAIN_PREDICT's columns before the input's (functions/explain_predict.py)
EXPLAINED = [
    "predicted_churned",
    "probability",
    "top_feature_attributions",
    "baseline_prediction_value",
    "prediction_value",
    "approximation_error",
]


def attributions(row: dict[str, Any]) -> dict[str, float]:
    """An ML.EXPLAIN_PREDICT row's top_feature_attributions as feature -> attribution."""
    return {a["feature"]: a["attribution"] for a in row["top_feature_attributions"]}


def class_probability(label: Any, by_class: Any) -> float:
    """The probability of ``label`` in ML.PREDICT's predicted_<label>_probs."""
    if isinstance(by_class, str):  # (PostgreSQL: jsonb as text)
        by_class = json.loads(by_class)
    return float({c["label"]: c["prob"] for c in by_class}[label])


def wire_attributions(value: Any) -> list[tuple[str, float]]:
    """top_feature_attributions as a client reads it through the gateway: over DuckDB a
    record[] (each (feature, attribution) as text, the record's fields untyped on the wire),
    over PostgreSQL jsonb (dicts)."""
    return [
        (a["feature"], a["attribution"]) if isinstance(a, dict) else (a[0], float(a[1]))
        for a in value
    ]


@contextlib.contextmanager
def psycopg_gateway(engine: str, database: str) -> Iterator[Any]:
    """A psycopg 3 connection (autocommit) through `sqlml serve` over ``database`` of
    ``engine`` (its own gateway on a free port), as a client sees it."""
    from sqlml.wire.server import ServerConfig

    psycopg = client_module("psycopg")
    with (
        serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port,
        psycopg.connect(
            host="127.0.0.1", port=port, dbname="shop", user="postgres", autocommit=True
        ) as connection,
    ):
        yield connection


def gateway_parts(engine: str, database: str) -> tuple[Any, Any]:
    """The server's open_backend and session class for an engine over ``database``."""
    if engine == "duckdb":
        from sqlml.wire.backends import DuckDBBackend
        from sqlml.wire.session import Session

        return (lambda dbname, user: DuckDBBackend(database, dbname, user)), Session
    from sqlml.wire.proxy import ProxySession
    from sqlml.wire.proxy_backend import ProxyBackend
    from sqlml.wire.upstream import Target

    target = Target.parse(database)
    # the clients ask for database "shop"; each client logs in as its own role (trust here)
    aliases = {"shop": target.dbname}
    return (lambda dbname, user: ProxyBackend(target, databases=aliases)), ProxySession


@pytest.fixture(
    params=[(e, t) for e in GATEWAY_ENGINES for t in GATEWAY_TRANSPORTS],
    ids=lambda param: "-".join(param),
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The gateway over the shop data, on each engine and each transport."""
    from sqlml.wire import auth
    from sqlml.wire.server import ServerConfig

    engine, transport = request.param
    database = shop_database(engine, request)
    config = ServerConfig(port=0)
    if transport == "tls":
        cert, key = request.getfixturevalue("tls_files")
        users = auth.Users([auth.Credential(GATEWAY_USER, auth.scram_secret(GATEWAY_PASSWORD))])
        config = ServerConfig(
            port=0, auth_method="scram-sha-256", users=users, tls_cert=cert, tls_key=key
        )
    with serving(config, *gateway_parts(engine, database)) as port:
        yield Served(engine, transport, port, database)


@contextlib.contextmanager
def sqlml_serve(*args: str) -> Iterator[int]:
    """The real ``sqlml serve`` command (the installed entry point) with ``args`` on a free
    port, until it answers; yields the port, and stops the command after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    program = shutil.which("sqlml")
    launcher = [program] if program else [sys.executable, "-m", "sqlml.cli"]
    command = [*launcher, "serve", *args, "-p", str(port)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, process.communicate()[1]
                    assert time.monotonic() < deadline, "the gateway did not start"
                    time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            process.communicate(timeout=30)
