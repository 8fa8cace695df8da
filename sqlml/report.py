"""The model report (``sqlml report``, ``ML.REPORT``): what a model's page shows, gathered
through sqlml's own SQL functions.

Theory of operation
-------------------
Everything on the page comes from statements a user could type, run on a :class:`Query` (one
statement's rows as Arrow): ML.VERSIONS and ML.DEPLOYMENTS for the header and the metrics of
each version, ML.ROC_CURVE and ML.CONFUSION_MATRIX without rows (the evaluation rows kept at
training, as ML.EVALUATE without rows), ML.FEATURE_IMPORTANCE or ML.WEIGHTS (standardize TRUE),
ML.GLOBAL_EXPLAIN and ML.TRIAL_INFO where registered, ML.TRAINING_INFO, and, where the model
has a prediction log, ML.PREDICTION_LOG's days and one ML.VALIDATE_DATA_SKEW per day of the
logged inputs against the statistics stored at training. So the page is the same on DuckDB and
PostgreSQL, directly or through the gateway, and shows what the role may see.

A section that does not apply to the model (an ROC curve of a regressor, the skew of a model
that logs nothing) is left out: its function is not called, or says so at once (0A000, 55000:
refused while the statement is written, before anything runs, so a transaction goes on).

:mod:`sqlml.report_page` draws the gathered :class:`Report` (plotly, imported only then).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors, functions
from sqlml.functions.versions import column, of_model, store_table
from sqlml.ml import models
from sqlml.ml import statistics as st
from sqlml.store import ModelVersion, log_rows

Query = Callable[[str], pa.Table]  # one statement (the engine's own SQL) -> its rows
MAX_DAYS = 30  # the most recent days of the prediction log whose skew is shown
TREES = (
    "boosted_tree_regressor",
    "boosted_tree_classifier",
    "random_forest_regressor",
    "random_forest_classifier",
)
LINEAR = ("linear_reg", "logistic_reg")
# what a function says when it does not apply to a model: a section left out
_NOT_APPLICABLE = ("0A000", "55000")


@dataclass(frozen=True)
class Header:
    model: str  # schema.name
    model_type: str
    version: int  # the version reported (the serving one unless MODEL m VERSION n)
    created_at: Any  # the version's
    first_created_at: Any  # the model's first stored version's
    status: str  # ML.VERSIONS' status of the version
    versions: list[tuple[int, str, float | None]]  # every version: (version, status, weight)
    options: dict[str, Any]
    deployment: dict[str, Any] | None  # ML.DEPLOYMENTS' row in effect


@dataclass(frozen=True)
class Bars:
    """Bars by name: feature importance, attributions, cluster sizes."""

    title: str
    source: str  # the SQL function and column the values come from
    names: list[str]
    values: list[float]


@dataclass
class Report:
    header: Header
    # ML.VERSIONS' metrics: metric -> (version, value) for each version that has it
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    roc: pa.Table | None = None  # ML.ROC_CURVE's rows
    matrix: pa.Table | None = None  # ML.CONFUSION_MATRIX's rows
    importance: Bars | None = None
    explained: Bars | None = None  # ML.GLOBAL_EXPLAIN
    loss: pa.Table | None = None  # ML.TRAINING_INFO's iteration, loss, eval_loss (>= 2 rows)
    clusters: Bars | None = None  # ML.TRAINING_INFO's cluster_info
    trials: pa.Table | None = None  # ML.TRIAL_INFO's rows
    # per day of the prediction log: (day, ML.VALIDATE_DATA_SKEW's rows)
    skew: list[tuple[datetime.date, pa.Table]] = field(default_factory=list)


def gather(
    query: Query, version: ModelVersion, stored: Mapping[str, Any] | None, dialect: str
) -> Report:
    """The report of ``version`` (``stored``: its training statistics, None: none)."""
    model = _model_sql(version, dialect)
    versions = query(f"SELECT * FROM ML.VERSIONS({_unpinned(model)})").to_pylist()
    report = Report(_header(query, version, model, versions))
    report.metrics = _metrics(versions)
    classifier = version.kind == models.CLASSIFIER
    if classifier:
        report.roc = _optional(query, f"SELECT * FROM ML.ROC_CURVE({model})")
        report.matrix = _optional(query, f"SELECT * FROM ML.CONFUSION_MATRIX({model})")
    report.importance = _importance(query, version, model)
    report.explained = _explained(query, version, model)
    _training(query, version, model, report)
    report.trials = _trials(query, version, model)
    report.skew = _skew(query, version, model, stored, dialect)
    return report


def _model_sql(version: ModelVersion, dialect: str) -> str:
    """``MODEL "schema"."name" [VERSION n]``: the stored names, quoted."""
    table = exp.table_(version.name, db=version.schema, quoted=True).sql(dialect=dialect)
    pinned = f" VERSION {int(version.version)}" if version.pinned else ""
    return f"MODEL {table}{pinned}"


def _unpinned(model: str) -> str:
    return model.split(" VERSION ")[0]


def _optional(query: Query, sql: str) -> pa.Table | None:
    """The rows, or None where the function does not apply to the model (or has none)."""
    try:
        table = query(sql)
    except errors.Error as e:
        if e.sqlstate in _NOT_APPLICABLE:
            return None
        raise
    return table if table.num_rows else None


def _json(value: Any) -> Any:
    """A JSON column's value (text on PostgreSQL and through the gateway)."""
    return json.loads(value) if isinstance(value, str) else value


