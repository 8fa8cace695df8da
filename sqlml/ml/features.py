"""Feature preprocessing: TRANSFORM items and BigQuery ML's automatic preprocessing.

Theory of operation. Training data arrives as Arrow; each raw column becomes a numpy array
(numbers as float64 with NaN for NULL, strings and booleans as object arrays with NULL mapped to
:data:`NULL_CATEGORY`). Preprocessing runs in two stages, each step fitted on the training rows:

A. TRANSFORM (or, without one, every non-label column as is): each item makes one named
   intermediate column, either *numeric*, *categorical*, or *final* (already encoded: the output of
   ML.STANDARD_SCALER, ML.MIN_MAX_SCALER and ML.ONE_HOT_ENCODER is used as it is).
B. Automatic preprocessing, as BigQuery ML documents it: a numeric column has NULL replaced by the
   training mean, then (for the model types that want it) is standardized; a categorical column is
   one-hot encoded over the categories seen in training, NULL being a category of its own when it
   was seen, and an unseen value (or an unseen NULL) encoding as all zeros; for boosted trees and
   random forests it is label-encoded instead (:class:`Label`).

Every fitted step does its work twice from the same parameters: on numpy arrays (to make the
training matrix) and as ONNX nodes (the stored graph). The parity check after training compares
the two ends, so a disagreement is caught before a model is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.ml import strings
from sqlml.ml.expressions import columns_of, eval_numpy, eval_onnx, text_numpy, text_onnx
from sqlml.ml.spec import Col, Expr, TransformItem

if TYPE_CHECKING:  # onnx (0.8 s to import) only where a graph is built or read
    from sqlml.ml.graph import GraphBuilder

NULL_CATEGORY = strings.NULL  # what a NULL string or boolean becomes at the graph's input
ONE_HOT, LABEL = "one_hot", "label"  # how categorical columns are encoded
# linear models' CATEGORY_ENCODING_METHOD = 'DUMMY_ENCODING': one-hot without the most frequent
# category (BigQuery's automatic preprocessing page), which then encodes as all zeros
DUMMY = "dummy"
NUMERIC_INPUTS = ("numeric", "timestamp")  # kinds whose graph input is a DOUBLE (temporal.py)

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class InputColumn:
    """A column of the input rows that the model reads."""

    name: str
    kind: str  # 'numeric' | 'string' | 'bool' | 'date' | 'datetime' | 'time' | 'timestamp'
    # where the value comes from when it is not the column ``name`` itself (sqlml.ml.nested):
    # (column, field) for a STRUCT field, (column, i) for element i (1-based) of an ARRAY
    path: tuple[str | int, ...] = ()

    @property
    def elem_type(self) -> int:
        from sqlml.ml.graph import DOUBLE, STRING

        return DOUBLE if self.kind in NUMERIC_INPUTS else STRING


def kind_of(arrow_type: pa.DataType) -> str | None:
    """'numeric', 'string' or 'bool' for a column type sqlml can use as a feature, else None."""
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return temporal.kind_of(arrow_type)  # date, datetime, time, timestamp


def column_kind(name: str, arrow_type: pa.DataType) -> str:
    kind = kind_of(arrow_type)
    if kind is not None:
        return kind
    if pa.types.is_null(arrow_type):
        raise errors.UnusableTrainingData(f"column {name} has only NULL values")
    raise errors.FeatureNotSupported(
        f"column {name} has type {arrow_type}, not supported as a feature"
    )


def to_numpy(column: pa.ChunkedArray | pa.Array, kind: str) -> Array:
    """One Arrow column as the graph's input takes it: float64 with NaN, or strings."""
    if kind in temporal.KINDS:
        return temporal.to_numpy(column, kind)
    if kind == "numeric":
        doubles = pc.cast(column, pa.float64())
        return np.asarray(doubles.to_numpy(zero_copy_only=False), dtype=np.float64)
    if kind == "bool":
        column = pc.if_else(column, "true", "false")
    filled = pc.fill_null(pc.cast(column, pa.string()), NULL_CATEGORY)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object)


