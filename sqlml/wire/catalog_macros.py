"""The macros of the PostgreSQL catalog emulation: PostgreSQL's catalog functions over DuckDB.

Theory of operation. The rewrite (:mod:`sqlml.wire.catalog_rewrite`) turns a client's
``pg_catalog.format_type(a.atttypid, a.atttypmod)`` into ``sqlml_format_type(...)``, a TEMP macro
defined here (:data:`FUNCTIONS`, keyed by the PostgreSQL name); casts to ``regclass`` and friends
call the macros of :data:`CAST_MACROS`.

A DuckDB macro is expanded in place, so a lookup macro's subquery sees the caller's columns: if its
relation had a column ``oid``, a call ``f(oid)`` would compare the relation's ``oid`` with itself.
Every subquery here therefore reads one of the *lookup* views (:data:`LOOKUP_VIEWS`), whose columns
all start with ``sqlml_`` and so can never capture a client's column.
"""

from __future__ import annotations

from sqlglot import exp

# Lookup views: every column prefixed (see the module docstring).
LOOKUP_VIEWS = [
    """CREATE OR REPLACE TEMP VIEW sqlml_relation_lookup AS
        SELECT table_oid AS sqlml_oid, table_name AS sqlml_relname,
               sqlml_nspname(database_name, schema_name) AS sqlml_nsp
        FROM duckdb_tables() WHERE sqlml_is_user(database_name, table_name)
        UNION ALL
        SELECT view_oid, view_name, sqlml_nspname(database_name, schema_name)
        FROM duckdb_views() WHERE NOT internal AND sqlml_is_user(database_name, view_name)
        UNION ALL
        SELECT sequence_oid, sequence_name, sqlml_nspname(database_name, schema_name)
        FROM duckdb_sequences() WHERE sqlml_is_user(database_name, sequence_name)
        UNION ALL
        SELECT oid, relname, nspname FROM temp.main.sqlml_index_sources
        UNION ALL
        SELECT oid, relname, 'pg_catalog' FROM temp.main.sqlml_system_relations""",
    """CREATE OR REPLACE TEMP VIEW sqlml_type_lookup AS
        SELECT oid AS sqlml_oid, typname AS sqlml_typname, format AS sqlml_format,
               'pg_catalog' AS sqlml_nsp,
               CASE WHEN typcategory = 'A' THEN typelem ELSE oid END AS sqlml_base,
               CASE WHEN typcategory = 'A' THEN '[]' ELSE '' END AS sqlml_suffix
        FROM temp.main.sqlml_builtin_types
        UNION ALL
        SELECT type_oid, type_name, type_name, sqlml_nspname(database_name, schema_name),
               type_oid, ''
        FROM duckdb_types() WHERE logical_type = 'ENUM' AND NOT internal
            AND sqlml_is_user(database_name, type_name)""",
    """CREATE OR REPLACE TEMP VIEW sqlml_namespace_lookup AS
        SELECT oid AS sqlml_oid, nspname AS sqlml_nsp FROM temp.main.sqlml_pg_namespace""",
    """CREATE OR REPLACE TEMP VIEW sqlml_index_lookup AS
        SELECT oid AS sqlml_oid, indexdef AS sqlml_def, colnames AS sqlml_colnames
        FROM temp.main.sqlml_indexes""",
    """CREATE OR REPLACE TEMP VIEW sqlml_constraint_lookup AS
        SELECT oid AS sqlml_oid, definition AS sqlml_def FROM temp.main.sqlml_constraints""",
    """CREATE OR REPLACE TEMP VIEW sqlml_description_lookup AS
        SELECT objoid AS sqlml_objoid, objsubid AS sqlml_objsubid,
               description AS sqlml_description
        FROM temp.main.sqlml_pg_description""",
    """CREATE OR REPLACE TEMP VIEW sqlml_viewdef_lookup AS
        SELECT view_oid AS sqlml_oid, sql AS sqlml_sql FROM duckdb_views() WHERE NOT internal""",
]

