"""A deploy reaches every reader at its next statement (issue 14, "Deploys are transactional and
take effect everywhere at once"; docs/sql.md, "Model lifecycle"): statements prepared through the
gateway (psycopg 3 prepare=True, asyncpg's prepared statements: the extended protocol's named
statements, Parse once, Bind/Execute many) over DuckDB and over PostgreSQL, kept plans of
sqlml.connect, views over ML.PREDICT, PostgreSQL's per-model functions in a server-side prepared
statement, sessions of another process; a rolled-back deploy changes nothing (its audit row
included); concurrent deploys of one model take turns."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ENGINES,
    client_module,
    gateway_parts,
    message_reader,
    module_database,
    serving,
    unavailable,
)

import sqlml
from sqlml import errors

POINTS = (
    "SELECT CAST(i AS DOUBLE PRECISION) AS x, CAST(i % 5 AS DOUBLE PRECISION) AS z,"
    " CAST(2 * i + 3 * (i % 5) + 1 AS DOUBLE PRECISION) AS y"
    " FROM generate_series(1, 60) AS g(i)"
)
TRAIN = "SELECT x, z, y FROM reach.points"
GOOD = "model_type = 'linear_reg', input_label_cols = ['y']"
BAD = GOOD + ", l2_reg = 1000000.0, deploy = 'manual'"  # nearly a constant, not serving
ONE_ROW = (
    "SELECT predicted_y FROM ML.PREDICT(MODEL {}, (SELECT x, z FROM reach.points WHERE x = {}))"
)
GENERIC = 7  # executions after which PostgreSQL may keep a generic plan of a prepared statement


@dataclass
class Reach:
    engine: str
    database: str
    con: sqlml.Connection
    port: int
    names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def model(self) -> str:
        """A new model: version 1 serves, version 2 (another fit) is stored and does not."""
        name = f"reach.m{next(self.names)}"
        for options in (GOOD, BAD):
            self.con.execute(f"CREATE OR REPLACE MODEL {name} OPTIONS ({options}) AS {TRAIN}")
        return name

    def expected(self, model: str, version: int, x: float = 10.0) -> float:
        sql = ONE_ROW.format(f"{model} VERSION {version}", "?")
        return round(float(self.con.execute(sql, [x]).fetchall()[0][0]), 9)

    def trail(self, model: str) -> list[tuple[Any, ...]]:
        return self.con.execute(
            "SELECT deployment_id, version, previous_version, action"
            f" FROM ML.DEPLOYMENTS(MODEL {model}) ORDER BY deployment_id"
        ).fetchall()

    def gateway(self) -> Any:
        psycopg = client_module("psycopg")
        return psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="shop", user="conformance", autocommit=True
        )


@pytest.fixture(scope="module", params=ENGINES)
def reach(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Reach]:
    from sqlml.wire.server import ServerConfig

    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, "reach") as database:
        con = sqlml.connect(database, autocommit=True)
        try:
            con.execute("CREATE SCHEMA reach")
            con.execute(f"CREATE TABLE reach.points AS {POINTS}")
            with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
                yield Reach(engine, database, con, port)
        finally:
            con.close()


def _value(rows: list[tuple[Any, ...]]) -> float:
    return round(float(rows[0][0]), 9)


# -- statements prepared through the gateway --------------------------------------------------------


def test_psycopg_prepared_statement_follows_deploys(reach: Reach) -> None:
    """psycopg 3's prepare=True: Parse once (a named statement), then Bind/Execute only."""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    assert one != two
    reader, admin = reach.gateway(), reach.gateway()
    sql = ONE_ROW.format(model, "%s")
    try:

        def read() -> float:
            return _value(reader.execute(sql, [10.0], prepare=True).fetchall())

        assert [read() for _ in range(GENERIC)] == [one] * GENERIC
        admin.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert read() == two
        admin.execute("BEGIN")
        admin.execute(f"ALTER MODEL {model} ROLLBACK")
        assert read() == two  # not committed: not seen
        admin.execute("ROLLBACK")
        assert read() == two
        assert len(reach.trail(model)) == 2  # the rolled-back audit row is gone too
        admin.execute("BEGIN")
        admin.execute(f"ALTER MODEL {model} ROLLBACK")
        admin.execute("COMMIT")
        assert read() == one
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")  # another front door
        assert read() == two
        assert [r[1:] for r in reach.trail(model)] == [
            (1, None, "create"),
            (2, 1, "deploy"),
            (1, 2, "rollback"),
            (2, 1, "deploy"),
        ]
    finally:
        reader.close()
        admin.close()


