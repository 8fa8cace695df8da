"""PostgreSQL 15's catalog and session statements over a DuckDB connection, for the wire gateway.

Theory of operation. A :class:`Catalog` belongs to one gateway session and its DuckDB connection.
The session passes every client query string through :meth:`Catalog.rewrite` and runs what comes
back, in order, instead. ``rewrite`` splits the string into statements (quotes, comments and
dollar quotes respected) and returns exactly one DuckDB string per non-empty client statement, so
the session can pair results with the statements it split itself (the one lexer's split).
Each statement takes the first of these paths:

1. *Session statements*, recognised by their first word without parsing: ``SET``, ``RESET`` and
   ``SHOW`` of PostgreSQL settings, transaction forms DuckDB does not accept (``BEGIN ISOLATION
   LEVEL ...``, ``END``, ``ABORT``), ``SAVEPOINT``/``RELEASE``, cursors (``DECLARE``, ``FETCH``,
   ``MOVE``, ``CLOSE``), ``DISCARD`` and ``UNLISTEN``. The catalog keeps PostgreSQL's settings
   itself (:meth:`Catalog.settings`; DuckDB knows none of them except ``TimeZone`` and
   ``search_path``, which are passed on). A ``SET`` becomes ``SET VARIABLE sqlml_settings = MAP
   {...}`` (so that ``current_setting()`` in SQL sees it), a ``SHOW`` a one-row ``SELECT``, a
   statement with nothing to do ``RESET VARIABLE sqlml_noop``: each a DuckDB statement that returns
   no rows or the right one, so the session needs no second path. Cursors are TEMP tables
   read with ``LIMIT``/``OFFSET``. A setting DuckDB has and PostgreSQL does not (``SET threads``)
   and ``SHOW TABLES`` go to DuckDB unchanged.
2. *Ordinary SQL*, which is nearly everything: substring searches and, if one hits, the lexer's
   tokens show no sign of the catalog (``pg_``, ``information_schema``, ``::reg...``,
   ``OPERATOR(``, ``version(``, ...) and the statement comes back unchanged, without a parse.
   A statement longer than ``MAX_REWRITTEN`` (1 MiB) is always run as written.
3. *Catalog SQL*: parsed as PostgreSQL and rewritten by :mod:`sqlml.wire.catalog_rewrite` onto the
   emulated catalog of :mod:`sqlml.wire.catalog_sql`: per-connection TEMP views and macros, all
   named ``sqlml_*``. They are created when a rewritten statement first needs them (with what they
   depend on), so a session that never reads the catalog pays almost nothing; the constructor
   creates only the session's identity macros. TEMP objects live in the connection's in-memory
   ``temp`` catalog: nothing is written to the database file and no other connection sees them.
   Objects created inside a client transaction that is then rolled back are created again.

Known gaps (PostgreSQL has them, the emulation does not): ``ROLLBACK TO SAVEPOINT`` (0A000),
backward or absolute cursor moves (0A000), ``SET LOCAL`` and SET inside a rolled-back transaction
(both simply stay set), row types of tables (``pg_class.reltype`` is 0), ``pg_depend`` (empty:
DuckDB does not record what a view reads), varchar lengths (DuckDB drops them: a ``varchar(20)``
column is ``text``), ``pg_proc`` rows for built-in functions, and a missing relation in a
``'name'::regclass`` cast is NULL rather than an error.

What DuckDB already has, and why it is not used as is: DuckDB 2 ships ``pg_catalog`` views
(pg_class, pg_type, pg_attribute, pg_namespace, pg_index, pg_constraint, pg_proc, pg_tables,
pg_views, pg_description, pg_settings, ...) and macros (format_type, pg_table_is_visible,
pg_get_constraintdef, has_*_privilege ...), but its pg_type numbers types by DuckDB's own
names (``map_to_pg_oid``: ``INTEGER`` has no OID, text none), its columns lack many PostgreSQL
columns (relforcerowsecurity, typreceive names ...), ``main`` is not ``public``, every
pg_table_is_visible is true, constraint-backed indexes are missing, and pg_roles, pg_range,
pg_inherits, pg_partitioned_table, pg_matviews, pg_policy, pg_publication ... do not exist.
"""

from __future__ import annotations

import itertools
import platform
import re
from collections.abc import Callable, Collection, Iterator

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError

