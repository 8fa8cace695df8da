"""ML.FEATURE_INFO's statistics recorded at training (issue 13 point 4): min, max, mean, median,
stddev and null_count of each feature, on both engines, against numpy on the same rows (all the
input rows, as BigQuery computes them). Before they were recorded min, max, median and
null_count were NULL, and stddev was NULL for a model that does not standardize."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import shop_tables

import sqlml


def _info(shop: sqlml.Connection, model: str) -> dict[str, dict[str, Any]]:
    cursor = shop.execute(f"SELECT * FROM ML.FEATURE_INFO(MODEL {model})")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _numeric(name: str) -> dict[str, Any]:
    """numpy's statistics of a shop.customers column (NULL -> NaN)."""
    column = shop_tables()["customers"].column(name).to_pylist()
    x = np.array([np.nan if v is None else float(v) for v in column])
    finite = x[~np.isnan(x)]
    imputed = np.where(np.isnan(x), finite.mean(), x)  # NULLs counted at the mean
    return {
        "min": finite.min(),
        "max": finite.max(),
        "mean": finite.mean(),
        "median": np.median(finite),
        "stddev": imputed.std(),
        "null_count": int(np.isnan(x).sum()),
    }


def _check(found: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if isinstance(value, int):
            assert found[key] == value, key
        else:
            assert math.isclose(float(found[key]), float(value), rel_tol=1e-9), key


@pytest.mark.parametrize(
    "options",
    [
        "model_type = 'linear_reg', input_label_cols = ['value']",  # standardizes
        "model_type = 'pca', num_principal_components = 2, scale_features = FALSE",
    ],
)
def test_feature_info_statistics_equal_numpys(shop: sqlml.Connection, options: str) -> None:
    label = ", value" if "input_label_cols" in options else ""
    shop.execute(
        f"CREATE MODEL shop.m OPTIONS ({options})"
        f" AS SELECT tenure, spend, plan{label} FROM shop.customers"
    )
    info = _info(shop, "shop.m")
    assert list(info) == ["tenure", "spend", "plan"]
    for name in ("tenure", "spend"):
        _check(info[name], _numeric(name))
        assert info[name]["category_count"] is None
    plan = shop_tables()["customers"].column("plan").to_pylist()
    assert info["plan"]["null_count"] == plan.count(None)
    assert info["plan"]["category_count"] == len({p for p in plan if p is not None})
    for key in ("min", "max", "mean", "median", "stddev"):
        assert info["plan"][key] is None  # NULL for non-numeric inputs, as BigQuery's


def test_feature_info_of_transform_outputs(shop: sqlml.Connection) -> None:
    """A TRANSFORM output's statistics are the transformed column's."""
    shop.execute(
        "CREATE MODEL shop.t TRANSFORM (tenure * 2 AS doubled, value)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['value'])"
        " AS SELECT tenure, value FROM shop.customers"
    )
    info = _info(shop, "shop.t")
    expected = _numeric("tenure")
    expected.update({k: 2 * v for k, v in expected.items() if k != "null_count"})
    _check(info["doubled"], expected)
