"""The sqlml dialects: DuckDB and PostgreSQL that also read BigQuery ML statements.

sqlglot is extended only by subclassing: :class:`SqlmlDuckDB` and :class:`SqlmlPostgres` have
their own Tokenizer, Parser and Generator classes whose class tables are copies of the stock
ones (``{**DuckDB.Parser.STATEMENT_PARSERS, ...}``); nothing of sqlglot's own is mutated, so the
stock ``duckdb`` and ``postgres`` dialects behave as before for every other user in the process.

What the subclasses add:

- backticks quote identifiers (BigQuery's `` `schema.model` ``);
- :class:`MLParser`, mixed in before the dialect's own parser, reads ``CREATE [OR REPLACE]
  MODEL``, ``DROP MODEL``, ``SHOW MODELS`` and every ``ML.<name>(...)`` call (see its methods);
- the generators print sqlml's own nodes (:mod:`sqlml.grammar.nodes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn

from sqlglot import exp, parser
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokenizer_core import Token, TokenizerCore, TokenType

from sqlml.grammar import nodes, paths

# meta keys of parse errors: where the offending token starts (0-based), its text, and whether the
# statement ended before it
ERROR_START = "sqlml_start"
ERROR_TOKEN = "sqlml_token"
ERROR_AT_END = "sqlml_at_end"

_ARG_TOKEN = "sqlml_token_index"  # meta key: token index where an ML call argument starts
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


class MLParser(parser.Parser):
    """BigQuery ML syntax for a sqlglot parser; mixed in before a dialect's own Parser.

    Hooks (each falls back to the dialect's own method when the ML form does not match):
    ``_parse_create`` (``CREATE [OR REPLACE] MODEL``), ``_parse_drop`` (``DROP MODEL``),
    ``_parse_show`` (``SHOW MODELS``) and ``_parse_function_call`` (``ML.<name>(``, both in FROM
    and in expressions). Errors are raised at once, and carry the offending token's offset.
    """

    # -- errors -------------------------------------------------------------------------------

    def raise_error(self, message: str, token: Token | None = None) -> None:
        at_end = token is None and not self._curr
        token = token or self._curr or self._prev or Token.string("")
        try:
            super().raise_error(message, token)
        except ParseError as e:
            _mark(e, token, at_end)
            raise
        if self.errors:
            _mark(self.errors[-1], token, at_end)

    def _fail(self, message: str, token: Token | None = None) -> NoReturn:
        self.raise_error(message, token)
        raise ParseError(message)  # only reached when the caller chose a lenient error level

    # -- statements ---------------------------------------------------------------------------

    def _parse_create(self) -> exp.Create | exp.Command:
        index = self._index
        replace = self._match_pair(TokenType.OR, TokenType.REPLACE)
        if self._match_text_seq("MODEL"):
            return self._parse_create_model(bool(replace))
        self._retreat(index)
        return super()._parse_create()

    def _parse_create_model(self, replace: bool) -> exp.Create:
        if_token = self._curr
        exists = bool(self._parse_exists(not_=True))
        if replace and exists:
            self._fail("OR REPLACE and IF NOT EXISTS cannot be used together", if_token)
        this = self._parse_dotted_name(max_parts=3)
        properties = [
            *self._parse_model_columns("INPUT"),
            *self._parse_model_columns("OUTPUT"),
            *self._parse_transform_clause(),
            *self._parse_options_clause(),
        ]
        query = self._parse_query_text() if self._match(TokenType.ALIAS) else None
        create = exp.Create(
            this=this,
            kind="MODEL",
            replace=replace,
            exists=exists,
            properties=exp.Properties(expressions=properties),
            expression=query,
        )
        return self.expression(create)

    def _parse_statement(self) -> exp.Expr | None:
        """``EXPORT MODEL name OPTIONS (...)`` (EXPORT is no statement keyword of sqlglot's)
        and ``ALTER MODEL`` (sqlglot's ALTER knows no MODEL)."""
        curr, after = self._curr, self._next
        if curr and curr.token_type == TokenType.ALTER and after and after.text.upper() == "MODEL":
            self._advance(2)
            return self._parse_alter_model()
        export = curr and curr.token_type == TokenType.VAR and curr.text.upper() == "EXPORT"
        if export and after and after.text.upper() == "MODEL":
            self._advance(2)
            this = self._parse_dotted_name(max_parts=3)
            options = self._parse_options_clause()
            return self.expression(nodes.ExportModel(this=this, expressions=options))
        return super()._parse_statement()

    def _parse_drop(self, exists: bool = False, kind: str | None = None) -> exp.Drop | exp.Command:
        if kind is not None or not self._match_text_seq("MODEL"):
            return super()._parse_drop(exists=exists, kind=kind)
        if_exists = exists or bool(self._parse_exists())
        table = self._parse_model_name()
        return self.expression(exp.Drop(kind="MODEL", tables=[table], exists=if_exists))

    def _parse_alter_model(self) -> exp.Expr:
        """``ALTER MODEL m DEPLOY VERSION n | ROLLBACK [TO VERSION n] | SET TRAFFIC (VERSION n =
        weight, ...) [BY KEY column] | CLEAR TRAFFIC | SET SHADOW VERSION n [SAMPLE p PERCENT]
        | CLEAR SHADOW | RETRAIN [COMMENT 'text']`` or ``SET OPTIONS (...)`` (after ALTER
        MODEL); the other ALTER MODEL forms are 0A000 (sqlml.grammar.parser)."""
        this = self._parse_dotted_name(max_parts=3)
        version = None
        traffic: list[exp.Expr] | None = None
        options: list[exp.Expr] | None = None
        key = None
        sample: exp.Expr | None = None
        if self._match_text_seq("SET", "OPTIONS"):
            action = "SET OPTIONS"
            self._retreat(self._index - 1)  # (OPTIONS is read again by the options clause)
            options = self._parse_options_clause()
        elif self._match_text_seq("SET", "TRAFFIC"):
            action = "SET TRAFFIC"
            traffic = self._parse_wrapped_csv(self._parse_traffic_weight)
            if self._match_text_seq("BY", "KEY"):
                key = self._parse_id_var(any_token=False) or self._fail("Expected a column name")
        elif self._match_text_seq("CLEAR", "TRAFFIC"):
            action = "CLEAR TRAFFIC"
        elif self._match_text_seq("SET", "SHADOW"):
            action = "SET SHADOW"
            if not self._match_text_seq("VERSION"):
                self._fail("Expected VERSION <number> after SET SHADOW")
            version = self._parse_version_number()
            if self._match_text_seq("SAMPLE"):
                sample = self._parse_unary() or self._fail("Expected a percentage after SAMPLE")
                if not self._match_text_seq("PERCENT"):
                    self._fail("Expected PERCENT after the sample")
        elif self._match_text_seq("CLEAR", "SHADOW"):
            action = "CLEAR SHADOW"
        elif self._match_text_seq("RETRAIN"):
            action = "RETRAIN"
        elif self._match_text_seq("DEPLOY"):
            action = "DEPLOY"
            if not self._match_text_seq("VERSION"):
                self._fail("Expected VERSION <number> after DEPLOY")
            version = self._parse_version_number()
        elif self._match_text_seq("ROLLBACK"):
            action = "ROLLBACK"
            if self._match_text_seq("TO"):
                if not self._match_text_seq("VERSION"):
                    self._fail("Expected VERSION <number> after ROLLBACK TO")
                version = self._parse_version_number()
        else:  # (the rest is not read: the statement is 0A000 as a whole)
            self._advance(self._tokens_size - self._index)
            return self.expression(nodes.AlterModel(this=this, action="OTHER"))
        comment = None
        if self._match_text_seq("COMMENT"):
            if self._curr is None or self._curr.token_type != TokenType.STRING:
                self._fail("Expected a string after COMMENT")
            comment = exp.Literal.string(self._curr.text)
            self._advance()
        node = nodes.AlterModel(
            this=this,
            action=action,
            version=version,
            comment=comment,
            expressions=traffic or [],
            key=key,
            sample=sample,
            options=options or [],
        )
        return self.expression(node)

    def _parse_traffic_weight(self) -> exp.Expr:
        """``VERSION n = weight`` in SET TRAFFIC (the weight any number; sqlml.lifecycle checks)."""
        if not self._match_text_seq("VERSION"):
            self._fail("Expected VERSION <number> = <weight>")
        version = self._parse_version_number()
        if not self._match(TokenType.EQ):
            self._fail("Expected = <weight> after the version")
        weight = self._parse_unary() or self._fail("Expected a weight (a percentage)")
        return exp.EQ(this=version, expression=weight)

    def _parse_model_name(self) -> exp.Table:
        """A model's name, with ``VERSION n`` after it noted on the Table (nodes.VERSION)."""
        table = self._parse_dotted_name(max_parts=3)
        if self._match_text_seq("VERSION"):
            table.meta[nodes.VERSION] = int(self._parse_version_number().name)
        return table

    def _parse_version_number(self) -> exp.Literal:
        token = self._curr
        if token is None or token.token_type != TokenType.NUMBER or not token.text.isdigit():
            self._fail("Expected a version number (a positive integer)")
        self._advance()
        return exp.Literal(this=token.text, is_string=False)

    def _parse_show(self) -> exp.Expr | None:
        if not self._match_text_seq("MODELS"):
            return super()._parse_show()
        schema = None
        if self._match_set((TokenType.IN, TokenType.FROM)):
            schema = self._parse_id_var(any_token=False) or self._fail("Expected a schema name")
        return self.expression(exp.Show(this="MODELS", from_=schema))

    # -- CREATE MODEL clauses -------------------------------------------------------------------

    def _parse_model_columns(self, word: str) -> list[exp.Expr]:
        """BigQuery's ``INPUT (name type, ...)`` / ``OUTPUT (name type, ...)``."""
        if not self._match_text_seq(word):
            return []
        self._match_l_paren()
        columns = self._parse_csv(self._parse_model_column)
        if not columns:
            self._fail(f"{word} needs at least one column")
        self._match_r_paren()
        return [nodes.ModelColumns(this=exp.var(word), expressions=columns)]

    def _parse_model_column(self) -> exp.Expr | None:
        name = self._parse_id_var(any_token=False)
        if name is None:
            return None
        first, depth = self._index, 0
        while self._curr and not (
            depth == 0 and self._curr.token_type in (TokenType.COMMA, TokenType.R_PAREN)
        ):
            kind = self._curr.token_type
            depth += kind in (TokenType.LT, TokenType.L_PAREN)
            depth -= kind in (TokenType.GT, TokenType.R_PAREN)
            self._advance()
        if self._index == first:
            self._fail(f"Expected a type for column {name.name}")
        type_text = " ".join(self._text(first, self._index).upper().split())
        for spaced, tight in ((" <", "<"), ("< ", "<"), (" >", ">"), (", ", ",")):
            type_text = type_text.replace(spaced, tight)  # ARRAY < FLOAT64 > as ARRAY<FLOAT64>
        return exp.ColumnDef(this=name, kind=exp.var(type_text))

    def _parse_transform_clause(self) -> list[exp.Expr]:
        if not self._match_text_seq("TRANSFORM"):
            return []
        self._match_l_paren()
        first = self._index
        items = self._parse_csv(self._parse_transform_item)
        if not items:
            self._fail("TRANSFORM needs at least one column")
        node = exp.TransformModelProperty(expressions=items)
        node.meta[nodes.TEXT] = self._text(first, self._index)
        self._match_r_paren()
        return [node]

    def _parse_transform_item(self) -> exp.Expr | None:
        first = self._index
        item = self._parse_expression()
        if item is not None:
            self._note_span(item, first)
        return item

    def _parse_options_clause(self) -> list[exp.Expr]:
        if not self._match_text_seq("OPTIONS"):
            return []
        return list(self._parse_wrapped_csv(self._parse_option))

    def _parse_option(self) -> exp.Property | None:
        first, token = self._index, self._curr
        if not token or token.token_type == TokenType.STRING or not _WORD.fullmatch(token.text):
            return None
        self._advance()
        if not self._match(TokenType.EQ):
            self._fail(f"Expected = after option name {token.text}")
        value = self._parse_bitwise() or self._fail(f"Expected a value for option {token.text}")
        prop = exp.Property(this=exp.var(token.text), value=value)
        self._note_span(prop, first)
        return prop

    def _parse_query_text(self) -> nodes.QueryText:
        first, last = self._index, self._tokens_size - 1
        if first > last:
            self._fail("Expected a query after AS")
        if self._tokens[first].token_type == TokenType.L_PAREN and self._closer(first) == last:
            first, last = first + 1, last - 1
            if first > last:
                self._fail("Expected a query inside the parentheses", self._tokens[first])
        calls = any(is_ml_call(self._tokens, i) for i in range(first, last - 2))
        text = paths.unbacktick(self._text(first, last + 1))
        node = nodes.QueryText(this=text, ml_calls=calls)
        node.meta[nodes.START] = self._tokens[first].start
        self._advance(self._tokens_size - self._index)
        return node

    def _closer(self, index: int) -> int:
        """The index of the token closing the parenthesis opened at ``index`` (-1 if none)."""
        depth = 0
        for i in range(index, self._tokens_size):
            kind = self._tokens[i].token_type
            depth += (kind == TokenType.L_PAREN) - (kind == TokenType.R_PAREN)
            if depth == 0:
                return i
        return -1

    # -- names ----------------------------------------------------------------------------------

    def _parse_dotted_name(self, max_parts: int) -> exp.Table:
        """``a.b.c`` as a Table; a backticked part holding dots splits as in BigQuery."""
        start = self._curr
        parts: list[exp.Identifier] = []
        while True:
            ident = self._parse_id_var(any_token=False)
            if not isinstance(ident, exp.Identifier):
                self._fail("Expected a name")
            parts.extend(self._split_backticked(ident))
            if not self._match(TokenType.DOT):
                break
        if len(parts) > max_parts:
            noun = "project.dataset.name"
            self._fail(f"Too many name parts: expected at most {noun}", start)
        names = [*([None] * (3 - len(parts))), *parts]
        return exp.Table(catalog=names[0], db=names[1], this=names[2])

    def _split_backticked(self, ident: exp.Identifier) -> list[exp.Identifier]:
        if not ident.quoted or self.sql[self._prev.start] != "`" or "." not in ident.name:
            return [ident]
        return [exp.to_identifier(part, quoted=True) for part in ident.name.split(".")]

    def _parse_table_parts(
        self,
        schema: bool = False,
        is_db_reference: bool = False,
        wildcard: bool = False,
        fast: bool = False,
    ) -> exp.Table | exp.Dot | None:
        """A table name, with a backticked path split into its parts (paths.split_table)."""
        table = super()._parse_table_parts(schema, is_db_reference, wildcard, fast)
        return paths.split_table(table, self.sql) if isinstance(table, exp.Table) else table

    # -- ML.<name>(...) calls -------------------------------------------------------------------

    def _parse_function_call(
        self,
        functions: dict[str, Callable[..., exp.Expr]] | None = None,
        anonymous: bool = False,
        optional_parens: bool = True,
        any_token: bool = False,
    ) -> exp.Expr | None:
        if self._at_ml_call():
            return self._parse_ml_call()
        return super()._parse_function_call(functions, anonymous, optional_parens, any_token)

    def _at_ml_call(self) -> bool:
        """At ``name`` of ``ML . name (``, where ML is not itself qualified."""
        i = self._index
        if i < 2 or self._prev.token_type != TokenType.DOT:
            return False
        if self._next.token_type != TokenType.L_PAREN or not _WORD.fullmatch(self._curr.text):
            return False
        ml = self._tokens[i - 2]
        qualified = i >= 3 and self._tokens[i - 3].token_type == TokenType.DOT
        if ml.token_type != TokenType.VAR or ml.text.upper() != "ML" or qualified:
            return False
        # ML.<name>(MODEL ...) or an ML function; any other ml.f(x) is a plain function
        after = self._tokens[i + 2] if i + 2 < self._tokens_size else None
        return self._curr.text.upper() in nodes.ML_FUNCTIONS or _is_model_keyword(after)

    def _parse_ml_call(self) -> exp.Expr | None:
        ml_token, name = self._tokens[self._index - 2], self._curr.text.upper()
        self._advance(2)
        build = _ML_CALLS.get(name, MLParser._parse_ml_generic)
        node = build(self, name)
        node.meta[nodes.START] = ml_token.start
        self._match_r_paren(node)
        return self._parse_window(node)

    def _parse_ml_generic(self, name: str) -> exp.Expr:
        model, args = self._parse_ml_args()
        return self.expression(nodes.MLFunction(this=name, model=model, expressions=args))

    def _parse_ml_predict(self, name: str) -> exp.Expr:
        model, args = self._parse_ml_args(model_required=name)
        source, struct = self._split_ml_args(name, args, source_required=True)
        return self.expression(exp.Predict(this=model, expression=source, params_struct=struct))

    def _parse_ml_evaluate(self, name: str) -> exp.Expr:
        model, args = self._parse_ml_args(model_required=name)
        source, struct = self._split_ml_args(name, args, source_required=False)
        rest = [a for a in (source, struct) if a is not None]
        return self.expression(nodes.MLFunction(this=name, model=model, expressions=rest))

    def _parse_ml_score(self, name: str) -> exp.Expr:
        model, args = self._parse_ml_args(model_required=name)
        if len(args) > 1 or (args and not _is_plain_name(args[0])):
            self._fail("ML.SCORE takes MODEL <name> and optionally a table alias", self._at(args))
        return self.expression(nodes.MLFunction(this=name, model=model, expressions=args))

    def _parse_ml_args(self, model_required: str = "") -> tuple[exp.Table | None, list[exp.Expr]]:
        model = None
        if self._at_keyword_name("MODEL"):
            self._advance()
            model = self._parse_model_name()
        elif model_required:
            self._fail(f"ML.{model_required} expects MODEL <name> as its first argument")
        if model is not None and not self._match(TokenType.COMMA):
            return model, []
        return model, self._parse_csv(self._parse_ml_arg)

    def _parse_ml_arg(self) -> exp.Expr | None:
        first = self._index
        if self._at_keyword_name("TABLE"):
            self._advance()
            arg: exp.Expr | None = self._parse_dotted_name(max_parts=3)
        else:
            arg = self._parse_lambda()
        if arg is not None:
            self._note_span(arg, first)
        return arg

    def _split_ml_args(
        self, name: str, args: list[exp.Expr], source_required: bool
    ) -> tuple[exp.Expr | None, exp.Expr | None]:
        """``[(query) | TABLE t] [, STRUCT(...)]`` of ML.PREDICT and ML.EVALUATE."""
        rest = list(args)
        source = rest.pop(0) if rest and isinstance(rest[0], exp.Table | exp.Subquery) else None
        if source is None and source_required:
            self._fail(f"ML.{name} expects (query) or TABLE <name> after the model", self._at(rest))
        struct = rest.pop(0) if rest and isinstance(rest[0], exp.Struct) else None
        if rest:
            self._fail(f"Unexpected argument to ML.{name}", self._at(rest))
        return source, struct

    # -- helpers --------------------------------------------------------------------------------

    def _at_keyword_name(self, word: str) -> bool:
        """At ``word`` (a keyword written as a name) followed by a name."""
        curr = self._curr
        return (
            curr.token_type != TokenType.STRING
            and curr.token_type != TokenType.IDENTIFIER
            and curr.text.upper() == word
            and self._next.token_type in self.ID_VAR_TOKENS
        )

    def _at(self, args: list[exp.Expr]) -> Token | None:
        """The first token of ``args[0]`` (None: the current token)."""
        index = args[0].meta.get(_ARG_TOKEN) if args else None
        return self._tokens[index] if index is not None else None

    def _text(self, first: int, end: int) -> str:
        """The statement text of tokens ``first`` up to (excluding) ``end``."""
        if end <= first:
            return ""
        return self.sql[self._tokens[first].start : self._tokens[end - 1].end + 1]

    def _note_span(self, node: exp.Expr, first: int) -> None:
        """Records where ``node`` (tokens ``first`` .. the previous one) starts and its text."""
        end = self._index
        node.meta[nodes.START] = self._tokens[first].start
        node.meta[_ARG_TOKEN] = first
        opener = self._tokens[first].token_type
        if isinstance(node, exp.Subquery) and opener == TokenType.L_PAREN:
            first, end = first + 1, end - 1  # the query inside the parentheses
            node.meta[nodes.TEXT] = paths.unbacktick(self._text(first, end))
            return
        node.meta[nodes.TEXT] = self._text(first, end)


_ML_CALLS: dict[str, Callable[[MLParser, str], exp.Expr]] = {
    "PREDICT": MLParser._parse_ml_predict,
    "EVALUATE": MLParser._parse_ml_evaluate,
    "SCORE": MLParser._parse_ml_score,
}


def is_ml_call(tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i:i + 5]`` is ``ML . name ( MODEL`` or ``ML . name (`` with the name of
    an ML function: a function of a schema named ``ml`` is not one (see sqlml.grammar.scan)."""
    ml, dot, name, paren = tokens[i : i + 4]
    after = tokens[i + 4] if i + 4 < len(tokens) else None
    return (
        dot.token_type == TokenType.DOT
        and paren.token_type == TokenType.L_PAREN
        and ml.token_type == TokenType.VAR
        and ml.text.upper() == "ML"
        and name.token_type != TokenType.STRING
        and (name.text.upper() in nodes.ML_FUNCTIONS or _is_model_keyword(after))
    )


def _is_model_keyword(token: Token | None) -> bool:
    if token is None or token.token_type == TokenType.STRING:
        return False
    return token.text.upper() == "MODEL"


def _mark(error: ParseError, token: Token, at_end: bool) -> None:
    if error.errors:
        info = error.errors[0]
        info[ERROR_START] = token.start
        info[ERROR_TOKEN] = token.text
        info[ERROR_AT_END] = at_end


def _is_plain_name(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier)


class _DollarCore(TokenizerCore):
    """sqlglot's tokenizer core, except that ``$`` and a digit is always a parameter: sqlglot
    reads ``$1,$2`` (what psycopg 3 writes for ``IN (%s,%s)``) as a dollar-quoted string
    tagged ``1,``, but PostgreSQL's tags cannot start with a digit."""

    __slots__ = ()  # the layout of TokenizerCore, whose instances become these

    def _scan_string(self, start: str) -> bool:
        if start == "$" and self._peek.isdigit():
            self._add(self.heredoc_string_alternative)  # as sqlglot does for "$1 "
            return True
        return bool(super()._scan_string(start))


def dollar_parameters(core: TokenizerCore) -> TokenizerCore:
    """``core`` as a _DollarCore: for every tokenizer here that reads ``$n`` parameters."""
    core.__class__ = _DollarCore  # same state, one method more; no constructor to copy
    return core


class DollarParameters(Postgres.Tokenizer):
    """PostgreSQL's tokenizer with ``$1,$2`` read as two parameters (_DollarCore)."""

    def _init_core(self) -> TokenizerCore:
        return dollar_parameters(super()._init_core())


class SqlmlDuckDB(DuckDB):
    """DuckDB plus BigQuery ML statements."""

    class Tokenizer(DuckDB.Tokenizer):
        IDENTIFIERS = [*DuckDB.Tokenizer.IDENTIFIERS, "`"]

        def _init_core(self) -> TokenizerCore:
            return dollar_parameters(super()._init_core())

    class Parser(MLParser, DuckDBParser):
        pass

    class Generator(DuckDBGenerator):
        TRANSFORMS = {**DuckDBGenerator.TRANSFORMS, **nodes.GENERATORS}


class SqlmlPostgres(Postgres):
    """PostgreSQL plus BigQuery ML statements (what wire clients send)."""

    class Tokenizer(DollarParameters):
        IDENTIFIERS = [*Postgres.Tokenizer.IDENTIFIERS, "`"]
        COMMANDS = Postgres.Tokenizer.COMMANDS - {TokenType.SHOW}  # SHOW is parsed, for MODELS

    class Parser(MLParser, PostgresParser):
        STATEMENT_PARSERS = {
            **PostgresParser.STATEMENT_PARSERS,
            TokenType.SHOW: lambda self: self._parse_show(),
        }

    class Generator(PostgresGenerator):
        TRANSFORMS = {**PostgresGenerator.TRANSFORMS, **nodes.GENERATORS}


DIALECTS: dict[str, type[DuckDB] | type[Postgres]] = {
    "duckdb": SqlmlDuckDB,
    "postgres": SqlmlPostgres,
}
