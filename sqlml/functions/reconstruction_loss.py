"""ML.RECONSTRUCTION_LOSS(MODEL m, {(query) | TABLE t}): how well a pca or autoencoder model
reconstructs each row, computed in the engine's SQL (functions/graph_outputs.py).

Columns (BigQuery's): mean_absolute_error, mean_squared_error, mean_squared_log_error (FLOAT64),
then the input's columns; one row per input row. Each is the mean over the row's features, in the
space the model reconstructs: the preprocessed features (numeric ones standardized, categorical
ones one-hot), as ML.EVALUATE's metrics of these models. mean_squared_log_error is NULL for a
row with a value (feature or reconstruction) of -1 or below, where the logarithm has no value
(standardized features often are). An autoencoder reconstructs through its network; a PCA model
projects the row onto its components and back (mean + z C). BigQuery documents the function for
autoencoder models; sqlml also takes PCA models, whose reconstruction is as well defined. Other
model types are 0A000; rows are required (42601 without them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import OVER_ROWS, REQUIRED, Function, Scored, register
from sqlml.functions import not_supported as refused
from sqlml.functions.graph_outputs import (
    check_names,
    fenced,
    input_columns,
    layered,
    rows_with,
)
from sqlml.ml.predict_sql import double

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "RECONSTRUCTION_LOSS"
RECONSTRUCTS = ("pca", "autoencoder")
COLUMNS = ("mean_absolute_error", "mean_squared_error", "mean_squared_log_error")
LEVEL = "__sqlml_reconstructed"


def reconstructed(
    version: ModelVersion, scored: Scored, dialect: str
) -> tuple[exp.Subquery, list[exp.Column], list[exp.Column]]:
    """The rows with each preprocessed feature and its reconstruction as hidden columns:
    (the subquery aliased LEVEL, the features' columns, the reconstructions' columns)."""
    if version.model_type == "pca":
        rows, outputs = rows_with(version, scored, ("features", "components"), dialect)
        features = outputs["features"]
        back = _pca_back(version, outputs["components"])
    else:
        rows, features, columns = layered(version, scored, "reconstruction", dialect)
        back = list(columns)
    hidden = [
        *(exp.alias_(f, f"__sqlml_f{j}", quoted=True) for j, f in enumerate(features)),
        *(exp.alias_(r, f"__sqlml_r{j}", quoted=True) for j, r in enumerate(back)),
    ]
    query = fenced(exp.select(*input_columns(scored), *hidden).from_(rows), dialect)
    level = exp.Subquery(
        this=query, alias=exp.TableAlias(this=exp.to_identifier(LEVEL, quoted=True))
    )

    def named(prefix: str) -> list[exp.Column]:
        return [exp.column(f"{prefix}{j}", table=LEVEL, quoted=True) for j in range(len(features))]

    return level, named("__sqlml_f"), named("__sqlml_r")


def _pca_back(version: ModelVersion, components: list[exp.Column]) -> list[exp.Expr]:
    """r_j = mean_j + sum_k z_k C_kj: the row projected back from its components."""
    loadings = version.training_info["principal_components"]
    means = version.training_info["mean"]
    return [
        add([double(mean), *(exp.Mul(this=z.copy(), expression=double(row[j]))
                             for z, row in zip(components, loadings, strict=True))])
        for j, mean in enumerate(means)
    ]  # fmt: skip


def add(terms: list[exp.Expr]) -> exp.Expr:
    total = terms[0]
    for term in terms[1:]:
        total = exp.Add(this=total, expression=term)
    return exp.paren(total)


def mean_of(terms: list[exp.Expr]) -> exp.Expr:
    return exp.Div(this=add(terms), expression=double(float(len(terms))))


def squared_error(features: list[exp.Column], back: list[exp.Column]) -> exp.Expr:
    """The row's mean squared error over its features."""
    return mean_of([_square(exp.Sub(this=f.copy(), expression=r.copy()))
                    for f, r in zip(features, back, strict=True)])  # fmt: skip


def _square(value: exp.Expr) -> exp.Expr:
    return exp.Pow(this=exp.paren(value), expression=exp.Literal.number(2))


def _log1p(value: exp.Column) -> exp.Expr:
    return exp.Ln(this=exp.Add(this=exp.Literal.number(1), expression=value.copy()))


def _losses(features: list[exp.Column], back: list[exp.Column]) -> list[exp.Expr]:
    pairs = list(zip(features, back, strict=True))
    absolute = mean_of(
        [exp.Abs(this=exp.Sub(this=f.copy(), expression=r.copy())) for f, r in pairs]
    )
    logged = mean_of([_square(exp.Sub(this=_log1p(f), expression=_log1p(r))) for f, r in pairs])
    above = [
        exp.GT(this=c.copy(), expression=exp.Literal.number(-1)) for pair in pairs for c in pair
    ]
    defined = exp.and_(*above)
    return [absolute, squared_error(features, back), exp.case().when(defined, logged)]


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    if version.model_type not in RECONSTRUCTS:
        raise refused(NAME, version.model_type)
    assert scored is not None  # rows are REQUIRED
    check_names(scored, list(COLUMNS), NAME)
    level, features, back = reconstructed(version, scored, dialect)
    losses = [
        exp.alias_(exp.cast(value, "DOUBLE"), name, quoted=True)
        for value, name in zip(_losses(features, back), COLUMNS, strict=True)
    ]
    inputs = [exp.column(n, table=LEVEL, quoted=True) for n in scored.names]
    return exp.select(*losses, *inputs).from_(level).subquery()


RECONSTRUCTION_LOSS = register(
    Function(name=NAME, table=True, rows=REQUIRED, runs=OVER_ROWS, render=_render)
)
