"""AutoML: ``model_type = 'automl_classifier' | 'automl_regressor'`` (BigQuery ML's CREATE MODEL
for AutoML models: BUDGET_HOURS, OPTIMIZATION_OBJECTIVE, INPUT_LABEL_COLS, DATA_SPLIT_COL).

BigQuery hands the rows to Vertex AI's AutoML, which is not available outside Google. sqlml's
AutoML searches the model types it has, with the machinery of hyperparameter tuning (tuning.py):

1. every candidate model type (``CANDIDATES``: the linear model, boosted trees, a random forest
   and a DNN of the label's kind) with its default options, so the result is never worse on
   the evaluation rows than the best default model;
2. then, in turn, the model types that did best (the top ``FOCUS``), each searched over its
   default search space (tuning.TUNABLE) by its own Bayesian search, until the budget or
   ``MAX_TRIALS`` trials.

The trial with the best objective on the evaluation rows is the version's model; the version's
model type is that trial's (ML.WEIGHTS, ML.FEATURE_IMPORTANCE and the rest then work as for any
model of that type), its options say ``model_type = 'automl_...'`` as written, and every trial is
kept: ML.TRIAL_INFO is the leaderboard (each trial's ``hyperparameters`` name its model_type),
``STRUCT(n AS trial_id)`` scores with any of them.

- **Budget.** BUDGET_HOURS as BigQuery's option, but from 0 (BigQuery's minimum is 1.0: its
  AutoML provisions machines; sqlml trains in the database, where minutes are a budget), at most
  72, default 1.0; max_training_seconds too (the smaller one counts). The trial running when the
  budget ends stops, and the best trial so far is kept.
- **Objective.** OPTIMIZATION_OBJECTIVE: MINIMIZE_RMSE (regression's default), MINIMIZE_MAE,
  MINIMIZE_RMSLE; MAXIMIZE_AU_ROC (binary classification's default), MINIMIZE_LOG_LOSS
  (multiclass's default and only one). MAXIMIZE_AU_PRC and the precision / recall STRUCTs are
  0A000.
- **Split.** 80/10/10 at random (fixed seed); DATA_SPLIT_COL a STRING column of 'TRAIN',
  'VALIDATE', 'TEST' and 'UNASSIGNED' (assigned at random, 80/10/10), BigQuery's manual split. A
  TIMESTAMP split column is 0A000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.ml import models, tuning
from sqlml.ml.checkpoints import Checkpoint
from sqlml.ml.options import Option, positive
from sqlml.ml.spec import OptionValue, TransformItem

if TYPE_CHECKING:
    from sqlml.ml.train import TrainResult

NAMES = ("automl_classifier", "automl_regressor")
CANDIDATES = {
    "automl_classifier": (
        "logistic_reg",
        "boosted_tree_classifier",
        "random_forest_classifier",
        "dnn_classifier",
    ),
    "automl_regressor": (
        "linear_reg",
        "boosted_tree_regressor",
        "random_forest_regressor",
        "dnn_regressor",
    ),
}
MAX_TRIALS = 40  # sqlml's cap on one search (a small table exhausts no budget)
FOCUS = 2  # the model types searched after the defaults: the best ones
# OPTIMIZATION_OBJECTIVE -> (ML.EVALUATE's metric, more is better)
OBJECTIVES = {
    "automl_regressor": {
        "MINIMIZE_RMSE": ("mean_squared_error", False),
        "MINIMIZE_MAE": ("mean_absolute_error", False),
        "MINIMIZE_RMSLE": ("mean_squared_log_error", False),
    },
    "automl_classifier": {
        "MAXIMIZE_AU_ROC": ("roc_auc", True),
        "MINIMIZE_LOG_LOSS": ("log_loss", False),
    },
}
PENDING_OBJECTIVES = (
    "MAXIMIZE_AU_PRC",
    "MAXIMIZE_PRECISION_AT_RECALL",
    "MAXIMIZE_RECALL_AT_PRECISION",
)
SPLIT_VALUES = {"TRAIN": "train", "VALIDATE": "eval", "TEST": "test", "UNASSIGNED": None}


def _budget(hours: float) -> bool:
    return 0 < hours <= 72


OPTIONS = (
    Option("model_type", "str"),
    Option("input_label_cols", "str_list"),
    Option("budget_hours", "float", 1.0, check=_budget, requirement="a number in (0, 72]"),
    Option("optimization_objective", "str"),
    Option("data_split_col", "str"),
    Option("max_training_rows", "int", None, check=positive, requirement="a positive integer"),
    Option("max_training_seconds", "float", None, check=positive, requirement="a number > 0"),
)


def _never_built(opts: dict[str, Any], ctx: models.FitContext) -> Any:
    raise errors.InternalError("an AutoML model is trained by sqlml.ml.automl, not built")


def _no(opts: dict[str, Any]) -> bool:
    return False


for _name in NAMES:
    models.register(
        models.ModelType(
            _name,
            models.CLASSIFIER if _name == "automl_classifier" else models.REGRESSOR,
            OPTIONS,
            _never_built,
            _no,
            ("kms_key_name",),
        )
    )


def requested(options: Mapping[str, OptionValue]) -> bool:
    model_type = options.get("model_type")
    return isinstance(model_type, str) and model_type.lower() in NAMES


def search(
    options: Mapping[str, OptionValue],
    table: pa.Table,
    transform: Sequence[TransformItem] | None,
    say: Progress,
    checkpoint: Checkpoint,
) -> TrainResult:
    """Trains the candidates and returns the best one's result, every trial attached."""
    name = str(options["model_type"]).lower()
    opts = models.get(name).resolve_options(dict(options))
    if transform:
        raise errors.FeatureNotSupported("an AutoML model takes no TRANSFORM clause yet")
    label, rows = tuning.label_rows(opts, table)
    if label is None:
        raise errors.UndefinedColumn(
            "the label column is not in the training query",
            hint="name it with INPUT_LABEL_COLS, or call it label",
        )
    classes = len(pc.unique(rows.column(label))) if name == "automl_classifier" else None
    objective, higher = _objective(name, opts.get("optimization_objective"), classes)
    seconds = [s for s in (opts["budget_hours"] * 3600.0, opts.get("max_training_seconds")) if s]
    budget = min(seconds)
    parts = _split(opts, rows)
    common = {k: v for k, v in options.items() if k in ("input_label_cols", "data_split_col")}
    data = tuning.Rows.of(common, rows, label, parts)
    runner = tuning.Runner(objective, higher, data, transform, checkpoint, budget)
    say(
        f"AutoML: model types {', '.join(CANDIDATES[name])}, objective {objective.upper()} on"
        f" {int(parts.eval.sum())} evaluation rows, budget {budget:g}s"
    )
    searches = {t: _search_of(t, objective, common) for t in CANDIDATES[name]}
    best: dict[str, float] = {}
    queue = list(CANDIDATES[name])  # (first: each with its defaults)
    while len(runner.trials) < MAX_TRIALS and not runner.out_of_time(say):
        if not queue:
            ranked = sorted(best, key=lambda t: -best[t])
            queue = [t for t in ranked if runner.fits(t)][:FOCUS]
            if not queue:
                if ranked:
                    say(
                        f"stopped after {len(runner.trials)} trials: no model type's next trial"
                        f" would end within the budget ({budget:g} s)"
                    )
                break
        model_type = queue.pop(0)
        if not runner.fits(model_type):
            continue
        batch = searches[model_type].ask(1)
        if not batch:
            best.pop(model_type, None)  # (its space is exhausted)
            continue
        point = batch[0]
        trial = runner.run(point, {**data.base, "model_type": model_type})
        trial.hyperparameters = {"model_type": model_type, **trial.hyperparameters}
        score = runner.score(trial)
        searches[model_type].tell(point, score)
        if score is not None:
            best[model_type] = max(best.get(model_type, -np.inf), score)
        say(tuning.progress(trial, objective))
    written = {
        "model_type": name,
        "budget_hours": opts["budget_hours"],
        "optimization_objective": _objective_name(name, objective),
    }
    if opts.get("data_split_col"):
        written["data_split_col"] = opts["data_split_col"]
    described = {
        "model_type": name,
        "objective": objective,
        "budget_seconds": budget,
        "candidates": list(CANDIDATES[name]),
        "options": tuning.as_written(options),
    }
    return runner.finish(MAX_TRIALS, written, table, "automl", described)