def test_prepared_statements_follow_create_or_replace(reach: Reach) -> None:
    """CREATE OR REPLACE MODEL whose version serves is a deploy too (through the gateway, in
    another session); one stored with deploy = 'manual' changes nothing."""
    model = reach.model()
    one = reach.expected(model, 1)
    reader, writer = reach.gateway(), reach.gateway()
    sql = ONE_ROW.format(model, "%s")
    try:

        def read() -> float:
            return _value(reader.execute(sql, [10.0], prepare=True).fetchall())

        assert [read() for _ in range(GENERIC)] == [one] * GENERIC
        writer.execute(f"CREATE OR REPLACE MODEL {model} OPTIONS ({BAD}) AS {TRAIN}")  # v3
        assert read() == one
        replaced = GOOD + ", l2_reg = 100.0"
        writer.execute(f"CREATE OR REPLACE MODEL {model} OPTIONS ({replaced}) AS {TRAIN}")  # v4
        four = reach.expected(model, 4)
        assert four != one
        assert read() == four
    finally:
        reader.close()
        writer.close()


def test_a_prepared_statement_in_bigquery_mode_follows_deploys(reach: Reach) -> None:
    """The statement is GoogleSQL, transpiled by the gateway before it is rendered."""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    reader = reach.gateway()
    sql = ONE_ROW.format(f"`{model}`", "%s")
    try:
        reader.execute("SET sqlml.dialect = 'bigquery'")
        assert [_value(reader.execute(sql, [10.0], prepare=True).fetchall()) for _ in "ab"] == [
            one,
            one,
        ]
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert _value(reader.execute(sql, [10.0], prepare=True).fetchall()) == two
    finally:
        reader.close()


def test_psycopg_prepared_statement_in_a_transaction(reach: Reach) -> None:
    """Inside the reader's own transaction block the next statement follows a deploy committed
    meanwhile, as any statement at READ COMMITTED (PostgreSQL) sees it."""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    reader = reach.gateway()
    sql = ONE_ROW.format(model, "%s")
    try:
        assert _value(reader.execute(sql, [10.0], prepare=True).fetchall()) == one
        reader.execute("BEGIN")
        assert _value(reader.execute(sql, [10.0], prepare=True).fetchall()) == one
        reader.execute("COMMIT")
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        reader.execute("BEGIN")
        assert _value(reader.execute(sql, [10.0], prepare=True).fetchall()) == two
        reader.execute("COMMIT")
    finally:
        reader.close()


def test_asyncpg_prepared_statement_follows_deploys(reach: Reach) -> None:
    asyncpg = client_module("asyncpg")
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)

    async def session() -> list[float]:
        con = await asyncpg.connect(f"postgresql://conformance@127.0.0.1:{reach.port}/shop")
        try:
            statement = await con.prepare(ONE_ROW.format(model, "$1"))
            seen = [round(float(await statement.fetchval(10.0)), 9) for _ in range(GENERIC)]
            await asyncio.to_thread(reach.con.execute, f"ALTER MODEL {model} DEPLOY VERSION 2")
            seen.append(round(float(await statement.fetchval(10.0)), 9))
            return seen
        finally:
            await con.close()

    assert asyncio.run(session()) == [one] * GENERIC + [two]


JAVA_PROGRAM = Path(__file__).parent / "java" / "DeployFollow.java"
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java (.ci/run)


