"""The prediction log where someone other than a sqlml Session runs the rendered SQL (issue 14;
docs/sql.md, "The prediction log"): the gateway's PostgreSQL proxy (psycopg 2 and 3 in the
simple protocol, psycopg 3 and asyncpg prepared statements in the extended one) and
``sqlml.ml(statement)`` in the PostgreSQL server (psycopg2, psql); and ML.PREDICTION_LOG's time
range.

References independent of the code: the sampled keys are computed here from the hash's
definition with Python's integers (tests/test_traffic.py's hashed, through test_predlog's
logged_keys), and each logged output is compared with the prediction the client got back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import ENGINES, client_module, gateway_parts, module_database, serving, unavailable
from test_predlog import log_tables, logged_keys
from test_traffic import LINEAR, POINTS, Split

import sqlml

KEYS = list(range(-50, 20_000 - 50))
PREDICT = "SELECT id, predicted_y FROM ML.PREDICT(MODEL {}, (SELECT * FROM split.points{}))"


@dataclass
class Logging:
    """A PostgreSQL database with split.points, the gateway (its PostgreSQL proxy) over it."""

    database: str
    owner: Split  # sqlml.connect, autocommit
    port: int

    def model(self, sample: float = 0.05) -> str:
        """A new model whose log samples ``sample`` of the rows by id."""
        model = self.owner.model(LINEAR)
        self.owner.run(
            f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = {sample},"
            " prediction_log_key = 'id')"
        )
        return model

    def logged(self, model: str) -> dict[int, float]:
        """The log's rows of ``model``: key -> predicted_y (each key once)."""
        rows = self.owner.run(f"SELECT log_key, outputs FROM ML.PREDICTION_LOG(MODEL {model})")
        found: dict[int, float] = {}
        for key, outputs in rows:
            assert int(key) not in found
            found[int(key)] = float(json.loads(outputs)["predicted_y"])
        return found

    def psycopg(self, user: str = "conformance", autocommit: bool = True) -> Any:
        psycopg = client_module("psycopg")
        return psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="shop", user=user, autocommit=autocommit
        )


@pytest.fixture(scope="module")
def logging_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Logging]:
    from sqlml.wire.server import ServerConfig

    with module_database("postgres", request, tmp_path_factory, "plog") as database:
        owner = Split(database, "postgres")
        try:
            owner.run("CREATE SCHEMA split")
            owner.run(f"CREATE TABLE split.points AS {POINTS}")
            with serving(ServerConfig(port=0), *gateway_parts("postgres", database)) as port:
                yield Logging(database, owner, port)
        finally:
            owner.con.close()


def check(found: dict[int, float], returned: dict[int, float], sample: float) -> None:
    """The log holds exactly the sampled keys of what was returned, with its predictions."""
    assert sorted(found) == sorted(logged_keys(sample, list(returned)))
    assert found, "the sample is empty: the test proves nothing"
    for key, value in found.items():
        assert value == pytest.approx(returned[key], rel=1e-9)


# -- sqlml.ml in the PostgreSQL server ----------------------------------------------------------


def _plain(con: Any, statement: str) -> dict[int, float]:
    with con.cursor() as cur:
        cur.execute(
            "SELECT (r->>'id')::int, (r->>'predicted_y')::float8 FROM sqlml.ml(%s) AS r",
            [statement],
        )
        return dict(cur.fetchall())


def test_sqlml_ml_logs_in_the_callers_transaction(logging_db: Logging) -> None:
    psycopg2 = client_module("psycopg2")
    model = logging_db.model(0.05)
    con = psycopg2.connect(logging_db.database)
    try:
        statement = PREDICT.format(model, " WHERE id < 10000")
        returned = _plain(con, statement)
        con.rollback()
        assert logging_db.logged(model) == {}  # rolled back with the caller's transaction
        assert _plain(con, statement) == returned
        con.commit()
        check(logging_db.logged(model), returned, 0.05)
        with con.cursor() as cur:  # a read-only transaction scores and logs nothing
            cur.execute("SET TRANSACTION READ ONLY")
        assert _plain(con, statement) == returned
        con.commit()
        assert len(logging_db.logged(model)) == len(logged_keys(0.05, list(returned)))
    finally:
        con.close()


