"""ML.SCHEDULES(MODEL m) and ML.SCHEDULE_RUNS(MODEL m): a model's retrain_schedule and every
run of it (sqlml's own; docs/sql.md, "Schedules"; sqlml/schedules.py).

ML.SCHEDULES: one row while the model has a schedule, none otherwise. Columns: schedule STRING
(as set: cron or 'N seconds', UTC), retrain_on_drift BOOL, role STRING (who set it: the runs
run as that role), set_at TIMESTAMP (UTC; the first run is the first firing after it), job_id
INT64 (PostgreSQL: the pg_cron job that runs it; NULL on DuckDB, where ``sqlml serve`` or
``sqlml schedule`` runs it).

ML.SCHEDULE_RUNS: one row per run, oldest first, over sqlml.schedule_runs. Columns: run_id
INT64, schedule STRING, scheduled_for TIMESTAMP (the firing it ran for), started_at and
finished_at TIMESTAMP (UTC), status STRING ('retrained' | 'skipped' | 'failed'), version INT64
(the version it stored; NULL: none), sqlstate STRING (a failed run's), message STRING (why it
skipped: 'no rows past the watermark', 'no drift'; a failed run's error), drift STRING (JSON:
retrain_on_drift's findings, [] for none; NULL: not checked), role STRING.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import METADATA, NONE, OVER_ROWS, Column, Function, Row, Scored, register
from sqlml.functions.versions import column, of_model, store_table

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

_RUN_COLUMNS = (
    "run_id",
    "schedule",
    "scheduled_for",
    "started_at",
    "finished_at",
    "status",
    "version",
    "sqlstate",
    "message",
    "drift",
    "role",
)


def _render_runs(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    r = "r"
    query = (
        exp.select(*(exp.alias_(column(c, r), c, quoted=True) for c in _RUN_COLUMNS))
        .from_(store_table("schedule_runs", r))
        .where(of_model(version, r))
        .order_by(column("run_id", r))
    )
    return query.subquery()


def _columns(version: ModelVersion, settings: Mapping[str, Any]) -> list[Column]:
    return [
        Column("schedule", "STRING"),
        Column("retrain_on_drift", "BOOL"),
        Column("role", "STRING"),
        Column("set_at", "DATETIME"),
        Column("job_id", "INT64"),
    ]


def _rows(version: ModelVersion, settings: Mapping[str, Any]) -> list[Row]:
    schedule = version.settings.get("schedule")
    if not schedule:
        return []
    return [
        (
            schedule["schedule"],
            bool(schedule.get("retrain_on_drift")),
            schedule.get("role"),
            schedule["set_at"],
            schedule.get("job_id"),
        )
    ]


SCHEDULE_RUNS = register(
    Function(name="SCHEDULE_RUNS", table=True, rows=NONE, runs=OVER_ROWS, render=_render_runs)
)
SCHEDULES = register(
    Function(
        name="SCHEDULES", table=True, rows=NONE, runs=METADATA, columns=_columns, compute=_rows
    )
)
