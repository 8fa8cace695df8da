"""``sqlml.explain_dnn``: ML.EXPLAIN_PREDICT's integrated gradients of a DNN in the PostgreSQL
server, one chunk of rows per call, as ``sqlml.explain_trees`` explains trees
(sqlml/functions/explain_dnn.py writes the query; sqlml/ml/integrated_gradients.py computes).

The graph is read by its sha256 from ``sqlml.versions`` with the caller's rights, as runtime
scoring reads it (privileges.require_graph on every call, so a revoke or a SET ROLE takes effect
at once); its weights are read once per backend (integrated_gradients' cache, keyed by the same
sha256: nothing stale is ever served).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sqlml.engines.pgtypes import decode_array
from sqlml.ml import integrated_gradients
from sqlml.postgres import privileges, server


def explain_batch(
    plpy: Any, sha: str, steps: int, classes: bytes, features: Sequence[bytes]
) -> list[float]:
    """One chunk of rows: each row's class index and each feature as array_send bytes; the
    rows' values flattened output by output (every row's first value, then every row's
    second...)."""
    privileges.require_graph(plpy, sha)
    which = np.asarray(decode_array(classes).to_numpy(zero_copy_only=False), dtype=np.int64)
    x = np.empty((len(which), len(features)), dtype=np.float64)
    for j, column in enumerate(features):
        x[:, j] = decode_array(column).to_numpy(zero_copy_only=False)
    found = integrated_gradients.explain(
        sha, lambda: server._load_graph(plpy, sha)[0], x, which, int(steps)
    )
    flat: list[float] = found.T.reshape(-1).tolist()  # (output by output)
    return flat
