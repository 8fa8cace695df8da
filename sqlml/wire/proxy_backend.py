"""The Backend of the gateway's PostgreSQL proxy (proxy.py): the connection to PostgreSQL, and
over it, from the first ML statement on, a sqlml engine session (upstream.UpstreamEngine), so that
what the proxy does not send to the server (CREATE MODEL, ML.EVALUATE, an EXECUTE of an ML query
the session prepared: prepared.py) runs on the client's own connection, in its transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp

from sqlml import engine, errors, prepared
from sqlml import trainings as trainings_
from sqlml.engines import pgtypes
from sqlml.engines.base import Result
from sqlml.wire.backends import is_query
from sqlml.wire.session import CopyTarget
from sqlml.wire.upstream import Attach, Connection, Target, UpstreamEngine


class ProxyBackend:
    """The Backend of a proxy session: the connection to PostgreSQL and, from the first ML
    statement on, a sqlml engine session over it."""

    def __init__(
        self,
        target: Target,
        allow_trust: bool = False,
        databases: Mapping[str, str] | None = None,
        file_access: bool = False,
        trainings: trainings_.Slots | None = None,
    ) -> None:
        self.target = target
        self.trainings = trainings  # the gateway's training slots (--max-concurrent-trainings)
        # --allow-file-access: ONNX imports and exports use the gateway host's files (byom.py)
        self.file_access = file_access
        # a client off loopback may be let in when PostgreSQL asks it no password (identity.py)
        self.allow_trust = allow_trust
        # database names the clients give, mapped to the server's (pgbouncer's [databases]);
        # any other name goes to the server as the client gave it
        self.databases = dict(databases or {})
        self._connection: Connection | None = None
        self._ml: engine.Session | None = None
        self.progress: Callable[[str], None] | None = None

    def connect(self, startup: Mapping[str, str], attach: Attach | None = None) -> Connection:
        """Opens the connection and sends ``startup``; the caller drives the login."""
        self._connection = Connection(self.target, startup, attach)
        return self._connection

    @property
    def connection(self) -> Connection:
        assert self._connection is not None, "connect() first"
        return self._connection

    @property
    def ml(self) -> engine.Session:
        if self._ml is None:
            upstream = UpstreamEngine(self.connection, file_access=self.file_access)
            self._ml = engine.Session(upstream, progress=self._progress)
            self._ml.trainings = self.trainings
        return self._ml

    def _progress(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        return self.ml.execute_one(sql, params)

    def keeps_prepared(self) -> bool:
        return self._ml is not None and bool(self._ml.prepared)

    def describe(self, sql: str, param_count: int) -> pa.Schema | None:
        if self.keeps_prepared():
            found = prepared.describe(self.ml, sql)  # (an EXECUTE of a prepared ML query)
            if found is not None:
                return found
        if not is_query(sql):
            return None  # CREATE MODEL, DROP MODEL: commands
        # ML.EVALUATE, SHOW MODELS: their columns are known once they run (NULL parameters)
        table = self.execute(sql, [None] * param_count if param_count else None).table
        return table.schema if table is not None else None

    def parameter_types(self, sql: str, declared: Sequence[int]) -> tuple[int, ...]:
        # ML commands take no parameters (the engine refuses them with 0A000); text as PostgreSQL
        # reports an unknown type it could not resolve
        return tuple(oid or pgtypes.TEXT for oid in declared)

    def cursor_exists(self, name: str) -> bool:
        return False  # cursors are the server's: DECLARE, FETCH and Describe go there

    def describe_cursor(self, name: str) -> pa.Schema:
        raise errors.from_sqlstate("34000", f'cursor "{name}" does not exist')

    def copy_in(self, table: exp.Table, columns: Sequence[str]) -> CopyTarget:
        raise errors.InternalError("COPY goes to PostgreSQL itself in proxy mode")

    def in_transaction(self) -> bool:
        return self._connection is not None and self._connection.status != "I"

    def cancel(self) -> None:
        if self._connection is not None:
            self._connection.cancel()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