def test_sqlml_ml_in_psql(logging_db: Logging) -> None:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    model = logging_db.model(0.02)
    statement = PREDICT.format(model, "").replace("'", "''")
    query = f"SELECT (r->>'id') || ' ' || (r->>'predicted_y') FROM sqlml.ml('{statement}') AS r"
    done = subprocess.run(
        [psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", logging_db.database, "-c", query],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    returned = {
        int(k): float(v) for k, v in (line.split() for line in done.stdout.split("\n") if line)
    }
    assert len(returned) == len(KEYS)
    check(logging_db.logged(model), returned, 0.02)


# -- the gateway's PostgreSQL proxy: the simple protocol ------------------------------------------


def _gateway_psycopg2(logging_db: Logging, user: str = "conformance") -> Any:
    psycopg2 = client_module("psycopg2")
    return psycopg2.connect(host="127.0.0.1", port=logging_db.port, dbname="shop", user=user)


def test_proxy_simple_protocol_logs_and_rolls_back(logging_db: Logging) -> None:
    """psycopg2 (simple protocol, the values in the text): in the client's transaction, rolled
    back with its ROLLBACK; in autocommit, one transaction with the query."""
    model = logging_db.model(0.05)
    con = _gateway_psycopg2(logging_db)
    try:
        with con.cursor() as cur:
            cur.execute(PREDICT.format(model, " WHERE id < %s"), [12_000])
            returned = {k: float(v) for k, v in cur.fetchall()}
        con.rollback()
        assert logging_db.logged(model) == {}
        with con.cursor() as cur:
            cur.execute(PREDICT.format(model, " WHERE id < %s"), [12_000])
            assert {k: float(v) for k, v in cur.fetchall()} == returned
        con.commit()
        check(logging_db.logged(model), returned, 0.05)
        con.autocommit = True
        with con.cursor() as cur:  # a Query of two statements: one at a time
            cur.execute(f"SELECT 1; {PREDICT.format(model, ' WHERE id >= 12000')}")
            returned |= {k: float(v) for k, v in cur.fetchall()}
            assert con.info.transaction_status == 0  # (psycopg2's IDLE: the proxy's block ended)
        check(logging_db.logged(model), returned, 0.05)
    finally:
        con.close()


def test_proxy_logs_nothing_where_nothing_can_be_written(logging_db: Logging) -> None:
    """A read-only transaction, and a role whose transactions are read-only, score as always
    and log nothing."""
    psycopg2 = client_module("psycopg2")
    model = logging_db.model(0.5)
    role = f"reader_{os.getpid()}"
    raw = psycopg2.connect(logging_db.database)
    raw.autocommit = True
    try:
        with raw.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN")
            cur.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
            cur.execute(f"GRANT USAGE ON SCHEMA split TO {role}")
            cur.execute(f"GRANT SELECT ON split.points TO {role}")
            cur.execute("SELECT sqlml.grant_model(%s, %s)", [model, role])
        con = _gateway_psycopg2(logging_db)
        try:
            with con.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(PREDICT.format(model, ""))
                assert len(cur.fetchall()) == len(KEYS)
            con.commit()
        finally:
            con.close()
        for prepare in (False, True):
            with logging_db.psycopg(user=role) as reader:
                rows = reader.execute(
                    PREDICT.format(model, " WHERE id < %s"), [100], prepare=prepare
                ).fetchall()
                assert len(rows) == 150
        reader2 = _gateway_psycopg2(logging_db, user=role)
        try:
            reader2.autocommit = True
            with reader2.cursor() as cur:
                cur.execute(PREDICT.format(model, ""))
                assert len(cur.fetchall()) == len(KEYS)
        finally:
            reader2.close()
        assert logging_db.logged(model) == {}
        with logging_db.psycopg() as writer:  # (where it can write, the same query logs)
            rows = writer.execute(PREDICT.format(model, " WHERE id < %s"), [100]).fetchall()
        check(logging_db.logged(model), {k: float(v) for k, v in rows}, 0.5)
    finally:
        with raw.cursor() as cur:
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        raw.close()


# -- the gateway's PostgreSQL proxy: the extended protocol ----------------------------------------


@pytest.mark.parametrize("prepare", [False, True], ids=["unnamed", "prepared"])
def test_proxy_extended_protocol_psycopg(logging_db: Logging, prepare: bool) -> None:
    """psycopg 3 with parameters: the unnamed statement, and prepare=True (a named statement,
    Bind/Execute only from the second run on); in autocommit, in a transaction rolled back,
    and in a pipeline of several executions."""
    model = logging_db.model(0.05)
    sql = PREDICT.format(model, " WHERE id >= %s AND id < %s")
    with logging_db.psycopg() as con:
        returned: dict[int, float] = {}
        for low, high in ((0, 4000), (4000, 8000)):
            rows = con.execute(sql, [low, high], prepare=prepare).fetchall()
            returned |= {k: float(v) for k, v in rows}
        check(logging_db.logged(model), returned, 0.05)
        with con.transaction(force_rollback=True):
            con.execute(sql, [8000, 12_000], prepare=prepare).fetchall()
        check(logging_db.logged(model), returned, 0.05)
        with con.pipeline():  # Parse/Bind/Execute ... Bind/Execute, one Sync
            cursors = [
                con.execute(sql, [low, low + 1000], prepare=prepare)
                for low in (12_000, 13_000, 14_000)
            ]
        for cursor in cursors:
            returned |= {k: float(v) for k, v in cursor.fetchall()}
        check(logging_db.logged(model), returned, 0.05)


def test_proxy_extended_protocol_asyncpg(logging_db: Logging) -> None:
    """asyncpg's prepared statements (binary parameters and results), and a cursor fetched in
    parts (Execute with a row limit): logged once, when the portal completes; a cursor left
    before its end logs nothing."""
    asyncpg = client_module("asyncpg")
    model = logging_db.model(0.05)
    sql = PREDICT.format(model, " WHERE id >= $1 AND id < $2")

    async def session() -> tuple[dict[int, float], dict[int, float]]:
        url = f"postgresql://conformance@127.0.0.1:{logging_db.port}/shop"
        con = await asyncpg.connect(url)
        try:
            statement = await con.prepare(sql)
            returned: dict[int, float] = {}
            for low in (0, 5000):
                rows = await statement.fetch(low, low + 5000)
                returned |= {r["id"]: r["predicted_y"] for r in rows}
            in_parts: dict[int, float] = {}
            async with con.transaction():
                async for r in con.cursor(sql, 10_000, 12_000, prefetch=300):
                    in_parts[r["id"]] = r["predicted_y"]
                cursor = await con.cursor(sql, 12_000, 14_000)
                assert len(await cursor.fetch(10)) == 10
            return returned, in_parts
        finally:
            await con.close()

    returned, in_parts = asyncio.run(session())
    assert len(in_parts) == 2000
    check(logging_db.logged(model), returned | in_parts, 0.05)


@contextlib.contextmanager
def refusing(logging_db: Logging, model: str, check: str) -> Iterator[None]:
    """Every log table of ``model``'s rows of split.points refuses the rows that fail
    ``check`` (a CHECK constraint added for the test, then dropped): the typed table is made
    first by a query logged through the owner, whose rows are then deleted."""
    psycopg2 = client_module("psycopg2")
    logging_db.owner.run(PREDICT.format(model, " WHERE id < 0"))
    raw = psycopg2.connect(logging_db.database)
    raw.autocommit = True
    name = model.split(".")[1]
    constraint = f"refused_{os.getpid()}"
    with raw.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlml'"
            " AND table_name LIKE 'prediction\\_log%'"
        )
        tables = [f'sqlml."{t}"' for (t,) in cur.fetchall()]
        for table in tables:
            cur.execute(f"DELETE FROM {table} WHERE model_name = %s", [name])
            cur.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {constraint} CHECK ({check}) NOT VALID"
            )
    try:
        yield
    finally:
        with raw.cursor() as cur:
            for table in tables:
                cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
        raw.close()


