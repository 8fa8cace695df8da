"""DuckDB's runtime scoring function, registered on every connection sqlml opens.

``sqlml_onnx(key VARCHAR, feature, ...) -> DOUBLE[]`` runs the model version whose graph has
sha256 ``key`` through onnxruntime, one call per DuckDB vector (2,048 rows), and returns the graph's
numeric outputs flattened per row: ``[label, p0, p1, ...]`` for classifiers, ``[value]`` for
regressors and ``[cluster, d0, d1, ...]`` for k-means. The engine path registers each version
before a query uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from sqlml.ml.score import scorer, verify

_MODELS: dict[str, tuple[bytes, list[Any]]] = {}
# The graph outputs the UDF returns, in order (a k-means graph's 'features' output is not one).
_OUTPUTS = ("label", "probabilities", "value", "distances")
FUNCTION = "sqlml_onnx"


def register_model(key: str, onnx: bytes, inputs: Sequence[Any]) -> None:
    """Registers a version's graph under its sha256, checked first (XX001): the registry is
    keyed by it, so bytes that do not match would serve every later version with that key."""
    if key not in _MODELS:
        verify(onnx, key)
        _MODELS[key] = (onnx, list(inputs))


def _score(key: pa.Array, *columns: pa.Array) -> pa.Array:
    digest = key[0].as_py()
    onnx, inputs = _MODELS[digest]
    run = scorer(onnx, inputs, key=digest)
    outputs = run.run_arrow(columns, [name for name in _OUTPUTS if name in run.outputs])
    parts = [np.asarray(v, dtype=np.float64).reshape(len(key), -1) for v in outputs.values()]
    flat = np.hstack(parts)
    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    con.create_function(
        FUNCTION,
        _score,
        None,  # varargs: the model's inputs, whatever their types
        "DOUBLE[]",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
