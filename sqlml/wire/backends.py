"""What stands behind the gateway for one client session: an engine and its catalog emulation.

DuckDB: each client session gets its own sqlml Session on its own DuckDB connection to the
shared database file (DuckDB shares one database instance between connections of a process),
and a Catalog that makes PostgreSQL-dialect SQL and the catalog queries clients send run on it.

Security (docs/gateway.md, "Security"). ``file_access=False`` locks the database instance down
(engines.duckdb.lock_down): no client reads or writes the server's files, attaches a database
file or loads an extension, and the configuration is frozen. That switch is DuckDB's and is
instance-wide (``sqlml serve --allow-file-access`` turns it off for everyone). Per user
(``files=allow`` in the users file), ``per_user=True``: the instance keeps external access on
with its configuration locked (engines.duckdb.lock_configuration), and every statement the
engine of a user without ``file_access`` runs is checked first by wire/file_policy.py (DuckDB's
own plan of it; 42501 for a file function, a COPY to a file, ATTACH, ...); no user can LOAD or
INSTALL an extension then (extensions belong to the instance).

A ``read_only`` session runs only statements that DuckDB's own parser calls
queries, transaction control or SET, and of sqlml's, the ML queries and SHOW MODELS; anything
else is refused with 42501 before it runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from sqlml import engine, errors, grammar, prepared
from sqlml import trainings as trainings_
from sqlml.engines.base import Result
from sqlml.engines.duckdb import DuckDBEngine, map_error
from sqlml.grammar import lexer
from sqlml.grammar.statements import CreateModel, DropModel, MLCall, MLQuery, Score, ShowModels
from sqlml.wire import auth, colnames, file_policy, infer, tags, types
from sqlml.wire.catalog import MOVED, Catalog

# statements that return rows; anything else is described as a command (NoData) without running
_QUERY_WORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW"})
_copies = itertools.count(1)  # names of the Arrow views COPY FROM inserts from


def is_query(sql: str) -> bool:
    """Whether ``sql`` is a statement that returns rows (by its first word, after any ``(``)."""
    return lexer.first_word(sql, after_parens=True) in _QUERY_WORDS


# What a read-only user may run, as DuckDB's parser classifies statements (SHOW, DESCRIBE and
# SUMMARIZE are SELECTs). Not EXPLAIN (EXPLAIN ANALYZE runs its statement), CALL, PRAGMA or
# PREPARE/EXECUTE (the wire's extended protocol is the session's own, not DuckDB's PREPARE).
_READ_ONLY = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.TRANSACTION, duckdb.StatementType.SET}
)


class DuckDBBackend:
    def __init__(
        self,
        database: str,
        dbname: str,
        user: str,
        *,
        file_access: bool = True,  # False: no file access for this user (see the docstring)
        per_user: bool = False,  # file access is per user: checked here, not by DuckDB
        read_only: bool = False,  # the user's role (users file): only reads, 42501 otherwise
        trainings: trainings_.Slots | None = None,  # the gateway's (--max-concurrent-trainings)
    ) -> None:
        self.engine = DuckDBEngine(
            database, external_access=file_access or per_user, lock_configuration=per_user
        )
        self.read_only, self.file_access = read_only, file_access
        self.locked = per_user or not file_access  # the instance's configuration is locked
        self.per_user = per_user
        self.progress: Callable[[str], None] | None = None  # set by the wire session
        self.policy: file_policy.FilePolicy | None = None
        try:
            self.session = engine.Session(self.engine, progress=self._progress)
            self.session.store.role = user  # the audit trail names the client, not the gateway
            self.session.logs_predictions = not read_only  # (a read-only role writes nothing)
            self.session.trainings = trainings
            self.catalog = Catalog(self.engine.con, database=dbname, user=user)
            if per_user and not file_access:
                self.policy = file_policy.FilePolicy(self.engine)
                self.engine.guard = self.policy.check
        except BaseException:  # a failed open must not keep the file open
            self.engine.close()
            raise

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        result = Result(None, -1, "")
        for statement in self.catalog.rewrite(sql):
            if self.read_only:
                self._check_read(statement)
            if self.per_user and self.file_access:  # (extensions belong to the instance)
                self._check_no_load(statement)
            result = _command(statement, self._execute_one(statement, params))
            if result.table is not None and self.catalog.reads_catalog(statement):
                result = Result(_oid_arrays(result.table), result.rowcount, result.status)
        if lexer.first_word(sql) == "EXECUTE":
            result = self._executed(sql, result)
        if result.table is not None and result.table.column_names == [MOVED]:
            result = Result(None, result.table.column(0)[0].as_py(), "")  # MOVE's count
        if result.table is not None:
            source = prepared.query(self.session, sql) or self.catalog.names_source(sql)
            names = _named(source, result.table.schema).names
            result = Result(result.table.rename_columns(names), result.rowcount, result.status)
        return result

    def _executed(self, sql: str, result: Result) -> Result:
        """SQL's ``EXECUTE name``: tagged as the statement it runs (``INSERT 0 1``, not EXECUTE)."""
        words = lexer.head(sql, 2)
        statement = self.catalog.prepared(words[1]) if len(words) > 1 else None
        if statement is None:
            return result
        rows = result.table.num_rows if result.table is not None else result.rowcount
        return Result(result.table, result.rowcount, tags.command_tag(statement, rows))

    def _execute_one(self, statement: str, params: Sequence[Any] | None) -> Result:
        try:
            return self.session.execute_one(statement, params)
        except errors.DataError as e:
            # DuckDB refuses a SET on a locked configuration with its generic "invalid input"
            # class: on a locked instance that is the lock, PostgreSQL's "permission denied to
            # set parameter" (42501)
            locked = self.locked and isinstance(e.__cause__, duckdb.InvalidInputException)
            if locked and duckdb.StatementType.SET in self._statement_types(statement):
                raise errors.InsufficientPrivilege(
                    f"permission denied to set this parameter: {e}",
                    hint="the gateway's configuration is locked (sqlml serve without"
                    " --allow-file-access)",
                ) from e
            raise

    def _check_no_load(self, statement: str) -> None:
        """42501 for LOAD and INSTALL under per-user file access, for the users allowed files
        too: an extension is loaded for every connection of the instance, and its functions
        are not in the file policy's allowlist (only --allow-file-access allows them)."""
        if grammar.is_ml(statement):
            return
        try:
            kinds = self._statement_types(statement)
        except errors.InsufficientPrivilege as e:  # (UPDATE EXTENSIONS: a kind without a name)
            raise _no_extensions() from e
        if duckdb.StatementType.LOAD in kinds:
            raise _no_extensions()

    def _check_read(self, statement: str) -> None:
        """42501 unless a read-only user may run ``statement`` (a rewritten, DuckDB one)."""
        if grammar.is_ml(statement):
            parsed = grammar.parse(statement, "duckdb")
            if isinstance(parsed, ShowModels):
                return
            if isinstance(parsed, CreateModel | DropModel):
                raise _denied("CREATE MODEL" if isinstance(parsed, CreateModel) else "DROP MODEL")
            if isinstance(parsed, MLQuery):  # what runs around the calls: a query, or not
                statement = parsed.render([_stand_in(call) for call in parsed.calls], "duckdb")
        kinds = self._statement_types(statement)
        refused = [kind for kind in kinds if kind not in _READ_ONLY]
        if refused or not kinds:
            raise _denied(refused[0].name if refused else "this statement")

    def _statement_types(self, statement: str) -> list[duckdb.StatementType]:
        try:
            return [parsed.type for parsed in self.engine.con.extract_statements(statement)]
        except duckdb.Error as e:
            raise map_error(e) from e
        except ValueError as e:  # a statement type this duckdb module does not name
            raise _denied("this statement") from e

    def _progress(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def copy_in(self, table: exp.Table, columns: Sequence[str]) -> DuckDBCopyTarget:
        """The target's columns (their Arrow types as DuckDB reads them) and the INSERT that
        appends a registered Arrow batch, both through the catalog (``public`` is ``main``)."""
        if self.read_only:
            raise _denied("COPY FROM STDIN")
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
        if not is_query(sql):
            return None
        statements = self.catalog.rewrite(sql)
        if len(statements) != 1 or not is_query(statements[0]):
            return None
        params = [None] * param_count if param_count else None
        query = statements[0]
        if grammar.is_ml(query):
            # ML.PREDICT and friends: their columns come from the model, and the stock grammar
            # cannot nest them under a LIMIT 0; the query runs (a SELECT, NULL parameters)
            if self.read_only:  # (``WITH ... INSERT`` passes the head test: it must not run)
                self._check_read(query)
            table = self.session.execute_one(query, params).table
            schema = table.schema if table is not None else None
        else:
            schema = self._columns(query, params)
        if schema is not None and self.catalog.reads_catalog(query):
            schema = _oid_arrays(schema.empty_table()).schema
        return None if schema is None else _named(sql, schema)

    def _columns(self, query: str, params: list[None] | None) -> pa.Schema | None:
        """The columns of a query, from DuckDB's own plan of it under LIMIT 0 (DuckDB parses
        it: no sqlglot parse, which reads ``IN ($1,$2)`` as a dollar-quoted string); None for a
        statement that is not a query."""
        con = self.engine.con
        try:
            parsed = con.extract_statements(query)
            if len(parsed) != 1 or parsed[0].type != duckdb.StatementType.SELECT:
                return None
            with self.engine.checked(query, params):  # (binding a file function opens it)
                return con.sql(query, params=params).limit(0).to_arrow_table().schema
        except duckdb.Error as e:
            raise self.engine.failure(e, query, params) from e

    def parameter_types(self, sql: str, declared: Sequence[int]) -> tuple[int, ...]:
        return infer.parameter_types(sql, declared, self.catalog.relations)

    def cursor_exists(self, name: str) -> bool:
        return self.catalog.cursor_table(name) is not None

    def describe_cursor(self, name: str) -> pa.Schema:
        table = self.catalog.cursor_table(name)
        if table is None:
            raise errors.from_sqlstate("34000", f'cursor "{name}" does not exist')
        schema = self.engine.schema_of(exp.select("*").from_(table).sql(dialect="duckdb"))
        return _named(self.catalog.cursor_query(name) or "", schema)

    def in_transaction(self) -> bool:
        return self.engine.in_transaction()

    def cancel(self) -> None:
        self.engine.interrupt()

    def close(self) -> None:
        self.engine.close()


def duckdb_opener(
    database: str,
    *,
    file_access: bool = False,
    users: auth.Users | None = None,
    trainings: trainings_.Slots | None = None,
) -> Callable[[str, str], DuckDBBackend]:
    """``sqlml serve``'s backends over a DuckDB ``database``: locked down unless
    ``file_access`` (for everyone) or the users file allows files to some users (then those
    only, ``per_user``), and read-only for the users whose role the users file says is."""
    allowed = _allowed(users)
    per_user = not file_access and bool(allowed)

    def open_backend(dbname: str, user: str) -> DuckDBBackend:
        credential = users.get(user) if users is not None else None
        read_only = credential is not None and credential.role == auth.READ_ONLY
        files = file_access or user in allowed
        return DuckDBBackend(
            database,
            dbname,
            user,
            file_access=files,
            per_user=per_user,
            read_only=read_only,
            trainings=trainings,
        )

    return open_backend


def open_engine(
    database: str, *, file_access: bool = False, users: auth.Users | None = None
) -> DuckDBEngine:
    """An engine on ``database`` with the instance set up as ``duckdb_opener``'s backends set
    it up (``sqlml serve`` holds one from its start): locked down, or its configuration locked
    with external access on when files are allowed per user, or open to everyone."""
    per_user = not file_access and bool(_allowed(users))
    return DuckDBEngine(
        database, external_access=file_access or per_user, lock_configuration=per_user
    )


def _allowed(users: auth.Users | None) -> set[str]:
    """The users the users file allows files to (``files=allow``)."""
    return {u for u in users or () if users is not None and users[u].files}


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


def _denied(what: str) -> errors.Error:
    return errors.InsufficientPrivilege(
        f"permission denied: {what} is not allowed for a read-only user",
        hint="the users file gives this user role=read-only",
    )


def _no_extensions() -> errors.Error:
    return errors.InsufficientPrivilege(
        "permission denied: LOAD and INSTALL are not allowed under per-user file access",
        hint="extensions belong to the whole database instance: sqlml serve"
        " --allow-file-access allows them (to everyone)",
    )


def _stand_in(call: MLCall) -> exp.Expr:
    """A placeholder for an ML call, to classify the statement around it: a literal for
    ML.SCORE (scalar), a one-row subquery for the table functions (ML.PREDICT, ML.EVALUATE)."""
    if isinstance(call, Score):
        return exp.Literal.number(1)
    return exp.select("1").subquery("sqlml_call")


# pg_catalog's int2vector and oidvector columns: PostgreSQL sends them as text ('1 2'), which
# drivers without a loader for them hand over as is, and SQLAlchemy's index reflection splits
_VECTORS = frozenset(
    {"indkey", "indoption", "indclass", "indcollation", "proargtypes", "partattrs", "partclass",
     "partcollation", "stxkeys"}
)  # fmt: skip


def _oid_arrays(table: pa.Table) -> pa.Table:
    """A catalog query's int2vector and oidvector columns (by name) as their text, its bigint[]
    columns as oid[]: PostgreSQL's catalogs have no bigint[], and
    the emulation holds oid, oidvector and oid[] as BIGINT (asyncpg reads its type introspection
    query's ``array_agg(atttypid)`` only as oid[], the one integer array it knows unasked)."""
    oids = pa.list_(types.OID_TYPE)
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) and field.name in _VECTORS:
            text = pc.binary_join(table.column(i).cast(pa.list_(pa.string())), " ")
            table = table.set_column(i, field.with_type(pa.string()), text)
        elif pa.types.is_list(field.type) and field.type.value_type == pa.int64():
            table = table.set_column(i, field.with_type(oids), table.column(i).cast(oids))
    return table


def _named(sql: str, schema: pa.Schema) -> pa.Schema:
    """``schema`` with its unaliased expression columns named as PostgreSQL names them
    (``count``, not DuckDB's ``count_star()``: wire.colnames)."""
    names = colnames.result_names(sql, schema.names)
    if names is None:
        return schema
    return pa.schema([f.with_name(n) for f, n in zip(schema, names, strict=True)], schema.metadata)


def _command(sql: str, result: Result) -> Result:
    """DuckDB answers BEGIN, SET and the like with a one-column table ('Success'); on the wire
    a command has a tag and no rows."""
    table = result.table
    if table is None or is_query(sql):
        return result
    if table.column_names not in (["Success"], ["Count"]):
        return result
    if table.column_names == ["Success"]:
        return Result(None, -1, result.status)
    counts = [n for n in table.column(0).to_pylist() if n is not None]  # (MERGE: not a row count)
    return Result(None, int(sum(counts)) if counts else -1, result.status)
