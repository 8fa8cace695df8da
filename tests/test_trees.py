"""boosted_tree_* and random_forest_* (issue 13, point 2): CREATE MODEL, ML.PREDICT and
ML.EVALUATE on both engines, checked against XGBoost fitted independently on the same rows.

The reference side of each test rebuilds the feature matrix itself from the shop tables, as
BigQuery ML documents its automatic preprocessing for tree models (numeric NULL -> the column's
mean, no standardization; categories label-encoded 1..n in sorted order, NULL a category of its
own, anything unseen 0; or one-hot encoded), maps the BigQuery options onto XGBoost's parameters
by hand (docs/design/trees.md's table) and trains with ``xgboost.train``. Predictions must match
to 1e-6 relative (XGBoost sums its leaves in float32, the stored graph in float64), classes
exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import xgboost
from conftest import load_shop, shop_tables, unavailable

import sqlml
from sqlml import errors
from sqlml.grammar.statements import ModelRef

FEATURES = ["tenure", "spend", "plan", "promo"]
NULL = "\u2400"  # sorts after every ASCII category: NULL is the last label code
Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def trained(shop_module: sqlml.Connection) -> sqlml.Connection:
    """One connection per engine for the module, with a regressor (shop.r) and a classifier
    (shop.c) trained once: the bad-input tests try to replace them."""
    connection = shop_module
    for model, kind, label in (("r", "regressor", "value"), ("c", "classifier", "segment")):
        connection.execute(
            f"CREATE MODEL shop.{model} OPTIONS (model_type = 'boosted_tree_{kind}',"
            f" input_label_cols = ['{label}'], max_iterations = 2)"
            f" AS SELECT tenure, plan, {label} FROM shop.customers"
        )
    return connection


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[sqlml.Connection]:
    connection = sqlml.connect(str(tmp_path / "t.duckdb"), autocommit=True)
    load_shop(connection)
    yield connection
    connection.close()


# -- the reference: preprocessing and XGBoost, written from the documentation ---------------------


def _column(table: pa.Table, name: str) -> list[Any]:
    return list(table.column(name).to_pylist())


def reference_matrix(
    train: pa.Table, rows: pa.Table, encoding: str = "label"
) -> tuple[Array, Array]:
    """(training matrix, matrix of ``rows``), both preprocessed with the training rows' fit."""
    fitted: list[Array] = []
    scored: list[Array] = []
    for name in FEATURES:
        values, new = _column(train, name), _column(rows, name)
        if name in ("tenure", "spend"):
            known = [v for v in values if v is not None and not np.isnan(v)]
            mean = float(np.mean(known))
            fitted.append(_filled(values, mean)[:, None])
            scored.append(_filled(new, mean)[:, None])
            continue
        key = lambda v: NULL if v is None else str(v).lower() if isinstance(v, bool) else v  # noqa: E731
        categories = sorted({key(v) for v in values})
        if encoding == "label":
            code = {c: i + 1 for i, c in enumerate(categories)}
            fitted.append(np.array([code[key(v)] for v in values], dtype=float)[:, None])
            scored.append(np.array([code.get(key(v), 0) for v in new], dtype=float)[:, None])
        else:
            fitted.append(np.array([[key(v) == c for c in categories] for v in values], float))
            scored.append(np.array([[key(v) == c for c in categories] for v in new], float))
    return np.hstack(fitted), np.hstack(scored)


def _filled(values: list[Any], mean: float) -> Array:
    return np.array([mean if v is None or np.isnan(v) else v for v in values], dtype=float)


