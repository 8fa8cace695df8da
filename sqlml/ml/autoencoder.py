"""BigQuery ML's ``autoencoder`` model type and its kind: scikit-learn's MLPRegressor trained to
reconstruct its input (the preprocessed rows are both X and y), with the latent layer's output
as ML.PREDICT's ``latent_col_1..k``.

Options (BigQuery's CREATE MODEL page for autoencoders): HIDDEN_UNITS, an odd number of layers
whose middle one is the latent space (e.g. [8, 2, 8]), by default BigQuery's one layer of
min(128, N / (10 (Ni + No))) units, the preprocessed features in and out (dnn.default_units);
ACTIVATION_FN, OPTIMIZER, LEARN_RATE, BATCH_SIZE, DROPOUT, L1_REG, L2_REG, MAX_ITERATIONS,
EARLY_STOP and MIN_REL_PROGRESS mean what they mean for DNN models and train the same way:
dnn.py's epoch loop (one ``partial_fit`` per epoch, BigQuery's relative-progress early stop on
the training loss: an autoencoder has no data split). What scikit-learn cannot do is 0A000 as
there (dnn._refuse), and so is L1_REG_ACTIVATION above 0 (an L1 penalty on the latent
activations).

The graph is sqlml's own, from the fitted weights (MatMul, Add and the activation per layer, as
estimator_onnx.py writes linear models): ``latent`` (the middle layer's output) and
``reconstruction`` (the output layer, linear); skl2onnx would only give the reconstruction.
ML.EVALUATE reports the reconstruction's mean_absolute_error, mean_squared_error and
mean_squared_log_error over every feature value of every row (the latter NULL when a value is -1
or below, as for regressors: standardized features often are). Training records the quantiles of
the training rows' reconstruction errors for ML.DETECT_ANOMALIES, as for PCA (pca.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlglot import exp

from sqlml import errors
from sqlml.ml import dnn, kinds, models, pca, predict_sql
from sqlml.ml.options import COMMON, Option, non_negative

if TYPE_CHECKING:
    import pyarrow as pa

Array = np.ndarray[Any, Any]
AUTOENCODER = "autoencoder"
ONNX_ACTIVATIONS = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh"}

OPTIONS = (
    *COMMON,
    *dnn.OPTIONS,
    Option("l1_reg_activation", "float", 0.0, check=non_negative, requirement="a number >= 0"),
)
PENDING = (*models.PENDING_COMMON, "tf_version")


def _build(opts: dict[str, Any], ctx: models.FitContext) -> Any:
    from sklearn.neural_network import MLPRegressor  # lazy: scikit-learn

    width = ctx.n_features
    units = opts["hidden_units"] or [dnn.default_units(ctx.n_rows, width, width)]
    if len(units) % 2 == 0:
        raise errors.InvalidParameterValue(
            "model_type AUTOENCODER needs HIDDEN_UNITS with an odd number of layers, the middle"
            " one the latent space, e.g. [8, 2, 8]"
        )
    if opts["activation_fn"] == "CRELU":  # (a DNN activation BigQuery's autoencoder lacks)
        raise errors.InvalidParameterValue("ACTIVATION_FN 'CRELU' is not one of an autoencoder's")
    dnn._refuse(opts)
    if opts["l1_reg_activation"] > 0:
        raise errors.FeatureNotSupported("L1_REG_ACTIVATION above 0 is not supported")
    return MLPRegressor(
        hidden_layer_sizes=tuple(units),
        activation=dnn.ACTIVATIONS[opts["activation_fn"]],
        solver=dnn.OPTIMIZERS[opts["optimizer"]],
        alpha=opts["l2_reg"],
        batch_size=opts["batch_size"] or min(1024, ctx.n_rows),
        learning_rate_init=opts["learn_rate"],
        random_state=models.SEED,
        shuffle=True,
    )


def _fit(estimator: Any, data: models.FitData) -> dict[str, Any]:
    """dnn.py's epoch loop, with the rows as their own target."""
    return dnn._fit(estimator, dataclasses.replace(data, y=data.x, y_eval=data.x_eval))


_ACTIVATE: dict[str, Callable[[Array], Array]] = {
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "logistic": lambda z: 1 / (1 + np.exp(-z)),
}


