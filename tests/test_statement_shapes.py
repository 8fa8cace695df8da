"""ML calls in every statement shape (issue 12, point 3): ML.PREDICT, ML.SCORE and ML.EVALUATE
inside SELECT, CREATE TABLE AS, INSERT INTO ... SELECT, UPDATE ... FROM, CREATE VIEW, WITH,
EXPLAIN, and through the gateway COPY (SELECT ...) TO STDOUT and DECLARE CURSOR; on DuckDB and
PostgreSQL, through sqlml.connect and through the gateway (psycopg2), with autocommit on, inside
an explicit BEGIN ... COMMIT, and with PEP 249's implicit transaction (autocommit off); each
shape run twice (the second run uses the kept plan). Every result is compared with the plain
SELECT of the same ML call (the reference), rows and values.

Also: a view over ML.PREDICT or ML.SCORE scores with the version that serves when it is queried,
and a failed statement leaves the session in a failed transaction (25P02) that ROLLBACK ends."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import TEMPLATE, client_module, gateway_parts, load_shop, serving

import sqlml
from sqlml.wire.server import ServerConfig

MODEL = (
    "CREATE OR REPLACE MODEL shop.m OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['churned']) AS SELECT tenure, spend, plan, promo, churned"
    " FROM shop.customers WHERE {where}"
)
REGRESSION = (
    "CREATE OR REPLACE MODEL shop.r OPTIONS (model_type='linear_reg',"
    " input_label_cols=['value']) AS SELECT tenure, spend, plan, value FROM shop.customers"
    " WHERE {where}"
)
PREDICT = "ML.PREDICT(MODEL shop.m, TABLE shop.new_customers)"
PRED = f"SELECT id, predicted_churned FROM {PREDICT}"
PROBS = f"SELECT id, predicted_churned_probs FROM {PREDICT}"
SCORE = "SELECT id, ML.SCORE(MODEL shop.m) AS s FROM shop.new_customers"
REG = "SELECT id, predicted_value FROM ML.PREDICT(MODEL shop.r, TABLE shop.new_customers)"
EVAL = (
    "SELECT accuracy, roc_auc FROM ML.EVALUATE(MODEL shop.m,"
    " (SELECT * FROM shop.customers WHERE id >= 600))"
)
STORED = "SELECT accuracy, log_loss FROM ML.EVALUATE(MODEL shop.m)"
DROP = "DROP TABLE IF EXISTS out_t"
DROP_VIEW = "DROP VIEW IF EXISTS out_v"


@dataclass(frozen=True)
class Shape:
    """One statement shape: ``before`` (plain SQL) readies it, ``statement`` holds the ML call,
    ``read`` reads what it made (None: the statement's own rows), equal to ``reference``'s
    rows; ``rowcount``: what the statement reports (None: not checked)."""

    name: str
    statement: str
    reference: str
    before: tuple[str, ...] = ()
    read: str | None = None
    rowcount: int | None = None
    gateway_only: bool = False
    rows: Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]] | None = None


SHAPES = [
    Shape("select", PRED, PRED, rowcount=200),
    Shape("select-score", SCORE, SCORE, rowcount=200),
    Shape("select-evaluate", EVAL, EVAL),
    Shape("select-evaluate-stored", STORED, STORED),
    Shape("with", f"WITH p AS ({PRED}) SELECT * FROM p", PRED),
    Shape("with-evaluate", f"WITH e AS ({EVAL}) SELECT * FROM e", EVAL),
    Shape(
        "create-table-as",
        f"CREATE TABLE out_t AS {PRED}",
        PRED,
        before=(DROP_VIEW, DROP),
        read="SELECT * FROM out_t",
    ),
    Shape(
        "create-table-as-score",
        f"CREATE TABLE out_t AS {SCORE}",
        SCORE,
        before=(DROP_VIEW, DROP),
        read="SELECT * FROM out_t",
    ),
    Shape(
        "create-table-as-evaluate",
        f"CREATE TABLE out_t AS {EVAL}",
        EVAL,
        before=(DROP_VIEW, DROP),
        read="SELECT * FROM out_t",
    ),
    Shape(
        "insert-select",
        f"INSERT INTO out_t {PRED}",
        PRED,
        before=(DROP_VIEW, DROP, "CREATE TABLE out_t (id BIGINT, predicted_churned BOOLEAN)"),
        read="SELECT * FROM out_t",
        rowcount=200,
    ),
    Shape(
        "insert-select-score",
        f"INSERT INTO out_t {SCORE}",
        SCORE,
        before=(DROP_VIEW, DROP, "CREATE TABLE out_t (id BIGINT, s DOUBLE PRECISION)"),
        read="SELECT * FROM out_t",
        rowcount=200,
    ),
    Shape(
        "update-from-predict",
        "UPDATE out_t SET predicted_churned = p.predicted_churned FROM"
        f" {PREDICT} AS p WHERE out_t.id = p.id",
        PRED,
        before=(
            DROP_VIEW,
            DROP,
            "CREATE TABLE out_t AS SELECT id, CAST(NULL AS BOOLEAN) AS predicted_churned"
            " FROM shop.new_customers",
        ),
        read="SELECT * FROM out_t",
        rowcount=200,
    ),
    Shape(
        "update-from-subquery",
        "UPDATE out_t SET s = p.s FROM (" + SCORE + ") AS p WHERE out_t.id = p.id",
        SCORE,
        before=(
            DROP_VIEW,
            DROP,
            "CREATE TABLE out_t AS SELECT id, CAST(NULL AS DOUBLE PRECISION) AS s"
            " FROM shop.new_customers",
        ),
        read="SELECT * FROM out_t",
        rowcount=200,
    ),
    Shape(
        "update-set-score",
        "UPDATE out_t SET s = ML.SCORE(MODEL shop.m, c) FROM shop.new_customers AS c"
        " WHERE out_t.id = c.id",
        SCORE,
        before=(
            DROP_VIEW,
            DROP,
            "CREATE TABLE out_t AS SELECT id, CAST(NULL AS DOUBLE PRECISION) AS s"
            " FROM shop.new_customers",
        ),
        read="SELECT * FROM out_t",
        rowcount=200,
    ),
    Shape(
        "create-view",
        f"CREATE VIEW out_v AS {PRED}",
        PRED,
        before=(DROP_VIEW,),
        read="SELECT * FROM out_v",
    ),
    Shape(
        "create-view-probs",
        f"CREATE VIEW out_v AS {PROBS}",
        PROBS,
        before=(DROP_VIEW,),
        read="SELECT * FROM out_v",
    ),
    Shape(
        "create-view-score",
        f"CREATE VIEW out_v AS {SCORE}",
        SCORE,
        before=(DROP_VIEW,),
        read="SELECT * FROM out_v",
    ),
    Shape(
        "create-view-regression",
        f"CREATE VIEW out_v AS {REG}",
        REG,
        before=(DROP_VIEW,),
        read="SELECT * FROM out_v",
    ),
    Shape("explain", f"EXPLAIN {PRED}", PRED, rows=lambda rows: []),
]


# -- the fronts: sqlml.connect and the gateway, behind one small interface ------------------------


@dataclass
class Front:
    """A session on one front door: ``run`` returns (rows or None, rowcount)."""

    run: Callable[[str], tuple[list[tuple[Any, ...]] | None, int]]
    commit: Callable[[], None]
    rollback: Callable[[], None]
    sqlstate: Callable[[BaseException], str | None]
    copy_out: Callable[[str], list[str]] | None = None
    declare: Callable[[str], list[tuple[Any, ...]]] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def _connect_front(database: str, autocommit: bool) -> Front:
    con = sqlml.connect(database, autocommit=autocommit)

    def run(sql: str) -> tuple[list[tuple[Any, ...]] | None, int]:
        cursor = con.execute(sql)
        rows = cursor.fetchall() if cursor.description is not None else None
        return rows, cursor.rowcount

    return Front(run, con.commit, con.rollback, _sqlstate, closers=[con.close])


def _errors() -> tuple[type[BaseException], ...]:
    """What a failed statement raises on any front: sqlml's errors, psycopg2's, psycopg's."""
    return (sqlml.Error, psycopg2.Error, client_module("psycopg").Error)


def _sqlstate(e: BaseException) -> str | None:
    return getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)  # (psycopg 3: sqlstate)


