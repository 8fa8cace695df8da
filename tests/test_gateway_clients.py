"""PostgreSQL's semantics over the DuckDB gateway, client by client (issue 12, point 4).

Each test runs a real client against the gateway over DuckDB and checks what PostgreSQL itself
answers: command tags (compared statement by statement with the real PostgreSQL test cluster),
the statements connection pools send to reset a session (psycopg_pool), pgcli's and pgspecial's
own catalog queries (driven through their code, not copied SQL), psql's ``\\dt+``, the names of
unaliased result columns, unconstrained ``numeric`` keeping its digits, and pgJDBC's
DatabaseMetaData (a small Java program, run with Debian's driver jar).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
from conftest import Served, client_module, gateway_parts, serving, unavailable

import sqlml

# what the DuckDB file behind the gateway holds besides the shop tables: objects in public, which
# psql's and pgcli's listings show (they list what the search path sees)
PUBLIC_OBJECTS = (
    "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2))",
    "CREATE TABLE orders (id integer PRIMARY KEY, item integer REFERENCES items (id), n integer)",
    "CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10",
    "CREATE INDEX items_name ON items (name)",
    "CREATE MACRO add_one(x) AS x + 1",
)


@pytest.fixture
def duck(shop_file: str) -> Iterator[Served]:
    """The gateway over a DuckDB file with the shop tables and :data:`PUBLIC_OBJECTS`."""
    from sqlml.wire.server import ServerConfig

    con = sqlml.connect(shop_file, autocommit=True)
    for statement in PUBLIC_OBJECTS:
        con.session.engine.execute(statement)
    con.close()
    with serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port:
        yield Served("duckdb", "tcp", port, shop_file)


def gateway(served: Served) -> Any:
    con = psycopg2.connect(**served.kwargs())
    con.autocommit = True
    return con


# -- command tags ----------------------------------------------------------------------------------

# Statements in order, on a fresh database: each one's tag on the gateway must be PostgreSQL's.
TAGGED = [
    "CREATE TABLE t (id integer PRIMARY KEY, name text)",
    "CREATE TABLE IF NOT EXISTS t (id integer)",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO t VALUES (3, 'c') RETURNING id",
    "UPDATE t SET name = 'z' WHERE id > 1",
    "DELETE FROM t WHERE id = 3",
    "MERGE INTO t USING (VALUES (1), (5)) s(id) ON t.id = s.id"
    " WHEN MATCHED THEN UPDATE SET name = 'm' WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'n')",
    "SELECT * FROM t",
    "SELECT count(*) FROM t",
    "VALUES (1), (2), (3)",
    "WITH x AS (SELECT id FROM t) SELECT * FROM x",
    "CREATE TABLE t2 AS SELECT * FROM t",
    "CREATE TEMP TABLE t3 AS SELECT 1 AS a UNION ALL SELECT 2",
    "CREATE TEMPORARY TABLE t4 (a integer)",
    "CREATE VIEW v AS SELECT * FROM t",
    "CREATE OR REPLACE VIEW v AS SELECT * FROM t WHERE id > 0",
    "CREATE INDEX t_name ON t (name)",
    "CREATE UNIQUE INDEX t_id ON t2 (id)",
    "CREATE SCHEMA s",
    "CREATE SEQUENCE seq",
    "ALTER TABLE t ADD COLUMN extra integer",
    "COMMENT ON TABLE t IS 'a table'",
    "TRUNCATE t2",
    "DROP VIEW v",
    "DROP INDEX t_id",
    "DROP TABLE t2",
    "DROP TABLE IF EXISTS nothing_here",
    "DROP SEQUENCE seq",
    "DROP SCHEMA s",
    "BEGIN",
    "SAVEPOINT sp",
    "RELEASE SAVEPOINT sp",
    "DECLARE c CURSOR FOR SELECT * FROM t",
    "FETCH 1 FROM c",
    "MOVE 1 IN c",
    "MOVE FORWARD 5 IN c",
    "FETCH ALL FROM c",
    "CLOSE c",
    "COMMIT",
    "START TRANSACTION",
    "ROLLBACK",
    "BEGIN",
    "END",
    "SET search_path = public",
    "SHOW search_path",
    "RESET search_path",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SHOW transaction_isolation",
    "RESET ALL",
    "PREPARE ins AS INSERT INTO t (id, name) VALUES ($1, $2)",
    "EXECUTE ins (10, 'p')",
    "PREPARE sel AS SELECT * FROM t WHERE id < $1",
    "EXECUTE sel (5)",
    "PREPARE upd AS UPDATE t SET name = $1",
    "EXECUTE upd ('q')",
    "PREPARE del AS DELETE FROM t WHERE id = $1",
    "EXECUTE del (10)",
    "DEALLOCATE ins",
    "DEALLOCATE PREPARE sel",
    "DEALLOCATE ALL",
    "DISCARD ALL",
    "ANALYZE t",
    "EXPLAIN SELECT 1",
    "DROP TABLE t",
]
COPIED = "COPY (SELECT * FROM generate_series(1, 4)) TO STDOUT"


def tags(con: Any) -> list[str]:
    """The command tag of each statement of :data:`TAGGED`, then of :data:`COPIED`."""
    found = []
    with con.cursor() as cur:
        for statement in TAGGED:
            cur.execute(statement)
            found.append(cur.statusmessage)
        cur.copy_expert(COPIED, io.StringIO())
        found.append(cur.statusmessage)
    return found


def test_command_tags_are_postgresqls(duck: Served, pg_database: str) -> None:
    expected = tags(_autocommit(psycopg2.connect(pg_database)))
    assert expected[2] == "INSERT 0 2"  # (PostgreSQL's own)
    got = tags(gateway(duck))
    assert [(s, g) for s, g in zip([*TAGGED, COPIED], got, strict=True)] == [
        (s, e) for s, e in zip([*TAGGED, COPIED], expected, strict=True)
    ]


def _autocommit(con: Any) -> Any:
    con.autocommit = True
    return con


def test_prepared_statement_errors_are_postgresqls(duck: Served) -> None:
    with gateway(duck).cursor() as cur:  # (psycopg2's ``with con`` would open a transaction)
        for statement in ("EXECUTE nothing (1)", "DEALLOCATE nothing"):
            with pytest.raises(psycopg2.Error) as caught:
                cur.execute(statement)
            assert caught.value.pgcode == "26000"
        cur.execute("BEGIN")
        with pytest.raises(psycopg2.Error) as caught:
            cur.execute("DISCARD ALL")
        assert caught.value.pgcode == "25001"  # (as PostgreSQL: not inside a transaction)
        cur.execute("ROLLBACK")
        cur.execute("SELECT 1")  # the session goes on
        assert cur.fetchall() == [(1,)]


# -- pgcli -----------------------------------------------------------------------------------------


@pytest.fixture
def pgcli(duck: Served) -> Iterator[Any]:
    """pgcli's executor (pgcli.pgexecute.PGExecute, psycopg 3 underneath) on the gateway."""
    pgexecute = client_module("pgcli.pgexecute")
    executor = pgexecute.PGExecute(
        database=duck.dbname, user=duck.user, password=None, host=duck.host, port=duck.port
    )
    yield executor
    executor.conn.close()


