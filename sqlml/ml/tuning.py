"""Hyperparameter tuning, as BigQuery ML does it (its "Hyperparameter tuning overview" and the
CREATE MODEL pages): ``NUM_TRIALS`` turns it on, ``HPARAM_RANGE(min, max)`` and
``HPARAM_CANDIDATES([...])`` give an option a search space, and each trial is one training
with one point of it.

- **Search space.** The options each model type can tune, their valid ranges, default ranges and
  scales are BigQuery's table (``TUNABLE``). With NUM_TRIALS and no HPARAM_* option, the model
  type's default search space is tuned (the options that have a default range); with one or
  more, only those. A range outside the valid one, a range on an option that takes words, or
  either on an option that cannot be tuned is 22023. A LOG-scale range may start at 0: the search
  tries 0 itself (as its starting point, when 0 is the default) and the five decades below the
  range's maximum on the log scale (BigQuery says 0 becomes 1e-14; sqlml's reason for not
  spending trials below that is at LOG_DECADES).
- **Algorithms.** ``GRID_SEARCH`` (every space discrete: the combinations in order),
  ``RANDOM_SEARCH``, and the default ``VIZIER_DEFAULT``: sqlml's Bayesian optimisation, a
  Gaussian process (scikit-learn's) over the normalised space with expected improvement, after
  a few random points; BigQuery's Vizier is not available outside Google, so the name keeps
  BigQuery's meaning ("Bayesian optimization with Gaussian processes"), not its code. Every
  algorithm's first trial is the search's starting point: each option's default, or the
  point of its space nearest it (BigQuery's rule), so tuning is never worse than the defaults
  on the evaluation rows. Random draws use a fixed seed: the same statement tries the same
  points.
- **Data split.** With more than 500 rows (AUTO_SPLIT, or RANDOM without fractions) the rows are
  shuffled and split 80/10/10 into training, evaluation and test rows; RANDOM and SEQ take
  DATA_SPLIT_EVAL_FRACTION and DATA_SPLIT_TEST_FRACTION, CUSTOM a STRING column of 'TRAIN',
  'EVAL' and 'TEST'; NO_SPLIT trains and evaluates on every row. Each trial trains on the
  training rows and is scored on the evaluation rows (its objective: ML.TRIAL_INFO's
  hparam_tuning_evaluation_metrics) and on the test rows (the metrics ML.EVALUATE reports for
  it). With no test rows the evaluation rows stand in. k-means trains on every row, as
  BigQuery's does.
- **Trials.** The trial with the best objective is the version's model; every trial's graph is
  kept (store.py, sqlml.version_trials) so ``STRUCT(n AS trial_id)`` scores with any of them.
  A trial whose options are invalid is INFEASIBLE, one whose training fails FAILED with its
  error; neither stops the tuning unless more than half of NUM_TRIALS fail. A cancel stops the
  statement; ``max_training_seconds`` is the whole tuning's budget: when it runs out the trial
  running stops (FAILED, saying so) and the best trial so far is kept.
- **Parallel trials.** ``MAX_PARALLEL_TRIALS`` is checked (1 to 5) and the Bayesian search
  proposes that many points at a time without the results of the others (BigQuery's
  semantics), but the trials of a batch train one after another: training already uses the
  machine's cores, and inside PostgreSQL a backend's Python must stay on one thread.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.ml import fingerprint, kinds, models, split
from sqlml.ml.checkpoints import Checkpoint
from sqlml.ml.options import unknown
from sqlml.ml.spec import HparamCandidates, HparamRange, OptionValue, TransformItem

if TYPE_CHECKING:
    from sqlml.ml.train import TrainResult

Array = np.ndarray[Any, Any]
Progress = Callable[[str], None]

# the options of tuning itself (BigQuery's), taken out before a trial's options are resolved
NUM_TRIALS = "num_trials"
TUNING_OPTIONS = (
    NUM_TRIALS,
    "max_parallel_trials",
    "hparam_tuning_algorithm",
    "hparam_tuning_objectives",
    "data_split_test_fraction",
)
ALGORITHMS = ("VIZIER_DEFAULT", "RANDOM_SEARCH", "GRID_SEARCH")
MAX_TRIALS = 100  # BigQuery's range of NUM_TRIALS: 1 to 100
MAX_PARALLEL = 5
# A LOG-scale range from 0: BigQuery converts 0 to 1e-14, which on a log scale spends most of
# the trials on 14 decades of values that all mean "no regularisation". sqlml's search keeps 0
# itself (the starting point when it is the default) and searches the 5 decades below the
# range's maximum: (0, 10] is 1e-4 to 10 on the log scale.
LOG_DECADES = 5.0
SMALL = 500  # AUTO_SPLIT: fewer rows than this train on every row
SEED = 0
SUCCEEDED, FAILED, INFEASIBLE = "SUCCEEDED", "FAILED", "INFEASIBLE"


@dataclass(frozen=True)
class Tunable:
    """One option a model type can tune: its valid range (``choices`` for options of words or
    arrays, which take HPARAM_CANDIDATES only) and its default search space (None: tuned only
    when a search space is given)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    scale: str = "LINEAR"  # 'LINEAR' | 'LOG'
    integer: bool = False
    default: tuple[float, float] | tuple[str, ...] | None = None
    discrete: bool = False  # words or arrays: HPARAM_CANDIDATES only

    def valid(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def words(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        high = "infinity" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"


_REG = Tunable(0, math.inf, low_open=True, scale="LOG", default=(0, 10))
_REG_NO_DEFAULT = Tunable(0, math.inf, low_open=True, scale="LOG")
_UNIT = Tunable(0, 1)
_NON_NEGATIVE = Tunable(0, math.inf)
_TREES = {
    "l1_reg": _REG,
    "l2_reg": _REG,
    "min_split_loss": _NON_NEGATIVE,
    "min_tree_child_weight": _NON_NEGATIVE,
    "colsample_bytree": _UNIT,
    "colsample_bylevel": _UNIT,
    "colsample_bynode": _UNIT,
    "tree_method": Tunable(discrete=True),
}
_BOOSTED = {
    **_TREES,
    "learn_rate": Tunable(0, math.inf, default=(0, 1)),
    "dropout": _UNIT,
    "max_tree_depth": Tunable(1, 20, integer=True, default=(1, 10)),
    "subsample": Tunable(0, 1, low_open=True, default=(0, 1)),
    "num_parallel_tree": Tunable(1, math.inf, integer=True),
    "booster_type": Tunable(discrete=True),
    "dart_normalize_type": Tunable(discrete=True),
}
_FOREST = {
    **_TREES,
    "max_tree_depth": Tunable(1, 20, integer=True, default=(1, 20)),
    "subsample": Tunable(0, 1, low_open=True, high_open=True, default=(0, 1)),
    "num_parallel_tree": Tunable(2, math.inf, integer=True, default=(2, 200)),
}
# BigQuery's default search space for DNNs also tunes DROPOUT, L1_REG and the optimizers FTRL,
# ADAGRAD and RMSPROP, which sqlml's DNNs do not have yet (0A000, ml/dnn.py): their default
# space is left without them (given a space, a trial with such a value is INFEASIBLE)
_DNN = {
    "batch_size": Tunable(
        0, math.inf, low_open=True, scale="LOG", integer=True, default=(16, 1024)
    ),
    "dropout": Tunable(0, 1, high_open=True),
    "hidden_units": Tunable(discrete=True),
    "learn_rate": Tunable(0, 1, default=(0, 1)),
    "optimizer": Tunable(discrete=True, default=("ADAM", "SGD")),
    "l1_reg": _REG_NO_DEFAULT,
    "l2_reg": _REG,
    "activation_fn": Tunable(discrete=True),
}
# BigQuery's "Hyperparameters and objectives" table, per model type sqlml tunes
TUNABLE: dict[str, dict[str, Tunable]] = {
    "linear_reg": {"l1_reg": _REG, "l2_reg": _REG},
    "logistic_reg": {"l1_reg": _REG, "l2_reg": _REG},
    "kmeans": {"num_clusters": Tunable(2, 100, integer=True, default=(2, 10))},
    "boosted_tree_regressor": _BOOSTED,
    "boosted_tree_classifier": _BOOSTED,
    "random_forest_regressor": _FOREST,
    "random_forest_classifier": _FOREST,
    "dnn_regressor": _DNN,
    "dnn_classifier": _DNN,
}
# kmeans tunes one objective (BigQuery's table); the others any of their kind's gate metrics
_OBJECTIVES = {"kmeans": ("davies_bouldin_index",)}


@dataclass(frozen=True)
class Space:
    """One tuned option's search space: a range (``low``, ``high``) or ``candidates``."""

    name: str
    tunable: Tunable
    low: float = 0.0
    high: float = 0.0
    candidates: tuple[Any, ...] = ()

    @property
    def discrete(self) -> bool:
        return bool(self.candidates)

    def value(self, u: float) -> Any:
        """The point at ``u`` in [0, 1] of the space (its scale applied)."""
        u = min(max(u, 0.0), 1.0)
        if self.discrete:
            return self.candidates[min(int(u * len(self.candidates)), len(self.candidates) - 1)]
        if self.tunable.scale == "LOG":
            if u == 0.0 and self.low == 0:  # (the option's own 0: no search step lands here)
                return 0 if self.tunable.integer else 0.0
            low = self._log_low()
            value = math.exp(math.log(low) + u * (math.log(max(self.high, low)) - math.log(low)))
        else:
            value = self.low + u * (self.high - self.low)
        return round(value) if self.tunable.integer else float(value)

    def position(self, value: Any) -> float:
        """The inverse of ``value``: where in [0, 1] a value lies (the GP's coordinate)."""
        if self.discrete:
            index = self.candidates.index(value)
            return (index + 0.5) / len(self.candidates)
        if self.high == self.low:
            return 0.5
        if self.tunable.scale == "LOG":
            low = self._log_low()
            span = math.log(max(self.high, low)) - math.log(low)
            return 0.0 if span == 0 else (math.log(max(value, low)) - math.log(low)) / span
        return (float(value) - self.low) / (self.high - self.low)

    def _log_low(self) -> float:
        if self.low > 0:
            return self.low
        return self.high * 10**-LOG_DECADES if self.high > 0 else 1e-14

    def nearest(self, default: Any) -> Any:
        """BigQuery's starting point: the default when the space holds it, else the point of
        the space nearest it (the middle of a range when the option has no default)."""
        if self.discrete:
            if default in self.candidates:
                return default
            numbers = [c for c in self.candidates if _is_number(c)]
            if _is_number(default) and numbers:
                return min(numbers, key=lambda c: abs(float(c) - float(default)))
            return self.candidates[0]
        if not _is_number(default):
            return self.value(0.5)
        value = min(max(float(default), self.low), self.high)
        return round(value) if self.tunable.integer else value


@dataclass(frozen=True)
class Plan:
    """What NUM_TRIALS and its options asked for, checked."""

    num_trials: int
    parallel: int
    algorithm: str
    objective: str  # a metric name of ML.EVALUATE's (lower case)
    higher_is_better: bool
    spaces: tuple[Space, ...]
    options: dict[str, OptionValue]  # the training options without tuning's and search spaces
    test_fraction: float | None  # DATA_SPLIT_TEST_FRACTION as given (None: not given)

    def described(self) -> dict[str, Any]:
        """The search, as the version's training_info keeps it."""
        return {
            "num_trials": self.num_trials,
            "max_parallel_trials": self.parallel,
            "algorithm": self.algorithm,
            "objective": self.objective,
            "search_space": {
                s.name: {"candidates": list(s.candidates)}
                if s.discrete
                else {"min": s.low, "max": s.high, "scale": s.tunable.scale}
                for s in self.spaces
            },
        }


@dataclass
class Trial:
    """One trial: ML.TRIAL_INFO's row, and its trained model when it succeeded."""

    trial_id: int
    hyperparameters: dict[str, Any]
    status: str = SUCCEEDED
    error_message: str | None = None
    tuning_metrics: dict[str, Any] | None = None  # the objective, on the evaluation rows
    metrics: dict[str, Any] | None = None  # ML.EVALUATE's, on the test rows
    training_loss: float | None = None
    eval_loss: float | None = None
    optimal: bool = False
    result: TrainResult | None = None
    started_at: datetime = field(default_factory=lambda: _now())
    ended_at: datetime = field(default_factory=lambda: _now())


SEARCHES = ("hparam_tuning", "automl")  # training_info's record of a search (finish's key)


def has_trials(training_info: Mapping[str, Any]) -> bool:
    """Whether a version was trained by a search of trials (tuning or AutoML)."""
    return any(key in training_info for key in SEARCHES)


def searches(options: Mapping[str, OptionValue]) -> bool:
    """Whether the options train by a search of trials (tuning, or AutoML)."""
    model_type = options.get("model_type")
    automl = isinstance(model_type, str) and model_type.lower().startswith("automl_")
    return automl or requested(options)


def as_written(options: Mapping[str, OptionValue]) -> dict[str, Any]:
    """A search's options as the statement wrote them, as JSON values (search spaces
    included): what retrain = 'if_changed' compares (unchanged.py)."""
    found: dict[str, Any] = json.loads(json.dumps({k: _json_value(v) for k, v in options.items()}))
    return found


def written(training_info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The options as written of a version a search trained (None: no search did)."""
    for key in SEARCHES:
        if key in training_info:
            found = training_info[key].get("options")
            return dict(found) if isinstance(found, dict) else None
    return None


def requested(options: Mapping[str, OptionValue]) -> bool:
    """Whether the statement tunes: NUM_TRIALS, or any option of tuning or a search space
    (which without NUM_TRIALS is 22023, as BigQuery's "you must also specify NUM_TRIALS")."""
    return any(name in options for name in TUNING_OPTIONS) or any(
        isinstance(v, HparamRange | HparamCandidates) for v in options.values()
    )


def plain(options: Mapping[str, OptionValue]) -> dict[str, OptionValue]:
    """The options as one training takes them, each search space at its starting point: what
    CREATE MODEL checks before it reads the rows (``plan`` checks the spaces themselves)."""
    if not requested(options):
        return dict(options)
    tuning = plan(options)
    start = {s.name: _option_value(s.nearest(_default(options, s.name))) for s in tuning.spaces}
    return {**tuning.options, **start}


def plan(options: Mapping[str, OptionValue]) -> Plan:
    """NUM_TRIALS and the rest checked (22023 / 0A000 before any row is read)."""
    model_type = models.get(options.get("model_type"))
    if model_type.name.startswith("automl_"):  # (AutoML searches by itself: automl.py)
        given = next(n for n in options if n in TUNING_OPTIONS or _is_space(options[n]))
        names = [o.name for o in model_type.options]
        raise unknown(given, names, model_type.pending, model_type.name)
    if NUM_TRIALS not in options:
        given = next(n for n in options if n in TUNING_OPTIONS or _is_space(options[n]))
        raise errors.InvalidParameterValue(
            f"option {given.upper()} needs NUM_TRIALS: it is an option of hyperparameter tuning",
            hint="add NUM_TRIALS = n (1 to 100) to tune, or leave it out",
        )
    tunable = TUNABLE.get(model_type.name)
    if tunable is None:
        raise errors.FeatureNotSupported(
            f"hyperparameter tuning of model_type {model_type.name.upper()} is not supported",
            hint="model types that tune: " + ", ".join(n.upper() for n in TUNABLE),
        )
    for option in ("incremental", "warm_start"):
        if options.get(option) is True:
            raise errors.FeatureNotSupported(
                f"hyperparameter tuning with {option.upper()} = TRUE is not supported"
            )
    num_trials = _integer(options, NUM_TRIALS, 1, MAX_TRIALS, None)
    parallel = _integer(options, "max_parallel_trials", 1, MAX_PARALLEL, 1)
    algorithm = _choice(options, "hparam_tuning_algorithm", ALGORITHMS, "VIZIER_DEFAULT")
    objective, higher = _objective(options, model_type)
    test = options.get("data_split_test_fraction")
    if test is not None and (
        isinstance(test, bool) or not isinstance(test, int | float) or not 0 <= test < 1
    ):
        raise errors.InvalidParameterValue(
            f"invalid value {test!r} for option DATA_SPLIT_TEST_FRACTION: expected a number"
            " in [0, 1)"
        )
    rest = {n: v for n, v in options.items() if n not in TUNING_OPTIONS and not _is_space(v)}
    spaces = _spaces(options, model_type, tunable, rest)
    if algorithm == "GRID_SEARCH" and not all(s.discrete for s in spaces):
        ranged = next(s.name for s in spaces if not s.discrete)
        raise errors.InvalidParameterValue(
            f"GRID_SEARCH needs every search space discrete: {ranged.upper()} has a range",
            hint=f"give {ranged.upper()} = HPARAM_CANDIDATES([...]), or use RANDOM_SEARCH",
        )
    return Plan(
        num_trials,
        parallel,
        algorithm,
        objective,
        higher,
        tuple(spaces),
        rest,
        None if test is None else float(test),
    )


def _is_space(value: OptionValue) -> bool:
    return isinstance(value, HparamRange | HparamCandidates)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(
    options: Mapping[str, OptionValue], name: str, low: int, high: int, default: int | None
) -> int:
    value = options.get(name, default)
    if not _is_number(value) or int(value) != value or not low <= int(value) <= high:  # type: ignore[arg-type]
        raise errors.InvalidParameterValue(
            f"invalid value {value!r} for option {name.upper()}: expected an integer from"
            f" {low} to {high}"
        )
    return int(value)


def _choice(
    options: Mapping[str, OptionValue], name: str, choices: tuple[str, ...], default: str
) -> str:
    value = options.get(name, default)
    if not isinstance(value, str) or value.upper() not in choices:
        raise errors.InvalidParameterValue(
            f"invalid value {value!r} for option {name.upper()}: expected one of "
            + ", ".join(choices)
        )
    return value.upper()


def _objective(
    options: Mapping[str, OptionValue], model_type: models.ModelType
) -> tuple[str, bool]:
    """HPARAM_TUNING_OBJECTIVES: one metric of the model type's (BigQuery's lists), and whether
    more is better."""
    kind = kinds.kind(model_type.kind)
    allowed = _OBJECTIVES.get(model_type.name, tuple(kind.gate_metrics))
    default = allowed[0] if model_type.name in _OBJECTIVES else kind.gate_default
    value = options.get("hparam_tuning_objectives", default)
    if isinstance(value, tuple):  # (an array of one, as BigQuery's API writes it)
        if len(value) != 1:
            raise errors.InvalidParameterValue(
                "HPARAM_TUNING_OBJECTIVES takes one objective: multi-objective tuning is not"
                " supported"
            )
        value = value[0]
    if not isinstance(value, str) or value.lower() not in allowed:
        raise errors.InvalidParameterValue(
            f"invalid value {value!r} for option HPARAM_TUNING_OBJECTIVES of"
            f" {model_type.name.upper()}: expected one of " + ", ".join(a.upper() for a in allowed)
        )
    name = value.lower()
    return name, bool(kind.gate_metrics.get(name, False))


def _spaces(
    options: Mapping[str, OptionValue],
    model_type: models.ModelType,
    tunable: dict[str, Tunable],
    rest: dict[str, OptionValue],
) -> list[Space]:
    given = {n: v for n, v in options.items() if _is_space(v)}
    accepted = {o.name: o for o in model_type.options}
    spaces = []
    for name, value in given.items():
        entry = tunable.get(name)
        if entry is None:
            why = "is not an option of" if name not in accepted else "cannot be tuned for"
            raise errors.InvalidParameterValue(
                f"option {name.upper()} {why} model_type {model_type.name.upper()}: it takes no"
                " HPARAM_RANGE or HPARAM_CANDIDATES",
                hint="options that tune: " + ", ".join(n.upper() for n in sorted(tunable)),
            )
        spaces.append(_space(name, entry, value, model_type, rest))
    if not spaces:  # (the model type's default search space)
        for name, entry in tunable.items():
            if entry.default is None:
                continue
            if entry.discrete:
                spaces.append(Space(name, entry, candidates=tuple(entry.default)))
            else:
                low, high = entry.default
                spaces.append(Space(name, entry, float(low), float(high)))
    return spaces


def _space(
    name: str,
    entry: Tunable,
    value: OptionValue,
    model_type: models.ModelType,
    rest: dict[str, OptionValue],
) -> Space:
    if isinstance(value, HparamRange):
        if entry.discrete:
            raise errors.InvalidParameterValue(
                f"option {name.upper()} takes HPARAM_CANDIDATES, not HPARAM_RANGE: its values"
                " are not numbers on a scale"
            )
        low_ok = entry.valid(value.low) or (entry.scale == "LOG" and value.low == 0)
        if not (low_ok and entry.valid(value.high)):
            raise errors.InvalidParameterValue(
                f"HPARAM_RANGE({value.low:g}, {value.high:g}) of option {name.upper()} is outside"
                f" its valid range {entry.words()}"
            )
        return Space(name, entry, value.low, value.high)
    assert isinstance(value, HparamCandidates)
    candidates = tuple(_candidate(v) for v in value.values)
    if len(set(map(repr, candidates))) != len(candidates):
        raise errors.InvalidParameterValue(f"HPARAM_CANDIDATES of {name.upper()} repeats a value")
    for candidate in candidates:  # each checked as the option itself checks a value
        zero = entry.scale == "LOG" and candidate == 0  # (the option's own 0 is allowed)
        if (
            _is_number(candidate)
            and not entry.discrete
            and not zero
            and not entry.valid(float(candidate))
        ):
            raise errors.InvalidParameterValue(
                f"HPARAM_CANDIDATES value {candidate!r} of option {name.upper()} is outside its"
                f" valid range {entry.words()}"
            )
        model_type.resolve_options({**rest, name: _option_value(candidate)})
    return Space(name, entry, candidates=candidates)


def _candidate(value: OptionValue) -> Any:
    """A candidate as the option takes it: ``STRUCT([16, 8])`` (BigQuery's HIDDEN_UNITS
    candidates) is the array it holds."""
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], tuple):
        return value[0]
    return value


def _option_value(value: Any) -> OptionValue:
    found: OptionValue = tuple(value) if isinstance(value, list) else value
    return found


def _default(options: Mapping[str, OptionValue], name: str) -> Any:
    return default_of(options.get("model_type"), name)


def default_of(model_type: Any, name: str) -> Any:
    """The default of option ``name`` of ``model_type`` (None: it has none)."""
    return next((o.default for o in models.get(model_type).options if o.name == name), None)


# -- the data split ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Masks over the rows that have a label: training, evaluation and test rows."""

    train: Array
    eval: Array
    test: Array


def split_rows(options: Mapping[str, Any], table: pa.Table, plan: Plan, label: str | None) -> Split:
    """BigQuery's split for tuning (module docstring)."""
    n = table.num_rows
    everything = np.ones(n, dtype=bool)
    method = str(options.get("data_split_method") or "AUTO_SPLIT").upper()
    if label is None or method == "NO_SPLIT":  # (k-means: every row, as BigQuery's)
        return Split(everything, everything, everything)
    given_eval = options.get("data_split_eval_fraction")
    unsized = given_eval is None and plan.test_fraction is None
    if method == "AUTO_SPLIT" or (method == "RANDOM" and unsized):
        if n < SMALL:
            return Split(everything, everything, everything)
        return _random_split(n, 0.1, 0.1)
    eval_fraction = float(given_eval) if _is_number(given_eval) else 0.2  # type: ignore[arg-type]
    test_fraction = plan.test_fraction or 0.0
    if eval_fraction + test_fraction >= 1:
        raise errors.InvalidParameterValue(
            "DATA_SPLIT_EVAL_FRACTION + DATA_SPLIT_TEST_FRACTION must be below 1: the rest trains"
        )
    if method == "RANDOM":
        return _random_split(n, eval_fraction, test_fraction)
    column = _split_column(options, table, method)
    if method == "SEQ":
        test = split.eval_mask("SEQ", test_fraction, column, n)
        test = np.zeros(n, dtype=bool) if test is None else test
        rest = ~test
        share = eval_fraction / max(1 - test_fraction, 1e-12)  # (of the rows left)
        ahead = split.eval_mask("SEQ", share, column.filter(pa.array(rest)), int(rest.sum()))
        evaluation = np.zeros(n, dtype=bool)
        if ahead is not None:
            evaluation[np.flatnonzero(rest)[ahead]] = True
        return finished(~test & ~evaluation, evaluation, test)
    return _custom_split(column)


def _random_split(n: int, eval_fraction: float, test_fraction: float) -> Split:
    order = np.random.default_rng(SEED).permutation(n)
    n_eval, n_test = round(n * eval_fraction), round(n * test_fraction)
    evaluation = np.zeros(n, dtype=bool)
    test = np.zeros(n, dtype=bool)
    evaluation[order[:n_eval]] = True
    test[order[n_eval : n_eval + n_test]] = True
    return finished(~evaluation & ~test, evaluation, test)


def _split_column(options: Mapping[str, Any], table: pa.Table, method: str) -> pa.ChunkedArray:
    wanted = options.get("data_split_col")
    found = next(
        (c for c in table.column_names if isinstance(wanted, str) and c.lower() == wanted.lower()),
        None,
    )
    if found is None:
        raise errors.InvalidParameterValue(f"DATA_SPLIT_METHOD = '{method}' needs DATA_SPLIT_COL")
    return table.column(found)


def _custom_split(column: pa.ChunkedArray) -> Split:
    """CUSTOM with tuning: a STRING column of 'TRAIN', 'EVAL' and 'TEST' (BigQuery's)."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        raise errors.DatatypeMismatch(
            "DATA_SPLIT_COL must be a STRING column of 'TRAIN', 'EVAL' and 'TEST' for a CUSTOM"
            " split with hyperparameter tuning"
        )
    values = np.asarray(pc.utf8_upper(pc.fill_null(column, "")).to_numpy(zero_copy_only=False))
    others = set(values) - {"TRAIN", "EVAL", "TEST"}
    if others:
        raise errors.InvalidParameterValue(
            f"DATA_SPLIT_COL has the value {sorted(others)[0]!r}: a CUSTOM split with"
            " hyperparameter tuning takes 'TRAIN', 'EVAL' and 'TEST'"
        )
    return finished(values == "TRAIN", values == "EVAL", values == "TEST")


def finished(train: Array, evaluation: Array, test: Array) -> Split:
    """The split, its empty parts filled as BigQuery does (no training rows: 22000)."""
    if not train.any():
        raise errors.UnusableTrainingData("the data split leaves no training rows")
    if not evaluation.any():  # (no evaluation rows: the training rows evaluate)
        evaluation = train
    if not test.any():  # "When the test set is empty, the evaluation set is used"
        test = evaluation
    return Split(train, evaluation, test)


def label_rows(options: Mapping[str, Any], table: pa.Table) -> tuple[str | None, pa.Table]:
    """The label column (None: unsupervised) and the rows that have one."""
    model_type = models.get(options.get("model_type"))
    if not model_type.supervised:
        return None, table
    label = split.label_column(options, table)
    if label is None:
        return None, table  # (train() says which column is missing)
    return label, table.filter(pc.is_valid(table.column(label)))


# -- proposals -----------------------------------------------------------------------------------


class Search:
    """The points to try, per algorithm; ``tell`` gives it each trial's objective (higher is
    better), ``ask`` the next batch ([] once a discrete space is exhausted)."""

    def __init__(self, plan: Plan, defaults: dict[str, Any]) -> None:
        self.plan = plan
        self.spaces = plan.spaces
        self.rng = np.random.default_rng(SEED)
        self.start = {s.name: s.nearest(defaults.get(s.name)) for s in self.spaces}
        self.tried: list[dict[str, Any]] = []
        self.scores: list[float | None] = []
        self.discrete = all(s.discrete for s in self.spaces)
        self.grid = (
            [
                dict(zip([s.name for s in self.spaces], c, strict=True))
                for c in itertools.product(*(s.candidates for s in self.spaces))
            ]
            if self.discrete
            else []
        )

    def _seen(self, point: dict[str, Any]) -> bool:
        return any(_same(point, t) for t in self.tried)

    def ask(self, k: int) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for _ in range(k):
            point = self._next(batch)
            if point is None:
                break
            batch.append(point)
            self.tried.append(point)
            self.scores.append(None)
        return batch

    def tell(self, point: dict[str, Any], score: float | None) -> None:
        for i, tried in enumerate(self.tried):
            if tried is point:
                self.scores[i] = score

    def _next(self, batch: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not self.tried:
            return dict(self.start)
        if self.discrete and len(self.tried) >= len(self.grid):
            return None
        if self.plan.algorithm == "GRID_SEARCH":
            return next(p for p in self.grid if not self._seen(p))
        random_points = max(3, len(self.spaces) + 1)
        if self.plan.algorithm == "RANDOM_SEARCH" or len(self.tried) < random_points:
            return self._random()
        return self._bayesian()

    def _random(self) -> dict[str, Any]:
        if self.discrete:
            left = [p for p in self.grid if not self._seen(p)]
            return left[int(self.rng.integers(len(left)))]
        for _ in range(100):
            point = {s.name: s.value(float(self.rng.random())) for s in self.spaces}
            if not self._seen(point):
                return point
        return point

    def _bayesian(self) -> dict[str, Any]:
        """Expected improvement under a Gaussian process fitted to the trials so far (those of
        the batch being proposed count at the GP's own mean: the "constant liar")."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        done = [(p, s) for p, s in zip(self.tried, self.scores, strict=True) if s is not None]
        if len(done) < 2:
            return self._random()
        x = np.array([self._coordinates(p) for p, _ in done])
        y = np.array([s for _, s in done], dtype=float)
        kernel = ConstantKernel(1.0) * Matern(length_scale=0.3, nu=2.5) + WhiteKernel(1e-4)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=SEED)
        with warnings.catch_warnings():  # (a kernel bound reached is no news to the user)
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x, y)
            pending = [p for p, s in zip(self.tried, self.scores, strict=True) if s is None]
            if pending:  # (the batch's points, at the GP's mean)
                px = np.array([self._coordinates(p) for p in pending])
                x = np.vstack([x, px])
                y = np.concatenate([y, gp.predict(px)])
                gp.fit(x, y)
        candidates = [
            {s.name: s.value(float(self.rng.random())) for s in self.spaces} for _ in range(2000)
        ]
        candidates = [c for c in candidates if not self._seen(c)] or candidates
        cx = np.array([self._coordinates(c) for c in candidates])
        mean, sd = gp.predict(cx, return_std=True)
        best = float(np.max(y))
        from scipy.stats import norm

        z = (mean - best) / np.maximum(sd, 1e-12)
        improvement = (mean - best) * norm.cdf(z) + sd * norm.pdf(z)
        return candidates[int(np.argmax(improvement))]

    def _coordinates(self, point: dict[str, Any]) -> list[float]:
        return [s.position(point[s.name]) for s in self.spaces]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(
        math.isclose(a[k], b[k], rel_tol=1e-12)
        if _is_number(a[k]) and _is_number(b[k])
        else a[k] == b[k]
        for k in a
    )


