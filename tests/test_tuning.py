"""Hyperparameter tuning (NUM_TRIALS, HPARAM_RANGE / HPARAM_CANDIDATES, ML.TRIAL_INFO,
STRUCT(n AS trial_id); sqlml/ml/tuning.py) on DuckDB and PostgreSQL, and through the gateway.

The rows are split by a STRING column (DATA_SPLIT_METHOD = 'CUSTOM': 'TRAIN', 'EVAL', 'TEST'),
so the test knows which rows each trial trained, was tuned and was tested on, and checks:

- tuning beats the defaults where that is known: 30 features of which 3 matter and 60 training
  rows, where OLS (l2_reg 0, the default) overfits and ridge does not, scored on rows no
  training saw;
- each trial is what ML.TRIAL_INFO says was tried: its objective is scikit-learn's r2_score of
  its own predictions (STRUCT(k AS trial_id)) on the evaluation rows, its ML.EVALUATE is
  scikit-learn's on the test rows, and its predictions are those of a plain CREATE MODEL with
  its hyperparameters on the training rows;
- GRID_SEARCH tries exactly the product of the candidates, RANDOM_SEARCH num_trials distinct
  points of the range, starting from the default's nearest point;
- a trial that fails is recorded (FAILED, its error) and the model is stored; the budget
  (max_training_seconds) stops the tuning and keeps the best trial;
- bad input is 22023, and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, Noticing, module_database, psycopg_gateway
from sklearn.metrics import r2_score

from sqlml import errors

N = 600
FEATURES = [f"f{k}" for k in range(1, 31)]


def _uniform(i: str, k: int) -> str:
    """A deterministic pseudo-random number in [-0.5, 0.5) of row ``i`` (the same on DuckDB
    and PostgreSQL: both take sin from the C library)."""
    x = f"(sin({i} * {k}.731 + {k * k}.17) * 43758.5453)"
    return f"({x} - floor({x}) - 0.5)"


TABLE = (
    "CREATE TABLE tu.t AS SELECT i, "
    + ", ".join(f"CAST({_uniform('i', k)} AS DOUBLE PRECISION) AS f{k}" for k in range(1, 31))
    + f", CAST(3 * {_uniform('i', 1)} - 2 * {_uniform('i', 2)} + {_uniform('i', 3)}"
    + f" + 4 * {_uniform('i', 97)} AS DOUBLE PRECISION) AS y,"
    " CASE WHEN i % 10 = 0 THEN 'TRAIN' WHEN i % 2 = 0 THEN 'EVAL' ELSE 'TEST' END AS s"
    f" FROM generate_series(1, {N}) AS g(i)"
)
COLUMNS = ", ".join(FEATURES)
TUNED = (
    "CREATE MODEL tu.tuned OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
    " num_trials = 8, l2_reg = HPARAM_RANGE(0, 100), data_split_method = 'CUSTOM',"
    f" data_split_col = 's') AS SELECT {COLUMNS}, y, s FROM tu.t"
)
# a plain training on the training rows, its preprocessing's statistics from the training and
# evaluation rows, as a trial's are (BigQuery's: "the original input data")
PLAIN = (
    "CREATE MODEL {name} OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
    " data_split_method = 'CUSTOM', data_split_col = 'is_eval'{extra}) AS SELECT "
    + COLUMNS
    + ", y, s = 'EVAL' AS is_eval FROM tu.t WHERE s <> 'TEST'"
)


class Tu(Noticing):
    def trials(self, model: str) -> list[dict[str, Any]]:
        cursor = self.con.execute(f"SELECT * FROM ML.TRIAL_INFO(MODEL {model})")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for row in rows:
            for column in ("hyperparameters", "hparam_tuning_evaluation_metrics"):
                row[column] = None if row[column] is None else json.loads(row[column])
        return rows

    def predictions(self, model: str, split: str, trial: int | None = None) -> np.ndarray:
        struct = "" if trial is None else f", STRUCT({trial} AS trial_id)"
        rows = self.run(
            f"SELECT predicted_y FROM ML.PREDICT(MODEL {model}, (SELECT i, {COLUMNS} FROM tu.t"
            f" WHERE s = '{split}'){struct}) ORDER BY i"
        )
        return np.array([r[0] for r in rows], dtype=float)

    def labels(self, split: str) -> np.ndarray:
        rows = self.run(f"SELECT y FROM tu.t WHERE s = '{split}' ORDER BY i")
        return np.array([r[0] for r in rows], dtype=float)


@pytest.fixture(scope="module", params=ENGINES)
def tu(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tu]:
    with module_database(str(request.param), request, tmp_path_factory, "tuning") as database:
        found = Tu(database, str(request.param))
        found.run("CREATE SCHEMA tu")
        found.run(TABLE)
        found.run(TUNED)
        found.run(PLAIN.format(name="tu.plain", extra=""))
        yield found
        found.con.close()


def test_tuning_beats_the_default_where_the_default_overfits(tu: Tu) -> None:
    """60 training rows, 30 features, 3 that matter: OLS (the default l2_reg = 0) overfits;
    the tuned ridge scores better on the test rows, which neither training read."""
    y = tu.labels("TEST")
    plain = r2_score(y, tu.predictions("tu.plain", "TEST"))
    tuned = r2_score(y, tu.predictions("tu.tuned", "TEST"))
    assert tuned > plain + 0.05, (plain, tuned)
    trials = tu.trials("tu.tuned")
    assert len(trials) == 8
    assert [t["trial_id"] for t in trials] == list(range(1, 9))
    assert all(t["status"] == "SUCCEEDED" for t in trials)
    # the first trial is the search's starting point: the default, 0
    assert trials[0]["hyperparameters"]["l2_reg"] == 0
    assert all(0 <= t["hyperparameters"]["l2_reg"] <= 100 for t in trials)


def test_trial_info_is_what_was_tried(tu: Tu) -> None:
    """Each trial's objective is scikit-learn's r2_score of that trial's predictions on the
    evaluation rows; the optimal one is the best of them; ML.EVALUATE of a trial is its test
    rows' metrics; a trial's predictions are a plain training's with its hyperparameters."""
    trials = tu.trials("tu.tuned")
    y_eval, y_test = tu.labels("EVAL"), tu.labels("TEST")
    objectives = []
    for trial in trials:
        k = trial["trial_id"]
        objective = trial["hparam_tuning_evaluation_metrics"]["r2_score"]
        assert objective == pytest.approx(r2_score(y_eval, tu.predictions("tu.tuned", "EVAL", k)))
        objectives.append(objective)
    optimal = [t["trial_id"] for t in trials if t["is_optimal"]]
    assert optimal == [int(np.argmax(objectives)) + 1]
    for k in sorted({1, optimal[0], len(trials)}):
        test_r2 = tu.run(
            f"SELECT r2_score FROM ML.EVALUATE(MODEL tu.tuned, STRUCT({k} AS trial_id))"
        )
        assert test_r2[0][0] == pytest.approx(
            r2_score(y_test, tu.predictions("tu.tuned", "TEST", k))
        )
        l2 = trials[k - 1]["hyperparameters"]["l2_reg"]
        tu.run(PLAIN.format(name=f"tu.again_{k}", extra=f", l2_reg = {l2!r}"))
        assert tu.predictions(f"tu.again_{k}", "TEST") == pytest.approx(
            tu.predictions("tu.tuned", "TEST", k), rel=1e-9, abs=1e-9
        )
    # the version itself is the optimal trial
    assert tu.predictions("tu.tuned", "TEST") == pytest.approx(
        tu.predictions("tu.tuned", "TEST", optimal[0])
    )
    # ML.EVALUATE without rows: every trial, trial_id first, each on the test rows
    cursor = tu.con.execute("SELECT * FROM ML.EVALUATE(MODEL tu.tuned) ORDER BY trial_id")
    assert [d[0] for d in cursor.description][:2] == ["trial_id", "mean_absolute_error"]
    every = {r[0]: r for r in cursor.fetchall()}
    assert sorted(every) == [t["trial_id"] for t in trials]
    r2 = [d[0] for d in cursor.description].index("r2_score")
    for k in (1, optimal[0]):
        expected = r2_score(y_test, tu.predictions("tu.tuned", "TEST", k))
        assert every[k][r2] == pytest.approx(expected)
        # and with the rows given (on PostgreSQL: computed in the server)
        given = tu.run(
            f"SELECT r2_score FROM ML.EVALUATE(MODEL tu.tuned, (SELECT {COLUMNS}, y FROM tu.t"
            f" WHERE s = 'TEST'), STRUCT({k} AS trial_id))"
        )
        assert given[0][0] == pytest.approx(expected)


