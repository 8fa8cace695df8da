"""ML.PREDICT inside CREATE VIEW for models with several raw outputs and no prediction of their
own (pca, autoencoder, imported ONNX graphs), on both engines (issue 13 point 5).

On PostgreSQL the view calls the model's prediction function, which returns the raw outputs as
one ``double precision[]`` and which every CREATE OR REPLACE MODEL replaces (views.py): the view
gives what a plain ML.PREDICT gives, before and after a retraining, and the values are
scikit-learn's (pca, autoencoder) or onnxruntime's (an imported graph) on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from test_autoencoder import FEATURES, _latent, _reference
from test_byom import ROWS, _fit, _onnxruntime, _pg_rows, _write
from test_pca import _matrices

import sqlml


def _same(shop: sqlml.Connection, view: str, plain: str) -> list[tuple[object, ...]]:
    """The view's rows, asserted equal to the plain query's."""
    got = shop.execute(f"SELECT * FROM {view} ORDER BY id").fetchall()
    assert got == shop.execute(f"{plain} ORDER BY id").fetchall()
    return got


def test_a_view_of_pca_predictions_follows_the_serving_version(shop: sqlml.Connection) -> None:
    create = (
        "CREATE OR REPLACE MODEL shop.p OPTIONS (model_type = 'pca',"
        " num_principal_components = 2{}) AS SELECT " + FEATURES + " FROM shop.customers"
    )
    shop.execute(create.format(""))
    predict = "SELECT * FROM ML.PREDICT(MODEL shop.p, TABLE shop.new_customers)"
    shop.execute(f"CREATE VIEW shop.v AS {predict}")
    rows = _same(shop, "shop.v", predict)
    names = [d[0] for d in shop.execute("SELECT * FROM shop.v LIMIT 0").description]
    assert names[-2:] == ["principal_component_1", "principal_component_2"]
    x, x_new = _matrices()
    expected = PCA(n_components=2).fit(x).transform(x_new)
    np.testing.assert_allclose([r[-2:] for r in rows], expected, rtol=1e-6, atol=1e-9)
    shop.execute(create.format(", scale_features = FALSE"))  # version 2: other components
    rows = _same(shop, "shop.v", predict)
    x, x_new = _matrices(scale=False)
    expected = PCA(n_components=2).fit(x).transform(x_new)
    np.testing.assert_allclose([r[-2:] for r in rows], expected, rtol=1e-6, atol=1e-6)


def test_a_view_of_autoencoder_predictions(shop: sqlml.Connection) -> None:
    shop.execute(
        "CREATE MODEL shop.a OPTIONS (model_type = 'autoencoder', hidden_units = [6, 2, 6],"
        " activation_fn = 'RELU', learn_rate = 0.01, batch_size = 64, max_iterations = 4,"
        f" early_stop = FALSE) AS SELECT {FEATURES} FROM shop.customers"
    )
    predict = "SELECT * FROM ML.PREDICT(MODEL shop.a, TABLE shop.new_customers)"
    shop.execute(f"CREATE VIEW shop.v AS {predict}")
    rows = _same(shop, "shop.v", predict)
    network, x_new = _reference((6, 2, 6), 4, activation="relu", learn_rate=0.01, batch_size=64)
    got = np.array([r[-2:] for r in rows], dtype=float)
    np.testing.assert_allclose(got, _latent(network, x_new), rtol=1e-6, atol=1e-9)


def test_a_view_of_an_imported_classifier(
    shop: sqlml.Connection, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Label and probabilities: four raw outputs from one prediction function."""
    path = _write(_fit("classifier"), tmp_path / "clf.onnx", zipmap=False)
    if shop.session.engine.dialect == "postgres":
        _pg_rows(str(request.getfixturevalue("pg_database")))
    else:
        shop.execute("CREATE TABLE rows (id INTEGER, x1 DOUBLE, x2 DOUBLE)")
        for i, (a, b) in enumerate(ROWS):
            shop.execute(f"INSERT INTO rows VALUES ({i}, {a}, {b})")
    shop.execute(f"CREATE MODEL clf OPTIONS (model_type = 'onnx', model_path = '{path}')")
    predict = "SELECT * FROM ML.PREDICT(MODEL clf, TABLE rows)"
    shop.execute(f"CREATE VIEW scored AS {predict}")
    rows = _same(shop, "scored", predict)
    direct = _onnxruntime(path)
    assert [r[3] for r in rows] == list(direct["label"])
    np.testing.assert_allclose([r[4] for r in rows], direct["probabilities"], atol=1e-6)


def test_an_upgrade_gives_older_pca_models_their_prediction_function(pg_database: str) -> None:
    """Installs before this one made no prediction function for pca models: the upgrade's
    sqlml.upgrade_scoring_functions() adds it, and a view can use it."""
    import psycopg2

    with sqlml.connect(pg_database, autocommit=True) as shop:
        shop.execute(
            "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
            f" AS SELECT {FEATURES} FROM shop.customers"
        )
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    with con, con.cursor() as cur:
        name = "sqlml.predict_function_name('shop', 'p')"
        cur.execute(f"SELECT p.oid::regprocedure FROM pg_proc p WHERE p.proname = {name}")
        (signature,) = cur.fetchone()
        cur.execute(f"DROP FUNCTION {signature}")  # as an older install left it
        cur.execute("SELECT sqlml.upgrade_scoring_functions()")
        assert cur.fetchone() == (1,)
        cur.execute(f"SELECT count(*) FROM pg_proc p WHERE p.proname = {name}")
        assert cur.fetchone() == (1,)
    con.close()
    with sqlml.connect(pg_database, autocommit=True) as shop:
        predict = "SELECT * FROM ML.PREDICT(MODEL shop.p, TABLE shop.new_customers)"
        shop.execute(f"CREATE VIEW shop.v AS {predict}")
        _same(shop, "shop.v", predict)
