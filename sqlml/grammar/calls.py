"""Queries with ML calls inside: typed calls plus a template with a slot where each call stood.

``ML.PREDICT`` and ``ML.EVALUATE`` are table functions (FROM/JOIN); ``ML.SCORE`` is a scalar
function (any expression). Each call becomes a typed :class:`Predict`, :class:`Evaluate` or
:class:`Score`, and its place in the tree a :class:`~sqlml.grammar.nodes.CallSlot` numbered in
the order the calls appear in the text; :func:`sqlml.grammar.render.render` fills the slots.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlml import errors
from sqlml.grammar import nodes
from sqlml.grammar.nodes import TRANSFORM_FUNCTIONS
from sqlml.grammar.statements import Evaluate, MLCall, MLQuery, Predict, Query, Score
from sqlml.grammar.values import field_name, field_value, fold, model_ref, quoted_table, to_value
from sqlml.ml.options import closest
from sqlml.ml.spec import OptionValue

TABLE_FUNCTIONS = ("PREDICT", "EVALUATE")
SCORE_ALIAS = "score"  # the name of an unnamed ML.SCORE column, as PostgreSQL names a call
_TABLE_KEYS = {"this", "db", "alias"}


def ml_query(tree: exp.Expr, dialect: str, flavour: Dialect) -> MLQuery | None:
    """The MLQuery of ``tree`` (modified in place into the template); None without ML calls."""
    found = sorted(_ml_nodes(tree), key=lambda n: n.meta.get(nodes.START, 0))
    if not found:
        return None
    calls = tuple(_typed(node, flavour) for node in found)
    for slot, node in enumerate(found):
        _place(node, slot)
    if not isinstance(tree, exp.Expression):  # every concrete sqlglot node is one
        raise errors.InternalError(f"unexpected parse tree {type(tree).__name__}")
    return MLQuery(template=tree, calls=calls, dialect=dialect)


def _ml_nodes(tree: exp.Expr) -> list[exp.Expr]:
    found: list[exp.Expr] = [
        node
        for node in tree.find_all(exp.Predict, nodes.MLFunction)
        if nodes.START in node.meta  # an ML.<name>( call, not a PREDICT() function of the engine
    ]
    for node in found:
        outer = node.find_ancestor(exp.Predict, nodes.MLFunction)
        if outer is not None:
            raise errors.FeatureNotSupported(
                f"ML calls inside ML.{_name(outer)}(...) are not supported",
                position=nodes.start_of(node),
            )
    return found


def _name(node: exp.Expr) -> str:
    return "PREDICT" if isinstance(node, exp.Predict) else node.name


def _typed(node: exp.Expr, flavour: Dialect) -> MLCall:
    name, position = _name(node), nodes.start_of(node)
    if name not in (*TABLE_FUNCTIONS, "SCORE"):
        where = " outside TRANSFORM" if name in TRANSFORM_FUNCTIONS else ""
        raise errors.FeatureNotSupported(f"ML.{name} is not supported{where}", position=position)
    in_from = _in_from(node)
    if name in TABLE_FUNCTIONS and not in_from:
        raise errors.SyntaxError(
            f"ML.{name} is a table function: use it in FROM or JOIN", position=position
        )
    if name == "SCORE" and (in_from or isinstance(node.parent and node.parent.parent, exp.Window)):
        raise errors.SyntaxError("ML.SCORE is a scalar function, not a table", position=position)
    return _BUILDERS[name](node, flavour)


def _in_from(node: exp.Expr) -> bool:
    return isinstance(node.parent, exp.Table) and node.arg_key == "this"


# The STRUCT fields each table function takes: sqlml's, and BigQuery ML's that sqlml does not
# implement yet (0A000). Any other name is 22023 with the closest field as the hint.
FIELDS = {"PREDICT": ("threshold", "scoring"), "EVALUATE": ("threshold",)}
PENDING_FIELDS = {
    "PREDICT": ("keep_original_columns", "trial_id"),
    "EVALUATE": ("perform_aggregation", "horizon", "confidence_level", "trial_id"),
}


def _predict(node: exp.Expr, flavour: Dialect) -> MLCall:
    threshold, settings = _struct(node.args.get("params_struct"), "PREDICT")
    source = _input(node.expression, flavour)
    assert source is not None  # the parser requires it
    return Predict(model_ref(node.this), source, threshold, settings)


def _evaluate(node: exp.Expr, flavour: Dialect) -> MLCall:
    args = node.expressions
    source = next((a for a in args if isinstance(a, exp.Table | exp.Subquery)), None)
    struct = next((a for a in args if isinstance(a, exp.Struct)), None)
    threshold, settings = _struct(struct, "EVALUATE")
    return Evaluate(model_ref(node.args["model"]), _input(source, flavour), threshold, settings)


def _score(node: exp.Expr, flavour: Dialect) -> MLCall:
    qualifier = fold(node.expressions[0].this) if node.expressions else None
    return Score(model_ref(node.args["model"]), qualifier)


_BUILDERS = {"PREDICT": _predict, "EVALUATE": _evaluate, "SCORE": _score}


def _input(source: exp.Expr | None, flavour: Dialect) -> Query | None:
    """``(query)`` as the text inside the parentheses; ``TABLE t`` as SELECT * FROM t. The
    input runs on its own: when it reads a CTE of the query around the call, the enclosing
    WITH goes in front of it (the BigQuery ML tutorials' ``WITH ... FROM ML.PREDICT(MODEL m,
    (SELECT * FROM cte))``)."""
    if source is None:
        return None
    if isinstance(source, exp.Table):
        select = exp.select("*").from_(quoted_table(source))
        text = select.sql(dialect=flavour)
    else:
        text = nodes.text_of(source)
    ctes = _outer_ctes(source)
    if not ctes or not _reads_any(source, ctes):
        return Query(text)
    # the WITH is generated from the tree; the input stays the text as written
    with_sql = exp.With(expressions=[cte.copy() for cte in ctes]).sql(dialect=flavour)
    return Query(f'{with_sql} SELECT * FROM ({text}) AS "{_WITH_ALIAS}"')


_WITH_ALIAS = "__sqlml_input_with"


def _outer_ctes(node: exp.Expr) -> list[exp.CTE]:
    """The CTEs visible where ``node`` stands, outermost first."""
    found: list[exp.CTE] = []
    ancestor = node.parent
    while ancestor is not None:
        with_ = ancestor.args.get("with_") if isinstance(ancestor, exp.Query) else None
        if isinstance(with_, exp.With):
            found = [*with_.expressions, *found]
        ancestor = ancestor.parent
    return found


def _reads_any(source: exp.Expr, ctes: list[exp.CTE]) -> bool:
    names = {cte.alias_or_name.lower() for cte in ctes}
    return any(
        not table.db and table.name.lower() in names for table in source.find_all(exp.Table)
    ) or (isinstance(source, exp.Table) and not source.db and source.name.lower() in names)


def _struct(struct: exp.Expr | None, function: str) -> tuple[float | None, dict[str, OptionValue]]:
    """``STRUCT(0.5 AS threshold, 'x' AS other)``: the threshold and the other fields."""
    settings: dict[str, OptionValue] = {}
    for item in struct.expressions if struct is not None else []:
        name = field_name(item)
        if name is None:
            raise errors.SyntaxError(
                "STRUCT fields need names: STRUCT(0.5 AS threshold)",
                position=nodes.start_of(struct) if struct is not None else None,
            )
        _known_field(name.lower(), function, item)
        name = name.lower()  # field names are case-insensitive, as BigQuery's
        if name in settings:
            raise errors.InvalidParameterValue(f"STRUCT field {name} is given twice")
        settings[name] = to_value(field_value(item), f"STRUCT field {name}")
    threshold = settings.pop("threshold", None)
    return (_threshold(threshold) if threshold is not None else None), settings


def _known_field(name: str, function: str, item: exp.Expr) -> None:
    if name in FIELDS[function]:
        return
    if name in PENDING_FIELDS[function]:
        raise errors.FeatureNotSupported(
            f"STRUCT field {name} of ML.{function} is not supported yet",
            position=nodes.start_of(item),
        )
    raise errors.InvalidParameterValue(
        f"ML.{function} has no STRUCT field {name}",
        hint=closest(name, FIELDS[function] + PENDING_FIELDS[function], "fields"),
        position=nodes.start_of(item),
    )


def _threshold(value: OptionValue) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise errors.InvalidParameterValue(f"threshold must be a number in [0, 1], not {value!r}")


def _place(node: exp.Expr, slot: int) -> None:
    """Puts a CallSlot where the call stood (the whole Table in FROM, the ML.x Dot elsewhere)."""
    if _in_from(node):
        table = node.parent
        assert table is not None
        extra = [k for k, v in table.args.items() if k not in _TABLE_KEYS and v]
        if extra:
            raise errors.FeatureNotSupported(
                f"ML.{_name(node)} with {', '.join(extra)} is not supported",
                position=nodes.start_of(node),
            )
        alias = table.args.get("alias")
        table.replace(nodes.CallSlot(this=exp.Literal.number(slot), table=True, alias=alias))
        return
    dot = node.parent
    assert isinstance(dot, exp.Dot)
    replacement: exp.Expr = nodes.CallSlot(this=exp.Literal.number(slot))
    if isinstance(dot.parent, exp.Select) and dot.arg_key == "expressions":
        replacement = exp.Alias(this=replacement, alias=exp.to_identifier(SCORE_ALIAS, quoted=True))
    dot.replace(replacement)
