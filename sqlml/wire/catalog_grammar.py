"""The grammars of PostgreSQL's session statements the catalog emulation answers itself (SET,
BEGIN, COMMIT, ROLLBACK, DECLARE, FETCH ...), read from the lexer's tokens.

Each function takes what follows a statement's first word and returns what the statement says,
or None when it is not the form this module knows (then DuckDB reads the statement and has the
last word). Reading tokens, not characters, is what keeps strings, quoted names and comments
where the one lexer (grammar/lexer.py) says they are: ``SET x = 'a -- b'`` has no comment and
``COMMIT /* AND CHAIN */`` no chain.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlml.grammar import lexer

NOOP = "noop"  # a SET that the emulation accepts and ignores (SET ROLE, SET TRANSACTION ...)


class _Cursor:
    """The non-comment tokens of a text, read from the front."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = [t for t in lexer.tokens(text) if t.kind != lexer.COMMENT]
        self.at = 0

    def done(self) -> bool:
        return self.at >= len(self.tokens)

    def word(self, offset: int = 0) -> str | None:
        """The upper-cased word ``offset`` tokens ahead, if that token is a word."""
        index = self.at + offset
        if index >= len(self.tokens) or self.tokens[index].kind != lexer.WORD:
            return None
        return self.tokens[index].text(self.text).upper()

    def take(self, *words: str) -> bool:
        """Takes ``words`` if the text goes on with them."""
        if all(self.word(i) == w for i, w in enumerate(words)):
            self.at += len(words)
            return True
        return False

    def take_op(self, op: str) -> bool:
        token = None if self.done() else self.tokens[self.at]
        if token is not None and token.kind == lexer.OP and token.text(self.text) == op:
            self.at += 1
            return True
        return False

    def take_number(self) -> str | None:
        """An integer, with its sign: ``5``, ``-5``."""
        sign = "-" if self.take_op("-") else ""
        token = self.tokens[self.at] if not self.done() else None
        if token is None or token.kind != lexer.NUMBER or not token.text(self.text).isdigit():
            self.at -= bool(sign)
            return None
        self.at += 1
        return sign + token.text(self.text)

    def name(self) -> str | None:
        """A name as written: ``"quoted"``, a word, or words joined by dots (``app.user_id``)."""
        if self.done():
            return None
        first = self.tokens[self.at]
        if first.kind == lexer.NAME and first.text(self.text).startswith('"'):
            self.at += 1
            return first.text(self.text)
        if first.kind != lexer.WORD:
            return None
        last = self.at
        while self._dot_word(last):
            last += 2
        self.at = last + 1
        return self.text[first.start : self.tokens[last].end]

    def _dot_word(self, index: int) -> bool:
        """Whether a ``.word`` follows the word at ``index``, with nothing between."""
        if index + 2 >= len(self.tokens):
            return False
        dot, word = self.tokens[index + 1], self.tokens[index + 2]
        return (
            dot.kind == lexer.OP
            and dot.text(self.text) == "."
            and word.kind == lexer.WORD
            and dot.start == self.tokens[index].end
            and word.start == dot.end
        )

    def rest(self) -> str:
        """The text from the next token to the end ('' at the end), as written."""
        return "" if self.done() else self.text[self.tokens[self.at].start :].strip()


# -- SET -------------------------------------------------------------------------------------------

_SET_NOOPS = (
    ("TRANSACTION",),
    ("SESSION", "CHARACTERISTICS"),
    ("ROLE",),
    ("SESSION", "AUTHORIZATION"),
    ("CONSTRAINTS",),
)


def set_statement(text: str) -> str | tuple[str, str] | None:
    """``SET [SESSION | LOCAL] ...``: NOOP, the setting's name (as written) and its value's
    text, or None. ``TIME ZONE``, ``NAMES`` and ``SCHEMA`` give ``"TimeZone"``,
    ``"client_encoding"`` and ``"search_path"``."""
    cursor = _Cursor(text)
    if any(cursor.take(*words) for words in _SET_NOOPS):
        return NOOP
    if cursor.word() in ("SESSION", "LOCAL"):
        cursor.at += 1
        if any(cursor.take(*words) for words in _SET_NOOPS):
            return NOOP
    start = cursor.at
    name = cursor.name()
    if name is not None and (cursor.take_op("=") or cursor.take("TO")):
        return name, cursor.rest()
    cursor.at = start
    for words, setting in _SPECIAL:
        if cursor.take(*words):
            return setting, cursor.rest()
    return None


_SPECIAL = (
    (("TIME", "ZONE"), '"TimeZone"'),
    (("NAMES",), '"client_encoding"'),
    (("SCHEMA",), '"search_path"'),
)  # (the names as a quoted name reads: SET TIME ZONE is SET "TimeZone")


# -- transactions ----------------------------------------------------------------------------------


