"""The prediction log: a sample of what ML.PREDICT scored, in typed tables (below; JSON text in
``sqlml.prediction_log`` for what they cannot hold).

Theory of operation
-------------------
``ALTER MODEL m SET OPTIONS (prediction_log_sample = 0.01 [, prediction_log_key = 'id'])`` turns
it on (a fraction of the rows; NULL or 0 turns it off). For each ML.PREDICT of such a model that a
Session renders (sqlml.connect on both engines, the gateway over DuckDB and over PostgreSQL,
sqlml.ml in the PostgreSQL server), a second statement logs the sample: ``INSERT INTO
<the log> SELECT ... FROM`` ML.PREDICT over the sampled input rows, run right after
the query with the same parameters, in the same transaction (a rolled-back transaction rolls the
log back with it).

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
  the row's own), variant ('serving', 'traffic' or 'shadow'), logged_at (UTC), log_key (the key
  as text), inputs and outputs (JSON objects of the input columns and ML.PREDICT's columns).
- **Typed**: the row's inputs and outputs are columns of their own types (``input:<name>``,
  ``output:<name>``) in a table per shape of the model's input (DuckDB: ``typed_table``;
  PostgreSQL: ``pg_table``, of the types PostgreSQL names, ``pg_columns``), made by the first
  statement of that shape (``prepare``, ``ensure``; on PostgreSQL by ``CALL sqlml.log_table``,
  as the installer: sqlml/postgres/logtables.py); the view sqlml.logged_predictions reads them,
  and the text log, as the text log's rows (``make_view``): what ML.PREDICTION_LOG reads. On
  PostgreSQL a shape with a column of the user's own type is logged as text.
- **Shadows** (``ALTER MODEL m SET SHADOW VERSION n [SAMPLE p PERCENT]``): the shadow version
  scores its sample (the lowest log buckets, as the log's: by key, with a log sample at least
  the shadow's, each shadow row has its served row in the log) in a log statement of its own,
  which must never fail the user's statement (``run``: a savepoint on PostgreSQL; on DuckDB,
  which aborts the transaction at any error and has no savepoints, scoring on a connection of
  its own and appending the finished rows). docs/design/lifecycle.md says why.
- Where the database cannot be written (a read-only DuckDB file, a read-only PostgreSQL
  transaction such as a hot standby's) nothing is logged and scoring works as always.
- Where another runs the rendered SQL, it runs the log statements too (Session.ml_plan gives
  both): the gateway's PostgreSQL proxy (wire/logged.py) and sqlml.ml's plpgsql body
  (sql/postgres/functions.sql), each after the query in the caller's transaction.
- Not logged yet: views over ML.PREDICT, PostgreSQL's per-model functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from sqlml import errors, scoring, store, traffic
from sqlml.engines import placeholders
from sqlml.engines.base import (
    DescribesColumns,
    Engine,
    KeepsPlans,
    RunsAside,
    all_or_nothing,
)
from sqlml.engines.pgtypes import COMPOSITES
from sqlml.grammar.statements import Predict
from sqlml.ml.spec import OptionValue
from sqlml.store import LOGGED, PREDICTION_LOG, TYPED_LOG, ModelVersion

if TYPE_CHECKING:
    from sqlml.engine import Session

SAMPLE, KEY = "prediction_log_sample", "prediction_log_key"
SERVING, TRAFFIC, SHADOW = "serving", "traffic", "shadow"  # the log's variants
OPTIONS = (SAMPLE, KEY)
# The engines whose log is typed: each model's rows in tables of their own columns, one per
# shape of its input (``typed_table``, ``pg_table``), read as JSON through the view LOGGED. A
# 10% log of 1M rows of 12 doubles is 47 MB of JSON text, which DuckDB appended in 130-165 ms
# and then checkpointed at every other append (+300 ms); typed, the same rows are 16.8 MB, and
# the log's statement cost 1.5-1.7x the query instead of 1.9-2.9x; PostgreSQL inserts them in
# 222-268 ms instead of 454-595 (docs/design/lifecycle.md, "The log's storage").
TYPED = TYPED_LOG
SCHEMA = "sqlml"
TYPED_PREFIX = "prediction_log_"  # + 16 hex digits (the text log is sqlml.prediction_log)
INPUT, OUTPUT = "input:", "output:"  # a typed log table's input and output columns' prefixes
_FORMAT = 1  # of the typed tables' columns (in their names' hash: a change makes new tables)
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


@dataclass(frozen=True)
class Log:
    """One statement that logs after ML.PREDICT's query (``run`` runs them)."""

    sql: str  # the INSERT; for a shadow on DuckDB, the SELECT of its sampled input rows
    shadow: int | None = None  # the shadow version it scores: its failure is a NOTICE only
    scored: str | None = None  # DuckDB's shadow: its log rows, from the rows of ``sql`` read as
    # the table SHADOW_INPUT on a connection of their own (DuckDBEngine.aside)
    table: str = ""  # the typed log table its rows go to (``prediction_log_<hex>`` in sqlml;
    # "": the text log, sqlml.prediction_log)
    create: str = ""  # CREATE TABLE of ``table``, for when it is missing (``ensure``)


