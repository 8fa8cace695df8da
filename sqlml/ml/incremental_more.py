"""Incremental training for ``pca`` (exact) and ``kmeans`` (approximate) (issue 15); the DNNs'
(approximate) are in ml/incremental_dnn.py and start here.

Theory of operation
-------------------
**pca: exact.** A PCA, with BigQuery ML's preprocessing as sqlml's pca does it (NULL -> the
column's mean, numeric columns standardized with ``scale_features``, strings and BOOLs
one-hot), is a function of the preprocessed rows' mean and covariance, and both come from the
Gram matrix of ml/incremental.py's augmented rows: a feature row is ``z = A u``, so the
feature sums are ``A G e_0``, the cross products ``A G A'`` and the covariance (scikit-learn's,
with n - 1) ``(A G A' - n zbar zbar') / (n - 1)``. The state is the same :class:`State` a
linear_reg keeps (its label column is 0 in every row), so rows add to it the same way, a
category first seen in new rows grows it by zero rows and columns, and a RETRAIN costs the
new rows. The components are the covariance's eigenvectors in decreasing order of
eigenvalue (``numpy.linalg.eigh``, negative rounding clipped to 0): scikit-learn's own
``covariance_eigh`` solver, which equals its ``full`` SVD solver up to rounding; signs as
pca.py keeps them (the loading of largest absolute value positive), and
``pca_explained_variance_ratio`` picks the count as scikit-learn does (the cumulative ratios,
``searchsorted(..., side='right') + 1``). So the version a RETRAIN makes is the PCA trained
on all rows (tests/test_incremental_more.py checks it against scikit-learn to 1e-9).
``pca_solver = 'RANDOMIZED'`` is an approximation of that decomposition chosen by a random
draw over the rows it was given, so it is refused (0A000); ``'AUTO'`` and ``'FULL'`` give the
exact decomposition (where scikit-learn's AUTO would draw a randomized one on a large table,
the incremental model is the exact one). What a RETRAIN records from rows beside the
decomposition (the reconstruction errors' quantiles that ML.DETECT_ANOMALIES reads, the
metrics that ML.EVALUATE without rows reports) is of the rows it read.

**kmeans: approximate.** k-means has no sufficient statistics: which centroid a row is
nearest depends on all centroids. The state is, as MiniBatchKMeans keeps it, each centroid
and the count of rows it has absorbed, with the preprocessing (each numeric column's mean and
spread, the categories) frozen at the first training, as logistic_reg's is (a category first
seen later is a new column, 0 in every old row and so in every old centroid). A RETRAIN runs
Lloyd's iterations (scikit-learn's KMeans, ``max_iterations`` and ``min_rel_progress`` as a
training's) on a weighted set of points: each old centroid, weighted by its count, and each
new row, weighted 1, starting from the old centroids. A centroid then moves to the
count-weighted mean of what it holds, as MiniBatchKMeans' update does, but the rows are
reassigned until the assignment settles, and the result depends neither on the order of the
rows nor on a learning rate. The new counts are the weights each centroid ends up with. How
it differs from k-means on all rows: old rows are summarized by their centroid (a cluster's
old rows cannot be split between two centroids any more), so the centroids can stay where
the first training put them when new rows would have moved the partition; the number of
clusters stays the first training's. tests/test_incremental_more.py measures it against
scikit-learn's KMeans on all rows (inertia and centroid distances, docs/sql.md).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml import features, incremental, incremental_dnn
from sqlml.ml.checkpoints import unwatch, watch
from sqlml.ml.features import Encoder, InputColumn, NumericAuto, OneHot, Preprocessor
from sqlml.ml.fingerprint import Fingerprint

Array = np.ndarray[Any, Any]
MODEL_TYPES = ("pca", "kmeans", *incremental_dnn.MODEL_TYPES)
Fit = Callable[[Any, Array, int], tuple[Any, Any, dict[str, Any]]]


def check(model_type: str, opts: Mapping[str, Any]) -> None:
    """0A000 for their options that cannot be incremental."""
    if model_type == "pca" and opts.get("pca_solver") == "RANDOMIZED":
        raise errors.FeatureNotSupported(
            "incremental = TRUE takes no pca_solver = 'RANDOMIZED' (a random approximation of"
            " the decomposition it computes exactly)",
            hint="leave pca_solver out, or 'FULL'",
        )
    if model_type == "kmeans" and opts.get("kmeans_init_method") == "CUSTOM":
        raise errors.FeatureNotSupported(
            "incremental = TRUE takes no kmeans_init_method = 'CUSTOM' (a RETRAIN starts from"
            " the centroids)",
            hint="'RANDOM' or 'KMEANS++'",
        )


@dataclass(frozen=True)
class Begun:
    """A training of pca, kmeans or a DNN with incremental = TRUE: its preprocessing, the estimator
    (None: the model type builds it) and how it fits: ``fit(estimator, x, rows_read)`` ->
    (state, estimator, training info)."""

    pre: Preprocessor
    estimator: Any
    fit: Fit


def begin(
    model_type: Any,
    opts: dict[str, Any],
    inputs: Sequence[InputColumn],
    raw: dict[str, Array],
    previous: Any,
    checkpoint: Callable[[], None],
    y: Array | None = None,
    classes: list[Any] | None = None,
) -> Begun | None:
    """None unless ``model_type`` is one of MODEL_TYPES and opts say incremental = TRUE; ``y``
    and ``classes``: a supervised model's labels (class indexes) and classes."""
    if not opts.get("incremental") or model_type.name not in MODEL_TYPES:
        return None
    if model_type.name in incremental_dnn.MODEL_TYPES:
        assert y is not None
        return _dnn(model_type, opts, inputs, raw, previous, y, classes, checkpoint)
    if model_type.name == "pca":
        n = len(next(iter(raw.values())))
        state = incremental.accumulate(previous, inputs, raw, np.zeros(n), checkpoint)
        return _pca(state, inputs, opts)
    if previous is None:
        pre = features.fit(inputs, raw, None, model_type.standardize(opts))
        return Begun(pre, None, _first_kmeans(pre.auto, checkpoint))
    pre = _frozen(previous.encoders, inputs, raw)
    old = extended(previous, pre.auto)
    estimator = _kmeans_from(model_type, opts, old)
    return Begun(pre, estimator, _lloyd(old, checkpoint))


