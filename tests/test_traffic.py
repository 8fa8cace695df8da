"""Traffic splits (issue 14; docs/sql.md, "Traffic splits"; sqlml/traffic.py): ALTER MODEL ... SET
TRAFFIC (VERSION a = w, ...) [BY KEY col] and CLEAR TRAFFIC, on DuckDB and PostgreSQL, compiled and
runtime scoring, through sqlml.connect and the gateway.

The references are independent of the code under test: the bucket of a key is computed here with
Python's own integers and hashlib, and each row's prediction is compared with the prediction of
the version that the row says scored it, asked for alone (MODEL m VERSION n)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    ENGINES,
    free_parallelism,
    gateway_parts,
    module_database,
    serving,
    shop_database,
)

import sqlml
from sqlml import errors

KEYS = 20_000
BUCKETS = 10_000
P = 2**31 - 1
POINTS = (
    "SELECT i AS id, 'k' || CAST(i AS TEXT) AS name, CAST(i % 97 AS DOUBLE PRECISION) AS x,"
    " CAST(i % 5 AS DOUBLE PRECISION) AS z,"
    " CAST(2 * (i % 97) + 3 * (i % 5) + 1 AS DOUBLE PRECISION) AS y"
    f" FROM generate_series(-50, {KEYS - 51}) AS g(i)"
)
TRAIN = "SELECT x, z, y FROM split.points"
LINEAR = "model_type = 'linear_reg', input_label_cols = ['y']"
OTHER = LINEAR + ", l2_reg = 1000.0, deploy = 'manual'"  # a second version, other predictions


def hashed(key: int) -> int:
    """Three Park-Miller rounds over the key mod 2^31-1 (docs/sql.md), in Python's integers."""
    truncated = abs(key) % P * (1 if key >= 0 else -1)  # SQL's % keeps the dividend's sign
    h = (truncated + P) % P
    for _ in range(3):
        h = h * 48271 % P
    return h


def int_bucket(key: int) -> int:
    return hashed(key) % BUCKETS


def text_bucket(key: str) -> int:
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % BUCKETS


class Split:
    def __init__(self, database: str, engine: str, scoring: str = "auto") -> None:
        self.database, self.engine = database, engine
        self.con = sqlml.connect(database, autocommit=True, scoring=scoring)
        self.names = iter(range(1, 1000))

    @classmethod
    def over(cls, client: Any, engine: str) -> Split:
        """A Split over a client of the gateway (split.points made through it)."""
        found = cls.__new__(cls)
        found.engine, found.con, found.names = engine, client, iter(range(1, 100))
        found.run("CREATE SCHEMA split")
        found.run(f"CREATE TABLE split.points AS {POINTS}")
        return found

    def run(self, sql: str, con: Any = None) -> list[tuple[Any, ...]]:
        cursor = (con or self.con).execute(sql)
        return cursor.fetchall() if cursor.description is not None else []

    def model(self, *options: str, train: str = TRAIN) -> str:
        name = f"split.m{next(self.names)}"
        for given in options:
            self.run(f"CREATE OR REPLACE MODEL {name} OPTIONS ({given}) AS {train}")
        return name

    def scored_by(self, model: str, key: str = "id", con: Any = None) -> dict[Any, int]:
        rows = self.run(
            f"SELECT {key}, model_version FROM ML.PREDICT(MODEL {model}, TABLE split.points)", con
        )
        return {k: int(v) for k, v in rows}

    def sqlstate(self, sql: str) -> str:
        with pytest.raises(errors.Error) as caught:
            self.run(sql)
        return caught.value.sqlstate


def with_usage(raw: Any, database: str, model: str, role: str) -> Split:
    """A new login ``role`` with USAGE on ``model`` (and SELECT on split.points), and a Split
    connected as it."""
    with raw.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")
        cur.execute(f"GRANT USAGE ON SCHEMA split TO {role}")
        cur.execute(f"GRANT SELECT ON split.points TO {role}")
        cur.execute("SELECT sqlml.grant_model(%s, %s)", [model, role])
    joiner = "&" if "?" in database else "?"
    return Split(f"{database}{joiner}user={role}", "postgres")