Progress = tuning.Progress


def _objective(name: str, given: Any, classes: int | None) -> tuple[str, bool]:
    """OPTIMIZATION_OBJECTIVE as a metric of ML.EVALUATE's, and whether more is better."""
    allowed = OBJECTIVES[name]
    if given is None:
        default = "MINIMIZE_RMSE" if classes is None else "MAXIMIZE_AU_ROC"
        if classes is not None and classes > 2:
            default = "MINIMIZE_LOG_LOSS"
        return allowed[default]
    wanted = str(given).upper()
    if wanted in PENDING_OBJECTIVES:
        raise errors.FeatureNotSupported(
            f"OPTIMIZATION_OBJECTIVE '{wanted}' is not supported yet",
            hint="supported: " + ", ".join(allowed),
        )
    if wanted not in allowed:
        raise errors.InvalidParameterValue(
            f"invalid value {given!r} for option OPTIMIZATION_OBJECTIVE of {name.upper()}:"
            " expected one of " + ", ".join(allowed)
        )
    if classes is not None and classes > 2 and wanted != "MINIMIZE_LOG_LOSS":
        raise errors.InvalidParameterValue(
            f"OPTIMIZATION_OBJECTIVE '{wanted}' is for binary classification: a label of"
            f" {classes} classes takes MINIMIZE_LOG_LOSS"
        )
    return allowed[wanted]