def forward(estimator: Any, x: Array) -> tuple[Array, Array]:
    """The latent layer's output and the reconstruction, computed from the weights."""
    act = _ACTIVATE[estimator.activation]
    h, latent = np.asarray(x, dtype=np.float64), None
    last = len(estimator.coefs_) - 1
    for i, (w, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_, strict=True)):
        h = h @ w + b
        if i < last:
            h = act(h)
        if i == (last - 1) // 2:
            latent = h
    assert latent is not None
    return latent, h


def _to_onnx(estimator: Any) -> tuple[Any, dict[str, str]]:
    from onnx import helper

    from sqlml.ml.graph import DOUBLE, GraphBuilder, finish

    g = GraphBuilder()
    width = estimator.coefs_[0].shape[0]
    g.inputs.append(helper.make_tensor_value_info("features", DOUBLE, [None, width]))
    h, latent = "features", ""
    last = len(estimator.coefs_) - 1
    for i, (w, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_, strict=True)):
        h = g.op("Add", g.op("MatMul", h, g.const(np.asarray(w))), g.const(np.asarray(b)[None, :]))
        if i < last:
            h = g.op(ONNX_ACTIVATIONS[estimator.activation], h)
        if i == (last - 1) // 2:
            latent = h
    types = _output_types(estimator)
    model = finish(g, {"latent": latent, "reconstruction": h}, types)
    return model, {"latent": "latent", "reconstruction": "reconstruction"}


def _output_types(estimator: Any) -> kinds.OutputTypes:
    units = estimator.hidden_layer_sizes
    return {
        "latent": (kinds.DOUBLE, [None, units[len(units) // 2]]),
        "reconstruction": (kinds.DOUBLE, [None, estimator.coefs_[0].shape[0]]),
    }


def _expected(estimator: Any, x: Array) -> tuple[dict[str, Array], Array | None]:
    latent, _ = forward(estimator, x)
    return {"latent": latent, "reconstruction": estimator.predict(x)}, None


# -- the kind -------------------------------------------------------------------------------------


def reconstruction_errors(features: Array, reconstruction: Array) -> dict[str, float | None]:
    """BigQuery's reconstruction metrics over every value of every row."""
    x, r = np.asarray(features, dtype=np.float64), np.asarray(reconstruction, dtype=np.float64)
    if x.size == 0:
        names = ("mean_absolute_error", "mean_squared_error", "mean_squared_log_error")
        return dict.fromkeys(names, None)
    msle = None
    if (x > -1).all() and (r > -1).all():
        msle = float(np.mean((np.log1p(x) - np.log1p(r)) ** 2))
    return {
        "mean_absolute_error": float(np.mean(np.abs(x - r))),
        "mean_squared_error": float(np.mean((x - r) ** 2)),
        "mean_squared_log_error": msle,
    }


def _metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    return reconstruction_errors(x, outputs["reconstruction"])


def _evaluate_rows(
    version: kinds.Version,
    outputs: dict[str, Array],
    y: pa.ChunkedArray | None,
    threshold: float | None,
) -> dict[str, float | None]:
    return reconstruction_errors(outputs["features"], outputs["reconstruction"])


def _width(version: kinds.Version) -> int:
    units = version.training_info["hidden_units"]
    return int(units[len(units) // 2])


_COLUMNS = predict_sql.NumberedDoubles("latent_col_", _width)


KIND = kinds.register(
    kinds.Kind(
        name=AUTOENCODER,
        onnx_outputs={"latent": "latent", "reconstruction": "reconstruction"},
        output_types=_output_types,
        expected=_expected,
        metrics=_metrics,
        returns_features=True,
        supervised=False,
        raw_outputs=("latent",),
        width=_width,
        output_names=_COLUMNS.names,
        columns=_COLUMNS.columns,
        score=lambda version, raw: exp.cast(raw[0], exp.DataType.build("DOUBLE")),
        pg_score_type=lambda version: "DOUBLE PRECISION",
        evaluate_rows=_evaluate_rows,
    )
)


def _fit_and_record(estimator: Any, data: models.FitData) -> dict[str, Any]:
    info = _fit(estimator, data)
    info["hidden_units"] = [int(u) for u in estimator.hidden_layer_sizes]
    info[pca.ERROR_QUANTILES] = pca.error_quantiles(data.x, estimator.predict(data.x))
    return info


def _standardize(opts: dict[str, Any]) -> bool:
    return True


models.register(
    models.ModelType(
        AUTOENCODER,
        AUTOENCODER,
        OPTIONS,
        _build,
        _standardize,
        PENDING,
        fit=_fit_and_record,
        to_onnx=_to_onnx,
    )
)
