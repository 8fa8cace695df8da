"""ML.REPORT(MODEL m): the model report (docs/report.md) as one row, one column ``html``
STRING: a self-contained HTML page (plotly.js inlined) with the model's metrics by version,
evaluation curves, confusion matrix, feature importance, training loss, trials and the skew of
its logged inputs, each where it applies (sqlml's own; ``sqlml report`` writes the same page to
a file). ``MODEL m VERSION n`` reports that version instead of the serving one.

Why a data function (OVER_DATA without inputs): the page is computed now, when the statement
is written, from the statements of :mod:`sqlml.report`, run on the session that writes it, so
it is never kept as a plan (a new prediction log day or deploy shows next time), it works on
every front door (sqlml.connect on DuckDB and PostgreSQL, the gateway over either, sqlml.ml in
the PostgreSQL server when plotly is on the server's Python path), and it shows what the
session's role may see.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from sqlml import errors
from sqlml.functions import NONE, OVER_DATA, REQUIRED, Column, DataArgs, Function, Row, register

if TYPE_CHECKING:
    pass

NAME = "REPORT"
COLUMNS = [Column("html", "STRING")]


def _report(args: DataArgs) -> list[Row]:
    from sqlml import report, report_page

    assert args.version is not None
    if importlib.util.find_spec("plotly") is None:  # (a dependency, maybe not a server's)
        raise errors.FeatureNotSupported(
            f"ML.{NAME} needs plotly, which this Python cannot import",
            hint="pip install plotly (in PostgreSQL: into the server's Python path)",
        )
    assert args.query is not None  # (the engine's: Session.statement_rows)
    gathered = report.gather(args.query, args.version, args.statistics, args.dialect)
    return [(report_page.page(gathered),)]


REPORT = register(
    Function(
        name=NAME,
        table=True,
        rows=NONE,
        runs=OVER_DATA,
        columns=lambda version, settings: COLUMNS,
        data=_report,
        model=REQUIRED,
        sources=0,
    )
)
