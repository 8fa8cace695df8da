"""The command line: ``sqlml run`` runs a SQL script, ``sqlml models`` lists the stored models,
``sqlml install`` / ``sqlml uninstall`` put the extension into a PostgreSQL database, ``sqlml
serve`` is the gateway, ``sqlml schedule`` runs a DuckDB file's retrain_schedules, ``sqlml
report`` writes a model's report page."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from sqlml import errors

if TYPE_CHECKING:  # imported when a command runs: `sqlml --help` must start at once
    import pyarrow as pa

    from sqlml.dbapi import Connection
    from sqlml.wire.server import ServerConfig
    from sqlml.wire.session import Backend, Session

MAX_ROWS = 50
MAX_WIDTH = 80  # a cell wider than this is cut (with …); columns are never dropped
DIGITS = 6  # significant digits of a float inside a list or struct (top-level floats: all)


def _nested(value: Any) -> str:
    """A list or struct cell, short enough that every element shows: a classifier's
    probabilities (``[{label: False, prob: 0.0635862}, {label: True, prob: 0.936414}]``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_nested(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.{DIGITS}g}"
    return "NULL" if value is None else str(value)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        text = _nested(value)
    else:
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
    help="DuckDB file (created if missing), :memory:, or a postgresql:// URL",
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
    from sqlml import grammar

    connection = _open(database, scoring, dialect, create=True)
    text = script.read()
    at = 0  # where the statement starts in the script: an error's LINE is the script's
    try:
        for statement in grammar.split_script(text):
            at = text.find(statement, at)
            progress = _Progress()
            connection.set_progress(progress)
            cursor = connection.execute(statement)
            if cursor.description is not None:
                click.echo(format_table(cursor.fetch_arrow_table()))
            else:
                click.echo(cursor.statusmessage or "OK")
            click.echo()
            at += len(statement)
    except errors.Error as e:
        _fail(e, text, at)
    finally:
        connection.close()


@main.command()
@click.option("--database", "-d", required=True, help="DuckDB file or postgresql:// URL")
@click.option("--schema", default=None, help="only the models of this schema")
def models(database: str, schema: str | None) -> None:
    """List the models stored in DATABASE with their current version."""
    # The engine and the store alone: the SQL layer and the DB-API (sqlglot's dialects, the
    # ML code) are not loaded for a listing (benchmarks/RESULTS.md, "Start-up").
    from sqlml.engines import open_engine
    from sqlml.store import Store

    path = _checked_path(database, create=False)
    try:
        engine = open_engine(database)
    except errors.Error as e:
        _fail(_explained(e, path))
    try:
        click.echo(format_table(Store(engine).list(schema)))
    except errors.Error as e:
        _fail(e)
    finally:
        engine.close()


@main.command()
@click.argument("model")
@click.option("--database", "-d", required=True, help="DuckDB file or postgresql:// URL")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="the HTML file to write  [default: <model>_report.html in the current directory]",
)
@click.option("--model-version", type=int, help="report this version instead of the serving one")
def report(model: str, database: str, output: str | None, model_version: int | None) -> None:
    """Write MODEL's report: one HTML page that opens offline (docs/report.md), made by
    SELECT html FROM ML.REPORT(MODEL m)."""
    from sqlml.report import file_name, model_sql

    try:
        name = model_sql(model)
    except errors.Error as e:
        _fail(e)
    pinned = f" VERSION {model_version}" if model_version is not None else ""
    connection = _open(database, "auto", create=False)
    try:
        row = connection.execute(f"SELECT html FROM ML.REPORT(MODEL {name}{pinned})").fetchone()
    except errors.Error as e:
        _fail(e)
    finally:
        connection.close()
    assert row is not None
    path = output or file_name(model)
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(row[0])
    except OSError as e:
        _fail(errors.from_sqlstate("58030", f'cannot write "{path}": {e.strerror or e}'))
    click.echo(f"wrote {path} ({len(row[0]) // 1024} kB)", err=True)


