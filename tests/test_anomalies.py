"""ML.DETECT_ANOMALIES (kmeans, pca, autoencoder) and ML.RECONSTRUCTION_LOSS (pca, autoencoder),
and ML.CONFUSION_MATRIX and ML.ROC_CURVE without rows (issue 13, point 4), on both engines and
through the gateway, against an independent computation on the same preprocessed rows
(test_dnn.reference_matrix: BigQuery's automatic preprocessing written out by hand):
scikit-learn's PCA, MLPRegressor (trained as test_autoencoder trains it) and KMeans, each
threshold the (1 - contamination) quantile of the training rows' metric by np.quantile.

The models are trained once per engine (module-scoped) and only read by the tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import TEMPLATE, gateway_parts, load_shop, serving, shop_tables
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from test_autoencoder import _reference as autoencoder_reference
from test_dnn import reference_matrix

import sqlml

Array = np.ndarray[Any, Any]
FEATURES = "tenure, spend, plan, promo"
INPUT = ["id", "tenure", "spend", "plan", "promo"]
MODELS = (
    "CREATE MODEL shop.p OPTIONS (model_type = 'pca', num_principal_components = 2)"
    f" AS SELECT {FEATURES} FROM shop.customers",
    "CREATE MODEL shop.a OPTIONS (model_type = 'autoencoder', hidden_units = [6, 2, 6],"
    " activation_fn = 'RELU', learn_rate = 0.01, batch_size = 64, max_iterations = 4,"
    f" early_stop = FALSE) AS SELECT {FEATURES} FROM shop.customers",
    "CREATE MODEL shop.k OPTIONS (model_type = 'kmeans', num_clusters = 3,"
    f" kmeans_init_method = 'KMEANS++') AS SELECT {FEATURES} FROM shop.customers",
    "CREATE MODEL shop.churn OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['churned'], data_split_method = 'NO_SPLIT')"
    " AS SELECT tenure, spend, plan, churned FROM shop.customers",
    "CREATE MODEL shop.split OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['churned'], data_split_method = 'RANDOM',"
    " data_split_eval_fraction = 0.3) AS SELECT tenure, spend, plan, churned FROM shop.customers",
    "CREATE MODEL shop.seg OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['segment'], data_split_method = 'NO_SPLIT')"
    " AS SELECT tenure, spend, plan, segment FROM shop.customers",
)
_databases = itertools.count(1)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database per engine with the shop tables and the models above, shared by the module."""
    if request.param == "postgres":
        import pgcluster

        server = request.getfixturevalue("pg_server")
        name = f"sqlml_anomalies_{next(_databases)}"
        dsn = pgcluster.create_database(server, name, template=TEMPLATE)
        _train(dsn, load=False)
        yield dsn
        pgcluster.drop_database(server, name)
        return
    path = str(tmp_path_factory.mktemp("anomalies") / "t.duckdb")
    _train(path, load=True)
    yield path


def _train(database: str, load: bool) -> None:
    con = sqlml.connect(database, autocommit=True)
    try:
        if load:
            load_shop(con)
        for statement in MODELS:
            con.execute(statement)
    finally:
        con.close()


@pytest.fixture
def con(database: str) -> Iterator[sqlml.Connection]:
    connection = sqlml.connect(database, autocommit=True)
    yield connection
    connection.close()


def rows(con: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql)
    return [c[0] for c in cursor.description], cursor.fetchall()


def fails(con: Any, sql: str) -> str | None:
    with pytest.raises(sqlml.Error) as caught:
        con.execute(sql).fetchall()
    return caught.value.sqlstate


def _detect(con: Any, model: str, contamination: float, table: str = "shop.new_customers") -> Any:
    return rows(
        con,
        f"SELECT * FROM ML.DETECT_ANOMALIES(MODEL shop.{model},"
        f" STRUCT({contamination} AS contamination), TABLE {table}) ORDER BY id",
    )


def _matrices() -> tuple[Array, Array]:
    tables = shop_tables()
    return reference_matrix(tables["customers"], tables["new_customers"])