def open_split(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> Iterator[Split]:
    """A module's database (per engine, request.param) with split.points."""
    engine = str(request.param)
    with module_database(engine, request, tmp_path_factory, prefix) as database:
        found = Split(database, engine)
        found.run("CREATE SCHEMA split")
        found.run(f"CREATE TABLE split.points AS {POINTS}")
        yield found
        found.con.close()


@pytest.fixture(scope="module", params=ENGINES)
def split(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    yield from open_split(request, tmp_path_factory, "split")


def expected_owner(ranges: list[tuple[int, int, int]], bucket: int) -> int:
    return next(v for start, end, v in ranges if start <= bucket < end)


def test_key_buckets_are_python_arithmetic_and_md5_on_both_engines(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
    owners = split.scored_by(model)
    assert len(owners) == KEYS
    # v1 keeps buckets [0, 5000), v2 gets [5000, 10000): each key's version from its bucket
    assert owners == {k: 1 if int_bucket(k) < 5000 else 2 for k in owners}
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY name")
    by_name = split.scored_by(model, "name")
    assert by_name == {k: 1 if text_bucket(k) < 5000 else 2 for k in by_name}


@pytest.mark.parametrize("key", ["BY KEY id", ""])
def test_proportions_are_within_statistical_bounds(split: Split, key: str) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 70, VERSION 2 = 30) {key}")
    rows = split.run(
        f"SELECT model_version, count(*) FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
        " GROUP BY model_version"
    )
    counts = {int(v): int(n) for v, n in rows}
    assert sum(counts.values()) == KEYS
    sigma = math.sqrt(KEYS * 0.3 * 0.7)
    assert abs(counts[2] - 0.3 * KEYS) < 4 * sigma, counts


def test_each_row_is_scored_by_the_version_it_names(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 60, VERSION 2 = 40) BY KEY id")
    rows = split.run(
        f"SELECT id, predicted_y, model_version FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
    )
    alone = {
        v: dict(
            split.run(
                f"SELECT id, predicted_y FROM ML.PREDICT(MODEL {model} VERSION {v},"
                " TABLE split.points)"
            )
        )
        for v in (1, 2)
    }
    assert {int(v) for _, _, v in rows} == {1, 2}
    assert alone[1][10] != pytest.approx(alone[2][10])  # the two versions differ
    for key, predicted, version in rows:
        assert predicted == pytest.approx(alone[int(version)][key], rel=1e-9)


def test_stickiness_across_sessions_and_calls(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 80, VERSION 2 = 20) BY KEY id")
    other = sqlml.connect(split.database, autocommit=True)
    try:
        first = split.scored_by(model)
        assert split.scored_by(model, con=other) == first
        assert split.scored_by(model) == first
    finally:
        other.close()


def test_weight_changes_move_only_the_keys_that_must_move(split: Split) -> None:
    model = split.model(LINEAR, OTHER, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 90, VERSION 2 = 10) BY KEY id")
    before = split.scored_by(model)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 80, VERSION 2 = 20) BY KEY id")
    after = split.scored_by(model)
    moved = {k for k in before if before[k] != after[k]}
    assert all(before[k] == 1 and after[k] == 2 for k in moved)  # only v1 -> v2
    assert abs(len(moved) - 0.1 * KEYS) < 4 * math.sqrt(KEYS * 0.1 * 0.9)
    # three versions: 20 points from v2 to v3; v1's keys stay where they are
    split.run(
        f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 30, VERSION 3 = 20)"
        " BY KEY id"
    )
    before = split.scored_by(model)
    split.run(
        f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 10, VERSION 3 = 40)"
        " BY KEY id"
    )
    after = split.scored_by(model)
    moved = {k for k in before if before[k] != after[k]}
    assert moved
    assert all(before[k] == 2 and after[k] == 3 for k in moved)


