"""Per-user file access over DuckDB: DuckDB's own planner decides what a statement touches.

DuckDB's file switch (``enable_external_access``) is a setting of the database instance, shared
by every connection of the process to the file, so a per-user allowance cannot use it. When the
users file allows files to some users (``files=allow``) and the server does not allow them to
everyone, the instance keeps external access on with its configuration locked (nobody can SET
a setting, extensions are neither installed nor loaded automatically), and every statement a
not-allowed user's session runs, the SQL that sqlml builds from it included (a CREATE MODEL's
training query, an ML.PREDICT input, a cursor's query), passes ``FilePolicy.check`` first:

1. its statement types, as DuckDB's parser gives them (``extract_statements``), are in an
   allowlist: queries, DML, DDL, transaction control, SET (on a locked configuration), EXECUTE,
   VACUUM/ANALYZE, and plain EXPLAIN of an allowed statement. Never ATTACH, DETACH, COPY (the
   gateway serves COPY FROM STDIN / TO STDOUT itself, before DuckDB), EXPORT, IMPORT, LOAD,
   INSTALL, PRAGMA, CALL, PREPARE or EXPLAIN ANALYZE;
2. a function call spelled in the text (a name, quoted or not, followed by ``(``) that names a
   table function outside the allowlist (``read_csv``, ``read_text``, ``glob``, ``query``...) is
   refused before DuckDB binds anything: binding a file function opens the file (CSV and JSON
   sniffing, Parquet metadata), which the plan would come too late to prevent;
3. ``EXPLAIN (FORMAT json)`` of the statement, with its parameters, and a walk of the plan: every
   operator that scans a table function (``extra_info.Function``) must name one of ``ALLOWED``
   (functions that touch no file), and no operator may write a file (``*COPY_TO_FILE``) or be one
   of ``_REFUSED_OPERATORS``. Views and table macros are planned as what they expand to, so a
   view another user made over ``read_text`` is refused here. A DuckDB IO error while planning
   (a file function reached through a view or macro could not open its file) is a refusal too.

The engine calls the check (``DuckDBEngine.guard``) before each statement it runs, with its
values, in the same transaction as the statement (``DuckDBEngine.checked``: one snapshot of the
catalog, so a view replaced by another connection in between is not the one that runs); a kept
ML plan is checked at its PREPARE (values unknown: NULL) and at each EXECUTE (DuckDB binds it
again after a catalog change). A statement of which DuckDB's parser takes no EXPLAIN
(USE, COMMENT ON) is one that holds no query: it runs unplanned (parsing the EXPLAIN tells, as
running a failing one would abort the open transaction).

Anything refused is 42501 (errors.InsufficientPrivilege), before the statement runs; the
session goes on. What is not covered is in docs/gateway.md ("Security").
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from sqlml import errors
from sqlml.engines.duckdb import DuckDBEngine
from sqlml.grammar import lexer

# Table functions (as DuckDB names them in a plan, upper case) that read no file: the scan of
# the database's own tables, generators, the metadata functions the catalog emulation and
# clients use, and scans of the Arrow tables the gateway registers itself (COPY FROM STDIN's
# batches, ML.EVALUATE's results).
ALLOWED = frozenset(
    {
        "SEQ_SCAN", "RANGE", "GENERATE_SERIES", "UNNEST", "REPEAT", "REPEAT_ROW", "JSON_EACH",
        "JSON_TREE", "PYTHON_ARROW_SCAN", "ARROW_SCAN", "PG_TIMEZONE_NAMES", "ICU_CALENDAR_NAMES",
        "TEST_ALL_TYPES", "SUMMARY", "DUCKDB_COLUMNS", "DUCKDB_CONSTRAINTS", "DUCKDB_DATABASES",
        "DUCKDB_DEPENDENCIES", "DUCKDB_FUNCTIONS", "DUCKDB_INDEXES", "DUCKDB_KEYWORDS",
        "DUCKDB_SCHEMAS", "DUCKDB_SEQUENCES", "DUCKDB_SETTINGS", "DUCKDB_TABLES", "DUCKDB_TYPES",
        "DUCKDB_VIEWS", "DUCKDB_VARIABLES", "DUCKDB_PREPARED_STATEMENTS", "DUCKDB_OPTIMIZERS",
        "PRAGMA_TABLE_INFO", "PRAGMA_SHOW", "PRAGMA_VERSION", "PRAGMA_COLLATIONS",
        "PRAGMA_DATABASE_SIZE", "PRAGMA_PLATFORM", "PRAGMA_USER_AGENT",
    }
)  # fmt: skip

# What a not-allowed user's statements may be, as DuckDB's parser classifies them.
_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT, duckdb.StatementType.INSERT, duckdb.StatementType.UPDATE,
        duckdb.StatementType.DELETE, duckdb.StatementType.MERGE_INTO,
        duckdb.StatementType.CREATE, duckdb.StatementType.DROP, duckdb.StatementType.ALTER,
        duckdb.StatementType.TRANSACTION, duckdb.StatementType.SET,
        duckdb.StatementType.EXECUTE, duckdb.StatementType.VACUUM,
        duckdb.StatementType.ANALYZE, duckdb.StatementType.EXPLAIN,
    }
)  # fmt: skip
_UNPLANNED = frozenset({duckdb.StatementType.TRANSACTION})  # nothing to plan, nothing to read
# Kinds of statements of which DuckDB cannot EXPLAIN some (USE is a SET, COMMENT ON an ALTER):
# those hold no query and no call, so an EXPLAIN that does not parse lets them run.
_UNEXPLAINED = frozenset(
    {duckdb.StatementType.SET, duckdb.StatementType.ALTER, duckdb.StatementType.DROP}
)
_EXPLAIN = "EXPLAIN (FORMAT json) "
# The words an allowed EXPLAIN may have before its statement (no ANALYZE: that runs it).
_EXPLAIN_WORDS = frozenset({"explain", "verbose", "format", "text", "json"})
# Operators no not-allowed statement may plan, whatever its statement type (the statement types
# refuse them first; this is the second look).
_REFUSED_OPERATORS = frozenset(
    {"COPY_DATABASE", "ATTACH", "DETACH", "EXPORT", "LOAD", "PRAGMA", "CREATE_SECRET",
     "EXTENSION", "UPDATE_EXTENSIONS", "EXPLAIN_ANALYZE"}
)  # fmt: skip
HINT = (
    "this user may not read or write the server's files: the users file gives files=allow to"
    " the users who may (or sqlml serve --allow-file-access to everyone)"
)


class FilePolicy:
    """The check of one not-allowed user's statements, on its engine's connection."""

    def __init__(self, engine: DuckDBEngine) -> None:
        self._engine = engine
        self._functions = _file_functions(engine.con)
        # (a table function's scan is named after it too: a second look, should a plan omit
        # its Function)
        self._scans = frozenset(name.upper() for name in self._functions)

    def check(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """42501 unless ``sql`` (one or more DuckDB statements) touches no file (see above)."""
        try:
            statements = self._engine.con.extract_statements(sql)
        except duckdb.Error as e:
            raise self._engine.failure(e, sql, params) from e
        except ValueError as e:  # a statement type this duckdb module does not name
            raise denied("this statement") from e
        kinds = [statement.type for statement in statements]
        if len(kinds) > 1 and duckdb.StatementType.TRANSACTION in kinds:
            # (the check runs in the statement's transaction: one text may not end it)
            raise denied("transaction control among other statements")
        for statement in statements:
            self._check_statement(statement.type, statement.query, params)

    def _check_statement(
        self, kind: duckdb.StatementType, sql: str, params: Sequence[Any] | None
    ) -> None:
        if kind not in _STATEMENTS:
            raise denied(kind.name)
        if kind in _UNPLANNED:
            return
        if kind == duckdb.StatementType.EXPLAIN:
            start, end = lexer.wrapped_query(sql)
            if start == 0 or not set(lexer.words(sql[:start])) <= _EXPLAIN_WORDS:
                raise denied("EXPLAIN ANALYZE")
            self.check(sql[start:end], params)
            return
        self._check_calls(sql)
        self._check_plan(kind, sql, params)

    def _check_calls(self, sql: str) -> None:
        """Refuses a file function called by name before DuckDB binds it (and opens its file)."""
        lowered = sql.lower()  # (a large INSERT names none: no token walk over it)
        if not any(name in lowered for name in self._functions):
            return
        found = next((name for name in _called(sql) if name in self._functions), None)
        if found is not None:
            raise denied(f"function {found}")

    def _check_plan(
        self, kind: duckdb.StatementType, sql: str, params: Sequence[Any] | None
    ) -> None:
        if kind in _UNEXPLAINED and not self._explainable(sql):
            return
        values = list(params) if params is not None else None
        try:
            rows = self._engine.con.execute(_EXPLAIN + sql, values).fetchall()
        except duckdb.IOException as e:  # a file reached at bind time (a view's, a macro's)
            raise denied("reading a file") from e
        except duckdb.Error as e:  # the error the statement itself would raise, as it would
            raise self._failure(e, sql, params) from e
        for _, plan in rows:
            for operator in _operators(json.loads(plan)):
                _check_operator(operator, self._scans)

    def _explainable(self, sql: str) -> bool:
        """Whether DuckDB's parser takes an EXPLAIN of ``sql`` (parsing alone: an EXPLAIN that
        fails to parse would abort the open transaction, as any failed statement does)."""
        try:
            self._engine.con.extract_statements(_EXPLAIN + sql)
        except duckdb.ParserException:
            return False
        return True

    def _failure(self, e: duckdb.Error, sql: str, params: Sequence[Any] | None) -> errors.Error:
        """The statement's own error, from its EXPLAIN (its position in the statement)."""
        error = self._engine.failure(e, _EXPLAIN + sql, params)
        if error.position is not None:
            error.position = (
                error.position - len(_EXPLAIN) if error.position > len(_EXPLAIN) else None
            )
        return error


