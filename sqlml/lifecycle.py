"""A model's life after CREATE MODEL: which stored version serves, and who changed it when.

Theory of operation
-------------------
Every successful CREATE MODEL stores a version (sqlml.versions). ``sqlml.models.current_version``
is the one ML.PREDICT and every other ML function serves; ``MODEL m VERSION n`` addresses
another. Each change of the serving version is a row of ``sqlml.deployments`` (ML.DEPLOYMENTS)
written in the same transaction as the change, so a rolled-back deploy leaves no trace and a
committed one is seen by the next statement of every session: kept plans check the serving
version's sha256 before they run (engine.py).

- ``ALTER MODEL m DEPLOY VERSION n [COMMENT '...']`` serves version n.
- ``ALTER MODEL m ROLLBACK [TO VERSION n]`` serves the version of the deployment before the one
  in effect (each audit row names it: ``parent_id``), so rolling back twice goes back two steps;
  55000 when there is none.
- ``DROP MODEL m VERSION n`` removes a version that does not serve (2BP01 while it does).
- CREATE MODEL's ``deploy`` option: 'always' (the default: the new version serves), 'manual'
  (stored, not serving; a model's first version always serves) or 'if_better' (serves when it
  beats the serving version by ``deploy_min_delta`` on ``deploy_metric``, both measured on the
  new version's evaluation rows: the rows its stored metrics were computed on).

One change per model at a time: ``Store.writing`` in this process (DuckDB), the advisory lock of
privileges.lock in the PostgreSQL server; the store methods run in one transaction each.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sqlml import errors, predlog, schedules, traffic, views
from sqlml.engines.base import Result, all_or_nothing
from sqlml.grammar.statements import AlterModel, CreateModel, DropModel, ModelRef
from sqlml.ml import kinds, models
from sqlml.ml.options import closest
from sqlml.ml.spec import OptionValue

if TYPE_CHECKING:
    from sqlml.engine import Session
    from sqlml.ml.train import TrainResult

ALWAYS, MANUAL, IF_BETTER = "ALWAYS", "MANUAL", "IF_BETTER"
OPTIONS = ("deploy", "deploy_metric", "deploy_min_delta")


@dataclass(frozen=True)
class DeployPolicy:
    """CREATE MODEL's deploy options, checked."""

    mode: str = ALWAYS  # ALWAYS | MANUAL | IF_BETTER
    metric: str | None = None  # IF_BETTER's metric (None: the kind's gate_default)
    min_delta: float = 0.0  # IF_BETTER: how much better the new version must be
    given: Mapping[str, OptionValue] = dataclasses.field(default_factory=dict)  # as written


def deploy_policy(
    options: Mapping[str, OptionValue],
) -> tuple[DeployPolicy, dict[str, OptionValue]]:
    """The deploy options (22023 for a bad value), and the other options for the training."""
    given = {k: v for k, v in options.items() if k in OPTIONS}
    rest = {k: v for k, v in options.items() if k not in OPTIONS}
    mode = given.get("deploy", "always")
    if not isinstance(mode, str) or mode.upper() not in (ALWAYS, MANUAL, IF_BETTER):
        raise errors.InvalidParameterValue(
            f"invalid value {mode!r} for option DEPLOY: expected one of always, manual, if_better"
        )
    mode = mode.upper()
    if mode != IF_BETTER and ("deploy_metric" in given or "deploy_min_delta" in given):
        raise errors.InvalidParameterValue(
            "options DEPLOY_METRIC and DEPLOY_MIN_DELTA go with DEPLOY = 'if_better'"
        )
    metric = given.get("deploy_metric")
    delta = given.get("deploy_min_delta", 0)
    if metric is not None and not isinstance(metric, str):
        raise errors.InvalidParameterValue("option DEPLOY_METRIC must be a metric's name")
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not delta >= 0:
        raise errors.InvalidParameterValue(
            f"invalid value {delta!r} for option DEPLOY_MIN_DELTA: expected a number >= 0"
        )
    policy = DeployPolicy(mode, metric.lower() if metric else None, float(delta), given)
    if mode == IF_BETTER:
        _metric(policy, models.get(rest.get("model_type")).kind)  # 22023 before training
    return policy, rest


