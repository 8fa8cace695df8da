"""BigQuery ML's ``pca`` model type (principal component analysis) and its model kind,
``decomposition``: scikit-learn's PCA on the preprocessed rows, with a graph sqlml writes itself.

Options (BigQuery's CREATE MODEL page for PCA):
- exactly one of NUM_PRINCIPAL_COMPONENTS (an integer >= 1, at most the number of feature
  columns after preprocessing and the number of rows) and PCA_EXPLAINED_VARIANCE_RATIO (a number
  in (0, 1): the fewest components whose explained variance ratios add up to more than it); both
  or neither is 22023;
- SCALE_FEATURES (TRUE): numeric features standardized to unit variance first; FALSE leaves them
  on their own scale (PCA centers every column in either case);
- PCA_SOLVER 'AUTO' | 'FULL' | 'RANDOMIZED': scikit-learn's svd_solver 'auto' | 'full' |
  'randomized' (seed 0). RANDOMIZED with PCA_EXPLAINED_VARIANCE_RATIO is 0A000: scikit-learn
  chooses the count from a full decomposition only.

Signs: an eigenvector's sign is arbitrary; sqlml keeps scikit-learn's rule (``svd_flip`` with
``u_based_decision=False``, scikit-learn >= 1.5): in each component the loading of largest
absolute value is positive. Where loadings tie for the largest (two one-hot columns of a
feature of two values load as x and -x), rounding chose, and a component's sign could change
with the machine's BLAS; sqlml takes the first of those within 1e-9 of the largest (``signed``).
So the same rows give the same signs every time.

The graph: z = (x - mean) C' over the preprocessed features x, one output ``components``
[n, k]; ML.PREDICT's columns are principal_component_1..k (DOUBLE), ML.SCORE's value is
principal_component_1. Training records, in its training info, the components (the rows of C,
in the order of the feature matrix), their eigenvalues (explained variance) and explained
variance ratios (against the total variance: the sum of all eigenvalues), which
ML.PRINCIPAL_COMPONENTS and ML.PRINCIPAL_COMPONENT_INFO read. ML.EVALUATE reports
total_explained_variance_ratio: the variance of the components over the variance of the
preprocessed features (over the training rows, the sum of the kept components' ratios).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlglot import exp

from sqlml import errors
from sqlml.ml import kinds, models, predict_sql
from sqlml.ml.options import COMMON, Option

if TYPE_CHECKING:
    import pyarrow as pa

Array = np.ndarray[Any, Any]
DECOMPOSITION = "decomposition"
SOLVERS = {"AUTO": "auto", "FULL": "full", "RANDOMIZED": "randomized"}


def _ratio(x: float) -> bool:
    return 0 < x < 1


OPTIONS = (
    Option("model_type", "str"),
    Option(
        "num_principal_components",
        "int",
        None,
        check=lambda k: k >= 1,
        requirement="an integer >= 1",
    ),
    Option(
        "pca_explained_variance_ratio",
        "float",
        None,
        check=_ratio,
        requirement="a number between 0 and 1 (exclusive)",
    ),
    Option("scale_features", "bool", True),
    Option("pca_solver", "str", "AUTO", choices=tuple(SOLVERS)),
    # incremental = TRUE: exact (ml/incremental_more.py)
    *(o for o in COMMON if o.name in ("incremental", "watermark_col")),
)

PENDING = (
    "model_registry",
    "vertex_ai_model_id",
    "vertex_ai_model_version_aliases",
    "kms_key_name",
)


def _build(opts: dict[str, Any], ctx: models.FitContext) -> Any:
    from sklearn.decomposition import PCA  # lazy: scikit-learn takes 3 s to import

    count, ratio = opts["num_principal_components"], opts["pca_explained_variance_ratio"]
    if (count is None) == (ratio is None):
        raise errors.InvalidParameterValue(
            "model_type PCA takes exactly one of NUM_PRINCIPAL_COMPONENTS and"
            " PCA_EXPLAINED_VARIANCE_RATIO"
        )
    if ratio is not None and opts["pca_solver"] == "RANDOMIZED":
        raise errors.FeatureNotSupported(
            "PCA_SOLVER = 'RANDOMIZED' with PCA_EXPLAINED_VARIANCE_RATIO is not supported",
            hint="use NUM_PRINCIPAL_COMPONENTS, or PCA_SOLVER 'FULL' or 'AUTO'",
        )
    most = min(ctx.n_rows, ctx.n_features)
    if count is not None and count > most:
        raise errors.InvalidParameterValue(
            f"NUM_PRINCIPAL_COMPONENTS = {count} is more than the {most} the data allows"
            f" ({ctx.n_features} feature columns after preprocessing, {ctx.n_rows} rows)"
        )
    solver = SOLVERS[opts["pca_solver"]]
    if solver == "auto" and ratio is not None:
        solver = "full"
    return PCA(
        n_components=count if count is not None else ratio, svd_solver=solver, random_state=0
    )


def _fit(estimator: Any, data: models.FitData) -> dict[str, Any]:
    """Fits, and records what the inspection functions read."""
    estimator.fit(data.x)
    estimator.components_ = signed(estimator.components_)
    data.checkpoint()
    return recorded(estimator, data.x)


def signed(components: Array) -> Array:
    """Each component (a row) signed so that its loading of largest absolute value is
    positive, the first of those within a relative 1e-9 of the largest (module docstring)."""
    rows = np.asarray(components, dtype=np.float64)
    size = np.abs(rows)
    first = np.argmax(size >= size.max(axis=1, keepdims=True) * (1 - 1e-9), axis=1)
    signs = np.sign(rows[np.arange(len(rows)), first])
    result: Array = rows * np.where(signs == 0, 1.0, signs)[:, None]
    return result


def recorded(estimator: Any, x: Array) -> dict[str, Any]:
    """What the inspection functions read, from the fitted estimator and its training rows."""
    return {
        "iterations": 1,
        "converged": True,
        "principal_components": _floats(estimator.components_),
        "eigenvalues": [float(v) for v in estimator.explained_variance_],
        "explained_variance_ratios": [float(v) for v in estimator.explained_variance_ratio_],
        "mean": [float(v) for v in estimator.mean_],
        ERROR_QUANTILES: error_quantiles(x, estimator.inverse_transform(estimator.transform(x))),
    }


# ML.DETECT_ANOMALIES' threshold for a contamination c is the (1 - c) quantile of the training
# rows' reconstruction errors (each row's mean squared error over its features): training
# records those errors' quantiles at every 0.1% (1,001 values, from the least to the largest),
# so that the threshold needs no pass over the training rows.
ERROR_QUANTILES = "reconstruction_error_quantiles"


def error_quantiles(x: Array, reconstruction: Array) -> list[float]:
    errors_ = np.mean((np.asarray(x) - np.asarray(reconstruction)) ** 2, axis=1)
    return [float(v) for v in np.quantile(errors_, np.linspace(0.0, 1.0, 1001))]


def _floats(matrix: Array) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(matrix)]


def _to_onnx(estimator: Any) -> tuple[Any, dict[str, str]]:
    """z = (x - mean) C' (module docstring)."""
    from onnx import helper

    from sqlml.ml.graph import DOUBLE, GraphBuilder, finish

    components = np.asarray(estimator.components_, dtype=np.float64)
    g = GraphBuilder()
    g.inputs.append(helper.make_tensor_value_info("features", DOUBLE, [None, components.shape[1]]))
    centered = g.op("Sub", "features", g.const(np.asarray(estimator.mean_)[None, :]))
    z = g.op("MatMul", centered, g.const(components.T))
    model = finish(g, {"components": z}, {"components": (DOUBLE, [None, len(components)])})
    return model, {"components": "components"}


