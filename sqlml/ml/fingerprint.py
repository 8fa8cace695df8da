"""The content fingerprint of training rows (ML.VERSIONS' ``data_fingerprint``; issue 15).

A multiset hash. Each row hashes to 64 bits from its values, column by column (pandas'
``hash_array``: SipHash with a fixed key, the same on every machine), a NULL as one fixed value
whatever bytes its buffer holds under it; the rows' hashes add up modulo 2^64; the fingerprint
is the sha256 of the columns' names and types, the row count and that sum. So:

- it does not depend on the order of the rows (a query without ORDER BY returns them in any
  order, and the engines' parallel scans do), nor on how Arrow laid them out (chunks, offsets,
  the bytes under a NULL), where the first fingerprint hashed the raw Arrow buffers;
- it adds up: the rows of two reads fingerprint as the rows of both. An incremental model's
  RETRAIN (retrain.py) adds the new rows' sum to the stored one, and so its version has the
  fingerprint a training on all the rows would have (tested), without reading the old rows.

Two sets of rows with the same fingerprint are the same multiset of rows, but for a 64-bit
collision of the sums (the sha256 adds nothing there): enough to tell "the data changed" (the
dbt integration's retrain-if-changed), not a cryptographic commitment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BATCH = 65_536  # rows hashed at a time (the memory of a batch's pandas copy)
PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime: folds each column into the row's hash
NULL = np.uint64(0x9E3779B97F4A7C15)  # a NULL's hash, whatever its bytes
MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Fingerprint:
    columns: str  # "name:type,..." of the rows
    rows: int
    total: int  # the rows' hashes, summed modulo 2^64

    def __add__(self, other: Fingerprint) -> Fingerprint:
        """The rows of both (of ``other``'s columns when they differ)."""
        return Fingerprint(other.columns, self.rows + other.rows, (self.total + other.total) & MASK)

    @property
    def digest(self) -> str:
        text = f"{self.columns}\n{self.rows}\n{self.total:016x}"
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "total": f"{self.total:016x}"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(str(data["columns"]), int(data["rows"]), int(str(data["total"]), 16))


def of(table: pa.Table) -> Fingerprint:
    total = 0
    for batch in table.to_batches(max_chunksize=BATCH):
        total = (total + int(rows(batch).sum(dtype=np.uint64))) & MASK
    return Fingerprint(columns_of(table.schema), table.num_rows, total)


def columns_of(schema: pa.Schema) -> str:
    return ",".join(f"{f.name}:{f.type}" for f in schema)


def of_rows(schema: pa.Schema, hashes: np.ndarray[Any, np.dtype[np.uint64]]) -> Fingerprint:
    """The fingerprint of rows whose hashes (``rows``) are given: a part of a streamed read."""
    return Fingerprint(columns_of(schema), len(hashes), int(hashes.sum(dtype=np.uint64)) & MASK)


def rows(batch: pa.RecordBatch) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Each row's 64-bit hash: what the fingerprint sums (and a streamed training's sample
    compares, ml/streamed.py: uniform, and the same for a row whatever its place)."""
    row = np.zeros(batch.num_rows, dtype=np.uint64)
    for column in batch.columns:
        row = row * PRIME + _hashed(column)  # (uint64 arrays wrap around, as wanted)
    return _mixed(row)


def _hashed(column: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Each value's 64-bit hash, NULL's for a NULL."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values: Any
    if pa.types.is_boolean(kind):
        values = pc.fill_null(column, False).to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(kind):
        values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
    elif pa.types.is_floating(kind):
        values = pc.fill_null(pc.cast(column, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    elif pa.types.is_temporal(kind) and not pa.types.is_interval(kind):
        width = pa.int32() if kind.bit_width == 32 else pa.int64()
        values = pc.fill_null(pc.cast(column, width), 0).to_numpy(zero_copy_only=False)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = pc.fill_null(column, "").to_numpy(zero_copy_only=False)
    elif pa.types.is_decimal(kind):
        values = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    else:  # (lists, structs, maps, binary: their Python values' text)
        values = np.array([repr(v) for v in column.to_pylist()], dtype=object)
    import pandas as pd  # (lazy: a second to import, which `import sqlml` must not pay)

    hashed = np.asarray(pd.util.hash_array(np.asarray(values)), dtype=np.uint64)
    hashed[~valid] = NULL
    return hashed


def _mixed(h: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """SplitMix64's finalizer: a row's column fold spread over all 64 bits before summing."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))