def test_every_function_of_a_version_takes_a_trial(tu: Tu) -> None:
    """Trial 1 is l2_reg 0 (the default, where the search starts): its weights are tu.plain's,
    trained so on the same rows; the other trials' differ. ML.EXPLAIN_PREDICT explains it."""
    weights = "SELECT processed_input, weight FROM ML.WEIGHTS(MODEL {}) ORDER BY 1"
    plain = tu.run(weights.format("tu.plain"))
    first = tu.run(weights.format("tu.tuned, STRUCT(1 AS trial_id)"))
    assert [r[0] for r in first] == [r[0] for r in plain]
    assert [r[1] for r in first] == pytest.approx([r[1] for r in plain], rel=1e-9, abs=1e-12)
    last = tu.run(weights.format("tu.tuned, STRUCT(8 AS trial_id)"))
    assert [r[1] for r in last] != pytest.approx([r[1] for r in plain], rel=1e-6)
    rows = tu.explained(
        f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL tu.tuned, (SELECT i, {COLUMNS} FROM tu.t"
        " WHERE s = 'TEST'), STRUCT(1 AS trial_id, 2 AS top_k_features))"
    )
    predicted = tu.predictions("tu.plain", "TEST")
    assert [r["prediction_value"] for r in sorted(rows, key=lambda r: r["i"])] == pytest.approx(
        list(predicted)
    )


def test_grid_search_tries_the_product_of_the_candidates(tu: Tu) -> None:
    tu.run(
        "CREATE MODEL tu.grid OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        " num_trials = 20, hparam_tuning_algorithm = 'GRID_SEARCH',"
        " l1_reg = HPARAM_CANDIDATES([0, 0.5]), l2_reg = HPARAM_CANDIDATES([0, 1, 10]),"
        " data_split_method = 'CUSTOM', data_split_col = 's') AS SELECT f1, f2, f3, y, s"
        " FROM tu.t"
    )
    trials = tu.trials("tu.grid")
    tried = sorted((t["hyperparameters"]["l1_reg"], t["hyperparameters"]["l2_reg"]) for t in trials)
    assert tried == sorted((a, b) for a in (0, 0.5) for b in (0, 1, 10))
    assert "exhausted after 6 trials" in " ".join(tu.messages)


def test_random_search_draws_num_trials_points_of_the_range(tu: Tu) -> None:
    tu.run(
        "CREATE MODEL tu.random OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        " num_trials = 5, hparam_tuning_algorithm = 'RANDOM_SEARCH',"
        " l2_reg = HPARAM_RANGE(0.1, 50), data_split_method = 'CUSTOM', data_split_col = 's')"
        " AS SELECT f1, f2, f3, y, s FROM tu.t"
    )
    values = [t["hyperparameters"]["l2_reg"] for t in tu.trials("tu.random")]
    assert len(values) == 5 == len(set(values))
    assert values[0] == pytest.approx(0.1)  # (the default 0's nearest point of the range)
    assert all(0.1 <= v <= 50 for v in values)


def test_a_failing_trial_is_recorded_and_the_model_stored(tu: Tu) -> None:
    """k-means with 70 clusters on 60 rows cannot train: that trial is FAILED with its error,
    the others stand, and the model serves the best of them (Davies-Bouldin: lower is better)."""
    tu.run(
        "CREATE MODEL tu.clusters OPTIONS (model_type = 'kmeans', num_trials = 4,"
        " hparam_tuning_algorithm = 'GRID_SEARCH', num_clusters = HPARAM_CANDIDATES([2, 3, 4, 70]))"
        " AS SELECT f1, f2 FROM tu.t WHERE s = 'TRAIN'"
    )
    trials = tu.trials("tu.clusters")
    by_k = {t["hyperparameters"]["num_clusters"]: t for t in trials}
    assert by_k[70]["status"] == "FAILED"
    assert by_k[70]["error_message"]
    succeeded = [t for t in trials if t["status"] == "SUCCEEDED"]
    assert len(succeeded) == 3
    best = min(
        succeeded, key=lambda t: t["hparam_tuning_evaluation_metrics"]["davies_bouldin_index"]
    )
    assert best["is_optimal"]
    with pytest.raises(errors.Error) as raised:
        tu.run(
            "SELECT * FROM ML.PREDICT(MODEL tu.clusters, (SELECT f1, f2 FROM tu.t),"
            f" STRUCT({by_k[70]['trial_id']} AS trial_id))"
        )
    assert raised.value.sqlstate == "22023"


def test_the_budget_stops_the_tuning_and_keeps_the_best(tu: Tu) -> None:
    tu.messages.clear()
    tu.run(
        "CREATE MODEL tu.budget OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        " num_trials = 100, hparam_tuning_algorithm = 'RANDOM_SEARCH', max_training_seconds = 1.5,"
        " l2_reg = HPARAM_RANGE(0, 100), data_split_method = 'CUSTOM', data_split_col = 's')"
        f" AS SELECT {COLUMNS}, y, s FROM tu.t"
    )
    trials = tu.trials("tu.budget")
    assert 1 <= len(trials) < 100
    # (it ran out, or the next trial would not have ended within it)
    assert any("budget (1.5 s)" in m for m in tu.messages), tu.messages
    assert sum(t["is_optimal"] for t in trials) == 1


@pytest.mark.parametrize(
    "statement",
    [
        # an option that cannot be tuned
        "max_iterations = HPARAM_RANGE(1, 10)",
        # a range outside the option's valid one
        "l2_reg = HPARAM_RANGE(-1, 5)",
        # a range on an option of words
        "optimize_strategy = HPARAM_RANGE(0, 1)",
        "num_trials = 0",
        "num_trials = 101",
        "max_parallel_trials = 6",
        "hparam_tuning_algorithm = 'ANNEALING'",
        "hparam_tuning_objectives = ['ROC_AUC']",
        "hparam_tuning_algorithm = 'GRID_SEARCH', l2_reg = HPARAM_RANGE(0, 1)",
    ],
)
def test_bad_tuning_options_are_22023(tu: Tu, statement: str) -> None:
    trials = "" if "num_trials" in statement else "num_trials = 3, "
    with pytest.raises(errors.Error) as raised:
        tu.run(
            "CREATE MODEL tu.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            f" {trials}{statement}) AS SELECT f1, y FROM tu.t"
        )
    assert raised.value.sqlstate == "22023", raised.value
    assert not tu.run("SELECT * FROM sqlml.models WHERE model_name = 'bad'")