# -- fitted steps ------------------------------------------------------------------------------


@dataclass
class Stage:
    """Values flowing through preprocessing: numpy arrays and their ONNX tensor names."""

    arrays: dict[str, Array]
    kinds: dict[str, str]  # column -> 'numeric' | 'categorical' | 'final'


@dataclass(frozen=True)
class NumericAuto:
    """NULL -> training mean (or ``fill``); then standardize when ``std`` is given."""

    name: str
    mean: float
    std: float | None
    fill: float | None = None  # what NULL becomes when it is not the mean (a TIMESTAMP's median)

    def numpy(self, x: Array, out: Array | None = None) -> Array:
        """Written into ``out`` (a column view) when given: no temporary arrays."""
        target = np.empty(len(x)) if out is None else out.reshape(-1)
        np.copyto(target, x)
        missing = np.isnan(target)
        if missing.any():
            target[missing] = self.mean if self.fill is None else self.fill
        if self.std is not None:
            np.subtract(target, self.mean, out=target)
            np.divide(target, self.std, out=target)
        return target

    def onnx(self, g: GraphBuilder, x: str, fold: bool = False) -> str:
        """``fold``: leave the standardization out (the estimator's weights absorb it)."""
        mean = g.const([[self.mean]])
        fill = mean if self.fill is None else g.const([[self.fill]])
        filled = g.op("Where", g.op("IsNaN", x), fill, x)
        if self.std is None or fold:
            return filled
        return g.op("Div", g.op("Sub", filled, mean), g.const([[self.std]]))

    @property
    def width(self) -> int:
        return 1

    def info(self) -> dict[str, Any]:
        shown = {"column": self.name, "encoding": "numeric", "mean": self.mean, "stddev": self.std}
        return shown if self.fill is None else {**shown, "median": self.fill}


@dataclass(frozen=True)
class OneHot:
    """One column per category seen in training; anything else encodes as all zeros."""

    name: str
    categories: tuple[Any, ...]  # strings, or floats for bucket indexes (NaN = NULL)
    numeric: bool = False
    # dummy encoding: the category left out of ``categories`` (at most one), seen in training
    dropped: tuple[Any, ...] = ()

    def numpy(self, x: Array, out: Array | None = None) -> Array:
        out = np.zeros((len(x), len(self.categories))) if out is None else out
        out[:] = 0.0
        for j, category in enumerate(self.categories):
            if self.numeric and np.isnan(category):
                out[:, j] = np.isnan(x.astype(np.float64))
            else:
                out[:, j] = x == category
        return out

    def onnx(self, g: GraphBuilder, x: str, fold: bool = False) -> str:
        if not self.categories:
            return ""
        if not self.numeric:
            cats = np.array([list(self.categories)], dtype=object)
            return g.to_double(g.op("Equal", x, g.const(cats)))
        parts = []
        for category in self.categories:
            if np.isnan(category):
                parts.append(g.to_double(g.op("IsNaN", x)))
            else:
                parts.append(g.to_double(g.op("Equal", x, g.const([[category]]))))
        return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)

    @property
    def width(self) -> int:
        return len(self.categories)

    def info(self) -> dict[str, Any]:
        shown = [self._shown(c) for c in self.categories]
        info = {"column": self.name, "encoding": "one_hot", "categories": shown}
        return {**info, "dropped": [self._shown(c) for c in self.dropped]} if self.dropped else info

    def _shown(self, c: Any) -> Any:
        if c == NULL_CATEGORY or (self.numeric and np.isnan(c)):
            return None
        return f"bin_{int(c)}" if self.numeric else c