def test_jdbc_named_statement_follows_deploys(reach: Reach) -> None:
    """pgJDBC with prepareThreshold=1: a named server-side statement from the first run."""
    java = shutil.which("java")
    if java is None or not Path(JDBC_JAR).exists():
        unavailable("a JDK and libpostgresql-jdbc-java are not installed")
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    url = f"jdbc:postgresql://127.0.0.1:{reach.port}/shop?user=conformance&prepareThreshold=1"
    args = [java, "-cp", JDBC_JAR, str(JAVA_PROGRAM), url, ONE_ROW.format(model, "?")]
    with _line_reader(args) as read:
        assert [round(read(), 9) for _ in range(GENERIC)] == [one] * GENERIC
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert round(read(), 9) == two


def test_a_view_prepared_through_the_gateway_follows_deploys(reach: Reach) -> None:
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    view = f"reach.v{next(reach.names)}"
    reach.con.execute(
        f"CREATE VIEW {view} AS SELECT x, predicted_y"
        f" FROM ML.PREDICT(MODEL {model}, TABLE reach.points)"
    )
    reader = reach.gateway()
    try:

        def read() -> float:
            sql = f"SELECT predicted_y FROM {view} WHERE x = %s"
            return _value(reader.execute(sql, [10.0], prepare=True).fetchall())

        assert [read() for _ in range(GENERIC)] == [one] * GENERIC
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert read() == two
        reach.con.execute(f"ALTER MODEL {model} ROLLBACK")
        assert read() == one
    finally:
        reader.close()


# -- sqlml.connect ------------------------------------------------------------------------------------


def test_a_kept_parameterized_plan_follows_deploys(reach: Reach) -> None:
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    reader = sqlml.connect(reach.database, autocommit=True)
    sql = ONE_ROW.format(model, "?")
    try:
        assert [_value(reader.execute(sql, [10.0]).fetchall()) for _ in range(3)] == [one] * 3
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert _value(reader.execute(sql, [10.0]).fetchall()) == two
        reach.con.execute("BEGIN")
        reach.con.execute(f"ALTER MODEL {model} ROLLBACK")
        reach.con.execute("ROLLBACK")
        assert _value(reader.execute(sql, [10.0]).fetchall()) == two
        assert len(reach.trail(model)) == 2
    finally:
        reader.close()


# -- PostgreSQL: the per-model functions, another process ----------------------------------------------


@pytest.mark.parametrize("reach", ["postgres"], indirect=True)  # (PostgreSQL's alone)
def test_pg_function_in_a_prepared_statement_follows_deploys(reach: Reach) -> None:
    """A server-side PREPARE over the model's scoring function (plain SQL, no sqlml in the
    client), run until PostgreSQL keeps a generic plan: the deploy replaces the function and
    PostgreSQL plans the statement again."""
    psycopg2 = client_module("psycopg2")
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    schema, name = model.split(".")
    raw = psycopg2.connect(reach.database)
    raw.autocommit = True
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT sqlml.scoring_function_name(%s, %s)::text", [schema, name])
            (function,) = cur.fetchone()
            cur.execute(
                f'PREPARE scored(float8) AS SELECT sqlml."{function}"(x, z)'
                " FROM reach.points WHERE x = $1"
            )

            def read() -> float:
                cur.execute("EXECUTE scored(10)")
                return _value(cur.fetchall())

            assert [read() for _ in range(GENERIC)] == [one] * GENERIC
            reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
            assert read() == two
    finally:
        raw.close()


READER = """
import sys, sqlml
con = sqlml.connect(sys.argv[1], autocommit=True)
sql = sys.argv[2]
for line in sys.stdin:
    print(round(float(con.execute(sql, [10.0]).fetchall()[0][0]), 9), flush=True)
"""


