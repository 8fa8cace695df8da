"""ML.TRIAL_INFO(MODEL m): the trials of a model trained with hyperparameter tuning (NUM_TRIALS;
sqlml/ml/tuning.py), one row each in trial order, of the version that serves (or of MODEL m
VERSION n).

Columns, BigQuery's: trial_id INT64 (1, 2, ... in the order the trials ran), hyperparameters
(the tuned options' values in the trial), hparam_tuning_evaluation_metrics (the objective on the
evaluation rows), training_loss FLOAT64 and eval_loss FLOAT64 (the last iteration's, where the
model type records iterations; else eval_loss is the kind's loss on the evaluation rows and
training_loss NULL), status STRING ('SUCCEEDED', 'FAILED' or 'INFEASIBLE'), error_message
STRING, is_optimal BOOL. BigQuery types hyperparameters and the metrics as STRUCTs, whose
fields differ per model; sqlml gives them as JSON text objects, as ML.VERSIONS gives metrics and
options (one column type on both engines and over the wire).

Rendered as a query over sqlml.version_trials (as ML.VERSIONS is over the store): PostgreSQL's
row-level security shows the trials of the models the role may use. A model trained without
tuning is 22023.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors
from sqlml.functions import NONE, OVER_ROWS, Function, Scored, register
from sqlml.functions.versions import column, of_model, store_table
from sqlml.ml import tuning

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "TRIAL_INFO"
# (output column, store column)
COLUMNS = (
    ("trial_id", "trial_id"),
    ("hyperparameters", "hyperparameters"),
    ("hparam_tuning_evaluation_metrics", "tuning_metrics"),
    ("training_loss", "training_loss"),
    ("eval_loss", "eval_loss"),
    ("status", "status"),
    ("error_message", "error_message"),
    ("is_optimal", "is_optimal"),
)


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    if not tuning.has_trials(version.training_info):
        raise errors.InvalidParameterValue(
            f"ML.{NAME} needs a model trained with hyperparameter tuning: version"
            f" {version.version} of {version.ref.model} was trained without NUM_TRIALS",
            hint="CREATE OR REPLACE MODEL ... OPTIONS (num_trials = n, ...) tunes it",
        )
    t = "t"
    query = (
        exp.select(*(exp.alias_(column(stored, t), name, quoted=True) for name, stored in COLUMNS))
        .from_(store_table("version_trials", t))
        .where(of_model(version, t))
        .where(column("version", t).eq(exp.Literal.number(version.version)))
        .order_by(column("trial_id", t))
    )
    return query.subquery()


TRIAL_INFO = register(Function(name=NAME, table=True, rows=NONE, runs=OVER_ROWS, render=_render))
