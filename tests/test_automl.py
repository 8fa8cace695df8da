"""AutoML (model_type = 'automl_classifier' | 'automl_regressor'; sqlml/ml/automl.py).

On two datasets where the best model is known to need tuning (30 features of which 3 matter and
60 training rows: the default linear model overfits, the trees and the DNN do worse), AutoML
within its budget beats every default model of its candidates on the test rows, which neither
training read: each default model is trained here with a plain CREATE MODEL on the same
training rows (BigQuery's manual split: TRAIN / VALIDATE / TEST). The budget is checked
against the trials' own recorded times; the leaderboard is ML.TRIAL_INFO. PostgreSQL runs a
short search end to end (stored, scored, listed through the extension).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from conftest import Noticing, module_database

from sqlml import errors

N = 600
COLUMNS = ", ".join(f"f{k}" for k in range(1, 31))
BUDGET = 12.0  # seconds


def _uniform(k: int) -> str:
    x = f"(sin(i * {k}.731 + {k * k}.17) * 43758.5453)"
    return f"({x} - floor({x}) - 0.5)"


SIGNAL = f"3 * {_uniform(1)} - 2 * {_uniform(2)} + {_uniform(3)}"
TABLE = (
    "CREATE TABLE am.t AS SELECT i, "
    + ", ".join(f"CAST({_uniform(k)} AS DOUBLE PRECISION) AS f{k}" for k in range(1, 31))
    + f", CAST({SIGNAL} + 1.5 * {_uniform(97)} AS DOUBLE PRECISION) AS y,"
    f" {SIGNAL} + 0.5 * {_uniform(55)} > 0 AS label,"
    " CASE WHEN i % 10 = 0 THEN 'TRAIN' WHEN i % 2 = 0 THEN 'VALIDATE' ELSE 'TEST' END AS split"
    f" FROM generate_series(1, {N}) AS g(i)"
)
CANDIDATES = {
    "regressor": (
        "linear_reg",
        "boosted_tree_regressor",
        "random_forest_regressor",
        "dnn_regressor",
    ),
    "classifier": (
        "logistic_reg",
        "boosted_tree_classifier",
        "random_forest_classifier",
        "dnn_classifier",
    ),
}
LABEL = {"regressor": "y", "classifier": "label"}
METRIC = {"regressor": "r2_score", "classifier": "roc_auc"}


@pytest.fixture(scope="module")
def am(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Noticing]:
    with module_database("duckdb", request, tmp_path_factory, "automl") as database:
        found = Noticing(database, "duckdb")
        found.run("CREATE SCHEMA am")
        found.run(TABLE)
        yield found
        found.con.close()


def _test_metric(am: Noticing, model: str, kind: str) -> float:
    rows = am.run(
        f"SELECT {METRIC[kind]} FROM ML.EVALUATE(MODEL {model},"
        " (SELECT * FROM am.t WHERE split = 'TEST'))"
    )
    return float(rows[0][0])


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_automl_beats_every_default_model_within_its_budget(am: Noticing, kind: str) -> None:
    label = LABEL[kind]
    defaults = {}
    for model_type in CANDIDATES[kind]:
        am.run(
            f"CREATE OR REPLACE MODEL am.{model_type} OPTIONS (model_type = '{model_type}',"
            f" input_label_cols = ['{label}'], data_split_method = 'CUSTOM',"
            f" data_split_col = 'is_eval') AS SELECT {COLUMNS}, {label},"
            " split = 'VALIDATE' AS is_eval FROM am.t WHERE split <> 'TEST'"
        )
        defaults[model_type] = _test_metric(am, f"am.{model_type}", kind)
    started = time.monotonic()
    am.run(
        f"CREATE OR REPLACE MODEL am.auto_{kind} OPTIONS (model_type = 'automl_{kind}',"
        f" input_label_cols = ['{label}'], budget_hours = {BUDGET / 3600!r},"
        f" data_split_col = 'split') AS SELECT {COLUMNS}, {label}, split FROM am.t"
    )
    elapsed = time.monotonic() - started
    found = _test_metric(am, f"am.auto_{kind}", kind)
    assert all(found > value for value in defaults.values()), (found, defaults)
    # the budget: the trials' span (their recorded times) is within it but for the trial
    # the budget stopped, which stops at its next checkpoint
    times = am.run(
        "SELECT started_at, ended_at FROM sqlml.version_trials"
        f" WHERE model_name = 'auto_{kind}' ORDER BY trial_id"
    )
    durations = [(end - start).total_seconds() for start, end in times]
    span = (times[-1][1] - times[0][0]).total_seconds()
    assert span <= BUDGET + max(durations), (span, durations)
    assert elapsed >= span
    # the leaderboard: each default model first, then the search; one optimal trial
    cursor = am.con.execute(f"SELECT * FROM ML.TRIAL_INFO(MODEL am.auto_{kind})")
    trials = cursor.fetchall()
    hyper = [json.loads(t[1]) for t in trials]
    assert [h["model_type"] for h in hyper[:4]] == list(CANDIDATES[kind])
    assert sum(bool(t[7]) for t in trials) == 1
    (version,) = am.run(f"SELECT model_type, options FROM ML.VERSIONS(MODEL am.auto_{kind})")
    optimal = hyper[[bool(t[7]) for t in trials].index(True)]
    assert version[0] == optimal["model_type"]
    assert json.loads(version[1])["model_type"] == f"automl_{kind}"


@pytest.mark.parametrize(
    "options",
    [
        "budget_hours = 0",
        "budget_hours = 100",
        "optimization_objective = 'MAXIMIZE_R2'",
        "optimization_objective = 'MINIMIZE_RMSE'",  # (a regressor's, for a classifier)
        "num_trials = 3",  # (not an AutoML option)
    ],
)
def test_bad_automl_options_are_22023(am: Noticing, options: str) -> None:
    with pytest.raises(errors.Error) as raised:
        am.run(
            "CREATE MODEL am.bad OPTIONS (model_type = 'automl_classifier',"
            f" input_label_cols = ['label'], {options}) AS SELECT f1, label FROM am.t"
        )
    assert raised.value.sqlstate == "22023", raised.value


def test_pending_objectives_are_0a000(am: Noticing) -> None:
    with pytest.raises(errors.Error) as raised:
        am.run(
            "CREATE MODEL am.bad OPTIONS (model_type = 'automl_classifier',"
            " input_label_cols = ['label'], optimization_objective = 'MAXIMIZE_AU_PRC')"
            " AS SELECT f1, label FROM am.t"
        )
    assert raised.value.sqlstate == "0A000", raised.value


def test_automl_on_postgres(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A short search in the PostgreSQL extension: stored, scored by the trial it chose and by
    another, and listed."""
    with module_database("postgres", request, tmp_path_factory, "automl") as database:
        pg = Noticing(database, "postgres")
        pg.run("CREATE SCHEMA am")
        pg.run(TABLE)
        pg.run(
            "CREATE MODEL am.auto OPTIONS (model_type = 'automl_classifier',"
            " input_label_cols = ['label'], max_training_seconds = 4,"
            f" data_split_col = 'split') AS SELECT {COLUMNS}, label, split FROM am.t"
        )
        trials = pg.run("SELECT trial_id, status, is_optimal FROM ML.TRIAL_INFO(MODEL am.auto)")
        assert len(trials) >= 2
        assert sum(bool(t[2]) for t in trials) == 1
        for trial in (None, 2):
            struct = "" if trial is None else f", STRUCT({trial} AS trial_id)"
            rows = pg.run(
                f"SELECT count(*) FROM ML.PREDICT(MODEL am.auto, (SELECT {COLUMNS} FROM am.t){struct})"
            )
            assert rows == [(N,)]
        pg.con.close()