def reference_params(model_type: str, classes: int | None, **options: Any) -> dict[str, Any]:
    """BigQuery's defaults and the given OPTIONS as XGBoost parameters (docs/design/trees.md)."""
    forest = model_type.startswith("random_forest")
    o = {k.lower(): v for k, v in options.items()}
    params: dict[str, Any] = {
        "max_depth": o.get("max_tree_depth", 15 if forest else 6),
        "learning_rate": 1.0 if forest else o.get("learn_rate", 0.3),
        "reg_alpha": o.get("l1_reg", 0.0),
        "reg_lambda": o.get("l2_reg", 1.0),
        "gamma": o.get("min_split_loss", 0.0),
        "min_child_weight": o.get("min_tree_child_weight", 1.0),
        "subsample": o.get("subsample", 0.8 if forest else 1.0),
        "colsample_bytree": o.get("colsample_bytree", 1.0),
        "colsample_bylevel": o.get("colsample_bylevel", 1.0),
        "colsample_bynode": o.get("colsample_bynode", 0.8 if forest else 1.0),
        "num_parallel_tree": o.get("num_parallel_tree", 100 if forest else 1),
        "tree_method": {"AUTO": "hist"}.get(o.get("tree_method", "AUTO"), "")
        or o["tree_method"].lower(),
        "seed": 0,
        "verbosity": 0,
    }
    if o.get("booster_type") == "DART":
        params.update(
            booster="dart",
            rate_drop=o.get("dropout", 0.0),
            normalize_type=o.get("dart_normalize_type", "TREE").lower(),
        )
    if classes is None:
        params["objective"] = "reg:squarederror"
    elif classes == 2:
        params["objective"] = "binary:logistic"
    else:
        params.update(objective="multi:softprob", num_class=classes)
    return params


def reference_fit(
    x: Array, y: Array, params: dict[str, Any], rounds: int, weight: Array | None = None
) -> Any:
    matrix = xgboost.QuantileDMatrix if params["tree_method"] == "hist" else xgboost.DMatrix
    return xgboost.train(params, matrix(x, label=y, weight=weight), num_boost_round=rounds)


def _options(model_type: str, label: str, **extra: Any) -> str:
    given = {
        "model_type": model_type,
        "input_label_cols": [label],
        "data_split_method": "NO_SPLIT",
        **({} if model_type.startswith("random_forest") else {"early_stop": False}),
        **extra,
    }
    return ", ".join(f"{k} = {_sql(v)}" for k, v in given.items())


