"""ML.EXPLAIN_PREDICT for dnn_regressor and dnn_classifier (sqlml/functions/explain_dnn.py:
integrated gradients, run inside the engine), on DuckDB and PostgreSQL.

The reference is the test's own: the rows standardized and one-hot encoded here with numpy from
the raw rows (the training mean for a NULL, the population standard deviation, categories in
sorted order then NULL, a category never seen: all zeros), the perceptron's forward pass written
here over the weight matrices of the stored graph, its gradient by central differences, and the
Riemann sum of integrated gradients from the all-zeros baseline (every numeric feature at its
training mean, no category); independently of those, completeness (baseline + attributions =
prediction_value as the steps grow) and ML.PREDICT's value or probability."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import (
    ENGINES,
    EXPLAINED,
    Noticing,
    attributions,
    class_probability,
    explain_table,
    module_database,
    psycopg_gateway,
    wire_attributions,
)
from onnx import numpy_helper

from sqlml import errors

Array = np.ndarray[Any, Any]
N = 240
COMMON = "data_split_method = 'NO_SPLIT', hidden_units = [8], max_iterations = 5"
MODELS = {
    "reg": ("dnn_regressor", "y"),
    "binary": ("dnn_classifier", "c"),
    "multi": ("dnn_classifier", "k"),  # (3 classes: the predicted class's softmax input)
}
# the rows explained: a category never seen in training (row 5), NULLs (x1 every 13th, s 7th)
ROWS = "(SELECT i, x1, x2, CASE WHEN i = 5 THEN 'unseen' ELSE s END AS s FROM ex.t WHERE i <= 60)"


class Ex(Noticing):
    def layers(self, model: str) -> list[tuple[Array, Array]]:
        """The (weights, bias) of each MatMul-by-a-constant and its Add, in the stored graph's
        node order."""
        (data,) = self.run(
            "SELECT v.onnx FROM sqlml.versions v JOIN sqlml.models m"
            " ON v.schema_name = m.schema_name AND v.model_name = m.model_name"
            f" AND v.version = m.current_version WHERE m.model_name = '{model}'"
        )[0]
        graph = onnx.load_from_string(bytes(data)).graph
        constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        found = []
        for node in graph.node:
            if node.op_type == "MatMul" and node.input[1] in constants:
                (add,) = [n for n in graph.node if node.output[0] in n.input]
                bias = constants[next(b for b in add.input if b in constants)]
                found.append((constants[node.input[1]], bias.reshape(-1)))
        return found


@pytest.fixture(scope="module", params=ENGINES)
def ex(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ex]:
    with module_database(str(request.param), request, tmp_path_factory, "dnnig") as database:
        found = Ex(database, str(request.param))
        found.run("CREATE SCHEMA ex")
        found.run(explain_table("ex", N))
        for name, (model_type, label) in MODELS.items():
            found.run(
                f"CREATE MODEL ex.{name} OPTIONS (model_type = '{model_type}',"
                f" input_label_cols = ['{label}'], {COMMON}) AS SELECT x1, x2, s, {label} FROM ex.t"
            )
        yield found
        found.con.close()


def _matrix(ex: Ex) -> tuple[Array, list[tuple[str, int, int]]]:
    """The explained rows as the perceptron reads them, built from the raw rows."""
    train = ex.run("SELECT x1, x2, s FROM ex.t")
    rows = ex.run(f"SELECT x1, x2, s FROM {ROWS} AS r ORDER BY i")
    columns: list[Array] = []
    layout = []
    for j, name in enumerate(("x1", "x2")):
        known = np.array([r[j] for r in train if r[j] is not None])
        mean = float(known.mean())
        std = float(np.array([mean if r[j] is None else r[j] for r in train]).std())
        columns.append(np.array([((mean if r[j] is None else r[j]) - mean) / std for r in rows]))
        layout.append((name, j, 1))
    categories = [*sorted({r[2] for r in train if r[2] is not None}), None]
    for category in categories:
        columns.append(np.array([1.0 if r[2] == category else 0.0 for r in rows]))
    layout.append(("s", 2, len(categories)))
    return np.column_stack(columns), layout


def _network(layers: list[tuple[Array, Array]]) -> Any:
    def f(x: Array) -> Array:
        h = x
        for w, b in layers[:-1]:
            h = np.maximum(h @ w + b, 0.0)  # (RELU, the default activation)
        w, b = layers[-1]
        return (h @ w + b)[:, 0]

    return f


def _integrated_gradients(f: Any, x: Array, steps: int) -> Array:
    """Right Riemann sum over ``steps`` points of the gradient by central differences."""
    h = 1e-6
    total = np.zeros_like(x)
    for k in range(1, steps + 1):
        point = x * (k / steps)
        for j in range(x.shape[1]):
            up, down = point.copy(), point.copy()
            up[:, j] += h
            down[:, j] -= h
            total[:, j] += (f(up) - f(down)) / (2 * h)
    result: Array = x * total / steps
    return result


def _explain(ex: Ex, model: str, steps: int | None) -> list[dict[str, Any]]:
    setting = "" if steps is None else f", STRUCT({steps} AS integrated_gradients_num_steps)"
    return ex.explained(
        f"SELECT * FROM ML.EXPLAIN_PREDICT(MODEL ex.{model}, {ROWS}{setting}) ORDER BY i"
    )


@pytest.mark.parametrize("model", ["reg", "binary"])
def test_integrated_gradients_against_finite_differences(ex: Ex, model: str) -> None:
    """The default 15 steps and 3 steps: each column's attribution is the test's own integrated
    gradients (the sum of a one-hot block's), signed for the predicted class; the values and the
    baseline are the test's forward pass; approximation_error is BigQuery's formula."""
    model_type, label = MODELS[model]
    x, layout = _matrix(ex)
    f = _network(ex.layers(model))
    predicted = ex.run(f"SELECT * FROM ML.PREDICT(MODEL ex.{model}, {ROWS}) ORDER BY i")
    baseline = float(f(np.zeros((1, x.shape[1])))[0])
    for steps in (None, 3):
        rows = _explain(ex, model, steps)
        want = _integrated_gradients(f, x, steps or 15)
        values = f(x)
        assert len(rows) == len(predicted) == len(x) == 60
        for n, (row, scored) in enumerate(zip(rows, predicted, strict=True)):
            predicted_label = scored[4]  # (i, x1, x2, s, predicted_<label>, [probs])
            assert row[f"predicted_{label}"] == predicted_label
            sign = 1.0
            if model_type == "dnn_classifier":
                p = class_probability(predicted_label, scored[5])
                assert row["probability"] == pytest.approx(p, abs=1e-9)
                assert row["prediction_value"] == pytest.approx(math.log(p / (1 - p)), abs=1e-7)
                sign = 1.0 if predicted_label is True else -1.0
            else:
                assert "probability" not in row
                assert row["prediction_value"] == pytest.approx(predicted_label, abs=1e-12)
            assert row["prediction_value"] == pytest.approx(sign * values[n], abs=1e-9)
            assert row["baseline_prediction_value"] == pytest.approx(sign * baseline, abs=1e-9)
            got = attributions(row)
            assert set(got) == {"x1", "x2", "s"}
            for name, start, width in layout:
                expected = sign * float(want[n, start : start + width].sum())
                assert got[name] == pytest.approx(expected, abs=1e-4), (row["i"], name, steps)
            spread = row["prediction_value"] - row["baseline_prediction_value"]
            error = abs(spread - sum(got.values())) / abs(spread)
            assert row["approximation_error"] == pytest.approx(error, rel=1e-9, abs=1e-12)
        if steps == 3:
            assert max(r["approximation_error"] for r in rows) > 1e-2


@pytest.mark.parametrize("model", ["reg", "binary", "multi"])
def test_completeness_as_the_steps_grow(ex: Ex, model: str) -> None:
    """baseline + the attributions -> prediction_value: a ReLU network is piecewise linear along
    the path, so the Riemann sum's error falls as 1 / steps (a few 1e-3 at 200 steps, some 1e-4
    at 2,000)."""
    few = {r["i"]: r for r in _explain(ex, model, 20)}
    many = _explain(ex, model, 2000)
    for row in many:  # (relative to the spread, a small one's error is large: absolute)
        total = row["baseline_prediction_value"] + sum(attributions(row).values())
        spread = abs(row["prediction_value"] - row["baseline_prediction_value"])
        assert abs(total - row["prediction_value"]) <= 1e-3 * max(spread, 1.0)
        assert row["approximation_error"] < 1e-2
    assert float(np.median([r["approximation_error"] for r in many])) < 1e-3
    assert sum(r["approximation_error"] for r in many) < 0.2 * sum(
        r["approximation_error"] for r in few.values()
    )


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        (f"ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(0 AS integrated_gradients_num_steps))", "22023"),
        (f"ML.EXPLAIN_PREDICT(MODEL ex.binary, {ROWS}, STRUCT(-2 AS integrated_gradients_num_steps))", "22023"),
        (f"ML.EXPLAIN_PREDICT(MODEL ex.reg, {ROWS}, STRUCT(TRUE AS approx_feature_contrib))", "0A000"),
    ],
)  # fmt: skip
def test_bad_calls_are_refused_with_their_sqlstate(ex: Ex, call: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as raised:
        ex.run(f"SELECT * FROM {call}")
    assert raised.value.sqlstate == sqlstate, raised.value


@pytest.mark.parametrize("engine", ENGINES)
def test_over_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    """Through `sqlml serve` (psycopg 3): a DNN's explanations as a client reads them, the
    identity within the reported approximation error."""
    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    with psycopg_gateway(engine, database) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.dnn OPTIONS (model_type = 'dnn_classifier',"
            " input_label_cols = ['churned'], hidden_units = [8], max_iterations = 5) AS"
            " SELECT tenure, plan, churned FROM shop.customers"
        )
        cur = c.execute(
            "SELECT * FROM ML.EXPLAIN_PREDICT(MODEL shop.dnn, (SELECT id, tenure, plan FROM"
            " shop.new_customers), STRUCT(200 AS integrated_gradients_num_steps))"
            " ORDER BY id LIMIT 5"
        )
        assert [d.name for d in cur.description or []][:6] == EXPLAINED
        rows = cur.fetchall()
    assert len(rows) == 5
    for row in rows:
        top = wire_attributions(row[2])
        assert {feature for feature, _ in top} == {"tenure", "plan"}
        spread = row[4] - row[3]
        gap = abs(spread - sum(attribution for _, attribution in top))
        assert gap / abs(spread) == pytest.approx(row[5], rel=1e-6, abs=1e-9)
        assert row[5] < 0.05
