"""ML.GLOBAL_EXPLAIN (sqlml/functions/global_explain.py, computed at training by
sqlml/ml/global_explain.py) on DuckDB and PostgreSQL, checked against the test's own
computations: scikit-learn's OLS on the training rows and numpy's mean |coef (x - mean)| over
the evaluation rows (a CUSTOM split, so the test knows them); ML.EXPLAIN_PREDICT's per-row
attributions averaged over the same rows (linear and logistic models, the predicted class);
BigQuery's per-class rule from ML.WEIGHTS' standardized weights; for boosted trees and random
forests (stored as ONNX only: the booster is gone) the ranking on rows where one feature
dominates by construction, and the top-10 limit per class."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import ENGINES, Noticing, module_database, psycopg_gateway
from sklearn.linear_model import LinearRegression

from sqlml import errors

N = 300
TABLE = (
    "CREATE TABLE ge.t AS SELECT i,"
    " CASE WHEN i % 13 = 0 THEN NULL ELSE CAST(sin(i) * 4 AS DOUBLE PRECISION) END AS x1,"
    " CAST(cos(i * 0.3) * 2 AS DOUBLE PRECISION) AS x2,"
    " CASE WHEN i % 7 = 0 THEN NULL WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b' ELSE 'c' END"
    " AS s,"
    " CAST(3 * sin(i) - 2 * cos(i * 0.3) + (i % 3) + sin(i * 7.1) AS DOUBLE PRECISION) AS y,"
    " sin(i) - cos(i * 0.3) + sin(i * 5.3) > 0 AS c,"
    " CASE WHEN sin(i * 2.1) + 0.3 * sin(i) > 0.4 THEN 'hi'"
    " WHEN sin(i * 2.1) + 0.3 * sin(i) < -0.4 THEN 'lo' ELSE 'mid' END AS k,"
    " i % 4 = 0 AS held_out,"
    # one feature dominates: big = 10 x a uniform-ish spread, small ones barely matter
    " CAST(10 * sin(i * 1.3) + 0.2 * cos(i * 0.7) + 0.1 * sin(i * 9.1) AS DOUBLE PRECISION)"
    " AS yt,"
    " CAST(sin(i * 1.3) AS DOUBLE PRECISION) AS big,"
    " CAST(cos(i * 0.7) AS DOUBLE PRECISION) AS small,"
    " CAST(sin(i * 9.1) AS DOUBLE PRECISION) AS tiny"
    f" FROM generate_series(1, {N}) AS g(i)"
)
SPLIT = "data_split_method = 'CUSTOM', data_split_col = 'held_out'"
EXPLAIN = "enable_global_explain = TRUE"
MANY = 12  # features of the wide tree classifier (more than the 10 per class)


class Ge(Noticing):
    def global_explained(self, model: str, class_level: bool = False) -> list[tuple[Any, ...]]:
        struct = ", STRUCT(TRUE AS class_level_explain)" if class_level else ""
        return self.run(f"SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL {model}{struct})")

    def columns(self, sql: str) -> list[str]:
        cursor = self.con.execute(sql)
        cursor.fetchall()
        return [d[0] for d in cursor.description]

    def local(self, model: str, query: str) -> dict[str, float]:
        """ML.EXPLAIN_PREDICT's attributions, every feature, mean absolute value per feature."""
        rows = self.run(
            f"SELECT top_feature_attributions FROM ML.EXPLAIN_PREDICT(MODEL {model}, {query},"
            " STRUCT(100 AS top_k_features))"
        )
        sums: dict[str, float] = {}
        for (top,) in rows:
            if isinstance(top, str):  # (PostgreSQL: jsonb as text)
                top = json.loads(top)
            for item in top:
                sums[item["feature"]] = sums.get(item["feature"], 0.0) + abs(item["attribution"])
        return {name: total / len(rows) for name, total in sums.items()}


@pytest.fixture(scope="module", params=ENGINES)
def ge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ge]:
    with module_database(str(request.param), request, tmp_path_factory, "gexplain") as database:
        found = Ge(database, str(request.param))
        found.run("CREATE SCHEMA ge")
        found.run(TABLE)
        for name, options, columns in (
            ("numeric", "model_type = 'linear_reg', input_label_cols = ['y']", "x1, x2, y"),
            ("mixed", "model_type = 'linear_reg', input_label_cols = ['y']", "x1, x2, s, y"),
            ("binary", "model_type = 'logistic_reg', input_label_cols = ['c']", "x1, x2, s, c"),
            ("multi", "model_type = 'logistic_reg', input_label_cols = ['k']", "x1, x2, s, k"),
            (
                "tree",
                "model_type = 'boosted_tree_regressor', input_label_cols = ['yt'],"
                " max_iterations = 30",
                "big, small, tiny, s, yt",
            ),
        ):
            found.run(
                f"CREATE MODEL ge.{name} OPTIONS ({options}, {SPLIT}, {EXPLAIN})"
                f" AS SELECT {columns}, held_out FROM ge.t"
            )
        wide = ", ".join(
            f"CAST(sin(i * {j + 1.7}) AS DOUBLE PRECISION) AS f{j}" for j in range(MANY)
        )
        found.run(
            "CREATE MODEL ge.wide OPTIONS (model_type = 'random_forest_classifier',"
            f" input_label_cols = ['k'], num_parallel_tree = 10, {EXPLAIN},"
            f" approx_global_feature_contrib = TRUE) AS SELECT {wide}, k FROM ge.t"
        )
        found.run(
            "CREATE MODEL ge.plain OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
            " AS SELECT x1, x2, y FROM ge.t"
        )
        yield found
        found.con.close()


