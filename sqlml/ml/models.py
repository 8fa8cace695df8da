"""Model types: a registry that maps BigQuery ML's model_type to a scikit-learn estimator.

Each built-in model type registers itself through :func:`register`, the same door a third party
would use. An entry says which options it takes (with BigQuery ML's defaults), whether numeric
features are standardized, and how to build the estimator from the resolved options.

How BigQuery ML's options map onto scikit-learn (written down because the two scale their losses
differently; sqlml defines its objective as scikit-learn's):
- linear_reg, NORMAL_EQUATION / AUTO_STRATEGY: l1_reg = l2_reg = 0 -> LinearRegression;
  l2_reg only -> Ridge(alpha=l2_reg); l1_reg > 0 -> ElasticNet(alpha=l1_reg + l2_reg,
  l1_ratio=l1_reg / (l1_reg + l2_reg)).
- logistic_reg: LogisticRegression(lbfgs; C = 1 / l2_reg, or no penalty when l2_reg = 0);
  with l1_reg > 0: saga with C = 1 / (l1_reg + l2_reg), l1_ratio = l1_reg / (l1_reg + l2_reg).
- BATCH_GRADIENT_DESCENT: SGDRegressor / SGDClassifier(loss='log_loss') with penalty
  alpha = l1_reg + l2_reg, eta0 = learn_rate (learn_rate_strategy CONSTANT) or the default
  'invscaling' schedule from ls_init_learn_rate (LINE_SEARCH).
- max_iterations is the solver's max_iter; early_stop=FALSE turns the tolerance off (tol=None or 0)
  and min_rel_progress is the tolerance otherwise.
- kmeans: KMeans(n_clusters=num_clusters, init RANDOM | KMEANS++ | CUSTOM (the rows where
  kmeans_init_col is TRUE), n_init=1, max_iter=max_iterations, tol=min_rel_progress,
  random_state=0); DISTANCE_TYPE COSINE: the same on L2-normalized rows (kmeans_cosine.py).
Random choices use seed 0, so training the same data twice gives the same model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml.options import COMMON, Option, fraction, non_negative, positive, resolve

REGRESSOR, CLASSIFIER, CLUSTERER = "regressor", "classifier", "clusterer"
SEED = 0


Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class FitContext:
    """What an estimator builder may need besides options."""

    n_rows: int
    init_centroids: Array | None = None  # kmeans CUSTOM init, preprocessed
    n_classes: int | None = None  # classifiers: the label's distinct values
    n_features: int = 0  # columns of the preprocessed matrix


@dataclass(frozen=True)
class FitData:
    """The preprocessed rows a model type's own ``fit`` gets (trees.py): the evaluation split
    too, for early stopping on its loss."""

    x: Array
    y: Array | None
    x_eval: Array | None
    y_eval: Array | None
    weights: Array | None  # INSTANCE_WEIGHT_COL per training row, or None
    classes: list[Any]  # classifiers: label values in class-index order
    options: dict[str, Any]
    checkpoint: Callable[[], None]


def _one_hot(opts: dict[str, Any]) -> str:
    return "one_hot"


@dataclass(frozen=True)
class ModelType:
    name: str
    kind: str  # a kind registered in kinds.py: REGRESSOR | CLASSIFIER | CLUSTERER | ...
    options: tuple[Option, ...]
    build: Callable[[dict[str, Any], FitContext], Any]
    standardize: Callable[[dict[str, Any]], bool]
    pending: tuple[str, ...] = ()  # BigQuery ML's options of this type sqlml lacks yet (0A000)
    # how categorical columns are encoded: 'one_hot' or 'label' (features.py)
    encoding: Callable[[dict[str, Any]], str] = _one_hot
    # its own training loop (None: the scikit-learn estimator's fit); returns training info
    fit: Callable[[Any, FitData], dict[str, Any]] | None = None
    # its own ONNX converter (None: sqlml's or skl2onnx's): the estimator's graph, with a single
    # input of the preprocessed features, and its output names -> the kind's canonical names
    to_onnx: Callable[[Any], tuple[Any, dict[str, str]]] | None = None
    # what training records beside the fit, from the fitted estimator and the preprocessed
    # training rows (k-means: what ML.DETECT_ANOMALIES needs, anomaly.py); None: nothing
    record: Callable[[Any, Array], dict[str, Any]] | None = None
    # what a version keeps beside its graph, from the fitted estimator (tree models: XGBoost's
    # JSON, for ML.EXPLAIN_PREDICT's TreeSHAP; store.py); None: nothing
    kept: Callable[[Any], bytes] | None = None
    # TIMESTAMP columns expand into BigQuery's components (sqlml.ml.temporal): linear models only
    expand_timestamps: bool = False

    @property
    def supervised(self) -> bool:
        from sqlml.ml import kinds  # (kinds imports this module)

        return kinds.kind(self.kind).supervised

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        return resolve(given, self.options, self.name, self.pending)


_REGISTRY: dict[str, ModelType] = {}


def register(model_type: ModelType) -> None:
    _REGISTRY[model_type.name] = model_type


def _builtins() -> None:
    """The model types defined in their own modules register themselves on import (trees.py
    imports this module, so it cannot be imported from here at load time)."""
    from sqlml.ml import autoencoder, automl, dnn, imported, pca, trees  # noqa: F401


def unregister(name: str) -> None:
    """Removes a model type (a plugin unloading, a test cleaning up)."""
    _REGISTRY.pop(name, None)


def get(name: object) -> ModelType:
    _builtins()
    if not isinstance(name, str):
        raise errors.InvalidParameterValue("option MODEL_TYPE is required, e.g. 'logistic_reg'")
    found = _REGISTRY.get(name.lower())
    if found is None:
        raise errors.InvalidParameterValue(
            f"model_type '{name}' is not supported",
            hint="supported: " + ", ".join(sorted(_REGISTRY)),
        )
    return found


def names() -> list[str]:
    _builtins()
    return sorted(_REGISTRY)


SUPERVISED = (
    Option("input_label_cols", "str_list"),
    Option(
        "data_split_method",
        "str",
        "AUTO_SPLIT",
        choices=("AUTO_SPLIT", "RANDOM", "CUSTOM", "SEQ", "NO_SPLIT"),
    ),
    Option(
        "data_split_eval_fraction",
        "float",
        0.2,
        check=fraction,
        requirement="a number between 0 and 1",
    ),
    Option("data_split_col", "str"),
)

LINEAR = (
    Option(
        "optimize_strategy",
        "str",
        "AUTO_STRATEGY",
        choices=("AUTO_STRATEGY", "BATCH_GRADIENT_DESCENT", "NORMAL_EQUATION"),
    ),
    Option("l1_reg", "float", 0.0, check=non_negative, requirement="a number >= 0"),
    Option("l2_reg", "float", 0.0, check=non_negative, requirement="a number >= 0"),
    Option("learn_rate_strategy", "str", "LINE_SEARCH", choices=("LINE_SEARCH", "CONSTANT")),
    Option("learn_rate", "float", 0.1, check=positive, requirement="a number > 0"),
    Option("ls_init_learn_rate", "float", 0.1, check=positive, requirement="a number > 0"),
)

# what training computes besides the weights (ml/global_explain.py): ML.ADVANCED_WEIGHTS'
# standard errors and p-values (with dummy encoding), ML.GLOBAL_EXPLAIN's attributions
EXPLAINED_LINEAR = (
    Option("calculate_p_values", "bool", False),
    Option(
        "category_encoding_method",
        "str",
        "ONE_HOT_ENCODING",
        choices=("ONE_HOT_ENCODING", "DUMMY_ENCODING"),
    ),
    Option("enable_global_explain", "bool", False),
)


def _linear_encoding(opts: dict[str, Any]) -> str:
    return "dummy" if opts.get("category_encoding_method") == "DUMMY_ENCODING" else "one_hot"


CLASS_WEIGHTS = (
    Option("auto_class_weights", "bool", False),
    Option("class_weights", "struct_list"),
)


def _tol(opts: dict[str, Any], off: float | None) -> float | None:
    return float(opts["min_rel_progress"]) if opts["early_stop"] else off


def _sgd_args(opts: dict[str, Any]) -> dict[str, Any]:
    l1, l2 = opts["l1_reg"], opts["l2_reg"]
    constant = opts["learn_rate_strategy"] == "CONSTANT"
    return {
        "penalty": "elasticnet" if l1 + l2 > 0 else None,
        "alpha": l1 + l2 if l1 + l2 > 0 else 0.0001,
        "l1_ratio": l1 / (l1 + l2) if l1 + l2 > 0 else 0.15,
        "learning_rate": "constant" if constant else "invscaling",
        "eta0": opts["learn_rate"] if constant else opts["ls_init_learn_rate"],
        "max_iter": opts["max_iterations"],
        "tol": _tol(opts, None),
        "random_state": SEED,
    }


def _linear_reg(opts: dict[str, Any], ctx: FitContext) -> Any:
    from sklearn.linear_model import ElasticNet, LinearRegression, Ridge, SGDRegressor  # lazy: 3 s

    l1, l2 = opts["l1_reg"], opts["l2_reg"]
    if opts["optimize_strategy"] == "BATCH_GRADIENT_DESCENT":
        return SGDRegressor(**_sgd_args(opts))
    if l1 > 0:
        return ElasticNet(
            alpha=l1 + l2,
            l1_ratio=l1 / (l1 + l2),
            max_iter=opts["max_iterations"],
            tol=_tol(opts, 0.0) or 0.0,
            random_state=SEED,
        )
    return Ridge(alpha=l2) if l2 > 0 else LinearRegression()


def class_weight_vector(pairs: list[list[Any]], classes: list[Any]) -> Array:
    """CLASS_WEIGHTS' [label, weight] pairs as one weight per class index (1 if not named)."""
    by_text = {str(c).lower(): i for i, c in enumerate(classes)}
    weights = np.ones(len(classes))
    for label, weight in pairs:
        index = by_text.get(str(label).lower())
        if index is None:
            raise errors.InvalidParameterValue(f"CLASS_WEIGHTS names unknown label {label!r}")
        weights[index] = weight
    return weights


