"""Incremental training from sufficient statistics (``incremental = TRUE``; issue 15).

Theory of operation
-------------------
A linear regression, with BigQuery ML's preprocessing (NULL -> the column's mean, numeric
columns standardized, strings and BOOLs one-hot), is a function of one matrix: the Gram matrix
``G = U'U`` of the *augmented rows* ``u``, one per training row:

    u = [1, y - s_y, (x_1 - s_1) m_1, m_1, ..., (x_k - s_k) m_k, m_k, e_1, ..., e_c]

where ``m_j`` is 1 when numeric column j is not NULL (0 when it is, and then its value counts
as 0), ``s`` a fixed shift per column (the first training's means: the sums stay small, so the
squares do not cancel), and ``e`` one indicator per (string column, category) in the order the
categories were first seen. From ``G`` alone come the row count, each column's mean and spread
(so the standardization), and the normal equations of the standardized features: each feature
row is ``z = A u`` for a matrix ``A`` made of the means and spreads, so ``Z'Z = A G A'`` and
``Z'y = A G e_y``. Rows add to ``G`` (``G = G_old + U_new'U_new``), and a category first seen in
new rows is a new indicator that was 0 in every old row: ``G_old`` grows by zero rows and
columns. So a version trained on old rows, then RETRAINed on new ones, is the version trained on
all of them (the same arithmetic, summed in another order: tests/test_incremental.py checks
1e-9), and each RETRAIN costs the new rows, never the old.

The state is stored with the version as plain arrays (``G`` as a NumPy .npy, loaded with
``allow_pickle=False``) and JSON (the layout, shifts, minima and maxima): never pickle.

What is solved is the model scikit-learn fits on the standardized matrix: ``LinearRegression``
(the minimum-norm least-squares solution: one-hot columns that sum to the intercept make it
rank-deficient) or ``Ridge(alpha=l2_reg)``, both with an unpenalized intercept, so the rest of
training (the ONNX conversion, the parity check, the metrics) runs on the same estimator
objects as a full training does. Only what has sufficient statistics is incremental: L1
(ElasticNet), gradient descent, instance weights, TRANSFORM, data splits other than NO_SPLIT
and columns other than numbers, strings and BOOLs are refused with 0A000 (docs/sql.md says
why for each).

Approximate: logistic regression
--------------------------------
A logistic regression's loss has no sufficient statistics, so ``logistic_reg`` keeps the next
best thing (a :class:`Curve`): the loss of every row trained on so far as a quadratic around the
weights it last found, ``L_old(t) ~ L_old(t0) + g0'(t - t0) + (t - t0)'H0(t - t0) / 2``, with
``g0`` and ``H0`` the exact gradient and Hessian of that loss at ``t0`` (the Laplace
approximation). RETRAIN minimizes that quadratic plus the exact loss of the new rows plus the
L2 penalty, by Newton's method, then adds the new rows' gradient and Hessian at the new weights
to the curve. Where a full retrain minimizes the exact loss of all rows, the difference is the
old rows' loss beyond second order around ``t0``: small while the new rows move the weights
little (tests/test_incremental.py measures it against scikit-learn on all rows), larger after
RETRAINs that move them far. Unlike scikit-learn's SGD ``partial_fit`` (the issue's first
thought), nothing depends on a learning rate or on the order of the rows, and old rows are not
forgotten. The preprocessing (each numeric column's mean and spread) is the first training's,
kept: the new rows are standardized as the old ones were (a column's NULLs become that mean,
so moving it would change the old rows' features in a way no reparametrization follows);
categories first seen later get columns of their own, their weights starting at 0. The label's
classes are the first training's: a new class is 22000.

pca (exact: its covariance comes from the same Gram matrix) and kmeans (approximate: weighted
centroids) are in ml/incremental_more.py, the DNNs (approximate: epochs on the new rows from
the stored weights) in ml/incremental_dnn.py.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml import models
from sqlml.ml.features import NULL_CATEGORY, Encoder, InputColumn, NumericAuto, OneHot
from sqlml.ml.fingerprint import Fingerprint

if TYPE_CHECKING:  # (pca and kmeans: ml/incremental_more.py, which imports this module)
    from sqlml.ml.incremental_more import More

Array = np.ndarray[Any, Any]

# linear_reg and pca exact; logistic_reg, kmeans and the DNNs approximate (incremental_more.py)
MODEL_TYPES = ("linear_reg", "logistic_reg", "pca", "kmeans", "dnn_classifier", "dnn_regressor")
APPROXIMATE = ("logistic_reg",)
UNSUPERVISED = ("pca", "kmeans")  # (no label: no data split either)
KINDS = ("numeric", "string", "bool")  # the input columns they take
BLOCK = 65_536  # rows per block of U at most (its memory: BLOCK x columns doubles)
WORK = 1 << 29  # multiply-adds per block at most (~0.1 s), so a cancel is answered soon
RCOND = 1e-12  # singular values of Z'Z below this fraction of the largest count as zero
MAX_SIDE = 4096  # a state's matrix side at most (128 MiB of doubles): 0A000 beyond


@dataclass
class State:
    """The sufficient statistics of every row trained on so far."""

    numeric: list[str]
    categorical: list[str]
    slots: list[tuple[str, str]]  # (column, category) of each indicator, in order seen
    shift: dict[str, float]  # per numeric column and the label
    gram: Array
    bounds: dict[str, list[float]] = field(default_factory=dict)  # numeric: [min, max]
    runs: int = 0  # trainings merged into it (ML.TRAINING_INFO's training_run)
    seen: Fingerprint | None = None  # the fingerprint of the rows (ml/fingerprint.py)

    @property
    def rows(self) -> int:
        return round(float(self.gram[0, 0]))

    def slot(self, column: str, category: str) -> int:
        return 2 + 2 * len(self.numeric) + self.slots.index((column, category))

    # -- storage: .npy bytes and JSON, never pickle ------------------------------------------

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.gram, allow_pickle=False)
        return buffer.getvalue()

    def meta(self) -> dict[str, Any]:
        return {
            "learner": "gram",
            "numeric": self.numeric,
            "categorical": self.categorical,
            "slots": [list(s) for s in self.slots],
            "shift": self.shift,
            "bounds": self.bounds,
            "runs": self.runs,
            "seen": self.seen.to_json() if self.seen is not None else None,
        }

    @classmethod
    def load(cls, data: bytes, meta: dict[str, Any]) -> State:  # (see load() for either)
        gram = np.load(io.BytesIO(data), allow_pickle=False)
        slots = [(str(c), str(v)) for c, v in meta["slots"]]
        expected = 2 + 2 * len(meta["numeric"]) + len(slots)
        if gram.shape != (expected, expected) or gram.dtype != np.float64:
            raise errors.CorruptedModel(
                "the incremental state of this version is damaged (its matrix has the wrong shape)",
                hint="CREATE OR REPLACE MODEL trains it again from all rows",
            )
        return cls(
            list(meta["numeric"]),
            list(meta["categorical"]),
            slots,
            {k: float(v) for k, v in meta["shift"].items()},
            gram,
            {k: [float(b) for b in v] for k, v in meta.get("bounds", {}).items()},
            int(meta.get("runs", 0)),
            _seen(meta),
        )


def defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """The OPTIONS as given, with incremental training's own defaults (data_split_method
    'NO_SPLIT': the only split it takes) and its checks that need no rows (22023)."""
    given = dict(options)
    if given.get("watermark_col") is not None and given.get("incremental") is not True:
        raise errors.InvalidParameterValue(
            "option WATERMARK_COL is for incremental = TRUE",
            hint="add incremental = TRUE to the OPTIONS, or leave WATERMARK_COL out",
        )
    if given.get("incremental") is True:
        name = str(given.get("model_type") or "").lower()
        if name in models.names() and name not in MODEL_TYPES:  # (before its options are read)
            check(name, {}, [])
        if name not in UNSUPERVISED:
            given.setdefault("data_split_method", "NO_SPLIT")
    return given


def check(model_type: str, opts: dict[str, Any], inputs: Sequence[InputColumn]) -> None:
    """0A000 for what cannot be trained incrementally (the options are resolved)."""

    def refuse(what: str, hint: str | None = None) -> None:
        raise errors.FeatureNotSupported(f"incremental = TRUE {what}", hint=hint)

    if model_type not in MODEL_TYPES:
        refuse(
            f"is not supported for model_type '{model_type}': it is for "
            + ", ".join(f"'{m}'" for m in MODEL_TYPES),
            hint="its training has no statistics that new rows can add to",
        )
    if opts.get("l1_reg"):
        refuse("takes no l1_reg (L1 regularization has no sufficient statistics)")
    if opts.get("optimize_strategy") == "BATCH_GRADIENT_DESCENT":
        refuse("solves its own way: optimize_strategy cannot be BATCH_GRADIENT_DESCENT")
    if opts.get("class_weights") or opts.get("auto_class_weights"):
        refuse("takes no class weights (AUTO_CLASS_WEIGHTS would weigh old rows by new counts)")
    if opts.get("instance_weight_col"):
        refuse("takes no instance_weight_col yet")
    if opts.get("max_training_rows"):
        refuse("learns from every row: it takes no max_training_rows (a sample)")
    if opts.get("data_split_method", "NO_SPLIT") != "NO_SPLIT":
        refuse(
            "takes data_split_method = 'NO_SPLIT' only: a split chosen over all rows cannot be"
            " kept when a RETRAIN reads only the new ones",
            hint="evaluate with ML.EVALUATE on rows of your choice",
        )
    for column in inputs:
        if column.kind not in KINDS or column.path:
            refuse(
                f'takes numeric, STRING and BOOL columns only, not column "{column.name}"'
                f" ({column.kind})"
            )
    from sqlml.ml import incremental_more  # (it imports this module)

    incremental_more.check(model_type, opts)


def accumulate(
    state: State | None,
    inputs: Sequence[InputColumn],
    raw: dict[str, Array],
    y: Array,
    checkpoint: Callable[[], None] = lambda: None,
) -> State:
    """``state`` (None: nothing yet) with the rows ``raw`` (features.to_numpy's arrays) and
    their labels ``y`` added; a new State. ``checkpoint`` runs between blocks of rows (a
    cancel stops there: ml/checkpoints.py)."""
    numeric = [c.name for c in inputs if c.kind == "numeric"]
    categorical = [c.name for c in inputs if c.kind != "numeric"]
    if state is None:
        shift = {name: _mean(raw[name]) for name in numeric}
        shift[""] = _mean(y)  # (the label's, under a name no column has)
        state = State(numeric, categorical, [], shift, np.zeros((2 + 2 * len(numeric),) * 2))
    elif state.numeric != numeric or state.categorical != categorical:
        raise errors.DatatypeMismatch(
            "the rows to add have other feature columns than the model was trained on",
            hint="CREATE OR REPLACE MODEL trains on the new columns from all rows",
        )
    slots = list(state.slots)
    for name in categorical:
        known = {c for n, c in slots if n == name}
        seen = dict.fromkeys(raw[name].tolist())  # (in order of first appearance)
        slots += [(name, c) for c in seen if c not in known]
    q = 2 + 2 * len(numeric) + len(slots)
    _within(q, "columns (2 per numeric feature, 1 per category)")
    gram = np.zeros((q, q))
    old = state.gram.shape[0]
    gram[:old, :old] = state.gram
    index = {s: 2 + 2 * len(numeric) + k for k, s in enumerate(slots)}
    n = len(y)
    block = max(256, min(BLOCK, WORK // (q * q)))  # (a checkpoint every ~WORK operations)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        u = np.zeros((rows.stop - rows.start, q))
        u[:, 0] = 1.0
        u[:, 1] = y[rows] - state.shift[""]
        for j, name in enumerate(numeric):
            x = raw[name][rows]
            present = ~np.isnan(x)
            u[:, 2 + 2 * j] = np.where(present, x - state.shift[name], 0.0)
            u[:, 3 + 2 * j] = present
        for name in categorical:  # (each row's indicator by its category's code: one pass)
            found, codes = np.unique(raw[name][rows], return_inverse=True)
            places = np.array([index[name, c] for c in found.tolist()], dtype=np.int64)
            u[np.arange(len(codes)), places[codes]] = 1.0
        gram += u.T @ u
        checkpoint()
    bounds = dict(state.bounds)
    for name in numeric:
        x = raw[name]
        if n and not np.isnan(x).all():
            low, high = float(np.nanmin(x)), float(np.nanmax(x))
            if name in bounds:
                low, high = min(low, bounds[name][0]), max(high, bounds[name][1])
            bounds[name] = [low, high]
    return State(numeric, categorical, slots, dict(state.shift), gram, bounds, state.runs + 1)


def _within(size: int, what: str) -> None:
    """0A000 when a state would hold a matrix of more than MAX_SIDE^2 numbers."""
    if size > MAX_SIDE:
        raise errors.FeatureNotSupported(
            f"incremental = TRUE keeps a {size} x {size} matrix here ({what}): more than the"
            f" {MAX_SIDE} x {MAX_SIDE} it keeps",
            hint="fewer categories (a string column with many values), or incremental = FALSE",
        )


def _mean(x: Array) -> float:
    present = x[~np.isnan(x)]
    return float(present.mean()) if len(present) else 0.0


@dataclass(frozen=True)
class Solved:
    """What training needs from a state: the preprocessing and the fitted estimator."""

    encoders: list[NumericAuto | OneHot]
    estimator: Any
    stats: dict[str, dict[str, Any]]  # ML.FEATURE_INFO's, by column


def solve(state: State, inputs: Sequence[InputColumn], l2: float) -> Solved:
    """The standardization and the least-squares (l2 = 0) or ridge solution of every row the
    state holds, as scikit-learn would fit them on the standardized matrix."""
    g = state.gram
    n = g[0, 0]
    a, encoders, stats = features_of(state, inputs)
    ztz, zsum, zty = a @ g @ a.T, a @ g[:, 0], a @ g[:, 1]
    zbar, ybar = zsum / n, g[0, 1] / n
    centred_ztz = ztz - n * np.outer(zbar, zbar)
    centred_zty = zty - n * zbar * ybar
    if l2 > 0:
        weights = np.linalg.solve(centred_ztz + l2 * np.eye(len(a)), centred_zty)
    else:
        weights = np.linalg.lstsq(centred_ztz, centred_zty, rcond=RCOND)[0]
    intercept = state.shift[""] + ybar - float(zbar @ weights)
    return Solved(encoders, _estimator(weights, intercept, l2), stats)


def features_of(
    state: State, inputs: Sequence[InputColumn], scale: bool = True
) -> tuple[Array, list[NumericAuto | OneHot], dict[str, dict[str, Any]]]:
    """The matrix ``A`` (a feature row is ``A u``: NULL -> the mean, numeric columns centred
    and, with ``scale``, standardized, one-hot categories), the encoders that compute those
    features from the values (without ``scale`` a numeric feature is the value itself: ``A u``
    plus its mean) and ML.FEATURE_INFO's statistics, all from the state's matrix."""
    g = state.gram
    n = g[0, 0]
    q = g.shape[0]
    rows: list[Array] = []  # the rows of A: each feature as a combination of u's entries
    encoders: list[NumericAuto | OneHot] = []
    stats: dict[str, dict[str, Any]] = {}
    for column in inputs:
        name = column.name
        if column.kind == "numeric":
            j = state.numeric.index(name)
            xi, mi = 2 + 2 * j, 3 + 2 * j
            count, total = g[0, mi], g[0, xi]
            if count == 0:
                raise errors.UnusableTrainingData(f"feature {name} has only NULL values")
            centred = total / count
            squares = max(g[xi, xi] - total * total / count, 0.0)
            std = math.sqrt(float(squares) / float(n))
            std = std if std != 0.0 and scale else 1.0
            mean = float(state.shift[name] + centred)
            encoders.append(NumericAuto(name, mean, std if scale else None))
            row = np.zeros(q)
            row[xi], row[mi] = 1.0 / std, -centred / std
            rows.append(row)
            low, high = state.bounds.get(name, [math.nan, math.nan])
            stats[name] = {
                "null_count": round(float(n - count)),
                "min": low,
                "max": high,
                "mean": mean,
                "stddev": math.sqrt(squares / count) * math.sqrt(count / n),
            }
        else:
            categories = sorted(c for n_, c in state.slots if n_ == name)
            encoders.append(OneHot(name, tuple(categories)))
            for category in categories:
                row = np.zeros(q)
                row[state.slot(name, category)] = 1.0
                rows.append(row)
            nulls = g[0, state.slot(name, NULL_CATEGORY)] if NULL_CATEGORY in categories else 0.0
            stats[name] = {"null_count": round(float(nulls))}
    return np.array(rows).reshape(len(rows), q), encoders, stats


def _estimator(weights: Array, intercept: float, l2: float) -> Any:
    """scikit-learn's estimator with these coefficients, as if it had fitted them."""
    from sklearn.linear_model import LinearRegression, Ridge  # lazy: 3 s to import

    estimator: Any = Ridge(alpha=l2) if l2 > 0 else LinearRegression()
    estimator.coef_ = np.asarray(weights, dtype=np.float64)
    estimator.intercept_ = float(intercept)
    estimator.n_features_in_ = len(weights)
    return estimator


def info(state: State | Curve, rows_read: int) -> dict[str, Any]:
    """ML.TRAINING_INFO's incremental entries."""
    return {
        "incremental": "approximate" if isinstance(state, Curve) else "exact",
        "training_run": state.runs - 1,  # (BigQuery counts from 0)
        "rows_total": state.rows,
        "rows_read": rows_read,
    }


# -- approximate: logistic regression (the module's docstring) -----------------------------------

NEWTON_STEPS = 50  # at most; each solves the system once and halves the step if the loss rose
NEWTON_TOLERANCE = 1e-10  # of the largest gradient entry per row, where Newton stops


@dataclass
class Curve:
    """logistic_reg's state: its preprocessing, and the loss of every row so far as a quadratic
    around ``theta`` (``[classes or 1, 1 + features]``, the intercept first)."""

    encoders: list[Encoder]
    classes: list[Any]
    theta: Array
    grad: Array  # of the rows' loss (no penalty) at theta, flat
    hess: Array  # its Hessian
    rows: int
    runs: int = 1
    seen: Fingerprint | None = None  # the fingerprint of the rows (ml/fingerprint.py)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, theta=self.theta, grad=self.grad, hess=self.hess)
        return buffer.getvalue()

    def meta(self) -> dict[str, Any]:
        encoders = [
            {"column": e.name, "mean": e.mean, "std": e.std}
            if isinstance(e, NumericAuto)
            else {"column": e.name, "categories": list(e.categories)}
            for e in self.encoders
        ]
        return {
            "learner": "curve",
            "encoders": encoders,
            "classes": self.classes,
            "rows": self.rows,
            "runs": self.runs,
            "seen": self.seen.to_json() if self.seen is not None else None,
        }

    @classmethod
    def load(cls, data: bytes, meta: dict[str, Any]) -> Curve:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            theta, grad, hess = arrays["theta"], arrays["grad"], arrays["hess"]
        encoders: list[Encoder] = [
            NumericAuto(e["column"], float(e["mean"]), None if e["std"] is None else e["std"])
            if "mean" in e
            else OneHot(e["column"], tuple(e["categories"]))
            for e in meta["encoders"]
        ]
        size = theta.size
        if grad.shape != (size,) or hess.shape != (size, size):
            raise errors.CorruptedModel(
                "the incremental state of this version is damaged (its arrays disagree)",
                hint="CREATE OR REPLACE MODEL trains it again from all rows",
            )
        return cls(
            encoders,
            list(meta["classes"]),
            theta,
            grad,
            hess,
            int(meta["rows"]),
            int(meta.get("runs", 1)),
            _seen(meta),
        )


def categories(state: State | Curve | More) -> dict[str, list[str]]:
    """The categories of each string and BOOL column the state has seen."""
    if not isinstance(state, State):  # (a Curve's or Centroids' encoders)
        return {e.name: list(e.categories) for e in state.encoders if isinstance(e, OneHot)}
    return {name: [c for n, c in state.slots if n == name] for name in state.categorical}


def learned(before: State | Curve | More, after: State | Curve | More) -> dict[str, list[str]]:
    """The categories ``after`` has and ``before`` had not, by column (those a RETRAIN's rows
    brought: a NOTICE names them)."""
    old = categories(before)
    return {
        name: new
        for name, seen in categories(after).items()
        if (new := [c for c in seen if c not in old.get(name, [])])
    }


def _seen(meta: dict[str, Any]) -> Fingerprint | None:
    return Fingerprint.from_json(meta["seen"]) if meta.get("seen") else None


def load(data: bytes, meta: dict[str, Any]) -> State | Curve | More:
    """The stored state of any learner."""
    if meta.get("learner") == "centroids":
        from sqlml.ml.incremental_more import Centroids  # (it imports this module)

        return Centroids.load(data, meta)
    if meta.get("learner") == "net":
        from sqlml.ml.incremental_dnn import Net

        return Net.load(data, meta)
    if meta.get("learner") == "curve":
        return Curve.load(data, meta)
    return State.load(data, meta)


def _design(x: Array) -> Array:
    """The features with a column of ones first (the intercept's)."""
    return np.hstack([np.ones((len(x), 1)), x])


def _probabilities(theta: Array, x1: Array) -> Array:
    """[rows, classes]: the sigmoid's two columns for one row of theta, else the softmax."""
    z = x1 @ theta.T
    if theta.shape[0] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    z -= z.max(axis=1, keepdims=True)
    e: Array = np.exp(z)
    normalized: Array = e / e.sum(axis=1, keepdims=True)
    return normalized


def _loss_parts(theta: Array, x1: Array, y: Array) -> tuple[float, Array, Array]:
    """The rows' log loss (a sum), its gradient (flat, as theta) and Hessian at ``theta``."""
    p = _probabilities(theta, x1)
    n = len(y)
    loss = float(-np.log(np.clip(p[np.arange(n), y], 1e-300, None)).sum())
    if theta.shape[0] == 1:
        r = p[:, 1] - (y == 1)
        grad = (x1.T @ r)[None, :]
        hess = (x1 * (p[:, 1] * p[:, 0])[:, None]).T @ x1
        return loss, grad.reshape(-1), hess
    k, d = theta.shape
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    grad = (p - onehot).T @ x1  # [k, d]
    hess = np.zeros((k * d, k * d))
    for a in range(k):
        for b in range(a, k):
            w = p[:, a] * ((1.0 if a == b else 0.0) - p[:, b])
            block = (x1 * w[:, None]).T @ x1
            hess[a * d : (a + 1) * d, b * d : (b + 1) * d] = block
            hess[b * d : (b + 1) * d, a * d : (a + 1) * d] = block.T
    return loss, grad.reshape(-1), hess


def _penalty(shape: tuple[int, int], l2: float) -> Array:
    """The L2 penalty's diagonal (not on the intercepts), flat as theta."""
    diagonal = np.full(shape, l2)
    diagonal[:, 0] = 0.0
    return diagonal.reshape(-1)


def curve(
    encoders: Sequence[Encoder],
    classes: list[Any],
    estimator: Any,
    x: Array,
    y: Array,
    l2: float,
    checkpoint: Callable[[], None] = lambda: None,
) -> tuple[Curve, Any, int]:
    """The first training's curve, from scikit-learn's fitted weights taken on by Newton's
    method to the minimum (scikit-learn stops at a tolerance, min_rel_progress: the further the
    curve's centre from the minimum, the larger the approximation's error later); the
    estimator with those weights, and the Newton steps taken."""
    theta = np.hstack(
        [np.atleast_1d(estimator.intercept_)[:, None], np.atleast_2d(estimator.coef_)]
    ).astype(np.float64)
    k, d = theta.shape
    _within(k * d, "a weight per class and feature")
    start = Curve(list(encoders), list(classes), theta, np.zeros(k * d), np.zeros((k * d,) * 2), 0)
    return refit(start, x, y, l2, first=True, checkpoint=checkpoint)


def extended(old: Curve, encoders: Sequence[Encoder]) -> Curve:
    """``old`` over the features of ``encoders`` (its own with categories added): a new
    category's column is 0 in every old row, so its weight starts at 0 and the old rows' loss
    neither slopes nor curves along it."""
    places = []  # the new feature index of each old feature
    at = 0
    for before, after in zip(old.encoders, encoders, strict=True):
        if isinstance(before, OneHot) and isinstance(after, OneHot):
            index = {c: i for i, c in enumerate(after.categories)}
            places += [at + index[c] for c in before.categories]
        else:
            places.append(at)
        at += after.width
    k = old.theta.shape[0]
    d_old, d_new = old.theta.shape[1], 1 + at
    _within(k * d_new, "a weight per class and feature")
    flat = [c * d_new + p for c in range(k) for p in [0, *(1 + q for q in places)]]
    assert len(flat) == k * d_old
    theta = np.zeros((k, d_new))
    theta.reshape(-1)[flat] = old.theta.reshape(-1)
    grad = np.zeros(k * d_new)
    grad[flat] = old.grad
    hess = np.zeros((k * d_new, k * d_new))
    hess[np.ix_(flat, flat)] = old.hess
    return Curve(list(encoders), old.classes, theta, grad, hess, old.rows, old.runs)


def refit(
    old: Curve,
    x: Array,
    y: Array,
    l2: float,
    first: bool = False,
    checkpoint: Callable[[], None] = lambda: None,
) -> tuple[Curve, Any, int]:
    """Newton's method on the old rows' quadratic plus the new rows' loss plus the penalty;
    the curve with the new rows added, the estimator, and the Newton steps taken. ``first``:
    there are no old rows (``old`` only gives the start)."""
    x1 = _design(x)
    t0, g0, h0 = old.theta.reshape(-1), old.grad, old.hess
    penalty = _penalty(old.theta.shape, l2)

    def objective(t: Array) -> tuple[float, Array, Array]:
        loss, g, h = _loss_parts(t.reshape(old.theta.shape), x1, y)
        step = t - t0
        value = loss + g0 @ step + 0.5 * step @ h0 @ step + 0.5 * (penalty * t) @ t
        return value, g + g0 + h0 @ step + penalty * t, h + h0 + np.diag(penalty)

    t, steps = newton(objective, t0.copy(), old.rows + len(y), lambda _: checkpoint())
    theta = t.reshape(old.theta.shape)
    _, g_new, h_new = _loss_parts(theta, x1, y)
    grad = g0 + h0 @ (t - t0) + g_new
    runs = 1 if first else old.runs + 1
    curved = Curve(old.encoders, old.classes, theta, grad, h0 + h_new, old.rows + len(y), runs)
    return curved, _classifier(theta, l2, len(old.classes)), steps


def newton(
    objective: Callable[[Array], tuple[float, Array, Array]],
    t: Array,
    rows: int,
    each: Callable[[float], None] = lambda value: None,
) -> tuple[Array, int]:
    """Newton's method from ``t`` on ``objective`` (its value, gradient and Hessian), halving a
    step that raised the value, until the largest gradient entry is NEWTON_TOLERANCE per row
    (``rows``); the minimum and the steps taken. ``each`` runs after each step with the value
    (a checkpoint, progress). Its last call of ``objective`` is at the point returned."""
    value, gradient, hessian = objective(t)
    steps = 0
    tolerance = NEWTON_TOLERANCE * max(rows, 1)
    while steps < NEWTON_STEPS and np.abs(gradient).max() > tolerance:
        direction = np.linalg.lstsq(hessian, -gradient, rcond=RCOND)[0]
        size = 1.0
        while True:
            candidate = t + size * direction
            new_value, new_gradient, new_hessian = objective(candidate)
            if new_value <= value + 1e-12 * abs(value) or size < 1e-6:
                break
            size /= 2
        t, value, gradient, hessian = candidate, new_value, new_gradient, new_hessian
        steps += 1
        each(value)
    return t, steps


def _classifier(theta: Array, l2: float, classes: int) -> Any:
    """scikit-learn's LogisticRegression with these weights, as if it had fitted them."""
    from sklearn.linear_model import LogisticRegression  # lazy: 3 s to import

    estimator = LogisticRegression(C=1.0 / l2 if l2 > 0 else math.inf)
    estimator.intercept_ = theta[:, 0].copy()
    estimator.coef_ = theta[:, 1:].copy()
    estimator.classes_ = np.arange(classes)
    estimator.n_features_in_ = theta.shape[1] - 1
    return estimator


def grown(encoders: Sequence[Encoder], raw: dict[str, Array]) -> list[Encoder]:
    """The encoders with the categories ``raw`` has and they had not (sorted in, as training
    sorts them)."""
    out: list[Encoder] = []
    for encoder in encoders:
        if isinstance(encoder, OneHot):
            seen = set(raw[encoder.name].tolist())
            if not seen <= set(encoder.categories):
                encoder = OneHot(encoder.name, tuple(sorted({*encoder.categories, *seen})))
        out.append(encoder)
    return out