def _flags(found: list[tuple[Any, ...]], metric: Array, threshold: float) -> None:
    """is_anomaly is metric > threshold (rows within 1e-9 of the threshold left out)."""
    clear = np.abs(metric - threshold) > 1e-9 * max(1.0, abs(threshold))
    assert all(isinstance(r[0], bool) for r in found)
    flags = np.array([r[0] for r in found])
    np.testing.assert_array_equal(flags[clear], (metric > threshold)[clear])


# -- the independent references --------------------------------------------------------------------


def _pca_errors() -> tuple[Array, Array]:
    """Each row's mean squared reconstruction error: (training rows, new rows)."""
    x, x_new = _matrices()
    fitted = PCA(n_components=2).fit(x)

    def error(m: Array) -> Array:
        return np.asarray(np.mean((m - fitted.inverse_transform(fitted.transform(m))) ** 2, 1))

    return error(x), error(x_new)


def _autoencoder() -> tuple[Array, Array, Array]:
    """(training errors, the new rows, their reconstruction)."""
    network, x_new = autoencoder_reference((6, 2, 6), 4, learn_rate=0.01, batch_size=64)
    x, _ = _matrices()
    train = np.mean((x - network.predict(x)) ** 2, axis=1)
    return np.asarray(train), x_new, np.asarray(network.predict(x_new))


def _kmeans() -> tuple[Array, Array, Array]:
    """(training normalized distances, new rows' normalized distances, their centroid ids)."""
    x, x_new = _matrices()
    fitted = KMeans(
        n_clusters=3, init="k-means++", n_init=1, max_iter=20, tol=0.01, random_state=0
    ).fit(x)
    train = fitted.transform(x)
    nearest = np.argmin(train, axis=1)
    radii = np.array([math.sqrt(np.mean(train[nearest == k, k] ** 2)) for k in range(3)])
    normalized_new = fitted.transform(x_new) / radii
    return (
        np.min(train / radii, axis=1),
        np.min(normalized_new, axis=1),
        np.argmin(normalized_new, axis=1) + 1,
    )


# -- ML.DETECT_ANOMALIES ------------------------------------------------------------------------


@pytest.mark.parametrize("contamination", [0.1, 0.02])
def test_pca_anomalies_equal_scikit_learns(con: sqlml.Connection, contamination: float) -> None:
    names, found = _detect(con, "p", contamination)
    assert names == ["is_anomaly", "mean_squared_error", *INPUT]
    train, new = _pca_errors()
    np.testing.assert_allclose([r[1] for r in found], new, rtol=1e-6, atol=1e-12)
    _flags(found, new, float(np.quantile(train, 1 - contamination)))
    assert all(isinstance(r[1], float) for r in found)


def test_autoencoder_anomalies_equal_scikit_learns(con: sqlml.Connection) -> None:
    names, found = _detect(con, "a", 0.1)
    assert names == ["is_anomaly", "mean_squared_error", *INPUT]
    train, x_new, back = _autoencoder()
    new = np.mean((x_new - back) ** 2, axis=1)
    np.testing.assert_allclose([r[1] for r in found], new, rtol=1e-6, atol=1e-12)
    _flags(found, new, float(np.quantile(train, 0.9)))


def test_kmeans_anomalies_equal_scikit_learns(con: sqlml.Connection) -> None:
    names, found = _detect(con, "k", 0.1)
    assert names == ["is_anomaly", "normalized_distance", "centroid_id", *INPUT]
    train, new, centroids = _kmeans()
    np.testing.assert_allclose([r[1] for r in found], new, rtol=1e-6)
    assert [r[2] for r in found] == list(centroids)
    assert all(isinstance(r[2], int) for r in found)
    _flags(found, new, float(np.quantile(train, 0.9)))


