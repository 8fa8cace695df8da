"""ML.ROC_CURVE(MODEL m [, {(query) | TABLE t}] [, GENERATE_ARRAY(start, end, step)]): a binary
classifier's ROC curve on the given rows, computed in the engine's SQL around ML.PREDICT, or
without rows on the evaluation rows kept at training (classification.py).

Columns (BigQuery's): threshold FLOAT64, recall FLOAT64 (true positives / positives),
false_positive_rate FLOAT64 (false positives / negatives), true_positives, false_positives,
true_negatives, false_negatives INT64; one row per threshold, the highest first. At a threshold
a row counts as predicted positive when the positive class's probability is at or above it
(scikit-learn's roc_curve). The thresholds are GENERATE_ARRAY's values when given (BigQuery's
argument; at most 10,000); without it, as BigQuery documents, the percentiles of the positive
class's probability over the rows: for k = 0, 1, ..., 100 the probability of rank
max(1, ceil(k n / 100)) among the n rows in ascending order (the nearest-rank percentile,
computed in integers), each distinct value once, so at most 101 rows. Rows whose label is NULL
are left out; a rate whose denominator is 0 is NULL. A multiclass model is 0A000 (BigQuery's
ROC curve is binary). BigQuery's trial_id is pending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import OPTIONAL, OVER_ROWS, TRIAL_ID, Function, Scored, register
from sqlml.functions.classification import (
    ROWS,
    aliased,
    classes,
    column,
    count_when,
    kept_curve,
    literal,
    rows_of,
)
from sqlml.grammar.values import to_value
from sqlml.ml.predict_sql import element

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "ROC_CURVE"
THRESHOLDS = "thresholds"
MAX_THRESHOLDS = 10_000


def thresholds(node: exp.Expr) -> tuple[str, Any]:
    """``GENERATE_ARRAY(start, end, step)`` (step 1 when left out) as its values."""
    name = node.name.upper() if isinstance(node, exp.Anonymous) else node.key.upper()
    args = list(node.expressions) if isinstance(node, exp.Anonymous) else _args(node)
    if name not in ("GENERATE_ARRAY", "GENERATEARRAY", "GENERATESERIES") or len(args) not in (2, 3):
        raise errors.InvalidParameterValue(
            f"ML.{NAME} takes its thresholds as GENERATE_ARRAY(start, end, step)"
        )
    numbers = [to_value(a, "a GENERATE_ARRAY argument") for a in args]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
        raise errors.InvalidParameterValue("GENERATE_ARRAY takes numbers")
    start, end = float(numbers[0]), float(numbers[1])  # type: ignore[arg-type]
    step = float(numbers[2]) if len(numbers) == 3 else 1.0  # type: ignore[arg-type]
    if step == 0 or not all(math.isfinite(v) for v in (start, end, step)):
        raise errors.InvalidParameterValue("GENERATE_ARRAY needs finite numbers and a step != 0")
    count = math.floor((end - start) / step + 1e-9) + 1
    if count > MAX_THRESHOLDS:
        raise errors.InvalidParameterValue(
            f"ML.{NAME} takes at most {MAX_THRESHOLDS} thresholds, not {count}"
        )
    # (to 15 digits: 0.1 + 2 * 0.1 is the 0.3 the user wrote)
    return THRESHOLDS, tuple(float(f"{start + i * step:.15g}") for i in range(max(count, 0)))


def _args(node: exp.Expr) -> list[exp.Expr]:
    return [v for k in ("start", "end", "step", "this", "expression") if (v := node.args.get(k))]


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    label, label_type, known = classes(version, NAME)
    if len(known) != 2:
        raise errors.FeatureNotSupported(
            f"ML.{NAME} is for binary classifiers; model {version.ref} has {len(known)} classes"
        )
    given = settings.get(THRESHOLDS)
    if scored is None:
        return kept_curve(version, NAME, given, dialect)
    rows = rows_of(scored, NAME, label)
    source = aliased(rows.subquery(None), ROWS)
    probs = column(f"predicted_{label}_probs")
    truth = column(label)
    positive = literal(known[1], label_type)
    per_row = (
        exp.select(
            exp.alias_(element(probs, 2, "prob", dialect), "p", quoted=True),
            exp.alias_(exp.EQ(this=truth, expression=positive), "y", quoted=True),
        )
        .from_(source)
        .where(exp.Not(this=exp.Is(this=truth.copy(), expression=exp.null())))
    )
    y = column("y", "r")
    grouped = (
        exp.select(
            column("p", "r"),
            exp.alias_(count_when(y), "pos", quoted=True),
            exp.alias_(count_when(exp.Not(this=y.copy())), "neg", quoted=True),
        )
        .from_(aliased(per_row, "r"))
        .group_by(column("p", "r"))
    )
    counts = _percentiles(_at_each(grouped)) if given is None else _at_given(grouped, given)
    return _curve(counts).subquery()


def _in(table: str) -> Callable[[str], exp.Column]:
    def named(name: str) -> exp.Column:
        return column(name, table)

    return named


def _minus(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Sub(this=left, expression=right)


def _bigint(value: exp.Expr) -> exp.Expr:
    return exp.cast(value, exp.DataType.build("BIGINT"))


def _at_each(grouped: exp.Select) -> exp.Select:
    """At each distinct probability: running sums from the highest down."""
    g = _in("g")
    order = exp.Order(expressions=[exp.Ordered(this=g("p"), desc=True)])

    def running(name: str) -> exp.Expr:
        return _bigint(exp.Window(this=exp.Sum(this=g(name)), order=order.copy()))

    def total(name: str) -> exp.Expr:
        return _bigint(exp.Window(this=exp.Sum(this=g(name))))

    return exp.select(
        exp.alias_(g("p"), "threshold", quoted=True),
        exp.alias_(running("pos"), "tp", quoted=True),
        exp.alias_(running("neg"), "fp", quoted=True),
        exp.alias_(total("pos"), "pos", quoted=True),
        exp.alias_(total("neg"), "neg", quoted=True),
        exp.alias_(exp.Add(this=g("pos"), expression=g("neg")), "cnt", quoted=True),
    ).from_(aliased(grouped, "g"))


def _percentiles(counts: exp.Select) -> exp.Select:
    """Of the distinct probabilities, the percentiles (module docstring). With the rows in
    ascending order, the probability p holds ranks prev + 1 .. cum (prev: the rows below it);
    it is the k-th percentile when max(1, ceil(k n / 100)) is among them, which for some
    k in 0..100 is so when prev = 0 or floor(100 cum / n) > 100 prev / n (integers only)."""
    c = _in("c")
    n = exp.paren(exp.Add(this=c("pos"), expression=c("neg")))
    prev = exp.paren(_minus(n.copy(), exp.paren(exp.Add(this=c("tp"), expression=c("fp")))))
    cum = exp.paren(exp.Add(this=prev.copy(), expression=c("cnt")))
    hundred = exp.Literal.number(100)
    floor = exp.IntDiv(this=exp.Mul(this=hundred.copy(), expression=cum), expression=n.copy())
    above = exp.GT(
        this=exp.Mul(this=exp.paren(floor), expression=n.copy()),
        expression=exp.Mul(this=hundred.copy(), expression=prev.copy()),
    )
    first = exp.EQ(this=prev.copy(), expression=exp.Literal.number(0))
    star = exp.Column(this=exp.Star(), table=exp.to_identifier("c", quoted=True))
    return exp.select(star).from_(aliased(counts, "c")).where(exp.or_(first, above))


def _at_given(grouped: exp.Select, values: tuple[float, ...]) -> exp.Select:
    g = _in("g")
    cut = column("threshold", "t")
    double = exp.DataType.build("DOUBLE")
    table = exp.values(
        [(exp.cast(exp.Literal.string(repr(v)), double),) for v in values],
        alias="t",
        columns=["threshold"],
    )
    for identifier in [table.args["alias"].this, *table.args["alias"].columns]:
        identifier.set("quoted", True)

    def above(name: str) -> exp.Expr:
        at = exp.GTE(this=g("p"), expression=cut.copy())
        return _bigint(exp.Sum(this=exp.case().when(at, g(name)).else_(exp.Literal.number(0))))

    return (
        exp.select(
            exp.alias_(cut.copy(), "threshold", quoted=True),
            exp.alias_(above("pos"), "tp", quoted=True),
            exp.alias_(above("neg"), "fp", quoted=True),
            exp.alias_(_bigint(exp.Sum(this=g("pos"))), "pos", quoted=True),
            exp.alias_(_bigint(exp.Sum(this=g("neg"))), "neg", quoted=True),
        )
        .from_(aliased(grouped, "g"))
        .join(table, join_type="cross")
        .group_by(cut.copy())
    )


def _curve(counts: exp.Select) -> exp.Select:
    c = _in("c")
    double = exp.DataType.build("DOUBLE")

    def rate(part: str, whole: str) -> exp.Expr:
        zero = exp.Nullif(this=c(whole), expression=exp.Literal.number(0))
        return exp.Div(this=exp.cast(c(part), double), expression=exp.cast(zero, double))

    return (
        exp.select(
            exp.alias_(exp.cast(c("threshold"), double), "threshold", quoted=True),
            exp.alias_(rate("tp", "pos"), "recall", quoted=True),
            exp.alias_(rate("fp", "neg"), "false_positive_rate", quoted=True),
            exp.alias_(c("tp"), "true_positives", quoted=True),
            exp.alias_(c("fp"), "false_positives", quoted=True),
            exp.alias_(
                _bigint(exp.Sub(this=c("neg"), expression=c("fp"))), "true_negatives", quoted=True
            ),
            exp.alias_(
                _bigint(exp.Sub(this=c("pos"), expression=c("tp"))), "false_negatives", quoted=True
            ),
        )
        .from_(aliased(counts, "c"))
        .order_by(exp.Ordered(this=c("threshold"), desc=True))
    )


ROC_CURVE = register(
    Function(
        name=NAME,
        table=True,
        rows=OPTIONAL,
        runs=OVER_ROWS,
        fields=(TRIAL_ID,),
        render=_render,
        argument=thresholds,
    )
)
