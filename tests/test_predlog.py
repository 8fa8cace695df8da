"""The prediction log (issue 14; docs/sql.md, "The prediction log"; sqlml/predlog.py): ALTER
MODEL ... SET OPTIONS (prediction_log_sample, prediction_log_key), ML.PREDICTION_LOG, on DuckDB
and PostgreSQL through sqlml.connect and the gateway over DuckDB.

References independent of the code: which keys are sampled is computed here from the hash's
definition with Python's integers (tests/test_traffic.py's hashed),
and each logged output is compared with ML.PREDICT of the version the row names."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, gateway_parts, serving
from test_traffic import (
    BUCKETS,
    LINEAR,
    OTHER,
    POINTS,
    TRAIN,
    Split,
    hashed,
    open_split,
    with_usage,
)

import sqlml


def logged_keys(sample: float, keys: list[int]) -> set[int]:
    return {k for k in keys if (hashed(k) // BUCKETS) % BUCKETS < round(sample * BUCKETS)}


@pytest.fixture(scope="module", params=ENGINES)
def log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    yield from open_split(request, tmp_path_factory, "predlog")


def log_tables(run: Callable[[str], Any], engine: str) -> list[str]:
    """The tables that hold the prediction log's rows, as SQL: the text log and its typed
    tables (predlog.py; those a PostgreSQL role may use)."""
    typed = run(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sqlml'"
        " AND table_name LIKE 'prediction\\_log\\_%' ESCAPE '\\' ORDER BY 1"
    )
    typed = typed.fetchall() if hasattr(typed, "fetchall") else typed  # (a cursor, or rows)
    return ["sqlml.prediction_log", *(f'sqlml."{name}"' for (name,) in typed)]


def entries(log: Split, model: str) -> list[dict[str, Any]]:
    rows = log.run(
        "SELECT version, variant, log_key, inputs, outputs, logged_at"
        f" FROM ML.PREDICTION_LOG(MODEL {model})"
    )
    return [
        {
            "version": int(v),
            "variant": variant,
            "key": key,
            "inputs": json.loads(inputs),
            "outputs": json.loads(outputs),
            "at": at,
        }
        for v, variant, key, inputs, outputs, at in rows
    ]


def test_a_deterministic_sample_by_key(log: Split) -> None:
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.05, prediction_log_key = 'id')"
    )
    rows = log.run(f"SELECT id, predicted_y FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    predicted = {k: float(p) for k, p in rows}
    logged = entries(log, model)
    expected = logged_keys(0.05, list(predicted))
    assert 0.04 * len(predicted) < len(expected) < 0.06 * len(predicted)
    assert sorted(int(e["key"]) for e in logged) == sorted(expected)
    for entry in logged:
        key = int(entry["key"])
        assert entry["inputs"]["id"] == key
        assert entry["outputs"]["predicted_y"] == pytest.approx(predicted[key], rel=1e-9)
        assert (entry["version"], entry["variant"]) == (1, "serving")
    log.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    again = entries(log, model)
    assert len(again) == 2 * len(expected)  # the same keys again: joinable to labels
    log.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = NULL)")
    log.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    assert len(entries(log, model)) == len(again)  # off


def test_under_a_traffic_split_each_row_names_its_version(log: Split) -> None:
    model = log.model(LINEAR, OTHER)
    log.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
    log.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.1)")  # the split's key
    rows = log.run(
        f"SELECT id, predicted_y, model_version FROM ML.PREDICT(MODEL {model},"
        " (SELECT * FROM split.points WHERE id % 2 = 0))"
    )
    returned = {k: (float(p), int(v)) for k, p, v in rows}
    logged = entries(log, model)
    assert sorted(int(e["key"]) for e in logged) == sorted(logged_keys(0.1, list(returned)))
    assert {e["variant"] for e in logged} == {"serving", "traffic"}
    for entry in logged:
        value, version = returned[int(entry["key"])]
        assert entry["version"] == version
        assert entry["variant"] == ("serving" if version == 1 else "traffic")
        assert entry["outputs"]["predicted_y"] == pytest.approx(value, rel=1e-9)
        assert entry["outputs"]["model_version"] == version


def test_a_random_sample_without_a_key(log: Split) -> None:
    model = log.model(LINEAR)
    log.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.1)")
    log.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    logged = entries(log, model)
    assert 1500 < len(logged) < 2500  # 10% of 20,000, at random
    assert all(e["key"] is None for e in logged)


def test_the_log_rolls_back_with_its_transaction(log: Split) -> None:
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.5, prediction_log_key = 'id')"
    )
    con = sqlml.connect(log.database)
    try:
        con.execute(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
        con.rollback()
        assert entries(log, model) == []
        con.execute(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
        con.commit()
        assert len(entries(log, model)) > 5000
    finally:
        con.close()


def test_in_autocommit_a_statement_and_its_log_are_one_transaction(log: Split) -> None:
    """Outside a transaction block the query and its log commit together: a log that cannot
    be written fails the statement and keeps nothing of it, the table a CREATE TABLE AS made
    included (it used to stay, committed before the log failed)."""
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.5, prediction_log_key = 'id')"
    )
    name = model.split(".")[1]
    # (the typed table this query's rows go to is made by a first query, its rows then deleted)
    before = set(log_tables(log.run, log.engine))
    log.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    (table,) = set(log_tables(log.run, log.engine)) - before
    log.run(f"DELETE FROM {table}")
    if log.engine == "duckdb":  # (no ADD CONSTRAINT: an empty typed table with a NOT NULL
        # column the log leaves empty stands in for it)
        kept = table[: -len('"')] + '_kept"'
        refuse = [
            f"ALTER TABLE {table} RENAME TO {kept.split('.')[1]}",
            f"CREATE TABLE {table} AS FROM {kept} LIMIT 0",
            f"ALTER TABLE {table} ADD COLUMN refused INTEGER",
            f"ALTER TABLE {table} ALTER COLUMN refused SET NOT NULL",
        ]
        allow = [f"DROP TABLE {table}", f"ALTER TABLE {kept} RENAME TO {table.split('.')[1]}"]
        violation = "23000"  # (DuckDB does not tell its violations apart: duckdb_errors.py)
    else:
        refuse = [
            f"ALTER TABLE {table} ADD CONSTRAINT refused CHECK (model_name <> '{name}') NOT VALID"
        ]
        allow, violation = [f"ALTER TABLE {table} DROP CONSTRAINT refused"], "23514"
    kept = f"split.kept_{name}"
    made = f"CREATE TABLE {kept} AS SELECT * FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
    there = (
        "SELECT count(*) FROM information_schema.tables"
        f" WHERE table_schema = 'split' AND table_name = 'kept_{name}'"
    )
    for statement in refuse:
        log.run(statement)
    try:
        assert log.sqlstate(made) == violation
        assert log.run(there) == [(0,)]
        assert (
            log.sqlstate(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
            == violation
        )
        assert log.run("SELECT 1") == [(1,)]  # (the session goes on, out of any transaction)
    finally:
        for statement in allow:
            log.run(statement)
    assert entries(log, model) == []
    log.run(made)
    assert log.run(there) == [(1,)]
    assert len(entries(log, model)) > 5000


def _strict(text: str) -> Any:
    """JSON as the standard has it: no bare NaN or Infinity (Python's json takes them)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinite_inputs_are_logged_as_json_strings(log: Split) -> None:
    """A NaN or infinite input is logged as PostgreSQL writes it, the string "NaN",
    "Infinity" or "-Infinity" (DuckDB's json_object wrote them bare: not JSON); the other
    values of the row, and the other rows, as they are."""
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1, prediction_log_key = 'id')"
    )
    odd = (
        "SELECT * FROM (VALUES (1, CAST('NaN' AS DOUBLE PRECISION), CAST(2 AS DOUBLE PRECISION)),"
        " (2, CAST('Infinity' AS DOUBLE PRECISION), CAST(-1.5 AS DOUBLE PRECISION)),"
        " (3, CAST('-Infinity' AS DOUBLE PRECISION), NULL),"
        " (4, CAST(0.25 AS DOUBLE PRECISION), CAST(1 AS DOUBLE PRECISION))) AS t(id, x, z)"
    )
    assert len(log.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, ({odd}))")) == 4
    rows = log.run(f"SELECT log_key, inputs FROM ML.PREDICTION_LOG(MODEL {model})")
    logged = {int(key): _strict(inputs) for key, inputs in rows}
    assert logged == {
        1: {"id": 1, "x": "NaN", "z": 2.0},
        2: {"id": 2, "x": "Infinity", "z": -1.5},
        3: {"id": 3, "x": "-Infinity", "z": None},
        4: {"id": 4, "x": 0.25, "z": 1.0},
    }


