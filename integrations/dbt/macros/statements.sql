{#- An ML statement (CREATE MODEL, ALTER MODEL, ...) as the target runs it. Through the sqlml
    adapter (DuckDB) and through `sqlml serve` sqlml reads it as it is. -#}
{% macro ml_statement(sql) %}
    {{ return(adapter.dispatch('ml_statement', 'sqlml')(sql)) }}
{% endmacro %}

{% macro default__ml_statement(sql) %}
    {{ return(sql) }}
{% endmacro %}

{#- The latest version of a model (none: it has none), read through ML.VERSIONS. -#}
{% macro latest_version(name) %}
    {%- set found = run_query('SELECT max(version) AS v FROM ML.VERSIONS(MODEL ' ~ name ~ ')') -%}
    {{ return(found.columns[0].values()[0] if found and found.rows | length else none) }}
{% endmacro %}
