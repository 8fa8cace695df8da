"""sqlml inside a PostgreSQL backend: the engine over SPI, and what the PL/Python bodies call.

The function bodies under udfs/postgres/ are thin: they load sqlml (see bootstrap.py) and call
one function here with the ``plpy`` module. Everything runs in the caller's transaction, so a
failed or cancelled CREATE MODEL rolls back with its statement and the previous version keeps
serving. Errors leave as ``plpy.error(..., sqlstate=...)`` with sqlml's SQLSTATE, or the server's
own when SPI raised it (see ``call``).

Rows never leave the server: the training relation is read in chunks of
``array_send(array_agg(column))`` through an SPI cursor, one bytea per column and chunk, decoded
into Arrow without a Python loop for numbers (engines/pgtypes.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from sqlml import errors, scoring, views
from sqlml.engine import Session, _parse_query, zero_rows
from sqlml.engines import pgnested, pgtypes, placeholders
from sqlml.engines.base import Result
from sqlml.engines.pgtypes import (
    FIXED_SQL,
    TEXT_TYPES,
    arrow_type,
    decode_array,
    decode_text,
    decode_without_nulls,
    fed_oid,
    feed_cast,
)
from sqlml.grammar import settings
from sqlml.grammar.statements import (
    AlterModel,
    CreateModel,
    DropModel,
    Evaluate,
    MLQuery,
    ModelRef,
    Query,
    Statement,
)
from sqlml.ml import models, train
from sqlml.ml.score import scorer
from sqlml.ml.streamed import TRAINING_COPIES
from sqlml.postgres import privileges
from sqlml.store import ModelVersion

CHUNK_ROWS = 65536
_COPY = f"{scoring.HIDDEN}stream"  # a streamed read's copy of its rows (read_batches)
_SPOOL = f"{scoring.HIDDEN}spool"  # ... and the batches of its first pass (_spooling)
SPOOL_SLICES = 4  # a batch is spooled in this many slices (each one's copies are small)
READ_WORK_MEM = "262144kB"  # 256 MB, the training read's work_mem at least (_raise_work_mem)
# Python value -> the SQL type of a parameter (plpy.prepare needs them).
_PARAM_TYPES: list[tuple[type, str]] = [
    (bool, "boolean"),
    (int, "bigint"),
    (float, "double precision"),
    (bytes, "bytea"),
    (str, "text"),
]


def _param_type(value: Any) -> str:
    import datetime

    if isinstance(value, datetime.datetime):
        return "timestamp"
    for cls, name in _PARAM_TYPES:
        if isinstance(value, cls):
            return name
    return "text"


def _column(values: list[Any], oid: int) -> pa.Array:
    """A small SPI result column as Arrow; PL/Python gives text for types it does not convert."""
    wanted = arrow_type(oid)
    if pa.types.is_floating(wanted):
        return pa.array([None if v is None else float(v) for v in values], type=wanted)
    if pa.types.is_integer(wanted) or pa.types.is_boolean(wanted) or pa.types.is_binary(wanted):
        return pa.array(values, type=wanted)
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


class PlpyEngine:
    """The engine seam over SPI, inside the caller's transaction."""

    dialect = "postgres"
    default_schema = "public"
    manages_store = False  # the install scripts created the store
    server_files = True  # its files are the database server's, not the user's (byom.py)

    def __init__(self, plpy: Any) -> None:
        self.plpy = plpy
        self._types: dict[int, pa.DataType] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._copy: tuple[str, exp.Table] | None = None  # (a streamed read's: read_batches)
        self._spooled: str | None = None  # the query whose every batch the spool holds

    def _spi(self, sql: str, params: Sequence[Any] | None) -> Any:
        try:
            if not params:
                return self.plpy.execute(sql)
            types = tuple(_param_type(v) for v in params)
            key = (sql, types)
            plan = self._plans.get(key)
            if plan is None:
                text = placeholders.format_to_numbered(sql)
                plan = self._plans[key] = self.plpy.prepare(text, list(types))
            return self.plpy.execute(plan, list(params))
        except self.plpy.SPIError as e:
            raise errors.from_sqlstate(
                getattr(e, "sqlstate", None), str(e).strip(), detail=getattr(e, "detail", None)
            ) from e

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        result = self._spi(sql, params)
        try:
            names, oids = result.colnames(), result.coltypes()
        except self.plpy.Error:  # a command: no columns
            return Result(None, result.nrows(), "")
        rows = list(result)
        table = pa.table(
            {n: _column([r[n] for r in rows], o) for n, o in zip(names, oids, strict=True)}
        )
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        if params:  # the store's own small queries
            table = self.execute(sql, params).table
            assert table is not None
            return table
        return self.read_chunked(sql)

    def columns_of(self, sql: str) -> list[tuple[str, int]]:
        result = self._spi(zero_rows(sql, "postgres"), None)
        return list(zip(result.colnames(), result.coltypes(), strict=True))

    def result_columns(self, sql: str) -> list[tuple[str, int]]:
        """The names and type OIDs of the columns of ``sql``'s result (it is run)."""
        result = self._spi(sql, None)
        return list(zip(result.colnames(), result.coltypes(), strict=True))

    def schema_of(self, sql: str) -> pa.Schema:
        return pa.schema([(n, self._type(o)) for n, o in self.columns_of(sql)])

    def _type(self, oid: int) -> pa.DataType:
        """A column type as Arrow; composites and arrays from the catalog (engines/pgnested)."""
        if oid not in self._types:
            found = pgnested.arrow_of(oid, self._catalog)
            self._types[oid] = found if found is not None else arrow_type(oid)
        return self._types[oid]

    def _catalog(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        text, values = placeholders.to_format(sql, params)  # (? markers -> %s, as _spi takes)
        result = self._spi(text, values)
        names = result.colnames()
        return [tuple(row[n] for n in names) for row in result]

    def read_chunked(self, sql: str) -> pa.Table:
        """All rows of a query as Arrow, read inside the backend one chunk of rows at a time
        (a composite column field by field, an array column as text: engines/pgnested.py)."""
        batches = list(self._chunks(sql, CHUNK_ROWS, self._raise_work_mem))
        return pa.Table.from_batches(batches)  # (one empty batch at least: its schema)

    def read_batches(
        self, sql: str, rows: int, memory: int, again: bool = False, keep: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """engines.base.Streams. The chunked read's GROUP BY holds every chunk's arrays in its
        hash table before the first leaves (array_agg's states are not spilled: 1M rows x 21
        DOUBLEs took the backend from 305 to 548 MiB whatever work_mem). So rows the planner
        expects to fit in ``memory`` are read that way; more are copied into a temporary table
        first (through temp_buffers: bounded) and read a range of its pages at a time (a TID
        range scan), one chunk in memory. ``again``: the rows of the last read of ``sql``
        (a training's next pass), the same rows. With ``keep`` (passes will follow), the first
        read of the copy keeps its batches as Arrow IPC in a second temporary table (the
        spool), and a later pass reads them back, 24x faster than a read of the copy (its
        aggregates and decoding, again: 0.17 s against 4.1 s for 1.875M rows x 21 columns;
        writing them cost 0.4 s more in the first pass, which one pass alone does not repay).
        Without it, or after a first read that stopped before its end, the copy is read
        again."""
        if again and self._spooled == sql:
            return self._unspooled()
        if again and self._copy is not None and self._copy[0] == sql:
            return self._paged(sql, rows, self._copy[1])
        self.release_reads()
        if self._estimated_bytes(sql) * TRAINING_COPIES <= memory:
            return self._chunks(sql, rows, self._raise_work_mem)
        table = exp.Table(this=exp.to_identifier(_COPY, quoted=True))
        self._copy = (sql, table)
        self.release_reads()  # (one an earlier call of this session left: its engine is gone)
        copy = exp.Create(
            this=table,
            kind="TABLE",
            expression=_parse_query(sql, "postgres"),
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        self._spi(copy.sql(dialect="postgres"), None)
        self._copy = (sql, table)
        paged = self._paged(sql, rows, table)
        return self._spooling(sql, paged) if keep else paged

    def release_reads(self) -> None:
        """Drops the copy and the spool a read kept for the passes after it
        (engines.base.Streams)."""
        if self._copy is None and self._spooled is None:
            return
        self._copy = self._spooled = None
        for name in (_COPY, _SPOOL):
            self._drop_temporary(name)

    def _drop_temporary(self, name: str) -> None:
        """Drops this session's temporary table ``name`` if there is one (looked up first:
        DROP ... IF EXISTS would tell the client it was not there, in a NOTICE)."""
        table = exp.Table(
            this=exp.to_identifier(name, quoted=True), db=exp.to_identifier("pg_temp")
        )
        named = exp.Literal.string(table.sql(dialect="postgres"))
        there = exp.Not(this=exp.Is(this=exp.func("to_regclass", named), expression=exp.Null()))
        if self._spi(exp.select(there.as_("there")).sql(dialect="postgres"), None)[0]["there"]:
            drop = exp.Drop(tables=[table], kind="TABLE")
            self._spi(drop.sql(dialect="postgres"), None)

    def _spooling(self, sql: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches``, each also kept in the spool (as Arrow IPC streams of a slice of it:
        SPOOL_SLICES a batch, so that the IPC bytes, their bytes object and the parameter's
        copy of it stay small beside the batch); at their end the spool stands for the copy,
        which is dropped. The bytea column is stored uncompressed (STORAGE EXTERNAL): Arrow's
        doubles do not compress, and trying costs as much as the write."""
        table = exp.Table(this=exp.to_identifier(_SPOOL, quoted=True))
        self._drop_temporary(_SPOOL)  # (one an earlier read left: a new one for these rows)
        self._spooled = None
        create = exp.Create(
            this=exp.Schema(
                this=table,
                expressions=[
                    exp.ColumnDef(this=exp.to_identifier("k"), kind=exp.DataType.build("int")),
                    exp.ColumnDef(this=exp.to_identifier("b"), kind=exp.DataType.build("bytea")),
                ],
            ),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        self._spi(create.sql(dialect="postgres"), None)
        named = table.sql(dialect="postgres")
        self._spi(f"ALTER TABLE pg_temp.{named} ALTER COLUMN b SET STORAGE EXTERNAL", None)
        insert = f"INSERT INTO pg_temp.{named} (k, b) VALUES (%s, %s)"
        k = 0
        for batch in batches:
            size = max(1, -(-batch.num_rows // SPOOL_SLICES))
            for first in range(0, max(batch.num_rows, 1), size):
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, batch.schema) as writer:
                    writer.write_batch(batch.slice(first, size))
                self._spi(insert, [k, sink.getvalue().to_pybytes()])
                del sink
                k += 1
            yield batch
        self._spooled = sql
        self._copy = None
        self._drop_temporary(_COPY)

    def _unspooled(self) -> Iterator[pa.RecordBatch]:
        """The batches the spool holds, a slice at a time, in the order they were read."""
        table = exp.Table(
            this=exp.to_identifier(_SPOOL, quoted=True), db=exp.to_identifier("pg_temp")
        )
        query = exp.select("b").from_(table).order_by("k").sql(dialect="postgres")
        try:
            cursor = self.plpy.cursor(query)
            while True:
                found = cursor.fetch(1)
                if not found:
                    return
                data = found[0]["b"]
                del found
                yield pa.ipc.open_stream(pa.py_buffer(data)).read_next_batch()
                del data
        except self.plpy.SPIError as e:
            raise errors.from_sqlstate(getattr(e, "sqlstate", None), str(e).strip()) from e

    def _estimated_bytes(self, sql: str) -> float:
        """The planner's rows x width of ``sql`` (a table never analyzed: from its size)."""
        query = _parse_query(sql, "postgres").sql(dialect="postgres")
        found = self._spi("EXPLAIN (FORMAT JSON) " + query, None)[0]
        plan = json.loads(next(iter(found.values())))[0]["Plan"]
        return float(plan["Plan Rows"]) * float(plan["Plan Width"])

    def _paged(self, sql: str, rows: int, table: exp.Table) -> Iterator[pa.RecordBatch]:
        """The rows of the copy ``table`` of ``sql``, ``rows`` at a time about."""
        columns = self.columns_of(sql)
        train.unique_names([name for name, _ in columns])
        types = [self._type(oid) for _, oid in columns]
        per_column = [pgnested.feeds(n, o, t) for (n, o), t in zip(columns, types, strict=True)]
        flat = [f for group in per_column for f in group]
        regclass = exp.DataType.build("regclass", dialect="postgres", udt=True)
        name = exp.Literal.string(table.sql(dialect="postgres"))
        size = exp.func("pg_relation_size", exp.cast(name, regclass))
        count = exp.select(exp.func("count", exp.Star()).as_("n")).from_(table.copy())
        found = self._spi(
            exp.select(size.as_("bytes"), count.subquery().as_("n")).sql("postgres"), None
        )
        pages, total = -(-int(found[0]["bytes"]) // 8192), int(found[0]["n"])
        step = max(1, (rows * pages) // max(total, 1))
        for first in range(0, max(pages, 1), step):
            found = self._spi(_page_query(table, flat, first, first + step), None)
            parts = _decoded(flat, found[0])
            del found  # (its bytes, before the batch goes to the learner)
            yield _assembled(columns, types, per_column, flat, parts)

    def _chunks(
        self, sql: str, rows: int, settings: Callable[[], Callable[[], None]]
    ) -> Iterator[pa.RecordBatch]:
        columns = self.columns_of(sql)
        train.unique_names([name for name, _ in columns])  # (else 42702 from the chunk query)
        types = [self._type(oid) for _, oid in columns]
        per_column = [pgnested.feeds(n, o, t) for (n, o), t in zip(columns, types, strict=True)]
        flat = [f for group in per_column for f in group]
        chunk_sql = chunk_query(_parse_query(sql, "postgres"), flat, rows)
        restore = settings()
        try:
            cursor = self.plpy.cursor(chunk_sql.sql(dialect="postgres"))
            read = 0
            while True:
                try:
                    batch = cursor.fetch(1)
                except self.plpy.SPIError as e:
                    raise errors.from_sqlstate(getattr(e, "sqlstate", None), str(e).strip()) from e
                if not batch and read:
                    break
                parts = _decoded(flat, batch[0] if batch else None)  # (None: the empty batch)
                yield _assembled(columns, types, per_column, flat, parts)
                read += 1
                if not batch:
                    break
        finally:
            with contextlib.suppress(errors.Error):  # (a failed read's error is the one to raise)
                restore()

    def _set_work_mem(self, value: str) -> Callable[[], None]:
        """work_mem = ``value`` for the transaction until what this returns sets it back."""
        now = self._spi("SELECT current_setting('work_mem') AS now", None)[0]["now"]
        self._spi("SELECT set_config('work_mem', %s, true)", [value])
        return lambda: self._spi("SELECT set_config('work_mem', %s, true)", [now])

    def _raise_work_mem(self) -> Callable[[], None]:
        """work_mem at least READ_WORK_MEM for the read's GROUP BY (its hash table of chunk
        arrays spilled to disk at PostgreSQL's default 4MB: 1M rows x 10 columns read in 1.25 s,
        0.98 s with 256MB; the rows end up in this process's memory either way). Local to the
        transaction, and set back when the read ends; returns what sets it back."""
        row = self._spi(
            "SELECT current_setting('work_mem') AS now,"
            " pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s) AS low",
            [READ_WORK_MEM],
        )[0]
        if not row["low"]:
            return lambda: None
        self._spi("SELECT set_config('work_mem', %s, true)", [READ_WORK_MEM])
        return lambda: self._spi("SELECT set_config('work_mem', %s, true)", [row["now"]])

    def in_transaction(self) -> bool:
        return True  # a function always runs inside its caller's transaction

    def begin(self) -> None:
        raise errors.InternalError("transaction control inside the server")

    commit = rollback = begin

    def register_table(self, name: str, table: pa.Table) -> None:
        raise errors.FeatureNotSupported(
            "ML queries are not run by sqlml.execute: use the model's scoring function or"
            " sqlml.evaluate"
        )

    def unregister_table(self, name: str) -> None:
        pass

    def register_scorer(
        self, key: str, onnx: bytes, inputs: Sequence[Any], outputs: Sequence[str] = ()
    ) -> None:
        pass

    def interrupt(self) -> None:
        pass

    def checkpoint(self) -> Callable[[], None]:
        """PL/Python sees a pending cancel (pg_cancel_backend, statement_timeout) only when it
        calls into the server: a trivial statement through SPI raises the server's own 57014."""
        return self._check

    def _check(self) -> None:
        self._spi("SELECT 1", None)

    def close(self) -> None:
        pass


def _decoded(flat: list[tuple[Any, int]], row: dict[str, Any] | None) -> list[list[pa.Array]]:
    """One chunk row's arrays, per fed column (none in an empty chunk)."""
    parts: list[list[pa.Array]] = [[] for _ in flat]
    if row is None:
        return parts
    for i, (_, oid) in enumerate(flat):
        values, nulls = row[f"c{i}"], row[f"n{i}"]
        if values is None:  # (no rows: array_agg of none is NULL)
            continue
        if fed_oid(oid) in TEXT_TYPES:
            parts[i].append(decode_text(values, nulls, row[f"s{i}"]))
        else:
            parts[i].append(decode_without_nulls(values, nulls))
    return parts


def _page_query(table: exp.Table, flat: list[tuple[Any, int]], first: int, stop: int) -> str:
    """The chunk of the rows on pages first .. stop - 1 of ``table`` (a TID range scan)."""
    tid = exp.DataType.build("tid", dialect="postgres", udt=True)
    ctid = exp.column("ctid", table="q")
    where = exp.and_(
        exp.GTE(this=ctid, expression=exp.cast(exp.Literal.string(f"({first},0)"), tid)),
        exp.LT(this=ctid.copy(), expression=exp.cast(exp.Literal.string(f"({stop},0)"), tid)),
    )
    aggregates, outs = chunk_columns(flat)
    source = table.copy().as_("q")
    grouped = exp.select(*aggregates).from_(source).where(where)
    return exp.select(*outs).from_(grouped.subquery("chunks")).sql(dialect="postgres")


def _assembled(
    columns: list[tuple[str, int]],
    types: list[pa.DataType],
    per_column: list[list[tuple[Any, int]]],
    flat: list[tuple[Any, int]],
    parts: list[list[pa.Array]],
) -> pa.RecordBatch:
    """One chunk's columns as a record batch (composites and arrays put together)."""
    read = [
        pgtypes.restore(
            oid, pa.chunked_array(parts[i], type=arrow_type(oid) if not parts[i] else None)
        )
        for i, (_, oid) in enumerate(flat)
    ]
    arrays, at = {}, 0
    for (name, _), wanted, group in zip(columns, types, per_column, strict=True):
        mine, at = read[at : at + len(group)], at + len(group)
        nested = pa.types.is_struct(wanted) or pa.types.is_list(wanted)
        arrays[name] = pgnested.assemble(wanted, mine) if nested else mine[0]
    table = pa.table(arrays)
    return pa.RecordBatch.from_arrays(
        [c.combine_chunks() for c in table.columns], schema=table.schema
    )


def _temporal_feed(oid: int, ref: exp.Expr) -> exp.Expr:
    """A DATE as its days since 1970-01-01, a TIME / TIMESTAMP / TIMESTAMPTZ as its
    microseconds (since midnight, or the Unix epoch): pgtypes.TEMPORAL."""
    if oid == pgtypes.DATE:
        epoch = exp.cast(exp.Literal.string("1970-01-01"), exp.DataType.build("DATE"))
        days = exp.Sub(this=ref, expression=epoch)
        return exp.cast(exp.paren(days), exp.DataType.build("INT"))
    seconds = exp.Extract(this=exp.var("epoch"), expression=ref)
    micros = exp.Mul(this=seconds, expression=exp.Literal.number(1000000))
    return exp.cast(exp.paren(micros), exp.DataType.build("BIGINT"))


def chunk_query(
    query: exp.Expr, columns: Sequence[tuple[str | exp.Expr, int]], rows: int
) -> exp.Select:
    """One row per ``rows`` input rows (chunks in no particular order: sorting them spilled to
    disk and doubled the read), every column as arrays that decode without a Python loop per
    element (chunk_columns)."""
    aggregates, outs = chunk_columns(columns)
    numbered, chunk = scoring.chunked(query, rows)
    grouped = exp.select(*aggregates).from_(numbered).group_by(chunk)
    return exp.select(*outs).from_(grouped.subquery("chunks"))


def chunk_columns(
    columns: Sequence[tuple[str | exp.Expr, int]],
) -> tuple[list[exp.Expr], list[exp.Expr]]:
    """The aggregates over a chunk's rows ``q``, and what the chunk query returns of them:

    - ``c<i>``: the values, NULLs replaced (``array_replace``); for text, their lengths;
    - ``n<i>``: the NULLs' positions (``array_positions``);
    - ``s<i>``: for text, the values concatenated (``string_agg``).
    """
    aggregates: list[exp.Expr] = []
    outs: list[exp.Expr] = []
    for i, (name, oid) in enumerate(columns):
        ref = exp.column(name, table="q", quoted=True) if isinstance(name, str) else name
        cast = feed_cast(oid)
        if oid in pgtypes.TEMPORAL:
            ref = _temporal_feed(oid, ref)
        elif cast is not None:
            ref = exp.cast(ref, exp.DataType.build(cast, dialect="postgres"))
        # no ORDER BY inside the aggregates: every aggregate of a group sees its rows in the
        # same order, so the columns stay aligned (an ORDER BY per column cost a sort per column)
        a = exp.column(f"a{i}", quoted=True)
        if fed_oid(oid) in TEXT_TYPES:
            lengths = exp.Anonymous(this="length", expressions=[ref])
            aggregates.append(exp.alias_(exp.ArrayAgg(this=lengths), f"a{i}", quoted=True))
            joined = exp.Anonymous(this="string_agg", expressions=[ref, exp.Literal.string("")])
            aggregates.append(exp.alias_(joined, f"s{i}", quoted=True))
            outs.append(exp.alias_(exp.column(f"s{i}", quoted=True), f"s{i}"))
            filler: exp.Expr = exp.cast(exp.Literal.number(0), exp.DataType.build("INT"))
        else:
            aggregates.append(exp.alias_(exp.ArrayAgg(this=ref), f"a{i}", quoted=True))
            sql_type, zero = FIXED_SQL[fed_oid(oid)]
            filler = exp.cast(
                exp.false() if zero == "false" else exp.Literal.number(zero),
                exp.DataType.build(sql_type, dialect="postgres"),
            )
        replaced = exp.Anonymous(this="array_replace", expressions=[a, exp.null(), filler])
        positions = exp.Anonymous(this="array_positions", expressions=[a.copy(), exp.null()])
        outs.append(exp.alias_(exp.Anonymous(this="array_send", expressions=[replaced]), f"c{i}"))
        outs.append(exp.alias_(exp.Anonymous(this="array_send", expressions=[positions]), f"n{i}"))
    return aggregates, outs


# -- what the function bodies call ----------------------------------------------------------------

_session: Session | None = None


def session(plpy: Any) -> Session:
    """One Session per backend (its plan and graph caches live as long as the backend)."""
    global _session
    if _session is None:
        _session = Session(PlpyEngine(plpy), progress=plpy.notice)
        _session.store = privileges.OwnedStore(_session.engine, plpy)
    return _session


def call(plpy: Any, function: Callable[..., Any], *args: Any) -> Any:
    """Runs ``function(plpy, *args)``; a sqlml error leaves as plpy.error with its SQLSTATE."""
    try:
        return function(plpy, *args)
    except errors.Error as e:
        # only the fields that are set: plpy.error(detail=None) sends the text "None"
        fields = {"detail": e.detail, "hint": e.hint}
        message = f"sqlml {e.sqlstate}: {e.message}" if _sqlstate_in_message(plpy) else e.message
        plpy.error(message, sqlstate=e.sqlstate, **{k: v for k, v in fields.items() if v})
    return None  # not reached: plpy.error raises


def _sqlstate_in_message(plpy: Any) -> bool:
    """Whether the session asked for SQLSTATEs in messages (SET sqlml.sqlstate_in_message:
    a custom setting of the server; grammar/settings.py). Read when an error is raised only."""
    try:
        found = plpy.execute(settings.CURRENT)
    except plpy.SPIError:  # (a transaction that cannot run even this: as by default)
        return False
    return settings.is_on(found[0]["v"])


def execute(plpy: Any, statement: str) -> str:
    """One sqlml statement (CREATE MODEL, DROP MODEL) run in the server; returns its tag."""
    from sqlml import grammar

    parsed = grammar.parse(statement, "postgres")
    if not isinstance(parsed, CreateModel | DropModel | AlterModel):
        raise errors.FeatureNotSupported(
            "sqlml.execute runs CREATE MODEL, DROP MODEL and ALTER MODEL; score with the model's"
            " function (see sqlml.model_functions) or through sqlml.connect"
        )
    return _run(plpy, parsed).status


def _run(plpy: Any, statement: CreateModel | DropModel | AlterModel) -> Result:
    current = session(plpy)
    if isinstance(statement, CreateModel):  # before training: the lock and the 42501 check
        privileges.check_create(plpy, current.store, statement.model)
    result = current.run(statement)
    schema, name = current.store.resolve(statement.model)
    if isinstance(statement, CreateModel | AlterModel):  # (the serving version may be another)
        _publish_serving(plpy, current, statement.model.model)
    elif result.rowcount and statement.model.version is None:
        privileges.as_owner(plpy, lambda: unpublish(plpy, (schema, name)))
    return result


def _publish_serving(plpy: Any, current: Session, ref: ModelRef) -> None:
    """The serving version's functions, and EXECUTE on them for its USAGE holders."""
    schema, name = current.store.resolve(ref)
    version = current.store.load(ref)

    def published() -> None:  # the function lives in schema sqlml: the owner's rights
        publish(plpy, version)
        privileges.apply_grants(plpy, schema, name)

    privileges.as_owner(plpy, published)


def import_model(plpy: Any, statement: str, graph: bytes | None) -> int | None:
    """sqlml.import_model: ``CREATE [OR REPLACE] MODEL m [INPUT (...)] [OUTPUT (...)] OPTIONS
    (model_type = 'onnx' [, model_path = ...])`` with the graph's bytes as an argument, read by
    the client (sqlml.connect, the gateway) and never from this server's files (model_path, if
    given, is recorded only). The graph is checked (ml/imported.py) and stored like a trained
    version in the caller's transaction, with the rights of the caller's role: CREATE on the
    schema for a new model, MANAGE to replace one (as CREATE MODEL). Returns the version now
    serving (NULL: IF NOT EXISTS found the model)."""
    from sqlml import byom, grammar

    parsed = grammar.parse(statement, "postgres")
    if not isinstance(parsed, CreateModel) or parsed.query is not None:
        raise errors.FeatureNotSupported(
            "sqlml.import_model runs CREATE MODEL ... OPTIONS (model_type = 'onnx') only",
            hint="train with sqlml.execute or sqlml.create_model",
        )
    if graph is None:
        raise errors.InvalidParameterValue(
            "sqlml.import_model: graph is NULL (the ONNX file's bytes)"
        )
    current = session(plpy)
    privileges.check_create(plpy, current.store, parsed.model)  # the lock, then 42501
    with current.store.writing(parsed.model):
        version = byom.create_model(current, parsed, graph=bytes(graph))
    if version is not None:
        _publish_serving(plpy, current, parsed.model)
    return version


def create_model(
    plpy: Any,
    model: str,
    model_type: str,
    query: str,
    options: str | None,
    transform: str | None,
    replace: bool,
) -> int:
    """The plain-SQL form of CREATE MODEL; returns the version now serving."""
    values = json.loads(options) if options else {}
    if not isinstance(values, dict):
        raise errors.InvalidParameterValue("options must be a JSON object")
    values = {str(k).lower(): _option(v) for k, v in values.items()}
    values["model_type"] = model_type
    statement = CreateModel(
        model=parse_model(model),
        options=values,
        query=Query(query),
        replace=bool(replace),
        transform=_transform(transform) if transform else None,
        transform_sql=transform,
    )
    _run(plpy, statement)
    version = session(plpy).store.current_version(statement.model)
    assert version is not None
    return version


def _option(value: Any) -> Any:
    return tuple(_option(v) for v in value) if isinstance(value, list) else value


def _transform(text: str) -> Any:
    """A TRANSFORM list, parsed by the grammar inside a stand-in statement. 42601 unless the
    list is the whole text: a text that closed the parenthesis early (``a) OPTIONS (...) AS
    ...``) would train on another TRANSFORM than the one stored as its text."""
    from sqlml import grammar

    holder = grammar.parse(
        f"CREATE MODEL t TRANSFORM({text}) OPTIONS (model_type = 'linear_reg') AS SELECT 1",
        "postgres",
    )
    assert isinstance(holder, CreateModel)
    if (holder.transform_sql or "").strip() != text.strip():
        raise errors.SyntaxError("transform must be a list of TRANSFORM columns and nothing else")
    return holder.transform


def parse_model(name: str) -> ModelRef:
    """'schema.model' (identifiers as in SQL: unquoted ones fold to lower case)."""
    try:
        table = exp.to_table(name, dialect="postgres")
    except Exception as e:
        raise errors.SyntaxError(f"not a model name: {name!r}") from e
    if table.catalog or not table.name:
        raise errors.SyntaxError(f"not a model name: {name!r}")

    def fold(identifier: exp.Identifier | None) -> str | None:
        if identifier is None or not identifier.name:
            return None
        return identifier.name if identifier.quoted else identifier.name.lower()

    schema = fold(table.args.get("db"))
    this = fold(table.this)
    assert this is not None
    return ModelRef(schema, this)


def drop_model(plpy: Any, model: str, if_exists: bool) -> bool:
    return _run(plpy, DropModel(parse_model(model), bool(if_exists))).rowcount == 1


def evaluate_json(
    plpy: Any,
    model: str,
    query: str | None,
    threshold: float | None,
    number: int | None = None,
    trial: int | None = None,
) -> str:
    """ML.EVALUATE's one row as a JSON object: stored metrics, or computed on the query's rows;
    of the serving version, or of version ``number``; of its trial ``trial`` (ml/tuning.py)."""
    from sqlml.grammar.statements import Evaluate

    current = session(plpy)
    version = current.store.load(dataclasses.replace(parse_model(model), trial=trial), number)
    call_ = Evaluate(version.ref, Query(query) if query else None, threshold)
    table = current.evaluate(version, call_)
    return json.dumps({k: v[0] for k, v in table.to_pydict().items()})


def ml_sql(plpy: Any, statement: str) -> str:
    """The body of sqlml.ml_sql_plpy(statement): ml_plan's query alone."""
    return str(ml_plan(plpy, statement)["query"])


def ml_query(plpy: Any, statement: str, follow_deploys: bool = False) -> str:
    """The body of sqlml.ml_query(statement [, follow_deploys]): the PostgreSQL query of one
    SELECT with ML calls, its columns as ML.PREDICT's (no jsonb), for a tool that writes SQL
    around it (dbt's sqlml.predict). It logs no prediction sample (sqlml.ml does); ML.EVALUATE,
    which the Session computes rather than renders, is 0A000 here. ``follow_deploys``: the
    query a view over it keeps, calling the model's functions (views.py), so that it scores
    with the version serving when it runs; else the serving version's graph is inlined."""
    _checked(statement)
    rendered = session(plpy).ml_plan(statement, view=follow_deploys)
    if rendered is None:
        raise errors.FeatureNotSupported(
            "sqlml.ml_query renders queries of ML.PREDICT, ML.SCORE and the inspection"
            " functions; ML.EVALUATE runs in sqlml.ml",
            hint="SELECT * FROM sqlml.ml('SELECT * FROM ML.EVALUATE(MODEL ...)')",
        )
    return rendered.sql


def ml_plan(plpy: Any, statement: str) -> dict[str, Any]:
    """The body of sqlml.ml_plan_plpy(statement), which sqlml.ml(statement) runs: one SELECT
    with ML calls (ML.WEIGHTS, ML.PREDICT, ...) rendered by the server's Session into
    PostgreSQL's own SQL, each row as one jsonb object (column name -> value), and the
    statements that log its ML.PREDICT samples (predlog.py; ``shadows``: for each, the shadow
    version it scores, or NULL). The plpgsql sqlml.ml runs the query with the caller's rights
    (RETURN QUERY EXECUTE: the rows never pass through Python, and PostgreSQL converts every
    value), then the log statements in the caller's transaction where it can write.

    The jsonb query is built around the statement's tree (_as_jsonb) before it is rendered, so
    the rendered SQL (megabytes for some compiled models) is neither parsed again nor joined
    to other text."""
    _checked(statement)
    current = session(plpy)
    rendered = current.ml_plan(statement, outer=_as_jsonb)
    if rendered is None:  # ML.EVALUATE, which the Session computes rather than renders
        return {"query": _evaluated(current, statement), "logs": None, "shadows": None}
    logs, shadows = [], []
    for log in rendered.logs:  # (a typed table's CALL first: made where it is missing)
        for sql in (log.create, log.sql) if log.create else (log.sql,):
            logs.append(sql)
            shadows.append(log.shadow)
    return {"query": rendered.sql, "logs": logs or None, "shadows": shadows or None}


def _as_jsonb(query: exp.Expression) -> exp.Expression:
    """SELECT pg_catalog.to_jsonb("__sqlml_row".*) FROM (query) AS "__sqlml_row"."""
    row = exp.Column(this=exp.Star(), table=exp.to_identifier(_ROW_ALIAS, quoted=True))
    function = exp.Anonymous(this="to_jsonb", expressions=[row])
    to_jsonb = exp.Dot(this=exp.to_identifier("pg_catalog"), expression=function)
    alias = exp.TableAlias(this=exp.to_identifier(_ROW_ALIAS, quoted=True))
    return exp.select(to_jsonb).from_(exp.Subquery(this=query, alias=alias), copy=False)


_ROW_ALIAS = "__sqlml_row"


@functools.lru_cache(maxsize=256)
def _checked(statement: str) -> bool:
    """The statement's text parsed and checked (_check_plain_ml), once per backend: the grammar
    alone decides, so a text that passed passes again (a failure raises and is not kept)."""
    from sqlml import grammar

    _check_plain_ml(grammar.parse(statement, "postgres"))  # 42601 with the position
    return True


def _check_plain_ml(parsed: Statement) -> None:
    """0A000 for what sqlml.ml does not run: statements other than one query with ML calls
    (sqlml.execute runs CREATE and DROP MODEL), SELECT ... INTO, and ML.EVALUATE beside other
    ML calls (its row is computed here, the others rendered by the Session: _evaluated)."""
    if not isinstance(parsed, MLQuery):
        raise errors.FeatureNotSupported(
            "sqlml.ml runs one SELECT with ML functions (ML.PREDICT, ML.WEIGHTS, ...);"
            " CREATE MODEL and DROP MODEL run with sqlml.execute, other SQL runs as it is"
        )
    template = parsed.template
    if not isinstance(template, exp.Query) or template.args.get("into") is not None:
        raise errors.FeatureNotSupported(
            "sqlml.ml runs SELECT statements only: write its rows with INSERT ... SELECT"
            " FROM sqlml.ml(...) or CREATE TABLE ... AS"
        )
    evaluates = [isinstance(call, Evaluate) for call in parsed.calls]
    if any(evaluates) and not all(evaluates):
        raise errors.FeatureNotSupported(
            "sqlml.ml runs ML.EVALUATE in a statement without other ML functions",
            hint="run ML.EVALUATE in a statement of its own",
        )


# ML.EVALUATE's and ML.COMPARE's column types (Arrow's name -> BigQuery's)
_BIGQUERY_TYPES = {"int64": "INT64", "string": "STRING", "double": "FLOAT64"}


def _evaluated(current: Session, statement: str) -> str:
    """A statement whose ML calls are all ML.EVALUATE: each one's row computed here (stored
    metrics, or over the query's rows read with the caller's rights, as sqlml.evaluate does),
    then written into the statement as a literal subquery (functions/literal.py)."""
    from sqlml import bigquery, grammar
    from sqlml.functions import Column, literal

    parsed = grammar.parse(statement, "postgres")
    assert isinstance(parsed, MLQuery)
    bigquery.check_paths(parsed, current.engine)
    replacements = []
    for call in parsed.calls:
        assert isinstance(call, Evaluate)
        table = current.evaluate(current.store.load(call.model), call)
        columns = [
            Column(f.name, _BIGQUERY_TYPES.get(str(f.type), "FLOAT64")) for f in table.schema
        ]
        rows = [tuple(r.values()) for r in table.to_pylist()]
        replacements.append(literal.subquery(columns, rows, "postgres"))
    as_jsonb = dataclasses.replace(parsed, template=_as_jsonb(parsed.template))
    return as_jsonb.render(replacements, "postgres")


# -- scoring: the generated SQL function per model, and the runtime batch scorer ------------------

_KIND_TYPES = views.PG_KIND_TYPES


def function_name(plpy: Any, schema: str, name: str) -> str:
    """A model's scoring function's bare name in schema sqlml, from the SQL function
    sqlml.scoring_function_name (sql/postgres/functions.sql): the one definition, which the view
    sqlml.model_functions and the upgrade use too. Unambiguous for every pair of names and never
    over PostgreSQL's 63 bytes (docs/postgres.md)."""
    plan = plpy.prepare("SELECT sqlml.scoring_function_name($1, $2)::text AS f", ["text", "text"])
    return str(plpy.execute(plan, [schema, name])[0]["f"])


def predict_function_name(plpy: Any, schema: str, name: str) -> str:
    """A model's prediction function's bare name (sqlml.predict_function_name, functions.sql)."""
    plan = plpy.prepare("SELECT sqlml.predict_function_name($1, $2)::text AS f", ["text", "text"])
    return str(plpy.execute(plan, [schema, name])[0]["f"])


def _qualified(function: str) -> str:
    return exp.table_(exp.to_identifier(function, quoted=True), db="sqlml", quoted=True).sql(
        dialect="postgres"
    )


def _max_arguments(plpy: Any) -> int:
    """The server's FUNC_MAX_ARGS (100 unless PostgreSQL was built otherwise)."""
    return int(plpy.execute("SELECT current_setting('max_function_args')::int AS n")[0]["n"])


def publish(plpy: Any, version: ModelVersion) -> None:
    """(Re)creates the model's SQL scoring function: ML.SCORE's value as one native expression,
    inlined by the planner. STABLE, not IMMUTABLE: a new version changes its results. A model
    with more inputs than a function takes arguments gets none (ML.PREDICT serves it). A function
    with the same arguments and type is replaced in place: views that call it (CREATE VIEW over
    ML.PREDICT or ML.SCORE, sqlml/views.py) keep it and score with the new version."""
    if not scoring.compilable(version, "postgres") or any(c.path for c in version.inputs):
        # (a STRUCT or ARRAY feature: no function yet, its arguments would be the expanded
        # fields and elements, which the view rewriting does not pass; ML.PREDICT serves it)
        unpublish(plpy, (version.schema, version.name))
        return
    if len(version.inputs) > _max_arguments(plpy):
        plpy.notice(
            f"{version.ref} has {len(version.inputs)} inputs, more than a PostgreSQL function"
            " takes: it has no scoring function (score it with ML.PREDICT)"
        )
        return
    raw = scoring.compiled_outputs(version, None, "postgres")
    body = exp.select(scoring.score_expression(version, raw).as_("score"))
    function = function_name(plpy, version.schema, version.name)
    _create(plpy, version, function, _return_type(version), body)
    predict = predict_function_name(plpy, version.schema, version.name)
    if views.pg_has_predict_function(version):
        # SETOF (one row): PostgreSQL inlines a set-returning SQL function called in FROM, so
        # the view's LATERAL call plans the body as a subquery (expressions set up once, not
        # per row as for a scalar function with a FROM clause: 15x slower)
        returns = views.pg_predict_returns(version)
        _create(plpy, version, predict, returns, views.pg_predict_body(version), setof=True)
    else:
        _drop_named(plpy, predict)  # a regressor's view calls the scoring function


def _create(
    plpy: Any,
    version: ModelVersion,
    function: str,
    returns: str,
    body: exp.Expr,
    setof: bool = False,
) -> None:
    """CREATE OR REPLACE FUNCTION sqlml."function"(the model's inputs) RETURNS [SETOF] returns,
    after dropping the overloads it cannot replace (_drop_others)."""
    _drop_others(plpy, function, [_KIND_TYPES[c.kind] for c in version.inputs], returns, setof)
    target = _qualified(function)
    params = ", ".join(
        f"{exp.to_identifier(c.name, quoted=True).sql(dialect='postgres')} {_KIND_TYPES[c.kind]}"
        for c in version.inputs
    )
    # the body as one quoted string literal (a dollar-quote tag could occur in a label)
    body_sql = exp.Literal.string(body.sql(dialect="postgres")).sql(dialect="postgres")
    comment = f"sqlml model {version.ref} version {version.version}"
    plpy.execute(
        f"CREATE OR REPLACE FUNCTION {target}({params}) RETURNS {'SETOF ' if setof else ''}"
        f"{returns} {'ROWS 1 ' if setof else ''}LANGUAGE sql STABLE"
        f" PARALLEL SAFE AS {body_sql}"
    )
    plpy.execute(
        f"COMMENT ON FUNCTION {target}({', '.join(_KIND_TYPES[c.kind] for c in version.inputs)})"
        f" IS {exp.Literal.string(comment).sql(dialect='postgres')}"
    )


def _drop_others(
    plpy: Any, function: str, arguments: list[str], returns: str, setof: bool = False
) -> None:
    """Drops the overloads of ``function`` that CREATE OR REPLACE cannot replace: other
    arguments, or another return type (2BP01 while a view calls one: as for a column type)."""
    plan = plpy.prepare(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc p"
        " WHERE p.pronamespace = 'sqlml'::regnamespace AND p.proname = $1::name"
        " AND (p.prorettype <> $3::regtype OR p.proretset <> $4"
        " OR p.proargtypes <> (SELECT coalesce("
        "string_agg(t::regtype::oid::text, ' ' ORDER BY o), '')::oidvector"
        " FROM unnest($2::text[]) WITH ORDINALITY AS u(t, o)))",
        ["text", "text[]", "text", "boolean"],
    )
    for row in plpy.execute(plan, [function, arguments, returns, setof]):
        plpy.execute(f"DROP FUNCTION {row['f']}")  # regprocedure's text is quoted SQL


def _return_type(version: ModelVersion) -> str:
    """The scoring function's return type: ML.SCORE's value's, as the model's kind says."""
    return scoring.model_kind(version).pg_score_type(version)


def unpublish(plpy: Any, ref: tuple[str, str]) -> None:
    """Drops every overload of the model's scoring and prediction functions."""
    _drop_named(plpy, function_name(plpy, *ref))
    _drop_named(plpy, predict_function_name(plpy, *ref))


def _drop_named(plpy: Any, function: str) -> None:
    for signature in _signatures(plpy, function):
        plpy.execute(f"DROP FUNCTION {signature}")  # regprocedure's text is quoted SQL


def _signatures(plpy: Any, function: str) -> list[str]:
    plan = plpy.prepare(
        "SELECT p.oid::regprocedure::text AS f FROM pg_proc p"
        " WHERE p.pronamespace = 'sqlml'::regnamespace AND p.proname = $1::name",
        ["text"],
    )
    return [row["f"] for row in plpy.execute(plan, [function])]


def upgrade_scoring_functions(plpy: Any) -> int:
    """Brings the models' scoring functions of an older install to today's names (``sqlml
    install`` calls it). The old name was ``schema.model`` cut to 63 bytes: when exactly one
    model had it, its function is renamed (dependent views and grants stay); when several did,
    whose body it holds is unknown (the last CREATE won), so it is dropped. Then every model
    without a function gets one; a model that cannot be loaded (corrupted) is left with a
    WARNING, never fails the install. Returns how many functions it renamed or created."""
    models = plpy.execute(
        "SELECT schema_name, model_name,"
        " sqlml.scoring_function_name(schema_name, model_name)::text AS wanted,"
        " (schema_name || '.' || model_name)::name::text AS old FROM sqlml.models"
    )
    claimants: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        claimants.setdefault(model["old"], []).append(model)
    changed = 0
    for old, owners in claimants.items():
        if len(owners) == 1 and owners[0]["wanted"] == old:
            continue
        signatures = _signatures(plpy, old)
        if len(owners) == 1 and len(signatures) == 1 and not _signatures(plpy, owners[0]["wanted"]):
            target = exp.to_identifier(owners[0]["wanted"], quoted=True).sql(dialect="postgres")
            plpy.execute(f"ALTER FUNCTION {signatures[0]} RENAME TO {target}")
            changed += 1
        elif len(owners) > 1:
            _drop_named(plpy, old)
    for model in models:
        pair = (model["schema_name"], model["model_name"])
        scores = bool(_signatures(plpy, model["wanted"]))
        if scores and _signatures(plpy, predict_function_name(plpy, *pair)):
            continue
        ref = ModelRef(*pair)
        try:
            version = session(plpy).store.load(ref)
            if scores and not views.pg_has_predict_function(version):
                continue  # a regressor has no prediction function
            publish(plpy, version)
        except errors.Error as e:
            plpy.warning(f"no scoring function for {ref}: {e.message}")
            continue
        changed += 1 if _signatures(plpy, model["wanted"]) else 0
    return changed


# by sha256: the graph, its inputs and its raw outputs (its kind's); bounded like the scorer cache
_graphs: dict[str, tuple[bytes, list[Any], tuple[str, ...]]] = {}
_GRAPHS = 64


def score_batch(plpy: Any, sha: str, columns: Sequence[bytes]) -> list[float]:
    """Runtime scoring of one chunk: each feature one ``array_send`` bytea, in the model's input
    order; returns the raw outputs flattened output by output (all rows of output 0, then 1...).
    One onnxruntime session per backend and graph: the graph's sha256 is the cache key, so a
    new version is a new key and nothing stale is ever served."""
    privileges.require_graph(plpy, sha)  # the cache below is the backend's, not the role's
    if sha not in _graphs:
        _graphs[sha] = _load_graph(plpy, sha)
        while len(_graphs) > _GRAPHS:
            _graphs.pop(next(iter(_graphs)))
    onnx, inputs, raw = _graphs[sha]
    run = scorer(onnx, inputs, key=sha)
    arrays = [decode_array(c) for c in columns]
    n = len(arrays[0]) if arrays else 0
    outputs = run.run_arrow(arrays, list(raw))
    parts = [np.asarray(v, dtype=np.float64).reshape(n, -1) for v in outputs.values()]
    flat: list[float] = np.hstack(parts).T.reshape(-1).tolist()
    return flat


def _load_graph(plpy: Any, sha: str) -> tuple[bytes, list[Any], tuple[str, ...]]:
    """A graph by its sha256, its bytes checked before they are cached under it: the first
    stored copy that matches (a retrain to the same graph stores a good copy next to a
    corrupted one); XX001 when none does. With its inputs and its raw outputs, which its
    model type's kind names (ml/kinds.py)."""
    from sqlml.ml import kinds, nested

    plan = plpy.prepare(
        "SELECT schema_name, model_name, version, model_type, onnx, inputs FROM sqlml.versions"
        " WHERE onnx_sha256 = $1 ORDER BY version DESC",
        ["text"],
    )
    rows = plpy.execute(plan, [sha])
    if not rows.nrows():
        raise errors.UndefinedModel(f"no model version has graph {sha}")
    for row in rows:
        onnx = bytes(row["onnx"])
        if hashlib.sha256(onnx).hexdigest() == sha:
            inputs = [nested.from_json(c) for c in json.loads(row["inputs"])]
            kind = kinds.kind(models.get(row["model_type"]).kind)
            return onnx, inputs, kind.raw_outputs
    first = rows[0]
    raise errors.CorruptedModel(
        f'model "{first["schema_name"]}.{first["model_name"]}" version {first["version"]} is'
        " corrupted: its ONNX bytes do not match their sha256",
        hint="retrain it with CREATE OR REPLACE MODEL",
    )