def special(executor: Any, command: str) -> tuple[list[str], list[tuple[Any, ...]], str]:
    """A backslash command run the way pgcli runs it (pgspecial's own SQL): headers, rows and
    the status line (psql's footer: \\d's index list)."""
    main = client_module("pgspecial.main")
    results = list(executor.run(command, pgspecial=main.PGSpecial()))
    assert len(results) == 1
    _title, rows, headers, status, _sql, success, is_special = results[0]
    assert (success, is_special) == (True, True)
    return list(headers), [tuple(r) for r in rows], str(status or "")


def test_pgcli_completion_metadata(pgcli: Any) -> None:
    """What pgcli reads at start for its completions, through its own queries."""
    assert {("public", "items"), ("public", "orders"), ("shop", "customers")} <= set(pgcli.tables())
    assert ("public", "cheap") in set(pgcli.views())
    columns = {(c[0], c[1], c[2], c[3]) for c in pgcli.table_columns()}
    assert {
        ("public", "items", "id", "integer"),
        ("public", "items", "price", "numeric"),
    } <= columns
    assert ("public", "cheap", "name", "text") in {tuple(c[:4]) for c in pgcli.view_columns()}
    functions = {(f.schema_name, f.func_name) for f in pgcli.functions()}
    assert ("public", "add_one") in functions
    assert {"public", "shop", "pg_catalog"} <= set(pgcli.schemata())
    assert pgcli.databases() == ["shop"]
    assert list(pgcli.casing()) is not None
    keys = {
        (k.childschema, k.childtable, k.childcolumn, k.parenttable) for k in pgcli.foreignkeys()
    }
    assert ("public", "orders", "item", "items") in keys