# -- the tuning ----------------------------------------------------------------------------------


def tune(
    options: Mapping[str, OptionValue],
    table: pa.Table,
    transform: Sequence[TransformItem] | None,
    say: Progress,
    checkpoint: Checkpoint,
) -> TrainResult:
    """Trains NUM_TRIALS trials and returns the optimal one's result, every trial attached."""
    tuning = plan(options)
    model_type = models.get(tuning.options.get("model_type"))
    budget = model_type.resolve_options(plain(options)).get("max_training_seconds")
    label, rows = label_rows(tuning.options, table)
    data = Rows.of(tuning.options, rows, label, split_rows(tuning.options, rows, tuning, label))
    runner = Runner(tuning.objective, tuning.higher_is_better, data, transform, checkpoint, budget)
    defaults = {s.name: _default(options, s.name) for s in tuning.spaces}
    search = Search(tuning, defaults)
    say(
        f"hyperparameter tuning: up to {tuning.num_trials} trials ({tuning.algorithm}), objective"
        f" {tuning.objective.upper()} on {int(data.parts.eval.sum())} evaluation rows, tuning "
        + ", ".join(s.name.upper() for s in tuning.spaces)
    )
    while len(runner.trials) < tuning.num_trials:
        if runner.out_of_time(say):
            break
        if not runner.fits(model_type.name):
            say(
                f"stopped after {len(runner.trials)} trials: another would not end within the"
                f" budget ({budget:g} s)"
            )
            break
        batch = search.ask(min(tuning.parallel, tuning.num_trials - len(runner.trials)))
        if not batch:
            say(f"the search space is exhausted after {len(runner.trials)} trials")
            break
        for point in batch:
            trial = runner.run(point, data.base)
            search.tell(point, runner.score(trial))
            say(progress(trial, tuning.objective))
    own = {n: _json_value(v) for n, v in options.items() if n in TUNING_OPTIONS + _SPLIT_OPTIONS}
    described = {**tuning.described(), "options": as_written(options)}
    return runner.finish(tuning.num_trials, own, table, "hparam_tuning", described)


