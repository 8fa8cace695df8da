"""ML.PREDICT(MODEL m, {(query) | TABLE t} [, STRUCT(0.5 AS threshold, 'compiled' AS scoring)]).

Rendered: the engine path writes the model's scoring into the engine's SQL around the input
(engine.Session.predict_subquery). BigQuery's keep_original_columns and trial_id are pending.
"""

from __future__ import annotations

from typing import Any

from sqlml import errors
from sqlml.functions import RENDERED, REQUIRED, TRIAL_ID, CallArgs, Field, Function, register
from sqlml.grammar.statements import MLCall, Predict


def threshold(value: Any) -> None:
    """A classifier's cut between the positive and the negative class."""
    if not 0 <= value <= 1:
        raise errors.InvalidParameterValue(f"threshold must be a number in [0, 1], not {value!r}")


def _make(args: CallArgs) -> MLCall:
    settings = dict(args.settings)
    cut = settings.pop("threshold", None)
    assert args.rows is not None  # REQUIRED
    return Predict(args.model, args.rows, cut, settings)


PREDICT = register(
    Function(
        name="PREDICT",
        table=True,
        rows=REQUIRED,
        runs=RENDERED,
        fields=(Field("threshold", "FLOAT64", threshold), Field("scoring", "STRING"), TRIAL_ID),
        pending=("keep_original_columns",),
        make=_make,
    )
)
