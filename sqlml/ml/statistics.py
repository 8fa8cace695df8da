"""Data statistics and the distances between two sets of them: what CREATE MODEL stores with
each version (sqlml.version_statistics), what ML.DESCRIBE_DATA shows, and what
ML.VALIDATE_DATA_SKEW, ML.VALIDATE_DATA_DRIFT and ``validate_data`` at training compare.

Why one module and one computation for all of them: a skew or drift value is only meaningful
when both sides were described the same way, so the training statistics, a serving query's and
a drift baseline's come from :func:`describe` over the rows as Arrow columns (NumPy, no
scikit-learn: it runs inside PostgreSQL's server too).

Per column (JSON-ready):
- every column: ``type`` (``numerical``: integer, floating or decimal; ``categorical``: string or
  bool; ``other``: anything else, counted only), ``sql_type`` (the Arrow type), ``num_rows``,
  ``num_nulls``;
- numerical: ``num_zeros``, ``min``, ``max``, ``mean``, ``stdev`` (the sample standard
  deviation, as STDDEV), ``median``, ``quantiles`` (101 values: every percentile, linear
  interpolation, over a strided sample of 100,000 values beyond that many), ``histogram``:
  ``edges`` (``HISTOGRAM_BUCKETS`` equal-width buckets over [min, max]) and ``counts``;
- categorical: ``unique`` (distinct non-NULL values), ``avg_string_length`` (strings),
  ``top_values`` (``[value, count]`` by count, then value; at most ``MAX_VALUES``) and
  ``other_count`` (the non-NULL rows of the values left out).

Distances (TFDV's, which BigQuery ML's functions use): the L-infinity distance of two
categorical distributions (the largest difference of a value's share among non-NULL values),
and the Jensen-Shannon divergence (base 2, capped at 1) of two numerical ones: each side's own
equal-width histogram (as many buckets on both sides), both rebucketed onto the union of their
boundaries with each bucket's count spread evenly over its width, as TFDV's AlignHistograms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Array = np.ndarray[Any, Any]
Stats = dict[str, Any]

NUMERICAL, CATEGORICAL, OTHER = "numerical", "categorical", "other"
HISTOGRAM_BUCKETS = 10
MAX_VALUES = 1000  # top values kept per categorical column
PERCENTILES = 100
QUANTILE_SAMPLE = 100_000
L_INFTY, JENSEN_SHANNON = "L_INFTY", "JENSEN_SHANNON_DIVERGENCE"
DEFAULT_THRESHOLD = 0.3


def kind_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type) or pa.types.is_string(arrow_type):
        return CATEGORICAL
    if pa.types.is_large_string(arrow_type) or pa.types.is_dictionary(arrow_type):
        return CATEGORICAL
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return NUMERICAL
    if pa.types.is_decimal(arrow_type):
        return NUMERICAL
    return OTHER


def describe(
    table: pa.Table, columns: Iterable[str] | None = None, buckets: int = HISTOGRAM_BUCKETS
) -> dict[str, Stats]:
    """Each column's statistics (all the table's, or ``columns`` that it has), by name."""
    names = list(table.column_names if columns is None else columns)
    return {
        name: column(table.column(name), buckets) for name in names if name in table.column_names
    }


def column(values: pa.ChunkedArray | pa.Array, buckets: int = HISTOGRAM_BUCKETS) -> Stats:
    kind = kind_of(values.type)
    nulls = int(values.null_count)
    stats: Stats = {
        "type": kind,
        "sql_type": str(values.type),
        "num_rows": len(values),
        "num_nulls": nulls,
    }
    if kind == NUMERICAL:
        stats.update(_numerical(numbers(values), buckets))
    elif kind == CATEGORICAL:
        stats.update(_categorical(values))
    return stats


def numbers(values: pa.ChunkedArray | pa.Array) -> Array:
    """The non-NULL, finite values as float64 (NaN and infinities are left out: a histogram
    and a mean need finite ones, and JSON has no infinity)."""
    data = pc.drop_null(values)
    array = np.asarray(data.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return array[np.isfinite(array)]


def _numerical(x: Array, buckets: int) -> Stats:
    if not x.size:
        return {"num_zeros": 0}
    lo, hi = float(x.min()), float(x.max())
    with np.errstate(all="ignore"):  # (values near the float64 limits: no mean, no histogram)
        edges = np.linspace(lo, hi, buckets + 1)
        stats: Stats = {
            "num_zeros": int(np.count_nonzero(x == 0)),
            "min": lo,
            "max": hi,
            "mean": finite(float(x.mean())),
            "stdev": finite(float(x.std(ddof=1))) if x.size > 1 else None,
            "median": finite(float(np.median(x))),
            "quantiles": _approximate_quantiles(x),
        }
        if np.all(np.isfinite(edges)) and np.all(np.diff(edges) >= 0):
            stats["histogram"] = histogram(x, buckets)
    if not all(math.isfinite(q) for q in stats["quantiles"]):
        del stats["quantiles"]
    return stats


def _inner(x: Array, edges: Array) -> list[int]:
    """Counts per bucket [e_i, e_i+1) (the last one closed), values outside left out: NumPy's
    histogram of equal-width buckets over [edges[0], edges[-1]] (its fast path, exact at the
    edges)."""
    lo, hi = float(edges[0]), float(edges[-1])
    inside = x[(x >= lo) & (x <= hi)]
    if hi == lo:
        return [int(inside.size)]
    counts, _ = np.histogram(inside, bins=len(edges) - 1, range=(lo, hi))
    return [int(c) for c in counts]


def _approximate_quantiles(x: Array) -> list[float]:
    """Every percentile: exact up to QUANTILE_SAMPLE values, beyond that of an evenly strided
    sample of about that many (as BigQuery's APPROX_QUANTILES, approximate; the stored
    statistics use them for nothing but display, the histogram is exact)."""
    step = max(1, x.size // QUANTILE_SAMPLE)
    sample = x[::step]
    return [float(q) for q in np.quantile(sample, np.linspace(0, 1, PERCENTILES + 1))]


def _categorical(values: pa.ChunkedArray | pa.Array) -> Stats:
    data = pc.drop_null(values)
    if pa.types.is_dictionary(data.type):
        data = data.cast(data.type.value_type)
    counts = pc.value_counts(data).to_pylist() if len(data) else []
    pairs = sorted(
        ((item["values"], int(item["counts"])) for item in counts), key=lambda p: (-p[1], str(p[0]))
    )
    kept = pairs[:MAX_VALUES]
    stats: Stats = {
        "unique": len(pairs),
        "top_values": [[v, c] for v, c in kept],
        "other_count": sum(c for _, c in pairs[MAX_VALUES:]),
    }
    if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
        lengths = pc.utf8_length(data)
        stats["avg_string_length"] = float(pc.mean(lengths).as_py()) if len(data) else None
    return stats


# -- distances -------------------------------------------------------------------------------------


def quantiles(x: Array, n: int) -> list[float]:
    """ML.DESCRIBE_DATA's quantiles: n + 1 values, the minimum to the maximum."""
    if not x.size:
        return []
    return [float(q) for q in np.quantile(x, np.linspace(0, 1, n + 1))]