def _frozen(
    encoders: Sequence[Encoder], inputs: Sequence[InputColumn], raw: dict[str, Array]
) -> Preprocessor:
    """The first training's preprocessing, with the categories ``raw`` brings added."""
    stats = {c.name: features.column_stats(raw[c.name], c.kind) for c in inputs}
    return Preprocessor(list(inputs), auto=incremental.grown(encoders, raw), stats=stats)


def info(state: incremental.State | More, rows_read: int, how: str) -> dict[str, Any]:
    """ML.TRAINING_INFO's incremental entries (as incremental.info)."""
    return {
        "incremental": how,
        "training_run": state.runs - 1,
        "rows_total": state.rows,
        "rows_read": rows_read,
    }


# -- pca: exact ---------------------------------------------------------------------------------


def _pca(state: incremental.State, inputs: Sequence[InputColumn], opts: dict[str, Any]) -> Begun:
    """The PCA of every row the state holds (module docstring), as scikit-learn's."""
    scale = bool(opts["scale_features"])
    a, encoders, stats = incremental.features_of(state, inputs, scale)
    g, n = state.gram, state.gram[0, 0]
    if n < 2:
        raise errors.UnusableTrainingData("model_type PCA needs at least 2 rows")
    zbar = a @ g[:, 0] / n
    covariance = (a @ g @ a.T - n * np.outer(zbar, zbar)) / (n - 1)
    values, vectors = np.linalg.eigh(covariance)
    values, vectors = np.clip(values[::-1], 0.0, None), vectors[:, ::-1]
    from sqlml.ml.pca import signed  # (lazy, as _decomposition's: the model kinds' modules)

    components = signed(vectors.T)
    offset = np.concatenate([_offsets(e) for e in encoders])  # (unscaled columns: their means)
    estimator = _decomposition(opts, components, values, zbar + offset, round(float(n)))
    pre = Preprocessor(list(inputs), auto=[*encoders], stats=stats)

    def fit(unused: Any, x: Array, rows_read: int) -> tuple[Any, Any, dict[str, Any]]:
        from sqlml.ml import pca  # (it registers the model type: loaded by then)

        return state, estimator, {**pca.recorded(estimator, x), **info(state, rows_read, "exact")}

    return Begun(pre, estimator, fit)


