"""ML.DEPLOYMENTS(MODEL m): the audit trail of the model's serving version, one row per change
(sqlml's own; docs/sql.md, "Model lifecycle"), oldest first.

Columns: deployment_id INT64, version INT64 (serving from deployed_at), previous_version INT64
(NULL: the model's first), action STRING ('create': a CREATE MODEL whose version serves;
'deploy'; 'rollback'; 'traffic' and 'clear traffic': a traffic split set or ended),
deployed_at TIMESTAMP, served_until TIMESTAMP (the next change; NULL for the one in effect), role
STRING (PostgreSQL: current_user; DuckDB: the OS user or NULL), comment STRING, metrics STRING
(JSON: the numbers that gated a deploy = 'if_better'), settings STRING (JSON: the traffic split
the change left in effect, {} when it ended one; NULL: unchanged).

A query over sqlml.deployments in the engine's own SQL, as ML.VERSIONS (functions/versions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sqlml.functions import NONE, OVER_ROWS, Function, Scored, register
from sqlml.functions.versions import column, of_model, store_table

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

NAME = "DEPLOYMENTS"
_COLUMNS = ("deployment_id", "version", "previous_version", "action", "deployed_at")
_AFTER = ("role", "comment", "metrics", "settings")


def _render(
    version: ModelVersion, settings: Mapping[str, Any], scored: Scored | None, dialect: str
) -> exp.Expr:
    d = "d"
    order = exp.Order(expressions=[exp.Ordered(this=column("deployment_id", d))])
    until = exp.Window(
        this=exp.Anonymous(this="lead", expressions=[column("deployed_at", d)]), order=order
    )
    query = (
        exp.select(
            *(exp.alias_(column(c, d), c, quoted=True) for c in _COLUMNS),
            exp.alias_(until, "served_until", quoted=True),
            *(exp.alias_(column(c, d), c, quoted=True) for c in _AFTER),
        )
        .from_(store_table("deployments", d))
        .where(of_model(version, d))
        .order_by(column("deployment_id", d))
    )
    return query.subquery()


DEPLOYMENTS = register(Function(name=NAME, table=True, rows=NONE, runs=OVER_ROWS, render=_render))
