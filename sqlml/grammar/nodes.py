"""sqlglot expression nodes of sqlml's own, and how the sqlml dialects print them.

Upstream nodes are reused where they fit (``exp.Create(kind="MODEL")``, ``exp.Drop``, ``exp.Show``,
``exp.Predict``, ``exp.TransformModelProperty``, ``exp.Property``); these cover the rest:

- :class:`MLFunction`: any other ``ML.<name>(...)`` call (``ML.EVALUATE``, ``ML.SCORE``, the
  TRANSFORM functions, and unknown ones, which the grammar rejects by name later);
- :class:`QueryText`: the query of ``CREATE MODEL ... AS query``, kept as the user's text;
- :class:`CallSlot`: where an ML call stood in an :class:`~sqlml.grammar.statements.MLQuery`
  template, filled in by :func:`sqlml.grammar.render.render`.

Every class has an explicit entry in :data:`GENERATORS`, so trees holding them still print.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.generator import Generator

# meta keys the parser sets on nodes: the 0-based offset of the node's first character, and the
# text of the node as the user wrote it (the inside of the parentheses for a subquery)
START = "sqlml_start"
TEXT = "sqlml_text"
# meta key on a model name's Table: the n of ``MODEL m VERSION n`` (an int)
VERSION = "sqlml_version"

# the ML functions of a TRANSFORM clause (no MODEL argument)
TRANSFORM_FUNCTIONS = (
    "STANDARD_SCALER",
    "MIN_MAX_SCALER",
    "MAX_ABS_SCALER",
    "ROBUST_SCALER",
    "IMPUTER",
    "BUCKETIZE",
    "QUANTILE_BUCKETIZE",
    "ONE_HOT_ENCODER",
    "LABEL_ENCODER",
    "POLYNOMIAL_EXPAND",
    "FEATURE_CROSS",
    "HASH_BUCKETIZE",
)
# BigQuery ML's functions that take a model (or, for the data functions, a table) first
MODEL_FUNCTIONS = (
    "PREDICT",
    "EVALUATE",
    "SCORE",
    "TRAINING_INFO",
    "FEATURE_INFO",
    "CONFUSION_MATRIX",
    "ROC_CURVE",
    "WEIGHTS",
    "CENTROIDS",
    "FEATURE_IMPORTANCE",
    "EXPLAIN_PREDICT",
    "GLOBAL_EXPLAIN",
    "TRIAL_INFO",
    "DESCRIBE_DATA",
    "VALIDATE_DATA_SKEW",
    "VALIDATE_DATA_DRIFT",
)
# BigQuery ML's other functions (not built here yet): ML calls all the same, refused as such
OTHER_FUNCTIONS = (
    "NGRAMS",
    "BAG_OF_WORDS",
    "TF_IDF",
    "MULTI_HOT_ENCODER",
    "NORMALIZER",
    "FORECAST",
    "DETECT_ANOMALIES",
    "RECOMMEND",
    "DISTANCE",
    "LP_NORM",
    "PRINCIPAL_COMPONENTS",
    "PRINCIPAL_COMPONENT_INFO",
    "ADVANCED_WEIGHTS",
    "ARIMA_EVALUATE",
    "ARIMA_COEFFICIENTS",
    "EXPLAIN_FORECAST",
    "GENERATE_TEXT",
    "GENERATE_EMBEDDING",
)
# ML.<name>( is an ML call for these names, or when MODEL follows the parenthesis; any other
# ml.f(x) is a function of a schema named ml (sqlml.grammar.scan.is_ml)
ML_FUNCTIONS = frozenset(MODEL_FUNCTIONS + TRANSFORM_FUNCTIONS + OTHER_FUNCTIONS)


class MLFunction(exp.Expression, exp.Func):
    """``ML.<this>([MODEL model,] expressions...)``; ``this`` is the upper-case name."""

    arg_types = {"this": True, "model": False, "expressions": False}


class QueryText(exp.Expression):
    """A query kept as text (``this``), exactly as the user wrote it; ``ml_calls`` is True when
    its tokens hold an ``ML.<name>(`` call."""

    arg_types = {"this": True, "ml_calls": False}


class CallSlot(exp.Expression):
    """Placeholder ``this`` (an int literal) of an MLQuery template.

    ``table`` is True where a table function stood (FROM/JOIN); ``alias`` is the alias the user
    gave it there.
    """

    arg_types = {"this": True, "table": False, "alias": False}

    @property
    def slot(self) -> int:
        return int(self.this.name)


class ExportModel(exp.Expression):
    """``EXPORT MODEL this OPTIONS (expressions)``."""

    arg_types = {"this": True, "expressions": False}


class AlterModel(exp.Expression):
    """``ALTER MODEL this DEPLOY VERSION n | ROLLBACK [TO VERSION n] | SET TRAFFIC (VERSION n =
    w, ...) [BY KEY key] | CLEAR TRAFFIC | SET SHADOW VERSION n [SAMPLE p PERCENT] | CLEAR
    SHADOW [COMMENT 'text']``: ``action`` the upper-case words, ``version`` an int literal,
    ``expressions`` SET TRAFFIC's ``EQ(version, weight)``s, ``key`` its column, ``sample`` SET
    SHADOW's percentage, ``comment`` a string literal."""

    arg_types = {
        "this": True,
        "action": True,
        "version": False,
        "comment": False,
        "expressions": False,
        "key": False,
        "sample": False,
        "options": False,
    }


class ModelColumns(exp.Expression):
    """CREATE MODEL's ``INPUT (...)`` or ``OUTPUT (...)`` (``this``: the word): column
    definitions, each an ``exp.ColumnDef`` whose kind is its type as written (an ``exp.Var``)."""

    arg_types = {"this": True, "expressions": True}


def _export_model_sql(gen: Generator, node: ExportModel) -> str:
    options = ", ".join(gen.sql(o) for o in node.expressions)
    return f"EXPORT MODEL {gen.sql(node, 'this')} OPTIONS ({options})"


def _alter_model_sql(gen: Generator, node: AlterModel) -> str:
    action = str(node.args["action"])
    version = node.args.get("version")
    text = f"ALTER MODEL {gen.sql(node, 'this')} {action}"
    if node.expressions:
        weights = ", ".join(
            f"VERSION {gen.sql(w, 'this')} = {gen.sql(w, 'expression')}" for w in node.expressions
        )
        text += f" ({weights})"
    if node.args.get("key") is not None:
        text += f" BY KEY {gen.sql(node, 'key')}"
    if node.args.get("options"):
        text += f" ({', '.join(gen.sql(o) for o in node.args['options'])})"
    if version is not None:
        text += f"{' TO' if action == 'ROLLBACK' else ''} VERSION {gen.sql(version)}"
    comment = node.args.get("comment")
    return text + (f" COMMENT {gen.sql(comment)}" if comment is not None else "")


def _model_columns_sql(gen: Generator, node: ModelColumns) -> str:
    columns = ", ".join(gen.sql(c) for c in node.expressions)
    return f"{node.name} ({columns})"


def _ml_function_sql(gen: Generator, node: MLFunction) -> str:
    args: list[str] = []
    model = node.args.get("model")
    if model is not None:
        args.append(f"MODEL {gen.sql(model)}")
    for arg in node.expressions:
        text = gen.sql(arg)
        args.append(f"TABLE {text}" if isinstance(arg, exp.Table) else text)
    # under a Dot or a Table whose other part is the ML prefix, the parent writes "ML."
    parent, key = node.parent, node.arg_key
    prefixed = isinstance(parent, exp.Dot | exp.Table) and key in ("this", "expression")
    return f"{'' if prefixed else 'ML.'}{node.name}({', '.join(args)})"


def _query_text_sql(gen: Generator, node: QueryText) -> str:
    return str(node.this)


def _call_slot_sql(gen: Generator, node: CallSlot) -> str:
    alias = gen.sql(node, "alias")
    return f"SQLML_CALL({node.slot})" + (f" AS {alias}" if alias else "")


GENERATORS: dict[type[exp.Expr], Callable[..., Any]] = {
    MLFunction: _ml_function_sql,
    QueryText: _query_text_sql,
    CallSlot: _call_slot_sql,
    ExportModel: _export_model_sql,
    AlterModel: _alter_model_sql,
    ModelColumns: _model_columns_sql,
}


def start_of(node: exp.Expr) -> int | None:
    """The 1-based position of ``node`` in the statement, when the parser recorded it."""
    starts = [
        int(n.meta[key])
        for n in node.walk()
        for key in (START, "start")  # ours, and sqlglot's own on identifiers and literals
        if n.meta.get(key) is not None
    ]
    return min(starts) + 1 if starts else None


def text_of(node: exp.Expr) -> str:
    """The node's text as written (recorded by the parser); falls back to generated SQL."""
    text = node.meta.get(TEXT)
    return str(text) if text is not None else node.sql()
