"""SET sqlml.sqlstate_in_message (grammar/settings.py): the SQLSTATE in front of the message of
sqlml's errors, for clients that show the message alone (dbt-postgres), over the gateway on
both engines and in PostgreSQL's extension."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import client_module, gateway_parts, serving

from sqlml import errors
from sqlml.grammar import settings

BAD_MODEL = "SELECT * FROM ML.PREDICT(MODEL shop.no_such_model, TABLE shop.customers)"
BAD_OPTION = (
    "CREATE MODEL shop.typo OPTIONS (model_type = 'linear_regg', input_label_cols = ['value'])"
    " AS SELECT tenure, value FROM shop.customers"
)


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("SET sqlml.sqlstate_in_message = on", ("SET", True)),
        ("set SESSION sqlml.SQLSTATE_IN_MESSAGE to 'off';", ("SET", False)),
        ("SET sqlml.sqlstate_in_message = true", ("SET", True)),
        ("/* c */ SET LOCAL sqlml.sqlstate_in_message = 1", ("LOCAL", True)),
        ("SHOW sqlml.sqlstate_in_message", ("SHOW", None)),
        ("RESET sqlml.sqlstate_in_message;", ("RESET", None)),
        ("SET sqlml.dialect = 'bigquery'", None),
        ("SET search_path = public", None),
        ("SELECT 'SET sqlml.sqlstate_in_message = on'", None),
        ("SHOW sqlml.sqlstate_in_message_x", None),
    ],
)
def test_the_setting_is_read_from_the_lexers_tokens(
    sql: str, found: tuple[str, bool | None] | None
) -> None:
    assert settings.statement(sql) == found


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SET sqlml.sqlstate_in_message = maybe", "22023"),
        ("SET sqlml.sqlstate_in_message = 'onn'", "22023"),
        ("SET sqlml.sqlstate_in_message", "42601"),
        ("SET sqlml.sqlstate_in_message = on off", "42601"),
    ],
)
def test_a_bad_value_is_refused(sql: str, sqlstate: str) -> None:
    with pytest.raises(errors.Error) as raised:
        settings.statement(sql)
    assert raised.value.sqlstate == sqlstate


def _error(call: Any) -> tuple[str, str]:
    """(SQLSTATE, message) of a client library's error (psycopg 3 or psycopg2)."""
    with pytest.raises(Exception) as info:  # noqa: PT011 (any client's error class)
        call()
    error = info.value
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    diag = getattr(error, "diag", None)
    return str(code), str(diag.message_primary if diag is not None else error)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_the_setting_over_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    """Off by default; SET on puts ``sqlml <SQLSTATE>: `` in front of sqlml's messages (the
    SQLSTATE field unchanged); SHOW and RESET answer; psycopg 3 (extended protocol: SHOW is
    described) and psycopg2 (simple protocol)."""
    from sqlml.wire.server import ServerConfig

    database = request.getfixturevalue("shop_file" if engine == "duckdb" else "pg_database")
    psycopg = client_module("psycopg")
    psycopg2 = client_module("psycopg2")
    # over DuckDB ML statements run in the gateway; in proxy mode the extension raises them
    bad = (
        BAD_OPTION
        if engine == "duckdb"
        else f"SELECT sqlml.execute('{BAD_OPTION.replace(chr(39), chr(39) * 2)}')"
    )
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        with psycopg.connect(
            host="127.0.0.1", port=port, dbname="shop", user="ana", autocommit=True
        ) as c:
            # (PostgreSQL knows a custom setting once it is set: before, SHOW is 42704)
            off = "off" if engine == "duckdb" else ""
            if engine == "duckdb":
                cur = c.execute("SHOW sqlml.sqlstate_in_message")
                assert [d.name for d in cur.description or []] == [settings.NAME]
                assert cur.fetchall() == [(off,)]
            code, message = _error(lambda: c.execute(bad))
            assert code == "22023"
            assert message.startswith("model_type 'linear_regg'"), message
            c.execute("SET sqlml.sqlstate_in_message = on")
            assert c.execute("SHOW sqlml.sqlstate_in_message").fetchall() == [("on",)]
            code, message = _error(lambda: c.execute(bad))
            assert (code, message[:12]) == ("22023", "sqlml 22023:"), message
            assert "model_type 'linear_regg'" in message
            c.execute("RESET sqlml.sqlstate_in_message")
            assert c.execute("SHOW sqlml.sqlstate_in_message").fetchall() == [(off,)]
            code, message = _error(lambda: c.execute(bad))
            assert code == "22023"
            assert not message.startswith("sqlml"), message
            if engine == "duckdb":  # (PostgreSQL takes any text for a custom setting)
                code, _ = _error(lambda: c.execute("SET sqlml.sqlstate_in_message = maybe"))
                assert code == "22023"
        con = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("SET sqlml.sqlstate_in_message TO 'on'")
                code, message = _error(lambda: cur.execute(BAD_MODEL))
                assert code == "42704"
                if engine == "duckdb":  # (in proxy mode the gateway's own: not prefixed)
                    assert message.startswith("sqlml 42704: "), message
                cur.execute("SELECT 1")  # the session goes on
                assert cur.fetchall() == [(1,)]
                if engine == "duckdb":
                    for back in ("RESET ALL", "DISCARD ALL"):
                        cur.execute("SET sqlml.sqlstate_in_message = on")
                        cur.execute(back)
                        cur.execute("SHOW sqlml.sqlstate_in_message")
                        assert cur.fetchall() == [("off",)], back
                    code, _ = _error(
                        lambda: cur.execute("SET LOCAL sqlml.sqlstate_in_message = on")
                    )
                    assert code == "0A000"
        finally:
            con.close()


def test_the_setting_in_postgresql_is_transactional(pg_database: str) -> None:
    """In PostgreSQL the extension's functions read the server's custom setting when they
    raise: SET LOCAL holds until the transaction ends."""
    psycopg2 = client_module("psycopg2")
    con = psycopg2.connect(pg_database)
    call = "SELECT sqlml.execute(%s)"
    try:
        with con.cursor() as cur:
            cur.execute("SET LOCAL sqlml.sqlstate_in_message = on")
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute(call, [BAD_OPTION])
            assert raised.value.pgcode == "22023"
            assert raised.value.diag.message_primary.startswith("sqlml 22023: model_type")
            assert raised.value.diag.message_hint  # (the hint, unchanged)
            con.rollback()
            with pytest.raises(psycopg2.Error) as raised:
                cur.execute(call, [BAD_OPTION])
            assert raised.value.pgcode == "22023"
            assert raised.value.diag.message_primary.startswith("model_type")
            con.rollback()
    finally:
        con.close()