def _offsets(encoder: NumericAuto | OneHot) -> Array:
    if isinstance(encoder, NumericAuto) and encoder.std is None:
        return np.array([encoder.mean])
    return np.zeros(encoder.width)


def _decomposition(
    opts: dict[str, Any], components: Array, values: Array, mean: Array, n: int
) -> Any:
    """scikit-learn's PCA with these components, as if it had fitted them."""
    from sklearn.decomposition import PCA  # lazy: 3 s to import

    from sqlml.ml import models, pca

    d = len(values)
    pca._build(opts, models.FitContext(n_rows=n, n_features=d))  # (its 22023s and 0A000s)
    total = float(values.sum())
    ratios = values / total if total > 0 else np.zeros(d)
    count = opts["num_principal_components"]
    if count is None:
        wanted = float(opts["pca_explained_variance_ratio"])
        count = min(int(np.searchsorted(np.cumsum(ratios), wanted, side="right")) + 1, d)
    estimator = PCA(n_components=count, svd_solver="covariance_eigh")
    estimator.components_ = components[:count].copy()
    estimator.explained_variance_ = values[:count].copy()
    estimator.explained_variance_ratio_ = ratios[:count].copy()
    estimator.singular_values_ = np.sqrt(values[:count] * (n - 1))
    estimator.mean_ = np.asarray(mean, dtype=np.float64)
    rest = values[count : min(d, n)]
    estimator.noise_variance_ = float(rest.mean()) if len(rest) else 0.0
    estimator.n_components_, estimator.n_samples_, estimator.n_features_in_ = count, n, d
    return estimator


# -- kmeans: approximate ------------------------------------------------------------------------


@dataclass
class Centroids:
    """kmeans' state: its preprocessing, the centroids (in the preprocessed space) and the rows
    each has absorbed."""

    encoders: list[Encoder]
    centroids: Array  # [k, features]
    counts: Array  # [k]
    rows: int
    runs: int = 1
    seen: Fingerprint | None = None  # the fingerprint of the rows (ml/fingerprint.py)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, centroids=self.centroids, counts=self.counts)
        return buffer.getvalue()

    def meta(self) -> dict[str, Any]:
        return {
            "learner": "centroids",
            "encoders": [incremental_dnn.encoder_json(e) for e in self.encoders],
            "rows": self.rows,
            "runs": self.runs,
            "seen": self.seen.to_json() if self.seen is not None else None,
        }

    @classmethod
    def load(cls, data: bytes, meta: dict[str, Any]) -> Centroids:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            centroids, counts = arrays["centroids"], arrays["counts"]
        encoders = [incremental_dnn.encoder_of(e) for e in meta["encoders"]]
        width = sum(e.width for e in encoders)
        if centroids.ndim != 2 or centroids.shape[1] != width or counts.shape != (len(centroids),):
            raise errors.CorruptedModel(
                "the incremental state of this version is damaged (its arrays disagree)",
                hint="CREATE OR REPLACE MODEL trains it again from all rows",
            )
        seen = Fingerprint.from_json(meta["seen"]) if meta.get("seen") else None
        return cls(encoders, centroids, counts, int(meta["rows"]), int(meta.get("runs", 1)), seen)


def extended(old: Centroids, encoders: Sequence[Encoder]) -> Centroids:
    """``old`` over the features of ``encoders`` (its own with categories added): a new
    category's column is 0 in every old row, so in every old centroid."""
    columns: list[Array] = []
    at = 0
    for before, after in zip(old.encoders, encoders, strict=True):
        if isinstance(before, OneHot) and isinstance(after, OneHot):
            index = {c: at + i for i, c in enumerate(before.categories)}
            zero = np.zeros(len(old.centroids))
            columns += [
                old.centroids[:, index[c]] if c in index else zero for c in after.categories
            ]
        else:
            columns.append(old.centroids[:, at])
        at += before.width
    centroids = np.column_stack(columns) if columns else old.centroids
    return Centroids(list(encoders), centroids, old.counts, old.rows, old.runs, old.seen)


