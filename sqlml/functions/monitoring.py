"""BigQuery ML's data monitoring functions: ML.DESCRIBE_DATA, ML.VALIDATE_DATA_SKEW and
ML.VALIDATE_DATA_DRIFT (docs/sql.md, "Data monitoring").

- ``ML.DESCRIBE_DATA((query) | TABLE t [, STRUCT(num_quantiles, num_array_length_quantiles,
  top_k)])``: one row per column, BigQuery's columns (name, num_rows, num_nulls, num_zeros, min,
  max, mean, stdev, median, quantiles, unique, avg_string_length, num_values, top_values,
  min/max/avg/total_array_length, array_length_quantiles, dimension); defaults 2, 10 and 1.
- ``ML.VALIDATE_DATA_SKEW(MODEL m, (query) | TABLE t [, STRUCT(...)])``: the query's columns
  against the statistics stored when the version was trained (the serving one, or ``MODEL m
  VERSION n``); a model stored without them (an imported one) is 55000.
- ``ML.VALIDATE_DATA_DRIFT((base) | TABLE, (study) | TABLE [, STRUCT(...)])``: two queries.

ML.DESCRIBE_DATA is the engine's own SQL (functions/describe_sql.py). The validate functions
return BigQuery's columns: input STRING, metric STRING ('L_INFTY' for a categorical column,
'JENSEN_SHANNON_DIVERGENCE' for a numerical one), threshold FLOAT64, value FLOAT64, is_anomaly
BOOL (value > threshold); one row per column compared, by name.

Why the validate functions' rows are read and described here rather than aggregated in the
engine's SQL: skew compares with statistics training computed in Python (sqlml.ml.statistics)
and must use the same definitions to the last bucket edge; the same code on both sides makes a
query that equals the training rows give exactly 0. The cost is one read of the compared
columns (measured in benchmarks/RESULTS.md, "Training statistics").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from sqlml import errors
from sqlml.functions import (
    NONE,
    OVER_DATA,
    REQUIRED,
    Column,
    DataArgs,
    Field,
    Function,
    Row,
    describe_sql,
    register,
)
from sqlml.ml import statistics as st

DESCRIBE_COLUMNS = [
    Column("name", "STRING"),
    Column("num_rows", "INT64"),
    Column("num_nulls", "INT64"),
    Column("num_zeros", "INT64"),
    Column("min", "STRING"),
    Column("max", "STRING"),
    Column("mean", "FLOAT64"),
    Column("stdev", "FLOAT64"),
    Column("median", "FLOAT64"),
    Column("quantiles", "ARRAY<FLOAT64>"),
    Column("unique", "INT64"),
    Column("avg_string_length", "FLOAT64"),
    Column("num_values", "INT64"),
    Column("top_values", "ARRAY<STRUCT<value STRING, count INT64>>"),
    Column("min_array_length", "INT64"),
    Column("max_array_length", "INT64"),
    Column("avg_array_length", "FLOAT64"),
    Column("total_array_length", "INT64"),
    Column("array_length_quantiles", "ARRAY<INT64>"),
    Column("dimension", "INT64"),
]
VALIDATE_COLUMNS = [
    Column("input", "STRING"),
    Column("metric", "STRING"),
    Column("threshold", "FLOAT64"),
    Column("value", "FLOAT64"),
    Column("is_anomaly", "BOOL"),
]
MAX_QUANTILES = 100_000


def _in_range(name: str, low: int, high: int) -> Any:
    def check(value: Any) -> None:
        if not low <= value <= high:
            raise errors.InvalidParameterValue(f"{name} must be in [{low}, {high}], not {value}")

    return check


def _share(name: str) -> Any:
    def check(value: Any) -> None:
        if not 0 <= value <= 1:
            raise errors.InvalidParameterValue(f"{name} must be in [0, 1], not {value}")

    return check


def _one_of(name: str, allowed: tuple[str, ...]) -> Any:
    def check(value: Any) -> None:
        if value.upper() not in allowed:
            raise errors.InvalidParameterValue(
                f"invalid {name} {value!r}: expected one of {', '.join(allowed)}"
            )

    return check


def _thresholds_check(value: Any) -> None:
    for item in value:
        ok = (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int | float)
            and not isinstance(item[1], bool)
            and 0 <= item[1] <= 1
        )
        if not ok:
            raise errors.InvalidParameterValue(
                "thresholds must be [STRUCT('column' AS name, 0.2 AS threshold), ...] with"
                f" thresholds in [0, 1], not {item!r}"
            )


# -- ML.VALIDATE_DATA_SKEW / ML.VALIDATE_DATA_DRIFT ---------------------------------------------


def _skew(args: DataArgs) -> list[Row]:
    stored = args.statistics
    version = args.version
    if stored is None:
        where = f"version {version.version} of {version.ref}" if version is not None else "it"
        raise errors.ObjectNotInPrerequisiteState(
            f"ML.VALIDATE_DATA_SKEW needs the statistics stored at training: {where} has none",
            hint="an imported model (model_type = 'onnx') or one trained before sqlml stored"
            " them has none; ML.VALIDATE_DATA_DRIFT compares two queries",
        )
    label = stored.get("label")
    base = {n: s for n, s in stored["columns"].items() if n != label}
    return compare(base, args.tables[0], args.settings, "ML.VALIDATE_DATA_SKEW")


def _drift(args: DataArgs) -> list[Row]:
    buckets = int(args.settings.get("num_histogram_buckets", st.HISTOGRAM_BUCKETS))
    base = st.describe(args.tables[0], buckets=buckets)
    return compare(base, args.tables[1], args.settings, "ML.VALIDATE_DATA_DRIFT")


def _skew_reads(
    names: Sequence[Sequence[str]], stored: Mapping[str, Any] | None
) -> list[list[str]]:
    """The query's columns the stored statistics describe (all of them without statistics:
    the function then says 55000 before it reads anything of use)."""
    if stored is None:
        return [[]]
    known = {n.lower() for n in stored["columns"] if n != stored.get("label")}
    return [[n for n in names[0] if n.lower() in known]]


def _drift_reads(
    names: Sequence[Sequence[str]], stored: Mapping[str, Any] | None
) -> list[list[str]]:
    """The columns both queries have."""
    base, study = names
    common = {n.lower() for n in base} & {n.lower() for n in study}
    return [[n for n in side if n.lower() in common] for side in (base, study)]


def compare(
    base: Mapping[str, st.Stats], study: pa.Table, settings: Mapping[str, Any], what: str
) -> list[Row]:
    """One row per column of ``base`` that ``study`` has (by name, case-insensitively), of a
    comparable type; 42703 when they share none, 22023 for a threshold naming no such column."""
    by_lower = {n.lower(): n for n in study.column_names}
    names = [n for n in sorted(base) if n.lower() in by_lower and base[n]["type"] != st.OTHER]
    if not names:
        raise errors.UndefinedColumn(
            f"{what}: the query has none of the columns it is compared with"
            f" ({', '.join(sorted(base)) or 'none'})"
        )
    overrides = _overrides(settings, names)
    rows: list[Row] = []
    for name in names:
        values = study.column(by_lower[name.lower()])
        metric, value = distance(base[name], values, settings)
        default = _default_threshold(base[name]["type"], settings)
        threshold = overrides.get(name.lower(), default)
        rows.append((name, metric, threshold, value, value > threshold))
    return rows


def distance(
    base: st.Stats, values: pa.ChunkedArray, settings: Mapping[str, Any] | None = None
) -> tuple[str, float]:
    """(metric, value) of ``values`` against a column's baseline statistics; a study column
    whose kind differs from the baseline's is as far as can be (1.0)."""
    settings = settings or {}
    kind = st.kind_of(values.type)
    if base["type"] == st.NUMERICAL:
        if kind != st.NUMERICAL:
            return st.JENSEN_SHANNON, 1.0
        return st.JENSEN_SHANNON, st.numerical_distance(base, st.numbers(values))
    metric = str(settings.get("categorical_metric_type", st.L_INFTY)).upper()
    if kind != st.CATEGORICAL:
        return metric, 1.0
    study = st.column(values)
    if metric == st.JENSEN_SHANNON:
        return metric, _categorical_js(base, study)
    return metric, st.categorical_distance(base, study)