@dataclass(frozen=True)
class Label:
    """Label encoding (BigQuery's for boosted trees and random forests, and ML.LABEL_ENCODER's
    rule): a category seen in training -> its 1-based place in sorted order, anything else -> 0.
    NULL is a category of its own when training saw it, as for one-hot encoding."""

    name: str
    categories: tuple[Any, ...]  # as OneHot's
    numeric: bool = False

    def numpy(self, x: Array, out: Array | None = None) -> Array:
        target = np.empty(len(x)) if out is None else out.reshape(-1)
        target[:] = 0.0
        for j, category in enumerate(self.categories):
            if self.numeric and np.isnan(category):
                target[np.isnan(x.astype(np.float64))] = j + 1
            else:
                target[x == category] = j + 1
        return target

    def onnx(self, g: GraphBuilder, x: str, fold: bool = False) -> str:
        codes = np.arange(1, len(self.categories) + 1, dtype=np.float64)
        if not self.numeric:
            # one lookup per row (a CASE in SQL), not one comparison per category
            encoded = g.op(
                "LabelEncoder",
                x,
                domain="ai.onnx.ml",
                keys_strings=[str(c) for c in self.categories],
                values_floats=[float(c) for c in codes],
                default_float=0.0,
            )
            return g.to_double(encoded)
        one_hot = OneHot(self.name, self.categories, numeric=True).onnx(g, x)
        return g.op("MatMul", one_hot, g.const(codes.reshape(-1, 1)))

    @property
    def width(self) -> int:
        return 1

    def info(self) -> dict[str, Any]:
        return {**OneHot(self.name, self.categories, self.numeric).info(), "encoding": "label"}


def fit_numeric(name: str, x: Array, standardize: bool) -> NumericAuto:
    missing = np.isnan(x)
    finite = x[~missing] if missing.any() else x  # no copy of a column without NULLs
    if finite.size == 0:
        raise errors.UnusableTrainingData(f"feature {name} has only NULL values")
    mean = float(finite.mean())
    # The spread of the column after NULLs become the mean: scikit-learn's SimpleImputer followed
    # by StandardScaler, the reference the tests compare against.
    std = float(finite.std() * np.sqrt(finite.size / x.size)) if standardize else None
    if std is not None and std == 0.0:
        std = 1.0  # a constant column: centered to zero, no scaling (as sklearn's StandardScaler)
    return NumericAuto(name, mean, std)


def fit_categorical(
    name: str, x: Array, numeric: bool = False, encoding: str = ONE_HOT
) -> OneHot | Label:
    if encoding == DUMMY:
        return _dummy(name, x, numeric)
    encoder = OneHot if encoding == ONE_HOT else Label
    if numeric:
        values = np.unique(x.astype(np.float64))  # NaN sorts last and np.unique keeps one
        return encoder(name, tuple(float(v) for v in values), numeric=True)
    return encoder(name, tuple(sorted(set(x.tolist()))))


def _dummy(name: str, x: Array, numeric: bool) -> OneHot:
    """Dummy encoding: one-hot over the categories seen but the most frequent one (BigQuery
    drops "the category with the most occurrences"; of tied ones a random one, sqlml the first
    in sorted order, so the same rows give the same model)."""
    if numeric:
        floats = x.astype(np.float64)
        nulls = int(np.isnan(floats).sum())
        values, counts = np.unique(floats[~np.isnan(floats)], return_counts=True)
        categories = [float(v) for v in values] + ([float("nan")] if nulls else [])
        tally = [int(c) for c in counts] + ([nulls] if nulls else [])
    else:
        found: dict[Any, int] = {}
        for value in x.tolist():
            found[value] = found.get(value, 0) + 1
        categories = sorted(found)
        tally = [found[c] for c in categories]
    if not categories:
        return OneHot(name, (), numeric)
    most = max(range(len(categories)), key=lambda i: (tally[i], -i))
    kept = tuple(c for i, c in enumerate(categories) if i != most)
    return OneHot(name, kept, numeric, dropped=(categories[most],))


Encoder = NumericAuto | OneHot | Label


