"""ML.EXPLAIN_PREDICT of dnn_regressor and dnn_classifier models: integrated gradients, as
BigQuery explains its DNNs (docs/design/explanations.md), an approximation whose error is
reported.

How it runs, inside the engine's own query as the tree models' TreeSHAP (explain_trees.py,
whose SQL this module shares):

1. ML.PREDICT's rows (its predicted label, hence the class to explain, at the threshold given);
2. over them, the rows as the perceptron reads them: the graph's preprocessing (numeric columns
   imputed with the training mean and standardized, categories one-hot), compiled to SQL from a
   tap of the perceptron's input (scoring.DNN_FEATURES);
3. the engine's function over those features, the class's index and the number of steps:
   ``sqlml_integrated_gradients`` (DuckDB: a Python UDF over Arrow vectors, which reads the
   weights from the graph the engine registered for runtime scoring under its sha256) or
   ``sqlml.explain_dnn`` (PostgreSQL: PL/Python over chunks of rows, which loads the graph by
   its sha256 from sqlml.versions with the caller's rights); both run
   sqlml/ml/integrated_gradients.py (numpy, the weights read once per process);
4. each input column's attribution: its feature's, or the sum of its one-hot block's.

Columns (explain_predict.finish): ``prediction_value`` is the regressor's prediction (ML.PREDICT's
value) or the predicted class's logit (binary: the log-odds of the predicted class, so the
positive class's negated when the negative class is predicted, with the baseline and every
attribution, as for logistic_reg and the trees); ``baseline_prediction_value`` the same output at
the baseline input (every numeric feature at its training mean, no category of a categorical
one); ``approximation_error`` BigQuery's |prediction - baseline - sum| / |prediction - baseline|,
which shrinks as ``integrated_gradients_num_steps`` (default 15) grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors, scoring
from sqlml.functions import Scored, explain_trees
from sqlml.functions.explain_predict import APPROX
from sqlml.ml import integrated_gradients

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

STEPS = "integrated_gradients_num_steps"
GRAPH = "__sqlml_dnn_graph"  # the setting prepare adds: the graph's sha256
DUCKDB_FUNCTION = "sqlml_integrated_gradients"  # udfs/duckdb_udfs.py
POSTGRES_FUNCTION = "sqlml.explain_dnn"  # sql/postgres/functions.sql


def prepare(session: Any, version: ModelVersion, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The graph's sha256, the graph registered as runtime scoring registers it with an engine
    whose function reads it from its registry (DuckDB)."""
    if session.engine.dialect == "duckdb":
        session.engine.register_scorer(
            version.sha256, version.onnx, version.inputs, scoring.raw_outputs(version)
        )
    return {GRAPH: version.sha256}


def steps(settings: Mapping[str, Any]) -> int:
    value = settings.get(STEPS)
    found = integrated_gradients.DEFAULT_STEPS if value is None else int(value)
    integrated_gradients.check_steps(found)
    return found


def render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    if settings.get(APPROX):
        raise errors.FeatureNotSupported(
            f"approx_feature_contrib applies to tree models, not to {version.model_type}",
            hint="leave it out: DNNs are explained by integrated gradients"
            " (integrated_gradients_num_steps sets their precision)",
        )
    head: list[exp.Expr] = [
        exp.Literal.string(str(settings[GRAPH])),
        exp.Literal.number(steps(settings)),
    ]
    functions = (POSTGRES_FUNCTION, DUCKDB_FUNCTION)
    tap = (scoring.DNN_FEATURES, "perceptron")
    return explain_trees.by_function(version, settings, scored, dialect, tap, functions, head, True)
