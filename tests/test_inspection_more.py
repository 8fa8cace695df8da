"""More inspection functions (issue 13, point 4): ML.TRAINING_INFO per iteration, ML.FEATURE_IMPORTANCE
for tree models, and ML.CONFUSION_MATRIX and ML.ROC_CURVE over rows, through every front door
(sqlml.connect on DuckDB and PostgreSQL, the gateway over DuckDB and the PostgreSQL proxy with
psycopg 3). Importances are checked against XGBoost fitted independently on the same
preprocessed rows (test_trees' reference), the confusion matrix and ROC curve against
scikit-learn on the model's own predictions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import shop_tables
from test_inspection import fails, rows
from test_trees import reference_fit, reference_matrix, reference_params

BINARY = (
    "CREATE OR REPLACE MODEL shop.churn OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['churned'], data_split_method='NO_SPLIT')"
    " AS SELECT tenure, spend, plan, churned FROM shop.customers"
)
MULTICLASS = (
    "CREATE OR REPLACE MODEL shop.seg OPTIONS (model_type='boosted_tree_classifier',"
    " input_label_cols=['segment'], max_iterations=3, data_split_method='NO_SPLIT')"
    " AS SELECT tenure, spend, plan, segment FROM shop.customers"
)
REGRESSOR = (
    "CREATE OR REPLACE MODEL shop.lin OPTIONS (model_type='linear_reg',"
    " input_label_cols=['value'], data_split_method='NO_SPLIT')"
    " AS SELECT tenure, spend, value FROM shop.customers"
)


def _trees(encoding: str = "LABEL_ENCODING", model_type: str = "boosted_tree_regressor") -> str:
    extra = "" if model_type.startswith("random_forest") else ", early_stop=FALSE"
    return (
        f"CREATE OR REPLACE MODEL shop.bt OPTIONS (model_type='{model_type}',"
        " input_label_cols=['value'], data_split_method='NO_SPLIT', max_iterations=3,"
        f" category_encoding_method='{encoding}'{extra})"
        " AS SELECT tenure, spend, plan, promo, value FROM shop.customers"
    )


# -- ML.TRAINING_INFO per iteration --------------------------------------------------------------


def test_training_info_has_a_row_per_boosting_round(con: Any) -> None:
    con.execute(_trees())
    names, found = rows(con, "SELECT * FROM ML.TRAINING_INFO(MODEL shop.bt)")
    assert names == [
        "training_run", "iteration", "loss", "eval_loss", "learning_rate", "duration_ms"
    ]  # fmt: skip
    assert [int(r["iteration"]) for r in found] == [2, 1, 0]  # the last first, as BigQuery
    assert all(int(r["training_run"]) == 0 for r in found)
    assert all(float(r["learning_rate"]) == 0.3 for r in found)
    assert all(r["eval_loss"] is None for r in found)  # NO_SPLIT
    assert all(int(r["duration_ms"]) >= 0 for r in found)
    losses = [float(r["loss"]) for r in found]
    assert losses == sorted(losses)  # each round lowers the training loss
    # the last round's loss is the training rows' mean squared error (XGBoost's in float32)
    _, metrics = rows(con, "SELECT mean_squared_error FROM ML.EVALUATE(MODEL shop.bt)")
    assert math.isclose(losses[0], float(metrics[0]["mean_squared_error"]), rel_tol=1e-4)


def test_training_info_has_eval_loss_with_a_split(con: Any) -> None:
    con.execute(
        "CREATE MODEL shop.split OPTIONS (model_type='boosted_tree_classifier',"
        " input_label_cols=['churned'], max_iterations=4, early_stop=FALSE,"
        " data_split_method='RANDOM', data_split_eval_fraction=0.25)"
        " AS SELECT tenure, spend, plan, churned FROM shop.customers"
    )
    _, found = rows(
        con, "SELECT iteration, loss, eval_loss FROM ML.TRAINING_INFO(MODEL shop.split)"
    )
    assert [int(r["iteration"]) for r in found] == [3, 2, 1, 0]
    assert all(r["loss"] is not None and r["eval_loss"] is not None for r in found)


# -- ML.FEATURE_IMPORTANCE -------------------------------------------------------------------------


def _reference_importance(encoding: str, widths: list[int]) -> list[tuple[float, Any, Any]]:
    """(weight, average gain, average cover) per feature from XGBoost's get_score on a booster
    fitted on the same preprocessed rows, summed over a one-hot feature's columns."""
    customers = shop_tables()["customers"]
    x, _ = reference_matrix(customers, customers, encoding)
    y = np.asarray(customers.column("value").to_pylist(), dtype=np.float64)
    booster = reference_fit(x, y, reference_params("boosted_tree_regressor", None), 3)
    scores = {
        k: booster.get_score(importance_type=k) for k in ("weight", "total_gain", "total_cover")
    }
    out, at = [], 0
    for width in widths:
        names = [f"f{j}" for j in range(at, at + width)]
        weight, gain, cover = (sum(scores[k].get(n, 0.0) for n in names) for k in scores)
        out.append((weight, gain / weight if weight else None, cover / weight if weight else None))
        at += width
    return out


