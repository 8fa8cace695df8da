"""Kept ML plans stay right: a rendered ML.PREDICT kept by one connection follows what another
connection does to the same database (replace or drop the model, alter or recreate the input),
on both engines. The reference for "right" is the same query rendered afresh: on a new
connection, or spelled differently (a comment) on the same one, so no kept plan answers it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlml
from sqlml import engine, errors
from sqlml.engines.duckdb import DuckDBEngine, may_change_plans
from tests.conftest import load_shop
from tests.test_engine import CHURN

REPLACE = CHURN.replace("CREATE MODEL", "CREATE OR REPLACE MODEL")
HALF = REPLACE.replace("shop.customers", "shop.customers WHERE id % 2 = 0")
PREDICT = (
    "SELECT id, predicted_churned, predicted_churned_probs"
    " FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers) ORDER BY id"
)
SCORE = "SELECT id, ML.SCORE(MODEL shop.churn) AS p FROM shop.new_customers ORDER BY id"
FRESH = " /* fresh */"  # the same query under another text: rendered again, never kept


@pytest.fixture
def pair(database: str) -> Iterator[tuple[sqlml.Connection, sqlml.Connection]]:
    """Two connections to one database with the shop tables and the churn model."""
    a = sqlml.connect(database, autocommit=True)
    if "://" not in database:
        load_shop(a)
    b = sqlml.connect(database, autocommit=True)
    a.execute(CHURN)
    yield a, b
    b.close()
    a.close()


def _rows(con: sqlml.Connection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _kept(con: sqlml.Connection, sql: str) -> list[tuple[Any, ...]]:
    """The query's rows from its kept plan (it runs twice: once to keep it)."""
    first = _rows(con, sql)
    assert _rows(con, sql) == first
    return first


def test_model_replaced_from_another_connection_is_served(
    pair: tuple[sqlml.Connection, sqlml.Connection], database: str
) -> None:
    a, b = pair
    before, scores = _kept(a, PREDICT), _kept(a, SCORE)
    b.execute(HALF)
    after = _rows(a, PREDICT)
    assert after != before
    fresh = sqlml.connect(database, autocommit=True)
    assert after == _rows(fresh, PREDICT)
    assert _rows(a, SCORE) == _rows(fresh, SCORE) != scores
    fresh.close()


def test_model_dropped_from_another_connection_is_an_error(
    pair: tuple[sqlml.Connection, sqlml.Connection],
) -> None:
    a, b = pair
    _kept(a, PREDICT)
    b.execute("DROP MODEL shop.churn")
    for query in (PREDICT, SCORE):
        with pytest.raises(errors.UndefinedModel) as caught:
            a.execute(query)
        assert caught.value.sqlstate == "42704"
    b.execute(CHURN)  # and back: the plan follows the new model
    assert _rows(a, PREDICT) == _rows(a, PREDICT + FRESH)


def test_input_retyped_by_another_connection_is_refused(
    pair: tuple[sqlml.Connection, sqlml.Connection],
) -> None:
    a, b = pair
    _kept(a, PREDICT)
    b.execute("ALTER TABLE shop.new_customers ALTER COLUMN spend TYPE VARCHAR")
    with pytest.raises(errors.DatatypeMismatch) as caught:
        a.execute(PREDICT)
    assert caught.value.sqlstate == "42804"


def test_input_recreated_by_another_connection_is_read_anew(
    pair: tuple[sqlml.Connection, sqlml.Connection],
) -> None:
    a, b = pair
    query = "SELECT * FROM ML.PREDICT(MODEL shop.churn, TABLE shop.new_customers) ORDER BY id"
    before = _kept(a, query)
    b.execute("DROP TABLE shop.new_customers")
    b.execute(
        "CREATE TABLE shop.new_customers AS SELECT id, tenure, spend, plan, promo,"
        " 'late' AS cohort FROM shop.customers WHERE id >= 700"
    )
    after = a.execute(query).fetch_arrow_table()
    assert after.column_names[:6] == ["id", "tenure", "spend", "plan", "promo", "cohort"]
    assert after.column("id").to_pylist() == list(range(700, 800))
    assert after.column("id").to_pylist() != [r[0] for r in before]
    assert after.equals(a.execute(query + FRESH).fetch_arrow_table())


@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
def test_model_replaced_in_a_transaction_is_served_once_committed(
    pair: tuple[sqlml.Connection, sqlml.Connection], end: str
) -> None:
    a, b = pair
    old = _kept(a, PREDICT)
    b.execute("BEGIN")
    b.execute(HALF)
    assert _rows(a, PREDICT) == old  # not committed: not seen
    b.execute(end)
    expected = _rows(a, PREDICT + FRESH)
    assert _rows(a, PREDICT) == expected
    assert (expected == old) == (end == "ROLLBACK")


