"""The SQL layer: BigQuery ML statements on DuckDB and PostgreSQL, as typed statements.

``split_script`` and ``is_ml`` read the one lexer's tokens; ``parse`` turns one statement into a
:class:`CreateModel`, :class:`DropModel`, :class:`ShowModels`, :class:`MLQuery` or, for plain
SQL, a :class:`Passthrough` that was never parsed. See :mod:`sqlml.grammar.parser`.
"""

from __future__ import annotations

from sqlml.grammar.parser import parse, parse_script
from sqlml.grammar.scan import is_ml, split_script
from sqlml.grammar.statements import (
    CreateModel,
    DropModel,
    MLQuery,
    Passthrough,
    ShowModels,
    Statement,
)

__all__ = [
    "CreateModel",
    "DropModel",
    "MLQuery",
    "Passthrough",
    "ShowModels",
    "Statement",
    "is_ml",
    "parse",
    "parse_script",
    "split_script",
]