def test_pgcli_backslash_commands(pgcli: Any) -> None:
    assert special(pgcli, "\\dt")[:2] == (
        ["Schema", "Name", "Type", "Owner"],
        [("public", "items", "table", "ana"), ("public", "orders", "table", "ana")],
    )
    headers, rows, _ = special(pgcli, "\\dt+ items")
    assert headers == ["Schema", "Name", "Type", "Owner", "Size", "Description"]
    assert rows == [("public", "items", "table", "ana", "0 bytes", None)]
    assert ("public", "cheap", "view", "ana") in special(pgcli, "\\d")[1]
    headers, rows, status = special(pgcli, "\\d items")
    assert headers == ["Column", "Type", "Modifiers"]
    assert rows == [("id", "integer", " not null"), ("name", "text", " not null"),
                    ("price", "numeric(10,2)", "")]  # fmt: skip
    assert '"items_pkey" PRIMARY KEY, btree (id)' in status
    assert ("public", "add_one") in {r[:2] for r in special(pgcli, "\\df")[1]}
    assert {("public", "ana"), ("shop", "ana")} <= set(special(pgcli, "\\dn")[1])
    assert [r[:3] for r in special(pgcli, "\\l")[1]] == [("shop", "ana", "UTF8")]
    assert [r[1] for r in special(pgcli, "\\di")[1]] == ["items_name", "items_pkey", "orders_pkey"]


def test_pgcli_scenario(pgcli: Any) -> None:
    """Create, insert (NULLs too), read back exactly, an error with its SQLSTATE, and on."""
    psycopg = client_module("psycopg")
    run = lambda sql: list(pgcli.run(sql))  # noqa: E731
    assert (
        run("CREATE TABLE notes (id integer, body text, score numeric(6,2))")[0][3]
        == "CREATE TABLE"
    )
    inserted = run("INSERT INTO notes VALUES (1, 'a', 1.25), (2, NULL, NULL)")
    assert inserted[0][3] == "INSERT 0 2"
    rows = run("SELECT * FROM notes ORDER BY id")[0][1]
    assert [tuple(r) for r in rows] == [(1, "a", Decimal("1.25")), (2, None, None)]
    with pytest.raises(psycopg.Error) as caught:
        run("INSERT INTO nowhere VALUES (1)")
    assert caught.value.sqlstate == "42P01"
    assert [tuple(r) for r in run("SELECT count(*) FROM notes")[0][1]] == [(2,)]


# -- psycopg 3 with its pool -----------------------------------------------------------------------

