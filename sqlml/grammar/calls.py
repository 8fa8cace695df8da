"""Queries with ML calls inside: typed calls plus a template with a slot where each call stood.

Each ML function is a registered entry (:mod:`sqlml.functions`) that says whether it is a table
function (FROM/JOIN: ``ML.PREDICT``, ``ML.EVALUATE``, ``ML.WEIGHTS``, ...) or a scalar one (any
expression: ``ML.SCORE``), whether it takes rows, and its STRUCT fields with their types. Each
call is checked against its entry and becomes the typed call the entry makes (:class:`Predict`,
:class:`Evaluate`, :class:`Score`, or :class:`Inspect` for functions computed from the stored
version), and its place in the tree a :class:`~sqlml.grammar.nodes.CallSlot` numbered in the
order the calls appear in the text; :func:`sqlml.grammar.render.render` fills the slots.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlml import errors, functions
from sqlml.grammar import nodes
from sqlml.grammar.nodes import TRANSFORM_FUNCTIONS
from sqlml.grammar.statements import Inspect, MLCall, MLQuery, OverData, OverRows, Query
from sqlml.grammar.values import field_name, field_value, fold, model_ref, quoted_table, to_value
from sqlml.ml.options import closest
from sqlml.ml.spec import OptionValue

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
    """The typed call, as the function's registered entry (sqlml.functions) declares it."""
    name, position = _name(node), nodes.start_of(node)
    entry = functions.find(name)
    if entry is None:
        where = " outside TRANSFORM" if name in TRANSFORM_FUNCTIONS else ""
        raise errors.FeatureNotSupported(f"ML.{name} is not supported{where}", position=position)
    in_from = _in_from(node)
    if entry.table and not in_from:
        raise errors.SyntaxError(
            f"ML.{name} is a table function: use it in FROM or JOIN", position=position
        )
    if not entry.table and (in_from or isinstance(node.parent and node.parent.parent, exp.Window)):
        raise errors.SyntaxError(f"ML.{name} is a scalar function, not a table", position=position)
    if entry.runs == functions.OVER_DATA:
        return _over_data(node, entry, flavour)
    args = _arguments(node, entry, flavour)
    if entry.render is not None:
        return OverRows(entry.name, args.model, args.rows, args.settings)
    if entry.make is None:
        return Inspect(entry.name, args.model, args.settings)
    return entry.make(args)


def _arguments(node: exp.Expr, entry: functions.Function, flavour: Dialect) -> functions.CallArgs:
    """The model, the rows, the STRUCT and (a scalar function's) alias of a call, checked."""
    if isinstance(node, exp.Predict):
        model, rest = node.this, [node.expression, node.args.get("params_struct")]
    else:
        model, rest = node.args.get("model"), list(node.expressions)
    position = nodes.start_of(node)
    if model is None:
        raise errors.SyntaxError(
            f"ML.{entry.name} takes MODEL <name> as its first argument", position=position
        )
    source = next((a for a in rest if isinstance(a, exp.Table | exp.Subquery)), None)
    struct = next((a for a in rest if isinstance(a, exp.Struct)), None)
    if entry.rows == functions.NONE and source is not None:
        raise errors.SyntaxError(f"ML.{entry.name} takes no rows", position=position)
    if entry.rows == functions.REQUIRED and source is None:
        raise errors.SyntaxError(
            f"ML.{entry.name} needs rows: a (query) or TABLE t after the model",
            position=position,
        )
    qualifier = None
    if not entry.table and rest and isinstance(rest[0], exp.Column):
        qualifier = fold(rest[0].this)
    settings = _struct(struct, entry)
    if entry.argument is not None:
        settings.update(_extra(rest, (source, struct), entry, position))
    elif entry.arguments is not None:
        taken = (source, struct)
        others = [a for a in rest if a is not None and not any(a is t for t in taken)]
        settings.update(entry.arguments(others))
    ref = model_ref(model)
    if "trial_id" in settings:  # (a trial's own graph: the model store loads it, store.py)
        trial = settings.pop("trial_id")
        assert isinstance(trial, int)  # (the field's type: functions.check_field)
        ref = replace(ref, trial=trial)
    return functions.CallArgs(entry.name, ref, _input(source, flavour), settings, qualifier)


