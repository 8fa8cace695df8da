"""COPY, notices and internal errors through sqlml serve: real clients (psql's \\copy, psycopg2's
copy_expert, pgbench, ADBC) against the gateway on each engine and transport, values checked
against sqlml.connect on the same database (an independent path); the sans-IO session driven
with bytes for the message flows (simple and extended protocol, CopyFail, bad rows, XX000)."""

from __future__ import annotations

import csv
import glob
import io
import math
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pytest
from conftest import Served, client_module, message_reader, serving, unavailable

import sqlml
from sqlml.engines.base import Result
from sqlml.wire import protocol as p
from sqlml.wire import session as wire_session
from sqlml.wire.backends import DuckDBBackend
from sqlml.wire.copy_statement import parse_copy
from sqlml.wire.server import ServerConfig
from sqlml.wire.session import Session, SessionConfig

MODEL = (
    "CREATE MODEL shop.churn OPTIONS (model_type='logistic_reg', input_label_cols=['churned'])"
    " AS SELECT tenure, spend, plan, churned FROM shop.customers"
)
PREDICT = (
    "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers)"
    " ORDER BY id"
)
CUSTOMERS = "SELECT id, tenure, spend, plan, promo FROM shop.customers ORDER BY id"
CUSTOMERS_DDL = "(id BIGINT, tenure BIGINT, spend DOUBLE PRECISION, plan TEXT, promo BOOLEAN)"


