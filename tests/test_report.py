"""The model report (docs/report.md): ``sqlml report`` and ML.REPORT, on DuckDB, on PostgreSQL
and through the gateway, each page opened in a real headless browser (Debian's chromium, driven
by playwright) with the network cut off: no request, no console error, every expected chart
drawn. The numbers the charts carry are checked against the test's own: scikit-learn's
confusion matrix and ROC area of ML.PREDICT's rows, scikit-learn's OLS on standardized features
for the weights, and rows whose skew is known (the training rows themselves: 0; shifted ones:
over the threshold).

Screenshots of each kind of chart go to $SQLML_TEST_ARTIFACTS/report when set, else to
test-artifacts/report in the checkout (ignored by git), where a CI run leaves them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import client_module, module_database, psycopg_gateway, unavailable
from sklearn.linear_model import LinearRegression
from sklearn.metrics import confusion_matrix, roc_auc_score
from test_predlog import log_tables

import sqlml
from sqlml import errors
from sqlml.cli import main

N = 400
TABLE = (
    "CREATE TABLE r.t AS SELECT i,"
    " CAST(sin(i) * 4 AS DOUBLE PRECISION) AS x1,"
    " CAST(cos(i * 0.3) * 2 AS DOUBLE PRECISION) AS x2,"
    " CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b' ELSE 'c' END AS s,"
    " CAST(3 * sin(i) - 2 * cos(i * 0.3) + sin(i * 7.1) AS DOUBLE PRECISION) AS y,"
    " sin(i) - cos(i * 0.3) + sin(i * 5.3) > 0 AS c"
    f" FROM generate_series(1, {N}) AS g(i)"
)
LOGIT = (
    "CREATE {replace} MODEL r.logit OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['c']) AS SELECT {features}, c FROM r.t"
)
TREES = (
    "CREATE MODEL r.bt OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['c'],"
    " max_iterations = 8, enable_global_explain = TRUE) AS SELECT x1, x2, s, c FROM r.t"
)
LINEAR = (
    "CREATE MODEL r.lin OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
    " data_split_method = 'NO_SPLIT') AS SELECT x1, x2, y FROM r.t"
)
KMEANS = (
    "CREATE MODEL r.km OPTIONS (model_type = 'kmeans', num_clusters = 3) AS SELECT x1, x2 FROM r.t"
)
TUNED = (
    "CREATE MODEL r.tuned OPTIONS (model_type = 'logistic_reg', input_label_cols = ['c'],"
    " num_trials = 3, l2_reg = HPARAM_RANGE(0, 1)) AS SELECT x1, x2, s, c FROM r.t"
)
CLASSIFIER_METRICS = ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"]
EVALUATION = ["roc-curve", "pr-curve", "confusion-matrix"]


def train(run: Any, engine: str) -> None:
    """The three models; r.lin logs its predictions: the training rows on one day (their skew
    is 0) and the same rows with x1 shifted by 10 the next day."""
    run("CREATE SCHEMA r")
    run(TABLE)
    run(LOGIT.format(replace="", features="x1, s"))
    run(LOGIT.format(replace="OR REPLACE", features="x1, x2, s"))  # version 2 serves
    if engine == "duckdb":
        run(TREES)
        run(KMEANS)
        run(TUNED)
    run(LINEAR)
    run("ALTER MODEL r.lin SET OPTIONS (prediction_log_sample = 1.0)")
    run("SELECT * FROM ML.PREDICT(MODEL r.lin, (SELECT i, x1, x2 FROM r.t))")
    for table in log_tables(run, engine):
        run(f"UPDATE {table} SET logged_at = logged_at - INTERVAL '1 day'")
    run("SELECT * FROM ML.PREDICT(MODEL r.lin, (SELECT i, x1 + 10 AS x1, x2 FROM r.t))")


def report_of(con: Any, model: str) -> str:
    html = con.execute(f"SELECT html FROM ML.REPORT(MODEL {model})").fetchone()[0]
    assert isinstance(html, str)
    return html


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots are kept: $SQLML_TEST_ARTIFACTS/report, else test-artifacts/report
    in the checkout (git ignores it), which a CI run leaves behind with the rest."""
    given = os.environ.get("SQLML_TEST_ARTIFACTS")
    root = Path(given) if given else Path(__file__).resolve().parent.parent / "test-artifacts"
    folder = root / "report"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through playwright (never a downloaded browser)."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        unavailable("chromium is not installed (apt-get install chromium)")
    sync_api = client_module("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A report opened offline: what it asked of the network, what it logged, its charts."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.requests: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')]"
            ".every(p => p.querySelector('svg.main-svg') && p._fullLayout)"
        )

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith("file:"):
            route.continue_()
        else:
            self.requests.append(url)
            route.abort()

    def charts(self) -> dict[str, str]:
        """Each drawn chart's div id and the title it shows."""
        found: dict[str, str] = self.page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map("
            "p => [p.id, (p.querySelector('.gtitle') || {}).textContent || '']))"
        )
        return found

    def data(self, chart: str) -> list[dict[str, Any]]:
        """The chart's traces as plotly holds them."""
        traces: list[dict[str, Any]] = self.page.evaluate(
            "id => JSON.parse(JSON.stringify(document.getElementById(id).data))", chart
        )
        return traces

    def check_clean(self) -> None:
        assert self.requests == [], "the page asked the network"
        assert self.errors == []
        assert [text for kind, text in self.console if kind == "error"] == []
        undrawn = self.page.evaluate(  # (a trace is a g.trace, a heatmap's an image)
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => !p.data.length"
            " || p.querySelectorAll('svg.main-svg g.trace, svg.main-svg g.hm image').length"
            " < p.data.length).map(p => p.id)"
        )
        assert undrawn == [], "charts with traces not drawn"

    def shoot(self, folder: Path, name: str, charts: list[str]) -> None:
        for chart in charts:
            self.page.locator(f"#{chart}").screenshot(path=str(folder / f"{name}-{chart}.png"))

    def close(self) -> None:
        self.page.close()