def _metric(policy: DeployPolicy, kind: str) -> tuple[str, bool]:
    """(the gate's metric, whether higher is better) for a model kind (kinds.Kind's
    gate_metrics and gate_default)."""
    found = kinds.kind(kind)
    known = found.gate_metrics
    if not known or found.gate_default is None:
        raise errors.FeatureNotSupported(f"deploy = 'if_better' is not supported for {kind} models")
    name = policy.metric or found.gate_default
    if name not in known:
        raise errors.InvalidParameterValue(
            f"DEPLOY_METRIC {name!r} is not a metric of {kind} models",
            hint=closest(name, known, "metrics"),
        )
    return name, known[name]


# -- CREATE MODEL ----------------------------------------------------------------------------------


def evaluation_rows(options: Mapping[str, OptionValue], table: pa.Table) -> pa.Table:
    from sqlml.ml.train import evaluation_rows as rows  # lazy: scikit-learn, only to train

    return rows(options, table)


def store_trained(
    session: Session,
    statement: CreateModel,
    result: TrainResult,
    table: pa.Table,
    policy: DeployPolicy,
    options: Mapping[str, OptionValue],
    comment: str | None = None,
) -> int:
    """Stores a trained version and deploys it as ``policy`` says (inside the caller's
    transaction); returns its number. ``options``: the training's (deploy_policy's rest);
    ``comment``: its audit row's, when it serves (ALTER MODEL ... RETRAIN COMMENT '...')."""
    store, ref = session.store, statement.model
    role = store.who()
    serving = store.current_version(ref)
    if policy.given:  # (recorded with the version: ML.VERSIONS shows them)
        result = dataclasses.replace(result, options={**result.options, **policy.given})
    deploy = policy.mode == ALWAYS or serving is None
    assert statement.query is not None
    version = store.save(
        ref,
        result,
        query_sql=statement.query.sql,
        transform_sql=statement.transform_sql,
        replace=statement.replace or statement.if_not_exists,
        deploy=deploy,
        role=role,
        comment=comment,
    )
    if deploy:
        return version
    if policy.mode == MANUAL:
        session.say(
            f"{ref} version {version} is stored and does not serve (deploy = 'manual'):"
            f" version {serving} serves; ALTER MODEL {ref} DEPLOY VERSION {version} deploys it"
        )
        return version
    assert serving is not None
    rows = evaluation_rows(options, table)
    _gate(session, ref, version, serving, rows, policy, role)
    return version


def _gate(
    session: Session,
    ref: ModelRef,
    version: int,
    serving: int,
    rows: pa.Table,
    policy: DeployPolicy,
    role: str | None,
) -> None:
    """deploy = 'if_better': both versions measured on the new one's evaluation ``rows``."""
    from sqlml.evaluation import evaluate_table

    new, old = session.store.load(ref, version), session.store.load(ref)
    metric, higher = _metric(policy, new.kind)
    try:
        old_value = evaluate_table(old, rows).get(metric)
    except errors.Error as e:  # the serving version cannot read these rows
        session.say(
            f"{ref} version {version} is stored and does not serve: version {serving} cannot be"
            f" measured on its evaluation rows ({e.message})"
        )
        return
    new_value = evaluate_table(new, rows).get(metric)
    numbers = _numbers(metric, new_value, old_value, serving, policy, rows.num_rows)
    better = _better(new_value, old_value, higher, policy.min_delta)
    summary = f"{metric} {_text(new_value)} against {_text(old_value)} of version {serving}"
    if not better:
        session.say(
            f"{ref} version {version} is stored and does not serve (deploy = 'if_better'):"
            f" {summary}, min delta {policy.min_delta:g}"
        )
        return
    session.store.deploy(ref, version, action="create", role=role, metrics=numbers)
    session.say(f"{ref} version {version} serves (deploy = 'if_better'): {summary}")