# what a pool sends to hand a connection over clean (pgbouncer's server_reset_query, and the
# statements drivers send to manage a session), each with PostgreSQL's tag
RESET = [
    ("DEALLOCATE ALL", "DEALLOCATE ALL"),
    ("DISCARD ALL", "DISCARD ALL"),
    ("RESET ALL", "RESET"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET"),
]
POOLED = [(1, "a", Decimal("1.50")), (2, None, None), (3, "c", Decimal("-0.25"))]


def _fails_in_transaction(con: Any, read: str) -> str | None:
    """The SQLSTATE of an error inside a transaction that has run a prepared statement (its
    rollback clears psycopg's prepared statements: DEALLOCATE ALL goes out next)."""
    try:
        with con.transaction():
            con.execute(read, [1], prepare=True)
            con.execute("SELECT * FROM missing")
    except client_module("psycopg").Error as e:
        return str(e.sqlstate)
    return None


def test_psycopg_pool_scenario(duck: Served) -> None:
    psycopg = client_module("psycopg")
    psycopg_pool = client_module("psycopg_pool")
    resets: list[list[str]] = []

    def reset(con: Any) -> None:
        resets.append([con.execute(sql).statusmessage for sql, _ in RESET])

    conninfo = psycopg.conninfo.make_conninfo(**duck.kwargs())
    options = {"autocommit": True}
    with psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=1, kwargs=options,
                                     reset=reset, open=True) as pool:  # fmt: skip
        with pool.connection() as con:
            pid = con.info.backend_pid
            con.execute("CREATE TABLE pooled (id integer, name text, amount numeric(6,2))")
            with con.cursor() as cur:
                cur.executemany("INSERT INTO pooled VALUES (%s, %s, %s)", POOLED)
            read = "SELECT * FROM pooled WHERE id > %s ORDER BY id"
            assert con.execute(read, [0], prepare=True).fetchall() == POOLED
            assert _fails_in_transaction(con, read) == "42P01"
            # the rollback made psycopg send DEALLOCATE ALL; its statements are prepared again
            assert con.execute(read, [0], prepare=True).fetchall() == POOLED
            assert con.execute(read, [2], prepare=True).fetchall() == POOLED[2:]
        with pool.connection() as con:  # the same connection, reset by the pool in between
            assert con.info.backend_pid == pid
            assert con.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
            assert con.execute(read, [2], prepare=True).fetchall() == POOLED[2:]
    assert resets[0] == [tag for _, tag in RESET]  # (before the connection was handed out again)


# -- result columns and numbers, as PostgreSQL names and prints them -------------------------------

NAMED = [
    "SELECT count(*) FROM (VALUES (1), (2)) v(x)",
    "SELECT sum(x), max(x), min(x), avg(x), count(x) FROM (VALUES (1), (2)) v(x)",
    "SELECT round(0.87243::numeric, 4), round(2.5), abs(-1), lower('A'), length('ab')",
    "SELECT 1 + 1, 'a', 1, true, NULL, -x FROM (VALUES (1)) v(x)",
    "SELECT coalesce(NULL, 1), CASE WHEN true THEN 1 END, greatest(1, 2), nullif(1, 2)",
    "SELECT x::numeric, '1'::numeric, x::text, CAST(x AS bigint) FROM (VALUES (1)) v(x)",
    "SELECT (SELECT 1 AS q), EXISTS (SELECT 1), ARRAY[1, 2]",
    "SELECT row_number() OVER (), x FROM (VALUES (1)) v(x)",
    'SELECT count(*) AS n, x AS "Mixed" FROM (VALUES (1)) v(x) GROUP BY x',
    "VALUES (1, 'a')",
]
# unconstrained numeric keeps its digits; numeric(p,s) its scale (compared as printed text)
PRINTED = [
    "SELECT round(0.87243::numeric, 4)",
    "SELECT 0.87243::numeric, 1.25::numeric, numeric '1.5', CAST(2.5 AS numeric)",
    "SELECT round(123.456789::numeric, 2), round(0.5::numeric), 10::numeric",
    "SELECT 1.5::numeric(10,2), round(2.345::numeric(10,3), 2), 7::numeric(5,0)",
    "SELECT round(avg(x)::numeric, 3) FROM (VALUES (1), (2), (4)) v(x)",
]


AS_SENT = psycopg2.extensions.new_type((700, 701, 1700), "AS_SENT", lambda value, _: value)


def names_and_text(con: Any) -> tuple[list[list[str]], list[list[str]]]:
    """The column names of :data:`NAMED` and the printed values of :data:`PRINTED` (the text
    on the wire, as psql prints it: numbers are not read into Python's float or Decimal)."""
    names, printed = [], []
    with con.cursor() as cur:
        psycopg2.extensions.register_type(AS_SENT, cur)
        for query in NAMED:
            cur.execute(query)
            names.append([d.name for d in cur.description])
        for query in PRINTED:
            cur.execute(query)
            printed.append([str(v) for v in cur.fetchone()])
    return names, printed


