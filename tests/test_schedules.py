"""Schedules and retrain-on-drift (issue 15, point 4; docs/sql.md, "Schedules"; sqlml/schedules.py,
sqlml/scheduler.py, sqlml/cron.py), and the gateway's limit on concurrent trainings (point 5;
sqlml/trainings.py).

DuckDB: ``sqlml schedule --once --now ...`` (the real command, time given) and the real ``sqlml
serve`` with a seconds schedule firing while clients are served. PostgreSQL: pg_cron in a real
cluster (test_pg_cron_* below).
"""

from __future__ import annotations

import datetime
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlml
from sqlml import cron, errors

ROWS = (
    "SELECT i AS id, CAST(i % 17 AS DOUBLE) AS x, CAST(sin(i) AS DOUBLE) AS z,"
    " CAST(2 * (i % 17) + 3 * sin(i) + {shift} AS DOUBLE) AS y,"
    " TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 minute' AS ts"
    " FROM range({start}, {stop}) AS g(i)"
)
# far from the training rows: x of 100s instead of 0-16 (drift, by the Jensen-Shannon measure)
DRIFTED = (
    "SELECT i AS id, CAST(100 + i % 17 AS DOUBLE) AS x, CAST(sin(i) AS DOUBLE) AS z,"
    " CAST(2 * (100 + i % 17) + 3 * sin(i) AS DOUBLE) AS y,"
    " TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 minute' AS ts"
    " FROM range({start}, {stop}) AS g(i)"
)
INCREMENTAL = (
    "CREATE MODEL m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
    " incremental = TRUE, watermark_col = 'ts') AS SELECT x, z, y, ts FROM t"
)


def sqlml_command() -> list[str]:
    program = shutil.which("sqlml")
    return [program] if program else [sys.executable, "-m", "sqlml.cli"]


def schedule_once(database: str, now: str) -> subprocess.CompletedProcess[str]:
    command = [*sqlml_command(), "schedule", "-d", database, "--once", "--now", now]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def rows(con: sqlml.Connection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def sqlstate(con: sqlml.Connection, sql: str) -> str:
    with pytest.raises(errors.Error) as caught:
        con.execute(sql)
    return caught.value.sqlstate


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[tuple[str, sqlml.Connection]]:
    path = str(tmp_path / "sched.duckdb")
    con = sqlml.connect(path, autocommit=True)
    con.execute(f"CREATE TABLE t AS {ROWS.format(start=0, stop=400, shift=0)}")
    con.execute(INCREMENTAL)
    yield path, con
    con.close()


# -- cron ----------------------------------------------------------------------------------------


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("schedule", "since", "following"),
    [
        ("0 3 * * *", "2026-12-07 01:00", "2026-12-07 03:00"),
        ("0 3 * * *", "2026-12-07 03:00", "2026-12-08 03:00"),
        ("*/15 9-17 * * mon-fri", "2026-12-05 12:00", "2026-12-07 09:00"),  # a Saturday
        ("30 2 1 * *", "2026-12-07 00:00", "2027-01-01 02:30"),
        ("0 0 13 * 5", "2026-12-07 00:00", "2026-12-11 00:00"),  # day 13 OR Friday, as cron
        ("0 0 * * 7", "2026-12-07 00:00", "2026-12-13 00:00"),  # 7 is Sunday too
        ("0 12 29 feb *", "2026-12-07 00:00", "2028-02-29 12:00"),
        ("5 seconds", "2026-12-07 00:00:00", "2026-12-07 00:00:05"),
    ],
)
def test_cron_next_firing(schedule: str, since: str, following: str) -> None:
    assert cron.parse(schedule).next_after(at(since)) == at(following)


def test_cron_latest_due_collapses_missed_firings() -> None:
    daily = cron.parse("0 3 * * *")
    assert daily.latest_due(at("2026-01-01 00:00"), at("2026-12-07 02:59")) == at(
        "2026-12-06 03:00"
    )
    assert daily.latest_due(at("2026-12-06 03:00"), at("2026-12-07 02:59")) is None
    every = cron.parse("* * * * *")  # (a year of minutes back: found without walking them)
    assert every.latest_due(at("2025-01-01 00:00"), at("2026-12-07 01:00:30")) == at(
        "2026-12-07 01:00"
    )


