"""Training budgets (issue 15, point 5; docs/sql.md, "Training budgets"): max_training_rows trains
on a sample of that many rows, the same rows on every run, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from conftest import ENGINES, Noticing, module_database

from sqlml import errors

ROWS = 5_000
TABLE = (
    "CREATE TABLE budget.t AS SELECT i AS id, CAST(i % 17 AS DOUBLE PRECISION) AS x,"
    " CAST(2 * (i % 17) + sin(i) AS DOUBLE PRECISION) AS y"
    f" FROM generate_series(1, {ROWS}) AS g(i)"
)
LINEAR = "model_type = 'linear_reg', input_label_cols = ['y']"


class Budget(Noticing):
    def __init__(self, database: str, engine: str) -> None:
        super().__init__(database, engine)
        self.names = iter(range(1, 1000))

    def model(self, options: str, query: str = "SELECT x, y FROM budget.t") -> str:
        name = f"budget.m{next(self.names)}"
        self.run(f"CREATE MODEL {name} OPTIONS ({options}) AS {query}")
        return name

    def version(self, model: str) -> tuple[int, str]:
        ((rows, fingerprint),) = self.run(
            f"SELECT training_rows, data_fingerprint FROM ML.VERSIONS(MODEL {model})"
        )
        return int(rows), str(fingerprint)

    def weights(self, model: str) -> dict[str, float]:
        rows = self.run(f"SELECT processed_input, weight FROM ML.WEIGHTS(MODEL {model})")
        return {str(k): float(w) for k, w in rows}


@pytest.fixture(scope="module", params=ENGINES)
def budget(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Budget]:
    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, "budget") as database:
        found = Budget(database, engine)
        found.run("CREATE SCHEMA budget")
        found.run(TABLE)
        yield found
        found.con.close()


def test_max_training_rows_trains_on_the_same_sample_every_run(budget: Budget) -> None:
    budget.messages.clear()
    capped = f"{LINEAR}, max_training_rows = 1000"
    first, second = budget.model(capped), budget.model(capped)
    assert any(
        f"has {ROWS} rows: training on 1000 of them (max_training_rows)" in m
        for m in budget.messages
    )
    assert budget.version(first)[0] == 1000
    assert budget.version(first) == budget.version(second)  # (the same rows: one fingerprint)
    assert budget.weights(first) == budget.weights(second)
    # the sample docs/sql.md names: the rows whose text hashes lowest (md5)
    text = "VARCHAR" if budget.engine == "duckdb" else "TEXT"
    sample = budget.model(
        LINEAR,
        f"SELECT * FROM (SELECT x, y FROM budget.t) AS r ORDER BY md5(CAST(r AS {text})) LIMIT 1000",
    )
    assert budget.version(sample) == budget.version(first)
    # a sample of the data, and the model trained on all of it, agree on what was learned
    whole = budget.model(LINEAR)
    assert budget.version(whole)[0] == ROWS
    mine, theirs = budget.weights(first), budget.weights(whole)
    assert abs(mine["x"] - theirs["x"]) < 0.05 * abs(theirs["x"])
    (info,) = budget.run(
        f"SELECT training_info FROM sqlml.versions WHERE model_name = '{first.split('.')[1]}'"
    )
    assert json.loads(info[0])["sampled_from"] == ROWS


def test_a_cap_above_the_rows_changes_nothing(budget: Budget) -> None:
    budget.messages.clear()
    capped = budget.model(f"{LINEAR}, max_training_rows = {ROWS}")
    assert not any("max_training_rows" in m for m in budget.messages)
    assert budget.version(capped) == budget.version(budget.model(LINEAR))


# a training of a minute or more: L-BFGS over a one-hot column of 1,000 values, 7 classes
# (tests/test_cancel.py's), on rows made here
SLOW_ROWS = (
    "CREATE TABLE budget.slow AS SELECT CAST(i % 7 AS TEXT) AS label,"
    " CAST(CAST(i AS BIGINT) * 7919 % 1000 AS DOUBLE PRECISION) / 1000 AS a,"
    " CAST(i % 13 AS DOUBLE PRECISION) AS d, CAST(i % 1000 AS TEXT) AS e"
    " FROM generate_series(0, 9999) AS g(i)"
)
SLOW = (
    "CREATE OR REPLACE MODEL budget.slow_model OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['label'], max_iterations = {iterations}, early_stop = FALSE{budget})"
    " AS SELECT * FROM budget.slow"
)


def test_max_training_seconds_stops_the_training_and_the_model_stays(budget: Budget) -> None:
    budget.run(SLOW_ROWS)
    budget.run(SLOW.format(iterations=1, budget=""))  # (version 1; also loads scikit-learn)
    started = time.monotonic()
    with pytest.raises(errors.Error) as caught:
        budget.run(SLOW.format(iterations=300, budget=", max_training_seconds = 1"))
    took = time.monotonic() - started
    assert caught.value.sqlstate == "57014"
    assert "max_training_seconds (1) was reached" in str(caught.value)
    assert took < 15, took  # (unbudgeted, it runs over a minute)
    assert budget.run("SELECT version FROM ML.VERSIONS(MODEL budget.slow_model)") == [(1,)]
    budget.run(SLOW.format(iterations=1, budget=", max_training_seconds = 600"))
    assert len(budget.run("SELECT version FROM ML.VERSIONS(MODEL budget.slow_model)")) == 2


@pytest.mark.parametrize(
    ("options", "sqlstate"),
    [
        ("max_training_seconds = 0", "22023"),
        ("max_training_seconds = 'soon'", "22023"),
        ("max_training_rows = 0", "22023"),
        ("max_training_rows = -5", "22023"),
        ("max_training_rows = 'many'", "22023"),
        ("max_training_rows = 100, incremental = TRUE", "0A000"),
    ],
)
def test_bad_budgets(budget: Budget, options: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as caught:
        budget.model(f"{LINEAR}, {options}")
    assert caught.value.sqlstate == sqlstate