import sqlml
from sqlml import errors, grammar
from sqlml.engines.duckdb import map_error
from sqlml.grammar import lexer
from sqlml.wire import (
    catalog_grammar,
    catalog_macros,
    catalog_rewrite,
    catalog_sql,
    infer,
    numeric,
)

SERVER_VERSION = "15.0"  # as the wire session reports it; version() names sqlml and DuckDB
SERVER_VERSION_NUM = "150000"
NOOP = "RESET VARIABLE sqlml_noop"  # a DuckDB statement that does nothing and returns no rows
MOVED = "sqlml_moved"  # the column of MOVE's statement: the rows it moved over

# PostgreSQL settings the catalog keeps: name as SHOW spells it -> value at session start.
DEFAULT_SETTINGS: dict[str, str] = {
    "application_name": "", "array_nulls": "on", "backslash_quote": "safe_encoding",
    "block_size": "8192", "bytea_output": "hex", "client_encoding": "UTF8",
    "client_min_messages": "notice", "DateStyle": "ISO, MDY",
    "default_text_search_config": "pg_catalog.english",
    "default_transaction_deferrable": "off", "default_transaction_isolation": "read committed",
    "default_transaction_read_only": "off", "enable_seqscan": "on",
    "escape_string_warning": "on", "extra_float_digits": "1", "geqo": "on",
    "idle_in_transaction_session_timeout": "0", "idle_session_timeout": "0",
    "in_hot_standby": "off", "integer_datetimes": "on", "IntervalStyle": "postgres",
    "is_superuser": "on", "jit": "off", "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8",
    "lc_messages": "C.UTF-8", "lc_monetary": "C.UTF-8", "lc_numeric": "C.UTF-8",
    "lc_time": "C.UTF-8", "lo_compat_privileges": "off", "lock_timeout": "0",
    "max_connections": "100", "max_identifier_length": "63", "max_index_keys": "32",
    "plan_cache_mode": "auto", "quote_all_identifiers": "off", "row_security": "on",
    "server_encoding": "UTF8", "server_version": SERVER_VERSION,
    "server_version_num": SERVER_VERSION_NUM, "session_authorization": "",
    "standard_conforming_strings": "on", "statement_timeout": "0",
    "synchronous_commit": "on", "timezone_abbreviations": "Default",
    "transaction_deferrable": "off", "transaction_isolation": "read committed",
    "transaction_read_only": "off", "work_mem": "4MB", "xmloption": "content",
}  # fmt: skip

# settings a client may read but not SET (PostgreSQL: "parameter cannot be changed")
READ_ONLY = frozenset(
    {"block_size", "in_hot_standby", "integer_datetimes", "is_superuser", "lc_collate",
     "lc_ctype", "max_identifier_length", "max_index_keys", "server_encoding", "server_version",
     "server_version_num", "max_connections"}
)  # fmt: skip

# Lower-case name -> canonical name, for the settings the catalog keeps and the two it passes on
_CANONICAL = {name.lower(): name for name in DEFAULT_SETTINGS}
_DUCKDB_OWNED = {"timezone": "TimeZone", "search_path": "search_path"}

# settings in milliseconds, which SHOW prints in the largest unit that divides them
_DURATIONS = frozenset(
    {"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
     "idle_session_timeout"}
)  # fmt: skip
_UNITS = {"d": 86_400_000, "h": 3_600_000, "min": 60_000, "s": 1000, "ms": 1}
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|min|h|d)?\s*")

# SHOW's multi-word spellings
_SHOW_ALIASES = {
    "transaction isolation level": "transaction_isolation",
    "time zone": "TimeZone",
    "session authorization": "session_authorization",
}

# -- the pre-check -------------------------------------------------------------------------------

# Statements longer than this are run as written: no catalog emulation (a catalog query is short;
# a parse of a statement of many megabytes would take minutes and gigabytes).
MAX_REWRITTEN = 1 << 20

# Any sign that a statement touches the catalog or session functions (false positives only cost
# a parse), read from the lexer's tokens: catalog names, reg* and oid types, OPERATOR(...), the
# functions the emulation has. First a substring search for their stems (no tokens needed).
_STEMS = (
    "pg_", "information_schema", "reg", "oid", "operator", "version", "current_", "session_user",
    "set_config", "format_type", "_description", "to_reg", "array_", "public", "collate", "::",
    "quote_ident",
)  # fmt: skip
_SIGN_WORDS = frozenset(
    {"information_schema", "oid", "collate", "session_user", "current_setting", "current_schema",
     "current_schemas", "current_database", "current_user", "current_role", "current_catalog",
     "regclass", "regtype", "regproc", "regprocedure", "regnamespace", "regrole", "regoper",
     "regoperator", "regconfig", "regdictionary", "regcollation"}
)  # fmt: skip
_SIGN_CALLS = frozenset(
    {"operator", "version", "set_config", "format_type", "obj_description", "col_description",
     "shobj_description", "array_upper", "array_lower", "quote_ident"}
)  # fmt: skip
_CATALOG_CASTS = frozenset({'"char"', "name", "int2vector", "oidvector"})