@pytest.mark.parametrize("reach", ["postgres"], indirect=True)  # (PostgreSQL's alone)
def test_a_session_of_another_process_follows_deploys(reach: Reach) -> None:
    """PostgreSQL: a reader in another process keeps its plan and follows the deploy. (A DuckDB
    file is written by one process at a time: its sessions are this process's, tested above.)"""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    args = [sys.executable, "-c", READER, reach.database, ONE_ROW.format(model, "?")]
    with _line_reader(args) as read:
        assert [read() for _ in range(3)] == [one] * 3
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        assert read() == two


@contextlib.contextmanager
def _line_reader(args: list[str]) -> Iterator[Callable[[], float]]:
    """A program in another process that prints its statement's value for each line it reads
    (tests/java/DeployFollow.java, READER): yields a call that asks once; the program must end
    cleanly when its input closes."""
    program = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stdin, stdout = program.stdin, program.stdout
    assert stdin is not None
    assert stdout is not None

    def read() -> float:
        stdin.write("\n")
        stdin.flush()
        return float(stdout.readline())

    try:
        yield read
    finally:
        stdin.close()
        assert program.wait(timeout=60) == 0
        stdout.close()


# -- concurrent deploys --------------------------------------------------------------------------------


def _check_trail(reach: Reach, model: str) -> None:
    """One row per step, each naming the version the step before it deployed, and the last
    row's version is the one that serves: nothing lost, nothing half-applied."""
    rows = reach.trail(model)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert all(r[2] == before[1] for before, r in itertools.pairwise(rows))
    serving = reach.con.execute(
        f"SELECT version FROM ML.VERSIONS(MODEL {model}) WHERE status = 'serving'"
    ).fetchall()
    assert serving == [(rows[-1][1],)]


@pytest.mark.parametrize("reach", ["postgres"], indirect=True)  # (PostgreSQL's alone)
def test_a_deploy_waits_for_a_transaction_holding_the_model(reach: Reach) -> None:
    """PostgreSQL: session A deploys inside an open transaction (the model's lock held until it
    ends); session B's deploy waits for A's COMMIT, then applies on top of it."""
    model = reach.model()
    reach.con.execute(f"CREATE OR REPLACE MODEL {model} OPTIONS ({BAD}) AS {TRAIN}")  # v3
    holder = sqlml.connect(reach.database, autocommit=True)
    waiter = sqlml.connect(reach.database, autocommit=True)
    done: list[errors.Error | None] = []

    def deploy() -> None:
        try:
            waiter.execute(f"ALTER MODEL {model} DEPLOY VERSION 3")
            done.append(None)
        except errors.Error as e:
            done.append(e)

    try:
        holder.execute("BEGIN")
        holder.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        thread = threading.Thread(target=deploy)
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive()  # waiting for the holder's transaction
        assert not done
        holder.execute("COMMIT")
        thread.join(timeout=30)
        assert done == [None]
        assert [r[1:] for r in reach.trail(model)] == [
            (1, None, "create"),
            (2, 1, "deploy"),
            (3, 2, "deploy"),
        ]
        _check_trail(reach, model)
    finally:
        holder.close()
        waiter.close()