@dataclass
class Preprocessor:
    """Fitted preprocessing: raw input columns -> the model's feature matrix."""

    inputs: list[InputColumn]
    transform: list[Step] = field(default_factory=list)
    auto: list[Encoder] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)  # TRANSFORM outputs used as they are
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # ML.FEATURE_INFO's, by name
    expand: bool = False  # TIMESTAMP columns expand into their components (temporal.py)

    def matrix(self, raw: dict[str, Array]) -> Array:
        """The feature matrix, Fortran-ordered: each block is written into its own columns."""
        stage = self._stage_numpy(raw)
        n = len(next(iter(raw.values()))) if raw else 0
        out = np.empty((n, self.width()), dtype=np.float64, order="F")
        at = 0
        for enc in self.auto:
            at = _put(out, at, enc.numpy(stage.arrays[enc.name], out[:, at : at + enc.width]))
        for name in self.finals:
            at = _put(out, at, stage.arrays[name])
        return out

    def _stage_numpy(self, raw: dict[str, Array]) -> Stage:
        stage = Stage(dict(raw), {c.name: _kind_of(c) for c in self.inputs})
        if not self.transform:
            if self.expand:
                temporal.expand_numpy(stage.arrays, stage.kinds)
            return stage
        out = Stage({}, {})
        for step in self.transform:
            out.arrays[step.alias] = step.numpy(stage.arrays)
            out.kinds[step.alias] = step.kind
        return out

    def onnx(self, g: GraphBuilder, fold: bool = False) -> str:
        """Adds the graph inputs and preprocessing nodes; returns the feature tensor's name.

        ``fold``: numeric columns are imputed but not standardized; :meth:`affine` says how.
        """
        tensors = {c.name: g.input(c.name, c.elem_type) for c in self.inputs}
        if self.transform:
            tensors = {step.alias: step.onnx(g, tensors) for step in self.transform}
            for step in self.transform:
                _mark(g, step, tensors[step.alias])
        elif self.expand:
            stamps = [c.name for c in self.inputs if c.kind == "timestamp"]
            temporal.expand_onnx(g, tensors, stamps)
        parts = [enc.onnx(g, tensors[enc.name], fold) for enc in self.auto]
        parts += [tensors[name] for name in self.finals]
        parts = [p for p in parts if p]
        return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)

    def width(self) -> int:
        return sum(e.width for e in self.auto) + sum(s.width for s in self.transform if s.final)

    def affine(self) -> tuple[Array, Array]:
        """Per feature column, the standardization that ``onnx(fold=True)`` leaves out:
        standardized = unscaled * scale + offset."""
        scale, offset = np.ones(self.width()), np.zeros(self.width())
        at = 0
        for enc in self.auto:
            if isinstance(enc, NumericAuto) and enc.std is not None:
                scale[at], offset[at] = 1.0 / enc.std, -enc.mean / enc.std
            at += enc.width
        return scale, offset

    def info(self) -> list[dict[str, Any]]:
        rows = [enc.info() for enc in self.auto]
        for step in self.transform:
            rows += step.infos() if step.final else []
        for row in rows:  # (a STRUCT output's several rows have no statistics of their own)
            if row["column"] in self.stats:
                row["stats"] = self.stats[row["column"]]
        return nested.info_rows(rows, self.inputs)


# ML.TRANSFORM reads each TRANSFORM output from the stored graph by this name (sqlml.functions.
# transform): an Identity node per step, outside the scoring path, its doc_string the step's
# function, input kind and width as JSON.
TRANSFORM_OUTPUT = "sqlml_transform."


def _mark(g: GraphBuilder, step: Step, tensor: str) -> None:
    if not tensor:  # (a one-hot encoding without categories has no tensor)
        return
    doc: dict[str, Any] = {
        "alias": step.alias,
        "function": step.function,
        "input_kind": step.input_kind,
    }
    if "names" in step.params:  # ML.POLYNOMIAL_EXPAND's STRUCT fields
        doc["fields"] = list(step.params["names"])
    g.mark(tensor, TRANSFORM_OUTPUT + step.alias, json.dumps({**doc, "width": step.width}))


def _put(out: Array, at: int, block: Array) -> int:
    width = 1 if block.ndim == 1 else block.shape[1]
    if not np.may_share_memory(block, out):
        out[:, at : at + width] = block.reshape(len(block), width)
    return at + width