def _objective_name(name: str, metric: str) -> str:
    return next(k for k, (m, _) in OBJECTIVES[name].items() if m == metric)


def check(options: Mapping[str, OptionValue]) -> None:
    """What can be checked before the rows are read (22023 / 0A000)."""
    name = str(options["model_type"]).lower()
    opts = models.get(name).resolve_options(dict(options))
    given = opts.get("optimization_objective")
    if given is not None:
        _objective(name, given, None if name == "automl_regressor" else 2)


def _search_of(model_type: str, objective: str, common: Mapping[str, OptionValue]) -> tuning.Search:
    """A model type's Bayesian search over its default search space, its defaults first."""
    options = {
        **common,
        "model_type": model_type,
        tuning.NUM_TRIALS: MAX_TRIALS,
        "hparam_tuning_objectives": objective,
    }
    plan = tuning.plan(options)
    defaults = {s.name: tuning.default_of(model_type, s.name) for s in plan.spaces}
    return tuning.Search(plan, defaults)


def _split(opts: Mapping[str, Any], rows: pa.Table) -> tuning.Split:
    """80/10/10 at random, or DATA_SPLIT_COL's TRAIN / VALIDATE / TEST (UNASSIGNED rows at
    random)."""
    n = rows.num_rows
    if n < 10:
        raise errors.UnusableTrainingData(
            f"AutoML needs rows to train, evaluate and test on: the query has {n} with a label"
        )
    order = np.random.default_rng(tuning.SEED).permutation(n)
    drawn = np.empty(n, dtype=object)
    drawn[order[: round(n * 0.1)]] = "eval"
    drawn[order[round(n * 0.1) : round(n * 0.2)]] = "test"
    drawn[order[round(n * 0.2) :]] = "train"
    given = opts.get("data_split_col")
    if given:
        found = next((c for c in rows.column_names if c.lower() == str(given).lower()), None)
        if found is None:
            raise errors.UndefinedColumn(f'DATA_SPLIT_COL column "{given}" is not in the query')
        column = rows.column(found)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            raise errors.FeatureNotSupported(
                "DATA_SPLIT_COL of an AutoML model must be a STRING column of 'TRAIN',"
                " 'VALIDATE', 'TEST' and 'UNASSIGNED' (a chronological split is not supported)"
            )
        values = pc.utf8_upper(pc.fill_null(column, "UNASSIGNED")).to_pylist()
        unknown = sorted(set(values) - set(SPLIT_VALUES))
        if unknown:
            raise errors.InvalidParameterValue(
                f"DATA_SPLIT_COL has the value {unknown[0]!r}: expected 'TRAIN', 'VALIDATE',"
                " 'TEST' or 'UNASSIGNED'"
            )
        for i, value in enumerate(values):
            if SPLIT_VALUES[value] is not None:
                drawn[i] = SPLIT_VALUES[value]
    return tuning.finished(drawn == "train", drawn == "eval", drawn == "test")


def evaluation_rows(options: Mapping[str, Any], table: pa.Table) -> pa.Table:
    """The rows an AutoML version's metrics are on: its test rows (a gated deploy's)."""
    opts = models.get(options["model_type"]).resolve_options(dict(options))
    _, rows = tuning.label_rows(opts, table)
    return rows.filter(pa.array(_split(opts, rows).test))
