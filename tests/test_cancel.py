"""A cancelled or timed-out CREATE MODEL stops at its next checkpoint (ml/checkpoints.py) with
57014 and stores nothing, on both engines and through the gateway: sqlml.connect's cancel()
from another thread (DuckDB), pg_cancel_backend and statement_timeout (PostgreSQL, inside the
server), the gateway's CancelRequest and --statement-timeout (DuckDB, and the PostgreSQL proxy).

Each test trains a model whose fit takes several seconds (L-BFGS on 7 classes, no early stop),
cancels it after about half a second and checks that the error came well before the training
would have finished, that the model serves the version it served before (a new model does not
exist), and that the session goes on."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from conftest import client_module, gateway_parts, serving

import sqlml
from sqlml.wire.server import ServerConfig

ROWS = 10_000
CANCEL_AFTER = 0.5
# a PostgreSQL backend's first sqlml statement imports sqlml and scikit-learn before any
# checkpoint: a cancel then answers after the import (SLOW itself runs over a minute)
FIRST_LOAD_WITHIN = 30.0
# SLOW reads its rows in well under 0.5 s, then fits for over a minute (300 L-BFGS iterations
# over a one-hot column of 1,000 values, each up to about 1 s): a cancel must answer far sooner.
ANSWER_WITHIN = 4.0

BIG = (
    "CREATE TABLE big AS SELECT CAST(i % 7 AS VARCHAR) AS label,"
    " CAST(CAST(i AS BIGINT) * 7919 % 1000 AS DOUBLE PRECISION) / 1000 AS a,"
    " CAST(CAST(i AS BIGINT) * 7907 % 997 AS DOUBLE PRECISION) / 997 AS b,"
    " CAST(i % 13 AS DOUBLE PRECISION) AS d, CAST(i % 1000 AS VARCHAR) AS e FROM {rows}"
)
SOURCES = {"duckdb": f"range({ROWS}) AS r(i)", "postgres": f"generate_series(0, {ROWS - 1}) AS i"}
SLOW = (
    "CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'logistic_reg',"
    " max_iterations = 300, early_stop = FALSE) AS SELECT * FROM big"
)
QUICK = (
    "CREATE MODEL slow OPTIONS (model_type = 'logistic_reg', max_iterations = 1)"
    " AS SELECT * FROM big WHERE a < 0.1"
)
SERVING = "SELECT current_version FROM sqlml.models WHERE model_name = '{name}'"
VERSIONS = "SELECT count(*) FROM sqlml.versions"


def _database(engine: str, request: pytest.FixtureRequest) -> str:
    """A database with the table ``big``; each test trains ``slow`` quickly on its own
    connection first (which, on PostgreSQL, also loads sqlml and scikit-learn in the backend:
    an import is no checkpoint, and takes seconds)."""
    if engine == "postgres":
        database = str(request.getfixturevalue("pg_database"))
    else:
        database = str(request.getfixturevalue("tmp_path") / "cancel.duckdb")
    con = sqlml.connect(database, autocommit=True)
    try:
        con.execute(BIG.format(rows=SOURCES[engine]))
    finally:
        con.close()
    return database


@pytest.fixture(params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest) -> tuple[str, str]:
    engine = str(request.param)
    return engine, _database(engine, request)


@pytest.fixture
def duckdb_database(request: pytest.FixtureRequest) -> str:
    return _database("duckdb", request)


def _after(seconds: float, action: Callable[[], Any]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def _state(run: Callable[[str], Any]) -> tuple[Any, Any, Any]:
    """(slow's serving version, whether 'fresh' exists, how many versions are stored)."""
    return run(SERVING.format(name="slow")), run(SERVING.format(name="fresh")), run(VERSIONS)


def _in_process(con: sqlml.Connection) -> Callable[[str], Any]:
    def run(sql: str) -> Any:
        cursor = con.execute(sql)
        row = cursor.fetchone() if cursor.description else None
        return None if row is None else row[0]

    return run


def _cancelled(
    statement: Callable[[], Any], error: type[BaseException], within: float | None = None
) -> float:
    """Runs a statement that must be cancelled (``error``, 57014): the seconds it took."""
    within = ANSWER_WITHIN if within is None else within
    started = time.monotonic()
    with pytest.raises(error) as raised:
        statement()
    took = time.monotonic() - started
    assert _sqlstate(raised.value) == "57014", raised.value
    assert took < within, f"the cancel took {took:.2f}s"
    return took


def _sqlstate(e: BaseException) -> str:
    return str(getattr(e, "sqlstate", None) or getattr(e, "pgcode", None))


# -- sqlml.connect -------------------------------------------------------------------------------


def test_cancel_from_another_thread_stops_training_on_duckdb(duckdb_database: str) -> None:
    con = sqlml.connect(duckdb_database, autocommit=True)
    try:
        run = _in_process(con)
        run(QUICK)
        before = _state(run)
        assert before == (1, None, 1)
        for name in ("slow", "fresh"):
            timer = _after(CANCEL_AFTER, con.cancel)
            _cancelled(lambda n=name: con.execute(SLOW.format(name=n)), sqlml.Error)
            timer.join()
            assert _state(run) == before
        con.cancel()  # a cancel with nothing running is forgotten: the next training runs
        con.execute(QUICK.replace("CREATE MODEL slow", "CREATE MODEL fresh"))
        assert _state(run) == (1, 1, 2)
    finally:
        con.close()


def test_kmeans_checks_between_lloyd_iterations_and_fits_the_same_model() -> None:
    """KMeans has no callback API: sqlml wraps its per-iteration step (ml/checkpoints.py). The
    hook must exist in the pinned scikit-learn, be called once per iteration, stop the fit
    when the checkpoint raises, and leave the fitted model exactly as without it."""
    import numpy as np
    from sklearn.cluster import KMeans

    from sqlml import errors
    from sqlml.ml import checkpoints

    assert checkpoints._install_kmeans_hook()
    x = np.random.default_rng(0).random((5_000, 6))

    def kmeans() -> KMeans:
        return KMeans(8, init="random", n_init=1, max_iter=200, tol=0.0, random_state=0)

    plain = kmeans().fit(x)
    calls = 0

    def count() -> None:
        nonlocal calls
        calls += 1

    watched = kmeans()
    checkpoints.watch(watched, count)
    try:
        watched.fit(x)
    finally:
        checkpoints.unwatch(watched)
    assert watched.n_iter_ == plain.n_iter_ > 5
    assert calls >= watched.n_iter_
    np.testing.assert_array_equal(watched.cluster_centers_, plain.cluster_centers_)
    np.testing.assert_array_equal(watched.labels_, plain.labels_)

    def cancel_at_the_third() -> None:
        count()
        if calls >= 3:
            raise errors.QueryCanceled("canceling statement due to user request")

    calls = 0
    stopped = kmeans()
    checkpoints.watch(stopped, cancel_at_the_third)
    try:
        with pytest.raises(errors.QueryCanceled):
            stopped.fit(x)
    finally:
        checkpoints.unwatch(stopped)
    assert calls == 3
    other = kmeans()
    other.fit(x)  # another fit in this thread, unwatched, sees no checkpoint
    assert other.n_iter_ == plain.n_iter_


def test_cancel_in_a_transaction_stores_nothing_and_the_transaction_goes_on(
    duckdb_database: str,
) -> None:
    con = sqlml.connect(duckdb_database)  # PEP 249: a transaction from the first statement
    try:
        run = _in_process(con)
        run(QUICK)
        before = _state(run)
        timer = _after(CANCEL_AFTER, con.cancel)
        _cancelled(lambda: con.execute(SLOW.format(name="slow")), sqlml.Error)
        timer.join()
        assert _state(run) == before
        con.commit()
        assert _state(run) == before
    finally:
        con.close()


def test_pg_cancel_backend_and_statement_timeout_stop_training_in_the_server(
    request: pytest.FixtureRequest,
) -> None:
    database = _database("postgres", request)
    con = sqlml.connect(database, autocommit=True)
    admin = psycopg2.connect(database)
    admin.autocommit = True
    try:
        run = _in_process(con)
        run(QUICK)
        before = _state(run)
        pid = run("SELECT pg_backend_pid()")

        def cancel() -> None:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_cancel_backend(%s)", [pid])

        for name in ("slow", "fresh"):
            timer = _after(CANCEL_AFTER, cancel)
            _cancelled(lambda n=name: con.execute(SLOW.format(name=n)), sqlml.Error)
            timer.join()
            assert _state(run) == before
        con.execute(f"SET statement_timeout = '{int(CANCEL_AFTER * 1000)}ms'")
        _cancelled(lambda: con.execute(SLOW.format(name="slow")), sqlml.Error)
        con.execute("SET statement_timeout = 0")
        assert _state(run) == before
    finally:
        admin.close()
        con.close()


# -- through the gateway -------------------------------------------------------------------------


@pytest.fixture
def gateway(database: tuple[str, str]) -> Iterator[Callable[..., Any]]:
    """Starts a gateway with the given limits in front of ``database``; stops them all."""
    engine, path = database
    stack: list[Any] = []

    def start(**limits: Any) -> int:
        context = serving(ServerConfig(port=0, **limits), *gateway_parts(engine, path))
        stack.append(context)
        return int(context.__enter__())

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _wire_run(connection: Any) -> Callable[[str], Any]:
    def run(sql: str) -> Any:
        with connection.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone() if cur.description else None
            return None if row is None else row[0]

    return run


def test_the_gateway_statement_timeout_stops_training(
    database: tuple[str, str], gateway: Callable[..., int], request: pytest.FixtureRequest
) -> None:
    """Over PostgreSQL a new backend's first sqlml statement loads sqlml and scikit-learn
    (seconds on a busy machine, with no checkpoint inside the import), and the gateway's timeout
    cancels any statement that would load them first: that first 57014 comes after the import
    (a documented limit), so it gets the bound of a training cut short (far below the minute
    the training takes), and the next one, on the loaded backend, the usual bound."""
    port = gateway(statement_timeout=CANCEL_AFTER)
    connection = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
    connection.autocommit = True
    try:
        run = _wire_run(connection)
        if database[0] == "duckdb":
            run(QUICK)
        before = _state(run)
        first = FIRST_LOAD_WITHIN if database[0] == "postgres" else None
        for name, within in (("slow", first), ("fresh", None)):
            _cancelled(lambda n=name: run(SLOW.format(name=n)), psycopg2.Error, within)
            assert _state(run) == before
        assert run("SELECT 5") == 5
    finally:
        connection.close()


def test_a_cancel_request_through_the_gateway_stops_training(gateway: Callable[..., int]) -> None:
    """psycopg 3's cancel_safe sends the CancelRequest (psycopg2's cancel() holds the GIL while
    it waits for the gateway, which runs in this very process)."""
    psycopg = client_module("psycopg")
    port = gateway()
    with psycopg.connect(
        host="127.0.0.1", port=port, dbname="shop", user="ana", autocommit=True
    ) as connection:
        run = _wire_run(connection)
        run(QUICK)
        before = _state(run)
        for name in ("slow", "fresh"):
            timer = _after(CANCEL_AFTER, connection.cancel_safe)
            _cancelled(lambda n=name: connection.execute(SLOW.format(name=n)), psycopg.Error)
            timer.join()
            assert _state(run) == before
        assert run("SELECT 'still here'") == "still here"


@contextlib.contextmanager
def _gateway_process(database: str, *options: str) -> Iterator[int]:
    """``sqlml serve`` in a process of its own: psycopg2's cancel() blocks holding the GIL
    while it waits for the gateway, so it cannot reach a gateway running in this process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "sqlml.cli", "serve", "-d", database, "-p", str(port)]
    with (
        tempfile.TemporaryFile("w+") as log,
        subprocess.Popen([*command, *options], stderr=log) as process,
    ):
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    log.seek(0)
                    assert process.poll() is None, log.read()
                    assert time.monotonic() < deadline, "the gateway did not start"
                    time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_psycopg2_cancel_and_the_statement_timeout_option_of_sqlml_serve(
    duckdb_database: str,
) -> None:
    with _gateway_process(duckdb_database, "--statement-timeout", "5") as port:
        connection = psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="ana")
        connection.autocommit = True
        try:
            run = _wire_run(connection)
            run(QUICK)
            before = _state(run)
            timer = _after(CANCEL_AFTER, connection.cancel)
            _cancelled(lambda: run(SLOW.format(name="slow")), psycopg2.Error)
            timer.join()
            assert _state(run) == before
            # --statement-timeout 5: no cancel, the training stops at the timeout
            started = time.monotonic()
            with pytest.raises(psycopg2.errors.QueryCanceled):
                run(SLOW.format(name="fresh"))
            assert time.monotonic() - started < 5 + ANSWER_WITHIN
            assert _state(run) == before
            assert run("SELECT 5") == 5
        finally:
            connection.close()