def _public_as_main(text: str) -> str:
    """``text`` with schema ``public`` (a name followed by a dot: ``public.t``, ``"shop".
    "public"."t"``, ``MODEL public.m``) as DuckDB's ``main``, which the gateway shows as
    public; the lexer finds the names, so strings and comments stay as they are."""
    found = [t for t in lexer.tokens(text) if t.kind != lexer.COMMENT]
    out, at = [], 0
    for i, token in enumerate(found[:-1]):
        word = token.text(text).lower()
        if found[i + 1].text(text) == "." and (
            (token.kind == lexer.WORD and word == "public") or word == '"public"'
        ):
            out.append(text[at : token.start] + "main")
            at = token.end
    return "".join(out) + text[at:]


def _has_catalog_signs(text: str) -> bool:
    lowered = text.lower()
    if not any(stem in lowered for stem in _STEMS):
        return False
    found = [t for t in lexer.tokens(text) if t.kind != lexer.COMMENT]
    texts = [t.text(text).lower() for t in found]
    for i, (token, word) in enumerate(zip(found, texts, strict=True)):
        after = texts[i + 1] if i + 1 < len(texts) else ""
        if token.kind == lexer.WORD and _is_sign(word, after):
            return True
        if word == "::" and after in _CATALOG_CASTS:
            return True
        if token.kind == lexer.NAME and (
            (word == '"public"' and after == ".") or word[1:4] == "pg_"
        ):
            return True
    return False


def _is_sign(word: str, after: str) -> bool:
    if word.startswith("pg_") or word in _SIGN_WORDS or (word == "public" and after == "."):
        return True
    return after == "(" and (word in _SIGN_CALLS or word.startswith("to_reg"))


