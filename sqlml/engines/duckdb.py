"""The embedded DuckDB engine: a file (or memory), no server.

Results come back as Arrow. The runtime scoring UDF (udfs/duckdb_udfs.py) is registered on every
connection sqlml opens. DuckDB exceptions are mapped to sqlml's errors by class, never by text.
"""

from __future__ import annotations

import importlib
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


class DuckDBEngine:
    dialect = "duckdb"
    default_schema = "main"

    _in_transaction = False

    def __init__(self, database: str) -> None:
        path = database.removeprefix("duckdb://") or ":memory:"
        try:
            self.con = duckdb.connect(path)
        except duckdb.Error as e:
            raise errors.OperationalError(f"cannot open DuckDB database {path!r}: {e}") from e
        self._lock = threading.RLock()
        _udfs().register_udfs(self.con)

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
        self.con.interrupt()

    def close(self) -> None:
        self.con.close()


engines.register("", DuckDBEngine)
engines.register("duckdb", DuckDBEngine)
