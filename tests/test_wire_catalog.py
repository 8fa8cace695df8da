"""The wire gateway's PostgreSQL catalog over DuckDB (sqlml.wire.catalog), checked against a real
PostgreSQL 15 holding the same schema.

Every catalog and session query that real clients sent on connect (tests/data/
client-catalog-queries.md, read here block by block) must run through Catalog.rewrite on DuckDB,
and the ones that drive a client's behaviour must give PostgreSQL's rows: psql's \\dt and \\d,
SQLAlchemy's reflection, asyncpg's type introspection, ADBC's type and column maps, pgbench's
partition probe, JDBC's getTables and dbt's relation listing and docs catalog. OIDs of user objects
differ between the two databases, so rows are compared through names.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pgcluster
import psycopg2
import pytest
import sqlglot

from sqlml import errors
from sqlml.grammar.lexer import split as split_statements
from sqlml.wire import catalog_sql, catalog_types
from sqlml.wire.catalog import Catalog

# a copy of ../shared/reference/client-catalog-queries.md (outside the repository, not in CI)
REFERENCE = Path(__file__).resolve().parent / "data" / "client-catalog-queries.md"

# The same schema in both databases (this SQL runs unchanged on PostgreSQL 15 and DuckDB), plus
# the objects the captured sessions had: the enum type mood, pgbench's table, dbt's schema.
SCHEMA = [
    "CREATE SCHEMA sales",
    "CREATE SCHEMA dbt_demo",
    "CREATE TYPE mood AS ENUM ('ok', 'sad')",
    "CREATE TABLE t_demo (id integer PRIMARY KEY, big bigint NOT NULL, score double precision,"
    " name text, code varchar(20), active boolean, born date, seen timestamp,"
    " price numeric(10,2), d integer DEFAULT 42)",
    "COMMENT ON TABLE t_demo IS 'demo table'",
    "CREATE TABLE sales.orders (order_id bigint PRIMARY KEY, customer text NOT NULL,"
    " amount numeric(10,2), placed timestamp, ok boolean)",
    "CREATE VIEW v_demo AS SELECT id, name FROM t_demo",
    "CREATE TABLE pgbench_accounts (aid integer PRIMARY KEY, bid integer, abalance integer,"
    " filler text)",
    "CREATE TABLE dbt_demo.train_data (x double precision, y integer NOT NULL)",
    "CREATE VIEW dbt_demo.stg_view AS SELECT x FROM dbt_demo.train_data",
]

# DuckDB keeps no length for varchar(n): its VARCHAR is PostgreSQL's text (a documented difference)
_VARCHAR = re.compile(r"character varying\(\d+\)|character varying")


def normalize(value: Any) -> Any:
    if isinstance(value, str):
        return _VARCHAR.sub("text", value)
    if isinstance(value, Decimal | float) and value == int(value):
        return int(value)
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    return value


def rows(result: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(normalize(v) for v in row) for row in result]


# -- the two databases ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(pg_server: str) -> Iterator[Any]:
    """A PostgreSQL 15 database with SCHEMA, and a psycopg2 connection to it (autocommit)."""
    name = f"sqlml_wire_catalog_{os.getpid()}"
    dsn = pgcluster.create_database(pg_server, name)
    con = psycopg2.connect(dsn)
    con.autocommit = True
    with con.cursor() as cur:
        for statement in SCHEMA:
            cur.execute(statement)
    yield con
    con.close()
    pgcluster.drop_database(pg_server, name)


@pytest.fixture(scope="module")
def duck_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "demo.duckdb"
    con = duckdb.connect(str(path))
    for statement in SCHEMA:
        con.execute(statement).fetchall()
    con.close()
    return path


@pytest.fixture(scope="module")
def duck(duck_path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, Catalog]]:
    con = duckdb.connect(str(duck_path))
    yield con, Catalog(con, database="postgres", user="postgres")
    con.close()


def pg_query(pg: Any, sql: str) -> list[tuple[Any, ...]]:
    with pg.cursor() as cur:
        cur.execute(sql)
        return rows(cur.fetchall()) if cur.description else []


def duck_query(
    duck: tuple[duckdb.DuckDBPyConnection, Catalog], sql: str, params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    con, catalog = duck
    result: list[tuple[Any, ...]] = []
    for statement in catalog.rewrite(sql):
        cursor = con.execute(statement, params) if params else con.execute(statement)
        result = rows(cursor.fetchall()) if cursor.description else []
    return result


def both(pg: Any, duck: Any, sql: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return pg_query(pg, sql), duck_query(duck, sql)


# -- the captured queries ---------------------------------------------------------------------------


def captured() -> list[tuple[str, str]]:
    """(section-n, sql) for every ```sql block of the reference file, in order."""
    text = REFERENCE.read_text()
    blocks, section, n = [], "", 0
    for found in re.finditer(r"^## (\S+)|^```sql\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        if found.group(1):
            section, n = found.group(1), 0
        else:
            n += 1
            blocks.append((f"{section}-{n}", found.group(2)))
    return blocks