class Catalog:
    """The emulated PostgreSQL catalog and session settings of one gateway session.

    ``con`` is the session's own DuckDB connection (the TEMP objects are created on it);
    ``database`` and ``user`` are the names the client connected with, reported by
    ``current_database()``, ``current_user``, ``pg_database`` and every owner column.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, database: str, user: str) -> None:
        self._con = con
        self._identity = catalog_rewrite.Identity(database, user, version_string())
        self._settings = {**DEFAULT_SETTINGS, "session_authorization": user}
        self._duckdb_owned = {"TimeZone": _duckdb_setting(con, "TimeZone", "UTC")}
        self._duckdb_owned["search_path"] = '"$user", public'
        self._cursors: dict[str, int] = {}
        self._cursor_queries: dict[str, str] = {}  # the query each cursor was declared for
        self._prepared: dict[str, str] = {}  # SQL PREPARE's names -> their statements
        self._ready: set[str] = set()  # sqlml_* objects known to exist on the connection
        self._pending: set[str] = set()  # ... of which created inside an open client transaction
        self._in_transaction = False
        for statement in catalog_macros.identity_statements(database, user):
            con.execute(statement).fetchall()
        con.execute(self._settings_statement()).fetchall()

    # -- the API -----------------------------------------------------------------------------

    def rewrite(self, sql: str) -> list[str]:
        """The DuckDB statements that run the client's query string ``sql``: one per
        non-empty statement of it, in order. Ordinary SQL comes back unchanged, unparsed."""
        if ";" not in sql:
            statement = self._statement(sql)
            return [] if statement is None else [statement]
        rewritten = (self._statement(s) for s in lexer.split(sql))
        return [s for s in rewritten if s is not None]

    def settings(self) -> dict[str, str]:
        """The session's settings as SHOW reports them (what ParameterStatus messages carry)."""
        return {**self._settings, **self._duckdb_owned}

    def relations(self, names: Collection[str]) -> tuple[list[infer.Relation], list[str]]:
        """The user relations called ``names`` (lower case) in any schema, with their columns
        and type OIDs as ``pg_attribute`` has them (an enum column as text), and the schemas an
        unqualified name is looked up in, in order (PostgreSQL names: DuckDB's main is public):
        what :func:`sqlml.wire.infer.parameter_types` needs. Reads ``duckdb_columns()`` itself,
        not the emulated catalog, which takes several times longer to build."""
        try:
            rows = self._con.execute(_RELATIONS, [sorted(names)]).fetchall()
        except duckdb.Error as e:
            raise map_error(e) from e
        found = []
        for database, schema, table, columns, types in rows:
            typed = tuple(
                (c, catalog_sql.column_type_oid(t)) for c, t in zip(columns, types, strict=True)
            )
            found.append(infer.Relation(_pg_schema(database, schema), table, typed))
        return found, self._search_path()

    def _search_path(self) -> list[str]:
        """The session's own temporary schema, then search_path (``$user`` is the user)."""
        path = ["pg_temp_1"]
        for item in self._duckdb_owned["search_path"].split(","):
            name = _unquote_name(item)
            path.append(self._identity.user if name == "$user" else name)
        return path

    # -- one statement -------------------------------------------------------------------------

    def _statement(self, text: str) -> str | None:
        if len(text) > MAX_REWRITTEN:
            return text
        head = next((t for t in lexer.tokens(text) if t.kind != lexer.COMMENT), None)
        if head is None:
            return None
        handler = _HANDLERS.get(head.text(text).upper()) if head.kind == lexer.WORD else None
        if handler is not None:
            handled = handler(self, text[head.end :].strip())
            if handled is not None:
                return handled
        return self._general(text)

    def _general(self, text: str) -> str:
        if len(text) > MAX_REWRITTEN:
            return text
        if not _has_catalog_signs(text):
            return numeric.unconstrained_as_double(text)
        if grammar.is_ml(text):  # (sqlml's, not PostgreSQL's: only its schema names change)
            return _public_as_main(text)
        try:
            rewritten = catalog_rewrite.transpile(text, self._identity)
        except SqlglotError:  # not PostgreSQL sqlglot can read: DuckDB has the last word
            return numeric.unconstrained_as_double(text)
        self._ensure(catalog_sql.references(rewritten))
        return numeric.unconstrained_as_double(rewritten)

    # -- the emulation's objects ---------------------------------------------------------------

    def _ensure(self, names: set[str]) -> None:
        """Creates the TEMP objects ``names`` need that the connection does not have yet."""
        for name in _creation_order(names):
            if name not in self._ready:
                self._create(name)
                self._ready.add(name)
                if self._in_transaction:
                    self._pending.add(name)

    def _create(self, name: str) -> None:
        self._con.execute(catalog_sql.objects()[name]).fetchall()

    def _transaction(self, opened: bool, kept: bool) -> None:
        """Follows the client's transaction: objects created in one that rolls back are gone."""
        if not kept:
            self._ready -= self._pending
        self._pending = set()
        self._in_transaction = opened

    # -- settings ------------------------------------------------------------------------------

    def _settings_statement(self) -> str:
        pairs = sorted(self._settings.items())
        value = exp.Map(
            keys=exp.Array(expressions=[exp.Literal.string(k) for k, _ in pairs]),
            values=exp.Array(expressions=[exp.Literal.string(v) for _, v in pairs]),
        )
        return f"SET VARIABLE {catalog_sql.SETTINGS_VARIABLE} = {value.sql(dialect='duckdb')}"

    def _set(self, name: str, value: str | None) -> str:
        """``SET name = value`` (None: DEFAULT) as a DuckDB statement."""
        key = name.lower()
        if key == "timezone":
            return self._set_time_zone(value)
        if key == "search_path":
            return self._set_search_path(value)
        canonical = _CANONICAL[key]
        if canonical in READ_ONLY:
            raise errors.InvalidParameterValue(f'parameter "{canonical}" cannot be changed')
        if value is None:
            value = DEFAULT_SETTINGS[canonical] or self._identity.user
        elif canonical in _DURATIONS:
            value = _duration(value)
        self._settings[canonical] = value
        return self._settings_statement()

    def _set_time_zone(self, value: str | None) -> str:
        if _locked(self._con):  # (sqlml serve's default) the zone cannot have changed
            current = _zone(_duckdb_setting(self._con, "TimeZone", "UTC"))
            if value is None or _zone(value) in ("DEFAULT", "LOCAL", current):
                return self._settings_statement()  # nothing to change: no SET to refuse
        if value is None or value.upper() in ("DEFAULT", "LOCAL"):
            self._duckdb_owned["TimeZone"] = _duckdb_setting(self._con, "TimeZone", "UTC")
            return "RESET TimeZone"
        self._duckdb_owned["TimeZone"] = value
        return f"SET TimeZone = {_quote(value)}"

    def _set_search_path(self, value: str | None) -> str:
        if value is None:
            self._duckdb_owned["search_path"] = '"$user", public'
            return "RESET search_path"
        self._duckdb_owned["search_path"] = value
        schemas = [_duckdb_schema(s) for s in value.split(",")]
        existing = _schemas(self._con)
        path = ",".join(s for s in schemas if s in existing)
        return f"SET search_path = {_quote(path or 'main')}"

    def _show(self, name: str) -> str | None:
        key = _SHOW_ALIASES.get(name.lower(), name).lower()
        if key == "all":
            self._ensure({"sqlml_pg_settings"})
            return (
                "SELECT name, setting, short_desc AS description"
                " FROM temp.main.sqlml_pg_settings ORDER BY lower(name)"
            )
        if key in _DUCKDB_OWNED:
            self._ensure({"sqlml_setting"})
            column = exp.to_identifier(_DUCKDB_OWNED[key], quoted=True).sql(dialect="duckdb")
            return f"SELECT sqlml_setting({_quote(key)}) AS {column}"
        if key not in _CANONICAL:
            return None
        canonical = _CANONICAL[key]
        value = exp.Literal.string(self._settings[canonical])
        select = exp.select(exp.alias_(value, canonical, quoted=True))
        return select.sql(dialect="duckdb")

    # -- cursors -------------------------------------------------------------------------------

    def _declare(self, name: str, query: str) -> str:
        inner = self._statement(query)
        if inner is None:
            raise errors.SyntaxError("DECLARE needs a query")
        self._cursors[name] = 0
        self._cursor_queries[name] = query
        return f"CREATE OR REPLACE TEMP TABLE {_cursor_table(name)} AS {inner}"

    def _fetch(self, name: str, count: int | None, move: bool) -> str:
        position = self._cursors.get(name, 0)
        self._cursors[name] = position + count if count is not None else 1 << 62
        if move:  # the rows it moves over, counted (MOVE's tag): the backend reads the count
            passed = exp.select("1").from_(_cursor_table(name)).offset(position)
            passed = passed if count is None else passed.limit(count)
            return exp.select(exp.alias_("count(*)", MOVED)).from_(passed.subquery()).sql("duckdb")
        limit = f" LIMIT {count}" if count is not None else ""
        return f"SELECT * FROM {_cursor_table(name)}{limit} OFFSET {position}"

    def prepared(self, name: str) -> str | None:
        """The statement SQL's ``PREPARE name AS ...`` prepared (None: none of that name)."""
        return self._prepared.get(_unquote_name(name))

    def reads_catalog(self, statement: str) -> bool:
        """Whether a statement :meth:`rewrite` returned reads the emulated catalog."""
        return not catalog_sql.references(statement).isdisjoint(catalog_sql.objects())

    def names_source(self, sql: str) -> str:
        """The statement whose select list names the columns of ``sql``'s result: for FETCH,
        the query its cursor was declared for (its rows come from a table DuckDB named
        ``count_star()`` and the like: wire.colnames renames them as PostgreSQL names them);
        for EXECUTE, the statement it prepared (an ML query the Session keeps: the caller's)."""
        if lexer.first_word(sql) == "EXECUTE":
            words = lexer.head(sql, 2)
            prepared = self.prepared(words[1]) if len(words) > 1 else None
            return prepared if prepared is not None else sql
        if lexer.first_word(sql) != "FETCH":
            return sql
        found = catalog_grammar.fetch(catalog_grammar.after_first(sql))
        query = self._cursor_queries.get(_unquote_name(found[1])) if found else None
        return query if query is not None else sql

    def cursor_query(self, name: str) -> str | None:
        """The query the open cursor ``name`` was declared for."""
        return self._cursor_queries.get(name)

    def cursor_table(self, name: str) -> exp.Table | None:
        """The TEMP table holding the rows of the open cursor ``name`` (None: no such cursor)."""
        if name not in self._cursors:
            return None
        return exp.table_(f"sqlml_cursor_{name}", db="main", catalog="temp", quoted=True)

    def _close(self, name: str | None) -> str:
        names = [name] if name is not None else sorted(self._cursors)
        for closed in names:
            self._cursors.pop(closed, None)
            self._cursor_queries.pop(closed, None)
        drops = [f"DROP TABLE IF EXISTS {_cursor_table(n)}" for n in names]
        return "; ".join(drops) or NOOP


