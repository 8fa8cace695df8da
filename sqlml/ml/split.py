"""DATA_SPLIT_METHOD: which rows train and which evaluate, as BigQuery ML documents it.

- AUTO_SPLIT: fewer than 500 rows, no split; up to 50,000 rows, 20% evaluate; above that,
  10,000 rows evaluate. The rows are chosen at random (seed 0, so a retrain picks the same rows).
- RANDOM: DATA_SPLIT_EVAL_FRACTION of the rows, at random.
- SEQ: the rows with the largest DATA_SPLIT_COL values (the last fraction in that order) evaluate.
- CUSTOM: DATA_SPLIT_COL is a BOOL column; TRUE rows evaluate, FALSE rows train.
- NO_SPLIT: every row trains; evaluation then uses the training rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors

Mask = np.ndarray[Any, np.dtype[np.bool_]]


def label_column(options: Mapping[str, Any], table: pa.Table) -> str | None:
    """The label column as training will find it (INPUT_LABEL_COLS, else ``label``), matched
    case-insensitively; None when the table has none."""
    given = options.get("input_label_cols")
    if isinstance(given, tuple | list) and given and isinstance(given[0], str):
        given = given[0]
    wanted = given if isinstance(given, str) else "label"
    return next((n for n in table.column_names if n.lower() == wanted.lower()), None)


def eval_mask(method: str, fraction: float, column: pa.ChunkedArray | None, n: int) -> Mask | None:
    """A boolean mask of the evaluation rows, or None when every row trains."""
    if method == "NO_SPLIT":
        return None
    if method == "AUTO_SPLIT":
        if n < 500:
            return None
        return _random(n, 0.2 if n <= 50_000 else 10_000 / n)
    if method == "RANDOM":
        return _random(n, fraction)
    if column is None:
        raise errors.InvalidParameterValue(f"DATA_SPLIT_METHOD = '{method}' needs DATA_SPLIT_COL")
    if method == "CUSTOM":
        return _custom(column)
    return _seq(column, fraction)


def _random(n: int, fraction: float) -> Mask:
    count = round(n * fraction)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(0).permutation(n)[:count]] = True
    return mask


def _custom(column: pa.ChunkedArray) -> Mask:
    if not pa.types.is_boolean(column.type):
        raise errors.DatatypeMismatch("DATA_SPLIT_COL must be a BOOL column for CUSTOM splits")
    return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)


def _seq(column: pa.ChunkedArray, fraction: float) -> Mask:
    n = len(column)
    # NULLs sort first: a row without an ordering value is never among the last (evaluation) rows
    order = np.asarray(
        pc.sort_indices(pa.table({"k": column}), sort_keys=[("k", "ascending", "at_start")])
    )
    mask = np.zeros(n, dtype=bool)
    mask[order[n - round(n * fraction) :]] = True
    return mask