def test_plan_kept_inside_a_transaction_is_checked_after_it(
    pair: tuple[sqlml.Connection, sqlml.Connection],
) -> None:
    a, b = pair
    a.execute("BEGIN")
    _kept(a, PREDICT)
    b.execute(HALF)
    # whatever this transaction sees of the new version (DuckDB: its snapshot, not; PostgreSQL:
    # READ COMMITTED, yes), the kept plan answers as a plan made now would
    assert _rows(a, PREDICT) == _rows(a, PREDICT + FRESH)
    a.execute("COMMIT")
    assert _rows(a, PREDICT) == _rows(a, PREDICT + " /* after */")


def test_kept_plan_on_duckdb_is_not_checked_until_something_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On DuckDB a kept plan runs without a query to the store or of its input's columns, until
    a statement that may change them; one that cannot (a write to a user table) costs nothing.
    After a change one query checks it, and the prepared statement is kept (DuckDB binds it
    again itself): preparing it again cost ~4 ms a run (benchmarks/bench_scoring_limit.py)."""
    calls: list[str] = []
    probe, prepare, render = DuckDBEngine.probe, DuckDBEngine.prepare, engine.Session._render
    monkeypatch.setattr(
        DuckDBEngine, "probe", lambda e, sql: calls.append("check") or probe(e, sql)
    )
    monkeypatch.setattr(
        DuckDBEngine, "prepare", lambda e, *a: calls.append("prepare") or prepare(e, *a)
    )

    def counted(self: engine.Session, *args: Any, **kwargs: Any) -> Any:
        calls.append("render")
        return render(self, *args, **kwargs)

    monkeypatch.setattr(engine.Session, "_render", counted)
    a = sqlml.connect(str(tmp_path / "plans.duckdb"), autocommit=True)
    load_shop(a)
    a.execute(CHURN)
    first = _kept(a, PREDICT)
    for _ in range(3):
        assert _rows(a, PREDICT) == first
    assert calls == ["render", "prepare"]
    a.execute("INSERT INTO shop.customers SELECT * FROM shop.customers WHERE id = 0")
    assert _rows(a, PREDICT) == first
    assert calls == ["render", "prepare"]
    a.execute("CREATE TABLE shop.other (x INTEGER)")  # checked once again, still right
    assert _rows(a, PREDICT) == first
    assert _rows(a, PREDICT) == first
    assert calls == ["render", "prepare", "check"]
    a.close()


@pytest.mark.parametrize("dropping", ["DEALLOCATE {}", "SELECT 1; DEALLOCATE PREPARE {}"])
def test_kept_plan_on_duckdb_survives_its_prepared_statement_dropped(
    tmp_path: Path, dropping: str
) -> None:
    """A user who deallocates sqlml's prepared statement by its name (DuckDB has no DEALLOCATE
    ALL): the kept plan is prepared again, not run as a name that no longer exists."""
    a = sqlml.connect(str(tmp_path / "dropped.duckdb"), autocommit=True)
    load_shop(a)
    a.execute(CHURN)
    first = _kept(a, PREDICT)
    (plan,) = a.session._plans.values()
    a.execute(dropping.format(f'"{plan.name}"'))
    assert _rows(a, PREDICT) == first
    assert _rows(a, PREDICT) == first
    a.close()


def test_kept_plan_on_duckdb_follows_a_name_that_now_means_another_table(
    tmp_path: Path,
) -> None:
    """The prepared statement is kept across catalog changes, and DuckDB binds it again: a
    table of the same columns that the input's name now resolves to is the one read."""
    a = sqlml.connect(str(tmp_path / "renamed.duckdb"), autocommit=True)
    load_shop(a)
    a.execute(CHURN)
    query = PREDICT.replace("shop.new_customers", "new_customers")
    a.execute("SET search_path = 'shop'")
    first = _kept(a, query)
    a.execute("CREATE SCHEMA other")
    a.execute("CREATE TABLE other.new_customers AS SELECT * FROM shop.new_customers WHERE id < 3")
    a.execute("SET search_path = 'other,shop'")
    again = _rows(a, query)
    assert again == first[:3] == _rows(a, query + FRESH)
    a.close()