def test_ml_predict_beside_ml_evaluate_is_logged(log: Split) -> None:
    """A statement whose ML.EVALUATE is computed first (so its rendering is never kept) logs
    its ML.PREDICT's sample as any other (it logged nothing)."""
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.5, prediction_log_key = 'id')"
    )
    both = (
        f"SELECT (SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)) AS n,"
        f" (SELECT mean_absolute_error FROM ML.EVALUATE(MODEL {model})) AS e"
    )
    assert log.run(both)[0][0] == 20_000
    keys = sorted(int(e["key"]) for e in entries(log, model))
    assert keys == sorted(logged_keys(0.5, list(range(-50, 20_000 - 50))))


def test_parameters_and_a_missing_key(log: Split) -> None:
    model = log.model(LINEAR)
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1, prediction_log_key = 'id')"
    )
    rows = log.con.execute(
        f"SELECT id FROM ML.PREDICT(MODEL {model}, (SELECT * FROM split.points WHERE id < ?))"
        " WHERE id > ?",
        [10, 5],
    ).fetchall()
    assert sorted(r[0] for r in rows) == [6, 7, 8, 9]
    assert sorted(int(e["key"]) for e in entries(log, model)) == list(range(-50, 10))
    # the input's marker is $2 alone: the log binds it to the second value, not the first
    log.run(f"CREATE OR REPLACE MODEL {model} OPTIONS ({LINEAR}) AS {TRAIN}")  # (log emptied)
    rows = log.con.execute(
        f"SELECT id FROM ML.PREDICT(MODEL {model}, (SELECT * FROM split.points WHERE id < $2))"
        " WHERE id > $1",
        [5, 10],
    ).fetchall()
    assert sorted(r[0] for r in rows) == [6, 7, 8, 9]
    assert sorted(int(e["key"]) for e in entries(log, model) if e["version"] == 2) == list(
        range(-50, 10)
    )
    missing = f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT x, z FROM split.points))"
    assert log.sqlstate(missing) == "42703"
    with pytest.raises(sqlml.Error) as caught:  # (the log's key, not a split's: there is none)
        log.run(missing)
    assert "prediction_log_key" in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        "prediction_log_sample = 2",
        "prediction_log_sample = -0.1",
        "prediction_log_sample = 'all'",
        "prediction_log_key = 3",
    ],
)
def test_bad_log_options(log: Split, bad: str) -> None:
    model = log.model(LINEAR)
    assert log.sqlstate(f"ALTER MODEL {model} SET OPTIONS ({bad})") == "22023"


