"""How soon another session's prepared statement sees a deploy (issue 14), on both engines.

Session A deploys (``ALTER MODEL m DEPLOY VERSION n`` through sqlml.connect, autocommit: the
statement's return is its COMMIT); session B then runs its prepared single-row ML.PREDICT until
it returns version n's prediction. Measured per engine and per front door of B:

  connect   B is sqlml.connect: a kept plan (``?`` parameter, prepared on DuckDB)
  gateway   B is psycopg 3 through ``sqlml serve`` (in this process; over PostgreSQL the proxy),
            ``prepare=True``: the extended protocol's named statement, Parse once, then Bind /
            Execute only

  execute   one execution of B's prepared statement, nothing deployed (median)
  seen      from A's COMMIT until B's statement returned the new version's prediction (median;
            ``runs`` says how many executions that took: 1 means the very next one)
  deploy    A's ALTER MODEL ... DEPLOY statement itself (median)

The ratio seen / execute is what following a deploy costs B's next statement (the rendering of
the new version's SQL, and over the proxy parsing it again on the server).

Usage: python benchmarks/deploy_latency.py [--rounds 20] [--calls 300] [--engine duckdb|postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from common import database

import sqlml
from sqlml.wire.server import ServerConfig

POINTS = (
    "SELECT CAST(i AS DOUBLE PRECISION) AS x, CAST(i % 5 AS DOUBLE PRECISION) AS z,"
    " CAST(2 * i + 3 * (i % 5) + 1 AS DOUBLE PRECISION) AS y"
    " FROM generate_series(1, 1000) AS g(i)"
)
GOOD = "model_type = 'linear_reg', input_label_cols = ['y']"
BAD = GOOD + ", l2_reg = 1000000.0, deploy = 'manual'"
PREDICT = (
    "SELECT predicted_y FROM ML.PREDICT(MODEL dl.m, (SELECT x, z FROM dl.points WHERE x = {}))"
)


@contextmanager
def gateway(engine: str, db: str) -> Iterator[int]:
    """``sqlml serve`` over ``db`` on an event loop thread of this process (the tests'
    conftest.serving); yields its port."""
    from conftest import serving

    if engine == "duckdb":
        from sqlml.wire.backends import DuckDBBackend
        from sqlml.wire.session import Session

        with serving(
            ServerConfig(port=0), lambda name, user: DuckDBBackend(db, name, user), Session
        ) as port:
            yield port
        return
    from sqlml.wire.proxy import ProxyBackend, ProxySession
    from sqlml.wire.upstream import Target

    target = Target.parse(db)
    with serving(
        ServerConfig(port=0), lambda name, user: ProxyBackend(target), ProxySession
    ) as port:
        yield port


def reader(front: str, engine: str, db: str, port: int) -> tuple[Callable[[], float], Any]:
    """Session B's prepared statement as a callable, and the connection to close."""
    if front == "connect":
        con = sqlml.connect(db, autocommit=True)
        sql = PREDICT.format("?")
        return (lambda: round(float(con.execute(sql, [10.0]).fetchall()[0][0]), 9)), con
    target = psycopg.conninfo.conninfo_to_dict(db) if engine == "postgres" else {}
    raw = psycopg.connect(
        host="127.0.0.1",
        port=port,
        dbname=str(target.get("dbname", "bench")),
        user=str(target.get("user", "bench")),
        autocommit=True,
    )
    sql = PREDICT.format("%s")
    return (lambda: round(float(raw.execute(sql, [10.0], prepare=True).fetchall()[0][0]), 9)), raw


def measure(
    admin: Any, read: Callable[[], float], expected: dict[int, float], rounds: int, calls: int
) -> dict[str, float]:
    for _ in range(20):  # warm: rendered, prepared (on PostgreSQL also a generic plan)
        read()
    executions = []
    for _ in range(calls):
        started = time.perf_counter()
        read()
        executions.append(time.perf_counter() - started)
    deploys, seen, runs = [], [], []
    for i in range(rounds):
        version = 2 if i % 2 == 0 else 1
        started = time.perf_counter()
        admin.execute(f"ALTER MODEL dl.m DEPLOY VERSION {version}")
        committed = time.perf_counter()
        count = 1
        while read() != expected[version]:
            count += 1
            if count > 1000:
                raise AssertionError("the deploy was never seen")
        seen.append(time.perf_counter() - committed)
        deploys.append(committed - started)
        runs.append(count)
        for _ in range(5):  # (the next executions run the new plan as usual)
            read()
    return {
        "execute": statistics.median(executions),
        "seen": statistics.median(seen),
        "deploy": statistics.median(deploys),
        "runs": max(runs),
    }


def run_engine(engine: str, rounds: int, calls: int) -> None:
    with database(engine, "bench") as db:
        admin = sqlml.connect(db, autocommit=True)
        admin.execute("CREATE SCHEMA dl")
        admin.execute(f"CREATE TABLE dl.points AS {POINTS}")
        for options in (GOOD, BAD):
            admin.execute(
                f"CREATE OR REPLACE MODEL dl.m OPTIONS ({options}) AS SELECT x, z, y FROM dl.points"
            )
        expected = {
            v: round(
                float(
                    admin.execute(
                        PREDICT.format("?").replace("dl.m", f"dl.m VERSION {v}"), [10.0]
                    ).fetchall()[0][0]
                ),
                9,
            )
            for v in (1, 2)
        }
        assert expected[1] != expected[2]
        with gateway(engine, db) as port:
            for front in ("connect", "gateway"):
                read, con = reader(front, engine, db, port)
                try:
                    found = measure(admin, read, expected, rounds, calls)
                finally:
                    con.close()
                print(
                    f"  {engine:8s} {front:8s} execute {found['execute'] * 1000:7.2f} ms"
                    f"  seen {found['seen'] * 1000:7.2f} ms"
                    f"  seen/execute {found['seen'] / found['execute']:6.1f}x"
                    f"  runs {found['runs']:.0f}"
                    f"  deploy {found['deploy'] * 1000:7.1f} ms"
                )
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--engine", choices=("duckdb", "postgres"), action="append")
    args = parser.parse_args()
    print("deploy latency: a deploy's COMMIT until another session's prepared statement sees it")
    for engine in args.engine or ("duckdb", "postgres"):
        run_engine(engine, args.rounds, args.calls)


if __name__ == "__main__":
    main()
