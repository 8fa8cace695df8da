"""PostgreSQL catalog SQL to DuckDB SQL: a sqlglot parse, tree transforms, DuckDB output.

Only statements that :mod:`sqlml.wire.catalog` found to need it come here. The statement is parsed
with :class:`CatalogPostgres` (PostgreSQL, except that ``oid`` and the ``reg*`` names are plain
type names, so that ``$1::oid[]`` parses), then:

- catalog relations (``pg_catalog.pg_class``, ``pg_type``, ``information_schema.columns`` ...)
  become the session's TEMP views (``temp.main.sqlml_pg_class AS pg_class``); a ``public.``
  qualifier becomes DuckDB's ``main.``; ``pg_catalog.`` is dropped from functions and column
  references;
- functions DuckDB lacks or has with other results become the emulation's macros
  (``format_type`` -> ``sqlml_format_type``); ``version()``, ``current_database()`` and
  ``current_user`` become literals;
- casts to ``regclass``, ``regtype``, ``regnamespace`` look names up (``'pg_class'::regclass`` is
  1259) or, where the value is shown (a select-list item, or cast on to text), turn an OID into a
  name; ``oid``, ``name``, ``"char"``, ``int2vector`` ... become DuckDB types;
- ``OPERATOR(pg_catalog.~)`` becomes ``~``; ``COLLATE pg_catalog.default`` goes; a LIKE pattern
  with a backslash gets PostgreSQL's default ``ESCAPE '\\'``; ``typreceive <> 0`` (a regproc, which
  the emulation holds as its name) compares with ``'-'``; ``'{0}'`` array literals become ``'[0]'``;
  a set-returning function in FROM with a table alias only (``generate_series(...) s``) gets the
  column alias PostgreSQL gives it (``s(s)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokenizer_core import Token, TokenType

from sqlml import errors
from sqlml.grammar.dialects import DollarParameters
from sqlml.wire import catalog_macros, catalog_sql, colnames, params


class CatalogPostgres(Postgres):
    """PostgreSQL where ``oid``, ``regclass``, ``regtype`` ... are ordinary (user-defined) type
    names (the stock dialect cannot parse ``$1::oid[]``), and where the functions the emulation
    has as macros stay plain calls (``current_schemas(true)``, not sqlglot's own node)."""

    class Tokenizer(DollarParameters):
        KEYWORDS = {
            key: token
            for key, token in Postgres.Tokenizer.KEYWORDS.items()
            if token != TokenType.OBJECT_IDENTIFIER
        }

    class Parser(PostgresParser):
        FUNCTIONS = {
            name: build
            for name, build in PostgresParser.FUNCTIONS.items()
            if name.lower() not in catalog_macros.FUNCTIONS
        }


@dataclass(frozen=True)
class Identity:
    """What the session reports about itself."""

    database: str  # current_database(), pg_database.datname
    user: str  # current_user, session_user, every owner
    version: str  # version()


# The relations each catalog schema has as views (PostgreSQL name -> view name).
_PG_CATALOG = {
    name: catalog_sql.view_name(name) for name in catalog_sql.CATALOGS if "." not in name
}
_INFORMATION_SCHEMA = {
    name.split(".")[1]: catalog_sql.view_name(name)
    for name in catalog_sql.CATALOGS
    if name.startswith("information_schema.")
}
_CATALOG_SCHEMAS = {"pg_catalog", "information_schema"}

# PostgreSQL functions the emulation has as macros (name -> macro)
_FUNCTIONS = {name: catalog_sql.PREFIX + name for name in catalog_macros.FUNCTIONS}
_FUNCTIONS["quote_ident"] = "sqlml_quote_ident"  # a helper of the macros too (Grafana calls it)

# PostgreSQL functions DuckDB has under another name
_DUCKDB_NAMES = {"json_build_object": "json_object", "jsonb_build_object": "json_object"}

# type names -> DuckDB type, for casts
_TYPES = {
    "oid": "BIGINT", "xid": "BIGINT", "cid": "BIGINT", "tid": "VARCHAR", "name": "VARCHAR",
    "char": "VARCHAR", "text": "VARCHAR", "varchar": "VARCHAR", "bpchar": "VARCHAR",
    "pg_node_tree": "VARCHAR", "int2": "SMALLINT", "int4": "INTEGER", "int8": "BIGINT",
    "float4": "REAL", "float8": "DOUBLE", "bool": "BOOLEAN", "int2vector": "SMALLINT[]",
    "oidvector": "BIGINT[]", "regproc": "VARCHAR", "regprocedure": "VARCHAR",
    "regoper": "VARCHAR", "regoperator": "VARCHAR", "regconfig": "VARCHAR",
    "regdictionary": "VARCHAR", "regcollation": "VARCHAR", "regrole": "VARCHAR",
    "aclitem": "VARCHAR", "anyarray": "VARCHAR", "timestamptz": "TIMESTAMPTZ", "bytea": "BLOB",
}  # fmt: skip

# reg* types whose value is an OID: name -> (lookup macro by name, display macro by OID)
_REG_TYPES = {
    "regclass": ("sqlml_regclass_oid", "sqlml_regclass_name"),
    "regtype": ("sqlml_to_regtype", "sqlml_regtype_name"),
    "regnamespace": ("sqlml_regnamespace_oid", "sqlml_regnamespace_name"),
}

_TEXT_TYPES = {exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME, exp.DType.CHAR}

# the regproc columns of the emulated catalogs (held as names; '-' for none)
_REGPROC_COLUMNS = {
    "typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze",
    "typsubscript", "amhandler", "rngcanonical", "rngsubdiff", "prosupport",
}  # fmt: skip

# OPERATOR(pg_catalog.<op>) -> the expression it stands for
_OPERATORS: dict[str, Callable[[exp.Expr, exp.Expr], exp.Expr]] = {
    "~": lambda a, b: exp.RegexpLike(this=a, expression=b),
    "~*": lambda a, b: exp.RegexpILike(this=a, expression=b),
    "!~": lambda a, b: exp.Not(this=exp.RegexpLike(this=a, expression=b)),
    "!~*": lambda a, b: exp.Not(this=exp.RegexpILike(this=a, expression=b)),
    "=": lambda a, b: exp.EQ(this=a, expression=b),
    "<>": lambda a, b: exp.NEQ(this=a, expression=b),
    "!=": lambda a, b: exp.NEQ(this=a, expression=b),
    "<": lambda a, b: exp.LT(this=a, expression=b),
    "<=": lambda a, b: exp.LTE(this=a, expression=b),
    ">": lambda a, b: exp.GT(this=a, expression=b),
    ">=": lambda a, b: exp.GTE(this=a, expression=b),
    "~~": lambda a, b: exp.Like(this=a, expression=b),
    "~~*": lambda a, b: exp.ILike(this=a, expression=b),
    "||": lambda a, b: exp.DPipe(this=a, expression=b),
}

TEXT_ARRAY = 1009  # pg_type text[]

# set-returning functions whose single column PostgreSQL names after the table alias
_SCALAR_SRF = (exp.ExplodingGenerateSeries, exp.GenerateSeries)
# scalar functions clients call in FROM (Grafana: ``string_to_array(current_setting(...)) s``)
_SCALAR_IN_FROM = (exp.StringToArray,)


def transpile(sql: str, identity: Identity) -> str:
    """One PostgreSQL statement as DuckDB SQL, with the catalog emulation's names."""
    tree = sqlglot.parse_one(sql, read=CatalogPostgres)
    return rewrite_tree(tree, identity).sql(dialect="duckdb", normalize_functions=False)


def rewrite_tree(tree: exp.Expr, identity: Identity) -> exp.Expr:
    """``tree`` (PostgreSQL) rewritten for DuckDB and the emulated catalog (in place)."""
    colnames.add_aliases(tree)  # first: the names PostgreSQL gives the items as written
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        _table(table, ctes)
    for column in list(tree.find_all(exp.Column)):
        _column(column)
    for dot in reversed(list(tree.find_all(exp.Dot))):
        _qualified_call(dot)
    for cast in reversed(list(tree.find_all(exp.Cast))):
        _cast(cast)
    for node in list(tree.find_all(exp.Func, exp.Operator, exp.Collate, exp.Like, exp.ILike)):
        _expression(node, identity)
    for comparison in list(tree.find_all(exp.EQ, exp.NEQ)):
        _comparison(comparison)
    for quantified in list(tree.find_all(exp.Any, exp.All)):
        _array_literal(quantified)
    add_srf_column_aliases(tree)
    return tree


# -- relations ---------------------------------------------------------------------------------


def _table(table: exp.Table, ctes: set[str]) -> None:
    schema, name = table.db.lower(), table.name.lower()
    if table.catalog or not isinstance(table.this, exp.Identifier):
        if schema == "pg_catalog":
            table.set("db", None)  # pg_catalog.generate_series(...)
        elif schema == "public" and isinstance(table.this, exp.Identifier):
            table.set("db", exp.to_identifier("main"))  # "shop"."public"."t": dbt's names
        return
    view = _view_for(schema, name, ctes)
    if view is not None:
        alias = table.alias or table.name
        table.set("this", exp.to_identifier(view))
        table.set("db", exp.to_identifier("main"))
        table.set("catalog", exp.to_identifier("temp"))
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    elif schema == "public":
        table.set("db", exp.to_identifier("main"))


def _view_for(schema: str, name: str, ctes: set[str]) -> str | None:
    if schema == "information_schema":
        return _INFORMATION_SCHEMA.get(name)
    if schema == "pg_catalog" or (not schema and name not in ctes):
        return _PG_CATALOG.get(name)
    return None


def _column(column: exp.Column) -> None:
    """``pg_catalog.pg_class.relname`` -> ``pg_class.relname`` (the view keeps that alias)."""
    if column.args.get("db") is not None and column.db.lower() in {*_CATALOG_SCHEMAS, "public"}:
        column.set("db", None)
        column.set("catalog", None)


# -- functions -----------------------------------------------------------------------------------


def _qualified_call(dot: exp.Dot) -> None:
    """``pg_catalog.f(...)`` -> ``f(...)`` (``information_schema._pg_expandarray`` too)."""
    if isinstance(dot.this, exp.Identifier) and dot.this.name.lower() in _CATALOG_SCHEMAS:
        call = dot.expression
        if isinstance(call, exp.Anonymous):
            call = exp.func(call.name, *call.expressions, dialect=CatalogPostgres)
        dot.replace(call)


def _expression(node: exp.Expr, identity: Identity) -> None:
    replacement = _replacement(node, identity)
    if replacement is not None:
        _replace_keeping_name(node, replacement, _column_names.get(type(node), node.name))


def _replace_keeping_name(node: exp.Expr, replacement: exp.Expr, name: str) -> None:
    """Replaces ``node``; as an unaliased select-list item it keeps the column name PostgreSQL
    gives it (``SELECT version()`` has a column "version")."""
    if isinstance(node.parent, exp.Select) and node.arg_key == "expressions" and name:
        replacement = exp.alias_(replacement, name.lower(), quoted=True)
    node.replace(replacement)


# the column a select-list item is named after, for the nodes sqlglot gives a class
_column_names: dict[type[exp.Expr], str] = {
    exp.CurrentVersion: "version",
    exp.CurrentDatabase: "current_database",
    exp.CurrentCatalog: "current_catalog",
    exp.CurrentUser: "current_user",
    exp.SessionUser: "session_user",
    exp.CurrentSchema: "current_schema",
}


def _replacement(node: exp.Expr, identity: Identity) -> exp.Expr | None:
    if isinstance(node, exp.CurrentVersion):
        return exp.Literal.string(identity.version)
    if isinstance(node, exp.CurrentDatabase | exp.CurrentCatalog):
        return exp.Literal.string(identity.database)
    if isinstance(node, exp.CurrentUser | exp.SessionUser):
        return exp.Literal.string(identity.user)
    if isinstance(node, exp.CurrentSchema):
        return exp.Anonymous(this="sqlml_current_schema")
    if isinstance(node, exp.Operator):
        return _operator(node)
    if isinstance(node, exp.Collate):
        collated: exp.Expr = node.this
        return collated
    if isinstance(node, exp.Like | exp.ILike):
        return _like(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() in _FUNCTIONS:
        return exp.Anonymous(this=_FUNCTIONS[node.name.lower()], expressions=node.expressions)
    if isinstance(node, exp.Anonymous) and node.name.lower() in _DUCKDB_NAMES:
        return exp.Anonymous(this=_DUCKDB_NAMES[node.name.lower()], expressions=node.expressions)
    return None


def _operator(node: exp.Operator) -> exp.Expr | None:
    symbol = str(node.args.get("operator", "")).split(".")[-1].strip()
    build = _OPERATORS.get(symbol)
    return build(node.this, node.expression) if build else None


def _like(node: exp.Like | exp.ILike) -> exp.Expr | None:
    """PostgreSQL's LIKE escapes with a backslash unless told otherwise; DuckDB's does not."""
    pattern = node.expression
    if isinstance(node.parent, exp.Escape) or not isinstance(pattern, exp.Literal):
        return None
    if "\\" not in pattern.name:
        return None
    return exp.Escape(this=node.copy(), expression=exp.Literal.string("\\"))


def _comparison(node: exp.Binary) -> None:
    for side, other in ((node.this, node.expression), (node.expression, node.this)):
        if isinstance(other, exp.Literal) and not other.is_string and other.name == "0":
            if isinstance(side, exp.Column) and side.name.lower() in _REGPROC_COLUMNS:
                other.replace(exp.Literal.string("-"))
        elif isinstance(other, exp.Literal) and other.is_string and _is_array_text(other.name):
            other.replace(exp.Literal.string("[" + other.name[1:-1] + "]"))


def _array_literal(node: exp.Expr) -> None:
    """``x = ANY('{r,p}')`` (psycopg's Literal of a list, pgspecial's ``\\dt``): PostgreSQL reads
    the string as an array of x's type; DuckDB needs a list (the strings' type: DuckDB compares
    them with numbers too)."""
    text = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
    if not isinstance(text, exp.Literal) or not text.is_string or not text.name.startswith("{"):
        return
    try:  # array_in's rules (quotes, NULL), as a parameter of type text[] is read
        items = params.decode_parameter(text.name.encode(), TEXT_ARRAY, 0)
    except errors.Error:
        return  # not an array: DuckDB has the last word
    values = [exp.null() if i is None else exp.Literal.string(str(i)) for i in items]
    text.replace(exp.Array(expressions=values))


def _is_array_text(text: str) -> bool:
    return text.startswith("{") and text.endswith("}") and '"' not in text


# -- casts ---------------------------------------------------------------------------------------


def _type_name(data_type: exp.DataType) -> str | None:
    """The PostgreSQL name of a user-defined type (``pg_catalog.regclass`` -> ``regclass``)."""
    if data_type.this != exp.DType.USERDEFINED:
        return None
    kind = data_type.args.get("kind")
    name = kind.name if isinstance(kind, exp.Dot | exp.Identifier) else str(kind or "")
    return name.lower().strip('"')


def _cast(cast: exp.Cast) -> None:
    to = cast.to
    name = _type_name(to)
    if name in _REG_TYPES:
        shown = cast.this.name if isinstance(cast.this, exp.Column) else name
        _replace_keeping_name(cast, _reg_cast(cast, name), shown)
    elif name in _TYPES:
        cast.set("to", exp.DataType.build(_TYPES[name], dialect="duckdb"))
    elif to.this == exp.DType.ARRAY and to.expressions:
        element = _type_name(to.expressions[0])
        if element in _REG_TYPES:
            _replace_keeping_name(cast, _reg_array_cast(cast, element), element)
        elif element in _TYPES:
            cast.set("to", exp.DataType.build(_TYPES[element] + "[]", dialect="duckdb"))
    elif to.this == exp.DType.NAME:
        cast.set("to", exp.DataType.build("VARCHAR", dialect="duckdb"))


def _reg_cast(cast: exp.Cast, name: str) -> exp.Expr:
    """``x::regclass``: a name looked up, an OID shown as a name where it is shown, else the OID."""
    lookup, display = _REG_TYPES[name]
    value: exp.Expr = cast.this
    if _is_text(value):
        value = exp.Anonymous(this=lookup, expressions=[value])
    if _is_shown(cast):
        return exp.Anonymous(this=display, expressions=[value])
    return value


def _reg_array_cast(cast: exp.Cast, name: str) -> exp.Expr:
    """``oids::regtype[]`` (pgcli's function list): each OID shown as a name where the array is
    shown or cast on to text[], else the OIDs as they are."""
    shown = isinstance(cast.parent, exp.Cast | exp.Coalesce)
    if not shown and not _is_shown(cast):
        value: exp.Expr = cast.this
        return value
    display = _REG_TYPES[name][1]
    # each element shown, in order (a subquery: DuckDB's lambdas cannot call the display
    # macro, which has subqueries of its own)
    template = exp.maybe_parse(_SHOWN_ARRAY.format(display=display), into=exp.Select)
    for array in template.find_all(exp.Column):
        if array.name == "sqlml_array":
            array.replace(cast.this.copy())
    return exp.Subquery(this=template)


_SHOWN_ARRAY = """SELECT list({display}(sqlml_item) ORDER BY sqlml_i) FROM (
    SELECT unnest(sqlml_array) AS sqlml_item, generate_subscripts(sqlml_array, 1) AS sqlml_i)"""


def _is_text(node: exp.Expr) -> bool:
    if isinstance(node, exp.Literal):
        return node.is_string
    if isinstance(node, exp.Placeholder | exp.Parameter):
        return True
    if isinstance(node, exp.Cast):
        return node.to.this in _TEXT_TYPES
    return isinstance(node, exp.Anonymous) and node.name.lower() == "pg_get_serial_sequence"


def _is_shown(cast: exp.Cast) -> bool:
    """Whether the value of ``cast`` reaches the client as text: a select-list item (aliased or
    not), or the operand of a cast to text."""
    parent = cast.parent
    if isinstance(parent, exp.Cast):
        return parent.to.this in _TEXT_TYPES or _type_name(parent.to) in {"text", "name"}
    item = parent if isinstance(parent, exp.Alias) else cast
    return isinstance(item.parent, exp.Select) and item.arg_key == "expressions"


def add_srf_column_aliases(tree: exp.Expr) -> None:
    """``FROM generate_series(...) s`` -> ``FROM generate_series(...) s(s)`` (PostgreSQL names
    the single column of a function in FROM after its alias); ``FROM string_to_array(...) s``
    -> ``FROM (SELECT string_to_array(...) AS s) s``."""
    for table in tree.find_all(exp.Table):
        alias = table.args.get("alias")
        if isinstance(table.this, _SCALAR_SRF) and alias is not None and not alias.columns:
            alias.set("columns", [exp.to_identifier(alias.name)])
    for table in list(tree.find_all(exp.Table)):
        alias = table.args.get("alias")
        if isinstance(table.this, _SCALAR_IN_FROM) and alias is not None and not alias.columns:
            # a scalar function in FROM is one row (DuckDB takes only table functions there)
            value = exp.select(exp.alias_(table.this.copy(), alias.name)).subquery(alias.name)
            table.replace(value)


# -- DDL DuckDB takes in another form --------------------------------------------------------------

_DEPTH = {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}


def one_per_name(sql: str) -> list[str] | None:
    """``DROP TABLE a, b`` or ``TRUNCATE a, b`` as one PostgreSQL statement per relation
    (DuckDB drops and truncates one at a time); None for a statement that names one relation,
    or that is no such statement."""
    if "," not in sql:
        return None
    try:
        tree = sqlglot.parse_one(sql, read=CatalogPostgres)
    except SqlglotError:
        return None
    key = "tables" if isinstance(tree, exp.Drop) else "expressions"
    if not isinstance(tree, exp.Drop | exp.TruncateTable) or len(tree.args.get(key) or []) < 2:
        return None
    statements = []
    for table in tree.args[key]:
        single = tree.copy()
        single.set(key, [table.copy()])
        statements.append(single.sql(dialect="postgres"))
    return statements


def without_storage_parameters(sql: str) -> str | None:
    """``CREATE TABLE t (...) WITH (fillfactor = 100)`` without its ``WITH (...)``: storage
    parameters tune PostgreSQL's heap, which DuckDB has not (and refuses); None when there are
    none. A ``WITH`` after ``AS`` begins the table's query and stays."""
    if "with" not in sql.lower():
        return None
    try:
        tokens = CatalogPostgres().tokenize(sql)
    except SqlglotError:
        return None
    depth = 0
    for i, token in enumerate(tokens[:-1]):
        if token.token_type == TokenType.ALIAS and depth == 0:
            return None
        parameters = tokens[i + 1].token_type == TokenType.L_PAREN
        if token.token_type == TokenType.WITH and depth == 0 and parameters:
            end = _closing(tokens, i + 1)
            return None if end is None else sql[: token.start] + sql[tokens[end].end + 1 :]
        depth += _DEPTH.get(token.token_type, 0)
    return None


def _closing(tokens: list[Token], opening: int) -> int | None:
    """The index of the parenthesis that closes the one at ``opening``."""
    depth = 0
    for i in range(opening, len(tokens)):
        depth += _DEPTH.get(tokens[i].token_type, 0)
        if depth == 0:
            return i
    return None