def test_nothing_is_logged_where_nothing_can_be_written(log: Split, tmp_path: Path) -> None:
    model = log.model(LINEAR)
    log.run(f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1)")
    if log.engine == "postgres":
        con = sqlml.connect(log.database, autocommit=True)
        try:
            con.execute("SET default_transaction_read_only = on")
            rows = con.execute(
                f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
            ).fetchall()
        finally:
            con.close()
    else:  # the gateway's read-only user over DuckDB: its session writes nothing
        from sqlml.wire.backends import DuckDBBackend

        backend = DuckDBBackend(log.database, "test", "reader", read_only=True)
        try:
            result = backend.execute(
                f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
            )
            assert result.table is not None
            rows = [tuple(r.values()) for r in result.table.to_pylist()]
        finally:
            backend.close()
    assert rows == [(20_000,)]
    assert entries(log, model) == []


@contextlib.contextmanager
def postgres_role(database: str, prefix: str) -> Iterator[tuple[Split, Any, str]]:
    """On a PostgreSQL database: a Split as the superuser with split.points, a raw psycopg2
    connection (autocommit), and the name of a role for the test to create (dropped after,
    with what it owns)."""
    import os

    import psycopg2

    owner = Split(database, "postgres")
    raw = psycopg2.connect(database)
    raw.autocommit = True
    role = f"{prefix}_{os.getpid()}"
    try:
        owner.run("CREATE SCHEMA split")
        owner.run(f"CREATE TABLE split.points AS {POINTS}")
        yield owner, raw, role
    finally:
        owner.con.close()
        with raw.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role])
            if cur.fetchone() is not None:  # (made by the test)
                cur.execute(f"DROP OWNED BY {role}")
                cur.execute(f"DROP ROLE {role}")
        raw.close()


