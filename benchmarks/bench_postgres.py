"""Scoring and training 1M rows x 10 numeric features with logistic_reg inside PostgreSQL.

Starts a throwaway PostgreSQL cluster (tests/pgcluster.py; SQLML_TEST_POSTGRES_DSN points it at an
existing server instead), installs sqlml into a new database, loads bench.train (f0..f9, y) and
bench.score (id, f0..f9), and runs sqlml's in-server paths side by side with the client round
trip a user would do instead. Prints times and ratios (machines here are noisy: compare ratios).

The sqlml connection's backend is warmed up first (sqlml.version(), a 1,000-row CREATE MODEL and a
small runtime ML.PREDICT): a backend's first PL/Python call imports numpy, scikit-learn, onnx and
onnxruntime (~2 s), which is not counted.

training
  create_model       CREATE MODEL ... AS SELECT * FROM bench.train through sqlml.connect: the rows
                     are read, preprocessed, fitted, converted, checked and stored in the server
  client_fit         what a user does instead: read the rows out (psycopg2, binary COPY, parsed
                     with numpy) and fit StandardScaler + LogisticRegression (sqlml's defaults)
scoring, predictions written to a new table
  compiled_write     CREATE TABLE AS SELECT * FROM ML.PREDICT(... 'compiled'): native SQL
  runtime_write      the same through the PL/Python batch scorer (onnxruntime in the backend)
  compiled_write_same, runtime_write_same
                     the round trip's columns only: id, predicted_y, p_true (from the probs array)
  function_write     plain SQL: CREATE TABLE AS SELECT id, p, p > 0.5 FROM (SELECT id,
                     sqlml."bench.m"(f0, ..., f9) AS p ...), the model's generated SQL function
  round_trip         read id, f0..f9 out (binary COPY), onnxruntime on the model's ONNX, write
                     id, p_true, predicted_y back with binary COPY into a new table
  write_floor        CREATE TABLE AS SELECT id, f0, f0 > 0: the cost of the write alone
scoring only, every prediction computed and aggregated in the server, nothing written
  compiled, runtime  count(predicted_y), sum(p_true) over ML.PREDICT
  function           the same over the generated SQL function
  scan               sum(f0 + ... + f9): the floor
pieces (to see where the time goes)
  server_read_sql    the SQL CREATE MODEL runs to read its rows in the server (chunks of
                     array_send(array_agg(...))), consumed in the server
  client_read, sklearn_fit              client_fit's two halves
  rt_read, rt_score, rt_write           round_trip's three parts
  predict_floor      write_floor with ML.PREDICT's columns: all inputs, a boolean and the array
                     of sqlml.label_prob_bool (label, prob) built from plain columns
  compiled_label     count(predicted_y) over compiled ML.PREDICT: no probs array built
  batch_arrays       runtime scoring's chunks alone: array_send(array_agg(f)) per feature and
                     16,384-row chunk, consumed in the server
  batch_scorer       the same chunks passed to sqlml.score_batch, its results consumed

Usage: python benchmarks/bench_postgres.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import psycopg2
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import sqlml
from sqlml.engine import _parse_query
from sqlml.postgres.server import CHUNK_ROWS, chunk_query
from sqlml.scoring import BATCH_ROWS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pgcluster

FEATURES = [f"f{i}" for i in range(10)]
FEATURE_LIST = ", ".join(FEATURES)
DATABASE = "sqlml_bench"
# binary COPY: one value's type, its big-endian numpy type and its length on the wire
WIRE = {"int8": (">i8", 8), "float8": (">f8", 8), "bool": ("u1", 1)}
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
OPTS = {"C": np.inf, "max_iter": 20, "tol": 0.01}  # logistic_reg's defaults (sqlml/ml/models.py)


def best(
    fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def row_dtype(types: list[str]) -> np.dtype[Any]:
    """One binary COPY row as a numpy record: field count, then length and value per field."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, t in enumerate(types):
        fields += [(f"len{i}", ">i4"), (f"v{i}", WIRE[t][0])]
    return np.dtype(fields)