def _kind_of(column: InputColumn) -> str:
    if column.kind == "timestamp":
        return "timestamp"  # its Unix time in seconds (temporal.py)
    return "numeric" if column.kind == "numeric" else "categorical"


# -- TRANSFORM steps -----------------------------------------------------------------------------


@dataclass
class Step:
    """One fitted TRANSFORM item."""

    alias: str
    function: str
    expression: Expr
    kind: str  # kind of the output: 'numeric' | 'categorical' | 'final'
    params: dict[str, Any] = field(default_factory=dict)
    input_kind: str = "numeric"
    inputs: tuple[tuple[str, Expr], ...] = ()  # the named fields of a STRUCT / ARRAY input

    @property
    def final(self) -> bool:
        return self.kind == "final"

    @property
    def width(self) -> int:
        if "width" in self.params:  # the steps over a STRUCT or ARRAY (sqlml.ml.feature_steps)
            return int(self.params["width"])
        return len(self.params.get("categories", ())) if self.function == "one_hot_encoder" else 1

    def numpy(self, arrays: dict[str, Array]) -> Array:
        if self.inputs:
            return feature_steps.FIELD_NUMPY[self.function](self, arrays)
        x = self._input_numpy(arrays)
        return _STEP_NUMPY[self.function](self, x)

    def onnx(self, g: GraphBuilder, tensors: dict[str, str]) -> str:
        if self.inputs:
            return feature_steps.FIELD_ONNX[self.function](self, g, tensors)
        if self.input_kind == "numeric":
            x = eval_onnx(self.expression, g, tensors)
        elif isinstance(self.expression, Col):
            x = tensors[self.expression.name]
        else:  # a string expression (LOWER, CONCAT, ...)
            x = text_onnx(self.expression, g, tensors)
        return _STEP_ONNX[self.function](self, g, x)

    def _input_numpy(self, arrays: dict[str, Array]) -> Array:
        if self.input_kind == "numeric":
            return np.broadcast_to(
                eval_numpy(self.expression, arrays), (len(next(iter(arrays.values()))),)
            ).astype(np.float64)
        if isinstance(self.expression, Col):
            return arrays[self.expression.name]
        return text_numpy(self.expression, arrays)

    def info(self) -> dict[str, Any]:
        return {"column": self.alias, "encoding": self.function, **_jsonable(self.params)}

    def infos(self) -> list[dict[str, Any]]:
        """One row per output column of the feature matrix (several for a STRUCT output)."""
        shown = feature_steps.INFOS.get(self.function)
        return shown(self) if shown is not None else [self.info()]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, tuple | list):
            out[key] = [None if v == NULL_CATEGORY else v for v in value]
        else:
            out[key] = value
    return out


def _identity_numpy(step: Step, x: Array) -> Array:
    return x


def _identity_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    return x


def _scaler_numpy(step: Step, x: Array) -> Array:
    p = step.params
    filled = np.where(np.isnan(x), p["fill"], x)
    out: Array = (filled - p["offset"]) / p["scale"]
    return np.clip(out, 0.0, 1.0) if step.function == "min_max_scaler" else out


def _scaler_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    p = step.params
    filled = g.op("Where", g.op("IsNaN", x), g.const([[p["fill"]]]), x)
    out = g.op("Div", g.op("Sub", filled, g.const([[p["offset"]]])), g.const([[p["scale"]]]))
    if step.function == "min_max_scaler":
        out = g.op("Clip", out, g.const(0.0), g.const(1.0))
    return out


def _imputer_numpy(step: Step, x: Array) -> Array:
    if step.input_kind == "numeric":
        return np.where(np.isnan(x), step.params["fill"], x)
    return np.where(x == NULL_CATEGORY, step.params["fill"], x)


