"""The embedded DuckDB engine: a file (or memory), no server.

Results come back as Arrow. DuckDB exceptions are mapped to sqlml's errors by class, never by
text.

Connections of one process to one file share a database instance, and a Python UDF registered
on one of them belongs to the instance: registering it again fails, and it breaks when the
connection that registered it closes. So the first engine on a file opens an anchor connection
that registers the runtime scoring UDF (udfs/duckdb_udfs.py), every engine on that file gets a
connection of its own from the anchor (``cursor()``), and the anchor closes with the last one.

Kept ML plans (engine.py) ask ``token()`` whether anything they depend on may have changed: the
models a plan serves, the columns of its inputs, what names resolve to. DuckDB lets one process
write a file, so every such change is made by a statement of this process. The token is a count
per file, bumped after each statement through a sqlml engine that may change the catalog or the
model store (``may_change_plans``) and again when its transaction ends, with a count of this
connection's own changes and registered tables. Inside a transaction the file's count is the one
read before BEGIN: a change its snapshot does not see was counted after that. The token relies
on every writer being a sqlml engine; it cannot see writes through a bare ``duckdb.connect`` to
the same file in this process, nor TEMP objects created on an engine's raw connection (the
gateway's catalog emulation, which creates pg_catalog names only).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from sqlml import engines, errors
from sqlml.engines import duckdb_errors
from sqlml.engines.base import Result, rows
from sqlml.grammar import lexer

# Transaction control as the first word of a statement (the engine tracks whether one is open).
_TRANSACTION_WORDS = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"})
_ENDING = frozenset({"COMMIT", "END", "ROLLBACK", "ABORT"})

# Statements that do not return rows (unless RETURNING makes them), by their first word.
_COMMANDS = frozenset(
    {"CREATE", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "COPY", "SET", "RESET", "BEGIN",
     "START", "COMMIT", "END", "ROLLBACK", "ABORT", "CHECKPOINT", "VACUUM", "ANALYZE", "ATTACH",
     "DETACH", "USE", "LOAD", "INSTALL", "IMPORT", "EXPORT", "TRUNCATE", "COMMENT", "PREPARE",
     "DEALLOCATE", "EXECUTE"}
)  # fmt: skip

# Statements that change nothing a kept ML plan depends on: reads, and writes that name neither
# the model store nor DDL (a write cannot change a column type or what a name resolves to).
_READS = frozenset({"SELECT", "VALUES", "FROM", "TABLE", "SHOW", "DESCRIBE", "SUMMARIZE"})
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "WITH", "EXPLAIN"})
# Words of the statements that drop prepared statements (over-approximated as _SENSITIVE is).
_UNPREPARING = ("deallocate", "discard")
_SENSITIVE = ("sqlml", "models", "versions", "create", "alter", "drop", "attach", "detach")
# The prediction log's INSERT (predlog.py; one statement, checked above): it adds log rows, which
# no plan reads, but names sqlml, and counted as a change it made every kept plan of the file
# check its versions again at its next run, after each logged query.
_LOGGING = 'INSERT INTO "sqlml"."prediction_log'  # (and its typed tables, prediction_log_...)


def may_change_plans(sql: str) -> bool:
    """Whether a statement may change the model store, a table's columns or name resolution
    (an over-approximation: anything not known to be harmless counts; a sensitive word anywhere,
    even inside a string, counts, so a large INSERT costs substring searches, not a lexer walk)."""
    if ";" in sql.rstrip().rstrip(";"):  # (more than one statement, perhaps)
        return True
    word = lexer.first_word(sql)
    if word in _READS or sql.startswith(_LOGGING):
        return False
    lowered = sql.lower()
    return word not in _WRITES or any(w in lowered for w in _SENSITIVE)


MIN_MEMORY_LIMIT = 64 << 20  # DuckDB's buffers during a streamed read, at least (2 MiB: OOM)


def _stream_error(message: str) -> errors.Error:
    """An error DuckDB raised into an Arrow stream (an OSError: its type only in the text)."""
    if "INTERRUPT" in message.upper():
        return errors.QueryCanceled("canceling statement due to user request")
    if "Out of Memory" in message:
        return errors.OutOfMemory(message.split("\n")[0])
    return errors.InternalError(f"reading the rows failed: {message}")


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40})


def _bytes(setting: str) -> float:
    """DuckDB's memory_limit text ('18.8 GiB', '256.0 MiB') in bytes (inf: unlimited)."""
    number, _, unit = setting.strip().partition(" ")
    try:
        return float(number) * _UNITS[unit.strip().lower()]
    except (ValueError, KeyError):
        return math.inf


