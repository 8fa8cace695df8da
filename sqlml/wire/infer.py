"""The types of a statement's parameters, as PostgreSQL infers them when it parses the statement.

Theory of operation. A client that sends ``Parse`` without parameter types (asyncpg, psycopg 3 with
binary parameters, JDBC) asks ``Describe`` what they are, and encodes its arguments accordingly:
``WHERE id = $1`` must come back as int8 if ``id`` is bigint. DuckDB infers these types too, but
its Python API does not expose them (``duckdb_prepared_statements()`` lists every parameter of
such a statement as UNKNOWN), so :func:`parameter_types` infers them itself, the way PostgreSQL
resolves an ``unknown`` operand: from the context the parameter sits in.

1. The statement is parsed (PostgreSQL with the ML grammar, else DuckDB); tables are resolved
   with the backend's :data:`Lookup` (user relations: columns and the type OIDs ``pg_attribute``
   shows) and the emulated catalog's column lists; sqlglot's ``qualify`` and ``annotate_types``
   type every column and expression of the query. DML is analysed as the query it contains:
   ``INSERT`` its VALUES or SELECT, ``UPDATE``/``DELETE`` a SELECT over the target (and FROM /
   USING) with the SET values and the WHERE clause.
2. Each parameter takes the first rule that applies: declared by the client; a position that
   stores into a column (INSERT values, SET); a cast (``$1::int4``); LIMIT/OFFSET (int8); a
   boolean context (WHERE, AND, NOT, searched CASE); LIKE and ``||`` (text); the other operand of
   a comparison or arithmetic operator, IN, BETWEEN, ``= ANY`` (its array type), a row
   comparison, COALESCE/CASE/GREATEST and the other branch of a UNION; else text, as PostgreSQL
   resolves a bare unknown (``SELECT $1``). Integer literals are int4 (int8, numeric when larger)
   and decimal ones numeric, as in PostgreSQL, so ``id = $1 + 1`` gives int4 as it does there.

What PostgreSQL rejects (``SELECT $1 IS NULL``: could not determine the type) is text here; the
statement then fails or not when it runs, as DuckDB decides. Nothing here runs SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema
from sqlglot.tokenizer_core import TokenType

from sqlml.engines.pgtypes import (
    BOOL,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
)
from sqlml.grammar import lexer, nodes
from sqlml.grammar.dialects import SqlmlDuckDB, SqlmlPostgres
from sqlml.wire import catalog_sql, catalog_types

UNKNOWN = 705  # pg_type 'unknown': a declared type that leaves the choice to the server
TIME, TIMETZ, INTERVAL = 1083, 1266, 1186


@dataclass(frozen=True)
class Relation:
    """A table or view as PostgreSQL would show it: schema name, name, (column, type OID)."""

    schema: str  # PostgreSQL's name of the schema (DuckDB's main is public)
    name: str
    columns: tuple[tuple[str, int], ...]


# (lower-case relation names) -> the user relations of those names in any schema, and the
# search path (PostgreSQL schema names, in order) that unqualified names resolve through
Lookup = Callable[[Collection[str]], tuple[list[Relation], list[str]]]


class InferPostgres(SqlmlPostgres):
    """PostgreSQL with the ML grammar, where ``oid`` and the ``reg*`` names are plain type names
    (as in the catalog rewrite), so that ``$1::oid[]`` parses."""

    class Tokenizer(SqlmlPostgres.Tokenizer):
        KEYWORDS = {
            key: token
            for key, token in SqlmlPostgres.Tokenizer.KEYWORDS.items()
            if token != TokenType.OBJECT_IDENTIFIER
        }


def parameter_types(sql: str, declared: Sequence[int], lookup: Lookup) -> tuple[int, ...]:
    """The type OID of each parameter of ``sql``: ``declared`` where the client gave one (not 0
    or unknown), else inferred, else text."""
    if all(oid not in (0, UNKNOWN) for oid in declared):
        return tuple(declared)
    tree = _parse(sql)
    inferred = _Inference(tree, declared, lookup).run() if tree is not None else {}
    return tuple(
        oid if oid not in (0, UNKNOWN) else inferred.get(n) or TEXT
        for n, oid in enumerate(declared, start=1)
    )


# -- parsing ---------------------------------------------------------------------------------------

# the statements worth a parse (others, SET or CALL ..., have text parameters); the query of a
# cursor is analysed on its own
_ANALYSED = frozenset(
    {"SELECT", "WITH", "VALUES", "TABLE", "FROM", "INSERT", "UPDATE", "DELETE", "CREATE"}
)


def _parse(sql: str) -> exp.Expr | None:
    if lexer.first_word(sql) == "DECLARE":
        sql = sql[lexer.wrapped_query(sql)[0] :]
    if lexer.first_word(sql, after_parens=True) not in _ANALYSED:
        return None
    # sqlglot reads "$1,$2" as the start of a dollar-quoted string tagged "1,": a space after each
    # parameter number keeps the tokens apart (the text is only analysed, never run)
    markers = (t for t in lexer.parameters(sql) if t.kind == lexer.PARAM)
    text = lexer.replace(sql, ((t, t.text(sql) + " ") for t in markers))
    for dialect in (InferPostgres, SqlmlDuckDB):
        try:
            trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
        except SqlglotError:
            continue
        if len(trees) != 1:
            return None
        query = trees[0].expression
        if isinstance(trees[0], exp.Create) and isinstance(query, nodes.QueryText):
            return _parse(query.name)  # CREATE MODEL keeps its query as text
        return trees[0]
    return None


def _number(node: exp.Expr) -> int | None:
    """The n of a ``$n`` parameter node (PostgreSQL: Parameter, DuckDB: Placeholder)."""
    if isinstance(node, exp.Parameter | exp.Placeholder) and node.name.isdigit():
        return int(node.name)
    return None


# -- types -----------------------------------------------------------------------------------------

_BY_FORMAT = {t.format: t.oid for t in catalog_types.BUILTIN}
_BY_NAME = {t.typname: t.oid for t in catalog_types.BUILTIN}
_DOMAINS = {
    "cardinal_number": INT4,
    "character_data": TEXT,
    "sql_identifier": 19,
    "yes_or_no": TEXT,
}

# sqlglot's type -> PostgreSQL type OID (DuckDB's own types as the gateway sends their values)
_OIDS: dict[exp.DType, int] = {
    exp.DType[name]: oid
    for names, oid in (
        ("BIGINT UINT", 20), ("INT USMALLINT", 23), ("SMALLINT TINYINT UTINYINT", 21),
        ("DECIMAL UBIGINT INT128 UINT128 INT256 UINT256 BIGDECIMAL BIGNUM", 1700),
        ("DOUBLE", 701), ("FLOAT", 700), ("BOOLEAN", 16), ("TEXT", 25), ("NAME", 19),
        ("VARCHAR NVARCHAR", 1043), ("CHAR NCHAR BPCHAR", 1042), ("DATE DATE32", 1082),
        ("TIME", 1083), ("TIMETZ", 1266), ("TIMESTAMPTZ TIMESTAMPLTZ", 1184),
        ("TIMESTAMP TIMESTAMPNTZ TIMESTAMP_S TIMESTAMP_MS TIMESTAMP_NS", 1114),
        ("INTERVAL", 1186), ("UUID", 2950), ("JSON", 114), ("JSONB", 3802), ("XML", 142),
        ("VARBINARY BINARY BLOB", 17), ("INET", 869), ("MONEY", 790), ("BIT", 1560),
        ("POINT", 600),
    )
    for name in names.split()
}  # fmt: skip


def _oid_of(data_type: exp.DataType | None) -> int | None:
    """The OID of a sqlglot type (None: unknown)."""
    if data_type is None:
        return None
    if data_type.this == exp.DType.ARRAY and data_type.expressions:
        element = data_type.expressions[0]
        return _array_of(_oid_of(element) if isinstance(element, exp.DataType) else None)
    if data_type.this == exp.DType.USERDEFINED:
        return _oid_of_name(data_type.sql(dialect=InferPostgres))
    return _OIDS.get(data_type.this)


def _oid_of_name(name: str) -> int | None:
    """The OID of a PostgreSQL type name (``integer``, ``oid[]``, ``"char"``, ``_int4``)."""
    name = name.lower().removeprefix("pg_catalog.")
    if name.endswith("[]"):
        return _array_of(_oid_of_name(name[:-2]))
    return _BY_FORMAT.get(name) or _BY_NAME.get(name.strip('"')) or _DOMAINS.get(name)


def _array_of(element: int | None) -> int | None:
    pg_type = catalog_types.BY_OID.get(element or 0)
    return pg_type.typarray if pg_type is not None and pg_type.typarray else None


def _element_of(array: int | None) -> int | None:
    pg_type = catalog_types.BY_OID.get(array or 0)
    return pg_type.typelem if pg_type is not None and pg_type.typcategory == "A" else None


def _data_type(oid: int) -> exp.DataType:
    """The sqlglot type of a column of type ``oid`` (for the schema sqlglot annotates with)."""
    return _parsed_type(oid).copy()


@functools.cache
def _parsed_type(oid: int) -> exp.DataType:
    pg_type = catalog_types.BY_OID.get(oid)
    name = pg_type.format if pg_type is not None else "text"
    return exp.DataType.build(name, dialect=InferPostgres, udt=True)


def _literal_oid(literal: exp.Literal) -> int | None:
    """PostgreSQL's type of a literal: integers int4, int8 or numeric by size, decimals numeric;
    a string literal is unknown."""
    if literal.is_string:
        return None
    text = literal.name
    if not text.isdigit():
        return NUMERIC
    value = int(text)
    return INT4 if value < 2**31 else INT8 if value < 2**63 else NUMERIC


# -- the emulated catalog's relations --------------------------------------------------------------


def _catalog_relations() -> list[Relation]:
    relations = []
    for name, columns in catalog_sql.CATALOGS.items():
        schema, _, relation = name.rpartition(".")
        typed = tuple((column, _oid_of_name(pg_type) or TEXT) for column, pg_type in columns)
        relations.append(Relation(schema or "pg_catalog", relation, typed))
    return relations


_CATALOG_RELATIONS = _catalog_relations()


# -- the inference ---------------------------------------------------------------------------------

_BOOLEAN_PARENTS = (exp.Where, exp.Having, exp.And, exp.Or, exp.Not, exp.Xor, exp.Qualify)
_TEXT_PARENTS = (exp.Like, exp.ILike, exp.SimilarTo, exp.RegexpLike, exp.RegexpILike, exp.DPipe)
_SIBLING_FUNCTIONS = (exp.Coalesce, exp.Greatest, exp.Least, exp.Nullif)
_COUNT_PARENTS = (exp.Limit, exp.Offset, exp.Fetch)
_WIDER: dict[type[exp.Expr], dict[int, int]] = {
    exp.Sum: {INT2: INT8, INT4: INT8, INT8: NUMERIC},
    exp.Avg: {INT2: NUMERIC, INT4: NUMERIC, INT8: NUMERIC, FLOAT4: FLOAT8},
}
_NO_SUM = frozenset({DATE, TIMESTAMP, TIMESTAMPTZ, TIME, TIMETZ})  # no date + date in PostgreSQL


class _Inference:
    """One statement's parameters and their types (see the module docstring)."""

    def __init__(self, tree: exp.Expr, declared: Sequence[int], lookup: Lookup) -> None:
        self.tree = tree
        self.declared = {
            n: oid for n, oid in enumerate(declared, start=1) if oid not in (0, UNKNOWN)
        }
        self.lookup = lookup
        self.relations: dict[tuple[str, str], Relation] = {}
        self.search_path: list[str] = []
        self.stored: dict[int, int] = {}  # id(parameter node) -> OID of the column it goes to

    def run(self) -> dict[int, int]:
        self._resolve_tables()
        roots = list(self._analysed())
        schema = self._schema()
        for root in roots:
            self._annotate(root, schema)
        found: dict[int, int] = {}
        for node in self.tree.find_all(exp.Parameter, exp.Placeholder):
            n = _number(node)
            if n is not None and n not in found:
                oid = self.stored.get(id(node)) or self._expected(node)
                if oid is not None:
                    found[n] = oid
        return found

    # -- tables --------------------------------------------------------------------------------

    def _tables(self) -> list[exp.Table]:
        ctes = {cte.alias_or_name.lower() for cte in self.tree.find_all(exp.CTE)}
        return [
            t
            for t in self.tree.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and not (not t.db and t.name.lower() in ctes)
        ]

    def _resolve_tables(self) -> None:
        """Looks the statement's tables up and qualifies every one with its schema."""
        tables = self._tables()
        names = {t.name.lower() for t in tables}
        user, self.search_path = self.lookup(names) if names else ([], [])
        catalog = [r for r in _CATALOG_RELATIONS if r.name in names]
        for relation in [*catalog, *user]:
            self.relations.setdefault((relation.schema, relation.name.lower()), relation)
        for table in tables:
            schema = self._schema_of(table)
            if schema is not None:
                table.set("db", exp.to_identifier(schema, quoted=True))
                table.set("catalog", None)

    def _schema_of(self, table: exp.Table) -> str | None:
        name, schema = table.name.lower(), table.args.get("db")
        if isinstance(schema, exp.Identifier):  # PostgreSQL folds an unquoted name
            written = schema.name if schema.quoted else schema.name.lower()
            return "public" if written == "main" else written
        for candidate in ("pg_catalog", *self.search_path):
            if (candidate, name) in self.relations:
                return candidate
        return None

    def _relation(self, table: exp.Expr | None) -> Relation | None:
        if isinstance(table, exp.Schema):
            table = table.this
        if not isinstance(table, exp.Table):
            return None
        return self.relations.get((table.db, table.name.lower()))

    def _schema(self) -> MappingSchema:
        tables: dict[str, dict[str, dict[str, exp.DataType]]] = {}
        for (schema, _), relation in self.relations.items():
            columns = {name: _data_type(oid) for name, oid in relation.columns}
            tables.setdefault(schema, {})[relation.name] = columns
        mapping: dict[str, object] = {**tables}
        return MappingSchema(mapping, dialect=InferPostgres, normalize=False)

    # -- what is analysed: the query, or the query inside a DML statement ----------------------

    def _analysed(self) -> Iterator[exp.Expr]:
        tree = self.tree
        if isinstance(tree, exp.Insert):
            yield from self._insert(tree)
        elif isinstance(tree, exp.Update):
            yield self._update(tree)
        elif isinstance(tree, exp.Delete):
            yield self._delete(tree)
        elif isinstance(tree, exp.Query):
            yield tree
        elif isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
            yield tree.expression  # CREATE TABLE ... AS, CREATE MODEL ... AS

    def _insert(self, insert: exp.Insert) -> Iterator[exp.Expr]:
        relation = self._relation(insert.this)
        columns = self._target_columns(insert, relation)
        source = insert.expression
        rows = source.expressions if isinstance(source, exp.Values) else []
        if isinstance(source, exp.Query) and not isinstance(source, exp.Values):
            rows = [exp.Tuple(expressions=list(source.selects))]
            yield source
        for row in rows:
            values = row.expressions if isinstance(row, exp.Tuple) else [row]
            for value, oid in zip(values, columns, strict=False):
                self._store(value, oid)
        conflict = insert.args.get("conflict")
        if conflict is not None and relation is not None:
            self._set(conflict.expressions, relation)

    def _target_columns(self, insert: exp.Insert, relation: Relation | None) -> list[int]:
        if relation is None:
            return []
        types = {name.lower(): oid for name, oid in relation.columns}
        target = insert.this
        if isinstance(target, exp.Schema) and target.expressions:
            return [types.get(c.name.lower(), 0) for c in target.expressions]
        return [oid for _, oid in relation.columns]

    def _update(self, update: exp.Update) -> exp.Expr:
        relation = self._relation(update.this)
        if relation is not None:
            self._set(update.expressions, relation)
        values = [e.expression for e in update.expressions if isinstance(e, exp.EQ)]
        return self._select(values or [exp.Literal.number(1)], update.this, update)

    def _delete(self, delete: exp.Delete) -> exp.Expr:
        return self._select([exp.Literal.number(1)], delete.this, delete)

    def _select(self, values: list[exp.Expr], target: exp.Expr, statement: exp.Expr) -> exp.Expr:
        """``SELECT values FROM target, <FROM or USING tables> WHERE ...`` of a DML statement,
        built from its own nodes (the tree is this analysis's own copy)."""
        select = exp.Select(expressions=values, from_=exp.From(this=target))
        extra = statement.args.get("from_") or statement.args.get("using")
        sources = [extra.this] if isinstance(extra, exp.From) else list(extra or [])
        joins = [exp.Join(this=source) for source in sources]
        select.set("joins", joins + list(statement.args.get("joins") or []))
        select.set("where", statement.args.get("where"))
        return select

    def _set(self, assignments: list[exp.Expr], relation: Relation) -> None:
        types = {name.lower(): oid for name, oid in relation.columns}
        for assignment in assignments:
            if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
                self._store(assignment.expression, types.get(assignment.this.name.lower(), 0))

    def _store(self, value: exp.Expr, oid: int) -> None:
        while isinstance(value, exp.Paren):
            value = value.this
        if oid and _number(value) is not None:
            self.stored[id(value)] = oid

    def _annotate(self, root: exp.Expr, schema: MappingSchema) -> None:
        try:
            qualified = qualify(
                root,
                schema=schema,
                dialect=InferPostgres,
                validate_qualify_columns=False,
                quote_identifiers=False,
                identify=False,
            )
        # an ambiguous column, or a tree the optimizer cannot take (it asserts its own
        # invariants, e.g. ORDER BY 1 over * of an unknown table): the types found without
        except (SqlglotError, AssertionError):
            qualified = root
        annotate_types(qualified, schema=schema, dialect=InferPostgres)

    # -- the rules -------------------------------------------------------------------------------

    def _expected(self, node: exp.Expr) -> int | None:
        """The type the context of ``node`` (a parameter, or an expression around one) wants."""
        parent, key = node.parent, node.arg_key
        if parent is None:
            return None
        if isinstance(parent, exp.Paren):
            return self._expected(parent)
        if isinstance(parent, exp.Cast):
            return _oid_of(parent.to)
        if isinstance(parent, _COUNT_PARENTS):
            return INT8
        if isinstance(parent, _BOOLEAN_PARENTS) or key == "on":
            return BOOL
        if isinstance(parent, _TEXT_PARENTS):
            return self._type_of(parent.expression if key == "this" else parent.this) or TEXT
        rule = self._RULES.get(type(parent))
        if rule is not None:
            return rule(self, node, parent)
        if isinstance(parent, exp.Binary):
            return self._operand(parent, parent.expression if key == "this" else parent.this)
        if isinstance(parent, exp.Alias | exp.Select):
            return self._select_item(node if isinstance(parent, exp.Select) else parent)
        return None

    def _operand(self, operator: exp.Binary, other: exp.Expr) -> int | None:
        """An operand of a comparison or arithmetic: the other operand's type, unless PostgreSQL
        has no operator for two of that type (``date + $1``: ambiguous there, text here)."""
        oid = self._type_of(other)
        if isinstance(operator, exp.Add) and oid in _NO_SUM:
            return None
        if isinstance(operator, exp.Mul | exp.Div) and oid == INTERVAL:
            return None
        return oid

    def _in(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        if node.arg_key == "this":
            query = parent.args.get("query")
            if query is not None:
                return self._type_of(query)
            return self._first_type(parent.expressions)
        return self._type_of(parent.this) or self._first_type(parent.expressions)

    def _between(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        others = [parent.this, parent.args.get("low"), parent.args.get("high")]
        return self._first_type([o for o in others if o is not None and o is not node])

    def _any(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        """``x = ANY($1)``: an array of x's type."""
        comparison = parent.parent
        if not isinstance(comparison, exp.Binary):
            return None
        other = comparison.this if parent.arg_key == "expression" else comparison.expression
        return _array_of(self._type_of(other) or TEXT)  # 'r' = ANY($1): text[], as there

    def _array(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        element = _element_of(self._expected(parent))
        return element or self._first_type([e for e in parent.expressions if e is not node])

    def _tuple(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        """``(a, b) = ($1, $2)``: the element at the same place on the other side."""
        comparison = parent.parent
        index = parent.expressions.index(node) if node in parent.expressions else -1
        if not isinstance(comparison, exp.Binary) or index < 0:
            return None
        other = comparison.expression if parent.arg_key == "this" else comparison.this
        if isinstance(other, exp.Tuple) and index < len(other.expressions):
            return self._type_of(other.expressions[index])
        return None

    def _siblings(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        values = [parent.this, *parent.expressions, parent.args.get("expression")]
        return self._first_type([v for v in values if v is not None and v is not node])

    def _if(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        case = parent.parent
        if node.arg_key == "this":  # a WHEN: compared with CASE x, or a condition
            if isinstance(case, exp.Case) and case.this is not None:
                return self._type_of(case.this)
            return BOOL
        return self._case_result(case, node)

    def _case(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        if node.arg_key == "this":  # CASE $1 WHEN ...
            whens = [i.this for i in parent.args.get("ifs") or []]
            return self._first_type(whens)
        return self._case_result(parent, node)

    def _case_result(self, case: exp.Expr | None, node: exp.Expr) -> int | None:
        if not isinstance(case, exp.Case):
            return None
        results = [i.args.get("true") for i in case.args.get("ifs") or []]
        results.append(case.args.get("default"))
        return self._first_type([r for r in results if r is not None and r is not node])

    def _anonymous(self, node: exp.Expr, parent: exp.Expr) -> int | None:
        if parent.name.upper() in ("ANY", "ALL", "SOME"):
            return self._any(node, parent)
        return None

    _RULES: dict[type[exp.Expr], Callable[[_Inference, exp.Expr, exp.Expr], int | None]] = {
        exp.In: _in,
        exp.Between: _between,
        exp.Any: _any,
        exp.All: _any,
        exp.Array: _array,
        exp.Tuple: _tuple,
        exp.If: _if,
        exp.Case: _case,
        exp.Anonymous: _anonymous,
        **dict.fromkeys(_SIBLING_FUNCTIONS, _siblings),
    }

    def _select_item(self, item: exp.Expr) -> int | None:
        """A select-list item: the column it goes to (INSERT ... SELECT is done by then), or the
        same column of the other branch of a UNION."""
        select = item.parent
        if not isinstance(select, exp.Select) or item.arg_key != "expressions":
            return None
        index = select.expressions.index(item)
        union = select.parent
        while isinstance(union, exp.Subquery | exp.Paren):
            union = union.parent
        if not isinstance(union, exp.SetOperation):
            return None
        other = union.expression if select is union.this else union.this
        selects = other.selects if isinstance(other, exp.Query) else []
        return self._type_of(selects[index]) if index < len(selects) else None

    # -- types of expressions --------------------------------------------------------------------

    def _first_type(self, nodes: Sequence[exp.Expr]) -> int | None:
        return next((t for t in map(self._type_of, nodes) if t is not None), None)

    def _type_of(self, node: exp.Expr | None) -> int | None:
        """The type of an operand: its annotation, a literal's type, a declared parameter's."""
        if node is None:
            return None
        if isinstance(node, exp.Paren | exp.Alias | exp.Neg):
            return self._type_of(node.this)
        n = _number(node)
        if n is not None:
            return self.declared.get(n)
        if isinstance(node, exp.Literal):
            return _literal_oid(node)
        if isinstance(node, exp.CurrentTimestamp):
            return TIMESTAMPTZ  # now(): sqlglot says timestamp, PostgreSQL timestamptz
        if isinstance(node, exp.Sum | exp.Avg):  # widened as PostgreSQL does: sum(int8) numeric
            argument = self._type_of(node.this)
            return _WIDER[type(node)].get(argument or 0, argument)
        if isinstance(node, exp.Any | exp.All):  # x = ANY(array): an element
            return _element_of(self._type_of(node.this))
        if isinstance(node, exp.Subquery | exp.Query):
            selects = node.selects if isinstance(node, exp.Query) else node.this.selects
            return self._type_of(selects[0]) if selects else None
        known = node.type if node.type is not None and not node.is_type(exp.DType.UNKNOWN) else None
        if known is None and isinstance(node, exp.Binary) and not isinstance(node, exp.Predicate):
            return self._type_of(node.this) or self._type_of(node.expression)
        return _oid_of(known)