def encode_copy(columns: list[tuple[np.ndarray[Any, Any], str]]) -> io.BytesIO:
    """Columns without NULLs as a binary COPY stream, built by numpy (no Python loop per row)."""
    types = [t for _, t in columns]
    rows = np.empty(len(columns[0][0]), dtype=row_dtype(types))
    rows["n"] = len(columns)
    for i, (values, t) in enumerate(columns):
        rows[f"len{i}"] = WIRE[t][1]
        rows[f"v{i}"] = values
    stream = io.BytesIO()
    stream.write(COPY_HEADER)
    stream.write(rows.data)
    stream.write(b"\xff\xff")
    stream.seek(0)
    return stream


def decode_copy(data: memoryview, types: list[str]) -> list[np.ndarray[Any, Any]]:
    """A binary COPY stream of NULL-free fixed-width columns as numpy arrays (native order)."""
    dtype = row_dtype(types)
    if bytes(data[:11]) != COPY_HEADER[:11] or bytes(data[-2:]) != b"\xff\xff":
        raise ValueError("not a binary COPY stream")
    count, rest = divmod(len(data) - len(COPY_HEADER) - 2, dtype.itemsize)
    if rest:
        raise ValueError("rows of unexpected width (NULLs?)")
    rows = np.frombuffer(data, dtype=dtype, offset=len(COPY_HEADER), count=count)
    if count and not (rows["n"] == len(types)).all():
        raise ValueError("unexpected field count")
    out = []
    for i, t in enumerate(types):
        if count and not (rows[f"len{i}"] == WIRE[t][1]).all():
            raise ValueError(f"column {i}: NULL or unexpected width")
        values = rows[f"v{i}"]
        out.append(
            values.astype(bool) if t == "bool" else values.astype(values.dtype.newbyteorder("="))
        )
    return out


def copy_out(cur: Any, query: str, types: list[str]) -> list[np.ndarray[Any, Any]]:
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", buffer)
    return decode_copy(buffer.getbuffer(), types)


def load_data(cur: Any, rows: int) -> None:
    """The same rows as bench_duckdb.py: 10 standard normal features, a logistic label."""
    rng = np.random.default_rng(42)
    x = rng.normal(size=(rows, len(FEATURES)))
    logit = x @ rng.normal(size=len(FEATURES)) + 0.3
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    floats = ", ".join(f"{f} DOUBLE PRECISION" for f in FEATURES)
    cur.execute("CREATE SCHEMA bench")
    cur.execute(f"CREATE TABLE bench.train ({floats}, y BOOLEAN)")
    cur.execute(f"CREATE TABLE bench.score (id BIGINT, {floats})")
    features = [(x[:, i], "float8") for i in range(len(FEATURES))]
    cur.copy_expert(
        "COPY bench.train FROM STDIN (FORMAT binary)",
        encode_copy([*features, (y, "bool")]),
        size=1 << 20,
    )
    cur.copy_expert(
        "COPY bench.score FROM STDIN (FORMAT binary)",
        encode_copy([(np.arange(rows), "int8"), *features]),
        size=1 << 20,
    )
    cur.execute("VACUUM ANALYZE bench.train")
    cur.execute("VACUUM ANALYZE bench.score")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with pgcluster.server() as server:
        started = time.perf_counter()
        dsn = pgcluster.create_database(server, DATABASE)
        pgcluster.install(dsn)
        plain = psycopg2.connect(dsn)
        plain.autocommit = True
        cur = plain.cursor()
        cur.execute("SELECT version()")
        print(cur.fetchone()[0])
        load_data(cur, args.rows)
        print(f"setup (database, sqlml install, load): {time.perf_counter() - started:.1f} s")
        con = sqlml.connect(dsn, autocommit=True)
        try:
            results = run(con, cur, args.repeat)
        finally:
            con.close()
            plain.close()
            pgcluster.drop_database(server, DATABASE)
    report(results, args.rows)


