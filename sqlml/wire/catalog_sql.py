"""The SQL side of the PostgreSQL catalog emulation: TEMP views and tables on a DuckDB connection.

Theory of operation. :func:`objects` is the DDL of every object of the emulation, by name, and
:func:`dependencies` what each needs first; :class:`~sqlml.wire.catalog.Catalog` creates an object
(and what it depends on) the first time a rewritten statement names it. Every object is TEMP
(DuckDB keeps those in the connection's own in-memory ``temp`` catalog: nothing reaches the
database file, and no other connection, sqlml's own included, sees them) and carries the prefix
``sqlml_``, so that nothing DuckDB has is shadowed: the statement rewrite
(:mod:`sqlml.wire.catalog_rewrite`) points the client's ``pg_catalog.pg_class`` at
``temp.main.sqlml_pg_class``. The macros are in :mod:`sqlml.wire.catalog_macros`.

Each emulated catalog is described by its PostgreSQL 15 column list (:data:`CATALOGS`, copied from a
real server) and optionally a *source* query that yields some of those columns by name. The view is
``template UNION ALL BY NAME source``, where the template is a typed, empty row of every column in
PostgreSQL's order; the outer select casts each column to its DuckDB type and puts PostgreSQL's
usual value (0, false, '', '-') where the source has none. So every view has exactly PostgreSQL's
columns, in its order, and a source names only the columns it knows.

Where the data comes from:

- relations, columns, constraints, indexes, comments, enums, sequences and macros: DuckDB's
  ``duckdb_tables()``, ``duckdb_columns()`` ... functions, restricted to the current database and
  the session's own temporary objects; DuckDB's schema ``main`` is shown as ``public`` (oid 2200);
- built-in types: :mod:`sqlml.wire.catalog_types` (PostgreSQL's own OIDs and ``typreceive``
  names); a DuckDB column type maps to the PostgreSQL type a client expects
  (:data:`DUCKDB_TYPES`), one without an equivalent to ``text``;
- the catalogs themselves appear in ``pg_class`` (namespace ``pg_catalog``, PostgreSQL's OIDs), so
  ``'pg_class'::regclass`` is 1259 as on a server;
- OIDs that DuckDB does not have (constraints, constraint indexes, defaults, enum labels) are
  derived from the table's OID above 2**32, so they never meet a real one.
"""

from __future__ import annotations

import functools
import re

from sqlglot import exp

from sqlml.grammar import lexer
from sqlml.wire import catalog_macros, catalog_types

PREFIX = "sqlml_"
SETTINGS_VARIABLE = "sqlml_settings"  # DuckDB session variable: MAP of the settings SET keeps

# PostgreSQL's fixed OIDs used below
PUBLIC_OID, CATALOG_OID, TOAST_OID, INFORMATION_SCHEMA_OID, USER_OID = 2200, 11, 99, 13207, 10