@pytest.mark.parametrize("model", ["p", "a", "k"])
def test_the_contamination_is_the_training_rows_share(con: sqlml.Connection, model: str) -> None:
    """On the training rows themselves, contamination c flags the rows above the (1 - c)
    quantile of their own metric: about c of them; 0 flags none, 0.5 half."""
    share = {}
    for c in (0.0, 0.1, 0.5):
        _, found = _detect(con, model, c, "shop.customers")
        share[c] = sum(r[0] for r in found) / len(found)
    assert share[0.0] == 0
    assert abs(share[0.1] - 0.1) < 0.01
    assert abs(share[0.5] - 0.5) < 0.01


# -- ML.RECONSTRUCTION_LOSS ---------------------------------------------------------------------


def _losses(x: Array, back: Array) -> tuple[Array, Array, list[float | None]]:
    logged = [
        float(np.mean((np.log1p(a) - np.log1p(b)) ** 2)) if (a > -1).all() and (b > -1).all()
        else None
        for a, b in zip(x, back, strict=True)
    ]  # fmt: skip
    return np.mean(np.abs(x - back), 1), np.mean((x - back) ** 2, 1), logged


def _check_losses(found: list[tuple[Any, ...]], x: Array, back: Array) -> None:
    absolute, squared, logged = _losses(x, back)
    np.testing.assert_allclose([r[0] for r in found], absolute, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose([r[1] for r in found], squared, rtol=1e-6, atol=1e-12)
    assert [r[2] is None for r in found] == [v is None for v in logged]
    assert any(v is not None for v in logged)
    assert any(v is None for v in logged)
    got = [r[2] for r in found if r[2] is not None]
    np.testing.assert_allclose(got, [v for v in logged if v is not None], rtol=1e-6, atol=1e-12)


LOSS_COLUMNS = ["mean_absolute_error", "mean_squared_error", "mean_squared_log_error"]


def test_reconstruction_loss_of_pca(con: sqlml.Connection) -> None:
    names, found = rows(
        con,
        "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.p, TABLE shop.new_customers) ORDER BY id",
    )
    assert names == [*LOSS_COLUMNS, *INPUT]
    x, x_new = _matrices()
    fitted = PCA(n_components=2).fit(x)
    _check_losses(found, x_new, fitted.inverse_transform(fitted.transform(x_new)))


def test_reconstruction_loss_of_an_autoencoder(con: sqlml.Connection) -> None:
    names, found = rows(
        con,
        "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.a,"
        " (SELECT id, tenure, spend, plan, promo FROM shop.new_customers)) ORDER BY id",
    )
    assert names == [*LOSS_COLUMNS, *INPUT]
    _, x_new, back = _autoencoder()
    _check_losses(found, x_new, back)


# -- ML.CONFUSION_MATRIX and ML.ROC_CURVE without rows ------------------------------------------


def _kept_scores(con: Any) -> tuple[Array, Array]:
    """(truth, the positive class's probability) of the training rows (NO_SPLIT: the evaluation
    rows are the training rows, those with a label)."""
    _, found = rows(
        con,
        "SELECT churned, ML.SCORE(MODEL shop.churn) FROM shop.customers WHERE churned IS NOT NULL",
    )
    return np.array([bool(r[0]) for r in found]), np.array([float(r[1]) for r in found])


def test_confusion_matrix_without_rows(con: sqlml.Connection) -> None:
    from sklearn.metrics import confusion_matrix

    truth, p = _kept_scores(con)
    for struct, cut in (("", 0.5), (", STRUCT(0.3 AS threshold)", 0.3)):
        names, found = rows(con, f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn{struct})")
        assert names == ["expected_label", "false", "true"]
        assert [r[0] for r in found] == [False, True]
        expected = confusion_matrix(truth, p > cut, labels=[False, True])
        assert [[r[1], r[2]] for r in found] == expected.tolist()
        assert all(isinstance(v, int) for r in found for v in r[1:])
        with_rows = (
            f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, TABLE shop.customers{struct})"
        )
        assert rows(con, with_rows)[1] == found


