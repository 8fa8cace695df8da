"""cse.hoist: repeated subtrees computed once, results unchanged."""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp

from sqlml.cse import hoist


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
