"""Incremental pca (exact) and kmeans (approximate), and the argmax rule of incremental
classifiers (issue 15; sqlml/ml/incremental_more.py; docs/sql.md, "Incremental training"), on
DuckDB and PostgreSQL.

The references are independent of the code under test: scikit-learn's PCA and KMeans fitted
here on matrices this module builds itself (NULL -> the column's mean, standardized with the
population spread, one-hot strings and BOOLs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, module_database
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from test_incremental import CLASSIFIER, Inc

Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module", params=ENGINES)
def inc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inc]:
    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, "incmore") as database:
        found = Inc(database, engine)
        found.run("CREATE SCHEMA inc")
        yield found
        found.con.close()


def matrix(
    rows: list[tuple[Any, ...]], numeric: int, scale: bool, frozen: Array | None = None
) -> Array:
    """BigQuery ML's preprocessing, written out: the first ``numeric`` columns of ``rows``
    numbers (NULL -> the mean; standardized with the population spread when ``scale``; the
    mean and spread of the rows where ``frozen`` is True, when given), the rest one-hot."""
    columns = []
    for k in range(numeric):
        x = np.array([np.nan if r[k] is None else float(r[k]) for r in rows])
        fitted = x if frozen is None else x[frozen]
        mean = np.nanmean(fitted)
        spread = np.where(np.isnan(fitted), mean, fitted).std()
        x = np.where(np.isnan(x), mean, x)
        columns.append((x - mean) / (spread or 1.0) if scale else x)
    for k in range(numeric, len(rows[0])):
        values = [str(r[k]) for r in rows]  # (NULL -> 'None': a category of its own)
        columns += [np.array([v == c for v in values], dtype=float) for c in sorted(set(values))]
    return np.column_stack(columns)


def worst(got: Array, expected: Array) -> float:
    return float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)))


# -- pca: exact -----------------------------------------------------------------------------------

PCA_QUERY = "SELECT x, z, y, plan, promo, ts FROM inc.{table}"
PCA_OPTIONS = "model_type = 'pca', incremental = TRUE, watermark_col = 'ts', "


def components(inc: Inc, model: str, table: str, scoring: str) -> Array:
    cursor = inc.con.execute(
        f"SELECT * FROM ML.PREDICT(MODEL {model}, TABLE inc.{table},"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    )
    names = [d[0] for d in cursor.description]
    picked = [i for i, n in enumerate(names) if n.startswith("principal_component_")]
    return np.array([[row[i] for i in picked] for row in cursor.fetchall()], dtype=float)


@pytest.mark.parametrize(
    ("options", "scale", "reference"),
    [
        ("num_principal_components = 3", True, {"n_components": 3}),
        ("num_principal_components = 2, scale_features = FALSE", False, {"n_components": 2}),
        ("pca_explained_variance_ratio = 0.75, pca_solver = 'FULL'", True, {"n_components": 0.75}),
    ],
)
def test_pca_retrain_equals_scikit_learn_on_all_rows(
    inc: Inc, options: str, scale: bool, reference: dict[str, Any]
) -> None:
    table = inc.table(0, 1199)
    model = inc.model(table, PCA_OPTIONS + options, PCA_QUERY)
    inc.add(table, 1200, 1499, third="'d'")  # (a category the first rows never had)
    inc.messages.clear()
    inc.run(f"ALTER MODEL {model} RETRAIN")
    assert any("categories the model had not seen (d)" in m for m in inc.messages)
    inc.add(table, 1500, 1599)
    inc.run(f"ALTER MODEL {model} RETRAIN")
    rows = inc.run(f"SELECT x, z, y, plan, promo FROM inc.{table} ORDER BY id")
    x = matrix(rows, 3, scale)
    fitted = PCA(svd_solver="full", **reference).fit(x)
    expected = fitted.transform(x)
    assert expected.shape[1] >= 2
    for scoring in ("compiled", "runtime"):
        got = components(inc, model, table, scoring)
        assert got.shape == expected.shape
        signs = np.sign(np.sum(got * expected, axis=0))  # (an eigenvector's sign is arbitrary)
        assert worst(got * signs, expected) < 1e-9
    info = inc.run(
        f"SELECT eigenvalue, explained_variance_ratio FROM ML.PRINCIPAL_COMPONENT_INFO"
        f"(MODEL {model}) ORDER BY principal_component_id"
    )
    assert worst(np.array(info, dtype=float)[:, 0], fitted.explained_variance_) < 1e-9
    assert worst(np.array(info, dtype=float)[:, 1], fitted.explained_variance_ratio_) < 1e-9
    trained = inc.run(
        f"SELECT training_run, incremental, rows_read FROM ML.TRAINING_INFO(MODEL {model})"
    )
    assert [tuple(r) for r in trained] == [(2, "exact", 100)]
    assert [v[2] for v in inc.versions(model)] == [1200, 1500, 1600]
    # and the model trained on all rows at once is the same one
    full = inc.model(table, PCA_OPTIONS + options, PCA_QUERY)
    once = components(inc, full, table, "compiled")
    retrained = components(inc, model, table, "compiled")
    assert worst(retrained * np.sign(np.sum(retrained * once, axis=0)), once) < 1e-9


def test_pca_refuses_what_is_not_exact(inc: Inc) -> None:
    table = inc.table(0, 99)
    query = PCA_QUERY.format(table=table)
    randomized = PCA_OPTIONS + "num_principal_components = 2, pca_solver = 'RANDOMIZED'"
    assert inc.sqlstate(f"CREATE MODEL inc.bad OPTIONS ({randomized}) AS {query}") == "0A000"


# -- kmeans: approximate --------------------------------------------------------------------------

# four blobs (their centres by id % 4), each a plan of its own but two sharing one; the rows
# past id 2000 moved by {shift}
BLOBS = (
    "SELECT i AS id,"
    " CAST(5 * (i % 2) + 3 * sin(i * 1.7) + {shift} AS DOUBLE PRECISION) AS x,"
    " CAST(CASE WHEN i % 4 >= 2 THEN 5 ELSE 0 END + 3 * cos(i * 2.3) AS DOUBLE PRECISION) AS z,"
    " CASE WHEN i % 4 = 3 THEN {last} WHEN i % 4 = 0 THEN 'a' ELSE 'b' END AS plan,"
    " TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 minute' AS ts"
    " FROM generate_series({start}, {stop}) AS g(i)"
)
KMEANS = (
    "model_type = 'kmeans', num_clusters = 4, kmeans_init_method = 'KMEANS++',"
    " incremental = TRUE, watermark_col = 'ts'"
)
KMEANS_QUERY = "SELECT x, z, plan, ts FROM inc.{table}"


def blobs(inc: Inc, table: str, start: int, stop: int, shift: float, last: str = "'c'") -> None:
    rows = BLOBS.format(start=start, stop=stop, shift=shift, last=last)
    inc.run(f"INSERT INTO inc.{table} {rows}")


def blob_table(inc: Inc, stop: int) -> str:
    table = f"b{next(inc.names)}"
    rows = BLOBS.format(start=0, stop=stop, shift=0, last="'c'")
    inc.run(f"CREATE TABLE inc.{table} AS {rows}")
    return table


def centroids_of(inc: Inc, model: str, width: int) -> Array:
    """ML.CENTROIDS in the standardized space, numeric features then categories (sorted)."""
    rows = inc.run(
        f"SELECT centroid_id, feature, numerical_value, categorical_value FROM ML.CENTROIDS"
        f"(MODEL {model}, STRUCT(TRUE AS standardize)) ORDER BY centroid_id"
    )
    found: dict[int, dict[str, float]] = {}
    for centroid, feature, number, categories in rows:
        entry = found.setdefault(int(centroid), {})
        if number is not None:
            entry[feature] = float(number)
        for pair in categories or []:
            entry[f"{feature}={pair['category']}"] = float(pair["value"])
    names = sorted({k for v in found.values() for k in v}, key=lambda k: ("=" in k, k))
    assert len(names) == width
    return np.array([[found[c].get(k, 0.0) for k in names] for c in sorted(found)])


def inertia(x: Array, centres: Array) -> float:
    distances = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return float(distances.min(axis=1).sum())


def apart(centres: Array, reference: Array) -> float:
    """The largest distance between a centroid and its match in ``reference``."""
    rows, columns = linear_sum_assignment(
        ((centres[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)
    )
    return float(np.sqrt(((centres[rows] - reference[columns]) ** 2).sum(axis=1)).max())


def test_kmeans_retrain_is_close_to_kmeans_on_all_rows(inc: Inc) -> None:
    table = blob_table(inc, 1999)
    model = inc.model(table, KMEANS, KMEANS_QUERY)
    blobs(inc, table, 2000, 2499, shift=1.0, last="'d'")  # (moved, and a new category)
    inc.messages.clear()
    inc.run(f"ALTER MODEL {model} RETRAIN")
    assert any("categories the model had not seen (d)" in m for m in inc.messages)
    blobs(inc, table, 2500, 2999, shift=1.0)
    inc.run(f"ALTER MODEL {model} RETRAIN")
    rows = inc.run(f"SELECT x, z, plan, id FROM inc.{table} ORDER BY id")
    first = np.array([r[3] < 2000 for r in rows])
    x = matrix([r[:3] for r in rows], 2, True, frozen=first)  # (the first training's scaling)
    reference = KMeans(4, n_init=10, random_state=0).fit(x)
    got = centroids_of(inc, model, x.shape[1])
    # docs/sql.md's tolerance: the inertia on every row within 1% of scikit-learn's on all rows,
    # each centroid within 0.15 (standardized units) of its match; measured here: 0.13% and
    # 0.065, where the model before the RETRAINs is 2.4% and 0.26 away
    ratio, distance = inertia(x, got) / reference.inertia_, apart(got, reference.cluster_centers_)
    before = centroids_of(inc, f"{model} VERSION 1", x.shape[1] - 1)
    before = np.hstack([before, np.zeros((4, 1))])  # (category d: 0 in every old centroid)
    stale = inertia(x, before) / reference.inertia_, apart(before, reference.cluster_centers_)
    print(f"kmeans retrain: inertia x{ratio:.5f}, centroids {distance:.4f} away; before: {stale}")
    assert ratio < 1.01
    assert distance < 0.15
    assert stale[0] > 1.015  # (the RETRAINs did learn)
    assert stale[1] > 0.2
    trained = inc.run(
        f"SELECT training_run, incremental, rows_read FROM ML.TRAINING_INFO(MODEL {model})"
    )
    assert [tuple(r) for r in trained] == [(2, "approximate", 500)]
    assert [v[2] for v in inc.versions(model)] == [2000, 2500, 3000]


def test_kmeans_refuses_custom_starts(inc: Inc) -> None:
    table = blob_table(inc, 99)
    custom = KMEANS.replace("'KMEANS++'", "'CUSTOM', kmeans_init_col = 'start'")
    query = f"SELECT x, z, plan, ts, id < 4 AS start FROM inc.{table}"
    assert inc.sqlstate(f"CREATE MODEL inc.bad OPTIONS ({custom}) AS {query}") == "0A000"


@pytest.mark.parametrize(
    "model_type",
    ["boosted_tree_regressor", "random_forest_classifier", "autoencoder"],
)
def test_other_model_types_refuse_incremental(inc: Inc, model_type: str) -> None:
    table = inc.table(0, 99)
    label = "" if model_type == "autoencoder" else ", input_label_cols = ['y']"
    options = f"model_type = '{model_type}'{label}, incremental = TRUE"
    create = f"CREATE MODEL inc.bad OPTIONS ({options}) AS SELECT x, z, y FROM inc.{table}"
    assert inc.sqlstate(create) == "0A000"


# -- the predicted label is the argmax of the probabilities ---------------------------------------


ARGMAX = {
    "logistic_reg": CLASSIFIER.format(label="tier"),
    "dnn_classifier": "model_type = 'dnn_classifier', input_label_cols = ['tier'],"
    " hidden_units = [2], learn_rate = 0.01, max_iterations = 40, incremental = TRUE,"
    " watermark_col = 'ts'",
}


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
@pytest.mark.parametrize("model_type", sorted(ARGMAX))
def test_incremental_classifier_predicts_the_argmax(
    inc: Inc, model_type: str, scoring: str
) -> None:
    """issue 15: a multiclass incremental classifier's predicted label is the class of the
    largest probability (the ONNX graph's definition), in compiled SQL and in onnxruntime."""
    table = inc.table(0, 899)
    query = "SELECT x, z, plan, promo, tier, ts FROM inc.{table}"
    model = inc.model(table, ARGMAX[model_type], query)
    inc.add(table, 900, 1079, third="'d'")
    inc.run(f"ALTER MODEL {model} RETRAIN")
    rows = inc.run(
        f"SELECT predicted_tier, predicted_tier_probs FROM ML.PREDICT(MODEL {model},"
        f" TABLE inc.{table}, STRUCT('{scoring}' AS scoring))"
    )
    assert len(rows) == 1080
    labels = set()
    for label, probs in rows:
        top = max(probs, key=lambda p: p["prob"])
        assert label == top["label"]
        assert abs(sum(p["prob"] for p in probs) - 1.0) < 1e-9
        labels.add(label)
    assert len(labels) >= 2 if model_type == "dnn_classifier" else labels == {"hi", "mid", "lo"}


# -- dnn_classifier, dnn_regressor: approximate (ml/incremental_dnn.py) ---------------------------

DNN = (
    "model_type = '{model_type}', input_label_cols = ['{label}'], hidden_units = [8],"
    " learn_rate = 0.01, max_iterations = 200, early_stop = FALSE, data_split_method = 'NO_SPLIT'"
)
METRICS = {"tier": ("accuracy", "log_loss"), "y": ("mean_squared_error", "r2_score")}


@pytest.mark.parametrize(
    ("model_type", "label"), [("dnn_classifier", "tier"), ("dnn_regressor", "y")]
)
def test_dnn_retrain_is_close_to_a_full_retrain(inc: Inc, model_type: str, label: str) -> None:
    """Against the plain CREATE MODEL on every row (scikit-learn's MLP, seed 0), on rows
    neither trained on."""
    table = inc.table(0, 2999)
    test = inc.table(5000, 5999)
    query = f"SELECT x, z, plan, promo, {label}, ts FROM inc.{{table}}"
    options = DNN.format(model_type=model_type, label=label)
    model = inc.model(table, options + ", incremental = TRUE, watermark_col = 'ts'", query)
    inc.add(table, 3000, 3149, third="'d'")
    inc.run(f"ALTER MODEL {model} RETRAIN")
    inc.add(table, 3150, 3299)
    inc.run(f"ALTER MODEL {model} RETRAIN")
    full = inc.model(table, options, query.replace(", ts", ""))
    names = ", ".join(METRICS[label])
    evaluate = "SELECT {} FROM ML.EVALUATE(MODEL {}, TABLE inc.{})"
    (mine,) = inc.run(evaluate.format(names, model, test))
    (theirs,) = inc.run(evaluate.format(names, full, test))
    (before,) = inc.run(evaluate.format(names, f"{model} VERSION 1", test))
    print(f"{model_type}: retrained {mine}, full retrain {theirs}, before {before}")
    # docs/sql.md's tolerances, measured here: the classifier's accuracy 0.741 (full retrain
    # 0.752) and log loss 0.588 (0.527); the regressor's mean squared error 45.0 (42.1) and R2
    # 0.905 (0.911). The version before the RETRAINs is as good as the full retrain: 200 epochs
    # on 150 new rows fit them at the old rows' expense (ml/incremental_dnn.py: it forgets)
    if label == "tier":
        assert abs(mine[0] - theirs[0]) <= 0.03
        assert mine[1] <= 1.15 * theirs[1]
    else:
        assert mine[0] <= 1.10 * theirs[0]
        assert abs(mine[1] - theirs[1]) <= 0.01
    trained = inc.run(
        f"SELECT DISTINCT training_run, incremental, rows_read FROM ML.TRAINING_INFO(MODEL {model})"
    )
    assert [tuple(r) for r in trained] == [(2, "approximate", 150)]
    assert [v[2] for v in inc.versions(model)] == [3000, 3150, 3300]


def test_dnn_retrain_refuses_a_new_class(inc: Inc) -> None:
    """The classes are the first training's (as an incremental logistic_reg's): 22000, and the
    serving version stays."""
    table = inc.table(0, 299)
    options = DNN.format(model_type="dnn_classifier", label="yes").replace(
        "max_iterations = 200", "max_iterations = 5"
    )
    query = "SELECT x, z, plan, promo, yes, ts FROM inc.{table}"
    model = inc.model(table, options + ", incremental = TRUE, watermark_col = 'ts'", query)
    inc.add(table, 300, 349)
    inc.run(f"UPDATE inc.{table} SET yes = 'maybe' WHERE id = 320")
    assert inc.sqlstate(f"ALTER MODEL {model} RETRAIN") == "22000"
    assert inc.versions(model) == [(1, "serving", 300)]


@pytest.mark.parametrize(
    "options",
    [
        "model_type = 'kmeans', num_clusters = 3",
        "model_type = 'dnn_classifier', input_label_cols = ['c'], max_iterations = 1",
    ],
)
def test_past_the_memory_budget_is_refused(inc: Inc, options: str) -> None:
    """A training past max_training_memory_mb that cannot stream learns from a sample
    (sqlml/bounded.py): with incremental = TRUE that sample's state would be kept as every
    row's, so it is 0A000 (linear_reg and logistic_reg stream: tests/test_streamed.py)."""
    table = f"big{next(inc.names)}"
    inc.run(
        f"CREATE TABLE inc.{table} AS SELECT i AS ts, CAST(sin(i) AS DOUBLE PRECISION) AS x,"
        " CAST(cos(i) AS DOUBLE PRECISION) AS z, sin(i * 3) > 0 AS c"
        " FROM generate_series(1, 150000) AS g(i)"
    )
    given = f"{options}, incremental = TRUE, watermark_col = 'ts', max_training_memory_mb = 1"
    create = f"CREATE MODEL inc.bad OPTIONS ({given}) AS SELECT x, z, c, ts FROM inc.{table}"
    assert inc.sqlstate(create) == "0A000"
    plain = create.replace("incremental = TRUE, watermark_col = 'ts', ", "")
    inc.run(plain.replace("inc.bad", f"inc.sampled{next(inc.names)}"))  # (on a sample)