def statements(
    session: Session,
    serving: ModelVersion,
    call: Predict,
    schema: pa.Schema,
    rows: exp.Expr,
) -> tuple[list[Log], list[ModelVersion]]:
    """The statements that log ML.PREDICT's sample and score its shadow on theirs (none: the
    model logs nothing), and the shadow version they score with (for the kept plan's check).
    ``rows``: the input query as a tree."""
    log = serving.settings.get("prediction_log") or {}
    shadow = serving.settings.get("shadow")
    sample = float(log.get("sample") or 0)
    shadowed = float(shadow["sample"]) / 100 if shadow is not None else 0.0
    if serving.pinned or max(sample, shadowed) <= 0:
        return [], []
    dialect = session.engine.dialect
    split = serving.settings.get("traffic")
    key = log.get("key") or (split or {}).get("key")
    logged = bool(log.get("key"))  # (whose key it is, for the error when the input lacks it)
    field = None
    logs: list[Log] = []
    if sample > 0:  # (both samples take the lowest log buckets: by key, the smaller one's rows
        # are among the larger one's, so shadow rows pair with served rows by key)
        field = traffic.key_field(schema, key, logged) if key is not None else None  # (42703)
        subset = _sampled(rows, field, sample, dialect, sort=True)
        if split is not None:
            scored, _ = traffic.routed(session, serving, call, schema, subset)
        else:
            scored = session.predict_subquery(serving, call, schema, rows=subset)
        outputs = scoring.output_names(serving) + ([traffic.COLUMN] if split is not None else [])
        variant = None if split is not None else SERVING
        logs.append(_log(session, serving, scored, variant, field, schema, outputs))
    if shadow is None:
        return logs, []
    number = int(shadow["version"])
    try:  # (a shadow that cannot score this input is left out, with a NOTICE: never an error)
        if sample <= 0:  # (a key the input lacks: nothing to sample by)
            field = traffic.key_field(schema, key, logged) if key is not None else None
        version = session.store.load(serving.ref, number)
        scoring.check_input(version, schema)
        scoring.check_output_names(version, schema.names)
        sampled = _sampled(rows, field, shadowed, dialect)
        aside = isinstance(session.engine, RunsAside)  # (scored on a connection of its own)
        source = exp.select("*").from_(exp.to_table(SHADOW_INPUT, quoted=True))
        scored = session.predict_subquery(version, call, schema, rows=source if aside else sampled)
        outputs = scoring.output_names(version)
        if aside:  # (its table made from the same rows scored here, whose columns it appends)
            direct = session.predict_subquery(version, call, schema, rows=sampled)
            log = _log(session, version, direct, SHADOW, field, schema, outputs, shadow=number)
            shadowing = _logged(version, scored, SHADOW, field, schema, outputs, dialect, True)
            log = replace(
                log, sql=sampled.sql(dialect=dialect), scored=shadowing.sql(dialect=dialect)
            )
        else:
            log = _log(session, version, scored, SHADOW, field, schema, outputs, shadow=number)
        logs.append(log)
    except errors.Error as e:
        session.say(
            f"{serving.ref}: shadow version {number} cannot score this input ({e}):"
            " nothing of it is logged"
        )
        return logs, []
    return logs, [version]


SHADOW_INPUT = f"{scoring.HIDDEN}shadow_input"


