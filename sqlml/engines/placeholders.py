"""Bind parameter markers in SQL text: ``?`` (sqlml's paramstyle) and ``$n`` (PostgreSQL's, which
the gateway passes on), found by the one lexer (:mod:`sqlml.grammar.lexer`), which skips what can
hide them: quoted strings (``E''`` ones too) and names, dollar-quoted strings and comments.

The engine path numbers ``?`` markers as ``$1, $2, ...`` in text order before it parses an ML
statement (sqlglot may print clauses in another order than they were written, so positional
markers could change places); DuckDB binds ``$n`` itself, and psycopg2 gets ``%s`` markers with
the values put in the order the markers appear (:func:`to_format`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlml import errors
from sqlml.grammar import lexer


def numbers(sql: str) -> list[int]:
    """The ``$n`` markers of ``sql``, in text order."""
    return lexer.parameter_numbers(sql)


def has_qmarks(sql: str) -> bool:
    return "?" in sql and any(t.kind == lexer.QMARK for t in lexer.parameters(sql))


def number_qmarks(sql: str) -> str:
    """``?`` markers as ``$1, $2, ...`` in text order; ``sql`` itself when it has none (or has
    ``$n`` markers already: the two styles do not mix)."""
    if "?" not in sql or numbers(sql):
        return sql
    qmarks = [t for t in lexer.parameters(sql) if t.kind == lexer.QMARK]
    return lexer.replace(sql, ((t, f"${n}") for n, t in enumerate(qmarks, 1)))


def compact(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` renumbered ``$1..$k`` for the ``$n`` markers it has (in order of first use), with
    the values they take: for a part of a statement, which uses some of its parameters."""
    markers = [t for t in lexer.parameters(sql) if t.kind == lexer.PARAM]
    mapping: dict[int, int] = {}
    for token in markers:
        mapping.setdefault(_number(sql, token), len(mapping) + 1)
    if list(mapping) == list(range(1, len(params) + 1)):
        return sql, list(params)
    if mapping and max(mapping) > len(params):
        raise miscount(max(mapping), len(params))
    renumbered = ((t, f"${mapping[_number(sql, t)]}") for t in markers)
    return lexer.replace(sql, renumbered), [params[n - 1] for n in mapping]


def to_format(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` and ``params`` for psycopg2: ``?`` or ``$n`` markers as ``%s`` (the values in the
    order of the markers), a literal ``%`` doubled. SQL with neither kind of marker (sqlml's own
    statements, which sqlglot writes with ``%s``) is returned as it is."""
    text, order, count = _format(sql)
    if order is None:
        return sql, list(params)
    if count != len(params):
        raise miscount(count, len(params))
    return text, [params[n - 1] for n in order] if order else list(params)


def format_to_numbered(sql: str) -> str:
    """psycopg2's ``%s`` markers (sqlml's own statements, see :func:`to_format`) as ``$1, $2,
    ...`` in text order, for PL/Python's ``plpy.prepare``; a ``%s`` inside a string, a quoted
    name or a comment is text, not a marker."""
    if "%s" not in sql:
        return sql
    found = list(lexer.tokens(sql))
    markers = [
        lexer.Token(lexer.PARAM, op.start, word.end)
        for op, word in itertools.pairwise(found)
        if op.kind == lexer.OP
        and op.text(sql) == "%"
        and word.kind == lexer.WORD
        and word.text(sql) == "s"
        and word.start == op.end
    ]
    return lexer.replace(sql, ((t, f"${n}") for n, t in enumerate(markers, 1)))


def miscount(wanted: int, given: int) -> errors.Error:
    return errors.from_sqlstate(
        "42P02", f"the statement takes {wanted} parameters, but {given} were given"
    )


def _number(sql: str, token: lexer.Token) -> int:
    return int(sql[token.start + 1 : token.end])


@functools.lru_cache(maxsize=64)  # (one per kept plan at most: they can be large)
def _format(sql: str) -> tuple[str, tuple[int, ...] | None, int]:
    """(text, the parameter number of each ``%s`` (() for qmarks), how many parameters it
    takes); None: no markers."""
    found = lexer.parameters(sql)
    if not found:
        return sql, None, 0
    if any(t.kind == lexer.QMARK for t in found) and any(t.kind == lexer.PARAM for t in found):
        raise errors.ProgrammingError("? and $n parameter markers cannot be mixed")
    order = tuple(_number(sql, t) for t in found if t.kind == lexer.PARAM)
    text = lexer.replace(sql.replace("%", "%%"), _shifted(sql, found))
    return text, order, max(order) if order else len(found)


def _shifted(sql: str, found: list[lexer.Token]) -> Iterator[tuple[lexer.Token, str]]:
    """The markers' places in ``sql`` with every ``%`` doubled: each ``%`` before a marker moves
    it one character on (a marker holds no ``%``)."""
    shift, position = 0, 0
    for token in found:
        shift += sql.count("%", position, token.start)
        position = token.start
        yield lexer.Token(token.kind, token.start + shift, token.end + shift), "%s"


def bound(sql: str, params: Sequence[Any] | None) -> tuple[str, list[Any] | None]:
    """A part of the statement with the parameters it uses (renumbered from $1)."""
    if not params:
        return sql, None
    text, values = compact(sql, params)
    return text, values or None