def _evaluation(ge: Ge, columns: str) -> list[tuple[Any, ...]]:
    return ge.run(f"SELECT {columns} FROM ge.t WHERE held_out ORDER BY i")


def test_linear_reg_is_the_mean_absolute_ols_attribution_over_the_evaluation_rows(ge: Ge) -> None:
    """scikit-learn's OLS on the training rows (NULL imputed to the mean of all rows, as
    preprocessing is fitted); attribution_j = mean |coef_j (x_j - mean_j)| over the evaluation
    rows, NULL at the mean (0); sorted largest first."""
    rows = ge.run("SELECT x1, x2, y, held_out FROM ge.t ORDER BY i")
    x = np.array([[np.nan if v is None else v for v in r[:2]] for r in rows], dtype=float)
    means = np.nanmean(x, axis=0)
    x = np.where(np.isnan(x), means, x)
    y = np.array([r[2] for r in rows])
    held = np.array([r[3] for r in rows], dtype=bool)
    reference = LinearRegression().fit(x[~held], y[~held])
    expected = np.abs(reference.coef_ * (x[held] - means)).mean(axis=0)
    got = ge.global_explained("ge.numeric")
    assert [r[0] for r in got] == [n for _, n in sorted(zip(-expected, ("x1", "x2"), strict=True))]
    by_name = {r[0]: r[1] for r in got}
    assert by_name["x1"] == pytest.approx(expected[0], rel=1e-9)
    assert by_name["x2"] == pytest.approx(expected[1], rel=1e-9)
    assert ge.columns("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.numeric)") == [
        "feature",
        "attribution",
    ]


@pytest.mark.parametrize("model", ["mixed", "binary", "multi"])
def test_linear_models_average_explain_predicts_attributions(ge: Ge, model: str) -> None:
    """The mean absolute per-row attribution ML.EXPLAIN_PREDICT gives (the predicted class's,
    for classifiers) over the evaluation rows, for every feature (a category block as one)."""
    local = ge.local(f"ge.{model}", "(SELECT i, x1, x2, s FROM ge.t WHERE held_out)")
    got = ge.global_explained(f"ge.{model}")
    assert {r[0] for r in got} == set(local) == {"x1", "x2", "s"}
    for feature, attribution in got:
        assert attribution == pytest.approx(local[feature], rel=1e-9, abs=1e-12), feature
    values = [r[1] for r in got]
    assert values == sorted(values, reverse=True)


def test_multiclass_class_level_follows_each_classs_weights(ge: Ge) -> None:
    """Per class, over every evaluation row: mean |w_k (x - mean) / std| for a numeric feature
    (ML.WEIGHTS' standardized weight of class k, numpy's mean and population std over all rows,
    NULL at the mean) and mean |the class's weight of the category present|."""
    data = ge.run("SELECT x1, x2 FROM ge.t")
    stats = {}
    for j, name in enumerate(("x1", "x2")):
        known = np.array([r[j] for r in data if r[j] is not None], dtype=float)
        imputed = np.array([known.mean() if r[j] is None else r[j] for r in data])
        stats[name] = (known.mean(), imputed.std())
    rows = _evaluation(ge, "x1, x2, s")
    got = ge.global_explained("ge.multi", class_level=True)
    assert ge.columns(
        "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.multi, STRUCT(TRUE AS class_level_explain))"
    ) == ["class_label", "feature", "attribution"]
    labels = [r[0] for r in got]
    assert labels == sorted(labels)
    assert set(labels) == {"hi", "lo", "mid"}
    for label in ("hi", "lo", "mid"):
        w = ge.weights("ge.multi", label)
        expected = {}
        for j, name in enumerate(("x1", "x2")):
            mean, std = stats[name]
            values = [0.0 if r[j] is None else w[name] * (r[j] - mean) / std for r in rows]
            expected[name] = float(np.mean(np.abs(values)))
        expected["s"] = float(np.mean([abs(w["s"].get(r[2], 0.0)) for r in rows]))
        mine = [(f, a) for lab, f, a in got if lab == label]
        assert [f for f, _ in mine] == sorted(expected, key=lambda n: -expected[n])
        for feature, attribution in mine:
            assert attribution == pytest.approx(expected[feature], rel=1e-8), (label, feature)