def _sql(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(_sql(v) for v in value) + "]"
    return repr(value)


def _train_and_predict(
    con: sqlml.Connection, model_type: str, label: str, **extra: Any
) -> list[tuple[Any, ...]]:
    columns = ", ".join([*FEATURES, label])
    con.execute(
        f"CREATE OR REPLACE MODEL shop.m OPTIONS ({_options(model_type, label, **extra)})"
        f" AS SELECT {columns} FROM shop.customers"
    )
    return con.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()


def _labels(values: list[Any]) -> list[Any]:
    return sorted(set(values))


def check_against_reference(
    rows: list[tuple[Any, ...]],
    model_type: str,
    label: str,
    weight: Array | None = None,
    encoding: str = "label",
    rounds: int = 20,
    **extra: Any,
) -> None:
    tables = shop_tables()
    train, new = tables["customers"], tables["new_customers"]
    x, x_new = reference_matrix(train, new, encoding)
    values = _column(train, label)
    regression = model_type.endswith("regressor")
    classes = None if regression else _labels(values)
    y = np.array(values, float) if classes is None else np.array([classes.index(v) for v in values])
    params = reference_params(model_type, None if classes is None else len(classes), **extra)
    forest = model_type.startswith("random_forest")
    booster = reference_fit(x, y, params, 1 if forest else rounds, weight)
    expected = booster.predict(xgboost.DMatrix(x_new)).astype(np.float64)
    got = [r[-1] for r in rows] if regression else [r[-2] for r in rows]
    assert len(rows) == len(expected) == 200
    # XGBoost's predict sums float32 leaves in float32: off by up to a rounding per tree
    per_round = len(classes) if classes is not None and len(classes) > 2 else 1
    trees = booster.num_boosted_rounds() * params["num_parallel_tree"] * per_round
    tolerance = max(1e-6, (trees + 1) * 2.0**-23)
    if classes is None:
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * scale)
        return
    probabilities = np.column_stack([1 - expected, expected]) if expected.ndim == 1 else expected
    probs = [{p["label"]: p["prob"] for p in r[-1]} for r in rows]
    got_probs = np.array([[p[c] for c in classes] for p in probs])
    np.testing.assert_allclose(got_probs, probabilities, atol=tolerance)
    top = np.sort(probabilities, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-6  # a near tie may go either way (float32 vs float64)
    want = [classes[i] for i in np.argmax(probabilities, axis=1)]
    assert [g for g, c in zip(got, clear, strict=True) if c] == [
        w for w, c in zip(want, clear, strict=True) if c
    ]


# -- each model type, on each engine -------------------------------------------------------------

CASES = [
    ("boosted_tree_regressor", "value"),
    ("boosted_tree_classifier", "churned"),
    ("boosted_tree_classifier", "segment"),
    ("random_forest_regressor", "value"),
    ("random_forest_classifier", "segment"),
]


@pytest.mark.parametrize(("model_type", "label"), CASES)
def test_tree_models_match_xgboost_on_the_same_rows(
    shop: sqlml.Connection, model_type: str, label: str
) -> None:
    rows = _train_and_predict(shop, model_type, label)
    check_against_reference(rows, model_type, label)
    metrics = shop.execute("SELECT * FROM ML.EVALUATE(MODEL shop.m)").fetchall()
    assert len(metrics) == 1
    assert all(v is not None for v in metrics[0])


# -- each option reaches XGBoost ------------------------------------------------------------------

OPTION_SETS = [
    (
        "boosted_tree_regressor",
        "value",
        {
            "max_tree_depth": 3,
            "learn_rate": 0.1,
            "l1_reg": 0.5,
            "l2_reg": 2.0,
            "min_split_loss": 0.1,
            "min_tree_child_weight": 2.0,
            "subsample": 0.7,
            "colsample_bytree": 0.8,
            "colsample_bylevel": 0.9,
            "colsample_bynode": 0.9,
            "num_parallel_tree": 2,
            "max_iterations": 15,
        },
    ),
    ("boosted_tree_regressor", "value", {"tree_method": "EXACT", "max_iterations": 5}),
    ("boosted_tree_regressor", "value", {"tree_method": "APPROX", "max_iterations": 5}),
    (
        "boosted_tree_classifier",
        "segment",
        {
            "booster_type": "DART",
            "dropout": 0.2,
            "dart_normalize_type": "FOREST",
            "max_iterations": 10,
        },
    ),
    (
        "random_forest_classifier",
        "churned",
        {
            "num_parallel_tree": 20,
            "max_tree_depth": 5,
            "subsample": 0.6,
            "colsample_bynode": 0.5,
            "tree_method": "HIST",
        },
    ),
]


@pytest.mark.parametrize(("model_type", "label", "options"), OPTION_SETS)
def test_options_reach_xgboost(
    duck: sqlml.Connection, model_type: str, label: str, options: dict[str, Any]
) -> None:
    rows = _train_and_predict(duck, model_type, label, **options)
    rounds = int(options.get("max_iterations", 20))
    check_against_reference(rows, model_type, label, rounds=rounds, **options)


def test_one_hot_encoding(duck: sqlml.Connection) -> None:
    extra = {"category_encoding_method": "ONE_HOT_ENCODING", "max_iterations": 8}
    rows = _train_and_predict(duck, "boosted_tree_regressor", "value", **extra)
    check_against_reference(rows, "boosted_tree_regressor", "value", encoding="one_hot", rounds=8)


def test_class_weights(duck: sqlml.Connection) -> None:
    train = shop_tables()["customers"]
    segment = np.array(_column(train, "segment"))
    classes = _labels(list(segment))
    counts = {c: int((segment == c).sum()) for c in classes}
    balanced = np.array([len(segment) / (len(classes) * counts[s]) for s in segment])
    rows = _train_and_predict(
        duck, "boosted_tree_classifier", "segment", auto_class_weights=True, max_iterations=5
    )
    check_against_reference(rows, "boosted_tree_classifier", "segment", weight=balanced, rounds=5)
    duck.execute(
        "CREATE OR REPLACE MODEL shop.m OPTIONS (model_type = 'boosted_tree_classifier',"
        " input_label_cols = ['segment'], data_split_method = 'NO_SPLIT', early_stop = FALSE,"
        " max_iterations = 5, class_weights = [STRUCT('high', 3.0), STRUCT('low', 0.5)])"
        " AS SELECT tenure, spend, plan, promo, segment FROM shop.customers"
    )
    rows = duck.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()
    explicit = np.array([{"high": 3.0, "low": 0.5}.get(s, 1.0) for s in segment])
    check_against_reference(rows, "boosted_tree_classifier", "segment", weight=explicit, rounds=5)


def test_instance_weight_col_weighs_rows_and_is_not_a_feature(duck: sqlml.Connection) -> None:
    duck.execute("CREATE TABLE shop.weighted AS SELECT *, 1 + (id % 4) AS w FROM shop.customers")
    duck.execute(
        "CREATE MODEL shop.m OPTIONS (model_type = 'boosted_tree_regressor',"
        " input_label_cols = ['value'], data_split_method = 'NO_SPLIT', early_stop = FALSE,"
        " max_iterations = 6, instance_weight_col = 'w')"
        " AS SELECT tenure, spend, plan, promo, value, w FROM shop.weighted"
    )
    rows = duck.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()  # new_customers has no w: the weight is not an input
    weight = 1.0 + np.arange(800) % 4
    check_against_reference(rows, "boosted_tree_regressor", "value", weight=weight, rounds=6)


def test_early_stop_stops_on_min_rel_progress(duck: sqlml.Connection) -> None:
    """EARLY_STOP (the default): training stops after the first round whose relative
    improvement of the evaluation loss is below MIN_REL_PROGRESS; the model keeps the rounds
    trained. The reference finds that round from XGBoost's own loss curve on the same split."""
    duck.execute("CREATE TABLE shop.split AS SELECT *, id % 5 = 0 AS is_eval FROM shop.customers")
    duck.execute(
        "CREATE MODEL shop.m OPTIONS (model_type = 'boosted_tree_regressor',"
        " input_label_cols = ['value'], data_split_method = 'CUSTOM',"
        " data_split_col = 'is_eval', min_rel_progress = 0.05, max_iterations = 50)"
        " AS SELECT tenure, spend, plan, promo, value, is_eval FROM shop.split"
    )
    rows = duck.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()
    customers = shop_tables()["customers"]
    is_eval = np.arange(800) % 5 == 0
    train, held = customers.filter(pa.array(~is_eval)), customers.filter(pa.array(is_eval))
    x, x_eval = reference_matrix(train, held)
    y, y_eval = np.array(_column(train, "value")), np.array(_column(held, "value"))
    params = {**reference_params("boosted_tree_regressor", None), "eval_metric": "rmse"}
    log: dict[str, Any] = {}
    xgboost.train(
        params,
        xgboost.QuantileDMatrix(x, label=y),
        num_boost_round=50,
        evals=[(xgboost.DMatrix(x_eval, label=y_eval), "eval")],
        evals_result=log,
        verbose_eval=False,
    )
    mse = np.square(log["eval"]["rmse"])
    progress = (mse[:-1] - mse[1:]) / mse[:-1]
    rounds = int(np.flatnonzero(progress < 0.05)[0]) + 2  # round i+1 made too little progress
    assert 2 < rounds < 50
    _, x_new = reference_matrix(train, shop_tables()["new_customers"])
    expected = reference_fit(x, y, params, rounds).predict(xgboost.DMatrix(x_new))
    np.testing.assert_allclose([r[-1] for r in rows], expected, rtol=1e-6, atol=1e-4)
    info = duck.session.store.load(ModelRef("shop", "m")).training_info
    assert info["iterations"] == rounds
    assert len(info["history"]) == rounds
    assert info["history"][-1]["eval_loss"] == pytest.approx(mse[rounds - 1], rel=1e-5)


# -- bad input: 22023 for what is wrong, 0A000 for what sqlml does not do --------------------------

BAD = [
    ("boosted_tree_regressor", "max_tree_depth = 0", "22023"),
    ("boosted_tree_regressor", "max_tree_depth = 21", "22023"),
    ("boosted_tree_regressor", "max_tree_depth = 'deep'", "22023"),
    ("boosted_tree_regressor", "subsample = 0", "22023"),
    ("boosted_tree_regressor", "subsample = 1.5", "22023"),
    ("boosted_tree_regressor", "colsample_bynode = 0", "22023"),
    ("boosted_tree_regressor", "learn_rate = -0.1", "22023"),
    ("boosted_tree_regressor", "l2_reg = -1", "22023"),
    ("boosted_tree_regressor", "dropout = 2", "22023"),
    ("boosted_tree_regressor", "booster_type = 'GBLINEAR'", "22023"),
    ("boosted_tree_regressor", "tree_method = 'GPU'", "22023"),
    ("boosted_tree_regressor", "num_parallel_tree = 0", "22023"),
    ("boosted_tree_regressor", "max_iterations = 0", "22023"),
    ("random_forest_regressor", "max_iterations = 5", "22023"),  # not a forest's option
    ("random_forest_regressor", "learn_rate = 0.1", "22023"),
    ("boosted_tree_regressor", "num_clusters = 3", "22023"),
    ("boosted_tree_regressor", "xgboost_version = '1.1'", "0A000"),
    ("boosted_tree_regressor", "category_encoding_method = 'TARGET_ENCODING'", "0A000"),
    ("boosted_tree_regressor", "category_encoding_method = 'HASH'", "22023"),
    (
        "boosted_tree_classifier",
        "auto_class_weights = TRUE, class_weights = [STRUCT('high', 2.0)]",
        "22023",
    ),
    ("boosted_tree_classifier", "class_weights = [STRUCT('nope', 2.0)]", "22023"),
]


@pytest.mark.parametrize(("model_type", "option", "sqlstate"), BAD)
def test_bad_options(
    trained: sqlml.Connection, model_type: str, option: str, sqlstate: str
) -> None:
    model, label = ("c", "segment") if model_type.endswith("classifier") else ("r", "value")
    with pytest.raises(errors.Error) as raised:
        trained.execute(
            f"CREATE OR REPLACE MODEL shop.{model} OPTIONS (model_type = '{model_type}',"
            f" input_label_cols = ['{label}'], {option})"
            f" AS SELECT tenure, plan, {label} FROM shop.customers"
        )
    assert raised.value.sqlstate == sqlstate
    # the session goes on and the version trained first still serves
    served = trained.execute(
        f"SELECT count(*) FROM ML.PREDICT(MODEL shop.{model}, TABLE shop.new_customers)"
    ).fetchone()
    assert served == (200,)


def test_a_continuous_label_is_refused_by_a_classifier(trained: sqlml.Connection) -> None:
    with pytest.raises(errors.Error) as raised:
        trained.execute(
            "CREATE OR REPLACE MODEL shop.c OPTIONS (model_type = 'boosted_tree_classifier',"
            " input_label_cols = ['value']) AS SELECT tenure, plan, value FROM shop.customers"
        )
    assert raised.value.sqlstate == "22023"


@pytest.mark.parametrize(
    ("weights", "sqlstate"), [("CASE WHEN id = 3 THEN NULL ELSE 1 END", "22000"), ("'x'", "42804")]
)
def test_bad_instance_weights(trained: sqlml.Connection, weights: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as raised:
        trained.execute(
            "CREATE OR REPLACE MODEL shop.r OPTIONS (model_type = 'boosted_tree_regressor',"
            " input_label_cols = ['value'], instance_weight_col = 'w')"
            f" AS SELECT tenure, plan, value, {weights} AS w FROM shop.customers"
        )
    assert raised.value.sqlstate == sqlstate


# -- every front door ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_type", "label"),
    [("boosted_tree_classifier", "segment"), ("random_forest_regressor", "value")],
)
def test_every_front_door_serves_trees(con: Any, model_type: str, label: str) -> None:
    """sqlml.connect on both engines and the gateway over both (psycopg 3): CREATE MODEL,
    ML.PREDICT (a small ensemble: compiled in auto mode) and ML.SCORE, against XGBoost."""
    small = {"max_tree_depth": 3, **({"max_iterations": 2} if "boosted" in model_type else {})}
    if "forest" in model_type:
        small["num_parallel_tree"] = 4
    con.execute(
        f"CREATE MODEL shop.m OPTIONS ({_options(model_type, label, **small)})"
        f" AS SELECT {', '.join([*FEATURES, label])} FROM shop.customers"
    )
    rows = con.execute(
        f"SELECT id, predicted_{label} FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers)"
        " ORDER BY id"
    ).fetchall()
    scores = con.execute(
        "SELECT id, ML.SCORE(MODEL shop.m) FROM shop.new_customers ORDER BY id"
    ).fetchall()
    tables = shop_tables()
    x, x_new = reference_matrix(tables["customers"], tables["new_customers"])
    values = _column(tables["customers"], label)
    regression = model_type.endswith("regressor")
    classes = None if regression else _labels(values)
    y = np.array(values, float) if classes is None else np.array([classes.index(v) for v in values])
    params = reference_params(model_type, None if classes is None else len(classes), **small)
    rounds = int(small.get("max_iterations", 1))
    booster = reference_fit(x, y, params, rounds)
    expected = booster.predict(xgboost.DMatrix(x_new)).astype(np.float64)
    if classes is None:
        np.testing.assert_allclose([r[1] for r in rows], expected, rtol=1e-5)
        np.testing.assert_allclose([r[1] for r in scores], expected, rtol=1e-5)
        return
    want = [classes[i] for i in np.argmax(expected, axis=1)]
    clear = np.ptp(np.sort(expected, axis=1)[:, -2:], axis=1) > 1e-5
    for got in ([r[1] for r in rows], [r[1] for r in scores]):  # multiclass ML.SCORE: the label
        assert [g for g, c in zip(got, clear, strict=True) if c] == [
            w for w, c in zip(want, clear, strict=True) if c
        ]


def test_plain_sql_api_serves_trees_from_psql(pg_database: str) -> None:
    """psql only (the extension's SQL API): create a boosted tree, then score it with the
    model's own SQL function, compiled (a small ensemble) and callable from any client."""
    import shutil
    import subprocess

    client = shutil.which("psql") or unavailable("psql is not installed")

    def psql(sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [client, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", pg_database, "-c", sql],
            capture_output=True,
            text=True,
            check=False,
        )

    created = psql(
        "SELECT sqlml.create_model('shop.bt', 'boosted_tree_regressor',"
        " 'SELECT tenure, spend, value FROM shop.customers',"
        ' \'{"input_label_cols": ["value"], "data_split_method": "NO_SPLIT",'
        ' "max_iterations": 3, "max_tree_depth": 3, "early_stop": false}\')'
    )
    assert created.returncode == 0, created.stderr
    scored = psql('SELECT sqlml."shop.bt"(tenure, spend) FROM shop.new_customers ORDER BY id')
    assert scored.returncode == 0, scored.stderr
    tables = shop_tables()
    train, new = tables["customers"], tables["new_customers"]
    x = np.column_stack([_filled(_column(train, c), _mean(train, c)) for c in ("tenure", "spend")])
    x_new = np.column_stack(
        [_filled(_column(new, c), _mean(train, c)) for c in ("tenure", "spend")]
    )
    params = reference_params("boosted_tree_regressor", None, max_tree_depth=3)
    booster = reference_fit(x, np.array(_column(train, "value"), float), params, 3)
    expected = booster.predict(xgboost.DMatrix(x_new))
    got = [float(v) for v in scored.stdout.split()]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _mean(table: pa.Table, name: str) -> float:
    return float(np.mean([v for v in _column(table, name) if v is not None and not np.isnan(v)]))
