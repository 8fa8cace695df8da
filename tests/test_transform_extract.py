"""EXTRACT(part FROM column) in TRANSFORM (issue 13): BigQuery's date and time parts of DATE,
DATETIME, TIME and TIMESTAMP columns as numeric features, on both engines, compiled to SQL and
through onnxruntime, through sqlml.connect and the gateway.

The reference is Python's own calendar (datetime: isocalendar, strftime's %U and %W, the UTC
conversion of aware datetimes) and scikit-learn fitted on a matrix built from it. The rows
gather the hard days: Dec 31 / Jan 1, ISO week 53 (2015, 2020, 2026), ISO years that start in
December (2018-12-31, 2024-12-30), leap days (2000, 2020, 2024; 1900 has none), dates before
1970, the last microsecond of a day, and TIMESTAMPs written in other zones whose UTC day,
month or year differs from the local one. Everything runs in a non-UTC session time zone.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import sqlml

Array = np.ndarray[Any, Any]
UTC = dt.UTC
SESSION_ZONE = "America/St_Johns"  # -03:30 (-02:30 in summer): moves hours and days
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
DATE_PARTS = ["DAYOFWEEK", "DAY", "DAYOFYEAR", "WEEK", "WEEK(MONDAY)", "ISOWEEK", "MONTH"]
DATE_PARTS += ["QUARTER", "YEAR", "ISOYEAR"]
TIME_PARTS = ["HOUR", "MINUTE", "SECOND", "MILLISECOND", "MICROSECOND"]
# the features: (column, part), in the TRANSFORM's order
FEATURES = [
    *(("d", p) for p in DATE_PARTS),
    *(("dtm", p) for p in ["DAYOFWEEK", "DAYOFYEAR", "WEEK(THURSDAY)", "ISOWEEK", "ISOYEAR"]),
    *(("dtm", p) for p in TIME_PARTS),
    *(("tm", p) for p in TIME_PARTS),
    *(("ts", p) for p in [*DATE_PARTS, "WEEK(SATURDAY)", *TIME_PARTS]),
]
LOGISTIC = [("d", "DAYOFWEEK"), ("dtm", "ISOWEEK"), ("tm", "MINUTE"), ("ts", "HOUR")]

HARD_DATES = [
    dt.date(2020, 12, 31),  # ISO week 53 of 2020
    dt.date(2021, 1, 1),
    dt.date(2021, 1, 3),  # still ISO 2020-W53
    dt.date(2015, 12, 31),
    dt.date(2026, 12, 31),
    dt.date(2018, 12, 31),  # ISO 2019-W01
    dt.date(2024, 12, 30),  # ISO 2025-W01
    dt.date(2024, 2, 29),
    dt.date(2000, 2, 29),
    dt.date(1900, 3, 1),
    dt.date(1969, 12, 31),
    dt.date(2023, 1, 1),  # a Sunday: week 1, ISO 2022-W52
    dt.date(2022, 1, 1),  # a Saturday: week 0
]
ZONES = [dt.timezone(dt.timedelta(minutes=m)) for m in (0, 330, -480, 840, -570, 60)]


def _random_date(rng: np.random.Generator) -> dt.date:
    if rng.random() < 0.35:
        return HARD_DATES[int(rng.integers(len(HARD_DATES)))]
    return dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 50000)))


def _random_time(rng: np.random.Generator) -> dt.time:
    if rng.random() < 0.15:
        return dt.time(23, 59, 59, 999999) if rng.random() < 0.5 else dt.time(0, 0)
    micros = int(rng.integers(0, 86_400_000_000))
    return (dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=micros)).time()


def _random_stamp(rng: np.random.Generator) -> dt.datetime:
    """An instant (|Unix seconds| < 2^32, where the graph's double holds microseconds), written
    in some zone."""
    zone = ZONES[int(rng.integers(len(ZONES)))]
    if rng.random() < 0.3:  # a day boundary in UTC, seen from another zone
        day = dt.datetime.combine(_random_date(rng), dt.time(), UTC)
        instant = day - dt.timedelta(microseconds=int(rng.integers(0, 2)))
    else:
        micros = int(rng.integers(-1_000_000_000, 3_000_000_000)) * 1_000_000
        instant = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(
            microseconds=micros + int(rng.integers(0, 1_000_000))
        )
    return instant.astimezone(zone)


def _null(rng: np.random.Generator, value: Any) -> Any:
    return None if rng.random() < 0.08 else value


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "id": i,
            "x": float(rng.normal()),
            "d": _null(rng, _random_date(rng)),
            "dtm": _null(rng, dt.datetime.combine(_random_date(rng), _random_time(rng))),
            "tm": _null(rng, _random_time(rng)),
            "ts": _null(rng, _random_stamp(rng)),
        }
        row["y"] = _truth(row, rng)
        rows.append(row)
    median = float(np.median([r["y"] for r in rows]))
    for row in rows:
        row["label"] = "b" if row["y"] > median else "a"
    return rows


def _truth(row: dict[str, Any], rng: np.random.Generator) -> float:
    y = 2.0 * row["x"] + float(rng.normal(scale=0.3))
    for column, part, weight in (("d", "DAYOFWEEK", 0.4), ("ts", "HOUR", 0.1)):
        value = part_of(row[column], part)
        y += weight * (value if value is not None else 3.0)
    week = part_of(row["dtm"], "ISOWEEK")
    y += 0.05 * week if week is not None else 0.0
    return y


# -- the reference: Python's calendar -----------------------------------------------------------


def part_of(value: Any, part: str) -> int | None:
    """BigQuery's EXTRACT of ``part``, from Python's datetime (a TIMESTAMP's in UTC)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dt.time):
        return _time_part(value, part)
    if isinstance(value, dt.datetime) and part in TIME_PARTS:
        return _time_part(value.time(), part)
    day = value.date() if isinstance(value, dt.datetime) else value
    return _date_part(day, part)


def _time_part(value: dt.time, part: str) -> int:
    return {
        "HOUR": value.hour,
        "MINUTE": value.minute,
        "SECOND": value.second,
        "MILLISECOND": value.microsecond // 1000,
        "MICROSECOND": value.microsecond,
    }[part]


def _date_part(day: dt.date, part: str) -> int:
    return _date_parts(day)[part]


@functools.cache
def _date_parts(day: dt.date) -> dict[str, int]:
    iso = day.isocalendar()
    weeks = {f"WEEK({name})": _week_beginning(day, i) for i, name in enumerate(WEEKDAYS)}
    return {
        "DAYOFWEEK": day.isoweekday() % 7 + 1,
        "DAY": day.day,
        "DAYOFYEAR": day.timetuple().tm_yday,
        "WEEK": int(day.strftime("%U")),
        "ISOWEEK": iso.week,
        "MONTH": day.month,
        "QUARTER": (day.month - 1) // 3 + 1,
        "YEAR": day.year,
        "ISOYEAR": iso.year,
        **weeks,
    }


def _week_beginning(day: dt.date, weekday: int) -> int:
    """Weeks beginning on ``weekday`` (Monday = 0); the days before the first one: week 0."""
    jan1 = dt.date(day.year, 1, 1)
    first = jan1 + dt.timedelta(days=(weekday - jan1.weekday()) % 7)
    return 0 if day < first else (day - first).days // 7 + 1


def _matrix(
    features: list[tuple[str, str]], train: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[Array, Array]:
    """x and the parts, NULL -> the training mean, standardized on the training rows (BigQuery
    ML's automatic preprocessing of numbers)."""
    columns = [("x", None), *features]
    blocks = []
    for column, part in columns:
        values = [
            np.array(
                [
                    np.nan
                    if (v := (r[column] if part is None else part_of(r[column], part))) is None
                    else float(v)
                    for r in rows
                ]
            )
            for rows in (train, new)
        ]
        mean = float(np.nanmean(values[0]))
        filled = [np.where(np.isnan(v), mean, v) for v in values]
        std = float(filled[0].std()) or 1.0
        blocks.append([(f - mean) / std for f in filled])
    return np.column_stack([b[0] for b in blocks]), np.column_stack([b[1] for b in blocks])


# -- the databases -------------------------------------------------------------------------------

COLUMNS = {
    "id": "INT",
    "x": "DOUBLE",
    "d": "DATE",
    "dtm": "TIMESTAMP",
    "tm": "TIME",
    "ts": "TIMESTAMPTZ",
    "y": "DOUBLE",
    "label": "TEXT",
}
TRAIN, NEW = _rows(320, 1), _rows(80, 2)


def _literal(value: Any, sql_type: str) -> str:
    if value is None:
        return "NULL"
    if sql_type in ("DOUBLE", "INT"):
        return repr(value)
    if sql_type == "TEXT":
        return f"'{value}'"
    text = value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value)
    return f"{sql_type} '{text}'"


def load(con: Any, name: str, rows: list[dict[str, Any]]) -> None:
    types = ", ".join(
        f"{c} {'DOUBLE PRECISION' if t == 'DOUBLE' else t}" for c, t in COLUMNS.items()
    )
    con.execute(f"CREATE TABLE ex.{name} ({types})")
    values = ", ".join(
        "(" + ", ".join(_literal(r[c], t) for c, t in COLUMNS.items()) + ")" for r in rows
    )
    con.execute(f"INSERT INTO ex.{name} VALUES {values}")


def _item(column: str, part: str) -> str:
    return f"EXTRACT({part} FROM {column}) AS {_alias(column, part)}"


def _alias(column: str, part: str) -> str:
    return f"{column}_{part.replace('(', '_').replace(')', '').lower()}"


def create_model(
    con: Any, name: str, features: list[tuple[str, str]], model_type: str, label: str
) -> None:
    items = ", ".join(["x", *(_item(c, p) for c, p in features), label])
    options = "data_split_method = 'NO_SPLIT'"
    if model_type == "logistic_reg":
        options += ", l2_reg = 0.5, max_iterations = 100"
    con.execute(
        f"CREATE MODEL ex.{name} TRANSFORM ({items}) OPTIONS (model_type = '{model_type}',"
        f" input_label_cols = ['{label}'], {options})"
        f" AS SELECT x, d, dtm, tm, ts, {label} FROM ex.train"
    )


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sqlml.Connection]:
    """One database per engine, in a non-UTC session time zone, with the models every test
    reads (trained in that zone too)."""
    name, server = "", ""
    if request.param == "postgres":
        import pgcluster

        server = str(request.getfixturevalue("pg_server"))
        name = f"sqlml_extract_{os.getpid()}"
        database = pgcluster.create_database(server, name, template="sqlml_template")
    else:
        database = str(tmp_path_factory.mktemp("extract") / "t.duckdb")
    con = sqlml.connect(database, autocommit=True)
    con.execute(f"SET TimeZone = '{SESSION_ZONE}'")
    con.execute("CREATE SCHEMA ex")
    load(con, "train", TRAIN)
    load(con, "new", NEW)
    create_model(con, "lin", FEATURES, "linear_reg", "y")
    create_model(con, "logit", LOGISTIC, "logistic_reg", "label")
    yield con
    con.close()
    if name:
        import pgcluster

        pgcluster.drop_database(server, name)


def _predict(con: Any, model: str, column: str, scoring: str) -> list[Any]:
    rows = con.execute(
        f"SELECT id, {column} FROM ML.PREDICT(MODEL ex.{model}, TABLE ex.new,"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == [r["id"] for r in NEW]
    return [r[1] for r in rows]


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_linear_reg_matches_scikit_learn(engine: sqlml.Connection, scoring: str) -> None:
    x, x_new = _matrix(FEATURES, TRAIN, NEW)
    want = LinearRegression().fit(x, [r["y"] for r in TRAIN]).predict(x_new)
    got = _predict(engine, "lin", "predicted_y", scoring)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_logistic_reg_matches_scikit_learn(engine: sqlml.Connection, scoring: str) -> None:
    x, x_new = _matrix(LOGISTIC, TRAIN, NEW)
    model = LogisticRegression(C=2.0, max_iter=100, tol=0.01)
    want = model.fit(x, [r["label"] for r in TRAIN]).predict_proba(x_new)[:, 1]
    probs = _predict(engine, "logit", "predicted_label_probs", scoring)
    got = [next(p["prob"] for p in row if p["label"] == "b") for row in probs]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    labels = _predict(engine, "logit", "predicted_label", scoring)
    assert labels == ["b" if p > 0.5 else "a" for p in want]


def test_ml_transform_returns_python_s_parts(engine: sqlml.Connection) -> None:
    """Every part of every row, NULL for NULL, exactly (the new and the training rows)."""
    for table, rows in (("new", NEW), ("train", TRAIN)):
        aliases = [_alias(c, p) for c, p in FEATURES]
        got = engine.execute(
            f"SELECT {', '.join(aliases)} FROM ML.TRANSFORM(MODEL ex.lin, TABLE ex.{table})"
            " ORDER BY id"
        ).fetchall()
        for row, values in zip(rows, got, strict=True):
            want = [part_of(row[c], p) for c, p in FEATURES]
            assert list(values) == want, row


def test_the_session_time_zone_changes_nothing(engine: sqlml.Connection) -> None:
    """The parts of a TIMESTAMP are UTC's whatever the session's zone: the compiled SQL takes
    them AT TIME ZONE 'UTC', the graph from the Unix time."""
    before = {s: _predict(engine, "lin", "predicted_y", s) for s in ("compiled", "runtime")}
    engine.execute("SET TimeZone = 'Asia/Kolkata'")
    try:
        for scoring, values in before.items():
            got = _predict(engine, "lin", "predicted_y", scoring)
            np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-12)
        hours = engine.execute(
            "SELECT ts_hour FROM ML.TRANSFORM(MODEL ex.lin, TABLE ex.new) ORDER BY id"
        ).fetchall()
        assert [h[0] for h in hours] == [part_of(r["ts"], "HOUR") for r in NEW]
    finally:
        engine.execute(f"SET TimeZone = '{SESSION_ZONE}'")


def test_evaluate(engine: sqlml.Connection) -> None:
    predicted = np.array(_predict(engine, "lin", "predicted_y", "runtime"))
    row = engine.execute("SELECT mean_absolute_error FROM ML.EVALUATE(MODEL ex.lin, TABLE ex.new)")
    want = np.abs(predicted - np.array([r["y"] for r in NEW])).mean()
    np.testing.assert_allclose(row.fetchall()[0][0], want, rtol=1e-9)


def test_parts_feed_other_transform_functions(engine: sqlml.Connection) -> None:
    """EXTRACT inside ML.ONE_HOT_ENCODER / ML.BUCKETIZE / arithmetic / IF, scored both ways."""
    engine.execute(
        "CREATE OR REPLACE MODEL ex.mixed TRANSFORM ("
        " ML.ONE_HOT_ENCODER(EXTRACT(DAYOFWEEK FROM d)) OVER () AS dow,"
        " ML.BUCKETIZE(EXTRACT(HOUR FROM ts), [6, 12, 18]) AS part_of_day,"
        " EXTRACT(MONTH FROM dtm) * 100 + EXTRACT(DAY FROM dtm) AS month_day,"
        " IF(EXTRACT(DAYOFWEEK FROM d) = 1 OR EXTRACT(DAYOFWEEK FROM d) = 7, 1, 0) AS weekend,"
        " y)"
        " OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT d, ts, dtm, y FROM ex.train"
    )
    compiled = _predict(engine, "mixed", "predicted_y", "compiled")
    runtime = _predict(engine, "mixed", "predicted_y", "runtime")
    np.testing.assert_allclose(runtime, compiled, rtol=1e-9, atol=1e-9)
    got = engine.execute(
        "SELECT part_of_day, month_day, weekend FROM ML.TRANSFORM(MODEL ex.mixed,"
        " TABLE ex.new) ORDER BY id"
    ).fetchall()
    for row, (bucket, month_day, weekend) in zip(NEW, got, strict=True):
        assert weekend == (part_of(row["d"], "DAYOFWEEK") in (1, 7))
        hour, day = part_of(row["ts"], "HOUR"), row["dtm"]
        assert bucket == (
            None if hour is None else f"bin_{1 + sum(hour >= b for b in (6, 12, 18))}"
        )
        assert month_day == (None if day is None else day.month * 100 + day.day)


@pytest.mark.parametrize(
    ("item", "sqlstate"),
    [
        ("EXTRACT(HOUR FROM d)", "22023"),  # a DATE has no HOUR (BigQuery refuses it too)
        ("EXTRACT(DAYOFWEEK FROM tm)", "22023"),  # nor a TIME a day
        ("EXTRACT(MICROSECOND FROM d)", "22023"),
        ("EXTRACT(HOUR FROM x)", "42804"),  # a number
        ("EXTRACT(HOUR FROM label)", "42804"),  # a string
        ("EXTRACT(DATE FROM dtm)", "0A000"),  # a DATE, not a number
        ("EXTRACT(TIME FROM ts)", "0A000"),
        ("EXTRACT(DOW FROM d)", "0A000"),  # the engines' own parts, not BigQuery's
        ("EXTRACT(EPOCH FROM ts)", "0A000"),
        ("EXTRACT(NANOSECOND FROM tm)", "0A000"),
        ("EXTRACT(WEEK(FUNDAY) FROM d)", "0A000"),
        ("EXTRACT(HOUR FROM ts AT TIME ZONE 'UTC')", "0A000"),  # the parts are UTC's
        ("EXTRACT(DAY FROM d + 1)", "0A000"),  # a column, not an expression
        ("ML.POLYNOMIAL_EXPAND(STRUCT(EXTRACT(DAY FROM d) AS a, x AS b))", "42804"),  # not yet
    ],
)
def test_refused(engine: sqlml.Connection, item: str, sqlstate: str) -> None:
    with pytest.raises(sqlml.Error) as caught:
        engine.execute(
            f"CREATE MODEL ex.refused TRANSFORM ({item} AS f, y) OPTIONS (model_type ="
            " 'linear_reg', input_label_cols = ['y'])"
            " AS SELECT x, d, dtm, tm, ts, label, y FROM ex.train"
        )
    assert getattr(caught.value, "sqlstate", None) == sqlstate
    assert engine.execute("SELECT count(*) FROM ex.train").fetchall() == [(len(TRAIN),)]
    with pytest.raises(sqlml.Error) as missing:
        engine.execute("SELECT * FROM ML.PREDICT(MODEL ex.refused, TABLE ex.new)")
    assert getattr(missing.value, "sqlstate", None) == "42704"  # nothing was stored


# -- every day of two centuries: the graph, the training matrix and both engines' SQL ---------

SWEEP_START, SWEEP_DAYS = dt.date(1899, 12, 1), 73_200  # to 2100-05: 1900 and 2100 not leap


def _graph_parts(kind: str, values: Array, parts: list[str]) -> tuple[Array, Array]:
    """Each part of ``values`` (the graph's input for ``kind``) from the ONNX nodes, run by
    onnxruntime, and from the numpy evaluation: two (rows, parts) arrays."""
    import onnxruntime

    from sqlml.ml import extract
    from sqlml.ml.graph import DOUBLE, STRING, GraphBuilder, finish
    from sqlml.ml.spec import Call, Col, Lit

    g = GraphBuilder()
    tensors = {"v": g.input("v", DOUBLE if kind == "timestamp" else STRING)}
    calls = [Call("extract", (Lit(p), Lit(kind), Col("v"))) for p in parts]
    outputs = {f"p{i}": extract.eval_onnx(c, g, tensors) for i, c in enumerate(calls)}
    model = finish(g, outputs, {name: (DOUBLE, [None, 1]) for name in outputs})
    session = onnxruntime.InferenceSession(model.SerializeToString())
    ran = session.run(list(outputs), {"v": values.reshape(-1, 1)})
    numpy = [extract.eval_numpy(c, {"v": values}) for c in calls]
    return np.column_stack([r.ravel() for r in ran]), np.column_stack(numpy)


def _python_parts(values: list[Any], parts: list[str]) -> Array:
    return np.array(
        [[np.nan if v is None else float(part_of(v, p)) for p in parts] for v in values]
    )


ALL_DATE_PARTS = [*DATE_PARTS, *(f"WEEK({d})" for d in WEEKDAYS if d != "MONDAY")]


def test_graph_parts_of_every_day() -> None:
    """DATE (and DATETIME) parts of every day from 1899-12 to 2100-05 (and NULL), from the ONNX
    nodes and the numpy evaluation, equal Python's."""
    from sqlml.ml.strings import NULL

    days = [SWEEP_START + dt.timedelta(days=i) for i in range(SWEEP_DAYS)] + [None]
    want = _python_parts(days, ALL_DATE_PARTS)
    text = np.array([NULL if d is None else d.isoformat() for d in days], dtype=object)
    for got in _graph_parts("date", text, ALL_DATE_PARTS):
        np.testing.assert_array_equal(got, want)
    stamps = [  # (every fourth day: the calendar is the DATE's, the text has a time after it)
        None if d is None else dt.datetime.combine(d, dt.time(23, 59, 59, 999999))
        for d in days[::4]
    ]
    text = np.array([NULL if s is None else f"{s:%Y-%m-%d %H:%M:%S.%f}" for s in stamps])
    parts = ALL_DATE_PARTS + TIME_PARTS
    for got in _graph_parts("datetime", text.astype(object), parts):
        np.testing.assert_array_equal(got, _python_parts(stamps, parts))


def test_graph_parts_of_times_and_timestamps() -> None:
    from sqlml.ml.strings import NULL

    rng = np.random.default_rng(7)
    times = [_random_time(rng) for _ in range(5000)] + [None]
    text = np.array([NULL if t is None else f"{t:%H:%M:%S.%f}" for t in times], dtype=object)
    for got in _graph_parts("time", text, TIME_PARTS):
        np.testing.assert_array_equal(got, _python_parts(times, TIME_PARTS))
    stamps = [_random_stamp(rng) for _ in range(15000)] + [None]
    edges = [-(2**31), 2**32 - 1, -1, 0, 951782399, 1609459199, 4102444799]  # (whole seconds)
    stamps += [dt.datetime.fromtimestamp(e, UTC) for e in edges]
    seconds = np.array(
        [
            np.nan
            if s is None
            else (s - dt.datetime(1970, 1, 1, tzinfo=UTC)) / dt.timedelta(seconds=1)
            for s in stamps
        ]
    )
    parts = ALL_DATE_PARTS + TIME_PARTS
    for got in _graph_parts("timestamp", seconds, parts):
        np.testing.assert_array_equal(got, _python_parts(stamps, parts))


def _micros(i: int, salt: int) -> int:
    """A microsecond of the day for day number ``i``, spread over the whole day."""
    return (i * 7919 * salt) % 86_400_000_000


def test_engine_sql_parts_of_every_day(engine: sqlml.Connection) -> None:
    """The SQL compiled scoring uses (the engine's own EXTRACT, written for BigQuery's
    meaning) equals Python's: every DATE from 1899-12 to 2100-05; every third day as a
    DATETIME, a TIME and a TIMESTAMP (read in the session's zone) at times spread over the
    day."""
    from sqlglot import exp

    from sqlml.ml import extract

    dialect = engine.session.engine.dialect

    def sql(kind: str, parts: list[str], column: str) -> list[str]:
        return [extract.part_sql(kind, p, exp.column(column)).sql(dialect) for p in parts]

    def rows(columns: list[str], where: str) -> Array:
        m = "({i} * 7919 * {salt} % 86400000000)"  # (in two: an INTERVAL takes an INT32)
        micro = (
            f"INTERVAL '1 millisecond' * CAST(floor({m} / 1000) AS INTEGER)"
            f" + INTERVAL '1 microsecond' * CAST({m} % 1000 AS INTEGER)"
        )
        values = (
            f"SELECT d, CAST(d AS TIMESTAMP) + {micro.format(i='i', salt=104729)} AS dtm,"
            f" CAST(CAST(d AS TEXT) || ' 00:00:00+00' AS TIMESTAMPTZ)"
            f" + {micro.format(i='i', salt=1299709)} AS ts, i"
            f" FROM (SELECT DATE '{SWEEP_START}' + CAST(i AS INTEGER) AS d, CAST(i AS BIGINT)"
            f" AS i FROM generate_series(0, {SWEEP_DAYS - 1}) AS g(i)) AS days"
        )
        query = (
            f"SELECT {', '.join(columns)} FROM (SELECT d, dtm, CAST(dtm AS TIME) AS tm, ts, i"
            f" FROM ({values}) AS v) AS t WHERE {where} ORDER BY i"
        )
        return np.array(engine.execute(query).fetchall(), dtype=float)

    days = [SWEEP_START + dt.timedelta(days=i) for i in range(SWEEP_DAYS)]
    got = rows(sql("date", ALL_DATE_PARTS, "d"), "TRUE")
    np.testing.assert_array_equal(got, _python_parts(days, ALL_DATE_PARTS))
    parts = ALL_DATE_PARTS + TIME_PARTS
    columns = sql("datetime", parts, "dtm") + sql("time", TIME_PARTS, "tm")
    got = rows(columns + sql("timestamp", parts, "ts"), "i % 3 = 0")
    start = dt.datetime.combine(SWEEP_START, dt.time())
    every = range(0, SWEEP_DAYS, 3)
    lates = [start + dt.timedelta(days=i, microseconds=_micros(i, 104729)) for i in every]
    stamps = [
        start.replace(tzinfo=UTC) + dt.timedelta(days=i, microseconds=_micros(i, 1299709))
        for i in every
    ]
    want = [
        _python_parts(lates, parts),
        _python_parts([t.time() for t in lates], TIME_PARTS),
        _python_parts(stamps, parts),
    ]
    np.testing.assert_array_equal(got, np.hstack(want))


def test_every_front_door(con: Any) -> None:
    """sqlml.connect and a psycopg 3 client through the gateway, on both engines: a model with
    EXTRACT in its TRANSFORM scores compiled and with onnxruntime alike, and ML.TRANSFORM
    returns Python's parts."""
    rows = TRAIN[:80]
    con.execute("CREATE SCHEMA ex")
    load(con, "train", rows)
    features = [("d", "ISOWEEK"), ("dtm", "DAYOFYEAR"), ("tm", "SECOND"), ("ts", "DAYOFWEEK")]
    create_model(con, "small", features, "linear_reg", "y")
    scored = [
        con.execute(
            f"SELECT id, predicted_y FROM ML.PREDICT(MODEL ex.small, TABLE ex.train,"
            f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
        ).fetchall()
        for scoring in ("compiled", "runtime")
    ]
    x, _ = _matrix(features, rows, rows)
    want = LinearRegression().fit(x, [r["y"] for r in rows]).predict(x)
    for result in scored:
        assert [r[0] for r in result] == [r["id"] for r in rows]
        np.testing.assert_allclose([r[1] for r in result], want, rtol=1e-6, atol=1e-9)
    aliases = ", ".join(_alias(c, p) for c, p in features)
    got = con.execute(
        f"SELECT {aliases} FROM ML.TRANSFORM(MODEL ex.small, TABLE ex.train) ORDER BY id"
    ).fetchall()
    assert [list(g) for g in got] == [[part_of(r[c], p) for c, p in features] for r in rows]
