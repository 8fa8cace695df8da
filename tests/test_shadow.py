"""Shadows (issue 14; docs/sql.md, "Shadows"; sqlml/predlog.py): ALTER MODEL m SET SHADOW VERSION
n [SAMPLE p PERCENT] and CLEAR SHADOW, on DuckDB and PostgreSQL through sqlml.connect and the
gateway over DuckDB.

References independent of the code: a shadowed ML.PREDICT is compared with the same query run
before the shadow was set; the sampled keys are computed here from the hash's definition
(tests/test_traffic.py's hashed); each shadow row's outputs with ML.PREDICT of the shadow
version asked for alone. A shadow that fails is a real failure: an imported graph whose Gather
reads out of bounds for some inputs (onnxruntime refuses them), so the serving version scores
the rows and the shadow cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, gateway_parts, serving, shop_database
from test_predlog import entries, logged_keys
from test_traffic import LINEAR, OTHER, Split, open_split

import sqlml

LOGISTIC = "model_type = 'logistic_reg', input_label_cols = ['big']"
CLASSES = "SELECT x, z, y > 100 AS big FROM split.points"


@pytest.fixture(scope="module", params=ENGINES)
def shadowed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    yield from open_split(request, tmp_path_factory, "shadow")


def predict(split: Split, model: str, query: str = "TABLE split.points", con: Any = None) -> Any:
    return split.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, {query}) ORDER BY id", con)


def test_a_shadow_never_changes_the_result_and_logs_its_sample(shadowed: Split) -> None:
    model = shadowed.model(LINEAR, OTHER)
    before = predict(shadowed, model)
    shadowed.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_key = 'id')")
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 10 PERCENT COMMENT 'l2'")
    assert predict(shadowed, model) == before  # the same rows, columns and values
    alone = dict(
        shadowed.run(
            f"SELECT id, predicted_y FROM ML.PREDICT(MODEL {model} VERSION 2, TABLE split.points)"
        )
    )
    served = {r[0]: r[-1] for r in before}
    logged = entries(shadowed, model)
    expected = sorted(logged_keys(0.1, list(served)))
    shadows = [e for e in logged if e["variant"] == "shadow"]
    assert sorted(int(e["key"]) for e in shadows) == expected
    for entry in shadows:
        assert entry["version"] == 2
        assert entry["outputs"]["predicted_y"] == pytest.approx(alone[int(entry["key"])], rel=1e-9)
        assert entry["inputs"]["id"] == int(entry["key"])
    assert [e for e in logged if e["variant"] != "shadow"] == []  # (no prediction_log_sample)
    # with a log sample as large, the served rows of the same keys are logged beside them
    shadowed.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.1)")
    shadowed.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    serving_rows = [e for e in entries(shadowed, model) if e["variant"] == "serving"]
    assert sorted(int(e["key"]) for e in serving_rows) == expected
    for entry in serving_rows:
        assert entry["version"] == 1
        assert entry["outputs"]["predicted_y"] == pytest.approx(served[int(entry["key"])], rel=1e-9)
    assert len(alone) == len(served)
    assert any(abs(alone[k] - served[k]) > 1e-6 for k in served)  # (a different version)


def test_a_larger_log_sample_and_a_shadow_at_random(shadowed: Split) -> None:
    model = shadowed.model(LINEAR, OTHER)
    shadowed.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.2, prediction_log_key = 'id')"
    )
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 5 PERCENT")
    keys = [r[0] for r in shadowed.run("SELECT id FROM split.points")]
    shadowed.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    logged = entries(shadowed, model)
    by_variant = {
        v: sorted(int(e["key"]) for e in logged if e["variant"] == v) for v in ("serving", "shadow")
    }
    assert by_variant["serving"] == sorted(logged_keys(0.2, keys))
    assert by_variant["shadow"] == sorted(logged_keys(0.05, keys))
    assert set(by_variant["shadow"]) <= set(by_variant["serving"])  # pairs, by key
    # without a key: a random sample of the rows, log_key NULL
    model = shadowed.model(LINEAR, OTHER)
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 10 PERCENT")
    shadowed.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    shadows = [e for e in entries(shadowed, model) if e["variant"] == "shadow"]
    assert 1500 < len(shadows) < 2500  # 10% of 20,000
    assert all(e["key"] is None for e in shadows)


def test_a_shadow_beside_a_traffic_split(shadowed: Split) -> None:
    model = shadowed.model(LINEAR, OTHER, OTHER)
    shadowed.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
    before = predict(shadowed, model)
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 3 SAMPLE 1 PERCENT")
    shadowed.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.01)")
    assert predict(shadowed, model) == before  # model_version and all
    logged = entries(shadowed, model)
    versions = {r[0]: r[-1] for r in before}  # id -> model_version
    keys = sorted(logged_keys(0.01, list(versions)))
    assert sorted(int(e["key"]) for e in logged if e["variant"] == "shadow") == keys
    assert {e["version"] for e in logged if e["variant"] == "shadow"} == {3}
    served = [e for e in logged if e["variant"] != "shadow"]
    assert sorted(int(e["key"]) for e in served) == keys  # the same keys, by the split's
    for entry in served:
        assert entry["version"] == versions[int(entry["key"])]


def test_status_audit_checks_and_the_end_of_a_shadow(shadowed: Split) -> None:
    model = shadowed.model(LINEAR, OTHER, OTHER, OTHER)
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 3 SAMPLE 12.5 PERCENT COMMENT 'try'")
    rows = shadowed.run(f"SELECT version, status FROM ML.VERSIONS(MODEL {model})")
    assert rows == [(1, "serving"), (2, "available"), (3, "shadow"), (4, "available")]
    trail = shadowed.run(
        f"SELECT action, version, comment, settings FROM ML.DEPLOYMENTS(MODEL {model})"
        " ORDER BY deployment_id"
    )
    assert trail[-1][:3] == ("shadow", 1, "try")
    assert '"shadow": {"sample": 12.5, "version": 3}' in trail[-1][3]
    assert shadowed.sqlstate(f"DROP MODEL {model} VERSION 3") == "2BP01"
    for bad, sqlstate in [
        ("SET SHADOW VERSION 1", "22023"),  # it serves
        ("SET SHADOW VERSION 9", "42704"),
        ("SET SHADOW VERSION 2 SAMPLE 0 PERCENT", "22023"),
        ("SET SHADOW VERSION 2 SAMPLE 101 PERCENT", "22023"),
        ("SET SHADOW VERSION 2 SAMPLE -5 PERCENT", "22023"),
        ("SET SHADOW VERSION 2 SAMPLE 0.001 PERCENT", "22023"),
        ("SET TRAFFIC (VERSION 1 = 50, VERSION 3 = 50)", "22023"),  # the shadow takes no share
    ]:
        assert shadowed.sqlstate(f"ALTER MODEL {model} {bad}") == sqlstate, bad
    shadowed.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)")
    assert shadowed.sqlstate(f"ALTER MODEL {model} SET SHADOW VERSION 2") == "22023"  # a share
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 4")  # another shadow replaces it
    shadowed.run(f"DROP MODEL {model} VERSION 3")
    shadowed.run(f"ALTER MODEL {model} CLEAR SHADOW")
    assert shadowed.run(f"SELECT action FROM ML.DEPLOYMENTS(MODEL {model})")[-1] == (
        "clear shadow",
    )
    shadowed.run(f"ALTER MODEL {model} CLEAR SHADOW")  # none: nothing changes, no error
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 4")
    shadowed.run(f"ALTER MODEL {model} DEPLOY VERSION 4")  # a deploy ends the shadow (and split)
    rows = shadowed.run(f"SELECT version, status FROM ML.VERSIONS(MODEL {model})")
    assert rows == [(1, "available"), (2, "available"), (4, "serving")]
    # another kind of model, or one that takes columns the serving one does not, cannot
    # shadow (42804); fewer columns and another model type of the same kind may
    narrow = shadowed.model(LINEAR, train="SELECT x, y FROM split.points")
    for options, train in [
        (f"{LOGISTIC}, deploy = 'manual'", CLASSES),
        (OTHER, "SELECT x, z, y FROM split.points"),
    ]:
        shadowed.run(f"CREATE OR REPLACE MODEL {narrow} OPTIONS ({options}) AS {train}")
    assert shadowed.sqlstate(f"ALTER MODEL {narrow} SET SHADOW VERSION 2") == "42804"
    assert shadowed.sqlstate(f"ALTER MODEL {narrow} SET SHADOW VERSION 3") == "42804"
    wide = shadowed.model(LINEAR)
    shadowed.run(
        f"CREATE OR REPLACE MODEL {wide} OPTIONS (model_type = 'boosted_tree_regressor',"
        " input_label_cols = ['y'], deploy = 'manual', max_iterations = 5)"
        " AS SELECT x, y FROM split.points"
    )
    shadowed.run(f"ALTER MODEL {wide} SET SHADOW VERSION 2")
    assert predict(shadowed, wide, "(SELECT * FROM split.points WHERE id < 0)")


def test_a_shadow_that_cannot_score_the_input_is_left_out(shadowed: Split) -> None:
    """The log's key or a column the shadow takes missing from the input: the query runs as
    ever, with a NOTICE, and nothing of the shadow is logged (the served log's own key missing
    stays 42703: test_predlog)."""
    model = shadowed.model(LINEAR, OTHER)
    shadowed.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_key = 'id')")
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2")
    notices: list[str] = []
    shadowed.con.set_progress(notices.append)
    try:
        rows = shadowed.run(
            f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, (SELECT x, z FROM split.points))"
        )
    finally:
        shadowed.con.set_progress(None)
    assert rows == [(20_000,)]
    assert any("shadow version 2 cannot score this input" in n for n in notices), notices
    assert entries(shadowed, model) == []


def test_compare_and_a_kept_plan_follow_the_shadow(shadowed: Split) -> None:
    model = shadowed.model(LINEAR, OTHER)
    other = sqlml.connect(shadowed.database, autocommit=True)
    query = f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
    try:
        other.execute(query).fetchall()  # (its plan is kept)
        shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 50 PERCENT")
        other.execute(query).fetchall()
        assert {e["variant"] for e in entries(shadowed, model)} == {"shadow"}
        shadowed.run(f"ALTER MODEL {model} CLEAR SHADOW")
        count = len(entries(shadowed, model))
        other.execute(query).fetchall()
        assert len(entries(shadowed, model)) == count  # nothing logged any more
    finally:
        other.close()
    shadowed.run(f"ALTER MODEL {model} SET SHADOW VERSION 2")
    rows = shadowed.run(
        f"SELECT version, status, traffic_weight, r2_score FROM ML.COMPARE(MODEL {model},"
        " TABLE split.points)"
    )
    assert [r[:3] for r in rows] == [(1, "serving", None), (2, "shadow", None)]
    for version, _, _, r2 in rows:
        (alone,) = shadowed.run(
            f"SELECT r2_score FROM ML.EVALUATE(MODEL {model} VERSION {version}, TABLE split.points)"
        )
        assert r2 == pytest.approx(alone[0], rel=1e-9)


# -- a shadow that fails ------------------------------------------------------------------------


def graph(path: Path, failing: bool) -> Path:
    """y = 2x; or (failing) y = table[int(x)] over a table of 10 values, which onnxruntime
    refuses for x >= 10 (Gather: indices out of bounds)."""
    from onnx import TensorProto, helper, numpy_helper

    if failing:
        nodes = [
            helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "i"], ["g"], axis=0),
            helper.make_node("Reshape", ["g", "shape"], ["y"]),
        ]
        weights = [
            numpy_helper.from_array(np.arange(10, dtype=np.float64) * 3, "table"),
            numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape"),
        ]
    else:
        nodes = [helper.make_node("Mul", ["x", "two"], ["y"])]
        weights = [numpy_helper.from_array(np.array([2.0]), "two")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])]
    made = helper.make_graph(nodes, "g", inputs, outputs, initializer=weights)
    model = helper.make_model(made, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def imported(split: Split, tmp_path: Path) -> str:
    """A model whose version 2 (y = 2x) serves and whose version 1 (the failing graph) shadows
    every row, every row logged."""
    name = f"split.g{next(split.names)}"
    for failing in (True, False):
        path = graph(tmp_path / f"{name}_{failing}.onnx", failing)
        split.run(
            f"CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'onnx', model_path = '{path}')"
        )
    split.run(
        f"ALTER MODEL {name} SET OPTIONS (prediction_log_sample = 1, prediction_log_key = 'id')"
    )
    split.run(f"ALTER MODEL {name} SET SHADOW VERSION 1")
    return name


SMALL = "(SELECT id, CAST(id % 12 AS DOUBLE PRECISION) AS x FROM split.points WHERE id BETWEEN 1 AND 100)"
RUNTIME = "STRUCT('runtime' AS scoring)"  # (compiled, the Gather reads NULL out of bounds)


@pytest.mark.parametrize("autocommit", [False, True])
def test_a_failing_shadow_fails_nothing(shadowed: Split, tmp_path: Path, autocommit: bool) -> None:
    model = imported(shadowed, tmp_path)
    con = sqlml.connect(shadowed.database, autocommit=autocommit)
    notices: list[str] = []
    con.set_progress(notices.append)
    try:
        # rows the shadow scores: both logged
        fine = f"(SELECT * FROM {SMALL} AS s WHERE x < 10)"
        rows = con.execute(
            f"SELECT id, y FROM ML.PREDICT(MODEL {model}, {fine}, {RUNTIME}) ORDER BY id"
        ).fetchall()
        assert [float(y) for _, y in rows] == [2.0 * (i % 12) for i, _ in rows]
        assert not any("shadow version 1 failed" in n for n in notices)
        # rows it refuses: the result as ever, a NOTICE, nothing of the shadow logged
        rows = con.execute(
            f"SELECT id, y FROM ML.PREDICT(MODEL {model}, {SMALL}, {RUNTIME}) ORDER BY id"
        ).fetchall()
        assert [(int(i), float(y)) for i, y in rows] == [(i, 2.0 * (i % 12)) for i in range(1, 101)]
        assert any("shadow version 1 failed" in n for n in notices), notices
        # the transaction goes on, and commits what it did (the served rows' log with it)
        assert con.execute("SELECT count(*) FROM split.points").fetchall() == [(20_000,)]
        if not autocommit:
            con.commit()
    finally:
        con.close()
    logged = entries(shadowed, model)
    shadows = [e for e in logged if e["variant"] == "shadow"]
    assert sorted(int(e["key"]) for e in shadows) == [i for i in range(1, 101) if i % 12 < 10]
    for entry in shadows:
        assert entry["outputs"]["y"] == 3.0 * (int(entry["key"]) % 12)  # the table's value
    served = [int(e["key"]) for e in logged if e["variant"] == "serving"]
    assert sorted(served) == sorted([i for i in range(1, 101) if i % 12 < 10] + list(range(1, 101)))
    assert len(served) == 184  # (the log's sample: 100%, set in imported)


def test_a_shadow_through_the_gateway_over_duckdb(request: pytest.FixtureRequest) -> None:
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    database = shop_database("duckdb", request)
    with serving(ServerConfig(port=0), *gateway_parts("duckdb", database)) as port:
        client = GatewayConnection(port)
        try:
            split = Split.over(client, "duckdb")
            model = split.model(LINEAR, OTHER)
            before = predict(split, model)
            split.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_key = 'id')")
            split.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 2 PERCENT")
            assert predict(split, model) == before
            keys = sorted(logged_keys(0.02, [r[0] for r in before]))
            logged = entries(split, model)
            assert sorted(int(e["key"]) for e in logged if e["variant"] == "shadow") == keys
        finally:
            client.close()