@pytest.mark.parametrize(
    "bad",
    ["0 3 * *", "60 * * * *", "0 24 * * *", "a * * * *", "0 3 * * 8", "5-1 * * * *",
     "*/0 * * * *", "0 0 31 2 *", "0 seconds", "60 seconds", "0 3 * * * *", ""],
)  # fmt: skip
def test_bad_schedules_are_22023(bad: str) -> None:
    with pytest.raises(errors.Error) as caught:
        cron.parse(bad)
    assert caught.value.sqlstate == "22023"


# -- SET OPTIONS ---------------------------------------------------------------------------------


def test_set_and_remove_a_schedule(duck: tuple[str, sqlml.Connection]) -> None:
    _, con = duck
    assert rows(con, "SELECT * FROM ML.SCHEDULES(MODEL m)") == []
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '0 3 * * *')")
    found = rows(con, "SELECT schedule, retrain_on_drift, role, job_id FROM ML.SCHEDULES(MODEL m)")
    assert [r[:2] for r in found] == [("0 3 * * *", False)]
    assert found[0][3] is None  # (pg_cron's job: PostgreSQL only)
    con.execute("ALTER MODEL m SET OPTIONS (retrain_on_drift = TRUE)")  # (the schedule stays)
    found = rows(con, "SELECT schedule, retrain_on_drift FROM ML.SCHEDULES(MODEL m)")
    assert found == [("0 3 * * *", True)]
    actions = rows(con, "SELECT action FROM ML.DEPLOYMENTS(MODEL m)")
    assert actions == [("create",), ("options",), ("options",)]  # (audited as SET OPTIONS)
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = NULL)")
    assert rows(con, "SELECT * FROM ML.SCHEDULES(MODEL m)") == []


@pytest.mark.parametrize(
    ("options", "state"),
    [
        ("retrain_schedule = '0 3 * *'", "22023"),
        ("retrain_schedule = '61 * * * *'", "22023"),
        ("retrain_schedule = 3", "22023"),
        ("retrain_on_drift = 'yes'", "22023"),
        ("retrain_on_drift = TRUE", "22023"),  # (without a schedule)
    ],
)
def test_bad_schedule_options(duck: tuple[str, sqlml.Connection], options: str, state: str) -> None:
    _, con = duck
    assert sqlstate(con, f"ALTER MODEL m SET OPTIONS ({options})") == state
    assert rows(con, "SELECT * FROM ML.SCHEDULES(MODEL m)") == []


def test_a_model_retrain_cannot_extend_takes_no_schedule(
    duck: tuple[str, sqlml.Connection],
) -> None:
    _, con = duck
    con.execute(
        "CREATE MODEL plain OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT x, z, y FROM t"
    )
    assert sqlstate(con, "ALTER MODEL plain SET OPTIONS (retrain_schedule = '0 3 * * *')") == (
        "55000"
    )
    assert sqlstate(con, "ALTER MODEL nothing SET OPTIONS (retrain_schedule = '0 3 * * *')") == (
        "42704"
    )


# -- runs: sqlml schedule --once -----------------------------------------------------------------

RUNS = "SELECT run_id, scheduled_for, status, version, sqlstate, message FROM ML.SCHEDULE_RUNS(MODEL m)"


