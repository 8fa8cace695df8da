"""``ALTER MODEL m RETRAIN``: a new version from the rows past the watermark (issue 15).

Theory of operation
-------------------
A model trained with ``OPTIONS (incremental = TRUE, watermark_col = 'updated_at')`` stores, with
each version, the sufficient statistics of every row it was trained on (ml/incremental.py) and
its *watermark*: the largest ``updated_at`` it read, how many rows were at or below it and how
many had none. RETRAIN reads, in the engine, only ``SELECT * FROM (<the training query>) WHERE
updated_at > <watermark>``, adds those rows' statistics to the newest version's, and stores the
result as a new version, deployed as that version's ``deploy`` option says (lifecycle.py). So a
RETRAIN costs the new rows, and gives the model that training on all rows would give.

What it does not read, and says so with a NOTICE (never a silent wrong model):
- **Rows at or below the watermark that changed or arrived late.** Before reading, one
  aggregate counts the rows at or below the watermark and those without one; when the count
  differs from what the last training saw, rows below the watermark were added, deleted or
  updated, and are not in the new version (CREATE OR REPLACE MODEL trains on all rows).
- **Rows with a NULL watermark**: read by CREATE MODEL, never by RETRAIN.
- **No new rows**: nothing is stored, the model stays as it is.
A column added to or removed from the training query, or a column of another type, is 42804
(the model's inputs are fixed by its first training); a category first seen in the new rows is
learned exactly (a NOTICE names it).
"""

from __future__ import annotations

import datetime
import decimal
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from sqlml import errors, lifecycle, scoring, validation
from sqlml.engines.base import Result
from sqlml.grammar.statements import AlterModel, CreateModel, ModelRef, Query
from sqlml.ml import incremental
from sqlml.ml.checkpoints import budgeted
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:
    from sqlml.engine import Session

_ROWS = "__sqlml_rows"


def watermark(options: dict[str, OptionValue], table: pa.Table) -> dict[str, Any] | None:
    """Where the watermark of ``table`` (all the rows CREATE MODEL read) stands; None without
    incremental = TRUE and a watermark_col. 42703 for a column the query lacks, 42804 for one
    of a type that has no order RETRAIN can compare in SQL."""
    name = options.get("watermark_col")
    if options.get("incremental") is not True or not isinstance(name, str):
        return None
    found = _column(table.schema, name)
    values = table.column(found.name)
    top = pc.max(values).as_py()
    if top is None:
        raise errors.UnusableTrainingData(f'watermark column "{found.name}" has only NULL values')
    nulls = values.null_count
    return _mark(found, top, below=len(values) - nulls, nulls=nulls)


def watermark_in(
    session: Session, options: dict[str, OptionValue], sql: str, schema: pa.Schema
) -> dict[str, Any] | None:
    """``watermark`` of the rows of ``sql``, computed in the engine (a streamed training holds
    only a sample of them)."""
    name = options.get("watermark_col")
    if options.get("incremental") is not True or not isinstance(name, str):
        return None
    found = _column(schema, name)
    from sqlml.engine import _parse_query  # (engine imports this module)

    dialect = session.engine.dialect
    rows = scoring.subquery(_parse_query(sql, dialect), _ROWS)
    column = exp.column(found.name, table=_ROWS, quoted=True)
    query = exp.select(
        exp.Max(this=column).as_("top"),
        exp.Count(this=column.copy()).as_("below"),
        exp.Count(this=exp.Star()).as_("total"),
    ).from_(rows)
    counted = session.engine.query_arrow(query.sql(dialect=dialect)).to_pylist()[0]
    if counted["top"] is None:
        raise errors.UnusableTrainingData(f'watermark column "{found.name}" has only NULL values')
    below = int(counted["below"])
    return _mark(found, counted["top"], below=below, nulls=int(counted["total"]) - below)


