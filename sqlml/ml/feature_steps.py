"""More TRANSFORM steps: BigQuery ML's scalers, encoders and feature expansions.

Theory of operation. Each function here is a step of :mod:`sqlml.ml.features` and registers
itself in that module's tables the way a third party's step would: a fitter (learns parameters
on the training rows), a numpy evaluation (the training matrix) and an ONNX evaluation (the stored
graph); the parity check after training compares the last two. Only ONNX operators that the SQL
compiler already compiles are used (Where, IsNaN, Equal, And, Or, Not, Cast, Abs, Mul, Div, Pow,
Sqrt, ReduceSum, ReduceMax, Concat, LabelEncoder), so the models stay compilable to SQL.

Choices (also in docs/sql.md):
- Quantiles (ML.ROBUST_SCALER, ML.QUANTILE_BUCKETIZE) are the training values at the inverted
  empirical distribution (numpy's ``inverted_cdf``: the smallest value whose cumulative share
  reaches q). They reproduce the examples of BigQuery's documentation; BigQuery computes
  approximate quantiles, so on large data its split points may differ slightly.
- NULL: the scalers return the training mean of their output for NULL (what BigQuery's NULL
  output becomes after automatic imputation), ML.NORMALIZER counts a NULL element as 0, and
  ML.POLYNOMIAL_EXPAND's terms with a NULL factor take the term's training mean.
- ML.FEATURE_CROSS's outputs are STRINGs in BigQuery, which automatic preprocessing one-hot
  encodes; here each cross is one-hot encoded directly over the value combinations seen in
  training (a NULL factor makes the cross NULL, a category of its own when training saw it).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations, combinations_with_replacement
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml import features
from sqlml.ml.expressions import columns_of, eval_numpy, eval_onnx
from sqlml.ml.features import NULL_CATEGORY, Array, Label, Step
from sqlml.ml.spec import Col, TransformItem

if TYPE_CHECKING:
    from sqlml.ml.graph import GraphBuilder

_MAX_DOUBLE = float(np.finfo(np.float64).max)


def _ints(value: Any) -> list[int]:
    return [int(v) for v in value]


def _quantiles(finite: Array, qs: list[float]) -> list[float]:
    values = np.quantile(finite, qs, method="inverted_cdf")
    return [float(v) for v in np.atleast_1d(values)]


# -- single-column steps ------------------------------------------------------------------------


def _fit_max_abs(step: Step, item: TransformItem, x: Array) -> None:
    features._need_numeric(step)
    finite = features._finite(step, x)
    step.kind = "final"
    step.params = {
        "offset": 0.0,
        "scale": float(np.abs(finite).max()) or 1.0,
        "fill": float(finite.mean()),
    }


def _fit_robust(step: Step, item: TransformItem, x: Array) -> None:
    features._need_numeric(step)
    finite = features._finite(step, x)
    low, high = _ints(item.args[0] if item.args else (25, 75))
    with_median = bool(item.args[1]) if len(item.args) > 1 else True
    with_range = bool(item.args[2]) if len(item.args) > 2 else True
    q_low, median, q_high = _quantiles(finite, [float(low) / 100, 0.5, float(high) / 100])
    step.kind = "final"
    step.params = {
        "offset": median if with_median else 0.0,
        "scale": ((q_high - q_low) or 1.0) if with_range else 1.0,
        "fill": float(finite.mean()),
        "quantile_range": [low, high],
    }


def _fit_quantile_bucketize(step: Step, item: TransformItem, x: Array) -> None:
    features._need_numeric(step)
    finite = features._finite(step, x)
    buckets = int(item.args[0])  # type: ignore[arg-type]
    points = sorted(set(_quantiles(finite, [i / buckets for i in range(1, buckets)])))
    step.kind = "categorical"  # bin_<i>, one-hot encoded by automatic preprocessing
    step.params = {
        "num_buckets": buckets,
        "split_points": points or [_MAX_DOUBLE],
        "exclude_boundaries": False,
    }


def _fit_label_encoder(step: Step, item: TransformItem, x: Array) -> None:
    if step.input_kind == "numeric":
        raise errors.DatatypeMismatch(f"ML.LABEL_ENCODER needs a STRING input ({step.alias})")
    top_k, threshold = (int(a) for a in item.args)  # type: ignore[arg-type]
    present = x[x != NULL_CATEGORY]
    uniques, counts = np.unique(present, return_counts=True)
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], uniques[i]))
    keep = [str(uniques[i]) for i in order if counts[i] >= threshold][:top_k]
    if not keep:
        raise errors.UnusableTrainingData(
            f"ML.LABEL_ENCODER for {step.alias}: no category is seen at least"
            f" {threshold} times (frequency_threshold)"
        )
    step.kind = "numeric"  # an INT64 in BigQuery: imputed and standardized as any number
    step.params = {
        "categories": tuple(sorted(keep)),
        "top_k": top_k,
        "frequency_threshold": threshold,
    }


def _label_numpy(step: Step, x: Array) -> Array:
    return Label(step.alias, tuple(step.params["categories"])).numpy(x)


def _label_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    return Label(step.alias, tuple(step.params["categories"])).onnx(g, x)


# -- steps over a STRUCT or an ARRAY of features -----------------------------------------------


def _field_arrays(step: Step, arrays: dict[str, Array]) -> list[Array]:
    n = len(next(iter(arrays.values())))
    out = []
    for _, expr in step.inputs:
        if step.input_kind == "numeric":
            out.append(np.broadcast_to(eval_numpy(expr, arrays), (n,)).astype(np.float64))
        else:
            assert isinstance(expr, Col)
            out.append(arrays[expr.name])
    return out


def _field_tensors(step: Step, g: GraphBuilder, tensors: dict[str, str]) -> list[str]:
    if step.input_kind == "numeric":
        return [eval_onnx(expr, g, tensors) for _, expr in step.inputs]
    return [tensors[expr.name] for _, expr in step.inputs if isinstance(expr, Col)]


def _check_fields(step: Step, item: TransformItem, kinds: dict[str, str], numeric: bool) -> None:
    for name, expr in item.inputs:
        for column in columns_of(expr):
            if column not in kinds:
                raise errors.UndefinedColumn(
                    f'column "{column}" used in TRANSFORM is not in the training query',
                    detail=item.source or None,
                )
            if (kinds[column] == "numeric") != numeric:
                want = "numerical" if numeric else "STRING"
                raise errors.DatatypeMismatch(
                    f"ML.{step.function.upper()} needs {want} features; {name} is not"
                )
        if not numeric and not isinstance(expr, Col):
            raise errors.FeatureNotSupported(f"ML.FEATURE_CROSS takes columns as features ({name})")
    step.inputs = item.inputs
    step.input_kind = "numeric" if numeric else "categorical"


def _poly_terms(count: int, degree: int) -> list[tuple[int, ...]]:
    """BigQuery's order: every combination with repetition of degree 1..degree, sorted."""
    terms = [
        t for d in range(1, degree + 1) for t in combinations_with_replacement(range(count), d)
    ]
    return sorted(terms)


