"""Incremental training for ``dnn_classifier`` and ``dnn_regressor``: approximate (issue 15).

Theory of operation
-------------------
A neural network's loss has no sufficient statistics and no useful quadratic summary (its
curvature changes as soon as the weights move), so an incremental DNN does what scikit-learn's
``partial_fit`` is for: a RETRAIN starts from the stored weights and trains on the new rows,
in epochs as a DNN's training runs them (dnn.py: one ``partial_fit`` per epoch, seed 0,
``max_iterations`` epochs at most, BigQuery's early stop on ``min_rel_progress``), with the
options of the first training (``learn_rate``, ``batch_size``, ``optimizer``, ``l2_reg``).

How it differs from training on all rows (docs/sql.md says it, tests/test_incremental_more.py
measures it): the old rows are not seen again, so the network drifts towards the new rows as
far as the learning rate and the number of epochs take it (it *forgets*: many epochs over a
few new rows fit them, not the whole), and the result depends on the learning rate and on the
order of the new rows (scikit-learn's shuffles, seed 0); the optimizer starts afresh at each
RETRAIN (Adam's moments are not kept). The preprocessing (each numeric column's mean and
spread) and the classes are the first training's, as an incremental logistic_reg's; a
category first seen later is a new input whose first-layer weights start at 0 (it was 0 in
every old row); a new class is 22000.

The state is the weights (``coefs_`` and ``intercepts_``, plain arrays in a NumPy .npz loaded
without pickle) and the preprocessing and classes as JSON.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.ml.features import Encoder, NumericAuto, OneHot
from sqlml.ml.fingerprint import Fingerprint

Array = np.ndarray[Any, Any]
MODEL_TYPES = ("dnn_classifier", "dnn_regressor")


@dataclass
class Net:
    """A DNN's state: its preprocessing, classes (None: a regressor) and weights."""

    encoders: list[Encoder]
    classes: list[Any] | None
    coefs: list[Array]  # [inputs, units] per layer
    intercepts: list[Array]  # [units] per layer
    rows: int
    runs: int = 1
    seen: Fingerprint | None = None  # the fingerprint of the rows (ml/fingerprint.py)

    def to_bytes(self) -> bytes:
        arrays = {f"coef_{i}": c for i, c in enumerate(self.coefs)}
        arrays.update({f"intercept_{i}": b for i, b in enumerate(self.intercepts)})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    def meta(self) -> dict[str, Any]:
        return {
            "learner": "net",
            "encoders": [encoder_json(e) for e in self.encoders],
            "classes": self.classes,
            "layers": len(self.coefs),
            "rows": self.rows,
            "runs": self.runs,
            "seen": self.seen.to_json() if self.seen is not None else None,
        }

    @classmethod
    def load(cls, data: bytes, meta: dict[str, Any]) -> Net:
        layers = int(meta["layers"])
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            coefs = [arrays[f"coef_{i}"] for i in range(layers)]
            intercepts = [arrays[f"intercept_{i}"] for i in range(layers)]
        encoders = [encoder_of(e) for e in meta["encoders"]]
        shapes = [c.shape[1] for c in coefs] == [b.shape[0] for b in intercepts]
        if not shapes or coefs[0].shape[0] != sum(e.width for e in encoders):
            raise errors.CorruptedModel(
                "the incremental state of this version is damaged (its arrays disagree)",
                hint="CREATE OR REPLACE MODEL trains it again from all rows",
            )
        seen = Fingerprint.from_json(meta["seen"]) if meta.get("seen") else None
        classes = meta.get("classes")
        return cls(encoders, classes, coefs, intercepts, int(meta["rows"]), int(meta["runs"]), seen)


def encoder_json(encoder: Encoder) -> dict[str, Any]:
    if isinstance(encoder, NumericAuto):
        return {"column": encoder.name, "mean": encoder.mean, "std": encoder.std}
    return {"column": encoder.name, "categories": list(encoder.categories)}


def encoder_of(stored: dict[str, Any]) -> Encoder:
    if "mean" in stored:
        std = None if stored["std"] is None else float(stored["std"])
        return NumericAuto(stored["column"], float(stored["mean"]), std)
    return OneHot(stored["column"], tuple(stored["categories"]))


def places(before: Sequence[Encoder], after: Sequence[Encoder]) -> list[int | None]:
    """For each feature column of ``after`` (the encoders with categories added), its column
    in ``before``'s features (None: a new category)."""
    found: list[int | None] = []
    at = 0
    for old, new in zip(before, after, strict=True):
        if isinstance(old, OneHot) and isinstance(new, OneHot):
            index = {c: at + i for i, c in enumerate(old.categories)}
            found += [index.get(c) for c in new.categories]
        else:
            found.append(at)
        at += old.width
    return found


def extended(old: Net, encoders: Sequence[Encoder]) -> Net:
    """``old`` over the features of ``encoders``: a new category's first-layer weights are 0
    (it was 0 in every old row)."""
    first = old.coefs[0]
    rows = [
        first[p] if p is not None else np.zeros(first.shape[1])
        for p in places(old.encoders, encoders)
    ]
    coefs = [np.vstack(rows), *old.coefs[1:]]
    return Net(list(encoders), old.classes, coefs, old.intercepts, old.rows, old.runs, old.seen)


def started(estimator: Any, old: Net, x: Array, y: Array) -> Any:
    """scikit-learn's perceptron with ``old``'s weights, ready for ``partial_fit`` (its
    structures made by one ``partial_fit`` on one row, then the weights put in and the
    optimizer and its record dropped: the next epoch starts them afresh)."""
    estimator.hidden_layer_sizes = tuple(c.shape[1] for c in old.coefs[:-1])
    extra = {} if old.classes is None else {"classes": np.arange(len(old.classes))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a batch larger than one row: clipped, it says)
        estimator.partial_fit(x[:1], y[:1], **extra)
    estimator.coefs_ = [np.array(c, dtype=np.float64) for c in old.coefs]
    estimator.intercepts_ = [np.array(b, dtype=np.float64) for b in old.intercepts]
    del estimator._optimizer  # (scikit-learn makes a new one when there is none)
    estimator.n_iter_, estimator.t_, estimator.loss_curve_, estimator.best_loss_ = 0, 0, [], np.inf
    return estimator


def state_of(
    estimator: Any, encoders: Sequence[Encoder], classes: list[Any] | None, rows: int, runs: int
) -> Net:
    """The state of a fitted perceptron."""
    coefs = [np.array(c) for c in estimator.coefs_]
    intercepts = [np.array(b) for b in estimator.intercepts_]
    return Net(list(encoders), classes, coefs, intercepts, rows, runs)