def _kmeans_from(model_type: Any, opts: dict[str, Any], old: Centroids) -> Any:
    """The model type's estimator, started from the old centroids (one start)."""
    from sqlml.ml import models
    from sqlml.ml.kmeans_cosine import CosineKMeans, normalized

    k = len(old.centroids)
    estimator = model_type.build(opts, models.FitContext(n_rows=old.rows + k))
    estimator.n_clusters = k
    cosine = isinstance(estimator, CosineKMeans)
    estimator.init = normalized(old.centroids) if cosine else old.centroids
    estimator.n_init = 1
    return estimator


def _fitted(estimator: Any, x: Array, weights: Array | None, checkpoint: Any) -> dict[str, Any]:
    """Fits (a cancel stops between iterations) and says how it went, as train.py does."""
    from sklearn.exceptions import ConvergenceWarning

    watch(estimator, checkpoint)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            estimator.fit(x, sample_weight=weights)
    finally:
        unwatch(estimator)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"iterations": int(estimator.n_iter_), "converged": converged}


def _first_kmeans(encoders: Sequence[Encoder], checkpoint: Callable[[], None]) -> Fit:
    """The first training: scikit-learn's k-means as without incremental, its clusters
    counted."""

    def fit(estimator: Any, x: Array, rows_read: int) -> tuple[Any, Any, dict[str, Any]]:
        done = _fitted(estimator, x, None, checkpoint)
        k = len(estimator.cluster_centers_)
        counts = np.bincount(estimator.labels_, minlength=k).astype(np.float64)
        state = Centroids(list(encoders), estimator.cluster_centers_.copy(), counts, len(x))
        return state, estimator, {**done, **info(state, rows_read, "approximate")}

    return fit


def _lloyd(old: Centroids, checkpoint: Callable[[], None]) -> Fit:
    """A RETRAIN: Lloyd's iterations over the old centroids weighted by their counts and the
    new rows (module docstring)."""

    def fit(estimator: Any, x: Array, rows_read: int) -> tuple[Any, Any, dict[str, Any]]:
        points = np.vstack([old.centroids, x])
        weights = np.concatenate([old.counts, np.ones(len(x))])
        done = _fitted(estimator, points, weights, checkpoint)
        k = len(old.centroids)
        counts = np.bincount(estimator.labels_, weights=weights, minlength=k)
        centres = estimator.cluster_centers_.copy()
        state = Centroids(old.encoders, centres, counts, old.rows + len(x), old.runs + 1)
        return state, estimator, {**done, **info(state, rows_read, "approximate")}

    return fit


More = Centroids | incremental_dnn.Net  # (the states of this module's learners)


# -- dnn_classifier, dnn_regressor: approximate (ml/incremental_dnn.py) -------------------------


def _dnn(
    model_type: Any,
    opts: dict[str, Any],
    inputs: Sequence[InputColumn],
    raw: dict[str, Array],
    previous: incremental_dnn.Net | None,
    y: Array,
    classes: list[Any] | None,
    checkpoint: Callable[[], None],
) -> Begun:
    """The first training as without incremental (its preprocessing kept); a RETRAIN's epochs
    on the new rows from the stored weights."""
    if previous is None:
        pre = features.fit(inputs, raw, None, model_type.standardize(opts))
        old = None
    else:
        pre = _frozen(previous.encoders, inputs, raw)
        old = incremental_dnn.extended(previous, pre.auto)

    def fit(estimator: Any, x: Array, rows_read: int) -> tuple[Any, Any, dict[str, Any]]:
        from sqlml.ml import models

        if old is not None:
            incremental_dnn.started(estimator, old, x, y)
        data = models.FitData(x, y, None, None, None, classes or [], opts, checkpoint)
        done = model_type.fit(estimator, data)
        rows, runs = (0, 1) if old is None else (old.rows, old.runs + 1)
        state = incremental_dnn.state_of(estimator, pre.auto, classes, rows + len(x), runs)
        return state, estimator, {**done, **info(state, rows_read, "approximate")}

    return Begun(pre, None, fit)