def test_scheduled_runs_are_recorded(duck: tuple[str, sqlml.Connection]) -> None:
    path, con = duck
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '0 3 * * *')")
    set_at = rows(con, "SELECT set_at FROM ML.SCHEDULES(MODEL m)")[0][0]
    con.close()
    day = set_at.date() + datetime.timedelta(days=2)
    schedule_once(path, f"{day} 02:59:00")  # one firing missed (day+1 03:00): it runs once
    schedule_once(path, f"{day} 02:59:30")  # nothing due since
    con = sqlml.connect(path, autocommit=True)
    first = datetime.datetime.combine(day - datetime.timedelta(days=1), datetime.time(3))
    assert rows(con, RUNS) == [(1, first, "skipped", None, None, "no rows past the watermark")]
    con.execute(f"INSERT INTO t {ROWS.format(start=400, stop=500, shift=0)}")
    con.close()
    schedule_once(path, f"{day} 03:00:00")
    con = sqlml.connect(path, autocommit=True)
    try:
        second = datetime.datetime.combine(day, datetime.time(3))
        assert rows(con, RUNS)[1:] == [(2, second, "retrained", 2, None, None)]
        assert rows(con, "SELECT version, status FROM ML.VERSIONS(MODEL m) ORDER BY version") == [
            (1, "available"),
            (2, "serving"),
        ]
        info = rows(con, "SELECT rows_read FROM ML.TRAINING_INFO(MODEL m)")
        assert info == [(100,)]  # (a RETRAIN: the new rows only)
        audit = rows(con, "SELECT version, action, comment FROM ML.DEPLOYMENTS(MODEL m)")
        assert audit[-1] == (2, "create", "retrain_schedule '0 3 * * *'")
        # a run that fails is recorded with its SQLSTATE; the model keeps serving
        con.execute(f"INSERT INTO t {ROWS.format(start=500, stop=520, shift=0)}")
        con.execute("ALTER TABLE t DROP COLUMN z")  # the training query reads z: 42703
    finally:
        con.close()
    schedule_once(path, f"{day + datetime.timedelta(days=1)} 03:00:00")
    con = sqlml.connect(path, autocommit=True)
    try:
        last = rows(con, RUNS)[-1]
        assert last[2:5] == ("failed", None, "42703")
        assert last[5]  # (the error's message)
        assert rows(con, "SELECT version FROM ML.VERSIONS(MODEL m) WHERE status = 'serving'") == [
            (2,)
        ]
    finally:
        con.close()


def test_retrain_on_drift_skips_without_drift_and_retrains_with_it(
    duck: tuple[str, sqlml.Connection],
) -> None:
    path, con = duck
    con.execute(
        "ALTER MODEL m SET OPTIONS (retrain_schedule = '0 * * * *', retrain_on_drift = TRUE)"
    )
    set_at = rows(con, "SELECT set_at FROM ML.SCHEDULES(MODEL m)")[0][0]
    con.execute(f"INSERT INTO t {ROWS.format(start=400, stop=600, shift=0)}")  # same distribution
    con.close()
    hour = set_at.replace(minute=0, second=0, microsecond=0)
    schedule_once(path, str(hour + datetime.timedelta(hours=1)))
    con = sqlml.connect(path, autocommit=True)
    run = rows(con, "SELECT status, message, drift, version FROM ML.SCHEDULE_RUNS(MODEL m)")
    assert run == [("skipped", "no drift", "[]", None)]
    con.execute(f"INSERT INTO t {DRIFTED.format(start=600, stop=800)}")
    con.close()
    schedule_once(path, str(hour + datetime.timedelta(hours=2)))
    con = sqlml.connect(path, autocommit=True)
    try:
        status, drift, version = rows(
            con, "SELECT status, drift, version FROM ML.SCHEDULE_RUNS(MODEL m)"
        )[-1]
        assert (status, version) == ("retrained", 2)
        found = json.loads(drift)
        assert any(f["input"] == "x" and f["kind"] == "distribution_shift" for f in found)
        # the retrained version read the 400 rows past the watermark (both batches)
        assert rows(con, "SELECT rows_read FROM ML.TRAINING_INFO(MODEL m)") == [(400,)]
    finally:
        con.close()


def test_drop_model_drops_its_runs(duck: tuple[str, sqlml.Connection]) -> None:
    path, con = duck
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '0 3 * * *')")
    con.close()
    schedule_once(path, "2099-01-01 00:00:00")
    con = sqlml.connect(path, autocommit=True)
    assert len(rows(con, "SELECT * FROM sqlml.schedule_runs")) == 1
    con.execute("DROP MODEL m")
    assert rows(con, "SELECT * FROM sqlml.schedule_runs") == []
    assert rows(con, "SELECT * FROM sqlml.model_settings") == []


# -- the gateway: its scheduler and its training slots -------------------------------------------


