"""ML functions as registered entries: what each ``ML.<name>(MODEL m, ...)`` call takes, what it
returns and how it runs, in one module per function (or per family).

Why a package of its own, beside ``grammar/`` and ``engine.py``: an ML function touches both
(the grammar checks its arguments, the engine path runs it) and every front door (sqlml.connect
on DuckDB and PostgreSQL, the gateway over DuckDB, the PostgreSQL proxy, all of which go through
``engine.Session``). Keeping the declaration here, importable by the grammar without the engine,
makes adding a function one new module (``register(Function(...))``) plus its tests, and a third
party registers one through the same door as the built-ins (STYLE.md rule 5).

An entry declares:
- ``name``: BigQuery's, upper case, without ``ML.``;
- ``table``: a table function (FROM/JOIN) or a scalar one (any expression);
- ``rows``: whether it takes a ``(query)`` or ``TABLE t`` after the model: REQUIRED, OPTIONAL or
  NONE (42601 otherwise);
- ``fields``: its STRUCT fields with their BigQuery types (a field the function does not know is
  22023 with the closest name as hint; a value of the wrong type 22023), and ``pending``: BigQuery's
  fields sqlml does not implement yet (0A000);
- how it runs: ``runs`` is RENDERED (the engine path writes the engine's own SQL: ML.PREDICT,
  ML.SCORE), OVER_ROWS (computed from the model's outputs on rows or from stored metrics:
  ML.EVALUATE; or, with ``render``, written into the engine's SQL around ML.PREDICT's
  subquery over the rows: ML.CONFUSION_MATRIX, ML.ROC_CURVE) or METADATA (computed from the
  stored version alone; then ``columns`` gives the output schema in BigQuery types and
  ``compute`` the rows, and the engine path renders them as a literal subquery in the
  engine's SQL, see :mod:`sqlml.functions.literal`) or OVER_DATA (computed from the rows of
  ``sources`` inputs without scoring them, with or without a ``model``: ``data`` computes the
  rows from the inputs read as Arrow tables, or ``render_data`` writes the engine's SQL;
  ML.DESCRIBE_DATA, ML.VALIDATE_DATA_SKEW, ML.VALIDATE_DATA_DRIFT in
  :mod:`sqlml.functions.monitoring`).

Built-in entries are registered when this package is imported (the modules named at the end).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors

if TYPE_CHECKING:  # the store imports the grammar, which imports this registry
    import pyarrow as pa

    from sqlml.grammar.statements import Inspect, MLCall, ModelRef, Query
    from sqlml.store import ModelVersion

REQUIRED, OPTIONAL, NONE = "required", "optional", "none"
RENDERED, OVER_ROWS, METADATA = "rendered", "over rows", "metadata"
OVER_DATA = "over data"
# BigQuery's scalar types a STRUCT field can have
FIELD_TYPES = ("FLOAT64", "INT64", "STRING", "BOOL", "ARRAY")

Row = Sequence[Any]


@dataclass(frozen=True)
class Field:
    """A STRUCT field: ``STRUCT(0.5 AS threshold)``."""

    name: str  # lower case
    type: str  # one of FIELD_TYPES
    # a further check of the value (raise errors.InvalidParameterValue); None: the type is enough
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Column:
    """An output column, typed as BigQuery types it (``FLOAT64``, ``INT64``, ``STRING``,
    ``BOOL``, ``ARRAY<STRUCT<category STRING, weight FLOAT64>>``); literal.py maps each to the
    engine's type."""

    name: str
    type: str


@dataclass(frozen=True)
class CallArgs:
    """What the grammar found in a call, checked against the entry: the typed call is built
    from it by the entry's ``make``."""

    name: str
    model: ModelRef
    rows: Query | None
    settings: Mapping[str, Any]  # STRUCT fields by lower-case name, of their declared types
    qualifier: str | None = None  # a scalar function's table alias argument (ML.SCORE)