def only_transaction_words(text: str) -> bool:
    """Whether ``text`` (after BEGIN) is empty, ``WORK`` or ``TRANSACTION``."""
    cursor = _Cursor(text)
    _ = cursor.take("WORK") or cursor.take("TRANSACTION")
    return cursor.done()


def starts_with(text: str, word: str) -> bool:
    """Whether the first token of ``text`` is the word ``word`` (upper case)."""
    return _Cursor(text).word() == word


def after_first(text: str) -> str:
    """``text`` after its first token."""
    cursor = _Cursor(text)
    cursor.at += 1
    return cursor.rest()


class Chain(NamedTuple):
    chain: bool  # AND CHAIN (not AND NO CHAIN)


def commit_chain(text: str) -> Chain | None:
    """``[WORK | TRANSACTION] [AND [NO] CHAIN]`` after COMMIT, END or ROLLBACK, or None."""
    cursor = _Cursor(text)
    _ = cursor.take("WORK") or cursor.take("TRANSACTION")
    chain = False
    if cursor.take("AND"):
        no = cursor.take("NO")
        if not cursor.take("CHAIN"):
            return None
        chain = not no
    return Chain(chain) if cursor.done() else None


def rollback_to(text: str) -> bool:
    """Whether ``text`` (after ROLLBACK) is ``[WORK | TRANSACTION] TO ...``."""
    cursor = _Cursor(text)
    _ = cursor.take("WORK") or cursor.take("TRANSACTION")
    return cursor.word() == "TO"


# -- cursors ---------------------------------------------------------------------------------------

_CURSOR_OPTIONS = ("BINARY", "ASENSITIVE", "INSENSITIVE", "SCROLL")


def declare(text: str) -> tuple[str, str] | None:
    """``name [BINARY | ...] CURSOR [WITH | WITHOUT HOLD] FOR query``: the name as written and
    the query, or None."""
    cursor = _Cursor(text)
    name = cursor.name()
    if name is None:
        return None
    while cursor.word() in _CURSOR_OPTIONS or cursor.take("NO", "SCROLL"):
        if cursor.word() in _CURSOR_OPTIONS:
            cursor.at += 1
    if not cursor.take("CURSOR"):
        return None
    _ = cursor.take("WITH", "HOLD") or cursor.take("WITHOUT", "HOLD")
    if not cursor.take("FOR") or cursor.done():
        return None
    return name, cursor.rest()


def fetch(text: str) -> tuple[str, str] | None:
    """``[direction] [FROM | IN] name`` after FETCH or MOVE: the direction in upper case, words
    separated by one space (NEXT when none is given), and the cursor's name as written."""
    for with_direction in (True, False):
        cursor = _Cursor(text)
        direction = _direction(cursor) if with_direction else "NEXT"
        if direction is None:
            continue
        _ = cursor.take("FROM") or cursor.take("IN")
        name = cursor.name()
        if name is not None and cursor.done():
            return direction, name
    return None


_ONE_WORD = ("NEXT", "FIRST", "PRIOR", "LAST", "ALL")


def _direction(cursor: _Cursor) -> str | None:
    word = cursor.word()
    if word in _ONE_WORD:
        cursor.at += 1
        return word
    if word in ("FORWARD", "BACKWARD"):
        cursor.at += 1
        if cursor.take("ALL"):
            return f"{word} ALL"
        count = cursor.take_number()
        if count is not None and not count.startswith("-"):
            return f"{word} {count}"
        if count is not None:
            cursor.at -= 2  # (a negative count is no direction: FORWARD is read alone)
        return word
    if word in ("ABSOLUTE", "RELATIVE"):
        cursor.at += 1
        count = cursor.take_number()
        return None if count is None else f"{word} {count}"
    return cursor.take_number()


# -- PREPARE / DEALLOCATE --------------------------------------------------------------------------

ALL = "ALL"  # DEALLOCATE ALL


def deallocate(text: str) -> str | None:
    """``[PREPARE] { name | ALL }`` after DEALLOCATE: :data:`ALL` or the name as written."""
    cursor = _Cursor(text)
    cursor.take("PREPARE")
    if cursor.take("ALL"):
        return ALL if cursor.done() else None
    name = cursor.name()
    return name if name is not None and cursor.done() else None


def prepare(text: str) -> tuple[str, str] | None:
    """``name [( type, ... )] AS statement`` after PREPARE: the name as written and the
    statement, or None."""
    cursor = _Cursor(text)
    name = cursor.name()
    if name is None:
        return None
    if cursor.take_op("("):
        depth = 1
        while not cursor.done() and depth:
            depth += {"(": 1, ")": -1}.get(cursor.tokens[cursor.at].text(text), 0)
            cursor.at += 1
    if not cursor.take("AS") or cursor.done():
        return None
    return name, cursor.rest()