@contextlib.contextmanager
def opened(browser: Any, folder: Path, name: str, html: str) -> Iterator[Page]:
    path = folder / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    page = Page(browser, path)
    try:
        yield page
    finally:
        page.close()


# -- DuckDB -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DuckDB file with the three models (closed: the CLI and the gateway open it)."""
    path = str(tmp_path_factory.mktemp("report") / "models.duckdb")
    con = sqlml.connect(path, autocommit=True)
    try:
        train(lambda sql: con.execute(sql), "duckdb")
    finally:
        con.close()
    return path


@pytest.fixture(scope="module")
def pages(duck: str) -> dict[str, str]:
    """Each model's page, made by ML.REPORT on sqlml.connect."""
    con = sqlml.connect(duck, autocommit=True)
    try:
        return {m: report_of(con, f"r.{m}") for m in ("logit", "bt", "lin", "km", "tuned")}
    finally:
        con.close()


def rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    con = sqlml.connect(database, autocommit=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_classifier(duck: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """Two versions of a logistic regression: the metrics of both, version 2 marked; ROC,
    precision-recall and the confusion matrix of the kept evaluation rows (all 400: fewer than
    500 rows are not split), checked against scikit-learn on ML.PREDICT's rows."""
    with opened(browser, artifacts, "logit", pages["logit"]) as page:
        page.check_clean()
        charts = page.charts()
        expected = {*(f"metric-{m}" for m in CLASSIFIER_METRICS), *EVALUATION}
        assert set(charts) == expected | {"feature-importance"}
        assert "ROC curve" in charts["roc-curve"]
        assert "Confusion matrix" in charts["confusion-matrix"]
        assert charts["metric-roc_auc"] == "roc_auc by version"
        line, serving = page.data("metric-roc_auc")
        assert line["x"] == [1, 2]
        assert (serving["x"], serving["name"]) == ([2], "version 2 (serving)")

        predicted = rows(
            duck,
            "SELECT c, predicted_c, predicted_c_probs FROM ML.PREDICT(MODEL r.logit, TABLE r.t)",
        )
        truth = np.array([r[0] for r in predicted])
        guess = np.array([r[1] for r in predicted])
        prob = np.array([next(p["prob"] for p in r[2] if p["label"]) for r in predicted])
        (heat,) = page.data("confusion-matrix")
        assert heat["z"] == confusion_matrix(truth, guess, labels=[False, True]).tolist()
        roc = page.data("roc-curve")[0]
        assert (roc["x"][-1], roc["y"][-1]) == (1, 1)
        area = np.trapezoid(roc["y"], roc["x"])
        assert area == pytest.approx(roc_auc_score(truth, prob), abs=0.01)
        (pr,) = page.data("pr-curve")
        assert pr["y"][-1] == pytest.approx(truth.mean())  # all predicted positive
        page.shoot(artifacts, "logit", ["metric-roc_auc", *EVALUATION, "feature-importance"])


def test_boosted_trees(duck: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """Feature importance (ML.FEATURE_IMPORTANCE's gain), the global explanation and the loss of
    each of the 8 boosting rounds."""
    with opened(browser, artifacts, "bt", pages["bt"]) as page:
        page.check_clean()
        charts = page.charts()
        assert {"feature-importance", "global-explain", "training-loss", *EVALUATION} <= set(charts)
        assert "Training loss" in charts["training-loss"]
        (loss,) = page.data("training-loss")  # (no evaluation split: no eval_loss)
        assert loss["x"] == list(range(8))
        assert all(b < a for a, b in zip(loss["y"], loss["y"][1:], strict=False))
        gains = dict(
            rows(duck, "SELECT feature, importance_gain FROM ML.FEATURE_IMPORTANCE(MODEL r.bt)")
        )
        (bars,) = page.data("feature-importance")
        assert dict(zip(bars["y"], bars["x"], strict=True)) == pytest.approx(gains)
        page.shoot(artifacts, "bt", ["feature-importance", "global-explain", "training-loss"])


def test_regression(duck: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """A linear regression: its metrics, |standardized weight| as scikit-learn's OLS on
    standardized features gives it, the skew of its two days of logged inputs; no
    classification charts, no loss chart (one iteration)."""
    with opened(browser, artifacts, "lin", pages["lin"]) as page:
        page.check_clean()
        charts = page.charts()
        assert not set(charts) & {*EVALUATION, "training-loss", "trials"}
        assert {"metric-r2_score", "metric-mean_squared_error", "skew-by-day"} <= set(charts)
        assert "feature-importance" in charts

        data = np.array(rows(duck, "SELECT x1, x2, y FROM r.t"))
        x = data[:, :2]
        standardized = (x - x.mean(axis=0)) / x.std(axis=0)
        reference = np.abs(LinearRegression().fit(standardized, data[:, 2]).coef_)
        (bars,) = page.data("feature-importance")
        shown = dict(zip(bars["y"], bars["x"], strict=True))
        assert [shown["x1"], shown["x2"]] == pytest.approx(reference.tolist(), rel=1e-6)

        traces = {t["name"].split(" ")[0]: t for t in page.data("skew-by-day")}
        assert set(traces) == {"x1", "x2"}
        assert len(traces["x1"]["x"]) == 2  # two days
        assert traces["x1"]["y"][0] == pytest.approx(0, abs=1e-12)  # the training rows
        assert traces["x2"]["y"] == pytest.approx([0, 0], abs=1e-12)
        assert traces["x1"]["y"][1] > 0.3  # shifted by 10: over the default threshold
        page.shoot(artifacts, "lin", ["metric-r2_score", "feature-importance", "skew-by-day"])
        page.page.screenshot(path=str(artifacts / "lin-page.png"), full_page=True)


def test_kmeans(duck: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """A k-means model: its metrics and the size of each cluster, as many rows as ML.PREDICT
    assigns to each centroid of the training rows."""
    with opened(browser, artifacts, "km", pages["km"]) as page:
        page.check_clean()
        charts = page.charts()
        assert set(charts) == {
            "metric-davies_bouldin_index",
            "metric-mean_squared_distance",
            "cluster-sizes",
        }
        (bars,) = page.data("cluster-sizes")
        assigned = rows(duck, "SELECT centroid_id FROM ML.PREDICT(MODEL r.km, TABLE r.t)")
        counts = np.bincount([r[0] for r in assigned], minlength=4)[1:]
        assert bars["x"] == ["1", "2", "3"]
        assert bars["y"] == counts.tolist()
        page.shoot(artifacts, "km", ["cluster-sizes"])


def test_trials(duck: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """A model tuned with num_trials: each trial's objective and loss from ML.TRIAL_INFO, the
    optimal trial marked; the untuned logistic regression has no trials section."""
    assert 'id="trials"' not in pages["logit"]
    with opened(browser, artifacts, "tuned", pages["tuned"]) as page:
        page.check_clean()
        assert page.charts()["trials"] == "Trials (ML.TRIAL_INFO)"
        traces = {t["name"]: t for t in page.data("trials")}
        found = rows(
            duck, "SELECT trial_id, eval_loss, is_optimal FROM ML.TRIAL_INFO(MODEL r.tuned)"
        )
        assert traces["eval_loss"]["x"] == [r[0] for r in found] == [1, 2, 3]
        assert traces["eval_loss"]["y"] == pytest.approx([r[1] for r in found])
        optimal = page.page.evaluate(
            "() => document.getElementById('trials').layout.shapes.map(s => s.x0)"
        )
        assert optimal == [next(r[0] for r in found if r[2])]
        page.shoot(artifacts, "tuned", ["trials"])


def test_page_is_self_contained(pages: dict[str, str]) -> None:
    """plotly.js once, in the head; no URL a browser would load."""
    from plotly.offline import get_plotlyjs

    html = pages["logit"]
    assert html.count(get_plotlyjs()) == 1
    assert html.index(get_plotlyjs()) < html.index("</head>")
    ours = html.replace(get_plotlyjs(), "")
    for marker in ("http:", "https:", "//cdn", "<link", "@import"):
        assert marker not in ours


def test_plotly_is_imported_only_for_a_report() -> None:
    """``sqlml --help`` and scoring stay fast: the registry and the CLI import no plotly."""
    code = (
        "import sys, sqlml, sqlml.functions, sqlml.cli, sqlml.engine;"
        " sys.exit(any(m.split('.')[0] == 'plotly' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0


def test_cli(duck: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlml report``: the default file in the current folder, -o, an unknown model."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(main, ["report", "r.logit", "--database", duck])
    assert done.exit_code == 0, done.output
    written = (tmp_path / "r.logit_report.html").read_text()
    assert written.startswith("<!DOCTYPE html>")
    assert 'id="roc-curve"' in written
    done = runner.invoke(main, ["report", "r.lin", "-d", duck, "-o", str(tmp_path / "x.html")])
    assert done.exit_code == 0, done.output
    assert 'id="skew-by-day"' in (tmp_path / "x.html").read_text()
    done = runner.invoke(main, ["report", "r.logit", "-d", duck, "--model-version", "1"])
    assert done.exit_code == 0, done.output
    assert "version 1 is available" in (tmp_path / "r.logit_report.html").read_text()

    done = runner.invoke(main, ["report", "r.missing", "-d", duck])
    assert done.exit_code == 1
    assert done.stderr.startswith("ERROR 42704:"), done.stderr
    done = runner.invoke(main, ["report", "r.logit; DROP TABLE r.t", "-d", duck])
    assert (done.exit_code, done.stderr[:12]) == (1, "ERROR 42601:")


def test_refusals(duck: str) -> None:
    con = sqlml.connect(duck, autocommit=True)
    try:
        for sql, sqlstate in (
            ("SELECT * FROM ML.REPORT(MODEL r.missing)", "42704"),
            ("SELECT * FROM ML.REPORT(MODEL r.lin, (SELECT 1))", "42601"),
        ):
            with pytest.raises(errors.Error) as raised:
                con.execute(sql)
            assert raised.value.sqlstate == sqlstate
    finally:
        con.close()


def test_gateway_over_duckdb(
    duck: str, pages: dict[str, str], browser: Any, artifacts: Path
) -> None:
    """Through `sqlml serve` with psycopg 3: the same page (but for its time stamp)."""
    with psycopg_gateway("duckdb", duck) as c:
        html = report_of(c, "r.logit")
    assert _unstamped(html) == _unstamped(pages["logit"])
    with opened(browser, artifacts, "logit-gateway", html) as page:
        page.check_clean()
        assert "confusion-matrix" in page.charts()


def _unstamped(html: str) -> str:
    head, _, tail = html.rpartition("<footer>")
    return head + tail.partition("</footer>")[2]


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with module_database("postgres", request, tmp_path_factory, "report") as database:
        con = sqlml.connect(database, autocommit=True)
        try:
            train(lambda sql: con.execute(sql), "postgres")
        finally:
            con.close()
        yield database


def test_postgres(pg: str, pages: dict[str, str], browser: Any, artifacts: Path) -> None:
    """ML.REPORT on sqlml.connect over PostgreSQL: the same charts as on DuckDB, the text
    (plotly.js's backslashes and quotes) intact."""
    from plotly.offline import get_plotlyjs

    con = sqlml.connect(pg, autocommit=True)
    try:
        html = {m: report_of(con, f"r.{m}") for m in ("logit", "lin")}
    finally:
        con.close()
    assert get_plotlyjs() in html["logit"]
    for model in ("logit", "lin"):
        with opened(browser, artifacts, f"{model}-postgres", html[model]) as page:
            page.check_clean()
            assert sorted(page.charts()) == chart_ids(pages[model])  # as on DuckDB
            if model == "lin":
                traces = {t["name"].split(" ")[0]: t["y"] for t in page.data("skew-by-day")}
                assert traces["x2"] == pytest.approx([0, 0], abs=1e-12)


def chart_ids(html: str) -> list[str]:
    return sorted(re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', html))


def test_in_the_postgres_server(pg: str) -> None:
    """sqlml.ml in psql makes the page in the server (sqlml install puts plotly on the server's
    Python path, as every dependency)."""
    import psycopg2

    con = psycopg2.connect(pg)
    con.autocommit = True
    try:
        with con.cursor() as cursor:
            cursor.execute("SELECT sqlml.ml('SELECT html FROM ML.REPORT(MODEL r.logit)')")
            (row,) = cursor.fetchall()
    finally:
        con.close()
    assert row[0]["html"].startswith("<!DOCTYPE html>")


def test_gateway_over_postgres(pg: str, browser: Any, artifacts: Path) -> None:
    """Through the gateway's PostgreSQL proxy (psycopg 3)."""
    with psycopg_gateway("postgres", pg) as c:
        html = report_of(c, "r.logit")
    with opened(browser, artifacts, "logit-pg-gateway", html) as page:
        page.check_clean()
        assert {"roc-curve", "confusion-matrix", "metric-roc_auc"} <= set(page.charts())