# Helpers the views and macros share (no subqueries over client-visible columns).
HELPER_MACROS = [
    # PostgreSQL's name and OID of a DuckDB schema; the session's temporary schema is pg_temp_1
    """CREATE OR REPLACE TEMP MACRO sqlml_nspname(p_db, p_schema) AS
        CASE WHEN p_db = 'temp' THEN 'pg_temp_1' WHEN p_schema = 'main' THEN 'public'
             ELSE p_schema END""",
    """CREATE OR REPLACE TEMP MACRO sqlml_nspoid(p_db, p_schema, p_oid) AS
        CASE WHEN p_db <> 'temp' AND p_schema = 'main' THEN 2200 ELSE p_oid END""",
    # an object of the current database, or a temporary object of the client's (not ours)
    """CREATE OR REPLACE TEMP MACRO sqlml_is_user(p_db, p_name) AS
        p_db = current_database() OR (p_db = 'temp' AND NOT starts_with(p_name, 'sqlml_'))""",
    """CREATE OR REPLACE TEMP MACRO sqlml_synthetic_oid(p_base, p_k) AS
        4294967296 + p_base * 4096 + p_k""",
    """CREATE OR REPLACE TEMP MACRO sqlml_quote_ident(p_name) AS
        CASE WHEN regexp_full_match(p_name, '[a-z_][a-z0-9_$]*')
                  AND NOT list_contains(sqlml_keywords(), p_name) THEN p_name
             ELSE '"' || replace(p_name, '"', '""') || '"' END""",
    # the schemas of DuckDB's search_path as PostgreSQL names; DuckDB's default is PostgreSQL's
    """CREATE OR REPLACE TEMP MACRO sqlml_search_path() AS
        CASE WHEN trim(current_setting('search_path')) = '' THEN ['public']
             ELSE list_transform(string_split(current_setting('search_path'), ','),
                                 lambda p: sqlml_nspname('', regexp_replace(trim(p), '^.*[.]', '')))
        END""",
    """CREATE OR REPLACE TEMP MACRO sqlml_search_path_text() AS
        CASE WHEN trim(current_setting('search_path')) = '' THEN '"$user", public'
             ELSE array_to_string(sqlml_search_path(), ', ') END""",
    # type names the type grammar knows besides pg_type's own and format_type's
    """CREATE OR REPLACE TEMP MACRO sqlml_type_alias(p_name) AS
        CASE lower(regexp_replace(trim(p_name), '^pg_catalog[.]', ''))
            WHEN 'int' THEN 'int4' WHEN 'float' THEN 'float8' WHEN 'decimal' THEN 'numeric'
            WHEN 'char' THEN 'bpchar' WHEN '"char"' THEN 'char'
            ELSE lower(regexp_replace(trim(p_name), '^pg_catalog[.]', '')) END""",
    # current_setting(): TimeZone and search_path are DuckDB's own, the rest are kept by SET
    """CREATE OR REPLACE TEMP MACRO sqlml_setting(p_name) AS
        CASE lower(p_name) WHEN 'timezone' THEN current_setting('TimeZone')
             WHEN 'search_path' THEN sqlml_search_path_text()
             ELSE list_filter(map_entries(getvariable('sqlml_settings')),
                              lambda e: lower(e.key) = lower(p_name))[1].value
        END""",
]