def test_postgres_a_role_with_usage_logs_its_predictions(pg_database: str) -> None:
    """Row-level security lets a role add and read the log rows of the models it may use."""
    with postgres_role(pg_database, "logger") as (owner, raw, role):
        model, hidden = owner.model(LINEAR), owner.model(LINEAR)
        for name in (model, hidden):
            owner.run(
                f"ALTER MODEL {name} SET OPTIONS (prediction_log_sample = 0.01,"
                " prediction_log_key = 'id')"
            )
        owner.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {hidden}, TABLE split.points)")
        user = with_usage(raw, pg_database, model, role)
        try:
            user.run(f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
            mine = entries(user, model)
            assert sorted(int(e["key"]) for e in mine) == sorted(
                logged_keys(0.01, list(range(-50, 20_000 - 50)))
            )
            assert user.sqlstate(f"SELECT * FROM ML.PREDICTION_LOG(MODEL {hidden})") == "42704"
            # the tables themselves, as row-level security (sqlml.usable_models) lets the role
            # see and write them: its model's rows, none of the other's; the view too
            # (security_invoker)
            tables = log_tables(user.run, "postgres")
            assert len(tables) >= 3  # (the text log, a typed table of each model)
            for table in [*tables, "sqlml.logged_predictions"]:
                assert user.run(
                    f"SELECT DISTINCT schema_name || '.' || model_name FROM {table}"
                ) in ([(model,)], [])
            assert user.run(
                "SELECT DISTINCT schema_name || '.' || model_name FROM sqlml.logged_predictions"
            ) == [(model,)]
            schema_name, name = hidden.split(".")
            for table in tables:
                row = f"INSERT INTO {table} (schema_name, model_name, version, variant, logged_at)"
                values = f"VALUES ('{schema_name}', '{name}', 1, 'serving', now())"
                assert user.sqlstate(f"{row} {values}") == "42501"
            with raw.cursor() as cur:
                cur.execute("SELECT count(DISTINCT model_name) FROM sqlml.logged_predictions")
                assert cur.fetchone() == (2,)
                cur.execute("SELECT count(*) FROM sqlml.prediction_log")
                assert cur.fetchone() == (0,)  # (typed)
        finally:
            user.con.close()


def test_postgres_log_tables_are_made_as_they_must_be(pg_database: str) -> None:
    """PostgreSQL's typed log tables are made by sqlml.log_table for a role with USAGE on the
    model, under the name of the columns it gives, of the types the log may depend on, owned
    by the installer with row-level security; a shape with another type (a user's composite)
    is logged as text. What the log reads back is PostgreSQL's own row_to_json of the input
    row, numeric and jsonb columns included."""
    from sqlml.predlog import pg_table

    with postgres_role(pg_database, "maker") as (owner, raw, role):
        owner.run("CREATE TYPE split.pair AS (a integer, b integer)")
        model, hidden = owner.model(LINEAR), owner.model(LINEAR)
        user = with_usage(raw, pg_database, model, role)
        try:

            def call(name: str, table: str, columns: list[tuple[str, str]]) -> str:
                given = ", ".join(f"'{part}'" for column in columns for part in column)
                return f"CALL sqlml.log_table('split', '{name}', '{table}', ARRAY[{given}])"

            def made(name: str, columns: list[tuple[str, str]]) -> str:
                return call(name, pg_table("split", name, columns), columns)

            mine, other = model.split(".")[1], hidden.split(".")[1]
            plain = [("input:x", "double precision"), ("output:predicted_y", "double precision")]
            assert user.sqlstate(made(other, plain)) == "42501"  # (no USAGE)
            assert user.sqlstate(call(mine, "prediction_log_0000000000000000", plain)) == "22023"
            assert user.sqlstate(made(mine, [("input:p", "split.pair")])) == "22023"
            assert user.sqlstate(made(mine, [("input:m", "numeric(10,2)")])) == "22023"
            assert user.sqlstate(made(mine, [("x", "double precision")])) == "22023"
            user.run(made(mine, plain))
            user.run(made(mine, plain))  # (there already: nothing to do)
            table = pg_table("split", mine, plain)
            with raw.cursor() as cur:
                cur.execute(
                    "SELECT pg_catalog.pg_get_userbyid(relowner) <> %s, relrowsecurity"
                    " FROM pg_catalog.pg_class WHERE oid = to_regclass(%s)",
                    [role, f"sqlml.{table}"],
                )
                assert cur.fetchone() == (True, True)
            assert user.sqlstate(f"DROP TABLE sqlml.{table}") == "42501"

            owner.run(
                f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1,"
                " prediction_log_key = 'id')"
            )
            given = (
                "SELECT id, x, z, CAST(x / 7 AS NUMERIC(10, 2)) AS amount,"
                " jsonb_build_object('k', id, 'tags', jsonb_build_array('a', id)) AS doc"
                " FROM split.points WHERE id BETWEEN 0 AND 9"
            )
            paired = "SELECT id, x, z, ROW(id, 2)::split.pair AS p FROM split.points WHERE id < 3"
            for query in (given, paired):
                user.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, ({query}))")
            # (a jsonb value Arrow cannot nest, an array of a string and a number, comes back
            # to sqlml.connect as its JSON text)
            (doc,) = user.run(f"SELECT doc FROM ML.PREDICT(MODEL {model}, ({given})) WHERE id = 3")
            assert json.loads(doc[0]) == {"k": 3, "tags": ["a", 3]}
            with raw.cursor() as cur:
                cur.execute(f"SELECT id::text, row_to_json(q)::text FROM ({given}) AS q")
                expected = dict(cur.fetchall())
                cur.execute(f"SELECT id::text, row_to_json(q)::text FROM ({paired}) AS q")
                expected_pairs = dict(cur.fetchall())
                cur.execute(
                    "SELECT log_key, inputs FROM sqlml.prediction_log WHERE model_name = %s",
                    [mine],
                )
                assert dict(cur.fetchall()) == expected_pairs  # (as text: a user's type)
            logged = user.run(
                f"SELECT log_key, inputs FROM ML.PREDICTION_LOG(MODEL {model})"
                " WHERE inputs LIKE '%amount%'"
            )
            assert dict(logged) == expected
        finally:
            user.con.close()


