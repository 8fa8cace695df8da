"""DuckDB's runtime scoring function, registered on every connection sqlml opens.

``sqlml_onnx(key VARCHAR, feature, ...) -> DOUBLE[]`` runs the model version whose graph has
sha256 ``key`` through onnxruntime, one call per DuckDB vector (2,048 rows), and returns the graph's
numeric outputs flattened per row: ``[label, p0, p1, ...]`` for classifiers, ``[value]`` for
regressors and ``[cluster, d0, d1, ...]`` for k-means. The engine path registers each version
before a query uses it.

The registry is bounded: a graph stays while an engine that registered it is open and still
holds it (each engine holds its last ``engines/duckdb.py`` MAX_SCORERS versions and releases
them when it closes); an engine registers a version again before a query uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from sqlml.ml.score import scorer

_MODELS: dict[str, tuple[bytes, list[Any]]] = {}
_HOLDERS: dict[str, int] = {}  # key -> how many engines hold it
_LOCK = threading.Lock()
# The graph outputs the UDF returns, in order (a k-means graph's 'features' output is not one).
_OUTPUTS = ("label", "probabilities", "value", "distances")
FUNCTION = "sqlml_onnx"


def register_model(key: str, onnx: bytes, inputs: Sequence[Any]) -> None:
    """One more engine holds the graph ``key`` (call once per engine; see release_models)."""
    with _LOCK:
        _MODELS.setdefault(key, (onnx, list(inputs)))
        _HOLDERS[key] = _HOLDERS.get(key, 0) + 1


def release_models(keys: Iterable[str]) -> None:
    """An engine no longer holds these graphs: the ones no engine holds are dropped."""
    with _LOCK:
        for key in keys:
            left = _HOLDERS.get(key, 0) - 1
            if left > 0:
                _HOLDERS[key] = left
            else:
                _HOLDERS.pop(key, None)
                _MODELS.pop(key, None)


def registered() -> int:
    """How many graphs the registry holds (for tests and monitoring)."""
    return len(_MODELS)


def _score(key: pa.Array, *columns: pa.Array) -> pa.Array:
    digest = key[0].as_py()
    found = _MODELS.get(digest)
    if found is None:  # (released: a query that uses more models than an engine holds)
        raise KeyError(f"model version {digest} is not registered for scoring; run it again")
    onnx, inputs = found
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