# Parameters of the captured extended-protocol queries (per block), as a client would bind them
PARAMETERS: dict[str, list[Any]] = {
    "asyncpg_introspect-3": [[23, 1007]],
    "asyncpg_introspect-4": ["off"],
    "sqla_psycopg3-7": ["int4"],
}
_ENDS = re.compile(r"\s*(COMMIT|END|ROLLBACK|RELEASE)\b", re.IGNORECASE)
_TRANSACTION = re.compile(r"\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


def test_reference_file_is_there() -> None:
    assert len(captured()) > 50, REFERENCE


@pytest.mark.parametrize("block", captured(), ids=[name for name, _ in captured()])
def test_every_captured_query_runs(
    block: tuple[str, str], duck: tuple[duckdb.DuckDBPyConnection, Catalog]
) -> None:
    """Each section runs in order on one connection, as the client sent it; a block that ends a
    transaction (the capture dropped repeated BEGINs) gets one opened first, and a cursor block
    gets its DECLARE."""
    name, sql = block
    con = duck[0]
    oid = _t_demo_oid(duck)
    if _ENDS.match(sql):
        _run(duck, "BEGIN")
    if name.startswith("psycopg3_named") and re.match(r"\s*(FETCH|CLOSE)", sql):
        _run(duck, 'DECLARE "sc" CURSOR FOR select * from generate_series(1,10)')
    try:
        _run(duck, sql.replace("'16384'", f"'{oid}'"), PARAMETERS.get(name))
    finally:
        _run(duck, "ROLLBACK") if _in_transaction(con) else None


def _run(
    duck: tuple[duckdb.DuckDBPyConnection, Catalog], sql: str, params: list[Any] | None = None
) -> None:
    duck_query(duck, sql, params)


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("BEGIN").fetchall()
    except duckdb.TransactionException:
        return True
    con.execute("ROLLBACK").fetchall()
    return False


def _t_demo_oid(duck: tuple[duckdb.DuckDBPyConnection, Catalog]) -> int:
    found = duck_query(duck, "SELECT 't_demo'::regclass::oid")
    return int(found[0][0])


def test_captured_sql_blocks_are_plain_postgresql(pg: Any) -> None:
    """The adaptations above keep the captured queries valid PostgreSQL (asyncpg's and
    psycopg 3's parameters aside)."""
    oid = pg_query(pg, "SELECT 't_demo'::regclass::oid")[0][0]
    for name, sql in captured():
        if name in PARAMETERS or _ENDS.match(sql) or name.startswith("psycopg3_named"):
            continue
        pg_query(pg, sql.replace("'16384'", f"'{oid}'"))
        pg.rollback() if not pg.autocommit else None


# -- what drives clients: rows as PostgreSQL gives them -------------------------------------------------


def _block(name: str) -> str:
    return dict(captured())[name]


def test_psql_list_tables_and_relations(pg: Any, duck: Any) -> None:
    expected, got = both(pg, duck, _block("psql-2"))  # \d
    assert got == expected
    assert ("public", "v_demo", "view", "postgres") in got
    expected, got = both(pg, duck, _block("psql-3"))  # \dt
    assert got == expected
    assert ("public", "t_demo", "table", "postgres") in got


def test_psql_describe_table(pg: Any, duck: Any) -> None:
    """\\d t_demo: find the table, then its flags, columns and indexes."""
    pg_oid = pg_query(pg, _block("psql-4"))[0][0]
    duck_found = duck_query(duck, _block("psql-4"))
    assert [r[1:] for r in duck_found] == [("public", "t_demo")]
    duck_oid = duck_found[0][0]
    for name in ("psql-5", "psql-6", "psql-7", "psql-8", "psql-9", "psql-11", "psql-12"):
        sql = _block(name)
        expected = pg_query(pg, sql.replace("'16384'", f"'{pg_oid}'"))
        got = duck_query(duck, sql.replace("'16384'", f"'{duck_oid}'"))
        assert got == expected, name


SQLA_HAS_TABLE = (
    "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace"
    " ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace"
    " WHERE pg_catalog.pg_class.relname = '{table}' AND pg_catalog.pg_class.relkind ="
    " ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid)"
    " AND pg_catalog.pg_namespace.nspname != 'pg_catalog'"
)
SQLA_TABLE_NAMES = (
    "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace"
    " ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace"
    " WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p']) AND"
    " pg_catalog.pg_class.relpersistence != 't' AND pg_catalog.pg_namespace.nspname = '{schema}'"
)
SQLA_COLUMNS = """SELECT pg_catalog.pg_attribute.attname AS name, pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, pg_catalog.pg_attribute.atttypmod) AS format_type, (SELECT pg_catalog.pg_get_expr(pg_catalog.pg_attrdef.adbin, pg_catalog.pg_attrdef.adrelid) AS pg_get_expr_1
FROM pg_catalog.pg_attrdef
WHERE pg_catalog.pg_attrdef.adrelid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_attrdef.adnum = pg_catalog.pg_attribute.attnum AND pg_catalog.pg_attribute.atthasdef) AS "default", pg_catalog.pg_attribute.attnotnull AS not_null, pg_catalog.pg_class.relname AS table_name, pg_catalog.pg_description.description AS comment, pg_catalog.pg_attribute.attgenerated AS generated, (SELECT json_build_object('always', pg_catalog.pg_attribute.attidentity = 'a', 'start', pg_catalog.pg_sequence.seqstart, 'increment', pg_catalog.pg_sequence.seqincrement, 'minvalue', pg_catalog.pg_sequence.seqmin, 'maxvalue', pg_catalog.pg_sequence.seqmax, 'cache', pg_catalog.pg_sequence.seqcache, 'cycle', pg_catalog.pg_sequence.seqcycle) AS json_build_object_1
FROM pg_catalog.pg_sequence
WHERE pg_catalog.pg_attribute.attidentity != '' AND pg_catalog.pg_sequence.seqrelid = CAST(CAST(pg_catalog.pg_get_serial_sequence(CAST(CAST(pg_catalog.pg_attribute.attrelid AS REGCLASS) AS TEXT), pg_catalog.pg_attribute.attname) AS REGCLASS) AS OID)) AS identity_options, CASE WHEN (pg_catalog.pg_attribute.attcollation != 0 AND (SELECT pg_catalog.pg_type.typcollation
FROM pg_catalog.pg_type
WHERE pg_catalog.pg_type.oid = pg_catalog.pg_attribute.atttypid) != pg_catalog.pg_attribute.attcollation) THEN (SELECT pg_catalog.pg_collation.collname
FROM pg_catalog.pg_collation
WHERE pg_catalog.pg_collation.oid = pg_catalog.pg_attribute.attcollation) ELSE NULL END AS collation
FROM pg_catalog.pg_class LEFT OUTER JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_attribute.attnum > 0 AND NOT pg_catalog.pg_attribute.attisdropped LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_attribute.attrelid AND pg_catalog.pg_description.objsubid = pg_catalog.pg_attribute.attnum JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace
WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog' AND pg_catalog.pg_class.relname IN ('t_demo', 'v_demo') ORDER BY pg_catalog.pg_class.relname, pg_catalog.pg_attribute.attnum"""
SQLA_PK_OID = (
    "SELECT pg_catalog.pg_class.oid, pg_catalog.pg_class.relname FROM pg_catalog.pg_class"
    " JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace"
    " WHERE pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND"
    " pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname"
    " != 'pg_catalog' AND pg_catalog.pg_class.relname IN ('t_demo')"
)
SQLA_PK = """SELECT attr.conrelid, array_agg(CAST(attr.attname AS TEXT) ORDER BY attr.ord) AS cols, attr.conname, min(attr.description) AS description, min(attr.indnkeyatts) AS indnkeyatts, bool_and(attr.indnullsnotdistinct) AS indnullsnotdistinct
FROM (SELECT con.conrelid AS conrelid, con.conname AS conname, con.description AS description, con.ord AS ord, con.indnkeyatts AS indnkeyatts, con.indnullsnotdistinct AS indnullsnotdistinct, pg_catalog.pg_attribute.attname AS attname
FROM pg_catalog.pg_attribute JOIN (SELECT pg_catalog.pg_constraint.conrelid AS conrelid, pg_catalog.pg_constraint.conname AS conname, unnest(pg_catalog.pg_index.indkey) AS attnum, generate_subscripts(pg_catalog.pg_index.indkey, 1) AS ord, pg_catalog.pg_index.indnkeyatts AS indnkeyatts, pg_catalog.pg_index.indnullsnotdistinct AS indnullsnotdistinct, pg_catalog.pg_description.description AS description
FROM pg_catalog.pg_constraint JOIN pg_catalog.pg_index ON pg_catalog.pg_constraint.conindid = pg_catalog.pg_index.indexrelid LEFT OUTER JOIN pg_catalog.pg_description ON pg_catalog.pg_description.objoid = pg_catalog.pg_constraint.oid AND pg_catalog.pg_description.classoid = CAST('pg_catalog.pg_constraint' AS REGCLASS)
WHERE pg_catalog.pg_constraint.contype = 'p' AND pg_catalog.pg_constraint.conrelid IN ({oid})) AS con ON pg_catalog.pg_attribute.attnum = con.attnum AND pg_catalog.pg_attribute.attrelid = con.conrelid
WHERE con.conrelid IN ({oid})) AS attr GROUP BY attr.conrelid, attr.conname ORDER BY attr.conrelid, attr.conname"""
SQLA_SCHEMAS = (
    "SELECT pg_catalog.pg_namespace.nspname FROM pg_catalog.pg_namespace WHERE"
    " (pg_catalog.pg_namespace.nspname NOT LIKE 'pg/_' || '%' ESCAPE '/')"
    " ORDER BY pg_catalog.pg_namespace.nspname"
)


def test_sqlalchemy_reflection(pg: Any, duck: Any) -> None:
    """SQLAlchemy 2.0's queries (captured from its PostgreSQL dialect, parameters inlined)."""
    for table in ("t_demo", "v_demo", "orders", "nope"):  # has_table: sales.orders is not visible
        expected, got = both(pg, duck, SQLA_HAS_TABLE.format(table=table))
        assert got == expected, table
    for schema in ("public", "sales", "dbt_demo"):  # get_table_names(schema=...)
        expected, got = both(pg, duck, SQLA_TABLE_NAMES.format(schema=schema))
        assert sorted(got) == sorted(expected), schema
    expected, got = both(pg, duck, _block("sqla_psycopg2-8"))  # get_table_names()
    assert sorted(got) == sorted(expected)
    expected, got = both(pg, duck, SQLA_COLUMNS)  # get_columns
    assert got == expected
    expected, got = both(pg, duck, SQLA_SCHEMAS)  # get_schema_names
    assert got == expected


def test_sqlalchemy_primary_key(pg: Any, duck: Any) -> None:
    (pg_oid, _), (duck_oid, _) = pg_query(pg, SQLA_PK_OID)[0], duck_query(duck, SQLA_PK_OID)[0]
    expected = pg_query(pg, SQLA_PK.format(oid=pg_oid))
    got = duck_query(duck, SQLA_PK.format(oid=duck_oid))
    assert (
        [r[1:] for r in got]
        == [r[1:] for r in expected]
        == [(("id",), "t_demo_pkey", None, 1, False)]
    )


def test_sqlalchemy_session_queries(pg: Any, duck: Any) -> None:
    for sql in (
        "select current_schema()",
        "show transaction isolation level",
        "show standard_conforming_strings",
        _block("sqla_psycopg2-2"),  # the hstore probe: none
    ):
        expected, got = both(pg, duck, sql)
        assert got == expected, sql
    assert duck_query(duck, "select pg_catalog.version()")[0][0].startswith("PostgreSQL 15.")


def test_sqlalchemy_psycopg3_type_info(pg: Any, duck: Any) -> None:
    sql = _block("sqla_psycopg3-7")
    for name in ("int4", "text", "numeric", "timestamp", "bool", "float8", "hstore"):
        expected = pg_query(pg, sql.replace("$1", f"'{name}'"))
        assert duck_query(duck, sql, [name]) == expected, name


def test_asyncpg_type_introspection(pg: Any, duck: Any) -> None:
    """asyncpg introspects the types it has no codec for: here an enum and an int4 array."""
    sql = _block("asyncpg_introspect-3")
    pg_mood = pg_query(pg, "SELECT 'mood'::regtype::oid")[0][0]
    duck_mood = duck_query(duck, "SELECT to_regtype('mood')")[0][0]
    expected = pg_query(pg, sql.replace("$1::oid[]", f"ARRAY[{pg_mood}, 1007]::oid[]"))
    got = duck_query(duck, sql, [[duck_mood, 1007]])

    def by_name(result: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # (ns, name, kind, elemdelim, depth, basetype_name, elemtype_name, range_subtype_name)
        return sorted((r[1], r[2], r[3], r[6], r[10], r[11], r[12], r[13]) for r in result)

    assert by_name(got) == by_name(expected)
    assert {r[2] for r in got} == {"mood", "_int4", "int4"}


def test_adbc_type_and_column_maps(pg: Any, duck: Any) -> None:
    """ADBC keys its decoders on typreceive: the built-in types must be PostgreSQL's rows."""
    builtin = {t.oid for t in catalog_types.BUILTIN}
    expected, got = both(pg, duck, _block("adbc-3"))
    assert sorted(r for r in got if r[0] in builtin) == sorted(
        r for r in expected if r[0] in builtin
    )
    attributes = (
        "SELECT c.relname, a.attname, a.atttypid FROM ({adbc}) a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('public', 'sales', 'dbt_demo') AND c.relkind IN ('r', 'v')"
        " ORDER BY 1, 2"
    ).format(adbc=_block("adbc-2"))
    expected, got = both(pg, duck, attributes)
    code_varchar = ("t_demo", "code", 1043)  # DuckDB's VARCHAR is text (25)
    assert got == [("t_demo", "code", 25) if r == code_varchar else r for r in expected]


def test_pgbench_partition_probe(pg: Any, duck: Any) -> None:
    expected, got = both(pg, duck, _block("pgbench_simple-1"))
    assert got == expected == [(2, None, 0)]


def test_jdbc_get_tables(pg: Any, duck: Any) -> None:
    expected, got = both(pg, duck, _block("jdbc-4"))
    assert got == expected
    assert ("t_demo", "TABLE", "demo table") in [r[2:5] for r in got]


def test_dbt_relations_and_columns(pg: Any, duck: Any) -> None:
    listing = _block("dbt_pg_build2-3")
    expected, got = both(pg, duck, listing)
    assert sorted(got) == sorted(expected)
    assert len(got) == 2
    docs = _block("dbt_pg_docs-5").replace("upper('inc_model')", "upper('train_data')")
    expected, got = both(pg, duck, docs)
    assert got == expected
    assert len(got) == 3
    columns = _block("dbt_pg_build2-7").replace("inc_model__dbt_tmp073738427707", "t_demo")
    expected, got = both(pg, duck, columns)
    code = ("code", "text", 20, None, None)  # varchar(20): DuckDB keeps no length
    assert got == [("code", "text", None, None, None) if r == code else r for r in expected]
    expected, got = both(pg, duck, _block("dbt_pg_build2-2"))
    assert sorted(got) == sorted(expected)


def test_information_schema(pg: Any, duck: Any) -> None:
    for sql in (
        "SELECT table_schema, table_name, table_type FROM information_schema.tables"
        " WHERE table_schema IN ('public', 'sales', 'dbt_demo') ORDER BY 1, 2",
        "SELECT table_name, column_name, ordinal_position, is_nullable, data_type, udt_name,"
        " numeric_precision, numeric_scale, column_default FROM information_schema.columns"
        " WHERE table_schema = 'sales' ORDER BY 1, 3",
        "SELECT schema_name FROM information_schema.schemata ORDER BY 1",
    ):
        expected, got = both(pg, duck, sql)
        assert got == expected, sql


def test_catalog_views_have_postgresql_columns(pg: Any, duck: Any) -> None:
    for name in catalog_sql.CATALOGS:
        sql = f"SELECT * FROM {name if '.' in name else 'pg_catalog.' + name} LIMIT 0"
        with pg.cursor() as cur:
            cur.execute(sql)
            expected = [c.name for c in cur.description]
        con, catalog = duck
        cursor = con.execute(catalog.rewrite(sql)[0])
        cursor.fetchall()
        assert [c[0] for c in cursor.description] == expected, name


def test_builtin_types_are_postgresqls(pg: Any, duck: Any) -> None:
    """The built-in rows of pg_type, every column, and format_type of each, as PostgreSQL has
    them (this also checks the array rule of catalog_types)."""
    sql = (
        "SELECT t.*, format_type(t.oid, NULL) FROM pg_catalog.pg_type t"
        " WHERE t.typnamespace = 11 AND t.oid IN ({oids}) ORDER BY t.oid"
    ).format(oids=", ".join(str(t.oid) for t in catalog_types.BUILTIN))
    expected, got = both(pg, duck, sql)
    assert len(got) == len(catalog_types.BUILTIN)
    assert got == expected


def test_column_type_oids_and_typmods(pg: Any, duck: Any) -> None:
    """atttypid is PostgreSQL's OID of each column type; format_type as PostgreSQL prints it."""
    sql = (
        "SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),"
        " a.attnotnull, a.atthasdef FROM pg_attribute a"
        " WHERE a.attrelid = 'public.t_demo'::regclass AND a.attnum > 0 ORDER BY a.attnum"
    )
    expected, got = both(pg, duck, sql)
    code = ("code", 1043, 24, "text", False, False)  # varchar(20): DuckDB keeps no length
    assert got == [("code", 25, -1, "text", False, False) if r == code else r for r in expected]


def test_regclass_and_regtype(pg: Any, duck: Any) -> None:
    for sql in (
        "SELECT 'pg_class'::regclass::oid, 'pg_catalog.pg_rewrite'::regclass::oid",
        "SELECT 't_demo'::regclass::text, 'sales.orders'::regclass::text",
        "SELECT 23::regtype::text, 1007::regtype, 'integer'::regtype::oid, to_regtype('nope')",
        "SELECT to_regclass('nope'), 'public'::regnamespace::oid",
        "SELECT c.oid::regclass FROM pg_class c WHERE c.relname = 'orders'",
    ):
        expected, got = both(pg, duck, sql)
        assert got == expected, sql


# -- settings, transactions, cursors ------------------------------------------------------------------


def test_set_and_show_round_trip(pg: Any, duck: Any) -> None:
    catalog = duck[1]
    statements = [
        "SET extra_float_digits = 3",
        "SET application_name = 'PostgreSQL JDBC Driver'",
        "SET SESSION statement_timeout TO 5000",
        "SET DateStyle = 'ISO, DMY'",
        "SET search_path TO sales, public",
    ]
    for statement in statements:
        duck_query(duck, statement)
        pg_query(pg, statement)
    try:
        for name in ("extra_float_digits", "application_name", "statement_timeout", "DateStyle"):
            expected, got = both(pg, duck, f"SHOW {name}")
            assert got == expected, name
            expected, got = both(pg, duck, f"SELECT current_setting('{name}')")
            assert got == expected, name
        assert catalog.settings()["extra_float_digits"] == "3"
        assert catalog.settings()["application_name"] == "PostgreSQL JDBC Driver"
        expected, got = both(pg, duck, "SELECT current_schemas(false), current_schema()")
        assert got == expected
        expected, got = both(pg, duck, _block("sqla_psycopg2-8"))  # sales now visible
        assert sorted(got) == sorted(expected)
    finally:
        for statement in ("RESET extra_float_digits", "RESET ALL"):
            duck_query(duck, statement)
            pg_query(pg, statement)
    assert duck_query(duck, "SHOW extra_float_digits") == [("1",)]
    assert duck_query(duck, "SHOW search_path") == pg_query(pg, "SHOW search_path")


def test_settings_report_postgresql_15() -> None:
    con = duckdb.connect()
    catalog = Catalog(con, database="db", user="alice")
    settings = catalog.settings()
    assert settings["server_version"].startswith("15.")
    assert settings["server_version_num"].startswith("15")
    assert settings["session_authorization"] == "alice"
    for name in ("client_encoding", "DateStyle", "integer_datetimes", "TimeZone"):
        assert settings[name]
    assert catalog.rewrite("SET threads = 1") == ["SET threads = 1"]  # DuckDB's own setting
    with pytest.raises(errors.Error) as raised:
        catalog.rewrite("SET server_version = '16'")
    assert raised.value.sqlstate == "22023"
    version = con.execute(catalog.rewrite("SELECT version()")[0]).fetchall()[0][0]
    assert version.startswith("PostgreSQL 15.")
    assert "sqlml" in version
    assert "DuckDB" in version
    assert con.execute(
        catalog.rewrite("SELECT current_user, current_database()")[0]
    ).fetchall() == [("alice", "db")]
    con.close()


def test_transactions_savepoints_and_cursors() -> None:
    con = duckdb.connect()
    catalog = Catalog(con, database="db", user="alice")

    def run(sql: str) -> list[tuple[Any, ...]]:
        return duck_query((con, catalog), sql)

    run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    run("SAVEPOINT a")
    run("RELEASE SAVEPOINT a")
    run('DECLARE "c1" CURSOR FOR SELECT * FROM range(5) r(x) ORDER BY x')
    assert run('FETCH FORWARD 2 FROM "c1"') == [(0,), (1,)]
    assert run('FETCH NEXT FROM "c1"') == [(2,)]
    assert run('FETCH ALL FROM "c1"') == [(3,), (4,)]
    run('CLOSE "c1"')
    with pytest.raises(errors.Error) as raised:
        catalog.rewrite("ROLLBACK TO SAVEPOINT a")
    assert raised.value.sqlstate == "0A000"
    run("END")
    run("START TRANSACTION READ ONLY")
    run("ABORT")
    con.close()


def test_objects_created_in_a_rolled_back_transaction_come_back() -> None:
    con = duckdb.connect()
    catalog = Catalog(con, database="db", user="alice")
    run = lambda sql: duck_query((con, catalog), sql)  # noqa: E731
    run("BEGIN")
    run("SELECT count(*) FROM pg_catalog.pg_class")
    run("ROLLBACK")
    assert run("SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'public'") == [(1,)]
    con.close()


def test_split_statements() -> None:
    sql = "SELECT ';' AS a; -- c;\nSELECT $$;$$; /* ; */ SELECT \"x;\" FROM t;;  "
    assert split_statements(sql) == [
        "SELECT ';' AS a",
        "-- c;\nSELECT $$;$$",
        '/* ; */ SELECT "x;" FROM t',
    ]
    assert split_statements("  -- only a comment\n") == []
    con = duckdb.connect()
    catalog = Catalog(con, database="db", user="u")
    assert catalog.rewrite("SET jit = off;\n SELECT 1; SHOW jit") == [
        catalog.rewrite("SET jit = off")[0],
        "SELECT 1",
        "SELECT 'off' AS \"jit\"",
    ]
    con.close()


# -- the fast path and the database file --------------------------------------------------------------

ORDINARY = [
    "SELECT * FROM t WHERE x = 1",
    "INSERT INTO t VALUES (1, 'a')",
    "select id, sum(amount) from orders group by 1 order by 2 desc limit 10",
    "BEGIN",
    "COMMIT",
]


def test_ordinary_statements_come_back_unchanged_and_fast() -> None:
    con = duckdb.connect()
    catalog = Catalog(con, database="db", user="u")
    for sql in ORDINARY:
        assert catalog.rewrite(sql) == [sql]
    statement = ORDINARY[0]

    def per_call(function: Any, n: int) -> float:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                function(statement)
            samples.append((time.perf_counter() - start) / n)
        return statistics.median(samples)

    rewrite = per_call(catalog.rewrite, 2000)
    parse = per_call(lambda s: sqlglot.parse_one(s, read="postgres"), 50)
    assert rewrite < parse / 4, (rewrite, parse)  # no parse happened (a parse is ~100 us)
    assert rewrite < 100e-6, rewrite  # the target is < 20 us; generous for a busy machine
    con.close()


def test_preparing_writes_nothing_to_the_database_file(tmp_path: Path) -> None:
    path = str(tmp_path / "untouched.duckdb")
    con = duckdb.connect(path)
    for statement in SCHEMA:
        con.execute(statement).fetchall()
    con.close()

    def inventory() -> list[tuple[Any, ...]]:
        con = duckdb.connect(path)
        found = con.execute(
            "SELECT 'table', table_name FROM duckdb_tables() UNION ALL"
            " SELECT 'view', view_name FROM duckdb_views() WHERE NOT internal UNION ALL"
            " SELECT 'function', function_name FROM duckdb_functions() WHERE NOT internal"
            " UNION ALL SELECT 'schema', schema_name FROM duckdb_schemas() UNION ALL"
            " SELECT 'type', type_name FROM duckdb_types() WHERE NOT internal ORDER BY 1, 2"
        ).fetchall()
        con.close()
        return found

    before = inventory()
    con = duckdb.connect(path)
    catalog = Catalog(con, database="db", user="u")
    for name, sql in captured():
        clients = ("psql", "jdbc", "dbt", "sqla", "adbc")
        if name.startswith(clients) and "$1" not in sql and not _TRANSACTION.match(sql):
            duck_query((con, catalog), sql.replace("'16384'", "'1'"))
    other = duckdb.connect(path)  # sqlml's own connections do not see the TEMP objects
    assert other.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'sqlml%'"
    ).fetchall() == [(0,)]
    other.close()
    con.close()
    assert inventory() == before


def test_column_types_agree_with_the_wire_encoding() -> None:
    """pg_attribute.atttypid is the type a result column of that DuckDB type is sent as
    (sqlml.wire.types), with two known exceptions: DuckDB's default Arrow output gives UUID and
    JSON columns as plain strings, which go out as text, where the catalog keeps PostgreSQL's
    uuid (2950) and json (114) for them, as the wire does when the Arrow type says so."""
    from sqlml.wire import types

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (a BOOLEAN, b TINYINT, c SMALLINT, d INTEGER, e BIGINT, f HUGEINT,"
        " g UTINYINT, h USMALLINT, i UINTEGER, j UBIGINT, k FLOAT, l DOUBLE, m DECIMAL(10,2),"
        " n VARCHAR, o BLOB, p DATE, q TIME, r TIMETZ, s TIMESTAMP, t TIMESTAMP_S,"
        " u TIMESTAMP_MS, v TIMESTAMP_NS, w TIMESTAMPTZ, x INTERVAL, y UUID, z JSON, aa BIT,"
        " ab INTEGER[], ac VARCHAR[], ad STRUCT(a INT), ae MAP(VARCHAR, INT), ag DOUBLE[3],"
        " ah UHUGEINT, ai TIME_NS, aj STRUCT(a INT)[], ak DATE[])"
    ).fetchall()
    catalog = Catalog(con, database="db", user="u")
    sql = "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0"
    declared = dict(duck_query((con, catalog), sql))
    schema = con.sql("SELECT * FROM t").to_arrow_table().schema
    sent = {field.name: types.wire_field(field).oid for field in schema}
    differ = {name: (declared[name], sent[name]) for name in sent if declared[name] != sent[name]}
    assert differ == {"y": (2950, 25), "z": (114, 25)}
    con.close()


def test_relations_agree_with_pg_attribute() -> None:
    """Catalog.relations (what parameter type inference reads, from duckdb_columns() itself)
    gives each column pg_attribute's type, but an enum's (text there); temporary relations come
    first, as pg_temp does in PostgreSQL's search path, and schemas go by PostgreSQL's names."""
    con = duckdb.connect()
    con.execute("CREATE TYPE feel AS ENUM ('ok', 'sad')").fetchall()
    con.execute(
        "CREATE TABLE t (a BOOLEAN, b TINYINT, c HUGEINT, d UINTEGER, e DECIMAL(10,2),"
        " f VARCHAR, g BLOB, h TIMESTAMPTZ, i INTERVAL, j UUID, k JSON, l INTEGER[],"
        " m VARCHAR[][], n DECIMAL(5,1)[], o STRUCT(a INT), p MAP(VARCHAR, INT), q feel,"
        " r DOUBLE[3], s TIME)"
    ).fetchall()
    con.execute("CREATE SCHEMA s2").fetchall()
    con.execute("CREATE TABLE s2.t (x INTEGER)").fetchall()
    con.execute("CREATE TEMP TABLE t (y DATE)").fetchall()
    catalog = Catalog(con, database="db", user="u")
    found, path = catalog.relations({"t"})
    assert [(r.schema, r.name) for r in found] == [("pg_temp_1", "t"), ("public", "t"), ("s2", "t")]
    assert path == ["pg_temp_1", "u", "public"]
    sql = "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'public.t'::regclass"
    declared = dict(duck_query((con, catalog), sql + " AND attnum > 0 ORDER BY attnum"))
    assert dict(found[1].columns) == {**declared, "q": 25}
    assert declared["q"] != 25  # the enum's own type
    assert found[0].columns == (("y", 1082),)
    con.close()


def test_preparing_is_lazy_and_idempotent() -> None:
    """A new session creates only its identity macros; the catalog objects come with the first
    statement that needs them; a second Catalog on the same connection works the same."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER)").fetchall()
    count = "SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'sqlml%'"
    first = Catalog(con, database="db", user="u")
    assert con.execute(count).fetchall() == [(2,)]  # sqlml_database(), sqlml_user()
    query = "SELECT relname FROM pg_class WHERE relkind = 'r' AND pg_table_is_visible(oid)"
    assert ("t",) in duck_query((con, first), query)
    second = Catalog(con, database="db", user="v")
    assert ("t",) in duck_query((con, second), query)
    assert duck_query((con, second), "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [
        ("v",)
    ]
    con.close()
