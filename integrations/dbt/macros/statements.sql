{#- Where the ML statements go. Through the sqlml adapter (DuckDB) and through `sqlml serve`
    sqlml reads every statement: ML statements are sent as they are. On PostgreSQL with the
    sqlml extension (dbt-postgres; also through `sqlml serve`'s proxy to such a server) they are
    the extension's functions' arguments: sqlml.execute for CREATE / ALTER / DROP MODEL,
    sqlml.ml for a query's rows (jsonb), sqlml.ml_query for a query's SQL. -#}
{% macro on_extension() %}
    {{ return(adapter.dispatch('on_extension', 'sqlml')()) }}
{% endmacro %}

{% macro default__on_extension() %}
    {{ return(false) }}
{% endmacro %}

{#- PostgreSQL: whether the server has the extension (a gateway over DuckDB has not). Asked
    at each ML macro call (a few per node): dbt keeps no state between macro calls or nodes
    that a package could cache it in, and the catalog lookup takes 0.24 ms on PostgreSQL 15
    (plus dbt's run_query), against the seconds of a build. -#}
{% macro postgres__on_extension() %}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set found = run_query(
        "SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n"
        " ON n.oid = p.pronamespace WHERE n.nspname = 'sqlml' AND p.proname = 'ml_query'") -%}
    {{ return(found.columns[0].values()[0] | int > 0) }}
{% endmacro %}

{#- dbt-postgres shows an error's message alone (not its SQLSTATE): asks sqlml to put the
    SQLSTATE in front of its messages on this connection, as the sqlml adapter prints them
    ("sqlml 22023: ..."). sqlml.sqlstate_in_message is a setting of the gateway over DuckDB and
    a custom setting of PostgreSQL, which the extension reads (docs/gateway.md). -#}
{% macro show_sqlstates() %}
    {{ return(adapter.dispatch('show_sqlstates', 'sqlml')()) }}
{% endmacro %}

{% macro default__show_sqlstates() %}
{% endmacro %}

{% macro postgres__show_sqlstates() %}
    {%- if execute -%}{%- do run_query('SET sqlml.sqlstate_in_message = on') -%}{%- endif -%}
{% endmacro %}

{#- A SQL string literal of text (quotes doubled). -#}
{% macro text_literal(text) %}
    {{ return("'" ~ text | replace("'", "''") ~ "'") }}
{% endmacro %}

{#- An ML statement (CREATE MODEL, ALTER MODEL, ...) as the target runs it. -#}
{% macro ml_statement(sql) %}
    {%- if sqlml.on_extension() -%}
        {{ return('SELECT sqlml.execute(' ~ sqlml.text_literal(sql) ~ ')') }}
    {%- endif -%}
    {{ return(sql) }}
{% endmacro %}

{#- The latest version of a model (none: it has none). -#}
{% macro latest_version(name) %}
    {%- set query = 'SELECT max(version) AS v FROM ML.VERSIONS(MODEL ' ~ name ~ ')' -%}
    {%- if sqlml.on_extension() -%}
        {%- set query = "SELECT (j ->> 'v')::integer AS v FROM sqlml.ml(" ~ sqlml.text_literal(query) ~ ") AS j" -%}
    {%- endif -%}
    {%- set found = run_query(query) -%}
    {{ return(found.columns[0].values()[0] if found and found.rows | length else none) }}
{% endmacro %}

{#- A query of ML.VERSIONS' rows and columns (on the extension: from sqlml.ml's jsonb). -#}
{% macro versions_query(name) %}
    {%- set query = 'SELECT * FROM ML.VERSIONS(MODEL ' ~ name ~ ')' -%}
    {%- if not sqlml.on_extension() -%}{{ return(query) }}{%- endif -%}
    {{ return(
        "SELECT (j ->> 'version')::integer AS version, (j ->> 'created_at')::timestamp AS created_at,"
        ~ " j ->> 'model_type' AS model_type, j -> 'metrics' AS metrics, j -> 'options' AS options,"
        ~ " j ->> 'data_fingerprint' AS data_fingerprint, (j ->> 'training_rows')::bigint AS training_rows,"
        ~ " j ->> 'status' AS status, (j ->> 'traffic_weight')::double precision AS traffic_weight,"
        ~ " j -> 'data_warnings' AS data_warnings FROM sqlml.ml(" ~ sqlml.text_literal(query) ~ ") AS j") }}
{% endmacro %}

{#- An ML query (ML.PREDICT ...) as a subquery the target runs: on the extension, the query
    sqlml.ml_query renders: in a view, one that scores with the version serving when the view
    is read (as sqlml's CREATE VIEW does on every target); elsewhere the serving version's,
    inlined, when the node runs. -#}
{% macro ml_subquery(query) %}
    {%- if sqlml.on_extension() -%}
        {%- do sqlml.show_sqlstates() -%}
        {%- set follows = 'true' if config.get('materialized') == 'view' else 'false' -%}
        {%- set rendered = run_query('SELECT sqlml.ml_query(' ~ sqlml.text_literal(query) ~ ', ' ~ follows ~ ')') -%}
        {{ return('(' ~ rendered.columns[0].values()[0] ~ ')') }}
    {%- endif -%}
    {{ return('(' ~ query ~ ')') }}
{% endmacro %}

{#- CREATE OR REPLACE TABLE ... AS (PostgreSQL has no OR REPLACE for tables: dropped first). -#}
{% macro replace_table_sql(relation, query) %}
    {{ return(adapter.dispatch('replace_table_sql', 'sqlml')(relation, query)) }}
{% endmacro %}

{% macro default__replace_table_sql(relation, query) %}
    {{ return('CREATE OR REPLACE TABLE ' ~ relation ~ ' AS ' ~ query) }}
{% endmacro %}

{% macro postgres__replace_table_sql(relation, query) %}
    {{ return('DROP TABLE IF EXISTS ' ~ relation ~ '; CREATE TABLE ' ~ relation ~ ' AS ' ~ query) }}
{% endmacro %}