# The functions the rewrite calls: PostgreSQL name -> macro body (after "CREATE ... MACRO name").
FUNCTIONS: dict[str, str] = {
    "current_schema": "() AS sqlml_search_path()[1]",
    "current_schemas": """(p_implicit) AS
        CASE WHEN p_implicit THEN list_prepend('pg_catalog', sqlml_search_path())
             ELSE sqlml_search_path() END""",
    "format_type": """(p_type_oid, p_typmod) AS (
        SELECT CASE WHEN p_typmod IS NULL OR p_typmod < 0
                         OR sqlml_base NOT IN (1700, 1042, 1043) THEN sqlml_format
                    WHEN sqlml_base = 1700
                    THEN 'numeric(' || ((p_typmod - 4) >> 16) || ','
                         || ((p_typmod - 4) & 65535) || ')' || sqlml_suffix
                    ELSE replace(sqlml_format, '[]', '') || '(' || (p_typmod - 4) || ')'
                         || sqlml_suffix END
        FROM temp.main.sqlml_type_lookup WHERE sqlml_oid = p_type_oid)""",
    "pg_get_userbyid": "(p_role) AS sqlml_user()",
    "pg_table_is_visible": """(p_rel) AS (
        SELECT list_contains(sqlml_current_schemas(true), sqlml_nsp) OR sqlml_nsp = 'pg_temp_1'
        FROM temp.main.sqlml_relation_lookup WHERE sqlml_oid = p_rel)""",
    "pg_type_is_visible": """(p_type_oid) AS (
        SELECT list_contains(sqlml_current_schemas(true), sqlml_nsp)
        FROM temp.main.sqlml_type_lookup WHERE sqlml_oid = p_type_oid)""",
    "pg_get_expr": "(p_expr, p_rel) AS p_expr, (p_expr, p_rel, p_pretty) AS p_expr",
    "pg_get_indexdef": """(p_index) AS (
            SELECT sqlml_def FROM temp.main.sqlml_index_lookup WHERE sqlml_oid = p_index),
        (p_index, p_column, p_pretty) AS (
            SELECT CASE WHEN p_column = 0 THEN sqlml_def ELSE sqlml_colnames[p_column] END
            FROM temp.main.sqlml_index_lookup WHERE sqlml_oid = p_index)""",
    "pg_get_constraintdef": """(p_con) AS (
            SELECT sqlml_def FROM temp.main.sqlml_constraint_lookup WHERE sqlml_oid = p_con),
        (p_con, p_pretty) AS (
            SELECT sqlml_def FROM temp.main.sqlml_constraint_lookup WHERE sqlml_oid = p_con)""",
    "pg_get_viewdef": """(p_rel) AS (
            SELECT sqlml_sql FROM temp.main.sqlml_viewdef_lookup WHERE sqlml_oid = p_rel),
        (p_rel, p_pretty) AS (
            SELECT sqlml_sql FROM temp.main.sqlml_viewdef_lookup WHERE sqlml_oid = p_rel)""",
    "obj_description": """(p_obj) AS (
            SELECT sqlml_description FROM temp.main.sqlml_description_lookup
            WHERE sqlml_objoid = p_obj AND sqlml_objsubid = 0),
        (p_obj, p_catalog) AS (
            SELECT sqlml_description FROM temp.main.sqlml_description_lookup
            WHERE sqlml_objoid = p_obj AND sqlml_objsubid = 0)""",
    "col_description": """(p_rel, p_column) AS (
        SELECT sqlml_description FROM temp.main.sqlml_description_lookup
        WHERE sqlml_objoid = p_rel AND sqlml_objsubid = p_column)""",
    "shobj_description": "(p_obj, p_catalog) AS CAST(NULL AS VARCHAR)",
    "current_setting": """(p_name) AS sqlml_setting(p_name),
        (p_name, p_missing_ok) AS sqlml_setting(p_name)""",
    "set_config": "(p_name, p_value, p_is_local) AS CAST(p_value AS VARCHAR)",
    "pg_get_serial_sequence": "(p_rel, p_column) AS CAST(NULL AS VARCHAR)",
    "to_regtype": """(p_name) AS (
        SELECT min(sqlml_oid) FROM temp.main.sqlml_type_lookup
        WHERE sqlml_typname = sqlml_type_alias(p_name)
            OR sqlml_format = sqlml_type_alias(p_name))""",
    "pg_relation_is_publishable": "(p_rel) AS false",
    "pg_get_statisticsobjdef_columns": "(p_stat) AS CAST(NULL AS VARCHAR)",
    "array_upper": "(p_arr, p_dim) AS CASE WHEN len(p_arr) > 0 AND p_dim = 1 THEN len(p_arr) END",
    "array_lower": "(p_arr, p_dim) AS CASE WHEN len(p_arr) > 0 AND p_dim = 1 THEN 1 END",
    "pg_advisory_unlock_all": "() AS CAST(NULL AS VARCHAR)",
    "pg_encoding_to_char": "(p_encoding) AS CASE WHEN p_encoding = 6 THEN 'UTF8' ELSE '' END",
    "pg_is_in_recovery": "() AS false",
    "pg_get_function_result": "(p_function) AS CAST(NULL AS VARCHAR)",
    "pg_get_function_arguments": "(p_function) AS CAST(NULL AS VARCHAR)",
    "to_regclass": "(p_name) AS sqlml_regclass_oid(p_name)",
    "to_regnamespace": "(p_name) AS sqlml_regnamespace_oid(p_name)",
    # information_schema._pg_expandarray(a): a set of (x, n), element and subscript (pgJDBC's
    # getPrimaryKeys and getIndexInfo expand pg_index.indkey with it); a struct per row here
    "_pg_expandarray": """(p_arr) AS unnest(list_transform(range(1, len(p_arr) + 1),
        lambda sqlml_i: {'x': p_arr[sqlml_i], 'n': sqlml_i}))""",
    # sizes: DuckDB keeps no per-relation byte counts (its storage is per database file and
    # duckdb_tables().estimated_size counts rows), so every relation reports 0 bytes, as an
    # empty table does on PostgreSQL (docs/gateway.md)
    "pg_table_size": "(p_rel) AS CAST(0 AS BIGINT)",
    "pg_relation_size": "(p_rel) AS CAST(0 AS BIGINT), (p_rel, p_fork) AS CAST(0 AS BIGINT)",
    "pg_total_relation_size": "(p_rel) AS CAST(0 AS BIGINT)",
    "pg_indexes_size": "(p_rel) AS CAST(0 AS BIGINT)",
    "pg_database_size": "(p_db) AS CAST(0 AS BIGINT)",
    # PostgreSQL's units: bytes below 10240, then kB, MB, GB, TB (each below 10240 of it)
    "pg_size_pretty": """(p_bytes) AS CASE
        WHEN abs(p_bytes) < 10240 THEN CAST(p_bytes AS BIGINT) || ' bytes'
        WHEN abs(p_bytes) < 10240 * 1024 THEN CAST(round(p_bytes / 1024) AS BIGINT) || ' kB'
        WHEN abs(p_bytes) < 10240 * 1024 ^ 2 THEN CAST(round(p_bytes / 1024 ^ 2) AS BIGINT) || ' MB'
        WHEN abs(p_bytes) < 10240 * 1024 ^ 3 THEN CAST(round(p_bytes / 1024 ^ 3) AS BIGINT) || ' GB'
        ELSE CAST(round(p_bytes / 1024 ^ 4) AS BIGINT) || ' TB' END""",
}

