"""ML.EXPLAIN_PREDICT of boosted_tree_regressor / _classifier and random_forest_regressor /
_classifier models: TreeSHAP, as BigQuery explains its tree models (docs/design/explanations.md).

What it needs. TreeSHAP weighs each path through a tree by how many training rows reached each
node (the node's cover); sqlml's ONNX tree ensembles hold thresholds and leaves, not covers. So a
tree version keeps its fitted XGBoost model too, in XGBoost's stable JSON format
(``Booster.save_raw("json")``, never pickle) in ``sqlml.version_boosters``, written in the
transaction that stores the version and dropped with it (store.py). A version stored before has
none: explaining it is 0A000, with a hint to retrain it.

How it runs, inside the engine's own query (the rows never leave it):

1. ML.PREDICT's rows (its predicted label, hence the class to explain, at the threshold given);
2. over them, the rows as the tree ensemble reads them: the graph's preprocessing (numeric
   columns imputed with the training mean, categories label-encoded or one-hot), compiled to
   SQL from a tap of the ensemble's input (scoring.TREE_FEATURES);
3. the engine's TreeSHAP function over those features and the class's index:
   ``sqlml_treeshap`` (DuckDB: a Python UDF over Arrow vectors, which finds the XGBoost JSON in
   the registry the engine put it in, as it does a graph for runtime scoring) or
   ``sqlml.explain_trees`` (PostgreSQL: PL/Python over chunks of rows, ``_batched``, which
   loads the JSON by its sha256 from the store with the caller's rights); both run
   sqlml/ml/treeshap.py: XGBoost's own
   ``pred_contribs`` (``approx_contribs`` with ``approx_feature_contrib``), the booster loaded
   once per process;
4. each input column's attribution: its feature's contribution (label-encoded: one feature per
   column), or the sum of its one-hot block's.

Columns (explain_predict.finish): ``prediction_value`` is the regressor's prediction (ML.PREDICT's
value) or the predicted class's margin in log-odds (XGBoost's ``output_margin``: multiclass, the
class's softmax logit), ``baseline_prediction_value`` XGBoost's bias term (its expected margin
over the training rows), so baseline + the attributions = prediction_value up to XGBoost's float32
sums; ``probability`` the predicted class's (XGBoost's). A binary model's margin is the positive
class's log-odds: when the negative class is predicted, the margin, the baseline and every
attribution are negated, as for logistic_reg. ``approximation_error`` is 0 for TreeSHAP (exact);
with ``approx_feature_contrib`` BigQuery's |prediction - baseline - sum| / |prediction - baseline|.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml import errors, scoring
from sqlml.functions import Scored, classification, layout
from sqlml.functions.explain_predict import (
    APPROX,
    DEFAULT_TOP_K,
    NAME,
    Explained,
    finish,
    predicted_rows,
)
from sqlml.functions.graph_outputs import ROWS
from sqlml.ml import models
from sqlml.ml.predict_sql import double, label_literal

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

BOOSTER = "__sqlml_booster"  # the setting prepare adds: the XGBoost JSON's sha256
DUCKDB_FUNCTION = "sqlml_treeshap"  # udfs/duckdb_udfs.py
POSTGRES_FUNCTION = "sqlml.explain_trees"  # sql/postgres/functions.sql
VALUES = f"{scoring.HIDDEN}xs"
SHAPED = f"{scoring.HIDDEN}shaped"


def prepare(session: Any, version: ModelVersion, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The sha256 of the version's XGBoost JSON (0A000 when it has none), its bytes registered
    with an engine whose function reads them from its registry (DuckDB)."""
    key = session.store.booster_sha(version)
    if key is None:
        raise errors.FeatureNotSupported(
            f"model {version.ref} version {version.version} was stored without its XGBoost"
            f" model, which ML.{NAME} needs for TreeSHAP",
            hint="train it again (CREATE OR REPLACE MODEL): versions stored since sqlml keeps"
            " it can be explained",
        )
    if session.engine.dialect == "duckdb":
        booster = session.store.booster(version)
        assert booster is not None
        session.engine.register_scorer(key, booster, [], ())
    return {BOOSTER: key}


def render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    approx = bool(settings.get(APPROX))
    head = _head(str(settings[BOOSTER]), approx)
    functions = (POSTGRES_FUNCTION, DUCKDB_FUNCTION)
    tap = (scoring.TREE_FEATURES, "tree ensemble")
    return by_function(version, settings, scored, dialect, tap, functions, head, approx)


