"""Bind parameter markers in SQL text: ``?`` (sqlml's paramstyle) and ``$n`` (PostgreSQL's, which
the gateway passes on), found by one regular expression that skips what can hide them: quoted
strings and identifiers, dollar-quoted strings and comments.

The engine path numbers ``?`` markers as ``$1, $2, ...`` in text order before it parses an ML
statement (sqlglot may print clauses in another order than they were written, so positional
markers could change places); DuckDB binds ``$n`` itself, and psycopg2 gets ``%s`` markers with
the values put in the order the markers appear (:func:`to_format`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from sqlml import errors

_MARKERS = re.compile(
    r"""
      '(?:[^']|'')*'?                             # a string ('' is a quote inside it)
    | "(?:[^"]|"")*"?                             # a quoted identifier
    | --[^\n]*                                    # a line comment
    | /\*.*?(?:\*/|\Z)                            # a block comment
    | (?<![\w$])\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)  # a dollar-quoted string
    | (?<![\w$])\$(?P<number>[0-9]+)(?![\w$])     # $n
    | (?P<qmark>\?)
    | (?P<percent>%)
    """,
    re.VERBOSE | re.DOTALL,
)


def numbers(sql: str) -> list[int]:
    """The ``$n`` markers of ``sql``, in text order."""
    return [int(m.group("number")) for m in _MARKERS.finditer(sql) if m.group("number")]


def has_qmarks(sql: str) -> bool:
    return "?" in sql and any(m.group("qmark") for m in _MARKERS.finditer(sql))


def number_qmarks(sql: str) -> str:
    """``?`` markers as ``$1, $2, ...`` in text order; ``sql`` itself when it has none (or has
    ``$n`` markers already: the two styles do not mix)."""
    if "?" not in sql or numbers(sql):
        return sql
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if not match.group("qmark"):
            return match.group(0)
        count += 1
        return f"${count}"

    return _MARKERS.sub(number, sql)


def compact(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """``sql`` renumbered ``$1..$k`` for the ``$n`` markers it has (in order of first use), with
    the values they take: for a part of a statement, which uses some of its parameters."""
    mapping: dict[int, int] = {}
    for n in numbers(sql):
        mapping.setdefault(n, len(mapping) + 1)
    if list(mapping) == list(range(1, len(params) + 1)):
        return sql, list(params)

    def renumber(match: re.Match[str]) -> str:
        n = match.group("number")
        return f"${mapping[int(n)]}" if n else match.group(0)

    if mapping and max(mapping) > len(params):
        raise miscount(max(mapping), len(params))
    return _MARKERS.sub(renumber, sql), [params[n - 1] for n in mapping]


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


def miscount(wanted: int, given: int) -> errors.Error:
    return errors.from_sqlstate(
        "42P02", f"the statement takes {wanted} parameters, but {given} were given"
    )


@functools.lru_cache(maxsize=64)  # (one per kept plan at most: they can be large)
def _format(sql: str) -> tuple[str, tuple[int, ...] | None, int]:
    """(text, the parameter number of each ``%s`` (() for qmarks), how many parameters it
    takes); None: no markers."""
    if "?" not in sql and "$" not in sql:
        return sql, None, 0
    found = [m for m in _MARKERS.finditer(sql) if m.group("qmark") or m.group("number")]
    if not found:
        return sql, None, 0
    if any(m.group("qmark") for m in found) and any(m.group("number") for m in found):
        raise errors.ProgrammingError("? and $n parameter markers cannot be mixed")
    order = tuple(int(m.group("number")) for m in found if m.group("number"))

    def replace(match: re.Match[str]) -> str:
        if match.group("qmark") or match.group("number"):
            return "%s"
        return match.group(0).replace("%", "%%")

    return _MARKERS.sub(replace, sql), order, max(order) if order else len(found)
