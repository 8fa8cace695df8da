"""The PostgreSQL proxy's prepared ML statements, and how they follow a deploy.

A client's Parse of an ML query (psycopg 3's prepare=True, asyncpg's prepared statements,
JDBC's named statements) becomes the server's own prepared statement of the rendered SQL
(proxy.py), and that SQL holds the model version that served at Parse: its compiled graph
inlined, or its sha256. After a deploy (ALTER MODEL ... DEPLOY / ROLLBACK, CREATE OR REPLACE
MODEL) the server would go on running the old version's SQL at every Bind/Execute. So the proxy
remembers each such statement (its name, the client's query, the SQL the server holds) and at
a Bind that starts a new statement (the first after a Sync: Bind, Describe, Execute, Sync is one
execution) asks the sqlml engine whether the kept plan is still right, which costs one small
query on the connection (engine.Session._still_serves). When the serving version changed, the
proxy closes the server's statement and parses it again with the new SQL before it passes the
client's Bind on; the server's answers to those two messages of the proxy's own never reach the
client. A statement bound again before the next Sync (a pipeline, executemany) is not checked
again: that is one implicit transaction.

Names leave the books when the client's Parse, Close, DEALLOCATE or DISCARD ALL reuses or
drops them, so that a Bind of a plain statement by a name once used for an ML query is never
touched; the event loop's fast path (proxy.forward_fast) sends the messages that name one of
these statements to the worker, which keeps the books.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlml import grammar
from sqlml.grammar import lexer
from sqlml.wire import catalog_grammar

if TYPE_CHECKING:
    from sqlml.predlog import Log


@dataclass
class Prepared:
    """A client's prepared ML query as the server holds it."""

    query: str  # the client's query (transpiled, in BigQuery mode): what is rendered again
    rendered: str  # the SQL of the server's prepared statement
    param_types: tuple[int, ...]  # the client's Parse's, given again with a new Parse
    checked: int  # the session's Sync count when the rendering was last found right
    logs: tuple[Log, ...] = ()  # what logs its ML.PREDICT samples (wire/logged.py)


def message_name(kind: int, data: bytes, start: int, end: int) -> str | None:
    """The prepared statement a Parse (``P``), Bind (``B``) or Close (``C``, of a statement)
    message body ``data[start:end]`` names; None for any other message."""
    if kind == ord("B"):
        start = data.find(0, start, end) + 1  # (after the portal's name)
    elif kind == ord("C"):
        if data[start : start + 1] != b"S":
            return None
        start += 1
    elif kind != ord("P"):
        return None
    stop = data.find(0, start, end)
    return data[start : end if stop < 0 else stop].decode("utf-8", "replace")


def may_deallocate(lowered: str) -> bool:
    """Whether a Query's text (lower-cased) may drop prepared statements."""
    return "deallocate" in lowered or "discard" in lowered


def deallocated(sql: str) -> set[str] | None:
    """The prepared statements the statements of ``sql`` drop: DEALLOCATE [PREPARE] name
    (that name), DEALLOCATE ALL and DISCARD ALL (None: every one)."""
    dropped: set[str] = set()
    for statement in grammar.split_script(sql):
        head = lexer.first_word(statement)
        if head not in ("DEALLOCATE", "DISCARD"):
            continue
        first = next(t for t in lexer.tokens(statement) if t.kind != lexer.COMMENT)
        rest = statement[first.end :]
        if head == "DISCARD":
            if rest.strip().upper() == "ALL":
                return None
            continue
        target = catalog_grammar.deallocate(rest)
        if target == catalog_grammar.ALL:
            return None
        if target is not None:
            dropped.add(target)
    return dropped