# PostgreSQL 15 column lists (name and format_type), as pg_attribute has them.
_SPECS = """
pg_class: oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, relowner oid, relam oid, relfilenode oid, reltablespace oid, relpages integer, reltuples real, relallvisible integer, reltoastrelid oid, relhasindex boolean, relisshared boolean, relpersistence "char", relkind "char", relnatts smallint, relchecks smallint, relhasrules boolean, relhastriggers boolean, relhassubclass boolean, relrowsecurity boolean, relforcerowsecurity boolean, relispopulated boolean, relreplident "char", relispartition boolean, relrewrite oid, relfrozenxid xid, relminmxid xid, relacl aclitem[], reloptions text[], relpartbound pg_node_tree
pg_namespace: oid oid, nspname name, nspowner oid, nspacl aclitem[]
pg_type: oid oid, typname name, typnamespace oid, typowner oid, typlen smallint, typbyval boolean, typtype "char", typcategory "char", typispreferred boolean, typisdefined boolean, typdelim "char", typrelid oid, typsubscript regproc, typelem oid, typarray oid, typinput regproc, typoutput regproc, typreceive regproc, typsend regproc, typmodin regproc, typmodout regproc, typanalyze regproc, typalign "char", typstorage "char", typnotnull boolean, typbasetype oid, typtypmod integer, typndims integer, typcollation oid, typdefaultbin pg_node_tree, typdefault text, typacl aclitem[]
pg_attribute: attrelid oid, attname name, atttypid oid, attstattarget integer, attlen smallint, attnum smallint, attndims integer, attcacheoff integer, atttypmod integer, attbyval boolean, attalign "char", attstorage "char", attcompression "char", attnotnull boolean, atthasdef boolean, atthasmissing boolean, attidentity "char", attgenerated "char", attisdropped boolean, attislocal boolean, attinhcount integer, attcollation oid, attacl aclitem[], attoptions text[], attfdwoptions text[], attmissingval anyarray
pg_index: indexrelid oid, indrelid oid, indnatts smallint, indnkeyatts smallint, indisunique boolean, indnullsnotdistinct boolean, indisprimary boolean, indisexclusion boolean, indimmediate boolean, indisclustered boolean, indisvalid boolean, indcheckxmin boolean, indisready boolean, indislive boolean, indisreplident boolean, indkey int2vector, indcollation oidvector, indclass oidvector, indoption int2vector, indexprs pg_node_tree, indpred pg_node_tree
pg_constraint: oid oid, conname name, connamespace oid, contype "char", condeferrable boolean, condeferred boolean, convalidated boolean, conrelid oid, contypid oid, conindid oid, conparentid oid, confrelid oid, confupdtype "char", confdeltype "char", confmatchtype "char", conislocal boolean, coninhcount integer, connoinherit boolean, conkey smallint[], confkey smallint[], conpfeqop oid[], conppeqop oid[], conffeqop oid[], confdelsetcols smallint[], conexclop oid[], conbin pg_node_tree
pg_attrdef: oid oid, adrelid oid, adnum smallint, adbin pg_node_tree
pg_description: objoid oid, classoid oid, objsubid integer, description text
pg_am: oid oid, amname name, amhandler regproc, amtype "char"
pg_collation: oid oid, collname name, collnamespace oid, collowner oid, collprovider "char", collisdeterministic boolean, collencoding integer, collcollate text, collctype text, colliculocale text, collversion text
pg_enum: oid oid, enumtypid oid, enumsortorder real, enumlabel name
pg_range: rngtypid oid, rngsubtype oid, rngmultitypid oid, rngcollation oid, rngsubopc oid, rngcanonical regproc, rngsubdiff regproc
pg_inherits: inhrelid oid, inhparent oid, inhseqno integer, inhdetachpending boolean
pg_partitioned_table: partrelid oid, partstrat "char", partnatts smallint, partdefid oid, partattrs int2vector, partclass oidvector, partcollation oidvector, partexprs pg_node_tree
pg_depend: classid oid, objid oid, objsubid integer, refclassid oid, refobjid oid, refobjsubid integer, deptype "char"
pg_roles: rolname name, rolsuper boolean, rolinherit boolean, rolcreaterole boolean, rolcreatedb boolean, rolcanlogin boolean, rolreplication boolean, rolconnlimit integer, rolpassword text, rolvaliduntil timestamp with time zone, rolbypassrls boolean, rolconfig text[], oid oid
pg_user: usename name, usesysid oid, usecreatedb boolean, usesuper boolean, userepl boolean, usebypassrls boolean, passwd text, valuntil timestamp with time zone, useconfig text[]
pg_database: oid oid, datname name, datdba oid, encoding integer, datlocprovider "char", datistemplate boolean, datallowconn boolean, datconnlimit integer, datfrozenxid xid, datminmxid xid, dattablespace oid, datcollate text, datctype text, daticulocale text, datcollversion text, datacl aclitem[]
pg_settings: name text, setting text, unit text, category text, short_desc text, extra_desc text, context text, vartype text, source text, min_val text, max_val text, enumvals text[], boot_val text, reset_val text, sourcefile text, sourceline integer, pending_restart boolean
pg_proc: oid oid, proname name, pronamespace oid, proowner oid, prolang oid, procost real, prorows real, provariadic oid, prosupport regproc, prokind "char", prosecdef boolean, proleakproof boolean, proisstrict boolean, proretset boolean, provolatile "char", proparallel "char", pronargs smallint, pronargdefaults smallint, prorettype oid, proargtypes oidvector, proallargtypes oid[], proargmodes "char"[], proargnames text[], proargdefaults pg_node_tree, protrftypes oid[], prosrc text, probin text, prosqlbody pg_node_tree, proconfig text[], proacl aclitem[]
pg_tables: schemaname name, tablename name, tableowner name, tablespace name, hasindexes boolean, hasrules boolean, hastriggers boolean, rowsecurity boolean
pg_views: schemaname name, viewname name, viewowner name, definition text
pg_matviews: schemaname name, matviewname name, matviewowner name, tablespace name, hasindexes boolean, ispopulated boolean, definition text
pg_indexes: schemaname name, tablename name, indexname name, tablespace name, indexdef text
pg_sequence: seqrelid oid, seqtypid oid, seqstart bigint, seqincrement bigint, seqmax bigint, seqmin bigint, seqcache bigint, seqcycle boolean
pg_sequences: schemaname name, sequencename name, sequenceowner name, data_type regtype, start_value bigint, min_value bigint, max_value bigint, increment_by bigint, cycle boolean, cache_size bigint, last_value bigint
pg_policy: oid oid, polname name, polrelid oid, polcmd "char", polpermissive boolean, polroles oid[], polqual pg_node_tree, polwithcheck pg_node_tree
pg_statistic_ext: oid oid, stxrelid oid, stxname name, stxnamespace oid, stxowner oid, stxstattarget integer, stxkeys int2vector, stxkind "char"[], stxexprs pg_node_tree
pg_publication: oid oid, pubname name, pubowner oid, puballtables boolean, pubinsert boolean, pubupdate boolean, pubdelete boolean, pubtruncate boolean, pubviaroot boolean
pg_publication_namespace: oid oid, pnpubid oid, pnnspid oid
pg_language: oid oid, lanname name, lanowner oid, lanispl boolean, lanpltrusted boolean, lanplcallfoid oid, laninline oid, lanvalidator oid, lanacl aclitem[]
pg_publication_rel: oid oid, prpubid oid, prrelid oid, prqual pg_node_tree, prattrs int2vector
pg_rewrite: oid oid, rulename name, ev_class oid, ev_type "char", ev_enabled "char", is_instead boolean, ev_qual pg_node_tree, ev_action pg_node_tree
pg_trigger: oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid, tgtype smallint, tgenabled "char", tgisinternal boolean, tgconstrrelid oid, tgconstrindid oid, tgconstraint oid, tgdeferrable boolean, tginitdeferred boolean, tgnargs smallint, tgattr int2vector, tgargs bytea, tgqual pg_node_tree, tgoldtable name, tgnewtable name
pg_extension: oid oid, extname name, extowner oid, extnamespace oid, extrelocatable boolean, extversion text, extconfig oid[], extcondition text[]
pg_tablespace: oid oid, spcname name, spcowner oid, spcacl aclitem[], spcoptions text[]
pg_foreign_table: ftrelid oid, ftserver oid, ftoptions text[]
pg_opclass: oid oid, opcmethod oid, opcname name, opcnamespace oid, opcowner oid, opcfamily oid, opcintype oid, opcdefault boolean, opckeytype oid
information_schema.tables: table_catalog name, table_schema name, table_name name, table_type text, self_referencing_column_name name, reference_generation text, user_defined_type_catalog name, user_defined_type_schema name, user_defined_type_name name, is_insertable_into text, is_typed text, commit_action text
information_schema.columns: table_catalog name, table_schema name, table_name name, column_name name, ordinal_position cardinal_number, column_default text, is_nullable text, data_type text, character_maximum_length cardinal_number, character_octet_length cardinal_number, numeric_precision cardinal_number, numeric_precision_radix cardinal_number, numeric_scale cardinal_number, datetime_precision cardinal_number, interval_type text, interval_precision cardinal_number, character_set_catalog name, character_set_schema name, character_set_name name, collation_catalog name, collation_schema name, collation_name name, domain_catalog name, domain_schema name, domain_name name, udt_catalog name, udt_schema name, udt_name name, scope_catalog name, scope_schema name, scope_name name, maximum_cardinality cardinal_number, dtd_identifier name, is_self_referencing text, is_identity text, identity_generation text, identity_start text, identity_increment text, identity_maximum text, identity_minimum text, identity_cycle text, is_generated text, generation_expression text, is_updatable text
information_schema.schemata: catalog_name name, schema_name name, schema_owner name, default_character_set_catalog name, default_character_set_schema name, default_character_set_name name, sql_path text
information_schema.views: table_catalog name, table_schema name, table_name name, view_definition text, check_option text, is_updatable text, is_insertable_into text, is_trigger_updatable text, is_trigger_deletable text, is_trigger_insertable_into text
"""  # noqa: E501