def _better(new: float | None, old: float | None, higher: bool, delta: float) -> bool:
    """Better by at least ``delta``; a metric the rows leave undefined (NULL) never wins, and
    a serving version without one loses to any defined value."""
    if new is None:
        return False
    if old is None:
        return True
    gain = new - old if higher else old - new
    return gain >= delta


def _numbers(
    metric: str,
    new: float | None,
    old: float | None,
    serving: int,
    policy: DeployPolicy,
    rows: int,
) -> dict[str, Any]:
    return {
        "deploy_metric": metric,
        "new_value": new,
        "serving_value": old,
        "serving_version": serving,
        "deploy_min_delta": policy.min_delta,
        "evaluation_rows": rows,
    }


def _text(value: float | None) -> str:
    return "NULL" if value is None else f"{value:.6g}"


# -- ALTER MODEL and DROP MODEL ... VERSION --------------------------------------------------------


def alter(session: Session, statement: AlterModel) -> Result:
    """``ALTER MODEL m DEPLOY VERSION n`` or ``ALTER MODEL m ROLLBACK [TO VERSION n]``; SET
    TRAFFIC and CLEAR TRAFFIC (sqlml/traffic.py)."""
    if statement.action in ("SET TRAFFIC", "CLEAR TRAFFIC"):
        return _traffic(session, statement)
    if statement.action in ("SET SHADOW", "CLEAR SHADOW"):
        return _shadow(session, statement)
    if statement.action == "SET OPTIONS":
        return _set_options(session, statement)
    store, ref = session.store, statement.model
    role = store.who()
    with store.names_fixed(), store.writing(ref), all_or_nothing(session.engine):
        if statement.action == "DEPLOY":
            assert statement.version is not None
            previous = store.deploy(ref, statement.version, role=role, comment=statement.comment)
            now = statement.version
        else:
            now, previous = store.rollback(
                ref, statement.version, role=role, comment=statement.comment
            )
        if previous is not None:
            serving_changed(session, ref)
    if previous is None:
        session.say(f"{ref} version {now} serves already: nothing changed")
    else:
        session.say(f"{ref} version {now} serves (version {previous} served before)")
    return Result(None, 0, "ALTER MODEL")


def _traffic(session: Session, statement: AlterModel) -> Result:
    """SET TRAFFIC: checked, allocated from the split in effect (fewest keys move), stored with
    its audit row; CLEAR TRAFFIC: all traffic to the serving version again."""
    store, ref = session.store, statement.model
    with _changing(session, ref) as (role, settings):
        serving = store.load(ref)
        previous = settings.get("traffic")
        if statement.action == "CLEAR TRAFFIC":
            done = f"all traffic to version {serving.version}"
            return _clear(session, statement, settings, role, "traffic", "no traffic split", done)
        wanted = traffic.units(statement, serving.version)
        shadow = settings.get("shadow", {}).get("version")
        if shadow in wanted:
            raise errors.InvalidParameterValue(
                f"version {shadow} of {ref} is its shadow: CLEAR SHADOW before it takes traffic"
            )
        for number in wanted:
            if number != serving.version:
                traffic.check_compatible(serving, store.load(ref, number))
        old = previous["ranges"] if previous is not None else None
        ranges = traffic.allocate(old, serving.version, wanted)
        settings["traffic"] = {
            "key": statement.key,
            "weights": {str(v): n * 100 / traffic.BUCKETS for v, n in sorted(wanted.items())},
            "ranges": [list(r) for r in ranges],
        }
        store.change_settings(ref, settings, action="traffic", role=role, comment=statement.comment)
    split = ", ".join(
        f"version {v} {n * 100 / traffic.BUCKETS:g}%" for v, n in sorted(wanted.items())
    )
    by = f" by key {statement.key}" if statement.key else " at random per row"
    session.say(f"{ref} traffic: {split}{by}")
    return Result(None, 0, "ALTER MODEL")


