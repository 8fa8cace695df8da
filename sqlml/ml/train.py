"""Training: Arrow rows in, a checked ONNX graph and its description out.

Theory of operation. ``train`` resolves OPTIONS for the model type, picks the label and feature
columns, drops rows whose label is NULL, splits the rows (split.py), fits preprocessing on the
training rows (features.py), fits the scikit-learn estimator on the preprocessed matrix, converts
it with skl2onnx and splices it behind sqlml's own preprocessing graph. Before anything is returned
the whole graph is run by onnxruntime on the evaluation rows and compared with scikit-learn on the
same rows: a graph that disagrees is refused, so it can never be stored. The evaluation metrics are
computed from the graph's own outputs: what is reported is what will be served. Between phases (and
between L-BFGS iterations) ``checkpoint`` is called: a cancelled statement stops there with 57014
(checkpoints.py).

Classifiers train on class indexes 0..C-1 (the labels in sorted order); the graph's ``label``
output is that index and the engine maps it back to the label's own type and value.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.exceptions import ConvergenceWarning

from sqlml import errors
from sqlml.ml import (
    estimator_onnx,
    features,
    fingerprint,
    global_explain,
    incremental,
    incremental_more,
    kinds,
    models,
    multihot,
    nested,
    ngram_steps,
    split,
    warm_start,
)
from sqlml.ml.checkpoints import Checkpoint, never, unwatch, watch
from sqlml.ml.expressions import columns_of
from sqlml.ml.features import InputColumn, Preprocessor
from sqlml.ml.graph import ML_OPSET, OPSET, GraphBuilder, finish, splice
from sqlml.ml.score import Scorer
from sqlml.ml.spec import Col, OptionValue, TransformItem

if TYPE_CHECKING:
    from sqlml.ml import tuning
    from sqlml.ml.streamed import Streamed
    from sqlml.store import ModelVersion

Array = np.ndarray[Any, Any]
Progress = Callable[[str], None]

PARITY_ROWS = 10_000
MAX_LABELS = 50  # BigQuery ML: a classifier's label has at most 50 distinct values
PARITY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TrainResult:
    """What a training produced: everything the model store records for a version."""

    onnx: bytes
    model_type: str
    kind: str
    inputs: list[InputColumn]
    label: str | None
    label_type: str | None  # the label column's Arrow type, e.g. 'int64', 'string', 'bool'
    classes: list[Any] | None  # classifiers: label values in class-index order
    options: dict[str, Any]
    metrics: dict[str, Any]
    training_info: dict[str, Any]
    feature_info: list[dict[str, Any]]
    row_count: int  # rows used: those whose label is not NULL (training and evaluation)
    data_hash: str
    centroids: list[list[float]] | None = None
    # the training rows' statistics (ml/statistics.py; None: an imported model) and what
    # validate_data found against the serving version's (sqlml/validation.py)
    statistics: dict[str, Any] | None = None
    data_warnings: list[dict[str, Any]] | None = None
    # incremental = TRUE: every row so far (ml/incremental.py)
    state: incremental.State | incremental.Curve | incremental_more.More | None = None
    watermark: dict[str, Any] | None = None  # and where its watermark stands (sqlml/retrain.py)
    # num_trials: every trial of the hyperparameter tuning, the optimal one's being this result
    # (ml/tuning.py)
    trials: tuple[tuning.Trial, ...] | None = None
    # tree models: the XGBoost model as its JSON, what TreeSHAP needs beside the graph
    # (models.ModelType.kept; the store keeps it in sqlml.version_boosters)
    booster: bytes | None = None


@dataclass
class _Data:
    """The rows as training sees them."""

    raw: dict[str, Array]
    y: Array | None
    classes: list[Any] | None
    eval_mask: Array | None
    init_mask: Array | None = None
    weights: Array | None = None  # INSTANCE_WEIGHT_COL, per row
    timings: dict[str, float] = field(default_factory=dict)


def train(
    options: Mapping[str, OptionValue],
    table: pa.Table,
    transform: Sequence[TransformItem] | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint = never,
    previous: incremental.State | incremental.Curve | incremental_more.More | None = None,
    warm: ModelVersion | None = None,
    streamed: Streamed | None = None,
) -> TrainResult:
    """``previous``: with incremental = TRUE, the statistics of the rows trained on before
    (ALTER MODEL ... RETRAIN); ``table`` then holds the new rows only. ``warm``: with
    warm_start = TRUE, the version whose weights training starts from (ml/warm_start.py).
    ``streamed``: what a training on more rows than fit in memory learned from them
    (ml/streamed.py); ``table`` then holds its evaluation sample."""
    say = progress or (lambda message: None)
    from sqlml.ml import automl, tuning  # (their trials train through this function)

    if automl.requested(options) or tuning.requested(options):
        if previous is not None or warm is not None or streamed is not None:
            raise errors.FeatureNotSupported(
                "hyperparameter tuning (num_trials) of an incremental, warm-started or streamed"
                " training is not supported yet"
            )
        if automl.requested(options):
            return automl.search(options, table, transform, say, checkpoint)
        return tuning.tune(options, table, transform, say, checkpoint)
    started = time.perf_counter()
    model_type = models.get(options.get("model_type"))
    opts = model_type.resolve_options(incremental.defaults(options))
    if table.num_rows == 0:
        raise errors.UnusableTrainingData("the training query returned no rows")
    unique_names(table.column_names)
    label = _label_column(model_type, opts, table)
    transform = feature_transform(transform, label)
    inputs = _inputs(model_type, opts, table, label, transform)
    if warm is not None:
        warm_start.check(warm, inputs, label)
    if opts.get("incremental"):
        if transform:
            raise errors.FeatureNotSupported("incremental = TRUE takes no TRANSFORM clause yet")
        incremental.check(model_type.name, opts, inputs)
    transform = ngram_steps.bind(transform, inputs)  # ML.NGRAMS items read their indicators
    # (its digest, or an incremental model's of every row so far; a streamed one's: all rows')
    seen = fingerprint.of(table) if streamed is None else streamed.seen
    checkpoint()
    known = getattr(previous, "classes", None)  # (a Curve's or a Net's: RETRAIN keeps them)
    if streamed is not None:  # (the sample: evaluation rows, of the classes of all rows)
        known = streamed.classes
    split = opts if streamed is None else {**opts, "data_split_method": "NO_SPLIT"}
    data = _prepare(model_type, split, table, label, inputs, known)
    _usable_numbers(data, label)
    checkpoint()
    n_train = len(data.y) if data.y is not None else table.num_rows
    say(f"training {model_type.name} on {n_train} rows, {len(inputs)} input columns")
    return _fit(
        model_type,
        opts,
        data,
        inputs,
        label,
        transform,
        table,
        seen,
        say,
        started,
        checkpoint,
        previous,
        warm,
        streamed,
    )


def _fit(
    model_type: models.ModelType,
    opts: dict[str, Any],
    data: _Data,
    inputs: list[InputColumn],
    label: str | None,
    transform: Sequence[TransformItem] | None,
    table: pa.Table,
    seen: fingerprint.Fingerprint,
    say: Progress,
    started: float,
    checkpoint: Checkpoint = never,
    previous: incremental.State | incremental.Curve | incremental_more.More | None = None,
    warm: ModelVersion | None = None,
    streamed: Streamed | None = None,
) -> TrainResult:
    train_rows = _rows(data, training=True)
    used = _used_rows(data, table)
    clock = _Clock(data.timings)
    state: incremental.State | incremental.Curve | incremental_more.More | None = None
    solved = None
    more = None
    if streamed is None:  # (pca, kmeans and the DNNs: ml/incremental_more.py)
        more = incremental_more.begin(
            model_type, opts, inputs, data.raw, previous, checkpoint, data.y, data.classes
        )
    if streamed is not None:  # (learned from every row: the sample only checks and evaluates)
        solved = incremental.solve(streamed.state, inputs, float(opts.get("l2_reg") or 0.0))
        pre = Preprocessor(list(inputs), auto=[*solved.encoders], stats=solved.stats)
        if opts.get("incremental"):
            state = streamed.curve if streamed.curve is not None else streamed.state
        if streamed.estimator is not None:  # (logistic_reg's, from Newton's passes)
            solved = replace(solved, estimator=streamed.estimator)
    elif more is not None:
        pre = more.pre
    elif opts.get("incremental") and model_type.name not in incremental.APPROXIMATE:
        # (the rows' statistics added to those trained on before)
        assert data.y is not None
        assert previous is None or isinstance(previous, incremental.State)
        state = incremental.accumulate(previous, inputs, data.raw, data.y, checkpoint)
        solved = incremental.solve(state, inputs, float(opts["l2_reg"]))
        pre = Preprocessor(list(inputs), auto=[*solved.encoders], stats=solved.stats)
    elif isinstance(previous, incremental.Curve):  # (its preprocessing, new categories added)
        encoders = incremental.grown(previous.encoders, data.raw)
        stats = {c.name: features.column_stats(data.raw[c.name], c.kind) for c in inputs}
        pre = Preprocessor(list(inputs), auto=encoders, stats=stats)
    else:
        # Statistics come from all input rows, as BigQuery ML documents ("as calculated by the
        # feature column in the original input data"); it also spares a copy of the rows.
        pre = features.fit(
            inputs,
            data.raw,
            transform,
            model_type.standardize(opts),
            model_type.encoding(opts),
            model_type.expand_timestamps,
        )
    if pre.width() == 0:
        raise errors.UnusableTrainingData("no usable feature columns")
    # Each set of rows is preprocessed on its own: cheaper than one matrix and copies of its rows.
    raw_train = _take(data.raw, train_rows)
    x_train = pre.matrix(raw_train)
    if not np.isfinite(x_train).all():  # (a TRANSFORM expression out of a DOUBLE's range)
        raise errors.UnusableTrainingData(
            "preprocessing the training data gave Infinity or NaN",
            hint="keep TRANSFORM expressions within a DOUBLE's range",
        )
    check_rows = _rows(data, training=False)
    no_split = isinstance(check_rows, slice)  # evaluation uses the training rows themselves
    raw_check = raw_train if no_split else _take(data.raw, check_rows)
    x_check = x_train if no_split else pre.matrix(raw_check)
    clock.lap("preprocess_seconds")
    checkpoint()
    ctx = models.FitContext(
        n_rows=len(x_train),
        init_centroids=None
        if data.init_mask is None
        else pre.matrix(_take(data.raw, data.init_mask)),
        n_classes=len(data.classes) if data.classes is not None else None,
        n_features=x_train.shape[1],
    )
    if more is not None and more.estimator is not None:  # (pca solved, kmeans' RETRAIN)
        estimator = more.estimator
    else:
        estimator = model_type.build(opts, ctx) if solved is None else solved.estimator
    primed = warm is not None and warm_start.prime(estimator, warm, pre, opts)
    if streamed is not None:
        info = dict(streamed.info)
    elif more is not None:
        state, estimator, info = more.fit(estimator, x_train, used)
    elif isinstance(state, incremental.State):  # (solved: nothing to fit)
        info = incremental.info(state, _count(train_rows, used))
    elif isinstance(previous, incremental.Curve):  # (Newton's method from the old curve)
        assert data.y is not None
        grown = incremental.extended(previous, pre.auto)
        state, estimator, steps = incremental.refit(
            grown, x_train, data.y, float(opts["l2_reg"]), checkpoint=checkpoint
        )
        info = {**incremental.info(state, used), "iterations": steps}
    elif model_type.fit is not None:
        fit_data = models.FitData(
            x=x_train,
            y=_y(data, train_rows),
            x_eval=None if no_split else x_check,
            y_eval=None if no_split else _y(data, check_rows),
            weights=None if data.weights is None else data.weights[train_rows],
            classes=data.classes or [],
            options=opts,
            checkpoint=checkpoint,
        )
        info = model_type.fit(estimator, fit_data)
    else:
        watch(estimator, checkpoint)
        try:
            info = _fit_estimator(estimator, x_train, _y(data, train_rows), opts, data)
        finally:
            unwatch(estimator)
    if opts.get("incremental") and state is None:  # (logistic_reg's first training)
        assert data.y is not None
        assert data.classes is not None
        state, estimator, steps = incremental.curve(
            pre.auto, data.classes, estimator, x_train, data.y, float(opts["l2_reg"]), checkpoint
        )
        info.update(incremental.info(state, used), newton_steps=steps)
    if state is not None and previous is not None:
        for name, new in incremental.learned(previous, state).items():
            names = ["NULL" if c == features.NULL_CATEGORY else c for c in new[:5]]
            shown = ", ".join(names) + (", ..." if len(new) > 5 else "")
            say(
                f"column {name} has categories the model had not seen ({shown}): they are"
                " learned from the new rows"
            )
    if state is not None:  # (the rows so far: an incremental version's fingerprint is theirs)
        before = previous.seen if previous is not None else None
        state.seen = seen if before is None else before + seen
        seen = state.seen
    if warm is not None:  # (another training run of the model: BigQuery's count)
        info.update(training_run=int(warm.training_info.get("training_run", 0)) + 1)
        info.update(warm_started_from=warm.version, warm_start_weights=primed)
    if model_type.record is not None:
        info.update(model_type.record(estimator, x_train))
    y_train = _y(data, train_rows)  # ML.GLOBAL_EXPLAIN's, ML.ADVANCED_WEIGHTS' (global_explain.py)
    info.update(
        global_explain.recorded(
            model_type.name, opts, estimator, pre, x_train, y_train, x_check, data.classes
        )
    )
    clock.lap("fit_seconds")
    checkpoint()
    say(f"fitted in {data.timings['fit_seconds']:.2f}s; converting to ONNX")
    graph = _to_onnx(model_type, estimator, pre)
    clock.lap("convert_seconds")
    checkpoint()
    del x_train
    kind = kinds.kind(model_type.kind)
    outputs = _parity_check(graph, inputs, raw_check, estimator, x_check, kind)
    result_metrics = kind.metrics(outputs, _y(data, check_rows), x_check, opts)
    clock.lap("check_seconds")
    checkpoint()
    say("checked the ONNX graph against scikit-learn; " + _summary(result_metrics))
    info.update(
        training_rows=_count(train_rows, used),
        evaluation_rows=int(data.eval_mask.sum()) if data.eval_mask is not None else 0,
        duration_seconds=time.perf_counter() - started,
        **data.timings,
    )
    if streamed is not None:  # (the rows read, not the sample's)
        evaluated = table.num_rows if streamed.held_out else 0
        used = streamed.training_rows + evaluated
        info.update(training_rows=streamed.training_rows, evaluation_rows=evaluated)
        info.update(evaluation_sample=table.num_rows)
    kept = evaluation_kept(outputs, _y(data, check_rows))
    if kept is not None:
        info["evaluation"] = kept
    centroids = kind.centroids(estimator) if kind.centroids is not None else None
    if centroids is not None:
        info["centroids"] = centroids
    return TrainResult(
        onnx=graph,
        model_type=model_type.name,
        kind=model_type.kind,
        inputs=inputs,
        label=label,
        label_type=str(table.schema.field(label).type) if label else None,
        classes=data.classes,
        options=opts,
        metrics=result_metrics,
        training_info=info,
        feature_info=pre.info(),
        row_count=used if state is None else state.rows,  # (incremental: every row so far)
        data_hash=seen.digest,
        centroids=centroids,
        state=state,
        booster=model_type.kept(estimator) if model_type.kept is not None else None,
    )


def unique_names(names: Sequence[str]) -> None:
    """Columns are found by name: two of one name (``SELECT f1, f1``) would be one feature
    read twice, or neither (42701, as PostgreSQL for a duplicated column)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise errors.DuplicateColumn(
                f'column "{name}" appears more than once in the training query',
                hint="give each column a name of its own (AS)",
            )
        seen.add(name)