def _check_operator(operator: dict[str, Any], scans: frozenset[str]) -> None:
    name = str(operator.get("name", ""))
    if name in scans:
        raise denied(f"function {name.lower()}")
    extra = operator.get("extra_info")
    function = extra.get("Function") if isinstance(extra, dict) else None
    if function is not None and str(function).upper() not in ALLOWED:
        raise denied(f"function {str(function).lower()}")
    if "COPY_TO_FILE" in name or name in _REFUSED_OPERATORS:
        raise denied(name.replace("_", " "))


def _operators(nodes: Any) -> Iterator[dict[str, Any]]:
    """Every operator of an EXPLAIN (FORMAT json) plan, depth first."""
    stack = list(nodes) if isinstance(nodes, list) else [nodes]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.get("children") or ())


def _called(sql: str) -> set[str]:
    """The names (lower case, quotes taken off) written just before a ``(`` in ``sql``."""
    found: set[str] = set()
    previous: lexer.Token | None = None
    for token in lexer.tokens(sql):
        if token.kind == lexer.COMMENT:
            continue
        if previous is not None and token.kind == lexer.OP and token.text(sql) == "(":
            text = previous.text(sql)
            found.add(text[1:-1].lower() if previous.kind == lexer.NAME else text.lower())
        previous = token if token.kind in (lexer.WORD, lexer.NAME) else None
    return found


def _file_functions(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The table functions of the instance outside ``ALLOWED``, lower case."""
    rows = con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'table'"
    ).fetchall()
    return frozenset(str(n).lower() for (n,) in rows if str(n).upper() not in ALLOWED)


def denied(what: str) -> errors.Error:
    return errors.InsufficientPrivilege(
        f"permission denied: {what} is not allowed for this user (no file access)", hint=HINT
    )