def test_result_names_and_numbers_are_postgresqls(duck: Served, pg_database: str) -> None:
    """psycopg2's cursor.description and printed values: the gateway's match PostgreSQL's."""
    expected = names_and_text(_autocommit(psycopg2.connect(pg_database)))
    assert (expected[0][0], expected[1][0]) == (["count"], ["0.8724"])  # (PostgreSQL's own)
    assert names_and_text(gateway(duck)) == expected


def cursor_names(*dsn: str, **kwargs: Any) -> list[list[str]]:
    """The column names of each NAMED query read through a server-side cursor: psycopg2's named
    cursor (DECLARE, then FETCH) and psycopg 3's (DECLARE, then a Describe of the portal)."""
    psycopg = client_module("psycopg")
    names = []
    con = psycopg2.connect(*dsn, **kwargs)
    for number, query in enumerate(NAMED):
        with con.cursor(f"named_{number}") as cur:
            cur.execute(query)
            cur.fetchall()
            names.append([d.name for d in cur.description])
    con.rollback()
    con.close()
    with psycopg.connect(*dsn, **kwargs) as con3:
        for number, query in enumerate(NAMED):
            with con3.cursor(f"named3_{number}") as cur3:
                cur3.execute(query)
                cur3.fetchall()
                names.append([d.name for d in cur3.description or ()])
    return names


def test_cursor_column_names_are_postgresqls(duck: Served, pg_database: str) -> None:
    """Rows FETCHed from a cursor are named as PostgreSQL names them (count, not DuckDB's
    count_star() of the table the gateway keeps the cursor's rows in)."""
    expected = cursor_names(pg_database)
    assert expected[0] == expected[len(NAMED)] == ["count"]
    assert cursor_names(**duck.kwargs()) == expected


def executed_names(con: Any) -> list[list[str]]:
    """The column names of each NAMED query PREPAREd in SQL, then EXECUTEd."""
    names = []
    with con.cursor() as cur:
        for number, query in enumerate(NAMED):
            cur.execute(f"PREPARE named_{number} AS {query}")
            cur.execute(f"EXECUTE named_{number}")
            names.append([d.name for d in cur.description])
            cur.execute(f"DEALLOCATE named_{number}")
    return names


def test_execute_column_names_are_postgresqls(duck: Served, pg_database: str) -> None:
    """EXECUTE of a statement PREPAREd in SQL names its columns as PostgreSQL does (count, not
    DuckDB's count_star(): they were named after the EXECUTE's text), an ML query's too."""
    expected = executed_names(_autocommit(psycopg2.connect(pg_database)))
    assert expected[0] == ["count"]
    con = gateway(duck)
    assert executed_names(con) == expected
    with con.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE MODEL shop.named OPTIONS (model_type='linear_reg',"
            " input_label_cols=['spend']) AS SELECT tenure, spend FROM shop.customers"
            " WHERE spend IS NOT NULL"
        )
        cur.execute(
            "PREPARE scored(int) AS SELECT count(*), max(predicted_spend) FROM"
            " ML.PREDICT(MODEL shop.named, (SELECT * FROM shop.new_customers WHERE id < $1))"
        )
        cur.execute("EXECUTE scored(1000000)")
        assert [d.name for d in cur.description] == ["count", "max"]
        assert cur.fetchone()[0] == 200


def test_numeric_columns(duck: Served) -> None:
    """An unconstrained numeric column keeps every digit; numeric(p,s) stays exact."""
    with gateway(duck).cursor() as cur:
        cur.execute("CREATE TABLE amounts (a numeric, b numeric(12,4), c numeric[])")
        cur.execute("INSERT INTO amounts VALUES (%s, %s, %s)", [0.123456789, "1.5", [2.25]])
        cur.execute("SELECT a, b, c, round(a::numeric, 4) FROM amounts")
        assert [str(v) for v in cur.fetchone()] == ["0.123456789", "1.5000", "[2.25]", "0.1235"]