def _position(script: str, offset: int) -> list[str]:
    """psql's pointer at an error: ``LINE n:`` and the script's line, a caret under the spot."""
    line_start = script.rfind("\n", 0, offset) + 1
    line_end = script.find("\n", offset)
    line = script[line_start : line_end if line_end >= 0 else len(script)]
    prefix = f"LINE {script.count(chr(10), 0, offset) + 1}: "
    return [prefix + line.expandtabs(1), " " * (len(prefix) + offset - line_start) + "^"]


def _fail(e: errors.Error, script: str | None = None, start: int = 0) -> NoReturn:
    """``ERROR <sqlstate>: message`` on one line, then, as psql, where in the script (for an
    error with a position), DETAIL and HINT; exit 1."""
    lines = [f"ERROR {e.sqlstate}: {e.message}"]
    if script is not None and e.position is not None and e.position > 0:
        lines += _position(script, min(start + e.position - 1, len(script)))
    lines += [f"DETAIL: {e.detail}"] if e.detail else []
    lines += [f"HINT: {e.hint}"] if e.hint else []
    click.echo("\n".join(lines), err=True)
    sys.exit(1)


def _duckdb_file(database: str) -> str | None:
    """The file a DuckDB database names (None for :memory: and URLs of other engines)."""
    path = database.removeprefix("duckdb://")
    if "://" in path or path == "" or path.startswith(":memory:"):
        return None
    return path


def _open(database: str, scoring: str, dialect: str = "default", *, create: bool) -> Connection:
    """The connection, or ``ERROR <sqlstate>`` and exit 1 for a database that cannot be opened
    (a directory, a locked file, a bad URL, a refused connection): never a traceback. A DuckDB
    file that does not exist is created only where ``create`` (``sqlml run``): elsewhere it
    is a typo, 3D000 as PostgreSQL answers for a database that does not exist."""
    from sqlml.dbapi import connect

    path = _checked_path(database, create=create)
    try:
        return connect(database, autocommit=True, scoring=scoring, dialect=dialect)
    except errors.Error as e:
        _fail(_explained(e, path))


def _checked_path(database: str, *, create: bool) -> str | None:
    """The DuckDB file ``database`` names (None: another engine), once it exists or may be
    created; a missing file where ``create`` is off is 3D000 and exit 1."""
    path = _duckdb_file(database)
    if path is not None and not os.path.exists(path):
        if not create:
            _fail(
                errors.from_sqlstate(
                    "3D000",
                    f'database "{path}" does not exist',
                    hint="sqlml run --database creates a DuckDB file; check the path",
                )
            )
        click.echo(f'NOTICE: creating DuckDB database "{path}"', err=True)
    return path


def _explained(e: errors.Error, path: str | None) -> errors.Error:
    """``e``, with what to do when another process (the gateway, say) holds the DuckDB file:
    DuckDB lets one process at a time open a file for writing."""
    if path is None or e.hint or not _locked_elsewhere(path):
        return e
    return errors.from_sqlstate(
        e.sqlstate,
        e.message,
        detail=e.detail,
        hint="another process holds the file (DuckDB lets one process open it for writing):"
        " if it is sqlml serve, send the statements through the gateway (psql -h <host> -p"
        " <port> -f script.sql, or any PostgreSQL client), or stop that process first",
    )