class Gateway:
    """The real ``sqlml serve`` (stopped with Ctrl-C, as an operator stops it)."""

    def __init__(self, *args: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        command = [*sqlml_command(), "serve", *args, "-p", str(self.port)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, self.process.communicate()[1]
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="u", dbname="sched", autocommit=True
        )

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def wait_for(check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_the_gateway_runs_the_schedules_of_its_file(duck: tuple[str, sqlml.Connection]) -> None:
    path, con = duck
    con.execute(f"INSERT INTO t {ROWS.format(start=400, stop=450, shift=0)}")
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '2 seconds')")
    con.close()
    gateway = Gateway("-d", path)
    try:
        with gateway.connect() as client:
            runs = "SELECT status, version FROM ML.SCHEDULE_RUNS(MODEL m) ORDER BY run_id"
            found = wait_for(lambda: client.execute(runs).fetchall())
            assert found[0] == ("retrained", 2)  # (run as the role that set the schedule)
            # later firings: nothing new, skipped; clients are served meanwhile
            wait_for(lambda: len(client.execute(runs).fetchall()) >= 2)
            assert client.execute(runs).fetchall()[1] == ("skipped", None)
            assert client.execute("SELECT count(*) FROM t").fetchall() == [(450,)]
            client.execute(f"INSERT INTO t {ROWS.format(start=450, stop=470, shift=0)}")
            wait_for(lambda: ("retrained", 3) in client.execute(runs).fetchall())
    finally:
        code, err = gateway.stop()
    assert code == 0, err
    assert "main.m (2 seconds) retrained" in err


# a training of a minute (tests/test_budgets.py's L-BFGS over a one-hot column): the tests cancel
# it once they have seen what they look for
SLOW_ROWS = (
    "CREATE TABLE slow AS SELECT CAST(i % 7 AS TEXT) AS label,"
    " CAST(CAST(i AS BIGINT) * 7919 % 1000 AS DOUBLE PRECISION) / 1000 AS a,"
    " CAST(i % 13 AS DOUBLE PRECISION) AS d, CAST(i % 1000 AS TEXT) AS e"
    " FROM generate_series(0, 9999) AS g(i)"
)
SLOW = (
    "CREATE OR REPLACE MODEL slow_model OPTIONS (model_type = 'logistic_reg',"
    " input_label_cols = ['label'], max_iterations = 200, early_stop = FALSE) AS SELECT * FROM slow"
)
QUICK = (
    "CREATE OR REPLACE MODEL quick OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
    " AS SELECT x, y FROM t"
)


def _in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except Exception as e:  # noqa: BLE001 (handed to the test thread)
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_training_beyond_the_limit_waits_with_a_notice(
    duck: tuple[str, sqlml.Connection],
) -> None:
    path, con = duck
    con.execute(SLOW_ROWS)
    con.close()
    gateway = Gateway("-d", path, "--max-concurrent-trainings", "1")
    try:
        with gateway.connect() as first, gateway.connect() as second:
            notices: list[str] = []
            second.add_notice_handler(lambda n: notices.append(str(n.message_primary)))
            thread, out = _in_thread(lambda: first.execute(SLOW))
            time.sleep(1.5)  # (the first one has begun: a training of a minute)
            waiting, done = _in_thread(lambda: second.execute(QUICK))
            time.sleep(1.5)
            assert waiting.is_alive()  # it waits for the first one's slot
            assert any("is queued" in n for n in notices), notices
            with gateway.connect() as third:  # a plain query is never queued behind one
                assert third.execute("SELECT count(*) FROM t").fetchall() == [(400,)]
            first.cancel()  # the first one ends (57014): the second one runs
            thread.join(timeout=120)
            waiting.join(timeout=120)
            assert getattr(out.get("error"), "sqlstate", None) == "57014", out
            assert "error" not in done, done
            stored = "SELECT model_name FROM sqlml.models ORDER BY 1"
            assert second.execute(stored).fetchall() == [("m",), ("quick",)]
    finally:
        code, err = gateway.stop()
    assert code == 0, err


def test_the_queue_timeout_is_53400_and_a_queued_training_can_be_cancelled(
    duck: tuple[str, sqlml.Connection],
) -> None:
    import psycopg

    path, con = duck
    con.execute(SLOW_ROWS)
    con.close()
    gateway = Gateway(
        "-d", path, "--max-concurrent-trainings", "1", "--training-queue-timeout", "1"
    )
    try:
        with gateway.connect() as first, gateway.connect() as second:
            thread, out = _in_thread(lambda: first.execute(SLOW))
            time.sleep(1.0)
            canceller = threading.Timer(0.3, second.cancel)
            canceller.start()
            with pytest.raises(psycopg.Error) as caught:
                second.execute(QUICK)  # cancelled while it waits
            assert caught.value.sqlstate == "57014"
            with pytest.raises(psycopg.Error) as caught:
                second.execute(QUICK)  # gives up after a second
            assert caught.value.sqlstate == "53400"
            first.cancel()
            thread.join(timeout=120)
            assert getattr(out.get("error"), "sqlstate", None) == "57014", out
            second.execute(QUICK)  # a slot is free again
    finally:
        code, err = gateway.stop()
    assert code == 0, err


# -- PostgreSQL: pg_cron -------------------------------------------------------------------------

PG_ROWS = (
    "SELECT i AS id, CAST(i % 17 AS DOUBLE PRECISION) AS x,"
    " CAST(sin(i) AS DOUBLE PRECISION) AS z,"
    " CAST(2 * (i % 17) + 3 * sin(i) AS DOUBLE PRECISION) AS y,"
    " TIMESTAMP '2024-01-01 00:00:00' + i * INTERVAL '1 minute' AS ts"
    " FROM generate_series({start}, {stop} - 1) AS g(i)"
)
PG_MODEL = (
    "CREATE MODEL public.m OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'],"
    " incremental = TRUE, watermark_col = 'ts') AS SELECT x, z, y, ts FROM public.t"
)
SCHEDULER = "sched_user"  # a role with no special rights: CREATE on public, USAGE on cron


def as_role(dsn: str, role: str) -> str:
    scheme, _, rest = dsn.partition("://")
    return f"{scheme}://{role}@{rest.partition('@')[2]}"


@pytest.fixture
def cron_database(pg_server: str) -> str:
    """The cluster's pg_cron database (cron.database_name; tests/pgcluster.py) made afresh from
    the template (sqlml installed), with CREATE EXTENSION pg_cron and the scheduling role."""
    import pgcluster
    import psycopg2
    from conftest import TEMPLATE, unavailable

    if not pgcluster.has_pg_cron():
        unavailable("pg_cron: apt-get install postgresql-15-cron")
    dsn = pgcluster.create_database(pg_server, pgcluster.CRON_DATABASE, template=TEMPLATE)
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        cur.execute(
            "DO $$ BEGIN CREATE ROLE sched_user LOGIN;"
            " EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        cur.execute("GRANT USAGE ON SCHEMA cron TO sched_user")
        cur.execute("GRANT CREATE, USAGE ON SCHEMA public TO sched_user")
    admin.close()
    return dsn


def pg_rows(con: sqlml.Connection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def test_pg_cron_runs_the_schedule_as_the_role_that_set_it(cron_database: str) -> None:
    import psycopg2

    con = sqlml.connect(as_role(cron_database, SCHEDULER), autocommit=True)
    admin = psycopg2.connect(cron_database)
    admin.autocommit = True
    try:
        con.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        con.execute(PG_MODEL)
        con.execute(f"INSERT INTO public.t {PG_ROWS.format(start=300, stop=360)}")
        # pg_cron 1.4 fires cron schedules (its 'N seconds' intervals came with 1.5): every
        # minute, the shortest
        con.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = '* * * * *')")
        (job,) = pg_rows(con, "SELECT job_id FROM ML.SCHEDULES(MODEL public.m)")[0]
        with admin.cursor() as cur:
            cur.execute("SELECT schedule, command, username FROM cron.job WHERE jobid = %s", [job])
            assert cur.fetchall() == [
                ("* * * * *", "SELECT sqlml.run_schedule('public', 'm')", SCHEDULER)
            ]
        runs = "SELECT status, version, role FROM ML.SCHEDULE_RUNS(MODEL public.m) ORDER BY run_id"
        found = wait_for(lambda: pg_rows(con, runs), 150)  # pg_cron fires it at the next minute
        assert found[0] == ("retrained", 2, SCHEDULER)
        assert pg_rows(con, "SELECT rows_read FROM ML.TRAINING_INFO(MODEL public.m)") == [(60,)]
        with admin.cursor() as cur:  # (pg_cron's own record of it)
            cur.execute("SELECT status FROM cron.job_run_details WHERE jobid = %s", [job])
            assert ("succeeded",) in cur.fetchall()
        # removing the schedule unschedules the job
        con.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = NULL)")
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM cron.job")
            assert cur.fetchall() == [(0,)]
        assert pg_rows(con, "SELECT * FROM ML.SCHEDULES(MODEL public.m)") == []
        # the job's command, called directly: runs as the caller, recorded
        con.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')")
        with admin.cursor() as cur:
            cur.execute("SELECT schedule FROM cron.job")
            assert cur.fetchall() == [("0 3 * * *",)]
        skipped = pg_rows(con, "SELECT sqlml.run_schedule('public', 'm')")
        assert skipped == [("skipped: no rows past the watermark",)]
        con.execute(f"INSERT INTO public.t {PG_ROWS.format(start=360, stop=370)}")
        status = pg_rows(con, "SELECT sqlml.run_schedule('public', 'm')")
        assert status == [("retrained",)]
        assert pg_rows(con, runs)[-2:] == [
            ("skipped", None, SCHEDULER),
            ("retrained", 3, SCHEDULER),
        ]
        # DROP MODEL drops its job and its runs
        con.execute("DROP MODEL public.m")
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM cron.job")
            assert cur.fetchall() == [(0,)]
            cur.execute("SELECT count(*) FROM sqlml.schedule_runs")
            assert cur.fetchall() == [(0,)]
    finally:
        con.close()
        admin.close()


def test_pg_a_failed_run_is_recorded_and_the_model_keeps_serving(cron_database: str) -> None:
    con = sqlml.connect(as_role(cron_database, SCHEDULER), autocommit=True)
    try:
        con.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        con.execute(PG_MODEL)
        con.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')")
        con.execute(f"INSERT INTO public.t {PG_ROWS.format(start=300, stop=320)}")
        con.execute("ALTER TABLE public.t DROP COLUMN z")
        status = pg_rows(con, "SELECT sqlml.run_schedule('public', 'm')")[0][0]
        assert status.startswith("failed")
        run = pg_rows(con, "SELECT status, sqlstate, version FROM ML.SCHEDULE_RUNS(MODEL public.m)")
        assert run == [("failed", "42703", None)]
        assert pg_rows(con, "SELECT version FROM ML.VERSIONS(MODEL public.m)") == [(1,)]
    finally:
        con.close()


def test_pg_schedule_errors(cron_database: str, pg_database: str) -> None:
    import psycopg2

    con = sqlml.connect(as_role(cron_database, SCHEDULER), autocommit=True)
    admin = psycopg2.connect(cron_database)
    admin.autocommit = True
    try:
        con.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        con.execute(PG_MODEL)
        assert sqlstate(con, "ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 *')") == (
            "22023"
        )
        with admin.cursor() as cur:  # a role without USAGE on schema cron
            cur.execute("REVOKE USAGE ON SCHEMA cron FROM sched_user")
        try:
            sql = "ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')"
            assert sqlstate(con, sql) == "42501"
            assert pg_rows(con, "SELECT * FROM ML.SCHEDULES(MODEL public.m)") == []
        finally:
            with admin.cursor() as cur:
                cur.execute("GRANT USAGE ON SCHEMA cron TO sched_user")
    finally:
        con.close()
        admin.close()
    # a database without pg_cron: 0A000, with a hint
    other = sqlml.connect(pg_database, autocommit=True)
    try:
        other.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        other.execute(PG_MODEL)
        with pytest.raises(errors.Error) as caught:
            other.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')")
        assert caught.value.sqlstate == "0A000"
        assert "pg_cron" in str(caught.value.hint)
    finally:
        other.close()


def test_pg_privileges_hold_for_schedules_and_their_runs(cron_database: str) -> None:
    import psycopg2

    admin = psycopg2.connect(cron_database)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "DO $$ BEGIN CREATE ROLE sched_reader LOGIN;"
            " EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        cur.execute("GRANT USAGE ON SCHEMA cron TO sched_reader")
    owner = sqlml.connect(as_role(cron_database, SCHEDULER), autocommit=True)
    reader = sqlml.connect(as_role(cron_database, "sched_reader"), autocommit=True)
    try:
        owner.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        owner.execute("GRANT SELECT ON public.t TO sched_reader")
        owner.execute(PG_MODEL)
        owner.execute("SELECT sqlml.grant_model('public.m', 'sched_reader')")  # USAGE only
        sql = "ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')"
        assert sqlstate(reader, sql) == "42501"  # (without MANAGE: nothing scheduled)
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM cron.job")
            assert cur.fetchall() == [(0,)]
        owner.execute(sql)
        # the reader may see the schedule and its runs, not run it as itself
        assert pg_rows(reader, "SELECT schedule FROM ML.SCHEDULES(MODEL public.m)") == [
            ("0 3 * * *",)
        ]
        owner.execute(f"INSERT INTO public.t {PG_ROWS.format(start=300, stop=310)}")
        status = pg_rows(reader, "SELECT sqlml.run_schedule('public', 'm')")[0][0]
        assert status.startswith("failed")
        run = pg_rows(owner, "SELECT status, sqlstate, role FROM ML.SCHEDULE_RUNS(MODEL public.m)")
        assert run == [("failed", "42501", "sched_reader")]
        assert pg_rows(owner, "SELECT version FROM ML.VERSIONS(MODEL public.m)") == [(1,)]
        # a reader cannot write the runs table itself
        with pytest.raises(errors.Error) as caught:
            reader.execute("DELETE FROM sqlml.schedule_runs")
        assert caught.value.sqlstate == "42501"
    finally:
        owner.close()
        reader.close()
        admin.close()


def test_the_training_limit_holds_in_proxy_mode(pg_database: str) -> None:
    import psycopg

    con = sqlml.connect(pg_database, autocommit=True)
    try:
        con.execute(SLOW_ROWS.replace("CREATE TABLE slow", "CREATE TABLE public.slow"))
        con.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
    finally:
        con.close()
    gateway = Gateway(
        "-d", pg_database, "--max-concurrent-trainings", "1", "--training-queue-timeout", "1"
    )
    dbname = pg_database.rsplit("/", 1)[1]

    def connect() -> Any:
        return psycopg.connect(
            host="127.0.0.1", port=gateway.port, user="postgres", dbname=dbname, autocommit=True
        )

    try:
        with connect() as first, connect() as second:
            thread, out = _in_thread(lambda: first.execute(SLOW))
            time.sleep(1.5)
            with pytest.raises(psycopg.Error) as caught:
                second.execute(QUICK)
            assert caught.value.sqlstate == "53400"
            assert second.execute("SELECT 1").fetchall() == [(1,)]  # (plain SQL: never queued)
            first.cancel()
            thread.join(timeout=120)
            assert getattr(out.get("error"), "sqlstate", None) == "57014", out
            second.execute(QUICK)
    finally:
        code, err = gateway.stop()
    assert code == 0, err


def test_pg_uninstall_with_the_models_unschedules_their_jobs(cron_database: str) -> None:
    import psycopg2

    from sqlml.postgres.install import Installer

    con = sqlml.connect(as_role(cron_database, SCHEDULER), autocommit=True)
    try:
        con.execute(f"CREATE TABLE public.t AS {PG_ROWS.format(start=0, stop=300)}")
        con.execute(PG_MODEL)
        con.execute("ALTER MODEL public.m SET OPTIONS (retrain_schedule = '0 3 * * *')")
    finally:
        con.close()
    installer = Installer(cron_database)
    try:
        installer.uninstall(drop_models=True)
    finally:
        installer.close()
    admin = psycopg2.connect(cron_database)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM cron.job")
            assert cur.fetchall() == [(0,)]
    finally:
        admin.close()


def test_the_scheduler_runs_on_the_clock_it_is_given(duck: tuple[str, sqlml.Connection]) -> None:
    from sqlml import engine
    from sqlml.scheduler import Scheduler

    path, con = duck
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '*/10 * * * *')")
    set_at = rows(con, "SELECT set_at FROM ML.SCHEDULES(MODEL m)")[0][0]
    con.close()
    now = [set_at]
    session = engine.Session.open(path)
    scheduler = Scheduler(session, clock=lambda: now[0], poll=0.05, log=lambda _: None)
    try:
        assert scheduler.run_due() == []  # nothing due yet
        now[0] = set_at + datetime.timedelta(minutes=25)  # two firings passed: one run
        (run,) = scheduler.run_due()
        assert run["status"] == "skipped"
        assert run["scheduled_for"].minute % 10 == 0
        assert scheduler.run_due() == []
        session.execute_one(f"INSERT INTO t {ROWS.format(start=400, stop=420, shift=0)}")
        now[0] += datetime.timedelta(minutes=10)
        scheduler.start()  # its thread finds the run due and makes it
        reader = sqlml.connect(path, autocommit=True)  # (another connection to the file)
        try:
            versions = "SELECT version FROM ML.VERSIONS(MODEL m) ORDER BY 1"
            wait_for(lambda: rows(reader, versions) == [(1,), (2,)], 60)
        finally:
            reader.close()
    finally:
        scheduler.stop()
        session.engine.close()
    assert scheduler._thread is not None
    assert not scheduler._thread.is_alive()  # (stopped cleanly)


