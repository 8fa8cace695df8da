"""The one SQL lexer: where statements, strings, comments, names, parameters and words are.

Every part of sqlml that needs to know where something is in SQL text asks this module: the
script splitter, the ML recognizer, the parameter markers of the engines, the wire session's
statement heads, the DuckDB gateway's catalog pre-check, the proxy. One lexer means one answer:
a ``$2`` inside a string is never a parameter anywhere, a leading comment never hides a COPY.

Theory of operation
-------------------
The lexer follows PostgreSQL's scanner (scan.l) for the units that can hide anything:

- ``'...'`` strings (``''`` is a quote inside); ``E'...'`` strings with backslash escapes (the
  ``E`` must stand alone: ``name'x'`` is a name and then a string); ``B'..'``, ``X'..'``,
  ``N'..'`` and ``U&'..'`` strings are a word followed by a plain string, which is what matters;
- ``$tag$ ... $tag$`` dollar-quoted strings (a tag is a name that does not start with a digit);
- ``"..."`` quoted names (``""`` inside), and `` `...` `` names (DuckDB and BigQuery);
- ``-- ...`` line comments and ``/* ... */`` block comments, which nest as in PostgreSQL;
- ``$n`` parameters and ``?`` markers (sqlml's paramstyle), never inside a word (``a$1``) nor
  followed by one (``$1x`` is no parameter: PostgreSQL refuses it as trailing junk);
- ``;``, which ends a statement outside all of the above.

An unterminated unit runs to the end of the text and is marked ``closed=False``.

Two ways to walk a text, which agree on every unit:

- :func:`tokens` yields every token (words, numbers and single-character operators too): for
  statement heads and the ML grammar, on short texts or their first few tokens;
- :func:`units` yields only the units above, jumping over everything else with one search per
  unit: linear in the text, and it searches at most ``WINDOW`` characters per call, so a scan of
  a 60 MB statement never holds the interpreter lock for long (other clients' threads and the
  gateway's event loop go on while it runs).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import NamedTuple

WINDOW = 1 << 20  # characters searched per call by units(): bounds how long one call holds the GIL
_OVERLAP = 128  # a unit's opener is at most this long (a dollar tag is a name of <= 63 bytes)

# token kinds
WORD = "word"  # a keyword or an unquoted name
NAME = "name"  # a quoted name: "..." or `...`
STRING = "string"  # '...' or E'...'
DOLLAR = "dollar"  # $tag$...$tag$
NUMBER = "number"
PARAM = "param"  # $n
QMARK = "qmark"  # ?
OP = "op"  # any other character (:: is one token)
SEMICOLON = "semicolon"
COMMENT = "comment"  # -- ... or /* ... */


class Token(NamedTuple):
    kind: str
    start: int
    end: int
    closed: bool = True

    def text(self, sql: str) -> str:
        return sql[self.start : self.end]


_WORD_CHAR = r"[\w$]"
_NOT_AFTER_WORD = r"(?<![\w$])"
_TAG = r"\$(?:[^\W\d]\w*)?\$"

# The openers of units, for units(): each alternative is a group named after what it opens.
_UNIT = re.compile(
    rf"""(?P<semicolon>;)
      | (?P<comment>--|/\*)
      | (?P<estring>{_NOT_AFTER_WORD}[eE]')
      | (?P<string>')
      | (?P<name>["`])
      | (?P<param>{_NOT_AFTER_WORD}\$[0-9]+(?![\w$]))
      | (?P<dollar>{_NOT_AFTER_WORD}{_TAG})
      | (?P<qmark>\?)""",
    re.VERBOSE,
)

# Every token, for tokens(): tried at the start of each token (white space skipped first); the
# same look-behinds as _UNIT, so that both walks agree after a lone $ (an operator here).
_TOKEN = re.compile(
    rf"""(?P<comment>--|/\*)
      | (?P<estring>{_NOT_AFTER_WORD}[eE]')
      | (?P<string>')
      | (?P<name>["`])
      | (?P<param>{_NOT_AFTER_WORD}\$[0-9]+(?![\w$]))
      | (?P<dollar>{_NOT_AFTER_WORD}{_TAG})
      | (?P<word>[^\W\d]{_WORD_CHAR}*)
      | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
      | (?P<semicolon>;)
      | (?P<qmark>\?)
      | (?P<op>::|.)""",
    re.VERBOSE | re.DOTALL,
)
_SPACE = re.compile(r"\s*")


def _skip_space(sql: str, position: int) -> int:
    found = _SPACE.match(sql, position)
    return found.end() if found else position


_STRING_BODY = re.compile(r"[^']*(?:''[^']*)*'")
_ESCAPE_BODY = re.compile(r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
_NAME_BODY = {'"': re.compile(r'[^"]*(?:""[^"]*)*"'), "`": re.compile(r"[^`]*(?:``[^`]*)*`")}
_BLOCK_EDGE = re.compile(r"/\*|\*/")


def tokens(sql: str, start: int = 0) -> Iterator[Token]:
    """Every token of ``sql`` from ``start``, white space left out, comments included."""
    position = _skip_space(sql, start)
    while position < len(sql):
        found = _TOKEN.match(sql, position)
        if found is None or found.lastgroup is None:  # (cannot be: op matches any character)
            raise AssertionError(f"the lexer matched nothing at {position}")
        token = _unit(sql, found.lastgroup, found.start(), found.end())
        yield token
        position = _skip_space(sql, token.end)


def units(sql: str) -> Iterator[Token]:
    """The strings, quoted names, comments, parameters, ``?`` and ``;`` of ``sql``, in order."""
    position = 0
    while position < len(sql):
        limit = position + WINDOW
        found = _UNIT.search(sql, position, limit + _OVERLAP)
        if found is None or found.start() >= limit:
            if limit >= len(sql):
                return
            position = limit
            continue
        token = _unit(sql, found.lastgroup or OP, found.start(), found.end())
        yield token
        position = token.end


def _unit(sql: str, kind: str, start: int, opened: int) -> Token:
    """The whole token whose opener ``sql[start:opened]`` was found as ``kind``."""
    if kind == "comment":
        return _comment(sql, start)
    if kind in ("string", "estring"):
        body = _STRING_BODY if kind == "string" else _ESCAPE_BODY
        return _closed_by(body.match(sql, opened), STRING, sql, start)
    if kind == "name":
        return _closed_by(_NAME_BODY[sql[start]].match(sql, opened), NAME, sql, start)
    if kind == "dollar":
        found = sql.find(sql[start:opened], opened)
        closed = found >= 0
        return Token(DOLLAR, start, found + opened - start if closed else len(sql), closed)
    return Token(kind, start, opened)


def _closed_by(body: re.Match[str] | None, kind: str, sql: str, start: int) -> Token:
    return Token(kind, start, body.end()) if body else Token(kind, start, len(sql), False)


def _comment(sql: str, start: int) -> Token:
    if sql.startswith("--", start):
        found = sql.find("\n", start)
        return Token(COMMENT, start, len(sql) if found < 0 else found)
    depth = 1
    for edge in _BLOCK_EDGE.finditer(sql, start + 2):
        depth += 1 if edge.group() == "/*" else -1
        if depth == 0:
            return Token(COMMENT, start, edge.end())
    return Token(COMMENT, start, len(sql), False)


# -- what the rest of sqlml asks -------------------------------------------------------------------


def split(script: str) -> list[str]:
    """The statements of ``script``: cut at each ``;`` outside units, stripped of surrounding
    white space; statements with nothing but white space and comments are left out."""
    if ";" not in script:
        return [script.strip()] if not is_blank(script) else []
    statements, start = [], 0
    for token in units(script):
        if token.kind == SEMICOLON:
            statements.append(script[start : token.start])
            start = token.end
    statements.append(script[start:])
    return [s.strip() for s in statements if not is_blank(s)]


def is_blank(sql: str) -> bool:
    """Whether ``sql`` holds nothing but white space and comments."""
    return next((t for t in tokens(sql) if t.kind != COMMENT), None) is None


def unterminated(sql: str) -> int | None:
    """The offset where an unterminated string, quoted name or comment begins, if any."""
    return next((t.start for t in units(sql) if not t.closed), None)


def head(sql: str, count: int = 1) -> tuple[str, ...]:
    """The first ``count`` tokens of ``sql`` that are not comments, upper-cased words and
    operators as written (fewer at the end of the text): what a statement starts with."""
    found: list[str] = []
    for token in tokens(sql):
        if len(found) == count:
            break
        if token.kind != COMMENT:
            found.append(token.text(sql).upper() if token.kind == WORD else token.text(sql))
    return tuple(found)


def first_word(sql: str, *, after_parens: bool = False) -> str:
    """The first word of ``sql`` upper-cased ('' if it starts otherwise), after any ``(`` when
    ``after_parens``: a statement's kind (``(SELECT 1)`` is a query)."""
    for token in tokens(sql):
        if token.kind == COMMENT or (after_parens and token.text(sql) == "("):
            continue
        return token.text(sql).upper() if token.kind == WORD else ""
    return ""


def words(sql: str) -> Iterator[str]:
    """The words of ``sql`` (keywords and unquoted names), lower-cased, outside every unit."""
    for token in tokens(sql):
        if token.kind == WORD:
            yield token.text(sql).lower()


def parameters(sql: str) -> list[Token]:
    """The ``$n`` and ``?`` markers of ``sql`` outside units, in order."""
    if "$" not in sql and "?" not in sql:
        return []
    return [t for t in units(sql) if t.kind in (PARAM, QMARK)]


def parameter_numbers(sql: str) -> list[int]:
    """The numbers of the ``$n`` markers of ``sql``, in text order."""
    return [int(sql[t.start + 1 : t.end]) for t in parameters(sql) if t.kind == PARAM]


def wrapped_query(sql: str) -> tuple[int, int]:
    """Where the query inside DECLARE ... CURSOR FOR, EXPLAIN or COPY (...) TO starts and ends
    (psycopg's server-side cursors DECLARE one; EXPLAIN shows the plan of the SQL that runs):
    the query is rendered, the wrapping kept. (Kept for short texts: the gateway asks it for
    every ML query it renders, the same text again and again.)"""
    if first_word(sql) not in ("DECLARE", "EXPLAIN", "COPY"):
        return 0, len(sql)
    return _wrapped(sql) if len(sql) <= 1 << 14 else _wrapped.__wrapped__(sql)


@functools.lru_cache(maxsize=256)
def _wrapped(sql: str) -> tuple[int, int]:
    found = [t for t in tokens(sql) if t.kind != COMMENT]
    texts = [t.text(sql).upper() for t in found]
    first = texts[0] if texts else ""
    if first == "DECLARE" and "CURSOR" in texts:
        cursor = texts.index("CURSOR")
        after = next((i + 1 for i in range(cursor, len(texts)) if texts[i] == "FOR"), len(texts))
        return (found[after].start, len(sql)) if after < len(found) else (0, len(sql))
    if first == "EXPLAIN":
        return _after_explain_options(found, texts, sql)
    if first == "COPY" and texts[1:2] == ["("]:
        close = _closing(texts, 1)
        if close is not None and close > 2:
            return found[2].start, found[close].start
    return 0, len(sql)


def _after_explain_options(found: list[Token], texts: list[str], sql: str) -> tuple[int, int]:
    i = 1
    while i < len(texts):
        if texts[i] == "(":
            close = _closing(texts, i)
            i = len(texts) if close is None else close + 1
        elif texts[i] in ("ANALYZE", "VERBOSE"):
            i += 1
        else:
            return found[i].start, len(sql)
    return 0, len(sql)


def _closing(texts: list[str], opened: int) -> int | None:
    """The index of the ``)`` that closes the ``(`` at ``opened``."""
    depth = 0
    for i in range(opened, len(texts)):
        depth += (texts[i] == "(") - (texts[i] == ")")
        if depth == 0:
            return i
    return None


def replace(sql: str, pieces: Iterator[tuple[Token, str]]) -> str:
    """``sql`` with each token's text replaced by the string paired with it (tokens in order)."""
    out, position = [], 0
    for token, text in pieces:
        out.append(sql[position : token.start])
        out.append(text)
        position = token.end
    out.append(sql[position:])
    return "".join(out)