def _sampled(
    rows: exp.Expr, field: pa.Field | None, sample: float, dialect: str, sort: bool = False
) -> exp.Select:
    """The input rows in the sample: by the key's log bucket, else at random per row.
    ``sort``: on DuckDB, sorted (below); not the shadow's sample, which DuckDB reads into an
    Arrow table and scores from it in full vectors (sorting 100k rows cost it ~5 ms)."""
    alias = f"{scoring.HIDDEN}input"
    sampled: exp.Expr
    if field is not None:
        column = exp.column(field.name, table=alias, quoted=True)
        h = exp.paren(traffic.hash_value(column, field.type, dialect))
        buckets = exp.Literal.number(traffic.BUCKETS)
        # h // BUCKETS: DuckDB's //; on PostgreSQL BIGINT / BIGINT (h is never negative), not
        # sqlglot's DIV(), which is numeric there: the sample's filter cost 2.5x the scan
        # (260 ms against 102 ms for 1M keys)
        above = (
            exp.IntDiv(this=h, expression=buckets)
            if dialect == "duckdb"
            else exp.Div(this=h, expression=buckets, typed=True)
        )
        part = exp.Mod(this=exp.paren(above), expression=buckets.copy())
        sampled = part < exp.Literal.number(round(sample * traffic.BUCKETS))
    else:
        sampled = traffic.random_value(dialect) < exp.Literal.number(sample)
    star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
    selected = exp.select(star).from_(scoring.subquery(rows.copy(), alias)).where(sampled)
    if sort and dialect == "duckdb":
        # A filter passes its rows on in the vectors it read, so a 1% sample reached the
        # scoring ~20 rows at a time: a runtime-scored model paid the UDF's call for each
        # (~0.5 ms: a 1% log of a 30-tree model cost 1.7x the query), and the INSERT that
        # keeps their order merged ~490 batches of 20 rows (a 1% log's INSERT of 1M rows:
        # 40-45 ms, 34-40 sorted). A sort gives the rows on in full vectors (2,048); by the
        # key, or at random without one.
        order = exp.column(field.name, table=alias, quoted=True) if field else exp.Rand()
        selected = selected.order_by(order)
    return selected


def _logged(
    version: ModelVersion,
    scored: exp.Expr,
    variant: str | None,
    field: pa.Field | None,
    inputs: pa.Schema,
    outputs: list[str],
    dialect: str,
    typed: bool,
) -> exp.Select:
    """The log rows of ML.PREDICT's ``scored`` rows of ``version``: of variant ``variant``, or
    (None) under a traffic split, of the version each row names, 'serving' or 'traffic'; for a
    typed table (``typed``), else for the text log."""
    p = f"{scoring.HIDDEN}p"
    number: exp.Expr = exp.Literal.number(version.version)
    kind: exp.Expr = exp.Literal.string(variant or "")
    if variant is None:
        number = exp.column(traffic.COLUMN, table=p, quoted=True)
        served = number.copy().eq(exp.Literal.number(version.version))
        kind = exp.If(
            this=served, true=exp.Literal.string(SERVING), false=exp.Literal.string(TRAFFIC)
        )
    text = exp.DataType.build("VARCHAR" if dialect == "duckdb" else "TEXT")
    logged_key: exp.Expr = (
        exp.cast(exp.column(field.name, table=p, quoted=True), text)
        if field is not None
        else exp.cast(exp.null(), text)
    )
    assert isinstance(scored, exp.Subquery)
    if typed:  # (the typed log: each column as it is, JSON only when read)
        row = [
            *(exp.Literal.string(version.schema), exp.Literal.string(version.name), number),
            *(kind, _now(), logged_key),
        ]
        selected = [
            *(exp.alias_(v, c, quoted=True) for v, c in zip(row, _COLUMNS[:6], strict=True)),
            *(_as(p, n, INPUT) for n in inputs.names),
            *(_as(p, n, OUTPUT) for n in outputs),
        ]
        return exp.select(*selected).from_(scoring.subquery(scored.this, p))
    floats = [f.name for f in inputs if pa.types.is_floating(f.type)]
    objects = [
        _json_object(inputs.names, p, f"{scoring.HIDDEN}inputs", dialect, floats),
        _json_object(outputs, p, f"{scoring.HIDDEN}outputs", dialect),
    ]
    values = [
        exp.Literal.string(version.schema),
        exp.Literal.string(version.name),
        number,
        kind,
        _now(),
        logged_key,
        *(exp.cast(value, text) for value, _ in objects),
    ]
    rows = exp.select(*values).from_(scoring.subquery(scored.this, p))
    for _, lateral in objects:
        if lateral is not None:
            rows = rows.join(lateral, join_type="cross")
    return rows