@pytest.mark.parametrize(
    "call",
    [
        # a trial that does not exist
        "SELECT * FROM ML.PREDICT(MODEL tu.tuned, (SELECT f1 FROM tu.t), STRUCT(42 AS trial_id))",
        # a model trained without tuning
        "SELECT * FROM ML.EVALUATE(MODEL tu.plain, STRUCT(1 AS trial_id))",
        "SELECT * FROM ML.TRIAL_INFO(MODEL tu.plain)",
        "SELECT * FROM ML.EVALUATE(MODEL tu.tuned, STRUCT(0 AS trial_id))",
        # a search space without NUM_TRIALS
        "CREATE MODEL tu.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        " l2_reg = HPARAM_RANGE(0, 1)) AS SELECT f1, y FROM tu.t",
    ],
    ids=["no-such-trial", "untuned", "untuned-info", "trial-0", "space-without-trials"],
)
def test_bad_trial_calls_are_22023(tu: Tu, call: str) -> None:
    with pytest.raises(errors.Error) as raised:
        tu.run(call)
    assert raised.value.sqlstate == "22023", raised.value
    assert tu.run("SELECT 1") == [(1,)]  # the session goes on


@pytest.mark.parametrize("model_type", ["pca", "autoencoder"])
def test_model_types_that_do_not_tune_yet_are_0a000(tu: Tu, model_type: str) -> None:
    with pytest.raises(errors.Error) as raised:
        tu.run(
            f"CREATE MODEL tu.bad OPTIONS (model_type = '{model_type}', num_trials = 3)"
            " AS SELECT f1, f2 FROM tu.t"
        )
    assert raised.value.sqlstate == "0A000", raised.value


