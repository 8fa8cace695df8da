"""dnn_regressor and dnn_classifier (issue 13, point 2) on both engines, against scikit-learn's
multilayer perceptron fitted independently on the same preprocessed rows.

The reference preprocesses the shop tables itself as BigQuery documents (numeric: NULL -> mean,
then standardized with the imputed column's mean and population deviation; STRING and BOOL:
one-hot over the sorted categories, NULL a category of its own), builds the perceptron from the
options by hand and trains it for as many epochs with ``partial_fit``, as sqlml says it does.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import shop_tables
from sklearn.neural_network import MLPClassifier, MLPRegressor

import sqlml
from sqlml import errors
from sqlml.grammar.statements import ModelRef

FEATURES = ["tenure", "spend", "plan", "promo"]
NULL = "\u2400"
Array = np.ndarray[Any, Any]


def _values(table: pa.Table, name: str) -> list[Any]:
    return list(table.column(name).to_pylist())


def _key(v: Any) -> Any:
    return NULL if v is None else (str(v).lower() if isinstance(v, bool) else v)


def reference_matrix(train: pa.Table, rows: pa.Table) -> tuple[Array, Array]:
    fitted, scored = [], []
    for name in FEATURES:
        values, new = _values(train, name), _values(rows, name)
        if name in ("tenure", "spend"):
            a = np.array([np.nan if v is None else v for v in values], dtype=float)
            b = np.array([np.nan if v is None else v for v in new], dtype=float)
            mean = np.nanmean(a)
            a, b = np.where(np.isnan(a), mean, a), np.where(np.isnan(b), mean, b)
            std = a.std() or 1.0
            fitted.append(((a - mean) / std)[:, None])
            scored.append(((b - mean) / std)[:, None])
            continue
        categories = sorted({_key(v) for v in values})
        fitted.append(np.array([[_key(v) == c for c in categories] for v in values], float))
        scored.append(np.array([[_key(v) == c for c in categories] for v in new], float))
    return np.hstack(fitted), np.hstack(scored)


def reference(
    model_type: str, label: str, epochs: int, units: tuple[int, ...], **options: Any
) -> tuple[Array, list[Any] | None]:
    tables = shop_tables()
    x, x_new = reference_matrix(tables["customers"], tables["new_customers"])
    values = _values(tables["customers"], label)
    classifier = model_type == "dnn_classifier"
    classes = sorted(set(values)) if classifier else None
    y = np.array([classes.index(v) for v in values]) if classes else np.array(values, float)
    cls = MLPClassifier if classifier else MLPRegressor
    network = cls(
        hidden_layer_sizes=units,
        activation={"RELU": "relu", "TANH": "tanh", "SIGMOID": "logistic"}[
            options.get("activation_fn", "RELU")
        ],
        solver=options.get("optimizer", "ADAM").lower(),
        alpha=options.get("l2_reg", 0.0),
        batch_size=options.get("batch_size", min(1024, len(y))),
        learning_rate_init=options.get("learn_rate", 0.001),
        random_state=0,
    )
    extra = {"classes": np.arange(len(classes))} if classes else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            network.partial_fit(x, y, **extra)
            extra = {}
    return (network.predict_proba(x_new) if classes else network.predict(x_new)), classes


def _sql(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_sql(v) for v in value) + "]"
    return repr(value)


CASES = [
    ("dnn_regressor", "value", {"hidden_units": [16], "learn_rate": 0.01, "batch_size": 64}),
    (
        "dnn_classifier",
        "segment",
        {"hidden_units": [3], "activation_fn": "TANH", "learn_rate": 0.01, "l2_reg": 0.01},
    ),
    (
        "dnn_classifier",
        "churned",
        {"hidden_units": [6], "activation_fn": "SIGMOID", "optimizer": "SGD", "learn_rate": 0.05},
    ),
]


@pytest.mark.parametrize(("model_type", "label", "options"), CASES)
@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_dnn_matches_scikit_learn_on_the_same_rows(
    shop: sqlml.Connection, model_type: str, label: str, options: dict[str, Any], scoring: str
) -> None:
    given = {
        "model_type": model_type,
        "input_label_cols": [label],
        "data_split_method": "NO_SPLIT",
        "early_stop": False,
        "max_iterations": 6,
        **options,
    }
    shop.execute(
        "CREATE MODEL shop.m OPTIONS ("
        + ", ".join(f"{k} = {_sql(v)}" for k, v in given.items())
        + f") AS SELECT {', '.join(FEATURES)}, {label} FROM shop.customers"
    )
    rows = shop.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    units = tuple(options["hidden_units"])
    expected, classes = reference(model_type, label, 6, units, **options)
    if classes is None:
        np.testing.assert_allclose([r[-1] for r in rows], expected, rtol=1e-6, atol=1e-9)
        return
    got = np.array([[{p["label"]: p["prob"] for p in r[-1]}[c] for c in classes] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    clear = np.ptp(np.sort(expected, axis=1)[:, -2:], axis=1) > 1e-6
    predicted = [r[-2] for r in rows]
    want = [classes[i] for i in np.argmax(expected, axis=1)]
    assert [p for p, c in zip(predicted, clear, strict=True) if c] == [
        w for w, c in zip(want, clear, strict=True) if c
    ]


def test_default_layer_and_early_stop(shop: sqlml.Connection) -> None:
    """No HIDDEN_UNITS: one layer of min(128, N / (10 (inputs + outputs))) units; EARLY_STOP
    stops after the first epoch whose relative progress is below MIN_REL_PROGRESS."""
    shop.execute(
        "CREATE MODEL shop.m OPTIONS (model_type = 'dnn_regressor', input_label_cols = ['value'],"
        " data_split_method = 'NO_SPLIT', learn_rate = 0.01, batch_size = 32,"
        " min_rel_progress = 0.05, max_iterations = 200)"
        " AS SELECT tenure, spend, plan, promo, value FROM shop.customers"
    )
    info = shop.session.store.load(ModelRef("shop", "m")).training_info
    losses = [h["loss"] for h in info["history"]]
    progress = [(a - b) / a for a, b in itertools.pairwise(losses)]
    assert all(p >= 0.05 for p in progress[:-1])
    assert progress[-1] < 0.05
    assert len(losses) < 200
    # 800 rows, 9 feature columns (2 numeric, 4 plan categories, 2 promo values... as encoded)
    rows = shop.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers) ORDER BY id"
    ).fetchall()
    width = 2 + len({_key(v) for v in _values(shop_tables()["customers"], "plan")}) + 2
    units = max(1, min(128, 800 // (10 * (width + 1))))
    expected, _ = reference(
        "dnn_regressor", "value", len(losses), (units,), learn_rate=0.01, batch_size=32
    )
    np.testing.assert_allclose([r[-1] for r in rows], expected, rtol=1e-6, atol=1e-9)


def test_a_network_too_large_for_sql_scores_at_runtime(shop: sqlml.Connection) -> None:
    """Two dense layers multiply the compiled expression (14 million nodes for 8 x 8 units over
    a 5-class label): above to_sql.MAX_TREE_NODES it is not compiled, auto mode scores it with
    onnxruntime at once, and compiled mode is 0A000."""
    shop.execute(
        "CREATE MODEL shop.m OPTIONS (model_type = 'dnn_classifier',"
        " input_label_cols = ['segment'], hidden_units = [8, 8], max_iterations = 2)"
        " AS SELECT tenure, spend, plan, promo, segment FROM shop.customers"
    )
    rows = shop.execute(
        "SELECT count(*) FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers)"
    ).fetchone()
    assert rows == (200,)
    with pytest.raises(errors.Error) as raised:
        shop.execute(
            "SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers,"
            " STRUCT('compiled' AS scoring))"
        )
    assert raised.value.sqlstate == "0A000"


REFUSED = [
    ("activation_fn = 'ELU'", "0A000"),
    ("activation_fn = 'CRELU'", "0A000"),
    ("optimizer = 'ADAGRAD'", "0A000"),
    ("optimizer = 'FTRL'", "0A000"),
    ("dropout = 0.2", "0A000"),
    ("l1_reg = 0.1", "0A000"),
    ("tf_version = '2.8.0'", "0A000"),
    ("activation_fn = 'SOFTPLUS'", "22023"),
    ("hidden_units = [0]", "22023"),
    ("hidden_units = ['a']", "22023"),
    ("dropout = 1.5", "22023"),
    ("learn_rate = 0", "22023"),
    ("batch_size = -1", "22023"),
    ("max_tree_depth = 3", "22023"),
]


@pytest.mark.parametrize(("option", "sqlstate"), REFUSED)
def test_what_cannot_be_honoured_is_refused(
    shop_module: sqlml.Connection, option: str, sqlstate: str
) -> None:
    with pytest.raises(errors.Error) as raised:
        shop_module.execute(
            "CREATE MODEL shop.m OPTIONS (model_type = 'dnn_regressor',"
            f" input_label_cols = ['value'], {option}) AS SELECT tenure, value FROM shop.customers"
        )
    assert raised.value.sqlstate == sqlstate
    assert shop_module.execute("SELECT 1").fetchone() == (1,)


def test_every_front_door_serves_dnn(con: Any) -> None:
    """sqlml.connect on both engines and the gateway over both: CREATE MODEL, ML.PREDICT and
    ML.SCORE of a dnn_regressor, against scikit-learn's perceptron."""
    options = {"hidden_units": [4], "learn_rate": 0.01, "batch_size": 64}
    con.execute(
        "CREATE MODEL shop.m OPTIONS (model_type = 'dnn_regressor', input_label_cols = ['value'],"
        " data_split_method = 'NO_SPLIT', early_stop = FALSE, max_iterations = 3,"
        " hidden_units = [4], learn_rate = 0.01, batch_size = 64)"
        f" AS SELECT {', '.join(FEATURES)}, value FROM shop.customers"
    )
    rows = con.execute(
        "SELECT id, predicted_value FROM ML.PREDICT(MODEL shop.m, TABLE shop.new_customers)"
        " ORDER BY id"
    ).fetchall()
    scores = con.execute(
        "SELECT id, ML.SCORE(MODEL shop.m) FROM shop.new_customers ORDER BY id"
    ).fetchall()
    expected, _ = reference("dnn_regressor", "value", 3, (4,), **options)
    np.testing.assert_allclose([r[1] for r in rows], expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose([r[1] for r in scores], expected, rtol=1e-6, atol=1e-9)