def _now() -> exp.Expr:
    return exp.AtTimeZone(this=exp.CurrentTimestamp(), zone=exp.Literal.string("UTC"))


def _as(table: str, name: str, prefix: str) -> exp.Expr:
    """A typed log column: ``name`` of ``table`` as ``<prefix><name>``."""
    return exp.alias_(exp.column(name, table=table, quoted=True), prefix + name, quoted=True)


def _insert(rows: exp.Select) -> exp.Insert:
    return exp.insert(
        rows,
        PREDICTION_LOG.copy(),
        columns=[exp.to_identifier(c, quoted=True) for c in _COLUMNS],
    )


def _log(
    session: Session,
    version: ModelVersion,
    scored: exp.Expr,
    variant: str | None,
    field: pa.Field | None,
    inputs: pa.Schema,
    outputs: list[str],
    shadow: int | None = None,
) -> Log:
    """The statement that writes the log rows of ``scored`` (``_logged``): to the typed
    table of their columns where the engine's log is typed, else to the text log. On
    PostgreSQL a shape whose columns' types the log may not depend on (``pg_columns``) goes to
    the text log."""
    dialect = session.engine.dialect
    rows = _logged(version, scored, variant, field, inputs, outputs, dialect, dialect in TYPED)
    if dialect not in TYPED:
        return Log(_insert(rows).sql(dialect=dialect), shadow=shadow)
    if dialect == "postgres":
        columns = pg_columns(session.engine, rows)
        if columns is None:
            rows = _logged(version, scored, variant, field, inputs, outputs, dialect, False)
            return Log(_insert(rows).sql(dialect=dialect), shadow=shadow)
        table = pg_table(version.schema, version.name, columns)
        create = _made(version.schema, version.name, columns, table)
        _cast_inputs(rows, columns)
    else:
        table = typed_table(version, inputs, outputs)
        create = _create(rows, table, dialect)
    target = exp.table_(table, db=SCHEMA, quoted=True)
    names = [exp.to_identifier(n, quoted=True) for n in rows.named_selects]
    insert = exp.insert(rows, target, columns=names).sql(dialect=dialect)
    return Log(insert, shadow=shadow, table=table, create=create)


def _cast_inputs(rows: exp.Select, columns: list[tuple[str, str]]) -> None:
    """PostgreSQL: each input column of the log rows cast to its log column's type. A kept
    plan keeps its log table while an input column's type changes to one Arrow reads alike
    (json to text: both strings; the plan's check compares Arrow types), and PostgreSQL
    assigns no text to a json column: cast, the row goes in wherever the value reads as the
    type the table was made for. A cast to the column's own type costs nothing (the types are
    without modifier: a relabelling). The type names are PostgreSQL's own spelling of a type
    of pg_catalog or sqlml (pg_columns), kept as they are: sqlglot would read ``bpchar`` as
    CHAR, which PostgreSQL reads as char(1)."""
    types = dict(columns)
    for projection in rows.expressions:
        name = projection.alias_or_name
        if isinstance(projection, exp.Alias) and name.startswith(INPUT) and name in types:
            kind = exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=types[name])
            projection.set("this", exp.Cast(this=projection.this, to=kind))


