"""cse.hoist: repeated subtrees computed once, results unchanged."""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp

from sqlml.cse import hoist, hoist_stages


def test_hoists_repeats_and_keeps_results() -> None:
    big = "(CAST(a AS DOUBLE) * 2.5 + CAST(b AS DOUBLE) * -1.25 + ABS(CAST(a AS DOUBLE) - 3))"
    outputs = [
        sqlglot.parse_one(f"1 / (1 + EXP(-{big}))"),
        sqlglot.parse_one(f"{big} > 0"),
        sqlglot.parse_one("a + 1"),
    ]
    before = [o.sql() for o in outputs]
    hoisted, rewritten = hoist(outputs, lambda n: exp.column(n, quoted=True), "c")
    assert len(hoisted) == 1
    assert [o.sql() for o in outputs] == before  # inputs untouched
    assert rewritten[2].sql() == "a + 1"  # nothing repeated, nothing changed
    assert "c0" in rewritten[0].sql()
    assert "c0" in rewritten[1].sql()
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE t AS SELECT range::DOUBLE AS a, (range * 7 % 5)::DOUBLE AS b FROM range(50)"
        )
        plain = con.sql("SELECT " + ", ".join(before) + " FROM t ORDER BY a").fetchall()
        inner = (
            "SELECT *, " + ", ".join(f'{e.sql("duckdb")} AS "{n}"' for n, e in hoisted) + " FROM t"
        )
        lifted = con.sql(
            "SELECT "
            + ", ".join(r.sql("duckdb") for r in rewritten)
            + f" FROM ({inner}) ORDER BY a"
        ).fetchall()
    finally:
        con.close()
    assert plain == lifted


def test_stages_lift_repeats_inside_lifted_expressions() -> None:
    """PostgreSQL's guarded sigmoid holds the linear score three times inside one lifted
    expression: the next stage down computes it once, and nothing is a bare alias."""
    big = "(CAST(a AS DOUBLE) * 2.5 + CAST(b AS DOUBLE) * -1.25 + ABS(CAST(a AS DOUBLE) - 3))"
    guarded = (
        f"CASE WHEN -{big} > 709.78 THEN 'inf'::DOUBLE WHEN -{big} < -745 THEN 0.0"
        f" ELSE EXP(-{big}) END"
    )
    sigmoid = f"1 / (1 + {guarded})"
    outputs = [
        sqlglot.parse_one(f"{big} > 0"),
        sqlglot.parse_one(f"1 - {sigmoid}"),
        sqlglot.parse_one(sigmoid),
    ]
    before = [o.sql() for o in outputs]
    stages, rewritten = hoist_stages(outputs, lambda n: exp.column(n, quoted=True), "c")
    lifted = [e for stage in stages for _, e in stage]
    text = " ".join(e.sql() for e in lifted + rewritten)
    assert text.count("2.5") == 1  # the linear score, once
    assert not any(isinstance(e.unnest(), exp.Column) for e in lifted)
    assert len(stages) >= 2
    query = "t"
    for stage in stages:
        columns = ", ".join(f'{e.sql("duckdb")} AS "{n}"' for n, e in stage)
        query = f"(SELECT *, {columns} FROM {query})"
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE t AS SELECT range::DOUBLE - 25 AS a, (range * 7 % 5)::DOUBLE AS b"
            " FROM range(50)"
        )
        plain = con.sql("SELECT " + ", ".join(before) + " FROM t ORDER BY a").fetchall()
        staged = con.sql(
            "SELECT " + ", ".join(r.sql("duckdb") for r in rewritten) + f" FROM {query} ORDER BY a"
        ).fetchall()
    finally:
        con.close()
    assert plain == staged


def test_case_branches_are_not_lifted() -> None:
    """Two trees of a forest often share a ``WHEN c THEN v`` branch: the branch is no value SQL
    can name (lifting it wrote ``CASE WHEN x THEN  WHEN ...``); its condition and value are."""
    condition = "CAST(a AS DOUBLE) * 2.5 + CAST(b AS DOUBLE) * -1.25 > 0.5"
    branch = f"WHEN {condition} THEN 0.125"
    outputs = [
        sqlglot.parse_one(f"CASE WHEN a > 1 THEN 1.0 {branch} ELSE 2.0 END"),
        sqlglot.parse_one(f"CASE WHEN b > 1 THEN 3.0 {branch} ELSE 4.0 END"),
    ]
    stages, rewritten = hoist_stages(outputs, lambda n: exp.column(n, quoted=True), "c")
    lifted = [e for stage in stages for _, e in stage]
    assert not any(isinstance(e, exp.If) for e in lifted)
    assert all(isinstance(w, exp.If) for r in rewritten for w in r.args["ifs"])
    assert any(condition in e.sql() for e in lifted)  # the condition, once