def _importances(con: Any) -> list[dict[str, Any]]:
    names, found = rows(con, "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL shop.bt)")
    assert names == ["feature", "importance_weight", "importance_gain", "importance_cover"]
    assert [r["feature"] for r in found] == ["tenure", "spend", "plan", "promo"]
    return found


def _same(found: list[dict[str, Any]], expected: list[tuple[float, Any, Any]]) -> None:
    for row, (weight, gain, cover) in zip(found, expected, strict=True):
        assert float(row["importance_weight"]) == weight
        for got, want in ((row["importance_gain"], gain), (row["importance_cover"], cover)):
            assert (got is None) == (want is None)
            if want is not None:
                assert math.isclose(float(got), want, rel_tol=1e-6)


def test_feature_importance_equals_xgboosts(con: Any) -> None:
    con.execute(_trees())
    _same(_importances(con), _reference_importance("label", [1, 1, 1, 1]))


def test_feature_importance_sums_a_one_hot_features_columns(con: Any) -> None:
    con.execute(_trees("ONE_HOT_ENCODING"))
    # plan: basic, plus, premium and NULL; promo: false and true
    _same(_importances(con), _reference_importance("one_hot", [1, 1, 4, 2]))


def test_feature_importance_of_a_random_forest(con: Any) -> None:
    con.execute(
        _trees(model_type="random_forest_regressor").replace(
            "max_iterations=3", "num_parallel_tree=5"
        )
    )
    found = _importances(con)
    assert sum(float(r["importance_weight"]) for r in found) > 0


# -- ML.CONFUSION_MATRIX ---------------------------------------------------------------------------


def _predicted(
    con: Any, model: str, label: str, threshold: float | None = None
) -> tuple[list[Any], list[Any]]:
    struct = "" if threshold is None else f", STRUCT({threshold} AS threshold)"
    _, found = rows(
        con,
        f"SELECT {label} AS y, predicted_{label} AS p"
        f" FROM ML.PREDICT(MODEL {model}, TABLE shop.customers{struct})",
    )
    return [r["y"] for r in found], [r["p"] for r in found]


def test_confusion_matrix_of_a_binary_model_equals_scikit_learns(con: Any) -> None:
    from sklearn.metrics import confusion_matrix

    con.execute(BINARY)
    for threshold, struct in ((None, ""), (0.3, ", STRUCT(0.3 AS threshold)")):
        names, found = rows(
            con,
            f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, TABLE shop.customers{struct})",
        )
        assert names == ["expected_label", "false", "true"]
        truth, predicted = _predicted(con, "shop.churn", "churned", threshold)
        expected = confusion_matrix(truth, predicted, labels=[False, True])
        assert [r["expected_label"] for r in found] == [False, True]
        got = [[int(r["false"]), int(r["true"])] for r in found]
        assert got == expected.tolist()
    # the cut moves rows to the positive class
    assert got[0][1] > 0


def test_confusion_matrix_of_a_multiclass_tree_model(con: Any) -> None:
    from sklearn.metrics import confusion_matrix

    con.execute(MULTICLASS)
    names, found = rows(
        con,
        "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.seg,"
        " (SELECT tenure, spend, plan, segment FROM shop.customers WHERE id < 500))",
    )
    assert names == ["expected_label", "high", "low", "mid"]
    _, scored = rows(
        con,
        "SELECT segment, predicted_segment FROM ML.PREDICT(MODEL shop.seg,"
        " (SELECT tenure, spend, plan, segment FROM shop.customers WHERE id < 500))",
    )
    expected = confusion_matrix(
        [r["segment"] for r in scored],
        [r["predicted_segment"] for r in scored],
        labels=["high", "low", "mid"],
    )
    assert [r["expected_label"] for r in found] == ["high", "low", "mid"]
    assert [[int(r[c]) for c in names[1:]] for r in found] == expected.tolist()