def direct(served: Served, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read by sqlml.connect on the database behind the gateway."""
    connection = sqlml.connect(served.database, autocommit=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def _same(got: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Rows equal, NaN equal to NaN (spend has NULLs that DuckDB files keep as NaN)."""
    for a, b in zip(got, expected, strict=True):
        floats = isinstance(a, float) and isinstance(b, float)
        if not (a == b or (floats and math.isnan(a) and math.isnan(b))):
            return False
    return True


def _from_text(value: str | None, kind: type) -> Any:
    """A PostgreSQL text value (csv or text COPY) as the Python value sqlml.connect gives."""
    if value is None:
        return None
    if kind is bool:
        return value == "t"
    return kind(value)


# -- psql's \copy ---------------------------------------------------------------------------------


def _psql(served: Served, *commands: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        unavailable("psql is not installed")
    argv = [psql, served.url, "-X", "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        argv += ["-c", command]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize(
    ("options", "null"),
    [("WITH (FORMAT csv, HEADER)", ""), ("", "\\N")],
    ids=["csv", "text"],
)
def test_psql_copy_out_and_in(served: Served, tmp_path: Path, options: str, null: str) -> None:
    """\\copy (query) TO file, then \\copy table FROM that file: the file holds what
    sqlml.connect reads, and the copied table equals the original."""
    path = tmp_path / "customers.out"
    done = _psql(served, f"\\copy ({CUSTOMERS}) TO '{path}' {options}")
    assert "COPY 800" in done.stdout
    expected = direct(served, CUSTOMERS)
    with path.open(newline="") as file:
        if "csv" in options:
            lines = list(csv.reader(file))[1:]
        else:
            lines = [line.rstrip("\n").split("\t") for line in file]
    kinds = (int, int, float, str, bool)
    parsed = [
        tuple(_from_text(None if v == null else v, k) for v, k in zip(line, kinds, strict=True))
        for line in lines
    ]
    assert len(parsed) == 800
    assert all(_same(a, b) for a, b in zip(parsed, expected, strict=True))
    done = _psql(
        served,
        f"CREATE TABLE shop.copied {CUSTOMERS_DDL}",
        f"\\copy shop.copied FROM '{path}' {options}",
    )
    assert "COPY 800" in done.stdout
    copied = direct(served, CUSTOMERS.replace("shop.customers", "shop.copied"))
    assert all(_same(a, b) for a, b in zip(copied, expected, strict=True))


# -- psycopg2's copy_expert -----------------------------------------------------------------------


@pytest.fixture
def pg2(served: Served) -> Iterator[Any]:
    connection = psycopg2.connect(**served.kwargs())
    connection.autocommit = True
    yield connection
    connection.close()


def test_psycopg2_copy_expert_out_of_an_ml_query(served: Served, pg2: Any) -> None:
    with pg2.cursor() as cur:
        cur.execute(MODEL)
        buffer = io.StringIO()
        cur.copy_expert(f"COPY ({PREDICT}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
        assert cur.rowcount == 200
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows[0] == ["id", "predicted_churned"]
    got = [(int(i), churned == "t") for i, churned in rows[1:]]
    assert got == direct(served, PREDICT)


def test_psycopg2_copy_expert_in_is_all_or_nothing(served: Served, pg2: Any) -> None:
    with pg2.cursor() as cur:
        cur.execute("CREATE TABLE shop.scores (id INTEGER, name TEXT, score DOUBLE PRECISION)")
        good = "1\tone\t0.5\n2\t\\N\t-1e-3\n3\tthree\\ttabbed\tNaN\n"
        cur.copy_expert("COPY shop.scores FROM STDIN", io.StringIO(good))
        assert cur.rowcount == 3
        with pytest.raises(psycopg2.Error) as raised:  # a bad value on line 3
            cur.copy_expert(
                "COPY shop.scores FROM STDIN", io.StringIO("4\ta\t1\n5\tb\t2\nx\tc\t3\n")
            )
        assert raised.value.pgcode == "22P02"
        with pytest.raises(psycopg2.Error) as raised:  # the client gives up: CopyFail
            cur.copy_expert("COPY shop.scores FROM STDIN", _FailingReader("4\ta\t1\n"))
        assert raised.value.pgcode == "57014"
        cur.copy_expert(
            "COPY shop.scores (score, id) FROM STDIN WITH (FORMAT csv, HEADER match)",
            io.StringIO('score,id\n"2.5",10\n,11\n'),
        )
    rows = direct(served, "SELECT id, name, score FROM shop.scores ORDER BY id")
    assert [r[:2] for r in rows] == [
        (1, "one"),
        (2, None),
        (3, "three\ttabbed"),
        (10, None),
        (11, None),
    ]
    assert [rows[0][2], rows[1][2], rows[3][2], rows[4][2]] == [0.5, -1e-3, 2.5, None]
    assert math.isnan(rows[2][2])


def test_psycopg3_copy_rows_both_ways(served: Served) -> None:
    """psycopg 3 reads COPY TO a row per CopyData message (rows()) and writes rows."""
    psycopg = client_module("psycopg")
    query = "SELECT id, plan, spend FROM shop.customers ORDER BY id LIMIT 50"
    with psycopg.connect(**served.kwargs(), autocommit=True) as connection:
        cur = connection.cursor()
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int8", "text", "float8"])
            rows = list(copy.rows())
        cur.execute("CREATE TABLE shop.written (id INTEGER, plan TEXT, spend DOUBLE PRECISION)")
        with cur.copy("COPY shop.written FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    expected = direct(served, query)
    assert all(_same(a, b) for a, b in zip(rows, expected, strict=True))
    written = direct(served, query.replace("shop.customers", "shop.written"))
    assert all(_same(a, b) for a, b in zip(written, expected, strict=True))


class _FailingReader(io.StringIO):
    """A file that breaks after its first read: psycopg2 answers with CopyFail."""

    def read(self, size: int | None = -1) -> str:
        if self.tell():
            raise OSError("the disk went away")
        return super().read(size)


# -- pgbench --------------------------------------------------------------------------------------


def _pgbench() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if found is None:
        unavailable("pgbench is not installed (postgresql-15)")
    return found


def _bench(served: Served, *args: str) -> tuple[int, int, int]:
    """Runs pgbench; the transactions it processed, the ones that failed and the ones it
    retried (0 unless --max-tries is given)."""
    done = subprocess.run(
        [_pgbench(), *args],
        env=served.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    assert processed is not None, done.stdout
    assert failed is not None, done.stdout
    retried = re.search(r"number of transactions retried: (\d+)", done.stdout)
    return int(processed.group(1)), int(failed.group(1)), int(retried.group(1)) if retried else 0


def test_pgbench_initializes_with_copy_and_runs(served: Served) -> None:
    """pgbench -i creates its tables (DROP of several tables, WITH (fillfactor)) and loads
    100000 accounts with COPY FROM STDIN; then the select-only script in each query mode with
    two clients, and the TPC-B-like script, run without a failed transaction."""
    done = subprocess.run(
        [_pgbench(), "-i", "-s", "1"],
        env=served.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert direct(served, "SELECT count(*), sum(aid) FROM pgbench_accounts") == [
        (100000, 100000 * 100001 // 2)
    ]
    for mode in ("simple", "extended", "prepared"):
        processed, failed, _ = _bench(served, "-S", "-M", mode, "-c", "2", "-T", "3")
        assert processed > 0
        assert failed == 0
    processed, failed, _ = _bench(served, "-c", "1", "-T", "3")
    assert processed > 0
    assert failed == 0
    history = direct(served, "SELECT count(*) FROM pgbench_history")
    assert history[0][0] >= processed


def test_pgbench_tpcb_with_concurrent_writers(served: Served) -> None:
    """Two clients of the TPC-B-like script update the same branch row: PostgreSQL makes one
    wait; DuckDB's optimistic concurrency fails one with a write-write conflict, which the
    gateway reports as a serialization failure (40001), so that pgbench retries it."""
    subprocess.run(
        [_pgbench(), "-i", "-s", "1"],
        env=served.env(),
        capture_output=True,
        timeout=180,
        check=True,
    )
    processed, failed, retried = _bench(served, "-c", "2", "-T", "3", "--max-tries", "50")
    assert processed > 0
    assert failed == 0
    if served.engine == "duckdb":
        assert retried > 0  # conflicts happened, and pgbench retried them as 40001


# -- ADBC -----------------------------------------------------------------------------------------


def test_adbc_reads_tables_and_ml_and_ingests(served: Served) -> None:
    """ADBC reads with COPY ... TO STDOUT (FORMAT binary) and ingests with COPY FROM STDIN
    (FORMAT binary)."""
    adbc = client_module("adbc_driver_postgresql.dbapi")
    with adbc.connect(served.url) as connection, connection.cursor() as cur:
        cur.execute(CUSTOMERS)
        customers = cur.fetch_arrow_table()
        cur.execute(MODEL)
        cur.execute(PREDICT)
        predictions = cur.fetch_arrow_table()
        ingested = pa.table({"id": [1, 2, 3], "label": ["a", None, "c"], "x": [0.5, None, 2.0]})
        assert cur.adbc_ingest("ingested", ingested, mode="create", db_schema_name="shop") == 3
        connection.commit()
    expected = direct(served, CUSTOMERS)
    assert customers.num_rows == 800
    got = list(zip(*(customers.column(i).to_pylist() for i in range(5)), strict=True))
    assert all(_same(a, b) for a, b in zip(got, expected, strict=True))
    assert [tuple(r.values()) for r in predictions.to_pylist()] == direct(served, PREDICT)
    assert direct(served, "SELECT id, label, x FROM shop.ingested ORDER BY id") == [
        (1, "a", 0.5),
        (2, None, None),
        (3, "c", 2.0),
    ]


# -- notices --------------------------------------------------------------------------------------


def test_create_model_progress_reaches_psycopg2(served: Served, pg2: Any) -> None:
    with pg2.cursor() as cur:
        cur.execute(MODEL)
    assert len(pg2.notices) > 0
    assert all(notice.startswith("NOTICE:  ") for notice in pg2.notices)


class _GatedBackend(DuckDBBackend):
    """A DuckDB backend whose first progress message waits (in the training) until the test
    has read that notice from the socket: it cannot pass unless notices go out while the
    statement runs."""

    seen = threading.Event()
    released: list[bool] = []  # per message: whether the test had read it (else a timeout)

    def _progress(self, message: str) -> None:
        super()._progress(message)
        self.released.append(self.seen.wait(timeout=20))


def test_notices_go_out_while_create_model_runs(shop_file: str) -> None:
    gate = _GatedBackend.seen
    gate.clear()
    _GatedBackend.released.clear()
    gated = lambda db, user: _GatedBackend(shop_file, db, user)  # noqa: E731
    with (
        serving(ServerConfig(port=0), gated) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as client,
    ):
        read = message_reader(client)
        client.sendall(p.StartupMessage({"user": "ana", "database": "shop"}).encode())
        read(p.ReadyForQuery)
        client.sendall(p.Query(MODEL).encode())
        before = read(p.NoticeResponse)
        gate.set()  # the training goes on only now
        after = read(p.ReadyForQuery)
    assert _GatedBackend.released[0]  # the first notice was read while the training waited
    assert not any(isinstance(m, p.CommandComplete) for m in before)
    assert isinstance(before[-1], p.NoticeResponse)
    assert before[-1].fields["C"] == "00000"
    assert p.CommandComplete("CREATE MODEL") in after


# -- the sans-IO session --------------------------------------------------------------------------


def _session(shop_file: str, *, file_access: bool = True) -> Session:
    def open_backend(db: str, user: str) -> DuckDBBackend:
        return DuckDBBackend(shop_file, db, user, file_access=file_access)

    session = Session(SessionConfig(), open_backend, 7, 42)
    _exchange(session, p.StartupMessage({"user": "analyst", "database": "shop"}))
    return session


def _exchange(session: Session, *messages: p._Message | bytes) -> list[Any]:
    data = b"".join(m if isinstance(m, bytes) else m.encode() for m in messages)
    reader = p.BackendReader()
    reader.feed(b"".join(o for o in session.receive(data) if isinstance(o, bytes)))
    return list(iter(reader.next, None))


def _kinds(messages: list[Any]) -> list[str]:
    return [type(m).__name__ for m in messages]


def _count(session: Session, table: str = "shop.t") -> int:
    rows = [
        m
        for m in _exchange(session, p.Query(f"SELECT count(*) FROM {table}"))
        if isinstance(m, p.DataRow)
    ]
    return int(rows[0].values[0] or b"")


def test_copy_in_suspends_the_rest_of_a_query(shop_file: str) -> None:
    session = _session(shop_file)
    try:
        _exchange(session, p.Query("CREATE TABLE shop.t (a INTEGER, b TEXT)"))
        started = _exchange(session, p.Query("COPY shop.t FROM STDIN; SELECT count(*) FROM shop.t"))
        assert started == [p.CopyInResponse(0, (0, 0))]
        data = b"1\tone\n2\t\\N\n3\tth"
        pieces = [p.CopyData(data[i : i + 4]) for i in range(0, len(data), 4)]
        done = _exchange(session, *pieces, p.CopyData(b"ree\n"), p.CopyDone())
        assert _kinds(done) == [
            "CommandComplete",
            "RowDescription",
            "DataRow",
            "CommandComplete",
            "ReadyForQuery",
        ]
        assert done[0] == p.CommandComplete("COPY 3")
        assert done[2].values == (b"3",)
        assert done[-1] == p.ReadyForQuery("I")
    finally:
        session.close()


def test_a_failed_copy_leaves_nothing(shop_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value after rows already appended (batches of 2 rows here), and CopyFail: nothing
    is inserted, the SQLSTATE is PostgreSQL's, and what follows is dropped. Inside a
    transaction block the failure aborts it (E) until ROLLBACK."""
    monkeypatch.setattr(wire_session, "COPY_IN_ROWS", 2)
    monkeypatch.setattr("sqlml.wire.copy._PARSE_BYTES", 1)
    session = _session(shop_file)
    try:
        _exchange(session, p.Query("CREATE TABLE shop.t (a INTEGER, b TEXT)"))
        _exchange(session, p.Query("COPY shop.t FROM STDIN"))
        rows = [p.CopyData(f"{i}\tx\n".encode()) for i in range(5)]
        failed = _exchange(
            session, *rows, p.CopyData(b"six\tx\n"), p.CopyData(b"7\tx\n"), p.CopyDone()
        )
        assert _kinds(failed) == ["ErrorResponse", "ReadyForQuery"]
        assert failed[0].fields["C"] == "22P02"
        assert "line 6" in failed[0].fields["M"]
        assert failed[1] == p.ReadyForQuery("I")
        assert _count(session) == 0
        _exchange(session, p.Query("COPY shop.t FROM STDIN WITH (FORMAT csv)"))
        lines = [p.CopyData(f"{i},x\n".encode()) for i in range(5)]
        cancelled = _exchange(session, *lines, p.CopyFail("changed my mind"), p.CopyData(b"9,x\n"))
        assert [m.fields["C"] for m in cancelled if isinstance(m, p.ErrorResponse)] == ["57014"]
        assert cancelled[-1] == p.ReadyForQuery("I")
        assert _count(session) == 0
        _exchange(session, p.Query("BEGIN"), p.Query("COPY shop.t FROM STDIN"))
        in_block = _exchange(session, *rows, p.CopyFail("no"))
        assert in_block[-1] == p.ReadyForQuery("E")
        assert _exchange(session, p.Query("SELECT 1"))[0].fields["C"] == "25P02"
        assert _exchange(session, p.Query("ROLLBACK"))[-1] == p.ReadyForQuery("I")
        assert _count(session) == 0
    finally:
        session.close()


def test_copy_through_the_extended_protocol(shop_file: str) -> None:
    """COPY via Parse/Bind/Describe/Execute: Describe gives NoData, the Sync libpq sends behind
    Execute is ignored during copy-in; COPY TO sends a CopyData per row."""
    session = _session(shop_file)
    try:
        _exchange(session, p.Query("CREATE TABLE shop.t (a INTEGER, b TEXT)"))
        started = _exchange(
            session,
            p.Parse("", "COPY shop.t (b, a) FROM STDIN (FORMAT csv)", ()),
            p.Bind("", "", (), (), ()),
            p.Describe("P", ""),
            p.Execute("", 0),
            p.Sync(),
        )
        assert _kinds(started) == ["ParseComplete", "BindComplete", "NoData", "CopyInResponse"]
        done = _exchange(session, p.CopyData(b'"x,y",1\n,2\n'), p.CopyDone(), p.Sync())
        assert done == [p.CommandComplete("COPY 2"), p.ReadyForQuery("I")]
        out = _exchange(
            session,
            p.Parse(
                "s", "COPY (SELECT a, b FROM shop.t ORDER BY a) TO STDOUT (FORMAT csv, HEADER)", ()
            ),
            p.Bind("", "s", (), (), ()),
            p.Execute("", 0),
            p.Sync(),
        )
        assert _kinds(out)[:3] == ["ParseComplete", "BindComplete", "CopyOutResponse"]
        assert [m.data for m in out if isinstance(m, p.CopyData)] == [
            b"a,b\n",
            b'1,"x,y"\n',
            b"2,\n",
        ]
        assert out[-3:] == [p.CopyDone(), p.CommandComplete("COPY 2"), p.ReadyForQuery("I")]
    finally:
        session.close()


def test_copy_out_binary_frames_rows_as_postgresql_does(shop_file: str) -> None:
    """The header rides with the first row, the trailer comes alone (ADBC reads a row per
    message); the tuples decode to sqlml.connect's values."""
    session = _session(shop_file)
    try:
        out = _exchange(
            session,
            p.Query(
                "COPY (SELECT id, plan FROM shop.customers WHERE id < 3 ORDER BY id) TO STDOUT (FORMAT binary)"
            ),
        )
    finally:
        session.close()
    assert out[0] == p.CopyOutResponse(1, (1, 1))
    data = [m.data for m in out if isinstance(m, p.CopyData)]
    assert len(data) == 4
    assert data[0].startswith(b"PGCOPY\n\xff\r\n\x00")
    assert data[-1] == b"\xff\xff"
    second = data[2]
    assert second[:2] == b"\x00\x02"  # two fields
    assert int.from_bytes(second[6:14], "big") == 2
    assert second[18:] == b"plus"
    assert out[-2:] == [p.CommandComplete("COPY 3"), p.ReadyForQuery("I")]


BAD_COPY_STATEMENTS = [
    ("COPY shop.customers TO '/tmp/x.csv'", "42501"),
    ("COPY shop.customers FROM PROGRAM 'ls'", "42501"),
    ("COPY shop.customers FROM STDIN WHERE id > 3", "0A000"),
    ("COPY shop.customers FROM STDIN (FORMAT xml)", "22023"),
    ("COPY shop.customers FROM STDIN (FROBNICATE 1)", "42601"),
    ("COPY shop.customers FROM STDIN (FORMAT binary, HEADER)", "42601"),
    ("COPY shop.missing FROM STDIN", "42P01"),
    ("COPY shop.customers (nope) FROM STDIN", "42703"),
    ("COPY (SELECT 1) FROM STDIN", "42601"),
]


@pytest.mark.parametrize(("sql", "sqlstate"), BAD_COPY_STATEMENTS)
def test_bad_copy_statements(shop_file: str, sql: str, sqlstate: str) -> None:
    session = _session(shop_file, file_access=False)  # (with files, COPY TO a file runs)
    try:
        answer = _exchange(session, p.Query(sql))
    finally:
        session.close()
    assert _kinds(answer) == ["ErrorResponse", "ReadyForQuery"]
    assert answer[0].fields["C"] == sqlstate


def test_parse_copy_reads_both_option_grammars() -> None:
    modern = parse_copy(
        'COPY "My".t (a, "B") FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER \';\', FREEZE)'
    )
    assert modern is not None
    assert (modern.columns, modern.to_client) == (("a", "B"), False)
    assert (modern.format, modern.options) == ("csv", {"header": "true", "delimiter": ";"})
    assert modern.select() == 'SELECT "a", "B" FROM "My"."t"'
    legacy = parse_copy("copy T to stdout with csv header delimiter as '|' null as 'NA'")
    assert legacy is not None
    assert legacy.to_client
    assert (legacy.format, legacy.options) == (
        "csv",
        {"header": "true", "delimiter": "|", "null": "NA"},
    )
    query = parse_copy("COPY (SELECT ')' FROM ML.PREDICT(MODEL m, TABLE t)) TO STDOUT BINARY")
    assert query is not None
    assert query.query == "SELECT ')' FROM ML.PREDICT(MODEL m, TABLE t)"
    assert query.format == "binary"
    assert parse_copy("SELECT 1") is None


# -- notices and errors of the session ------------------------------------------------------------


class _FakeBackend:
    """A backend that raises what no sqlml code raises, reports progress, and keeps a
    transaction flag."""

    def __init__(self) -> None:
        self.progress: Callable[[str], None] | None = None
        self.transaction = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        head = sql.split()[0].upper()
        if head in ("BEGIN", "ROLLBACK", "COMMIT"):
            self.transaction = head == "BEGIN"
            return Result(None, -1, head)
        if "boom" in sql:
            raise RuntimeError("the backend broke")
        if "train" in sql and self.progress is not None:
            self.progress("epoch 1 of 2")
            self.progress("epoch 2 of 2")
        return Result(pa.table({"x": [1]}), 1, "SELECT 1")

    def copy_in(self, table: Any, columns: Sequence[str]) -> Any:
        raise KeyError("no such thing")

    def describe(self, sql: str, param_count: int) -> pa.Schema | None:
        return None

    def parameter_types(self, sql: str, declared: Sequence[int]) -> tuple[int, ...]:
        return tuple(declared)

    def in_transaction(self) -> bool:
        return self.transaction

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


def _fake_session() -> Session:
    session = Session(SessionConfig(), lambda db, user: _FakeBackend(), 1, 2)
    _exchange(session, p.StartupMessage({"user": "ana", "database": "x"}))
    return session


def test_an_unexpected_exception_is_XX000_and_the_session_goes_on() -> None:
    session = _fake_session()
    answer = _exchange(session, p.Query("SELECT boom"))
    assert _kinds(answer) == ["ErrorResponse", "ReadyForQuery"]
    assert (answer[0].fields["C"], answer[0].fields["M"]) == ("XX000", "the backend broke")
    assert answer[1] == p.ReadyForQuery("I")
    assert _kinds(_exchange(session, p.Query("SELECT 1")))[-2:] == [
        "CommandComplete",
        "ReadyForQuery",
    ]
    assert _exchange(session, p.Query("BEGIN"))[-1] == p.ReadyForQuery("T")
    assert _exchange(session, p.Query("SELECT boom"))[-1] == p.ReadyForQuery("E")
    assert _exchange(session, p.Query("SELECT 1"))[0].fields["C"] == "25P02"
    assert _exchange(session, p.Query("ROLLBACK"))[-1] == p.ReadyForQuery("I")
    extended = _exchange(
        session,
        p.Parse("", "SELECT boom", ()),
        p.Bind("", "", (), (), ()),
        p.Execute("", 0),
        p.Parse("", "SELECT 2", ()),
        p.Sync(),
    )
    assert _kinds(extended) == ["ParseComplete", "BindComplete", "ErrorResponse", "ReadyForQuery"]
    assert extended[2].fields["C"] == "XX000"
    copy = _exchange(session, p.Query("COPY t FROM STDIN"))
    assert [m.fields["C"] for m in copy if isinstance(m, p.ErrorResponse)] == ["XX000"]
    assert not session.closed


def test_notices_queue_before_the_result_without_a_send() -> None:
    session = _fake_session()
    answer = _exchange(session, p.Query("SELECT train"))
    assert _kinds(answer) == [
        "NoticeResponse",
        "NoticeResponse",
        "RowDescription",
        "DataRow",
        "CommandComplete",
        "ReadyForQuery",
    ]
    assert answer[0].fields == {"S": "NOTICE", "V": "NOTICE", "C": "00000", "M": "epoch 1 of 2"}
    sent: list[bytes] = []
    session.send = sent.append
    answer = _exchange(session, p.Query("SELECT train"))
    assert _kinds(answer)[0] == "RowDescription"
    assert len(sent) == 2


def test_transaction_commands_out_of_place_warn_as_postgresql(shop_file: str) -> None:
    """BEGIN inside a block and COMMIT outside one: a WARNING, no error (ADBC relies on it)."""
    session = _session(shop_file)
    try:
        twice = _exchange(session, p.Query("BEGIN; BEGIN"))
        warning = [m for m in twice if isinstance(m, p.NoticeResponse)]
        assert [w.fields["C"] for w in warning] == ["25001"]
        assert twice[-1] == p.ReadyForQuery("T")
        assert _exchange(session, p.Query("COMMIT"))[-1] == p.ReadyForQuery("I")
        outside = _exchange(session, p.Query("COMMIT"))
        assert outside[0].fields["C"] == "25P01"
        assert outside[-2:] == [p.CommandComplete("COMMIT"), p.ReadyForQuery("I")]
    finally:
        session.close()