def _usable_numbers(data: _Data, label: str | None) -> None:
    """Numeric columns a model can learn from: no Infinity (NaN is NULL, which is imputed),
    and a mean and spread that a DOUBLE holds (values beyond about 1e154 overflow the squares
    that standardization and least squares compute). Checked before fitting, so that
    unusable data is a 22000 naming its column, not an estimator's exception."""
    columns = [(name, values) for name, values in data.raw.items() if values.dtype.kind == "f"]
    if label is not None and data.y is not None and data.y.dtype.kind == "f":
        columns.append((label, data.y))
    for name, values in columns:
        if np.isinf(values).any():
            raise errors.UnusableTrainingData(
                f'column "{name}" contains Infinity',
                hint="filter or replace the infinite values (NULL is imputed)",
            )
        with np.errstate(over="ignore", invalid="ignore"):
            present = values[~np.isnan(values)]
            spread = float(np.std(present)) if len(present) else 0.0
            mean = float(np.mean(present)) if len(present) else 0.0
        if not (np.isfinite(spread) and np.isfinite(mean)):
            raise errors.UnusableTrainingData(
                f'column "{name}" has values too large to train on (their mean or spread'
                " overflows a DOUBLE)",
                hint="rescale the column",
            )


def _summary(values: dict[str, Any]) -> str:
    shown = [f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, float)][:3]
    return ", ".join(shown)