def test_postgres_a_column_whose_type_changes_keeps_its_plan_logging(pg_database: str) -> None:
    """A kept plan survives a change of an input column's type to one Arrow reads alike (json
    to text: both strings); its log INSERT casts the column to the type of the log table it
    was made for, so the statement still logs (PostgreSQL assigns no text to a json column),
    and the log reads back the value as it was given."""
    with postgres_role(pg_database, "retyped") as (owner, raw, _):
        model = owner.model(LINEAR)
        owner.run(
            f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1,"
            " prediction_log_key = 'id')"
        )
        owner.run(
            "CREATE TABLE split.doc AS SELECT id, x, z, json_build_object('k', id) AS doc"
            " FROM split.points WHERE id BETWEEN 0 AND 3"
        )
        query = f"SELECT count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.doc)"
        assert owner.run(query) == [(4,)]
        assert owner.run(query) == [(4,)]  # (its plan kept)
        with raw.cursor() as cur:
            cur.execute("ALTER TABLE split.doc ALTER COLUMN doc TYPE text")
        assert owner.run(query) == [(4,)]
        logged = owner.run(
            f"SELECT log_key, inputs FROM ML.PREDICTION_LOG(MODEL {model}) WHERE log_key = '2'"
        )
        assert [json.loads(inputs)["doc"] for _, inputs in logged] == [{"k": 2}] * 3


