"""ML.SCORE(MODEL m [, alias]): sqlml's scalar scoring function, usable in any expression.

Rendered: one expression in the engine's SQL (engine.Session.score_expression)."""

from __future__ import annotations

from sqlml.functions import NONE, RENDERED, CallArgs, Function, register
from sqlml.grammar.statements import MLCall, Score


def _make(args: CallArgs) -> MLCall:
    return Score(args.model, args.qualifier)


SCORE = register(Function(name="SCORE", table=False, rows=NONE, runs=RENDERED, make=_make))