# -- columns -------------------------------------------------------------------------------------


def _label_column(
    model_type: models.ModelType, opts: dict[str, Any], table: pa.Table
) -> str | None:
    if not model_type.supervised:
        return None
    given = opts.get("input_label_cols") or ["label"]
    if len(given) != 1:
        raise errors.InvalidParameterValue("INPUT_LABEL_COLS takes exactly one column")
    name = _find_column(table, given[0])
    if name is None:
        raise errors.UndefinedColumn(
            f'label column "{given[0]}" is not in the training query',
            hint="name it in OPTIONS(input_label_cols = ['...'])",
        )
    return name


def _find_column(table: pa.Table, name: str) -> str | None:
    """Exact match first, then case-insensitive (SQL folds unquoted names)."""
    if name in table.column_names:
        return name
    matches = [c for c in table.column_names if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _excluded(opts: dict[str, Any], table: pa.Table, label: str | None) -> set[str]:
    skip = {label} if label else set()
    for option in ("data_split_col", "kmeans_init_col", "instance_weight_col", "watermark_col"):
        if opts.get(option):
            found = _find_column(table, opts[option])
            if found is None:
                raise errors.UndefinedColumn(
                    f'{option.upper()} column "{opts[option]}" is not in the training query'
                )
            skip.add(found)
    return skip


def _inputs(
    model_type: models.ModelType,
    opts: dict[str, Any],
    table: pa.Table,
    label: str | None,
    transform: Sequence[TransformItem] | None,
) -> list[InputColumn]:
    skip = _excluded(opts, table, label)
    if transform:
        used = _transform_inputs(transform, label, table)
        names = [c for c in table.column_names if c in used and c not in skip]
    else:
        names = [c for c in table.column_names if c not in skip]
    if not names:
        raise errors.UnusableTrainingData("the training query has no feature columns")
    if transform:  # (an ARRAY<STRING> is read by ML.NGRAMS, through its indicators)
        ngram_steps.check_uses(transform, table)
        names = [n for n in names if not multihot.is_string_list(table.schema.field(n).type)]
    inputs = [_input(table, n, expand=not transform) for n in names]
    columns = [c for group in inputs for c in group]
    if transform:
        columns += ngram_steps.inputs(transform, table)
    unique_names([c.name for c in columns])
    return columns


def _input(table: pa.Table, name: str, expand: bool) -> list[InputColumn]:
    """A training column as the model's input columns: one, or a STRUCT's fields and an ARRAY's
    elements (sqlml.ml.nested; not under TRANSFORM, which names the columns it reads)."""
    arrow_type = table.schema.field(name).type
    if expand and nested.is_nested(arrow_type):
        return nested.expand(name, table.column(name))
    return [InputColumn(name, features.column_kind(name, arrow_type))]


def _transform_inputs(
    transform: Sequence[TransformItem], label: str | None, table: pa.Table
) -> set[str]:
    used: set[str] = set()
    for item in transform:
        if label is not None and item.alias == label:
            continue
        expressions = [item.expression, *(expr for _, expr in item.inputs)]
        for name in set().union(*(columns_of(e) for e in expressions)):
            if name not in table.column_names:
                raise errors.UndefinedColumn(
                    f'column "{name}" used in TRANSFORM is not in the training query'
                )
            used.add(name)
    return used


def feature_transform(
    transform: Sequence[TransformItem] | None, label: str | None
) -> list[TransformItem] | None:
    """The TRANSFORM items that make features (the label's own item passes it through)."""
    if not transform:
        return None
    items = []
    for item in transform:
        if label is not None and item.alias == label:
            if not (isinstance(item.expression, Col) and item.function == "column"):
                raise errors.FeatureNotSupported("the label can only be passed through TRANSFORM")
            continue
        items.append(item)
    return items


# -- rows ----------------------------------------------------------------------------------------


def _prepare(
    model_type: models.ModelType,
    opts: dict[str, Any],
    table: pa.Table,
    label: str | None,
    inputs: list[InputColumn],
    known: list[Any] | None = None,
) -> _Data:
    """``known``: a classifier's classes from an earlier training (RETRAIN) rather than
    from these rows."""
    began = time.perf_counter()
    if label is not None:
        keep = pc.is_valid(table.column(label))
        if not pc.any(keep).as_py():
            raise errors.UnusableTrainingData(f'label column "{label}" has only NULL values')
        if not pc.all(keep).as_py():
            table = table.filter(keep)
    raw = {c.name: features.to_numpy(nested.values(table, c), c.kind) for c in inputs}
    y, classes = _labels(model_type, table, label, known)
    mask = _split(model_type, opts, table)
    if mask is not None and mask.all():
        raise errors.UnusableTrainingData("the data split leaves no rows to train on")
    if mask is not None and not mask.any():
        mask = None  # nothing to evaluate on: evaluation uses the training rows
    data = _Data(
        raw, y, classes, mask, init_mask=_init_mask(opts, table), weights=_weights(opts, table)
    )
    data.timings["prepare_seconds"] = time.perf_counter() - began
    return data


def _split(model_type: models.ModelType, opts: dict[str, Any], table: pa.Table) -> Array | None:
    """The evaluation rows' mask over rows that have a label (None: every row trains)."""
    if not model_type.supervised:
        return None
    column = (
        table.column(_find_column(table, opts["data_split_col"]) or "")
        if opts.get("data_split_col")
        else None
    )
    return split.eval_mask(
        opts["data_split_method"], opts["data_split_eval_fraction"], column, table.num_rows
    )


def evaluation_rows(options: Mapping[str, Any], table: pa.Table) -> pa.Table:
    """The rows a training on ``table`` evaluates on (its stored metrics' rows): the evaluation
    split of the rows that have a label, or all of them when there is no split. A gated deploy
    (sqlml/lifecycle.py) scores the serving version on exactly these rows."""
    from sqlml.ml import automl, tuning

    if automl.requested(options):  # (their metrics are on their test rows)
        return automl.evaluation_rows(options, table)
    if tuning.requested(options):
        return tuning.evaluation_rows(options, table)
    model_type = models.get(options.get("model_type"))
    opts = model_type.resolve_options(incremental.defaults(options))
    label = _label_column(model_type, opts, table)
    if label is not None:
        table = table.filter(pc.is_valid(table.column(label)))
    mask = _split(model_type, opts, table)
    if mask is None or not mask.any() or mask.all():
        return table
    return table.filter(pa.array(mask))


def _init_mask(opts: dict[str, Any], table: pa.Table) -> Array | None:
    if opts.get("kmeans_init_method") != "CUSTOM":
        return None
    name = _find_column(table, opts.get("kmeans_init_col") or "")
    if name is None:
        raise errors.InvalidParameterValue("KMEANS_INIT_METHOD = 'CUSTOM' needs KMEANS_INIT_COL")
    column = table.column(name)
    if not pa.types.is_boolean(column.type):
        raise errors.DatatypeMismatch("KMEANS_INIT_COL must be a BOOL column")
    mask = np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)
    if mask.sum() < 2:
        raise errors.UnusableTrainingData("KMEANS_INIT_COL marks fewer than 2 rows")
    return mask