def _over_data(node: exp.Expr, entry: functions.Function, flavour: Dialect) -> OverData:
    """A data function's call: ``[MODEL m,] (query) | TABLE t [, (query) | TABLE t] [, STRUCT]``
    with as many inputs as the entry takes (42601 otherwise)."""
    position = nodes.start_of(node)
    model = node.args.get("model")
    if entry.model == functions.REQUIRED and model is None:
        raise errors.SyntaxError(
            f"ML.{entry.name} takes MODEL <name> as its first argument", position=position
        )
    if entry.model == functions.NONE and model is not None:
        raise errors.SyntaxError(f"ML.{entry.name} takes no model", position=position)
    rest = list(node.expressions)
    sources = [a for a in rest if isinstance(a, exp.Table | exp.Subquery)]
    structs = [a for a in rest if isinstance(a, exp.Struct)]
    if len(sources) != entry.sources or len(structs) > 1 or len(rest) > len(sources) + 1:
        wanted = "a (query) or TABLE t" if entry.sources == 1 else "two (query) or TABLE t"
        raise errors.SyntaxError(
            f"ML.{entry.name} takes {wanted}, then optionally a STRUCT", position=position
        )
    settings = _struct(structs[0] if structs else None, entry)
    inputs = tuple(q for q in (_input(s, flavour) for s in sources) if q is not None)
    return OverData(entry.name, model_ref(model) if model is not None else None, inputs, settings)


def _extra(
    rest: list[exp.Expr | None],
    taken: tuple[exp.Expr | None, ...],
    entry: functions.Function,
    position: int | None,
) -> dict[str, OptionValue]:
    """The entry's one further positional argument (ML.ROC_CURVE's GENERATE_ARRAY), if given."""
    assert entry.argument is not None
    others = [a for a in rest if a is not None and not any(a is t for t in taken)]
    if len(others) > 1:
        raise errors.SyntaxError(f"too many arguments to ML.{entry.name}", position=position)
    if not others:
        return {}
    name, value = entry.argument(others[0])
    return {name: value}


def _in_from(node: exp.Expr) -> bool:
    return isinstance(node.parent, exp.Table) and node.arg_key == "this"


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


def _struct(struct: exp.Expr | None, entry: functions.Function) -> dict[str, OptionValue]:
    """``STRUCT(0.5 AS threshold, ...)``: each field by its lower-case name, of its type."""
    settings: dict[str, OptionValue] = {}
    for item in struct.expressions if struct is not None else []:
        name = field_name(item)
        if name is None:
            raise errors.SyntaxError(
                "STRUCT fields need names: STRUCT(0.5 AS threshold)",
                position=nodes.start_of(struct) if struct is not None else None,
            )
        _known_field(name.lower(), entry, item)
        name = name.lower()  # field names are case-insensitive, as BigQuery's
        if name in settings:
            raise errors.InvalidParameterValue(f"STRUCT field {name} is given twice")
        value = to_value(field_value(item), f"STRUCT field {name}")
        settings[name] = functions.check_field(entry, name, value)
    return settings


def _known_field(name: str, entry: functions.Function, item: exp.Expr) -> None:
    known = tuple(f.name for f in entry.fields)
    if name in known:
        return
    if name in entry.pending:
        raise errors.FeatureNotSupported(
            f"STRUCT field {name} of ML.{entry.name} is not supported yet",
            position=nodes.start_of(item),
        )
    raise errors.InvalidParameterValue(
        f"ML.{entry.name} has no STRUCT field {name}",
        hint=closest(name, known + entry.pending, "fields") if known + entry.pending else None,
        position=nodes.start_of(item),
    )


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