def test_sqlml_schedule_until_runs_as_schedules_fall_due(
    duck: tuple[str, sqlml.Connection],
) -> None:
    path, con = duck
    con.execute(f"INSERT INTO t {ROWS.format(start=400, stop=420, shift=0)}")
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '1 seconds')")
    con.close()
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=20)
    command = [*sqlml_command(), "schedule", "-d", path, "--poll", "0.2"]
    command += ["--until", until.strftime("%Y-%m-%d %H:%M:%S")]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began >= 2  # (it waited for its end)
    con = sqlml.connect(path, autocommit=True)
    try:
        statuses = [r[0] for r in rows(con, "SELECT status FROM ML.SCHEDULE_RUNS(MODEL m)")]
        assert statuses[0] == "retrained"
        assert len(statuses) >= 2
        assert set(statuses[1:]) == {"skipped"}
    finally:
        con.close()


@pytest.mark.parametrize(
    ("arguments", "state"),
    [
        (["--now", "2030-01-01 00:00:00"], "22023"),  # (--now goes with --once)
        (["-d", "postgresql://nobody@127.0.0.1:1/x", "--once"], "0A000"),
    ],
)
def test_sqlml_schedule_errors(
    duck: tuple[str, sqlml.Connection], arguments: list[str], state: str
) -> None:
    path, _ = duck
    command = [*sqlml_command(), "schedule"]
    command += arguments if "-d" in arguments else ["-d", path, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"ERROR {state}" in done.stderr or state in done.stderr, done.stderr


def test_stopping_the_scheduler_cancels_the_run_it_makes(
    duck: tuple[str, sqlml.Connection],
) -> None:
    """A scheduled run waits for a training slot that a client holds (trainings.Slots): stop()
    cancels it (57014, recorded) and the thread ends, the model as it was."""
    from sqlml import engine, trainings
    from sqlml.scheduler import Scheduler

    path, con = duck
    con.execute(f"INSERT INTO t {ROWS.format(start=400, stop=420, shift=0)}")
    con.execute("ALTER MODEL m SET OPTIONS (retrain_schedule = '1 seconds')")
    con.close()
    session = engine.Session.open(path)
    session.trainings = slots = trainings.Slots(1)
    scheduler = Scheduler(session, poll=0.05, log=lambda _: None)
    try:
        with slots.slot("a client's CREATE MODEL", lambda _: None, lambda: None):
            scheduler.start()
            wait_for(lambda: slots.queued == 1, 30)  # the run waits for the slot
            scheduler.stop()
        assert scheduler._thread is not None
        assert not scheduler._thread.is_alive()
        found = session.execute_one("SELECT status, sqlstate FROM ML.SCHEDULE_RUNS(MODEL m)").table
        assert found is not None
        assert found.to_pylist() == [{"status": "failed", "sqlstate": "57014"}]
        versions = session.execute_one("SELECT version FROM ML.VERSIONS(MODEL m)").table
        assert versions is not None
        assert versions.to_pylist() == [{"version": 1}]
    finally:
        scheduler.stop()
        session.engine.close()