def _products(step: Step, columns: list[Array]) -> Array:
    terms = step.params["terms"]
    out = np.ones((len(columns[0]), len(terms)))
    for j, term in enumerate(terms):
        for i in term:
            out[:, j] *= columns[i]
    return out


def _fit_polynomial(
    step: Step, item: TransformItem, raw: dict[str, Array], kinds: dict[str, str]
) -> None:
    _check_fields(step, item, kinds, numeric=True)
    names = [name for name, _ in item.inputs]
    terms = _poly_terms(len(names), int(item.args[0]))  # type: ignore[arg-type]
    step.kind = "final"
    step.params = {"terms": [list(t) for t in terms], "width": len(terms)}
    step.params["names"] = ["_".join(names[i] for i in t) for t in terms]
    products = _products(step, _field_arrays(step, raw))
    fill = []
    for j, name in enumerate(step.params["names"]):
        present = products[~np.isnan(products[:, j]), j]
        if present.size == 0:
            raise errors.UnusableTrainingData(f"term {name} of {step.alias} has only NULL values")
        fill.append(float(present.mean()))
    step.params["fill"] = fill


def _polynomial_numpy(step: Step, arrays: dict[str, Array]) -> Array:
    with np.errstate(all="ignore"):
        out = _products(step, _field_arrays(step, arrays))
    fill = np.asarray(step.params["fill"])
    return np.where(np.isnan(out), fill[None, :], out)