def test_status_audit_and_the_end_of_a_split(split: Split) -> None:
    model = split.model(LINEAR, OTHER, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 95, VERSION 2 = 5) COMMENT 'canary'")
    rows = split.run(f"SELECT version, status, traffic_weight FROM ML.VERSIONS(MODEL {model})")
    assert [(int(v), s, w) for v, s, w in rows] == [
        (1, "serving", 95.0),
        (2, "traffic", 5.0),
        (3, "available", None),
    ]
    trail = split.run(
        f"SELECT action, version, comment, settings FROM ML.DEPLOYMENTS(MODEL {model})"
        " ORDER BY deployment_id"
    )
    assert [r[:3] for r in trail] == [("create", 1, None), ("traffic", 1, "canary")]
    assert '"weights": {"1": 95.0, "2": 5.0}' in trail[-1][3]
    split.run(f"ALTER MODEL {model} DEPLOY VERSION 3")  # a deploy ends the split
    columns = split.con.execute(
        f"SELECT * FROM ML.PREDICT(MODEL {model}, TABLE split.points) LIMIT 1"
    ).description
    assert "model_version" not in [c[0] for c in columns]
    trail = split.run(
        f"SELECT action, settings FROM ML.DEPLOYMENTS(MODEL {model}) ORDER BY deployment_id"
    )
    assert trail[-1] == ("deploy", "{}")
    split.run(f"ALTER MODEL {model} ROLLBACK")  # back to version 1, without the split
    assert split.run(f"SELECT max(traffic_weight) FROM ML.VERSIONS(MODEL {model})") == [(None,)]
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 0, VERSION 3 = 50)")
    assert split.sqlstate(f"DROP MODEL {model} VERSION 3") == "2BP01"  # it has a share
    split.run(f"DROP MODEL {model} VERSION 2")  # in the split without a share: it may go
    split.run(f"ALTER MODEL {model} CLEAR TRAFFIC")
    assert split.run(f"SELECT max(traffic_weight) FROM ML.VERSIONS(MODEL {model})") == [(None,)]
    assert split.run(f"SELECT action FROM ML.DEPLOYMENTS(MODEL {model})")[-1] == ("clear traffic",)


def test_a_kept_plan_and_another_session_follow_the_split(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    other = sqlml.connect(split.database, autocommit=True)
    query = f"SELECT * FROM ML.PREDICT(MODEL {model}, TABLE split.points) LIMIT 1"
    try:
        assert "model_version" not in [c[0] for c in other.execute(query).description]
        split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)")
        assert "model_version" in [c[0] for c in other.execute(query).description]
        split.run(f"ALTER MODEL {model} CLEAR TRAFFIC")
        assert "model_version" not in [c[0] for c in other.execute(query).description]
    finally:
        other.close()


def test_a_rolled_back_split_changes_nothing(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    con = sqlml.connect(split.database)  # (transactions)
    try:
        con.execute(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)")
        con.rollback()
    finally:
        con.close()
    assert split.run(f"SELECT action FROM ML.DEPLOYMENTS(MODEL {model})") == [("create",)]
    assert split.run(f"SELECT max(traffic_weight) FROM ML.VERSIONS(MODEL {model})") == [(None,)]


@pytest.mark.parametrize(
    ("traffic", "sqlstate"),
    [
        ("(VERSION 1 = 90, VERSION 2 = 20)", "22023"),  # 110
        ("(VERSION 1 = 110, VERSION 2 = -10)", "22023"),  # negative
        ("(VERSION 1 = 50, VERSION 1 = 50)", "22023"),  # twice
        ("(VERSION 1 = 99.995, VERSION 2 = 0.005)", "22023"),  # finer than 0.01
        ("(VERSION 2 = 100)", "22023"),  # the serving version left out
        ("(VERSION 1 = 50, VERSION 9 = 50)", "42704"),
        ("(VERSION 1 = 50, VERSION 3 = 50)", "42804"),  # other input columns
    ],
)
def test_bad_splits(split: Split, traffic: str, sqlstate: str) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"CREATE OR REPLACE MODEL {model} OPTIONS ({OTHER}) AS SELECT x, y FROM split.points")
    assert split.sqlstate(f"ALTER MODEL {model} SET TRAFFIC {traffic}") == sqlstate
    assert split.run(f"SELECT action FROM ML.DEPLOYMENTS(MODEL {model})") == [("create",)]