# the columns of the user relations of some names: the session's temporary ones (not the
# emulation's) first, then the database's, as PostgreSQL's search path has pg_temp first
_RELATIONS = """
    SELECT database_name, schema_name, table_name,
           list(column_name ORDER BY column_index), list(data_type ORDER BY column_index)
    FROM duckdb_columns()
    WHERE list_contains(?, lower(table_name)) AND (database_name = current_database()
        OR (database_name = 'temp' AND NOT starts_with(table_name, 'sqlml_')))
    GROUP BY database_name, schema_name, table_name
    ORDER BY database_name = 'temp' DESC, schema_name, table_name"""


# -- session statements, by first word -------------------------------------------------------------


def _handle_set(catalog: Catalog, rest: str) -> str | None:
    found = catalog_grammar.set_statement(rest)
    if found is None or isinstance(found, str):  # (the string: catalog_grammar.NOOP)
        return None if found is None else NOOP
    name, value = found
    name = _unquote_name(name)
    if name.lower() not in _CANONICAL and name.lower() not in _DUCKDB_OWNED:
        return None  # DuckDB's own setting, or an error DuckDB reports
    return catalog._set(name, _setting_value(value))


def _setting_value(text: str) -> str | None:
    """The value of ``SET x = <text>``: one or more literals joined as SHOW shows them; None for
    DEFAULT."""
    if text.strip().upper() in ("DEFAULT", ""):
        return None
    values: list[str] = []
    item: list[lexer.Token] = []
    for token in lexer.tokens(text):
        if token.kind == lexer.OP and token.text(text) == ",":
            values.append(_literal(text, item))
            item = []
        elif token.kind != lexer.COMMENT:
            item.append(token)
    values.append(_literal(text, item))
    return ", ".join(values)


