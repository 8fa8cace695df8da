"""Shared fixtures: a sqlml connection per test, over embedded DuckDB and over PostgreSQL (one
conformance suite for both engines), with a small shop data set."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

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


def unavailable(reason: str) -> NoReturn:
    """A missing PostgreSQL or client: a skip on a workstation, a failure in CI (CI set), so
    that nothing the CI machine should have can be skipped silently."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def load_shop(connection: sqlml.Connection) -> None:
    """The shop tables into a DuckDB connection's database, from Arrow."""
    raw = connection.session.engine
    raw.execute("CREATE SCHEMA shop")
    for name, table in shop_tables().items():
        raw.register_table(f"_load_{name}", table)
        raw.execute(f'CREATE TABLE shop."{name}" AS SELECT * FROM "_load_{name}"')
        raw.unregister_table(f"_load_{name}")


# The engines the conformance tests run on: every test that takes ``con`` runs on both.
ENGINES = ["duckdb", "postgres"]
TEMPLATE = "sqlml_template"
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server with a template database: sqlml installed, the shop tables loaded.
    Without PostgreSQL the postgres tests are skipped, except in CI (CI=true), where they fail."""
    import pgcluster

    try:
        context = pgcluster.server()
        server = context.__enter__()
    except pgcluster.Unavailable as e:
        unavailable(str(e))
    try:
        dsn = pgcluster.create_database(server, TEMPLATE)
        pgcluster.install(dsn)
        for name, table in shop_tables().items():
            pgcluster.load_table(dsn, "shop", name, table)
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A fresh database per test, copied from the template (sqlml and the shop tables in it)."""
    import pgcluster

    name = f"sqlml_test_{os.getpid()}_{next(_databases)}"
    dsn = pgcluster.create_database(pg_server, name, template=TEMPLATE)
    yield dsn
    pgcluster.drop_database(pg_server, name)


@pytest.fixture(params=ENGINES)
def con(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlml.Connection]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_database")
        connection = sqlml.connect(dsn, autocommit=True)
        yield connection
        connection.close()
        return
    connection = sqlml.connect(str(tmp_path / "test.duckdb"), autocommit=True)
    load_shop(connection)
    yield connection
    connection.close()


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for sqlml.connect() on each engine: a DuckDB file, or a PostgreSQL
    database with sqlml installed."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return str(tmp_path / "test.duckdb")