def _categorical_js(base: st.Stats, study: st.Stats) -> float:
    b = {v: c for v, c in base.get("top_values", [])}
    s = {v: c for v, c in study.get("top_values", [])}
    keys = sorted(set(b) | set(s), key=str)
    return st.js_divergence(
        [b.get(k, 0) for k in keys] + [base.get("other_count", 0)],
        [s.get(k, 0) for k in keys] + [study.get("other_count", 0)],
    )


def _default_threshold(kind: str, settings: Mapping[str, Any]) -> float:
    key = "numerical_default_threshold" if kind == st.NUMERICAL else "categorical_default_threshold"
    return float(settings.get(key, st.DEFAULT_THRESHOLD))


def _overrides(settings: Mapping[str, Any], names: list[str]) -> dict[str, float]:
    known = {n.lower() for n in names}
    found: dict[str, float] = {}
    for name, value in settings.get("thresholds", ()):
        if name.lower() not in known:
            raise errors.InvalidParameterValue(
                f"thresholds names {name!r}, which is not a column compared",
                hint=f"the columns compared: {', '.join(names)}",
            )
        found[name.lower()] = float(value)
    return found


_VALIDATE_FIELDS = (
    Field("categorical_default_threshold", "FLOAT64", _share("categorical_default_threshold")),
    Field(
        "categorical_metric_type",
        "STRING",
        _one_of("categorical_metric_type", (st.L_INFTY, st.JENSEN_SHANNON)),
    ),
    Field("numerical_default_threshold", "FLOAT64", _share("numerical_default_threshold")),
    Field(
        "numerical_metric_type", "STRING", _one_of("numerical_metric_type", (st.JENSEN_SHANNON,))
    ),
    Field("thresholds", "ARRAY", _thresholds_check),
)

