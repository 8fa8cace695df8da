"""CREATE OR REPLACE MODEL ... OPTIONS (retrain = 'if_changed') (sqlml/unchanged.py; docs/sql.md,
"Model lifecycle"), on DuckDB and PostgreSQL: no new version while the query, the options, the
sqlml version and the rows (by content, in any order) are those of the latest version; a new
one when any of them changed."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import ENGINES, Noticing, module_database

from sqlml import errors

_names = itertools.count(1)
ROWS = (
    "SELECT i, CAST(i % 7 AS DOUBLE PRECISION) AS x, CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END"
    " AS s, CAST(i % 7 * 2 + i % 3 AS DOUBLE PRECISION) AS y FROM generate_series(1, 500) AS g(i)"
)


class Db(Noticing):
    def table(self) -> str:
        name = f"u.t{next(_names)}"
        self.run(f"CREATE TABLE {name} AS {ROWS}")
        return name

    def create(
        self,
        model: str,
        table: str,
        options: str = "",
        query: str = "",
        retrain: str = "if_changed",
    ) -> str:
        """CREATE OR REPLACE MODEL with ``retrain``; the NOTICE about the outcome."""
        self.messages.clear()
        self.run(
            f"CREATE OR REPLACE MODEL {model} OPTIONS (model_type = 'linear_reg',"
            f" input_label_cols = ['y'], retrain = '{retrain}'{options})"
            f" AS {query or f'SELECT x, s, y FROM {table}'}"
        )
        # (over DuckDB "stored m version n"; in the PostgreSQL server, inside the function's
        # transaction, "wrote m version n: it is stored ... once this transaction commits")
        return next(m for m in reversed(self.messages) if "unchanged" in m or " version " in m)

    def versions(self, model: str) -> list[int]:
        return [r[0] for r in self.run(f"SELECT version FROM ML.VERSIONS(MODEL {model})")]


@pytest.fixture(scope="module", params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    with module_database(str(request.param), request, tmp_path_factory, "unchanged") as database:
        found = Db(database)
        found.run("CREATE SCHEMA u")
        yield found
        found.con.close()


def test_the_same_rows_in_another_order_train_nothing(db: Db) -> None:
    table = db.table()
    assert "u.m1 version 1" in db.create("u.m1", table)
    said = db.create("u.m1", table)
    assert "unchanged since version 1" in said
    # the same rows, written in the opposite order (the fingerprint is order-independent)
    db.run(f"CREATE TABLE {table}_r AS SELECT * FROM {table} ORDER BY i DESC")
    db.run(f"DROP TABLE {table}")
    db.run(f"ALTER TABLE {table}_r RENAME TO {table.split('.')[1]}")
    assert "unchanged since version 1" in db.create("u.m1", table)
    assert db.versions("u.m1") == [1]


def test_an_added_or_changed_row_trains_a_new_version(db: Db) -> None:
    table = db.table()
    db.create("u.m2", table)
    db.run(f"INSERT INTO {table} VALUES (501, 1.0, 'a', 3.0)")
    assert "u.m2 version 2" in db.create("u.m2", table)
    db.run(f"UPDATE {table} SET y = y + 1 WHERE i = 7")  # (as many rows: a value changed)
    assert "u.m2 version 3" in db.create("u.m2", table)
    db.run(f"UPDATE {table} SET s = NULL WHERE i = 8")  # (a NULL where a value was)
    assert "u.m2 version 4" in db.create("u.m2", table)
    assert "unchanged since version 4" in db.create("u.m2", table)


def test_the_query_options_or_sqlml_version_changing_trains_a_new_version(db: Db) -> None:
    table = db.table()
    db.create("u.m3", table)
    assert "version 2" in db.create("u.m3", table, query=f"SELECT x, s, y FROM {table} WHERE i > 0")
    assert "version 3" in db.create("u.m3", table, ", l2_reg = 0.5")
    assert "unchanged since version 3" in db.create("u.m3", table, ", l2_reg = 0.5")
    # the deploy options are not the model's: a change of them alone trains nothing
    said = db.create("u.m3", table, ", l2_reg = 0.5, deploy = 'manual'")
    assert "unchanged since version 3" in said
    # a version trained by another sqlml version: trained again by this one
    db.run(
        'UPDATE sqlml.versions SET library_versions = \'{"sqlml": "0.0.1"}\''
        " WHERE model_name = 'm3' AND version = 3"
    )
    assert "version 4" in db.create("u.m3", table, ", l2_reg = 0.5")
    assert db.versions("u.m3") == [1, 2, 3, 4]


def test_always_trains_whatever_changed(db: Db) -> None:
    table = db.table()
    db.create("u.m8", table)
    assert "u.m8 version 2" in db.create("u.m8", table, retrain="always")
    assert "unchanged since version 2" in db.create("u.m8", table)


def test_the_latest_version_counts_even_when_it_does_not_serve(db: Db) -> None:
    table = db.table()
    db.create("u.m4", table)
    db.run(f"INSERT INTO {table} VALUES (501, 1.0, 'a', 3.0)")
    assert "version 2" in db.create("u.m4", table, ", deploy = 'manual'")
    ((serving,),) = db.run("SELECT version FROM ML.VERSIONS(MODEL u.m4) WHERE status = 'serving'")
    assert serving == 1
    # version 2 was trained on these rows: a training again would only make it once more
    assert "unchanged since version 2" in db.create("u.m4", table, ", deploy = 'manual'")


def test_sampled_and_streamed_trainings_compare_the_rows_they_read(db: Db) -> None:
    table = db.table()
    db.create("u.m5", table, ", max_training_rows = 100")
    assert "unchanged since version 1" in db.create("u.m5", table, ", max_training_rows = 100")
    # past its memory budget linear_reg learns from the stream: every row's fingerprint
    streamed = ", max_training_memory_mb = 0.01"
    db.create("u.m6", table, streamed + ", data_split_method = 'NO_SPLIT'")
    assert any("learns from them as they are read" in m for m in db.messages)
    said = db.create("u.m6", table, streamed + ", data_split_method = 'NO_SPLIT'")
    assert "unchanged since version 1" in said


INCREMENTAL = ", incremental = TRUE, watermark_col = 'i'"


def weights(db: Db, model: str) -> list[tuple[str, float]]:
    found = db.run(f"SELECT processed_input, weight FROM ML.WEIGHTS(MODEL {model})")
    return sorted((str(name), float(w)) for name, w in found if w is not None)


def test_incremental_adds_the_new_rows_while_the_model_is_the_same(db: Db) -> None:
    table = db.table()
    query = f"SELECT i, x, s, y FROM {table}"
    create = {"table": table, "options": INCREMENTAL, "query": query, "retrain": "incremental"}
    assert "u.m9 version 1" in db.create("u.m9", **create)
    db.run(f"INSERT INTO {table} VALUES (501, 1.0, 'a', 3.0), (502, 5.0, 'b', 11.0)")
    assert "u.m9 version 2" in db.create("u.m9", **create)
    assert any("adding 2 rows to the 500 rows of version 1" in m for m in db.messages)
    # RETRAIN of linear_reg is exact: the model trained on every row, in full
    db.create("u.m10", **{**create, "retrain": "always"})
    got, full = weights(db, "u.m9"), weights(db, "u.m10")
    assert [n for n, _ in got] == [n for n, _ in full]
    np.testing.assert_allclose([w for _, w in got], [w for _, w in full], rtol=1e-9, atol=1e-9)
    # nothing new: no version; another query: a training in full
    assert "nothing to add, version 2 stays" in db.create("u.m9", **create)
    assert db.versions("u.m9") == [1, 2]
    db.create("u.m9", **{**create, "query": query + " WHERE i > 1"})
    assert any("reading the training rows of u.m9" in m for m in db.messages)
    assert db.versions("u.m9") == [1, 2, 3]


def test_incremental_without_incremental_true_is_22023(db: Db) -> None:
    with pytest.raises(errors.Error) as raised:
        db.create("u.m11", db.table(), retrain="incremental")
    assert raised.value.sqlstate == "22023"


def test_a_bad_value_is_22023_and_stores_nothing(db: Db) -> None:
    table = db.table()
    with pytest.raises(errors.Error) as raised:
        db.create("u.m7", table, retrain="sometimes")
    assert raised.value.sqlstate == "22023"
    assert "RETRAIN" in str(raised.value)
    assert db.run("SELECT count(*) FROM sqlml.versions WHERE model_name = 'm7'") == [(0,)]