@contextlib.contextmanager
def _changing(session: Session, ref: ModelRef) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """A change of the model's serving settings (SET TRAFFIC, SET SHADOW, SET OPTIONS): the
    role for its audit row (read first: the PostgreSQL server's store then acts as the owner),
    and, under the model's lock and in one transaction, the settings to change and store
    (Store.change_settings)."""
    role = session.store.who()
    with session.store.writing(ref), all_or_nothing(session.engine):
        yield role, session.store.settings(ref)


def _clear(
    session: Session,
    statement: AlterModel,
    settings: dict[str, Any],
    role: str | None,
    key: str,
    none: str,
    done: str,
) -> Result:
    """CLEAR TRAFFIC / CLEAR SHADOW: the settings without ``key``, with their audit row
    (nothing, and a NOTICE, when there was none); under the caller's lock and transaction."""
    ref = statement.model
    if key not in settings:
        session.say(f"{ref} has {none}: nothing changed")
        return Result(None, 0, "ALTER MODEL")
    del settings[key]
    session.store.change_settings(
        ref, settings, action=f"clear {key}", role=role, comment=statement.comment
    )
    session.say(f"{ref}: {done}")
    return Result(None, 0, "ALTER MODEL")


def _shadow(session: Session, statement: AlterModel) -> Result:
    """SET SHADOW VERSION n [SAMPLE p PERCENT]: version n scores the sampled rows of every
    ML.PREDICT of the model and its predictions go to the prediction log, never to the result
    (predlog.py); CLEAR SHADOW ends it. 42704 for no such version, 42804 for one that cannot
    score the serving version's rows (traffic.check_shadow), 22023 for one that serves."""
    store, ref = session.store, statement.model
    with _changing(session, ref) as (role, settings):
        serving = store.load(ref)
        previous = settings.get("shadow")
        if statement.action == "CLEAR SHADOW":
            done = f"version {(previous or {}).get('version')} shadows no more"
            return _clear(session, statement, settings, role, "shadow", "no shadow", done)
        number = statement.version
        assert number is not None
        sample = 100.0 if statement.sample is None else statement.sample
        if not 0 < sample <= 100:
            raise errors.InvalidParameterValue(
                f"a shadow's SAMPLE must be a percentage above 0 and at most 100, not {sample:g}"
            )
        if round(sample * traffic.BUCKETS / 100) != sample * traffic.BUCKETS / 100:
            raise errors.InvalidParameterValue(
                f"a shadow's SAMPLE is in steps of {100 / traffic.BUCKETS:g} percent, not"
                f" {sample:g}"
            )
        split = settings.get("traffic", {}).get("weights", {})
        if number == serving.version or str(number) in split:
            raise errors.InvalidParameterValue(
                f"version {number} of {ref} serves already"
                + (" a share of its traffic" if number != serving.version else "")
                + ": a shadow is a version that does not serve"
            )
        traffic.check_shadow(serving, store.load(ref, number))  # (42704, 42804)
        settings["shadow"] = {"version": number, "sample": sample}
        store.change_settings(ref, settings, action="shadow", role=role, comment=statement.comment)
    session.say(f"{ref}: version {number} shadows {sample:g}% of the rows ML.PREDICT scores")
    return Result(None, 0, "ALTER MODEL")


