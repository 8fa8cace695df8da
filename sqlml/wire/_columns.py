"""Arrow column plumbing shared by the encoders (types.py) and COPY TO (copy.py).

Encoders read one canonical Arrow type per PostgreSQL type (``_canonical``: extension storage,
dictionaries decoded, every kind of list as a plain list) and write ``large_binary`` or
``large_string`` arrays, built straight from numpy buffers (``_fixed``; read back with
``_offsets``, ``_lengths``, ``_payload``; the wire's int32 length prefixes by ``_prefixed``) or
with ``binary_join_element_wise`` (``_join``). Rows where Arrow's output differs from
PostgreSQL's are rendered in Python and patched in with ``replace_with_mask`` (``_replace``,
``_rows_via_python``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_LISTS = (
    pa.types.is_list,
    pa.types.is_large_list,
    pa.types.is_fixed_size_list,
    pa.types.is_list_view,
    pa.types.is_large_list_view,
)


def _is_list(arrow_type: pa.DataType) -> bool:
    return any(test(arrow_type) for test in _LISTS)


_CANONICAL = {pa.float16(): pa.float32(), pa.date64(): pa.date32(), pa.null(): pa.string()}
_CANONICAL |= {pa.string_view(): pa.large_string(), pa.binary_view(): pa.large_binary()}


def _canonical(arr: pa.Array) -> pa.Array:
    """arr in the Arrow type its encoder reads: extension storage, dictionaries decoded,
    float16 widened, date64 as date32, every kind of list as a plain list, nulls as strings."""
    arrow_type = arr.type
    if isinstance(arrow_type, pa.BaseExtensionType):
        return _canonical(arr.storage)
    if pa.types.is_dictionary(arrow_type):
        return _canonical(arr.dictionary_decode())
    if _is_list(arrow_type) and not pa.types.is_list(arrow_type):
        return _plain_list(arr)
    return arr.cast(_CANONICAL[arrow_type]) if arrow_type in _CANONICAL else arr


def _plain_list(arr: pa.Array) -> pa.Array:
    """A large, fixed-size or view list array as a plain list array (Arrow's cast from list
    views builds invalid arrays)."""
    lengths = np.asarray(pc.list_value_length(arr).fill_null(0).to_numpy(), dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    list_type = pa.list_(arr.type.value_field)
    return pa.ListArray.from_arrays(offsets, pc.list_flatten(arr), list_type, mask=pc.is_null(arr))


def _validity(arr: pa.Array) -> pa.Buffer | None:
    """arr's validity bitmap from bit 0 (None when there are no nulls)."""
    return pc.is_valid(arr).buffers()[1] if arr.null_count else None


def _valid(arr: pa.Array) -> Mask:
    return np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _numbers(arr: pa.Array, fill: Any = 0) -> npt.NDArray[Any]:
    """arr's values as numpy, nulls as ``fill``."""
    return np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False))


def _fixed(
    data: npt.NDArray[Any], width: int, n: int, validity: pa.Buffer | None = None
) -> pa.Array:
    """n values of ``width`` bytes each, back to back in ``data``, as large_binary."""
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.Array.from_buffers(pa.large_binary(), n, buffers)


def _offsets(col: pa.Array) -> Ints:
    """The n + 1 value offsets of a large_binary/large_string array."""
    return np.frombuffer(col.buffers()[1], np.int64, len(col) + 1, col.offset * 8)


def _lengths(col: pa.Array) -> Ints:
    """Each value's byte length, -1 for NULL, as the wire's length prefixes say."""
    lengths = np.diff(_offsets(col))
    if col.null_count:
        lengths[~_valid(col)] = -1
    return lengths


def _prefixed(values: pa.Array) -> tuple[pa.Array, Ints]:
    """The int32 length prefixes (-1 for NULL) of large_binary values, and the lengths."""
    lengths = _lengths(values)
    return _fixed(lengths.astype(">i4"), 4, len(values)), lengths


def _payload(col: pa.Array) -> pa.Buffer:
    """All values of a large_binary array back to back (a view of its data buffer)."""
    offsets = _offsets(col)
    if not len(col) or col.buffers()[2] is None:
        return pa.py_buffer(b"")
    return col.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def _join(parts: Sequence[Any], separator: str | bytes = "", **options: Any) -> pa.Array:
    """binary_join_element_wise of arrays and constants, as large_string (str separator) or
    large_binary (bytes separator)."""
    kind = pa.large_binary() if isinstance(separator, bytes) else pa.large_string()
    args = [pa.scalar(p, kind) if isinstance(p, str | bytes) else _as(p, kind) for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar(separator, kind), **options)


def _as(arr: pa.Array, kind: pa.DataType) -> pa.Array:
    return arr if arr.type == kind else arr.cast(kind)


def _replace(text: pa.Array, mask: Mask, values: Sequence[str] | pa.Array) -> pa.Array:
    """text with the rows under mask replaced, in order, by values."""
    if not mask.any():
        return text
    return pc.replace_with_mask(text, pa.array(mask), pa.array(values, text.type))


def _rows_via_python(text: pa.Array, mask: Mask, render: Callable[[int], str]) -> pa.Array:
    return _replace(text, mask, [render(int(i)) for i in np.flatnonzero(mask)])


def _mask_nulls(values: pa.Array, like: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_valid(like), values, None) if like.null_count else values
