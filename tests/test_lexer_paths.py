"""The one lexer on every path: texts that the old scanners read differently from each other, on
both engines, in process and through the gateway (psycopg 3 as the client). Each case failed
before the scanners became one (see issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sqlml import errors


def test_a_dollar_number_inside_a_string_is_no_parameter(con: Any) -> None:
    # psycopg 3 sends this as "SELECT 'costs $2', $1" with one parameter (was 08P01)
    assert con.execute("SELECT 'costs $2' AS a, ? AS b", [5]).fetchall() == [("costs $2", 5)]


def test_a_quote_escaped_in_an_e_string_hides_a_qmark(con: Any) -> None:
    # the ? inside E'...\'...' is text; the one after it is the parameter (was 42601 on PostgreSQL)
    rows = con.execute("SELECT E'it\\'s ?' AS a, ? AS b", [7]).fetchall()
    assert rows == [("it's ?", 7)]


def _ml_schema_function(con: Any, request: pytest.FixtureRequest) -> None:
    con.execute("CREATE SCHEMA ml")
    if str(request.node.callspec.params["con"]).startswith("postgres"):
        con.execute(
            "CREATE FUNCTION ml.normalize(x float8) RETURNS float8 LANGUAGE sql AS 'SELECT x / 10'"
        )
    else:
        con.execute("CREATE MACRO ml.normalize(x) AS x / 10")


def test_a_function_of_a_schema_named_ml_is_plain_sql(
    con: Any, request: pytest.FixtureRequest
) -> None:
    """`ml.normalize(x)` is a user's function, not an ML call (was 0A000, also through the
    proxy): plain SQL, and also inside a query that has a real ML call."""
    _ml_schema_function(con, request)
    assert con.execute("SELECT ml.normalize(5) AS v").fetchall() == [(0.5,)]
    assert con.execute("SELECT ml.normalize(x) AS v FROM (VALUES (20.0)) AS t(x)").fetchall() == [
        (2.0,)
    ]


def test_an_ml_function_named_without_model_is_still_an_ml_call(con: Any) -> None:
    with pytest.raises(errors.Error) as caught:
        con.execute("SELECT * FROM ML.PREDICT(shop.churn, TABLE shop.customers)").fetchall()
    assert caught.value.sqlstate == "42601"


def test_ml_in_strings_and_comments_is_plain_sql(con: Any) -> None:
    rows = con.execute(
        "SELECT 'ML.PREDICT(MODEL m, TABLE t)' AS a /* ML.EVALUATE(MODEL m) */"
    ).fetchall()
    assert rows == [("ML.PREDICT(MODEL m, TABLE t)",)]


def test_a_leading_comment_does_not_hide_copy_to_a_file(tmp_path: Path, shop_file: str) -> None:
    """Over the DuckDB gateway as `sqlml serve` runs it (no file access), COPY to a server
    file is refused as PostgreSQL refuses it to an ordinary role; a comment before COPY used to
    hide the statement from that check."""
    from gateway_client import GatewayConnection

    from sqlml.wire.backends import DuckDBBackend
    from sqlml.wire.server import ServerConfig
    from sqlml.wire.session import Session
    from tests.conftest import serving

    def locked(dbname: str, user: str) -> DuckDBBackend:
        return DuckDBBackend(shop_file, dbname, user, file_access=False)

    target = tmp_path / "stolen.csv"
    with serving(ServerConfig(port=0), locked, Session) as port:
        client = GatewayConnection(port)
        try:
            for lead in ("/* c */ ", "-- c\n", "/* a /* nested */ */\n  "):
                with pytest.raises(errors.Error) as caught:
                    client.execute(f"{lead}COPY (SELECT 1) TO '{target}'")
                assert caught.value.sqlstate == "42501"
                assert not target.exists()
            assert client.execute("SELECT 1 AS one").fetchall() == [(1,)]  # the session goes on
        finally:
            client.close()


def test_a_large_statement_does_not_stall_other_clients(shop_file: str) -> None:
    """A statement of tens of megabytes is scanned in bounded steps, off the event loop: while
    it is on its way through the DuckDB gateway, another client's queries are answered. (A
    regular expression over the whole text used to hold the interpreter for the whole scan:
    every other client waited as long as the big statement took.)"""
    import threading
    import time

    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig
    from tests.conftest import gateway_parts, serving

    text = "words and more words; " * 1_500_000  # 33 MB inside one string literal
    with serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port:
        big, small = GatewayConnection(port), GatewayConnection(port)
        try:
            done = threading.Event()
            waits: list[float] = []

            def ask() -> None:
                while not done.is_set():
                    began = time.perf_counter()
                    assert small.execute("SELECT 1 AS one").fetchall() == [(1,)]
                    waits.append(time.perf_counter() - began)

            asker = threading.Thread(target=ask)
            asker.start()
            began = time.perf_counter()
            try:
                rows = big.execute(f"SELECT length('{text}') AS n").fetchall()
            finally:
                took = time.perf_counter() - began
                done.set()
                asker.join()
            assert rows == [(len(text),)]
            assert len(waits) > 1
            assert max(waits) < took / 2  # nobody waited for the whole big statement
        finally:
            big.close()
            small.close()
