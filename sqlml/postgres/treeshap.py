"""``sqlml.explain_trees``: ML.EXPLAIN_PREDICT's TreeSHAP in the PostgreSQL server, one chunk of
rows per call, as ``sqlml.score_batch`` scores (sqlml/functions/explain_trees.py writes the
query; sqlml/ml/treeshap.py computes).

The XGBoost JSON is read by its sha256 from ``sqlml.version_boosters`` with the caller's rights
(row-level security shows the versions of the models it may use): the check runs on every call,
so a revoke or a SET ROLE takes effect at once, and the booster itself is loaded once per backend
(treeshap's cache, keyed by the same sha256: nothing stale is ever served).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sqlml import errors
from sqlml.engines.pgtypes import decode_array
from sqlml.ml import treeshap

_visible: list[Any] = []  # the prepared check, once per backend
_loaded: list[Any] = []  # the prepared load


def explain_batch(
    plpy: Any, sha: str, approx: bool, classes: bytes, features: Sequence[bytes]
) -> list[float]:
    """One chunk of rows: each row's class index and each feature as array_send bytes (a
    NULL feature sent as NaN); the rows' values flattened output by output (every row's
    first value, then every row's second...)."""
    _require(plpy, sha)
    which = np.asarray(decode_array(classes).to_numpy(zero_copy_only=False), dtype=np.int64)
    x = np.empty((len(which), len(features)), dtype=np.float64)
    for j, column in enumerate(features):
        x[:, j] = decode_array(column).to_numpy(zero_copy_only=False)
    found = treeshap.explain(sha, lambda: _load(plpy, sha), x, which, bool(approx))
    flat: list[float] = found.T.reshape(-1).tolist()  # (output by output)
    return flat


def _require(plpy: Any, sha: str) -> None:
    if not _visible:
        _visible.append(
            plpy.prepare(
                "SELECT 1 AS v FROM sqlml.version_boosters"
                " WHERE sha256 OPERATOR(pg_catalog.=) $1 LIMIT 1",
                ["text"],
            )
        )
    if not plpy.execute(_visible[0], [sha]):
        raise errors.UndefinedModel(f"no model version has XGBoost model {sha}")


def _load(plpy: Any, sha: str) -> bytes:
    """The JSON by its sha256, checked (XX001 when no stored copy matches)."""
    if not _loaded:
        _loaded.append(
            plpy.prepare(
                "SELECT booster FROM sqlml.version_boosters WHERE sha256 OPERATOR(pg_catalog.=) $1",
                ["text"],
            )
        )
    for row in plpy.execute(_loaded[0], [sha]):
        data = bytes(row["booster"])
        if hashlib.sha256(data).hexdigest() == sha:
            return data
    raise errors.CorruptedModel(
        f"the stored XGBoost model {sha} is corrupted: its bytes do not match their sha256",
        hint="retrain the model with CREATE OR REPLACE MODEL",
    )
