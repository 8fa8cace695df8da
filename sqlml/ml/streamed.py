"""Training on more rows than fit in memory (``max_training_memory_mb``; issue 15, point 3).

Theory of operation
-------------------
A training reads its query as a stream of Arrow record batches (engines.base.Streams). While
the rows, times what training makes of them (TRAINING_COPIES), fit in the memory budget, they
are collected into one table and training goes on as always. Past the budget, a learner that
has sufficient statistics learns from the stream itself, one batch at a time, and never holds
more than a batch, its statistics and an evaluation sample:

- **linear_reg, exact.** The batches' Gram matrix (ml/incremental.py's State: the counts, means
  and spreads of the preprocessing, the normal equations) sums over the stream; solving it
  gives the model that training on all the rows in memory gives (tests/test_streamed.py: 1e-9).
- **logistic_reg, exact up to convergence.** The first pass gives the preprocessing (the same
  State); a start is fitted on the evaluation sample; then Newton's method runs on the log loss
  of every row, each step one more pass over the query (the loss, its gradient and Hessian are
  sums over the rows), until the gradient vanishes (incremental.NEWTON_TOLERANCE). In-memory
  training stops at scikit-learn's tolerance, this at the minimum: they agree to that tolerance.
  A pass that sees another number of rows than the first (the table changed under the read)
  stops the training with 40001.

What is evaluated: ``data_split_method = 'AUTO_SPLIT'`` (the default) holds out, as BigQuery ML
does above 50,000 rows, 10,000 rows for evaluation: here the rows with the 10,000 smallest row
hashes (ml/fingerprint.py), the same rows whatever order the engine returns them in; they are
taken out of the training sums (subtracted: the sums are additive). With 'NO_SPLIT' every row
trains and the metrics are computed on those 10,000 rows. Other splits cannot be streamed
(0A000). The data statistics kept for ML.VALIDATE_DATA_SKEW are those of the sample.

Learners that need all rows at once (trees, DNNs, k-means, ...), and options the sums cannot
express (l1, class weights, TRANSFORM, ...), train instead on a sample of as many rows as fit
in the budget (the engine's Session says so in a NOTICE and ML.TRAINING_INFO's sampled_from).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.ml import features, fingerprint, incremental, models, nested
from sqlml.ml.checkpoints import Checkpoint, never
from sqlml.ml.features import InputColumn

Array = np.ndarray[Any, Any]
Source = Callable[[], Iterator[pa.RecordBatch]]  # each call reads the query again

MODEL_TYPES = ("linear_reg", "logistic_reg")
SPLITS = ("AUTO_SPLIT", "NO_SPLIT")
EVALUATION_ROWS = 10_000  # BigQuery ML's AUTO_SPLIT above 50,000 rows (ml/split.py)
BATCH_ROWS = 65_536  # rows per record batch read
# What training holds at its peak per byte of Arrow rows (the rows, their float64 matrix, the
# estimator's copies): measured 4.1-6.6 (benchmarks/RESULTS.md, "Bounded memory").
TRAINING_COPIES = 6
DEFAULT_SHARE = 4  # the default budget: a quarter of the machine's memory


def default_budget() -> int:
    """max_training_memory_mb's default, in bytes."""
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(total // DEFAULT_SHARE)


def budget(options: Mapping[str, Any]) -> int:
    """The memory budget of a training, in bytes."""
    given = options.get("max_training_memory_mb")
    return default_budget() if given is None else int(float(given) * (1 << 20))


def batch_rows(schema: pa.Schema, memory: int) -> int:
    """Rows per record batch: a batch's Arrow bytes at most a (4 x TRAINING_COPIES)th of the
    budget (what a batch becomes in the learner, ~8 times its size: its float64 columns, the
    rows of the sums, and on PostgreSQL the chunk's bytea and its copy; the engine's buffers
    take another quarter of the budget), BATCH_ROWS at most."""
    width = sum(8 if pa.types.is_primitive(f.type) else 32 for f in schema) or 8
    return int(max(1024, min(BATCH_ROWS, memory // (4 * TRAINING_COPIES * width))))


def passes_follow(options: Mapping[str, Any]) -> bool:
    """Whether a streamed training of these options reads its rows more than once
    (logistic_reg's Newton steps)."""
    return str(options.get("model_type", "")).lower() == "logistic_reg"


def streamable(model_type: str, opts: dict[str, Any], inputs: list[InputColumn]) -> str | None:
    """None if the training can learn from the stream; else why not (a NOTICE says it)."""
    if model_type not in MODEL_TYPES:
        return f"{model_type} needs all its rows at once"
    if opts.get("data_split_method", "AUTO_SPLIT") not in SPLITS:
        return "only data_split_method AUTO_SPLIT and NO_SPLIT can be streamed"
    if opts.get("warm_start"):
        return "warm_start starts from rows in memory"
    checked = {**opts, "data_split_method": "NO_SPLIT", "max_training_rows": None}
    try:
        incremental.check(model_type, checked, inputs)
    except errors.FeatureNotSupported as e:  # ("incremental = TRUE takes no ...": the same sums)
        return str(e).removeprefix("incremental = TRUE ")
    return None


@dataclass
class Streamed:
    """What a streamed training learned: train.train finishes it (ONNX, checks, metrics)."""

    state: incremental.State  # every training row's statistics
    sample: pa.Table  # the evaluation rows
    held_out: bool  # the sample is not in the training sums (AUTO_SPLIT)
    seen: fingerprint.Fingerprint  # of every row read
    rows: int  # read
    classes: list[Any] | None = None
    estimator: Any = None  # logistic_reg's (linear_reg's is solved from state)
    curve: incremental.Curve | None = None  # logistic_reg's, with incremental = TRUE
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def training_rows(self) -> int:
        return self.state.rows


def learn(
    first: Source,
    source: Source,
    model_type: models.ModelType,
    opts: dict[str, Any],
    label: str,
    inputs: list[InputColumn],
    say: Callable[[str], None],
    checkpoint: Checkpoint = never,
) -> Streamed:
    """Pass one over ``first`` (statistics, sample, fingerprint), then logistic_reg's Newton
    passes, each over a new ``source``. BLAS runs on one thread meanwhile: the engine's
    threads produce the next batches at the same time, and OpenBLAS's threads, spinning
    against them on two cores, made the Gram matrix of a batch 12x slower (0.21 s against
    0.017 s for 65,536 rows x 42 columns)."""
    from threadpoolctl import threadpool_limits  # lazy: with scikit-learn

    with threadpool_limits(limits=1, user_api="blas"):
        return _learn(first, source, model_type, opts, label, inputs, say, checkpoint)


def _learn(
    first: Source,
    source: Source,
    model_type: models.ModelType,
    opts: dict[str, Any],
    label: str,
    inputs: list[InputColumn],
    say: Callable[[str], None],
    checkpoint: Checkpoint,
) -> Streamed:
    began = time.perf_counter()
    held_out = opts.get("data_split_method", "AUTO_SPLIT") == "AUTO_SPLIT"
    classifier = model_type.name == "logistic_reg"
    state: incremental.State | None = None
    seen: fingerprint.Fingerprint | None = None
    kept: list[pa.Table] = []  # the sample so far, and its rows' hashes
    kept_hashes: list[Array] = []
    labels: list[pa.Array] = []
    rows = 0
    for batch in first():
        if not batch.num_rows:
            continue
        hashes = fingerprint.rows(batch)
        part = fingerprint.of_rows(batch.schema, hashes)
        seen = part if seen is None else seen + part
        table = pa.Table.from_batches([batch])
        rows += batch.num_rows
        kept.append(table)
        kept_hashes.append(hashes)
        if sum(len(h) for h in kept_hashes) > 4 * EVALUATION_ROWS:
            kept, kept_hashes = _smallest(kept, kept_hashes)
        table = _labelled(table, label)
        raw, y = _raw(table, label, inputs, classifier)
        if classifier:
            labels.append(pc.unique(table.column(label)))
        state = incremental.accumulate(state, inputs, raw, y, checkpoint)
        checkpoint()
    if state is None or seen is None:
        raise errors.UnusableTrainingData("the training query returned no rows")
    state.runs = 1  # (one training: accumulate counted the batches)
    labelled = state.rows
    kept, kept_hashes = _smallest(kept, kept_hashes)
    sample = _labelled(pa.concat_tables(kept), label)
    if held_out:
        raw, y = _raw(sample, label, inputs, classifier)
        state = _without(state, inputs, raw, y)
    result = Streamed(state, sample, held_out, seen, rows)
    result.info = {
        "streamed": True,
        "passes": 1,
        "rows_read": rows,
    }
    if classifier:
        result.classes = _classes(labels, label)
        _newton(result, source, opts, label, inputs, labelled, say, checkpoint)
    result.info["stream_seconds"] = time.perf_counter() - began  # (every pass)
    return result


def _smallest(kept: list[pa.Table], hashes: list[Array]) -> tuple[list[pa.Table], list[Array]]:
    """The EVALUATION_ROWS rows of smallest hash among those kept."""
    table, h = pa.concat_tables(kept), np.concatenate(hashes)
    if len(h) > EVALUATION_ROWS:
        order = np.argpartition(h, EVALUATION_ROWS - 1)[:EVALUATION_ROWS]
        order.sort()
        table, h = table.take(pa.array(order)), h[order]
    return [table], [h]


def _labelled(table: pa.Table, label: str) -> pa.Table:
    """The rows that have a label (train.train drops the others too)."""
    keep = pc.is_valid(table.column(label))
    return table if pc.all(keep).as_py() is not False else table.filter(keep)


def _raw(
    table: pa.Table, label: str, inputs: list[InputColumn], classifier: bool
) -> tuple[dict[str, Array], Array]:
    """The features as training reads them, and the label (zeros for a classifier: its
    statistics need none)."""
    raw = {c.name: features.to_numpy(nested.values(table, c), c.kind) for c in inputs}
    if classifier:
        return raw, np.zeros(table.num_rows)
    column = table.column(label)
    if features.column_kind(label, column.type) != "numeric":
        raise errors.DatatypeMismatch(f'label column "{label}" must be numeric, not {column.type}')
    return raw, features.to_numpy(column, "numeric")


def _without(
    state: incremental.State, inputs: list[InputColumn], raw: dict[str, Array], y: Array
) -> incremental.State:
    """``state`` without the rows ``raw`` (which it holds): their Gram matrix subtracted, and the
    categories only they had dropped."""
    empty = replace(state, gram=np.zeros_like(state.gram))
    theirs = incremental.accumulate(empty, inputs, raw, y)  # (same layout: categories all known)
    gram = state.gram - theirs.gram
    first = 2 + 2 * len(state.numeric)
    keep = list(range(first)) + [
        first + k for k in range(len(state.slots)) if round(float(gram[0, first + k])) > 0
    ]
    slots = [state.slots[k - first] for k in keep[first:]]
    return incremental.State(
        state.numeric,
        state.categorical,
        slots,
        dict(state.shift),
        gram[np.ix_(keep, keep)],
        dict(state.bounds),
        state.runs,
    )


def _classes(labels: list[pa.Array], label: str) -> list[Any]:
    values = pc.unique(pa.chunked_array(labels)) if labels else pa.array([])
    values = values.take(pc.sort_indices(values))
    if len(values) < 2:
        shown = values[0].as_py() if len(values) else None
        raise errors.UnusableTrainingData(
            f'label column "{label}" has only one class ({shown!r}): a classifier needs two'
        )
    return list(values.to_pylist())


def _newton(
    result: Streamed,
    source: Source,
    opts: dict[str, Any],
    label: str,
    inputs: list[InputColumn],
    labelled: int,
    say: Callable[[str], None],
    checkpoint: Checkpoint,
) -> None:
    """logistic_reg: Newton's method on every training row's loss, a pass per step
    (``labelled``: the rows with a label the first pass read)."""
    from sklearn.linear_model import LogisticRegression  # lazy: 3 s to import

    assert result.classes is not None
    classes = result.classes
    _, encoders, stats = incremental.features_of(result.state, inputs)
    pre = features.Preprocessor(list(inputs), auto=[*encoders], stats=stats)
    l2 = float(opts["l2_reg"])
    sample_x = pre.matrix(_raw(result.sample, label, inputs, True)[0])
    sample_y = _codes(result.sample, label, classes)
    start = LogisticRegression(C=1.0 / l2 if l2 > 0 else 1e6, max_iter=200)
    if len(np.unique(sample_y)) == len(classes):
        start.fit(sample_x, sample_y)
        theta = np.hstack([np.atleast_1d(start.intercept_)[:, None], np.atleast_2d(start.coef_)])
    else:  # (a class the sample lacks: start from zero weights)
        theta = np.zeros((1 if len(classes) == 2 else len(classes), 1 + sample_x.shape[1]))
    shape = theta.shape
    incremental._within(theta.size, "a weight per class and feature")
    penalty = incremental._penalty(shape, l2)
    held = (incremental._design(sample_x), sample_y) if result.held_out else None
    passes = 0
    last: tuple[Array, Array] = (np.zeros(0), np.zeros(0))  # (the loss's, at the last point)

    def objective(t: Array) -> tuple[float, Array, Array]:
        nonlocal passes, last
        passes += 1
        loss, grad, hess, read = _sums(source, t.reshape(shape), pre, label, classes, checkpoint)
        if read != labelled:
            raise errors.SerializationFailure(
                f"the training rows changed while they were read: {read} rows with a label,"
                f" {labelled} in the first pass",
                hint="train again, or from rows that do not change meanwhile (a snapshot)",
            )
        if held is not None:  # (the evaluation rows are not training rows)
            out = incremental._loss_parts(t.reshape(shape), *held)
            loss, grad, hess = loss - out[0], grad - out[1], hess - out[2]
        last = (grad, hess)
        value = float(loss + 0.5 * (penalty * t) @ t)
        return value, grad + penalty * t, hess + np.diag(penalty)

    rows = result.training_rows

    def each(value: float) -> None:
        say(f"Newton step: loss {value / max(rows, 1):.6g} per row")

    t, steps = incremental.newton(objective, theta.reshape(-1).astype(np.float64), rows, each)
    theta = t.reshape(shape)
    result.estimator = incremental._classifier(theta, l2, len(classes))
    if opts.get("incremental"):
        grad, hess = last
        curve = incremental.Curve(list(pre.auto), list(classes), theta, grad, hess, rows)
        result.curve = curve
    result.info.update(passes=1 + passes, newton_steps=steps)


def _codes(table: pa.Table, label: str, classes: list[Any]) -> Array:
    """Each row's class index (40001 for a class the first pass did not see: the rows
    changed between passes)."""
    codes = pc.index_in(table.column(label), value_set=pa.array(classes))
    if codes.null_count:
        raise errors.SerializationFailure(
            "the training rows changed while they were read (a label value the first pass did"
            " not see)",
            hint="train again, or from a snapshot of the rows",
        )
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)


def _sums(
    source: Source,
    theta: Array,
    pre: features.Preprocessor,
    label: str,
    classes: list[Any],
    checkpoint: Checkpoint,
) -> tuple[float, Array, Array, int]:
    """The log loss of every row read (a sum), its gradient and Hessian at ``theta``, and
    how many rows that was."""
    loss, grad, hess = 0.0, np.zeros(theta.size), np.zeros((theta.size, theta.size))
    read = 0
    inputs = pre.inputs
    for batch in source():
        if not batch.num_rows:
            continue
        table = _labelled(pa.Table.from_batches([batch]), label)
        x = pre.matrix(_raw(table, label, inputs, True)[0])
        part = incremental._loss_parts(theta, incremental._design(x), _codes(table, label, classes))
        loss, grad, hess = loss + part[0], grad + part[1], hess + part[2]
        read += table.num_rows
        checkpoint()
    if not math.isfinite(loss):
        raise errors.UnusableTrainingData("the log loss overflowed (features too large?)")
    return loss, grad, hess, read