# PostgreSQL: the fixed columns of a typed log table (the text log's, of its types), then the
# rows' own columns of their types without modifier; a type whose bare name means one of a
# fixed length is widened, so that every value of the column's type fits.
PG_FIXED = (
    ("schema_name", "text NOT NULL"),
    ("model_name", "text NOT NULL"),
    ("version", "integer NOT NULL"),
    ("variant", "text NOT NULL"),
    ("logged_at", "timestamp without time zone NOT NULL"),
    ("log_key", "text"),
)
_PG_NAME_BYTES = 63  # PostgreSQL's longest identifier
_WIDENED = {
    "character": "bpchar",
    "character[]": "bpchar[]",
    "bit": "bit varying",
    "bit[]": "bit varying[]",
}
# Each type's name (without modifier), where it lives, its kind, and an array's element's.
_PG_TYPES = sqlglot.parse_one(
    "SELECT t.oid AS oid, pg_catalog.format_type(t.oid, NULL) AS name, n.nspname AS ns,"
    " t.typname AS typname, t.typtype AS typtype, t.typcategory AS category,"
    " e.typname AS elem, en.nspname AS elem_ns"
    " FROM pg_catalog.pg_type AS t"
    " JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace"
    " LEFT JOIN pg_catalog.pg_type AS e ON e.oid = t.typelem AND t.typcategory = 'A'"
    " LEFT JOIN pg_catalog.pg_namespace AS en ON en.oid = e.typnamespace",
    read="postgres",
    into=exp.Select,
)
PG_TYPES_BY_NAME = (  # (one type, by the name given: the server's check)
    _PG_TYPES.copy()
    .where("t.oid = pg_catalog.to_regtype($1)", dialect="postgres")
    .sql(dialect="postgres")
)


def pg_type_name(row: dict[str, Any]) -> str | None:
    """The column type of a typed log table for a type (a row of _PG_TYPES), or None: the log
    may depend only on PostgreSQL's own base types and arrays, and sqlml's composites (never on
    a user's type or domain, which could then not be dropped or altered)."""
    name = str(row["name"])
    if row["ns"] == "pg_catalog" and row["typtype"] == "b":
        return _WIDENED.get(name, name)
    composite = row["typtype"] == "c" and row["typname"] in COMPOSITES
    array = row["category"] == "A" and row["elem_ns"] == SCHEMA and row["elem"] in COMPOSITES
    return name if row["ns"] == SCHEMA and (composite or array) else None


def pg_columns(engine: Engine, rows: exp.Select) -> list[tuple[str, str]] | None:
    """The typed log columns of ``rows`` (``_logged``'s) after the fixed ones, each with its
    type as pg_type_name gives it; None where one may not be logged typed (the shape goes to
    the text log). Their types are what the rows' columns are, read from PostgreSQL (an Arrow
    type would not do: NUMERIC reads as float64, json and uuid as strings), with each parameter
    marker read as NULL."""
    assert isinstance(engine, DescribesColumns)
    probe = rows.copy().limit(0)
    for marker in list(probe.find_all(exp.Placeholder, exp.Parameter)):
        marker.replace(exp.null())
    described = engine.result_columns(probe.sql(dialect="postgres"))[len(PG_FIXED) :]
    query = pg_types_of(sorted({oid for _, oid in described}))
    found = {int(row["oid"]): pg_type_name(row) for row in _small(engine, query)}
    columns = [(name, found.get(oid)) for name, oid in described]
    if any(t is None or len(n.encode()) > _PG_NAME_BYTES for n, t in columns):
        return None  # (a longer name would be cut short, and could then meet another)
    return [(name, str(t)) for name, t in columns]


def pg_types_of(oids: Sequence[int]) -> str:
    """The query of the rows of _PG_TYPES of these type OIDs."""
    wanted = exp.column("oid", table="t").isin(*(exp.Literal.number(o) for o in oids))
    return _PG_TYPES.copy().where(wanted).sql(dialect="postgres")


def pg_table(schema: str, model: str, columns: Sequence[tuple[str, str]]) -> str:
    """The name of PostgreSQL's typed log table of a model's rows of these columns (the hash
    of the model and the columns' definitions: no two shapes share a name, and the function
    that makes the table computes it again from what it is given)."""
    text = json.dumps([_FORMAT, "postgres", schema, model, [list(c) for c in columns]])
    return TYPED_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def _made(schema: str, model: str, columns: list[tuple[str, str]], table: str) -> str:
    """``CALL sqlml.log_table(...)``: makes the table where it is missing (sql/postgres/
    privileges.sql; a CALL answers no row, so the gateway's proxy can run it unseen)."""
    definitions = [exp.Literal.string(part) for column in columns for part in column]
    call = exp.Anonymous(
        this="log_table",
        expressions=[
            exp.Literal.string(schema),
            exp.Literal.string(model),
            exp.Literal.string(table),
            exp.cast(exp.Array(expressions=definitions), exp.DataType.build("TEXT[]")),
        ],
    )
    qualified = exp.Dot(this=exp.to_identifier(SCHEMA), expression=call)
    return f"CALL {qualified.sql(dialect='postgres')}"