def _column(schema: pa.Schema, name: str) -> pa.Field:
    exact = [f for f in schema if f.name == name]
    found = exact or [f for f in schema if f.name.lower() == name.lower()]
    if not found:
        raise errors.UndefinedColumn(
            f'WATERMARK_COL column "{name}" is not in the training query',
            hint="select the column that grows with each new row (a timestamp, an id)",
        )
    field = found[0]
    if _sql_type(field.type) is None:
        raise errors.DatatypeMismatch(
            f'WATERMARK_COL column "{field.name}" is of type {field.type}: it must be a number,'
            " a DATE or a TIMESTAMP"
        )
    return field


def _sql_type(arrow: pa.DataType) -> str | None:
    if pa.types.is_integer(arrow):
        return "BIGINT"
    if pa.types.is_floating(arrow):
        return "DOUBLE"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ" if arrow.tz else "TIMESTAMP"
    return None


def _mark(field: pa.Field, top: Any, below: int, nulls: int) -> dict[str, Any]:
    if isinstance(top, float):
        text = repr(top)
    elif isinstance(top, datetime.datetime):
        text = top.isoformat(sep=" ")
    elif isinstance(top, datetime.date | decimal.Decimal | int):
        text = str(top)
    else:
        raise errors.DatatypeMismatch(f'WATERMARK_COL "{field.name}" gave {top!r}')
    return {
        "column": field.name,
        "type": _sql_type(field.type),
        "value": text,
        "below": below,
        "nulls": nulls,
    }


def _literal(mark: dict[str, Any]) -> exp.Expr:
    return exp.cast(exp.Literal.string(mark["value"]), exp.DataType.build(mark["type"]))


def retrain(session: Session, statement: AlterModel) -> Result:
    """ALTER MODEL m RETRAIN [COMMENT '...']: see the module's docstring."""
    with session.store.writing(statement.model):
        return retrain_held(session, statement)


def retrain_held(session: Session, statement: AlterModel) -> Result:
    """RETRAIN under the model's writing lock, which the caller holds (also CREATE OR REPLACE
    MODEL with retrain = 'incremental': unchanged.py)."""
    store, ref = session.store, statement.model
    head, data, meta, mark = _incremental_head(session, ref)
    version = store.load(ref, head)
    query_sql, _ = store.query_of(ref, head)
    assert query_sql is not None
    rows, column = _rows(session, query_sql, mark)
    _check_below(session, rows, column, mark, head)
    seconds = version.options.get("max_training_seconds")
    checkpoint = budgeted(session.engine.checkpoint(), seconds, time.monotonic)
    session.say(
        f"reading the rows of {ref} past its watermark ({mark['column']} > {mark['value']})"
    )
    table = _newer(session, rows, column, mark)
    if not table.num_rows:
        session.say(
            f"{ref}: no rows past the watermark ({mark['column']} > {mark['value']}):"
            f" nothing to add, version {head} stays as it is"
        )
        return Result(None, 0, "ALTER MODEL")
    state = incremental.load(data, meta)
    given = {k: as_written(v) for k, v in version.options.items()}
    validate, options = validation.split(given)
    policy, options = lifecycle.deploy_policy(options)
    field = _column(table.schema, mark["column"])
    top = pc.max(table.column(field.name)).as_py()
    moved = _mark(field, top, below=mark["below"] + table.num_rows, nulls=mark["nulls"])
    session.say(f"adding {table.num_rows} rows to the {state.rows} rows of version {head}")
    create = CreateModel(
        model=ref,
        options=given,
        query=Query(query_sql),
        replace=True,
    )
    return session.train_and_store(
        create, table, validate, policy, options, checkpoint, moved, state, statement.comment
    )


