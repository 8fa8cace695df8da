"""The PostgreSQL engine, client side: a psycopg2 connection to a database where ``sqlml install``
put the extension (see sqlml/postgres/).

Plain SQL goes to the server unchanged. CREATE MODEL and DROP MODEL are sent whole to
``sqlml.execute`` and run by the extension inside the server (the rows never leave it);
ML.PREDICT and ML.SCORE are rewritten here into native PostgreSQL SQL (compiled scoring) or calls
of the extension's batch scorer (runtime); ML.EVALUATE on rows runs in the server. Errors keep
the server's SQLSTATE; NOTICEs (training progress) go to the session's progress callback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa

from sqlml import engines, errors
from sqlml.engines import pgnested
from sqlml.engines.base import Result, rows
from sqlml.engines.pgtypes import (
    COMPOSITES,
    JSON,
    JSONB,
    NUMBER_ARRAYS,
    arrow_type,
    composite_arrow,
)
from sqlml.engines.placeholders import to_format
from sqlml.ml.checkpoints import never


def connect_error(e: psycopg2.Error) -> errors.Error:
    """A failed ``psycopg2.connect``: libpq's own failures carry no SQLSTATE; a connection
    string libpq cannot parse is 22023, a server that cannot be reached or refuses is 08001
    (as PostgreSQL's clients report it), and the server's own refusals keep their code."""
    message = f"cannot connect to PostgreSQL: {e}".strip()
    if e.pgcode:
        return errors.from_sqlstate(e.pgcode, message)
    if isinstance(e, psycopg2.ProgrammingError):
        return errors.InvalidParameterValue(message)
    return errors.from_sqlstate("08001", message)


def map_error(e: psycopg2.Error) -> errors.Error:
    diag = e.diag
    position = int(diag.statement_position) if diag.statement_position else None
    message = diag.message_primary or str(e).strip()
    return errors.from_sqlstate(
        e.pgcode, message, detail=diag.message_detail, hint=diag.message_hint, position=position
    )


class _AsDict(psycopg2.extras.CompositeCaster):
    """One of sqlml's composite types as a dict, as DuckDB returns a struct."""

    def make(self, values: list[Any]) -> dict[str, Any]:
        return dict(zip(self.attnames, values, strict=True))


def result_type(oid: int, nested: dict[int, pa.DataType]) -> pa.DataType:
    """A result column's Arrow type: sqlml's composites, arrays of numbers, then the scalars."""
    return nested.get(oid) or NUMBER_ARRAYS.get(oid) or arrow_type(oid)


def _to_arrow(
    description: Any, rows: list[tuple[Any, ...]], nested: dict[int, pa.DataType]
) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    for i, column in enumerate(description):
        values = [r[i] for r in rows]
        name = column.name
        while name in columns:  # SQL allows duplicate names; Arrow tables need distinct ones
            name += "_"
        if column.type_code in (JSON, JSONB):
            try:  # parsed JSON: lists and objects as Arrow nests
                columns[name] = pa.array(values)
            except (pa.ArrowTypeError, pa.ArrowInvalid):  # (an array of numbers and strings)
                texts = [None if v is None else json.dumps(v) for v in values]
                columns[name] = pa.array(texts, type=pa.string())
            continue
        wanted = result_type(column.type_code, nested)
        if column.type_code in nested or column.type_code in NUMBER_ARRAYS:
            columns[name] = pa.array(values, type=wanted)
            continue
        if pa.types.is_floating(wanted):
            values = [None if v is None else float(v) for v in values]
        elif pa.types.is_string(wanted):
            values = [None if v is None else v if isinstance(v, str) else str(v) for v in values]
        elif pa.types.is_binary(wanted):
            values = [None if v is None else bytes(v) for v in values]
        columns[name] = pa.array(values, type=wanted)
    return pa.table(columns)


class PostgresEngine:
    dialect = "postgres"
    default_schema = "public"
    manages_store = False  # sqlml install creates the store and the extension

    def __init__(self, database: str) -> None:
        try:
            self.con = psycopg2.connect(database)
        except psycopg2.Error as e:
            raise connect_error(e) from e
        self.con.autocommit = True
        self._in_transaction = False
        self.progress: Callable[[str], None] | None = None
        self.nested: dict[int, pa.DataType] = {}  # array type OID -> Arrow (sqlml's composites)
        self._check_installed()

    def _check_installed(self) -> None:
        """Refuses a database without the extension (55000) and reads sqlml's composite types
        (arrays of them come back as lists of dicts)."""
        _, rows, _, _ = self._run(
            "SELECT to_regclass('sqlml.python_modules') IS NOT NULL AS installed,"
            " t.names, t.oids, t.arrays FROM (SELECT array_agg(typname::text) AS names,"
            " array_agg(oid::int8) AS oids, array_agg(typarray::int8) AS arrays"
            " FROM pg_catalog.pg_type WHERE typnamespace = to_regnamespace('sqlml')"
            " AND typtype = 'c') AS t",
            None,
        )
        installed, names, oids, arrays = (rows or [])[0]
        if not installed:
            raise errors.from_sqlstate(
                "55000",
                "sqlml is not installed in this database",
                hint="run: sqlml install --database <this database's URL>",
            )
        for name, oid, array_oid in zip(names or [], oids or [], arrays or [], strict=True):
            if name in COMPOSITES:  # (a table's row type is a composite too)
                caster = _AsDict(name, oid, list(COMPOSITES[name]), array_oid, "sqlml")
                psycopg2.extensions.register_type(caster.typecaster, self.con)
                psycopg2.extensions.register_type(caster.array_typecaster, self.con)
                self.nested[array_oid] = composite_arrow(name)

    def _run(
        self, sql: str, params: Sequence[Any] | None
    ) -> tuple[Any, list[Any] | None, int, str]:
        cursor = self.con.cursor()
        try:
            if params:
                cursor.execute(*to_format(sql, params))
            else:
                cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description is not None else None
            return cursor.description, rows, cursor.rowcount, cursor.statusmessage or ""
        except psycopg2.Error as e:
            raise map_error(e) from e
        finally:
            cursor.close()
            self._drain_notices()
            self._track()  # an error inside a transaction leaves it open (aborted) until ROLLBACK

    def _drain_notices(self) -> None:
        notices, self.con.notices[:] = list(self.con.notices), []
        if self.progress is not None:
            for notice in notices:
                self.progress(notice.strip().removeprefix("NOTICE:").strip())

    def _track(self) -> None:
        status = self.con.info.transaction_status
        self._in_transaction = status != psycopg2.extensions.TRANSACTION_STATUS_IDLE

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        description, rows, count, status = self._run(sql, params)
        if description is None:
            tag = status.split(" ", 1)[0] if status else ""
            return Result(None, count, tag)
        table = _to_arrow(description, rows or [], self.nested)
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return rows(self.execute(sql, params))

    def schema_of(self, sql: str) -> pa.Schema:
        from sqlml.engine import zero_rows

        cursor = self.con.cursor()
        try:
            cursor.execute(zero_rows(sql, "postgres"))
            return self._schema(cursor.description)
        except psycopg2.Error as e:
            raise map_error(e) from e
        finally:
            cursor.close()
            self._track()

    def result_columns(self, sql: str) -> list[tuple[str, int]]:
        """The names and type OIDs of the columns of ``sql``'s result (it is run)."""
        description, _, _, _ = self._run(sql, None)
        return [(c.name, int(c.type_code)) for c in description or ()]

    def probe(self, sql: str) -> tuple[pa.Schema, tuple[Any, ...]]:
        description, rows, _, _ = self._run(sql, None)
        if description is None or not rows:
            raise errors.InternalError("a check of a kept ML query returned no row")
        return self._schema(description), tuple(rows[0])

    def _schema(self, description: Any) -> pa.Schema:
        columns = description or ()
        return pa.schema([self._field(c.name, c.type_code) for c in columns])

    def _field(self, name: str, oid: int) -> pa.Field:
        """A result column as an Arrow field; a composite or array column keeps its SQL type's
        name (metadata ``pg_type``) so that ML.PREDICT can pass it through as text and back."""
        arrow = self._type(oid)
        if oid in self.nested or oid == pgnested.RECORD or not pgnested.is_nested(arrow):
            return pa.field(name, arrow)
        names = self._cache("_type_names")  # composite and array OID -> its SQL name
        if oid not in names:
            names[oid] = pgnested.type_name(oid, self._catalog)
        return pa.field(name, arrow, metadata={pgnested.PG_TYPE: names[oid]})

    def _type(self, oid: int) -> pa.DataType:
        """A column type as Arrow; other composites and arrays from the catalog, once per OID
        (the STRUCT and ARRAY features' checks: engines/pgnested.py)."""
        if oid in self.nested:
            return self.nested[oid]
        types = self._cache("_types")  # column type OID -> Arrow, for the feature checks
        if oid not in types:
            found = pgnested.arrow_of(oid, self._catalog)
            types[oid] = found if found is not None else result_type(oid, self.nested)
        return types[oid]

    def _cache(self, name: str) -> dict[int, Any]:
        """A per-connection cache by type OID, made on first use (subclasses, such as the
        gateway's UpstreamEngine, have their own __init__)."""
        return self.__dict__.setdefault(name, {})  # type: ignore[no-any-return]

    def _catalog(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        _, rows, _, _ = self._run(sql, params)
        return list(rows or [])

    def in_transaction(self) -> bool:
        return self._in_transaction

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    # -- ML in the server --------------------------------------------------------------------------

    def run_in_server(self, statement: str) -> Result:
        """A CREATE MODEL or DROP MODEL statement, run by the extension inside the server."""
        table = self.query_arrow("SELECT sqlml.execute(?) AS tag", [statement])
        return Result(None, 0, str(table.column(0)[0].as_py()))

    def import_in_server(self, statement: str, graph: bytes) -> Result:
        """An ONNX import: the graph's bytes as a bytea parameter of ``sqlml.import_model``
        (psycopg2 sends them as an escaped bytea value, never as SQL the server parses as
        statements), checked and stored by the server as this connection's role."""
        self.query_arrow("SELECT sqlml.import_model(?, ?) AS version", [statement, graph])
        return Result(None, 0, "CREATE MODEL")

    def evaluate_in_server(
        self,
        model: str,
        query: str | None,
        threshold: float | None,
        version: int | None = None,
        trial: int | None = None,
    ) -> dict[str, float | None]:
        table = self.query_arrow(
            "SELECT sqlml.evaluate_json(?, ?, ?, ?, ?) AS metrics",
            [model, query, threshold, version, trial],
        )
        value = table.column(0)[0].as_py()
        return dict(json.loads(value) if isinstance(value, str) else value)

    def register_table(self, name: str, table: pa.Table) -> None:
        """A small Arrow table (ML.EVALUATE's one row, ML.COMPARE's few) as a temporary table:
        numbers, integers and text."""
        from sqlglot import exp

        def kind(arrow: pa.DataType) -> str:
            if pa.types.is_integer(arrow):
                return "BIGINT"
            return "TEXT" if pa.types.is_string(arrow) else "DOUBLE PRECISION"

        columns = [
            exp.ColumnDef(
                this=exp.to_identifier(f.name, quoted=True),
                kind=exp.DataType.build(kind(f.type), dialect="postgres"),
            )
            for f in table.schema
        ]
        create = exp.Create(
            this=exp.Schema(this=exp.to_table(name, quoted=True), expressions=columns),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        self.execute(create.sql(dialect="postgres"))
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in table.column_names)]),
            exp.to_table(name, quoted=True),
        )
        for row in table.to_pylist():
            self.execute(insert.sql(dialect="postgres"), list(row.values()))

    def unregister_table(self, name: str) -> None:
        from sqlglot import exp

        drop = exp.Drop(tables=[exp.to_table(name, quoted=True)], kind="TABLE", exists=True)
        self.execute(drop.sql(dialect="postgres"))

    def register_scorer(
        self, key: str, onnx: bytes, inputs: Sequence[Any], outputs: Sequence[str] = ()
    ) -> None:
        pass  # the server's batch scorer loads a version by its graph's sha256

    def interrupt(self) -> None:
        self.con.cancel()

    def checkpoint(self) -> Callable[[], None]:
        return never  # the server trains (sqlml.execute) and checks for a cancel itself

    def close(self) -> None:
        self.con.close()


engines.register("postgresql", PostgresEngine)
engines.register("postgres", PostgresEngine)
