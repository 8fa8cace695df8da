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
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml.features import NULL_CATEGORY, InputColumn, NumericAuto, OneHot

Array = np.ndarray[Any, Any]

MODEL_TYPES = ("linear_reg",)  # those with sufficient statistics (issue 15: more to come)
KINDS = ("numeric", "string", "bool")  # the input columns they take
BLOCK = 65_536  # rows per block of U (its memory: BLOCK x columns doubles)
RCOND = 1e-12  # singular values of Z'Z below this fraction of the largest count as zero


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
            "numeric": self.numeric,
            "categorical": self.categorical,
            "slots": [list(s) for s in self.slots],
            "shift": self.shift,
            "bounds": self.bounds,
            "runs": self.runs,
        }

    @classmethod
    def load(cls, data: bytes, meta: dict[str, Any]) -> State:
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
        refuse("solves the normal equations: optimize_strategy cannot be BATCH_GRADIENT_DESCENT")
    if opts.get("instance_weight_col"):
        refuse("takes no instance_weight_col yet")
    if opts.get("data_split_method") != "NO_SPLIT":
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


def accumulate(
    state: State | None, inputs: Sequence[InputColumn], raw: dict[str, Array], y: Array
) -> State:
    """``state`` (None: nothing yet) with the rows ``raw`` (features.to_numpy's arrays) and
    their labels ``y`` added; a new State."""
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
    gram = np.zeros((q, q))
    old = state.gram.shape[0]
    gram[:old, :old] = state.gram
    index = {s: 2 + 2 * len(numeric) + k for k, s in enumerate(slots)}
    n = len(y)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(n, start + BLOCK))
        u = np.zeros((rows.stop - rows.start, q))
        u[:, 0] = 1.0
        u[:, 1] = y[rows] - state.shift[""]
        for j, name in enumerate(numeric):
            x = raw[name][rows]
            present = ~np.isnan(x)
            u[:, 2 + 2 * j] = np.where(present, x - state.shift[name], 0.0)
            u[:, 3 + 2 * j] = present
        for name in categorical:
            values = raw[name][rows]
            for category in dict.fromkeys(values.tolist()):
                u[values == category, index[name, category]] = 1.0
        gram += u.T @ u
    bounds = dict(state.bounds)
    for name in numeric:
        x = raw[name]
        if n and not np.isnan(x).all():
            low, high = float(np.nanmin(x)), float(np.nanmax(x))
            if name in bounds:
                low, high = min(low, bounds[name][0]), max(high, bounds[name][1])
            bounds[name] = [low, high]
    return State(numeric, categorical, slots, dict(state.shift), gram, bounds, state.runs + 1)


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
            std = std if std != 0.0 else 1.0
            mean = float(state.shift[name] + centred)
            encoders.append(NumericAuto(name, mean, std))
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
    a = np.array(rows).reshape(len(rows), q)
    ztz, zsum, zty = a @ g @ a.T, a @ g[:, 0], a @ g[:, 1]
    zbar, ybar = zsum / n, g[0, 1] / n
    centred_ztz = ztz - n * np.outer(zbar, zbar)
    centred_zty = zty - n * zbar * ybar
    if l2 > 0:
        weights = np.linalg.solve(centred_ztz + l2 * np.eye(len(rows)), centred_zty)
    else:
        weights = np.linalg.lstsq(centred_ztz, centred_zty, rcond=RCOND)[0]
    intercept = state.shift[""] + ybar - float(zbar @ weights)
    return Solved(encoders, _estimator(weights, intercept, l2), stats)


def _estimator(weights: Array, intercept: float, l2: float) -> Any:
    """scikit-learn's estimator with these coefficients, as if it had fitted them."""
    from sklearn.linear_model import LinearRegression, Ridge  # lazy: 3 s to import

    estimator: Any = Ridge(alpha=l2) if l2 > 0 else LinearRegression()
    estimator.coef_ = np.asarray(weights, dtype=np.float64)
    estimator.intercept_ = float(intercept)
    estimator.n_features_in_ = len(weights)
    return estimator


def info(state: State, rows_read: int) -> dict[str, Any]:
    """ML.TRAINING_INFO's incremental entries."""
    return {
        "incremental": True,
        "training_run": state.runs - 1,  # (BigQuery counts from 0)
        "rows_total": state.rows,
        "rows_read": rows_read,
    }


def dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, allow_nan=True)