# Macros behind the casts to reg* types (called by the rewrite, not by clients).
CAST_MACROS = [
    # part i of 'schema.name' (negative: from the end), folded as PostgreSQL folds names
    """CREATE OR REPLACE TEMP MACRO sqlml_name_part(p_name, p_i) AS
        CASE WHEN starts_with(trim(string_split(p_name, '.')[p_i]), '"')
             THEN replace(trim(trim(string_split(p_name, '.')[p_i]), '"'), '""', '"')
             ELSE lower(trim(string_split(p_name, '.')[p_i])) END""",
    """CREATE OR REPLACE TEMP MACRO sqlml_regclass_oid(p_name) AS (
        SELECT sqlml_oid FROM temp.main.sqlml_relation_lookup
        WHERE sqlml_relname = sqlml_name_part(p_name, -1)
            AND CASE WHEN len(string_split(p_name, '.')) > 1
                     THEN sqlml_nsp = sqlml_name_part(p_name, -2)
                     ELSE list_contains(sqlml_current_schemas(true), sqlml_nsp)
                          OR sqlml_nsp = 'pg_temp_1' END
        ORDER BY sqlml_nsp = 'pg_temp_1' DESC,
                 list_position(sqlml_current_schemas(true), sqlml_nsp)
        LIMIT 1)""",
    """CREATE OR REPLACE TEMP MACRO sqlml_regclass_name(p_rel) AS coalesce((
        SELECT CASE WHEN list_contains(sqlml_current_schemas(true), sqlml_nsp)
                         OR sqlml_nsp = 'pg_temp_1' THEN sqlml_quote_ident(sqlml_relname)
                    ELSE sqlml_quote_ident(sqlml_nsp) || '.' || sqlml_quote_ident(sqlml_relname)
               END
        FROM temp.main.sqlml_relation_lookup WHERE sqlml_oid = p_rel), CAST(p_rel AS VARCHAR))""",
    """CREATE OR REPLACE TEMP MACRO sqlml_regtype_name(p_type_oid) AS
        CASE WHEN p_type_oid = 0 THEN '-'
             ELSE coalesce(sqlml_format_type(p_type_oid, NULL), CAST(p_type_oid AS VARCHAR)) END""",
    """CREATE OR REPLACE TEMP MACRO sqlml_regnamespace_oid(p_name) AS (
        SELECT sqlml_oid FROM temp.main.sqlml_namespace_lookup
        WHERE sqlml_nsp = sqlml_name_part(p_name, -1))""",
    """CREATE OR REPLACE TEMP MACRO sqlml_regnamespace_name(p_nsp) AS coalesce((
        SELECT sqlml_quote_ident(sqlml_nsp) FROM temp.main.sqlml_namespace_lookup
        WHERE sqlml_oid = p_nsp), CAST(p_nsp AS VARCHAR))""",
]

