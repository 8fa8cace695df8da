"""Literal values and names read from parse trees: OPTIONS values, STRUCT fields, model names.

Names follow the DuckDB/PostgreSQL convention: an unquoted identifier folds to lower case, a
quoted one (``"Name"`` or `` `Name` ``) is kept exactly as written.
"""

from __future__ import annotations

from sqlglot import exp

from sqlml import errors
from sqlml.grammar import nodes
from sqlml.grammar.statements import ModelRef
from sqlml.ml.spec import HparamCandidates, HparamRange, OptionValue

HPARAM_FUNCTIONS = ("HPARAM_RANGE", "HPARAM_CANDIDATES")


def fold(ident: exp.Expr | None) -> str | None:
    """An identifier's name: lower case unless it was quoted."""
    if ident is None:
        return None
    if isinstance(ident, exp.Identifier) and ident.quoted:
        return str(ident.this)
    return ident.name.lower()


def model_ref(table: exp.Table) -> ModelRef:
    """``schema.model`` from the parser's Table node (names folded), with the version of
    ``MODEL m VERSION n`` that the parser noted on it."""
    version = table.meta.get(nodes.VERSION)
    return ModelRef(
        schema=fold(table.args.get("db")),
        name=fold(table.this) or "",
        catalog=fold(table.args.get("catalog")),
        version=int(version) if version is not None else None,
    )


def quoted_table(table: exp.Table) -> exp.Table:
    """The same table with every part folded and quoted, to generate safe SQL from."""
    parts = {
        key: exp.to_identifier(fold(table.args.get(key)), quoted=True)
        for key in ("catalog", "db", "this")
        if table.args.get(key) is not None
    }
    return exp.Table(**parts)


def to_value(node: exp.Expr, what: str) -> OptionValue:
    """A literal (string, number, TRUE/FALSE, NULL), an array of them (a tuple) or a STRUCT (a
    tuple of its field values); anything else is a 22023 naming ``what``.

    A double-quoted word is read as a string, as BigQuery does (``model_type = "linear_reg"``):
    where a literal is required it cannot name a column."""
    if isinstance(node, exp.Literal):
        return str(node.this) if node.is_string else _number(node, what)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and node.this.is_number:
        value = _number(node.this, what)
        return -value
    if isinstance(node, exp.Column) and not node.table and node.this.args.get("quoted"):
        return str(node.name)  # "text": a string, as in BigQuery
    if isinstance(node, exp.Array | exp.Tuple):  # (a tuple: BigQuery's labels' pairs)
        return tuple(to_value(item, what) for item in node.expressions)
    if isinstance(node, exp.Struct):
        return tuple(to_value(field_value(item), what) for item in node.expressions)
    if isinstance(node, exp.Anonymous) and str(node.this).upper() in HPARAM_FUNCTIONS:
        return _search_space(node, what)
    raise errors.InvalidParameterValue(
        f"{what} must be a literal value, not {nodes.text_of(node)}",
        position=nodes.start_of(node),
    )


def _search_space(node: exp.Anonymous, what: str) -> HparamRange | HparamCandidates:
    """``HPARAM_RANGE(min, max)`` or ``HPARAM_CANDIDATES([v, ...])`` (BigQuery's hyperparameter
    tuning; which options take one, and their valid ranges, is ml/tuning.py's to check)."""
    function = str(node.this).upper()
    args = [to_value(arg, what) for arg in node.expressions]
    if function == "HPARAM_RANGE":
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if len(args) != 2 or len(numbers) != 2:
            raise errors.InvalidParameterValue(
                f"{what}: HPARAM_RANGE takes two numbers, the search space's minimum and maximum",
                position=nodes.start_of(node),
            )
        low, high = float(numbers[0]), float(numbers[1])
        if low > high:
            raise errors.InvalidParameterValue(
                f"{what}: HPARAM_RANGE({low:g}, {high:g}) has its minimum above its maximum",
                position=nodes.start_of(node),
            )
        return HparamRange(low, high)
    if len(args) != 1 or not isinstance(args[0], tuple) or not args[0]:
        raise errors.InvalidParameterValue(
            f"{what}: HPARAM_CANDIDATES takes one non-empty array of values, e.g."
            " HPARAM_CANDIDATES(['ADAM', 'SGD'])",
            position=nodes.start_of(node),
        )
    return HparamCandidates(args[0])


def field_value(item: exp.Expr) -> exp.Expr:
    """The value of one STRUCT field (``value`` or ``value AS name``)."""
    if isinstance(item, exp.PropertyEQ | exp.Alias):
        value = item.expression if isinstance(item, exp.PropertyEQ) else item.this
        return value if isinstance(value, exp.Expr) else item
    return item


def field_name(item: exp.Expr) -> str | None:
    """The name of one STRUCT field (None when it has none)."""
    if isinstance(item, exp.PropertyEQ):
        return fold(item.this)
    if isinstance(item, exp.Alias):
        return fold(item.args.get("alias"))
    return None


def _number(node: exp.Literal, what: str) -> int | float:
    text = str(node.this).replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as e:
        raise errors.InvalidParameterValue(f"{what}: {text} is not a number") from e