def test_retrain_if_changed_compares_the_search_as_written(tu: Tu) -> None:
    """The same search again trains nothing; another range trains a new version (the version
    keeps its best trial's options, so the statement's options as written are compared)."""
    statement = (
        "CREATE OR REPLACE MODEL tu.again OPTIONS (model_type = 'linear_reg',"
        " input_label_cols = ['y'], num_trials = 2, l2_reg = HPARAM_RANGE({}, 5),"
        " retrain = 'if_changed') AS SELECT f1, f2, y FROM tu.t"
    )
    tu.run(statement.format("0.1"))
    tu.run(statement.format("0.1"))
    assert tu.run("SELECT count(*) FROM ML.VERSIONS(MODEL tu.again)") == [(1,)]
    tu.run(statement.format("0.2"))
    assert tu.run("SELECT count(*) FROM ML.VERSIONS(MODEL tu.again)") == [(2,)]


def test_a_view_cannot_keep_a_trial(tu: Tu) -> None:
    with pytest.raises(errors.Error) as raised:
        tu.run(
            "CREATE VIEW tu.v AS SELECT * FROM ML.PREDICT(MODEL tu.tuned,"
            " (SELECT f1 FROM tu.t), STRUCT(2 AS trial_id))"
        )
    assert raised.value.sqlstate == "0A000"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_trial_info_over_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    """Through `sqlml serve` (psycopg 3): tuning, ML.TRIAL_INFO's columns, a trial's scores."""
    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    with psycopg_gateway(engine, database) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.tuned OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned'], num_trials = 3, l2_reg = HPARAM_CANDIDATES([0, 1, 5]))"
            " AS SELECT tenure, plan, churned FROM shop.customers"
        )
        cur = c.execute("SELECT * FROM ML.TRIAL_INFO(MODEL shop.tuned)")
        names = [d.name for d in cur.description or []]
        assert names == [
            "trial_id",
            "hyperparameters",
            "hparam_tuning_evaluation_metrics",
            "training_loss",
            "eval_loss",
            "status",
            "error_message",
            "is_optimal",
        ]
        rows = cur.fetchall()
        assert sorted(json.loads(r[1])["l2_reg"] for r in rows) == [0, 1, 5]
        assert sum(bool(r[7]) for r in rows) == 1
        scored = c.execute(
            "SELECT count(*) FROM ML.PREDICT(MODEL shop.tuned, (SELECT tenure, plan FROM"
            " shop.new_customers), STRUCT(2 AS trial_id))"
        ).fetchone()
        assert scored is not None
        assert scored[0] > 0