def test_bad_inputs_under_a_split(split: Split) -> None:
    model = split.model(LINEAR, OTHER)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
    no_key = f"SELECT * FROM ML.PREDICT(MODEL {model}, (SELECT x, z FROM split.points))"
    assert split.sqlstate(no_key) == "42703"
    clash = (
        f"SELECT * FROM ML.PREDICT(MODEL {model},"
        " (SELECT id, x, z, 1 AS model_version FROM split.points))"
    )
    assert split.sqlstate(clash) == "42701"
    assert split.sqlstate("ALTER MODEL split.nothing CLEAR TRAFFIC") == "42704"
    assert len(split.scored_by(model)) == KEYS  # the session goes on


def test_runtime_scoring_under_a_split(
    split: Split, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    runtime = Split(split.database, split.engine, scoring="runtime")
    try:
        runtime.names = iter(range(500, 600))
        model = runtime.model(LINEAR, OTHER)
        runtime.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
        compiled = {
            (k, round(float(p), 6), int(v))
            for k, p, v in split.run(
                f"SELECT id, predicted_y, model_version FROM ML.PREDICT(MODEL {model},"
                " TABLE split.points)"
            )
        }
        scored = {
            (k, round(float(p), 6), int(v))
            for k, p, v in runtime.run(
                f"SELECT id, predicted_y, model_version FROM ML.PREDICT(MODEL {model},"
                " TABLE split.points)"
            )
        }
        assert scored == compiled
    finally:
        runtime.con.close()


def test_a_runtime_split_of_three_classifiers_scores_each_row_with_its_version(
    split: Split,
) -> None:
    """Three runtime-scored versions, one with its inputs in another order: on DuckDB one
    routed call of the UDF scores them all (traffic._routed_call); each row's label and
    probabilities are those of the version it names, asked for alone."""
    runtime = Split(split.database, split.engine, scoring="runtime")
    try:
        runtime.names = iter(range(600, 700))
        label = "SELECT x, z, y > 100 AS big FROM split.points"
        classifier = "model_type = 'logistic_reg', input_label_cols = ['big']"
        model = runtime.model(
            classifier, classifier + ", l2_reg = 50.0, deploy = 'manual'", train=label
        )
        runtime.run(
            f"CREATE OR REPLACE MODEL {model} OPTIONS ({classifier}, l2_reg = 5000.0,"
            " deploy = 'manual') AS SELECT z, y > 100 AS big, x FROM split.points"
        )
        runtime.run(
            f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 40, VERSION 2 = 30, VERSION 3 = 30)"
            " BY KEY id"
        )
        query = "SELECT id, predicted_big, predicted_big_probs[2].prob, {v} FROM ML.PREDICT("
        served = runtime.run(
            query.format(v="model_version") + f"MODEL {model}, TABLE split.points)"
        )
        alone: dict[tuple[int, int], tuple[Any, float]] = {}
        for number in (1, 2, 3):
            for k, big, prob, v in runtime.run(
                query.format(v=number) + f"MODEL {model} VERSION {number}, TABLE split.points)"
            ):
                alone[k, int(v)] = (big, float(prob))
        assert len(served) == KEYS
        assert {int(v) for *_, v in served} == {1, 2, 3}
        for k, big, prob, v in served:
            expected_big, expected_prob = alone[k, int(v)]
            assert big == expected_big
            assert math.isclose(float(prob), expected_prob, rel_tol=1e-12, abs_tol=1e-15)
        probs = {round(float(p), 9) for _, _, p, _ in served}
        assert len(probs) > 100  # (the versions and rows differ: not one constant)
    finally:
        runtime.con.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_through_the_gateway(engine: str, request: pytest.FixtureRequest) -> None:
    from gateway_client import GatewayConnection

    from sqlml.wire.server import ServerConfig

    database = shop_database(engine, request)
    with serving(ServerConfig(port=0), *gateway_parts(engine, database)) as port:
        client = GatewayConnection(port)
        try:
            split = Split.over(client, engine)
            model = split.model(LINEAR, OTHER)
            split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
            owners = split.scored_by(model)
            assert owners == {k: 1 if int_bucket(k) < 5000 else 2 for k in owners}
            assert split.sqlstate(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 1)") == "22023"
        finally:
            client.close()


