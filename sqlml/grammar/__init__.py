"""The SQL layer: BigQuery ML statements on DuckDB and PostgreSQL, as typed statements.

``split_script`` and ``is_ml`` read the one lexer's tokens; ``parse`` turns one statement into a
:class:`CreateModel`, :class:`DropModel`, :class:`ShowModels`, :class:`MLQuery` or, for plain
SQL, a :class:`Passthrough` that was never parsed. See :mod:`sqlml.grammar.parser`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlml.grammar.statements import (
    CreateModel,
    DropModel,
    MLQuery,
    Passthrough,
    ShowModels,
    Statement,
)

if TYPE_CHECKING:
    from sqlml.grammar.parser import parse, parse_script
    from sqlml.grammar.scan import is_ml, split_script

# The parser (sqlglot's dialects, ~0.1 s) loads on first use: the store, the CLI's `models`
# and the ML core read the statement classes only.
_LAZY = {
    "parse": "sqlml.grammar.parser",
    "parse_script": "sqlml.grammar.parser",
    "is_ml": "sqlml.grammar.scan",
    "split_script": "sqlml.grammar.scan",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


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
