"""Bind parameters in ML queries, on both engines: ``?`` (sqlml.connect's paramstyle) and ``$n``
(what the gateway passes on from the extended protocol). Rows scored with parameters are compared
with the same rows scored without them, and with scikit-learn; the rendered plan is kept and
reused whatever the values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import sqlml
from sqlml import engine, errors
from sqlml.engines import placeholders
from tests.conftest import ENGINES
from tests.test_engine import CHURN, _churn_reference

PREDICT = (
    "SELECT id, predicted_churned, predicted_churned_probs FROM ML.PREDICT(MODEL shop.churn,"
    " (SELECT * FROM shop.new_customers WHERE id = {})) ORDER BY id"
)
ALL = PREDICT.replace(" WHERE id = {}", "")


def _probs(rows: list[tuple[Any, ...]]) -> list[float]:
    return [r[2][1]["prob"] for r in rows]


@pytest.mark.parametrize("marker", ["?", "$1"])
def test_single_row_predict_with_a_parameter(con: sqlml.Connection, marker: str) -> None:
    con.execute(CHURN)
    everyone = con.execute(ALL).fetchall()
    ref, new = _churn_reference()
    expected = ref.predict_proba(new)[:, 1]
    for i in (0, 7, 199, 42):
        rows = con.execute(PREDICT.format(marker), [i]).fetchall()
        assert rows == [everyone[i]]
        np.testing.assert_allclose(_probs(rows), [expected[i]], atol=1e-9)
    assert con.execute(PREDICT.format(marker), [None]).fetchall() == []
    assert con.execute(PREDICT.format(marker), [1000]).fetchall() == []


def test_the_plan_is_kept_across_values(
    con: sqlml.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[int] = []
    render = engine.Session._render

    def counted(self: engine.Session, *args: Any, **kwargs: Any) -> Any:
        renders.append(1)
        return render(self, *args, **kwargs)

    monkeypatch.setattr(engine.Session, "_render", counted)
    con.execute(CHURN)
    everyone = con.execute(ALL).fetchall()
    renders.clear()
    for i in range(20):
        assert con.execute(PREDICT.format("?"), [i]).fetchall() == [everyone[i]]
    assert len(renders) == 1


def test_markers_inside_and_outside_the_call_keep_their_order(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    template = (
        "SELECT id, predicted_churned FROM ML.PREDICT(MODEL shop.churn,"
        " (SELECT * FROM shop.new_customers WHERE id BETWEEN {} AND {} AND tenure >= {}))"
        " WHERE predicted_churned = {} ORDER BY id LIMIT {}"
    )
    values = [10, 150, 12, True, 25]
    literal = con.execute(template.format(10, 150, 12, "true", 25)).fetchall()
    assert 0 < len(literal) <= 25
    assert con.execute(template.format(*["?"] * 5), values).fetchall() == literal
    numbered = template.format("$2", "$3", "$5", "$1", "$4")
    assert con.execute(numbered, [True, 10, 150, 25, 12]).fetchall() == literal


def test_feature_values_as_parameters_match_sklearn(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    sql = (
        "SELECT predicted_churned_probs FROM ML.PREDICT(MODEL shop.churn, (SELECT"
        " CAST(? AS BIGINT) AS tenure, CAST(? AS DOUBLE PRECISION) AS spend,"
        " CAST(? AS VARCHAR) AS plan, CAST(? AS BOOLEAN) AS promo))"
    )
    ref, new = _churn_reference()
    table = con.execute(
        "SELECT tenure, spend, plan, promo FROM shop.new_customers ORDER BY id LIMIT 12"
    ).fetchall()
    got = [con.execute(sql, list(row)).fetchall()[0][0][1]["prob"] for row in table]
    np.testing.assert_allclose(got, ref.predict_proba(new)[:12, 1], atol=1e-9)


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_parameters_with_each_scoring_path(con: sqlml.Connection, scoring: str) -> None:
    con.execute(CHURN)
    struct = f", STRUCT('{scoring}' AS scoring)"
    sql = PREDICT.format("?").replace(")) ORDER BY", f"){struct}) ORDER BY")
    everyone = con.execute(ALL.replace(")) ORDER BY", f"){struct}) ORDER BY")).fetchall()
    for i in (3, 150):
        rows = con.execute(sql, [i]).fetchall()
        assert [r[:2] for r in rows] == [everyone[i][:2]]
        np.testing.assert_allclose(_probs(rows), _probs([everyone[i]]), atol=1e-12)


def test_score_with_parameters(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    query = (
        "SELECT id, ML.SCORE(MODEL shop.churn) FROM shop.new_customers"
        " WHERE plan = {} AND id < {} ORDER BY id"
    )
    literal = con.execute(query.format("'basic'", 100)).fetchall()
    assert literal
    assert con.execute(query.format("?", "?"), ["basic", 100]).fetchall() == literal
    assert con.execute(query.format("?", "?"), ["it's", 100]).fetchall() == []


def test_values_of_other_kinds_on_one_plan(con: sqlml.Connection) -> None:
    con.execute(CHURN)
    sql = (
        "SELECT x, predicted_churned FROM ML.PREDICT(MODEL shop.churn,"
        " (SELECT *, ? AS x FROM shop.new_customers WHERE id = 3))"
    )
    expected = con.execute(ALL).fetchall()[3][1]
    for value in (5, "a", None, 2**40, 1.5, True, "b", 6, -(2**63), "x\ny'\\z"):
        assert con.execute(sql, [value]).fetchall() == [(value, expected)]
    for number in (5e-324, -1e300, 0.1, 1 / 3, -0.0, math.inf, -math.inf):
        assert con.execute(sql, [number]).fetchall() == [(number, expected)]
    assert math.isnan(con.execute(sql, [math.nan]).fetchall()[0][0])


def test_evaluate_with_parameters(con: sqlml.Connection) -> None:
    """On PostgreSQL the server takes the rows as query text: the values go in as literals."""
    con.execute(CHURN)
    query = (
        "SELECT * FROM ML.EVALUATE(MODEL shop.churn, (SELECT * FROM shop.customers WHERE id < {}))"
    )
    literal = con.execute(query.format(400)).fetchall()
    assert con.execute(query.format("?"), [400]).fetchall() == literal
    assert con.execute(query.format("?"), [400]).fetchall() == literal  # (not kept)
    text = query.replace("id < {}", "plan = {} AND id < {} AND {}")
    quoted = con.execute(text.format("'basic'", 400, "true")).fetchall()
    assert quoted != literal
    assert con.execute(text.format("$2", "$3", "$1"), [True, "basic", 400]).fetchall() == quoted
    hostile = con.execute(text.format("?", "?", "?"), ["x' OR 'a'='a", 400, True]).fetchall()
    assert hostile != quoted  # a value, never SQL: no customer has that plan


REFUSED = [CHURN.replace("FROM shop.customers", "FROM shop.customers WHERE id < ?")]
# no marker but in a comment: a wire client cannot send the value at all (sqlml.connect only)
REFUSED_IN_PROCESS = ["DROP MODEL shop.churn -- ?", "SHOW MODELS -- ?"]


@pytest.mark.parametrize("sql", REFUSED)
def test_parameters_in_other_ml_statements_are_refused(con: sqlml.Connection, sql: str) -> None:
    _refused(con, sql)


@pytest.mark.parametrize("con", ENGINES, indirect=True)  # (sqlml.connect's own API)
@pytest.mark.parametrize("sql", REFUSED_IN_PROCESS)
def test_parameters_for_no_marker_are_refused(con: sqlml.Connection, sql: str) -> None:
    _refused(con, sql)


def _refused(con: sqlml.Connection, sql: str) -> None:
    con.execute(CHURN)
    with pytest.raises(sqlml.NotSupportedError) as caught:
        con.execute(sql, [1])
    assert caught.value.sqlstate == "0A000"
    assert con.execute("SELECT count(*) FROM sqlml.models").fetchone() == (1,)


@pytest.mark.parametrize("values", [[], [1, 2]])
def test_wrong_number_of_parameters(con: sqlml.Connection, values: list[Any]) -> None:
    con.execute(CHURN)
    with pytest.raises(sqlml.ProgrammingError) as caught:
        con.execute(PREDICT.format("$1"), values)
    assert caught.value.sqlstate == "42P02"
    assert con.execute(PREDICT.format("$1"), [4]).fetchall()[0][0] == 4


@pytest.mark.parametrize("con", ENGINES, indirect=True)  # (sqlml.connect's own API)
def test_null_parameters_describe_an_ml_query(con: sqlml.Connection) -> None:
    """What the gateway does to Describe a statement: run it with NULL for every parameter."""
    con.execute(CHURN)
    described = con.session.execute_one(PREDICT.format("$1"), [None]).table
    assert described is not None
    assert described.num_rows == 0
    full = con.execute(PREDICT.format("$1"), [5]).fetch_arrow_table()
    assert described.schema.names == full.schema.names


def test_dollar_markers_without_spaces(con: sqlml.Connection) -> None:
    """``IN ($1,$2)`` as psycopg 3 writes it: stock sqlglot reads ``$1,$`` as the start of a
    dollar-quoted string; PostgreSQL's tags cannot start with a digit."""
    con.execute(CHURN)
    everyone = con.execute(ALL).fetchall()
    query = ALL.replace(" ORDER BY id", "").replace(
        "shop.new_customers", "shop.new_customers WHERE id IN ($1,$2,$3)"
    )
    rows = con.execute(query + " ORDER BY id", [42, 7, 199]).fetchall()
    assert rows == [everyone[7], everyone[42], everyone[199]]
    assert con.execute("SELECT $1,$2", ["a", "b"]).fetchone() == ("a", "b")
    assert con.execute("SELECT $q$1,$q$ || $1", ["x"]).fetchone() == ("1,x",)