def _polynomial_onnx(step: Step, g: GraphBuilder, tensors: dict[str, str]) -> str:
    columns = _field_tensors(step, g, tensors)
    parts = []
    for term in step.params["terms"]:
        product = columns[term[0]]
        for i in term[1:]:
            product = g.op("Mul", product, columns[i])
        parts.append(product)
    x = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    fill = g.const(np.array([step.params["fill"]], dtype=np.float64))
    return g.op("Where", g.op("IsNaN", x), fill, x)


def _fit_normalizer(
    step: Step, item: TransformItem, raw: dict[str, Array], kinds: dict[str, str]
) -> None:
    _check_fields(step, item, kinds, numeric=True)
    step.kind = "final"
    step.params = {"p": float(item.args[0]), "width": len(item.inputs)}  # type: ignore[arg-type]


def _norms(x: Array, p: float) -> Array:
    if p == 0.0:
        return np.asarray((x != 0).sum(axis=1), dtype=np.float64)
    if np.isinf(p):
        return np.asarray(np.abs(x).max(axis=1))
    if p == 1.0:
        return np.asarray(np.abs(x).sum(axis=1))
    return np.asarray((np.abs(x) ** p).sum(axis=1) ** (1.0 / p))


def _normalizer_numpy(step: Step, arrays: dict[str, Array]) -> Array:
    x = np.column_stack(_field_arrays(step, arrays))
    x = np.where(np.isnan(x), 0.0, x)
    norms = _norms(x, step.params["p"])
    return np.asarray(x / np.where(norms == 0.0, 1.0, norms)[:, None])


def _normalizer_onnx(step: Step, g: GraphBuilder, tensors: dict[str, str]) -> str:
    columns = _field_tensors(step, g, tensors)
    x = columns[0] if len(columns) == 1 else g.op("Concat", *columns, axis=1)
    zero = g.const([[0.0]])
    x = g.op("Where", g.op("IsNaN", x), zero, x)
    axes = g.const_exact(np.array([1], dtype=np.int64))
    p = step.params["p"]
    if p == 0.0:
        nonzero = g.to_double(g.op("Not", g.op("Equal", x, zero)))
        norm = g.op("ReduceSum", nonzero, axes, keepdims=1)
    elif np.isinf(p):
        norm = g.op("ReduceMax", g.op("Abs", x), axes, keepdims=1)
    elif p == 1.0:
        norm = g.op("ReduceSum", g.op("Abs", x), axes, keepdims=1)
    elif p == 2.0:
        norm = g.op("Sqrt", g.op("ReduceSum", g.op("Mul", x, x), axes, keepdims=1))
    else:
        powered = g.op("Pow", g.op("Abs", x), g.const([[p]]))
        norm = g.op("Pow", g.op("ReduceSum", powered, axes, keepdims=1), g.const([[1.0 / p]]))
    safe = g.op("Where", g.op("Equal", norm, zero), g.const([[1.0]]), norm)
    return g.op("Div", x, safe)


def _fit_cross(
    step: Step, item: TransformItem, raw: dict[str, Array], kinds: dict[str, str]
) -> None:
    _check_fields(step, item, kinds, numeric=False)
    names = [name for name, _ in item.inputs]
    degree = int(item.args[0])  # type: ignore[arg-type]
    if len(names) < 2:
        raise errors.InvalidParameterValue("ML.FEATURE_CROSS needs at least two features")
    crosses = [
        c for d in range(2, min(degree, len(names)) + 1) for c in combinations(range(len(names)), d)
    ]
    columns = _field_arrays(step, raw)
    step.kind = "final"
    step.params = {"crosses": [], "width": 0}
    for cross in sorted(crosses):
        seen = {_cross_value(columns, cross, r) for r in range(len(columns[0]))}
        cats = sorted(c for c in seen if c is not None) + ([None] if None in seen else [])
        step.params["crosses"].append(
            {"fields": list(cross), "name": "_".join(names[i] for i in cross), "categories": cats}
        )
        step.params["width"] += len(cats)


def _cross_value(columns: list[Array], cross: tuple[int, ...], row: int) -> tuple[str, ...] | None:
    values = tuple(str(columns[i][row]) for i in cross)
    return None if NULL_CATEGORY in values else values


