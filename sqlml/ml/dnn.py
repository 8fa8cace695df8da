"""BigQuery ML's DNN models, dnn_regressor and dnn_classifier, as scikit-learn's multilayer
perceptrons (MLPRegressor, MLPClassifier), converted by skl2onnx like the other estimators.

BigQuery trains these with TensorFlow; sqlml has no TensorFlow (a 500 MB dependency) and scikit-
learn's perceptron is the same model (dense layers, one activation, a linear or softmax/logistic
output, L2 on the weights) trained the same way (minibatch Adam or SGD). What it cannot do is
refused with 0A000, never silently dropped (issue 13): ACTIVATION_FN other than RELU, SIGMOID and
TANH; OPTIMIZER other than ADAM and SGD; DROPOUT above 0; L1_REG above 0.

Options (BigQuery's CREATE MODEL page for DNN models, its defaults):
- HIDDEN_UNITS: the layer sizes; by default one layer of min(128, N / (10 (Ni + No))) units,
  N rows, Ni inputs, No outputs (at least 1);
- ACTIVATION_FN 'RELU'; OPTIMIZER 'ADAM'; LEARN_RATE 0.001 (learning_rate_init); L2_REG 0
  (alpha); BATCH_SIZE min(1024, N); MAX_ITERATIONS 20 epochs;
- EARLY_STOP TRUE / MIN_REL_PROGRESS 0.01: after each epoch, stop when the loss (on the evaluation
  rows when the split leaves some, else the training loss) improved by less than that fraction;
  as for boosted trees (trees.py), each epoch's loss is recorded for ML.TRAINING_INFO.
The epochs run one ``partial_fit`` each (scikit-learn's own minibatch loop, seed 0, the
optimizer's state kept across epochs), so that the stopping rule is BigQuery's (relative
progress) rather than scikit-learn's (an absolute tolerance over 10 epochs) and each epoch can be
cancelled. (It is not bit-for-bit ``fit(max_iter=k)``: ``partial_fit`` draws its shuffles
differently; tests/test_dnn.py compares with k ``partial_fit`` calls made independently.)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml import models
from sqlml.ml.options import COMMON, Option, non_negative, positive

Array = np.ndarray[Any, Any]

ACTIVATIONS = {"RELU": "relu", "SIGMOID": "logistic", "TANH": "tanh"}
OPTIMIZERS = {"ADAM": "adam", "SGD": "sgd"}


def _units(value: list[Any]) -> bool:
    return all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in value)


def _fraction(x: float) -> bool:
    return 0 <= x < 1


OPTIONS = (
    Option(
        "hidden_units",
        "int_list",
        None,
        check=_units,
        requirement="an array of positive integers, e.g. [64, 32]",
    ),
    Option(
        "activation_fn",
        "str",
        "RELU",
        choices=("RELU", "RELU6", "CRELU", "ELU", "SELU", "SIGMOID", "TANH"),
    ),
    Option("optimizer", "str", "ADAM", choices=("ADAGRAD", "ADAM", "FTRL", "RMSPROP", "SGD")),
    Option("learn_rate", "float", 0.001, check=positive, requirement="a number > 0"),
    Option("batch_size", "int", None, check=positive, requirement="a positive integer"),
    Option("dropout", "float", 0.0, check=_fraction, requirement="a number in [0, 1)"),
    Option("l1_reg", "float", 0.0, check=non_negative, requirement="a number >= 0"),
    Option("l2_reg", "float", 0.0, check=non_negative, requirement="a number >= 0"),
)

PENDING = (
    *models.PENDING_COMMON,
    "tf_version",
    "enable_global_explain",
    "integrated_gradients_num_steps",
    "data_split_test_fraction",
)


def _refuse(opts: dict[str, Any]) -> None:
    if opts["activation_fn"] not in ACTIVATIONS:
        raise errors.FeatureNotSupported(
            f"ACTIVATION_FN = '{opts['activation_fn']}' is not supported",
            hint="use 'RELU', 'SIGMOID' or 'TANH'",
        )
    if opts["optimizer"] not in OPTIMIZERS:
        raise errors.FeatureNotSupported(
            f"OPTIMIZER = '{opts['optimizer']}' is not supported", hint="use 'ADAM' or 'SGD'"
        )
    if opts["dropout"] > 0:
        raise errors.FeatureNotSupported("DROPOUT above 0 is not supported")
    if opts["l1_reg"] > 0:
        raise errors.FeatureNotSupported(
            "L1_REG above 0 is not supported for DNN models", hint="use L2_REG"
        )


def default_units(n_rows: int, n_inputs: int, n_outputs: int) -> int:
    """BigQuery's default width of its one hidden layer."""
    return max(1, min(128, math.floor(n_rows / (10 * (n_inputs + n_outputs)))))