def _create(rows: exp.Select, table: str, dialect: str) -> str:
    """CREATE TABLE IF NOT EXISTS ``table`` with the columns of ``rows``, and none of them."""
    target = exp.table_(table, db=SCHEMA, quoted=True)
    empty = rows.copy().limit(0)
    made = exp.Create(this=target, kind="TABLE", expression=empty, exists=True)
    return made.sql(dialect=dialect)


def typed_table(version: ModelVersion, inputs: pa.Schema, outputs: list[str]) -> str:
    """The name of the typed log table of a model's rows of these input columns (and types)
    and these outputs: ``prediction_log_`` and 16 hex digits of their hash, so that one query
    shape of one model always writes one table, whatever version scores."""
    signature = [
        _FORMAT,
        version.schema,
        version.name,
        [[f.name, str(f.type)] for f in inputs],
        outputs,
        version.model_type,
        (version.label or {}).get("type"),
    ]
    text = json.dumps(signature, sort_keys=True, default=str)
    return TYPED_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def run(session: Session, logs: Sequence[Log], params: Sequence[Any] | None) -> None:
    """Runs a query's log statements after it, in its transaction. The served sample's INSERT
    fails the statement as the query would (it reads the same rows); a shadow's failure is a
    NOTICE and logs nothing of it: on PostgreSQL its INSERT runs under a savepoint, on DuckDB
    (where any error aborts the transaction, and which has no savepoints) it scores on a
    connection of its own and only its finished rows are appended here."""
    engine = session.engine
    ensure(session, logs, params)
    for log in logs:
        sql, values = placeholders.bound(log.sql, params)  # (the markers its input has)
        if log.shadow is None:
            engine.execute(sql, values)
            continue
        try:
            if log.scored is None:
                _savepointed(engine, sql, values)
            else:
                _aside(engine, sql, log.scored, values, log.table)
        except errors.Error as e:
            session.say(
                f"shadow version {log.shadow} failed on the sampled rows, which are not logged"
                f" for it: {e}"
            )


_SAVEPOINT = f"{scoring.HIDDEN}shadow"


def _savepointed(engine: Engine, sql: str, values: list[Any] | None) -> None:
    if not engine.in_transaction():  # (autocommit: the INSERT is a transaction of its own)
        engine.execute(sql, values)
        return
    name = exp.to_identifier(_SAVEPOINT, quoted=True).sql(dialect="postgres")
    engine.execute(f"SAVEPOINT {name}")
    try:
        engine.execute(sql, values)
    except errors.Error:
        engine.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    finally:
        engine.execute(f"RELEASE SAVEPOINT {name}")


def _aside(
    engine: Engine, sampling: str, scored: str, values: list[Any] | None, table: str
) -> None:
    assert isinstance(engine, RunsAside)
    sampled = engine.query_arrow(sampling, values)
    if not sampled.num_rows:
        return
    target = exp.table_(table, db=SCHEMA, quoted=True) if table else PREDICTION_LOG
    engine.append(target, engine.aside(scored, {SHADOW_INPUT: sampled}))


def prepare(session: Session, logs: Sequence[Log], params: Sequence[Any] | None) -> None:
    """Outside a transaction, before the statement: makes the typed log tables ``logs`` write
    that are missing, committed, so that the statement's own transaction only appends. One
    session at a time per database (Store.making_log_tables): two that made the same table at
    once conflicted on DuckDB's catalog. (Inside a transaction, ``ensure`` makes it there,
    where a session making it at the same moment can still conflict: once per shape.)"""
    if not {log.table for log in logs if log.table} - known(session):
        return
    if not writable(session):
        return
    with session.store.making_log_tables(), all_or_nothing(session.engine):
        made = ensure(session, logs, params)
    session.log_tables |= made  # (committed)