def _parse_specs(text: str) -> dict[str, tuple[tuple[str, str], ...]]:
    specs = {}
    for line in text.strip().splitlines():
        name, columns = line.split(": ")
        specs[name] = tuple(_column(c) for c in columns.split(", "))
    return specs


def _column(text: str) -> tuple[str, str]:
    name, pg_type = text.split(" ", 1)
    return name, pg_type


# catalog name ("pg_class", "information_schema.columns") -> ((column, PostgreSQL type), ...)
CATALOGS: dict[str, tuple[tuple[str, str], ...]] = _parse_specs(_SPECS)

# The OIDs PostgreSQL 15 gives its catalogs in pg_class, and whether each is a table or a view.
CATALOG_OIDS: dict[str, tuple[int, str]] = {
    "pg_class": (1259, "r"), "pg_namespace": (2615, "r"), "pg_type": (1247, "r"),
    "pg_attribute": (1249, "r"), "pg_index": (2610, "r"), "pg_constraint": (2606, "r"),
    "pg_attrdef": (2604, "r"), "pg_description": (2609, "r"), "pg_am": (2601, "r"),
    "pg_collation": (3456, "r"), "pg_enum": (3501, "r"), "pg_range": (3541, "r"),
    "pg_inherits": (2611, "r"), "pg_partitioned_table": (3350, "r"), "pg_depend": (2608, "r"),
    "pg_database": (1262, "r"), "pg_proc": (1255, "r"), "pg_sequence": (2224, "r"),
    "pg_policy": (3256, "r"), "pg_statistic_ext": (3381, "r"), "pg_publication": (6104, "r"),
    "pg_publication_namespace": (6237, "r"), "pg_publication_rel": (6106, "r"),
    "pg_rewrite": (2618, "r"), "pg_trigger": (2620, "r"), "pg_extension": (3079, "r"),
    "pg_tablespace": (1213, "r"), "pg_foreign_table": (3118, "r"), "pg_opclass": (2616, "r"),
    "pg_roles": (12000, "v"), "pg_user": (12014, "v"), "pg_views": (12028, "v"),
    "pg_tables": (12033, "v"),
    "pg_matviews": (12038, "v"), "pg_indexes": (12043, "v"), "pg_sequences": (12048, "v"),
    "pg_settings": (12104, "v"), "pg_language": (2612, "r"),
}  # fmt: skip

# PostgreSQL type (as format_type spells it) -> DuckDB type of the emulated column
_DUCKDB_OF_PG = {
    "oid": "BIGINT", "xid": "BIGINT", "bigint": "BIGINT", "integer": "INTEGER",
    "smallint": "SMALLINT", "real": "REAL", "boolean": "BOOLEAN", "bytea": "BLOB",
    "timestamp with time zone": "TIMESTAMPTZ", "int2vector": "SMALLINT[]", "oidvector": "BIGINT[]",
    "smallint[]": "SMALLINT[]", "oid[]": "BIGINT[]", "cardinal_number": "INTEGER",
}  # fmt: skip

# what a PostgreSQL column holds when the source has nothing for it
_DEFAULTS = {
    "oid": "0", "xid": "0", "integer": "0", "smallint": "0", "real": "0", "bigint": "0",
    "boolean": "false", '"char"': "''", "regproc": "'-'",
}  # fmt: skip


def duckdb_type(pg_type: str) -> str:
    """The DuckDB type that holds a catalog column of PostgreSQL type ``pg_type``."""
    if pg_type in _DUCKDB_OF_PG:
        return _DUCKDB_OF_PG[pg_type]
    return "VARCHAR[]" if pg_type.endswith("[]") else "VARCHAR"


# DuckDB type name (without its parameters) -> PostgreSQL type OID, as sqlml.wire.types sends a
# column of that type (TIME WITH TIME ZONE as time, BIT as bytea, STRUCT as record). Anything else
# is text (25); an ENUM column is its enum type, as in PostgreSQL.
DUCKDB_TYPES: dict[str, int] = {
    "BOOLEAN": 16, "TINYINT": 21, "SMALLINT": 21, "INTEGER": 23, "BIGINT": 20, "HUGEINT": 1700,
    "UTINYINT": 21, "USMALLINT": 23, "UINTEGER": 20, "UBIGINT": 1700, "UHUGEINT": 1700,
    "FLOAT": 700, "DOUBLE": 701, "DECIMAL": 1700, "VARCHAR": 25, "BLOB": 17, "DATE": 1082,
    "TIME": 1083, "TIME_NS": 1083, "TIME WITH TIME ZONE": 1083, "TIMESTAMP": 1114,
    "TIMESTAMP_S": 1114, "TIMESTAMP_MS": 1114, "TIMESTAMP_NS": 1114,
    "TIMESTAMP WITH TIME ZONE": 1184, "INTERVAL": 1186, "UUID": 2950, "JSON": 114, "BIT": 17,
    "STRUCT": 2249, "BIGNUM": 1700,
}  # fmt: skip


_ARRAY_SUFFIX = re.compile(r"(\[\d*\])+$")


