"""ML functions as registered entries (issue 13, point 1): a function registered from outside the
package runs through every front door (sqlml.connect on DuckDB and PostgreSQL, the gateway over
DuckDB and the PostgreSQL proxy, with psycopg 3), and every entry's STRUCT fields are checked
(an unknown field 22023 with the closest name as hint, a value of the wrong type 22023)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import sqlml
from sqlml import functions

LINEAR = (
    "CREATE OR REPLACE MODEL shop.lin OPTIONS (model_type='linear_reg',"
    " input_label_cols=['value']) AS SELECT tenure, spend, plan, value FROM shop.customers"
)
LOGISTIC = (
    "CREATE OR REPLACE MODEL shop.log OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['churned']) AS SELECT tenure, spend, plan, churned FROM shop.customers"
)


def fails(con: Any, sql: str) -> Any:
    with pytest.raises(sqlml.Error) as caught:
        con.execute(sql).fetchall()
    return caught.value


def sqlstate(error: Any) -> str | None:
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


@pytest.fixture
def outside() -> Iterator[functions.Function]:
    """ML.VERSION_FACTS, registered the way a third party would: one entry, from outside the
    package; it reads the stored version (model type, inputs, version) and a STRUCT field."""

    def columns(version: Any, settings: Any) -> list[functions.Column]:
        return [
            functions.Column("model_type", "STRING"),
            functions.Column("inputs", "INT64"),
            functions.Column("version", "INT64"),
            functions.Column("scaled", "FLOAT64"),
        ]

    def compute(version: Any, settings: Any) -> list[tuple[Any, ...]]:
        scale = settings.get("scale", 1.0)
        return [(version.model_type, len(version.inputs), version.version, scale * 2.5)]

    entry = functions.register(
        functions.Function(
            name="VERSION_FACTS",
            table=True,
            rows=functions.NONE,
            runs=functions.METADATA,
            fields=(functions.Field("scale", "FLOAT64"),),
            columns=columns,
            compute=compute,
        )
    )
    yield entry
    functions.unregister(entry.name)


def test_a_function_registered_from_outside_runs_at_every_front_door(
    con: Any, outside: functions.Function
) -> None:
    con.execute(LINEAR)
    cursor = con.execute("SELECT * FROM ML.VERSION_FACTS(MODEL shop.lin, STRUCT(2 AS scale))")
    assert [c[0] for c in cursor.description] == ["model_type", "inputs", "version", "scaled"]
    assert cursor.fetchall() == [("linear_reg", 3, 1, 5.0)]
    error = fails(con, "SELECT * FROM ML.VERSION_FACTS(MODEL shop.lin, STRUCT(2 AS scal))")
    assert sqlstate(error) == "22023"
    error = fails(con, "SELECT * FROM ML.VERSION_FACTS(MODEL shop.lin, STRUCT('x' AS scale))")
    assert sqlstate(error) == "22023"


def test_an_unknown_struct_field_is_22023_with_the_closest_name(con: Any) -> None:
    con.execute(LOGISTIC)
    error = fails(
        con,
        "SELECT * FROM ML.EVALUATE(MODEL shop.log, TABLE shop.customers, STRUCT(0.6 AS treshold))",
    )
    assert sqlstate(error) == "22023"
    hint = getattr(error, "hint", None) or getattr(getattr(error, "diag", None), "message_hint", "")
    assert "THRESHOLD" in (hint or "")


def test_a_struct_field_of_the_wrong_type_is_22023(con: Any) -> None:
    con.execute(LOGISTIC)
    for call in (
        "ML.PREDICT(MODEL shop.log, TABLE shop.new_customers, STRUCT(1 AS scoring))",
        "ML.PREDICT(MODEL shop.log, TABLE shop.new_customers, STRUCT('high' AS threshold))",
        "ML.EVALUATE(MODEL shop.log, TABLE shop.customers, STRUCT(TRUE AS threshold))",
    ):
        assert sqlstate(fails(con, f"SELECT * FROM {call}")) == "22023", call


def test_every_built_in_is_an_entry() -> None:
    for name, table in (("PREDICT", True), ("EVALUATE", True), ("SCORE", False)):
        entry = functions.find(name)
        assert entry is not None
        assert entry.make is not None
        assert entry.table == table