def test_plans_in_a_full_cache_are_let_go(
    pair: tuple[sqlml.Connection, sqlml.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    monkeypatch.setattr(engine, "PLAN_CACHE_SIZE", 2)
    results = [_kept(a, f"{PREDICT} LIMIT {n}") for n in (1, 2, 3, 4)]
    assert [len(r) for r in results] == [1, 2, 3, 4]
    assert len(a.session._plans) == 2
    assert _rows(a, f"{PREDICT} LIMIT 1") == results[0]  # rendered (and prepared) again


@pytest.mark.parametrize(
    ("sql", "changes"),
    [
        ("SELECT * FROM shop.customers", False),
        ("  -- a comment\n FROM shop.customers SELECT id", False),
        ('SELECT * FROM (SELECT 1) AS "__sqlml_input"', False),
        ("INSERT INTO shop.customers SELECT * FROM shop.customers", False),
        ("DELETE FROM shop.customers WHERE id = 1", False),
        ("INSERT INTO sqlml.models VALUES (1)", True),
        ("UPDATE versions SET onnx = ''", True),
        ("WITH x AS (SELECT 1) INSERT INTO sqlml.versions SELECT * FROM x", True),
        ("CREATE TABLE shop.t (x INTEGER)", True),
        ("ALTER TABLE shop.customers ADD COLUMN x INTEGER", True),
        ("SET search_path = 'shop'", True),
        ("ATTACH 'other.duckdb' AS other", True),
        ("EXECUTE some_statement", True),
        ("SELECT 1; DROP TABLE shop.customers", True),
        ("SELECT 1;", False),
        # the prediction log's own INSERT (predlog.py): log rows, which no plan reads
        ('INSERT INTO "sqlml"."prediction_log" ("version") SELECT 1', False),
        ('INSERT INTO "sqlml"."prediction_log" ("version") SELECT 1; DROP TABLE t', True),
        ('INSERT INTO "sqlml"."versions" ("version") SELECT 1', True),
    ],
)
def test_which_duckdb_statements_make_plans_check_again(sql: str, changes: bool) -> None:
    assert may_change_plans(sql) is changes


def test_a_logged_query_leaves_the_kept_plans_of_duckdb_unchecked(tmp_path: Path) -> None:
    """Writing the prediction log is no change for kept plans: the logged query's next run
    (and every other kept plan of the file) is not checked again, as it was after each logged
    run (~4.5 ms a run on DuckDB, benchmarks/RESULTS.md)."""
    con = sqlml.connect(str(tmp_path / "logged.duckdb"), autocommit=True)
    try:
        load_shop(con)
        con.execute(CHURN)
        con.execute(
            "ALTER MODEL shop.churn SET OPTIONS (prediction_log_sample = 1,"
            " prediction_log_key = 'id')"
        )
        rows = _kept(con, PREDICT)
        keeper = con.session._keeper
        assert keeper is not None
        before = keeper.token()
        assert _rows(con, PREDICT) == rows
        assert keeper.token() == before
        logged = con.execute("SELECT count(*) FROM ML.PREDICTION_LOG(MODEL shop.churn)")
        assert logged.fetchone() == (3 * len(rows),)  # (each run logged every row)
    finally:
        con.close()


def test_kept_plans_on_duckdb_return_the_same_arrow(tmp_path: Path) -> None:
    """A few rows of a kept plan come back by another road (engines/duckdb.py's run_prepared):
    the same Arrow table, types and all, as DuckDB's own."""
    a = sqlml.connect(str(tmp_path / "arrow.duckdb"), autocommit=True)
    load_shop(a)
    a.execute(CHURN)
    plain = (
        "SELECT * FROM ML.PREDICT(MODEL shop.churn, (SELECT *, DATE '2024-01-02' AS d,"
        " [id, NULL] AS ids, {'a': plan, 'b': [1.5]} AS s, NULL AS n, 'x'::BLOB AS b,"
        " 2::TINYINT AS t FROM shop.customers WHERE id < ?)) ORDER BY id"
    )
    other = plain.replace("NULL AS n", "TIMESTAMP '2024-01-02 03:04:05' AS ts, 1.5::DECIMAL(4, 2)")
    for query in (plain, other):
        for rows in (0, 3, 300, 1):  # (more than SMALL_RESULT rows: DuckDB's Arrow again)
            first = a.execute(query, [rows]).fetch_arrow_table()
            for _ in range(2):
                again = a.execute(query, [rows]).fetch_arrow_table()
                assert again.schema.equals(first.schema, check_metadata=True)
                assert again.equals(first)
            assert first.num_rows == rows
    shapes = a.session.engine._shapes  # type: ignore[attr-defined]
    assert any(shape is not None for shape in shapes.values())  # the other road was taken
    a.close()


def test_a_plan_duckdb_cannot_prepare_runs_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = sqlml.connect(str(tmp_path / "unprepared.duckdb"), autocommit=True)
    load_shop(a)
    a.execute(CHURN)
    expected = _rows(a, PREDICT + FRESH)
    attempts: list[str] = []

    def refuse(name: str, sql: str) -> None:
        attempts.append(name)
        raise errors.FeatureNotSupported("cannot be prepared")

    monkeypatch.setattr(a.session.engine, "prepare", refuse)
    for _ in range(3):
        assert _rows(a, PREDICT) == expected
    assert len(attempts) == 1  # not again until something changes
    a.execute("CREATE TABLE shop.other (x INTEGER)")
    assert _rows(a, PREDICT) == expected
    assert len(attempts) == 2
    one = PREDICT.replace(
        "TABLE shop.new_customers", "(SELECT * FROM shop.new_customers WHERE id = ?)"
    )
    assert a.execute(one, [5]).fetchall() == [expected[5]]
    with pytest.raises(errors.DataError):  # the query's own error, not the refusal
        a.execute(one, ["x"])
    a.close()
