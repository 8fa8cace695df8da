"""What the ML core takes from a statement: OPTIONS values and the typed TRANSFORM tree.

The grammar (sqlml.grammar.parser) builds these from sqlglot trees; the ML core (training,
features, options) reads them. They live here, in the core, so that importing sqlml.ml loads
neither the grammar nor sqlglot's dialects, the DB-API or the engine path (issue 13: the ML core
stays pure, and a model kind or ML function registered from outside needs only this package).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HparamRange:
    """``HPARAM_RANGE(min, max)``: a hyperparameter's continuous search space (ml/tuning.py)."""

    low: float
    high: float


@dataclass(frozen=True)
class HparamCandidates:
    """``HPARAM_CANDIDATES([a, b, ...])``: a hyperparameter's discrete search space."""

    values: tuple[OptionValue, ...]


# An OPTIONS value: a literal, an array (tuple) of values, a STRUCT (tuple of its field values,
# in order), or a hyperparameter's search space. NULL is None.
OptionValue = (
    str | int | float | bool | None | tuple["OptionValue", ...] | HparamRange | HparamCandidates
)


# -- TRANSFORM: a tiny typed expression language, so the ML core needs no sqlglot -----------


@dataclass(frozen=True)
class Col:
    name: str


@dataclass(frozen=True)
class Lit:
    value: float | int | str | bool | None


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / ^  (^ is power)
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Call:
    """A scalar function on numbers: name in lower case, one of
    abs, sqrt, exp, ln, log10, log (1 arg = ln, 2 args = (x, base): the logarithm of x to base
    base, as BigQuery's LOG(x, base)), pow/power, floor, ceil, round, sign, greatest, least,
    and 'cast_double' for CAST(x AS DOUBLE/FLOAT/DECIMAL...) of a numeric;
    'case' (args: condition 1, value 1, ..., else; NULL where no ELSE) for CASE and IF,
    'coalesce'; and the conditions, only where 'case' takes one: gt, ge, lt, le, eq, ne
    (comparisons of numbers; eq and ne also of strings), and, or, not, is_null.
    Strings (sqlml.ml.strings): a Lit with a str value, 'lower', 'upper' (ASCII letters),
    'concat' (NULL arguments skipped, as DuckDB's and PostgreSQL's CONCAT), 'dpipe' (``||``,
    and CONCAT in a dialect where it is NULL when an argument is); at fit time each string
    column is marked 'text' (one argument, its Col).
    Date and time parts (sqlml.ml.extract): 'extract', args (Lit(part), Col) for
    ``EXTRACT(part FROM column)`` with BigQuery's part names ('DAYOFWEEK', 'WEEK(MONDAY)', ...);
    at fit time the column's kind is put between them: (Lit(part), Lit(kind), Col).

    The parser maps SQL onto these with the statement dialect's meaning (DuckDB and PostgreSQL
    agree): LOG(x) -> log10(x), LOG(b, x) -> log(x, b), LN(x) -> ln(x), x ^ y and POW(x, y) ->
    BinOp('^'), CAST to an integer type -> round(x)."""

    name: str
    args: tuple[Expr, ...]


Expr = Col | Lit | BinOp | Neg | Call


@dataclass(frozen=True)
class TransformItem:
    """One item of ``TRANSFORM (...)``: an output column and how it is made.

    function:
      'column'          plain column reference (``x`` or ``x AS y``); expression is Col
      'expression'      arithmetic over columns (``tenure * 12 AS months``); expression is the tree
      'standard_scaler' ``ML.STANDARD_SCALER(expr) OVER ()``
      'min_max_scaler'  ``ML.MIN_MAX_SCALER(expr) OVER ()``
      'imputer'         ``ML.IMPUTER(expr, strategy) OVER ()``; args = (strategy,) 'mean'|'median'|
                        'most_frequent'
      'one_hot_encoder' ``ML.ONE_HOT_ENCODER(expr [, drop [, top_k [, frequency_threshold]]])
                        OVER ()``; args = the optional arguments given, in order
      'bucketize'       ``ML.BUCKETIZE(expr, [b1, b2, ...] [, exclude_boundaries])``;
                        args = (tuple of split points, exclude_boundaries: bool)
      'max_abs_scaler'  ``ML.MAX_ABS_SCALER(expr) OVER ()``
      'robust_scaler'   ``ML.ROBUST_SCALER(expr [, [low, high] [, with_median
                        [, with_quantile_range]]]) OVER ()``; args = ((low, high), bool, bool)
      'quantile_bucketize' ``ML.QUANTILE_BUCKETIZE(expr, num_buckets) OVER ()``;
                        args = (num_buckets,)
      'label_encoder'   ``ML.LABEL_ENCODER(expr [, top_k [, frequency_threshold]]) OVER ()``;
                        args = (top_k, frequency_threshold)
      'polynomial_expand' ``ML.POLYNOMIAL_EXPAND(STRUCT(a, b AS c, ...) [, degree])``;
                        ``inputs`` = the STRUCT's named fields, args = (degree,)
      'feature_cross'   ``ML.FEATURE_CROSS(STRUCT(a, b, ...) [, degree])``; as above
      'normalizer'      ``ML.NORMALIZER([e1, e2, ...] [, p])``; ``inputs`` = the array's
                        elements (named '1', '2', ...), args = (p,)
    For the analytic functions, ``expression`` is the argument expression (usually a Col). For
    the functions over a STRUCT or an ARRAY, ``inputs`` holds (name, expression) per field and
    ``expression`` is the first field's expression.
    ``source`` is the item's SQL text, kept for the model store and error messages.
    """

    alias: str
    function: str
    expression: Expr
    args: tuple[OptionValue, ...] = ()
    source: str = ""
    # omitted from the grammar's golden JSON when empty (the single-input items)
    inputs: tuple[tuple[str, Expr], ...] = field(default=(), metadata={"omit_empty": True})