def _percentiles(p: Array) -> list[float]:
    """The nearest-rank percentiles k = 0..100 (rank max(1, ceil(k n / 100)), in exact integers:
    numpy's method='inverted_cdf' computes k / 100 * n in floating point and is one rank off
    where that lands just above a whole number)."""
    ordered, n = np.sort(p), len(p)
    ranks = [max(1, -(-k * n // 100)) for k in range(101)]
    return sorted({float(ordered[r - 1]) for r in ranks}, reverse=True)


def _same_curve(found: list[tuple[Any, ...]], truth: Array, p: Array, cuts: list[float]) -> None:
    from sklearn.metrics import confusion_matrix

    np.testing.assert_allclose([r[0] for r in found], cuts, rtol=1e-12)
    for row, cut in zip(found, cuts, strict=True):
        tn, fp, fn, tp = confusion_matrix(truth, p >= cut, labels=[False, True]).ravel()
        assert list(row[3:]) == [tp, fp, tn, fn]
        assert math.isclose(row[1], tp / (tp + fn), rel_tol=1e-12)
        assert math.isclose(row[2], fp / (fp + tn), rel_tol=1e-12)


ROC_COLUMNS = [
    "threshold", "recall", "false_positive_rate",
    "true_positives", "false_positives", "true_negatives", "false_negatives",
]  # fmt: skip


def test_roc_curve_without_rows(con: sqlml.Connection) -> None:
    truth, p = _kept_scores(con)
    names, found = rows(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn)")
    assert names == ROC_COLUMNS
    _same_curve(found, truth, p, _percentiles(p))
    _, given = rows(
        con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, GENERATE_ARRAY(0.2, 0.8, 0.3))"
    )
    _same_curve(given, truth, p, [0.8, 0.5, 0.2])


def test_roc_curve_over_rows_at_the_percentiles(con: sqlml.Connection) -> None:
    """BigQuery's default thresholds: the percentiles of the positive class's probability over
    the rows given (the same rows here as the kept ones, so both ways agree)."""
    truth, p = _kept_scores(con)
    _, found = rows(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, TABLE shop.customers)")
    assert len(found) <= 101
    _same_curve(found, truth, p, _percentiles(p))
    kept = rows(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn)")[1]
    # (the kept probabilities are onnxruntime's at training, these the compiled SQL's: equal
    # to the last bit or so)
    assert [r[3:] for r in kept] == [r[3:] for r in found]
    np.testing.assert_allclose([r[0] for r in kept], [r[0] for r in found], rtol=1e-12)


def test_a_split_model_keeps_its_evaluation_rows(con: sqlml.Connection) -> None:
    """With a split the kept rows are the evaluation split's: 30% of the labelled rows."""
    _, found = rows(con, "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.split)")
    _, labelled = rows(con, "SELECT count(*) FROM shop.customers WHERE churned IS NOT NULL")
    assert sum(r[1] + r[2] for r in found) == round(0.3 * labelled[0][0])
    _, curve = rows(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.split)")
    assert curve[-1][3] + curve[-1][6] == sum(r[1] + r[2] for r in found if r[0])


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input(con: sqlml.Connection) -> None:
    detect = "SELECT * FROM ML.DETECT_ANOMALIES(MODEL shop.{}, {} TABLE shop.new_customers)"
    for struct in ("STRUCT(0.6 AS contamination),", "STRUCT(-0.1 AS contamination),"):
        assert fails(con, detect.format("p", struct)) == "22023"
    assert fails(con, detect.format("p", "STRUCT('a' AS contamination),")) == "22023"
    assert fails(con, detect.format("k", "STRUCT(0.1 AS contamnation),")) == "22023"
    assert fails(con, detect.format("a", "")) == "22023"  # no contamination
    assert fails(con, detect.format("p", "STRUCT(0.9 AS anomaly_prob_threshold),")) == "0A000"
    # model types: a classifier has no anomalies; k-means no reconstruction
    assert fails(con, detect.format("churn", "STRUCT(0.1 AS contamination),")) == "0A000"
    loss = "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.{}, TABLE shop.new_customers)"
    assert fails(con, loss.format("k")) == "0A000"
    assert fails(con, loss.format("churn")) == "0A000"
    # rows are required
    assert (
        fails(con, "SELECT * FROM ML.DETECT_ANOMALIES(MODEL shop.p, STRUCT(0.1 AS contamination))")
        == "42601"
    )
    assert fails(con, "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.a)") == "42601"
    # an input column named as an output column; a column the model needs missing
    clash = "(SELECT tenure AS is_anomaly, tenure, spend, plan, promo FROM shop.new_customers)"
    assert (
        fails(
            con,
            detect.format("p", "STRUCT(0.1 AS contamination),").replace(
                "TABLE shop.new_customers", clash
            ),
        )
        == "42701"
    )
    missing = "(SELECT tenure, spend FROM shop.new_customers)"
    assert fails(con, loss.format("a").replace("TABLE shop.new_customers", missing)) == "42703"
    # without rows: a multiclass model kept no evaluation rows
    assert fails(con, "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.seg)") == "0A000"
    assert fails(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.seg)") == "0A000"
    # a view would not see a new version
    view = "CREATE VIEW shop.v AS " + detect.format("p", "STRUCT(0.1 AS contamination),")
    assert fails(con, view) == "0A000"
    # and the session goes on
    assert len(_detect(con, "p", 0.1)[1]) == 200


# -- every front door ---------------------------------------------------------------------------


QUERIES = (
    "SELECT * FROM ML.DETECT_ANOMALIES(MODEL shop.k, STRUCT(0.1 AS contamination),"
    " TABLE shop.new_customers) ORDER BY id",
    "SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.a, TABLE shop.new_customers) ORDER BY id",
    "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn)",
    "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn)",
)


def test_one_statement_in_the_engine(con: sqlml.Connection) -> None:
    """Each is one SQL statement (what the PostgreSQL proxy sends the server as it is): no
    rows go to Python, no table is registered around the run."""
    for query in QUERIES:
        sql = con.session.ml_sql(query)
        assert sql is not None
        for elsewhere in ("evaluate_json", "score_batch", "__sqlml_evaluate"):
            assert elsewhere not in sql


def test_through_the_gateway(database: str, con: sqlml.Connection) -> None:
    """The gateway over DuckDB and the PostgreSQL proxy (psycopg 3) give the same rows."""
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    engine = "postgres" if database.startswith("postgresql://") else "duckdb"
    expected = [rows(con, q) for q in QUERIES]
    con.close()  # (one DuckDB file, one writer)
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        client = GatewayConnection(port)
        try:
            for query, (names, want) in zip(QUERIES, expected, strict=True):
                got_names, got = rows(client, query)
                assert got_names == names
                assert len(got) == len(want)
                for a, b in zip(got, want, strict=True):
                    assert [_plain(v) for v in a] == pytest.approx([_plain(v) for v in b])
        finally:
            client.close()


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def test_the_sqlml_serve_command(database: str, con: sqlml.Connection) -> None:
    """The real ``sqlml serve -d <database>`` (DuckDB, or the PostgreSQL proxy) with psycopg 3:
    ML.DETECT_ANOMALIES' rows and types as a wire client reads them."""
    from conftest import client_module, sqlml_serve

    from sqlml.wire.upstream import Target

    psycopg = client_module("psycopg")
    postgres = database.startswith("postgresql://")
    dbname = Target.parse(database).dbname if postgres else "shop"
    expected = rows(con, QUERIES[0])[1]
    con.close()
    with (
        sqlml_serve("-d", database) as port,
        psycopg.connect(
            host="127.0.0.1", port=port, dbname=dbname, user="conformance", autocommit=True
        ) as client,
    ):
        cursor = client.execute(QUERIES[0])
        assert [c.name for c in cursor.description][:3] == [
            "is_anomaly", "normalized_distance", "centroid_id"
        ]  # fmt: skip
        assert [c.type_code for c in cursor.description][:3] == [16, 701, 20]  # bool float8 int8
        got = cursor.fetchall()
    assert [r[0] for r in got] == [r[0] for r in expected]
    assert [r[2] for r in got] == [r[2] for r in expected]
    np.testing.assert_allclose([r[1] for r in got], [r[1] for r in expected], rtol=1e-12)