def column_type_oid(duckdb_type: str) -> int:
    """The type OID of a column of DuckDB type ``duckdb_type`` (as ``duckdb_columns()`` spells
    it), as the emulated pg_attribute has it but for enums (text here, their own type there)."""
    base = _ARRAY_SUFFIX.sub("", duckdb_type)
    element = DUCKDB_TYPES.get(base.split("(", 1)[0], 25)
    if base == duckdb_type:
        return element
    pg_type = catalog_types.BY_OID.get(element)
    return pg_type.typarray if pg_type is not None and pg_type.typarray else 1009  # text[]


def view_name(catalog: str) -> str:
    """The TEMP view emulating ``catalog`` ("pg_class" -> "sqlml_pg_class",
    "information_schema.columns" -> "sqlml_information_schema_columns")."""
    return PREFIX + catalog.replace(".", "_")


# -- the sources of the populated catalogs -----------------------------------------------------

_SOURCES: dict[str, str] = {
    "pg_namespace": """
        SELECT sqlml_nspoid(database_name, schema_name, oid) AS oid,
               sqlml_nspname(database_name, schema_name) AS nspname, 10 AS nspowner
        FROM duckdb_schemas() WHERE database_name = current_database()
        UNION ALL BY NAME
        SELECT oid, 'pg_temp_1' AS nspname, 10 AS nspowner FROM duckdb_schemas()
        WHERE database_name = 'temp' AND EXISTS (
            SELECT 1 FROM duckdb_tables() WHERE temporary AND NOT starts_with(table_name, 'sqlml_'))
        UNION ALL BY NAME
        SELECT * FROM (VALUES (11, 'pg_catalog', 10), (99, 'pg_toast', 10),
                              (13207, 'information_schema', 10)) v(oid, nspname, nspowner)""",
    "pg_class": """
        SELECT table_oid AS oid, table_name AS relname,
               sqlml_nspoid(database_name, schema_name, schema_oid) AS relnamespace,
               10 AS relowner, 2 AS relam, table_oid AS relfilenode, estimated_size AS reltuples,
               index_count > 0 OR has_primary_key OR table_oid IN (
                   SELECT u.table_oid FROM duckdb_constraints() u
                   WHERE u.constraint_type = 'UNIQUE') AS relhasindex,
               CASE WHEN temporary THEN 't' ELSE 'p' END AS relpersistence, 'r' AS relkind,
               column_count AS relnatts, check_constraint_count AS relchecks,
               true AS relispopulated, 'd' AS relreplident
        FROM duckdb_tables() t WHERE sqlml_is_user(database_name, table_name)
        UNION ALL BY NAME
        SELECT view_oid AS oid, view_name AS relname,
               sqlml_nspoid(database_name, schema_name, schema_oid) AS relnamespace,
               10 AS relowner, CASE WHEN temporary THEN 't' ELSE 'p' END AS relpersistence,
               'v' AS relkind, column_count AS relnatts, true AS relispopulated,
               'n' AS relreplident
        FROM duckdb_views() WHERE NOT internal AND sqlml_is_user(database_name, view_name)
        UNION ALL BY NAME
        SELECT sequence_oid AS oid, sequence_name AS relname,
               sqlml_nspoid(database_name, schema_name, schema_oid) AS relnamespace,
               10 AS relowner, CASE WHEN temporary THEN 't' ELSE 'p' END AS relpersistence,
               'S' AS relkind, 3 AS relnatts, true AS relispopulated, 'n' AS relreplident
        FROM duckdb_sequences() WHERE sqlml_is_user(database_name, sequence_name)
        UNION ALL BY NAME
        SELECT oid, relname, relnamespace, 10 AS relowner, 403 AS relam, oid AS relfilenode,
               'p' AS relpersistence, 'i' AS relkind, len(colnames) AS relnatts,
               true AS relispopulated, 'n' AS relreplident
        FROM temp.main.sqlml_index_sources
        UNION ALL BY NAME
        SELECT oid, relname, 11 AS relnamespace, 10 AS relowner, relkind,
               CASE WHEN relkind = 'r' THEN 2 ELSE 0 END AS relam, 'p' AS relpersistence,
               true AS relispopulated, 'n' AS relreplident
        FROM temp.main.sqlml_system_relations""",
    "pg_type": """
        SELECT *, 11 AS typnamespace, 10 AS typowner, true AS typisdefined, -1 AS typtypmod
        FROM temp.main.sqlml_builtin_types
        UNION ALL BY NAME
        SELECT type_oid AS oid, type_name AS typname,
               sqlml_nspoid(database_name, schema_name, schema_oid) AS typnamespace,
               10 AS typowner, 4 AS typlen, true AS typbyval, 'e' AS typtype,
               'E' AS typcategory, true AS typisdefined, ',' AS typdelim, 'enum_in' AS typinput,
               'enum_out' AS typoutput, 'enum_recv' AS typreceive, 'enum_send' AS typsend,
               'i' AS typalign, 'p' AS typstorage, -1 AS typtypmod
        FROM duckdb_types() WHERE logical_type = 'ENUM' AND NOT internal
            AND sqlml_is_user(database_name, type_name)""",
    "pg_attribute": """
        SELECT c.table_oid AS attrelid, c.column_name AS attname, c.type_oid AS atttypid,
               -1 AS attstattarget, t.typlen AS attlen, c.column_index AS attnum,
               CASE WHEN c.is_array THEN 1 ELSE 0 END AS attndims, -1 AS attcacheoff,
               c.typmod AS atttypmod, t.typbyval AS attbyval, t.typalign AS attalign,
               t.typstorage AS attstorage, NOT c.is_nullable AS attnotnull,
               c.column_default IS NOT NULL AS atthasdef, true AS attislocal,
               t.typcollation AS attcollation
        FROM temp.main.sqlml_columns c LEFT JOIN temp.main.sqlml_pg_type t ON t.oid = c.type_oid
        UNION ALL BY NAME
        SELECT t.table_oid AS attrelid, s.attname, s.atttypid, s.attlen, s.attnum,
               -1 AS attcacheoff, -1 AS atttypmod, s.attbyval, s.attalign, 'p' AS attstorage,
               true AS attnotnull, true AS attislocal, 0 AS attstattarget
        FROM duckdb_tables() t, (VALUES ('tableoid', 26, 4, -6, true, 'i'),
            ('cmax', 29, 4, -5, true, 'i'), ('xmax', 28, 4, -4, true, 'i'),
            ('cmin', 29, 4, -3, true, 'i'), ('xmin', 28, 4, -2, true, 'i'),
            ('ctid', 27, 6, -1, false, 's'))
            s(attname, atttypid, attlen, attnum, attbyval, attalign)
        WHERE sqlml_is_user(t.database_name, t.table_name)""",
    "pg_index": """
        SELECT oid AS indexrelid, table_oid AS indrelid, len(attnums) AS indnatts,
               len(attnums) AS indnkeyatts, is_unique AS indisunique, is_primary AS indisprimary,
               true AS indimmediate, true AS indisvalid, true AS indisready, true AS indislive,
               attnums AS indkey, list_transform(attnums, lambda a: 0) AS indcollation,
               list_transform(attnums, lambda a: 0) AS indclass,
               list_transform(attnums, lambda a: 0) AS indoption
        FROM temp.main.sqlml_indexes""",
    "pg_constraint": """
        SELECT oid, conname, connamespace, contype, true AS convalidated, conrelid, conindid,
               confrelid, confupdtype, confdeltype, confmatchtype, true AS conislocal,
               conkey, confkey, conbin
        FROM temp.main.sqlml_constraints""",
    "pg_attrdef": """
        SELECT sqlml_synthetic_oid(table_oid, 1024 + column_index) AS oid, table_oid AS adrelid,
               column_index AS adnum, column_default AS adbin
        FROM temp.main.sqlml_columns WHERE column_default IS NOT NULL""",
    "pg_description": """
        SELECT table_oid AS objoid, 1259 AS classoid, 0 AS objsubid, comment AS description
        FROM duckdb_tables() WHERE sqlml_is_user(database_name, table_name) AND comment <> ''
        UNION ALL BY NAME
        SELECT view_oid AS objoid, 1259 AS classoid, 0 AS objsubid, comment AS description
        FROM duckdb_views()
        WHERE NOT internal AND sqlml_is_user(database_name, view_name) AND comment <> ''
        UNION ALL BY NAME
        SELECT table_oid AS objoid, 1259 AS classoid, column_index AS objsubid,
               comment AS description
        FROM temp.main.sqlml_columns WHERE comment <> ''""",
    "pg_am": """
        SELECT * FROM (VALUES (2, 'heap', 'heap_tableam_handler', 't'),
                              (403, 'btree', 'bthandler', 'i'), (405, 'hash', 'hashhandler', 'i'))
            v(oid, amname, amhandler, amtype)""",
    "pg_collation": """
        SELECT *, 11 AS collnamespace, 10 AS collowner, true AS collisdeterministic,
               -1 AS collencoding
        FROM (VALUES (100, 'default', 'd', NULL), (950, 'C', 'c', 'C'),
                     (951, 'POSIX', 'c', 'POSIX')) v(oid, collname, collprovider, collcollate)""",
    "pg_enum": """
        SELECT sqlml_synthetic_oid(type_oid, 3072 + n) AS oid, type_oid AS enumtypid,
               n AS enumsortorder, label AS enumlabel
        FROM (SELECT type_oid, unnest(labels) AS label, generate_subscripts(labels, 1) AS n
              FROM duckdb_types() WHERE logical_type = 'ENUM' AND NOT internal
                  AND sqlml_is_user(database_name, type_name))""",
    "pg_roles": """
        SELECT sqlml_user() AS rolname, true AS rolsuper, true AS rolinherit,
               true AS rolcreaterole, true AS rolcreatedb, true AS rolcanlogin,
               -1 AS rolconnlimit, '********' AS rolpassword, true AS rolbypassrls, 10 AS oid""",
    "pg_user": """
        SELECT sqlml_user() AS usename, 10 AS usesysid, true AS usecreatedb, true AS usesuper,
               true AS usebypassrls, '********' AS passwd""",
    "pg_database": """
        SELECT database_oid AS oid, sqlml_database() AS datname, 10 AS datdba, 6 AS encoding,
               'c' AS datlocprovider, true AS datallowconn, -1 AS datconnlimit,
               1663 AS dattablespace, 'C.UTF-8' AS datcollate, 'C.UTF-8' AS datctype
        FROM duckdb_databases() WHERE database_name = current_database()""",
    "pg_settings": """
        SELECT e.key AS name, e.value AS setting, 'user' AS context, 'string' AS vartype,
               'session' AS source, e.value AS reset_val
        FROM (SELECT unnest(map_entries(getvariable('sqlml_settings'))) AS e)
        UNION ALL BY NAME
        SELECT 'TimeZone' AS name, current_setting('TimeZone') AS setting, 'user' AS context,
               'string' AS vartype, 'session' AS source
        UNION ALL BY NAME
        SELECT 'search_path' AS name, sqlml_search_path_text() AS setting, 'user' AS context,
               'string' AS vartype, 'session' AS source""",
    "pg_proc": """
        SELECT f.function_oid AS oid, f.function_name AS proname,
               sqlml_nspoid(f.database_name, f.schema_name, s.oid) AS pronamespace,
               10 AS proowner,
               14 AS prolang, 100 AS procost,
               CASE WHEN f.function_type = 'aggregate' THEN 'a' ELSE 'f' END AS prokind,
               f.function_type LIKE 'table%' AS proretset, 'v' AS provolatile,
               'u' AS proparallel, len(f.parameters) AS pronargs, f.parameters AS proargnames,
               f.macro_definition AS prosrc
        FROM duckdb_functions() f JOIN duckdb_schemas() s
            ON s.database_name = f.database_name AND s.schema_name = f.schema_name
        WHERE NOT f.internal AND sqlml_is_user(f.database_name, f.function_name)""",
    # PostgreSQL's four languages (pg_proc.prolang of every DuckDB macro is 14, sql)
    "pg_language": """
        SELECT * FROM (VALUES (12, 'internal', false, false), (13, 'c', false, false),
                              (14, 'sql', false, true), (13_000, 'plpgsql', true, true))
            v(oid, lanname, lanispl, lanpltrusted), (SELECT 10 AS lanowner)""",
    "pg_tables": """
        SELECT n.nspname AS schemaname, c.relname AS tablename, sqlml_user() AS tableowner,
               c.relhasindex AS hasindexes
        FROM temp.main.sqlml_pg_class c JOIN temp.main.sqlml_pg_namespace n
            ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')""",
    "pg_views": """
        SELECT n.nspname AS schemaname, c.relname AS viewname, sqlml_user() AS viewowner,
               v.sql AS definition
        FROM temp.main.sqlml_pg_class c
            JOIN temp.main.sqlml_pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN duckdb_views() v ON v.view_oid = c.oid
        WHERE c.relkind = 'v'""",
    "pg_indexes": """
        SELECT nspname AS schemaname, table_name AS tablename, relname AS indexname, indexdef
        FROM temp.main.sqlml_indexes""",
    "pg_sequence": """
        SELECT sequence_oid AS seqrelid, 20 AS seqtypid, start_value AS seqstart,
               increment_by AS seqincrement, max_value AS seqmax, min_value AS seqmin,
               1 AS seqcache, cycle AS seqcycle
        FROM duckdb_sequences() WHERE sqlml_is_user(database_name, sequence_name)""",
    "pg_sequences": """
        SELECT sqlml_nspname(database_name, schema_name) AS schemaname,
               sequence_name AS sequencename, sqlml_user() AS sequenceowner,
               'bigint' AS data_type, start_value, min_value, max_value, increment_by, cycle,
               1 AS cache_size, last_value
        FROM duckdb_sequences() WHERE sqlml_is_user(database_name, sequence_name)""",
    "pg_tablespace": """
        SELECT * FROM (VALUES (1663, 'pg_default', 10), (1664, 'pg_global', 10))
            v(oid, spcname, spcowner)""",
    "information_schema.tables": """
        SELECT sqlml_database() AS table_catalog, n.nspname AS table_schema,
               c.relname AS table_name,
               CASE WHEN c.relkind = 'v' THEN 'VIEW' WHEN c.relkind = 'f' THEN 'FOREIGN'
                    WHEN c.relpersistence = 't' THEN 'LOCAL TEMPORARY'
                    ELSE 'BASE TABLE' END AS table_type,
               CASE WHEN c.relkind = 'r' THEN 'YES' ELSE 'NO' END AS is_insertable_into,
               'NO' AS is_typed
        FROM temp.main.sqlml_pg_class c
            JOIN temp.main.sqlml_pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'p', 'f', 'm')""",
    "information_schema.columns": """
        SELECT sqlml_database() AS table_catalog,
               sqlml_nspname(c.database_name, c.schema_name) AS table_schema, c.table_name,
               c.column_name, c.column_index AS ordinal_position, c.column_default,
               CASE WHEN c.is_nullable THEN 'YES' ELSE 'NO' END AS is_nullable,
               CASE WHEN c.is_array THEN 'ARRAY' WHEN t.typtype = 'e' THEN 'USER-DEFINED'
                    ELSE f.format END AS data_type,
               CASE c.elem_oid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64 WHEN 700 THEN 24
                    WHEN 701 THEN 53 WHEN 1700 THEN c.numeric_precision END AS numeric_precision,
               CASE WHEN c.elem_oid IN (21, 23, 20, 700, 701) THEN 2
                    WHEN c.elem_oid = 1700 THEN 10 END AS numeric_precision_radix,
               CASE WHEN c.elem_oid IN (21, 23, 20) THEN 0
                    WHEN c.elem_oid = 1700 THEN c.numeric_scale END AS numeric_scale,
               CASE WHEN c.elem_oid = 1082 THEN 0
                    WHEN c.elem_oid IN (1083, 1114, 1184, 1186, 1266) THEN 6
                    END AS datetime_precision,
               CASE WHEN c.elem_oid = 25 THEN 1073741824 END AS character_octet_length,
               sqlml_database() AS udt_catalog,
               CASE WHEN t.typtype = 'e' THEN sqlml_nspname(c.database_name, c.schema_name)
                    ELSE 'pg_catalog' END AS udt_schema,
               t.typname AS udt_name, CAST(c.column_index AS VARCHAR) AS dtd_identifier,
               'NO' AS is_self_referencing, 'NO' AS is_identity, 'NO' AS identity_cycle,
               'NEVER' AS is_generated,
               CASE WHEN c.is_view THEN 'NO' ELSE 'YES' END AS is_updatable
        FROM temp.main.sqlml_columns c
            LEFT JOIN temp.main.sqlml_pg_type t ON t.oid = c.type_oid
            LEFT JOIN temp.main.sqlml_type_formats f ON f.oid = c.type_oid""",
    "information_schema.schemata": """
        SELECT sqlml_database() AS catalog_name, nspname AS schema_name,
               sqlml_user() AS schema_owner
        FROM temp.main.sqlml_pg_namespace""",
    "information_schema.views": """
        SELECT sqlml_database() AS table_catalog, schemaname AS table_schema,
               viewname AS table_name, definition AS view_definition, 'NONE' AS check_option,
               'NO' AS is_updatable, 'NO' AS is_insertable_into, 'NO' AS is_trigger_updatable,
               'NO' AS is_trigger_deletable, 'NO' AS is_trigger_insertable_into
        FROM temp.main.sqlml_pg_views""",
}


