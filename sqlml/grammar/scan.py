"""Cheap text scanning that needs no parser: splitting scripts, spotting statements that may be ML.

Every statement of every front door passes through here, so this is kept to regular expressions
and ``str.find``: a statement is never tokenized just to learn that it is plain SQL.

The scanner walks a script from one *lexical unit that can hide a semicolon* to the next: quoted
strings (``'...'``, ``E'...'`` with backslash escapes), quoted identifiers (``"..."``,
`` `...` ``), dollar-quoted strings (``$$...$$``, ``$tag$...$tag$``), ``--`` comments and
``/* */`` comments (nested, as in PostgreSQL). Everything between units is plain text, where a
``;`` ends a statement. An unterminated unit runs to the end of the script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_ML = re.compile(r"\bmodels?\b|\bml\s*\.", re.IGNORECASE)

_UNIT = re.compile(
    r"""
      (?P<semicolon>;)
    | (?P<estring>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`)
    | (?P<dollar>(?<![\w$])\$(?:[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$)
    | (?P<line>--[^\n]*)
    | (?P<block>/\*)
    | (?P<open>['"`].*)
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_COMMENTS = ("line", "block")


def may_be_ml(sql: str) -> bool:
    """Whether ``sql`` may be an ML statement: it has the word MODEL or MODELS, or ``ML.``.

    A cheap over-approximation (quotes and comments are not skipped): a statement for which
    this is False is plain SQL and goes to the engine unparsed.
    """
    return _ML.search(sql) is not None


def split_script(script: str) -> list[str]:
    """The statements of ``script``: split on top-level semicolons, stripped of surrounding
    whitespace; empty statements (nothing but whitespace and comments) are dropped."""
    statements = []
    start = position = 0
    has_content = False
    for kind, begin, end, _ in _units(script):
        if script[position:begin].strip() or kind not in (*_COMMENTS, "semicolon"):
            has_content = True
        if kind == "semicolon":
            if has_content:
                statements.append(script[start:begin].strip())
            start, has_content = end, False
        position = end
    if has_content or script[position:].strip():
        statements.append(script[start:].strip())
    return statements


def unterminated(sql: str) -> int | None:
    """The 0-based offset where an unterminated string, identifier or comment begins, if any."""
    return next((begin for _, begin, _, closed in _units(sql) if not closed), None)


def _units(script: str) -> Iterator[tuple[str, int, int, bool]]:
    """(kind, begin, end, closed) of each lexical unit that can hide a semicolon, in order."""
    position = 0
    while (match := _UNIT.search(script, position)) is not None:
        kind = match.lastgroup or ""
        begin, end = match.span()
        closed = kind != "open"
        if kind == "dollar":
            end, closed = _after(script, match.group(), end)
        elif kind == "block":
            end, closed = _block_end(script, end)
        yield kind, begin, end, closed
        position = end


def _after(script: str, closer: str, position: int) -> tuple[int, bool]:
    found = script.find(closer, position)
    return (len(script), False) if found < 0 else (found + len(closer), True)


def _block_end(script: str, position: int) -> tuple[int, bool]:
    """The end of a ``/* */`` comment whose opening ends at ``position`` (comments nest)."""
    depth = 1
    for edge in _BLOCK_EDGE.finditer(script, position):
        depth += 1 if edge.group() == "/*" else -1
        if depth == 0:
            return edge.end(), True
    return len(script), False
