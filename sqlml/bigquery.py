"""The engine's side of BigQuery names and the BigQuery mode (the transpiler itself is pure:
:mod:`sqlml.grammar.bigquery`; the backtick paths: :mod:`sqlml.grammar.paths`).

- :func:`to_engine`: a GoogleSQL statement as the engine's SQL, asking the engine what the
  transpiler must know (the columns behind ``* EXCEPT`` on PostgreSQL, the catalogs).
- :func:`check_paths`: in every mode, a three-part name in an ML statement must name the current
  database or an attached DuckDB catalog (3D000 otherwise, with the path as written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlml import grammar
from sqlml.engines.base import Engine
from sqlml.grammar import bigquery as transpiler
from sqlml.grammar import paths
from sqlml.grammar.dialects import DIALECTS
from sqlml.grammar.statements import (
    CreateModel,
    DropModel,
    Evaluate,
    MLQuery,
    OverData,
    Predict,
    Statement,
)

NAME = transpiler.NAME
setting = transpiler.setting
dialect_set = transpiler.dialect_set
if TYPE_CHECKING:
    from sqlml.engine import Session

Params = Sequence[Any] | Mapping[str, Any] | None


def to_engine(session: Session, sql: str, params: Params) -> tuple[str, list[Any] | None]:
    """``sql`` (GoogleSQL) as the session engine's SQL, with its parameters in order."""
    engine = session.engine
    target = transpiler.Target(
        engine.dialect,
        columns=lambda query: _columns(session, query),
        catalogs=lambda: catalogs(engine),
    )
    return transpiler.to_engine(sql, params, target)


def _columns(session: Session, query: str) -> list[str]:
    """The column names of ``query`` (engine SQL, LIMIT 0), ML calls in it included."""
    if not grammar.is_ml(query):
        return list(session.engine.schema_of(query).names)
    result = session.run(grammar.parse(query, session.engine.dialect))
    return list(result.table.column_names) if result.table is not None else []


def catalogs(engine: Engine) -> list[str]:
    """What a three-part name may name: DuckDB's databases (the current one, the attached
    ones, and its own ``temp`` and ``system``: ``temp.main.t`` is a temporary table), and
    PostgreSQL's current database."""
    if engine.dialect == "postgres":
        query = "SELECT current_database()"
    else:
        query = "SELECT database_name FROM duckdb_databases()"
    return [str(name) for name in engine.query_arrow(query).column(0).to_pylist()]


def check_paths(statement: Statement, engine: Engine) -> None:
    """3D000 for a three-part name in an ML statement whose catalog the engine lacks."""
    texts: list[str] = []
    named: dict[str, exp.Table] = {}
    models = [statement.model] if isinstance(statement, CreateModel | DropModel) else []
    if isinstance(statement, CreateModel) and statement.query is not None:
        texts.append(statement.query.sql)
    elif isinstance(statement, MLQuery):
        models = [call.model for call in statement.calls if call.model is not None]
        named |= paths.catalogs(statement.template)
        texts += [
            c.input.sql
            for c in statement.calls
            if isinstance(c, Predict | Evaluate) and c.input is not None
        ]
        texts += [q.sql for c in statement.calls if isinstance(c, OverData) for q in c.inputs]
    for text in texts:
        if text.count(".") >= 2:
            named |= paths.catalogs(_tree(text, engine.dialect))
    for model in models:
        if model.catalog is not None:
            parts = (model.catalog, model.schema or "", model.name)
            named.setdefault(model.catalog, exp.table_(parts[2], db=parts[1], catalog=parts[0]))
    if named:
        paths.check_catalogs(named, catalogs(engine))


def _tree(sql: str, dialect: str) -> exp.Expr:
    try:
        return sqlglot.parse_one(sql, read=DIALECTS[dialect])
    except SqlglotError:
        return exp.Select()  # the engine reports the query's own syntax error