def _locked_elsewhere(path: str) -> bool:
    """Whether another process holds a write lock on ``path`` (DuckDB's fcntl lock), asked
    of the operating system rather than read from DuckDB's message."""
    import fcntl

    try:
        with open(path, "rb") as file:
            try:
                fcntl.lockf(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
    except OSError:  # a directory, no permission: not a lock
        return False
    return False


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """A --now / --until time as naive UTC (a time without a zone is UTC)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


@main.command()
@click.option("--database", "-d", required=True, help="DuckDB file")
@click.option("--once", is_flag=True, help="run the schedules due now, then exit")
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]),
    help="run schedules as they fall due until this time (UTC), then exit",
)
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]),
    help="with --once: what is due at this time (UTC) instead of now (to catch up, or test)",
)
@click.option("--poll", default=1.0, show_default=True, type=float, help="seconds between checks")
def schedule(
    database: str,
    once: bool,
    until: datetime.datetime | None,
    now: datetime.datetime | None,
    poll: float,
) -> None:
    """Run the retrain_schedules of a DuckDB file without a gateway (sqlml serve runs them
    itself): --once for cron or systemd timers, else until --until or Ctrl-C."""
    from sqlml import engine, schedules
    from sqlml.scheduler import Scheduler

    if database.startswith(("postgresql://", "postgres://")):
        _fail(
            errors.FeatureNotSupported(
                "on PostgreSQL, pg_cron runs the schedules: sqlml schedule is for DuckDB files",
            )
        )
    if now is not None and not once:
        _fail(errors.InvalidParameterValue("--now goes with --once"))
    path = _checked_path(database, create=False)
    try:
        session = engine.Session(_engine(database, path))
    except errors.Error as e:
        _fail(e)
    fixed = _utc(now)
    clock = (lambda: fixed) if fixed is not None else schedules.utc_now
    end = _utc(until)
    scheduler = Scheduler(session, clock=clock, poll=poll, log=lambda m: click.echo(m, err=True))
    try:
        if once:
            scheduler.run_due()
        else:
            with contextlib.suppress(KeyboardInterrupt):
                scheduler.run_until(lambda: end is not None and schedules.utc_now() >= end)
    except errors.Error as e:
        _fail(e)
    finally:
        session.engine.close()


def _engine(database: str, path: str | None) -> Any:
    from sqlml.engines import open_engine

    try:
        return open_engine(database)
    except errors.Error as e:
        raise _explained(e, path) from e


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
    " with files=allow in the users file use files); PostgreSQL proxy: let every client's"
    " CREATE MODEL (model_type 'onnx') and EXPORT MODEL read and write the gateway host's"
    " files",
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
    help="the SQL clients send: PostgreSQL's, or GoogleSQL (BigQuery mode, transpiled to"
    " PostgreSQL's); SET sqlml.dialect changes it per session",
)
@click.option(
    "--max-concurrent-trainings",
    type=int,
    help="trainings (CREATE MODEL, RETRAIN, scheduled runs) at once; more wait with a NOTICE"
    " [default: half the cores, at least 1]",
)
@click.option(
    "--training-queue-timeout",
    type=float,
    help="seconds a training waits for a slot before it fails with 53400 [default: no limit]",
)
@click.option(
    "--no-schedules",
    is_flag=True,
    help="DuckDB: do not run the file's retrain_schedules (sqlml schedule runs them)",
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
    max_concurrent_trainings: int | None,
    training_queue_timeout: float | None,
    no_schedules: bool,
) -> None:
    """Serve a database to PostgreSQL clients (psql, BI tools, drivers) over the wire protocol."""
    from sqlml import trainings
    from sqlml.engines.duckdb import DuckDBEngine
    from sqlml.grammar import bigquery
    from sqlml.scheduler import Scheduler
    from sqlml.wire import auth, limits
    from sqlml.wire.server import ServerConfig
    from sqlml.wire.session import Session

    open_backend: Callable[[str, str], Backend]
    session_class: type[Session] = Session
    holder: DuckDBEngine | None = None
    scheduler: Scheduler | None = None
    try:
        slots = trainings.Slots(
            max_concurrent_trainings or trainings.default_limit(), training_queue_timeout
        )
        method = "scram-sha-256" if auth_method == "scram" else auth_method
        proxy = database.startswith(("postgresql://", "postgres://"))
        mode = bigquery.setting(dialect)
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
            from sqlml.wire.proxy import ProxySession
            from sqlml.wire.proxy_backend import ProxyBackend
            from sqlml.wire.upstream import Connection as Upstream
            from sqlml.wire.upstream import Target

            target = Target.parse(database)
            check = {"user": target.user, "database": target.dbname}
            upstream = Upstream(target, check | {"application_name": "sqlml serve"})
            try:
                upstream.challenge()  # fail early: the server answers a login (no password sent)
            except errors.Error as e:
                if e.sqlstate.startswith("08"):
                    raise  # not there, or no TLS: nothing to serve
                click.echo(f"note: PostgreSQL answers the check with {e.sqlstate}: {e}", err=True)
            finally:
                upstream.close()
            where = f"PostgreSQL {target.host}:{target.port} (each client as its own role)"
            open_backend = lambda dbname, user: ProxyBackend(  # noqa: E731
                target, allow_upstream_trust, file_access=allow_file_access, trainings=slots
            )
            session_class = ProxySession
        else:
            from sqlml.wire.backends import duckdb_opener, open_engine

            where = database
            path = _duckdb_file(database)
            if path is not None and not os.path.exists(path):
                click.echo(f'NOTICE: creating DuckDB database "{path}"', err=True)
            try:  # opened now and held while serving: a directory or a locked file fails here,
                # not at the first client, and no other process can take the file meanwhile
                holder = open_engine(database, file_access=allow_file_access, users=users)
            except errors.Error as e:
                raise _explained(e, path) from e
            open_backend = duckdb_opener(
                database, file_access=allow_file_access, users=users, trainings=slots
            )
            if not no_schedules:
                scheduler = _scheduler(holder, open_backend, slots)
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
    _preload()
    try:
        _listen(
            config,
            open_backend,
            session_class,
            f"sqlml serving {where} on {{}} ({login})",
            scheduler,
        )
    except errors.Error as e:
        _fail(e)
    finally:
        if scheduler is not None:
            scheduler.stop()
        if holder is not None:
            holder.close()


def _scheduler(holder: Any, open_backend: Callable[[str, str], Any], slots: Any) -> Any:
    """The gateway's scheduler (scheduler.py): it finds due schedules on the engine the gateway
    holds, and runs each on a session opened as the gateway opens a client's, for the role
    that set the schedule (its users-file rights and file policy)."""
    from sqlml import engine
    from sqlml.scheduler import Scheduler

    @contextlib.contextmanager
    def open_as(role: str | None) -> Any:
        backend = open_backend("sqlml", role or "sqlml")
        try:
            yield backend.session
        finally:
            backend.close()

    session = engine.Session(holder)
    session.trainings = slots
    return Scheduler(session, open_as)


def _preload() -> None:
    """The training and scoring libraries, imported before the gateway listens: a one-off
    command imports them when a statement needs them, but a server's first CREATE MODEL or
    ML.PREDICT must not pay seconds of imports inside the client's statement (and its
    --statement-timeout)."""
    import importlib

    for module in ("sqlml.ml.train", "sqlml.ml.metrics", "sqlml.ml.score", "sqlml.ml.to_sql"):
        importlib.import_module(module)


def _listen(
    config: ServerConfig,
    open_backend: Callable[[str, str], Backend],
    session_class: type[Session],
    announce: str,
    scheduler: Any = None,
) -> None:
    """Runs the gateway until interrupted; says it serves only once it listens (a port in
    use is one line, 58000, not a traceback after "serving"); the scheduler (DuckDB) starts
    then too."""
    import asyncio

    from sqlml.wire.server import Server

    server = Server(config, open_backend, session_class)

    async def main() -> None:
        try:
            try:
                port = await server.start()
            except OSError as e:
                raise errors.from_sqlstate(
                    "58000",
                    f"cannot listen on {config.host}:{config.port}: {e.strerror or e}",
                    hint="another process (a gateway, a PostgreSQL server) may use the port:"
                    " choose another with --port",
                ) from e
            click.echo(announce.format(f"{config.host}:{port}"), err=True)
            if scheduler is not None:
                scheduler.start()
            await server.serve_forever()
        finally:
            await server.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    main()
