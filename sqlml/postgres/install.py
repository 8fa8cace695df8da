"""``sqlml install`` and ``sqlml uninstall`` for a PostgreSQL database.

What an install puts into the database, in one transaction (all or nothing):

- schema ``sqlml`` with the model store (sql/store.sql, the same logical store as on DuckDB);
- ``sqlml.python_modules``: the sqlml package's own source, which the PL/Python bodies import
  from there (udfs/postgres/bootstrap.py). The server thus runs exactly the sqlml version that
  was installed into this database, also when the server is another machine, and an upgrade is
  one more ``sqlml install``;
- the functions of sql/postgres/functions.sql, their bodies from udfs/postgres/;
- in ``sqlml.store_info``: the installed version and ``python_path``, folders on the server's
  machine put first on the server Python's sys.path, where its dependencies are.

sqlml's dependencies (numpy, scikit-learn, skl2onnx, onnx, onnxruntime, pyarrow, pandas,
sqlglot, xgboost) are compiled packages and must be importable by the server's own Python: from its
site-packages, or from a ``--python-path`` folder. ``--install-deps`` fills that folder with pip,
pinned to the versions this client runs, when the server's Python has this client's version and
the folder is on a machine both share. Before anything is written, the install asks the server's
Python to import every dependency and refuses, naming what is missing, when it cannot; at the end
it loads sqlml in the server (``sqlml.version()``) inside the same transaction.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
from sqlglot import exp

from sqlml import errors
from sqlml.engines.pgtypes import COMPOSITES, SQL_NAMES
from sqlml.engines.postgres import connect_error, map_error
from sqlml.grammar import lexer
from sqlml.store import ddl

# import name -> distribution name, for what the server's Python must import
DEPENDENCIES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "skl2onnx": "skl2onnx",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "pyarrow": "pyarrow",
    "pandas": "pandas",
    "sqlglot": "sqlglot",
    "xgboost": "xgboost-cpu",  # boosted trees and random forests (the CPU-only wheel)
    "plotly": "plotly",  # ML.REPORT's charts, made in the server by sqlml.ml (report_page.py)
}
Echo = Callable[[str], None]

_PROBE = """
CREATE FUNCTION pg_temp.sqlml_probe(path text[], modules text[]) RETURNS text
LANGUAGE plpython3u AS $probe$
import importlib, json, os, platform, stat, sys

# paths in and under entry (and its parents) that others than root and the server's OS user
# can change: a module planted there would run as the server
def writable_by_others(entry, most=5):
    me, found = os.geteuid(), []

    def unsafe(info, parent=False):
        if info.st_uid not in (0, me):
            return True
        sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        return bool(info.st_mode & 0o022) and not (parent and sticky)

    if not os.path.isdir(entry):
        return found
    folder = os.path.dirname(os.path.abspath(entry))
    while True:
        if unsafe(os.stat(folder), parent=True):
            found.append(folder)
        if folder == os.path.dirname(folder):
            break
        folder = os.path.dirname(folder)
    for root, dirs, files in os.walk(entry):
        for name in [""] + dirs + files:
            path = os.path.join(root, name) if name else root
            if len(found) < most and unsafe(os.lstat(path)) and not os.path.islink(path):
                found.append(path)
    return found[:most]

unsafe = [p for entry in (path or []) for p in writable_by_others(entry)]
for entry in reversed(path or []):
    if entry not in sys.path:
        sys.path.insert(0, entry)
    sys.path_importer_cache.pop(entry, None)  # a folder that did not exist at an earlier probe
importlib.invalidate_caches()
found, missing = {}, {}
for name in modules:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as e:
        missing[name] = f"{type(e).__name__}: {e}"
