"""The prediction log through the gateway's PostgreSQL proxy (predlog.py; proxy.py).

Theory of operation. The proxy sends the SQL that sqlml renders for an ML query to the server in
the client's place (engine.Session.ml_plan), so no Session runs it and nothing would log its
ML.PREDICT sample. The rendering comes with the statements that log it (predlog.Log), and the
proxy runs them on the same connection, in the client's transaction, after the query has
succeeded and before the client's ReadyForQuery, where the transaction can write
(predlog.writable: not in a read-only transaction, a hot standby's included). A model that logs
nothing renders no statements, and then nothing here runs: no round trip is added.

- Simple protocol (a Query): the query goes as a Query of the proxy's own whose ReadyForQuery the
  client does not see; then predlog.run logs through the proxy's engine (a shadow's INSERT under
  a savepoint, its failure a NOTICE). Outside a transaction block the proxy opens one around the
  two and commits it, so the query and its log commit or roll back together. A failure of the
  served sample's INSERT is the statement's error, after its rows.
- Extended protocol (Parse/Bind/Execute/Sync): the log statements are Parse/Bind/Execute/Close
  messages of the proxy's own (statement and portal names of its own: the client's unnamed
  statement is never replaced), sent when the client's Execute completed its portal
  (CommandComplete), bound with the client's Bind's parameter values in its formats (the ones
  a log statement does not use as NULL of type text), before the client's next message: they
  are in the batch's transaction, implicit or not, and a pipeline keeps its order. Their
  answers are the proxy's own; a served INSERT's error goes to the client as the batch's error
  (the server skips the rest until Sync, and so does the proxy). A portal fetched in parts
  (Execute with a row limit, PortalSuspended) is logged when its last part completes; one
  closed before that logs nothing (the query did not score all of its rows for the client).
  A shadow's INSERT runs under a savepoint (outside a transaction block the proxy first turns
  the batch's implicit transaction into a block, BEGIN, and ends it at the client's Sync:
  COMMIT, or ROLLBACK after an error); its error is hidden, the server leaves the error state
  with a Sync of the proxy's own, the savepoint is rolled back, and the client gets a NOTICE.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlml import scoring
from sqlml.engines import placeholders
from sqlml.predlog import Log
from sqlml.wire import protocol as p

STATEMENT = f"{scoring.HIDDEN}log"  # the proxy's own statement and portal
SAVEPOINT = f'"{scoring.HIDDEN}shadow"'  # (a constant: no user text)
_TEXT = 25  # the type OID of a parameter a log statement does not use (bound to NULL)


@dataclass(frozen=True)
class Logged:
    """A portal whose Execute logs ML.PREDICT's sample when it completes."""

    logs: tuple[Log, ...]
    bind: p.Bind  # the client's: its parameter values and their formats
    param_types: tuple[int, ...]  # the client's Parse's


def statement(sql: str, logged: Logged | None = None) -> list[p.FrontendMessage]:
    """One statement as messages of the proxy's own (no Sync): with ``logged``, bound to the
    client's parameter values that ``sql``'s markers use."""
    types: tuple[int, ...] = ()
    bind = p.Bind(STATEMENT, STATEMENT, (), (), ())
    if logged is not None:
        types, bind = _bound(sql, logged)
    closed = [p.Close("P", STATEMENT), p.Close("S", STATEMENT)]
    # (closed first too: after an error the server skipped the Close messages that followed)
    return [*closed, p.Parse(STATEMENT, sql, types), bind, p.Execute(STATEMENT, 0), *closed]


def _bound(sql: str, logged: Logged) -> tuple[tuple[int, ...], p.Bind]:
    """The parameter types and Bind of a log statement: the client's values of the markers it
    uses (as predlog.run slices them), NULL text for those it does not (PostgreSQL must know
    every parameter's type, and a marker the statement never reads has none)."""
    used = set(placeholders.numbers(sql))
    count = max(used, default=0)
    client = logged.bind
    declared = (*logged.param_types, *(0,) * count)[:count]
    types = tuple(declared[i] if i + 1 in used else declared[i] or _TEXT for i in range(count))
    values = tuple(client.params[i] if i + 1 in used else None for i in range(count))
    formats = client.param_formats
    if len(formats) > 1:  # (one per parameter: those of the markers up to the last it uses)
        formats = formats[:count]
    return types, p.Bind(STATEMENT, STATEMENT, formats, values, ())


def portal_name(kind: int, data: bytes, start: int, end: int) -> str | None:
    """The portal a Bind (``B``), Execute (``E``) or Close (``C``, of a portal) message body
    ``data[start:end]`` names; None for any other message."""
    if kind == ord("C"):
        if data[start : start + 1] != b"P":
            return None
        start += 1
    elif kind not in (ord("B"), ord("E")):
        return None
    stop = data.find(0, start, end)
    return data[start : end if stop < 0 else stop].decode("utf-8", "replace")