def _transaction_word(sql: str) -> str | None:
    """BEGIN, START, COMMIT, END, ROLLBACK or ABORT when ``sql`` starts with one."""
    word = lexer.first_word(sql)
    return word if word in _TRANSACTION_WORDS else None


def map_error(e: BaseException, context: duckdb_errors.Context | None = None) -> errors.Error:
    """A DuckDB exception as sqlml's error (engines/duckdb_errors.py)."""
    return duckdb_errors.map_error(e, context)


def _udfs() -> Any:
    """udfs/duckdb_udfs.py, shipped as sqlml._udfs (see pyproject.toml)."""
    return importlib.import_module("sqlml._udfs.duckdb_udfs")


def route_key(members: dict[int, tuple[str, Sequence[int]]]) -> str:
    """The runtime UDF's key for a call that scores each row with its owner's graph
    (udfs/duckdb_udfs.py: routes; traffic.py uses it for a split of runtime-scored versions)."""
    return str(_udfs().route_key(members))


_anchors: dict[str, tuple[duckdb.DuckDBPyConnection, int]] = {}  # file -> (anchor, engines)
_anchors_lock = threading.Lock()
_generations: dict[str, int] = {}  # database -> changes made in it by sqlml engines (token())
# The model macros of a file (views.has_macro), while this process has it open: those found
# once in the catalog, and those created since by any engine of the process (macro_created).
_macros_found: dict[str, frozenset[str]] = {}
_macros_created: dict[str, set[str]] = {}
_private = itertools.count(1)  # names for plain :memory: databases, each a database of its own
# Errors as JSON: what engines/duckdb_errors.py maps by (set when the database opens, before
# anything may lock the configuration).
_CONFIG: dict[str, str | bool | int | float | list[str]] = {"errors_as_json": True}
SMALL_RESULT = 256  # rows a prepared statement may return to be fetched as Python values
MAX_SCORERS = 64  # model versions an engine keeps registered for the scoring UDF (its latest)


_LOCK_DOWN = ("SET enable_external_access = false", "SET lock_configuration = true")


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """No file system, no ATTACH of files, no INSTALL/LOAD, and no configuration change, for
    every connection to ``con``'s database instance, for good: DuckDB itself refuses to turn
    external access back on while the instance runs, and the locked configuration refuses
    every SET of a setting (``SET VARIABLE``, ``search_path`` and registered Arrow tables and
    Python UDFs keep working). Run after sqlml's own set-up of the instance (the UDFs)."""
    for statement in _LOCK_DOWN:
        con.execute(statement)


_LOCK_CONFIGURATION = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET lock_configuration = true",
)


def lock_configuration(con: duckdb.DuckDBPyConnection) -> None:
    """The configuration frozen, external access left on, and no extension installed or loaded
    behind a statement's back: the gateway's per-user file access (wire/file_policy.py), where
    sqlml checks each statement of a user without file access instead of DuckDB."""
    for statement in _LOCK_CONFIGURATION:
        con.execute(statement)


def _settings(con: duckdb.DuckDBPyConnection) -> tuple[bool, bool]:
    """``enable_external_access`` and ``lock_configuration`` of ``con``'s instance."""
    (row,) = con.execute(  # (fetchall: DuckDB 2 keeps a result open until it is consumed)
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    ).fetchall()
    return bool(row[0]), bool(row[1])


