"""What stands behind the gateway for one client session: an engine and its catalog emulation.

DuckDB: each client session gets its own sqlml Session on its own DuckDB connection to the
shared database file (DuckDB shares one database instance between connections of a process),
and a Catalog that makes PostgreSQL-dialect SQL and the catalog queries clients send run on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from sqlml import engine, grammar
from sqlml.engines.base import Result
from sqlml.engines.duckdb import DuckDBEngine
from sqlml.wire.catalog import Catalog

# statements that return rows; anything else is described as a command (NoData) without running
_QUERY_HEAD = re.compile(r"\s*\(*\s*(SELECT|WITH|VALUES|TABLE|FROM|SHOW)\b", re.IGNORECASE)


class DuckDBBackend:
    def __init__(self, database: str, dbname: str, user: str) -> None:
        self.engine = DuckDBEngine(database)
        self.session = engine.Session(self.engine)
        self.catalog = Catalog(self.engine.con, database=dbname, user=user)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        result = Result(None, -1, "")
        for statement in self.catalog.rewrite(sql):
            result = _command(statement, self.session.execute_one(statement, params))
        return result

    def describe(self, sql: str, param_count: int) -> pa.Schema | None:
        if not _QUERY_HEAD.match(sql):
            return None
        statements = self.catalog.rewrite(sql)
        if len(statements) != 1 or not _QUERY_HEAD.match(statements[0]):
            return None
        params = [None] * param_count if param_count else None
        query = statements[0]
        if not grammar.may_be_ml(query):
            query = engine.zero_rows(query, "duckdb")
        # else ML.PREDICT and friends: their columns come from the model, and the stock
        # grammar cannot nest them under a LIMIT 0; the query runs (a SELECT, NULL parameters)
        table = self.session.execute_one(query, params).table
        return table.schema if table is not None else None

    def in_transaction(self) -> bool:
        return self.engine.in_transaction()

    def cancel(self) -> None:
        self.engine.interrupt()

    def close(self) -> None:
        self.engine.close()


def _command(sql: str, result: Result) -> Result:
    """DuckDB answers BEGIN, SET and the like with a one-column table ('Success'); on the wire
    a command has a tag and no rows."""
    table = result.table
    if table is None or _QUERY_HEAD.match(sql):
        return result
    if table.column_names not in (["Success"], ["Count"]):
        return result
    return Result(None, result.rowcount if table.column_names == ["Count"] else -1, result.status)
