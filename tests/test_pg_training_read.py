"""The PostgreSQL extension's training read (server.read_chunked): every row of a query, read
inside the backend as chunks of null-free arrays, equals what psycopg2 reads from the same query
over the wire. The cases are the ones a null-free encoding can get wrong: NULLs in every column
type, at a chunk's first and last row; empty and non-ASCII text; more than one chunk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

# (SQL type, a value expression over i, 1-based row number) - NULL where i % 7 = 0 or i % 50 = 1
CASES = {
    "b": ("boolean", "i % 3 = 0"),
    "s2": ("smallint", "(i % 300 - 150)::smallint"),
    "i4": ("integer", "i * 7 - 1000"),
    "i8": ("bigint", "i::bigint * 100000000000"),
    "f4": ("real", "(i / 3.0)::real"),
    "f8": ("double precision", "i / 7.0 - 3"),
    "n": ("numeric", "(i / 4.0)::numeric(12, 2)"),
    "t": ("text", "CASE WHEN i % 5 = 0 THEN '' ELSE 'v' || (i % 11)::text END"),
    "u": ("text", "CASE WHEN i % 4 = 0 THEN 'ünï ' || i::text ELSE 'x' || i::text END"),
    "vc": ("varchar(12)", "('w' || i::text)::varchar(12)"),
    "d": ("date", "DATE '2020-01-01' + i"),
}


@pytest.fixture
def pg(pg_database: str) -> Iterator[Any]:
    """A psycopg2 connection to a database with the cases' table and a function that returns
    server.read_chunked's table as JSON (in chunks of 1,000 rows: three of them)."""
    connection = psycopg2.connect(pg_database)
    connection.autocommit = True
    with connection.cursor() as cursor:
        columns = ", ".join(
            f"CASE WHEN i % 7 = 0 OR i % 50 = 1 THEN NULL ELSE ({expr})::{sql_type} END AS {name}"
            for name, (sql_type, expr) in CASES.items()
        )
        cursor.execute(
            f"CREATE TABLE read_cases AS SELECT i, {columns} FROM generate_series(1, 2500) i"
        )
        cursor.execute(
            "CREATE FUNCTION read_json(q text) RETURNS text LANGUAGE plpython3u AS $$\n"
            "import json, sys\n"
            "from sqlml.postgres import server\n"
            "server.CHUNK_ROWS = 1000\n"
            "table = server.PlpyEngine(plpy).read_chunked(q)\n"
            "after = plpy.execute(\"SELECT current_setting('work_mem') AS w\")[0]['w']\n"
            "got = {c: table.column(c).to_pylist() for c in table.column_names}\n"
            "return json.dumps({'rows': got, 'work_mem': after}, default=str)\n$$"
        )
        cursor.execute(STREAMED_JSON)
    yield connection
    connection.close()


# A streamed read past its budget (1 byte: the copy and its pages), its passes after the first
# (from the spool), a read not asked to keep its rows, a first read given up after one batch (no spool: the copy read again), and
# which of this session's temporary tables stand after each.
STREAMED_JSON = """
CREATE FUNCTION streamed_json(q text) RETURNS text LANGUAGE plpython3u AS $$
import json
from sqlml.postgres import server
engine = server.PlpyEngine(plpy)
def rows(batches):
    import pyarrow as pa
    table = pa.Table.from_batches(list(batches))
    return {c: table.column(c).to_pylist() for c in table.column_names}
def tables():
    return plpy.execute(
        "SELECT to_regclass('pg_temp.__sqlml_stream') IS NOT NULL AS copy,"
        " to_regclass('pg_temp.__sqlml_spool') IS NOT NULL AS spool")[0]
out = {"first": rows(engine.read_batches(q, 1000, 1, keep=True)), "after_first": tables()}
out["again"] = [rows(engine.read_batches(q, 1000, 1, again=True)) for _ in range(2)]
out["unkept"] = rows(engine.read_batches(q, 1000, 1))
out["after_unkept"] = tables()
reader = engine.read_batches(q, 1000, 1, keep=True)
next(reader)
reader.close()
out["given_up"] = tables()
out["after_given_up"] = rows(engine.read_batches(q, 1000, 1, again=True))
engine.release_reads()
out["released"] = tables()
return json.dumps(out, default=str)
$$"""


def test_training_read_equals_the_wire(pg: Any) -> None:
    query = "SELECT * FROM read_cases"
    with pg.cursor() as cursor:
        cursor.execute("SELECT sqlml.version()")  # loads sqlml into this backend
        cursor.execute("SET search_path = public")
        cursor.execute("SELECT read_json(%s)", [query])
        answer = json.loads(cursor.fetchone()[0])
        assert answer["work_mem"] == "4MB"  # raised for the read (to 256MB), then set back
    _assert_equals_the_wire(pg, query, answer["rows"])


def test_a_streamed_read_and_its_spooled_passes_equal_the_wire(pg: Any) -> None:
    query = "SELECT * FROM read_cases"
    with pg.cursor() as cursor:
        cursor.execute("SELECT sqlml.version()")
        cursor.execute("SET search_path = public")
        cursor.execute("SELECT streamed_json(%s)", [query])
        answer = json.loads(cursor.fetchone()[0])
    _assert_equals_the_wire(pg, query, answer["first"])
    # the first pass spooled its batches and dropped the copy; the passes after it read the
    # spool: the same rows in the same order, every value of every type as it was
    assert answer["after_first"] == {"copy": False, "spool": True}
    assert answer["again"] == [answer["first"], answer["first"]]
    # a read that was not asked to keep its rows (one pass follows: linear_reg's) has no spool
    assert answer["unkept"] == answer["first"]
    assert answer["after_unkept"] == {"copy": True, "spool": False}
    # a first read given up midway left its copy, read again in full
    assert answer["given_up"]["copy"] is True
    _assert_equals_the_wire(pg, query, answer["after_given_up"])
    assert answer["released"] == {"copy": False, "spool": False}


def _assert_equals_the_wire(pg: Any, query: str, got: dict[str, list[Any]]) -> None:
    with pg.cursor() as cursor:
        cursor.execute(query + " ORDER BY i")
        names = [d.name for d in cursor.description]
        rows = cursor.fetchall()
    order = sorted(range(len(got["i"])), key=lambda k: got["i"][k])
    assert len(order) == 2500
    for j, name in enumerate(names):
        column = [got[name][k] for k in order]
        expected = [r[j] for r in rows]
        if name == "f4":  # float4 widened to double against its shortest text, parsed as double
            assert [v is None for v in column] == [v is None for v in expected]
            pairs = [(a, b) for a, b in zip(column, expected, strict=True) if a is not None]
            assert all(a == pytest.approx(b, rel=1e-6) for a, b in pairs)
        elif name == "n":
            expected = [None if v is None else float(v) for v in expected]
            assert column == expected, name
        elif name == "d":
            expected = [None if v is None else str(v) for v in expected]
            assert column == expected, name
        else:
            assert column == expected, name
