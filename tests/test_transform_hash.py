"""ML.HASH_BUCKETIZE in TRANSFORM (issue 13): MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes
modulo hash_bucket_size, checked against an independent implementation written here; a
linear_reg on hashed features against scikit-learn fitted on a matrix this file builds, on both
engines and through the gateway (the hash has no SQL: scoring runs in onnxruntime); bad
arguments are 22023, a number where a string goes 42804.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import shop_tables
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sqlml
from sqlml import errors
from sqlml.ml import hashing
from sqlml.ml.features import NULL_CATEGORY

Array = np.ndarray[Any, Any]
MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & MASK


def murmur3_x86_32(text: str, seed: int = 0) -> int:
    """Austin Appleby's MurmurHash3_x86_32 of the UTF-8 bytes, in plain Python."""
    data, h = text.encode("utf-8"), seed
    body = len(data) - len(data) % 4
    for i in range(0, body, 4):
        k = _rotl(int.from_bytes(data[i : i + 4], "little") * 0xCC9E2D51 & MASK, 15)
        h = (_rotl(h ^ (k * 0x1B873593 & MASK), 13) * 5 + 0xE6546B64) & MASK
    k = int.from_bytes(data[body:], "little")
    h ^= _rotl(k * 0xCC9E2D51 & MASK, 15) * 0x1B873593 & MASK
    h ^= len(data)
    h = (h ^ (h >> 16)) * 0x85EBCA6B & MASK
    h = (h ^ (h >> 13)) * 0xC2B2AE35 & MASK
    return h ^ (h >> 16)


STRINGS = [
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "abcde",
    "basic",
    "premium",
    "Zürich",
    "École",
    "日本語のテキスト",
    "emoji 🙂 ok",
    "The quick brown fox jumps over the lazy dog",
]


