"""From statement text to a typed statement.

Theory of operation
-------------------
1. ``is_ml`` (the one lexer's tokens, :mod:`sqlml.grammar.scan`) lets plain SQL through as
   :class:`Passthrough` without tokenizing it: parsing costs 100+ microseconds, the check about 1.
2. The statement is tokenized with the sqlml flavour of its dialect
   (:mod:`sqlml.grammar.dialects`) and classified from its tokens: ``CREATE [OR REPLACE] MODEL``,
   ``DROP MODEL``, ``SHOW MODELS``, a statement holding an ``ML . name (`` call, or none of these
   (a :class:`Passthrough` after all: the word MODEL was only a name). ``ALTER MODEL`` is
   ``DEPLOY`` or ``ROLLBACK`` (its other forms, and ``CREATE TEMP MODEL``, are 0A000).
3. Only then is the statement parsed, by the flavour's sqlglot parser, whose ML hooks record where
   each piece of the user's text starts, so that query texts are exact slices of what was
   written and errors point at the offending token.
4. The tree is converted at once into the dataclasses of :mod:`sqlml.grammar.statements`;
   nothing outside ``sqlml.grammar`` reads a sqlglot tree, except the template of an
   :class:`MLQuery`, which renders itself back to SQL.

Names: unquoted model and schema names fold to lower case as in DuckDB and PostgreSQL; quoted
ones (``"Churn"``, `` `Churn` ``) are kept as written; a backticked ``schema.model`` is split at
the dot as in BigQuery. Column names (TRANSFORM, STRUCT values) are kept as written.

Errors: sqlglot's ParseError and TokenError never escape; they become :class:`errors.SyntaxError`
(42601) with the 1-based position of the offending token, as PostgreSQL reports it.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from sqlml import errors
from sqlml.grammar import calls, dialects, nodes
from sqlml.grammar.scan import is_ml, split_script, unterminated
from sqlml.grammar.statements import (
    AlterModel,
    CreateModel,
    DropModel,
    ExportModel,
    Passthrough,
    Query,
    ShowModels,
    Statement,
)
from sqlml.grammar.transform import transform_items
from sqlml.grammar.values import fold, model_ref, to_value
from sqlml.ml.spec import OptionValue

_FLAVOURS: dict[str, Dialect] = {name: cls() for name, cls in dialects.DIALECTS.items()}
_NOT_YET = {
    ("CREATE", "TEMP"): "CREATE TEMP MODEL",
    ("CREATE", "TEMPORARY"): "CREATE TEMP MODEL",
}


def parse(sql: str, dialect: str = "duckdb") -> Statement:
    """ONE statement (``duckdb`` or ``postgres`` dialect) as a typed statement."""
    if not is_ml(sql):
        return Passthrough(sql)
    flavour = _flavour(dialect)
    tokens = _tokenize(sql, flavour)
    if not _is_ml(tokens):
        return Passthrough(sql)
    return _convert(_parse_tokens(tokens, sql, flavour), sql, dialect, flavour)


def parse_script(script: str, dialect: str = "duckdb") -> list[Statement]:
    """Every statement of ``script``, in order."""
    return [parse(sql, dialect) for sql in split_script(script)]


def _flavour(dialect: str) -> Dialect:
    flavour = _FLAVOURS.get(dialect.lower())
    if flavour is None:
        raise errors.FeatureNotSupported(f"unknown SQL dialect {dialect!r}: use duckdb or postgres")
    return flavour


# -- tokens ----------------------------------------------------------------------------------------


def _tokenize(sql: str, flavour: Dialect) -> list[Token]:
    try:
        return flavour.tokenize(sql)
    except TokenError as e:
        start = unterminated(sql)
        position = start + 1 if start is not None else (e.start or 0) + 1
        raise errors.SyntaxError("syntax error: unterminated quoted text", position=position) from e


def _is_ml(tokens: list[Token]) -> bool:
    """A CREATE/DROP/SHOW of models, or a statement with an ``ML . name (`` call."""
    words = tuple(t.text.upper() for t in _skip_or_replace(tokens[:5]))
    for prefix, name in _NOT_YET.items():
        if words[: len(prefix)] == prefix and "MODEL" in words[:3]:
            raise errors.FeatureNotSupported(f"{name} is not supported yet")
    if words[:2] in (
        ("CREATE", "MODEL"),
        ("DROP", "MODEL"),
        ("SHOW", "MODELS"),
        ("EXPORT", "MODEL"),
        ("ALTER", "MODEL"),
    ):
        return True
    return any(dialects.is_ml_call(tokens, i) for i in range(len(tokens) - 3))


def _skip_or_replace(tokens: list[Token]) -> list[Token]:
    """The leading tokens without ``OR REPLACE`` after CREATE."""
    if len(tokens) > 2 and tokens[1].token_type == TokenType.OR:
        return [tokens[0], *tokens[3:]]
    return tokens


# -- parse -----------------------------------------------------------------------------------------


def _parse_tokens(tokens: list[Token], sql: str, flavour: Dialect) -> exp.Expr:
    try:
        trees = [t for t in flavour.parser().parse(tokens, sql) if t is not None]
    except ParseError as e:
        raise _syntax_error(e, sql) from e
    except SqlglotError as e:
        raise errors.SyntaxError(f"syntax error: {e}", position=1) from e
    if len(trees) > 1:
        cut = next(i for i, t in enumerate(tokens) if t.token_type == TokenType.SEMICOLON)
        second = tokens[min(cut + 1, len(tokens) - 1)]
        raise errors.SyntaxError("expected one statement", position=second.start + 1)
    if not trees:
        raise errors.SyntaxError("syntax error: empty statement", position=1)
    return trees[0]


def _syntax_error(e: ParseError, sql: str) -> errors.SyntaxError:
    info = e.errors[0] if e.errors else {}
    description = info.get("description") or str(e)
    if info.get(dialects.ERROR_AT_END):
        return errors.SyntaxError(
            f"syntax error at end of input: {description}", position=len(sql.rstrip()) + 1
        )
    start = info.get(dialects.ERROR_START)
    position = start + 1 if start is not None else _offset(sql, info.get("line"), info.get("col"))
    near = info.get(dialects.ERROR_TOKEN) or sql[position - 1 : position]
    return errors.SyntaxError(f'syntax error at or near "{near}": {description}', position=position)


def _offset(sql: str, line: int | None, col: int | None) -> int:
    """1-based offset of sqlglot's (line, col) of a token end; 1 when unknown."""
    if not line or not col:
        return 1
    lines = sql.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + col


# -- tree -> statement -----------------------------------------------------------------------------


def _convert(tree: exp.Expr, sql: str, dialect: str, flavour: Dialect) -> Statement:
    if isinstance(tree, exp.Create) and tree.kind == "MODEL":
        return _create_model(tree, sql)
    if isinstance(tree, nodes.ExportModel):
        return ExportModel(model_ref(tree.this), _options(list(tree.expressions)))
    if isinstance(tree, exp.Drop) and tree.kind == "MODEL":
        return DropModel(model_ref(tree.args["tables"][0]), bool(tree.args.get("exists")))
    if isinstance(tree, nodes.AlterModel):
        return _alter_model(tree)
    if isinstance(tree, exp.Show) and tree.name == "MODELS":
        return ShowModels(fold(tree.args.get("from_")))
    query = calls.ml_query(tree, dialect, flavour)
    if query is None:
        raise errors.FeatureNotSupported("ML functions are not supported in this statement")
    return query


def _alter_model(tree: nodes.AlterModel) -> AlterModel:
    action = str(tree.args["action"])
    if action == "OTHER":
        raise errors.FeatureNotSupported(
            "ALTER MODEL is not supported yet except DEPLOY VERSION n, ROLLBACK [TO VERSION n],"
            " SET TRAFFIC (...), CLEAR TRAFFIC, SET SHADOW VERSION n, CLEAR SHADOW, RETRAIN and"
            " SET OPTIONS (...)"
        )
    version, comment, key, sample = (
        tree.args.get(k) for k in ("version", "comment", "key", "sample")
    )
    return AlterModel(
        model=model_ref(tree.this),
        action=action,
        version=int(version.name) if version is not None else None,
        comment=str(comment.this) if comment is not None else None,
        traffic=tuple((int(w.this.name), _weight(w.expression)) for w in tree.expressions),
        key=fold(key) if key is not None else None,
        sample=_weight(sample, "a shadow's sample") if sample is not None else None,
        options=_options(list(tree.args.get("options") or [])),
    )


def _weight(value: exp.Expr, what: str = "a traffic weight") -> float:
    """A SET TRAFFIC weight or SET SHADOW's SAMPLE: a number, maybe negative (sqlml.lifecycle
    says why it is wrong)."""
    negative = isinstance(value, exp.Neg)
    number = value.this if negative else value
    if not isinstance(number, exp.Literal) or number.is_string:
        raise errors.InvalidParameterValue(
            f"{what} must be a number (a percentage), not {value.sql()}",
            position=nodes.start_of(value),
        )
    return -float(number.name) if negative else float(number.name)


def _create_model(tree: exp.Create, sql: str) -> CreateModel:
    properties = tree.args["properties"].expressions
    clause = next((p for p in properties if isinstance(p, exp.TransformModelProperty)), None)
    options = _options([p for p in properties if type(p) is exp.Property])
    text = tree.expression
    if isinstance(text, nodes.QueryText) and text.args.get("ml_calls"):
        raise errors.FeatureNotSupported(
            "ML calls in the query of CREATE MODEL are not supported yet",
            position=nodes.start_of(text),
        )
    query = Query(str(text.this)) if isinstance(text, nodes.QueryText) else None
    _check_query(options, query, sql)
    io = {c.name: _model_columns(c) for c in properties if isinstance(c, nodes.ModelColumns)}
    if io and query is not None:
        raise errors.FeatureNotSupported(
            "INPUT and OUTPUT are for imported models (model_type = 'onnx') only"
        )
    return CreateModel(
        model=model_ref(tree.this),
        options=options,
        query=query,
        replace=bool(tree.args.get("replace")),
        if_not_exists=bool(tree.args.get("exists")),
        transform=transform_items(clause) if clause is not None else None,
        transform_sql=nodes.text_of(clause) if clause is not None else None,
        input_columns=io.get("INPUT"),
        output_columns=io.get("OUTPUT"),
    )


def _model_columns(clause: nodes.ModelColumns) -> tuple[tuple[str, str], ...]:
    """INPUT/OUTPUT's (name, type) pairs; a name given twice is 22023 (as an option is)."""
    pairs = tuple((c.name, c.args["kind"].name) for c in clause.expressions)
    seen: set[str] = set()
    for name, _ in pairs:
        if name.lower() in seen:
            raise errors.InvalidParameterValue(f'column "{name}" is given twice in {clause.name}')
        seen.add(name.lower())
    return pairs


def _options(properties: list[exp.Property]) -> dict[str, OptionValue]:
    options: dict[str, OptionValue] = {}
    for prop in properties:
        name = prop.name.lower()
        if name in options:
            raise errors.InvalidParameterValue(
                f"option {name} is given twice", position=nodes.start_of(prop)
            )
        options[name] = to_value(prop.args["value"], f"option {name}")
    return options


def _check_query(options: dict[str, OptionValue], query: Query | None, sql: str) -> None:
    model_type = options.get("model_type")
    imported = isinstance(model_type, str) and model_type.lower() == "onnx"
    if query is None and not imported:
        raise errors.SyntaxError(
            "CREATE MODEL needs AS query (only model_type = 'onnx' imports have none)",
            position=len(sql.rstrip()) + 1,
        )
    if query is not None and imported:
        raise errors.InvalidParameterValue(
            "model_type 'onnx' imports a model: it takes no AS query"
        )