def test_proxy_served_log_failure_is_the_statements_error(logging_db: Logging) -> None:
    """A log row the role may not write (row-level security: no USAGE on the model... here, a
    CHECK on the log table added for the test) fails the statement, which rolls back."""
    psycopg2 = client_module("psycopg2")
    model = logging_db.model(1)
    with refusing(logging_db, model, f"model_name <> '{model.split('.')[1]}'"):
        with logging_db.psycopg() as con:
            for prepare in (False, True):
                with pytest.raises(client_module("psycopg").errors.CheckViolation):
                    con.execute(PREDICT.format(model, " WHERE id < %s"), [10], prepare=prepare)
                assert con.execute("SELECT 1").fetchall() == [(1,)]  # the session goes on
        con2 = _gateway_psycopg2(logging_db)
        try:
            with pytest.raises(psycopg2.errors.CheckViolation), con2.cursor() as cur:
                cur.execute(PREDICT.format(model, " WHERE id < 10"))
            con2.rollback()
        finally:
            con2.close()
    assert logging_db.logged(model) == {}


# -- a shadow's log statements through the proxy --------------------------------------------------


def _variants(logging_db: Logging, model: str) -> dict[str, set[int]]:
    rows = logging_db.owner.run(
        f"SELECT variant, version, log_key FROM ML.PREDICTION_LOG(MODEL {model})"
    )
    found: dict[str, set[int]] = {"serving": set(), "shadow": set()}
    for variant, version, key in rows:
        assert int(version) == (2 if variant == "shadow" else 1)
        found[variant].add(int(key))
    return found