def run(con: sqlml.Connection, cur: Any, repeat: int) -> dict[str, float]:
    """``con``: sqlml's connection (its backend runs the ML); ``cur``: a plain psycopg2 cursor."""
    ml = con.cursor()
    r: dict[str, float] = {}

    def drop(*tables: str) -> Callable[[], None]:
        return lambda: cur.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")

    def sql(statement: str, c: Any = cur) -> Callable[[], None]:
        def go() -> None:
            c.execute(statement)
            if c.description is not None:
                c.fetchall()

        return go

    # warm-up of sqlml's backend: imports, the session, onnxruntime for the batch scorer
    started = time.perf_counter()
    ml.execute("SELECT sqlml.version()")
    ml.execute(
        "CREATE MODEL bench.warm OPTIONS (model_type='logistic_reg', input_label_cols=['y'])"
        " AS SELECT * FROM bench.train LIMIT 1000"
    )
    ml.execute(
        "SELECT * FROM ML.PREDICT(MODEL bench.warm, (SELECT * FROM bench.score LIMIT 10),"
        " STRUCT('runtime' AS scoring))"
    )
    ml.fetchall()
    print(f"warm-up of sqlml's backend (not counted): {time.perf_counter() - started:.2f} s")

    # -- training -----------------------------------------------------------------------------
    create = (
        "CREATE OR REPLACE MODEL bench.m OPTIONS (model_type='logistic_reg',"
        " input_label_cols=['y']) AS SELECT * FROM bench.train"
    )
    r["create_model"] = best(sql(create, ml), repeat)
    cur.execute(
        "SELECT v.training_info, v.onnx_sha256 FROM sqlml.versions v JOIN sqlml.models m"
        " USING (schema_name, model_name) WHERE schema_name = 'bench' AND model_name = 'm'"
        " AND v.version = m.current_version"
    )
    info_text, sha = cur.fetchone()
    info = json.loads(info_text)
    print(
        "create_model training_info (last run):",
        {k: round(v, 3) if isinstance(v, float) else v for k, v in info.items()},
    )
    r["create_model_outside_train"] = r["create_model"] - info["duration_seconds"]
    train_types = ["float8"] * len(FEATURES) + ["bool"]
    columns = [(f, 701) for f in FEATURES] + [("y", 16)]
    read_sql = chunk_query(
        _parse_query("SELECT * FROM bench.train", "postgres"), columns, CHUNK_ROWS
    )
    consumed = ", ".join(f"sum(length(c{i}))" for i in range(len(columns)))
    r["server_read_sql"] = best(
        sql(f"SELECT count(*), {consumed} FROM ({read_sql.sql(dialect='postgres')}) AS z"), repeat
    )

    def client_read() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        *x, y = copy_out(cur, f"SELECT {FEATURE_LIST}, y FROM bench.train", train_types)
        return np.column_stack(x), y

    def fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> None:
        Pipeline([("s", StandardScaler()), ("m", LogisticRegression(**OPTS))]).fit(x, y)

    r["client_fit"] = best(lambda: fit(*client_read()), repeat)
    r["client_read"] = best(client_read, repeat)
    rows = client_read()
    r["sklearn_fit"] = best(lambda: fit(*rows), repeat)
    del rows

    # -- scoring, written to a table ----------------------------------------------------------
    predict = "ML.PREDICT(MODEL bench.m, TABLE bench.score, STRUCT('{}' AS scoring))"
    p_true = "(predicted_y_probs[2]).prob"  # classes: [false, true]
    for mode in ("compiled", "runtime"):
        out = f"bench.out_{mode}"
        r[f"{mode}_write"] = best(
            sql(f"CREATE TABLE {out} AS SELECT * FROM {predict.format(mode)}", ml),
            repeat,
            drop(out),
        )
        same = f"bench.out_{mode}_same"
        r[f"{mode}_write_same"] = best(
            sql(
                f"CREATE TABLE {same} AS SELECT id, {p_true} AS p_true, predicted_y"
                f" FROM {predict.format(mode)}",
                ml,
            ),
            repeat,
            drop(same),
        )
    # OFFSET 0 keeps the subquery: pulled up, the function would be inlined (computed) twice
    function = f'SELECT id, sqlml."bench.m"({FEATURE_LIST}) AS p_true FROM bench.score OFFSET 0'
    r["function_write"] = best(
        sql(
            "CREATE TABLE bench.out_function AS SELECT id, p_true, p_true > 0.5 AS predicted_y"
            f" FROM ({function}) AS s"
        ),
        repeat,
        drop("bench.out_function"),
    )
    pieces: dict[str, float] = {}

    def round_trip() -> None:
        t0 = time.perf_counter()
        cur.execute(
            "SELECT v.onnx, v.label FROM sqlml.versions v JOIN sqlml.models m"
            " USING (schema_name, model_name) WHERE schema_name = 'bench'"
            " AND model_name = 'm' AND v.version = m.current_version"
        )
        onnx, label = cur.fetchone()
        classes = json.loads(label)["classes"]
        session = ort.InferenceSession(bytes(onnx), providers=["CPUExecutionProvider"])
        ids, *x = copy_out(
            cur,
            f"SELECT id, {FEATURE_LIST} FROM bench.score",
            ["int8"] + ["float8"] * len(FEATURES),
        )
        t1 = time.perf_counter()
        feed = {f: v.reshape(-1, 1) for f, v in zip(FEATURES, x, strict=True)}
        probabilities, index = session.run(["probabilities", "label"], feed)
        positive = classes.index(True)
        t2 = time.perf_counter()
        cur.execute(
            "CREATE TABLE bench.out_round_trip"
            " (id BIGINT, p_true DOUBLE PRECISION, predicted_y BOOLEAN)"
        )
        stream = encode_copy(
            [
                (ids, "int8"),
                (probabilities[:, positive], "float8"),
                (np.asarray(classes)[index], "bool"),
            ]
        )
        cur.copy_expert(
            "COPY bench.out_round_trip FROM STDIN (FORMAT binary)", stream, size=1 << 20
        )
        t3 = time.perf_counter()
        for name, seconds in (("rt_read", t1 - t0), ("rt_score", t2 - t1), ("rt_write", t3 - t2)):
            pieces[name] = min(pieces.get(name, np.inf), seconds)

    r["round_trip"] = best(round_trip, repeat, drop("bench.out_round_trip"))
    r.update(pieces)
    r["write_floor"] = best(
        sql(
            "CREATE TABLE bench.out_floor AS SELECT id, f0 AS p_true, f0 > 0 AS predicted_y FROM bench.score"
        ),
        repeat,
        drop("bench.out_floor"),
    )
    probs = "ARRAY[(false, f1)::sqlml.label_prob_bool, (true, f2)::sqlml.label_prob_bool]"
    r["predict_floor"] = best(
        sql(
            f"CREATE TABLE bench.out_floor AS SELECT *, f0 > 0 AS predicted_y, {probs} AS predicted_y_probs FROM bench.score"
        ),
        repeat,
        drop("bench.out_floor"),
    )
    cur.execute("DROP TABLE bench.out_floor")

    # -- scoring only -------------------------------------------------------------------------
    for mode in ("compiled", "runtime"):
        r[mode] = best(
            sql(
                f"SELECT count(*) FILTER (WHERE predicted_y), sum({p_true}) FROM {predict.format(mode)}",
                ml,
            ),
            repeat,
        )
    r["compiled_label"] = best(
        sql(f"SELECT count(*) FILTER (WHERE predicted_y) FROM {predict.format('compiled')}", ml),
        repeat,
    )
    r["function"] = best(
        sql(f"SELECT count(*) FILTER (WHERE p_true > 0.5), sum(p_true) FROM ({function}) AS s"),
        repeat,
    )
    r["scan"] = best(sql(f"SELECT sum({' + '.join(FEATURES)}) FROM bench.score"), repeat)
    sends = ", ".join(f"array_send(array_agg({f}))" for f in FEATURES)
    chunks = (
        f"FROM (SELECT *, row_number() OVER () AS rn FROM bench.score) AS q"
        f" GROUP BY (rn - 1) / {BATCH_ROWS}"
    )
    lengths = " + ".join(f"length(s{i})" for i in range(len(FEATURES)))
    arrays = ", ".join(f"array_send(array_agg({f})) AS s{i}" for i, f in enumerate(FEATURES))
    r["batch_arrays"] = best(
        sql(f"SELECT count(*), sum({lengths}) FROM (SELECT {arrays} {chunks}) AS b"), repeat
    )
    r["batch_scorer"] = best(
        sql(
            f"SELECT count(*), sum(cardinality(raw))"
            f" FROM (SELECT sqlml.score_batch('{sha}', {sends}) AS raw {chunks}) AS b",
            ml,
        ),
        repeat,
    )

    # -- every path wrote the same predictions ------------------------------------------------
    for table in ("compiled_same", "runtime_same", "function"):
        cur.execute(
            "SELECT count(*), max(abs(a.p_true - b.p_true)),"
            " count(*) FILTER (WHERE a.predicted_y <> b.predicted_y)"
            f" FROM bench.out_round_trip a JOIN bench.out_{table} b USING (id)"
        )
        rows, diff, labels = cur.fetchone()
        print(
            f"out_{table} vs out_round_trip: {rows:,} rows, max |dp| {diff:.2e}, {labels} labels differ"
        )
    return r