@dataclass(frozen=True)
class Scored:
    """What a rendered OVER_ROWS function gets: the input's column names and ML.PREDICT's
    subquery over the rows at a threshold (the input's columns plus the predicted ones), built
    when asked; and the input query itself (its SQL in the engine's dialect) for a function
    that reads other outputs of the graph than ML.PREDICT's (functions/graph_outputs.py)."""

    names: Sequence[str]
    subquery: Callable[[float | None], exp.Expr]
    # the input rows themselves, as a subquery aliased __sqlml_input, and their columns' types
    # (ML.TRANSFORM reads the rows, not ML.PREDICT's)
    source: exp.Expr | None = None
    schema: pa.Schema | None = None


@dataclass(frozen=True)
class DataArgs:
    """What an OVER_DATA function gets: each input's rows, the STRUCT's settings, and for a
    function of a model its version and the statistics stored with it at training (None:
    none were, as for an imported model)."""

    tables: Sequence[pa.Table]
    settings: Mapping[str, Any]
    version: ModelVersion | None = None
    statistics: Mapping[str, Any] | None = None
    # the session's own statements (sqlml's SQL in the engine's dialect) as Arrow: what a
    # function made of other ML functions reads them with (ML.REPORT)
    query: Callable[[str], pa.Table] | None = None
    dialect: str = "duckdb"  # the engine's (the statements ``query`` takes are in it)


# an OVER_ROWS function rendered into the engine's SQL: (version, settings, the scored rows or
# None when the call gave none, dialect) -> a table expression
Render = Callable[["ModelVersion", Mapping[str, Any], "Scored | None", str], exp.Expr]


@dataclass(frozen=True)
class Function:
    name: str
    table: bool
    rows: str  # REQUIRED | OPTIONAL | NONE
    runs: str  # RENDERED | OVER_ROWS | METADATA | OVER_DATA
    fields: tuple[Field, ...] = ()
    pending: tuple[str, ...] = ()
    # METADATA: the output columns for a version and the call's settings, and its rows
    columns: Callable[[ModelVersion, Mapping[str, Any]], list[Column]] | None = None
    compute: Callable[[ModelVersion, Mapping[str, Any]], list[Row]] | None = None
    # the typed call (grammar.statements) for the engine path; None: Inspect (a METADATA call)
    make: Callable[[CallArgs], MLCall] | None = None
    # OVER_ROWS rendered around ML.PREDICT (the call is an OverRows)
    render: Render | None = None
    # OVER_ROWS rendered: what ``render`` needs from the store or the engine, got first with the
    # engine path's session (engine.Session): settings added to the call's (None: nothing). A
    # call prepared so is rendered anew for each run, never kept: what it registered with the
    # engine (ML.EXPLAIN_PREDICT: a tree model's XGBoost JSON) may be gone by the next run.
    prepare: Callable[[Any, ModelVersion, Mapping[str, Any]], Mapping[str, Any] | None] | None = (
        None
    )
    # a positional argument besides the rows and the STRUCT (ML.ROC_CURVE's GENERATE_ARRAY):
    # the node -> (setting name, value); None: the function takes none
    argument: Callable[[exp.Expr], tuple[str, Any]] | None = None
    # positional arguments after the model, more than one (ML.PREDICTION_LOG's start and end):
    # the nodes -> settings (42601 / 22023 for what it does not take); None: the function takes
    # none
    arguments: Callable[[Sequence[exp.Expr]], dict[str, Any]] | None = None
    # OVER_DATA (ML.DESCRIBE_DATA, ML.VALIDATE_DATA_*): computed from the rows of ``sources``
    # queries (no ML.PREDICT), with ``model`` REQUIRED or NONE; ``columns`` gives the schema
    data: Callable[[DataArgs], list[Row]] | None = None
    # OVER_DATA: the columns each input is read with, from the inputs' column names and the
    # stored statistics (None: all of them), so unused columns never leave the engine
    reads: Callable[[Sequence[Sequence[str]], Mapping[str, Any] | None], list[list[str]]] | None = (
        None
    )
    model: str = REQUIRED
    sources: int = 0
    # OVER_DATA written as the engine's SQL instead of ``data`` (ML.DESCRIBE_DATA): (the
    # input's schema, settings, the input query's tree, dialect) -> a table expression
    render_data: Callable[[pa.Schema, Mapping[str, Any], exp.Expr, str], exp.Expr] | None = None

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


