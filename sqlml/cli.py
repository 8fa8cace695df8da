"""The command line: ``sqlml run`` runs a SQL script, ``sqlml models`` lists the stored models,
``sqlml install`` / ``sqlml uninstall`` put the extension into a PostgreSQL database."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click
import pyarrow as pa

from sqlml import errors, grammar
from sqlml.dbapi import Connection, connect

MAX_ROWS = 50
MAX_WIDTH = 40


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"


def format_table(table: pa.Table, max_rows: int = MAX_ROWS) -> str:
    """A result as psql prints one: header, rule, rows, and the row count."""
    names = table.column_names
    shown = table.slice(0, max_rows)
    rows = [
        [_cell(v) for v in row] for row in zip(*(c.to_pylist() for c in shown.columns), strict=True)
    ]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    more = f" (first {max_rows} shown)" if table.num_rows > max_rows else ""
    count = f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}){more}"
    return "\n".join([line, rule, *body, count])


class _Progress:
    """Training progress on stderr, with the time since the statement started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        click.echo(f"[{elapsed:7.2f}s] {message}", err=True)


@click.group()
@click.version_option(package_name="sqlml")
def main() -> None:
    """sqlml: train, evaluate and use ML models with SQL, where the data lives."""


@main.command()
@click.option(
    "--database",
    "-d",
    default=":memory:",
    show_default=True,
    help="DuckDB file, :memory:, or a postgresql:// URL",
)
@click.option(
    "--scoring",
    type=click.Choice(["auto", "compiled", "runtime"]),
    default="auto",
    show_default=True,
    help="how ML.PREDICT scores: compiled SQL, onnxruntime, or compiled where possible",
)
@click.option(
    "--dialect",
    type=click.Choice(["default", "bigquery"], case_sensitive=False),
    default="default",
    show_default=True,
    help="the SQL of the statements: the engine's own, or GoogleSQL (BigQuery mode)",
)
@click.argument("script", type=click.File("r"))
def run(database: str, scoring: str, dialect: str, script: Any) -> None:
    """Run the statements of SCRIPT (a .sql file, or - for stdin), printing each result."""
    connection = _open(database, scoring, dialect)
    try:
        for text in grammar.split_script(script.read()):
            progress = _Progress()
            connection.set_progress(progress)
            cursor = connection.execute(text)
            if cursor.description is not None:
                click.echo(format_table(cursor.fetch_arrow_table()))
            else:
                click.echo(cursor.statusmessage or "OK")
            click.echo()
    except errors.Error as e:
        click.echo(f"ERROR {e.sqlstate}: {e}", err=True)
        sys.exit(1)
    finally:
        connection.close()


@main.command()
@click.option("--database", "-d", required=True, help="DuckDB file or postgresql:// URL")
@click.option("--schema", default=None, help="only the models of this schema")
def models(database: str, schema: str | None) -> None:
    """List the models stored in DATABASE with their current version."""
    connection = _open(database, "auto")
    try:
        table = connection.session.store.list(schema)
        click.echo(format_table(table))
    except errors.Error as e:
        click.echo(f"ERROR {e.sqlstate}: {e}", err=True)
        sys.exit(1)
    finally:
        connection.close()


def _fail(e: errors.Error) -> NoReturn:
    click.echo(f"ERROR {e.sqlstate}: {e}", err=True)
    sys.exit(1)


def _open(database: str, scoring: str, dialect: str = "default") -> Connection:
    """The connection, or ``ERROR <sqlstate>`` and exit 1 for a database that cannot be opened
    (a directory, a locked file, a bad URL, a refused connection): never a traceback."""
    try:
        return connect(database, autocommit=True, scoring=scoring, dialect=dialect)
    except errors.Error as e:
        _fail(e)


