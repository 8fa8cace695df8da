{#- materialized='sqlml_model': the node's SQL trains a sqlml model of the node's name (CREATE OR
    REPLACE MODEL, with ml_config's options), and the node's relation is a table of its versions
    (ML.VERSIONS), which dbt can ref, document and list; ref() of the node in sqlml.predict and
    the tests names the model. With retrain='if_changed' nothing is trained when the SQL, the
    options, the sqlml version and the rows are those of the latest version: the node then says
    "SKIP (unchanged)". With retrain='incremental' (and ml_config's incremental = true and a
    watermark_col) a model whose SQL and options are those of its latest version is extended with
    the rows past its watermark (RETRAIN), and "SKIP (no new rows)" when there are none. -#}
{% materialization sqlml_model, default %}
    {%- set ml_config = sqlml.config_meta_get('ml_config', {}) -%}
    {%- set retrain = sqlml.config_meta_get('retrain', none) -%}
    {%- set deploy = sqlml.config_meta_get('deploy', none) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- set name = sqlml.model_name(this) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- do sqlml.show_sqlstates() -%}
    {%- set before = sqlml.latest_version(name) if existing is not none else none -%}
    {% call statement('main') -%}
        {{ sqlml.ml_statement(sqlml.create_model_sql(name, ml_config, retrain, deploy, sql)) }}
    {%- endcall %}
    {%- set after = sqlml.latest_version(name) -%}

    {% call statement('versions') -%}
        {{ sqlml.replace_table_sql(target_relation, sqlml.versions_query(name)) }}
    {%- endcall %}

    {%- if before is not none and after == before -%}
        {%- set why = 'no new rows' if retrain == 'incremental' else 'unchanged' -%}
        {% do store_raw_result('main', message='SKIP (' ~ why ~ ')', code='SKIP', rows_affected=0) %}
    {%- else -%}
        {% do store_raw_result('main', message='TRAINED version ' ~ after, code='OK', rows_affected=0) %}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