def by_function(
    version: ModelVersion,
    settings: Mapping[str, Any],
    scored: Scored | None,
    dialect: str,
    tap: tuple[str, str],
    functions: tuple[str, str],
    head: Sequence[exp.Expr],
    approximate: bool,
) -> exp.Expr:
    """ML.EXPLAIN_PREDICT's rows where an engine function computes the attributions (TreeSHAP
    here; the DNNs' integrated gradients, explain_dnn.py): ML.PREDICT's rows, the model's input
    features over them from the graph output ``tap`` (its name, and what reads it, for the
    error), then ``functions`` (PostgreSQL's, in chunks; DuckDB's UDF) with their leading
    arguments ``head`` and the class's index, each column's attribution the sum of its
    features'; ``approximate``: approximation_error is BigQuery's formula, not 0."""
    features = layout.features(version)
    rows, tapped, names, predicted_name = predicted_rows(version, settings, scored, tap[0], dialect)
    width = sum(f.width for f in features)
    if len(tapped) != width:
        raise errors.CorruptedModel(f"the {tap[1]} of model {version.ref} has another width")
    assert scored is not None
    label = exp.column(predicted_name, table=ROWS, quoted=True)
    classes: list[exp.Expr] = []
    if version.kind == models.CLASSIFIER:
        _, label_type, known = classification.classes(version, NAME)
        classes = [label_literal(c, label_type) for c in known]
    index = class_index(label, classes)
    if dialect == "postgres":
        shaped = batched(rows, names, tapped, index, functions[0], head, width + 3)
    else:
        call = exp.Anonymous(
            this=functions[1],
            expressions=[*(h.copy() for h in head), index, *(f.copy() for f in tapped)],
        )
        star = [exp.column(n, table=ROWS, quoted=True) for n in names]
        level = exp.select(*star, exp.alias_(call, VALUES, quoted=True)).from_(rows)
        shaped = aliased(level, ROWS)
    values = explained(element(dialect), features, width, label, classes, approximate)
    k = int(settings.get("top_k_features") or DEFAULT_TOP_K)
    return finish(
        shaped, names, scored.names, predicted_name, [f.name for f in features], values, k, dialect
    )


def class_index(label: exp.Expr, classes: Sequence[exp.Expr]) -> exp.Expr:
    """The index of the class explained: the predicted one's (multiclass), else 0 (the only
    margin of a regressor or a binary model)."""
    if len(classes) <= 2:
        return exp.Literal.number(0)
    case = exp.case()
    for k, value in enumerate(classes):
        case = case.when(exp.EQ(this=label.copy(), expression=value.copy()), exp.Literal.number(k))
    return case.else_(exp.Literal.number(0))


def _head(key: str, approx: bool) -> list[exp.Expr]:
    return [exp.Literal.string(key), exp.Boolean(this=approx)]


def aliased(query: exp.Expr, alias: str) -> exp.Subquery:
    return exp.Subquery(
        this=query, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


def batched(
    rows: exp.Subquery,
    names: Sequence[str],
    features: Sequence[exp.Column],
    index: exp.Expr,
    function: str,
    head: Sequence[exp.Expr],
    width: int,
) -> exp.Subquery:
    """PostgreSQL: the rows with their explanation's values as columns ``<VALUES>0, 1, ...``,
    one call of the PL/Python ``function`` (its leading arguments ``head``: the model's key and
    its settings) per chunk of BATCH_ROWS rows (as ML.PREDICT's runtime scoring,
    scoring.batch_predict); TreeSHAP's, and the DNNs' integrated gradients (explain_dnn.py):

        WITH numbered AS MATERIALIZED (SELECT rows.*, <class> AS k, row_number() OVER () AS rn
                                       FROM rows),
             batches AS (SELECT array_agg(rn) AS rns, sqlml.explain_trees(key, approx,
                             array_send(array_agg(k)), VARIADIC ARRAY[array_send(array_agg(
                             coalesce(f, 'NaN'))), ...]) AS vals, count(*) AS n
                         FROM numbered GROUP BY (rn - 1) / BATCH_ROWS)
        SELECT numbered.<names>, u.v0, u.v1, ...
        FROM batches AS b CROSS JOIN unnest(b.rns, b.vals[1:n], b.vals[n + 1:2 * n], ...)
            AS u(rn, v0, v1, ...) JOIN numbered ON numbered.rn = u.rn

    The function returns its values output by output (every row's first, then every row's
    second...), so that each is one slice per chunk; the aggregates of a group see its rows in
    one order; the rows go back by their number, so the input's columns pass through whatever
    their types (array_agg would not take them all)."""
    numbered, batches = f"{scoring.HIDDEN}numbered", f"{scoring.HIDDEN}batches"
    rn, k = f"{scoring.HIDDEN}rn", f"{scoring.HIDDEN}k"

    def at(name: str, table: str) -> exp.Column:
        return exp.column(name, table=table, quoted=True)

    def sent(value: exp.Expr) -> exp.Expr:
        return exp.Anonymous(this="array_send", expressions=[exp.ArrayAgg(this=value)])

    star = exp.Column(this=exp.Star(), table=exp.to_identifier(ROWS, quoted=True))
    number = exp.Window(this=exp.RowNumber())
    first = exp.select(
        star, exp.alias_(index, k, quoted=True), exp.alias_(number, rn, quoted=True)
    ).from_(rows)
    nan = exp.cast(exp.Literal.string("NaN"), exp.DataType.build("DOUBLE"))
    sends = [sent(exp.func("coalesce", at(f.name, numbered), nan.copy())) for f in features]
    call = exp.Anonymous(
        this=function,
        expressions=[
            *(h.copy() for h in head),
            sent(at(k, numbered)),
            exp.Variadic(this=exp.Array(expressions=sends)),
        ],
    )
    chunk = exp.Div(
        this=exp.Paren(this=exp.Sub(this=at(rn, numbered), expression=exp.Literal.number(1))),
        expression=exp.Literal.number(scoring.BATCH_ROWS),
        typed=True,
    )
    second = (
        exp.select(
            exp.alias_(exp.ArrayAgg(this=at(rn, numbered)), "rns", quoted=True),
            exp.alias_(call, "vals", quoted=True),
            exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True),
        )
        .from_(exp.to_table(numbered, quoted=True))
        .group_by(chunk)
    )
    count = at("n", "b")
    slices = [
        exp.Bracket(
            this=at("vals", "b"),
            expressions=[
                exp.Slice(
                    this=exp.Add(
                        this=exp.Mul(this=exp.Literal.number(i), expression=count.copy()),
                        expression=exp.Literal.number(1),
                    ),
                    expression=exp.Mul(this=exp.Literal.number(i + 1), expression=count.copy()),
                )
            ],
            offset=1,
        )
        for i in range(width)
    ]
    columns = [_column(i) for i in range(width)]
    unnest = exp.Unnest(
        expressions=[at("rns", "b"), *slices],
        alias=exp.TableAlias(
            this=exp.to_identifier("u"),
            columns=[exp.to_identifier(c, quoted=True) for c in [rn, *columns]],
        ),
    )
    back = exp.EQ(this=at(rn, numbered), expression=at(rn, "u"))
    query = (
        exp.select(
            *(at(n, numbered) for n in names),
            *(exp.alias_(at(c, "u"), c, quoted=True) for c in columns),
        )
        .from_(exp.to_table(batches, quoted=True).as_("b"))
        .join(unnest, join_type="cross")
        .join(exp.to_table(numbered, quoted=True), on=back)
        .with_(exp.to_identifier(numbered, quoted=True), as_=first, materialized=True)
        .with_(exp.to_identifier(batches, quoted=True), as_=second)
    )
    return aliased(query, ROWS)


