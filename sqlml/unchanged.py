"""CREATE OR REPLACE MODEL ... OPTIONS (retrain = 'if_changed'): no training when nothing that
makes the model changed (issue 16: dbt's retrain-if-changed; any scheduler's too).

A model is made of its training query, its TRANSFORM clause, its options, the sqlml version that
trained it and the rows the query returns. With ``retrain = 'if_changed'`` CREATE OR REPLACE
MODEL compares them with those of the model's latest version (the one last trained, whether it
serves or not: a version that a deploy gate kept from serving would only be trained again) and,
when every one is the same, stores nothing and says so in a NOTICE. The rows are compared by
their content fingerprint (ml/fingerprint.py: order-independent, NULL-exact), which the version
stored at training: the check reads the rows once, as a stream within the training's memory
budget, and trains nothing; it costs that read, a fraction of a training. The query and the
TRANSFORM clause compare as written (a dbt model's compiled SQL is the same text each run).

'always' (the default) trains as CREATE OR REPLACE MODEL always has. The deploy options
(lifecycle.py) are not part of the model: changing only them trains nothing new either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlml import bounded, errors, lifecycle, validation
from sqlml.engines.base import Streams
from sqlml.grammar.statements import CreateModel
from sqlml.ml import fingerprint, streamed, tuning
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:
    from sqlml.engine import Session

OPTION = "retrain"
ALWAYS, IF_CHANGED, INCREMENTAL = "ALWAYS", "IF_CHANGED", "INCREMENTAL"


def policy(options: Mapping[str, OptionValue]) -> tuple[str, dict[str, OptionValue]]:
    """The retrain option (22023 for a bad value, or 'incremental' without incremental =
    TRUE), and the other options."""
    mode = options.get(OPTION, "always")
    if not isinstance(mode, str) or mode.upper() not in (ALWAYS, IF_CHANGED, INCREMENTAL):
        raise errors.InvalidParameterValue(
            f"invalid value {mode!r} for option RETRAIN: expected 'always', 'if_changed' or"
            " 'incremental'"
        )
    if mode.upper() == INCREMENTAL and options.get("incremental") is not True:
        raise errors.InvalidParameterValue(
            "retrain = 'incremental' extends an incremental model: it needs incremental = TRUE"
            " and a watermark_col"
        )
    return mode.upper(), {k: v for k, v in options.items() if k != OPTION}


def extendable(session: Session, statement: CreateModel, opts: Mapping[str, Any]) -> int | None:
    """retrain = 'incremental': the model's latest version if RETRAIN can extend it with the
    rows past its watermark, trained from what ``statement`` trains from (its query, TRANSFORM,
    options and sqlml version; its rows then differ only by those RETRAIN reads); None: train
    in full."""
    latest = _same_model(session, statement, opts)
    if latest is None:
        return None
    meta = session.store.state_meta(statement.model, latest[0])  # (RETRAIN reads the arrays)
    return latest[0] if meta is not None and meta.get("watermark") else None


def latest_same(
    session: Session, statement: CreateModel, opts: Mapping[str, Any], sql: str
) -> int | None:
    """The model's latest version if it was trained from what ``statement`` would train from
    (``opts``: its resolved options; ``sql``: the query it reads, sampled as it would be);
    None if something differs, or the model has no version."""
    found = _same_model(session, statement, opts)
    if found is None:
        return None
    latest, data_hash = found
    session.say(
        f"{statement.model}: the query, options and sqlml version are those of version {latest};"
        " reading the training rows to compare them (retrain = 'if_changed')"
    )
    return latest if rows_fingerprint(session, sql, opts) == data_hash else None


def _same_model(
    session: Session, statement: CreateModel, opts: Mapping[str, Any]
) -> tuple[int, str] | None:
    """(the latest version, its rows' fingerprint) if that version was trained from the query,
    TRANSFORM, options and sqlml version ``statement`` trains from; None otherwise."""
    import sqlml

    assert statement.query is not None
    versions = session.store.versions(statement.model)
    if not versions:
        return None
    latest = versions[-1]
    stored = session.store.trained_from(statement.model, latest)
    given = dict(opts)
    if validation.OPTION in statement.options:  # (recorded with the version: train_and_store)
        given[validation.OPTION] = statement.options[validation.OPTION]
    # (a version keeps the deploy options it was made with: not the model's, not compared)
    options = {k: v for k, v in json.loads(stored["options"]).items() if k not in lifecycle.OPTIONS}
    written = tuning.written(json.loads(stored["training_info"]))
    if written is not None or tuning.searches(statement.options):
        # (a search's version keeps its best trial's options: its options as written compare)
        _, given_options = validation.split(statement.options)
        _, given_options = lifecycle.deploy_policy(given_options)
        same_options = written == tuning.as_written(given_options)
    else:
        same_options = options == json.loads(json.dumps(given))
    same = (
        stored["query_sql"] == statement.query.sql
        and stored["transform_sql"] == statement.transform_sql
        and same_options
        and json.loads(stored["library_versions"]).get("sqlml") == sqlml.__version__
    )
    return (latest, str(stored["data_hash"])) if same else None


def rows_fingerprint(session: Session, sql: str, opts: Mapping[str, Any]) -> str:
    """The content fingerprint of the rows of ``sql`` (what training stores as data_hash),
    read a batch at a time where the engine streams."""
    engine = session.engine
    if not isinstance(engine, Streams):
        return fingerprint.of(engine.query_arrow(sql)).digest
    memory = streamed.budget(opts)
    reader = engine.read_batches(sql, streamed.batch_rows(engine.schema_of(sql), memory), memory)
    seen: fingerprint.Fingerprint | None = None
    try:
        for batch in reader:
            part = fingerprint.of_rows(batch.schema, fingerprint.rows(batch))
            seen = part if seen is None else seen + part
    finally:
        bounded.end_read(engine, reader)
    if seen is None:  # (no rows: their columns' fingerprint)
        return fingerprint.of(engine.query_arrow(sql)).digest
    return seen.digest
