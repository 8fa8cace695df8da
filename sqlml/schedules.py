"""Retraining on a schedule, and only on drift (issue 15, point 4).

Theory of operation
-------------------
``ALTER MODEL m SET OPTIONS (retrain_schedule = '0 3 * * *' [, retrain_on_drift = TRUE])``
stores the schedule with the model's serving settings (sqlml.model_settings, key
``schedule``: its text, retrain_on_drift, the role that set it and when), with an audit row as
every SET OPTIONS; ``retrain_schedule = NULL`` removes it. Only a model that ``ALTER MODEL m
RETRAIN`` can add rows to takes one (incremental = TRUE with a watermark_col: 55000 otherwise),
because a scheduled run *is* a RETRAIN: it reads the rows past the watermark, nothing else.
The schedule is checked as cron.py says (22023); ``retrain_on_drift`` needs a schedule (22023
without one: it says when a scheduled run retrains, and there is none).

A run (``run``):
- with retrain_on_drift, first reads the rows past the watermark and compares them with the
  statistics stored with the serving version, as ML.VALIDATE_DATA_SKEW and validate_data do
  (validation.compare: a distribution, label or NULL-share shift beyond 0.3, a column added,
  removed or retyped); no finding: ``skipped`` ("no drift"), nothing trained;
- then runs ``ALTER MODEL m RETRAIN`` as the role that set the schedule: ``retrained`` with the
  version it stored (deployed as the model's ``deploy`` option says), or ``skipped`` ("no rows
  past the watermark") when there were none;
- an error is ``failed``, with its SQLSTATE and message; the previous version keeps serving.
Every run is a row of sqlml.schedule_runs (ML.SCHEDULE_RUNS), written after the run in a
transaction of its own.

Who runs them: on DuckDB, ``sqlml serve`` (a thread of its own: scheduler.py) or ``sqlml schedule``
finds the due schedules (``due``: the latest firing after the model's last run, or after the
schedule was set, at or before now: firings missed while nothing ran are one run, not many); on
PostgreSQL, pg_cron (postgres/cron.py).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlml import cron, errors, validation
from sqlml.grammar.statements import AlterModel, ModelRef
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:
    from sqlml.engine import Session

SCHEDULE, ON_DRIFT = "retrain_schedule", "retrain_on_drift"
OPTIONS = (SCHEDULE, ON_DRIFT)
KEY = "schedule"  # in the model's settings
RETRAINED, SKIPPED, FAILED = "retrained", "skipped", "failed"
Clock = Callable[[], datetime.datetime]  # UTC, naive


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# -- ALTER MODEL ... SET OPTIONS ------------------------------------------------------------------


def checked(given: Mapping[str, OptionValue]) -> dict[str, OptionValue]:
    """The schedule options of a SET OPTIONS, their types checked (22023) before anything is
    read: retrain_schedule a string or NULL, retrain_on_drift TRUE, FALSE or NULL."""
    found = {k: v for k, v in given.items() if k in OPTIONS}
    text = found.get(SCHEDULE)
    if text is not None:
        if not isinstance(text, str):
            raise errors.InvalidParameterValue(
                f"option RETRAIN_SCHEDULE must be a string (or NULL), not {text!r}"
            )
        cron.parse(text)
    drift = found.get(ON_DRIFT)
    if drift is not None and not isinstance(drift, bool):
        raise errors.InvalidParameterValue(
            f"option RETRAIN_ON_DRIFT must be TRUE or FALSE (or NULL), not {drift!r}"
        )
    return found


def apply(
    session: Session,
    ref: ModelRef,
    found: Mapping[str, OptionValue],
    settings: dict[str, Any],
    role: str | None,
) -> dict[str, Any] | None:
    """The schedule options into ``settings`` (under the model's lock): the schedule now in
    effect (None: none). 55000 for a model RETRAIN cannot add rows to; 22023 for
    retrain_on_drift without a schedule."""
    before = settings.get(KEY)
    schedule = dict(before or {})
    if SCHEDULE in found:
        text = found[SCHEDULE]
        if text is None:
            schedule = {}
        elif schedule.get("schedule") != text or not schedule:
            schedule = {"schedule": text, "set_at": utc_now().isoformat(sep=" ")}
    if ON_DRIFT in found and schedule:
        schedule[ON_DRIFT] = bool(found[ON_DRIFT])
    if found.get(ON_DRIFT) and not schedule:
        raise errors.InvalidParameterValue(
            "option RETRAIN_ON_DRIFT says when a scheduled run retrains: it needs a"
            " RETRAIN_SCHEDULE",
            hint="ALTER MODEL ... SET OPTIONS (retrain_schedule = '0 3 * * *',"
            " retrain_on_drift = TRUE)",
        )
    if not schedule:
        _jobs(session, ref, before, None)
        settings.pop(KEY, None)
        return None
    from sqlml import retrain  # (retrain imports lifecycle, which imports this module)

    try:
        retrain.check_retrainable(session, ref)
    except errors.ObjectNotInPrerequisiteState as e:
        raise errors.ObjectNotInPrerequisiteState(
            f"a retrain_schedule runs ALTER MODEL {ref} RETRAIN, and {e.message}", hint=e.hint
        ) from e
    schedule.setdefault(ON_DRIFT, False)
    schedule["role"] = role
    _jobs(session, ref, before, schedule)
    settings[KEY] = schedule
    return schedule


def _jobs(
    session: Session, ref: ModelRef, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """PostgreSQL, in the server: the model's pg_cron job follows its schedule
    (postgres/cron.py). DuckDB: nothing (sqlml serve and sqlml schedule read the settings)."""
    plpy = getattr(session.engine, "plpy", None)
    if plpy is None:
        return
    from sqlml.postgres import cron as pg_cron

    pg_cron.jobs(plpy, session.store.resolve(ref), before, after)


# -- due schedules (DuckDB: the gateway's scheduler, sqlml schedule) ------------------------------


@dataclass(frozen=True)
class Due:
    """One run to make: the model, its schedule, and the firing it is for."""

    ref: ModelRef
    schedule: dict[str, Any]
    scheduled_for: datetime.datetime


def due(session: Session, now: datetime.datetime) -> list[Due]:
    """The schedules due at ``now``: each model's latest firing after its last run (or after
    the schedule was set), at or before now."""
    found = []
    for schema, name, schedule in session.store.scheduled():
        ref = ModelRef(schema, name)
        set_at = datetime.datetime.fromisoformat(schedule["set_at"])
        last = session.store.last_run(ref)
        since = max(set_at, last) if last is not None else set_at
        fires = cron.parse(schedule["schedule"]).latest_due(since, now)
        if fires is not None:
            found.append(Due(ref, schedule, fires))
    return found


# -- one run --------------------------------------------------------------------------------------


def run(
    session: Session,
    job: Due,
    clock: Clock = utc_now,
    atomic: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Runs one due schedule and records it (sqlml.schedule_runs); returns the row written.
    ``atomic``: what the run's writes are undone with when it fails (PostgreSQL: a
    subtransaction; DuckDB's RETRAIN writes in one transaction of its own)."""
    started = clock()
    began = time.monotonic()
    record: dict[str, Any] = {"drift": None, "version": None, "sqlstate": None}
    role = session.store.who()
    try:
        with atomic():
            record.update(_run(session, job))
    except errors.Error as e:
        record.update(status=FAILED, sqlstate=e.sqlstate, message=e.message)
    finished = started + datetime.timedelta(seconds=time.monotonic() - began)
    row = {
        "schedule": job.schedule["schedule"],
        "scheduled_for": job.scheduled_for,
        "started_at": started,
        "finished_at": finished,
        **record,
        "role": role,
    }
    row["run_id"] = session.store.record_run(job.ref, row)
    return row


