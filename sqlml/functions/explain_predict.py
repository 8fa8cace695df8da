"""ML.EXPLAIN_PREDICT(MODEL m, {(query) | TABLE t} [, STRUCT(k AS top_k_features, t AS
threshold, b AS approx_feature_contrib, n AS integrated_gradients_num_steps)]): ML.PREDICT with
each row's feature attributions, for linear_reg and logistic_reg here, for the tree models by
TreeSHAP in explain_trees.py and for DNNs by integrated gradients in explain_dnn.py, which share
this module's columns (``finish``) (docs/design/explanations.md has BigQuery's pages and
what they leave open).

BigQuery's method for linear models (its Explainable AI overview): a feature's attribution is
"model weight * feature value", the feature standardized and the weight trained on the
standardized features. With sqlml's linear layer ``z = f W' + b'`` (functions/weights.py: the
standardization folded into W'; f the features as the graph reads them, numeric ones imputed,
categories one-hot) that is, per input feature:

- numeric: ``W'_j * (x_j - mean_j)`` (the training mean; a NULL is imputed to it: 0);
- categorical: the weight of the category present (the sum of its one-hot block), 0 for a
  category not seen in training;
- ``baseline_prediction_value``: the intercept of the standardized model,
  ``b' + sum_j W'_j mean_j`` over the numeric features (ML.WEIGHTS' ``__INTERCEPT__`` with
  ``STRUCT(TRUE AS standardize)``), so baseline + the attributions = ``prediction_value``
  exactly and ``approximation_error`` is 0.

Classifiers explain the predicted class only, in logit space: ``prediction_value`` is the
predicted class's logit (multiclass: its softmax logit), ``probability`` its probability. A
binary model has one logit z, the positive (second) class's log-odds; when the negative class
is predicted its log-odds is -z, so the baseline and the attributions are negated with it
(BigQuery does not document the sign; this keeps the identity above and makes a positive
attribution always push toward the predicted class).

Columns, in BigQuery's order: ``predicted_<label>``, ``probability`` (classifiers),
``top_feature_attributions`` ARRAY<STRUCT<feature STRING, attribution FLOAT64>> (the
``top_k_features`` largest by absolute value, default 5; ties by feature name; on PostgreSQL a
jsonb array, as every ARRAY<STRUCT> there), ``baseline_prediction_value``, ``prediction_value``,
``approximation_error``, then the input's columns. Computed in the engine's query around
ML.PREDICT's, as compiled scoring is: the rows never leave the engine.

A linear model's TRANSFORM outputs are features as any other: a one-column output's attribution
is ``W'_j * (f_j - mean_j)`` with the training mean of its values (its recorded statistics), an
ML.ONE_HOT_ENCODER block's the weight of the category present.

Not yet (0A000): other model types; for DNNs, TRANSFORM outputs and other encodings than the
automatic numeric and one-hot ones; for linear models, models that cannot be compiled to SQL,
and ``approx_feature_contrib`` (their attributions are exact).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from sqlml import errors, scoring
from sqlml.functions import (
    OVER_ROWS,
    REQUIRED,
    Field,
    Function,
    Scored,
    classification,
    layout,
    register,
)
from sqlml.functions.graph_outputs import ROWS, fenced, rows_with
from sqlml.functions.predict import threshold
from sqlml.functions.weights import Array, weights
from sqlml.ml.predict_sql import double, label_literal, struct
from sqlml.ml.trees import BOOSTED, FORESTS

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "EXPLAIN_PREDICT"
LINEAR_TYPES = ("linear_reg", "logistic_reg")
TREE_TYPES = (*BOOSTED, *FORESTS)  # (functions/explain_trees.py)
DNN_TYPES = ("dnn_regressor", "dnn_classifier")  # (functions/explain_dnn.py)
MODEL_TYPES = (*LINEAR_TYPES, *TREE_TYPES, *DNN_TYPES)
APPROX = "approx_feature_contrib"
STEPS = "integrated_gradients_num_steps"  # (DNN models: integrated gradients' Riemann sum)
ENCODINGS = ("numeric", "one_hot", "multi_hot")  # automatic preprocessing's
DEFAULT_TOP_K = 5
# the columns it adds to ML.PREDICT's label (an input column of one of these names is 42701)
OUTPUTS = (
    "probability",
    "top_feature_attributions",
    "baseline_prediction_value",
    "prediction_value",
    "approximation_error",
)
EXPLAINED = "__sqlml_explained"
PREFIX = f"{scoring.HIDDEN}x"


def top_k_features(value: Any) -> None:
    if value < 1:
        raise errors.InvalidParameterValue(f"top_k_features must be at least 1, not {value!r}")


def integrated_gradients_num_steps(value: Any) -> None:
    from sqlml.ml.integrated_gradients import check_steps

    check_steps(int(value))


def _prepare(session: Any, version: ModelVersion, settings: Mapping[str, Any]) -> Any:
    if version.model_type in DNN_TYPES:
        from sqlml.functions import explain_dnn

        return explain_dnn.prepare(session, version, settings)
    if version.model_type not in TREE_TYPES:
        return None
    from sqlml.functions import explain_trees

    return explain_trees.prepare(session, version, settings)


def _checked(version: ModelVersion) -> list[layout.Feature]:
    if version.model_type not in MODEL_TYPES:
        raise errors.FeatureNotSupported(
            f"ML.{NAME} is not supported for model type {version.model_type}",
            hint="sqlml explains linear_reg, logistic_reg, tree and DNN models so far",
        )
    features = layout.features(version)
    linear = version.model_type in LINEAR_TYPES
    found = []
    for info, feature in zip(version.feature_info, features, strict=True):
        numeric = feature.categories is None
        mean = (feature.stats or {}).get("mean")
        if linear and info["encoding"] not in ENCODINGS and numeric and mean is not None:
            # a TRANSFORM output used as it is (a scaler's, ML.IMPUTER's...): the linear layer
            # reads its values, centred on their training mean as a numeric column is
            feature = replace(feature, mean=float(mean))
        elif linear and info["encoding"] in layout.ONE_HOT and not numeric:
            pass  # (ML.ONE_HOT_ENCODER's block: the weight of the category present)
        elif info["encoding"] not in ENCODINGS or (numeric and feature.mean is None):
            raise errors.FeatureNotSupported(
                f"ML.{NAME} explains features of automatic preprocessing (numeric, one-hot)"
                " and a linear model's TRANSFORM outputs of one column or one-hot;"
                f" feature {feature.name} of model {version.ref} is {info['encoding']}",
                hint="its training mean was not recorded: retrain it"
                if linear and numeric
                else None,
            )
        found.append(feature)
    return found


def _attributions(
    features: Sequence[layout.Feature], matrix: Array, bias: Array, f: Sequence[exp.Expr]
) -> tuple[list[exp.Expr], list[exp.Expr], list[float]]:
    """Per output k of the linear layer: (z_k, the attribution of each feature to z_k as one
    list per k flattened feature-major, the baseline of z_k)."""
    logits, attributions, baselines = [], [], []
    for k in range(matrix.shape[1]):
        z: exp.Expr = double(float(bias[k]))
        baseline = float(bias[k])
        for feature in features:
            parts: list[exp.Expr] = []
            for j in range(feature.start, feature.start + feature.width):
                weight = float(matrix[j, k])
                z = exp.Add(this=z, expression=exp.Mul(this=double(weight), expression=f[j].copy()))
                centred: exp.Expr = f[j].copy()
                if feature.categories is None:  # (numeric: from its training mean)
                    assert feature.mean is not None
                    baseline += weight * feature.mean
                    centred = exp.Paren(
                        this=exp.Sub(this=centred, expression=double(float(feature.mean)))
                    )
                parts.append(exp.Mul(this=double(weight), expression=centred))
            attributions.append(_sum(parts))
        logits.append(z)
        baselines.append(baseline)
    return logits, attributions, baselines


def _sum(parts: Sequence[exp.Expr]) -> exp.Expr:
    total = parts[0]
    for part in parts[1:]:
        total = exp.Add(this=total, expression=part)
    return total


def _per_class(
    predicted: exp.Expr, classes: Sequence[exp.Expr], values: Sequence[exp.Expr]
) -> exp.Expr:
    """The value of the predicted class (one per class literal, in the order of ``classes``)."""
    case = exp.case()
    for label, value in zip(classes, values, strict=True):
        case = case.when(exp.EQ(this=predicted.copy(), expression=label.copy()), value)
    return case


def _sigmoid(z: exp.Expr) -> exp.Expr:
    exp_neg = exp.Exp(this=exp.Neg(this=exp.Paren(this=z)))
    return exp.Div(
        this=double(1.0), expression=exp.Paren(this=exp.Add(this=double(1.0), expression=exp_neg))
    )


def _softmax(k: int, logits: Sequence[exp.Expr]) -> exp.Expr:
    top = exp.Greatest(this=logits[0].copy(), expressions=[z.copy() for z in logits[1:]])
    shifted = [exp.Exp(this=exp.Sub(this=z.copy(), expression=top.copy())) for z in logits]
    return exp.Div(this=shifted[k].copy(), expression=exp.Paren(this=_sum(shifted)))


def _top(names: Sequence[str], values: Sequence[exp.Expr], k: int, dialect: str) -> exp.Expr:
    """The ``k`` (feature, attribution) pairs of largest absolute attribution, ties by name."""
    k = min(k, len(names))
    if dialect == "postgres":
        rows = exp.Values(
            expressions=[
                exp.Tuple(expressions=[exp.Literal.string(n), v.copy()])
                for n, v in zip(names, values, strict=True)
            ],
            alias=exp.TableAlias(
                this=exp.to_identifier("v"),
                columns=[exp.to_identifier("f"), exp.to_identifier("a")],
            ),
        )
        chosen = (
            exp.select("f", "a")
            .from_(rows)
            .order_by(exp.Ordered(this=exp.Abs(this=exp.column("a")), desc=True), "f")
            .limit(k)
        )
        template = sqlglot.parse_one(
            "(SELECT COALESCE(JSONB_AGG(JSONB_BUILD_OBJECT('feature', t.f, 'attribution', t.a)"
            " ORDER BY ABS(t.a) DESC, t.f), CAST('[]' AS JSONB)) FROM x AS t)",
            read="postgres",
        )
        table = template.find(exp.Table)
        assert table is not None
        table.replace(exp.Subquery(this=chosen, alias=exp.TableAlias(this=exp.to_identifier("t"))))
        return template
    pairs = [  # (sorted by their first field, then by the name)
        struct(o=exp.Neg(this=exp.Abs(this=v.copy())), f=exp.Literal.string(n), a=v.copy())
        for n, v in zip(names, values, strict=True)
    ]
    template = sqlglot.parse_one(
        f"LIST_TRANSFORM(LIST_SORT(x)[1:{k}], e -> {{'feature': e.f, 'attribution': e.a}})",
        read="duckdb",
    )
    column = template.find(exp.Column)
    assert column is not None
    assert column.name == "x"
    column.replace(exp.Array(expressions=pairs))
    return template


def predicted_rows(
    version: ModelVersion,
    settings: Mapping[str, Any],
    scored: Scored | None,
    tap: str,
    dialect: str,
) -> tuple[exp.Subquery, list[exp.Column], list[str], str]:
    """ML.PREDICT's rows (its inputs pass through), with the graph output ``tap`` over them:
    (the subquery aliased ROWS, the tap's columns, the rows' column names, the predicted
    label's); an input column with an output column's name is 42701."""
    assert scored is not None  # rows are REQUIRED
    outputs = scoring.output_names(version)
    given = {n.lower() for n in scored.names}
    for name in OUTPUTS:
        if name in given:
            raise errors.DuplicateColumn(
                f'the input of ML.{NAME} has a column "{name}", the name of an output column',
                hint="rename or leave out that input column",
            )
    predicted = scored.subquery(settings.get("threshold"))
    names = [*scored.names, *outputs]
    over = Scored(names, scored.subquery, predicted)
    rows, tapped = rows_with(version, over, (tap,), dialect)
    return rows, tapped[tap], names, outputs[0]


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    if settings.get(STEPS) is not None and version.model_type not in DNN_TYPES:
        raise errors.FeatureNotSupported(
            f"{STEPS} applies to DNN models, not to {version.model_type}",
            hint="leave it out: other models' attributions are exact or TreeSHAP's",
        )
    if version.model_type in TREE_TYPES:
        from sqlml.functions import explain_trees  # (which builds on this module)

        return explain_trees.render(version, settings, scored, dialect)
    features = _checked(version)
    if version.model_type in DNN_TYPES:
        from sqlml.functions import explain_dnn  # (which builds on this module)

        return explain_dnn.render(version, settings, scored, dialect)
    if settings.get(APPROX):
        raise errors.FeatureNotSupported(
            f"approx_feature_contrib applies to tree models, not to {version.model_type}",
            hint="leave it out: linear models' attributions are exact",
        )
    matrix, bias = weights(version, standardize=False)
    if matrix.shape[0] != sum(f.width for f in features):
        raise errors.CorruptedModel(f"the linear layer of model {version.ref} has another width")
    assert scored is not None
    rows, tapped, names, predicted_name = predicted_rows(
        version, settings, scored, scoring.LINEAR_FEATURES, dialect
    )
    logits, attributions, baselines = _attributions(features, matrix, bias, tapped)
    label = exp.column(predicted_name, table=ROWS, quoted=True)
    classes: list[exp.Expr] = []
    if version.model_type == "logistic_reg":
        _, label_type, known = classification.classes(version, NAME)
        classes = [label_literal(c, label_type) for c in known]
    width = len(features)
    each = [attributions[k * width : (k + 1) * width] for k in range(len(logits))]
    probability: exp.Expr | None = None
    if version.model_type == "linear_reg":
        z, base, chosen = logits[0], double(baselines[0]), each[0]
    elif len(logits) == 1:  # binary: z is the positive class's log-odds
        sign = (
            exp.case()
            .when(exp.EQ(this=label.copy(), expression=classes[-1].copy()), double(1.0))
            .else_(double(-1.0))
        )

        def signed(value: exp.Expr) -> exp.Expr:
            return exp.Mul(this=sign.copy(), expression=exp.Paren(this=value))

        z, base = signed(logits[0]), signed(double(baselines[0]))
        chosen = [signed(a) for a in each[0]]
        probability = _sigmoid(z.copy())
    else:  # multiclass: the predicted class's softmax logit
        z = _per_class(label, classes, logits)
        base = _per_class(label, classes, [double(b) for b in baselines])
        chosen = [_per_class(label, classes, [c[i] for c in each]) for i in range(width)]
        probability = _per_class(label, classes, [_softmax(k, logits) for k in range(len(logits))])
    k = int(settings.get("top_k_features") or DEFAULT_TOP_K)
    values = Explained(z, base, chosen, probability, double(0.0))
    feature_names = [f.name for f in features]
    return finish(rows, names, scored.names, predicted_name, feature_names, values, k, dialect)


@dataclass(frozen=True)
class Explained:
    """One row's explanation as expressions over the ROWS subquery: the predicted class's
    value, its baseline, each feature's attribution, its probability (None: a regressor) and
    the approximation error."""

    value: exp.Expr
    baseline: exp.Expr
    attributions: Sequence[exp.Expr]
    probability: exp.Expr | None
    error: exp.Expr


def finish(
    rows: exp.Subquery,
    names: Sequence[str],
    inputs: Sequence[str],
    predicted_name: str,
    features: Sequence[str],
    values: Explained,
    k: int,
    dialect: str = "duckdb",
) -> exp.Expr:
    """ML.EXPLAIN_PREDICT's columns over ``rows`` (aliased ROWS, with the columns ``names``):
    one level computes ``values`` once per row, the next picks the top ``k`` attributions and
    writes the columns in BigQuery's order, the ``inputs`` last (shared by the linear and the
    tree models, functions/explain_trees.py)."""
    hidden = (f"{PREFIX}{n}" for n in itertools.count())
    z_name, base_name, error_name = next(hidden), next(hidden), next(hidden)
    a_names = [next(hidden) for _ in values.attributions]
    level: list[exp.Expr] = [exp.column(n, table=ROWS, quoted=True) for n in names]
    level.append(exp.alias_(exp.cast(values.value, "DOUBLE"), z_name, quoted=True))
    level.append(exp.alias_(exp.cast(values.baseline, "DOUBLE"), base_name, quoted=True))
    level.append(exp.alias_(exp.cast(values.error, "DOUBLE"), error_name, quoted=True))
    for value, name in zip(values.attributions, a_names, strict=True):
        level.append(exp.alias_(exp.cast(value, "DOUBLE"), name, quoted=True))
    if values.probability is not None:
        level.append(exp.alias_(exp.cast(values.probability, "DOUBLE"), f"{PREFIX}p", quoted=True))
    inner = exp.Subquery(
        this=fenced(exp.select(*level).from_(rows), dialect),
        alias=exp.TableAlias(this=exp.to_identifier(EXPLAINED, quoted=True)),
    )

    def at(name: str) -> exp.Column:
        return exp.column(name, table=EXPLAINED, quoted=True)

    top = _top(features, [at(n) for n in a_names], k, dialect)
    columns: list[exp.Expr] = [exp.alias_(at(predicted_name), predicted_name, quoted=True)]
    if values.probability is not None:
        columns.append(exp.alias_(at(f"{PREFIX}p"), "probability", quoted=True))
    columns += [
        exp.alias_(top, "top_feature_attributions", quoted=True),
        exp.alias_(at(base_name), "baseline_prediction_value", quoted=True),
        exp.alias_(at(z_name), "prediction_value", quoted=True),
        exp.alias_(at(error_name), "approximation_error", quoted=True),
        *(at(n) for n in inputs),
    ]
    return exp.select(*columns).from_(inner).subquery()


EXPLAIN_PREDICT = register(
    Function(
        name=NAME,
        table=True,
        rows=REQUIRED,
        runs=OVER_ROWS,
        fields=(
            Field("top_k_features", "INT64", top_k_features),
            Field("threshold", "FLOAT64", threshold),
            Field(APPROX, "BOOL"),
            Field(STEPS, "INT64", integrated_gradients_num_steps),
        ),
        pending=("max_output_tokens",),
        render=_render,
        prepare=_prepare,
    )
)