def _imputer_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    fill = step.params["fill"]
    if step.input_kind == "numeric":
        return g.op("Where", g.op("IsNaN", x), g.const([[fill]]), x)
    missing = g.op("Equal", x, g.const(np.array([[NULL_CATEGORY]], dtype=object)))
    return g.op("Where", missing, g.const(np.array([[fill]], dtype=object)), x)


def _bucketize_numpy(step: Step, x: Array) -> Array:
    bounds = np.asarray(step.params["split_points"], dtype=np.float64)
    above = x[:, None] > bounds if step.params["exclude_boundaries"] else x[:, None] >= bounds
    index = above.sum(axis=1).astype(np.float64) + 1.0
    return np.where(np.isnan(x), np.nan, index)


def _bucketize_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    bounds = g.const(np.array([step.params["split_points"]], dtype=np.float64))
    compare = "Greater" if step.params["exclude_boundaries"] else "GreaterOrEqual"
    axes = g.const_exact(np.array([1], dtype=np.int64))
    counts = g.op("ReduceSum", g.to_double(g.op(compare, x, bounds)), axes, keepdims=1)
    index = g.op("Add", counts, g.const([[1.0]]))
    return g.op("Where", g.op("IsNaN", x), g.const([[np.nan]]), index)


def _one_hot_numpy(step: Step, x: Array) -> Array:
    return OneHot(step.alias, tuple(step.params["categories"]), step.input_kind == "numeric").numpy(
        x
    )


def _one_hot_onnx(step: Step, g: GraphBuilder, x: str) -> str:
    encoder = OneHot(step.alias, tuple(step.params["categories"]), step.input_kind == "numeric")
    return encoder.onnx(g, x)


_STEP_NUMPY: dict[str, Callable[[Step, Array], Array]] = {
    "column": _identity_numpy,
    "expression": _identity_numpy,
    "standard_scaler": _scaler_numpy,
    "min_max_scaler": _scaler_numpy,
    "imputer": _imputer_numpy,
    "bucketize": _bucketize_numpy,
    "one_hot_encoder": _one_hot_numpy,
}
_STEP_ONNX: dict[str, Callable[[Step, GraphBuilder, str], str]] = {
    "column": _identity_onnx,
    "expression": _identity_onnx,
    "standard_scaler": _scaler_onnx,
    "min_max_scaler": _scaler_onnx,
    "imputer": _imputer_onnx,
    "bucketize": _bucketize_onnx,
    "one_hot_encoder": _one_hot_onnx,
}


def fit_step(item: TransformItem, raw: dict[str, Array], kinds: dict[str, str]) -> Step:
    """Fits one TRANSFORM item on the training rows."""
    if item.inputs:
        step = Step(item.alias, item.function, item.expression, "final")
        feature_steps.FIELD_FITTERS[item.function](step, item, raw, kinds)
        return step
    input_kind = _item_input_kind(item, kinds)
    expression = item.expression
    if not isinstance(expression, Col):  # string columns marked, types checked (42804)
        expression = strings.typed(expression, kinds)
        input_kind = "categorical" if strings.is_string(expression) else "numeric"
    step = Step(item.alias, item.function, expression, "numeric", input_kind=input_kind)
    x = step._input_numpy(raw)
    _FITTERS[item.function](step, item, x)
    return step


def _item_input_kind(item: TransformItem, kinds: dict[str, str]) -> str:
    for name in columns_of(item.expression):
        if name not in kinds:
            raise errors.UndefinedColumn(
                f'column "{name}" used in TRANSFORM is not in the training query',
                detail=item.source or None,
            )
    if isinstance(item.expression, Col):
        return "numeric" if kinds[item.expression.name] in NUMERIC_INPUTS else "categorical"
    return "numeric"  # an expression's kind is its type's (fit_step, strings.typed)


def _need_numeric(step: Step) -> None:
    if step.input_kind != "numeric":
        raise errors.DatatypeMismatch(
            f"{step.function.upper()} needs a numeric input ({step.alias})"
        )


def _fit_passthrough(step: Step, item: TransformItem, x: Array) -> None:
    step.kind = "numeric" if step.input_kind == "numeric" else "categorical"