@main.command()
@click.option("--database", "-d", required=True, help="postgresql:// URL (a superuser)")
@click.option(
    "--python-path",
    multiple=True,
    help="a folder on the server's machine with sqlml's dependencies, put first on the server"
    " Python's sys.path (repeatable; recorded in the database)",
)
@click.option(
    "--install-deps",
    is_flag=True,
    help="pip-install the dependencies into the first --python-path folder (same machine and"
    " Python version as the server)",
)
def install(database: str, python_path: tuple[str, ...], install_deps: bool) -> None:
    """Install or upgrade sqlml in a PostgreSQL database (idempotent)."""
    from sqlml.postgres.install import Installer

    try:
        installer = Installer(database, echo=lambda m: click.echo(m, err=True))
        try:
            installer.install(list(python_path), install_deps=install_deps)
        finally:
            installer.close()
    except errors.Error as e:
        _fail(e)


@main.command()
@click.option("--database", "-d", required=True, help="postgresql:// URL (a superuser)")
@click.option("--drop-models", is_flag=True, help="also drop schema sqlml with every stored model")
def uninstall(database: str, drop_models: bool) -> None:
    """Remove sqlml's functions and code from a PostgreSQL database (models stay by default)."""
    from sqlml.postgres.install import Installer

    try:
        installer = Installer(database, echo=lambda m: click.echo(m, err=True))
        try:
            installer.uninstall(drop_models=drop_models)
        finally:
            installer.close()
    except errors.Error as e:
        _fail(e)
    click.echo("sqlml uninstalled" + (" with its models" if drop_models else ""), err=True)