# -- the kind -------------------------------------------------------------------------------------


def explained_ratio(components: Array, features: Array) -> float | None:
    """The components' variance over the features' (both about their own means)."""
    if len(features) < 2:
        return None
    total = float(np.var(features, axis=0, ddof=1).sum())
    if total == 0:
        return None
    return float(np.var(components, axis=0, ddof=1).sum()) / total


def _metrics(
    outputs: dict[str, Array], y: Array | None, x: Array, options: Mapping[str, Any]
) -> dict[str, Any]:
    return {"total_explained_variance_ratio": explained_ratio(outputs["components"], x)}


def _evaluate_rows(
    version: kinds.Version,
    outputs: dict[str, Array],
    y: pa.ChunkedArray | None,
    threshold: float | None,
) -> dict[str, float | None]:
    ratio = explained_ratio(np.asarray(outputs["components"]), np.asarray(outputs["features"]))
    return {"total_explained_variance_ratio": ratio}


def _width(version: kinds.Version) -> int:
    return len(version.training_info["principal_components"])


_COLUMNS = predict_sql.NumberedDoubles("principal_component_", _width)


def _score(version: kinds.Version, raw: list[exp.Expr]) -> exp.Expr:
    return exp.cast(raw[0], exp.DataType.build("DOUBLE"))


KIND = kinds.register(
    kinds.Kind(
        name=DECOMPOSITION,
        onnx_outputs={"components": "components"},
        output_types=lambda estimator: {
            "components": (kinds.DOUBLE, [None, len(estimator.components_)])
        },
        expected=lambda estimator, x: ({"components": estimator.transform(x)}, None),
        metrics=_metrics,
        returns_features=True,
        supervised=False,
        raw_outputs=("components",),
        width=_width,
        output_names=_COLUMNS.names,
        columns=_COLUMNS.columns,
        score=_score,
        pg_score_type=lambda version: "DOUBLE PRECISION",
        evaluate_rows=_evaluate_rows,
    )
)


def _scale(opts: dict[str, Any]) -> bool:
    return bool(opts["scale_features"])


models.register(
    models.ModelType(
        "pca",
        DECOMPOSITION,
        OPTIONS,
        _build,
        _scale,
        PENDING,
        fit=_fit,
        to_onnx=_to_onnx,
    )
)
