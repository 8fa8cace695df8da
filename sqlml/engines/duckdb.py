"""The embedded DuckDB engine: a file (or memory), no server.

Results come back as Arrow. DuckDB exceptions are mapped to sqlml's errors by class, never by
text.

Connections of one process to one file share a database instance, and a Python UDF registered
on one of them belongs to the instance: registering it again fails, and it breaks when the
connection that registered it closes. So the first engine on a file opens an anchor connection
that registers the runtime scoring UDF (udfs/duckdb_udfs.py), every engine on that file gets a
connection of its own from the anchor (``cursor()``), and the anchor closes with the last one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from sqlml import engines, errors
from sqlml.engines.base import Result, rows

# DuckDB exception class -> sqlml error class. The first match in MRO order wins.
_ERRORS: list[tuple[type[BaseException], type[errors.Error]]] = [
    (duckdb.ParserException, errors.SyntaxError),
    (duckdb.CatalogException, errors.UndefinedTable),
    (duckdb.BinderException, errors.UndefinedColumn),
    (duckdb.InterruptException, errors.QueryCanceled),
    (duckdb.ConstraintException, errors.IntegrityError),
    (duckdb.ConversionException, errors.DataError),
    (duckdb.OutOfRangeException, errors.DataError),
    (duckdb.InvalidInputException, errors.DataError),
    (duckdb.TypeMismatchException, errors.DatatypeMismatch),
    (duckdb.NotImplementedException, errors.FeatureNotSupported),
    (duckdb.TransactionException, errors.OperationalError),
    (duckdb.IOException, errors.OperationalError),
    (duckdb.Error, errors.OperationalError),
]


# Transaction control as the first word of a statement (the engine tracks whether one is open).
_LEAD = r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*"  # white space and comments before the first word
_HEAD = re.compile(_LEAD + r"(BEGIN|START|COMMIT|END|ROLLBACK|ABORT)\b", re.IGNORECASE | re.DOTALL)


# Statements that do not return rows (unless RETURNING makes them).
_COMMAND = re.compile(
    _LEAD
    + r"(CREATE|INSERT|UPDATE|DELETE|DROP|ALTER|COPY|SET|RESET|BEGIN|START|COMMIT|END|ROLLBACK"
    r"|ABORT|CHECKPOINT|VACUUM|ANALYZE|ATTACH|DETACH|USE|LOAD|INSTALL|IMPORT|EXPORT|TRUNCATE"
    r"|COMMENT|PREPARE|DEALLOCATE|EXECUTE)\b",
    re.IGNORECASE | re.DOTALL,
)


def map_error(e: BaseException) -> errors.Error:
    for cls, ours in _ERRORS:
        if isinstance(e, cls):
            return ours(str(e))
    return errors.InternalError(str(e))


def _udfs() -> Any:
    """udfs/duckdb_udfs.py, shipped as sqlml._udfs (see pyproject.toml)."""
    return importlib.import_module("sqlml._udfs.duckdb_udfs")


_anchors: dict[str, tuple[duckdb.DuckDBPyConnection, int]] = {}  # file -> (anchor, engines)
_anchors_lock = threading.Lock()


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    if path.startswith(":memory:"):  # a database of its own
        con = duckdb.connect(path)
        _udfs().register_udfs(con)
        return con
    key = os.path.realpath(path)
    with _anchors_lock:
        if key not in _anchors:
            anchor = duckdb.connect(path)
            try:
                _udfs().register_udfs(anchor)
            except BaseException:
                anchor.close()
                raise
            _anchors[key] = (anchor, 0)
        anchor, count = _anchors[key]
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
            anchor.close()


class DuckDBEngine:
    dialect = "duckdb"
    default_schema = "main"

    _in_transaction = False
    _closed = False

    def __init__(self, database: str) -> None:
        self.path = database.removeprefix("duckdb://") or ":memory:"
        try:
            self.con = _connect(self.path)
        except duckdb.Error as e:
            raise errors.OperationalError(f"cannot open DuckDB database {self.path!r}: {e}") from e
        self._lock = threading.RLock()

    def _run(self, sql: str, params: Sequence[Any] | None) -> pa.Table | None:
        try:
            relation = self.con.sql(sql, params=list(params) if params is not None else None)
            return None if relation is None else relation.to_arrow_table()
        except duckdb.Error as e:
            raise map_error(e) from e

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        with self._lock:
            table = self._run(sql, params)
            self._track_transaction(sql)
        command = _COMMAND.match(sql)
        if table is None or (command and table.column_names == ["Count"]):
            # DuckDB answers DDL and DML with a 'Count' column: that is a row count, not rows.
            count = (
                int(sum(table.column(0).to_pylist()))
                if table is not None and table.num_rows
                else -1
            )
            tag = command.group(1).upper() if command else ""
            return Result(None, count, tag)
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return rows(self.execute(sql, params))

    def schema_of(self, sql: str) -> pa.Schema:
        with self._lock:
            try:
                relation = self.con.sql(sql)
                return relation.limit(0).to_arrow_table().schema
            except duckdb.Error as e:
                raise map_error(e) from e

    def in_transaction(self) -> bool:
        return self._in_transaction

    def _track_transaction(self, sql: str) -> None:
        head = _HEAD.match(sql)
        if head is None:
            return
        word = head.group(1).upper()
        self._in_transaction = word in ("BEGIN", "START")

    def begin(self) -> None:
        self._run("BEGIN TRANSACTION", None)
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False
        self._run("COMMIT", None)

    def rollback(self) -> None:
        self._in_transaction = False
        self._run("ROLLBACK", None)

    def register_table(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def unregister_table(self, name: str) -> None:
        self.con.unregister(name)

    def register_scorer(self, key: str, onnx: bytes, inputs: Sequence[Any]) -> None:
        _udfs().register_model(key, onnx, inputs)

    def interrupt(self) -> None:
        if self._closed:
            return  # (a cancel may race with the connection's end: nothing runs any more)
        with contextlib.suppress(duckdb.ConnectionException):  # closed meanwhile
            self.con.interrupt()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.con.close()
        if not self.path.startswith(":memory:"):
            _release(self.path)


engines.register("", DuckDBEngine)
engines.register("duckdb", DuckDBEngine)