def _header(
    query: Query, version: ModelVersion, model: str, versions: list[dict[str, Any]]
) -> Header:
    mine = next(v for v in versions if int(v["version"]) == version.version)
    deployments = query(f"SELECT * FROM ML.DEPLOYMENTS({_unpinned(model)})").to_pylist()
    in_effect = next((d for d in deployments if d["served_until"] is None), None)
    return Header(
        model=f"{version.schema}.{version.name}",
        model_type=version.model_type,
        version=version.version,
        created_at=mine["created_at"],
        first_created_at=versions[0]["created_at"],
        status=str(mine["status"]),
        versions=[(int(v["version"]), str(v["status"]), v["traffic_weight"]) for v in versions],
        options=dict(_json(mine["options"]) or {}),
        deployment=in_effect,
    )


def _metrics(versions: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Each metric's value for each version that has it, in version order (NULLs left out)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for row in versions:
        for name, value in (_json(row["metrics"]) or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.setdefault(name, []).append((int(row["version"]), float(value)))
    return found


def _importance(query: Query, version: ModelVersion, model: str) -> Bars | None:
    """Trees: ML.FEATURE_IMPORTANCE's gain; linear models: the magnitude of ML.WEIGHTS'
    standardized weights (a categorical feature's largest over its categories, a multiclass
    model's largest over its classes)."""
    if version.model_type in TREES:
        rows = _optional(query, f"SELECT * FROM ML.FEATURE_IMPORTANCE({model})")
        if rows is None:
            return None
        pairs = [(r["feature"], r["importance_gain"] or 0.0) for r in rows.to_pylist()]
        return Bars("Feature importance", "ML.FEATURE_IMPORTANCE: importance_gain", *_unzip(pairs))
    if version.model_type not in LINEAR:
        return None
    sql = f"SELECT * FROM ML.WEIGHTS({model}, STRUCT(TRUE AS standardize))"
    rows = _optional(query, sql)
    if rows is None:
        return None
    largest: dict[str, float] = {}
    for row in rows.to_pylist():
        name = row["processed_input"]
        if name == "__INTERCEPT__":
            continue
        weights = [row["weight"]] if row["weight"] is not None else []
        weights += [c["weight"] for c in _json(row["category_weights"]) or []]
        magnitude = max((abs(w) for w in weights if w is not None), default=0.0)
        largest[name] = max(largest.get(name, 0.0), magnitude)
    source = "ML.WEIGHTS (standardize TRUE): |weight|"
    return Bars("Feature importance", source, *_unzip(list(largest.items())))


def _unzip(pairs: list[tuple[str, float]]) -> tuple[list[str], list[float]]:
    """Names and values, the largest value first."""
    ordered = sorted(pairs, key=lambda p: -p[1])
    return [str(p[0]) for p in ordered], [float(p[1]) for p in ordered]


def _explained(query: Query, version: ModelVersion, model: str) -> Bars | None:
    """ML.GLOBAL_EXPLAIN's attributions, when the function is registered and the model has
    them (trained with enable_global_explain = TRUE, as BigQuery asks)."""
    if functions.find("GLOBAL_EXPLAIN") is None or not version.options.get("enable_global_explain"):
        return None
    rows = _optional(query, f"SELECT * FROM ML.GLOBAL_EXPLAIN({model})")
    if rows is None or not {"feature", "attribution"} <= set(rows.column_names):
        return None
    largest: dict[str, float] = {}
    for row in rows.to_pylist():
        if row["attribution"] is not None:
            value = abs(float(row["attribution"]))
            largest[row["feature"]] = max(largest.get(row["feature"], 0.0), value)
    source = "ML.GLOBAL_EXPLAIN: attribution"
    return Bars("Global explanation", source, *_unzip(list(largest.items())))


def _training(query: Query, version: ModelVersion, model: str, report: Report) -> None:
    """ML.TRAINING_INFO: the loss per iteration (where training recorded more than one), and
    a k-means model's cluster sizes."""
    rows = _optional(query, f"SELECT * FROM ML.TRAINING_INFO({model})")
    if rows is None:
        return
    if "cluster_info" in rows.column_names:
        info = _json(rows.column("cluster_info")[0].as_py()) or []
        if info:
            pairs = [(str(c["centroid_id"]), float(c["cluster_size"] or 0)) for c in info]
            names, sizes = [p[0] for p in pairs], [p[1] for p in pairs]
            report.clusters = Bars("Cluster sizes", "ML.TRAINING_INFO: cluster_info", names, sizes)
    if rows.num_rows >= 2:
        wanted = [c for c in ("iteration", "loss", "eval_loss") if c in rows.column_names]
        report.loss = rows.select(wanted).sort_by("iteration")


def _trials(query: Query, version: ModelVersion, model: str) -> pa.Table | None:
    """ML.TRIAL_INFO's rows, when the function is registered and the model has trials
    (trained with num_trials, BigQuery's hyperparameter tuning)."""
    if functions.find("TRIAL_INFO") is None or not version.options.get("num_trials"):
        return None
    rows = _optional(query, f"SELECT * FROM ML.TRIAL_INFO({model})")
    if rows is None or "trial_id" not in rows.column_names:
        return None
    return rows.sort_by("trial_id")


def _skew(
    query: Query,
    version: ModelVersion,
    model: str,
    stored: Mapping[str, Any] | None,
    dialect: str,
) -> list[tuple[datetime.date, pa.Table]]:
    """ML.VALIDATE_DATA_SKEW of each day's logged inputs (the most recent MAX_DAYS days with a
    log), against the statistics stored at training; none without a log or statistics."""
    if stored is None:
        return []
    label = stored.get("label")
    compared = {
        n: s for n, s in stored.get("columns", {}).items() if n != label and s["type"] != st.OTHER
    }
    if not compared:
        return []
    sql = (
        "SELECT CAST(logged_at AS DATE) AS day, COUNT(*) AS n"
        f" FROM ML.PREDICTION_LOG({_unpinned(model)}) GROUP BY 1 ORDER BY 1"
    )
    days = [r["day"] for r in query(sql).to_pylist()][-MAX_DAYS:]
    found = []
    for day in days:
        logged = _logged(version, compared, day, dialect)
        rows = query(f"SELECT * FROM ML.VALIDATE_DATA_SKEW({model}, ({logged}))")
        found.append((day, rows))
    return found


def _logged(
    version: ModelVersion, compared: Mapping[str, Any], day: datetime.date, dialect: str
) -> str:
    """The inputs logged on ``day`` (not by a shadow: its rows repeat the served ones), one
    column per compared feature, typed as training saw it."""
    p = "p"
    inputs = exp.cast(column("inputs", p), exp.DataType.build("JSON"))
    columns = []
    for name, stats in compared.items():
        value: exp.Expr = exp.JSONExtractScalar(this=inputs.copy(), expression=_key(name))
        if stats["type"] == st.NUMERICAL:
            value = exp.cast(value, exp.DataType.build("DOUBLE"))
        elif str(stats.get("sql_type")) == "bool":
            value = exp.cast(value, exp.DataType.build("BOOLEAN"))
        columns.append(exp.alias_(value, name, quoted=True))
    start = datetime.datetime.combine(day, datetime.time())
    at = column("logged_at", p)
    where = exp.and_(
        of_model(version, p),
        at >= _timestamp(start),
        at < _timestamp(start + datetime.timedelta(days=1)),
        column("variant", p).neq(exp.Literal.string("shadow")),
    )
    select = exp.select(*columns).from_(store_table(log_rows(dialect), p)).where(where)
    return select.sql(dialect=dialect)


def _key(name: str) -> exp.Expr:
    return exp.Literal.string(name)


def _timestamp(moment: datetime.datetime) -> exp.Expr:
    text = exp.Literal.string(moment.isoformat(sep=" "))
    return exp.cast(text, exp.DataType.build("TIMESTAMP"))


def model_sql(text: str) -> str:
    """A model name as a user types it (``shop.churn``, ``"My Schema".churn``) as SQL with
    every part quoted as the grammar folds it (42601: not a name)."""
    import sqlglot
    import sqlglot.errors

    from sqlml.grammar.values import quoted_table

    try:
        table = sqlglot.parse_one(text, into=exp.Table, read="postgres")
    except sqlglot.errors.SqlglotError as e:
        raise errors.SyntaxError(f"not a model name: {text!r}") from e
    if not isinstance(table, exp.Table) or not table.name or set(table.args) - _NAME_PARTS:
        raise errors.SyntaxError(f"not a model name: {text!r}")
    return quoted_table(table).sql(dialect="postgres")


_NAME_PARTS = {"this", "db", "catalog"}


def file_name(model: str) -> str:
    """``sqlml report``'s default output file: ``<model>_report.html``, the name as typed with
    anything but letters, digits, '.', '_' and '-' made '_'."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in model) + "_report.html"