def _gateway_front(port: int, autocommit: bool) -> Front:
    con = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
    con.autocommit = autocommit

    def run(sql: str) -> tuple[list[tuple[Any, ...]] | None, int]:
        with con.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description is not None else None
            return rows, cursor.rowcount

    def copy_out(sql: str) -> list[str]:
        buffer = io.StringIO()
        with con.cursor() as cursor:
            cursor.copy_expert(f"COPY ({sql}) TO STDOUT", buffer)
        return buffer.getvalue().splitlines()

    def declare(sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with con.cursor() as cursor:
            cursor.execute(f"DECLARE shapes_cursor CURSOR FOR {sql}")
            while batch := _fetch(cursor, "FETCH 64 FROM shapes_cursor"):
                rows += batch
            cursor.execute("CLOSE shapes_cursor")
        return rows

    return Front(run, con.commit, con.rollback, _sqlstate, copy_out, declare, closers=[con.close])


def _psycopg3_front(port: int, autocommit: bool, prepared: bool = False) -> Front:
    """psycopg 3: every statement goes as Parse/Bind/Execute (the extended protocol); with
    ``prepared`` (prepare_threshold=0) as a named prepared statement, run again from it."""
    psycopg = client_module("psycopg")
    con = psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname="shop",
        user="ana",
        autocommit=autocommit,
        prepare_threshold=0 if prepared else None,
    )

    def run(sql: str) -> tuple[list[tuple[Any, ...]] | None, int]:
        with con.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description is not None else None
            return rows, cursor.rowcount

    def copy_out(sql: str) -> list[str]:
        with con.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        return data.decode().splitlines()

    def declare(sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with con.cursor() as cursor:
            cursor.execute(f"DECLARE shapes_cursor CURSOR FOR {sql}")
            while batch := _fetch(cursor, "FETCH 64 FROM shapes_cursor"):
                rows += batch
            cursor.execute("CLOSE shapes_cursor")
        return rows

    return Front(run, con.commit, con.rollback, _sqlstate, copy_out, declare, closers=[con.close])


def _fetch(cursor: Any, sql: str) -> list[tuple[Any, ...]]:
    cursor.execute(sql)
    return list(cursor.fetchall())


def _duckdb_database(tmp_path: Path) -> str:
    path = str(tmp_path / "shapes.duckdb")
    con = sqlml.connect(path, autocommit=True)
    load_shop(con)
    _train(con.execute)
    con.close()
    return path


def _train(execute: Callable[[str], Any]) -> None:
    execute(MODEL.format(where="id < 600"))
    execute(REGRESSION.format(where="id < 600"))


_copies = itertools.count(1)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def trained_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(engine, template): the shop tables and the models shop.m and shop.r, trained once per
    module; each test gets a copy (a DuckDB file copied, a PostgreSQL database made from it as
    a template), so the tests stay independent without training the models again each."""
    if request.param == "duckdb":
        yield "duckdb", _duckdb_database(tmp_path_factory.mktemp("shapes"))
        return
    import pgcluster

    server = str(request.getfixturevalue("pg_server"))
    name = f"sqlml_shapes_{os.getpid()}"
    dsn = pgcluster.create_database(server, name, template=TEMPLATE)
    with contextlib.closing(sqlml.connect(dsn, autocommit=True)) as con:
        _train(con.execute)
    yield "postgres", name
    pgcluster.drop_database(server, name)


@pytest.fixture
def engine_database(
    trained_template: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(engine, database): a fresh copy of the module's trained database."""
    engine, template = trained_template
    if engine == "duckdb":
        path = tmp_path / "shapes.duckdb"
        shutil.copyfile(template, path)
        yield engine, str(path)
        return
    import pgcluster

    server = str(request.getfixturevalue("pg_server"))
    name = f"sqlml_shapes_{os.getpid()}_{next(_copies)}"
    dsn = pgcluster.create_database(server, name, template=template)
    yield engine, dsn
    pgcluster.drop_database(server, name)


@contextlib.contextmanager
def front(engine: str, database: str, via: str, autocommit: bool) -> Iterator[Front]:
    if via == "connect":
        made = _connect_front(database, autocommit)
        try:
            yield made
        finally:
            for close in made.closers:
                close()
        return
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        if via.startswith("psycopg3"):
            made = _psycopg3_front(port, autocommit, prepared=via == "psycopg3-prepared")
        else:
            made = _gateway_front(port, autocommit)
        try:
            yield made
        finally:
            for close in made.closers:
                close()


# -- comparing rows -------------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """A value comparable across paths: floats rounded (PostgreSQL views compute 1 - p), a
    PostgreSQL composite array (text over the wire) left as it is."""
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else value
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_normal(v) for v in value)
    return value


def _same(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((_normal(tuple(r)) for r in rows), key=repr)


# -- the table of shapes --------------------------------------------------------------------------

TRANSACTIONS = ["autocommit", "explicit", "implicit"]  # implicit: PEP 249 (autocommit off)


@pytest.mark.parametrize("transaction", TRANSACTIONS)
@pytest.mark.parametrize("via", ["connect", "gateway", "psycopg3", "psycopg3-prepared"])
def test_ml_calls_in_every_statement_shape(
    engine_database: tuple[str, str], via: str, transaction: str
) -> None:
    engine, database = engine_database
    with front(engine, database, via, autocommit=transaction != "implicit") as session:
        references = {s.reference: _same(_rows(session, s.reference)) for s in SHAPES}
        session.commit()
        for shape in SHAPES:
            for attempt in (1, 2):  # the second run takes the kept plan
                where = f"{shape.name} (run {attempt}, {engine}, {via}, {transaction})"
                _one_shape(session, shape, references[shape.reference], transaction, where)
        if via != "connect":
            _wrapped_shapes(session, references[PRED], transaction)


def _rows(session: Front, sql: str) -> list[tuple[Any, ...]]:
    rows, _ = session.run(sql)
    assert rows is not None, sql
    return rows


def _one_shape(
    session: Front, shape: Shape, reference: list[tuple[Any, ...]], transaction: str, where: str
) -> None:
    if transaction == "explicit":
        session.run("BEGIN")
    for sql in shape.before:
        session.run(sql)
    try:
        rows, count = session.run(shape.statement)
    except Exception as e:
        raise AssertionError(f"{where}: {shape.statement!r} failed: {e}") from e
    if shape.rowcount is not None:
        assert count == shape.rowcount, where
    if shape.read is not None:
        rows = _rows(session, shape.read)
    if shape.rows is not None:
        assert rows, where  # (EXPLAIN: a plan)
        rows = shape.rows(rows)
        reference = []
    assert rows is not None, where
    assert _same(rows) == reference, where
    if transaction == "explicit":
        session.run("COMMIT")
    else:
        session.commit()
    if shape.read is not None:  # what the statement made outlives its transaction
        assert _same(_rows(session, shape.read)) == reference, f"{where}, after COMMIT"
        session.commit()


def _wrapped_shapes(session: Front, reference: list[tuple[Any, ...]], transaction: str) -> None:
    """COPY (SELECT ...) TO STDOUT and DECLARE CURSOR (a named psycopg2 cursor), twice each."""
    assert session.copy_out is not None
    assert session.declare is not None
    expected = sorted(f"{i}\t{'t' if p else 'f'}" for i, p in reference)
    for attempt in (1, 2):
        if transaction == "explicit":
            session.run("BEGIN")
        assert sorted(session.copy_out(PRED)) == expected, f"COPY, run {attempt}"
        if transaction == "autocommit":  # (a cursor without HOLD lives in a transaction)
            session.run("BEGIN")
        assert _same(session.declare(PRED)) == reference, f"DECLARE, run {attempt}"
        if transaction in ("explicit", "autocommit"):
            session.run("COMMIT")
        else:
            session.commit()


# -- views score with the version that serves when they are queried -------------------------------

VIEWS = {
    "out_pred": PRED,
    "out_probs": PROBS,
    "out_threshold": "SELECT id, predicted_churned, predicted_churned_probs FROM ML.PREDICT("
    "MODEL shop.m, TABLE shop.new_customers, STRUCT(0.3 AS threshold))",
    "out_score": SCORE,
    "out_reg": REG,
}


@pytest.mark.parametrize("via", ["connect", "gateway"])
@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "implicit"])
def test_a_view_scores_with_the_version_that_serves_now(
    engine_database: tuple[str, str], via: str, autocommit: bool
) -> None:
    engine, database = engine_database
    with front(engine, database, via, autocommit) as session:
        for name, sql in VIEWS.items():
            session.run(f"CREATE VIEW {name} AS {sql}")
        session.commit()
        before = {name: _same(_rows(session, sql)) for name, sql in VIEWS.items()}
        for name in VIEWS:
            assert _same(_rows(session, f"SELECT * FROM {name}")) == before[name], name
        session.commit()
        session.run(MODEL.format(where="id >= 300"))  # other rows: other weights
        session.run(REGRESSION.format(where="id >= 300"))
        session.commit()
        for name, sql in VIEWS.items():
            after = _same(_rows(session, sql))
            assert after != before[name], name  # (the new version does score differently)
            assert _same(_rows(session, f"SELECT * FROM {name}")) == after, name
        session.commit()


# Multiclass and k-means models: several output values (a label and its probabilities, a
# centroid and its distances). A new version may have another number of classes or clusters.
MULTICLASS = (
    "CREATE OR REPLACE MODEL shop.mc OPTIONS (model_type='logistic_reg',"
    " input_label_cols=['segment']) AS SELECT tenure, spend, plan, promo, segment"
    " FROM shop.customers WHERE {where}"
)
KMEANS = (
    "CREATE OR REPLACE MODEL shop.km OPTIONS (model_type='kmeans', num_clusters={k})"
    " AS SELECT tenure, spend, plan FROM shop.customers WHERE {where}"
)
MANY_VIEWS = {
    "out_multi": "SELECT * FROM ML.PREDICT(MODEL shop.mc, TABLE shop.new_customers)",
    "out_multi_q": "SELECT id, predicted_segment_probs, predicted_segment FROM"
    " ML.PREDICT(MODEL shop.mc, (SELECT id, tenure, spend, plan, promo FROM shop.customers"
    " WHERE id >= 500))",
    "out_km": "SELECT * FROM ML.PREDICT(MODEL shop.km, TABLE shop.new_customers)",
    "out_km_q": "SELECT id, centroid_id, nearest_centroids_distance FROM ML.PREDICT(MODEL"
    " shop.km, (SELECT * FROM shop.customers WHERE id >= 500))",
}
# (versions in turn: 3 classes and 3 clusters; 2 classes and 4 clusters; 3 classes on other rows
# and 2 clusters)
VERSIONS = [
    ("true", 3, "true"),
    ("segment <> 'high'", 4, "id >= 300"),
    ("id >= 300", 2, "id < 500"),
]


@pytest.mark.parametrize("via", ["connect", "gateway", "psycopg3"])
def test_a_view_over_multiclass_and_kmeans_scores_with_the_serving_version(
    engine_database: tuple[str, str], via: str
) -> None:
    """The view's rows are ML.PREDICT's own (same columns, same values) with every version,
    also when the number of classes or clusters changes."""
    engine, database = engine_database
    with front(engine, database, via, autocommit=True) as session:
        seen: dict[str, list[Any]] = {name: [] for name in MANY_VIEWS}
        for turn, (classes, clusters, rows) in enumerate(VERSIONS):
            session.run(MULTICLASS.format(where=classes))
            session.run(KMEANS.format(k=clusters, where=rows))
            if turn == 0:
                for name, sql in MANY_VIEWS.items():
                    session.run(f"CREATE VIEW {name} AS {sql}")
            for name, sql in MANY_VIEWS.items():
                direct = _same(_rows(session, sql))
                assert _same(_rows(session, f"SELECT * FROM {name}")) == direct, (name, turn)
                assert direct not in seen[name], (name, turn)  # (each version scores otherwise)
                seen[name].append(direct)


def test_a_view_over_multiclass_keeps_its_column_types_postgres(pg_database: str) -> None:
    """PostgreSQL: the view's columns have the types of a plain ML.PREDICT (the label's own
    type, the extension's composite arrays), as psql's \\d shows them."""
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        con.execute(MULTICLASS.format(where="true"))
        con.execute(KMEANS.format(k=3, where="true"))
        for name, sql in MANY_VIEWS.items():
            con.execute(f"CREATE VIEW {name} AS {sql}")
            con.execute(f"CREATE TABLE {name}_t AS {sql}")
    with contextlib.closing(psycopg2.connect(pg_database)) as raw, raw.cursor() as cursor:
        for name in MANY_VIEWS:
            types = []
            for relation in (name, f"{name}_t"):
                cursor.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
                    [relation],
                )
                types.append(cursor.fetchall())
            assert types[0] == types[1], name


def test_drop_model_and_new_label_type_under_a_multiclass_view_postgres(pg_database: str) -> None:
    """PostgreSQL: as for a binary model's view, DROP MODEL under a view over ML.PREDICT of a
    multiclass model is 2BP01 and so is a version whose labels have another type (the view's
    column type); both leave the serving version, which the view goes on scoring with."""
    sql = MANY_VIEWS["out_multi"]
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        con.execute(MULTICLASS.format(where="true"))
        con.execute(f"CREATE VIEW out_multi AS {sql}")
        before = _same(con.execute("SELECT * FROM out_multi").fetchall())
        failing = [
            "DROP MODEL shop.mc",
            "CREATE OR REPLACE MODEL shop.mc OPTIONS (model_type='logistic_reg',"
            " input_label_cols=['churned']) AS SELECT tenure, spend, plan, promo, churned"
            " FROM shop.customers",
        ]
        for statement in failing:
            with pytest.raises(sqlml.Error) as raised:
                con.execute(statement)
            assert raised.value.sqlstate == "2BP01", statement
            assert _same(con.execute("SELECT * FROM out_multi").fetchall()) == before
            assert _same(con.execute(sql).fetchall()) == before
        con.execute("DROP VIEW out_multi")
        con.execute("DROP MODEL shop.mc")


def test_install_gives_older_models_a_prediction_function_postgres(pg_database: str) -> None:
    """PostgreSQL: a model stored by an install without prediction functions gets one from
    the upgrade that ``sqlml install`` runs, and then a view over its ML.PREDICT works."""
    sql = MANY_VIEWS["out_km"]
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        con.execute(KMEANS.format(k=3, where="true"))
        direct = _same(con.execute(sql).fetchall())
    with contextlib.closing(psycopg2.connect(pg_database)) as raw, raw.cursor() as cursor:
        raw.autocommit = True
        cursor.execute("SELECT sqlml.predict_function_name('shop', 'km')::text")
        (name,) = cursor.fetchone()
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = 'sqlml'::regnamespace AND p.proname = %s",
            [name],
        )
        (signature,) = cursor.fetchone()
        cursor.execute(f"DROP FUNCTION {signature}")  # (as an older install left it)
        cursor.execute("SELECT sqlml.upgrade_scoring_functions()")
        assert cursor.fetchone() == (1,)
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        con.execute(f"CREATE VIEW out_km AS {sql}")
        assert _same(con.execute("SELECT * FROM out_km").fetchall()) == direct


def test_a_multiclass_view_needs_usage_on_the_model_postgres(pg_database: str) -> None:
    """PostgreSQL: querying a view over ML.PREDICT of a multiclass model calls the model's
    prediction function, whose EXECUTE follows USAGE on the model (42501 without it)."""
    role = f"shapes_viewer_{os.getpid()}"
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        con.execute(MULTICLASS.format(where="true"))
        con.execute(f"CREATE VIEW out_multi AS {MANY_VIEWS['out_multi']}")
    with contextlib.closing(psycopg2.connect(pg_database)) as raw, raw.cursor() as cursor:
        raw.autocommit = True
        cursor.execute("SELECT * FROM out_multi")
        expected = _same(cursor.fetchall())
        cursor.execute(f'CREATE ROLE "{role}"')
        try:
            cursor.execute(f'GRANT USAGE ON SCHEMA shop TO "{role}"')
            cursor.execute(f'GRANT SELECT ON shop.new_customers, out_multi TO "{role}"')
            for grant in ("revoke_model", "grant_model", "revoke_model"):
                cursor.execute(f"SELECT sqlml.{grant}('shop.mc', %s)", [role])
                cursor.execute(f'SET ROLE "{role}"')
                try:
                    if grant == "grant_model":
                        cursor.execute("SELECT * FROM out_multi")
                        assert _same(cursor.fetchall()) == expected
                    else:
                        with pytest.raises(psycopg2.Error) as raised:
                            cursor.execute("SELECT * FROM out_multi")
                        assert raised.value.pgcode == "42501"
                finally:
                    cursor.execute("RESET ROLE")
        finally:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


def test_a_view_outlives_sessions_and_sees_a_new_version(tmp_path: Path) -> None:
    """DuckDB: the view's SQL names the model's macro, which a later session's CREATE OR
    REPLACE MODEL replaces; a plain duckdb connection reads the view too."""
    duckdb = client_module("duckdb")
    database = _duckdb_database(tmp_path)
    with contextlib.closing(sqlml.connect(database, autocommit=True)) as con:
        con.execute(f"CREATE VIEW out_v AS {SCORE}")
    with contextlib.closing(sqlml.connect(database, autocommit=True)) as con:
        con.execute(MODEL.format(where="id >= 300"))
        expected = _same(con.execute(SCORE).fetchall())
    with contextlib.closing(duckdb.connect(database)) as raw:
        assert _same(raw.execute("SELECT * FROM out_v").fetchall()) == expected


def test_a_view_over_evaluate_is_refused(engine_database: tuple[str, str]) -> None:
    engine, database = engine_database
    with front(engine, database, "connect", autocommit=True) as session:
        with pytest.raises(sqlml.Error) as raised:
            session.run(f"CREATE VIEW out_v AS {EVAL}")
        assert session.sqlstate(raised.value) == "0A000"
        assert _rows(session, "SELECT 1") == [(1,)]


# -- a failed statement: 25P02 until ROLLBACK, then the session works ------------------------------

# (name, statement, its SQLSTATE, whether the engine ran it: an error sqlml raises before the
# engine runs anything leaves sqlml.connect's transaction usable, as a cancelled training does
# (tests/test_cancel.py); the gateway's sessions abort the transaction on every error, as
# PostgreSQL does)
FAILING = [
    ("unknown-model", "SELECT * FROM ML.PREDICT(MODEL shop.nope, TABLE shop.new_customers)", "42704", False),
    ("missing-column", "SELECT * FROM ML.PREDICT(MODEL shop.m, (SELECT id FROM shop.customers))", "42703", False),
    ("ctas-unknown-table", "CREATE TABLE out_t AS SELECT * FROM ML.PREDICT(MODEL shop.m, TABLE nope)", "42P01", True),
    ("insert-unknown-table", f"INSERT INTO nope {PRED}", "42P01", True),
]  # fmt: skip


@pytest.mark.parametrize("via", ["connect", "gateway", "psycopg3"])
@pytest.mark.parametrize("autocommit", [True, False], ids=["explicit", "implicit"])
@pytest.mark.parametrize(
    ("name", "statement", "sqlstate", "engine_ran"), FAILING, ids=[f[0] for f in FAILING]
)
def test_a_failed_statement_leaves_25P02_until_rollback(
    engine_database: tuple[str, str],
    via: str,
    autocommit: bool,
    name: str,
    statement: str,
    sqlstate: str,
    engine_ran: bool,
) -> None:
    engine, database = engine_database
    aborts = engine_ran or via != "connect"
    with front(engine, database, via, autocommit) as session:
        reference = _same(_rows(session, PRED))
        session.commit()
        for attempt in (1, 2):
            if autocommit:
                session.run("BEGIN")
            session.run(f"CREATE TEMP TABLE before_{attempt} AS SELECT 1 AS x")
            with pytest.raises(_errors()) as raised:
                session.run(statement)
            assert session.sqlstate(raised.value) == sqlstate, (name, attempt)
            if aborts:
                for after in (PRED, "SELECT 1", f"CREATE TABLE out_t AS {PRED}"):
                    with pytest.raises(_errors()) as aborted:
                        session.run(after)
                    assert session.sqlstate(aborted.value) == "25P02", (name, after, attempt)
            else:  # the transaction goes on: what ran before the error is there
                assert _rows(session, f"SELECT x FROM before_{attempt}") == [(1,)]
                assert _same(_rows(session, PRED)) == reference
            if autocommit:
                session.run("ROLLBACK")
            else:
                session.rollback()
            assert _same(_rows(session, PRED)) == reference
            session.run(f"CREATE TABLE out_t AS {PRED}")
            assert _same(_rows(session, "SELECT * FROM out_t")) == reference
            session.run("DROP TABLE out_t")
            session.commit()


def test_drop_model_under_a_view_duckdb(tmp_path: Path) -> None:
    """DuckDB: DROP MODEL drops the macro; the view then fails with 42883, not stale scores."""
    database = _duckdb_database(tmp_path)
    with contextlib.closing(sqlml.connect(database, autocommit=True)) as con:
        con.execute(f"CREATE VIEW out_v AS {SCORE}")
        con.execute("DROP MODEL shop.m")
        with pytest.raises(sqlml.Error) as raised:
            con.execute("SELECT * FROM out_v")
        assert raised.value.sqlstate == "42883"


def test_new_inputs_under_a_view_postgres(pg_database: str) -> None:
    """PostgreSQL: a version with other input columns cannot replace the scoring function a
    view calls (2BP01, as for a column type a view depends on); the old version keeps serving."""
    with contextlib.closing(sqlml.connect(pg_database, autocommit=True)) as con:
        _train(con.execute)
        con.execute(f"CREATE VIEW out_v AS {SCORE}")
        before = _same(con.execute("SELECT * FROM out_v").fetchall())
        with pytest.raises(sqlml.Error) as raised:
            con.execute(
                "CREATE OR REPLACE MODEL shop.m OPTIONS (model_type='logistic_reg',"
                " input_label_cols=['churned']) AS SELECT tenure, churned FROM shop.customers"
            )
        assert raised.value.sqlstate == "2BP01"
        assert _same(con.execute("SELECT * FROM out_v").fetchall()) == before
        assert _same(con.execute(SCORE).fetchall()) == before
