"""ML.COMPARE(MODEL m, {(query) | TABLE t} [, STRUCT(0.5 AS threshold)]): sqlml's own (docs/sql.md,
"Traffic splits"). ML.EVALUATE of every version that serves, side by side on the same rows: the
serving version, then each other version with a share of the model's traffic split, then its
shadow. One row per version: version INT64, status STRING ('serving' | 'traffic' | 'shadow'),
traffic_weight FLOAT64 (NULL without a split, and for the shadow), then ML.EVALUATE's columns
for the model's kind.

Computed as ML.EVALUATE is (engine.Session.compare): over the rows, in the server on PostgreSQL.
The rows are required: metrics stored at training were measured on each version's own
evaluation rows, which differ between versions, so they would not compare.
"""

from __future__ import annotations

from sqlml.functions import OVER_ROWS, REQUIRED, CallArgs, Field, Function, register
from sqlml.functions.evaluate import make as make_evaluate
from sqlml.functions.predict import threshold
from sqlml.grammar.statements import Compare, Evaluate, MLCall


def _make(args: CallArgs) -> MLCall:
    evaluate = make_evaluate(args)  # (the same arguments as ML.EVALUATE's)
    assert isinstance(evaluate, Evaluate)
    return Compare(evaluate.model, evaluate.input, evaluate.threshold, evaluate.settings)


COMPARE = register(
    Function(
        name="COMPARE",
        table=True,
        rows=REQUIRED,
        runs=OVER_ROWS,
        fields=(Field("threshold", "FLOAT64", threshold),),
        make=_make,
    )
)
