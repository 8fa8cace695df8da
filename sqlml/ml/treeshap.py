"""TreeSHAP for sqlml's tree models, by XGBoost itself (ML.EXPLAIN_PREDICT of a boosted tree or
random forest; sqlml/functions/explain_trees.py writes the SQL around it).

A tree version keeps its fitted model in XGBoost's JSON format beside its ONNX graph
(sqlml.version_boosters): TreeSHAP weighs each path by the training rows that reached each node
(the node's cover), which an ONNX tree ensemble does not hold. The engines' functions (a DuckDB
Arrow UDF, a PL/Python function) hand this module the rows as the ensemble reads them (the
graph's preprocessed features, compiled to SQL) and the class to explain per row; it returns,
per row, ``[phi_0, ..., phi_{m-1}, bias, margin, output]``:

- ``phi_j``: feature j's contribution to that class's margin (``pred_contribs``: exact TreeSHAP,
  or with ``approx`` XGBoost's approximate contributions, Saabas' path attribution);
- ``bias``: XGBoost's bias column, the expected margin over the training rows (its base score
  included): BigQuery's ``baseline_prediction_value``;
- ``margin``: that class's raw margin (``output_margin``), which bias + sum(phi) equals up to
  float32 rounding (XGBoost sums in float32);
- ``output``: XGBoost's transformed output: the class's probability (binary: the positive
  class's), or a regressor's value.

A random forest is XGBoost's random-forest mode, one round of ``num_parallel_tree`` trees whose
leaves add up to the margin: its contributions add up to it just the same.

The loaded boosters are cached per process by the sha256 of their JSON (content-addressed: a
new version is a new key, nothing stale is served), at most ``CACHE`` of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from sqlml import errors

Array = np.ndarray[Any, Any]
CACHE = 16
_boosters: OrderedDict[str, tuple[Any, threading.Lock]] = OrderedDict()
_lock = threading.Lock()


def _booster(key: str, load: Callable[[], bytes]) -> tuple[Any, threading.Lock]:
    """The booster of JSON sha256 ``key``, loaded once per process (``load`` gives its bytes)."""
    with _lock:
        if key in _boosters:
            _boosters.move_to_end(key)
            return _boosters[key]
    import xgboost  # (lazy: 0.3 s; libgomp's wait policy is set by sqlml.ml's __init__)

    try:
        booster = xgboost.Booster(model_file=bytearray(load()))
    except xgboost.core.XGBoostError as e:
        raise errors.CorruptedModel(f"the stored XGBoost model {key} cannot be loaded: {e}") from e
    found = (booster, threading.Lock())
    with _lock:
        _boosters[key] = found
        while len(_boosters) > CACHE:
            _boosters.popitem(last=False)
    return found


def explain(
    key: str, load: Callable[[], bytes], x: Array, classes: Array, approx: bool = False
) -> Array:
    """Per row of ``x`` (the ensemble's features, float64, NaN: missing): the contributions to
    the margin of the class ``classes`` names (an index; 0 for regression and binary models),
    then the bias, that margin and XGBoost's output for it (the module's docstring)."""
    import xgboost

    booster, lock = _booster(key, load)
    n, width = x.shape
    expected = booster.num_features()
    if width != expected:
        raise errors.CorruptedModel(
            f"the stored XGBoost model {key} reads {expected} features, the graph {width}"
        )
    with lock:  # (one call at a time per booster; XGBoost spreads each over the cores)
        matrix = xgboost.DMatrix(x)
        contribs = booster.predict(matrix, pred_contribs=True, approx_contribs=approx)
        margin = booster.predict(matrix, output_margin=True)
        output = booster.predict(matrix)
    rows = np.arange(n)
    if contribs.ndim == 3:  # multiclass: one block per class, the row's class chosen
        which = np.clip(np.asarray(classes, dtype=np.int64), 0, contribs.shape[1] - 1)
        contribs, margin, output = (
            contribs[rows, which],
            margin[rows, which],
            output[rows, which],
        )
    out = np.empty((n, width + 3), dtype=np.float64)
    out[:, : width + 1] = contribs
    out[:, width + 1] = margin.reshape(n)
    out[:, width + 2] = output.reshape(n)
    return out