def test_postgres_a_log_table_dropped_by_hand_is_made_again(pg_database: str) -> None:
    """On PostgreSQL too, a typed log table the installing role drops by hand is made again
    (with the view) by a sqlml.connect session's next statement that logs to it, though the
    session had logged to it before, in autocommit and in a transaction block."""
    with postgres_role(pg_database, "dropper") as (owner, raw, _):
        model = owner.model(LINEAR)
        owner.run(
            f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1,"
            " prediction_log_key = 'id')"
        )
        query = (
            f"SELECT count(*) FROM ML.PREDICT(MODEL {model},"
            " (SELECT * FROM split.points WHERE id BETWEEN 0 AND 4))"
        )
        count = f"SELECT count(*) FROM ML.PREDICTION_LOG(MODEL {model})"
        assert owner.run(query) == [(5,)]
        assert owner.run(count) == [(5,)]
        for block in (False, True):
            typed = log_tables(owner.run, "postgres")[1:]
            assert len(typed) == 1
            with raw.cursor() as cur:
                cur.execute(f"DROP TABLE {typed[0]} CASCADE")  # (the view goes with it)
            owner.con.autocommit = not block
            assert owner.run(query) == [(5,)]  # (made again, logged)
            if block:
                owner.con.commit()
            owner.con.autocommit = True
            assert log_tables(owner.run, "postgres")[1:] == typed
            assert owner.run(count) == [(5,)]


def test_through_the_gateway_over_duckdb(shop_file: str) -> None:
    """psycopg 3 through `sqlml serve` over DuckDB: the gateway's session logs as sqlml.connect
    does, with parameters (the extended protocol)."""
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    with serving(ServerConfig(port=0), *gateway_parts("duckdb", shop_file)) as port:
        client = GatewayConnection(port)
        try:
            gateway = Split.over(client, "duckdb")
            model = gateway.model(LINEAR)
            gateway.run(
                f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 0.05,"
                " prediction_log_key = 'id')"
            )
            rows = client.execute(
                f"SELECT id FROM ML.PREDICT(MODEL {model},"
                " (SELECT * FROM split.points WHERE id < ?))",
                [5000],
            ).fetchall()
            keys = sorted(r[0] for r in rows)
            logged = entries(gateway, model)
            assert sorted(int(e["key"]) for e in logged) == sorted(logged_keys(0.05, keys))
        finally:
            client.close()


SHAPED = (
    "SELECT id, x, z, name, id % 2 = 0 AS even, CASE WHEN id = 3 THEN NULL ELSE x END AS maybe"
    " FROM split.points WHERE id BETWEEN 0 AND 9"
)


def test_the_log_reads_as_the_input_rows_and_is_typed(log: Split) -> None:
    """ML.PREDICTION_LOG's inputs are JSON objects equal to the input rows, keys in the
    input's order. Each shape of a model's input is logged to a table of its own columns,
    typed as given (predlog.py), and read as that JSON; DROP MODEL empties them."""
    model = log.model(LINEAR)
    name = model.split(".")[1]
    log.run(
        f"ALTER MODEL {model} SET OPTIONS (prediction_log_sample = 1, prediction_log_key = 'id')"
    )
    before = set(log_tables(log.run, log.engine))
    log.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, ({SHAPED}))")
    log.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, ({SHAPED}))")  # (the same table)
    columns = ["id", "x", "z", "name", "even", "maybe"]
    given = {int(r[0]): dict(zip(columns, r, strict=True)) for r in log.run(SHAPED)}
    logged = entries(log, model)
    assert len(logged) == 2 * len(given)
    for entry in logged:
        assert list(entry["inputs"]) == columns  # (the input's order)
        assert entry["inputs"] == given[int(entry["key"])]
    (shaped,) = set(log_tables(log.run, log.engine)) - before
    found = log.run(
        "SELECT column_name, data_type FROM information_schema.columns"
        f" WHERE table_schema = 'sqlml' AND table_name = '{shaped.split('.')[1].strip(chr(34))}'"
    )
    types = {name: str(kind).upper() for name, kind in found}
    assert types["input:id"] in ("INTEGER", "BIGINT")
    floating = "DOUBLE" if log.engine == "duckdb" else "DOUBLE PRECISION"
    text = "VARCHAR" if log.engine == "duckdb" else "TEXT"
    assert (types["input:x"], types["input:name"], types["input:even"]) == (
        floating,
        text,
        "BOOLEAN",
    )
    assert types["output:predicted_y"] == floating
    # (none as text)
    assert log.run(f"SELECT count(*) FROM sqlml.prediction_log WHERE model_name = '{name}'") == [
        (0,)
    ]
    log.run(f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT id, z, x FROM split.points))")
    (other,) = set(log_tables(log.run, log.engine)) - before - {shaped}
    (points,) = log.run("SELECT count(*) FROM split.points")
    assert len(entries(log, model)) == 2 * len(given) + int(points[0])
    log.run(f"DROP MODEL {model}")
    for table in (shaped, other):
        assert log.run(f"SELECT count(*) FROM {table} WHERE model_name = '{name}'") == [(0,)]
    assert set(log_tables(log.run, log.engine)) >= {shaped, other}  # (emptied, kept)