@main.command()
@click.option(
    "--database",
    "-d",
    required=True,
    help="DuckDB file, or postgresql:// URL (proxy mode: each client logs in to PostgreSQL as"
    " its own role; the URL's user and database serve only the start-up check)",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", "-p", default=5433, show_default=True, type=int)
@click.option(
    "--auth",
    "auth_method",
    type=click.Choice(["trust", "password", "md5", "scram"]),
    default="trust",
    show_default=True,
    help="how clients prove who they are (password: cleartext, only over TLS or loopback)",
)
@click.option(
    "--users-file",
    type=click.Path(exists=True, dir_okay=False),
    help="lines user:secret or user:role=read-only,files=allow:secret (PostgreSQL's SCRAM or"
    " md5 secrets; files=allow: this user may use the server's files over DuckDB);"
    " else SQLML_GATEWAY_USER and"
    " SQLML_GATEWAY_PASSWORD from the environment",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key")
@click.option(
    "--require-tls", is_flag=True, help="refuse clients without TLS (28000), loopback ones too"
)
@click.option("--max-connections", default=64, show_default=True, type=int)
@click.option(
    "--max-connections-per-user", type=int, help="logged-in connections of one user (53300)"
)
@click.option(
    "--max-pending",
    default=64,
    show_default=True,
    type=int,
    help="connections still logging in (they take no --max-connections slot)",
)
@click.option(
    "--authentication-timeout",
    default=60.0,
    show_default=True,
    type=float,
    help="seconds a client has to log in",
)
@click.option(
    "--write-timeout",
    default=60.0,
    show_default=True,
    type=float,
    help="seconds a client may leave answers unread before it is disconnected",
)
@click.option("--idle-timeout", type=float, help="seconds a client may stay idle")
@click.option("--statement-timeout", type=float, help="seconds before a statement is cancelled")
@click.option(
    "--allow-file-access",
    is_flag=True,
    help="DuckDB: let every client read and write the server's files, ATTACH and LOAD (off:"
    " DuckDB's external access is disabled and its configuration locked, or only the users"
    " with files=allow in the users file use files)",
)
@click.option(
    "--allow-upstream-trust",
    is_flag=True,
    help="proxy mode: let clients off loopback in when PostgreSQL asks them no password"
    " (pg_hba trust for the gateway's address)",
)
@click.option(
    "--dialect",
    type=click.Choice(["default", "bigquery"], case_sensitive=False),
    default="default",
    show_default=True,
    help="the SQL clients send: PostgreSQL's, or GoogleSQL (BigQuery mode; DuckDB files only"
    " for now); SET sqlml.dialect changes it per session",
)
def serve(
    database: str,
    host: str,
    port: int,
    auth_method: str,
    users_file: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    require_tls: bool,
    max_connections: int,
    max_connections_per_user: int | None,
    max_pending: int,
    authentication_timeout: float,
    write_timeout: float,
    idle_timeout: float | None,
    statement_timeout: float | None,
    allow_file_access: bool,
    allow_upstream_trust: bool,
    dialect: str,
) -> None:
    """Serve a database to PostgreSQL clients (psql, BI tools, drivers) over the wire protocol."""
    import os

    from sqlml.engines.duckdb import DuckDBEngine
    from sqlml.grammar import bigquery
    from sqlml.wire import auth, limits
    from sqlml.wire.server import ServerConfig
    from sqlml.wire.server import serve as run_server
    from sqlml.wire.session import Backend, Session

    open_backend: Callable[[str, str], Backend]
    session_class: type[Session] = Session
    try:
        method = "scram-sha-256" if auth_method == "scram" else auth_method
        proxy = database.startswith(("postgresql://", "postgres://"))
        mode = bigquery.setting(dialect)
        if proxy and mode:
            raise errors.FeatureNotSupported(
                "--dialect bigquery is not supported yet in proxy mode (a postgresql:// URL)"
            )
        if proxy and (auth_method != "trust" or users_file):
            raise errors.InvalidParameterValue(
                "in proxy mode PostgreSQL authenticates each client (pg_hba.conf):"
                " --auth and --users-file apply to a DuckDB file only"
            )
        exposed = limits.UPSTREAM_AUTH if proxy else method
        limits.check_exposure(host, exposed, tls=tls_cert is not None)
        if require_tls and tls_cert is None:
            raise errors.from_sqlstate("28000", "--require-tls needs --tls-cert and --tls-key")
        users = auth.Users.from_file(users_file) if users_file else auth.Users.from_env(os.environ)
        if method != "trust" and users is None:
            raise errors.InvalidParameterValue(
                f"--auth {auth_method} needs --users-file or SQLML_GATEWAY_PASSWORD"
            )
        if method == "trust" and users is not None and any(c.files for c in users.values()):
            raise errors.InvalidParameterValue(
                "files=allow in the users file needs password authentication (--auth scram,"
                " md5 or password): under trust any client may log in as that user"
            )
        if proxy:
            from sqlml.wire.proxy import ProxyBackend, ProxySession
            from sqlml.wire.upstream import Connection, Target

            target = Target.parse(database)
            check = {"user": target.user, "database": target.dbname}
            upstream = Connection(target, check | {"application_name": "sqlml serve"})
            try:
                upstream.challenge()  # fail early: the server answers a login (no password sent)
            except errors.Error as e:
                if e.sqlstate.startswith("08"):
                    raise  # not there, or no TLS: nothing to serve
                click.echo(f"note: PostgreSQL answers the check with {e.sqlstate}: {e}", err=True)
            finally:
                upstream.close()
            where = f"PostgreSQL {target.host}:{target.port} (each client as its own role)"
            open_backend = lambda dbname, user: ProxyBackend(target, allow_upstream_trust)  # noqa: E731
            session_class = ProxySession
        else:
            from sqlml.wire.backends import duckdb_opener

            where = database
            DuckDBEngine(database).close()  # fail early: a directory, a locked file
            open_backend = duckdb_opener(database, file_access=allow_file_access, users=users)
        config = ServerConfig(
            host=host,
            port=port,
            auth_method=method,
            users=users,
            tls_cert=tls_cert,
            tls_key=tls_key,
            require_tls=require_tls,
            max_connections=max_connections,
            max_connections_per_user=max_connections_per_user,
            max_pending=max_pending,
            authentication_timeout=authentication_timeout,
            write_timeout=write_timeout,
            idle_timeout=idle_timeout,
            statement_timeout=statement_timeout,
            dialect=mode,
        )
    except errors.Error as e:
        _fail(e)
    login = "PostgreSQL's own logins" if proxy else method
    click.echo(f"sqlml serving {where} on {host}:{port} ({login})", err=True)
    run_server(config, open_backend, session_class)


if __name__ == "__main__":
    main()