def _cross_numpy(step: Step, arrays: dict[str, Array]) -> Array:
    columns = _field_arrays(step, arrays)
    blocks = []
    for cross in step.params["crosses"]:
        fields = cross["fields"]
        for category in cross["categories"]:
            if category is None:
                hit = np.any([columns[i] == NULL_CATEGORY for i in fields], axis=0)
            else:
                hit = np.all(
                    [columns[i] == v for i, v in zip(fields, category, strict=True)], axis=0
                )
            blocks.append(np.asarray(hit, dtype=np.float64))
    return np.column_stack(blocks) if blocks else np.zeros((len(columns[0]), 0))


def _cross_onnx(step: Step, g: GraphBuilder, tensors: dict[str, str]) -> str:
    columns = _field_tensors(step, g, tensors)
    parts = []
    for cross in step.params["crosses"]:
        fields = cross["fields"]
        for category in cross["categories"]:
            if category is None:
                tests = [(columns[i], NULL_CATEGORY) for i in fields]
                joiner = "Or"
            else:
                tests = list(zip((columns[i] for i in fields), category, strict=True))
                joiner = "And"
            hit = _fold(g, joiner, [_equals(g, t, v) for t, v in tests])
            parts.append(g.to_double(hit))
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)


def _equals(g: GraphBuilder, tensor: str, value: str) -> str:
    return g.op("Equal", tensor, g.const(np.array([[value]], dtype=object)))


def _fold(g: GraphBuilder, op: str, tests: list[str]) -> str:
    result = tests[0]
    for test in tests[1:]:
        result = g.op(op, result, test)
    return result


# -- what FEATURE_INFO / ML.WEIGHTS show: one row per output column ---------------------------


def _polynomial_infos(step: Step) -> list[dict[str, Any]]:
    return [
        {"column": f"{step.alias}.{name}", "encoding": "polynomial_expand", "fill": fill}
        for name, fill in zip(step.params["names"], step.params["fill"], strict=True)
    ]


def _normalizer_infos(step: Step) -> list[dict[str, Any]]:
    return [
        {"column": f"{step.alias}[{i + 1}]", "encoding": "normalizer", "p": step.params["p"]}
        for i in range(step.params["width"])
    ]


def _cross_infos(step: Step) -> list[dict[str, Any]]:
    return [
        {
            "column": f"{step.alias}.{cross['name']}",
            "encoding": "one_hot",
            "categories": [None if c is None else "_".join(c) for c in cross["categories"]],
        }
        for cross in step.params["crosses"]
    ]


Fitter = Callable[[Step, TransformItem, dict[str, Array], dict[str, str]], None]

features._FITTERS.update(
    {
        "max_abs_scaler": _fit_max_abs,
        "robust_scaler": _fit_robust,
        "quantile_bucketize": _fit_quantile_bucketize,
        "label_encoder": _fit_label_encoder,
    }
)
features._STEP_NUMPY.update(
    {
        "max_abs_scaler": features._scaler_numpy,
        "robust_scaler": features._scaler_numpy,
        "quantile_bucketize": features._bucketize_numpy,
        "label_encoder": _label_numpy,
    }
)
features._STEP_ONNX.update(
    {
        "max_abs_scaler": features._scaler_onnx,
        "robust_scaler": features._scaler_onnx,
        "quantile_bucketize": features._bucketize_onnx,
        "label_encoder": _label_onnx,
    }
)
FIELD_FITTERS: dict[str, Fitter] = {
    "polynomial_expand": _fit_polynomial,
    "normalizer": _fit_normalizer,
    "feature_cross": _fit_cross,
}
FIELD_NUMPY: dict[str, Callable[[Step, dict[str, Array]], Array]] = {
    "polynomial_expand": _polynomial_numpy,
    "normalizer": _normalizer_numpy,
    "feature_cross": _cross_numpy,
}
FIELD_ONNX: dict[str, Callable[[Step, GraphBuilder, dict[str, str]], str]] = {
    "polynomial_expand": _polynomial_onnx,
    "normalizer": _normalizer_onnx,
    "feature_cross": _cross_onnx,
}
INFOS: dict[str, Callable[[Step], list[dict[str, Any]]]] = {
    "polynomial_expand": _polynomial_infos,
    "normalizer": _normalizer_infos,
    "feature_cross": _cross_infos,
}
