"""Two sessions creating or replacing one DuckDB model at once (the PostgreSQL side is in
tests/test_pgprivileges.py): the second waits for the first, then replaces the model or fails
with 42710 before training; inside explicit transactions the loser gets 40001."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import sqlml
from sqlml import errors

CREATE = (
    "CREATE {} MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y'],"
    " data_split_method='NO_SPLIT', max_iterations=50)"
    " AS SELECT x, z, y FROM t"
)


def _sessions(tmp_path: Path) -> tuple[sqlml.Connection, sqlml.Connection]:
    path = str(tmp_path / "c.duckdb")
    first = sqlml.connect(path, autocommit=True)
    first.execute(
        "CREATE TABLE t AS SELECT i::DOUBLE AS x, (i % 7)::DOUBLE AS z, (i % 3 = 0) AS y"
        " FROM range(300000) r(i)"
    )
    return first, sqlml.connect(path, autocommit=True)


@pytest.mark.parametrize("replace", [False, True])
def test_two_duckdb_sessions_create_one_model_at_once(tmp_path: Path, replace: bool) -> None:
    """The first trains on many rows; the second starts while it trains, on few rows. Without
    the lock the second stored version 1 first and the first lost; with it the second waits."""
    first, second = _sessions(tmp_path)
    statement = CREATE.format("OR REPLACE" if replace else "")
    outcome: dict[str, Any] = {}

    def create(con: sqlml.Connection, key: str, sql: str) -> None:
        try:
            con.execute(sql)
            outcome[key] = "ok"
        except errors.Error as e:
            outcome[key] = e.sqlstate

    try:
        one = threading.Thread(target=create, args=(first, "first", statement))
        two = threading.Thread(target=create, args=(second, "second", statement + " LIMIT 500"))
        one.start()
        time.sleep(0.3)  # the first is training
        two.start()
        one.join(120)
        two.join(120)
        versions = first.execute(
            "SELECT version, row_count FROM sqlml.versions ORDER BY 1"
        ).fetchall()
        if replace:
            assert outcome == {"first": "ok", "second": "ok"}
            assert versions == [(1, 300000), (2, 500)]
        else:
            assert outcome == {"first": "ok", "second": "42710"}
            assert versions == [(1, 300000)]
    finally:
        first.close()
        second.close()


def test_a_conflict_between_open_transactions_is_40001(tmp_path: Path) -> None:
    """Inside explicit transactions the lock ends with the statement: both store version 1 and
    the later COMMIT fails; the model keeps one version."""
    first, second = _sessions(tmp_path)
    statement = CREATE.format("")
    try:
        first.execute("BEGIN")
        first.execute(statement)
        second.execute(statement)  # the first has not committed: its version 1 is not seen
        with pytest.raises(errors.Error) as raised:
            first.execute("COMMIT")
        assert first.execute("SELECT count(*) FROM sqlml.versions").fetchone() == (1,)
        assert raised.value.sqlstate == "40001"
        assert not first.session.engine.in_transaction()  # the failed COMMIT ended it
    finally:
        first.close()
        second.close()
