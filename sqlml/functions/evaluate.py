"""ML.EVALUATE(MODEL m [, {(query) | TABLE t}] [, STRUCT(0.5 AS threshold)]).

Computed over rows (the model's outputs on the given rows, in the server on PostgreSQL) or,
without rows, the metrics stored with the version at training (engine.Session.evaluate); with a
threshold and no rows, a binary classifier's metrics at that cut from the evaluation rows'
probabilities kept at training (engine._evaluate_kept). BigQuery's perform_aggregation, horizon,
confidence_level and trial_id are pending.
"""

from __future__ import annotations

from sqlml.functions import OPTIONAL, OVER_ROWS, TRIAL_ID, CallArgs, Field, Function, register
from sqlml.functions.predict import threshold
from sqlml.grammar.statements import Evaluate, MLCall


def make(args: CallArgs) -> MLCall:
    settings = dict(args.settings)
    cut = settings.pop("threshold", None)
    return Evaluate(args.model, args.rows, cut, settings)


EVALUATE = register(
    Function(
        name="EVALUATE",
        table=True,
        rows=OPTIONAL,
        runs=OVER_ROWS,
        fields=(Field("threshold", "FLOAT64", threshold), TRIAL_ID),
        pending=("perform_aggregation", "horizon", "confidence_level"),
        make=make,
    )
)
