"""WARM_START (issue 15, point 2; docs/sql.md, "WARM_START"; sqlml/ml/warm_start.py): CREATE OR
REPLACE MODEL m OPTIONS (warm_start = TRUE, ...) trains again from the serving version's weights
or centroids, with its options unless given again, on DuckDB and PostgreSQL.

What shows the start was used: one iteration from the warm start lands next to the converged
model, one iteration from a cold start does not; the references are the models themselves
trained without warm start, and numbers from the rows (no code under test computes them)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ENGINES, module_database

import sqlml
from sqlml import errors

ROWS = (
    "CREATE TABLE warm.t AS SELECT i AS id, CAST(i % 37 AS DOUBLE PRECISION) AS x,"
    " CAST(sin(i) AS DOUBLE PRECISION) AS z,"
    " CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b' ELSE NULL END AS plan,"
    " CASE WHEN 0.3 * (i % 37) - 5 + 3 * sin(i) + 2 * cos(i * 7) > 0 THEN 'yes' ELSE 'no' END"
    " AS label, CAST(2 * (i % 37) + 3 * sin(i) + cos(i * 7) AS DOUBLE PRECISION) AS y"
    " FROM generate_series(0, 2999) AS g(i)"
)
LOGISTIC = "model_type = 'logistic_reg', input_label_cols = ['label']"
FEATURES = "SELECT x, z, plan, label FROM warm.t"


class Warm:
    def __init__(self, database: str) -> None:
        self.con = sqlml.connect(database, autocommit=True)
        self.names = iter(range(1, 1000))

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.con.execute(sql)
        return cursor.fetchall() if cursor.description is not None else []

    def name(self) -> str:
        return f"warm.m{next(self.names)}"

    def probabilities(self, model: str) -> dict[int, float]:
        rows = self.run(
            f"SELECT id, predicted_label_probs FROM ML.PREDICT(MODEL {model}, TABLE warm.t)"
        )
        return {int(k): next(p["prob"] for p in probs if p["label"] == "yes") for k, probs in rows}

    def sqlstate(self, sql: str) -> str:
        with pytest.raises(errors.Error) as caught:
            self.run(sql)
        return caught.value.sqlstate


@pytest.fixture(scope="module", params=ENGINES)
def warm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warm]:
    with module_database(str(request.param), request, tmp_path_factory, "warm") as database:
        found = Warm(database)
        found.run("CREATE SCHEMA warm")
        found.run(ROWS)
        yield found
        found.con.close()


def distance(a: dict[int, float], b: dict[int, float]) -> float:
    return max(abs(a[k] - b[k]) for k in a)


def test_logistic_reg_starts_from_the_serving_weights(warm: Warm) -> None:
    model, cold = warm.name(), warm.name()
    warm.run(
        f"CREATE MODEL {model} OPTIONS ({LOGISTIC}, l2_reg = 0.5, max_iterations = 200,"
        f" early_stop = FALSE) AS {FEATURES}"
    )
    converged = warm.probabilities(f"{model} VERSION 1")
    warm.run(
        f"CREATE OR REPLACE MODEL {model} OPTIONS (warm_start = TRUE, max_iterations = 1)"
        f" AS {FEATURES}"
    )
    warm.run(
        f"CREATE MODEL {cold} OPTIONS ({LOGISTIC}, l2_reg = 0.5, max_iterations = 1) AS {FEATURES}"
    )
    near, far = (
        distance(warm.probabilities(model), converged),
        distance(warm.probabilities(cold), converged),
    )
    assert far > 0.05  # (one iteration from zero weights is far from the minimum)
    assert near < 1e-3 < far
    ((run, iteration),) = warm.run(
        f"SELECT training_run, iteration FROM ML.TRAINING_INFO(MODEL {model})"
    )
    assert (run, iteration) == (1, 0)  # (a new run; its iterations count from 0 again)
    ((options,),) = warm.run(f"SELECT options FROM ML.VERSIONS(MODEL {model}) WHERE version = 2")
    kept = json.loads(options)
    assert (kept["l2_reg"], kept["early_stop"], kept["max_iterations"]) == (0.5, False, 1)


def test_kmeans_starts_from_the_serving_centroids(warm: Warm) -> None:
    model, cold = warm.name(), warm.name()
    query = "SELECT x, z, plan FROM warm.t"
    warm.run(
        f"CREATE MODEL {model} OPTIONS (model_type = 'kmeans', num_clusters = 4,"
        f" max_iterations = 100, min_rel_progress = 0.0) AS {query}"
    )
    warm.run(
        f"CREATE OR REPLACE MODEL {model} OPTIONS (warm_start = TRUE, max_iterations = 1)"
        f" AS {query}"
    )
    warm.run(
        f"CREATE MODEL {cold} OPTIONS (model_type = 'kmeans', num_clusters = 4,"
        f" max_iterations = 1) AS {query}"
    )

    def centroids(ref: str) -> dict[tuple[int, str], float]:
        rows = warm.run(
            f"SELECT centroid_id, feature, numerical_value FROM ML.CENTROIDS(MODEL {ref})"
        )
        return {(int(c), str(f)): float(v) for c, f, v in rows if v is not None}

    before, after, other = centroids(f"{model} VERSION 1"), centroids(model), centroids(cold)
    assert before.keys() == after.keys()
    assert max(abs(before[k] - after[k]) for k in before) < 1e-6  # (converged: it stays)
    assert max(abs(before[k] - other.get(k, math.inf)) for k in before) > 0.1


def test_linear_reg_is_a_new_training_run_of_the_same_model(warm: Warm) -> None:
    model, cold = warm.name(), warm.name()
    linear = "model_type = 'linear_reg', input_label_cols = ['y']"
    query = "SELECT x, z, plan, y FROM warm.t"
    warm.run(f"CREATE MODEL {model} OPTIONS ({linear}, l2_reg = 3.0) AS {query} WHERE id < 2000")
    warm.run(f"CREATE OR REPLACE MODEL {model} OPTIONS (warm_start = TRUE) AS {query}")
    warm.run(f"CREATE MODEL {cold} OPTIONS ({linear}, l2_reg = 3.0) AS {query}")
    rows = "SELECT id, predicted_y FROM ML.PREDICT(MODEL {}, TABLE warm.t)"
    mine = dict(warm.run(rows.format(model)))
    theirs = dict(warm.run(rows.format(cold)))
    assert max(abs(mine[k] - theirs[k]) for k in mine) < 1e-9  # (the normal equations: no start)
    assert warm.run(f"SELECT training_run FROM ML.TRAINING_INFO(MODEL {model})") == [(1,)]


def test_what_warm_start_refuses(warm: Warm) -> None:
    model = warm.name()
    warm.run(f"CREATE MODEL {model} OPTIONS ({LOGISTIC}) AS {FEATURES}")
    again = f"CREATE OR REPLACE MODEL {model} OPTIONS (warm_start = TRUE{{}}) AS {{}}"
    assert warm.sqlstate(again.format("", "SELECT x, plan, label FROM warm.t")) == "42804"
    assert warm.sqlstate(again.format(", input_label_cols = ['plan']", FEATURES)) == "42804"
    assert warm.sqlstate(again.format(", model_type = 'kmeans'", FEATURES)) == "42804"
    assert warm.sqlstate(again.format(", incremental = TRUE", FEATURES)) == "0A000"
    missing = "CREATE OR REPLACE MODEL warm.nothing OPTIONS ({}, warm_start = TRUE) AS {}"
    assert warm.sqlstate(missing.format(LOGISTIC, FEATURES)) == "42704"
    trees = "model_type = 'boosted_tree_classifier', input_label_cols = ['label']"
    assert warm.sqlstate(missing.format(trees, FEATURES)) == "0A000"
    assert warm.run(f"SELECT count(*) FROM ML.VERSIONS(MODEL {model})") == [(1,)]
