"""The names PostgreSQL gives result columns that have no alias, for the DuckDB gateway.

Theory of operation. DuckDB names an unaliased select-list item after its text (``count_star()``,
``sum(id)``, ``(1 + 1)``, ``CAST(x AS DECIMAL)``); PostgreSQL after what it is (its parser's
FigureColname): a function call by the function's name (``count``, ``sum``, ``round``), a cast by
what it casts (``x::numeric`` is ``x``) or else by the type (``'1'::numeric`` is ``numeric``),
``CASE`` ``case``, ``COALESCE`` ``coalesce``, ``EXISTS`` ``exists``, ``ARRAY[...]`` ``array``, a
scalar subquery by its own column, and anything else (operators, constants) ``?column?``. Clients
read these names (pandas columns, psycopg2's ``cursor.description``, ORMs' row mappings).

Two uses: :func:`add_aliases` gives every select list of a catalog query PostgreSQL's names as
aliases (a CTE's ``COUNT(1)`` is then ``count`` to the query around it, as pgcli's casing query
expects), and :func:`result_names` renames a result's columns after the client's statement. The
latter parses the statement only when a column's name is not a plain word, so an ordinary query
pays nothing; a statement sqlglot cannot read, or a select list with ``*``, keeps DuckDB's names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlml.grammar import lexer
from sqlml.grammar.dialects import SqlmlPostgres

UNNAMED = "?column?"

# PostgreSQL's names of the types a cast can name a column after (its pg_type.typname)
_TYPE_NAMES = {
    exp.DType.DECIMAL: "numeric", exp.DType.INT: "int4", exp.DType.BIGINT: "int8",
    exp.DType.SMALLINT: "int2", exp.DType.DOUBLE: "float8", exp.DType.FLOAT: "float4",
    exp.DType.TEXT: "text", exp.DType.VARCHAR: "varchar", exp.DType.CHAR: "bpchar",
    exp.DType.BOOLEAN: "bool", exp.DType.DATE: "date", exp.DType.TIMESTAMP: "timestamp",
    exp.DType.TIMESTAMPTZ: "timestamptz", exp.DType.INTERVAL: "interval",
    exp.DType.JSON: "json", exp.DType.JSONB: "jsonb", exp.DType.UUID: "uuid",
    exp.DType.VARBINARY: "bytea",
}  # fmt: skip

# nodes sqlglot gives a class whose PostgreSQL name is not sqlglot's SQL name
_NODE_NAMES: dict[type[exp.Expr], str] = {
    exp.Case: "case", exp.If: "case", exp.Coalesce: "coalesce", exp.Greatest: "greatest",
    exp.Least: "least", exp.Exists: "exists", exp.Array: "array", exp.Nullif: "nullif",
    exp.Extract: "extract", exp.CurrentDate: "current_date", exp.CurrentTime: "current_time",
    exp.CurrentTimestamp: "now", exp.CurrentUser: "current_user",
}  # fmt: skip


def figure(item: exp.Expr) -> str | None:
    """PostgreSQL's name for the select-list item ``item``; None for an alias, a column or
    ``*`` (the engine's own name stands)."""
    if isinstance(item, exp.Alias | exp.Column | exp.Star):
        return None
    return _name_of(item) or UNNAMED


def _name_of(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Paren | exp.Window | exp.Filter):  # f(...) OVER (...): f
        return _name_of(node.this)
    if isinstance(node, exp.Column):
        return None if isinstance(node.this, exp.Star) else node.name
    if isinstance(node, exp.Cast | exp.TryCast):
        return _name_of(node.this) or _TYPE_NAMES.get(node.to.this)
    if isinstance(node, exp.Subquery | exp.Query):
        selects = node.this.selects if isinstance(node, exp.Subquery) else node.selects
        return (selects[0].alias_or_name or _name_of(selects[0])) if selects else None
    for kind, name in _NODE_NAMES.items():
        if isinstance(node, kind):
            return name
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


def add_aliases(tree: exp.Expr) -> None:
    """Every unaliased expression in every select list of ``tree`` aliased with PostgreSQL's
    name (in place)."""
    for select in list(tree.find_all(exp.Select)):
        for item in list(select.expressions):
            name = figure(item)
            if name is not None:
                item.replace(exp.alias_(item.copy(), name, quoted=True))


def result_names(sql: str, names: Sequence[str]) -> list[str] | None:
    """The columns of the result of ``sql`` (DuckDB's ``names``) as PostgreSQL names them; None:
    keep DuckDB's (all plain names already, or a statement this cannot map item by item)."""
    if lexer.first_word(sql) == "VALUES":  # PostgreSQL's column1, column2 ... (DuckDB's col0)
        return [f"column{i}" for i in range(1, len(names) + 1)]
    if all(_plain(name) for name in names) or not _QUERY.issuperset(lexer.head(sql)):
        return None
    try:  # (PostgreSQL with the ML grammar: ML.PREDICT(MODEL m, ...) reads too)
        tree = sqlglot.parse_one(sql, read=SqlmlPostgres)
    except SqlglotError:
        return None
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if not isinstance(tree, exp.Query):
        return None
    selects = tree.selects
    if len(selects) != len(names) or any(isinstance(s, exp.Star) for s in selects):
        return None
    figured = [figure(s) for s in selects]
    return [n if f is None else f for n, f in zip(names, figured, strict=True)]


_QUERY = frozenset({"SELECT", "WITH", "VALUES", "(", "TABLE"})


def _plain(name: str) -> bool:
    return name.isidentifier()