def test_confusion_matrix_column_names_follow_bigquerys_rule() -> None:
    from sqlml.functions.confusion_matrix import column_names

    assert column_names([0, 1]) == ["_0", "_1"]
    assert column_names(["a b", "a-b", "expected_label", False]) == [
        "a_b", "a_b_1", "expected_label_1", "false"
    ]  # fmt: skip


# -- ML.ROC_CURVE ----------------------------------------------------------------------------------


def _scores(con: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(truth, the positive class's probability) per row: ML.SCORE of a binary model."""
    _, found = rows(con, "SELECT churned AS y, ML.SCORE(MODEL shop.churn) AS p FROM shop.customers")
    return (
        np.array([bool(r["y"]) for r in found]),
        np.array([float(r["p"]) for r in found]),
    )


ROC_COLUMNS = [
    "threshold", "recall", "false_positive_rate",
    "true_positives", "false_positives", "true_negatives", "false_negatives",
]  # fmt: skip


def test_roc_curve_equals_scikit_learns(con: Any) -> None:
    """Without GENERATE_ARRAY the thresholds are the percentiles of the positive class's
    probability, as BigQuery documents (it was every distinct probability before: the exact
    curve); each row is scikit-learn's exact curve at that threshold."""
    from sklearn.metrics import roc_curve

    con.execute(BINARY)
    names, found = rows(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, TABLE shop.customers)")
    assert names == ROC_COLUMNS
    truth, p = _scores(con)
    ordered = np.sort(p)
    ranks = {max(1, -(-k * len(p) // 100)) for k in range(101)}  # nearest-rank percentiles
    cuts = sorted({float(ordered[r - 1]) for r in ranks}, reverse=True)
    np.testing.assert_allclose([float(r["threshold"]) for r in found], cuts, rtol=1e-12)
    fpr, tpr, thresholds = roc_curve(truth, p, drop_intermediate=False)
    at = {float(t): (f, r) for f, r, t in zip(fpr, tpr, thresholds, strict=True)}
    for row in found:
        f, r = at[float(row["threshold"])]
        assert math.isclose(float(row["recall"]), r, rel_tol=1e-12)
        assert math.isclose(float(row["false_positive_rate"]), f, rel_tol=1e-12)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    for row in found:
        assert int(row["true_positives"]) + int(row["false_negatives"]) == positives
        assert int(row["false_positives"]) + int(row["true_negatives"]) == negatives


def test_roc_curve_at_given_thresholds(con: Any) -> None:
    from sklearn.metrics import confusion_matrix

    con.execute(BINARY)
    _, found = rows(
        con,
        "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, TABLE shop.customers,"
        " GENERATE_ARRAY(0.1, 0.9, 0.1))",
    )
    assert [float(r["threshold"]) for r in found] == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    truth, p = _scores(con)
    for row in found:
        tn, fp, fn, tp = confusion_matrix(truth, p >= float(row["threshold"])).ravel()
        got = [int(row[c]) for c in ROC_COLUMNS[3:]]
        assert got == [tp, fp, tn, fn]
        assert math.isclose(float(row["recall"]), tp / (tp + fn))
        assert math.isclose(float(row["false_positive_rate"]), fp / (fp + tn))


# -- bad input -------------------------------------------------------------------------------------


def test_bad_input_to_the_rows_functions(con: Any) -> None:
    con.execute(BINARY)
    con.execute(REGRESSOR)
    con.execute(MULTICLASS)
    t = "TABLE shop.customers"
    # a regressor has no classes; ROC is binary
    assert fails(con, f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.lin, {t})") == "0A000"
    assert fails(con, f"SELECT * FROM ML.ROC_CURVE(MODEL shop.lin, {t})") == "0A000"
    assert fails(con, f"SELECT * FROM ML.ROC_CURVE(MODEL shop.seg, {t})") == "0A000"
    # without rows: a multiclass model keeps no evaluation rows (a binary one does:
    # test_anomalies.py)
    assert fails(con, "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.seg)") == "0A000"
    assert fails(con, "SELECT * FROM ML.ROC_CURVE(MODEL shop.seg)") == "0A000"
    # STRUCT fields: unknown, of the wrong type, out of range, pending
    cm = f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, {t}, STRUCT("
    assert fails(con, cm + "0.5 AS treshold))") == "22023"
    assert fails(con, cm + "'high' AS threshold))") == "22023"
    assert fails(con, cm + "1.5 AS threshold))") == "22023"
    assert fails(con, cm + "1 AS trial_id))") == "22023"  # (a model trained without tuning)
    roc = f"SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, {t}, "
    assert fails(con, roc + "STRUCT(0.5 AS threshold))") == "22023"
    assert fails(con, roc + "GENERATE_ARRAY(0.1, 0.9, 0))") == "22023"
    assert fails(con, roc + "GENERATE_ARRAY(0.0, 1.0, 0.00001))") == "22023"
    assert fails(con, roc + "GENERATE_ARRAY('a', 'b'))") == "22023"
    # the rows must have the label column
    no_label = "(SELECT tenure, spend, plan FROM shop.customers)"
    assert fails(con, f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, {no_label})") == "42703"
    # feature importance is for tree models
    assert fails(con, "SELECT * FROM ML.FEATURE_IMPORTANCE(MODEL shop.churn)") == "0A000"
    # and the session goes on
    assert rows(con, f"SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, {t})")[1]


@pytest.mark.parametrize("function", ["CONFUSION_MATRIX", "ROC_CURVE"])
def test_rows_functions_in_a_view_are_refused(con: Any, function: str) -> None:
    """A view would not see a new version of the model: CREATE TABLE AS keeps the result."""
    con.execute(BINARY)
    query = f"SELECT * FROM ML.{function}(MODEL shop.churn, TABLE shop.customers)"
    assert fails(con, f"CREATE VIEW shop.v AS {query}") == "0A000"
    con.execute(f"CREATE TABLE shop.kept AS {query}")
    assert rows(con, "SELECT * FROM shop.kept")[1] == rows(con, query)[1]


def test_a_dnn_classifier(con: Any) -> None:
    """Its epochs in ML.TRAINING_INFO, its confusion matrix and ROC curve over rows."""
    from sklearn.metrics import confusion_matrix

    con.execute(
        "CREATE MODEL shop.net OPTIONS (model_type='dnn_classifier', input_label_cols=['churned'],"
        " hidden_units=[3], activation_fn='TANH', learn_rate=0.01, max_iterations=4,"
        " early_stop=FALSE, data_split_method='NO_SPLIT')"
        " AS SELECT tenure, spend, plan, churned FROM shop.customers"
    )
    _, found = rows(con, "SELECT iteration, learning_rate FROM ML.TRAINING_INFO(MODEL shop.net)")
    assert [int(r["iteration"]) for r in found] == [3, 2, 1, 0]
    assert all(float(r["learning_rate"]) == 0.01 for r in found)
    _, matrix = rows(con, "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.net, TABLE shop.customers)")
    truth, predicted = _predicted(con, "shop.net", "churned")
    expected = confusion_matrix(truth, predicted, labels=[False, True])
    assert [[int(r["false"]), int(r["true"])] for r in matrix] == expected.tolist()
    _, curve = rows(
        con,
        "SELECT * FROM ML.ROC_CURVE(MODEL shop.net, TABLE shop.customers,"
        " GENERATE_ARRAY(0.0, 1.0, 0.5))",
    )
    assert [float(r["threshold"]) for r in curve] == [1.0, 0.5, 0.0]
    positives = sum(1 for t in truth if t)
    assert int(curve[2]["true_positives"]) == positives  # everything is at or above 0


def test_the_rows_are_counted_in_the_engine(database: str) -> None:
    """ML.CONFUSION_MATRIX and ML.ROC_CURVE of a model compiled to SQL are one SQL statement
    (the gateway's PostgreSQL proxy sends it to the server as it is): no rows go to Python, no
    table is registered around the run, and the same text is kept for the next run."""
    from conftest import load_shop

    import sqlml

    con = sqlml.connect(database, autocommit=True)
    try:
        if con.session.engine.dialect == "duckdb":
            load_shop(con)
        con.execute(BINARY)
        for query in (
            "SELECT * FROM ML.CONFUSION_MATRIX(MODEL shop.churn, TABLE shop.customers)",
            "SELECT * FROM ML.ROC_CURVE(MODEL shop.churn, TABLE shop.customers)",
        ):
            sql = con.session.ml_sql(query)
            assert sql is not None
            # not PL/Python (sqlml.evaluate_json, sqlml.score_batch), no registered table
            for elsewhere in ("evaluate_json", "score_batch", "__sqlml_evaluate"):
                assert elsewhere not in sql
            assert con.session.ml_sql(query) == sql
    finally:
        con.close()