_REGISTRY: dict[str, Function] = {}


def register(function: Function) -> Function:
    """Adds (or replaces) an ML function; returns it. A function of one version of a model
    takes STRUCT(n AS trial_id) too (TRIAL_ID: that trial of a tuned model's version)."""
    per_version = function.model == REQUIRED and function.name.upper() not in MODEL_WIDE
    if per_version and function.field(TRIAL_ID.name) is None:
        function = replace(function, fields=(*function.fields, TRIAL_ID))
    _REGISTRY[function.name.upper()] = function
    return function


def unregister(name: str) -> None:
    """Removes an entry (a third party's, or one a test registered)."""
    _REGISTRY.pop(name.upper(), None)


def find(name: str) -> Function | None:
    return _REGISTRY.get(name.upper())


def names() -> list[str]:
    return sorted(_REGISTRY)


def not_supported(name: str, model_type: str) -> errors.Error:
    """A function that does not apply to the model's type: 0A000, as BigQuery's "not supported
    for model type"."""
    return errors.FeatureNotSupported(f"ML.{name} is not supported for model type {model_type}")


def _trial_id(value: int) -> None:
    if value < 1:
        raise errors.InvalidParameterValue(
            f"trial_id must be 1 or more, not {value}", hint="ML.TRIAL_INFO lists the trials"
        )


# BigQuery's STRUCT(n AS trial_id): the functions that take it score with that trial of a model
# trained with hyperparameter tuning (the grammar moves it into the model's name: ModelRef.trial);
# every function of one version takes it (register), but those of the model as a whole
TRIAL_ID = Field("trial_id", "INT64", _trial_id)
MODEL_WIDE = (
    "VERSIONS",
    "DEPLOYMENTS",
    "COMPARE",
    "PREDICTION_LOG",
    "TRIAL_INFO",
    "REPORT",
    "SCHEDULES",
    "SCHEDULE_RUNS",
    "SCORE",
    "VALIDATE_DATA_SKEW",
)


def check_field(function: Function, name: str, value: Any) -> Any:
    """``value`` if it is of the field's declared type (an integer passes as FLOAT64, as a
    number), else 22023."""
    field = function.field(name)
    assert field is not None
    wanted = field.type
    ok = {
        "FLOAT64": isinstance(value, int | float) and not isinstance(value, bool),
        "INT64": isinstance(value, int) and not isinstance(value, bool),
        "STRING": isinstance(value, str),
        "BOOL": isinstance(value, bool),
        "ARRAY": isinstance(value, tuple),  # its items checked by the field's check
    }[wanted]
    if not ok:
        raise errors.InvalidParameterValue(
            f"STRUCT field {name} of ML.{function.name} must be a {wanted}, not {value!r}"
        )
    if field.check is not None:
        field.check(value)
    return float(value) if wanted == "FLOAT64" else value


def inspect(version: ModelVersion, call: Inspect, dialect: str) -> exp.Expr:
    """A METADATA call's rows for ``version``, as a literal subquery (a sqlglot tree) of the
    engine's SQL."""
    from sqlml.functions import literal

    entry = find(call.function)
    if entry is None or entry.columns is None or entry.compute is None:
        raise errors.InternalError(f"ML.{call.function} is not a registered metadata function")
    columns = entry.columns(version, call.settings)
    return literal.subquery(columns, entry.compute(version, call.settings), dialect)


_BUILT_INS = (
    "predict",
    "score",
    "evaluate",
    "feature_info",
    "training_info",
    "weights",
    "centroids",
    "principal_components",
    "principal_component_info",
    "feature_importance",
    "confusion_matrix",
    "roc_curve",
    "transform",
    "detect_anomalies",
    "explain_predict",
    "global_explain",
    "advanced_weights",
    "reconstruction_loss",
    "versions",
    "trial_info",
    "deployments",
    "compare",
    "prediction_log",
    "monitoring",
    "schedules",
    "report",
)
for _module in _BUILT_INS:
    importlib.import_module(f"sqlml.functions.{_module}")