def _shadowed(logging_db: Logging) -> str:
    """A model whose version 2 shadows version 1 on 10% of the keys, logging 5% of them."""
    model = logging_db.owner.model(LINEAR, LINEAR + ", l2_reg = 1000.0, deploy = 'manual'")
    logging_db.owner.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.05, prediction_log_key = 'id')"
    )
    logging_db.owner.run(f"ALTER MODEL {model} SET SHADOW VERSION 2 SAMPLE 10 PERCENT")
    return model


FRONTS = ["simple", "simple-block", "extended", "extended-block", "extended-prepared"]


def _run_front(logging_db: Logging, front: str, sql: str, notices: list[str]) -> list[int]:
    """The ids ML.PREDICT returned through one front door of the proxy."""
    if front.startswith("simple"):
        con = _gateway_psycopg2(logging_db)
        try:
            con.autocommit = front == "simple"
            with con.cursor() as cur:
                cur.execute(sql.replace("%s", "%%s"))
                ids = [r[0] for r in cur.fetchall()]
            con.commit()
            notices.extend(con.notices)
            return ids
        finally:
            con.close()
    with logging_db.psycopg(autocommit=front != "extended-block") as con:
        con.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
        rows = con.execute(sql, [0], prepare=front == "extended-prepared").fetchall()
        con.commit()
        return [r[0] for r in rows]


@pytest.mark.parametrize("front", FRONTS)
def test_proxy_logs_a_shadow(logging_db: Logging, front: str) -> None:
    model = _shadowed(logging_db)
    sql = f"SELECT id FROM ML.PREDICT(MODEL {model}, (SELECT * FROM split.points WHERE id >= %s))"
    sql = sql if front.startswith("extended") else sql.replace("%s", "0")
    notices: list[str] = []
    ids = _run_front(logging_db, front, sql, notices)
    served, shadowed = logged_keys(0.05, ids), logged_keys(0.1, ids)  # (the log's, the shadow's)
    assert served < shadowed  # (by key, each served row logged has its shadow row)
    assert _variants(logging_db, model) == {"serving": served, "shadow": shadowed}
    assert not [n for n in notices if "shadow" in n]


@pytest.mark.parametrize("front", FRONTS)
def test_proxy_a_failing_shadow_is_a_notice(logging_db: Logging, front: str) -> None:
    """A shadow's INSERT that fails (a CHECK on the log table added for the test) logs nothing
    of the shadow and says so in a NOTICE; the statement and the served log stand."""
    model = _shadowed(logging_db)
    sql = f"SELECT id FROM ML.PREDICT(MODEL {model}, (SELECT * FROM split.points WHERE id >= %s))"
    sql = sql if front.startswith("extended") else sql.replace("%s", "0")
    with refusing(logging_db, model, "variant <> 'shadow'"):
        notices: list[str] = []
        ids = _run_front(logging_db, front, sql, notices)
    assert len(ids) == len(KEYS) - 50
    assert _variants(logging_db, model) == {"serving": logged_keys(0.05, ids), "shadow": set()}
    assert [n for n in notices if "shadow version 2 failed" in n]


def test_sqlml_ml_a_failing_shadow_is_a_notice(logging_db: Logging) -> None:
    psycopg2 = client_module("psycopg2")
    model = _shadowed(logging_db)
    con = psycopg2.connect(logging_db.database)
    try:
        with refusing(logging_db, model, "variant <> 'shadow'"):
            returned = _plain(con, PREDICT.format(model, ""))
            con.commit()
        assert [n for n in con.notices if "shadow version 2 failed" in n]
        served = logged_keys(0.05, list(returned))
        assert _variants(logging_db, model) == {"serving": served, "shadow": set()}
        _plain(con, PREDICT.format(model, ""))  # and without the CHECK, the shadow's rows too
        con.commit()
        shadowed = logged_keys(0.1, list(returned))
        assert _variants(logging_db, model) == {"serving": served, "shadow": shadowed}
    finally:
        con.close()