def row_weights(data: FitData, n_classes: int | None) -> Array | None:
    """Per training row, for model types that take sample weights (trees, dnn):
    INSTANCE_WEIGHT_COL times the class weight (CLASS_WEIGHTS, or AUTO_CLASS_WEIGHTS'
    n / (classes x count), scikit-learn's 'balanced'); None when neither is given."""
    weights = None if data.weights is None else np.asarray(data.weights, dtype=np.float64)
    if n_classes is None or data.y is None:
        return weights
    if data.options.get("auto_class_weights") and data.options.get("class_weights"):
        raise errors.InvalidParameterValue(
            "AUTO_CLASS_WEIGHTS and CLASS_WEIGHTS cannot both be set"
        )
    per_class = None
    if data.options.get("auto_class_weights"):
        counts = np.bincount(data.y, minlength=n_classes).astype(np.float64)
        per_class = np.where(counts > 0, len(data.y) / (n_classes * np.maximum(counts, 1)), 0)
    elif data.options.get("class_weights"):
        per_class = class_weight_vector(data.options["class_weights"], data.classes)
    if per_class is None:
        return weights
    by_row = per_class[data.y]
    return by_row if weights is None else weights * by_row


def _class_weight(opts: dict[str, Any]) -> Any:
    if opts["auto_class_weights"] and opts["class_weights"]:
        raise errors.InvalidParameterValue(
            "AUTO_CLASS_WEIGHTS and CLASS_WEIGHTS cannot both be set"
        )
    if opts["auto_class_weights"]:
        return "balanced"
    return None  # explicit CLASS_WEIGHTS are mapped onto class indexes by the trainer