DESCRIBE_DATA = register(
    Function(
        name="DESCRIBE_DATA",
        table=True,
        rows=REQUIRED,
        runs=OVER_DATA,
        fields=(
            Field("num_quantiles", "INT64", _in_range("num_quantiles", 1, MAX_QUANTILES)),
            Field(
                "num_array_length_quantiles",
                "INT64",
                _in_range("num_array_length_quantiles", 1, MAX_QUANTILES),
            ),
            Field("top_k", "INT64", _in_range("top_k", 1, MAX_QUANTILES)),
        ),
        columns=lambda version, settings: DESCRIBE_COLUMNS,
        render_data=lambda schema, settings, source, dialect: describe_sql.render(
            schema, settings, source, DESCRIBE_COLUMNS, dialect
        ),
        model=NONE,
        sources=1,
    )
)
VALIDATE_DATA_SKEW = register(
    Function(
        name="VALIDATE_DATA_SKEW",
        table=True,
        rows=REQUIRED,
        runs=OVER_DATA,
        fields=_VALIDATE_FIELDS,
        pending=("enable_visualization_link",),
        columns=lambda version, settings: VALIDATE_COLUMNS,
        data=_skew,
        reads=_skew_reads,
        model=REQUIRED,
        sources=1,
    )
)
VALIDATE_DATA_DRIFT = register(
    Function(
        name="VALIDATE_DATA_DRIFT",
        table=True,
        rows=REQUIRED,
        runs=OVER_DATA,
        fields=(
            *_VALIDATE_FIELDS,
            Field("num_histogram_buckets", "INT64", _in_range("num_histogram_buckets", 1, 1000)),
        ),
        pending=(
            "num_quantiles_histogram_buckets",
            "num_values_histogram_buckets",
            "num_rank_histogram_buckets",
            "enable_visualization_link",
        ),
        columns=lambda version, settings: VALIDATE_COLUMNS,
        data=_drift,
        reads=_drift_reads,
        model=NONE,
        sources=2,
    )
)
