"""PostgreSQL's command tags (CommandComplete), from a statement's first words.

A client reads the tag: psycopg's ``statusmessage`` and ``rowcount``, JDBC's update counts, psql's
echo (``INSERT 0 3``), pools that watch for ``DISCARD ALL``. The rules are PostgreSQL 15's (its
``CreateCommandTag``), checked statement by statement against a real server in
tests/test_gateway_clients.py: a row count after INSERT (``INSERT 0 n``), UPDATE, DELETE, MERGE,
COPY, FETCH, MOVE and SELECT; ``CREATE TABLE ... AS`` and ``CREATE MATERIALIZED VIEW ... AS`` are
``SELECT n``; the object kind after CREATE, DROP and ALTER (``OR REPLACE``, ``TEMP`` and
``UNIQUE`` left out); ``TRUNCATE TABLE``, ``DECLARE CURSOR``, ``CLOSE CURSOR [ALL]``,
``DEALLOCATE [ALL]``, ``DISCARD ALL``, ``START TRANSACTION``; END is COMMIT and ABORT ROLLBACK.
"""

from __future__ import annotations

from sqlml.grammar import lexer

_COUNTED = frozenset({"UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE", "SELECT"})
_DEFINES = frozenset({"CREATE", "DROP", "ALTER"})
# words between CREATE and the kind of object that the tag leaves out
_MODIFIERS = frozenset(
    {"OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE", "TRUSTED",
     "PROCEDURAL", "RECURSIVE", "DEFAULT", "CONSTRAINT", "PERSISTENT"}
)  # fmt: skip
# kinds of two words (CREATE MATERIALIZED VIEW, DROP FOREIGN TABLE ...)
_TWO_WORDS = frozenset({"MATERIALIZED", "FOREIGN", "EVENT", "ACCESS"})
_ALIASES = {"END": "COMMIT", "ABORT": "ROLLBACK", "TRUNCATE": "TRUNCATE TABLE"}
_WITH_ALL = frozenset({"DEALLOCATE", "DISCARD"})


def command_tag(sql: str, count: int) -> str:
    """The tag PostgreSQL ends ``sql`` with, ``count`` its rows (affected or returned)."""
    words = _words(sql, 8)
    head = words[0] if words else ""
    if head in ("WITH", "VALUES", "TABLE", ""):
        head = _main_statement(sql)
    count = max(count, 0)
    if head == "INSERT":
        return f"INSERT 0 {count}"
    if head in _COUNTED:
        return f"{head} {count}"
    if head in _DEFINES:
        return _definition(sql, words, count)
    if head in _WITH_ALL:
        return _with_all(head, words)
    if head == "DECLARE":
        return "DECLARE CURSOR"
    if head == "CLOSE":
        return "CLOSE CURSOR ALL" if words[1:2] == ["ALL"] else "CLOSE CURSOR"
    if head == "START":
        return "START TRANSACTION"
    return _ALIASES.get(head, head)


def _definition(sql: str, words: list[str], count: int) -> str:
    kind = [w for w in words[1:] if w not in _MODIFIERS][:2]
    if not kind:
        return words[0]
    name = " ".join(kind) if kind[0] in _TWO_WORDS else kind[0]
    if words[0] == "CREATE" and name in ("TABLE", "MATERIALIZED VIEW") and _as_query(sql):
        return f"SELECT {count}"
    return f"{words[0]} {name}"


def _with_all(head: str, words: list[str]) -> str:
    """``DEALLOCATE [PREPARE] ALL`` and ``DISCARD ALL`` name what they discard."""
    rest = [w for w in words[1:] if w != "PREPARE"]
    if head == "DISCARD" and rest:
        return f"DISCARD {rest[0]}"
    return f"{head} ALL" if rest[:1] == ["ALL"] else head


def _as_query(sql: str) -> bool:
    """Whether a CREATE TABLE's ``AS`` (outside parentheses) is followed by a query."""
    depth, after_as = 0, False
    for token in lexer.tokens(sql):
        if token.kind == lexer.COMMENT:
            continue
        text = token.text(sql).upper()
        if after_as:
            return text in ("SELECT", "WITH", "VALUES", "TABLE", "(", "FROM")
        depth += {"(": 1, ")": -1}.get(text, 0)
        after_as = depth == 0 and token.kind == lexer.WORD and text == "AS"
    return False


_MAIN = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"})


def _main_statement(sql: str) -> str:
    """What a ``WITH`` (or a parenthesized query, VALUES, TABLE) is: the first of SELECT, INSERT,
    UPDATE, DELETE, MERGE outside parentheses; SELECT if none."""
    depth = 0
    for token in lexer.tokens(sql):
        text = token.text(sql).upper()
        depth += {"(": 1, ")": -1}.get(text, 0)
        if depth == 0 and token.kind == lexer.WORD and text in _MAIN:
            return text
    return "SELECT"


def _words(sql: str, count: int) -> list[str]:
    """The first ``count`` words of ``sql`` upper-cased (up to its first non-word token)."""
    found: list[str] = []
    for token in lexer.tokens(sql):
        if token.kind == lexer.COMMENT:
            continue
        if token.kind != lexer.WORD or len(found) == count:
            break
        found.append(token.text(sql).upper())
    return found
