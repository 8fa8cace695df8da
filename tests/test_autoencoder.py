"""autoencoder models (issue 13) on both engines, against scikit-learn's MLPRegressor trained
independently to reconstruct the same preprocessed rows (test_dnn.reference_matrix), one
``partial_fit`` per epoch as sqlml says it trains; the latent layer's output is computed here from
the reference network's weights.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from conftest import shop_tables
from sklearn.neural_network import MLPRegressor
from test_dnn import reference_matrix

import sqlml
from sqlml import errors

FEATURES = "tenure, spend, plan, promo"
Array = np.ndarray[Any, Any]


def _reference(units: tuple[int, ...], epochs: int, **options: Any) -> tuple[MLPRegressor, Array]:
    tables = shop_tables()
    x, x_new = reference_matrix(tables["customers"], tables["new_customers"])
    network = MLPRegressor(
        hidden_layer_sizes=units,
        activation=options.get("activation", "relu"),
        solver="adam",
        alpha=0.0,
        batch_size=options.get("batch_size", min(1024, len(x))),
        learning_rate_init=options.get("learn_rate", 0.001),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            network.partial_fit(x, x)
    return network, x_new


def _latent(network: MLPRegressor, x: Array) -> Array:
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[network.activation]
    h = x
    for w, b in list(zip(network.coefs_, network.intercepts_, strict=True))[
        : len(network.hidden_layer_sizes) // 2 + 1
    ]:
        h = act(h @ w + b)
    return np.asarray(h)


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
@pytest.mark.parametrize(
    ("units", "activation"), [((6, 2, 6), "RELU"), ((3,), "TANH"), ((8, 4, 3, 4, 8), "TANH")]
)
def test_autoencoder_matches_scikit_learn_on_the_same_rows(
    shop: sqlml.Connection, units: tuple[int, ...], activation: str, scoring: str
) -> None:
    shop.execute(
        "CREATE MODEL shop.a OPTIONS (model_type = 'autoencoder',"
        f" hidden_units = [{', '.join(map(str, units))}], activation_fn = '{activation}',"
        " learn_rate = 0.01, batch_size = 64, max_iterations = 4, early_stop = FALSE)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    network, x_new = _reference(
        units, 4, activation=activation.lower(), learn_rate=0.01, batch_size=64
    )
    cursor = shop.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.a, TABLE shop.new_customers,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    )
    names = [d[0] for d in cursor.description]
    latent = units[len(units) // 2]
    assert names[5:] == [f"latent_col_{i + 1}" for i in range(latent)]
    got = np.array([row[5:] for row in cursor.fetchall()], dtype=float)
    np.testing.assert_allclose(got, _latent(network, x_new), rtol=1e-6, atol=1e-9)
    # ML.EVALUATE over rows: the reconstruction's errors over every value
    mae, mse, msle = shop.execute(
        "SELECT mean_absolute_error, mean_squared_error, mean_squared_log_error"
        " FROM ML.EVALUATE(MODEL shop.a, TABLE shop.new_customers)"
    ).fetchone()
    error = network.predict(x_new) - x_new
    assert mae == pytest.approx(np.abs(error).mean(), rel=1e-6)
    assert mse == pytest.approx((error**2).mean(), rel=1e-6)
    assert msle is None  # (standardized features go below -1)


def test_without_hidden_units_bigquerys_default_layer(shop: sqlml.Connection) -> None:
    """No HIDDEN_UNITS: BigQuery's documented default, one hidden layer (the latent space) of
    min(128, num_samples / (10 * (num_input_units + num_output_units))) units, the preprocessed
    features in and out; the same network as scikit-learn's with that layer."""
    tables = shop_tables()
    x, _ = reference_matrix(tables["customers"], tables["new_customers"])
    width = max(1, min(128, len(x) // (10 * (x.shape[1] + x.shape[1]))))
    shop.execute(
        "CREATE MODEL shop.d OPTIONS (model_type = 'autoencoder', max_iterations = 2,"
        f" early_stop = FALSE) AS SELECT {FEATURES} FROM shop.customers"
    )
    network, x_new = _reference((width,), 2)
    cursor = shop.execute(
        "SELECT * FROM ML.PREDICT(MODEL shop.d, TABLE shop.new_customers) ORDER BY id"
    )
    names = [d[0] for d in cursor.description]
    assert names[5:] == [f"latent_col_{i + 1}" for i in range(width)]
    got = np.array([row[5:] for row in cursor.fetchall()], dtype=float)
    np.testing.assert_allclose(got, _latent(network, x_new), rtol=1e-6, atol=1e-9)


REFUSED = [
    ("hidden_units = [4, 2]", "22023"),  # an even number of layers
    ("hidden_units = [4, 0, 4]", "22023"),
    ("hidden_units = [4], activation_fn = 'CRELU'", "22023"),
    ("hidden_units = [4], activation_fn = 'ELU'", "0A000"),
    ("hidden_units = [4], optimizer = 'RMSPROP'", "0A000"),
    ("hidden_units = [4], dropout = 0.1", "0A000"),
    ("hidden_units = [4], l1_reg = 0.1", "0A000"),
    ("hidden_units = [4], l1_reg_activation = 0.1", "0A000"),
    ("hidden_units = [4], tf_version = '2.8.0'", "0A000"),
    ("hidden_units = [4], num_clusters = 3", "22023"),
]


@pytest.mark.parametrize(("options", "sqlstate"), REFUSED)
def test_what_an_autoencoder_cannot_honour_is_refused(
    shop: sqlml.Connection, options: str, sqlstate: str
) -> None:
    shop.execute(  # (the model type exists: its options are what is refused)
        "CREATE MODEL shop.ok OPTIONS (model_type = 'autoencoder', hidden_units = [1],"
        " max_iterations = 1) AS SELECT tenure, spend FROM shop.customers"
    )
    with pytest.raises(errors.Error) as raised:
        shop.execute(
            "CREATE MODEL shop.a OPTIONS (model_type = 'autoencoder'"
            f"{', ' if options else ''}{options}) AS SELECT {FEATURES} FROM shop.customers"
        )
    assert raised.value.sqlstate == sqlstate
    assert shop.execute("SELECT 1").fetchone() == (1,)


def test_autoencoder_records_the_training_reconstruction_errors(shop: sqlml.Connection) -> None:
    from sqlml.grammar.statements import ModelRef

    shop.execute(
        "CREATE MODEL shop.a OPTIONS (model_type = 'autoencoder', hidden_units = [4, 2, 4],"
        " learn_rate = 0.01, batch_size = 64, max_iterations = 3, early_stop = FALSE)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    network, _ = _reference((4, 2, 4), 3, learn_rate=0.01, batch_size=64)
    tables = shop_tables()
    x, _ = reference_matrix(tables["customers"], tables["new_customers"])
    errors_ = ((x - network.predict(x)) ** 2).mean(axis=1)
    info = shop.session.store.load(ModelRef("shop", "a")).training_info
    np.testing.assert_allclose(
        info["reconstruction_error_quantiles"],
        np.quantile(errors_, np.linspace(0, 1, 1001)),
        rtol=1e-6,
        atol=1e-12,
    )