_SPLIT = "__sqlml_tuning_eval"


@dataclass(frozen=True)
class Rows:
    """What every trial reads: the training and evaluation rows (the evaluation ones marked by
    a CUSTOM split column of sqlml's own), the test rows, and the options that split them."""

    rows: pa.Table  # every row with a label
    parts: Split
    trained_on: pa.Table
    test_rows: pa.Table
    base: dict[str, OptionValue]

    @classmethod
    def of(
        cls, options: Mapping[str, OptionValue], rows: pa.Table, label: str | None, parts: Split
    ) -> Rows:
        if rows.num_rows == 0:
            raise errors.UnusableTrainingData("the training query returned no rows with a label")
        trained_on = rows.filter(pa.array(parts.train | parts.eval))
        base = _trial_options(options, parts, label)
        given = options.get("data_split_col")  # (the user's split column: never a feature)
        if label is not None and isinstance(given, str):
            trained_on = trained_on.drop_columns(
                [c for c in trained_on.column_names if c.lower() == given.lower()]
            )
        if label is not None and base.get("data_split_method") == "CUSTOM":
            in_both = parts.train | parts.eval
            trained_on = trained_on.append_column(_SPLIT, pa.array(parts.eval[in_both]))
        return cls(rows, parts, trained_on, rows.filter(pa.array(parts.test)), base)