def _literal(text: str, item: list[lexer.Token]) -> str:
    """One item of a SET value list: a string's contents, or the item as written."""
    if not item:
        return ""
    if len(item) == 1 and item[0].kind == lexer.STRING:
        quoted = item[0].text(text)
        if quoted[0] in "eE":
            return quoted[2:-1].replace("\\'", "'").replace("''", "'")
        return quoted[1:-1].replace("''", "'")
    return text[item[0].start : item[-1].end]


def _handle_reset(catalog: Catalog, rest: str) -> str | None:
    name = _unquote_name(rest.strip())
    if name.upper() == "ALL":
        catalog._settings = {**DEFAULT_SETTINGS, "session_authorization": catalog._identity.user}
        zone = catalog._set_time_zone(None)
        return "; ".join([catalog._settings_statement(), zone, "RESET search_path"])
    if name.lower() in _CANONICAL or name.lower() in _DUCKDB_OWNED:
        return catalog._set(name, None)
    return None


def _handle_show(catalog: Catalog, rest: str) -> str | None:
    return catalog._show(" ".join(_unquote_name(rest).split()))


def _handle_begin(catalog: Catalog, rest: str) -> str | None:
    catalog._transaction(opened=True, kept=True)
    if catalog_grammar.only_transaction_words(rest):
        return None  # DuckDB's own BEGIN [TRANSACTION]
    words = [t.text(rest).upper() for t in lexer.tokens(rest) if t.kind == lexer.WORD]
    read_only = any(w == "READ" and n == "ONLY" for w, n in itertools.pairwise(words))
    return "BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION"


def _handle_start(catalog: Catalog, rest: str) -> str | None:
    if not catalog_grammar.starts_with(rest, "TRANSACTION"):
        return None
    return _handle_begin(catalog, catalog_grammar.after_first(rest)) or "BEGIN TRANSACTION"


def _handle_commit(catalog: Catalog, rest: str) -> str | None:
    if catalog_grammar.starts_with(rest, "PREPARED"):
        return None
    chain = catalog_grammar.commit_chain(rest)
    if chain is None:
        return None
    if chain.chain:
        raise errors.FeatureNotSupported("COMMIT AND CHAIN is not supported")
    catalog._transaction(opened=False, kept=True)
    return "COMMIT"


