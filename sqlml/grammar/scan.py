"""Cheap text scanning that needs no parser: splitting scripts, spotting statements that may be ML.

Every statement of every front door passes through here, so this is kept to regular expressions
and ``str.find``: a statement is never tokenized just to learn that it is plain SQL.

The scanner jumps from one character that can open a *unit hiding semicolons* to the next
(``; ' " ` $ -- /*``) and skips the whole unit: quoted strings (``'...'``, and ``E'...'`` with
backslash escapes), quoted identifiers (``"..."``, `` `...` ``), dollar-quoted strings
(``$$...$$``, ``$tag$...$tag$``), ``--`` comments and ``/* */`` comments (nested, as in
PostgreSQL). A ``;`` outside units ends a statement; an unterminated unit runs to the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_ML = re.compile(r"\bmodels?\b|\bml\s*\.", re.IGNORECASE)

_OPENER = re.compile(r"[;'\"`$]|--|/\*")
_STRING = re.compile(r"'[^']*(?:''[^']*)*'")
_ESCAPE_STRING = re.compile(r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
_IDENTIFIER = {'"': re.compile(r'"[^"]*(?:""[^"]*)*"'), "`": re.compile(r"`[^`]*(?:``[^`]*)*`")}
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$")
_BLOCK_EDGE = re.compile(r"/\*|\*/")

Unit = tuple[str, int, int, bool]  # kind (the opening characters), begin, end, closed


def may_be_ml(sql: str) -> bool:
    """Whether ``sql`` may be an ML statement: it has the word MODEL or MODELS, or ``ML.``.

    A cheap over-approximation (quotes and comments are not skipped): a statement for which
    this is False is plain SQL and goes to the engine unparsed.
    """
    lowered = sql.lower()
    if "model" not in lowered and "ml" not in lowered:
        return False
    return _ML.search(sql) is not None


def split_script(script: str) -> list[str]:
    """The statements of ``script``: split on top-level semicolons, stripped of surrounding
    whitespace; empty statements (nothing but whitespace and comments) are dropped."""
    if ";" not in script and "--" not in script and "/*" not in script:
        return [script.strip()] if script.strip() else []  # the common case: one statement
    statements = []
    start = position = 0
    has_content = False
    for kind, begin, end, _ in _units(script):
        if kind not in ("--", "/*", ";") or script[position:begin].strip():
            has_content = True
        if kind == ";":
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


def _units(script: str) -> Iterator[Unit]:
    """Each unit that can hide a semicolon, and each top-level semicolon, in order."""
    position = 0
    while (opener := _OPENER.search(script, position)) is not None:
        unit = _SKIP[opener.group()](script, opener.start())
        if unit is None:  # a lone $ (a parameter like $1, or inside a name)
            position = opener.end()
            continue
        yield unit
        position = unit[2]


def _semicolon(script: str, begin: int) -> Unit:
    return ";", begin, begin + 1, True


def _quoted(pattern: re.Pattern[str], kind: str, script: str, begin: int) -> Unit:
    match = pattern.match(script, begin)
    return (kind, begin, match.end(), True) if match else (kind, begin, len(script), False)


def _string(script: str, begin: int) -> Unit:
    escapes = begin > 0 and script[begin - 1] in "eE" and not _word_at(script, begin - 2)
    if escapes:
        kind, _, end, closed = _quoted(_ESCAPE_STRING, "'", script, begin)
        return kind, begin - 1, end, closed
    return _quoted(_STRING, "'", script, begin)


def _identifier(script: str, begin: int) -> Unit:
    quote = script[begin]
    return _quoted(_IDENTIFIER[quote], quote, script, begin)


def _dollar(script: str, begin: int) -> Unit | None:
    tag = _DOLLAR_TAG.match(script, begin)
    if tag is None or _word_at(script, begin - 1):
        return None
    found = script.find(tag.group(), tag.end())
    closed = found >= 0
    return "$", begin, found + len(tag.group()) if closed else len(script), closed


def _line_comment(script: str, begin: int) -> Unit:
    found = script.find("\n", begin)
    return "--", begin, len(script) if found < 0 else found, True


def _block_comment(script: str, begin: int) -> Unit:
    depth = 1
    for edge in _BLOCK_EDGE.finditer(script, begin + 2):
        depth += 1 if edge.group() == "/*" else -1
        if depth == 0:
            return "/*", begin, edge.end(), True
    return "/*", begin, len(script), False


def _word_at(script: str, index: int) -> bool:
    """Whether ``script[index]`` exists and is part of a word (a name or a number)."""
    return index >= 0 and (script[index].isalnum() or script[index] in "_$")


_SKIP: dict[str, Callable[[str, int], Unit | None]] = {
    ";": _semicolon,
    "'": _string,
    '"': _identifier,
    "`": _identifier,
    "$": _dollar,
    "--": _line_comment,
    "/*": _block_comment,
}