def _trial_options(
    options: Mapping[str, OptionValue], parts: Split, label: str | None
) -> dict[str, OptionValue]:
    """The options every trial trains with: its evaluation rows as a CUSTOM split over the
    training and evaluation rows (the test rows are left out)."""
    base = {k: v for k, v in options.items() if k not in _SPLIT_OPTIONS}
    if label is None:
        return base
    same = parts.eval is parts.train or bool(np.array_equal(parts.eval, parts.train))
    if same:
        base.update(data_split_method="NO_SPLIT")
    else:
        base.update(data_split_method="CUSTOM", data_split_col=_SPLIT)
    return base


_SPLIT_OPTIONS = ("data_split_method", "data_split_col", "data_split_eval_fraction")


class Runner:
    """Trains trials one after another on ``rows`` and keeps them; ``seconds``: the budget of
    them all (max_training_seconds)."""

    def __init__(
        self,
        objective: str,
        higher_is_better: bool,
        rows: Rows,
        transform: Sequence[TransformItem] | None,
        checkpoint: Checkpoint,
        seconds: float | None,
    ) -> None:
        self.objective, self.higher_is_better = objective, higher_is_better
        self.rows, self.transform, self.checkpoint = rows, transform, checkpoint
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + float(seconds)
        self.trials: list[Trial] = []
        self.longest: dict[str, float] = {}  # per model type: its longest trial so far

    def fits(self, model_type: str) -> bool:
        """Whether a trial of ``model_type`` can end within the budget, by the longest one
        of that type so far (the first of a type always starts): a trial that cannot would
        only be stopped, its time lost to the others'."""
        known = self.longest.get(model_type)
        if self.deadline is None or known is None:
            return True
        return time.monotonic() + known <= self.deadline

    def out_of_time(self, say: Progress) -> bool:
        self.checkpoint()
        if self.deadline is None or time.monotonic() <= self.deadline:
            return False
        say(f"the budget ({self.seconds:g} s) ran out after {len(self.trials)} trials")
        return True

    def run(self, point: dict[str, Any], base: Mapping[str, OptionValue]) -> Trial:
        """One trial: ``base``'s options with ``point``'s values."""
        from scipy.linalg import LinAlgWarning  # (scipy: only once a search trains)

        from sqlml.ml.train import train

        trial = Trial(len(self.trials) + 1, {k: _json_value(v) for k, v in point.items()})
        options = {**base, **{k: _option_value(v) for k, v in point.items()}}
        deadline, checkpoint = self.deadline, self.checkpoint

        def watched() -> None:
            checkpoint()
            if deadline is not None and time.monotonic() > deadline:
                raise _OutOfTime()

        try:
            with warnings.catch_warnings():  # (a near-singular fit is judged by its objective)
                warnings.simplefilter("ignore", LinAlgWarning)
                result = train(options, self.rows.trained_on, self.transform, None, watched)
        except _OutOfTime:
            trial.status = FAILED
            trial.error_message = "stopped: the budget ran out"
        except (errors.InvalidParameterValue, errors.FeatureNotSupported) as e:
            # (a value the option refuses, or one sqlml does not support yet)
            trial.status, trial.error_message = INFEASIBLE, f"{e.sqlstate}: {e.message}"
        except errors.QueryCanceled:
            raise
        except errors.Error as e:
            trial.status, trial.error_message = FAILED, f"{e.sqlstate}: {e.message}"
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as e:  # (a library's numerics)
            trial.status, trial.error_message = FAILED, f"{type(e).__name__}: {e}"
        else:
            _scored(trial, result, self.rows.test_rows, self.objective)
        trial.ended_at = _now()
        took = (trial.ended_at - trial.started_at).total_seconds()
        kind = str(options.get("model_type"))
        self.longest[kind] = max(self.longest.get(kind, 0.0), took)
        self.trials.append(trial)
        return trial

    def score(self, trial: Trial) -> float | None:
        """The trial's objective, higher better (None: it has none)."""
        if trial.status != SUCCEEDED or trial.tuning_metrics is None:
            return None
        value = trial.tuning_metrics.get(self.objective)
        if value is None or not math.isfinite(value):
            return None
        return float(value) if self.higher_is_better else -float(value)

    def finish(
        self,
        limit: int,
        own: dict[str, Any],
        table: pa.Table,
        key: str,
        described: dict[str, Any],
    ) -> TrainResult:
        """The optimal trial's result, every trial attached: ``own`` (the search's own options,
        as written) join its options, ``described`` its training_info under ``key``."""
        trials = self.trials
        succeeded = [t for t in trials if t.status == SUCCEEDED]
        failed = [t for t in trials if t.status == FAILED]
        if not succeeded:
            first = trials[0] if trials else None
            raise errors.UnusableTrainingData(
                f"{key.replace('_', ' ')}: no trial succeeded",
                detail=None if first is None else f"trial 1: {first.error_message}",
                hint="check the search space and the budget",
            )
        if len(failed) * 2 > limit:
            raise errors.UnusableTrainingData(
                f"{key.replace('_', ' ')} stopped: {len(failed)} of {limit} trials failed",
                detail=failed[0].error_message,
            )
        best = max(succeeded, key=lambda t: (self.score(t) or -math.inf, -t.trial_id))
        best.optimal = True
        assert best.result is not None
        result = best.result
        # (the version's options: the optimal trial's, with the search's own as written)
        stored_options = {**result.options, **own}
        stored_options.setdefault("data_split_method", "AUTO_SPLIT")
        info = {
            **result.training_info,
            key: {
                **described,
                "optimal_trial_id": best.trial_id,
                "trials": len(trials),
                "succeeded": len(succeeded),
            },
        }
        return replace(
            result,
            options=stored_options,
            training_info=info,
            row_count=self.rows.rows.num_rows,
            data_hash=fingerprint.of(table).digest,
            trials=tuple(trials),
        )


