"""pca models (issue 13), their inspection functions (ML.PRINCIPAL_COMPONENTS,
ML.PRINCIPAL_COMPONENT_INFO) and k-means with DISTANCE_TYPE = 'COSINE', on both engines, against
scikit-learn fitted independently on the same preprocessed rows (test_dnn.reference_matrix:
BigQuery's automatic preprocessing written out by hand).

Signs: sqlml keeps scikit-learn's rule (each component's loading of largest absolute value is
positive), so components are compared as they are, and the rule itself is asserted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import shop_tables
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from test_dnn import reference_matrix

import sqlml
from sqlml import errors

FEATURES = "tenure, spend, plan, promo"
Array = np.ndarray[Any, Any]


def _matrices(scale: bool = True) -> tuple[Array, Array]:
    tables = shop_tables()
    x, x_new = reference_matrix(tables["customers"], tables["new_customers"])
    if not scale:  # the numeric columns (the first two) back on their own scale
        for j, name in enumerate(("tenure", "spend")):
            raw = np.array(
                [np.nan if v is None else v for v in tables["customers"].column(name).to_pylist()]
            )
            mean = np.nanmean(raw)
            std = np.where(np.isnan(raw), mean, raw).std()
            x[:, j] = x[:, j] * std + mean
            x_new[:, j] = x_new[:, j] * std + mean
    return x, x_new


def _components(con: sqlml.Connection, model: str, scoring: str) -> Array:
    cursor = con.execute(
        f"SELECT * FROM ML.PREDICT(MODEL {model}, TABLE shop.new_customers,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    )
    names = [d[0] for d in cursor.description]
    picked = [i for i, n in enumerate(names) if n.startswith("principal_component_")]
    assert names[: len(names) - len(picked)] == ["id", "tenure", "spend", "plan", "promo"]
    return np.array([[row[i] for i in picked] for row in cursor.fetchall()], dtype=float)


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
@pytest.mark.parametrize(
    ("options", "reference", "scale"),
    [
        ("num_principal_components = 3", {"n_components": 3}, True),
        ("num_principal_components = 2, pca_solver = 'FULL'", {"n_components": 2}, True),
        (
            "pca_explained_variance_ratio = 0.7",
            {"n_components": 0.7, "svd_solver": "full"},
            True,
        ),
        ("num_principal_components = 2, scale_features = FALSE", {"n_components": 2}, False),
        (
            "num_principal_components = 2, pca_solver = 'RANDOMIZED'",
            {"n_components": 2, "svd_solver": "randomized", "random_state": 0},
            True,
        ),
    ],
)
def test_pca_matches_scikit_learn_on_the_same_rows(
    shop: sqlml.Connection, options: str, reference: dict[str, Any], scale: bool, scoring: str
) -> None:
    shop.execute(
        f"CREATE MODEL shop.p OPTIONS (model_type = 'pca', {options})"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, x_new = _matrices(scale)
    fitted = PCA(**reference).fit(x)
    # the sign rule: each component's largest loading (in absolute value) is positive, the
    # first of them where they tie (the third component here: the two promo columns load as
    # x and -x, and which is larger by rounding depends on the machine's BLAS)
    for loadings in fitted.components_:
        size = np.abs(loadings)
        first = int(np.flatnonzero(size >= size.max() * (1 - 1e-9))[0])
        loadings *= np.sign(loadings[first])
    got = _components(shop, "shop.p", scoring)
    np.testing.assert_allclose(got, fitted.transform(x_new), rtol=1e-6, atol=1e-9)
    (ratio,) = shop.execute("SELECT * FROM ML.EVALUATE(MODEL shop.p)").fetchone()
    assert ratio == pytest.approx(fitted.explained_variance_ratio_.sum(), rel=1e-9)


def test_pca_inspection_functions(shop: sqlml.Connection) -> None:
    shop.execute(
        "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, _ = _matrices()
    fitted = PCA(n_components=2).fit(x)
    cursor = shop.execute("SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL shop.p)")
    assert [d[0] for d in cursor.description] == [
        "principal_component_id",
        "eigenvalue",
        "explained_variance_ratio",
        "cumulative_explained_variance_ratio",
    ]
    info = cursor.fetchall()
    assert [r[0] for r in info] == [0, 1]
    np.testing.assert_allclose([r[1] for r in info], fitted.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose([r[2] for r in info], fitted.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(
        [r[3] for r in info], np.cumsum(fitted.explained_variance_ratio_), rtol=1e-9
    )
    cursor = shop.execute(
        "SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL shop.p)"
        " ORDER BY principal_component_id, feature"
    )
    assert [d[0] for d in cursor.description] == [
        "principal_component_id",
        "feature",
        "numerical_value",
        "categorical_value",
    ]
    rows = cursor.fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        (c, f) for c in (0, 1) for f in ("plan", "promo", "spend", "tenure")
    ]
    # the reference matrix's columns: tenure, spend, plan (NULL, basic, plus, premium as sorted
    # keys), promo (false, true)
    for row in rows:
        component = fitted.components_[row[0]]
        if row[1] in ("tenure", "spend"):
            assert row[2] == pytest.approx(component[("tenure", "spend").index(row[1])], abs=1e-9)
            assert list(row[3] or []) == []
            continue
        assert row[2] is None
        values = {p["category"]: p["value"] for p in row[3]}
        if row[1] == "promo":
            assert values["false"] == pytest.approx(component[6], abs=1e-9)
            assert values["true"] == pytest.approx(component[7], abs=1e-9)
        else:
            assert values["basic"] == pytest.approx(component[2], abs=1e-9)
            assert values[None] == pytest.approx(component[5], abs=1e-9)


def test_pca_evaluate_over_rows_and_score(shop: sqlml.Connection) -> None:
    shop.execute(
        "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, x_new = _matrices()
    fitted = PCA(n_components=2).fit(x)
    (ratio,) = shop.execute(
        "SELECT * FROM ML.EVALUATE(MODEL shop.p, TABLE shop.new_customers)"
    ).fetchone()
    z = fitted.transform(x_new)
    expected = np.var(z, axis=0, ddof=1).sum() / np.var(x_new, axis=0, ddof=1).sum()
    assert ratio == pytest.approx(expected, rel=1e-9)
    scores = shop.execute(
        "SELECT ML.SCORE(MODEL shop.p, c) FROM shop.new_customers AS c ORDER BY id"
    ).fetchall()
    np.testing.assert_allclose([s[0] for s in scores], z[:, 0], rtol=1e-6, atol=1e-9)


REFUSED = [
    ("", "22023"),  # neither count nor ratio
    ("num_principal_components = 2, pca_explained_variance_ratio = 0.5", "22023"),
    ("num_principal_components = 0", "22023"),
    ("num_principal_components = 50", "22023"),
    ("pca_explained_variance_ratio = 1.5", "22023"),
    ("num_principal_components = 2, pca_solver = 'ARPACK'", "22023"),
    ("num_principal_components = 2, max_iterations = 3", "22023"),
    ("pca_explained_variance_ratio = 0.5, pca_solver = 'RANDOMIZED'", "0A000"),
    ("num_principal_components = 2, kms_key_name = 'k'", "0A000"),
]


@pytest.mark.parametrize(("options", "sqlstate"), REFUSED)
def test_bad_pca_options_are_refused(shop: sqlml.Connection, options: str, sqlstate: str) -> None:
    shop.execute(  # (the model type exists: its options are what is refused)
        "CREATE MODEL shop.ok OPTIONS (model_type = 'pca', num_principal_components = 1)"
        " AS SELECT tenure, spend FROM shop.customers"
    )
    with pytest.raises(errors.Error) as raised:
        shop.execute(
            f"CREATE MODEL shop.p OPTIONS (model_type = 'pca'{', ' if options else ''}{options})"
            f" AS SELECT {FEATURES} FROM shop.customers"
        )
    assert raised.value.sqlstate == sqlstate
    assert shop.execute("SELECT 1").fetchone() == (1,)


def test_inspection_of_another_model_type_is_0a000(shop: sqlml.Connection) -> None:
    shop.execute(
        "CREATE MODEL shop.k OPTIONS (model_type = 'kmeans', num_clusters = 2)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    for function in ("PRINCIPAL_COMPONENTS", "PRINCIPAL_COMPONENT_INFO"):
        with pytest.raises(errors.Error) as raised:
            shop.execute(f"SELECT * FROM ML.{function}(MODEL shop.k)")
        assert raised.value.sqlstate == "0A000"


# -- k-means, DISTANCE_TYPE = 'COSINE' ------------------------------------------------------------


def _unit(x: Array) -> Array:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norms == 0, 1.0, norms))


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_cosine_kmeans_matches_scikit_learn_on_normalized_rows(
    shop: sqlml.Connection, scoring: str
) -> None:
    shop.execute(
        "CREATE MODEL shop.k OPTIONS (model_type = 'kmeans', num_clusters = 3,"
        " distance_type = 'COSINE', kmeans_init_method = 'KMEANS++')"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, x_new = _matrices()
    fitted = KMeans(
        n_clusters=3, init="k-means++", n_init=1, max_iter=20, tol=0.01, random_state=0
    ).fit(_unit(x))
    centers = _unit(fitted.cluster_centers_)
    distances = 1.0 - _unit(x_new) @ centers.T
    rows = shop.execute(
        "SELECT centroid_id, nearest_centroids_distance FROM ML.PREDICT(MODEL shop.k,"
        f" TABLE shop.new_customers, STRUCT('{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == list(np.argmin(distances, axis=1) + 1)
    got = np.array(
        [[{p["centroid_id"]: p["distance"] for p in r[1]}[c + 1] for c in range(3)] for r in rows]
    )
    np.testing.assert_allclose(got, distances, atol=1e-9)
    # nearest first, and the distances are 1 - cosine similarity
    assert all(r[1][0]["centroid_id"] == r[0] for r in rows)
    assert ((got >= -1e-12) & (got <= 2 + 1e-12)).all()


def _cosine_davies_bouldin(x: Array, labels: Array) -> float:
    """The Davies-Bouldin index with 1 - cosine similarity as the distance, by its definition:
    per cluster the normalized mean of its unit rows, the mean distance of its rows to it; the
    mean over clusters of the largest (S_i + S_j) / d(c_i, c_j)."""
    unit = _unit(x)
    ids = sorted(set(labels.tolist()))
    centers = {k: _unit(unit[labels == k].mean(axis=0)[None, :])[0] for k in ids}
    scatter = {k: float(np.mean(1.0 - unit[labels == k] @ centers[k])) for k in ids}
    worst = [
        max((scatter[i] + scatter[j]) / (1.0 - centers[i] @ centers[j]) for j in ids if j != i)
        for i in ids
    ]
    return float(np.mean(worst))


def test_cosine_kmeans_davies_bouldin_index_uses_cosine_distance(shop: sqlml.Connection) -> None:
    """ML.EVALUATE's davies_bouldin_index of a COSINE model, stored at training and over rows,
    in the model's own distance (not the Euclidean one of scikit-learn's davies_bouldin_score)."""
    from sklearn.metrics import davies_bouldin_score

    shop.execute(
        "CREATE MODEL shop.kc OPTIONS (model_type = 'kmeans', num_clusters = 3,"
        " distance_type = 'COSINE', kmeans_init_method = 'KMEANS++')"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, x_new = _matrices()
    fitted = KMeans(
        n_clusters=3, init="k-means++", n_init=1, max_iter=20, tol=0.01, random_state=0
    ).fit(_unit(x))
    centers = _unit(fitted.cluster_centers_)
    for rows, query in ((x, ""), (x_new, ", TABLE shop.new_customers")):
        labels = np.argmin(1.0 - _unit(rows) @ centers.T, axis=1)
        expected = _cosine_davies_bouldin(rows, labels)
        assert not np.isclose(expected, davies_bouldin_score(rows, labels), rtol=1e-3)
        found = shop.execute(
            f"SELECT davies_bouldin_index FROM ML.EVALUATE(MODEL shop.kc{query})"
        ).fetchone()
        assert found is not None
        assert float(found[0]) == pytest.approx(expected, rel=1e-6)


def test_pca_records_the_training_reconstruction_errors(shop: sqlml.Connection) -> None:
    """What ML.DETECT_ANOMALIES' contamination needs from training: the quantiles (every 0.1%)
    of the training rows' reconstruction errors (each row's mean squared error)."""
    from sqlml.grammar.statements import ModelRef

    shop.execute(
        "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    x, _ = _matrices()
    fitted = PCA(n_components=2).fit(x)
    errors_ = ((x - fitted.inverse_transform(fitted.transform(x))) ** 2).mean(axis=1)
    info = shop.session.store.load(ModelRef("shop", "p")).training_info
    recorded = info["reconstruction_error_quantiles"]
    assert len(recorded) == 1001
    np.testing.assert_allclose(
        recorded, np.quantile(errors_, np.linspace(0, 1, 1001)), rtol=1e-6, atol=1e-12
    )


def test_a_view_of_a_pca_prediction(shop: sqlml.Connection) -> None:
    """The view's columns are ML.PREDICT's (PostgreSQL: from the prediction function's array
    of raw outputs, tests/test_views_raw.py), and ML.SCORE works."""
    shop.execute(
        "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
        f" AS SELECT {FEATURES} FROM shop.customers"
    )
    predict = "SELECT * FROM ML.PREDICT(MODEL shop.p, TABLE shop.new_customers)"
    shop.execute(f"CREATE VIEW shop.v AS {predict}")
    assert (
        shop.execute("SELECT * FROM shop.v ORDER BY id").fetchall()
        == shop.execute(f"{predict} ORDER BY id").fetchall()
    )
    shop.execute(
        "CREATE VIEW shop.s AS SELECT id, ML.SCORE(MODEL shop.p, c) AS z"
        " FROM shop.new_customers AS c"
    )
    x, x_new = _matrices()
    expected = PCA(n_components=2).fit(x).transform(x_new)[:, 0]
    got = [r[0] for r in shop.execute("SELECT z FROM shop.s ORDER BY id").fetchall()]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_pca_through_every_front_door(con: Any) -> None:
    """sqlml.connect on both engines, the gateway over DuckDB and the PostgreSQL proxy: the
    inspection functions' columns and values, and ML.PREDICT's components."""
    from test_inspection import number, rows, structs

    con.execute(
        "CREATE OR REPLACE MODEL shop.p OPTIONS (model_type = 'pca',"
        f" num_principal_components = 2) AS SELECT {FEATURES} FROM shop.customers"
    )
    x, x_new = _matrices()
    fitted = PCA(n_components=2).fit(x)
    names, info = rows(con, "SELECT * FROM ML.PRINCIPAL_COMPONENT_INFO(MODEL shop.p)")
    assert names[0] == "principal_component_id"
    np.testing.assert_allclose(
        [number(r["explained_variance_ratio"]) for r in info],
        fitted.explained_variance_ratio_,
        rtol=1e-9,
    )
    names, found = rows(
        con,
        "SELECT * FROM ML.PRINCIPAL_COMPONENTS(MODEL shop.p)"
        " WHERE principal_component_id = 0 AND feature = 'promo'",
    )
    (promo,) = found
    pairs = structs(promo["categorical_value"], ("category", "value"))
    assert [p["category"] for p in pairs] == ["false", "true"]
    np.testing.assert_allclose(
        [number(p["value"]) for p in pairs], fitted.components_[0][6:8], atol=1e-9
    )
    names, predicted = rows(
        con,
        "SELECT principal_component_1, principal_component_2 FROM ML.PREDICT(MODEL shop.p,"
        " TABLE shop.new_customers) ORDER BY id",
    )
    got = [
        [number(r["principal_component_1"]), number(r["principal_component_2"])] for r in predicted
    ]
    np.testing.assert_allclose(got, fitted.transform(x_new), rtol=1e-6, atol=1e-9)