def test_deploys_in_two_open_transactions_serialize(reach: Reach) -> None:
    """Both sessions deploy inside open transactions: on PostgreSQL the second waits for the
    first to end; on DuckDB one of them fails with 40001 (at its write or its COMMIT). Either
    way one trail without gaps or two rows claiming one step."""
    model = reach.model()
    reach.con.execute(f"CREATE OR REPLACE MODEL {model} OPTIONS ({BAD}) AS {TRAIN}")  # v3
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def deploy(version: int) -> None:
        con = sqlml.connect(reach.database, autocommit=True)
        try:
            con.execute("BEGIN")
            barrier.wait(timeout=30)
            con.execute(f"ALTER MODEL {model} DEPLOY VERSION {version}")
            time.sleep(0.3)  # both transactions open at once
            con.execute("COMMIT")
            outcomes[version] = "committed"
        except errors.Error as e:
            outcomes[version] = e.sqlstate
            con.execute("ROLLBACK")
        finally:
            con.close()

    threads = [threading.Thread(target=deploy, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == [2, 3]
    assert set(outcomes.values()) <= {"committed", "40001"}
    assert "committed" in outcomes.values()
    if reach.engine == "postgres":
        assert set(outcomes.values()) == {"committed"}  # the second waited, then applied
    else:  # the second write conflicts with the open first one (or with its commit)
        assert sorted(outcomes.values()) == ["40001", "committed"]
    rows = reach.trail(model)
    assert len(rows) == 1 + list(outcomes.values()).count("committed")
    _check_trail(reach, model)


class _Simple:
    """psycopg2 through the gateway (the simple protocol), with psycopg 3's execute()."""

    def __init__(self, port: int) -> None:
        psycopg2 = client_module("psycopg2")
        self.con = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="conformance")
        self.con.autocommit = True

    def execute(self, sql: str) -> Any:
        cursor = self.con.cursor()
        cursor.execute(sql)
        return cursor

    def close(self) -> None:
        self.con.close()


@pytest.mark.parametrize("through", ["connect", "gateway", "gateway-simple"])
def test_sql_prepare_of_an_ml_query_follows_deploys(reach: Reach, through: str) -> None:
    """PREPARE / EXECUTE / DEALLOCATE of an ML query (sqlml/prepared.py): each EXECUTE scores
    with the version that serves then, writes the prediction log, and casts its values to the
    declared types; through sqlml.connect and the gateway (over PostgreSQL the proxy runs them
    in its engine session, on the client's connection), in both protocols."""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    readers = {
        "connect": lambda: sqlml.connect(reach.database, autocommit=True),
        "gateway": reach.gateway,
        "gateway-simple": lambda: _Simple(reach.port),
    }
    reader = readers[through]()
    try:
        reader.execute("PREPARE scored AS " + ONE_ROW.format(model, "$1"))
        reader.execute("PREPARE typed(float8) AS " + ONE_ROW.format(model, "$1"))
        assert _value(reader.execute("EXECUTE scored(10)").fetchall()) == one
        assert _value(reader.execute("EXECUTE typed('10')").fetchall()) == one  # (cast)
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        reach.con.execute(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1)")
        assert _value(reader.execute("EXECUTE scored(10)").fetchall()) == two
        logged = reach.con.execute(
            f"SELECT version, count(*) FROM ML.PREDICTION_LOG(MODEL {model}) GROUP BY version"
        ).fetchall()
        assert [tuple(map(int, r)) for r in logged] == [(2, 1)]  # (the one row, once)
        reader.execute("DEALLOCATE scored")
        with pytest.raises(Exception, match="scored"):
            reader.execute("EXECUTE scored(10)")
        assert _value(reader.execute("EXECUTE typed(10)").fetchall()) == two  # (still kept)
        reader.execute("DEALLOCATE ALL")
        with pytest.raises(Exception, match="typed"):
            reader.execute("EXECUTE typed(10)")
    finally:
        reader.close()


# -- the protocol, message by message (the proxy's books: wire/followed.py) ----------------------------


def _session(reach: Reach) -> tuple[socket.socket, Callable[[type], list[Any]]]:
    from sqlml.wire import protocol as p

    client = socket.create_connection(("127.0.0.1", reach.port), timeout=30)
    client.sendall(p.StartupMessage({"user": "conformance", "database": "shop"}).encode())
    read = message_reader(client)
    read(p.ReadyForQuery)
    return client, read


def _exchange(
    client: socket.socket, read: Callable[[type], list[Any]], *messages: Any
) -> list[Any]:
    """Sends ``messages`` in one packet; every answer up to the ReadyForQuery of the last Sync
    or Query."""
    from sqlml.wire import protocol as p

    client.sendall(b"".join(m.encode() for m in messages))
    ends = sum(isinstance(m, p.Sync | p.Query) for m in messages)
    return [answer for _ in range(ends) for answer in read(p.ReadyForQuery)]


def _kinds(answers: list[Any]) -> list[str]:
    return [type(a).__name__ for a in answers]


def _floats(answers: list[Any]) -> list[float]:
    from sqlml.wire import protocol as p

    return [round(float(a.values[0]), 9) for a in answers if isinstance(a, p.DataRow)]


def test_a_pipeline_sees_the_deploy_and_only_its_own_answers(reach: Reach) -> None:
    """Bind/Execute twice in one batch after a deploy: both score with the new version, and the
    client gets exactly the answers to its own messages (none of the re-Parse's)."""
    from sqlml.wire import protocol as p

    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    client, read = _session(reach)
    run = (p.Bind("", "s", (), (b"10",), ()), p.Execute("", 0))
    with client:
        first = _exchange(client, read, p.Parse("s", ONE_ROW.format(model, "$1")), *run, p.Sync())
        assert _floats(first) == [one]
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        answers = _exchange(client, read, *run, *run, p.Sync())
        assert _floats(answers) == [two, two]
        assert _kinds(answers) == [
            *("BindComplete", "DataRow", "CommandComplete") * 2,
            "ReadyForQuery",
        ]


def test_a_name_reused_for_plain_sql_is_left_alone(reach: Reach) -> None:
    """A statement name that held an ML query and was closed (Close, DEALLOCATE) and parsed
    again as plain SQL is the client's plain statement, deploy or not."""
    from sqlml.wire import protocol as p

    model = reach.model()
    client, read = _session(reach)
    plain = (p.Bind("", "s", (), (b"plain",), ()), p.Execute("", 0), p.Sync())
    with client:
        _exchange(client, read, p.Parse("s", ONE_ROW.format(model, "$1")), p.Sync())
        _exchange(client, read, p.Close("S", "s"), p.Parse("s", "SELECT $1::text"), p.Sync())
        reach.con.execute(f"ALTER MODEL {model} DEPLOY VERSION 2")
        answers = _exchange(client, read, *plain)
        assert [a.values[0] for a in answers if isinstance(a, p.DataRow)] == [b"plain"]
        _exchange(
            client, read, p.Close("S", "s"), p.Parse("s", ONE_ROW.format(model, "$1")), p.Sync()
        )
        _exchange(client, read, p.Query("DEALLOCATE s"))
        _exchange(client, read, p.Parse("s", "SELECT $1::text"), p.Sync())
        reach.con.execute(f"ALTER MODEL {model} ROLLBACK")
        answers = _exchange(client, read, *plain)
        assert [a.values[0] for a in answers if isinstance(a, p.DataRow)] == [b"plain"]


def test_a_prepared_statement_of_a_dropped_model_fails_and_the_session_goes_on(
    reach: Reach,
) -> None:
    """DROP MODEL by another session: the next execution is 42704 (an error of its Bind), and
    the session and the gateway go on."""
    from sqlml.wire import protocol as p

    model = reach.model()
    client, read = _session(reach)
    run = (p.Bind("", "s", (), (b"10",), ()), p.Execute("", 0), p.Sync())
    with client:
        _exchange(client, read, p.Parse("s", ONE_ROW.format(model, "$1")), *run)
        reach.con.execute(f"DROP MODEL {model}")
        answers = _exchange(client, read, *run)
        errors_ = [a for a in answers if isinstance(a, p.ErrorResponse)]
        assert [e.fields.get("C") for e in errors_] == ["42704"]
        assert isinstance(answers[-1], p.ReadyForQuery)
        answers = _exchange(client, read, p.Query("SELECT 41 + 1"))
        assert [a.values[0] for a in answers if isinstance(a, p.DataRow)] == [b"42"]


# -- DuckDB: the model macros views score with, known without reading the catalog each time -------


MAKE_VIEW = """
import sys, sqlml
con = sqlml.connect(sys.argv[1], autocommit=True)
con.execute(
    "CREATE VIEW reach.v AS SELECT x, predicted_y FROM ML.PREDICT(MODEL reach.m, TABLE reach.points)"
)
con.close()
"""


def _file_with_a_model(path: str) -> sqlml.Connection:
    con = sqlml.connect(path, autocommit=True)
    con.execute("CREATE SCHEMA reach")
    con.execute(f"CREATE TABLE reach.points AS {POINTS}")
    for options in (GOOD, BAD):
        con.execute(f"CREATE OR REPLACE MODEL reach.m OPTIONS ({options}) AS {TRAIN}")
    return con


def _view(con: sqlml.Connection) -> float:
    return _value(con.execute("SELECT predicted_y FROM reach.v WHERE x = 10").fetchall())


def test_a_view_made_by_another_connection_after_a_deploy_follows_the_next(
    tmp_path: Path,
) -> None:
    """Connection A deploys (and so learns the file's macros: none), connection B then makes
    a view over the model: A's next deploy still reaches the view."""
    a = _file_with_a_model(str(tmp_path / "a.duckdb"))
    b = sqlml.connect(str(tmp_path / "a.duckdb"), autocommit=True)
    try:
        a.execute("ALTER MODEL reach.m DEPLOY VERSION 2")
        a.execute("ALTER MODEL reach.m ROLLBACK")
        b.execute(
            "CREATE VIEW reach.v AS SELECT x, predicted_y"
            " FROM ML.PREDICT(MODEL reach.m, TABLE reach.points)"
        )
        one = _view(b)
        a.execute("ALTER MODEL reach.m DEPLOY VERSION 2")
        assert _view(b) == _view(a) != one
    finally:
        a.close()
        b.close()


def test_a_view_made_by_another_process_follows_a_deploy(tmp_path: Path) -> None:
    """The view (and its macro) made by another process while this one had the file closed."""
    path = str(tmp_path / "p.duckdb")
    _file_with_a_model(path).close()
    subprocess.run([sys.executable, "-c", MAKE_VIEW, path], check=True, timeout=120)
    con = sqlml.connect(path, autocommit=True)
    try:
        one = _view(con)
        con.execute("ALTER MODEL reach.m DEPLOY VERSION 2")
        assert _view(con) != one
        con.close()
        subprocess.run([sys.executable, "-c", MAKE_VIEW.replace("reach.v", "reach.w"), path],
                       check=True, timeout=120)  # fmt: skip
        con = sqlml.connect(path, autocommit=True)
        con.execute("ALTER MODEL reach.m ROLLBACK")
        assert _view(con) == one
        rows = con.execute("SELECT predicted_y FROM reach.w WHERE x = 10").fetchall()
        assert _value(rows) == one
    finally:
        con.close()


def test_prepared_statements_follow_a_traffic_split(reach: Reach) -> None:
    """SET TRAFFIC and CLEAR TRAFFIC reach a statement prepared through the gateway at its next
    execution, as a deploy does: the rows, and ML.PREDICT's model_version column."""
    model = reach.model()
    one, two = reach.expected(model, 1), reach.expected(model, 2)
    reader = reach.gateway()
    sql = ONE_ROW.format(model, "%s")
    every = f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT x, z FROM reach.points WHERE x = %s))"
    try:

        def read() -> float:
            return _value(reader.execute(sql, [10.0], prepare=True).fetchall())

        def columns() -> list[str]:
            cursor = reader.execute(every, [10.0], prepare=True)
            cursor.fetchall()
            return [c.name for c in cursor.description]

        assert [read() for _ in range(GENERIC)] == [one] * GENERIC
        assert "model_version" not in [columns() for _ in range(GENERIC)][-1]
        reach.con.execute(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 0, VERSION 2 = 100)")
        assert read() == two
        assert columns()[-1] == "model_version"
        reach.con.execute(f"ALTER MODEL {model} CLEAR TRAFFIC")
        assert read() == one
        assert "model_version" not in columns()
    finally:
        reader.close()