def test_dollar_parameters_in_plain_sql(con: sqlml.Connection) -> None:
    assert con.execute("SELECT CAST($2 AS INTEGER) - CAST($1 AS INTEGER)", [1, 43]).fetchone() == (
        42,
    )
    assert con.execute("SELECT '$1 ?', CAST(? AS INTEGER)", [7]).fetchone() == ("$1 ?", 7)


# -- the markers themselves --------------------------------------------------------------------


def test_qmarks_are_numbered_in_text_order_outside_quotes_and_comments() -> None:
    sql = "SELECT '?', \"?\", ? -- ?\n, $$ ? $$, $t$ ? $t$, ? /* ? */, E'x', ?"
    assert placeholders.number_qmarks(sql) == (
        "SELECT '?', \"?\", $1 -- ?\n, $$ ? $$, $t$ ? $t$, $2 /* ? */, E'x', $3"
    )
    assert placeholders.number_qmarks("SELECT $1, ?") == "SELECT $1, ?"  # no mixing
    assert placeholders.numbers("SELECT $2, a$1, $1x, '$3', $10") == [2, 10]


def test_markers_for_psycopg2() -> None:
    assert placeholders.to_format("SELECT $2 + $1, '%', x % 2", ["a", "b"]) == (
        "SELECT %s + %s, '%%', x %% 2",
        ["b", "a"],
    )
    assert placeholders.to_format("SELECT ?, ?", [1, 2]) == ("SELECT %s, %s", [1, 2])
    assert placeholders.to_format('SELECT "sqlml"."x" = %s', [1]) == (
        'SELECT "sqlml"."x" = %s',
        [1],
    )
    with pytest.raises(errors.ProgrammingError):
        placeholders.to_format("SELECT ?, $1", [1])
    with pytest.raises(errors.ProgrammingError):
        placeholders.to_format("SELECT $2", [1])
    assert placeholders.compact("SELECT $3, $1, $3", ["a", "b", "c"]) == (
        "SELECT $1, $2, $1",
        ["c", "a"],
    )


