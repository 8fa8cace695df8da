"""ML.EVALUATE (and ML.COMPARE): a model version's metrics, stored at training, at another
threshold from the evaluation rows kept at training, or computed over rows (in process on
DuckDB, in the server on PostgreSQL). Split from engine.py, whose Session delegates here."""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors, scoring, traffic
from sqlml.engines import placeholders
from sqlml.grammar.statements import Compare, Evaluate
from sqlml.ml import nested
from sqlml.store import ModelVersion

if TYPE_CHECKING:
    from sqlml.engine import Session


def evaluate(
    session: Session, version: ModelVersion, call: Evaluate, params: Sequence[Any] | None = None
) -> pa.Table:
    if isinstance(call, Compare):
        return traffic.compare(session, version, call, params)
    if call.input is None and call.threshold is None and _tuned(version):
        return _trials(session, version)
    if call.input is None and call.threshold is None:
        if not version.metrics:  # (an imported model: nothing was measured)
            raise errors.FeatureNotSupported(
                f"model {version.ref} has no evaluation metrics: it was imported, not trained"
            )
        values = dict(version.metrics)
    elif call.input is None:
        values = _evaluate_kept(version, call.threshold)
    else:
        values = _evaluate_rows(session, version, call, params)
    return pa.table({k: pa.array([v], type=pa.float64()) for k, v in values.items()})


def _tuned(version: ModelVersion) -> bool:
    from sqlml.ml import tuning

    return version.trial is None and tuning.has_trials(version.training_info)


def _trials(session: Session, version: ModelVersion) -> pa.Table:
    """ML.EVALUATE(MODEL m) of a model trained with hyperparameter tuning: every trial's
    metrics on the test rows, trial_id first (BigQuery: "When the function doesn't take input
    data, all trial results are returned"); the failed trials have none and are left out."""
    rows = [
        t for t in session.store.trials(version.ref, version.version) if t["status"] == "SUCCEEDED"
    ]
    names = list(version.metrics)
    columns: dict[str, pa.Array] = {"trial_id": pa.array([t["trial_id"] for t in rows], pa.int64())}
    for name in names:
        values = [(t["metrics"] or {}).get(name) for t in rows]
        columns[name] = pa.array(values, type=pa.float64())
    return pa.table(columns)


def _evaluate_rows(
    session: Session, version: ModelVersion, call: Evaluate, params: Sequence[Any] | None
) -> dict[str, float | None]:
    assert call.input is not None
    sql, bound = placeholders.bound(call.input.sql, params)
    if session.server is not None:
        if bound:  # the server takes the rows as query text: the values go in as literals
            sql = _inlined(sql, bound, session.engine.dialect)
        number = version.version if version.pinned or version.trial is not None else None
        return session.server.evaluate_in_server(
            _model_name(version), sql, call.threshold, number, version.trial
        )
    return evaluate_table(version, session.engine.query_arrow(sql, bound), call.threshold)


def evaluate_table(
    version: ModelVersion, table: pa.Table, threshold: float | None = None
) -> dict[str, float | None]:
    """ML.EVALUATE's metrics of ``version`` on rows already read (Arrow), scored in process."""
    scoring.check_input(version, table.schema)
    from sqlml.ml.score import scorer  # lazy: onnxruntime only to evaluate

    run = scorer(version.onnx, version.inputs, key=version.sha256)
    outputs = run.run_table(_named(table, version))  # one run: k-means' 'features' included
    label, y = version.label, None
    if label is not None:  # a supervised kind: the rows must have the label column
        if label["name"] not in table.column_names:
            raise errors.UndefinedColumn(f'label column "{label["name"]}" is missing from the rows')
        y = table.column(label["name"])
    return scoring.model_kind(version).evaluate_rows(version, outputs, y, threshold)


def _evaluate_kept(version: ModelVersion, threshold: float | None) -> dict[str, Any]:
    """ML.EVALUATE(MODEL m, STRUCT(t AS threshold)) without rows: a binary classifier's metrics
    at another cut, from the evaluation rows' probabilities kept at training (train.py)."""
    kept = version.training_info.get("evaluation")
    if kept is None or threshold is None:
        raise errors.FeatureNotSupported(
            "ML.EVALUATE with a threshold and no rows needs a binary classifier whose evaluation"
            " rows were kept at training (at most 20,000 of them)",
            hint="give the rows: ML.EVALUATE(MODEL m, TABLE t, STRUCT(0.6 AS threshold))",
        )
    import numpy as np

    from sqlml.ml import metrics  # (scikit-learn: only once a model is evaluated)

    labels = np.asarray(kept["labels"], dtype=np.int64)
    positive = np.asarray(kept["positive"], dtype=np.float64)
    probabilities = np.column_stack([1.0 - positive, positive])
    return dict(metrics.classification(labels, probabilities, 2, threshold))


def _inlined(sql: str, values: Sequence[Any], dialect: str) -> str:
    """``sql`` with each ``$n`` replaced by its value as a literal node of the tree (sqlglot
    quotes it as the dialect does; no value is formatted into the text)."""
    tree = _parse(sql, dialect)
    for marker in list(tree.find_all(exp.Parameter)):
        number = int(marker.name)
        if not 1 <= number <= len(values):
            raise placeholders.miscount(number, len(values))
        marker.replace(_literal(values[number - 1]))
    return tree.sql(dialect=dialect)


def _literal(value: Any) -> exp.Expr:
    if isinstance(value, float) and not math.isfinite(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return exp.cast(exp.Literal.string(text), exp.DataType.Type.DOUBLE)
    if isinstance(value, bytes | bytearray | memoryview):
        return exp.cast(exp.Literal.string("\\x" + bytes(value).hex()), exp.DataType.Type.VARBINARY)
    if value is None or isinstance(
        value, bool | int | float | str | decimal.Decimal | datetime.date
    ):
        return exp.convert(value)  # (a datetime is a date too)
    raise errors.FeatureNotSupported(
        f"a {type(value).__name__} parameter in the rows of ML.EVALUATE on PostgreSQL"
    )


def _model_name(version: ModelVersion) -> str:
    """The model's name as SQL text (quoted identifiers), for the server's functions."""
    return exp.table_(version.name, db=version.schema, quoted=True).sql(dialect="postgres")


def _named(table: pa.Table, version: ModelVersion) -> pa.Table:
    """The input columns under the model's names (SQL matches names case-insensitively)."""
    lower = {n.lower(): n for n in table.column_names}
    columns = {}
    sources = _sources(table, version)
    nested.check_lengths(sources, version.inputs)
    for column in version.inputs:
        if column.path:
            columns[column.name] = nested.values(sources, column)
            continue
        found = column.name if column.name in table.column_names else lower[column.name.lower()]
        columns[column.name] = table.column(found)
    return pa.table(columns)


def _sources(table: pa.Table, version: ModelVersion) -> pa.Table:
    """The rows with each STRUCT / ARRAY source column under the name the model's paths use."""
    renamed = list(table.column_names)
    for column in version.inputs:
        found = nested.find_source(column, table.column_names) if column.path else None
        if found is not None:
            renamed[table.column_names.index(found)] = str(column.path[0])
    return table.rename_columns(renamed)


def _parse(sql: str, dialect: str) -> exp.Expr:
    from sqlml.engine import _parse_query  # (the one parser of a query's text)

    return _parse_query(sql, dialect)