def test_postgres_rights_over_a_split(pg_database: str) -> None:
    """A role with USAGE scores through the split (row-level security shows it the settings)
    but may not change it (42501); with MANAGE it may."""
    import os

    import psycopg2

    split = Split(pg_database, "postgres")
    raw = psycopg2.connect(pg_database)
    raw.autocommit = True
    role = f"splitter_{os.getpid()}"
    try:
        split.run("CREATE SCHEMA split")
        split.run(f"CREATE TABLE split.points AS {POINTS}")
        model = split.model(LINEAR, OTHER)
        split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) BY KEY id")
        as_role = with_usage(raw, pg_database, model, role)
        try:
            owners = as_role.scored_by(model)
            assert owners == {k: 1 if int_bucket(k) < 5000 else 2 for k in owners}
            change = f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 90, VERSION 2 = 10)"
            assert as_role.sqlstate(change) == "42501"
            with raw.cursor() as cur:
                cur.execute("SELECT sqlml.grant_model(%s, %s, 'MANAGE')", [model, role])
            as_role.run(change)
            rows = split.run(f"SELECT role FROM ML.DEPLOYMENTS(MODEL {model})")
            assert rows[-1] == (role,)
        finally:
            as_role.con.close()
    finally:
        split.con.close()
        with raw.cursor() as cur:
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        raw.close()


# -- ML.COMPARE, and ML.EVALUATE of a version that does not serve -------------------------------------


def reference_metrics(split: Split, model: str) -> dict[str, float]:
    """scikit-learn's regression metrics of a version's own predictions on split.points."""
    from sklearn.metrics import mean_absolute_error, r2_score

    rows = split.run(f"SELECT y, predicted_y FROM ML.PREDICT(MODEL {model}, TABLE split.points)")
    truth, predicted = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
    return {
        "r2_score": r2_score(truth, predicted),
        "mean_absolute_error": mean_absolute_error(truth, predicted),
    }


def test_evaluate_of_a_version_that_does_not_serve(split: Split) -> None:
    """(On PostgreSQL the server evaluated the serving version whatever VERSION n said.)"""
    model = split.model(LINEAR, OTHER)
    for number in (1, 2):
        (r2, mae) = split.run(
            f"SELECT r2_score, mean_absolute_error FROM ML.EVALUATE(MODEL {model} VERSION"
            f" {number}, TABLE split.points)"
        )[0]
        expected = reference_metrics(split, f"{model} VERSION {number}")
        assert r2 == pytest.approx(expected["r2_score"], abs=1e-9)
        assert mae == pytest.approx(expected["mean_absolute_error"], rel=1e-9)


