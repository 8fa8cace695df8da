"""``TRANSFORM (...)`` of CREATE MODEL: parse-tree items into typed :class:`TransformItem`\\ s.

Arithmetic becomes the tiny expression language of :mod:`sqlml.grammar.statements` (Col, Lit,
BinOp, Neg, Call), so the ML core needs no sqlglot. Functions keep the meaning they have in the
statement's dialect (DuckDB and PostgreSQL agree): ``LOG(x)`` is the base-10 logarithm and
``LOG(b, x)`` the logarithm of x to base b, so they become ``Call('log10', (x,))`` and
``Call('log', (x, b))`` (the typed form puts the base second, as BigQuery's ``LOG(x, base)``);
``LN(x)`` is ``Call('ln', (x,))``. ``CAST(x AS DOUBLE | REAL | DECIMAL ...)`` is
``Call('cast_double', (x,))`` and a CAST to an integer type is ``Call('round', (x,))`` (both
engines round half away from zero). Column names and aliases are kept as written.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from sqlglot import exp

from sqlml import errors
from sqlml.grammar import nodes
from sqlml.grammar.values import field_value, to_value
from sqlml.ml.spec import (
    BinOp,
    Call,
    Col,
    Expr,
    HparamCandidates,
    HparamRange,
    Lit,
    Neg,
    OptionValue,
    TransformItem,
)

_BINARY: dict[type[exp.Expr], str] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Pow: "^",
}
_UNARY: dict[type[exp.Expr], str] = {
    exp.Abs: "abs",
    exp.Sqrt: "sqrt",
    exp.Exp: "exp",
    exp.Ln: "ln",
    exp.Floor: "floor",
    exp.Ceil: "ceil",
    exp.Sign: "sign",
    exp.Round: "round",
}
_FUNCTIONS = ("ABS", "SQRT", "EXP", "LN", "LOG", "LOG10", "POW", "FLOOR", "CEIL", "ROUND")
_SUPPORTED = "+ - * / ^, " + ", ".join(
    (*_FUNCTIONS, "SIGN", "GREATEST", "LEAST", "CAST", "CASE", "IF", "COALESCE")
)
_SUPPORTED += ", LOWER, UPPER, CONCAT, ||, EXTRACT"
# string functions ONNX cannot compute as both engines do (sqlml.ml.strings): refused with why
_STRING_REFUSED = (
    exp.Trim,
    exp.Substring,
    exp.Length,
    exp.Replace,
    exp.Left,
    exp.Right,
    exp.Pad,
    exp.RegexpReplace,
    exp.RegexpLike,
    exp.Like,
    exp.ILike,
    exp.StrPosition,
    exp.Initcap,
    exp.Reverse,
    exp.Repeat,
    exp.Split,
)
_ANALYTIC = {
    "STANDARD_SCALER": "standard_scaler",
    "MIN_MAX_SCALER": "min_max_scaler",
    "MAX_ABS_SCALER": "max_abs_scaler",
    "ROBUST_SCALER": "robust_scaler",
    "IMPUTER": "imputer",
    "ONE_HOT_ENCODER": "one_hot_encoder",
    "QUANTILE_BUCKETIZE": "quantile_bucketize",
    "LABEL_ENCODER": "label_encoder",
}
# scalar functions over a STRUCT of features (named) or an ARRAY of them
_OVER_FIELDS = {
    "POLYNOMIAL_EXPAND": "polynomial_expand",
    "FEATURE_CROSS": "feature_cross",
    "NORMALIZER": "normalizer",
}
_SCALAR = ("BUCKETIZE", "HASH_BUCKETIZE", "NGRAMS", *_OVER_FIELDS)
_REFUSED: dict[str, str] = {}  # BigQuery TRANSFORM functions sqlml refuses, with the reason
_IMPUTER_STRATEGIES = ("mean", "median", "most_frequent")
_ONE_HOT_DROPS = ("none", "most_frequent")


def transform_items(clause: exp.Expr) -> tuple[TransformItem, ...]:
    """The typed items of a ``TransformModelProperty``; output names must be unique."""
    items = tuple(_item(node) for node in clause.expressions)
    seen: set[str] = set()
    for item in items:
        if item.alias.lower() in seen:
            raise errors.InvalidParameterValue(f'TRANSFORM names column "{item.alias}" twice')
        seen.add(item.alias.lower())
    return items


def _item(node: exp.Expr) -> TransformItem:
    body, alias = (node.this, node.alias) if isinstance(node, exp.Alias) else (node, None)
    source = nodes.text_of(node)
    if isinstance(body, exp.Star):
        raise errors.FeatureNotSupported(
            "* in TRANSFORM is not supported yet: list the columns", position=nodes.start_of(node)
        )
    call = _ml_function(body)
    if call is None and _is_column(body):
        return TransformItem(alias or body.name, "column", to_expr(body), source=source)
    if alias is None:
        raise errors.SyntaxError(
            f"TRANSFORM item {source} needs a name: write {source} AS name",
            position=nodes.start_of(node),
        )
    if call is None:
        expression = to_expr(body)
        if isinstance(expression, Lit) and isinstance(expression.value, str):
            raise errors.FeatureNotSupported(
                "a string constant is not a feature: a TRANSFORM item reads columns",
                position=nodes.start_of(node),
            )
        return TransformItem(alias, "expression", expression, source=source)
    function, expression, args, inputs = _ml_item(call, body)
    return TransformItem(alias, function, expression, args, source, inputs)


# -- ML.<name>(...) [OVER ()] ----------------------------------------------------------------------


def _ml_function(body: exp.Expr) -> nodes.MLFunction | None:
    inner = body.this if isinstance(body, exp.Window) else body
    if not isinstance(inner, exp.Dot):
        return None
    call = inner.expression
    if isinstance(call, exp.Predict):
        raise errors.FeatureNotSupported("ML.PREDICT cannot be used in TRANSFORM")
    return call if isinstance(call, nodes.MLFunction) else None


Fields = tuple[tuple[str, Expr], ...]


def _ml_item(
    call: nodes.MLFunction, body: exp.Expr
) -> tuple[str, Expr, tuple[OptionValue, ...], Fields]:
    name = call.name
    if name in _REFUSED:
        raise errors.FeatureNotSupported(_REFUSED[name], position=nodes.start_of(call))
    if name not in _SCALAR and name not in _ANALYTIC:
        raise errors.FeatureNotSupported(
            f"ML.{name} is not supported in TRANSFORM yet", position=nodes.start_of(call)
        )
    _check_window(name, body, call)
    args = list(call.expressions)
    if call.args.get("model") is not None or not args:
        raise errors.InvalidParameterValue(f"ML.{name} takes the input expression first")
    if name in _OVER_FIELDS:
        fields = _fields(name, args[0])
        return _OVER_FIELDS[name], fields[0][1], _FIELD_ARGS[name](name, args[1:]), fields
    expression, rest = to_expr(args[0]), args[1:]
    if name == "BUCKETIZE":
        return "bucketize", expression, _bucketize_args(rest), ()
    if name == "HASH_BUCKETIZE":
        return "hash_bucketize", expression, _hash_args(rest), ()
    if name == "NGRAMS":
        return "ngrams", _ngrams_input(args[0]), _ngrams_args(rest), ()
    return _ANALYTIC[name], expression, _ANALYTIC_ARGS[name](name, rest), ()


def _fields(name: str, node: exp.Expr) -> Fields:
    """The named fields of ``STRUCT(a, b AS c)`` (POLYNOMIAL_EXPAND, FEATURE_CROSS) or the
    elements of ``[e1, e2]`` (NORMALIZER, named '1', '2', ...)."""
    if name == "NORMALIZER":
        if not isinstance(node, exp.Array) or not node.expressions:
            raise errors.InvalidParameterValue(
                "ML.NORMALIZER takes an array of numerical expressions: [a, b, ...]",
                position=nodes.start_of(node),
            )
        return tuple((str(i + 1), to_expr(e)) for i, e in enumerate(node.expressions))
    if not isinstance(node, exp.Struct) or not node.expressions:
        raise errors.InvalidParameterValue(
            f"ML.{name} takes a STRUCT of features: STRUCT(a, b AS c, ...)",
            position=nodes.start_of(node),
        )
    fields = tuple(_field(name, item) for item in node.expressions)
    if len(fields) > 10:
        raise errors.InvalidParameterValue(f"ML.{name} takes at most 10 features")
    names = [n.lower() for n, _ in fields]
    if len(set(names)) != len(names):
        raise errors.InvalidParameterValue(f"ML.{name} names a feature twice")
    return fields


def _field(name: str, item: exp.Expr) -> tuple[str, Expr]:
    if isinstance(item, exp.PropertyEQ | exp.Alias):
        return item.alias_or_name if isinstance(item, exp.Alias) else item.name, to_expr(
            field_value(item)
        )
    if _is_column(item):
        return item.name, to_expr(item)
    raise errors.InvalidParameterValue(
        f"ML.{name} needs named features: write {nodes.text_of(item)} AS name",
        position=nodes.start_of(item),
    )


def _check_window(name: str, body: exp.Expr, call: nodes.MLFunction) -> None:
    position = nodes.start_of(call)
    if name in _SCALAR:
        if isinstance(body, exp.Window):
            raise errors.SyntaxError(f"ML.{name} takes no OVER clause", position=position)
        return
    if not isinstance(body, exp.Window):
        raise errors.SyntaxError(
            f"ML.{name} is an analytic function: write ML.{name}(...) OVER ()", position=position
        )
    if any(body.args.get(key) for key in ("partition_by", "order", "spec", "alias")):
        raise errors.FeatureNotSupported(
            f"ML.{name} supports only an empty window: OVER ()", position=position
        )


def _literal_args(name: str, args: list[exp.Expr]) -> list[OptionValue]:
    return [to_value(arg, f"argument {i + 2} of ML.{name}") for i, arg in enumerate(args)]


def _no_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    if args:
        raise errors.InvalidParameterValue(f"ML.{name} takes one argument")
    return ()


def _imputer_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = _literal_args(name, args)
    if len(values) != 1:
        raise errors.InvalidParameterValue(
            "ML.IMPUTER takes an expression and a strategy: 'mean', 'median' or 'most_frequent'"
        )
    return (_choice("ML.IMPUTER strategy", values[0], _IMPUTER_STRATEGIES),)


def _one_hot_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = _literal_args(name, args)
    if len(values) > 3:
        raise errors.InvalidParameterValue("ML.ONE_HOT_ENCODER takes at most four arguments")
    if values and values[0] is not None:
        values[0] = _choice("ML.ONE_HOT_ENCODER drop", values[0], _ONE_HOT_DROPS)
    limits = zip(("top_k", "frequency_threshold"), values[1:], (1, 0), strict=False)
    for label, value, low in limits:
        if value is not None and not (isinstance(value, int) and _is_int(value) and value >= low):
            raise errors.InvalidParameterValue(
                f"ML.ONE_HOT_ENCODER {label} must be an integer >= {low}, not {value!r}"
            )
    return tuple(values)


def _bucketize_args(args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = _literal_args("BUCKETIZE", args)
    if not 1 <= len(values) <= 3:
        raise errors.InvalidParameterValue(
            "ML.BUCKETIZE takes an expression, an array of split points and optionally"
            " exclude_boundaries"
        )
    points = values[0] if isinstance(values[0], tuple) else ()
    numbers = [p for p in points if _is_number(p)]
    if not numbers or len(numbers) != len(points):
        raise errors.InvalidParameterValue("ML.BUCKETIZE split points must be an array of numbers")
    floats = [float(p) for p in numbers if isinstance(p, int | float)]
    if any(a >= b for a, b in pairwise(floats)):
        raise errors.InvalidParameterValue("ML.BUCKETIZE split points must be in ascending order")
    exclude = values[1] if len(values) > 1 else False
    if not isinstance(exclude, bool):
        raise errors.InvalidParameterValue("ML.BUCKETIZE exclude_boundaries must be TRUE or FALSE")
    if len(values) == 3 and values[2] != "bucket_names":
        raise errors.FeatureNotSupported("ML.BUCKETIZE supports only output_format 'bucket_names'")
    return (points, exclude)


def _hash_args(args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    """hash_bucket_size: an integer >= 0 (0: the hash itself, not bucketized), as BigQuery."""
    values = _literal_args("HASH_BUCKETIZE", args)
    if len(values) != 1:
        raise errors.InvalidParameterValue(
            "ML.HASH_BUCKETIZE takes a string expression and hash_bucket_size"
        )
    size = values[0]
    if not (_is_int(size) and isinstance(size, int) and size >= 0):
        raise errors.InvalidParameterValue(
            f"ML.HASH_BUCKETIZE hash_bucket_size must be an integer >= 0, not {size!r}"
        )
    return (size,)


def _ngrams_input(node: exp.Expr) -> Expr:
    """ML.NGRAMS reads an ARRAY<STRING> column (its output, an ARRAY, is multi-hot encoded as a
    TRANSFORM output of its own: sqlml.ml.multihot)."""
    if not _is_column(node) or node.args.get("table") is not None:
        raise errors.FeatureNotSupported(
            "ML.NGRAMS takes an ARRAY<STRING> column of the training query (compute other"
            " arrays in the query)",
            position=nodes.start_of(node),
        )
    return Col(node.name)


def _ngrams_args(args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    """(low, high, separator): range is [low, high] or one n (BigQuery's); 1 <= low <= high
    <= multihot.MAX_N (BigQuery documents no bound; sqlml's keeps the compiled SQL small)."""
    from sqlml.ml.multihot import MAX_N

    values = _literal_args("NGRAMS", args)
    if not 1 <= len(values) <= 2:
        raise errors.InvalidParameterValue("ML.NGRAMS takes an array, a range and a separator")
    span = values[0] if isinstance(values[0], tuple) else (values[0], values[0])
    ints = [v for v in span if isinstance(v, int) and _is_int(v)]
    if len(span) != 2 or len(ints) != 2 or not 1 <= ints[0] <= ints[1] <= MAX_N:
        raise errors.InvalidParameterValue(
            f"ML.NGRAMS range must be n or [low, high], integers with 1 <= low <= high <= {MAX_N},"
            f" not {values[0]!r}"
        )
    separator = values[1] if len(values) == 2 else " "
    if not isinstance(separator, str):
        raise errors.InvalidParameterValue(
            f"ML.NGRAMS separator must be a string, not {separator!r}"
        )
    return (ints[0], ints[1], separator)


def _robust_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = [*_literal_args(name, args), None, None, None]
    if len(args) > 3:
        raise errors.InvalidParameterValue("ML.ROBUST_SCALER takes at most four arguments")
    low_high = values[0] if values[0] is not None else (25, 75)
    pair = low_high if isinstance(low_high, tuple) else ()
    ints = [v for v in pair if isinstance(v, int) and _is_int(v)]
    if len(ints) != 2 or len(pair) != 2 or not 0 < ints[0] < ints[1] < 100:
        raise errors.InvalidParameterValue(
            "ML.ROBUST_SCALER quantile_range must be [low, high], integers with"
            f" 0 < low < high < 100, not {values[0]!r}"
        )
    flags = [True if v is None else v for v in values[1:3]]
    if not all(isinstance(v, bool) for v in flags):
        raise errors.InvalidParameterValue(
            "ML.ROBUST_SCALER with_median and with_quantile_range must be TRUE or FALSE"
        )
    return (low_high, *flags)


def _quantile_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = _literal_args(name, args)
    if not 1 <= len(values) <= 2:
        raise errors.InvalidParameterValue(
            "ML.QUANTILE_BUCKETIZE takes an expression and num_buckets"
        )
    buckets = values[0]
    if not _is_int(buckets) or not isinstance(buckets, int) or buckets < 1:
        raise errors.InvalidParameterValue(
            f"ML.QUANTILE_BUCKETIZE num_buckets must be an integer >= 1, not {buckets!r}"
        )
    if len(values) == 2 and values[1] != "bucket_names":
        raise errors.FeatureNotSupported(
            "ML.QUANTILE_BUCKETIZE supports only output_format 'bucket_names'"
        )
    return (buckets,)


def _label_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    values = _literal_args(name, args)
    if len(values) > 2:
        raise errors.InvalidParameterValue("ML.LABEL_ENCODER takes at most three arguments")
    values += [None] * (2 - len(values))
    top_k = 32000 if values[0] is None else values[0]
    threshold = 5 if values[1] is None else values[1]
    if not (_is_int(top_k) and isinstance(top_k, int) and 1 <= top_k < 1_000_000):
        raise errors.InvalidParameterValue(
            f"ML.LABEL_ENCODER top_k must be an integer in [1, 1000000), not {top_k!r}"
        )
    if not (_is_int(threshold) and isinstance(threshold, int) and threshold >= 0):
        raise errors.InvalidParameterValue(
            f"ML.LABEL_ENCODER frequency_threshold must be an integer >= 0, not {threshold!r}"
        )
    return (top_k, threshold)


_ANALYTIC_ARGS: dict[str, Callable[[str, list[exp.Expr]], tuple[OptionValue, ...]]] = {
    "STANDARD_SCALER": _no_args,
    "MIN_MAX_SCALER": _no_args,
    "MAX_ABS_SCALER": _no_args,
    "ROBUST_SCALER": _robust_args,
    "IMPUTER": _imputer_args,
    "ONE_HOT_ENCODER": _one_hot_args,
    "QUANTILE_BUCKETIZE": _quantile_args,
    "LABEL_ENCODER": _label_args,
}


def _degree_args(low: int, high: int) -> Callable[[str, list[exp.Expr]], tuple[OptionValue, ...]]:
    def check(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
        values = _literal_args(name, args)
        if len(values) > 1:
            raise errors.InvalidParameterValue(f"ML.{name} takes a STRUCT and a degree")
        degree = 2 if not values or values[0] is None else values[0]
        if not (_is_int(degree) and isinstance(degree, int) and low <= degree <= high):
            raise errors.InvalidParameterValue(
                f"ML.{name} degree must be an integer in [{low}, {high}], not {degree!r}"
            )
        return (degree,)

    return check


def _normalizer_args(name: str, args: list[exp.Expr]) -> tuple[OptionValue, ...]:
    if len(args) > 1:
        raise errors.InvalidParameterValue("ML.NORMALIZER takes an array and p")
    p = 2.0 if not args else _norm_degree(args[0])
    if not (p == 0.0 or p >= 1.0):
        raise errors.InvalidParameterValue(
            f"ML.NORMALIZER p must be 0, >= 1 or CAST('+INF' AS FLOAT64), not {p!r}"
        )
    return (p,)


def _norm_degree(node: exp.Expr) -> float:
    """p as a number; ``CAST('+INF' AS FLOAT64)`` (BigQuery's infinity) is accepted."""
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
        and str(node.this.this).strip().lower() in ("inf", "+inf", "infinity", "+infinity")
    ):
        return float("inf")
    value = to_value(node, "argument 2 of ML.NORMALIZER")
    if not _is_number(value) or not isinstance(value, int | float):
        raise errors.InvalidParameterValue(f"ML.NORMALIZER p must be a number, not {value!r}")
    return float(value)


_FIELD_ARGS: dict[str, Callable[[str, list[exp.Expr]], tuple[OptionValue, ...]]] = {
    "POLYNOMIAL_EXPAND": _degree_args(1, 4),
    "FEATURE_CROSS": _degree_args(2, 4),
    "NORMALIZER": _normalizer_args,
}


def _choice(what: str, value: OptionValue, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    listed = ", ".join(f"'{a}'" for a in allowed)
    raise errors.InvalidParameterValue(f"{what} must be one of {listed}, not {value!r}")


def _is_int(value: OptionValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: OptionValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- arithmetic ------------------------------------------------------------------------------------


def _is_column(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier)


def to_expr(node: exp.Expr) -> Expr:
    """A TRANSFORM expression as the typed tree; 0A000 for anything outside the language."""
    if isinstance(node, exp.Paren):
        return to_expr(node.this)
    for kinds, convert in _CONVERTERS:
        if isinstance(node, kinds):
            return convert(node)
    raise _unsupported(node)


def _column(node: exp.Expr) -> Expr:
    if not _is_column(node) or node.args.get("table") is not None:
        raise _unsupported(node, "qualified column names")
    return Col(node.name)


def _literal(node: exp.Expr) -> Expr:
    if isinstance(node, exp.Literal) and node.is_string:
        return Lit(str(node.this))
    value = to_value(node, "a TRANSFORM literal")
    if isinstance(value, tuple | HparamRange | HparamCandidates):
        raise _unsupported(node, "arrays" if isinstance(value, tuple) else "search spaces")
    return Lit(value)


def _negation(node: exp.Expr) -> Expr:
    operand = to_expr(node.this)
    value = operand.value if isinstance(operand, Lit) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Lit(-value)
    return Neg(operand)


def _binary(node: exp.Expr) -> Expr:
    return BinOp(_BINARY[type(node)], to_expr(node.this), to_expr(node.expression))


def _unary(node: exp.Expr) -> Expr:
    extra = [k for k, v in node.args.items() if k != "this" and v not in (None, False)]
    if extra:
        raise _unsupported(node, f"{node.key.upper()} with {', '.join(extra)}")
    return Call(_UNARY[type(node)], (to_expr(node.this),))


def _log(node: exp.Expr) -> Expr:
    if node.expression is None:
        return Call("log10", (to_expr(node.this),))
    return Call("log", (to_expr(node.expression), to_expr(node.this)))


def _extremum(node: exp.Expr) -> Expr:
    args = (to_expr(node.this), *(to_expr(e) for e in node.expressions))
    return Call("greatest" if isinstance(node, exp.Greatest) else "least", args)


def _cast(node: exp.Expr) -> Expr:
    target = node.args.get("to")
    if not isinstance(target, exp.DataType) or not target.is_type(*exp.DataType.NUMERIC_TYPES):
        raise _unsupported(node, f"CAST to {target.sql() if target else '?'}")
    name = "round" if target.is_type(*exp.DataType.INTEGER_TYPES) else "cast_double"
    return Call(name, (to_expr(node.this),))


_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.GT: "gt",
    exp.GTE: "ge",
    exp.LT: "lt",
    exp.LTE: "le",
    exp.EQ: "eq",
    exp.NEQ: "ne",
}


def _comparison(node: exp.Expr) -> Expr:
    return Call(_COMPARISONS[type(node)], (to_expr(node.this), to_expr(node.expression)))


def _connective(node: exp.Expr) -> Expr:
    name = "and" if isinstance(node, exp.And) else "or"
    return Call(name, (to_expr(node.this), to_expr(node.expression)))


def _negation_of(node: exp.Expr) -> Expr:
    return Call("not", (to_expr(node.this),))


def _is_null(node: exp.Expr) -> Expr:
    if not isinstance(node.expression, exp.Null):
        raise _unsupported(node, f"IS {nodes.text_of(node.expression)}")
    test = Call("is_null", (to_expr(node.this),))
    return Call("not", (test,)) if node.args.get("negate") else test  # PostgreSQL's IS NOT NULL


def _case(node: exp.Expr) -> Expr:
    """CASE [x] WHEN c THEN v ... [ELSE e] END as ('case', (c1, v1, ..., e)); no ELSE is NULL."""
    subject = node.this
    parts: list[Expr] = []
    for branch in node.args.get("ifs") or []:
        condition = to_expr(branch.this)
        if subject is not None:
            condition = Call("eq", (to_expr(subject), condition))
        parts += [condition, to_expr(branch.args["true"])]
    default = node.args.get("default")
    return Call("case", (*parts, to_expr(default) if default is not None else Lit(None)))


def _if(node: exp.Expr) -> Expr:
    otherwise = node.args.get("false")
    value = to_expr(otherwise) if otherwise is not None else Lit(None)
    return Call("case", (to_expr(node.this), to_expr(node.args["true"]), value))


def _case_change(node: exp.Expr) -> Expr:
    return Call("lower" if isinstance(node, exp.Lower) else "upper", (to_expr(node.this),))


def _concat(node: exp.Expr) -> Expr:
    """CONCAT skips NULL arguments in DuckDB and PostgreSQL (sqlglot's ``coalesce``), not in
    BigQuery, where it is NULL as ``||`` is."""
    args = tuple(to_expr(e) for e in node.expressions)
    return Call("concat" if node.args.get("coalesce") else "dpipe", args)


def _dpipe(node: exp.Expr) -> Expr:
    return Call("dpipe", (to_expr(node.this), to_expr(node.expression)))


def _string_refused(node: exp.Expr) -> Expr:
    name = node.sql_name() if isinstance(node, exp.Func) else node.key.upper()
    raise errors.FeatureNotSupported(
        f"{name} is not supported in TRANSFORM: no ONNX operator computes it as DuckDB and"
        " PostgreSQL do (the string functions supported are LOWER, UPPER, CONCAT and ||);"
        " compute it in the training query instead",
        position=nodes.start_of(node),
    )


def _extract(node: exp.Expr) -> Expr:
    """``EXTRACT(part FROM column)`` with BigQuery's parts (sqlml.ml.extract): ``Call('extract',
    (Lit(part), Col))``; the column's type is checked at fit time."""
    part = _extract_part(node.this)
    value = node.expression
    if isinstance(value, exp.AtTimeZone):
        raise errors.FeatureNotSupported(
            "EXTRACT(... AT TIME ZONE ...) is not supported in TRANSFORM: a TIMESTAMP's parts are"
            " taken in UTC (BigQuery's default time zone)",
            position=nodes.start_of(value),
        )
    if not _is_column(value) or value.args.get("table") is not None:
        raise errors.FeatureNotSupported(
            "EXTRACT in TRANSFORM takes a DATE, DATETIME, TIME or TIMESTAMP column (compute"
            " other values in the training query)",
            position=nodes.start_of(value),
        )
    return Call("extract", (Lit(part), Col(value.name)))


def _extract_part(node: exp.Expr) -> str:
    """BigQuery's part name, ``WEEK(MONDAY)`` for a week beginning on another day than Sunday
    (``exp.Week`` in the engines' dialects, ``exp.WeekStart`` in BigQuery's)."""
    from sqlml.ml.extract import NOT_NUMBERS, PARTS

    if isinstance(node, exp.Week | exp.WeekStart) and isinstance(node.this, exp.Column | exp.Var):
        part = f"WEEK({node.this.name.upper()})"
    else:
        part = node.name.upper() if isinstance(node, exp.Var | exp.Column) else node.sql()
    if part in PARTS:
        return part
    why = "it is not a number" if part in NOT_NUMBERS else "it is not one of BigQuery's parts"
    raise errors.FeatureNotSupported(
        f"EXTRACT({part} FROM ...) is not supported in TRANSFORM: {why} (supported: "
        f"{', '.join(p for p in PARTS if not p.startswith('WEEK('))}, WEEK(<WEEKDAY>))",
        position=nodes.start_of(node),
    )


def _coalesce(node: exp.Expr) -> Expr:
    return Call("coalesce", (to_expr(node.this), *(to_expr(e) for e in node.expressions)))


_CONVERTERS: tuple[tuple[tuple[type[exp.Expr], ...], Callable[[exp.Expr], Expr]], ...] = (
    ((exp.Column,), _column),
    ((exp.Literal, exp.Boolean, exp.Null), _literal),
    ((exp.Neg,), _negation),
    (tuple(_BINARY), _binary),
    (tuple(_UNARY), _unary),
    ((exp.Log,), _log),
    ((exp.Greatest, exp.Least), _extremum),
    ((exp.Cast,), _cast),
    (tuple(_COMPARISONS), _comparison),
    ((exp.And, exp.Or), _connective),
    ((exp.Not,), _negation_of),
    ((exp.Is,), _is_null),
    ((exp.Case,), _case),
    ((exp.If,), _if),
    ((exp.Coalesce,), _coalesce),
    ((exp.Extract,), _extract),
    ((exp.Lower, exp.Upper), _case_change),
    ((exp.Concat,), _concat),
    ((exp.DPipe,), _dpipe),
    (_STRING_REFUSED, _string_refused),
)


def _unsupported(node: exp.Expr, what: str | None = None) -> errors.FeatureNotSupported:
    call = next(node.find_all(nodes.MLFunction), None)
    if call is not None:
        return errors.FeatureNotSupported(
            f"ML.{call.name} must be a TRANSFORM item of its own: ML.{call.name}(...) AS name",
            position=nodes.start_of(call),
        )
    if what is None:
        name = node.name if isinstance(node, exp.Anonymous) else node.key.upper()
        what = f"function {name.upper()}" if isinstance(node, exp.Func) else name
    return errors.FeatureNotSupported(
        f"{what} is not supported in TRANSFORM expressions (supported: {_SUPPORTED})",
        position=nodes.start_of(node),
    )
