"""BigQuery ML's tree models: boosted_tree_regressor / _classifier, random_forest_regressor /
_classifier, trained with XGBoost (BigQuery's own library; docs/design/trees.md says why and maps
every option) and stored as ONNX by sqlml's converter (trees_onnx.py).

Each model type registers itself in the model-type registry (models.register), the same door as
linear models and k-means. What differs from those is said in the ModelType entry:

- preprocessing: numeric columns are imputed with the training mean and not standardized;
  categorical columns are label-encoded (CATEGORY_ENCODING_METHOD = 'LABEL_ENCODING', BigQuery's
  default) or one-hot encoded ('ONE_HOT_ENCODING');
- fitting (``fit``): XGBoost's native training loop, fed the evaluation split so EARLY_STOP can
  watch its loss, with a callback that stops on MIN_REL_PROGRESS, records each round's loss
  (ML.TRAINING_INFO) and checks for cancellation between rounds;
- conversion (``to_onnx``): trees_onnx, spliced after sqlml's preprocessing graph.

A random forest is XGBoost's random-forest mode: one round of NUM_PARALLEL_TREE trees, learning
rate 1 (XGBRFRegressor's own parameters).

Threads: libgomp's idle threads spin, and sqlml trains inside database servers that share their
cores (a 2-thread fit ran 10x slower while another process held a core); sqlml.ml's __init__ sets
OMP_WAIT_POLICY=passive before scikit-learn loads the libgomp XGBoost shares with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml import models
from sqlml.ml.options import COMMON, Option, non_negative, positive

Array = np.ndarray[Any, Any]

BOOSTED = ("boosted_tree_regressor", "boosted_tree_classifier")
FORESTS = ("random_forest_regressor", "random_forest_classifier")


def _unit(x: float) -> bool:
    return 0 < x <= 1


def _closed_unit(x: float) -> bool:
    return 0 <= x <= 1


def _depth(x: int) -> bool:
    return 1 <= x <= 20  # BigQuery's range for MAX_TREE_DEPTH


def _options(forest: bool) -> tuple[Option, ...]:
    """BigQuery ML's options of the tree model types, with its defaults (docs/design/trees.md)."""
    shared = (
        Option("max_tree_depth", "int", 15 if forest else 6, check=_depth, requirement="1..20"),
        Option("l1_reg", "float", 0.0, check=non_negative, requirement="a number >= 0"),
        Option("l2_reg", "float", 1.0, check=non_negative, requirement="a number >= 0"),
        Option("min_split_loss", "float", 0.0, check=non_negative, requirement="a number >= 0"),
        Option("min_tree_child_weight", "float", 1.0, check=non_negative, requirement=">= 0"),
        Option("subsample", "float", 0.8 if forest else 1.0, check=_unit, requirement="(0, 1]"),
        Option("colsample_bytree", "float", 1.0, check=_unit, requirement="(0, 1]"),
        Option("colsample_bylevel", "float", 1.0, check=_unit, requirement="(0, 1]"),
        Option(
            "colsample_bynode", "float", 0.8 if forest else 1.0, check=_unit, requirement="(0, 1]"
        ),
        Option(
            "num_parallel_tree",
            "int",
            100 if forest else 1,
            check=positive,
            requirement="a positive integer",
        ),
        Option("tree_method", "str", "AUTO", choices=("AUTO", "EXACT", "APPROX", "HIST")),
        Option(
            "category_encoding_method",
            "str",
            "LABEL_ENCODING",
            choices=("LABEL_ENCODING", "ONE_HOT_ENCODING", "TARGET_ENCODING"),
        ),
        Option("instance_weight_col", "str"),
        # ML.GLOBAL_EXPLAIN's attributions, computed at training (ml/global_explain.py)
        Option("enable_global_explain", "bool", False),
        Option("approx_global_feature_contrib", "bool", False),
    )
    if forest:
        early = tuple(o for o in COMMON if o.name != "max_iterations")
        return early + models.SUPERVISED + shared
    boosted = (
        Option("booster_type", "str", "GBTREE", choices=("GBTREE", "DART")),
        Option("dart_normalize_type", "str", "TREE", choices=("TREE", "FOREST")),
        Option("dropout", "float", 0.0, check=_closed_unit, requirement="a number in [0, 1]"),
        Option("learn_rate", "float", 0.3, check=positive, requirement="a number > 0"),
    )
    return COMMON + models.SUPERVISED + shared + boosted


# BigQuery's options for these model types that sqlml refuses (0A000): docs/design/trees.md
PENDING = (
    *models.PENDING_COMMON,
    "xgboost_version",
    "data_split_test_fraction",
    "hparam_range",
    "hparam_candidates",
)