# PostgreSQL's keywords that quote_ident quotes (reserved, type and column-name keywords)
_KEYWORD_TEXT = (
    "all analyse analyze and any array as asc asymmetric authorization between bigint binary "
    "bit boolean both case cast char character check coalesce collate collation column "
    "concurrently constraint create cross current_catalog current_date current_role "
    "current_schema current_time current_timestamp current_user dec decimal default "
    "deferrable desc distinct do else end except exists extract false fetch float for foreign "
    "freeze from full grant greatest group grouping having ilike in initially inner inout int "
    "integer intersect interval into is isnull join lateral leading least left like limit "
    "localtime localtimestamp national natural nchar none normalize not notnull null nullif "
    "numeric offset on only or order out outer overlaps overlay placing position precision "
    "primary real references returning right row select session_user setof similar smallint "
    "some substring symmetric table tablesample then time timestamp to trailing treat trim "
    "true union unique user using values varchar variadic verbose when where window with"
)
KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="duckdb")


def identity_statements(database: str, user: str) -> list[str]:
    """The session's own macros: the database and user names it reports."""
    return [
        f"CREATE OR REPLACE TEMP MACRO sqlml_database() AS {_literal(database)}",
        f"CREATE OR REPLACE TEMP MACRO sqlml_user() AS {_literal(user)}",
    ]


def keywords_macro() -> str:
    """``sqlml_keywords()``: the words :data:`KEYWORDS` as a list (for ``sqlml_quote_ident``)."""
    words = ", ".join(_literal(k) for k in sorted(KEYWORDS))
    return f"CREATE OR REPLACE TEMP MACRO sqlml_keywords() AS [{words}]"