def _weights(opts: dict[str, Any], table: pa.Table) -> Array | None:
    """INSTANCE_WEIGHT_COL's values: numbers, none NULL or negative."""
    if not opts.get("instance_weight_col"):
        return None
    name = _find_column(table, opts["instance_weight_col"]) or ""
    column = table.column(name)
    if features.kind_of(column.type) != "numeric":
        raise errors.DatatypeMismatch(
            f'INSTANCE_WEIGHT_COL "{name}" must be a numeric column, not {column.type}'
        )
    weights = features.to_numpy(column, "numeric")
    if np.isnan(weights).any() or (weights < 0).any():
        raise errors.UnusableTrainingData(
            f'INSTANCE_WEIGHT_COL "{name}" has NULL, NaN or negative values',
            hint="weights must be numbers >= 0",
        )
    return weights


def _labels(
    model_type: models.ModelType,
    table: pa.Table,
    label: str | None,
    known: list[Any] | None = None,
) -> tuple[Array | None, list[Any] | None]:
    if label is None:
        return None, None
    column = table.column(label)
    if kinds.kind(model_type.kind).numeric_label:
        if features.column_kind(label, column.type) != "numeric":
            raise errors.DatatypeMismatch(
                f'label column "{label}" must be numeric for {model_type.name}, not {column.type}'
            )
        return features.to_numpy(column, "numeric"), None
    if known is not None:
        return _known_labels(column, label, known), known
    classes = pc.sort_indices(pc.unique(column))  # hash-based: faster than np.unique's sort
    values = pc.take(pc.unique(column), classes)
    if len(values) > MAX_LABELS:
        raise errors.InvalidParameterValue(
            f'label column "{label}" has {len(values)} distinct values: {model_type.name} takes'
            f" at most {MAX_LABELS} (as BigQuery ML)",
            hint="for a continuous label use model_type = 'linear_reg'",
        )
    if len(values) < 2:
        raise errors.UnusableTrainingData(
            f'label column "{label}" has only one class ({values[0].as_py()!r}):'
            " a classifier needs two"
        )
    y = pc.index_in(column, value_set=values).to_numpy(zero_copy_only=False)
    return np.asarray(y, dtype=np.int64), values.to_pylist()