# -- what training produces ----------------------------------------------------------------------


@dataclass
class Trees:
    """A fitted XGBoost booster, with the predict / predict_proba the parity check asks for
    (computed by XGBoost itself, independently of the ONNX graph)."""

    params: dict[str, Any]
    rounds: int
    classes: int | None  # classifiers: the number of classes; None for regression
    early_stop: bool
    min_rel_progress: float
    booster: Any = None

    @property
    def parity_tolerance(self) -> float:
        """XGBoost's predict sums the trees' float32 leaves in float32, the graph in float64 (the
        exact sum): they differ by up to one float32 rounding per tree (trees_onnx.py)."""
        n_trees = self.rounds * self.params["num_parallel_tree"] * max(1, self.classes or 1)
        return float((n_trees + 1) * 2.0**-23)

    @property
    def classes_(self) -> list[int]:
        return list(range(self.classes or 0))

    def _raw(self, x: Array) -> Array:
        import xgboost

        return np.asarray(self.booster.predict(xgboost.DMatrix(x)), dtype=np.float64)

    def predict_proba(self, x: Array) -> Array:
        raw = self._raw(x)
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw

    def predict(self, x: Array) -> Array:
        if self.classes is None:
            return self._raw(x)
        return np.asarray(np.argmax(self.predict_proba(x), axis=1), dtype=np.int64)


def _xgboost() -> Any:
    import xgboost  # (lazy: 0.3 s; libgomp's wait policy is set by sqlml.ml's __init__)

    return xgboost


def _params(opts: dict[str, Any], forest: bool, classes: int | None) -> dict[str, Any]:
    encoding = opts["category_encoding_method"]
    if encoding == "TARGET_ENCODING":
        raise errors.FeatureNotSupported(
            "CATEGORY_ENCODING_METHOD = 'TARGET_ENCODING' is not supported yet",
            hint="use 'LABEL_ENCODING' (the default) or 'ONE_HOT_ENCODING'",
        )
    method = opts["tree_method"]
    params: dict[str, Any] = {
        "max_depth": opts["max_tree_depth"],
        "reg_alpha": opts["l1_reg"],
        "reg_lambda": opts["l2_reg"],
        "gamma": opts["min_split_loss"],
        "min_child_weight": opts["min_tree_child_weight"],
        "subsample": opts["subsample"],
        "colsample_bytree": opts["colsample_bytree"],
        "colsample_bylevel": opts["colsample_bylevel"],
        "colsample_bynode": opts["colsample_bynode"],
        "num_parallel_tree": opts["num_parallel_tree"],
        "tree_method": "hist" if method in ("AUTO", "HIST") else method.lower(),
        "seed": models.SEED,
        "verbosity": 0,
    }
    if forest:
        params["learning_rate"] = 1.0  # XGBoost's random-forest mode
    else:
        params["learning_rate"] = opts["learn_rate"]
        if opts["booster_type"] == "DART":
            params.update(
                booster="dart",
                rate_drop=opts["dropout"],
                normalize_type=opts["dart_normalize_type"].lower(),
            )
    if classes is None:
        params.update(objective="reg:squarederror", eval_metric="rmse")
    elif classes == 2:
        params.update(objective="binary:logistic", eval_metric="logloss")
    else:
        params.update(objective="multi:softprob", num_class=classes, eval_metric="mlogloss")
    return params


def _builder(forest: bool, classifier: bool) -> Callable[[dict[str, Any], models.FitContext], Any]:
    def build(opts: dict[str, Any], ctx: models.FitContext) -> Trees:
        classes = ctx.n_classes if classifier else None
        return Trees(
            params=_params(opts, forest, classes),
            rounds=1 if forest else opts["max_iterations"],
            classes=classes,
            early_stop=bool(opts["early_stop"]) and not forest,
            min_rel_progress=opts["min_rel_progress"],
        )

    return build


# -- fitting -------------------------------------------------------------------------------------