def _incremental_head(
    session: Session, ref: ModelRef
) -> tuple[int, bytes, dict[str, Any], dict[str, Any]]:
    """(the newest version, its incremental state and meta, its watermark): 42704 for no such
    model, 55000 for one RETRAIN cannot add rows to."""
    versions = session.store.versions(ref)  # (42704: no such model)
    if not versions:
        raise errors.UndefinedModel(f'model "{ref}" does not exist')
    head = versions[-1]
    found = session.store.state(ref, head)
    if found is None:
        raise errors.ObjectNotInPrerequisiteState(
            f"{ref} version {head} was not trained with incremental = TRUE: RETRAIN has no"
            " statistics to add new rows to",
            hint="CREATE OR REPLACE MODEL ... OPTIONS (incremental = TRUE, watermark_col ="
            " '...') trains it so",
        )
    data, meta = found
    mark = meta.get("watermark")
    if not mark:
        raise errors.ObjectNotInPrerequisiteState(
            f"{ref} was trained without a watermark_col: RETRAIN cannot tell its new rows",
            hint="CREATE OR REPLACE MODEL ... OPTIONS (incremental = TRUE, watermark_col = '...')",
        )
    return head, data, meta, mark


def check_retrainable(session: Session, ref: ModelRef) -> None:
    """55000 (42704) unless RETRAIN can add rows to the model (a retrain_schedule's check)."""
    _incremental_head(session, ref)


def _rows(session: Session, query_sql: str, mark: dict[str, Any]) -> tuple[exp.Expr, exp.Expr]:
    """The training query as a subquery, and its watermark column."""
    from sqlml.engine import _parse_query  # (engine imports this module)

    rows = scoring.subquery(_parse_query(query_sql, session.engine.dialect), _ROWS)
    return rows, exp.column(mark["column"], table=_ROWS, quoted=True)


def _newer(session: Session, rows: exp.Expr, column: exp.Expr, mark: dict[str, Any]) -> pa.Table:
    newer = exp.select("*").from_(rows.copy()).where(column.copy() > _literal(mark))
    return session.engine.query_arrow(newer.sql(dialect=session.engine.dialect))


def rows_past_watermark(session: Session, ref: ModelRef) -> pa.Table:
    """The rows the next RETRAIN of ``ref`` would read (retrain_on_drift checks them first)."""
    head, _, _, mark = _incremental_head(session, ref)
    query_sql, _ = session.store.query_of(ref, head)
    assert query_sql is not None
    return _newer(session, *_rows(session, query_sql, mark), mark)


def as_written(value: Any) -> OptionValue:
    """A stored option's value as the parser gives it (an array: a tuple; a STRUCT: a tuple)."""
    if isinstance(value, list):
        return tuple(as_written(v) for v in value)
    return value  # type: ignore[no-any-return]


def _check_below(
    session: Session, rows: exp.Expr, column: exp.Expr, mark: dict[str, Any], head: int
) -> None:
    """NOTICEs when the rows at or below the watermark, or those without one, are not as many
    as the last training saw."""
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    below = exp.Sum(this=exp.If(this=column.copy() <= _literal(mark), true=one, false=zero))
    nulls = exp.Sum(this=exp.If(this=column.copy().is_(exp.null()), true=one, false=zero))
    query = exp.select(below.as_("below"), nulls.as_("nulls")).from_(rows.copy())
    counted = session.engine.query_arrow(query.sql(dialect=session.engine.dialect))
    now_below, now_nulls = (int(counted.column(i)[0].as_py() or 0) for i in (0, 1))
    name, value = mark["column"], mark["value"]
    if now_below != mark["below"]:
        session.say(
            f"{now_below} rows have {name} <= {value}, version {head} was trained on"
            f" {mark['below']}: rows below the watermark were added, deleted or updated since,"
            " and RETRAIN does not read them (CREATE OR REPLACE MODEL trains on all rows)"
        )
    if now_nulls != mark["nulls"]:
        session.say(
            f"{now_nulls} rows have no {name} (NULL), {mark['nulls']} had at the last"
            " training: RETRAIN reads only rows past the watermark, never those"
        )