def test_the_reference_implementation_is_murmur3() -> None:
    """Published values of MurmurHash3_x86_32, so the comparisons below compare with it."""
    assert murmur3_x86_32("") == 0
    assert murmur3_x86_32("", 1) == 0x514E28B7
    assert murmur3_x86_32("The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def test_hash_equals_independent_murmur3() -> None:
    assert hashing.murmur3(np.array(STRINGS, dtype=object)).tolist() == [
        murmur3_x86_32(s) for s in STRINGS
    ]
    assert hashing.bucketize(np.array(["a"], dtype=object), 3).tolist() == [2.0]  # docs/sql.md


@pytest.mark.parametrize("size", [0, 1, 3, 10, 1_000_003])
def test_buckets_are_hash_modulo_size_and_null_stays_null(size: int) -> None:
    values = np.array([*STRINGS, NULL_CATEGORY], dtype=object)
    got = hashing.bucketize(values, size)
    expected = [murmur3_x86_32(s) % size if size else murmur3_x86_32(s) for s in STRINGS]
    assert got[:-1].tolist() == [float(e) for e in expected]
    assert np.isnan(got[-1])


# -- a model on hashed features, against scikit-learn -------------------------------------------

TRANSFORM = (
    "ML.HASH_BUCKETIZE(plan, 7) AS plan_bucket,"
    " ML.HASH_BUCKETIZE(segment, 0) AS segment_hash,"
    " ML.HASH_BUCKETIZE(CONCAT(plan, '/', segment), 5) AS pair_bucket,"
    " tenure, value"
)
MODEL = (
    f"CREATE MODEL shop.hashed TRANSFORM ({TRANSFORM})"
    " OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'],"
    " data_split_method = 'NO_SPLIT')"
    " AS SELECT tenure, plan, segment, value FROM shop.customers"
)
PREDICT = (
    "SELECT id, predicted_value FROM ML.PREDICT(MODEL shop.hashed,"
    " (SELECT * FROM shop.customers WHERE id < 200){settings}) ORDER BY id"
)


def _bucket(values: list[str | None], size: int) -> Array:
    return np.array([np.nan if v is None else murmur3_x86_32(v) % (size or 2**32) for v in values])


def _features(table: Any) -> Array:
    """The TRANSFORM's columns, hashed here: NULL stays NULL (imputed by the caller)."""
    plan, segment = table.column("plan").to_pylist(), table.column("segment").to_pylist()
    pairs = [f"{p or ''}/{s}" for p, s in zip(plan, segment, strict=True)]  # CONCAT skips NULL
    tenure = np.array(table.column("tenure").to_pylist(), dtype=float)
    return np.column_stack([_bucket(plan, 7), _bucket(segment, 0), _bucket(pairs, 5), tenure])


def _expected() -> Array:
    """OLS on the hashed features, NULL replaced by the training mean and standardized
    (automatic preprocessing; a raw hash is ~1e9, too far from the other columns' scale for
    scikit-learn's least squares unscaled); its predictions for the first 200 customers."""
    customers = shop_tables()["customers"]
    train = _features(customers)
    means = np.nanmean(train, axis=0)
    filled = np.where(np.isnan(train), means, train)
    value = np.array(customers.column("value").to_pylist())
    fitted = make_pipeline(StandardScaler(), LinearRegression()).fit(filled, value)
    new = _features(customers.slice(0, 200))
    return np.asarray(fitted.predict(np.where(np.isnan(new), means, new)))


@pytest.fixture(scope="module")
def hashed(shop_module: sqlml.Connection) -> sqlml.Connection:
    shop_module.execute(MODEL)
    return shop_module


def _predictions(con: Any, settings: str = "") -> Array:
    rows = con.execute(PREDICT.format(settings=settings)).fetchall()
    assert [int(r[0]) for r in rows] == list(range(200))
    return np.array([float(r[1]) for r in rows])


@pytest.mark.parametrize("settings", ["", ", STRUCT('runtime' AS scoring)"])
def test_linear_reg_on_hashed_features_matches_scikit_learn(
    hashed: sqlml.Connection, settings: str
) -> None:
    np.testing.assert_allclose(_predictions(hashed, settings), _expected(), rtol=1e-6)


def test_evaluate_scores_with_onnxruntime(hashed: sqlml.Connection) -> None:
    cursor = hashed.execute(
        "SELECT mean_absolute_error FROM ML.EVALUATE(MODEL shop.hashed,"
        " (SELECT * FROM shop.customers WHERE id < 200))"
    )
    value = np.array(shop_tables()["customers"].column("value").to_pylist()[:200])
    expected = float(np.mean(np.abs(value - _expected())))
    assert float(cursor.fetchall()[0][0]) == pytest.approx(expected, rel=1e-6)


def test_a_hashing_model_is_not_compiled_to_sql(hashed: sqlml.Connection) -> None:
    """Neither engine computes MurmurHash3: 'compiled' is refused, ML.TRANSFORM too."""
    for sql in (
        PREDICT.format(settings=", STRUCT('compiled' AS scoring)"),
        "SELECT * FROM ML.TRANSFORM(MODEL shop.hashed, TABLE shop.customers)",
    ):
        with pytest.raises(errors.Error) as caught:
            hashed.execute(sql)
        assert caught.value.sqlstate == "0A000"


@pytest.mark.parametrize("con", ["duckdb-gateway", "postgres-gateway"], indirect=True)
def test_through_the_gateway(con: Any) -> None:
    con.execute(MODEL)
    np.testing.assert_allclose(_predictions(con), _expected(), rtol=1e-6)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "sqlstate"),
    [
        ("ML.HASH_BUCKETIZE(plan, -1)", "22023"),
        ("ML.HASH_BUCKETIZE(plan, 2.5)", "22023"),
        ("ML.HASH_BUCKETIZE(plan, '3')", "22023"),
        ("ML.HASH_BUCKETIZE(plan, NULL)", "22023"),
        ("ML.HASH_BUCKETIZE(plan, tenure)", "22023"),
        ("ML.HASH_BUCKETIZE(plan)", "22023"),
        ("ML.HASH_BUCKETIZE(plan, 3, 4)", "22023"),
        ("ML.HASH_BUCKETIZE('basic', 3)", "22023"),
        ("ML.HASH_BUCKETIZE(tenure, 3)", "42804"),
        ("ML.HASH_BUCKETIZE(tenure * 2, 3)", "42804"),
        ("ML.HASH_BUCKETIZE(plan, 3) OVER ()", "42601"),
    ],
)
def test_bad_arguments_are_refused(shop_module: sqlml.Connection, item: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as caught:
        shop_module.execute(
            f"CREATE MODEL shop.bad TRANSFORM ({item} AS h, tenure, value)"
            " OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
            " AS SELECT tenure, plan, value FROM shop.customers"
        )
    assert caught.value.sqlstate == sqlstate
    with pytest.raises(errors.Error) as missing:  # nothing was stored
        shop_module.execute("SELECT * FROM ML.PREDICT(MODEL shop.bad, TABLE shop.customers)")
    assert missing.value.sqlstate == "42704"
