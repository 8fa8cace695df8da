"""A CREATE MODEL's rows, read within its memory budget (``max_training_memory_mb``; issue 15).

The query is read as record batches (engines.base.Streams). If every row arrives before the
rows, times what training makes of them (streamed.TRAINING_COPIES), pass the budget, they are
the training table, as always. If not:

- a model that can learn from a stream (ml/streamed.py: linear_reg, logistic_reg) goes on
  reading the same stream into its sums, and reads the query again for each later pass;
- any other model trains on a sample of as many rows as fit in the budget, taken as
  max_training_rows takes one (Session._sampled: the same rows on every run), and a NOTICE
  and ML.TRAINING_INFO's ``sampled_from`` say so.

An engine that cannot stream (a client's PostgreSQL connection: trainings run in the server,
which streams) reads the rows at once.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sqlml import errors
from sqlml.engines.base import Streams
from sqlml.ml import models, streamed
from sqlml.ml.spec import TransformItem

if TYPE_CHECKING:
    from sqlml.engine import Session


@dataclass
class Rows:
    """The training table (a streamed training's evaluation sample), and what was learned from
    the stream (None: the table is every row, or a sample of them)."""

    table: pa.Table
    learned: streamed.Streamed | None = None
    sampled_from: int | None = None


def read(
    session: Session,
    sql: str,
    opts: dict[str, Any],
    transform: Sequence[TransformItem] | None,
    checkpoint: Callable[[], None],
) -> Rows:
    """The rows of ``sql`` as training takes them (see the module's docstring); ``opts``: the
    resolved options."""
    engine = session.engine
    if not isinstance(engine, Streams):
        return Rows(engine.query_arrow(sql))
    memory = streamed.budget(opts)
    rows = streamed.batch_rows(engine.schema_of(sql), memory)
    held, size = [], 0
    keep = streamed.passes_follow(opts)  # (if it comes to streaming)
    reader = engine.read_batches(sql, rows, memory, keep=keep)
    try:
        for batch in reader:
            held.append(batch)
            size += batch.nbytes
            if size * streamed.TRAINING_COPIES > memory:
                return _past_budget(session, sql, opts, transform, checkpoint, held, reader, rows)
    finally:
        end_read(engine, reader)
    if not held:  # (no rows: their columns, from the engine)
        return Rows(engine.query_arrow(sql))
    return Rows(pa.Table.from_batches(held))


def _past_budget(
    session: Session,
    sql: str,
    opts: dict[str, Any],
    transform: Sequence[TransformItem] | None,
    checkpoint: Callable[[], None],
    held: list[pa.RecordBatch],
    rest: Iterator[pa.RecordBatch],
    rows: int,
) -> Rows:
    from sqlml.ml import train  # lazy: scikit-learn, only to train

    engine = session.engine
    assert isinstance(engine, Streams)
    memory = streamed.budget(opts)
    model_type = models.get(opts.get("model_type"))
    head = pa.Table.from_batches(held)
    label = train._label_column(model_type, opts, head)
    why = "TRANSFORM needs its rows at once" if transform else None
    inputs = train._inputs(model_type, opts, head, label, None)
    why = why or streamed.streamable(model_type.name, opts, inputs)
    mib = memory / (1 << 20)
    if why is None and label is not None:
        session.say(
            f"the training rows take more than max_training_memory_mb ({mib:g} MiB) holds:"
            f" {model_type.name} learns from them as they are read, a batch at a time"
        )

        def again() -> Iterator[pa.RecordBatch]:
            return engine.read_batches(sql, rows, memory, again=True)

        first = itertools.chain(held, rest)
        try:
            learned = streamed.learn(
                lambda: first, again, model_type, opts, label, inputs, session.say, checkpoint
            )
        finally:
            end_read(engine, rest)
        return Rows(learned.sample, learned)
    if opts.get("incremental"):  # (a sample's state would be kept as every row's)
        raise errors.FeatureNotSupported(
            f"incremental = TRUE learns from every row: {model_type.name} cannot learn from"
            f" more rows than max_training_memory_mb ({mib:g} MiB) holds"
            + (f" ({why})" if why else ""),
            hint="a larger max_training_memory_mb, or incremental = FALSE",
        )
    per_row = max(1, head.nbytes // max(1, head.num_rows))
    cap = max(1, memory // streamed.TRAINING_COPIES // per_row)
    session.say(
        f"the training rows take more than max_training_memory_mb ({mib:g} MiB) holds, and"
        f" {why}: training on a sample of at most {cap} rows"
    )
    held.clear()
    _close(rest)  # (before the engine runs the next query)
    sampled, total = session.sampled(sql, cap)
    return Rows(engine.query_arrow(sampled), sampled_from=total)


def _close(reader: Iterator[pa.RecordBatch]) -> None:
    """Ends a read (a generator's: its engine is free again); once more changes nothing."""
    close = getattr(reader, "close", None)
    if close is not None:
        close()


def end_read(engine: Streams, reader: Iterator[pa.RecordBatch]) -> None:
    """Ends a read and drops what the engine kept for its passes (``release_reads``); after a
    failed read, that read's error is the one raised."""
    _close(reader)
    with contextlib.suppress(errors.Error):
        engine.release_reads()
