"""retrain_schedules on PostgreSQL: pg_cron jobs (docs/postgres.md; sqlml/schedules.py).

Theory of operation
-------------------
pg_cron (Debian's postgresql-15-cron) runs jobs in one database of a cluster, the one its
``cron.database_name`` names, where ``CREATE EXTENSION pg_cron`` made schema ``cron``; a model
takes a schedule only in that database (0A000 with a hint elsewhere).

- ``ALTER MODEL m SET OPTIONS (retrain_schedule = '...')`` calls ``cron.schedule(name, schedule,
  command)`` *with the caller's rights*, so pg_cron runs the job as the role that set the
  schedule (it needs USAGE on schema cron: 42501 with a hint otherwise), and stores the job's id
  with the schedule (ML.SCHEDULES's job_id). The job's name is ``sqlml <schema>.<model>``, its
  command ``SELECT sqlml.run_schedule('<schema>', '<model>')`` (a tree: the names are literals).
- Removing the schedule, replacing it, or DROP MODEL unschedules the job with the installer's
  rights (sqlml.run_as_owner: a superuser), since another role may have set it.
- All in the statement's transaction: a statement that fails schedules nothing.
- ``sqlml.run_schedule`` (``run``) is the job: the schedule's run as schedules.run makes it (a
  RETRAIN, retrain_on_drift's check first), inside a subtransaction so a failed run leaves
  nothing but its sqlml.schedule_runs row (written with the installer's rights: ordinary roles
  only read the store). The job's role needs MANAGE on the model, as for a RETRAIN of its own
  (a run without it is recorded as failed, 42501).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from sqlml import errors, schedules
from sqlml.engines import placeholders
from sqlml.grammar.statements import ModelRef
from sqlml.postgres import privileges

_HINT = (
    "install Debian's postgresql-15-cron, set shared_preload_libraries = 'pg_cron' and"
    " cron.database_name to this database in postgresql.conf, restart, and run CREATE"
    ' EXTENSION pg_cron here (docs/postgres.md, "Schedules")'
)


def _value(plpy: Any, query: exp.Expr, types: list[str], values: list[Any]) -> Any:
    text = query.sql(dialect="postgres")
    try:
        rows = plpy.execute(plpy.prepare(text, types), values) if types else plpy.execute(text)
    except plpy.SPIError as e:
        raise errors.from_sqlstate(getattr(e, "sqlstate", None), str(e).strip()) from e
    return rows[0]["v"] if rows else None


def _check_installed(plpy: Any) -> None:
    """0A000 unless pg_cron is installed in this database."""
    found = exp.select(
        exp.Exists(
            this=exp.select(exp.Literal.number(1))
            .from_(exp.table_("pg_extension", db="pg_catalog"))
            .where(exp.column("extname").eq(exp.Literal.string("pg_cron")))
        ).as_("v")
    )
    if not _value(plpy, found, [], []):
        raise errors.FeatureNotSupported(
            "retrain_schedule needs pg_cron in this database, and it is not installed here",
            hint=_HINT,
        )


def _cron(function: str, *arguments: exp.Expr) -> exp.Expr:
    call = exp.Anonymous(this=function, expressions=list(arguments))
    return exp.select(exp.Dot(this=exp.to_identifier("cron"), expression=call).as_("v"))


def command(schema: str, name: str) -> str:
    """The job's SQL: ``SELECT sqlml.run_schedule('<schema>', '<name>')``."""
    call = exp.Anonymous(
        this="run_schedule",
        expressions=[exp.Literal.string(schema), exp.Literal.string(name)],
    )
    return exp.select(exp.Dot(this=exp.to_identifier("sqlml"), expression=call)).sql("postgres")


def schedule(plpy: Any, schema: str, name: str, text: str) -> int:
    """A pg_cron job, as the caller, that runs the model's schedule; its id."""
    _check_installed(plpy)
    query = _cron("schedule", exp.Placeholder(), exp.Placeholder(), exp.Placeholder())
    sql = placeholders.format_to_numbered(query.sql(dialect="postgres"))
    try:
        rows = plpy.execute(
            plpy.prepare(sql, ["text", "text", "text"]),
            [f"sqlml {schema}.{name}", text, command(schema, name)],
        )
    except plpy.SPIError as e:
        state = getattr(e, "sqlstate", None)
        hint = "GRANT USAGE ON SCHEMA cron TO the role" if state == "42501" else None
        raise errors.from_sqlstate(state, str(e).strip(), hint=hint) from e
    return int(rows[0]["v"])


def unschedule(plpy: Any, job_id: int) -> None:
    """Removes a job with the installer's rights (whoever scheduled it); gone already: fine."""

    def work() -> None:
        exists = exp.select(
            exp.Exists(
                this=exp.select(exp.Literal.number(1))
                .from_(exp.table_("job", db="cron"))
                .where(exp.column("jobid").eq(exp.Literal.number(job_id)))
            ).as_("v")
        )
        if _value(plpy, exists, [], []):
            _value(plpy, _cron("unschedule", exp.Literal.number(job_id)), [], [])

    cron = exp.select(exp.func("to_regnamespace", exp.Literal.string("cron")).as_("v"))
    if _value(plpy, cron, [], []) is None:
        return  # (pg_cron was dropped: no job left to remove)
    privileges.as_owner(plpy, work)


def jobs(
    plpy: Any,
    ref: tuple[str, str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """The model's pg_cron job follows its schedule (``after``, None: removed); the new job's
    id goes into ``after``."""
    old = (before or {}).get("job_id")
    same = (
        before is not None
        and after is not None
        and before.get("schedule") == after.get("schedule")
        and before.get("role") == after.get("role")
        and old is not None
    )
    if same:
        after["job_id"] = old  # type: ignore[index]
        return
    if old is not None:
        unschedule(plpy, int(old))
    if after is not None:
        after["job_id"] = schedule(plpy, *ref, after["schedule"])


def run(plpy: Any, schema: str, name: str) -> str:
    """The body of sqlml.run_schedule: one run of the model's schedule, recorded; returns its
    status (and why it skipped or failed)."""
    from sqlml.postgres import server

    current = server.session(plpy)
    ref = ModelRef(schema, name)
    found = current.store.settings(ref).get(schedules.KEY)
    if not found:
        return "no schedule"
    now = schedules.utc_now()
    interval = "seconds" in found["schedule"]
    at = now.replace(microsecond=0) if interval else now.replace(second=0, microsecond=0)
    job = schedules.Due(ref, found, at)
    row = schedules.run(current, job, atomic=plpy.subtransaction)
    if row["status"] == schedules.RETRAINED:
        server._publish_serving(plpy, current, ref)
    return str(row["status"]) + (f": {row['message']}" if row.get("message") else "")