def _plan(**options: Any) -> Any:
    from sqlml.ml import tuning

    return tuning.plan({"model_type": "linear_reg", "num_trials": 2, **options})


def test_the_splits_of_a_tuning() -> None:
    """BigQuery's three-way splits (tuning.split_rows), counted on known rows."""
    import pyarrow as pa

    from sqlml.ml import tuning

    n = 1000
    table = pa.table({"x": list(range(n)), "label": [float(i) for i in range(n)]})
    auto = tuning.split_rows({}, table, _plan(), "label")
    assert (auto.train.sum(), auto.eval.sum(), auto.test.sum()) == (800, 100, 100)
    assert not (auto.train & auto.eval).any()
    assert not (auto.eval & auto.test).any()
    options = {"data_split_method": "RANDOM", "data_split_eval_fraction": 0.2}
    given = tuning.split_rows(options, table, _plan(data_split_test_fraction=0.1), "label")
    assert (given.train.sum(), given.eval.sum(), given.test.sum()) == (700, 200, 100)
    seq = {"data_split_method": "SEQ", "data_split_col": "x", "data_split_eval_fraction": 0.2}
    ordered = tuning.split_rows(seq, table, _plan(data_split_test_fraction=0.1), "label")
    assert list(np.flatnonzero(ordered.test)) == list(range(900, 1000))  # the last 10%
    assert list(np.flatnonzero(ordered.eval)) == list(range(700, 900))  # the 20% before them
    small = tuning.split_rows({}, table.slice(0, 400), _plan(), "label")  # (< 500: no split)
    assert small.train.all()
    assert small.eval.all()
    assert small.test.all()
    custom = pa.table({"label": [1.0, 2.0, 3.0, 4.0], "s": ["TRAIN", "EVAL", "TEST", "TRAIN"]})
    parts = tuning.split_rows(
        {"data_split_method": "CUSTOM", "data_split_col": "s"}, custom, _plan(), "label"
    )
    assert (list(parts.train), list(parts.eval), list(parts.test)) == (
        [True, False, False, True],
        [False, True, False, False],
        [False, False, True, False],
    )
    bad = custom.set_column(1, "s", pa.array(["TRAIN", "VALID", "TEST", "TRAIN"]))
    with pytest.raises(errors.InvalidParameterValue):
        tuning.split_rows(
            {"data_split_method": "CUSTOM", "data_split_col": "s"}, bad, _plan(), "label"
        )
    with pytest.raises(errors.InvalidParameterValue):
        _plan(data_split_test_fraction=1.5)
