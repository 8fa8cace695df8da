"""The model's life after CREATE MODEL (issue 14, first slice; docs/sql.md, "Model lifecycle"):
ML.VERSIONS, MODEL m VERSION n, ALTER MODEL ... DEPLOY / ROLLBACK, ML.DEPLOYMENTS, DROP MODEL m
VERSION n and CREATE MODEL's deploy option, on DuckDB and PostgreSQL, through sqlml.connect and
through the gateway. Tiny tables and linear_reg: each model trains in well under a second."""

from __future__ import annotations

import getpass
import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ENGINES, gateway_parts, module_database, serving, shop_database

import sqlml
from sqlml import errors

ROWS = 60
# y depends on x and z: a model on both fits well, a heavily regularized one badly
POINTS = (
    "SELECT CAST(i AS DOUBLE PRECISION) AS x, CAST(i % 5 AS DOUBLE PRECISION) AS z,"
    " CAST(2 * i + 3 * (i % 5) + 1 AS DOUBLE PRECISION) AS y"
    f" FROM generate_series(1, {ROWS}) AS g(i)"
)
TRAIN = "SELECT x, z, y FROM life.points"
GOOD = "model_type = 'linear_reg', input_label_cols = ['y']"
BAD = GOOD + ", l2_reg = 1000000.0"  # shrunk to nearly a constant


class Life:
    """A database for the module: its connection string and a first connection."""

    def __init__(self, database: str, engine: str) -> None:
        self.database, self.engine = database, engine
        self.con = sqlml.connect(database, autocommit=True)
        self.names = iter(range(1, 1000))

    def model(self, *options: str) -> str:
        """A new model (life.m<n>), one version per OPTIONS string, in order."""
        name = f"life.m{next(self.names)}"
        for given in options:
            self.run(f"CREATE OR REPLACE MODEL {name} OPTIONS ({given}) AS {TRAIN}")
        return name

    def run(self, sql: str, con: Any = None) -> list[tuple[Any, ...]]:
        cursor = (con or self.con).execute(sql)
        return cursor.fetchall() if cursor.description is not None else []

    def role(self) -> str | None:
        if self.engine == "postgres":
            return str(self.run("SELECT current_user")[0][0])
        return getpass.getuser()


def open_life(
    engine: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Life]:
    with module_database(engine, request, tmp_path_factory, "life") as database:
        found = Life(database, engine)
        found.run("CREATE SCHEMA life")
        found.run(f"CREATE TABLE life.points AS {POINTS}")
        yield found
        found.con.close()


@pytest.fixture(scope="module", params=ENGINES)
def life(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Life]:
    yield from open_life(str(request.param), request, tmp_path_factory)


@pytest.fixture(scope="module")
def pg_life(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Life]:
    yield from open_life("postgres", request, tmp_path_factory)


def predictions(life: Life, model: str, con: Any = None) -> list[float]:
    rows = life.run(
        f"SELECT x, predicted_y FROM ML.PREDICT(MODEL {model}, TABLE life.points) ORDER BY x",
        con,
    )
    return [round(float(r[1]), 9) for r in rows]


def versions(life: Life, model: str) -> dict[int, str]:
    rows = life.run(f"SELECT version, status FROM ML.VERSIONS(MODEL {model})")
    return {int(v): s for v, s in rows}


def deployments(life: Life, model: str) -> list[tuple[Any, ...]]:
    return life.run(
        "SELECT deployment_id, version, previous_version, action, role, comment, metrics,"
        f" deployed_at, served_until FROM ML.DEPLOYMENTS(MODEL {model}) ORDER BY deployment_id"
    )


def sqlstate(life: Life, sql: str) -> str:
    with pytest.raises(errors.Error) as caught:
        life.run(sql)
    return caught.value.sqlstate


# -- ML.VERSIONS -------------------------------------------------------------------------------------


