"""MLQuery templates back to SQL: each slot filled with the engine's replacement tree.

A table slot (``ML.PREDICT`` / ``ML.EVALUATE`` in FROM or JOIN) takes a table-like expression
(``exp.Subquery``, ``exp.Table``, or a query, which is wrapped in parentheses) under the alias
the user wrote (``FROM ML.PREDICT(...) AS p``), else the replacement's own alias, else
``__sqlml_call_<i>`` so every engine accepts the subquery. A scalar slot (``ML.SCORE``) takes
any expression, parenthesized.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from sqlml import errors
from sqlml.grammar import dialects, nodes
from sqlml.grammar.statements import MLQuery


def render(query: MLQuery, replacements: Sequence[exp.Expr], dialect: str) -> str:
    """The SQL of ``query`` for ``dialect`` ('duckdb' or 'postgres'), calls replaced."""
    if len(replacements) != len(query.calls):
        raise errors.InternalError(
            f"{len(query.calls)} ML calls but {len(replacements)} replacements"
        )
    tree = query.template.copy()
    for slot in list(tree.find_all(nodes.CallSlot)):
        slot.replace(_fill(slot, replacements[slot.slot]))
    return _generate(tree, dialect)


def _fill(slot: nodes.CallSlot, replacement: exp.Expr) -> exp.Expr:
    # The replacement is taken over, not copied: scoring trees run to tens of KB, and copying them
    # cost more than the rest of the statement.
    value = replacement
    if not slot.args.get("table"):
        return value if isinstance(value, exp.Paren) else exp.paren(value, copy=False)
    if isinstance(value, exp.Query) and not isinstance(value, exp.Subquery):
        value = value.subquery(copy=False)
    alias = slot.args.get("alias") or value.args.get("alias")
    if "alias" not in value.arg_types:
        raise errors.InternalError(f"cannot use {value.key} as a table")
    value.set("alias", alias or exp.TableAlias(this=exp.to_identifier(f"__sqlml_call_{slot.slot}")))
    return value


def _generate(tree: exp.Expr, dialect: str) -> str:
    flavour = dialects.DIALECTS.get(dialect.lower())
    if flavour is None:
        raise errors.FeatureNotSupported(f"unknown SQL dialect {dialect!r}: use duckdb or postgres")
    try:
        return tree.sql(dialect=flavour, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise errors.FeatureNotSupported(f"cannot write this query for {dialect}: {e}") from e