def test_binary_class_level_has_both_classes(ge: Ge) -> None:
    """A binary model's one logit z explains class 1 and -z class 0: the same magnitudes."""
    got = ge.global_explained("ge.binary", class_level=True)
    model = dict(ge.global_explained("ge.binary"))
    by_class: dict[str, dict[str, float]] = {}
    for label, feature, attribution in got:
        by_class.setdefault(str(label).lower(), {})[feature] = attribution
    assert set(by_class) == {"false", "true"}
    assert by_class["false"] == pytest.approx(by_class["true"])
    # (every row explains its predicted class, whose |attribution| is the same: the overall one)
    assert by_class["true"] == pytest.approx(model)


def test_boosted_tree_ranks_the_dominant_feature_first(ge: Ge) -> None:
    """yt = 10 big + 0.2 small + 0.1 tiny (s plays no part): TreeSHAP's mean |attribution| puts
    big first, near the true mean |10 (big - mean)|, far above the others."""
    got = ge.global_explained("ge.tree")
    assert got[0][0] == "big"
    assert {r[0] for r in got} == {"big", "small", "tiny", "s"}
    by_name = dict(got)
    big = np.array([r[0] for r in ge.run("SELECT big FROM ge.t")])
    held = np.array([r[0] for r in _evaluation(ge, "big")])
    truth = float(np.abs(10 * (held - big.mean())).mean())
    assert by_name["big"] == pytest.approx(truth, rel=0.15)
    assert by_name["big"] > 10 * max(by_name["small"], by_name["tiny"], by_name["s"])


def test_forest_classifier_returns_the_top_10_per_class(ge: Ge) -> None:
    """Model level: every feature; class level: each class's 10 largest, in descending order."""
    overall = ge.global_explained("ge.wide")
    assert len(overall) == MANY
    got = ge.global_explained("ge.wide", class_level=True)
    for label in ("hi", "lo", "mid"):
        mine = [a for lab, _, a in got if lab == label]
        assert len(mine) == 10
        assert mine == sorted(mine, reverse=True)
    assert all(a >= 0 for *_, a in got)


def test_regression_ignores_class_level_explain(ge: Ge) -> None:
    assert ge.global_explained("ge.numeric", class_level=True) == ge.global_explained("ge.numeric")


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.plain)", "22023"),
        ("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.km)", "0A000"),
        (
            "SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.numeric, STRUCT(1 AS class_level_explain))",
            "22023",
        ),
        ("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.numeric, STRUCT(TRUE AS top_k))", "22023"),
        ("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL ge.nope)", "42704"),
        (
            "CREATE MODEL ge.bad OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
            " enable_global_explain = 'yes') AS SELECT x1, y FROM ge.t",
            "22023",
        ),
        (
            "CREATE MODEL ge.bad OPTIONS (model_type = 'kmeans', num_clusters = 2,"
            " enable_global_explain = TRUE) AS SELECT x2 FROM ge.t",
            "22023",
        ),
    ],
)
def test_refusals(ge: Ge, sql: str, sqlstate: str) -> None:
    if not ge.run("SELECT count(*) FROM sqlml.versions WHERE model_name = 'km'")[0][0]:
        ge.run(
            "CREATE MODEL ge.km OPTIONS (model_type = 'kmeans', num_clusters = 2) AS SELECT x2 FROM ge.t"
        )
    with pytest.raises(errors.Error) as raised:
        ge.run(sql)
    assert raised.value.sqlstate == sqlstate, raised.value
    assert ge.run("SELECT 1") == [(1,)]


def test_over_the_gateway(shop_file: str) -> None:
    """Through `sqlml serve` over DuckDB (psycopg 3): the rows as a client reads them."""
    with psycopg_gateway("duckdb", shop_file) as c:
        c.execute(
            "CREATE OR REPLACE MODEL shop.ge OPTIONS (model_type = 'logistic_reg',"
            " input_label_cols = ['churned'], enable_global_explain = TRUE)"
            " AS SELECT tenure, plan, churned FROM shop.customers"
        )
        cur = c.execute("SELECT * FROM ML.GLOBAL_EXPLAIN(MODEL shop.ge)")
        assert [d.name for d in cur.description or []] == ["feature", "attribution"]
        rows = cur.fetchall()
        assert {r[0] for r in rows} == {"tenure", "plan"}
        assert rows[0][1] >= rows[1][1] > 0