def _finite(step: Step, x: Array) -> Array:
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        raise errors.UnusableTrainingData(f"TRANSFORM input of {step.alias} has only NULL values")
    return finite


def _fit_standard(step: Step, item: TransformItem, x: Array) -> None:
    _need_numeric(step)
    finite = _finite(step, x)
    mean, std = float(finite.mean()), float(finite.std())
    step.kind = "final"
    step.params = {"offset": mean, "scale": std or 1.0, "fill": mean}


def _fit_min_max(step: Step, item: TransformItem, x: Array) -> None:
    _need_numeric(step)
    finite = _finite(step, x)
    low, high = float(finite.min()), float(finite.max())
    step.kind = "final"
    step.params = {"offset": low, "scale": (high - low) or 1.0, "fill": float(finite.mean())}


def _fit_imputer(step: Step, item: TransformItem, x: Array) -> None:
    strategy = str(item.args[0]).lower() if item.args else "mean"
    if step.input_kind == "numeric":
        finite = _finite(step, x)
        fill: Any = {
            "mean": lambda: float(finite.mean()),
            "median": lambda: float(np.median(finite)),
            "most_frequent": lambda: float(_most_frequent(finite)),
        }[strategy]()
        step.kind = "numeric"
    else:
        if strategy != "most_frequent":
            raise errors.InvalidParameterValue(
                f"ML.IMPUTER strategy '{strategy}' needs a numeric input ({step.alias});"
                " use 'most_frequent' for strings"
            )
        present = x[x != NULL_CATEGORY]
        if present.size == 0:
            raise errors.UnusableTrainingData(
                f"TRANSFORM input of {step.alias} has only NULL values"
            )
        fill = str(_most_frequent(present))
        step.kind = "categorical"
    step.params = {"strategy": strategy, "fill": fill}


def _most_frequent(values: Array) -> Any:
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[int(np.argmax(counts))]  # ties: the smallest value, as sklearn does


def _fit_bucketize(step: Step, item: TransformItem, x: Array) -> None:
    _need_numeric(step)
    points = item.args[0] if item.args else ()
    if not isinstance(points, tuple) or not points:
        raise errors.InvalidParameterValue(
            f"ML.BUCKETIZE needs an array of split points ({step.alias})"
        )
    floats = [float(p) for p in points if isinstance(p, int | float) and not isinstance(p, bool)]
    if len(floats) != len(points) or floats != sorted(floats):
        raise errors.InvalidParameterValue(
            f"ML.BUCKETIZE split points must be numbers in ascending order ({step.alias})"
        )
    exclude = bool(item.args[1]) if len(item.args) > 1 else False
    step.kind = "categorical"
    step.params = {"split_points": floats, "exclude_boundaries": exclude}


def _fit_one_hot(step: Step, item: TransformItem, x: Array) -> None:
    drop, top_k, threshold = _one_hot_args(item)
    values = x if step.input_kind != "numeric" else x.astype(np.float64)
    present = (
        values[values != NULL_CATEGORY]
        if step.input_kind != "numeric"
        else values[~np.isnan(values)]
    )
    uniques, counts = np.unique(present, return_counts=True)
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], uniques[i]))
    keep = [i for i in order if counts[i] >= threshold][:top_k]
    if drop == "most_frequent" and keep:
        keep = keep[1:]
    cats = sorted(uniques[i].item() if hasattr(uniques[i], "item") else uniques[i] for i in keep)
    step.kind = "final"
    step.params = {"categories": tuple(cats), "drop": drop}


def _one_hot_args(item: TransformItem) -> tuple[str, int, int]:
    args = list(item.args) + [None] * 3
    drop = str(args[0] or "none").lower()
    if drop not in ("none", "most_frequent"):
        raise errors.InvalidParameterValue(
            "ML.ONE_HOT_ENCODER drop must be 'none' or 'most_frequent'"
        )
    top_k = args[1] if args[1] is not None else 32000
    threshold = args[2] if args[2] is not None else 5
    if not isinstance(top_k, int) or top_k <= 0 or not isinstance(threshold, int) or threshold < 0:
        raise errors.InvalidParameterValue(
            "ML.ONE_HOT_ENCODER top_k must be > 0, frequency_threshold >= 0"
        )
    return drop, top_k, threshold