def test_duckdb_an_older_store_gets_the_log_view(tmp_path: Path) -> None:
    """A DuckDB file of a store without sqlml.logged_predictions (sqlml before the typed log)
    gets it when a session opens it, and its text log rows read through ML.PREDICTION_LOG."""
    import duckdb

    database = str(tmp_path / "older.duckdb")
    con = sqlml.connect(database, autocommit=True)
    con.execute(f"CREATE SCHEMA split; CREATE TABLE split.points AS {POINTS}")
    con.execute(f"CREATE MODEL split.old OPTIONS ({LINEAR}) AS {TRAIN}")
    con.close()
    raw = duckdb.connect(database)
    raw.execute("DROP VIEW sqlml.logged_predictions")
    raw.execute(
        "INSERT INTO sqlml.prediction_log VALUES ('split', 'old', 1, 'serving',"
        " TIMESTAMP '2026-01-01', '7', '{\"x\":1.0}', '{\"predicted_y\":3.0}')"
    )
    raw.close()
    con = sqlml.connect(database, autocommit=True)
    try:
        rows = con.execute(
            "SELECT version, variant, log_key, inputs, outputs FROM ML.PREDICTION_LOG(MODEL split.old)"
        ).fetchall()
        assert rows == [(1, "serving", "7", '{"x":1.0}', '{"predicted_y":3.0}')]
    finally:
        con.close()


def test_duckdb_the_logged_sample_is_sorted(tmp_path: Path) -> None:
    """DuckDB's log sorts its sample before scoring (predlog._sampled: a UDF is called once
    per vector, and the INSERT merges the batches a filter leaves in order: sorted, the sample
    fills whole vectors), scored as compiled SQL or through the runtime; a shadow's sample,
    read into Arrow first, is not sorted. Both scorings log the same rows."""
    from sqlml.engine import Session
    from sqlml.engines.duckdb import DuckDBEngine

    session = Session(DuckDBEngine(str(tmp_path / "sorted.duckdb")))
    for sql in (
        "CREATE SCHEMA split",
        f"CREATE TABLE split.points AS {POINTS}",
        f"CREATE MODEL split.m OPTIONS ({LINEAR}) AS {TRAIN}",
        "ALTER MODEL split.m SET OPTIONS (prediction_log_sample = 0.1, prediction_log_key = 'id')",
    ):
        session.execute_one(sql)
    predict = "SELECT count(*) FROM ML.PREDICT(MODEL split.m, TABLE split.points{})"
    compiled = session.ml_plan(predict.format(""))
    runtime = session.ml_plan(predict.format(", STRUCT('runtime' AS scoring)"))
    assert compiled is not None
    assert runtime is not None
    assert "ORDER BY" in compiled.logs[0].sql
    assert "ORDER BY" in runtime.logs[0].sql
    session.execute_one(f"CREATE OR REPLACE MODEL split.m OPTIONS ({LINEAR}) AS {TRAIN}")
    session.execute_one("ALTER MODEL split.m ROLLBACK")
    session.execute_one("ALTER MODEL split.m SET SHADOW VERSION 2 SAMPLE 10 PERCENT")
    shadowed = session.ml_plan(predict.format(""))
    assert shadowed is not None
    assert [log.shadow for log in shadowed.logs] == [None, 2]
    assert "ORDER BY" not in shadowed.logs[1].sql
    session.execute_one("ALTER MODEL split.m CLEAR SHADOW")
    counts = []
    for sql in (predict.format(""), predict.format(", STRUCT('runtime' AS scoring)")):
        session.execute_one(sql)
        logged = session.execute_one("SELECT count(*) FROM ML.PREDICTION_LOG(MODEL split.m)")
        assert logged.table is not None
        counts.append(logged.table.column(0)[0].as_py())
    assert counts[1] == 2 * counts[0] > 0