def test_versions_lists_every_version(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    rows = life.run(
        "SELECT version, status, model_type, metrics, options, data_fingerprint, training_rows,"
        f" created_at FROM ML.VERSIONS(MODEL {model}) ORDER BY version"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, "serving", "linear_reg"),
        (2, "available", "linear_reg"),
    ]
    first, second = rows
    assert json.loads(first[3])["r2_score"] > 0.99 > json.loads(second[3])["r2_score"]
    assert json.loads(second[4])["deploy"] == "manual"
    assert json.loads(second[4])["l2_reg"] == 1000000.0
    # the same rows, so the same fingerprint (sha256 of the training rows' content)
    assert first[5] == second[5]
    assert len(first[5]) == 64
    assert first[6] == second[6] == ROWS
    assert first[7] <= second[7]


# -- MODEL m VERSION n -------------------------------------------------------------------------------


def test_functions_address_a_version(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    serving = predictions(life, model)
    assert predictions(life, f"{model} VERSION 1") == serving
    assert predictions(life, f"{model} VERSION 2") != serving
    metrics = dict(life.run(f"SELECT version, metrics FROM ML.VERSIONS(MODEL {model})"))
    for version in (1, 2):
        (r2,) = life.run(f"SELECT r2_score FROM ML.EVALUATE(MODEL {model} VERSION {version})")[0]
        assert r2 == pytest.approx(json.loads(metrics[version])["r2_score"])
    info = life.run(f"SELECT iteration FROM ML.TRAINING_INFO(MODEL {model} VERSION 2)")
    assert len(info) == 1
    weights = life.run(f"SELECT processed_input FROM ML.WEIGHTS(MODEL {model} VERSION 2)")
    assert {w[0] for w in weights} >= {"x", "z"}


def test_unknown_version_is_42704(life: Life) -> None:
    model = life.model(GOOD)
    for sql in (
        f"SELECT * FROM ML.PREDICT(MODEL {model} VERSION 9, TABLE life.points)",
        f"SELECT * FROM ML.EVALUATE(MODEL {model} VERSION 9)",
        f"ALTER MODEL {model} DEPLOY VERSION 9",
        f"ALTER MODEL {model} ROLLBACK TO VERSION 9",
        f"DROP MODEL {model} VERSION 9",
        "ALTER MODEL life.nothing DEPLOY VERSION 1",
        "SELECT * FROM ML.VERSIONS(MODEL life.nothing)",
    ):
        assert sqlstate(life, sql) == "42704", sql
    life.run(f"DROP MODEL IF EXISTS {model} VERSION 9")  # nothing to drop, no error
    assert versions(life, model) == {1: "serving"}


# -- ALTER MODEL ... DEPLOY / ROLLBACK and ML.DEPLOYMENTS ------------------------------------------


def test_deploy_serves_that_version(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    pinned = predictions(life, f"{model} VERSION 2")
    before = predictions(life, model)  # (a kept plan: it must notice the deploy)
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 2 COMMENT 'the regularized one'")
    assert predictions(life, model) == pinned != before
    assert versions(life, model) == {1: "available", 2: "serving"}
    rows = deployments(life, model)
    assert [r[:6] for r in rows] == [
        (1, 1, None, "create", life.role(), None),
        (2, 2, 1, "deploy", life.role(), "the regularized one"),
    ]
    assert rows[0][8] == rows[1][7]  # served_until: the next change
    assert rows[1][8] is None
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 2")  # serves already: nothing written
    assert len(deployments(life, model)) == 2


def test_rollback_walks_back_the_history(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'", GOOD + ", deploy = 'manual'")
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 2")
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 3")
    life.run(f"ALTER MODEL {model} ROLLBACK COMMENT 'v3 misbehaves'")
    assert versions(life, model)[2] == "serving"
    life.run(f"ALTER MODEL {model} ROLLBACK")
    assert versions(life, model)[1] == "serving"
    assert sqlstate(life, f"ALTER MODEL {model} ROLLBACK") == "55000"
    assert [(*r[1:4], r[5]) for r in deployments(life, model)] == [
        (1, None, "create", None),
        (2, 1, "deploy", None),
        (3, 2, "deploy", None),
        (2, 3, "rollback", "v3 misbehaves"),
        (1, 2, "rollback", None),
    ]
    life.run(f"ALTER MODEL {model} ROLLBACK TO VERSION 3")
    assert versions(life, model)[3] == "serving"
    assert predictions(life, model) == predictions(life, f"{model} VERSION 3")


def test_rollback_without_history_is_55000(life: Life) -> None:
    model = life.model(GOOD, GOOD + ", deploy = 'manual'")
    assert sqlstate(life, f"ALTER MODEL {model} ROLLBACK") == "55000"
    assert versions(life, model) == {1: "serving", 2: "available"}


def test_every_serving_create_is_audited(life: Life) -> None:
    model = life.model(GOOD, GOOD, GOOD + ", deploy = 'manual'")
    assert [r[1:4] for r in deployments(life, model)] == [(1, None, "create"), (2, 1, "create")]
    life.run(f"ALTER MODEL {model} ROLLBACK")
    assert versions(life, model)[1] == "serving"


def test_a_deploy_is_seen_by_the_next_statement_of_another_session(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    one, other = life.con, sqlml.connect(life.database, autocommit=True)
    try:
        first, second = predictions(life, model, other), predictions(life, f"{model} VERSION 2")
        life.run("BEGIN", one)
        life.run(f"ALTER MODEL {model} DEPLOY VERSION 2", one)
        assert predictions(life, model, other) == first  # not committed yet
        life.run("ROLLBACK", one)
        assert predictions(life, model, other) == first
        assert len(deployments(life, model)) == 1  # rolled back with the transaction
        life.run("BEGIN", one)
        life.run(f"ALTER MODEL {model} DEPLOY VERSION 2", one)
        life.run("COMMIT", one)
        assert predictions(life, model, other) == second
    finally:
        other.close()


def test_concurrent_deploys_take_turns(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'", GOOD + ", deploy = 'manual'")
    failures: list[BaseException] = []

    def deploy(version: int) -> None:
        con = sqlml.connect(life.database, autocommit=True)
        try:
            for _ in range(3):
                con.execute(f"ALTER MODEL {model} DEPLOY VERSION {version}")
                con.execute(f"ALTER MODEL {model} DEPLOY VERSION 1")
        except errors.Error as e:  # (one may lose a race with 40001; nothing half-applied)
            if e.sqlstate != "40001":
                failures.append(e)
        finally:
            con.close()

    threads = [threading.Thread(target=deploy, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    rows = deployments(life, model)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    # each row's previous version is the version the row before it deployed: no lost update
    assert all(r[2] == before[1] for before, r in itertools.pairwise(rows))
    assert versions(life, model)[1] == "serving"
    assert rows[-1][1] == 1


def test_a_view_follows_the_deploy(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    view = f"life.v{next(life.names)}"
    life.run(f"CREATE VIEW {view} AS SELECT * FROM ML.PREDICT(MODEL {model}, TABLE life.points)")
    first = life.run(f"SELECT x, predicted_y FROM {view} ORDER BY x")
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 2")
    second = life.run(f"SELECT x, predicted_y FROM {view} ORDER BY x")
    assert [round(float(r[1]), 9) for r in second] == predictions(life, f"{model} VERSION 2")
    life.run(f"ALTER MODEL {model} ROLLBACK")
    assert life.run(f"SELECT x, predicted_y FROM {view} ORDER BY x") == first
    pinned = f"CREATE VIEW {view}x AS SELECT * FROM ML.PREDICT(MODEL {model} VERSION 2, TABLE t)"
    assert sqlstate(life, pinned) == "0A000"


def test_plain_sql_in_postgres(pg_life: Life) -> None:
    """From psql: sqlml.execute runs the statements, sqlml.ml reads ML.VERSIONS and
    ML.DEPLOYMENTS, the model's scoring function follows the deploy; a role with USAGE only
    may read the trail but not change what serves (42501)."""
    import psycopg2

    life = pg_life
    model = life.model(GOOD, BAD + ", deploy = 'manual'")
    schema, name = model.split(".")
    raw = psycopg2.connect(life.database)
    raw.autocommit = True
    role = f"viewer_{os.getpid()}"
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT sqlml.execute(%s)", [f"ALTER MODEL {model} DEPLOY VERSION 2"])
            assert cur.fetchone() == ("ALTER MODEL",)
            cur.execute(
                "SELECT v ->> 'status' FROM sqlml.ml(%s) AS v ORDER BY (v ->> 'version')::int",
                [f"SELECT * FROM ML.VERSIONS(MODEL {model})"],
            )
            assert cur.fetchall() == [("available",), ("serving",)]
            cur.execute("SELECT sqlml.scoring_function_name(%s, %s)::text", [schema, name])
            (function,) = cur.fetchone()
            cur.execute(f'SELECT sqlml."{function}"(x, z) FROM life.points ORDER BY x')
            scored = [round(float(r[0]), 9) for r in cur.fetchall()]
            assert scored == predictions(life, f"{model} VERSION 2")
            cur.execute(f"CREATE ROLE {role}")
            cur.execute(f"GRANT USAGE ON SCHEMA life TO {role}")
            cur.execute("SELECT sqlml.grant_model(%s, %s)", [model, role])
            cur.execute(f"SET ROLE {role}")
            cur.execute(
                "SELECT count(*) FROM sqlml.ml(%s)",
                [f"SELECT * FROM ML.DEPLOYMENTS(MODEL {model})"],
            )
            assert cur.fetchone() == (2,)
            with pytest.raises(psycopg2.Error) as denied:
                cur.execute("SELECT sqlml.execute(%s)", [f"ALTER MODEL {model} ROLLBACK"])
            assert denied.value.pgcode == "42501"
            cur.execute("RESET ROLE")
    finally:
        with raw.cursor() as cur:
            cur.execute("RESET ROLE")
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        raw.close()
    assert versions(life, model)[2] == "serving"


# -- DROP MODEL m VERSION n --------------------------------------------------------------------------


def test_a_dropped_version_number_that_served_is_not_given_again(life: Life) -> None:
    model = life.model(GOOD, BAD)  # version 2 serves, then goes
    life.run(f"ALTER MODEL {model} ROLLBACK")
    life.run(f"DROP MODEL {model} VERSION 2")
    life.run(f"CREATE OR REPLACE MODEL {model} OPTIONS ({GOOD}) AS {TRAIN}")
    assert versions(life, model) == {1: "available", 3: "serving"}  # the trail's 2 is not reused


def test_drop_version(life: Life) -> None:
    model = life.model(GOOD, BAD + ", deploy = 'manual'", GOOD + ", deploy = 'manual'")
    assert sqlstate(life, f"DROP MODEL {model} VERSION 1") == "2BP01"
    life.run(f"DROP MODEL {model} VERSION 2")
    assert versions(life, model) == {1: "serving", 3: "available"}
    assert sqlstate(life, f"DROP MODEL {model} VERSION 2") == "42704"
    sql = f"SELECT * FROM ML.PREDICT(MODEL {model} VERSION 2, TABLE life.points)"
    assert sqlstate(life, sql) == "42704"
    life.run(f"ALTER MODEL {model} DEPLOY VERSION 3")
    life.run(f"DROP MODEL {model} VERSION 1")
    assert versions(life, model) == {3: "serving"}
    # the history keeps them; ROLLBACK skips what is gone
    assert sqlstate(life, f"ALTER MODEL {model} ROLLBACK") == "55000"


# -- CREATE MODEL ... OPTIONS (deploy = ...) ---------------------------------------------------------


def test_manual_keeps_the_serving_version(life: Life) -> None:
    model = life.model(GOOD + ", deploy = 'manual'")  # the first version always serves
    life.run(f"CREATE OR REPLACE MODEL {model} OPTIONS ({BAD}, deploy = 'manual') AS {TRAIN}")
    assert versions(life, model) == {1: "serving", 2: "available"}


def test_if_better_both_ways(life: Life) -> None:
    messages: list[str] = []
    life.con.set_progress(messages.append)
    try:
        model = life.model(BAD, GOOD + ", deploy = 'if_better'")
        assert versions(life, model) == {1: "available", 2: "serving"}
        life.run(
            f"CREATE OR REPLACE MODEL {model} OPTIONS ({BAD}, deploy = 'if_better') AS {TRAIN}"
        )
        assert versions(life, model) == {1: "available", 2: "serving", 3: "available"}
        # lower is better for mean_squared_error; a delta no model can beat keeps version 2
        worse = "deploy_metric = 'mean_squared_error', deploy_min_delta = 1000000"
        life.run(
            f"CREATE OR REPLACE MODEL {model} OPTIONS ({GOOD}, deploy = 'if_better', {worse})"
            f" AS {TRAIN}"
        )
        assert versions(life, model)[4] == "available"
        life.run(
            f"CREATE OR REPLACE MODEL {model} OPTIONS ({GOOD}, deploy = 'if_better',"
            f" deploy_metric = 'mean_squared_error') AS {TRAIN}"
        )  # equal: delta 0 passes
        assert versions(life, model)[5] == "serving"
    finally:
        life.con.set_progress(None)
    rows = deployments(life, model)
    assert [r[1:4] for r in rows] == [(1, None, "create"), (2, 1, "create"), (5, 2, "create")]
    gate = json.loads(rows[1][6])
    assert gate["deploy_metric"] == "r2_score"
    assert gate["serving_version"] == 1
    assert gate["new_value"] > 0.99 > gate["serving_value"]
    assert gate["evaluation_rows"] == ROWS  # fewer than 500 rows: no split, every row evaluates
    assert json.loads(rows[2][6])["deploy_metric"] == "mean_squared_error"
    assert any("does not serve (deploy = 'if_better')" in m for m in messages), messages
    assert any("serves (deploy = 'if_better')" in m for m in messages), messages


@pytest.mark.parametrize(
    ("bad", "good"),
    [
        ("deploy = 'sometimes'", "deploy = 'always'"),
        ("deploy = 1", "deploy = 'ALWAYS'"),
        ("deploy = 'if_better', deploy_metric = 'roc_auc'", "deploy = 'if_better'"),
        (
            "deploy = 'if_better', deploy_min_delta = -1",
            "deploy = 'if_better', deploy_min_delta = 0",
        ),
        ("deploy = 'if_better', deploy_min_delta = 'a lot'", "deploy = 'if_better'"),
        ("deploy = 'manual', deploy_metric = 'r2_score'", "deploy = 'manual'"),
    ],
)
def test_bad_deploy_options_are_22023(life: Life, bad: str, good: str) -> None:
    sql = f"CREATE OR REPLACE MODEL life.refused OPTIONS ({GOOD}, {{}}) AS {TRAIN}"
    assert sqlstate(life, sql.format(bad)) == "22023"
    life.run(sql.format(good))  # the option itself is one CREATE MODEL takes


# -- the store's upgrade, and the gateway -----------------------------------------------------------


# what a store of each older version lacked (NEWER_TABLES: those of versions 3, 4 and 5)
NEWER_TABLES = [
    "model_settings",
    "prediction_log",
    "version_statistics",
    "version_state",
    "schedule_runs",
    "version_trials",
    "version_boosters",
]
SIXTH = ["DROP TABLE sqlml.version_trials", "DROP TABLE sqlml.version_boosters"]
# (the view over the prediction log's tables came later still: it goes with them)
NO_LOG = ["DROP VIEW sqlml.logged_predictions"]
OLDER_STORES = {
    "1": [
        *NO_LOG,
        "DROP TABLE sqlml.deployments",
        *(f"DROP TABLE sqlml.{t}" for t in NEWER_TABLES),
    ],
    "2": [
        *NO_LOG,
        "DELETE FROM sqlml.deployments",
        "ALTER TABLE sqlml.deployments DROP COLUMN settings",
        *(f"DROP TABLE sqlml.{t}" for t in NEWER_TABLES),
    ],
    # (its audit rows go too: the checks below count a model's deployments from none)
    "3": [
        "DELETE FROM sqlml.deployments",
        "DROP TABLE sqlml.version_state",
        "DROP TABLE sqlml.schedule_runs",
        *SIXTH,
    ],
    "4": ["DELETE FROM sqlml.deployments", "DROP TABLE sqlml.schedule_runs", *SIXTH],
    "5": ["DELETE FROM sqlml.deployments", *SIXTH],
}
STORE_VERSION = "6"


@pytest.mark.parametrize("old", sorted(OLDER_STORES))
def test_an_older_store_is_upgraded(tmp_path: Path, old: str) -> None:
    path = str(tmp_path / "old.duckdb")
    con = sqlml.connect(path, autocommit=True)
    con.execute("CREATE TABLE t AS SELECT 1.0 AS x, 2.0 AS y")
    con.execute("CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT x, y AS label FROM t")
    for statement in OLDER_STORES[old]:
        con.execute(statement)
    con.execute("UPDATE sqlml.store_info SET value = ? WHERE key = 'store_version'", [old])
    con.close()
    con = sqlml.connect(path, autocommit=True)
    try:
        rows = con.execute("SELECT value FROM sqlml.store_info WHERE key = 'store_version'")
        assert rows.fetchall() == [(STORE_VERSION,)]
        assert con.execute("SELECT * FROM ML.DEPLOYMENTS(MODEL m)").fetchall() == []
        con.execute(
            "CREATE OR REPLACE MODEL m OPTIONS (model_type = 'linear_reg') AS"
            " SELECT x, y AS label FROM t"
        )
        rows = con.execute("SELECT version, previous_version FROM ML.DEPLOYMENTS(MODEL m)")
        assert rows.fetchall() == [(2, 1)]
    finally:
        con.close()


@pytest.mark.parametrize("old", sorted(OLDER_STORES))
def test_an_older_postgres_store_is_upgraded_by_install(pg_database: str, old: str) -> None:
    import pgcluster
    import psycopg2

    con = sqlml.connect(pg_database, autocommit=True)
    con.execute("CREATE TABLE public.t AS SELECT 1.0 AS x, 2.0 AS y")
    con.execute("CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT x, y AS label FROM t")
    con.close()
    raw = psycopg2.connect(pg_database)
    raw.autocommit = True
    with raw.cursor() as cur:  # as a store of that version was
        for statement in OLDER_STORES[old]:
            cur.execute(statement)
        cur.execute("UPDATE sqlml.store_info SET value = %s WHERE key = 'store_version'", [old])
    pgcluster.install(pg_database)
    with raw.cursor() as cur:
        cur.execute("SELECT value FROM sqlml.store_info WHERE key = 'store_version'")
        assert cur.fetchall() == [(STORE_VERSION,)]
        for table in ("deployments", *NEWER_TABLES):
            cur.execute(
                f"SELECT relrowsecurity FROM pg_class WHERE oid = 'sqlml.{table}'::regclass"
            )
            assert cur.fetchall() == [(True,)]
    raw.close()
    con = sqlml.connect(pg_database, autocommit=True)
    try:
        assert con.execute("SELECT * FROM ML.DEPLOYMENTS(MODEL m)").fetchall() == []
        assert sqlstate_of(con, "ALTER MODEL m ROLLBACK") == "55000"  # no history before it
    finally:
        con.close()


def sqlstate_of(con: Any, sql: str) -> str:
    with pytest.raises(errors.Error) as caught:
        con.execute(sql)
    return caught.value.sqlstate


@pytest.mark.parametrize("engine", ENGINES)
def test_through_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    database = shop_database(engine, request)
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        client, other = GatewayConnection(port), GatewayConnection(port)
        try:
            life = Life.__new__(Life)
            life.engine, life.con, life.names = engine, client, iter(range(1, 100))
            life.run("CREATE SCHEMA life")
            life.run(f"CREATE TABLE life.points AS {POINTS}")
            model = life.model(GOOD, BAD + ", deploy = 'manual'")
            before = predictions(life, model, other)
            life.run(f"ALTER MODEL {model} DEPLOY VERSION 2 COMMENT 'over the wire'")
            assert predictions(life, model, other) == predictions(life, f"{model} VERSION 2")
            assert predictions(life, model, other) != before
            assert versions(life, model) == {1: "available", 2: "serving"}
            rows = deployments(life, model)
            assert [(*r[1:4], r[5]) for r in rows][-1] == (2, 1, "deploy", "over the wire")
            assert rows[-1][4] == "conformance"  # the client's login, not the gateway's user
            assert sqlstate(life, f"DROP MODEL {model} VERSION 2") == "2BP01"
            assert sqlstate(life, f"ALTER MODEL {model} DEPLOY VERSION 7") == "42704"
            life.run(f"ALTER MODEL {model} ROLLBACK")
            assert versions(life, model)[1] == "serving"
            assert sqlstate(life, f"ALTER MODEL {model} ROLLBACK") == "55000"
        finally:
            client.close()
            other.close()


# -- ALTER MODEL ... SET OPTIONS ---------------------------------------------------------------------


def shown(life: Life, model: str) -> tuple[Any, Any]:
    schema, name = model.split(".")
    rows = life.con.execute(f"SHOW MODELS IN {schema}")
    names = [c[0] for c in rows.description]
    for row in rows.fetchall():
        found = dict(zip(names, row, strict=True))
        if found["model_name"] == name:
            labels = found["labels"]
            return found["description"], json.loads(labels) if labels is not None else None
    raise AssertionError(f"{model} is not shown")


def test_set_options_description_and_labels(life: Life) -> None:
    model = life.model(GOOD)
    assert shown(life, model) == (None, None)
    life.run(
        f"ALTER MODEL {model} SET OPTIONS (description = 'spend, from tenure',"
        " labels = [('team', 'growth'), ('tier', '1')])"
    )
    assert shown(life, model) == ("spend, from tenure", {"team": "growth", "tier": "1"})
    life.run(f"ALTER MODEL {model} SET OPTIONS (labels = [('team', 'data')])")  # replaces them
    assert shown(life, model) == ("spend, from tenure", {"team": "data"})
    life.run(f"ALTER MODEL {model} SET OPTIONS (description = NULL)")
    assert shown(life, model) == (None, {"team": "data"})
    assert [r[0] for r in life.run(f"SELECT action FROM ML.DEPLOYMENTS(MODEL {model})")] == [
        "create",
        "options",
        "options",
        "options",
    ]
    life.run(f"CREATE OR REPLACE MODEL {model} OPTIONS ({GOOD}) AS {TRAIN}")
    assert shown(life, model) == (None, {"team": "data"})  # the model's, not a version's


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("descripton = 'x'", "22023"),
        ("model_type = 'linear_reg'", "22023"),
        ("description = 3", "22023"),
        ("labels = ['team']", "22023"),
        ("labels = [('Team', 'x')]", "22023"),
        ("labels = [('team', 'a b')]", "22023"),
        ("labels = [('team', 'a'), ('team', 'b')]", "22023"),
        ("expiration_timestamp = '2030-01-01 00:00:00'", "0A000"),
    ],
)
def test_bad_model_options(life: Life, options: str, expected: str) -> None:
    model = life.model(GOOD)
    assert sqlstate(life, f"ALTER MODEL {model} SET OPTIONS ({options})") == expected
    assert shown(life, model) == (None, None)