def report(r: dict[str, float], rows: int) -> None:
    print(f"rows: {rows:,}")
    for name, seconds in r.items():
        print(f"  {name:<27} {seconds * 1000:9.1f} ms   {rows / seconds / 1e6:8.2f} M rows/s")
    checks: list[tuple[str, float, str | None]] = [
        ("round_trip / compiled_write (target >= 5)", r["round_trip"] / r["compiled_write"], ">=5"),
        (
            "round_trip / compiled_write_same (target >= 5)",
            r["round_trip"] / r["compiled_write_same"],
            ">=5",
        ),
        ("round_trip / function_write (target >= 5)", r["round_trip"] / r["function_write"], ">=5"),
        ("runtime_write / round_trip (target <= 1)", r["runtime_write"] / r["round_trip"], "<=1"),
        (
            "runtime_write_same / round_trip (target <= 1)",
            r["runtime_write_same"] / r["round_trip"],
            "<=1",
        ),
        ("create_model / client_fit (target <= 1.5)", r["create_model"] / r["client_fit"], "<=1.5"),
        ("round_trip / compiled (scoring only)", r["round_trip"] / r["compiled"], None),
        ("round_trip / function (scoring only)", r["round_trip"] / r["function"], None),
        ("runtime / round_trip (scoring only)", r["runtime"] / r["round_trip"], None),
        ("compiled_write / predict_floor", r["compiled_write"] / r["predict_floor"], None),
        ("function_write / write_floor", r["function_write"] / r["write_floor"], None),
        ("round_trip / write_floor", r["round_trip"] / r["write_floor"], None),
        ("create_model / sklearn_fit", r["create_model"] / r["sklearn_fit"], None),
        ("server_read_sql / client_read", r["server_read_sql"] / r["client_read"], None),
    ]
    print("ratios:")
    for label, ratio, target in checks:
        verdict = ""
        if target is not None:
            limit = float(target[2:])
            met = ratio >= limit if target.startswith(">=") else ratio <= limit
            verdict = "MET" if met else "NOT MET"
        print(f"  {label:<48} {ratio:7.2f}  {verdict}")
    calls = r["batch_scorer"] - r["batch_arrays"]
    print(f"sqlml.score_batch's calls alone (batch_scorer - batch_arrays): {calls * 1000:.0f} ms")


if __name__ == "__main__":
    main()
