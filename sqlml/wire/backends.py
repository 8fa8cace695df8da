"""What stands behind the gateway for one client session: an engine and its catalog emulation.

DuckDB: each client session gets its own sqlml Session on its own DuckDB connection to the
shared database file (DuckDB shares one database instance between connections of a process),
and a Catalog that makes PostgreSQL-dialect SQL and the catalog queries clients send run on it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from sqlml import engine, errors, grammar
from sqlml.engines.base import Result
from sqlml.engines.duckdb import DuckDBEngine, map_error
from sqlml.wire import infer, types
from sqlml.wire.catalog import Catalog

# statements that return rows; anything else is described as a command (NoData) without running
_QUERY_HEAD = re.compile(r"\s*\(*\s*(SELECT|WITH|VALUES|TABLE|FROM|SHOW)\b", re.IGNORECASE)
_copies = itertools.count(1)  # names of the Arrow views COPY FROM inserts from


class DuckDBBackend:
    def __init__(self, database: str, dbname: str, user: str) -> None:
        self.engine = DuckDBEngine(database)
        self.progress: Callable[[str], None] | None = None  # set by the wire session
        try:
            self.session = engine.Session(self.engine, progress=self._progress)
            self.catalog = Catalog(self.engine.con, database=dbname, user=user)
        except BaseException:  # a failed open must not keep the file open
            self.engine.close()
            raise

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        result = Result(None, -1, "")
        for statement in self.catalog.rewrite(sql):
            result = _command(statement, self.session.execute_one(statement, params))
            if result.table is not None and self.catalog.reads_catalog(statement):
                result = Result(_oid_arrays(result.table), result.rowcount, result.status)
        return result

    def _progress(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def copy_in(self, table: exp.Table, columns: Sequence[str]) -> DuckDBCopyTarget:
        """The target's columns (their Arrow types as DuckDB reads them) and the INSERT that
        appends a registered Arrow batch, both through the catalog (``public`` is ``main``)."""
        names = [exp.to_identifier(c, quoted=True) for c in columns]
        probe = (exp.select(*names) if names else exp.select("*")).from_(table.copy())
        (select,) = self.catalog.rewrite(probe.sql(dialect="postgres"))
        schema = self.engine.schema_of(select)
        view = f"__sqlml_copy_{next(_copies)}"
        source = exp.select("*").from_(exp.Table(this=exp.to_identifier(view, quoted=True)))
        insert = exp.insert(source, table.copy(), columns=names or None)
        (statement,) = self.catalog.rewrite(insert.sql(dialect="postgres"))
        return DuckDBCopyTarget(self.engine, schema, statement, view)

    def describe(self, sql: str, param_count: int) -> pa.Schema | None:
        if not _QUERY_HEAD.match(sql):
            return None
        statements = self.catalog.rewrite(sql)
        if len(statements) != 1 or not _QUERY_HEAD.match(statements[0]):
            return None
        params = [None] * param_count if param_count else None
        query = statements[0]
        if grammar.may_be_ml(query):
            # ML.PREDICT and friends: their columns come from the model, and the stock grammar
            # cannot nest them under a LIMIT 0; the query runs (a SELECT, NULL parameters)
            table = self.session.execute_one(query, params).table
            schema = table.schema if table is not None else None
        else:
            schema = self._columns(query, params)
        if schema is not None and self.catalog.reads_catalog(query):
            schema = _oid_arrays(schema.empty_table()).schema
        return schema

    def _columns(self, query: str, params: list[None] | None) -> pa.Schema | None:
        """The columns of a query, from DuckDB's own plan of it under LIMIT 0 (DuckDB parses
        it: no sqlglot parse, which reads ``IN ($1,$2)`` as a dollar-quoted string); None for a
        statement that is not a query."""
        con = self.engine.con
        try:
            parsed = con.extract_statements(query)
            if len(parsed) != 1 or parsed[0].type != duckdb.StatementType.SELECT:
                return None
            return con.sql(query, params=params).limit(0).to_arrow_table().schema
        except duckdb.Error as e:
            raise map_error(e) from e

    def parameter_types(self, sql: str, declared: Sequence[int]) -> tuple[int, ...]:
        return infer.parameter_types(sql, declared, self.catalog.relations)

    def cursor_exists(self, name: str) -> bool:
        return self.catalog.cursor_table(name) is not None

    def describe_cursor(self, name: str) -> pa.Schema:
        table = self.catalog.cursor_table(name)
        if table is None:
            raise errors.from_sqlstate("34000", f'cursor "{name}" does not exist')
        return self.engine.schema_of(exp.select("*").from_(table).sql(dialect="duckdb"))

    def in_transaction(self) -> bool:
        return self.engine.in_transaction()

    def cancel(self) -> None:
        self.engine.interrupt()

    def close(self) -> None:
        self.engine.close()


class DuckDBCopyTarget:
    """COPY FROM STDIN into a DuckDB table: each batch is inserted as it comes, in a
    transaction of the copy's own (or in the client's, whose rollback then takes the rows
    back), so that a copy that fails leaves nothing behind."""

    def __init__(self, engine: DuckDBEngine, schema: pa.Schema, insert: str, view: str) -> None:
        self.schema = schema
        self._engine, self._insert, self._view = engine, insert, view
        self._own = not engine.in_transaction()
        if self._own:
            engine.begin()

    def append(self, batch: pa.RecordBatch) -> None:
        self._engine.register_table(self._view, pa.Table.from_batches([batch]))
        try:
            self._engine.execute(self._insert)
        finally:
            self._engine.unregister_table(self._view)

    def commit(self) -> None:
        if self._own:
            self._engine.commit()

    def abort(self) -> None:
        if self._own and self._engine.in_transaction():
            self._engine.rollback()


def _oid_arrays(table: pa.Table) -> pa.Table:
    """A catalog query's bigint[] columns as oid[]: PostgreSQL's catalogs have no bigint[], and
    the emulation holds oid, oidvector and oid[] as BIGINT (asyncpg reads its type introspection
    query's ``array_agg(atttypid)`` only as oid[], the one integer array it knows unasked)."""
    oids = pa.list_(types.OID_TYPE)
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) and field.type.value_type == pa.int64():
            table = table.set_column(i, field.with_type(oids), table.column(i).cast(oids))
    return table


def _command(sql: str, result: Result) -> Result:
    """DuckDB answers BEGIN, SET and the like with a one-column table ('Success'); on the wire
    a command has a tag and no rows."""
    table = result.table
    if table is None or _QUERY_HEAD.match(sql):
        return result
    if table.column_names not in (["Success"], ["Count"]):
        return result
    return Result(None, result.rowcount if table.column_names == ["Count"] else -1, result.status)
