"""SQL-level prepared ML queries: ``PREPARE name [(type, ...)] AS <a query with ML calls>``,
``EXECUTE name [(value, ...)]``, ``DEALLOCATE [PREPARE] name | ALL`` (and ``DISCARD ALL``).

Theory of operation
-------------------
Neither engine can prepare an ML query itself: its SQL is sqlml's to render, and rendered once it
would keep the version it was rendered for. So the Session keeps the prepared text: PREPARE parses
the query (42601 at once) and checks its name is free (42P05); EXECUTE evaluates its values in the
engine (cast to the declared types, as PostgreSQL does; 42601 for a wrong count) and runs the
query with them as parameters, through the Session's kept plans: a deploy, a traffic split or a
shadow is followed at the next EXECUTE, and the prediction log is written, as for any ML.PREDICT
the Session runs. Statements without ML calls are the engine's own PREPARE, untouched.

Its names are the Session's (one connection's, as PostgreSQL's are): they do not show in
``pg_prepared_statements``, and an EXECUTE of a name the Session does not know goes to the engine.
The gateway's PostgreSQL proxy, which sends everything else to the server, runs an EXECUTE or
DEALLOCATE of a kept name in its engine session (``concerns``; ``describe`` gives an EXECUTE's
columns for the extended protocol's Describe without running it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
import sqlglot.errors
from sqlglot import exp

from sqlml import errors, grammar
from sqlml.engines import placeholders
from sqlml.engines.base import Result
from sqlml.grammar import lexer

if TYPE_CHECKING:
    from sqlml.engine import Session


WORDS = ("PREPARE", "EXECUTE", "DEALLOCATE", "DISCARD")


@dataclass(frozen=True)
class Prepared:
    """A prepared ML query: its text (``$n`` markers) and the declared types of its values."""

    query: str
    types: tuple[exp.DataType, ...]
    arity: int  # the values EXECUTE takes


def handle(session: Session, sql: str, params: Sequence[Any] | None) -> Result | None:
    """PREPARE, EXECUTE, DEALLOCATE or DISCARD when they concern an ML query (None: the
    engine's own statement, to run as it is)."""
    word = lexer.first_word(sql)
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    if word == "PREPARE":
        return _prepare(session, sql, found, params)
    kept = session.prepared
    if word == "EXECUTE" and len(found) > 1 and _name(sql, found[1]) in kept:
        return _execute(session, sql, found, kept[_name(sql, found[1])])
    if word == "DEALLOCATE" and kept:
        names = found[2:] if len(found) > 2 and _upper(sql, found[1]) == "PREPARE" else found[1:]
        if len(names) == 1 and _upper(sql, names[0]) == "ALL":
            kept.clear()  # (PostgreSQL's own prepared statements go too; DuckDB has no ALL)
            return (
                Result(None, -1, "DEALLOCATE ALL") if session.engine.dialect == "duckdb" else None
            )
        if len(names) == 1 and kept.pop(_name(sql, names[0]), None) is not None:
            return Result(None, -1, "DEALLOCATE")
    if word == "DISCARD" and len(found) == 2 and _upper(sql, found[1]) == "ALL":
        kept.clear()
    return None


def concerns(session: Session, sql: str) -> bool:
    """Whether ``sql`` is an EXECUTE or DEALLOCATE of a name the Session keeps (for a caller
    that would otherwise send it to the engine: the gateway's PostgreSQL proxy)."""
    if not session.prepared or lexer.first_word(sql) not in ("EXECUTE", "DEALLOCATE"):
        return False
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    if len(found) > 2 and _upper(sql, found[0]) == "DEALLOCATE":
        found = found[1:] if _upper(sql, found[1]) == "PREPARE" else found
    return len(found) > 1 and _name(sql, found[1]) in session.prepared


def query(session: Session, sql: str) -> str | None:
    """The query an EXECUTE of a name the Session keeps runs (None: anything else), whose
    select list names the result's columns (wire.colnames)."""
    if lexer.first_word(sql) != "EXECUTE" or not concerns(session, sql):
        return None
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    return session.prepared[_name(sql, found[1])].query


def describe(session: Session, sql: str) -> pa.Schema | None:
    """The columns an EXECUTE of a kept name returns, without running it (its rendered query
    under LIMIT 0, the values NULL); None for anything else."""
    if lexer.first_word(sql) != "EXECUTE" or not concerns(session, sql):
        return None
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    kept = session.prepared[_name(sql, found[1])]
    nulls = [None] * kept.arity or None
    rendered = session.ml_sql(kept.query)
    if rendered is None:  # (ML.EVALUATE: computed, not rendered)
        table = session.execute_one(kept.query, nulls).table
    else:
        from sqlml.engine import zero_rows  # (engine imports this module)

        table = session.engine.execute(zero_rows(rendered, session.engine.dialect), nulls).table
    return table.schema if table is not None else None


def _prepare(
    session: Session, sql: str, found: list[lexer.Token], params: Sequence[Any] | None
) -> Result | None:
    """``PREPARE name [(types)] AS query``: kept when the query has ML calls."""
    if len(found) < 4:
        return None
    position = 2
    types: tuple[exp.DataType, ...] = ()
    if found[2].text(sql) == "(":
        close = _closing(sql, found, 2)
        if close is None:
            return None
        types = tuple(_types(session, sql, found[3:close]))
        position = close + 1
    if position >= len(found) or _upper(sql, found[position]) != "AS":
        return None
    query = sql[found[position].end :].strip()
    if not grammar.is_ml(query):
        return None
    if params:
        raise errors.FeatureNotSupported("PREPARE takes no parameters of its own")
    name = _name(sql, found[1])
    if name in session.prepared:
        raise errors.from_sqlstate("42P05", f'prepared statement "{name}" already exists')
    session.check_query(query)  # (42601 and the other errors of its text, now)
    arity = max([len(types), *placeholders.numbers(query)])
    session.prepared[name] = Prepared(query, types, arity)
    return Result(None, -1, "PREPARE")


def _execute(session: Session, sql: str, found: list[lexer.Token], kept: Prepared) -> Result:
    """``EXECUTE name [(values)]``: the values computed by the engine, then the query run with
    them through the Session (its kept plan, checked against what serves now)."""
    values: list[exp.Expr] = []
    if len(found) > 2:
        close = _closing(sql, found, 2) if found[2].text(sql) == "(" else None
        if close is None or close != len(found) - 1:
            raise errors.SyntaxError("EXECUTE takes a name and its values in parentheses")
        values = _values(session, sql[found[2].end : found[close].start])
    if len(values) != kept.arity:
        raise errors.SyntaxError(
            f"wrong number of parameters for prepared statement: {len(values)} given,"
            f" {kept.arity} expected"
        )
    params: list[Any] = []
    if values:
        casts = [
            exp.cast(v, kept.types[i]) if i < len(kept.types) else v for i, v in enumerate(values)
        ]
        select = exp.select(*casts).sql(dialect=session.engine.dialect)
        params = list(session.engine.query_arrow(select).to_pylist()[0].values())
    return session.execute_one(kept.query, params or None)


def _values(session: Session, text: str) -> list[exp.Expr]:
    """EXECUTE's values, parsed as one parenthesized list: trees, never text put into SQL."""
    try:
        parsed = sqlglot.parse_one(f"({text})", read=session.engine.dialect)
    except sqlglot.errors.ParseError as e:
        raise errors.SyntaxError(f"EXECUTE's values do not parse: {e}") from e
    if isinstance(parsed, exp.Tuple):
        return list(parsed.expressions)
    if isinstance(parsed, exp.Paren):
        return [parsed.this]
    raise errors.SyntaxError("EXECUTE takes its values in parentheses")


def _types(session: Session, sql: str, inside: list[lexer.Token]) -> list[exp.DataType]:
    """PREPARE's declared types: the texts between its top-level commas, each parsed as a type
    (42704 for one that is not)."""
    parts: list[list[lexer.Token]] = [[]]
    depth = 0
    for token in inside:
        text = token.text(sql)
        depth += (text == "(") - (text == ")")
        if text == "," and depth == 0:
            parts.append([])
        else:
            parts[-1].append(token)
    types = []
    for part in parts:
        if not part:
            raise errors.SyntaxError("PREPARE's types are a list of type names")
        text = sql[part[0].start : part[-1].end]
        try:
            types.append(exp.DataType.build(text, dialect=session.engine.dialect))
        except (sqlglot.errors.ParseError, ValueError) as e:
            raise errors.from_sqlstate("42704", f'type "{text}" does not exist') from e
    return types


def _closing(sql: str, found: list[lexer.Token], opened: int) -> int | None:
    depth = 0
    for i in range(opened, len(found)):
        text = found[i].text(sql)
        depth += (text == "(") - (text == ")")
        if depth == 0:
            return i
    return None


def _name(sql: str, token: lexer.Token) -> str:
    """A statement name as PostgreSQL folds it: unquoted lower-case, quoted as written."""
    text = token.text(sql)
    if token.kind == lexer.NAME:
        return text[1:-1].replace('""', '"')
    return text.lower()


def _upper(sql: str, token: lexer.Token) -> str:
    return token.text(sql).upper()