def _run(session: Session, job: Due) -> dict[str, Any]:
    """(status, message, version, drift) of one run; an error leaves as it is."""
    ref = job.ref
    out: dict[str, Any] = {}
    if job.schedule.get(ON_DRIFT):
        findings = _drift(session, ref)
        if findings is None:
            return {"status": SKIPPED, "message": "no rows past the watermark"}
        out["drift"] = json.dumps(findings)
        if not findings:
            return {**out, "status": SKIPPED, "message": "no drift"}
    before = session.store.versions(ref)
    comment = f"retrain_schedule '{job.schedule['schedule']}'"
    session.run(AlterModel(model=ref, action="RETRAIN", comment=comment))
    after = session.store.versions(ref)
    if after[-1:] == before[-1:]:
        return {**out, "status": SKIPPED, "message": "no rows past the watermark"}
    return {**out, "status": RETRAINED, "version": after[-1], "message": None}


def _drift(session: Session, ref: ModelRef) -> list[dict[str, Any]] | None:
    """retrain_on_drift's findings on the rows past the watermark (None: there are none)."""
    from sqlml import retrain

    table = retrain.rows_past_watermark(session, ref)
    if not table.num_rows:
        return None
    found = session.store.serving_statistics(ref)
    if found is None or found[1] is None:  # (no statistics to compare with: it drifted)
        return [{"input": None, "kind": "no_statistics", "message": "no stored statistics"}]
    findings = validation.compare(found[1], table)
    for finding in findings:
        session.say(f"retrain_on_drift: {finding['message']} (against {ref})")
    return findings
