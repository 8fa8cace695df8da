"""The gateway's PostgreSQL proxy's books of messages (proxy.py): what each message it forwards
to the server still waits for, which of the client's messages the event loop may pass on itself,
and the bytes it looks at in the server's answers."""

from __future__ import annotations

import struct

from sqlml.wire import protocol as p

# What each message forwarded to the server still waits for. QUERY and SYNC end with
# ReadyForQuery; INNER is a Query of the proxy's own whose ReadyForQuery the client must not see
# (one statement of a split Query); POISON aborts the server's transaction after an error of the
# proxy's, and nothing of it reaches the client.
# OWN_PARSE and OWN_CLOSE parse a prepared ML statement again (followed.py); their answers are
# the proxy's own too.
QUERY, SYNC, INNER, POISON, PARSE, BIND, DESCRIBE, EXECUTE, CLOSE = range(9)
OWN_PARSE, OWN_CLOSE = 9, 10
# the proxy's own statements of the prediction log (logged.py), and its own Sync
OWN_BIND, OWN_EXECUTE, OWN_SYNC = 11, 12, 13
ENDS_AT_READY = (QUERY, SYNC, INNER, POISON, OWN_SYNC)
TERMINAL: dict[int, bytes] = {
    PARSE: b"1",  # ParseComplete
    BIND: b"2",  # BindComplete
    CLOSE: b"3",  # CloseComplete
    DESCRIBE: b"Tn",  # RowDescription or NoData (after ParameterDescription for a statement)
    EXECUTE: b"CIs",  # CommandComplete, EmptyQueryResponse or PortalSuspended
    OWN_PARSE: b"1",
    OWN_CLOSE: b"3",
    OWN_BIND: b"2",
    OWN_EXECUTE: b"CIs",
}
OWN = (OWN_PARSE, OWN_CLOSE, OWN_BIND, OWN_EXECUTE)
KINDS = {p.Parse: PARSE, p.Bind: BIND, p.Describe: DESCRIBE, p.Execute: EXECUTE, p.Close: CLOSE}
OWN_KINDS = {p.Parse: OWN_PARSE, p.Bind: OWN_BIND, p.Execute: OWN_EXECUTE, p.Close: OWN_CLOSE}
HIDDEN_READY = (INNER, OWN_SYNC)  # kinds whose ReadyForQuery the client must not see
C_BYTE = ord("C")
Z_BYTE, E_BYTE = ord("Z"), ord("E")
LENGTH = struct.Struct("!I")
# The client's messages the event loop may pass on itself (forward_fast), with what each then
# waits for: Flush and COPY data wait for nothing. Query and Parse only if they cannot be ML.
FAST: dict[int, int | None] = {
    ord("Q"): QUERY,
    ord("P"): PARSE,
    ord("B"): BIND,
    ord("D"): DESCRIBE,
    ord("E"): EXECUTE,
    ord("C"): CLOSE,
    ord("S"): SYNC,
    ord("H"): None,
    ord("d"): None,
    ord("c"): None,
    ord("f"): None,
}
TEXT = frozenset(b"QP")
SYNC_BYTE = ord("S")
COPY_END = frozenset(b"cf")
COPY_IN = frozenset(b"GW")  # CopyInResponse, CopyBothResponse: the server waits for the client
# A constant statement that fails, to abort the server's transaction (no user text in it).
ABORT = (
    "DO $sqlml$BEGIN RAISE EXCEPTION 'sqlml: transaction aborted by an error in an ML statement';"
    " END$sqlml$"
)


def query_text(kind: int, data: bytes, start: int, end: int) -> str:
    """The query of a Query (``Q``: the text) or Parse (``P``: a name, then the text) message
    body ``data[start:end]``, to look for ML in (latin-1: any byte is a character, and every
    character of an ML keyword is ASCII)."""
    if kind == ord("P"):
        start = data.find(0, start, end) + 1  # (no name: a malformed message, read whole)
    stop = data.find(0, start, end)
    return data[start : end if stop < 0 else stop].decode("latin-1")


def error_fields(data: bytes) -> dict[str, str]:
    """An ErrorResponse message's fields (logged.py: a shadow's error, said as a NOTICE)."""
    reader = p.BackendReader()
    reader.feed(data)
    message = reader.next()
    return message.fields if isinstance(message, p.ErrorResponse) else {}
