"""The training rows' fingerprint (sqlml/ml/fingerprint.py; issue 15, point 3): independent of
the rows' order and of Arrow's layout (chunks, the bytes under a NULL), additive over sets of
rows, and different when a value, a NULL, a row or a column's type changes."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pyarrow as pa
import pytest

from sqlml.ml import fingerprint


@pytest.fixture
def table() -> pa.Table:
    rng = np.random.default_rng(0)
    n = 5_000
    ints = pa.array(rng.integers(-(2**62), 2**62, n), mask=rng.random(n) < 0.1)
    return pa.table(
        {
            "i": ints,
            "f": pa.array(rng.normal(size=n), mask=rng.random(n) < 0.1),
            "s": pa.array(rng.choice(["a", "b", "c"], n).astype(object), mask=rng.random(n) < 0.1),
            "b": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1),
            "d": pa.array(
                [
                    datetime.date(2024, 1, 1) + datetime.timedelta(days=int(k))
                    for k in rng.integers(0, 999, n)
                ]
            ),
            "t": pa.array(
                [
                    datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=int(k))
                    for k in rng.integers(0, 10**6, n)
                ]
            ),
            "m": pa.array([decimal.Decimal(int(k)) / 100 for k in rng.integers(0, 10**6, n)]),
            "l": pa.array([[int(k), 1] for k in rng.integers(0, 9, n)]),
        }
    )


def test_the_order_and_the_layout_do_not_count(table: pa.Table) -> None:
    expected = fingerprint.of(table).digest
    shuffled = table.take(np.random.default_rng(1).permutation(table.num_rows))
    assert fingerprint.of(shuffled).digest == expected
    chunked = pa.concat_tables([table.slice(0, 1234), table.slice(1234)])
    assert chunked.column(0).num_chunks == 2
    assert fingerprint.of(chunked).digest == expected
    # the same values with other bytes under the NULLs of column i
    column = table.column("i").combine_chunks()
    validity, data = column.buffers()
    values = np.frombuffer(data, dtype=np.int64).copy()
    values[~np.asarray(column.is_valid())] = 12345
    rewritten = pa.Array.from_buffers(pa.int64(), len(column), [validity, pa.py_buffer(values)])
    assert rewritten.to_pylist() == column.to_pylist()
    assert fingerprint.of(table.set_column(0, "i", rewritten)).digest == expected


def test_sets_of_rows_add_up(table: pa.Table) -> None:
    parts = [table.slice(0, 1000), table.slice(1000, 3000), table.slice(4000)]
    total = fingerprint.of(parts[0]) + fingerprint.of(parts[1]) + fingerprint.of(parts[2])
    assert total.digest == fingerprint.of(table).digest
    assert total.rows == table.num_rows


def test_every_change_counts(table: pa.Table) -> None:
    expected = fingerprint.of(table).digest
    f = table.column("f").to_pylist()
    changed = [*f[:10], (f[10] or 0.0) + 1e-12, *f[11:]]
    assert fingerprint.of(table.set_column(1, "f", pa.array(changed))).digest != expected
    nulled = [*f[:10], None, *f[11:]] if f[10] is not None else [*f[:10], 0.0, *f[11:]]
    assert fingerprint.of(table.set_column(1, "f", pa.array(nulled))).digest != expected
    assert fingerprint.of(table.slice(1)).digest != expected
    twice = pa.concat_tables([table, table.slice(0, 1)])
    assert fingerprint.of(twice).digest != expected
    as_decimal = table.set_column(0, "i", table.column("i").cast(pa.decimal128(20, 0)))
    assert fingerprint.of(as_decimal).digest != expected
    swapped = table.select(["f", "i", "s", "b", "d", "t", "m", "l"])
    assert fingerprint.of(swapped).digest != expected
