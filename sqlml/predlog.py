"""The prediction log: a sample of what ML.PREDICT scored, in ``sqlml.prediction_log``.

Theory of operation
-------------------
``ALTER MODEL m SET OPTIONS (prediction_log_sample = 0.01 [, prediction_log_key = 'id'])`` turns
it on (a fraction of the rows; NULL or 0 turns it off). For each ML.PREDICT of such a model that a
Session runs (sqlml.connect on both engines, the gateway over DuckDB), a second statement logs the
sample: ``INSERT INTO sqlml.prediction_log SELECT ... FROM`` ML.PREDICT over the sampled input
rows, run right after the query with the same parameters, in the same transaction (a rolled-back
transaction rolls the log back with it).

- **Deterministic by key**: the sample takes the rows whose key's *log bucket* is below
  ``sample * 10000``, the log bucket being ``(h // 10000) % 10000`` of the traffic split's hash
  ``h`` (sqlml/traffic.py): the same hash, another part of it, so a 1% log is not the first 1%
  of the split's buckets (which one version owns). The key is prediction_log_key, else the
  traffic split's key; without either the sample is random per row (``random() < sample``),
  which cannot be joined to labels later, and ``log_key`` is NULL.
- Because the sample is by key and scoring is deterministic, scoring the sampled rows again gives
  what the query returned for them: the log is written by a second statement rather than from
  inside the query, which neither engine can write from (DuckDB has no data-modifying CTE; a
  PostgreSQL function writing from a SELECT would make every scoring query parallel-unsafe).
  Its cost is reading the input again and scoring the sample.
- Each row: schema_name, model_name, version (the version that scored it; under a traffic split
  the row's own), variant ('serving' or 'traffic'), logged_at (UTC), log_key (the key as text),
  inputs and outputs (JSON objects of the input columns and ML.PREDICT's columns).
- Where the database cannot be written (a read-only DuckDB file, a read-only PostgreSQL
  transaction such as a hot standby's) nothing is logged and scoring works as always.
- Not logged yet: ML.PREDICT through the gateway's PostgreSQL proxy and sqlml.ml (they run the
  rendered SQL themselves), views over ML.PREDICT, PostgreSQL's per-model functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors, scoring, traffic
from sqlml.grammar.statements import Predict
from sqlml.ml.spec import OptionValue
from sqlml.store import PREDICTION_LOG, ModelVersion

if TYPE_CHECKING:
    from sqlml.engine import Session

SAMPLE, KEY = "prediction_log_sample", "prediction_log_key"
OPTIONS = (SAMPLE, KEY)
_COLUMNS = (
    "schema_name",
    "model_name",
    "version",
    "variant",
    "logged_at",
    "log_key",
    "inputs",
    "outputs",
)


def option(name: str, value: OptionValue, settings: dict[str, Any]) -> None:
    """SET OPTIONS' prediction_log_sample / prediction_log_key into the settings (22023)."""
    log = dict(settings.get("prediction_log") or {})
    if name == SAMPLE:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
        ):
            raise errors.InvalidParameterValue(
                f"option {SAMPLE} must be a fraction between 0 and 1 (or NULL), not {value!r}"
            )
        log["sample"] = float(value) if value else None
    else:
        if value is not None and (not isinstance(value, str) or not value):
            raise errors.InvalidParameterValue(f"option {KEY} must be a column name (or NULL)")
        log["key"] = value
    log = {k: v for k, v in log.items() if v is not None}
    if log:  # (a key without a sample is kept for when one is set)
        settings["prediction_log"] = log
    else:
        settings.pop("prediction_log", None)


def statement(
    session: Session,
    serving: ModelVersion,
    call: Predict,
    schema: pa.Schema,
    rows: exp.Expr,
) -> str | None:
    """The INSERT that logs ML.PREDICT's sample (None: the model logs nothing)."""
    log = serving.settings.get("prediction_log") or {}
    sample = float(log.get("sample") or 0)
    if serving.pinned or sample <= 0:
        return None
    dialect = session.engine.dialect
    split = serving.settings.get("traffic")
    key = log.get("key") or (split or {}).get("key")
    alias = f"{scoring.HIDDEN}input"
    field = traffic.key_field(schema, key) if key is not None else None
    if field is not None:
        column = exp.column(field.name, table=alias, quoted=True)
        h = traffic.hash_value(column, field.type, dialect)
        part = exp.Mod(
            this=exp.IntDiv(this=exp.paren(h), expression=exp.Literal.number(traffic.BUCKETS)),
            expression=exp.Literal.number(traffic.BUCKETS),
        )
        sampled = part < exp.Literal.number(round(sample * traffic.BUCKETS))
    else:
        sampled = exp.Rand() < exp.Literal.number(sample)
    star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
    subset = exp.select(star).from_(scoring.subquery(rows, alias)).where(sampled)
    if split is not None:
        scored, _ = traffic.routed(session, serving, call, schema, subset)
    else:
        scored = session.predict_subquery(serving, call, schema, rows=subset)
    outputs = scoring.output_names(serving) + ([traffic.COLUMN] if split is not None else [])
    p = f"{scoring.HIDDEN}p"
    version: exp.Expr = (
        exp.column(traffic.COLUMN, table=p, quoted=True)
        if split is not None
        else exp.Literal.number(serving.version)
    )
    variant = (
        exp.Case()
        .when(version.copy().eq(exp.Literal.number(serving.version)), exp.Literal.string("serving"))
        .else_(exp.Literal.string("traffic"))
    )
    text = exp.DataType.build("VARCHAR" if dialect == "duckdb" else "TEXT")
    logged_key: exp.Expr = (
        exp.cast(exp.column(field.name, table=p, quoted=True), text)
        if field is not None
        else exp.cast(exp.null(), text)
    )
    values = [
        exp.Literal.string(serving.schema),
        exp.Literal.string(serving.name),
        version,
        variant,
        exp.AtTimeZone(this=exp.CurrentTimestamp(), zone=exp.Literal.string("UTC")),
        logged_key,
        exp.cast(_json_object(schema.names, p, dialect), text),
        exp.cast(_json_object(outputs, p, dialect), text),
    ]
    assert isinstance(scored, exp.Subquery)
    select = exp.select(*values).from_(scoring.subquery(scored.this, p))
    insert = exp.insert(
        select,
        PREDICTION_LOG.copy(),
        columns=[exp.to_identifier(c, quoted=True) for c in _COLUMNS],
    )
    return insert.sql(dialect=dialect)


def _json_object(names: list[str], table: str, dialect: str) -> exp.Expr:
    """A JSON object of the columns: DuckDB's json_object, PostgreSQL's json_build_object."""
    args: list[exp.Expr] = []
    for name in names:
        args += [exp.Literal.string(name), exp.column(name, table=table, quoted=True)]
    function = "json_object" if dialect == "duckdb" else "json_build_object"
    return exp.Anonymous(this=function, expressions=args)


def writable(session: Session) -> bool:
    """Whether the statement's transaction can write (a read-only DuckDB file or PostgreSQL
    transaction cannot: then nothing is logged; nor for the gateway's read-only users)."""
    if not session.logs_predictions:
        return False
    if session.engine.dialect == "postgres":
        query = "SELECT current_setting('transaction_read_only') = 'off'"
    else:
        query = (
            "SELECT NOT readonly FROM duckdb_databases() WHERE database_name = current_database()"
        )
    table = session.engine.query_arrow(query)
    return bool(table.num_rows and table.column(0)[0].as_py())
