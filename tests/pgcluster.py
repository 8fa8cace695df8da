"""A throwaway PostgreSQL cluster for the tests and benchmarks, with sqlml installed.

initdb into a temporary folder (as user ``postgres`` when run as root: the server refuses root),
a free port on 127.0.0.1, trust authentication (SCRAM-SHA-256 for members of ``sqlml_scram``),
plpython3u. ``SQLML_TEST_POSTGRES_DSN`` points
the tests at an existing server instead (a superuser DSN; the tests create their own databases).
sqlml's dependencies are pip-installed once into a folder the server can read
(``SQLML_TEST_PYDEPS``, default /tmp/sqlml-test-pydeps-<hash of the pinned versions>), which
``sqlml install --python-path`` records. Test runs at once share it: the first fills it under a
file lock, into a temporary folder renamed into place when complete, so that no run ever uses a
half-filled one (see fill_once).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import pyarrow as pa
from psycopg2 import sql

from sqlml.postgres.install import Installer, pins


class Unavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise Unavailable(
            f"{name} not found: apt-get install postgresql-15 postgresql-plpython3-15"
        )
    return found[-1]


# the database pg_cron runs jobs in (one per cluster: cron.database_name); made by the tests that
# use it (tests/test_schedules.py)
CRON_DATABASE = "sqlml_cron"


def has_pg_cron() -> bool:
    """Whether Debian's postgresql-15-cron is installed (the cluster then preloads it)."""
    return bool(glob.glob("/usr/lib/postgresql/*/lib/pg_cron.so"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sqlml-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o755)
        subprocess.run(
            _as_server_user(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )
        hba = self.data / "pg_hba.conf"  # SCRAM for the group's members, trust for the rest
        scram = f"host all +{SCRAM_GROUP} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(scram + hba.read_text())
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        if has_pg_cron():  # (its jobs in background workers: no login, no pg_hba rule)
            options += (
                f" -c shared_preload_libraries=pg_cron -c cron.database_name={CRON_DATABASE}"
                " -c cron.use_background_workers=on -c max_worker_processes=24"
                " -c cron.max_running_jobs=4"
            )
        subprocess.run(
            _as_server_user(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}"

    def stop(self) -> None:
        subprocess.run(
            _as_server_user([_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def pydeps_folder() -> str:
    digest = hashlib.sha256(" ".join(pins()).encode()).hexdigest()[:12]
    return os.environ.get("SQLML_TEST_PYDEPS", f"/tmp/sqlml-test-pydeps-{digest}")


COMPLETE = ".sqlml-complete"  # written last into a folder filled by fill_once


def _complete(folder: Path, pinned: list[str]) -> bool:
    """Filled: marked so by fill_once, or (a folder filled before the marker existed) with
    the dist-info of every pinned version."""
    if (folder / COMPLETE).exists():
        return True
    if not folder.is_dir():
        return False
    found = {p.name.lower() for p in folder.glob("*.dist-info")}
    names = (pin.split("==") for pin in pinned)
    return {
        f"{name.replace('-', '_')}-{version}.dist-info".lower() for name, version in names
    } <= found


def fill_once(folder: Path, fill: Callable[[Path], None], pinned: list[str]) -> None:
    """``folder`` filled by ``fill`` once per machine, however many test runs ask at once:
    under an exclusive lock on a file beside it, ``fill`` writes a new temporary folder
    which is renamed to ``folder`` only when complete (a rename is atomic), so a folder
    half-filled by a run that died or that is still at work is never seen, nor filled twice."""
    if _complete(folder, pinned):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if _complete(folder, pinned):  # another run filled it while this one waited
            (folder / COMPLETE).touch()
            return
        filling = Path(tempfile.mkdtemp(prefix=f".{folder.name}.filling-", dir=folder.parent))
        try:
            filling.chmod(0o755)  # the server (user postgres) reads it
            fill(filling)
            (filling / COMPLETE).touch()
            if folder.exists():  # half-filled by an older run without the lock: replaced
                stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}.stale-", dir=folder.parent))
                folder.rename(stale / folder.name)
                shutil.rmtree(stale, ignore_errors=True)
            filling.rename(folder)
        finally:
            shutil.rmtree(filling, ignore_errors=True)


def _pip_install(target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    subprocess.run([*command, *pins()], check=True, capture_output=True)


def pydeps() -> str:
    """The dependency folder, filled (once per machine) if it is not yet."""
    folder = Path(pydeps_folder())
    fill_once(folder, _pip_install, pins())
    return str(folder)


def dsn_for(server: str, database: str) -> str:
    return f"{server.rstrip('/')}/{database}"


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A superuser DSN without a database name (the environment's, or a new cluster's)."""
    given = os.environ.get("SQLML_TEST_POSTGRES_DSN")
    if given:
        yield given
        return
    cluster = Cluster()
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


def admin(server_dsn: str) -> psycopg2.extensions.connection:
    con = psycopg2.connect(dsn_for(server_dsn, "postgres"))
    con.autocommit = True
    return con


def create_database(server_dsn: str, name: str, template: str | None = None) -> str:
    con = admin(server_dsn)
    with contextlib.closing(con), con.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        for attempt in range(20):  # a template still in use for a moment after its last close
            try:
                cur.execute(statement)
                break
            except psycopg2.errors.ObjectInUse:
                if attempt == 19:
                    raise
                time.sleep(0.1)
    return dsn_for(server_dsn, name)


# The roles the gateway's clients log in as in proxy mode, each as itself (superusers: they train
# and score as the tests' own postgres did); members of SCRAM_GROUP must prove a password.
GATEWAY_ROLES = ("ana", "conformance")
SCRAM_GROUP = "sqlml_scram"


def create_roles(server_dsn: str) -> None:
    """The gateway's test roles and the group whose members log in with SCRAM-SHA-256 (the
    throwaway cluster's pg_hba.conf says so; another server keeps its own rules)."""
    con = admin(server_dsn)
    with contextlib.closing(con), con.cursor() as cur:
        roles = [(name, sql.SQL("LOGIN SUPERUSER")) for name in GATEWAY_ROLES]
        for name, attributes in [*roles, (SCRAM_GROUP, sql.SQL("NOLOGIN"))]:
            with contextlib.suppress(psycopg2.errors.DuplicateObject):
                cur.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), attributes))


def drop_database(server_dsn: str, name: str) -> None:
    con = admin(server_dsn)
    try:
        with con.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        con.close()


def install(dsn: str) -> None:
    installer = Installer(dsn)
    try:
        installer.install([pydeps()])  # filled under the lock, never by the installer's pip
    finally:
        installer.close()


_PG_TYPES = {
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE PRECISION",
    pa.string(): "TEXT",
    pa.bool_(): "BOOLEAN",
}


def load_table(dsn: str, schema: str, name: str, table: pa.Table) -> None:
    """An Arrow table into PostgreSQL (NaN as NULL), through COPY."""
    import io

    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_PG_TYPES[f.type]))
        for f in table.schema
    )
    buffer = io.StringIO()
    for row in table.to_pylist():
        cells = []
        for value in row.values():
            if value is None or (isinstance(value, float) and value != value):
                cells.append("\\N")
            else:
                cells.append(str(value).replace("\\", "\\\\").replace("\t", "\\t"))
        buffer.write("\t".join(cells) + "\n")
    buffer.seek(0)
    con = psycopg2.connect(dsn)
    try:
        with con, con.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            target = sql.Identifier(schema, name)
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
            cur.copy_expert(sql.SQL("COPY {} FROM STDIN").format(target).as_string(cur), buffer)
    finally:
        con.close()
