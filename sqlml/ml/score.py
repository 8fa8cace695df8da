"""Runtime scoring: the stored ONNX graph run by onnxruntime over Arrow data.

Sessions are cached by the graph's sha256, so every call after the first for a model version costs
only the run. Inputs follow the graph's conventions (see features.py): numbers as float64 with NaN
for NULL, strings and booleans as strings with NULL as :data:`NULL_CATEGORY`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from sqlml import errors
from sqlml.ml.features import InputColumn, to_numpy

Array = np.ndarray[Any, Any]
_CACHE_SIZE = 64


class Scorer:
    """One onnxruntime session over one model version's graph."""

    def __init__(self, onnx_bytes: bytes, inputs: Sequence[InputColumn]) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the engine runs scoring in its own threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = list(inputs)
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, Array], outputs: Sequence[str] | None = None) -> dict[str, Array]:
        shaped = {name: value.reshape(-1, 1) for name, value in feed.items()}
        wanted = list(outputs) if outputs else self.outputs  # (none named: all of them)
        results = self.session.run(wanted, shaped)
        return dict(zip(wanted, results, strict=True))

    def run_arrow(
        self, columns: Sequence[pa.Array | pa.ChunkedArray], outputs: Sequence[str] | None = None
    ) -> dict[str, Array]:
        """Scores Arrow columns given in the order of ``self.inputs``."""
        return self.run(self.feed(columns), outputs)

    def feed(self, columns: Sequence[pa.Array | pa.ChunkedArray]) -> dict[str, Array]:
        """Arrow columns in the order of ``self.inputs`` as the graph takes them, by name."""
        return {c.name: to_numpy(col, c.kind) for c, col in zip(self.inputs, columns, strict=True)}

    def run_table(self, table: pa.Table, outputs: Sequence[str] | None = None) -> dict[str, Array]:
        missing = [c.name for c in self.inputs if c.name not in table.column_names]
        if missing:
            raise errors.UndefinedColumn(f'column "{missing[0]}" is missing from the input')
        return self.run_arrow([table.column(c.name) for c in self.inputs], outputs)


_lock = threading.Lock()
_cache: OrderedDict[str, Scorer] = OrderedDict()


def verify(onnx_bytes: bytes, sha256: str, what: str = "a model version") -> None:
    """XX001 unless the bytes hash to ``sha256``: every path that loads a graph by its sha256
    checks it before use (and before it enters a cache keyed by it)."""
    if hashlib.sha256(onnx_bytes).hexdigest() != sha256:
        raise errors.CorruptedModel(
            f"{what} is corrupted: its ONNX bytes do not match their sha256 {sha256}",
            hint="retrain it with CREATE OR REPLACE MODEL",
        )


def scorer(onnx_bytes: bytes, inputs: Sequence[InputColumn], key: str | None = None) -> Scorer:
    """A cached :class:`Scorer`; ``key`` is the graph's sha256 when the caller knows it.

    The cache is keyed by that sha256, so bytes that do not match it would be served to every
    later caller with a good copy (a corrupted version, then a retrain to the same graph): they
    are checked before a session is made from them (XX001)."""
    digest = hashlib.sha256(onnx_bytes).hexdigest() if key is None else key
    with _lock:
        found = _cache.get(digest)
        if found is not None:
            _cache.move_to_end(digest)
            return found
    if key is not None:
        verify(onnx_bytes, key)
    made = Scorer(onnx_bytes, inputs)
    with _lock:
        _cache[digest] = made
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return made