return json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                   "found": found, "missing": missing, "writable_by_others": unsafe})
$probe$
"""


def modules() -> list[tuple[str, bool, str]]:
    """(module name, is a package, source) of every module of the installed sqlml package."""
    root = Path(str(importlib.resources.files("sqlml")))
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        package = parts[-1] == "__init__"
        name = ".".join(("sqlml", *parts[:-1])) if package else ".".join(("sqlml", *parts))
        found.append((name, package, path.read_text()))
    return found


def _statements(text: str) -> list[str]:
    """The statements of one of sql/postgres/*.sql, as the one lexer splits them (``$sqlml$``
    bodies and comments kept whole)."""
    return lexer.split(text)


# The body of each plpgsql <name> around a PL/Python <name>_plpy (sql/postgres/functions.sql):
# the call, and its error raised again as PostgreSQL's own by sqlml.reraise.
_RERAISE = """
DECLARE
    state text;
    message text;
    detail text;
    hint text;
BEGIN
    {call};
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM sqlml.reraise(state, message, detail, hint);{after}
END
"""


def functions_sql(install_id: str, name: str = "functions.sql") -> list[str]:
    """sql/postgres/<name> with every ``@file.py`` body filled in, and every ``@reraise <call>``
    body written out (_RERAISE)."""
    udfs = importlib.resources.files("sqlml._udfs").joinpath("postgres")
    bootstrap = udfs.joinpath("bootstrap.py").read_text().replace("SQLML_INSTALL_ID", install_id)
    text = importlib.resources.files("sqlml._sql").joinpath(f"postgres/{name}").read_text()
    statements = _statements(text)
    filled = []
    for statement in statements:
        marker, wrapper = "$sqlml$@", "$sqlml$@reraise "
        if wrapper in statement:
            start = statement.index(wrapper) + len(wrapper)
            end = statement.index("$sqlml$", start)
            call = statement[start:end]
            # (a set-returning function's RETURN QUERY takes no RETURN NULL after the handler)
            scalar = call.startswith("RETURN ") and not call.startswith("RETURN QUERY ")
            after = "\n    RETURN NULL;" if scalar else ""
            body = _RERAISE.format(call=call, after=after)
            statement = statement[: start - len(wrapper) + len("$sqlml$")] + body + statement[end:]
        elif marker in statement:
            start = statement.index(marker) + len(marker)
            end = statement.index("$sqlml$", start)
            body = udfs.joinpath(statement[start:end]).read_text()
            if "$sqlml$" in body or "$sqlml$" in bootstrap:
                raise errors.InternalError("a function body contains its delimiter")
            statement = statement[: start - 1] + "\n" + bootstrap + "\n" + body + statement[end:]
        filled.append(statement.rstrip(";"))
    return filled


def types_sql() -> list[str]:
    """CREATE TYPE for each composite of ML.PREDICT's outputs, once: tables the user writes
    predictions into depend on them, so an upgrade keeps them rather than recreating them."""
    statements = []
    for name, fields in COMPOSITES.items():
        columns = ", ".join(f"{field} {SQL_NAMES[oid]}" for field, oid in fields)
        statements.append(
            f"DO $$BEGIN CREATE TYPE sqlml.{name} AS ({columns});"
            " EXCEPTION WHEN duplicate_object THEN NULL; END$$"
        )
    return statements


def pins() -> list[str]:
    return [f"{d}=={importlib.metadata.version(d)}" for d in DEPENDENCIES.values()]


class Installer:
    def __init__(self, database: str, echo: Echo | None = None) -> None:
        try:
            self.con = psycopg2.connect(database)
        except psycopg2.Error as e:
            raise connect_error(e) from e
        self.con.autocommit = True
        self.echo = echo or (lambda _: None)

    def _execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cursor:
            try:
                cursor.execute(sql, params)
            except psycopg2.Error as e:
                raise map_error(e) from e
            return cursor.fetchall() if cursor.description is not None else []

    def probe(self, path: list[str]) -> dict[str, Any]:
        """What the server's Python can import, with ``path`` first on its sys.path."""
        self._execute("DROP FUNCTION IF EXISTS pg_temp.sqlml_probe(text[], text[])")
        self._execute(_PROBE)
        (row,) = self._execute("SELECT pg_temp.sqlml_probe(%s, %s)", [path, list(DEPENDENCIES)])
        return dict(json.loads(row[0]))

    def install(self, python_path: list[str], install_deps: bool = False) -> str:
        import sqlml

        try:
            self._execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
        except errors.Error as e:
            raise errors.from_sqlstate(
                e.sqlstate,
                f"cannot enable plpython3u: {e.message}",
                hint="a superuser must run sqlml install, on a server with PL/Python 3"
                " (Debian: postgresql-plpython3-15)",
            ) from e
        found = self.probe(python_path)
        if found["missing"] and install_deps:
            self._install_deps(found, python_path)
            found = self.probe(python_path)
        if found["writable_by_others"]:
            raise _writable(found["writable_by_others"])
        if found["missing"]:
            raise _missing(found, python_path)
        self.echo(f"server Python {found['python']}: every dependency imports")
        sources = modules()
        digest = hashlib.sha256()
        for name, _, source in sources:
            digest.update(name.encode() + b"\0" + source.encode())
        install_id = f"{sqlml.__version__}+{digest.hexdigest()[:12]}"
        statements = functions_sql(install_id) + functions_sql(install_id, "privileges.sql")
        digest.update("\n".join(statements).encode())
        self.con.autocommit = False
        try:
            for statement in ddl():
                self._execute(statement)
            self._execute(
                "CREATE TABLE IF NOT EXISTS sqlml.python_modules"
                " (name TEXT PRIMARY KEY, is_package BOOLEAN NOT NULL, source TEXT NOT NULL)"
            )
            self._execute("DELETE FROM sqlml.python_modules")
            with self.con.cursor() as cursor:
                cursor.executemany("INSERT INTO sqlml.python_modules VALUES (%s, %s, %s)", sources)
            settings = {
                "python_path": json.dumps(python_path),
                "extension_version": sqlml.__version__,
                "install_id": install_id,
            }
            for key, value in settings.items():
                self._execute(
                    "INSERT INTO sqlml.store_info (key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, value],
                )
            for statement in types_sql():
                self._execute(statement)
            self._drop_policies()  # they use sqlml.has_model_privilege; privileges.sql remakes them
            self._drop_functions()  # an upgrade may change signatures: the new set replaces the old
            for statement in statements:
                self._execute(statement)
            (loaded,) = self._execute("SELECT sqlml.version()")
            # models' scoring functions named by an older install: renamed or recreated
            ((upgraded,),) = self._execute("SELECT sqlml.upgrade_scoring_functions()")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self.con.autocommit = True
        if upgraded:
            self.echo(f"{upgraded} model scoring function(s) renamed or recreated")
        self.echo(f"sqlml {loaded[0]} installed ({install_id})")
        return install_id

    def _install_deps(self, found: dict[str, Any], python_path: list[str]) -> None:
        ours = platform.python_version_tuple()[:2]
        if tuple(found["python"].split(".")[:2]) != ours or found["machine"] != platform.machine():
            raise errors.from_sqlstate(
                "58000",
                f"the server runs Python {found['python']} on {found['machine']}, this client"
                f" {platform.python_version()} on {platform.machine()}: --install-deps can"
                " only install for the same Python",
                hint=_pip_hint(python_path),
            )
        if not python_path:
            raise errors.InvalidParameterValue("--install-deps needs a --python-path folder")
        target = python_path[0]
        self.echo(f"installing {', '.join(pins())} into {target}")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade"]
        command += ["--target", target, *pins()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise errors.OperationalError(f"pip failed: {done.stderr.strip()[-2000:]}")

    def uninstall(self, drop_models: bool = False) -> None:
        """Removes the extension's functions and code; the models stay unless ``drop_models``."""
        self.con.autocommit = False
        try:
            if drop_models:
                # without CASCADE first: a user table holding predictions depends on these types,
                # and CASCADE would silently drop its columns (2BP01 instead)
                self._drop_prediction_functions()
                self._drop_schedule_jobs()
                self._execute("DROP TYPE IF EXISTS " + ", ".join(f"sqlml.{t}" for t in COMPOSITES))
                self._execute("DROP SCHEMA IF EXISTS sqlml CASCADE")
            else:
                self._drop_policies()
                self._drop_functions()
                self._execute("DROP TABLE IF EXISTS sqlml.python_modules")
                self._execute(
                    "DELETE FROM sqlml.store_info WHERE key IN"
                    " ('python_path', 'extension_version', 'install_id')"
                )
            self.con.commit()
        except psycopg2.Error as e:
            self.con.rollback()
            raise map_error(e) from e
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self.con.autocommit = True

    def _drop_schedule_jobs(self) -> None:
        """The models' pg_cron jobs (retrain_schedule: postgres/cron.py), which would call
        sqlml.run_schedule after it is gone. (Without --drop-models they stay, with the models'
        schedules, and fail until sqlml is installed again.)"""
        if not self._execute("SELECT to_regnamespace('cron') IS NOT NULL")[0][0]:
            return
        self._execute(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE database = current_database()"
            " AND command LIKE %s",
            ["SELECT sqlml.run_schedule(%"],
        )

    def _drop_prediction_functions(self) -> None:
        """The models' prediction functions (they return arrays of the composite types), so
        that the types can go; a user's view over one makes this 2BP01, as a table does."""
        rows = self._execute(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p"
            " WHERE p.pronamespace = to_regnamespace('sqlml') AND p.prorettype IN"
            " (SELECT t.typarray FROM pg_catalog.pg_type t"
            " WHERE t.typnamespace = to_regnamespace('sqlml') AND t.typname = ANY(%s))",
            [list(COMPOSITES)],
        )
        for (function,) in rows:
            self._execute(f"DROP FUNCTION {function}")  # regprocedure's text is quoted SQL

    def _drop_policies(self) -> None:
        """The row-level security policies on the store (sql/postgres/privileges.sql)."""
        rows = self._execute(
            "SELECT policyname, tablename FROM pg_catalog.pg_policies WHERE schemaname = 'sqlml'"
        )
        for policy, table in rows:
            self._execute(f"DROP POLICY {_ident(policy)} ON sqlml.{_ident(table)}")

    def _drop_functions(self) -> None:
        """The extension's own functions and view; the models' scoring functions stay (their
        names, from sqlml.scoring_function_name, always hold a '.'; the extension's never do)."""
        if not self._execute("SELECT to_regnamespace('sqlml') IS NOT NULL")[0][0]:
            return
        rows = self._execute(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p"
            " WHERE p.pronamespace = 'sqlml'::regnamespace AND p.proname NOT LIKE '%.%'"
        )
        self._execute("DROP VIEW IF EXISTS sqlml.model_functions")
        self._execute("DROP VIEW IF EXISTS sqlml.usable_models")  # (after the policies on it)
        for (function,) in rows:  # (ROUTINE: sqlml.log_table is a procedure)
            self._execute(f"DROP ROUTINE {function}")  # regprocedure's text is quoted SQL

    def close(self) -> None:
        self.con.close()


def _ident(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="postgres")


def _pip_hint(python_path: list[str]) -> str:
    target = python_path[0] if python_path else "/opt/sqlml/python"
    return (
        f"on the server's machine, with the server's Python: python3 -m pip install --target"
        f" {target} {' '.join(pins())}; then: sqlml install --python-path {target}"
    )


def _writable(paths: list[str]) -> errors.Error:
    return errors.InsufficientPrivilege(
        "the python_path holds files or folders that others than root and the server's OS user"
        " can write (the extension would run code from them): " + ", ".join(paths),
        hint="chown -R root and chmod -R go-w them (a parent folder may be world-writable only"
        " with the sticky bit, as /tmp)",
    )


def _missing(found: dict[str, Any], python_path: list[str]) -> errors.Error:
    names = ", ".join(f"{m} ({why})" for m, why in found["missing"].items())
    return errors.from_sqlstate(
        "58000",
        f"the server's Python {found['python']} cannot import sqlml's dependencies: {names}",
        hint=_pip_hint(python_path) + " (or add --install-deps when the folder is on this machine)",
    )
