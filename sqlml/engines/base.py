"""The engine seam: what the engine path needs from a database, and nothing more."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
from sqlglot import exp

from sqlml import errors


@dataclass
class Result:
    """One statement's outcome: rows as Arrow (or None) and a row count (-1 when unknown)."""

    table: pa.Table | None
    rowcount: int = -1
    status: str = ""  # command tag, e.g. 'CREATE MODEL', 'SELECT 3'


def rows(result: Result) -> pa.Table:
    """A query's rows; a statement that returned none where rows were expected is our bug."""
    if result.table is None:
        raise errors.InternalError("statement returned no rows where a query was expected")
    return result.table


@runtime_checkable
class InServer(Protocol):
    """An engine whose server runs CREATE MODEL, DROP MODEL and ML.EVALUATE on rows itself
    (PostgreSQL with the extension); its progress messages go to ``progress``."""

    progress: Callable[[str], None] | None

    def run_in_server(self, statement: str) -> Result: ...

    def import_in_server(self, statement: str, graph: bytes) -> Result:
        """CREATE MODEL ... OPTIONS (model_type = 'onnx'): ``graph`` (the file's bytes, read by
        the client) goes to the server as a bytea parameter, with the statement's text."""
        ...

    def evaluate_in_server(
        self,
        model: str,
        query: str | None,
        threshold: float | None,
        version: int | None = None,
        trial: int | None = None,
    ) -> dict[str, float | None]:
        """ML.EVALUATE of the serving version (or of ``version``; of its trial ``trial``) in
        the server."""
        ...


@runtime_checkable
class DescribesColumns(Protocol):
    """An engine that tells a result's column types as the database names them (PostgreSQL's
    OIDs: the typed prediction log's columns, predlog.pg_columns)."""

    def result_columns(self, sql: str) -> list[tuple[str, int]]:
        """The names and type OIDs of the columns of ``sql``'s result (it is run)."""
        ...


@runtime_checkable
class RunsAside(Protocol):
    """An engine whose failed statement aborts the open transaction and that has no savepoints
    (DuckDB): what must not fail the user's statement (a shadow's scoring: predlog.py) runs on a
    connection of its own to the same database, and only its result comes back."""

    def aside(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """``sql``'s rows, run on the other connection over ``tables`` (registered there for
        the run); a failure leaves this connection's transaction as it was."""
        ...

    def append(self, table: exp.Table, rows: pa.Table) -> None:
        """Appends ``rows`` to ``table`` (its columns in order) in this connection's
        transaction."""
        ...


@runtime_checkable
class KeepsPlans(Protocol):
    """An engine that tells when a kept ML plan may be stale and runs kept plans prepared
    (DuckDB: engines/duckdb.py's docstring says what the token relies on)."""

    def token(self) -> Hashable:
        """Equal tokens: nothing a kept plan depends on (the model store, the catalog, what
        names resolve to) has changed in between, as this connection sees the database."""
        ...

    def prepare(self, name: str, sql: str) -> None:
        """Binds and plans ``sql`` once as ``name``; the engine binds it again by itself after
        a catalog change, so a plan found still right need not be prepared again."""
        ...

    def is_prepared(self, name: str) -> bool:
        """Whether ``name`` is still prepared (a DEALLOCATE or DISCARD may have dropped it)."""
        ...

    def run_prepared(self, name: str, params: Sequence[Any] | None) -> Result | None:
        """The prepared statement's rows for ``params``; None: run the SQL with them instead."""
        ...

    def deallocate(self, name: str) -> None: ...


@runtime_checkable
class Probes(Protocol):
    """An engine where a check costs a round trip (PostgreSQL) or a query's fixed cost (DuckDB):
    one query answers it all."""

    def probe(self, sql: str) -> tuple[pa.Schema, tuple[Any, ...]]:
        """The columns of a one-row query (typed as ``schema_of`` types them) and its row."""
        ...


@runtime_checkable
class Streams(Protocol):
    """An engine that reads a query's rows a batch at a time, within a memory budget (a
    training on more rows than fit in memory: ml/streamed.py)."""

    def read_batches(
        self, sql: str, rows: int, memory: int, again: bool = False, keep: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``sql`` in record batches of about ``rows`` rows, the engine's own
        buffers held under ``memory`` bytes while they are read. Nothing else runs on the
        engine until the iterator ends (or is closed). ``again``: another pass over the rows
        of the last read of ``sql``, which the engine may have kept (until release_reads);
        ``keep``: passes will follow (the engine may keep what makes them cheaper)."""
        ...

    def release_reads(self) -> None:
        """Lets go of what reads kept for another pass."""
        ...


class Engine(Protocol):
    dialect: str  # sqlglot dialect name of the SQL this engine runs: 'duckdb' | 'postgres'
    default_schema: str

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        """Runs one statement; raises sqlml.errors classes (mapped from the driver's)."""
        ...

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table: ...

    def schema_of(self, sql: str) -> pa.Schema:
        """The columns a query would return, without running it."""
        ...

    def in_transaction(self) -> bool: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def register_table(self, name: str, table: pa.Table) -> None:
        """Makes an Arrow table visible to the next statements as ``name``."""
        ...

    def unregister_table(self, name: str) -> None: ...

    def register_scorer(
        self, key: str, onnx: bytes, inputs: Sequence[Any], outputs: Sequence[str] = ()
    ) -> None:
        """Makes a model version scorable by the runtime UDF under ``key``, which returns the
        graph's ``outputs`` (its kind's raw outputs, in order; empty: every output the graph
        has, in its order)."""
        ...

    def interrupt(self) -> None:
        """Cancels the running statement (called from another thread)."""
        ...

    def checkpoint(self) -> Callable[[], None]:
        """A checkpoint for work that starts now and runs between calls into the database
        (a training): calling it raises ``QueryCanceled`` (57014) once the work was cancelled
        (``interrupt``, a statement timeout)."""
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def all_or_nothing(engine: Engine) -> Iterator[None]:
    """All or nothing: a transaction of its own, or the caller's when one is open (then the
    caller's COMMIT or ROLLBACK decides)."""
    if engine.in_transaction():
        yield
        return
    engine.begin()
    try:
        yield
    except BaseException:
        engine.rollback()
        raise
    engine.commit()