@pytest.mark.parametrize("con", ENGINES, indirect=True)  # (sqlml.connect's own API)
def test_ml_sql_keeps_the_markers_for_the_caller(con: sqlml.Connection) -> None:
    """The gateway's PostgreSQL proxy renders a client's Parse with ml_sql and binds the values
    itself: the rendered SQL keeps $n, and bound like the statement gives the same rows."""
    con.execute(CHURN)
    rendered = con.session.ml_sql(PREDICT.format("$1"))
    assert rendered is not None
    assert placeholders.numbers(rendered) == [1]
    for i in (2, 9):
        table = con.session.engine.execute(rendered, [i]).table
        assert table is not None
        assert table.equals(con.execute(PREDICT.format("$1"), [i]).fetch_arrow_table())
    assert con.session.ml_sql(PREDICT.format("$1")) == rendered  # kept


def test_numpy_scalars_are_parameters_by_their_value(database: str) -> None:
    """NumPy scalars (what a pandas or numpy program has at hand) bind as their Python values
    on both engines; psycopg2 alone sent np.float64(0.5) as the text ``np.float64(0.5)``."""
    con = sqlml.connect(database, autocommit=True)
    try:
        values = [np.float64(0.5), np.float32(0.25), np.int64(-7), np.int16(3), np.bool_(True)]
        row = con.execute(
            "SELECT CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), CAST(? AS BIGINT),"
            " CAST(? AS INTEGER), CAST(? AS BOOLEAN)",
            values,
        ).fetchone()
        assert row == (0.5, 0.25, -7, 3, True)
        (nan,) = con.execute("SELECT CAST(? AS DOUBLE PRECISION)", [np.float64("nan")]).fetchone()
        assert math.isnan(nan)
    finally:
        con.close()