def test_duckdb_sessions_logging_a_new_shape_at_once_all_succeed(tmp_path: Path) -> None:
    """Four sessions of one DuckDB file log the same new shapes of input at the same moment:
    each shape's typed table is made once and no statement fails (they conflicted on DuckDB's
    catalog, write-write, when each made it in its own transaction)."""
    import threading

    database = str(tmp_path / "shapes.duckdb")
    con = sqlml.connect(database, autocommit=True)
    con.execute(f"CREATE SCHEMA split; CREATE TABLE split.points AS {POINTS}")
    con.execute(f"CREATE MODEL split.m OPTIONS ({LINEAR}) AS {TRAIN}")
    con.execute(
        "ALTER MODEL split.m SET OPTIONS (prediction_log_sample = 0.5, prediction_log_key = 'id')"
    )
    shaped = "SELECT count(*) FROM ML.PREDICT(MODEL split.m, (SELECT id, x, z, {0} AS s{0}"
    shaped += " FROM split.points WHERE id < 1000))"
    failed: list[sqlml.Error] = []
    start = threading.Barrier(4)

    def session() -> None:
        try:
            own = sqlml.connect(database, autocommit=True)
            start.wait()
            for shape in range(4):
                own.execute(shaped.format(shape)).fetchall()
            own.close()
        except sqlml.Error as e:  # (reported below)
            failed.append(e)

    threads = [threading.Thread(target=session) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failed == []
        (logged,) = con.execute("SELECT count(*) FROM ML.PREDICTION_LOG(MODEL split.m)").fetchall()
        keys = [k for (k,) in con.execute("SELECT id FROM split.points WHERE id < 1000").fetchall()]
        assert logged[0] == 16 * len(logged_keys(0.5, keys))  # (4 sessions x 4 shapes)
    finally:
        con.close()


def test_duckdb_a_log_table_dropped_by_hand_is_made_again(tmp_path: Path) -> None:
    """A typed log table dropped by hand, on the session that logged to it or on another one
    of the file, is made again (with the view) by the next statement that logs to it, which
    succeeds and logs its sample; the rows dropped with the table are gone."""
    database = str(tmp_path / "dropped.duckdb")
    con = sqlml.connect(database, autocommit=True)
    other = sqlml.connect(database, autocommit=True)
    try:
        con.execute(f"CREATE SCHEMA split; CREATE TABLE split.points AS {POINTS}")
        con.execute(f"CREATE MODEL split.m OPTIONS ({LINEAR}) AS {TRAIN}")
        con.execute(
            "ALTER MODEL split.m SET OPTIONS (prediction_log_sample = 0.1, prediction_log_key = 'id')"
        )
        predict = "SELECT count(*) FROM ML.PREDICT(MODEL split.m, TABLE split.points)"
        keys = [k for (k,) in con.execute("SELECT id FROM split.points").fetchall()]
        sampled = len(logged_keys(0.1, keys))
        count = "SELECT count(*) FROM ML.PREDICTION_LOG(MODEL split.m)"
        for dropping in (con, other):
            assert con.execute(predict).fetchall() == [(len(keys),)]
            assert con.execute(count).fetchall() == [(sampled,)]
            typed = log_tables(con.execute, "duckdb")[1:]
            assert len(typed) == 1
            dropping.execute(f"DROP TABLE {typed[0]}")
            assert con.execute(predict).fetchall() == [(len(keys),)]  # (made again, logged)
            assert log_tables(con.execute, "duckdb")[1:] == typed
            assert con.execute(count).fetchall() == [(sampled,)]
            assert other.execute(count).fetchall() == [(sampled,)]
            con.execute(f"DELETE FROM {typed[0]}")
    finally:
        other.close()
        con.close()