def _view(catalog: str) -> str:
    """The CREATE statement of the view emulating ``catalog`` (see the module docstring)."""
    columns = CATALOGS[catalog]
    template = ", ".join(f"CAST(NULL AS {duckdb_type(t)}) AS {c}" for c, t in columns)
    body = f"SELECT {template} WHERE false"
    if catalog in _SOURCES:
        body += f" UNION ALL BY NAME ({_SOURCES[catalog]})"
    outer = ", ".join(_outer_column(c, t) for c, t in columns)
    return f"CREATE OR REPLACE TEMP VIEW {view_name(catalog)} AS SELECT {outer} FROM ({body})"


def _outer_column(column: str, pg_type: str) -> str:
    value = f"coalesce({column}, {_DEFAULTS[pg_type]})" if pg_type in _DEFAULTS else column
    return f"CAST({value} AS {duckdb_type(pg_type)}) AS {column}"


_HELPER_VIEWS = [
    # user columns with their PostgreSQL type: element OID, type OID (arrays too) and typmod
    """CREATE OR REPLACE TEMP VIEW sqlml_columns AS
        WITH c AS (
            SELECT d.*, regexp_replace(d.data_type, '(\\[\\d*\\])+$', '') AS base,
                   regexp_matches(d.data_type, '\\]$') AS is_array,
                   d.table_oid IN (SELECT view_oid FROM duckdb_views()) AS is_view
            FROM duckdb_columns() d WHERE sqlml_is_user(d.database_name, d.table_name)),
        enums AS (
            SELECT 'ENUM(' || array_to_string(list_transform(labels,
                       lambda l: '''' || replace(l, '''', '''''') || ''''), ', ') || ')' AS spelled,
                   min(type_oid) AS type_oid
            FROM duckdb_types() WHERE logical_type = 'ENUM' AND NOT internal GROUP BY 1),
        typed AS (
            SELECT c.*, coalesce(m.oid, e.type_oid, 25) AS elem_oid,
                   CASE WHEN c.base LIKE 'DECIMAL(%'
                        THEN ((c.numeric_precision << 16) | c.numeric_scale) + 4
                        ELSE -1 END AS typmod
            FROM c LEFT JOIN temp.main.sqlml_duckdb_types m
                       ON m.duckdb = regexp_replace(c.base, '[(].*$', '')
                   LEFT JOIN enums e ON e.spelled = c.base)
        SELECT typed.*, CASE WHEN is_array THEN coalesce(nullif(b.typarray, 0), 1009)
                             ELSE elem_oid END AS type_oid
        FROM typed LEFT JOIN temp.main.sqlml_builtin_types b ON b.oid = typed.elem_oid""",
    # indexes: the ones behind PRIMARY KEY and UNIQUE constraints, and CREATE INDEX ones
    """CREATE OR REPLACE TEMP VIEW sqlml_index_sources AS
        SELECT sqlml_synthetic_oid(table_oid, 2048 + constraint_index) AS oid,
               CASE WHEN constraint_type = 'PRIMARY KEY' THEN table_name || '_pkey'
                    ELSE constraint_name END AS relname,
               table_oid, sqlml_nspoid(database_name, schema_name, schema_oid) AS relnamespace,
               sqlml_nspname(database_name, schema_name) AS nspname, table_name,
               true AS is_unique, constraint_type = 'PRIMARY KEY' AS is_primary,
               constraint_column_names AS colnames,
               sqlml_synthetic_oid(table_oid, constraint_index) AS constraint_oid
        FROM duckdb_constraints()
        WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')
            AND sqlml_is_user(database_name, table_name)
        UNION ALL BY NAME
        SELECT index_oid AS oid, index_name AS relname, table_oid,
               sqlml_nspoid(database_name, schema_name, schema_oid) AS relnamespace,
               sqlml_nspname(database_name, schema_name) AS nspname, table_name, is_unique,
               is_primary, list_transform(regexp_extract_all(expressions, '''([^'']*)''', 1),
                                          lambda e: trim(e, '"')) AS colnames
        FROM duckdb_indexes() WHERE sqlml_is_user(database_name, index_name)""",
    """CREATE OR REPLACE TEMP VIEW sqlml_indexes AS
        WITH keys AS (
            SELECT k.oid, list(coalesce(d.column_index, 0) ORDER BY k.pos) AS attnums
            FROM (SELECT oid, table_oid, unnest(colnames) AS name,
                         generate_subscripts(colnames, 1) AS pos
                  FROM temp.main.sqlml_index_sources) k
                LEFT JOIN duckdb_columns() d ON d.table_oid = k.table_oid AND d.column_name = k.name
            GROUP BY k.oid)
        SELECT s.*, keys.attnums,
               'CREATE ' || CASE WHEN s.is_unique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                   || sqlml_quote_ident(s.relname) || ' ON '
                   || CASE WHEN list_contains(sqlml_current_schemas(true), s.nspname) THEN ''
                           ELSE sqlml_quote_ident(s.nspname) || '.' END
                   || sqlml_quote_ident(s.table_name) || ' USING btree ('
                   || array_to_string(list_transform(s.colnames,
                                                     lambda n: sqlml_quote_ident(n)), ', ')
                   || ')' AS indexdef
        FROM temp.main.sqlml_index_sources s JOIN keys ON keys.oid = s.oid""",
    """CREATE OR REPLACE TEMP VIEW sqlml_constraints AS
        WITH referenced AS (
            SELECT k.table_oid, k.constraint_index,
                   list(d.column_index ORDER BY k.pos) AS confkey, min(r.table_oid) AS confrelid
            FROM (SELECT table_oid, constraint_index, database_name, schema_name,
                         referenced_table, unnest(referenced_column_names) AS name,
                         generate_subscripts(referenced_column_names, 1) AS pos
                  FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY') k
                JOIN duckdb_tables() r ON r.database_name = k.database_name
                    AND r.schema_name = k.schema_name AND r.table_name = k.referenced_table
                LEFT JOIN duckdb_columns() d ON d.table_oid = r.table_oid
                    AND d.column_name = k.name
            GROUP BY k.table_oid, k.constraint_index),
        -- a foreign key's conindid: the referenced table's unique index on those columns
        supporting AS (
            SELECT k.table_oid, k.constraint_index,
                   min(sqlml_synthetic_oid(u.table_oid, 2048 + u.constraint_index)) AS conindid
            FROM duckdb_constraints() k
                JOIN duckdb_tables() r ON r.database_name = k.database_name
                    AND r.schema_name = k.schema_name AND r.table_name = k.referenced_table
                JOIN duckdb_constraints() u ON u.table_oid = r.table_oid
                    AND u.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
                    AND list_sort(u.constraint_column_names)
                        = list_sort(k.referenced_column_names)
            WHERE k.constraint_type = 'FOREIGN KEY'
            GROUP BY k.table_oid, k.constraint_index)
        SELECT sqlml_synthetic_oid(c.table_oid, c.constraint_index) AS oid,
               CASE c.constraint_type WHEN 'PRIMARY KEY' THEN c.table_name || '_pkey'
                    WHEN 'FOREIGN KEY' THEN c.table_name || '_'
                        || array_to_string(c.constraint_column_names, '_') || '_fkey'
                    ELSE c.constraint_name END AS conname,
               sqlml_nspoid(c.database_name, c.schema_name, c.schema_oid) AS connamespace,
               CASE c.constraint_type WHEN 'PRIMARY KEY' THEN 'p' WHEN 'UNIQUE' THEN 'u'
                    WHEN 'CHECK' THEN 'c' ELSE 'f' END AS contype,
               c.table_oid AS conrelid,
               CASE WHEN c.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
                    THEN sqlml_synthetic_oid(c.table_oid, 2048 + c.constraint_index)
                    ELSE coalesce(s.conindid, 0) END AS conindid,
               coalesce(f.confrelid, 0) AS confrelid,
               CASE WHEN c.constraint_type = 'FOREIGN KEY' THEN 'a' ELSE ' ' END AS confupdtype,
               CASE WHEN c.constraint_type = 'FOREIGN KEY' THEN 'a' ELSE ' ' END AS confdeltype,
               CASE WHEN c.constraint_type = 'FOREIGN KEY' THEN 's' ELSE ' ' END AS confmatchtype,
               list_transform(c.constraint_column_indexes, lambda i: i + 1) AS conkey,
               f.confkey, c.expression AS conbin,
               CASE c.constraint_type
                   WHEN 'CHECK' THEN 'CHECK (' || c.expression || ')'
                   ELSE CASE c.constraint_type WHEN 'PRIMARY KEY' THEN 'PRIMARY KEY'
                             WHEN 'UNIQUE' THEN 'UNIQUE' ELSE 'FOREIGN KEY' END
                        || ' (' || array_to_string(list_transform(c.constraint_column_names,
                                       lambda n: sqlml_quote_ident(n)), ', ') || ')'
                        || CASE WHEN c.constraint_type = 'FOREIGN KEY'
                                THEN ' REFERENCES ' || sqlml_quote_ident(c.referenced_table)
                                     || '(' || array_to_string(list_transform(
                                         c.referenced_column_names,
                                         lambda n: sqlml_quote_ident(n)), ', ') || ')'
                                ELSE '' END
               END AS definition
        FROM duckdb_constraints() c
            LEFT JOIN referenced f ON f.table_oid = c.table_oid
                AND f.constraint_index = c.constraint_index
            LEFT JOIN supporting s ON s.table_oid = c.table_oid
                AND s.constraint_index = c.constraint_index
        WHERE c.constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'CHECK', 'FOREIGN KEY')
            AND sqlml_is_user(c.database_name, c.table_name)""",
    """CREATE OR REPLACE TEMP VIEW sqlml_type_formats AS
        SELECT oid, format FROM temp.main.sqlml_builtin_types
        UNION ALL
        SELECT type_oid, type_name FROM duckdb_types()
        WHERE logical_type = 'ENUM' AND NOT internal AND sqlml_is_user(database_name, type_name)""",
]


