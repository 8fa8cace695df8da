"""``sqlml.sqlstate_in_message``: a session setting that puts the SQLSTATE in front of the
message of each error sqlml raises (``sqlml 22023: model_type 'x' is not supported``).

Why: a client that shows an error's message alone hides its SQLSTATE. dbt-postgres is one (its
error is ``str()`` of psycopg2's exception); psql shows it only with ``\\set VERBOSITY
verbose``. The ErrorResponse keeps its SQLSTATE field either way; the setting is off by default,
so a client sees PostgreSQL's own message shape unless it asks.

Where it is read: the gateway over DuckDB answers SET, SHOW and RESET of it itself (DuckDB has
no such setting); in PostgreSQL it is a custom setting of the server, which the extension's
functions read when they raise (postgres/server.call), so it is transactional there as any
SET is.
"""

from __future__ import annotations

from sqlml import errors
from sqlml.grammar import lexer

NAME = "sqlml.sqlstate_in_message"
_WORDS = ("SQLML", ".", "SQLSTATE_IN_MESSAGE")
CURRENT = "SELECT current_setting('sqlml.sqlstate_in_message', true) AS v"  # (PostgreSQL)
_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})


def boolean(value: str | None) -> bool:
    """A setting's text as PostgreSQL reads a boolean (on/off, true/false, yes/no, 1/0);
    22023 for any other text."""
    text = (value or "").strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise errors.InvalidParameterValue(f'parameter "{NAME}" requires a Boolean value')


def is_on(value: str | None) -> bool:
    """Whether a stored value of the setting (None or '': never set) is on."""
    return bool(value) and (value or "").strip().lower() in _TRUE


def statement(sql: str) -> tuple[str, bool | None] | None:
    """``('SET', value)``, ``('SHOW', None)``, ``('RESET', None)`` or ``('LOCAL', value)``
    for a statement on the setting, None for any other statement; read from the one lexer's
    tokens. A value that is no boolean is 22023; a SET with no value or more is 42601."""
    if not set(lexer.head(sql, 5)) & {"SQLSTATE_IN_MESSAGE"}:  # (before reading it all)
        return None
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    texts = [t.text(sql) for t in found]
    upper = [text.upper() for text in texts]
    if upper and upper[-1] == ";":
        del found[-1], texts[-1], upper[-1]
    head = upper[0] if upper else ""
    if head == "SET" and upper[1:2] in (["SESSION"], ["LOCAL"]):
        head = "LOCAL" if upper[1] == "LOCAL" else "SET"
        del found[1], texts[1], upper[1]
    if head not in ("SET", "LOCAL", "SHOW", "RESET") or tuple(upper[1:4]) != _WORDS:
        return None
    if head in ("SHOW", "RESET"):
        return (head, None) if len(upper) == 4 else None
    if len(upper) != 6 or upper[4] not in ("=", "TO"):
        raise errors.SyntaxError(f"SET {NAME} takes one value: on or off", position=1)
    value = texts[5]
    if found[5].kind == lexer.STRING:
        value = value[1:-1].replace("''", "'")
    return head, boolean(value)


def prefixed(error: errors.Error) -> errors.Error:
    """``error`` with its SQLSTATE in front of its message (the same SQLSTATE, detail, hint
    and position)."""
    return errors.from_sqlstate(
        error.sqlstate,
        f"sqlml {error.sqlstate}: {error.message}",
        detail=error.detail,
        hint=error.hint,
        position=error.position,
    )