def locked_down(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``lock_down`` ran on the instance of ``con``."""
    external, locked = _settings(con)
    return locked and not external


def _secure(con: duckdb.DuckDBPyConnection, external_access: bool, locked: bool) -> None:
    """Locks the instance down (no external access) or its configuration only (``locked``), as
    asked, unless it is already so; an instance whose configuration is locked with external
    access on cannot be locked down any more (an engine that asks for that fails to open)."""
    external, frozen = _settings(con)
    if not external_access and external:
        if frozen:
            raise errors.OperationalError(
                "the database is open in this process with per-user file access: it cannot be"
                " locked down for every user now"
            )
        lock_down(con)
    elif locked and not frozen:
        lock_configuration(con)


def _connect(path: str, external_access: bool, locked: bool) -> duckdb.DuckDBPyConnection:
    if path.startswith(":memory:"):  # a database of its own
        con = duckdb.connect(path, config=_CONFIG)
        _udfs().register_udfs(con)
        _secure(con, external_access, locked)
        return con
    key = os.path.realpath(path)
    with _anchors_lock:
        if key not in _anchors:
            anchor = duckdb.connect(path, config=_CONFIG)
            try:
                _udfs().register_udfs(anchor)
            except BaseException:
                anchor.close()
                raise
            _anchors[key] = (anchor, 0)
        anchor, count = _anchors[key]
        _secure(anchor, external_access, locked)  # (shared: every engine on the file is locked)
        _anchors[key] = (anchor, count + 1)
        return anchor.cursor()


def _release(path: str) -> None:
    key = os.path.realpath(path)
    with _anchors_lock:
        if key not in _anchors:
            return
        anchor, count = _anchors[key]
        if count > 1:
            _anchors[key] = (anchor, count - 1)
        else:
            del _anchors[key]
            _generations.pop(key, None)  # (no engine left to hold a plan that counted on it)
            _macros_found.pop(key, None)  # (another process may write the file now)
            _macros_created.pop(key, None)
            anchor.close()


class DuckDBEngine:
    dialect = "duckdb"
    default_schema = "main"

    _in_transaction = False
    _closed = False
    _failed = False  # a statement of the open transaction failed (DuckDB aborted it: 25P02)
    _interrupts = 0  # interrupt() calls so far (an int: one store, atomic under the GIL)

    # Called with each statement this engine runs for its user before it runs (the gateway's
    # per-user file policy: wire/file_policy.py); raises to refuse it. None: no check.
    guard: Callable[[str, Sequence[Any] | None], None] | None = None

    def __init__(
        self, database: str, *, external_access: bool = True, lock_configuration: bool = False
    ) -> None:
        """``external_access=False``: the database instance is locked down (``lock_down``);
        the gateway's default, so that its clients cannot reach the server's files.
        ``lock_configuration``: the configuration is locked, external access left as asked."""
        self.path = database.removeprefix("duckdb://") or ":memory:"
        try:
            self.con = _connect(self.path, external_access, lock_configuration)
        except duckdb.Error as e:
            raise errors.OperationalError(f"cannot open DuckDB database {self.path!r}: {e}") from e
        self._lock = threading.RLock()
        if self.path == ":memory:":
            self._database = f":memory:#{next(_private)}"
        elif self.path.startswith(":memory:"):
            self._database = self.path
        else:
            self._database = os.path.realpath(self.path)
        self._own = 0  # changes made through this connection (and its registered tables)
        self._seen: int | None = None  # the file's count when the open transaction began
        self._dirty = False  # the open transaction ran a statement that may change plans
        # (prepared name, kinds of values) -> the schema of its few rows
        self._shapes: dict[tuple[str, ...], pa.Schema | None] = {}
        self._kept: set[str] = set()  # names PREPAREd here and not deallocated since
        self._scorers: OrderedDict[str, None] = OrderedDict()  # graphs held in the UDF registry
        self._aside: duckdb.DuckDBPyConnection | None = None  # (aside's connection, made once)

    # -- what kept ML plans depend on (see the module docstring) ---------------------------------

    def token(self) -> tuple[int, int]:
        """Equal tokens: nothing a kept ML plan depends on has changed in between, as this
        connection sees the database. Inside a transaction that is the file's count when it
        began (read before BEGIN, so no later change can hide in its snapshot)."""
        seen = self._seen if self._in_transaction and self._seen is not None else self._count()
        return seen, self._own

    def _count(self) -> int:
        return _generations.get(self._database, 0)

    def _changed(self) -> None:
        self._own += 1
        with _anchors_lock:
            _generations[self._database] = _generations.get(self._database, 0) + 1

    def _after(self, sql: str, before: int) -> None:
        if self._kept and any(w in sql.lower() for w in _UNPREPARING):
            self._kept.clear()  # (DEALLOCATE ALL or DISCARD: kept plans are prepared again)
        head = _transaction_word(sql)
        if head in ("BEGIN", "START"):
            if self._seen is None:  # (a BEGIN inside a transaction fails: keep the first count)
                self._seen = before
        elif head is not None:
            self._ended()
        elif may_change_plans(sql):
            self._dirty = self._dirty or self._in_transaction
            self._changed()

    def _ended(self) -> None:
        """A transaction ended: the others see its changes now, or never (count them again)."""
        self._seen = None
        self._failed = False
        if self._dirty:
            self._dirty = False
            self._changed()

    # -- prepared statements (kept ML plans) ------------------------------------------------------

    def prepare(self, name: str, sql: str) -> None:
        """``PREPARE name AS sql``: DuckDB binds and plans it once; it binds again by itself
        after a catalog change. ``sql`` is sqlglot's output, the name our own."""
        with self._lock:
            self._forget(name)
            # (PREPARE binds it: checked first, its values unknown)
            arity = max(lexer.parameter_numbers(sql), default=0) if self.guard else 0
            with self.checked(sql, [None] * arity if arity else None):
                self._run(f"PREPARE {_identifier(name)} AS {sql}", None, guarded=False)
            self._kept.add(name)

    def is_prepared(self, name: str) -> bool:
        return name in self._kept

    def run_prepared(self, name: str, params: Sequence[Any] | None) -> Result | None:
        """``EXECUTE name(values)``; None when a value has no literal here (run the SQL with
        the values bound instead). A value binds as its literal does: int, float, str, bool
        and NULL literals take the types DuckDB gives those Python values.

        A relation over EXECUTE binds it again on every call (~1 ms for a compiled model), so
        once a statement has shown it returns a few rows of plain types, it runs as a DB-API
        statement and its rows become Arrow here, typed as the first run's."""
        values = [_literal(v) for v in params or ()]
        if any(v is None for v in values):
            return None
        # EXECUTE takes values, not bind parameters: each goes as its literal (see _literal).
        args = f"({', '.join(map(str, values))})" if values else ""
        call = f"EXECUTE {_identifier(name)}{args}"
        # The result's types may follow the values' (SELECT $1 AS x): one shape per kind.
        key = (name, *map(_kind, params or ()))
        with self._lock:
            shape = self._shapes.get(key)
            # Checked at each run (DuckDB binds it again after any catalog change, and a value
            # may change what it binds to), in the snapshot it runs in.
            with self.checked(call, None):
                table = (
                    self._run(call, None, guarded=False)
                    if shape is None
                    else self._fetch(call, shape)
                )
            if table is None:
                raise errors.InternalError("a prepared ML query returned no rows")
            plain = table.num_rows <= SMALL_RESULT and all(map(_plain, table.schema.types))
            self._shapes[key] = table.schema if plain else None
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    def _fetch(self, sql: str, shape: pa.Schema) -> pa.Table:
        try:
            rows = self.con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise self._error(e, sql) from e
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(shape)
        arrays = [pa.array(c, type=f.type) for c, f in zip(columns, shape, strict=True)]
        return pa.Table.from_arrays(arrays, schema=shape)

    def _forget(self, name: str) -> None:
        for key in [k for k in self._shapes if k[0] == name]:
            del self._shapes[key]

    def deallocate(self, name: str) -> None:
        with self._lock:
            self._forget(name)
            self._kept.discard(name)
            self._run(f"DEALLOCATE {_identifier(name)}", None, guarded=False)

    # -- statements -------------------------------------------------------------------------------

    def _run(
        self, sql: str, params: Sequence[Any] | None, *, guarded: bool = True
    ) -> pa.Table | None:
        values = list(params) if params is not None else None
        if guarded and self.guard is not None:
            with self.checked(sql, values):
                return self._run(sql, values, guarded=False)
        try:
            relation = self.con.sql(sql, params=values)
        except duckdb.Error as e:
            raise self._error(e, sql, probe=(values,)) from e
        try:
            return None if relation is None else relation.to_arrow_table()
        except duckdb.Error as e:
            raise self._error(e, sql) from e

    @contextlib.contextmanager
    def checked(self, sql: str, params: Sequence[Any] | None) -> Iterator[None]:
        """Runs ``guard`` on ``sql`` and then the body, in one transaction: outside the
        client's, one of their own, so that both see one snapshot of the catalog (a view that
        another connection replaces between the check and the run stays the one checked)."""
        if self.guard is None:
            yield
            return
        own = not self._in_transaction and _transaction_word(sql) is None
        if own:
            self.con.begin()
        try:
            self.guard(sql, params)
            yield
        except BaseException:
            if own:
                with contextlib.suppress(duckdb.Error):  # (DuckDB may have ended it already)
                    self.con.rollback()
            raise
        if own:
            try:
                self.con.commit()
            except duckdb.Error as e:
                raise self._error(e, sql) from e

    def failure(
        self, e: duckdb.Error, sql: str, params: Sequence[Any] | None = None
    ) -> errors.Error:
        """The sqlml error for ``sql``, which failed in ``con.sql`` on this engine's connection
        (for callers of DuckDB's own API on ``con``: the gateway's Describe)."""
        return self._error(e, sql, probe=(list(params) if params is not None else None,))

    def _error(
        self, e: duckdb.Error, sql: str, probe: tuple[list[Any] | None] | None = None
    ) -> errors.Error:
        """The sqlml error for a failed statement. ``probe``: the statement failed in
        ``con.sql`` with these values, where a bind-time error lacks its structure (see
        engines/duckdb_errors.py)."""
        reported, statement = e, sql
        if probe is not None:
            reported, statement = duckdb_errors.probe(self.con, e, sql, probe[0])
        context = duckdb_errors.Context(statement, self._in_transaction, self._failed)
        if self._in_transaction:
            self._failed = True
        error = map_error(reported, context)
        if statement is not sql:
            error.position = None  # (an offset into one statement of several)
        return error

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        with self._lock:
            before = self._count()
            try:
                table = self._run(sql, params)
                self._track_transaction(sql)
            except errors.Error:
                if _transaction_word(sql) in _ENDING:  # a failed COMMIT ends it too (rolled back)
                    self._in_transaction = False
                raise
            finally:  # (a failed statement changes nothing, but counting it costs a check)
                self._after(sql, before)
        word = lexer.first_word(sql)
        command = word if word in _COMMANDS else ""
        if table is None or (command and table.column_names == ["Count"]):
            # DuckDB answers DDL and DML with a 'Count' column: that is a row count, not rows.
            count = (
                int(sum(table.column(0).to_pylist()))
                if table is not None and table.num_rows
                else -1
            )
            return Result(None, count, command)
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return rows(self.execute(sql, params))

    def read_batches(
        self, sql: str, rows: int, memory: int, again: bool = False, keep: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """engines.base.Streams. DuckDB keeps the blocks a scan read in its buffer pool, up to
        its memory_limit (80% of the machine's memory by default): a streamed read of a 2.5 GiB
        table left 2.5 GB in the process. The limit is lowered to a quarter of ``memory`` for
        the read (the rest is the batches' in the learner: streamed.batch_rows), and
        set back after it (it is the database's: other connections of this process to the file
        share it meanwhile; benchmarks/RESULTS.md, "Bounded memory")."""
        with self._lock:
            settings = self.con.sql(
                "SELECT current_setting('memory_limit'), current_setting('lock_configuration')"
            ).to_arrow_table()
            limit, locked = str(settings[0][0].as_py()), bool(settings[1][0].as_py())
            memory = max(memory // 4, MIN_MEMORY_LIMIT)  # (the rest: the batches in the learner)
            # (an in-memory database's tables live in its buffers: never squeezed; a locked
            # configuration, the gateway's, keeps the operator's limit)
            in_memory = self.path.startswith(":memory:")
            lowered = not (in_memory or locked) and _bytes(limit) > memory
            if lowered:
                self.con.sql(f"SET memory_limit = '{int(memory)}B'")  # (an int: no user text)
            try:
                with self.checked(sql, None):
                    yield from self._reader(sql, rows)
            finally:
                if lowered:
                    with contextlib.suppress(duckdb.Error):
                        self.con.sql("SET memory_limit = " + exp.Literal.string(limit).sql())

    def _reader(self, sql: str, rows: int) -> Iterator[pa.RecordBatch]:
        reader = None
        try:
            reader = self.con.sql(sql).to_arrow_reader(rows)
            yield from reader
        except duckdb.Error as e:
            raise self._error(e, sql) from e
        except OSError as e:  # (DuckDB's errors, through Arrow's stream)
            raise _stream_error(str(e)) from e
        finally:
            if reader is not None:
                reader.close()  # (an open result blocks the connection: closed, not drained)

    def release_reads(self) -> None:
        pass  # (another pass runs the query again: nothing kept)

    def probe(self, sql: str) -> tuple[pa.Schema, tuple[Any, ...]]:
        """A kept plan's check in one query (engines.base.Probes): after any catalog change it
        replaces a lookup per model and a schema per input (~1 ms each here)."""
        with self._lock, self.checked(sql, None):
            try:
                table = self.con.sql(sql).to_arrow_table()
            except duckdb.Error as e:
                raise self._error(e, sql, probe=(None,)) from e
        if not table.num_rows:
            raise errors.InternalError("a check of a kept ML query returned no row")
        return table.schema, tuple(c[0].as_py() for c in table.columns)

    def schema_of(self, sql: str) -> pa.Schema:
        with self._lock, self.checked(sql, None):
            try:
                relation = self.con.sql(sql)
                return relation.limit(0).to_arrow_table().schema
            except duckdb.Error as e:
                raise self._error(e, sql, probe=(None,)) from e

    def macros(self, scan: Callable[[], frozenset[str]]) -> frozenset[str] | None:
        """The names of the file's model macros (views.has_macro), ``scan`` read once per
        process while the file is open: a DuckDB file has one writing process, and every macro
        it creates after the scan is noted (macro_created), committed or not, so a macro is
        never missed (a name noted for a macro rolled back or dropped since only costs its
        refresh). None for a database in memory: ask the catalog."""
        if self.path.startswith(":memory:"):
            return None
        key = self._database
        with _anchors_lock:
            found = _macros_found.get(key)
        if found is None:
            found = scan()
            with _anchors_lock:
                found = _macros_found.setdefault(key, found)
        with _anchors_lock:
            return found | _macros_created.get(key, set())

    def macro_created(self, name: str) -> None:
        """A model macro is created (before its CREATE runs): see macros."""
        if not self.path.startswith(":memory:"):
            with _anchors_lock:
                _macros_created.setdefault(self._database, set()).add(name)

    @property
    def database_key(self) -> str:
        """Which database this is, for the store's per-model lock (store.Store.writing)."""
        return self._database

    def in_transaction(self) -> bool:
        return self._in_transaction

    def _track_transaction(self, sql: str) -> None:
        word = _transaction_word(sql)
        if word is not None:
            self._in_transaction = word in ("BEGIN", "START")

    def begin(self) -> None:
        before = self._count()
        self._run("BEGIN TRANSACTION", None, guarded=False)
        self._in_transaction = True
        if self._seen is None:
            self._seen = before

    def commit(self) -> None:
        self._in_transaction = False
        try:
            self._run("COMMIT", None, guarded=False)
        finally:
            self._ended()

    def rollback(self) -> None:
        self._in_transaction = False
        try:
            self._run("ROLLBACK", None, guarded=False)
        finally:
            self._ended()

    def register_table(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)
        self._own += 1  # a name of this connection's may resolve to it now

    def unregister_table(self, name: str) -> None:
        self.con.unregister(name)
        self._own += 1

    def register_scorer(
        self, key: str, onnx: bytes, inputs: Sequence[Any], outputs: Sequence[str] = ()
    ) -> None:
        """Holds the graph in the UDF registry (udfs/duckdb_udfs.py) until this engine closes or
        has registered MAX_SCORERS newer ones."""
        with self._lock:
            if key in self._scorers:
                self._scorers.move_to_end(key)
                return
            _udfs().register_model(key, onnx, inputs, outputs)
            self._scorers[key] = None
            if len(self._scorers) > MAX_SCORERS:
                oldest, _ = self._scorers.popitem(last=False)
                _udfs().release_models([oldest])

    def aside(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """``sql``'s rows on another connection to this database (base.RunsAside): DuckDB
        aborts a transaction at any error and has no savepoints. It sees what is committed, the
        UDFs (registered on the database) and ``tables``; nothing of this connection's open
        transaction."""
        with self._lock:
            if self._aside is None:
                self._aside = self.con.cursor()
            con = self._aside
            for name, table in tables.items():
                con.register(name, table)
            try:
                return con.sql(sql).to_arrow_table()
            except duckdb.Error as e:
                raise map_error(e) from e
            finally:
                for name in tables:
                    con.unregister(name)

    def append(self, table: exp.Table, rows: pa.Table) -> None:
        """Appends ``rows`` to ``table``, by position, in this connection's transaction
        (no name registered: a registered name would count as a change for kept plans)."""
        with self._lock:
            try:
                self.con.from_arrow(rows).insert_into(table.sql(dialect="duckdb"))
            except duckdb.Error as e:
                raise self._error(e, "INSERT") from e

    def interrupt(self) -> None:
        self._interrupts += 1  # (for a training between queries: see checkpoint)
        if self._closed:
            return  # (a cancel may race with the connection's end: nothing runs any more)
        with contextlib.suppress(duckdb.ConnectionException):  # closed meanwhile
            self.con.interrupt()

    def checkpoint(self) -> Callable[[], None]:
        """DuckDB's own interrupt only stops a query that runs; a training between queries
        counts the interrupts that came after it began instead."""
        began = self._interrupts

        def check() -> None:
            if self._interrupts != began:
                raise errors.QueryCanceled("canceling statement due to user request")

        return check

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._aside is not None:
            self._aside.close()
        self.con.close()
        _udfs().release_models(list(self._scorers))
        self._scorers.clear()
        if not self.path.startswith(":memory:"):
            _release(self.path)
        elif self._database != self.path:  # a private :memory: database: gone with its engine
            with _anchors_lock:
                _generations.pop(self._database, None)


@functools.lru_cache(maxsize=1024)
def _identifier(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def _literal(value: Any) -> str | None:
    """A bind value as the SQL literal that binds alike (numbers written from the number,
    strings quoted by sqlglot); None for other types."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        text = repr(float(value))
        if not math.isfinite(value):
            return f"CAST('{text}' AS DOUBLE)"
        return text if "e" in text else f"{text}e0"  # (an exponent makes it a DOUBLE literal)
    if isinstance(value, str) and "\x00" not in value:
        return str(exp.Literal.string(value).sql(dialect="duckdb"))
    return None


def _kind(value: Any) -> str:
    """What decides the type a value binds as (DuckDB: int32, int64 or wider for an int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return type(value).__name__
    if -(2**31) <= value < 2**31:
        return "int32"
    return "int64" if -(2**63) <= value < 2**63 else "int"


# Arrow types whose Python values (DuckDB's fetchall) convert back to Arrow exactly.
_PLAIN = (
    pa.types.is_null,
    pa.types.is_boolean,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_date32,
)


def _plain(dtype: pa.DataType) -> bool:
    if pa.types.is_list(dtype):
        return _plain(dtype.value_type)
    if pa.types.is_struct(dtype):
        return all(_plain(dtype.field(i).type) for i in range(dtype.num_fields))
    return any(check(dtype) for check in _PLAIN)


engines.register("", DuckDBEngine)
engines.register("duckdb", DuckDBEngine)