def _values_table(name: str, columns: list[str], rows: list[tuple[object, ...]]) -> str:
    """``CREATE TEMP TABLE name AS`` the given rows (fixed data, built as a sqlglot tree)."""
    values = exp.values([tuple(exp.convert(v) for v in row) for row in rows], "t", columns)
    select = exp.select("*").from_(values)
    return f"CREATE OR REPLACE TEMP TABLE {name} AS {select.sql(dialect='duckdb')}"


def _tables() -> list[str]:
    builtin = catalog_types.BUILTIN
    system = sorted((oid, name, kind) for name, (oid, kind) in CATALOG_OIDS.items())
    return [
        _values_table("sqlml_builtin_types", list(builtin[0]._fields), [tuple(t) for t in builtin]),
        _values_table("sqlml_duckdb_types", ["duckdb", "oid"], list(DUCKDB_TYPES.items())),
        _values_table("sqlml_system_relations", ["oid", "relname", "relkind"], list(system)),
    ]


_NAME = re.compile(r"CREATE OR REPLACE TEMP (?:MACRO|VIEW|TABLE) (\w+)")


def object_name(ddl: str) -> str:
    """The name of the object ``ddl`` creates."""
    found = _NAME.match(ddl)
    if found is None:
        raise ValueError(f"not a CREATE statement of the catalog: {ddl[:60]}")
    return found.group(1)