def ensure(session: Session, logs: Sequence[Log], params: Sequence[Any] | None) -> set[str]:
    """Makes the typed log tables that ``logs`` write and that are missing, then the view
    LOGGED again, in the current transaction: the first statement of a new shape of a
    model's input makes its table (a catalog change, which kept plans notice once). Returns
    the tables ``logs`` write. On PostgreSQL the CALL that makes a table makes the view too
    (as the installer: ``_made``), runs for every statement (a table dropped by hand is made
    again), and a shadow's runs under a savepoint: its failure leaves the shadow's INSERT to
    fail, and say so."""
    wanted = {log.table: log for log in logs if log.table}
    engine = session.engine
    if engine.dialect == "postgres":
        # Every time: PostgreSQL gives no cheap sign that a table was dropped by hand (DuckDB's
        # token), and where the table is the CALL asks to_regclass and does nothing more (one
        # statement more, as the gateway's proxy and sqlml.ml run it for every logged query)
        missing = list(wanted)
    else:
        if not set(wanted) - known(session):
            return set(wanted)
        present = store.present(engine, list(wanted))
        missing = [table for table in wanted if table not in present]
    for table in missing:
        log = wanted[table]
        sql, values = placeholders.bound(log.create, params)
        if log.shadow is None or engine.dialect == "duckdb":
            engine.execute(sql, values)
            continue
        with contextlib.suppress(errors.Error):  # (its INSERT fails too, with a NOTICE)
            _savepointed(engine, sql, values)
    if missing and engine.dialect == "duckdb":
        make_view(engine)
    return set(wanted)


def _small(engine: Engine, sql: str) -> list[dict[str, Any]]:
    """The rows of a small catalog query (not the chunked read of a server's query_arrow)."""
    table = engine.execute(sql).table
    return [] if table is None else table.to_pylist()


def known(session: Session) -> set[str]:
    """The typed log tables the session knows are there (``log_tables``), forgotten whenever
    the engine's token says the catalog may have changed (a log table dropped by hand is then
    made again, and the view with it, by the next statement that logs to it; asking the
    catalog costs ~1 ms, after a change only). An engine without a token keeps them."""
    engine = session.engine
    token = engine.token() if isinstance(engine, KeepsPlans) else None
    if token != session.log_tables_token:
        session.log_tables = set()
        session.log_tables_token = token
    return session.log_tables


def make_view(engine: Engine) -> None:
    """(Re)makes the view LOGGED: the text log's rows and every typed table's, their inputs
    and outputs as the text log writes them (JSON objects, in the columns' order)."""
    dialect = engine.dialect
    tables = _typed_columns(engine)
    text = exp.DataType.build("VARCHAR" if dialect == "duckdb" else "TEXT")
    union: exp.Query = exp.select(*(exp.column(c, quoted=True) for c in _COLUMNS)).from_(
        PREDICTION_LOG.copy()
    )
    p = f"{scoring.HIDDEN}p"
    for table, columns in tables.items():
        inputs = [c[len(INPUT) :] for c, _ in columns if c.startswith(INPUT)]
        outputs = [c[len(OUTPUT) :] for c, _ in columns if c.startswith(OUTPUT)]
        floats = [c[len(INPUT) :] for c, t in columns if c.startswith(INPUT) and t in _FLOATS]
        made = [
            _json_object(inputs, p, f"{scoring.HIDDEN}inputs", dialect, floats, INPUT),
            _json_object(outputs, p, f"{scoring.HIDDEN}outputs", dialect, (), OUTPUT),
        ]
        rows = exp.select(
            *(exp.column(c, table=p, quoted=True) for c in _COLUMNS[:6]),
            *(
                exp.alias_(exp.cast(value, text), c, quoted=True)
                for (value, _), c in zip(made, _COLUMNS[6:], strict=True)
            ),
        ).from_(exp.table_(table, db=SCHEMA, quoted=True, alias=exp.to_identifier(p, quoted=True)))
        for _, lateral in made:
            if lateral is not None:
                rows = rows.join(lateral, join_type="cross")
        union = exp.union(union, rows, distinct=False)
    view = exp.Create(this=LOGGED.copy(), kind="VIEW", expression=union, replace=True)
    engine.execute(view.sql(dialect=dialect))


def typed_tables(engine: Engine) -> list[str]:
    """The names of the typed log tables in schema sqlml."""
    return list(_typed_columns(engine))