def _builder(classifier: bool) -> Callable[[dict[str, Any], models.FitContext], Any]:
    def build(opts: dict[str, Any], ctx: models.FitContext) -> Any:
        from sklearn.neural_network import MLPClassifier, MLPRegressor  # lazy: scikit-learn

        _refuse(opts)
        classes = ctx.n_classes if classifier else None
        outputs = 1 if classes is None or classes == 2 else classes
        units = opts["hidden_units"] or [default_units(ctx.n_rows, ctx.n_features, outputs)]
        cls = MLPClassifier if classifier else MLPRegressor
        return cls(
            hidden_layer_sizes=tuple(units),
            activation=ACTIVATIONS[opts["activation_fn"]],
            solver=OPTIMIZERS[opts["optimizer"]],
            alpha=opts["l2_reg"],
            batch_size=opts["batch_size"] or min(1024, ctx.n_rows),
            learning_rate_init=opts["learn_rate"],
            random_state=models.SEED,
            shuffle=True,
        )

    return build


def _fit(estimator: Any, data: models.FitData) -> dict[str, Any]:
    """One ``partial_fit`` per epoch (module docstring), with the loss recorded after each."""
    assert data.y is not None
    opts = data.options
    classes = len(data.classes) if data.classes else None
    weights = models.row_weights(data, classes)
    extra: dict[str, Any] = {} if classes is None else {"classes": np.arange(classes)}
    history: list[dict[str, Any]] = []
    last = time.perf_counter()
    stopped = False
    for epoch in range(opts["max_iterations"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (scikit-learn's per-call convergence notes)
            estimator.partial_fit(data.x, data.y, sample_weight=weights, **extra)
        extra.pop("classes", None)
        now = time.perf_counter()
        history.append(
            {
                "iteration": epoch,
                "loss": float(estimator.loss_),
                "eval_loss": _loss(estimator, classes, data.x_eval, data.y_eval),
                "learning_rate": float(estimator.learning_rate_init),
                "duration_ms": round((now - last) * 1000),
            }
        )
        last = now
        data.checkpoint()
        if opts["early_stop"] and _little_progress(history, opts["min_rel_progress"]):
            stopped = True
            break
    return {"iterations": len(history), "converged": stopped, "history": history}


def _loss(estimator: Any, classes: int | None, x: Array | None, y: Array | None) -> float | None:
    """Mean squared error or log loss on the evaluation rows (None without any)."""
    if x is None or y is None or len(y) == 0:
        return None
    if classes is None:
        return float(np.mean((estimator.predict(x) - y) ** 2))
    probabilities = np.clip(estimator.predict_proba(x), 1e-15, 1.0)
    return float(-np.mean(np.log(probabilities[np.arange(len(y)), y])))


def _little_progress(history: list[dict[str, Any]], fraction: float) -> bool:
    if len(history) < 2:
        return False
    key = "eval_loss" if history[-1]["eval_loss"] is not None else "loss"
    before, now = history[-2][key], history[-1][key]
    return bool(before > 0 and (before - now) / before < fraction)


def _standardize(opts: dict[str, Any]) -> bool:
    return True


for _name, _classifier in (("dnn_regressor", False), ("dnn_classifier", True)):
    models.register(
        models.ModelType(
            _name,
            models.CLASSIFIER if _classifier else models.REGRESSOR,
            COMMON
            + models.SUPERVISED
            + OPTIONS
            + (Option("instance_weight_col", "str"),)
            + (models.CLASS_WEIGHTS if _classifier else ()),
            _builder(_classifier),
            _standardize,
            PENDING,
            fit=_fit,
        )
    )