def test_compare_evaluates_the_serving_versions_side_by_side(split: Split) -> None:
    model = split.model(LINEAR, OTHER, OTHER)
    compare = (
        "SELECT version, status, traffic_weight, r2_score, mean_absolute_error"
        f" FROM ML.COMPARE(MODEL {model}, TABLE split.points) ORDER BY version"
    )
    rows = split.run(compare)
    assert [r[:3] for r in rows] == [(1, "serving", None)]
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 70, VERSION 2 = 0, VERSION 3 = 30)")
    rows = split.run(compare)
    assert [r[:3] for r in rows] == [(1, "serving", 70.0), (3, "traffic", 30.0)]
    for number, _, _, r2, mae in rows:
        expected = reference_metrics(split, f"{model} VERSION {number}")
        assert r2 == pytest.approx(expected["r2_score"], abs=1e-9)
        assert mae == pytest.approx(expected["mean_absolute_error"], rel=1e-9)
    assert rows[0][3] > rows[1][3]  # the regularized version fits worse
    assert split.sqlstate(f"SELECT * FROM ML.COMPARE(MODEL {model})") == "42601"
    pinned = f"SELECT * FROM ML.COMPARE(MODEL {model} VERSION 2, TABLE split.points)"
    assert split.sqlstate(pinned) == "0A000"
    if split.engine == "postgres":  # plain SQL: sqlml.ml computes it in the server
        import psycopg2

        raw = psycopg2.connect(split.database)
        try:
            with raw.cursor() as cur:
                cur.execute(
                    "SELECT r ->> 'version', r ->> 'status' FROM sqlml.ml(%s) AS r",
                    [f"SELECT * FROM ML.COMPARE(MODEL {model}, TABLE split.points)"],
                )
                assert sorted(cur.fetchall()) == [("1", "serving"), ("3", "traffic")]
        finally:
            raw.close()


def test_a_classifier_split_at_random(split: Split) -> None:
    """Labels and probability arrays through the split's CASE, a random bucket drawn once per
    row: every row scored by exactly one version, as that version alone scores it."""
    logistic = "model_type = 'logistic_reg', input_label_cols = ['high']"
    train = "SELECT x, z, y > 100 AS high FROM split.points"
    model = split.model(logistic, logistic + ", l2_reg = 50.0, deploy = 'manual'", train=train)
    split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50)")
    probs = "(SELECT max(p.prob) FROM UNNEST(predicted_high_probs) AS p)"
    if split.engine == "postgres":
        probs = "(SELECT max(p.prob) FROM UNNEST(predicted_high_probs) AS p(label, prob))"
    query = (
        f"SELECT id, predicted_high, {probs} AS top{{version}} FROM ML.PREDICT(MODEL {model}"
        "{pinned}, TABLE split.points)"
    )
    rows = split.run(query.format(version=", model_version", pinned=""))
    assert len(rows) == KEYS
    assert {int(r[3]) for r in rows} == {1, 2}
    alone = {
        v: {r[0]: (r[1], r[2]) for r in split.run(query.format(version="", pinned=f" VERSION {v}"))}
        for v in (1, 2)
    }
    for key, label, top, version in rows:
        assert label is not None
        assert (label, round(top, 9)) == (
            alone[int(version)][key][0],
            round(alone[int(version)][key][1], 9),
        )


@pytest.mark.parametrize("split", ["postgres"], indirect=True)
def test_postgres_a_split_at_random_runs_in_parallel_workers(split: Split) -> None:
    """random() is PARALLEL RESTRICTED in PostgreSQL: drawn through the extension's
    parallel-safe sqlml.random(), a random split keeps the parallel plan a split by key has
    (the plan asked for with parallelism made free, so that only safety decides)."""
    model = split.model(LINEAR, OTHER)
    query = f"SELECT count(*), sum(predicted_y) FROM ML.PREDICT(MODEL {model}, TABLE split.points)"
    con = sqlml.connect(split.database, autocommit=True)
    try:
        free_parallelism(con)
        plans = {}
        for by in ("BY KEY id", ""):
            split.run(f"ALTER MODEL {model} SET TRAFFIC (VERSION 1 = 50, VERSION 2 = 50) {by}")
            sql = con.session.ml_sql(query)
            assert sql is not None
            plans[by] = "\n".join(r[0] for r in con.execute(f"EXPLAIN {sql}").fetchall())
            assert con.execute(query).fetchall()[0][0] == KEYS
        # scored below the Gather, in the workers: each sums its rows (Partial Aggregate); a
        # parallel-restricted draw is evaluated above it, in the leader alone
        assert "Partial Aggregate" in plans["BY KEY id"]
        assert "Partial Aggregate" in plans[""], plans[""]
    finally:
        con.close()