def _fit(trees: Trees, data: models.FitData) -> dict[str, Any]:
    """XGBoost's training loop on the preprocessed rows; returns the training info."""
    xgboost = _xgboost()
    weights = models.row_weights(data, trees.classes)
    method = trees.params["tree_method"]
    # QuantileDMatrix bins the rows once, in float32, without a second copy (hist only)
    matrix = xgboost.QuantileDMatrix if method == "hist" else xgboost.DMatrix
    train = matrix(data.x, label=data.y, weight=weights, nthread=-1)
    evals = [(train, "train")]
    if data.x_eval is not None:
        extra = {"ref": train} if method == "hist" else {}
        evals.append((matrix(data.x_eval, label=data.y_eval, **extra), "eval"))
    watch = _Rounds(trees, data.checkpoint, squared=trees.classes is None)

    class Callback(xgboost.callback.TrainingCallback):  # type: ignore[misc,name-defined]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return watch.after(epoch, evals_log)

    trees.booster = xgboost.train(
        trees.params,
        train,
        num_boost_round=trees.rounds,
        evals=evals,
        callbacks=[Callback()],
        verbose_eval=False,
    )
    trees.rounds = int(trees.booster.num_boosted_rounds())
    return {
        "iterations": trees.rounds,
        "converged": watch.stopped or trees.rounds < 2,
        "history": watch.history,
        "feature_importance": _importance(trees.booster, data.x.shape[1]),
    }


class _Rounds:
    """After each XGBoost round: its loss (training rows, and evaluation rows when there is a
    split), EARLY_STOP on MIN_REL_PROGRESS, and cancellation between rounds."""

    def __init__(self, trees: Trees, checkpoint: Callable[[], None], squared: bool) -> None:
        self.trees, self.checkpoint, self.squared = trees, checkpoint, squared
        self.history: list[dict[str, Any]] = []
        self.stopped = False
        self.last = time.perf_counter()

    def after(self, epoch: int, log: dict[str, Any]) -> bool:
        now = time.perf_counter()
        losses = {name: self._loss(metrics) for name, metrics in log.items()}
        self.history.append(
            {
                "iteration": epoch,
                "loss": losses.get("train"),
                "eval_loss": losses.get("eval"),
                "learning_rate": self.trees.params["learning_rate"],
                "duration_ms": round((now - self.last) * 1000),
            }
        )
        self.last = now
        self.checkpoint()
        return self._stop()

    def _loss(self, metrics: dict[str, list[float]]) -> float:
        value = float(next(iter(metrics.values()))[-1])
        return value * value if self.squared else value  # rmse -> mean squared error

    def _stop(self) -> bool:
        if not self.trees.early_stop or len(self.history) < 2:
            return False
        key = "eval_loss" if self.history[-1]["eval_loss"] is not None else "loss"
        before, now = self.history[-2][key], self.history[-1][key]
        if before is None or now is None or before <= 0:
            return False
        self.stopped = (before - now) / before < self.trees.min_rel_progress
        return self.stopped


def _importance(booster: Any, width: int) -> list[dict[str, float]]:
    """Per preprocessed feature: the splits on it, their total gain and total cover (XGBoost's
    'weight', 'total_gain', 'total_cover'); ML.FEATURE_IMPORTANCE reads these."""
    names = [f"f{j}" for j in range(width)]
    kinds = {
        k: booster.get_score(importance_type=k) for k in ("weight", "total_gain", "total_cover")
    }
    return [
        {
            "weight": float(kinds["weight"].get(name, 0.0)),
            "total_gain": float(kinds["total_gain"].get(name, 0.0)),
            "total_cover": float(kinds["total_cover"].get(name, 0.0)),
        }
        for name in names
    ]


def _to_onnx(trees: Trees) -> tuple[Any, dict[str, str]]:
    from sqlml.ml.trees_onnx import xgboost_to_onnx

    graph = xgboost_to_onnx(trees.booster, rounds=trees.rounds)
    names = (
        {"value": "value"}
        if trees.classes is None
        else {
            "label": "label",
            "probabilities": "probabilities",
        }
    )
    return graph, names


def _booster_json(trees: Trees) -> bytes:
    """The fitted model in XGBoost's own stable JSON format (never pickle): the ONNX graph has
    no node covers, which ML.EXPLAIN_PREDICT's TreeSHAP needs (functions/explain_trees.py)."""
    return bytes(trees.booster.save_raw("json"))


def _encoding(opts: dict[str, Any]) -> str:
    return "one_hot" if opts["category_encoding_method"] == "ONE_HOT_ENCODING" else "label"


def _never(opts: dict[str, Any]) -> bool:
    return False


for _name in (*BOOSTED, *FORESTS):
    _forest = _name in FORESTS
    _classifier = _name.endswith("classifier")
    models.register(
        models.ModelType(
            _name,
            models.CLASSIFIER if _classifier else models.REGRESSOR,
            _options(_forest) + (models.CLASS_WEIGHTS if _classifier else ()),
            _builder(_forest, _classifier),
            _never,
            PENDING,
            encoding=_encoding,
            fit=_fit,
            to_onnx=_to_onnx,
            kept=_booster_json,
        )
    )
