"""DuckDB's errors as sqlml's, with PostgreSQL's SQLSTATEs: by exception class, by what DuckDB
reports in structured form, and by the statement's structure; never by DuckDB's wording.

DuckDB's Python exceptions carry no fields, but a connection opened with ``errors_as_json``
(engines/duckdb.py opens every one so) reports each error as JSON: ``exception_type``,
``exception_message``, ``position`` and, for some, ``error_subtype`` (``MISSING_ENTRY``,
``ENTRY_ALREADY_EXISTS``, ``COLUMN_NOT_FOUND``, ``SYNTAX_ERROR``...) with ``type`` (``Table``,
``Scalar Function``...) and ``name``. One path loses it: binding the relation ``con.sql`` makes
for a final SELECT. The error is then asked for again by executing that statement alone, which
fails in the binder again before anything runs (``probe``).

Where DuckDB reports no structure, what the failing statement is decides:
- a binder error at a column in a query that groups or aggregates is a GROUP BY error (42803);
  at an operator, no operator takes those types (42883);
- an invalid-input error in a statement that divides with ``//`` or ``%`` (DuckDB's ``/`` gives
  Infinity, never an error), which the message says is a division by zero, is 22012;
- a transaction error in a transaction whose earlier statement failed: aborted (25P02); BEGIN
  inside a transaction 25001, COMMIT without one 25P01; any other is a lost write-write race
  (40001), which clients know to retry.
DuckDB reports constraint violations without structure: they are 23000, the class of 23505,
23502 and 23503, which DuckDB does not tell apart. Other binder errors without structure are
42703 (a column), though PostgreSQL has finer codes for some (an ambiguous column 42702, an
ORDER BY position out of range 42P10).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import Token, TokenType

from sqlml import errors

# DuckDB exception class -> sqlml error class, when nothing more specific applies (first
# match in this order: DuckDB's classes are subclasses of its PEP 249 ones).
_CLASSES: list[tuple[type[BaseException], type[errors.Error]]] = [
    (duckdb.ParserException, errors.SyntaxError),
    (duckdb.SyntaxException, errors.SyntaxError),
    (duckdb.CatalogException, errors.UndefinedObject),
    (duckdb.BinderException, errors.UndefinedColumn),
    (duckdb.InterruptException, errors.QueryCanceled),
    (duckdb.ConstraintException, errors.IntegrityError),
    (duckdb.ConversionException, errors.InvalidTextRepresentation),
    (duckdb.OutOfRangeException, errors.NumericValueOutOfRange),
    (duckdb.InvalidInputException, errors.InvalidParameterValue),
    (duckdb.TypeMismatchException, errors.DatatypeMismatch),
    (duckdb.InvalidTypeException, errors.DatatypeMismatch),
    (duckdb.NotImplementedException, errors.FeatureNotSupported),
    (duckdb.PermissionException, errors.InsufficientPrivilege),
    (duckdb.DependencyException, errors.DependentObjectsStillExist),
    (duckdb.OutOfMemoryException, errors.OutOfMemory),
    (duckdb.TransactionException, errors.SerializationFailure),
    (duckdb.IOException, errors.IOError),
    (duckdb.HTTPException, errors.IOError),
    (duckdb.Error, errors.OperationalError),
]

# Catalog entry types (DuckDB's "type" field) that are functions, and that are relations.
_FUNCTIONS = {"Scalar Function", "Aggregate Function", "Table Function", "Macro Function",
              "Table Macro Function", "Pragma Function", "Copy Function"}  # fmt: skip
_RELATIONS = {"Table", "View"}

_DIVISIONS = {TokenType.DIV, TokenType.MOD}
_OPERATORS = {
    TokenType.PLUS, TokenType.DASH, TokenType.STAR, TokenType.SLASH, TokenType.DIV,
    TokenType.MOD, TokenType.PIPE, TokenType.DPIPE, TokenType.AMP, TokenType.CARET,
    TokenType.LT, TokenType.GT, TokenType.LTE, TokenType.GTE, TokenType.EQ, TokenType.NEQ,
    TokenType.LIKE, TokenType.ILIKE, TokenType.DCOLON,
}  # fmt: skip


@dataclass
class Context:
    """What the engine knows about the statement that failed."""

    sql: str | None = None
    in_transaction: bool = False
    failed_before: bool = False  # an earlier statement of the open transaction failed


def structured(e: BaseException) -> dict[str, str]:
    """The JSON DuckDB reports with ``errors_as_json`` (``{}`` without it): the message is
    ``<Type> Error: {json}``."""
    text = str(e)
    start = text.find(": {")
    if start < 0:
        return {}
    try:
        info, _ = json.JSONDecoder().raw_decode(text, start + 2)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in info.items()} if isinstance(info, dict) else {}


def probe(
    con: duckdb.DuckDBPyConnection, e: duckdb.Error, sql: str, params: Sequence[Any] | None
) -> tuple[duckdb.Error, str]:
    """The structured error of a bind-time failure that ``con.sql`` reported without it (see
    the module docstring), and the statement DuckDB reports it about; else ``e`` itself."""
    if structured(e) or not isinstance(e, duckdb.BinderException | duckdb.CatalogException):
        return e, sql
    try:
        statements = con.extract_statements(sql)
        if not statements:
            return e, sql
        last = statements[-1]
        con.execute(last, list(params) if params is not None else None)
    except duckdb.Error as again:
        if type(again) is type(e) and structured(again):
            return again, sql if len(statements) == 1 else last.query
    return e, sql


def map_error(e: BaseException, context: Context | None = None) -> errors.Error:
    """The sqlml error, with its SQLSTATE, for a DuckDB exception."""
    ctx = context or Context()
    filed = udf_failure(e)
    if filed is not None:
        return filed
    info = structured(e)
    message = info.get("exception_message") or str(e)
    cls = _class(e, info, ctx)
    position = info.get("position")
    error = cls(message, position=int(position) + 1 if position and position.isdigit() else None)
    if cls is errors.SerializationFailure:
        error.hint = "roll back and retry the transaction"
    return error


def udf_failure(e: BaseException) -> errors.Error | None:
    """The sqlml error the scoring UDF filed for the Python exception DuckDB reports, if any
    (udfs/duckdb_udfs.py: DuckDB carries a UDF's exception as text only)."""
    if not isinstance(e, duckdb.InvalidInputException):
        return None
    udfs = importlib.import_module("sqlml._udfs.duckdb_udfs")
    claimed: errors.Error | None = udfs.claim(str(e))
    return claimed


def _class(e: BaseException, info: dict[str, str], ctx: Context) -> type[errors.Error]:
    if isinstance(e, duckdb.CatalogException):
        return _catalog(info)
    if isinstance(e, duckdb.BinderException):
        return _binder(info, ctx.sql)
    if isinstance(e, duckdb.InvalidInputException) and _divided(info, ctx.sql):
        return errors.DivisionByZero
    if isinstance(e, duckdb.TransactionException):
        return _transaction(ctx)
    for duck, ours in _CLASSES:
        if isinstance(e, duck):
            return ours
    return errors.InternalError


def _divided(info: dict[str, str], sql: str | None) -> bool:
    """An invalid-input error of a statement that divides, which DuckDB 2 says is a division
    by zero (its other invalid inputs there, a parameter count for one, are not)."""
    said = info.get("exception_message", "").lower()
    return _has(sql, _DIVISIONS) and "division by zero" in said


def _catalog(info: dict[str, str]) -> type[errors.Error]:
    subtype, kind = info.get("error_subtype"), info.get("type", "")
    if subtype == "ENTRY_ALREADY_EXISTS":
        if kind in _RELATIONS:
            return errors.DuplicateTable
        if kind in _FUNCTIONS:
            return errors.DuplicateFunction
        return errors.DuplicateSchema if kind == "Schema" else errors.DuplicateObject
    if subtype == "MISSING_ENTRY":
        if kind in _RELATIONS:
            return errors.UndefinedTable
        if kind in _FUNCTIONS:
            return errors.UndefinedFunction
        return errors.InvalidSchemaName if kind == "Schema" else errors.UndefinedObject
    return errors.UndefinedTable  # (a table in a schema that does not exist, as PostgreSQL)


def _binder(info: dict[str, str], sql: str | None) -> type[errors.Error]:
    subtype = info.get("error_subtype")
    if subtype == "COLUMN_NOT_FOUND":
        return errors.UndefinedColumn
    if subtype == "UNSUPPORTED":
        return errors.FeatureNotSupported
    if "name" in info:  # a function named, none of whose overloads takes these arguments
        return errors.UndefinedFunction
    token = _token_at(sql, info.get("position"))
    if token is not None and token.token_type in _OPERATORS:
        return errors.UndefinedFunction  # no operator takes these types
    if token is not None and _groups(sql):
        return errors.GroupingError
    return errors.UndefinedColumn


def _transaction(ctx: Context) -> type[errors.Error]:
    if ctx.failed_before:
        return errors.InFailedTransaction
    first = _first_token(ctx.sql)
    if first in (TokenType.BEGIN, "START") and ctx.in_transaction:
        return errors.ActiveSqlTransaction
    ends = (TokenType.COMMIT, TokenType.ROLLBACK, TokenType.END, "ABORT")
    if first in ends and not ctx.in_transaction:
        return errors.NoActiveSqlTransaction
    return errors.SerializationFailure


def _tokens(sql: str | None) -> list[Token]:
    if not sql:
        return []
    try:
        return list(Dialect.get_or_raise("duckdb").tokenize(sql))
    except sqlglot.errors.SqlglotError:
        return []


def _has(sql: str | None, kinds: set[TokenType]) -> bool:
    return any(t.token_type in kinds for t in _tokens(sql))


def _first_token(sql: str | None) -> TokenType | str | None:
    tokens = _tokens(sql)
    if not tokens:
        return None
    first = tokens[0]
    return first.text.upper() if first.token_type == TokenType.VAR else first.token_type


def _token_at(sql: str | None, position: str | None) -> Token | None:
    if position is None or not position.isdigit():
        return None
    at = int(position)
    return next((t for t in _tokens(sql) if t.start <= at <= t.end), None)


def _groups(sql: str | None) -> bool:
    """Whether the statement groups rows (GROUP BY, or an aggregate in its SELECT list)."""
    try:
        tree = sqlglot.parse_one(sql or "", read="duckdb")
    except sqlglot.errors.SqlglotError:
        return False
    return tree.find(exp.Group, exp.AggFunc) is not None
