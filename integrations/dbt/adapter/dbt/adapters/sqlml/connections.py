"""dbt-duckdb's connection manager and environment, with sqlml connections for cursors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dbt.adapters.exceptions
from dbt.adapters.contracts.connection import Connection, ConnectionState
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.environments.local import DuckDBConnectionWrapper, LocalEnvironment
from dbt_common.exceptions import DbtRuntimeError

import sqlml
from sqlml import errors

SHARED_MEMORY = ":memory:dbt_sqlml"  # (":memory:" would be a new database for every cursor)


@dataclass
class SqlmlCredentials(DuckDBCredentials):  # type: ignore[misc]
    """dbt-duckdb's profile keys; ``path``: the DuckDB file sqlml opens."""

    @property
    def type(self) -> str:
        return "sqlml"


class SqlmlError(Exception):
    """A sqlml error as dbt shows it: its SQLSTATE first. Not a RuntimeError: dbt-duckdb then
    rolls the transaction back before it reports the node as failed."""

    def __init__(self, error: errors.Error) -> None:
        super().__init__(f"sqlml {error.sqlstate}: {error}")
        self.sqlstate = error.sqlstate


class SqlmlCursor:
    """What dbt-duckdb calls on a DuckDB cursor, over a sqlml connection (autocommit: dbt
    sends BEGIN and COMMIT itself)."""

    def __init__(self, connection: sqlml.Connection) -> None:
        self._connection = connection
        self._cursor = connection.cursor()

    def execute(self, sql: str, bindings: Sequence[Any] | None = None) -> SqlmlCursor:
        try:
            self._cursor.execute(sql, list(bindings) if bindings is not None else None)
        except errors.Error as e:
            raise SqlmlError(e) from e
        return self

    @property
    def description(self) -> list[tuple[Any, ...]] | None:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return self._cursor.fetchmany(size)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def commit(self) -> None:
        self._connection.commit()

    def rollback(self) -> None:
        self._connection.rollback()

    def interrupt(self) -> None:
        self._connection.cancel()

    def close(self) -> None:
        self._connection.close()


class SqlmlEnvironment(LocalEnvironment):  # type: ignore[misc]
    """LocalEnvironment whose handles are sqlml connections to the profile's file."""

    def handle(self) -> DuckDBConnectionWrapper:
        path = self.creds.path if self.creds.path != ":memory:" else SHARED_MEMORY
        try:
            connection = sqlml.connect(path, autocommit=True)
        except errors.Error as e:
            raise SqlmlError(e) from e
        with self.lock:
            self.handle_count += 1
        return DuckDBConnectionWrapper(SqlmlCursor(connection), self)

    def submit_python_job(self, handle: Any, parsed_model: dict[str, Any], code: str) -> Any:
        raise DbtRuntimeError("the sqlml adapter runs SQL models only")


class SqlmlConnectionManager(DuckDBConnectionManager):  # type: ignore[misc]
    TYPE = "sqlml"

    @classmethod
    def open(cls, connection: Connection) -> Connection:
        """DuckDBConnectionManager.open with a SqlmlEnvironment. It is kept where dbt-duckdb
        looks for its environment (DuckDBConnectionManager._ENV: its adapter's methods, seeds'
        binding character among them, ask that class)."""
        if connection.state == ConnectionState.OPEN:
            return connection
        credentials = cls.get_credentials(connection.credentials)
        with cls._LOCK:
            try:
                env = DuckDBConnectionManager._ENV
                if not isinstance(env, SqlmlEnvironment) or env.creds != credentials:
                    DuckDBConnectionManager._ENV = SqlmlEnvironment(credentials)
                connection.handle = DuckDBConnectionManager._ENV.handle()
                connection.state = ConnectionState.OPEN
            except (RuntimeError, SqlmlError) as e:
                connection.handle = None
                connection.state = ConnectionState.FAIL
                raise dbt.adapters.exceptions.FailedToConnectError(str(e)) from e
        return connection