def _logistic_reg(opts: dict[str, Any], ctx: FitContext) -> Any:
    from sklearn.linear_model import LogisticRegression, SGDClassifier  # lazy: 3 s to import

    l1, l2 = opts["l1_reg"], opts["l2_reg"]
    weight = _class_weight(opts)
    if opts["optimize_strategy"] == "BATCH_GRADIENT_DESCENT":
        return SGDClassifier(loss="log_loss", class_weight=weight, **_sgd_args(opts))
    tol = _tol(opts, 0.0) or 0.0
    if l1 > 0:
        return LogisticRegression(
            C=1.0 / (l1 + l2),
            l1_ratio=l1 / (l1 + l2),
            solver="saga",
            max_iter=opts["max_iterations"],
            tol=tol,
            class_weight=weight,
            random_state=SEED,
        )
    return LogisticRegression(
        C=1.0 / l2 if l2 > 0 else math.inf,
        solver="lbfgs",
        max_iter=opts["max_iterations"],
        tol=tol,
        class_weight=weight,
    )


KMEANS_OPTIONS = (
    Option("num_clusters", "int", None, check=lambda k: k >= 2, requirement="an integer >= 2"),
    Option("kmeans_init_method", "str", "RANDOM", choices=("RANDOM", "KMEANS++", "CUSTOM")),
    Option("kmeans_init_col", "str"),
    Option("distance_type", "str", "EUCLIDEAN", choices=("EUCLIDEAN", "COSINE")),
    Option("standardize_features", "bool", True),
)