def _known_labels(column: pa.ChunkedArray, label: str, known: list[Any]) -> Array:
    """The class indexes of ``known`` classes (22000 for a value that is none of them)."""
    try:
        values = pa.array(known, type=column.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise errors.DatatypeMismatch(
            f'label column "{label}" is of type {column.type}, which its classes are not'
        ) from e
    y = pc.index_in(column, value_set=values)
    if y.null_count:
        unseen = pc.unique(pc.filter(column, pc.is_null(y))).to_pylist()
        raise errors.UnusableTrainingData(
            f'label column "{label}" has values the first training did not have'
            f" ({', '.join(map(repr, unseen[:5]))}): RETRAIN cannot add a class",
            hint="CREATE OR REPLACE MODEL trains on all rows with every class",
        )
    return np.asarray(y.to_numpy(zero_copy_only=False), dtype=np.int64)


def _rows(data: _Data, training: bool) -> Array | slice:
    """Row selector: a mask, or ``slice(None)`` (all rows, and no copy) without a split."""
    if data.eval_mask is None:
        return slice(None)
    if training:
        return ~data.eval_mask
    return np.flatnonzero(data.eval_mask)  # few rows: indexes take them faster than a mask


class _Clock:
    """Phase timings into ``timings``, reported in ML.TRAINING_INFO-style training info."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self.last
        self.last = now


def _take(raw: dict[str, Array], rows: Array | slice) -> dict[str, Array]:
    """Rows of every raw column; all rows (``slice(None)``) without a copy."""
    if isinstance(rows, slice):
        return raw
    return {name: column[rows] for name, column in raw.items()}


def _used_rows(data: _Data, table: pa.Table) -> int:
    """The rows training used: without those whose label is NULL (dropped by _prepare)."""
    return len(data.y) if data.y is not None else table.num_rows


def _count(rows: Array | slice, n: int) -> int:
    return n if isinstance(rows, slice) else int(rows.sum())


def _y(data: _Data, rows: Array | slice) -> Array | None:
    return None if data.y is None else data.y[rows]


# -- fitting and conversion ----------------------------------------------------------------------


def _fit_estimator(
    estimator: Any, x: Array, y: Array | None, opts: dict[str, Any], data: _Data
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if y is not None and opts.get("class_weights"):
        kwargs["sample_weight"] = _sample_weights(opts["class_weights"], data.classes or [], y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x, y, **kwargs) if y is not None else estimator.fit(x)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    iterations = getattr(estimator, "n_iter_", None)
    if isinstance(iterations, np.ndarray):
        iterations = int(iterations.max())
    return {"iterations": iterations, "converged": converged}


def _sample_weights(pairs: list[list[Any]], classes: list[Any], y: Array) -> Array:
    return np.asarray(models.class_weight_vector(pairs, classes)[y])


def _to_onnx(model_type: models.ModelType, estimator: Any, pre: Preprocessor) -> bytes:
    builder = GraphBuilder()
    kind = kinds.kind(model_type.kind)
    if model_type.to_onnx is not None:
        feature_tensor = pre.onnx(builder)
        converted, names = model_type.to_onnx(estimator)
        model = splice(builder, feature_tensor, converted, names)
    elif estimator_onnx.handles(estimator):
        fold = estimator_onnx.folds_scaling(estimator)
        feature_tensor = pre.onnx(builder, fold=fold)
        scale, offset = pre.affine() if fold else (np.ones(pre.width()), np.zeros(pre.width()))
        outputs = estimator_onnx.build(builder, feature_tensor, estimator, scale, offset)
        model = finish(builder, outputs, kind.output_types(estimator))
    else:
        feature_tensor = pre.onnx(builder)
        converted = _skl2onnx(model_type, estimator, pre)
        model = splice(builder, feature_tensor, converted, dict(kind.onnx_outputs))
    if kind.returns_features:
        # k-means evaluation needs the rows in the space its distances are measured in.
        model.graph.node.append(onnx.helper.make_node("Identity", [feature_tensor], ["features"]))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(
                "features", onnx.TensorProto.DOUBLE, [None, pre.width()]
            )
        )
    # the kind that reads the graph travels in it: two kinds never store one graph (one
    # sha256, which the runtime scorers and the compiled SQL are cached by) read differently
    onnx.helper.set_model_props(model, {"sqlml.kind": kind.name})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _skl2onnx(model_type: models.ModelType, estimator: Any, pre: Preprocessor) -> Any:
    width = int(getattr(estimator, "n_features_in_", pre.width()))
    options = kinds.kind(model_type.kind).skl2onnx_options
    return to_onnx(
        estimator,
        initial_types=[("features", DoubleTensorType([None, width]))],
        options=options,
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )


def _parity_check(
    graph: bytes,
    inputs: list[InputColumn],
    raw: dict[str, Array],
    estimator: Any,
    x: Array,
    kind: kinds.Kind,
) -> dict[str, Array]:
    """The graph's outputs on the rows ``raw`` (preprocessed: ``x``), after checking the first
    PARITY_ROWS of them against the estimator's own predictions (what the kind expects)."""
    outputs = Scorer(graph, inputs).run(raw)
    head = {k: v[:PARITY_ROWS] for k, v in outputs.items()}
    expected, labels = kind.expected(estimator, x[:PARITY_ROWS])
    same_label = labels is None or _same_labels(head["label"], labels, expected)
    worst = max(float(np.max(np.abs(head[k] - v), initial=0.0)) for k, v in expected.items())
    scale = max(float(np.max(np.abs(v), initial=1.0)) for v in expected.values())
    # an estimator that computes in float32 (XGBoost sums its leaves so) says how far off it is
    tolerance = max(PARITY_TOLERANCE, float(getattr(estimator, "parity_tolerance", 0.0)))
    if not same_label or worst > tolerance * max(scale, 1.0):
        raise errors.InternalError(
            "the ONNX graph disagrees with scikit-learn; the model was not stored",
            detail=f"largest difference {worst:.3g}; labels equal: {same_label}",
        )
    return outputs


EVALUATION_KEPT = 20_000  # binary classifiers keep this many evaluation rows' probabilities


def evaluation_kept(outputs: dict[str, Array], y: Array | None) -> dict[str, Any] | None:
    """A binary classifier's evaluation rows as (label index, probability of the positive class):
    ML.EVALUATE(MODEL m, STRUCT(t AS threshold)) without rows recomputes the metrics at another
    cut from them, as BigQuery does. Kept up to EVALUATION_KEPT rows (AUTO_SPLIT evaluates on at
    most 10,000); beyond that a threshold needs the rows given again."""
    probabilities = outputs.get("probabilities")
    if probabilities is None or y is None or probabilities.shape[1] != 2:
        return None
    if len(y) > EVALUATION_KEPT:
        return None
    return {"labels": [int(v) for v in y], "positive": [float(v) for v in probabilities[:, 1]]}


def _same_labels(got: Array, labels: Array, expected: dict[str, Array]) -> bool:
    """Labels equal, but where the estimator's two most likely classes are tied to within
    PARITY_TOLERANCE: there the graph's float64 and a library's float32 (XGBoost) may break the
    tie differently, and either class is the estimator's answer."""
    differ = got != labels
    if not differ.any():
        return True
    probabilities = expected.get("probabilities")
    if probabilities is None:
        return False
    top = np.sort(probabilities[differ], axis=1)[:, -2:]
    return bool(np.all(top[:, 1] - top[:, 0] <= PARITY_TOLERANCE))
