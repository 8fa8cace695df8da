"""Which statements are ML, decided from the one lexer's tokens (:mod:`sqlml.grammar.lexer`).

Every statement of every front door passes through :func:`is_ml`, so it is kept cheap: every
ML statement has the keyword MODEL or MODELS and every ML call the letters ``ml``, so a text
without either is plain SQL at the cost of a substring search. Only the others are tokenized,
and they are ML when the tokens say so: an ML statement head (``CREATE [OR REPLACE] MODEL``,
``DROP MODEL``, ``SHOW MODELS``, ...) or an ML call, ``ML . name (`` where the name is one of
BigQuery ML's functions or ``MODEL`` follows the parenthesis. Never because of a name:
``SELECT ml.normalize(x)`` (a function in a schema named ``ml``), ``'ML.PREDICT(MODEL m)'`` in a
string and ``-- model`` in a comment are plain SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlml.grammar import lexer, nodes

# statement heads that make a statement ML: (words of the head); OR REPLACE is skipped
_HEADS = (
    ("CREATE", "MODEL"),
    ("DROP", "MODEL"),
    ("SHOW", "MODELS"),
    ("ALTER", "MODEL"),
    ("EXPORT", "MODEL"),
    ("CREATE", "TEMP", "MODEL"),
    ("CREATE", "TEMPORARY", "MODEL"),
)


def is_ml(sql: str) -> bool:
    """Whether ``sql`` (a statement, or several) is an ML statement or holds an ML call."""
    lowered = sql.lower()
    if "model" not in lowered and "ml" not in lowered:
        return False
    if len(sql) <= _CACHED_TEXT:  # (a front door asks again for the same text: the proxy's
        return _tokens_are_ml(sql)  # message check, its statement loop, the engine, the parser)
    return _tokens_are_ml.__wrapped__(sql)


_CACHED_TEXT = 1 << 14  # statements up to this many characters have their answer kept


@functools.lru_cache(maxsize=512)
def _tokens_are_ml(sql: str) -> bool:
    tokens = [t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT]
    texts = [t.text(sql).upper() if t.kind == lexer.WORD else t.text(sql) for t in tokens]
    starts = [0] + [i + 1 for i, t in enumerate(tokens) if t.kind == lexer.SEMICOLON]
    if any(_has_ml_head(texts[i : i + 5]) for i in starts):
        return True
    return any(is_ml_call(tokens, texts, i) for i in range(len(texts) - 3))


def _has_ml_head(texts: Sequence[str]) -> bool:
    if texts[1:3] == ["OR", "REPLACE"]:
        texts = [texts[0], *texts[3:]]
    return any(tuple(texts[: len(head)]) == head for head in _HEADS)


def is_ml_call(tokens: Sequence[lexer.Token], texts: Sequence[str], i: int) -> bool:
    """Whether the tokens at ``i`` are ``ML . name (`` with the name of an ML function or
    ``MODEL`` after the parenthesis; a function of a schema named ``ml`` is not one."""
    model = i + 4 < len(texts) and texts[i + 4] == "MODEL" and tokens[i + 4].kind == lexer.WORD
    return (
        texts[i] == "ML"
        and tokens[i].kind == lexer.WORD
        and texts[i + 1] == "."
        and tokens[i + 2].kind == lexer.WORD
        and texts[i + 3] == "("
        and (texts[i + 2].upper() in nodes.ML_FUNCTIONS or model)
        and (i == 0 or texts[i - 1] != ".")  # (x.ml.predict( is a function of schema ml)
    )


def split_script(script: str) -> list[str]:
    """The statements of ``script`` (see :func:`sqlml.grammar.lexer.split`)."""
    return lexer.split(script)


def unterminated(sql: str) -> int | None:
    """The 0-based offset where an unterminated string, name or comment begins, if any."""
    return lexer.unterminated(sql)
