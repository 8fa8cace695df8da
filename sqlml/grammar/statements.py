"""Typed statements: what the grammar hands to the engine path.

The parser turns sqlglot trees into these dataclasses at once, so nothing outside ``sqlml.grammar``
reads ``expression.args``. The one exception is :class:`MLQuery`, an ordinary query with ML table
functions or ``ML.SCORE`` calls inside: the engine supplies a replacement tree for each call and the
query renders itself back to SQL for the engine's dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from sqlml.ml.spec import OptionValue, TransformItem  # (the ML core's: sqlml.ml.spec)


@dataclass(frozen=True)
class ModelRef:
    """A model name: ``schema.name`` (BigQuery's ``dataset.model``); schema None when unqualified.

    Unquoted names are folded to lower case, quoted ones kept as written (see the parser)."""

    schema: str | None
    name: str
    # BigQuery's project (`project.dataset.model`): the database the model is in, checked to be
    # the current one (sqlml.bigquery.check_paths); not part of the model's identity
    catalog: str | None = field(default=None, compare=False)
    # ``MODEL m VERSION n``: that stored version, not the one that serves (None: the serving one)
    version: int | None = field(default=None, metadata={"omit_empty": True})
    # ``STRUCT(n AS trial_id)`` of an ML function: that trial of a model trained with
    # hyperparameter tuning (ml/tuning.py), not its optimal one
    trial: int | None = field(default=None, metadata={"omit_empty": True})

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def model(self) -> ModelRef:
        """The model itself, without a version."""
        return ModelRef(self.schema, self.name, self.catalog)


@dataclass(frozen=True)
class Query:
    """The rows a statement reads: SQL text in the dialect the statement was parsed with.

    ``TABLE t`` arrives as ``SELECT * FROM t`` built as a tree (identifiers quoted).
    """

    sql: str


# -- statements ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateModel:
    model: ModelRef
    options: Mapping[str, OptionValue]  # names lower-cased; values as written
    query: Query | None  # None only for model_type='onnx' imports (no AS clause)
    replace: bool = False
    if_not_exists: bool = False
    transform: tuple[TransformItem, ...] | None = None
    transform_sql: str | None = None  # the text inside TRANSFORM (...) as written
    # BigQuery's INPUT (col type, ...) and OUTPUT (col type, ...) of an ONNX import: (name, type
    # as written, upper case) pairs. (compare=False: left out of the golden cases' JSON unset)
    input_columns: tuple[tuple[str, str], ...] | None = field(default=None, compare=False)
    output_columns: tuple[tuple[str, str], ...] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ExportModel:
    """``EXPORT MODEL m OPTIONS (uri = '...')``: the stored ONNX graph written to a file."""

    model: ModelRef
    options: Mapping[str, OptionValue]  # names lower-cased


@dataclass(frozen=True)
class DropModel:
    """``DROP MODEL [IF EXISTS] m [VERSION n]``: the model, or one version (``model.version``)."""

    model: ModelRef
    if_exists: bool = False


@dataclass(frozen=True)
class AlterModel:
    """``ALTER MODEL m DEPLOY VERSION n``, ``ROLLBACK [TO VERSION n]``, ``SET TRAFFIC (VERSION n =
    weight, ...) [BY KEY column]``, ``CLEAR TRAFFIC``, ``SET SHADOW VERSION n [SAMPLE p
    PERCENT]`` or ``CLEAR SHADOW``, each ``[COMMENT '...']``: which stored versions serve
    (sqlml/lifecycle.py); ``SET OPTIONS (...)``; or ``RETRAIN`` (sqlml/retrain.py)."""

    model: ModelRef
    action: str  # 'DEPLOY' | 'ROLLBACK' | 'SET|CLEAR TRAFFIC|SHADOW' | 'SET OPTIONS' | 'RETRAIN'
    version: int | None = None  # DEPLOY's, SET SHADOW's; ROLLBACK's TO VERSION (None: the
    # previous deployment)
    comment: str | None = None
    traffic: tuple[tuple[int, float], ...] = ()  # SET TRAFFIC's (version, weight) as written
    key: str | None = None  # SET TRAFFIC's BY KEY column (None: a random split per row)
    sample: float | None = None  # SET SHADOW's SAMPLE p PERCENT (None: 100)
    options: Mapping[str, OptionValue] = field(default_factory=dict)  # SET OPTIONS' own


@dataclass(frozen=True)
class ShowModels:
    """``SHOW MODELS [IN|FROM schema]``: list the models in the store."""

    schema: str | None = None


@dataclass(frozen=True)
class Predict:
    """``ML.PREDICT(MODEL m, (query) | TABLE t [, STRUCT(0.5 AS threshold, ...)])`` as a table."""

    model: ModelRef
    input: Query
    threshold: float | None = None
    settings: Mapping[str, OptionValue] = field(default_factory=dict)  # other STRUCT fields


@dataclass(frozen=True)
class Evaluate:
    """``ML.EVALUATE(MODEL m [, (query) | TABLE t] [, STRUCT(0.5 AS threshold)])`` as a table."""

    model: ModelRef
    input: Query | None = None
    threshold: float | None = None
    settings: Mapping[str, OptionValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Compare(Evaluate):
    """``ML.COMPARE(MODEL m, (query) | TABLE t [, STRUCT(0.5 AS threshold)])``: ML.EVALUATE of
    each version that serves (the serving one, and those of a traffic split) on the same rows,
    one row per version (sqlml's own; functions/compare.py)."""


@dataclass(frozen=True)
class Score:
    """``ML.SCORE(MODEL m [, qualifier])``: sqlml's scalar scoring function, usable in any
    expression. Feature columns are resolved by name in the enclosing query, qualified by the
    table alias ``qualifier`` when one is given."""

    model: ModelRef
    qualifier: str | None = None


@dataclass(frozen=True)
class Inspect:
    """A call of an ML function computed from the stored version alone (ML.WEIGHTS,
    ML.FEATURE_INFO, ...; see sqlml.functions): its registered name, the model and the STRUCT
    fields, checked against the entry's declared types."""

    function: str  # the entry's name, upper case, without "ML."
    model: ModelRef
    settings: Mapping[str, OptionValue] = field(default_factory=dict)


@dataclass(frozen=True)
class OverRows:
    """A call of an ML function computed in the engine's SQL over the model's predictions on
    rows (ML.CONFUSION_MATRIX, ML.ROC_CURVE; see sqlml.functions): its registered name, the
    model, the rows (None: not given) and the STRUCT fields and extra argument as settings."""

    function: str  # the entry's name, upper case, without "ML."
    model: ModelRef
    input: Query | None = None
    settings: Mapping[str, OptionValue] = field(default_factory=dict)


@dataclass(frozen=True)
class OverData:
    """A call of an ML function computed from the rows of its inputs, without scoring them
    (ML.DESCRIBE_DATA, ML.VALIDATE_DATA_SKEW, ML.VALIDATE_DATA_DRIFT; sqlml.functions.monitoring):
    its registered name, the model when it takes one, the inputs in order and the STRUCT
    fields as settings."""

    function: str
    model: ModelRef | None
    inputs: tuple[Query, ...]
    settings: Mapping[str, OptionValue] = field(default_factory=dict)


MLCall = Predict | Evaluate | Score | Inspect | OverRows | OverData


@dataclass(frozen=True)
class MLQuery:
    """A query with ML calls inside. ``calls[i]`` stands at placeholder i of ``template``."""

    template: exp.Expression
    calls: tuple[MLCall, ...]
    dialect: str

    def render(self, replacements: Sequence[exp.Expr], dialect: str | None = None) -> str:
        """SQL for the engine: each call replaced by ``replacements[i]``, a table expression
        (for Predict/Evaluate, e.g. a subquery with an alias) or a scalar expression (for Score)."""
        from sqlml.grammar.render import render

        return render(self, replacements, dialect or self.dialect)


@dataclass(frozen=True)
class Passthrough:
    """Not ML: the statement text goes to the engine untouched."""

    sql: str


Statement = CreateModel | DropModel | AlterModel | ExportModel | ShowModels | MLQuery | Passthrough