def _handle_rollback(catalog: Catalog, rest: str) -> str | None:
    if catalog_grammar.starts_with(rest, "PREPARED"):
        return None
    if catalog_grammar.rollback_to(rest):
        raise errors.FeatureNotSupported("ROLLBACK TO SAVEPOINT is not supported (DuckDB)")
    catalog._transaction(opened=False, kept=False)
    return "ROLLBACK"


def _handle_savepoint(catalog: Catalog, rest: str) -> str | None:
    return NOOP


def _handle_declare(catalog: Catalog, rest: str) -> str | None:
    found = catalog_grammar.declare(rest)
    if found is None:
        return None
    name, query = found
    return catalog._declare(_unquote_name(name), query)


def _handle_fetch(catalog: Catalog, rest: str, move: bool = False) -> str | None:
    found = catalog_grammar.fetch(rest)
    if found is None:
        return None
    direction, name = found
    return catalog._fetch(_unquote_name(name), _fetch_count(direction), move)


def _fetch_count(direction: str) -> int | None:
    """Rows a FETCH direction moves forward (None: all); backward and absolute moves are not
    supported."""
    words = direction.split()
    if words[0] in ("NEXT", "FORWARD") and len(words) == 1:
        return 1
    if words[-1] == "ALL":
        return None
    if words[-1].isdigit() and words[0] in ("FORWARD", words[-1]):
        return int(words[-1])
    raise errors.FeatureNotSupported(f"FETCH {direction} is not supported: cursors only go forward")


def _handle_move(catalog: Catalog, rest: str) -> str | None:
    return _handle_fetch(catalog, rest, move=True)


def _handle_close(catalog: Catalog, rest: str) -> str | None:
    name = rest.strip()
    return catalog._close(None if name.upper() == "ALL" else _unquote_name(name))


def _handle_discard(catalog: Catalog, rest: str) -> str | None:
    if rest.strip().upper() == "ALL" and catalog._in_transaction:
        raise errors.ActiveSqlTransaction("DISCARD ALL cannot run inside a transaction block")
    if rest.strip().upper() == "ALL":  # cursors, prepared statements and settings
        closed = catalog._close(None)
        statements = [closed, _handle_deallocate(catalog, "ALL"), _handle_reset(catalog, "ALL")]
        return "; ".join(s for s in statements if s and s != NOOP) or NOOP
    return NOOP


def _handle_prepare(catalog: Catalog, rest: str) -> str | None:
    """Remembers what ``PREPARE name AS statement`` prepares (for EXECUTE's command tag and
    DEALLOCATE ALL); DuckDB prepares it."""
    found = catalog_grammar.prepare(rest)
    if found is not None:
        catalog._prepared[_unquote_name(found[0])] = found[1]
    return None


def _handle_deallocate(catalog: Catalog, rest: str) -> str | None:
    """``DEALLOCATE [PREPARE] ALL`` (DuckDB has only ``DEALLOCATE name``): each one SQL's
    PREPARE made; ``DEALLOCATE PREPARE name`` as ``DEALLOCATE name``."""
    target = catalog_grammar.deallocate(rest)
    if target is None:
        return None
    if target != catalog_grammar.ALL:
        if catalog._prepared.pop(_unquote_name(target), None) is None:
            raise _no_prepared(target)
        return f"DEALLOCATE {target}"
    names, catalog._prepared = sorted(catalog._prepared), {}
    quoted = (exp.to_identifier(n, quoted=True).sql(dialect="duckdb") for n in names)
    return "; ".join(f"DEALLOCATE {name}" for name in quoted) or NOOP


def _handle_execute(catalog: Catalog, rest: str) -> str | None:
    """``EXECUTE name``: 26000 for a name no PREPARE made (DuckDB's own error is 42703)."""
    name = lexer.head(rest)
    if name and catalog.prepared(name[0]) is None:
        raise _no_prepared(name[0])
    return None


def _no_prepared(name: str) -> errors.Error:
    return errors.from_sqlstate(
        "26000", f'prepared statement "{_unquote_name(name)}" does not exist'
    )


def _handle_unlisten(catalog: Catalog, rest: str) -> str | None:
    return NOOP


def _handle_drop(catalog: Catalog, rest: str, head: str = "DROP") -> str | None:
    """``DROP TABLE a, b`` (pgbench -i): one DuckDB statement per relation."""
    statements = catalog_rewrite.one_per_name(f"{head} {rest}")
    return None if statements is None else "; ".join(catalog._general(s) for s in statements)


def _handle_truncate(catalog: Catalog, rest: str) -> str | None:
    return _handle_drop(catalog, rest, "TRUNCATE")


