"""ML.VERSIONS(MODEL m): the model's stored versions, one row each (sqlml's own; docs/sql.md,
"Model lifecycle").

Columns: version INT64, created_at TIMESTAMP, model_type STRING, metrics STRING (JSON:
ML.EVALUATE's columns on the version's evaluation rows), options STRING (JSON: every option,
defaults filled in), data_fingerprint STRING (the sha256 of the training rows' content, the
store's data_hash), training_rows INT64 (rows used: those with a label), status STRING
('serving' for the version ML.PREDICT serves, 'traffic' for another version with a share of a
traffic split, 'shadow' for the model's shadow version, else 'available'), traffic_weight
FLOAT64 (the version's percentage of the traffic split in effect; NULL: no split, or not in it),
data_warnings STRING (JSON: what validate_data found against the version that served when it
was trained; NULL: nothing, see sqlml/validation.py).

Why rendered, not computed: the rows are a query over the store tables in the engine's own SQL
(rows=NONE, no ML.PREDICT around it), so a kept plan, a cursor or a view reads the store as it
is when it runs, and PostgreSQL's row-level security shows what the role may see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import NONE, OVER_ROWS, Function, Scored, register

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "VERSIONS"
SERVING, TRAFFIC, SHADOW, AVAILABLE = "serving", "traffic", "shadow", "available"


def column(name: str, table: str) -> exp.Column:
    return exp.column(name, table, quoted=True)


def of_model(version: ModelVersion, table: str) -> exp.Expr:
    """``table``'s rows of the model ``version`` belongs to (its exact stored name)."""
    return exp.and_(
        column("schema_name", table).eq(exp.Literal.string(version.schema)),
        column("model_name", table).eq(exp.Literal.string(version.name)),
    )


def store_table(name: str, alias: str) -> exp.Table:
    return exp.table_(name, db="sqlml", quoted=True, alias=exp.to_identifier(alias, quoted=True))


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    v, m, s = "v", "m", "s"
    weight = _traffic_weight(column("settings", s), column("version", v), dialect)
    status = exp.Case(
        ifs=[
            exp.If(
                this=column("version", v).eq(column("current_version", m)),
                true=exp.Literal.string(SERVING),
            ),
            exp.If(this=weight.copy() > exp.Literal.number(0), true=exp.Literal.string(TRAFFIC)),
            exp.If(
                this=_setting(column("settings", s), ("shadow", "version"), dialect).eq(
                    exp.cast(column("version", v), _text(dialect))
                ),
                true=exp.Literal.string(SHADOW),
            ),
        ],
        default=exp.Literal.string(AVAILABLE),
    )
    joined = exp.and_(
        column("schema_name", m).eq(column("schema_name", v)),
        column("model_name", m).eq(column("model_name", v)),
    )
    settings_of = exp.and_(
        column("schema_name", s).eq(column("schema_name", v)),
        column("model_name", s).eq(column("model_name", v)),
    )
    t = "t"  # (validate_data's findings, stored with the version's statistics)
    with_statistics = exp.and_(
        column("schema_name", t).eq(column("schema_name", v)),
        column("model_name", t).eq(column("model_name", v)),
        column("version", t).eq(column("version", v)),
    )
    query = (
        exp.select(
            exp.alias_(column("version", v), "version", quoted=True),
            exp.alias_(column("created_at", v), "created_at", quoted=True),
            exp.alias_(column("model_type", v), "model_type", quoted=True),
            exp.alias_(column("metrics", v), "metrics", quoted=True),
            exp.alias_(column("options", v), "options", quoted=True),
            exp.alias_(column("data_hash", v), "data_fingerprint", quoted=True),
            exp.alias_(column("row_count", v), "training_rows", quoted=True),
            exp.alias_(status, "status", quoted=True),
            exp.alias_(weight, "traffic_weight", quoted=True),
            exp.alias_(column("warnings", t), "data_warnings", quoted=True),
        )
        .from_(store_table("versions", v))
        .join(store_table("models", m), on=joined)
        .join(store_table("model_settings", s), on=settings_of, join_type="left")
        .join(store_table("version_statistics", t), on=with_statistics, join_type="left")
        .where(of_model(version, v))
        .order_by(column("version", v))
    )
    return query.subquery()


def _traffic_weight(settings: exp.Expr, version: exp.Expr, dialect: str) -> exp.Expr:
    """settings' traffic.weights["<version>"] as a number (NULL: none)."""
    weight = _setting(settings, ("traffic", "weights", exp.cast(version, _text(dialect))), dialect)
    return exp.cast(weight, exp.DataType.build("DOUBLE"))


def _setting(settings: exp.Expr, path: tuple[str | exp.Expr, ...], dialect: str) -> exp.Expr:
    """The text at ``path`` in the settings' JSON (NULL: none): JSON's -> and ->>, which DuckDB
    and PostgreSQL both have."""
    found: exp.Expr = exp.cast(settings, exp.DataType.build("JSON"))
    for i, step in enumerate(path):
        part = exp.Literal.string(step) if isinstance(step, str) else step
        last = i == len(path) - 1
        found = (exp.JSONExtractScalar if last else exp.JSONExtract)(this=found, expression=part)
    return found


def _text(dialect: str) -> exp.DataType:
    return exp.DataType.build("VARCHAR" if dialect == "duckdb" else "TEXT")


VERSIONS = register(Function(name=NAME, table=True, rows=NONE, runs=OVER_ROWS, render=_render))