# ALTER MODEL ... SET OPTIONS: BigQuery's model options that are not training options
MODEL_OPTIONS = ("description", "labels", *predlog.OPTIONS, *schedules.OPTIONS)
PENDING_MODEL_OPTIONS = ("expiration_timestamp", "kms_key_name")
_LABEL_PART = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _set_options(session: Session, statement: AlterModel) -> Result:
    """``ALTER MODEL m SET OPTIONS (description = '...', labels = [('key', 'value'), ...])``,
    as BigQuery's: each option given replaces its value (NULL removes it); stored with the
    model (not a version) and shown by SHOW MODELS. retrain_schedule and retrain_on_drift:
    schedules.py."""
    store, ref = session.store, statement.model
    given = dict(statement.options)
    timing = schedules.checked(given)  # (22023 before anything is read)
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name in PENDING_MODEL_OPTIONS:
            raise errors.FeatureNotSupported(f"ALTER MODEL option {name} is not supported yet")
        if name not in MODEL_OPTIONS:
            raise errors.InvalidParameterValue(
                f"ALTER MODEL SET OPTIONS takes {', '.join(MODEL_OPTIONS)}, not {name}"
                " (training options take CREATE OR REPLACE MODEL)",
                hint=closest(name, MODEL_OPTIONS, "options"),
            )
        if name in predlog.OPTIONS:
            changes[name] = value
            continue
        if name in schedules.OPTIONS:
            continue
        changes[name] = _description(value) if name == "description" else _labels(value)
    with _changing(session, ref) as (role, settings):
        if timing:
            schedules.apply(session, ref, timing, settings, role)
        for name, value in changes.items():
            if name in predlog.OPTIONS:
                predlog.option(name, value, settings)  # (22023 for a bad value)
            elif value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
        store.change_settings(ref, settings, action="options", role=role)
    return Result(None, 0, "ALTER MODEL")


def _description(value: OptionValue) -> str | None:
    if value is not None and not isinstance(value, str):
        raise errors.InvalidParameterValue("option description must be a string (or NULL)")
    return value


def _labels(value: OptionValue) -> dict[str, str] | None:
    """BigQuery's labels: [('key', 'value'), ...], keys and values of lower-case letters,
    digits, underscores and dashes, at most 63 characters, keys starting with a letter."""
    if value is None:
        return None
    pairs = value if isinstance(value, tuple) else None
    labels: dict[str, str] = {}
    for pair in pairs or ():
        if not (
            isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            pairs = None
            break
        key, text = str(pair[0]), str(pair[1])
        bad = (
            not key
            or not key[0].isalpha()
            or any(len(p) > 63 or not set(p) <= _LABEL_PART for p in (key, text))
        )
        if bad:
            raise errors.InvalidParameterValue(
                f"label ({key!r}, {text!r}) is not valid: keys and values are lower-case letters,"
                " digits, underscores and dashes, at most 63 characters; a key starts with a"
                " letter"
            )
        if key in labels:
            raise errors.InvalidParameterValue(f"label {key!r} is given twice")
        labels[key] = text
    if pairs is None:
        raise errors.InvalidParameterValue(
            "option labels must be an array of (key, value) string pairs:"
            " labels = [('team', 'growth')]"
        )
    return labels


def drop_version(session: Session, statement: DropModel) -> Result:
    """``DROP MODEL [IF EXISTS] m VERSION n``."""
    ref = statement.model
    assert ref.version is not None
    with session.store.writing(ref):
        dropped = session.store.drop_version(ref.model, ref.version, statement.if_exists)
    return Result(None, 1 if dropped else 0, "DROP MODEL")


def serving_changed(session: Session, ref: ModelRef) -> None:
    """What follows the serving version besides the store: on DuckDB, the macro that views
    over ML.PREDICT score with (views.py). (The PostgreSQL server publishes the model's
    functions after the statement: postgres/server.py.)"""
    if session.engine.dialect == "duckdb" and views.has_macro(
        session.engine, *session.store.resolve(ref.model)
    ):  # (loaded only when a view made the macro)
        views.refresh_macro(session.engine, session.store.load(ref.model))