def references(sql: str) -> set[str]:
    """The ``sqlml_`` names that ``sql`` mentions (objects, and some column names), plain or
    quoted, outside strings and comments."""
    if "sqlml_" not in sql.lower():
        return set()
    found = set()
    for token in lexer.tokens(sql):
        if token.kind == lexer.WORD or token.kind == lexer.NAME:
            name = sql[token.start : token.end].strip('"`').lower()
            if name.startswith("sqlml_"):
                found.add(name)
    return found


def _function(name: str, body: str) -> str:
    return f"CREATE OR REPLACE TEMP MACRO {PREFIX}{name}{body}"


@functools.cache
def objects() -> dict[str, str]:
    """Every object of the emulation that does not depend on the session: name -> DDL."""
    functions = catalog_macros.FUNCTIONS.items()
    statements = [
        *_tables(),
        catalog_macros.keywords_macro(),
        *catalog_macros.HELPER_MACROS,
        *_HELPER_VIEWS,
        *catalog_macros.LOOKUP_VIEWS,
        *(_view(name) for name in CATALOGS),
        *(_function(name, body) for name, body in functions),
        *catalog_macros.CAST_MACROS,
    ]
    return {object_name(ddl): ddl for ddl in statements}


@functools.cache
def dependencies() -> dict[str, frozenset[str]]:
    """Object -> the objects its DDL uses (all of which must exist before it is created)."""
    known = objects()
    return {name: frozenset((references(ddl) & set(known)) - {name}) for name, ddl in known.items()}
