"""PostgreSQL's unconstrained ``numeric`` over DuckDB: DOUBLE, so that it keeps its digits.

DuckDB reads ``numeric`` and ``decimal`` without a precision as DECIMAL(18,3): three digits after
the point, so ``round(0.87243::numeric, 4)`` is 0.872 where PostgreSQL prints 0.8724, and a
``numeric`` column silently rounds what it stores. PostgreSQL's unconstrained numeric keeps every
digit it is given. No fixed-scale DECIMAL does both things well (DECIMAL(38,10) prints
``1.25::numeric`` as 1.2500000000 and overflows products), so the gateway reads the unconstrained
type as DOUBLE: what users print, round and compare (``round(x::numeric, n)``, a metric cast for
display, ``numeric '1.5'``) shows as PostgreSQL shows it, to 15-17 significant digits.
``numeric(p,s)`` is untouched and stays exact (DECIMAL(p,s)). docs/gateway.md, "numeric".

The type is found from the lexer's tokens, where it is a type name: after ``::``, before a string
(``numeric '1.5'``), as a CAST's target (``AS numeric)``), and as a column's type in CREATE and
ALTER (after a column name that follows ``(``, ``,`` or COLUMN, or after TYPE).
"""

from __future__ import annotations

from sqlml.grammar import lexer

_NAMES = frozenset({"numeric", "decimal"})
DOUBLE = "DOUBLE"
_DEFINITIONS = frozenset({"CREATE", "ALTER"})


def unconstrained_as_double(sql: str) -> str:
    """``sql`` with each unconstrained numeric type name as DOUBLE (unchanged if none)."""
    lowered = sql.lower()
    if "numeric" not in lowered and "decimal" not in lowered:
        return sql
    found = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    texts = [t.text(sql) for t in found]
    defines = bool(texts) and texts[0].upper() in _DEFINITIONS
    hits = [
        (token, DOUBLE)
        for i, token in enumerate(found)
        if token.kind == lexer.WORD
        and texts[i].lower() in _NAMES
        and _is_type(found, texts, i, defines)
    ]
    return lexer.replace(sql, iter(hits)) if hits else sql


def _is_type(found: list[lexer.Token], texts: list[str], i: int, defines: bool) -> bool:
    before = texts[i - 1].upper() if i > 0 else ""
    after = texts[i + 1] if i + 1 < len(texts) else ""
    if after == "(" or before == ".":
        return False  # numeric(p,s), a function numeric(...), or a qualified name
    if before == "::" or (i + 1 < len(found) and found[i + 1].kind == lexer.STRING):
        return True
    if before == "AS":
        return after in (")", "[")
    if not defines:
        return False
    if before == "TYPE":
        return True
    earlier = texts[i - 2].upper() if i > 1 else ""
    named = found[i - 1].kind in (lexer.WORD, lexer.NAME)
    return named and earlier in ("(", ",", "COLUMN")
