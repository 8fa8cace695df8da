"""Common subexpressions of SQL trees, computed once.

A compiled model repeats itself: a binary classifier's label and both probabilities each hold the
whole linear score, and every k-means distance holds every standardized feature. PostgreSQL
evaluates each copy; DuckDB parses and binds each copy. :func:`hoist` finds the largest subtrees
that occur more than once (by structure, hash-consed bottom-up in one pass) and lifts each into a
named column of an inner SELECT, so it is written and computed once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlglot import exp

MIN_NODES = 12  # smaller repeats (a column reference, a cast constant) are cheaper to repeat


class _Shapes:
    """Structural identity of subtrees: equal trees get the same number."""

    def __init__(self) -> None:
        self.ids: dict[tuple[Any, ...], int] = {}
        self.key: dict[int, int] = {}  # id(node) -> shape number
        self.size: dict[int, int] = {}  # shape number -> node count

    def visit(self, node: exp.Expr) -> int:
        parts: list[Any] = [type(node).__name__]
        size = 1
        for name in sorted(node.args):
            value = node.args[name]
            values = value if isinstance(value, list) else [value]
            row: list[Any] = [name]
            for item in values:
                if isinstance(item, exp.Expr):
                    shape = self.visit(item)
                    row.append(("node", shape))
                    size += self.size[shape]
                else:
                    row.append(
                        (
                            "value",
                            item
                            if isinstance(item, str | bool | int | float | None)
                            else repr(item),
                        )
                    )
            parts.append(tuple(row))
        shape = self.ids.setdefault(tuple(parts), len(self.ids))
        self.key[id(node)] = shape
        self.size[shape] = size
        return shape


Stage = list[tuple[str, exp.Expr]]


def hoist_stages(
    outputs: Sequence[exp.Expr], column: Callable[[str], exp.Expr], prefix: str
) -> tuple[list[Stage], list[exp.Expr]]:
    """:func:`hoist` until nothing repeats: ``(stages, rewritten)``, where each stage's
    expressions read only the columns of the stages before it (one SELECT per stage).

    One pass lifts the outermost repeated subtrees whole; a repeat inside one of them (the
    linear score a guarded ``exp()`` holds three times in PostgreSQL's sigmoid) is lifted by
    the next pass, into an earlier stage.
    """
    hoisted, rewritten = hoist(outputs, column, prefix)
    named = len(hoisted)
    stages: list[Stage] = []
    while hoisted:
        inner, exprs = hoist([e for _, e in hoisted], column, prefix, start=named)
        named += len(inner)
        stages.insert(0, [(n, e) for (n, _), e in zip(hoisted, exprs, strict=True)])
        hoisted = inner
    return _without_aliases(stages, rewritten, column)


def _without_aliases(
    stages: list[Stage], outputs: list[exp.Expr], column: Callable[[str], exp.Expr]
) -> tuple[list[Stage], list[exp.Expr]]:
    """A lifted expression that was itself a repeat becomes a bare column of the stage below:
    read that column directly instead."""
    target: dict[str, str] = {}

    def resolve(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name in target:
            return column(target[node.name])
        return node

    kept: list[Stage] = []
    for stage in stages:
        level: Stage = []
        for name, expression in stage:
            expression = expression.transform(resolve)
            bare = expression.unnest()
            if isinstance(bare, exp.Column) and bare.name != name:
                target[name] = bare.name
            else:
                level.append((name, expression))
        if level:
            kept.append(level)
    return kept, [o.transform(resolve) for o in outputs]


def hoist(
    outputs: Sequence[exp.Expr], column: Callable[[str], exp.Expr], prefix: str, start: int = 0
) -> tuple[Stage, list[exp.Expr]]:
    """``(hoisted, rewritten)``: the repeated subtrees as (name, expression), and the outputs with
    each occurrence replaced by ``column(name)``; names are ``prefix`` and a number from
    ``start``. The inputs are not modified."""
    shapes = _Shapes()
    for output in outputs:
        shapes.visit(output)
    counts: Counter[int] = Counter()
    for output in outputs:
        for node in output.walk():
            counts[shapes.key[id(node)]] += 1
    names: dict[int, str] = {}
    hoisted: list[tuple[str, exp.Expr]] = []

    def rewrite(node: exp.Expr) -> exp.Expr:
        shape = shapes.key[id(node)]
        if counts[shape] > 1 and shapes.size[shape] >= MIN_NODES and _expression(node):
            if shape not in names:
                names[shape] = f"{prefix}{start + len(names)}"
                hoisted.append((names[shape], node.copy()))
            return column(names[shape])
        copy = node.__class__(**{k: _rewrite_arg(v, rewrite) for k, v in node.args.items()})
        return copy

    rewritten = [rewrite(output) for output in outputs]
    return hoisted, rewritten


def _expression(node: exp.Expr) -> bool:
    """Whether the subtree is a value SQL can name: not a CASE's ``WHEN c THEN v`` branch (an
    exp.If under Case.ifs: two trees of a forest often share one) nor a lambda."""
    if isinstance(node, exp.Lambda):
        return False
    return not (isinstance(node, exp.If) and isinstance(node.parent, exp.Case))


def _rewrite_arg(value: Any, rewrite: Callable[[exp.Expr], exp.Expr]) -> Any:
    if isinstance(value, exp.Expr):
        return rewrite(value)
    if isinstance(value, list):
        return [rewrite(v) if isinstance(v, exp.Expr) else v for v in value]
    return value
