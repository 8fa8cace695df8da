"""Shared fixtures: a sqlml connection per test over embedded DuckDB, with a small shop data set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import sqlml


def shop_tables(n: int = 800, seed: int = 0) -> dict[str, pa.Table]:
    """customers (with labels) and new_customers (without): numbers, strings, booleans, NULLs."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, size=n).astype(np.float64)
    spend = rng.normal(60, 20, size=n)
    plan = rng.choice(["basic", "plus", "premium"], size=n).astype(object)
    promo = rng.random(n) < 0.3
    spend[::19] = np.nan
    plan[::29] = None
    logit = 1.0 - 0.06 * tenure + 0.02 * np.nan_to_num(spend, nan=60) + (plan == "basic") * 1.0
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    segment = np.where(logit > 1, "high", np.where(logit > -0.5, "mid", "low"))
    value = 5 * tenure + 2 * np.nan_to_num(spend, nan=60) + rng.normal(0, 5, size=n)
    ids = np.arange(n)
    customers = pa.table(
        {
            "id": ids,
            "tenure": tenure.astype(np.int64),
            "spend": pa.array(spend, from_pandas=True),
            "plan": pa.array(plan.tolist(), type=pa.string()),
            "promo": promo,
            "churned": churned,
            "segment": segment,
            "value": value,
        }
    )
    new = customers.select(["id", "tenure", "spend", "plan", "promo"]).slice(0, 200)
    return {"customers": customers, "new_customers": new}


# The engines the conformance tests run on. PostgreSQL joins with issue 3: every test that takes
# ``con`` then runs on both, through one fixture.
ENGINES = ["duckdb"]


@pytest.fixture(params=ENGINES)
def con(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlml.Connection]:
    assert request.param == "duckdb"
    connection = sqlml.connect(str(tmp_path / "test.duckdb"), autocommit=True)
    raw = connection.session.engine
    raw.execute("CREATE SCHEMA shop")
    for name, table in shop_tables().items():
        raw.register_table(f"_load_{name}", table)
        raw.execute(f'CREATE TABLE shop."{name}" AS SELECT * FROM "_load_{name}"')
        raw.unregister_table(f"_load_{name}")
    yield connection
    connection.close()