def _typed_columns(engine: Engine) -> dict[str, list[tuple[str, str]]]:
    """Each typed log table's columns, in order, with their types' names (upper case)."""
    like = exp.Escape(  # (table_name LIKE 'prediction\\_log\\_%' ESCAPE '\\')
        this=exp.Like(
            this=exp.column("table_name"),
            expression=exp.Literal.string(TYPED_PREFIX.replace("_", "\\_") + "%"),
        ),
        expression=exp.Literal.string("\\"),
    )
    query = (
        exp.select(exp.column("table_name"), exp.column("column_name"), exp.column("data_type"))
        .from_(exp.table_("columns", db="information_schema"))
        .where(exp.column("table_schema").eq(exp.Literal.string(SCHEMA)))
        .where(exp.column("table_catalog").eq(exp.func("current_database")))
        .where(like)
        .order_by(exp.column("table_name"), exp.column("ordinal_position"))
    )
    tables: dict[str, list[tuple[str, str]]] = {}
    for row in _small(engine, query.sql(dialect=engine.dialect)):
        tables.setdefault(str(row["table_name"]), []).append(
            (str(row["column_name"]), str(row["data_type"]).upper())
        )
    return tables


_FLOATS = frozenset({"DOUBLE", "FLOAT", "REAL", "DOUBLE PRECISION"})


def _json_object(
    names: list[str],
    table: str,
    alias: str,
    dialect: str,
    floats: Sequence[str] = (),
    prefix: str = "",
) -> tuple[exp.Expr, exp.Expr | None]:
    """A JSON object of the columns of ``table``, and what the FROM clause must join for it:
    DuckDB's json_object; on PostgreSQL row_to_json of a LATERAL row of the columns, 2.5x as
    fast as json_build_object, which looks up each value's type at every call (10,000 rows of
    12 columns: 21 ms against 53), and as compact as DuckDB's text. ``prefix``: each name's
    column's (a typed log table's columns, named ``input:<name>``).

    DuckDB writes a NaN or infinite number bare (``NaN``, ``Infinity``), which is not JSON;
    PostgreSQL writes them as strings (``"NaN"``). On DuckDB a row with one in a column of
    ``floats`` has its object built with those strings, as PostgreSQL's: the other rows take
    json_object as it is (the test costs a third of the object's time; the strings in every
    row would cost 1.5x more)."""
    columns = [exp.column(prefix + name, table=table, quoted=True) for name in names]
    if dialect == "duckdb":
        plain = _json_arguments(names, columns, ())
        json = exp.Anonymous(this="json_object", expressions=plain)
        if not floats:
            return json, None
        finite = exp.and_(
            *(
                exp.func("coalesce", exp.func("isfinite", c.copy()), exp.true())
                for name, c in zip(names, columns, strict=True)
                if name in floats
            )
        )
        spelled = exp.Anonymous(
            this="json_object", expressions=_json_arguments(names, columns, floats)
        )
        return exp.Case().when(finite, json).else_(spelled), None
    named = (
        exp.alias_(c, n, quoted=True) if prefix else c for c, n in zip(columns, names, strict=True)
    )
    lateral = exp.Lateral(
        this=exp.select(*named).subquery(),
        alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
    )
    row = exp.Anonymous(this="row_to_json", expressions=[exp.to_identifier(alias, quoted=True)])
    return row, lateral


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


def _json_arguments(
    names: list[str], columns: list[exp.Column], floats: Sequence[str]
) -> list[exp.Expr]:
    """json_object's arguments (DuckDB): each name and its column, a column of ``floats`` as
    a JSON value that spells a NaN or an infinity as PostgreSQL does, a string."""
    args: list[exp.Expr] = []
    for name, column in zip(names, columns, strict=True):
        value: exp.Expr = column.copy()
        if name in floats:
            spelled = (
                exp.Case()
                .when(exp.func("isnan", column.copy()), exp.Literal.string("NaN"))
                .when(column.copy() > exp.Literal.number(0), exp.Literal.string("Infinity"))
                .else_(exp.Literal.string("-Infinity"))
            )
            value = (
                exp.Case()
                .when(
                    exp.or_(exp.func("isfinite", column.copy()), column.copy().is_(exp.null())),
                    exp.func("to_json", column.copy()),
                )
                .else_(exp.func("to_json", spelled))
            )
        args += [exp.Literal.string(name), value]
    return args