class _OutOfTime(Exception):
    """max_training_seconds ran out during a trial (the tuning keeps its best so far)."""


def _scored(trial: Trial, result: TrainResult, test_rows: pa.Table, objective: str) -> None:
    """The trial's objective on the evaluation rows (its training's own metrics) and its
    metrics on the test rows."""
    from sqlml.ml.train import evaluation_kept  # (a binary classifier's, for thresholds)

    evaluated = dict(result.metrics)
    trial.tuning_metrics = {objective: evaluated.get(objective)}
    info = dict(result.training_info)
    if result.kind == models.CLUSTERER or test_rows.num_rows == 0:
        trial.metrics = evaluated
    else:
        trial.metrics, outputs, y = _test_metrics(result, test_rows)
        kept = evaluation_kept(outputs, y)
        info.pop("evaluation", None)
        if kept is not None:
            info["evaluation"] = kept
        info["evaluation_rows"] = len(y) if y is not None else test_rows.num_rows
    history = info.get("history")
    if history:
        last = history[-1]
        trial.training_loss = _number_or_none(last.get("loss"))
        trial.eval_loss = _number_or_none(last.get("eval_loss"))
    else:
        loss = {models.REGRESSOR: "mean_squared_error", models.CLASSIFIER: "log_loss"}
        name = loss.get(result.kind, "mean_squared_distance")
        trial.eval_loss = _number_or_none(evaluated.get(name))
    options = {k: v for k, v in result.options.items() if k not in _SPLIT_OPTIONS}
    trial.result = replace(result, metrics=trial.metrics, training_info=info, options=options)