def _handle_create(catalog: Catalog, rest: str) -> str | None:
    """``CREATE TABLE ... WITH (fillfactor = 100)`` (pgbench -i): without the parameters."""
    stripped = catalog_rewrite.without_storage_parameters(f"CREATE {rest}")
    return None if stripped is None else catalog._general(stripped)


_Handler = Callable[[Catalog, str], "str | None"]
_HANDLERS: dict[str, _Handler] = {
    "SET": _handle_set,
    "RESET": _handle_reset,
    "SHOW": _handle_show,
    "BEGIN": _handle_begin,
    "START": _handle_start,
    "COMMIT": _handle_commit,
    "END": _handle_commit,
    "ROLLBACK": _handle_rollback,
    "ABORT": _handle_rollback,
    "SAVEPOINT": _handle_savepoint,
    "RELEASE": _handle_savepoint,
    "DECLARE": _handle_declare,
    "FETCH": _handle_fetch,
    "MOVE": _handle_move,
    "CLOSE": _handle_close,
    "DISCARD": _handle_discard,
    "PREPARE": _handle_prepare,
    "DEALLOCATE": _handle_deallocate,
    "EXECUTE": _handle_execute,
    "UNLISTEN": _handle_unlisten,
    "DROP": _handle_drop,
    "TRUNCATE": _handle_truncate,
    "CREATE": _handle_create,
}


# -- helpers ---------------------------------------------------------------------------------------


def version_string() -> str:
    """What ``version()`` returns: PostgreSQL 15 to a client's version parser, sqlml and DuckDB to
    a person."""
    return (
        f"PostgreSQL 15.0 (sqlml {sqlml.__version__}, DuckDB {duckdb.__version__})"
        f" on {platform.machine()}-{platform.system().lower()}, 64-bit"
    )


def _duration(value: str) -> str:
    """A duration setting as PostgreSQL shows it (``5000`` -> ``5s``)."""
    found = _DURATION.fullmatch(value)
    if found is None:
        return value
    ms = int(found.group(1)) * _UNITS[found.group(2) or "ms"]
    unit = next((u for u, size in _UNITS.items() if ms % size == 0), "ms")
    return f"{ms // _UNITS[unit]}{unit}" if ms else "0"


def _quote(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="duckdb")


def _unquote_name(name: str) -> str:
    """A setting or cursor name as PostgreSQL reads it: quoted kept as is, else lower case."""
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name.lower()


def _cursor_table(name: str) -> str:
    table = exp.table_(f"sqlml_cursor_{name}", db="main", catalog="temp", quoted=True)
    return table.sql(dialect="duckdb")


def _pg_schema(database: str, schema: str) -> str:
    """PostgreSQL's name of a DuckDB schema (as the emulated catalog's sqlml_nspname)."""
    if database == "temp":
        return "pg_temp_1"
    return "public" if schema == "main" else schema


def _duckdb_schema(pg_name: str) -> str:
    name = _unquote_name(pg_name)
    return "main" if name == "public" else name


def _schemas(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()"
    ).fetchall()
    return {str(row[0]) for row in rows}


_UTC = frozenset({"UTC", "ETC/UTC", "UCT", "ETC/UCT", "UNIVERSAL", "ETC/UNIVERSAL", "ZULU"})


def _zone(name: str) -> str:
    """A time zone name to compare: upper case, UTC's aliases as UTC."""
    upper = name.upper()
    return "UTC" if upper in _UTC else upper


def _locked(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the instance's configuration is locked (engines.duckdb.lock_down)."""
    return _duckdb_setting(con, "lock_configuration", "false").lower() == "true"


def _duckdb_setting(con: duckdb.DuckDBPyConnection, name: str, fallback: str) -> str:
    try:
        rows = con.execute("SELECT current_setting(?)", [name]).fetchall()
    except duckdb.Error:
        return fallback
    return str(rows[0][0]) if rows and rows[0][0] else fallback


def _creation_order(names: set[str]) -> Iterator[str]:
    """``names`` and what they depend on, each after its dependencies."""
    dependencies = catalog_sql.dependencies()
    done: set[str] = set()

    def visit(name: str) -> Iterator[str]:
        if name in done or name not in dependencies:
            return
        done.add(name)
        for dependency in sorted(dependencies[name]):
            yield from visit(dependency)
        yield name

    for name in sorted(names):
        yield from visit(name)