def default_num_clusters(n_rows: int) -> int:
    """sqlml's choice when NUM_CLUSTERS is omitted: about log10 of the rows, between 2 and 8."""
    return max(2, min(8, round(math.log10(max(n_rows, 1)))))


def _kmeans(opts: dict[str, Any], ctx: FitContext) -> Any:
    from sklearn.cluster import KMeans  # lazy: scikit-learn takes 3 s to import

    k = opts["num_clusters"] or default_num_clusters(ctx.n_rows)
    init: Any = {"RANDOM": "random", "KMEANS++": "k-means++"}.get(opts["kmeans_init_method"])
    if init is None:
        init = ctx.init_centroids
        k = len(init)
    if k > ctx.n_rows:
        raise errors.UnusableTrainingData(f"NUM_CLUSTERS = {k} is more than the {ctx.n_rows} rows")
    if opts["distance_type"] == "COSINE":
        from sqlml.ml.kmeans_cosine import CosineKMeans, normalized

        cls: type[Any] = CosineKMeans
        init = normalized(init) if isinstance(init, np.ndarray) else init
    else:
        cls = KMeans
    return cls(
        n_clusters=k,
        init=init,
        n_init=1,
        max_iter=opts["max_iterations"],
        tol=_tol(opts, 0.0) or 0.0,
        random_state=SEED,
    )


def _always(opts: dict[str, Any]) -> bool:
    return True


def _kmeans_record(estimator: Any, x: Array) -> dict[str, Any]:
    from sqlml.ml.anomaly import kmeans_record

    return kmeans_record(estimator, x)


def _kmeans_standardize(opts: dict[str, Any]) -> bool:
    return bool(opts["standardize_features"])


# BigQuery ML's CREATE MODEL options that sqlml does not implement yet, per its reference pages
# for generalized linear models and k-means: 0A000 "not supported yet", not a typo's 22023.
PENDING_COMMON = (
    "warm_start",
    "num_trials",
    "max_parallel_trials",
    "hparam_tuning_algorithm",
    "hparam_tuning_objectives",
    "model_registry",
    "vertex_ai_model_id",
    "vertex_ai_model_version_aliases",
    "kms_key_name",
)
# warm_start is built for the model types that take WARM (ml/warm_start.py); 0A000 elsewhere
WARMABLE = tuple(p for p in PENDING_COMMON if p != "warm_start")
WARM = (Option("warm_start", "bool", False),)
PENDING_LINEAR = (
    *WARMABLE,
    "fit_intercept",
    "data_split_test_fraction",
)

register(
    ModelType(
        "linear_reg",
        REGRESSOR,
        COMMON + SUPERVISED + LINEAR + EXPLAINED_LINEAR + WARM,
        _linear_reg,
        _always,
        PENDING_LINEAR,
        encoding=_linear_encoding,
        expand_timestamps=True,
    )
)
register(
    ModelType(
        "logistic_reg",
        CLASSIFIER,
        COMMON + SUPERVISED + LINEAR + EXPLAINED_LINEAR + CLASS_WEIGHTS + WARM,
        _logistic_reg,
        _always,
        PENDING_LINEAR,
        encoding=_linear_encoding,
        expand_timestamps=True,
    )
)
register(
    ModelType(
        "kmeans",
        CLUSTERER,
        COMMON + KMEANS_OPTIONS + WARM,
        _kmeans,
        _kmeans_standardize,
        WARMABLE,
        record=_kmeans_record,
    )
)
