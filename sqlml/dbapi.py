"""PEP 249 over the engine path: ``sqlml.connect(database)``.

``database`` is a DuckDB file path or ``":memory:"`` (the default). Statements run through the same
engine path as every other front door, so ``CREATE MODEL`` and ``ML.PREDICT`` work in ``execute``;
``?`` (or ``$n``) parameters bind in ML queries too (ML.PREDICT, ML.SCORE, and ML.EVALUATE's rows
on DuckDB), whose rendered SQL is kept and reused whatever the values.
Transactions follow PEP 249: the first statement opens one, ``commit()``/``rollback()`` end it;
``autocommit = True`` runs each statement on its own. Cursors also fetch Arrow tables and pandas
frames. Every error is a ``sqlml.Error`` subclass with ``.sqlstate``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from sqlml import bigquery, errors
from sqlml.bigquery import Params
from sqlml.engine import Session, Settings
from sqlml.engines.base import Result

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "qmark"


# -- PEP 249 type objects and constructors ---------------------------------------------------------
# A description's type_code is the column's Arrow type name ('double', 'string', 'timestamp[us]').


class _TypeObject:
    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(self.prefixes)

    def __hash__(self) -> int:
        return hash(self.prefixes)


STRING = _TypeObject("string", "large_string")
BINARY = _TypeObject("binary", "large_binary")
NUMBER = _TypeObject("int", "uint", "float", "double", "decimal", "halffloat", "bool")
DATETIME = _TypeObject("timestamp", "date", "time", "duration")
ROWID = _TypeObject("rowid")  # DuckDB has no row-id type; nothing compares equal

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:
    return datetime.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> datetime.time:
    return datetime.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ticks)


class Cursor:
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._table: pa.Table | None = None
        self._position = 0
        self.rowcount = -1
        self.statusmessage = ""
        self._closed = False

    # -- PEP 249 --------------------------------------------------------------------------------

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        if self._table is None:
            return None
        return [
            (f.name, str(f.type), None, None, None, None, f.nullable) for f in self._table.schema
        ]

    def execute(self, operation: str, parameters: Params = None) -> Cursor:
        self._check()
        result = self.connection._execute(operation, parameters)
        self._set(result)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Params]) -> Cursor:
        total = 0
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        table = self._rows()
        count = self.arraysize if size is None else size
        chunk = table.slice(self._position, count)
        self._position += chunk.num_rows
        return _tuples(chunk)

    def fetchall(self) -> list[tuple[Any, ...]]:
        table = self._rows()
        chunk = table.slice(self._position)
        self._position = table.num_rows
        return _tuples(chunk)

    def close(self) -> None:
        self._closed = True
        self._table = None

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249: may do nothing."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """PEP 249: may do nothing."""

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- beyond PEP 249 --------------------------------------------------------------------------

    def fetch_arrow_table(self) -> pa.Table:
        """The rest of the result as an Arrow table."""
        table = self._rows()
        chunk = table.slice(self._position)
        self._position = table.num_rows
        return chunk

    def fetchdf(self) -> Any:
        """The rest of the result as a pandas DataFrame."""
        return self.fetch_arrow_table().to_pandas()

    def _set(self, result: Result) -> None:
        self._table = result.table
        self._position = 0
        self.rowcount = result.rowcount
        self.statusmessage = result.status

    def _rows(self) -> pa.Table:
        self._check()
        if self._table is None:
            raise errors.ProgrammingError("the last statement returned no rows")
        return self._table

    def _check(self) -> None:
        if self._closed:
            raise errors.InterfaceError("cursor is closed")
        self.connection._check()


def _tuples(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


def _plain(parameters: Params) -> Params:
    """NumPy scalars (what a pandas or numpy program has at hand) as their Python values:
    DuckDB refuses np.float32, and psycopg2 adapts np.float64 by its repr, which NumPy 2 writes
    ``np.float64(0.5)`` (the server then looked for a schema ``np``)."""
    if parameters is None or isinstance(parameters, str | bytes):
        return parameters  # (not a sequence of parameters: refused where it always was)
    if isinstance(parameters, Mapping):
        return {k: _item(v) for k, v in parameters.items()}
    return [_item(v) for v in parameters]


def _item(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


class Connection:
    # PEP 249 optional extension: the exception classes as attributes of the connection.
    Error = errors.Error
    Warning = errors.Warning
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, session: Session, autocommit: bool = False) -> None:
        self.session = session
        self.autocommit = autocommit
        self._closed = False

    @property
    def paramstyle(self) -> str:
        """PEP 249's paramstyle of this connection now: 'named' (@name, a dict) in BigQuery
        mode, else the module's 'qmark'."""
        return "named" if self.session.settings.dialect == bigquery.NAME else paramstyle

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

    def execute(self, operation: str, parameters: Params = None) -> Cursor:
        """Shortcut: a new cursor that has run ``operation``."""
        return self.cursor().execute(operation, parameters)

    def commit(self) -> None:
        self._check()
        if self.session.engine.in_transaction():
            self.session.engine.commit()

    def rollback(self) -> None:
        self._check()
        if self.session.engine.in_transaction():
            self.session.engine.rollback()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.rollback()
        finally:
            self._closed = True
            self.session.engine.close()

    def cancel(self) -> None:
        """Cancels the statement this connection runs, from another thread (the one method
        that may be called while another thread uses the connection): it fails with
        ``QueryCanceled`` (57014); a CREATE MODEL stops at its next checkpoint and stores
        nothing. Without a running statement it does nothing."""
        if not self._closed:
            self.session.engine.interrupt()

    def set_progress(self, callback: Callable[[str], None] | None) -> None:
        """Receives training progress messages (what the gateway sends as NOTICE)."""
        self.session.progress = callback

    def _execute(self, operation: str, parameters: Params) -> Result:
        if not self.autocommit and not self.session.engine.in_transaction():
            self.session.engine.begin()
        last = Result(None)
        for result in self.session.execute_script(operation, _plain(parameters)):
            last = result
        return last

    def _check(self) -> None:
        if self._closed:
            raise errors.InterfaceError("connection is closed")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        self.close()


def connect(
    database: str = ":memory:",
    *,
    autocommit: bool = False,
    scoring: str = "auto",
    dialect: str | None = None,
) -> Connection:
    """Opens ``database``: a DuckDB file path, ``":memory:"``, or a ``postgresql://`` URL of a
    database where ``sqlml install`` put the extension.

    ``scoring`` picks how ML.PREDICT scores: 'auto' (compiled SQL where the model allows it, else
    onnxruntime), 'compiled' or 'runtime'. ``dialect='bigquery'`` reads every statement as
    GoogleSQL (BigQuery mode, docs/sql.md), with ``@name`` parameters from a dict (paramstyle
    'named'); None or 'default': the engine's own SQL.
    """
    mode = bigquery.setting(dialect)
    if scoring not in ("auto", "compiled", "runtime"):
        raise errors.InvalidParameterValue(
            f"scoring must be 'auto', 'compiled' or 'runtime', not {scoring!r}"
        )
    settings = Settings(scoring=scoring, dialect=mode)
    return Connection(Session.open(database, settings), autocommit=autocommit)