_FITTERS: dict[str, Callable[[Step, TransformItem, Array], None]] = {
    "column": _fit_passthrough,
    "expression": _fit_passthrough,
    "standard_scaler": _fit_standard,
    "min_max_scaler": _fit_min_max,
    "imputer": _fit_imputer,
    "bucketize": _fit_bucketize,
    "one_hot_encoder": _fit_one_hot,
}


def fit(
    inputs: Sequence[InputColumn],
    raw: dict[str, Array],
    transform: Sequence[TransformItem] | None,
    standardize: bool,
    encoding: str = ONE_HOT,
    expand_timestamps: bool = False,
) -> Preprocessor:
    """Fits TRANSFORM (if any) and automatic preprocessing on the training rows ``raw``;
    categorical columns are encoded one-hot, dummy (one-hot less the most frequent) or as
    labels (``encoding``); TIMESTAMP columns expand into their components when
    ``expand_timestamps`` (linear and logistic regression)."""
    pre = Preprocessor(list(inputs), expand=expand_timestamps)
    kinds = {c.name: c.kind for c in inputs}
    if transform:
        pre.transform = [fit_step(item, raw, kinds) for item in transform]
    stage = pre._stage_numpy(raw)
    for name, kind in stage.kinds.items():
        pre.stats[name] = column_stats(stage.arrays[name], kind)
        if kind == "final":
            pre.finals.append(name)
        elif kind == "numeric":
            scale = standardize and name not in nested.unscaled(inputs, bool(transform))
            pre.auto.append(fit_numeric(name, stage.arrays[name], scale))
        elif kind == "timestamp":
            pre.auto.append(temporal.fit_unix(name, stage.arrays[name], standardize))
        elif kind == "component":
            pre.auto.append(temporal.fit_component(name, stage.arrays[name]))
        else:
            pre.auto.append(
                fit_categorical(name, stage.arrays[name], _is_bucket(pre, name), encoding)
            )
    return pre


def column_stats(x: Array, kind: str) -> dict[str, Any]:
    """ML.FEATURE_INFO's statistics of one feature over the rows preprocessing is fitted on (all
    input rows, as BigQuery computes them): ``null_count`` for every feature; for a numeric one
    also min, max, mean and median of its non-NULL values and ``stddev``, the population
    standard deviation with NULLs counted at the mean (the spread standardization uses, so one
    definition whether or not the model standardizes). A feature that is not one column (a
    STRUCT or ARRAY output of TRANSFORM) has none."""
    if x.ndim != 1:
        return {}
    if kind == "categorical" or x.dtype == object:
        nulls = np.isnan(x.astype(np.float64)) if x.dtype != object else x == NULL_CATEGORY
        return {"null_count": int(np.count_nonzero(nulls))}
    values = x.astype(np.float64, copy=False)
    missing = np.isnan(values)
    finite = values[~missing]
    stats: dict[str, Any] = {"null_count": int(np.count_nonzero(missing))}
    if finite.size:
        stats.update(
            min=float(finite.min()),
            max=float(finite.max()),
            mean=float(finite.mean()),
            median=float(np.median(finite)),
            stddev=float(finite.std() * np.sqrt(finite.size / values.size)),
        )
    return stats


def _is_bucket(pre: Preprocessor, name: str) -> bool:
    buckets = ("bucketize", "quantile_bucketize")
    return any(s.alias == name and s.function in buckets for s in pre.transform)


# The steps of sqlml.ml.feature_steps register themselves in the tables above, as a third
# party's would; imported last because that module builds on this one.
from sqlml.ml import (  # noqa: E402
    feature_steps,
    hashing,  # noqa: F401  (ML.HASH_BUCKETIZE's step registers itself)
    nested,
    temporal,
)