def histogram(x: Array, buckets: int) -> dict[str, Any]:
    """``buckets`` equal-width buckets over [min, max] of ``x`` (one point bucket when they
    are equal): TFDV's standard histogram."""
    lo, hi = float(x.min()), float(x.max())
    edges = np.linspace(lo, hi, buckets + 1) if hi > lo else np.array([lo, hi])
    return {"edges": [float(e) for e in edges], "counts": _inner(x, edges)}


def js_divergence(p_counts: Sequence[float], q_counts: Sequence[float]) -> float:
    """The Jensen-Shannon divergence (base 2, at most 1) of two histograms over the same
    buckets."""
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0 if p.sum() == q.sum() else 1.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return min(1.0, float(0.5 * _kl(p, m) + 0.5 * _kl(q, m)))


def _kl(p: Array, m: Array) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def histogram_divergence(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """TFDV's Jensen-Shannon divergence of two histograms with their own buckets: both are
    rebucketed onto the union of their bucket boundaries, each bucket's count spread evenly
    over its width; a point bucket (a column of one value) is a mass of its own, matched by
    value (tensorflow_data_validation/anomalies/metrics.cc, AlignHistograms)."""
    a_range, a_points = _split_points(a)
    b_range, b_points = _split_points(b)
    bounds = sorted({e for h in (a_range, b_range) if h for e in h["edges"]})
    p = _rebucket(a_range, bounds)
    q = _rebucket(b_range, bounds)
    for point in sorted(set(a_points) | set(b_points)):
        p.append(a_points.get(point, 0.0))
        q.append(b_points.get(point, 0.0))
    return js_divergence(p, q)


def _split_points(h: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, dict[float, float]]:
    edges = h["edges"]
    if len(edges) == 2 and edges[0] == edges[1]:
        return None, {float(edges[0]): float(sum(h["counts"]))}
    return h, {}


def _rebucket(h: Mapping[str, Any] | None, bounds: Sequence[float]) -> list[float]:
    """``h``'s counts over the segments between ``bounds`` (which hold all of h's edges)."""
    if h is None or len(bounds) < 2:
        return [0.0] * max(0, len(bounds) - 1)
    edges = np.asarray(h["edges"], dtype=np.float64)
    counts = np.asarray(h["counts"], dtype=np.float64)
    b = np.asarray(bounds, dtype=np.float64)
    middle = (b[:-1] + b[1:]) / 2
    at = np.searchsorted(edges, middle, side="right") - 1
    inside = (at >= 0) & (at < counts.size)
    at = np.clip(at, 0, counts.size - 1)
    widths = edges[1:] - edges[:-1]
    share = np.where(inside, counts[at] * (b[1:] - b[:-1]) / widths[at], 0.0)
    return [float(v) for v in share]


def numerical_distance(base: Stats, study_values: Array) -> float:
    """JS divergence of ``study_values`` (their own histogram, as many buckets as the
    baseline's) from the baseline's stored histogram."""
    stored = base.get("histogram")
    if stored is None or not study_values.size:
        return 0.0 if stored is None and not study_values.size else 1.0
    buckets = max(1, len(stored["edges"]) - 1)
    return histogram_divergence(stored, histogram(study_values, buckets))


def categorical_distance(base: Stats, study: Stats) -> float:
    """L-infinity distance of two columns' value shares (values beyond the baseline's kept
    ones, when it left some out, count as one value)."""
    base_pairs = {_key(v): c for v, c in base.get("top_values", [])}
    base_other = int(base.get("other_count", 0))
    study_pairs: dict[Any, int] = {}
    study_other = int(study.get("other_count", 0))
    for v, c in study.get("top_values", []):
        key = _key(v)
        if base_other and key not in base_pairs:
            study_other += c
        else:
            study_pairs[key] = study_pairs.get(key, 0) + c
    base_total = sum(base_pairs.values()) + base_other
    study_total = sum(study_pairs.values()) + study_other
    if not base_total or not study_total:
        return 0.0 if base_total == study_total else 1.0
    keys = set(base_pairs) | set(study_pairs)
    gaps = [
        abs(base_pairs.get(k, 0) / base_total - study_pairs.get(k, 0) / study_total) for k in keys
    ]
    if base_other or study_other:
        gaps.append(abs(base_other / base_total - study_other / study_total))
    return max(gaps, default=0.0)


def _key(value: Any) -> Any:
    return value  # JSON keeps strings and bools as they are: one key for both sides


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def null_share(stats: Mapping[str, Any]) -> float:
    rows = int(stats.get("num_rows", 0))
    return int(stats.get("num_nulls", 0)) / rows if rows else 0.0