def _test_metrics(
    result: TrainResult, rows: pa.Table
) -> tuple[dict[str, Any], dict[str, Array], Array | None]:
    from sqlml.ml.score import Scorer

    outputs = Scorer(result.onnx, result.inputs).run_table(rows)
    assert result.label is not None
    column = rows.column(result.label)
    if result.classes is not None:
        index = {c: i for i, c in enumerate(result.classes)}
        values = column.to_pylist()
        known = np.array([v in index for v in values], dtype=bool)
        y = np.array([index[v] for v in values if v in index], dtype=np.int64)
        outputs = {k: v[known] for k, v in outputs.items()}
    else:
        y = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    kind = kinds.kind(result.kind)
    return dict(kind.metrics(outputs, y, np.empty((len(y), 0)), result.options)), outputs, y


def progress(trial: Trial, objective: str) -> str:
    """A trial's NOTICE: its values and objective, or why it failed."""
    values = ", ".join(f"{k} = {_shown(v)}" for k, v in trial.hyperparameters.items())
    if trial.status != SUCCEEDED:
        return f"trial {trial.trial_id} ({values}): {trial.status}: {trial.error_message}"
    value = (trial.tuning_metrics or {}).get(objective)
    shown = "NULL" if value is None else f"{value:.6g}"
    return f"trial {trial.trial_id} ({values}): {objective} {shown}"


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, HparamRange):
        return {"hparam_range": [value.low, value.high]}
    if isinstance(value, HparamCandidates):
        return {"hparam_candidates": [_json_value(v) for v in value.values]}
    return value


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) and math.isfinite(float(value)) else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def evaluation_rows(options: Mapping[str, Any], table: pa.Table) -> pa.Table:
    """The rows a tuned training's metrics are on: its test rows (what a gated deploy scores
    the serving version on, sqlml/lifecycle.py)."""
    tuning = plan(options)
    label, rows = label_rows(tuning.options, table)
    return rows.filter(pa.array(split_rows(tuning.options, rows, tuning, label).test))
