"""Training on more rows than fit in the memory budget (issue 15, point 3; docs/sql.md,
"Training budgets", max_training_memory_mb; sqlml/ml/streamed.py), on DuckDB and PostgreSQL:
linear_reg and logistic_reg learn from the stream and equal scikit-learn on every row; other
models train on a sample that fits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, Noticing, module_database
from sklearn.linear_model import LinearRegression, LogisticRegression

from sqlml import errors

ROWS = 150_000  # three batches of 65,536 rows
# x1 with NULLs (imputed with its mean), x2, a category with a NULL one; a numeric and a
# BOOL label; ts the watermark of the incremental case
TABLE = (
    "CREATE TABLE big.t AS SELECT i AS ts,"
    " CASE WHEN i % 11 = 0 THEN NULL ELSE CAST(sin(i) * 3 AS DOUBLE PRECISION) END AS x1,"
    " CAST(cos(i * 0.7) AS DOUBLE PRECISION) AS x2,"
    " CASE WHEN i % 7 = 0 THEN NULL WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b' ELSE 'c' END"
    " AS s,"
    " CAST(2 * cos(i * 0.7) - sin(i * 1.3) + (i % 3) * 0.5 AS DOUBLE PRECISION) AS y,"
    " sin(i * 1.9) + cos(i * 0.7) * 2 + sin(i) > 0.3 AS c"
    f" FROM generate_series(1, {ROWS}) AS g(i)"
)
SMALL = "max_training_memory_mb = 1"  # (the rows: ~5 MB; a sixth of the budget is held)


class Big(Noticing):
    def info(self, model: str) -> dict[str, Any]:
        schema, name = model.split(".")
        ((info,),) = self.run(
            "SELECT training_info FROM sqlml.versions"
            f" WHERE schema_name = '{schema}' AND model_name = '{name}'"
            " ORDER BY version DESC LIMIT 1"
        )
        return dict(json.loads(info) if isinstance(info, str) else info)

    def rows(self, where: str = "") -> tuple[np.ndarray[Any, Any], ...]:
        """The features as scikit-learn takes them (x1 imputed with its mean, s one-hot with
        NULL a category of its own), y and c, ordered by ts."""
        got = self.run(f"SELECT x1, x2, s, y, c FROM big.t {where} ORDER BY ts")
        x1 = np.array([np.nan if r[0] is None else r[0] for r in got])
        x1[np.isnan(x1)] = np.nanmean(x1)
        s = [r[2] for r in got]
        onehot = [[1.0 if v == k else 0.0 for k in ("a", "b", "c", None)] for v in s]
        x = np.column_stack([x1, [r[1] for r in got], np.array(onehot)])
        return x, np.array([r[3] for r in got]), np.array([bool(r[4]) for r in got])

    def predicted(self, model: str, column: str) -> np.ndarray[Any, Any]:
        got = self.run(f"SELECT {column} FROM ML.PREDICT(MODEL {model}, TABLE big.t) ORDER BY ts")
        return np.array([r[0] for r in got], dtype=float)


@pytest.fixture(scope="module", params=ENGINES)
def big(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, "streamed") as database:
        found = Big(database, engine)
        found.run("CREATE SCHEMA big")
        found.run(TABLE)
        yield found
        found.con.close()


def test_linear_reg_past_the_budget_learns_from_the_stream_exactly(big: Big) -> None:
    big.messages.clear()
    big.run(
        "CREATE MODEL big.lin OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        f" data_split_method = 'NO_SPLIT', {SMALL}) AS SELECT x1, x2, s, y FROM big.t"
    )
    assert any("learns from them as they are read" in m for m in big.messages)
    info = big.info("big.lin")
    assert info["streamed"] is True
    assert info["rows_read"] == ROWS
    assert info["training_rows"] == ROWS
    assert info["evaluation_sample"] == 10_000
    x, y, _ = big.rows()
    expected = LinearRegression().fit(x, y).predict(x)
    got = big.predicted("big.lin", "predicted_y")
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    ((rows,),) = big.run("SELECT training_rows FROM ML.VERSIONS(MODEL big.lin)")
    assert rows == ROWS


def test_logistic_reg_past_the_budget_converges_on_every_row(big: Big) -> None:
    big.run(
        "CREATE MODEL big.log OPTIONS (model_type = 'logistic_reg', input_label_cols = ['c'],"
        f" data_split_method = 'NO_SPLIT', {SMALL}) AS SELECT x1, x2, s, c FROM big.t"
    )
    info = big.info("big.log")
    assert info["streamed"] is True
    assert info["passes"] >= 3
    x, _, c = big.rows()
    # unpenalized (l2_reg 0): the standardization changes nothing; scikit-learn to convergence
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, c)
    expected = reference.predict_proba(x)[:, 1]
    got = big.run(
        "SELECT p.prob FROM ML.PREDICT(MODEL big.log, TABLE big.t) AS r,"
        " UNNEST(r.predicted_c_probs) AS p WHERE p.label ORDER BY r.ts"
    )
    np.testing.assert_allclose([r[0] for r in got], expected, atol=1e-6)


def test_auto_split_holds_out_the_evaluation_rows(big: Big) -> None:
    options = "model_type = 'linear_reg', input_label_cols = ['y']"
    for name in ("big.auto1", "big.auto2"):
        big.run(
            f"CREATE MODEL {name} OPTIONS ({options}, {SMALL}) AS SELECT x1, x2, s, y FROM big.t"
        )
    info = big.info("big.auto1")
    assert info["evaluation_rows"] == 10_000
    assert info["training_rows"] == ROWS - 10_000
    # the same held-out rows every run (the smallest row hashes), so the same model
    first = big.run("SELECT processed_input, weight FROM ML.WEIGHTS(MODEL big.auto1)")
    assert first == big.run("SELECT processed_input, weight FROM ML.WEIGHTS(MODEL big.auto2)")
    ((mse,),) = big.run("SELECT mean_squared_error FROM ML.EVALUATE(MODEL big.auto1)")
    x, y, _ = big.rows()
    full = LinearRegression().fit(x, y)
    assert float(mse) == pytest.approx(np.mean((full.predict(x) - y) ** 2), rel=0.05)


def test_other_models_train_on_a_sample_that_fits(big: Big) -> None:
    big.messages.clear()
    big.run(
        "CREATE MODEL big.km OPTIONS (model_type = 'kmeans', num_clusters = 3,"
        f" {SMALL}) AS SELECT x1, x2 FROM big.t"
    )
    assert any("kmeans needs all its rows at once: training on a sample" in m for m in big.messages)
    info = big.info("big.km")
    assert info["sampled_from"] == ROWS
    ((rows,),) = big.run("SELECT training_rows FROM ML.VERSIONS(MODEL big.km)")
    assert 0 < rows < ROWS


def test_incremental_streamed_then_retrain_equals_every_row(big: Big) -> None:
    big.run("CREATE TABLE big.grow AS SELECT * FROM big.t WHERE ts <= 140000")
    big.run(
        "CREATE MODEL big.inc OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
        f" incremental = TRUE, watermark_col = 'ts', {SMALL})"
        " AS SELECT ts, x1, x2, s, y FROM big.grow"
    )
    assert big.info("big.inc")["streamed"] is True
    big.run("INSERT INTO big.grow SELECT * FROM big.t WHERE ts > 140000")
    big.run("ALTER MODEL big.inc RETRAIN")
    info = big.info("big.inc")
    assert info["rows_read"] == ROWS - 140_000
    assert info["training_run"] == 1
    x, y, _ = big.rows()
    expected = LinearRegression().fit(x, y).predict(x)
    np.testing.assert_allclose(
        big.predicted("big.inc", "predicted_y"), expected, rtol=1e-9, atol=1e-9
    )


def test_a_budget_that_is_not_a_positive_number_is_22023(big: Big) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="MAX_TRAINING_MEMORY_MB"):
        big.run(
            "CREATE MODEL big.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            " max_training_memory_mb = 0) AS SELECT x1, y FROM big.t"
        )


def test_a_streamed_training_stopped_midway_stores_nothing(big: Big) -> None:
    """A budget (max_training_seconds) and, on PostgreSQL, statement_timeout stop a streamed
    training at its next checkpoint (each batch, each pass): 57014, the version that served
    serves on, and the temporary copy of the rows is gone with the statement."""
    create = (
        "CREATE OR REPLACE MODEL big.stop OPTIONS (model_type = 'logistic_reg',"
        " input_label_cols = ['c'], {extra} {SMALL}) AS SELECT x1, x2, s, c FROM big.t"
    )
    big.run(create.format(extra="max_iterations = 5,", SMALL=SMALL))
    before = big.run("SELECT version FROM ML.VERSIONS(MODEL big.stop)")
    with pytest.raises(errors.QueryCanceled):
        big.run(create.format(extra="max_training_seconds = 0.05,", SMALL=SMALL))
    if big.engine == "postgres":
        big.run("SET statement_timeout = '150ms'")
        try:
            with pytest.raises(errors.QueryCanceled):
                big.run(create.format(extra="", SMALL=SMALL))
        finally:
            big.run("SET statement_timeout = 0")
    assert big.run("SELECT version FROM ML.VERSIONS(MODEL big.stop)") == before
    big.run(create.format(extra="", SMALL=SMALL))  # (and the next one trains)
    assert len(big.run("SELECT version FROM ML.VERSIONS(MODEL big.stop)")) == 2