def _column(i: int) -> str:
    return f"{VALUES}{i}"


def element(dialect: str) -> Callable[[int], exp.Expr]:
    """Value ``i`` (0-based) of the TreeSHAP function's, over ROWS: an element of its list
    (DuckDB) or a column of its own (PostgreSQL's batches)."""

    def listed(i: int) -> exp.Expr:
        values = exp.column(VALUES, table=ROWS, quoted=True)
        return exp.Bracket(this=values, expressions=[exp.Literal.number(i + 1)], offset=1)

    def column(i: int) -> exp.Expr:
        return exp.column(_column(i), table=ROWS, quoted=True)

    return column if dialect == "postgres" else listed


def _sum(parts: Sequence[exp.Expr]) -> exp.Expr:
    total = parts[0]
    for part in parts[1:]:
        total = exp.Add(this=total, expression=part)
    return exp.Paren(this=total)


def explained(
    at: Callable[[int], exp.Expr],
    features: Sequence[layout.Feature],
    width: int,
    label: exp.Expr,
    classes: Sequence[exp.Expr],
    approx: bool,
) -> Explained:
    attributions = [
        _sum([at(j) for j in range(f.start, f.start + f.width)]) if f.width else double(0.0)
        for f in features
    ]
    base, margin, output = at(width), at(width + 1), at(width + 2)
    probability: exp.Expr | None = None
    if not classes:  # a regressor: ML.PREDICT's value, as BigQuery documents
        value: exp.Expr = label.copy()
    elif len(classes) == 2:  # the positive class's log-odds, negated for the negative class
        positive = exp.EQ(this=label.copy(), expression=classes[-1].copy())
        sign = exp.case().when(positive, double(1.0)).else_(double(-1.0))

        def signed(part: exp.Expr) -> exp.Expr:
            return exp.Mul(this=sign.copy(), expression=exp.Paren(this=part))

        value, base = signed(margin), signed(base)
        attributions = [signed(a) for a in attributions]
        probability = (
            exp.case()
            .when(positive.copy(), output)
            .else_(exp.Sub(this=double(1.0), expression=output.copy()))
        )
    else:
        value, probability = margin, output
    error: exp.Expr = double(0.0)
    if approx:
        error = _error(value, base, attributions)
    return Explained(value, base, attributions, probability, error)


def _error(value: exp.Expr, base: exp.Expr, attributions: Sequence[exp.Expr]) -> exp.Expr:
    """BigQuery's approximation error: |value - base - sum| / |value - base| (0 when the
    prediction is the baseline)."""
    spread = exp.Paren(this=exp.Sub(this=value.copy(), expression=base.copy()))
    rest = exp.Sub(this=spread.copy(), expression=_sum([a.copy() for a in attributions]))
    return (
        exp.case()
        .when(exp.EQ(this=spread.copy(), expression=double(0.0)), double(0.0))
        .else_(
            exp.Div(
                this=exp.Abs(this=rest),
                expression=exp.Abs(this=spread.copy()),
                typed=True,
            )
        )
    )