# -- ML.PREDICTION_LOG(MODEL m, start, end) ------------------------------------------------------

DAYS = {1: "2026-01-02 00:00:00", 2: "2026-01-03 00:00:00", 3: "2026-01-04 12:00:00"}


@pytest.mark.parametrize(
    ("bounds", "keys"),
    [
        ("", [1, 2, 3]),
        (", NULL, NULL", [1, 2, 3]),
        (", TIMESTAMP '2026-01-03', NULL", [2, 3]),
        (", NULL, TIMESTAMP '2026-01-03'", [1]),  # (the end is not in the range)
        (", '2026-01-02 00:00:00', '2026-01-04'", [1, 2]),
        (", CAST('2026-01-02 00:00:01' AS TIMESTAMP), TIMESTAMP '2027-01-01'", [2, 3]),
        (", TIMESTAMPTZ '2026-01-04 13:00:00+02', NULL", [3]),  # 11:00 UTC
        (", TIMESTAMPTZ '2026-01-04 13:00:00+00', NULL", []),
    ],
)
def test_prediction_log_time_range(dated: sqlml.Connection, bounds: str, keys: list[int]) -> None:
    rows = dated.execute(
        f"SELECT log_key, logged_at FROM ML.PREDICTION_LOG(MODEL split.dated{bounds})"
    ).fetchall()
    assert [int(k) for k, _ in rows] == keys
    assert [str(at) for _, at in rows] == [DAYS[k] for k in keys]


@pytest.mark.parametrize(
    ("bounds", "sqlstate"),
    [
        (", 42, NULL", "22023"),
        (", NULL, TRUE", "22023"),
        (", 'yesterday', NULL", "22023"),
        (", TIMESTAMP '2026-01-01', now()", "22023"),
        (", DATE '2026-01-01' + 1, NULL", "22023"),
        (", NULL", "42601"),
        (", NULL, NULL, NULL", "42601"),
    ],
)
def test_prediction_log_bad_range(dated: sqlml.Connection, bounds: str, sqlstate: str) -> None:
    with pytest.raises(sqlml.Error) as caught:
        dated.execute(f"SELECT * FROM ML.PREDICTION_LOG(MODEL split.dated{bounds})")
    assert caught.value.sqlstate == sqlstate


@pytest.fixture(scope="module", params=ENGINES)
def dated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """A model split.dated with three log rows, keys 1, 2, 3, logged at DAYS."""
    with module_database(str(request.param), request, tmp_path_factory, "dated") as database:
        con = sqlml.connect(database, autocommit=True)
        try:
            _dated_log(con, str(request.param))
            yield con
        finally:
            con.close()


def _dated_log(con: sqlml.Connection, engine: str) -> None:
    con.execute("CREATE SCHEMA split")
    con.execute("CREATE TABLE split.points AS SELECT * FROM (" + POINTS + ") AS p WHERE id < 400")
    con.execute(
        "CREATE MODEL split.dated OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT x, z, y FROM split.points"
    )
    con.execute(
        "ALTER MODEL split.dated SET OPTIONS (prediction_log_sample = 1, prediction_log_key = 'id')"
    )
    con.execute("SELECT * FROM ML.PREDICT(MODEL split.dated, TABLE split.points) WHERE id < 4")
    for table in log_tables(lambda sql: con.execute(sql).fetchall(), engine):
        con.execute(f"DELETE FROM {table} WHERE CAST(log_key AS INTEGER) NOT IN (1, 2, 3)")
        for key, at in DAYS.items():
            con.execute(f"UPDATE {table} SET logged_at = TIMESTAMP '{at}' WHERE log_key = '{key}'")


def test_proxy_prepared_statement_follows_the_log_options(logging_db: Logging) -> None:
    """A statement prepared while the model logged nothing logs once the sample is set (its
    SQL is the same: only the log statements change), and stops when it is cleared."""
    model = logging_db.owner.model(LINEAR)
    sql = PREDICT.format(model, " WHERE id >= %s AND id < %s")
    with logging_db.psycopg() as con:
        con.execute(sql, [0, 3000], prepare=True).fetchall()
        logging_db.owner.run(
            f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.05,"
            " prediction_log_key = 'id')"
        )
        rows = con.execute(sql, [3000, 6000], prepare=True).fetchall()
        logging_db.owner.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = NULL)")
        con.execute(sql, [6000, 9000], prepare=True).fetchall()
    check(logging_db.logged(model), {k: float(v) for k, v in rows}, 0.05)