def psql(served: Served, *arguments: str) -> list[str]:
    """psql's unaligned output lines (``|`` between fields)."""
    binary = shutil.which("psql")
    if binary is None:
        unavailable("psql is not installed")
    command = [binary, "-X", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", *arguments]
    done = subprocess.run(command, env=served.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_psql_sizes_names_and_numbers(duck: Served) -> None:
    """psql's \\dt+ (pg_table_size and friends: 0 bytes, docs/gateway.md), its \\di+ and \\l+,
    and a query's column names and digits as psql prints them."""
    listed = psql(duck, "-c", "\\dt+")
    assert listed[1] == "Schema|Name|Type|Owner|Persistence|Access method|Size|Description"
    assert "public|items|table|ana|permanent|heap|0 bytes|" in listed
    assert "public|items_pkey|index|ana|items|permanent|btree|0 bytes|" in psql(duck, "-c", "\\di+")
    assert psql(duck, "-c", "\\l+")[2].startswith("shop|ana|UTF8|")
    query = "SELECT count(*), round(0.87243::numeric, 4), 1 + 1 FROM shop.customers"
    assert psql(duck, "-c", query)[:2] == ["count|round|?column?", "800|0.8724|2"]


def test_psql_evaluate_as_in_the_tutorials(duck: Served) -> None:
    """The issue's own example: a metric rounded through numeric, as psql prints it, and a
    count over ML.PREDICT named ``count``."""
    model = (
        "CREATE OR REPLACE MODEL shop.spend OPTIONS (model_type='linear_reg',"
        " input_label_cols=['spend']) AS SELECT tenure, spend FROM shop.customers"
        " WHERE spend IS NOT NULL"
    )
    metric = psql(
        duck, "-t", "-c", model, "-c", "SELECT r2_score FROM ML.EVALUATE(MODEL shop.spend)"
    )
    # PostgreSQL's round(numeric, 4): half away from zero
    rounded = str(Decimal(metric[-1]).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
    lines = psql(duck, "-c", "SELECT round(r2_score::numeric, 4) FROM"
                 " ML.EVALUATE(MODEL shop.spend)", "-c", "SELECT count(*) FROM"
                 " ML.PREDICT(MODEL shop.spend, TABLE shop.new_customers)")  # fmt: skip
    assert lines == ["round", rounded, "(1 row)", "count", "200", "(1 row)"]


# -- pgJDBC's DatabaseMetaData (DBeaver, DataGrip) -------------------------------------------------

JAVA_PROGRAM = Path(__file__).parent / "java" / "GatewayMetadata.java"
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian's libpostgresql-jdbc-java (.ci/run)
# what the program prints that PostgreSQL and the gateway must agree on (not the schema list:
# PostgreSQL has pg_toast and the like)
JDBC_FACTS = ("insert", "row", "error", "count", "product", "table", "column", "key", "index",
              "imported")  # fmt: skip


def jdbc(url: str) -> list[str]:
    """The lines :data:`JAVA_PROGRAM` prints against ``url`` (java's single-file launch)."""
    java = shutil.which("java")
    if java is None or not Path(JDBC_JAR).exists():
        unavailable("a JDK and libpostgresql-jdbc-java are not installed")
    command = [java, "-cp", JDBC_JAR, str(JAVA_PROGRAM), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return [line for line in done.stdout.splitlines() if line.split(" ")[0] in JDBC_FACTS]


def test_jdbc_scenario_and_metadata_are_postgresqls(duck: Served, pg_database: str) -> None:
    target = urlsplit(pg_database)
    with psycopg2.connect(pg_database) as con, con.cursor() as cur:
        for statement in PUBLIC_OBJECTS[:-1]:  # (not DuckDB's CREATE MACRO)
            cur.execute(statement)
    expected = jdbc(f"jdbc:postgresql://{target.netloc.split('@')[1]}{target.path}"
                    f"?user={target.username}&sslmode=disable")  # fmt: skip
    assert "imported items|id|orders|item" in expected  # (PostgreSQL's own)
    got = jdbc(f"jdbc:postgresql://{duck.host}:{duck.port}/{duck.dbname}?user={duck.user}"
               "&sslmode=disable")  # fmt: skip
    assert got == expected


def test_create_or_replace_model_tag_is_sqlml_runs(duck: Served) -> None:
    """CREATE OR REPLACE MODEL ends with the same tag on the gateway as in ``sqlml run``
    (which prints the DB-API cursor's statusmessage)."""
    model = (
        "CREATE OR REPLACE MODEL shop.churn OPTIONS (model_type='logistic_reg',"
        " input_label_cols=['churned']) AS SELECT tenure, spend, churned FROM shop.customers"
    )
    with gateway(duck).cursor() as cur:
        cur.execute(model)
        over_the_wire = cur.statusmessage
    direct = sqlml.connect(duck.database, autocommit=True)
    try:
        assert direct.execute(model).statusmessage == over_the_wire == "CREATE MODEL"
    finally:
        direct.close()


# -- Grafana's PostgreSQL data source ---------------------------------------------------------------

GRAFANA = [
    # its table picker: the search path's base tables
    'SELECT quote_ident(table_name) AS "table" FROM information_schema.tables'
    " WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog',"
    " '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal')"
    " AND table_type = 'BASE TABLE' AND quote_ident(table_schema) IN ("
    "SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM"
    " generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1),"
    " array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i,"
    " string_to_array(current_setting('search_path'), ',') s) ORDER BY 1",
    # its column picker
    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
    " AND table_name = 'items' ORDER BY ordinal_position",
    "SELECT quote_ident('Mixed Case'), quote_ident('plain'), quote_ident('select')",
]


def grafana(con: Any) -> list[list[tuple[Any, ...]]]:
    with con.cursor() as cur:
        found = []
        for query in GRAFANA:
            cur.execute(query)
            found.append(cur.fetchall())
        return found


def test_grafana_catalog_queries_are_postgresqls(duck: Served, pg_database: str) -> None:
    with psycopg2.connect(pg_database) as con, con.cursor() as cur:
        for statement in PUBLIC_OBJECTS[:-1]:  # (not DuckDB's CREATE MACRO)
            cur.execute(statement)
    expected = grafana(_autocommit(psycopg2.connect(pg_database)))
    assert expected[0] == [("items",), ("orders",)]  # (PostgreSQL's own)
    assert grafana(gateway(duck)) == expected


# -- SQLAlchemy's inspector as Superset calls it ---------------------------------------------------


def test_sqlalchemy_inspector_as_superset_calls_it(duck: Served) -> None:
    sa = client_module("sqlalchemy")
    engine = sa.create_engine(f"postgresql+psycopg2://{duck.user}@{duck.host}:{duck.port}/shop")
    try:
        inspector = sa.inspect(engine)
        assert inspector.get_table_names() == ["items", "orders"]
        assert inspector.get_view_names() == ["cheap"]
        assert inspector.get_pk_constraint("items")["constrained_columns"] == ["id"]
        keys = inspector.get_foreign_keys("orders")
        assert [(k["constrained_columns"], k["referred_table"]) for k in keys] == [
            (["item"], "items")
        ]
        assert inspector.get_table_comment("items") == {"text": None}
    finally:
        engine.dispose()


def test_sqlalchemy_get_indexes_are_postgresqls(duck: Served, pg_database: str) -> None:
    """pg_index.indkey and indoption are int2vector: text ('1 2') on the wire, as PostgreSQL
    sends them, which SQLAlchemy splits (not int2[], a list)."""
    with psycopg2.connect(pg_database) as con, con.cursor() as cur:
        for statement in PUBLIC_OBJECTS[:-1]:  # (not DuckDB's CREATE MACRO)
            cur.execute(statement)
    target = urlsplit(pg_database)
    expected = _indexes(f"postgresql+psycopg2://{target.netloc}{target.path}")
    assert expected == [("items_name", ["name"], False)]  # (PostgreSQL's own)
    assert _indexes(f"postgresql+psycopg2://{duck.user}@{duck.host}:{duck.port}/shop") == expected


def _indexes(url: str) -> list[tuple[Any, ...]]:
    sa = client_module("sqlalchemy")
    engine = sa.create_engine(url)
    try:
        indexes = sa.inspect(engine).get_indexes("items")
        return [(i["name"], i["column_names"], i["unique"]) for i in indexes]
    finally:
        engine.dispose()
