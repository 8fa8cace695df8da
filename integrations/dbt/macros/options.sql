{#- A node's config value, from config() or from its meta (where dbt_ml keeps ml_config). -#}
{% macro config_meta_get(key, default=none) %}
    {%- if config.get(key) is not none -%}
        {{ return(config.get(key)) }}
    {%- elif config.get('meta') is not none and key in config.get('meta', {}) -%}
        {{ return(config.get('meta')[key]) }}
    {%- else -%}
        {{ return(default) }}
    {%- endif -%}
{% endmacro %}

{#- A config value as a SQL literal of CREATE MODEL's OPTIONS: 'text' (quotes doubled), numbers,
    TRUE / FALSE, NULL, [lists]. -#}
{% macro option_literal(value) %}
    {%- if value is none -%}
        {{ return('NULL') }}
    {%- elif value is sameas true -%}
        {{ return('TRUE') }}
    {%- elif value is sameas false -%}
        {{ return('FALSE') }}
    {%- elif value is number -%}
        {{ return(value | string) }}
    {%- elif value is string -%}
        {{ return("'" ~ value | replace("'", "''") ~ "'") }}
    {%- elif value is mapping -%}
        {{ exceptions.raise_compiler_error("sqlml: an option's value cannot be a mapping: " ~ value) }}
    {%- else -%}
        {%- set items = [] -%}
        {%- for item in value -%}{%- do items.append(sqlml.option_literal(item)) -%}{%- endfor -%}
        {{ return('[' ~ items | join(', ') ~ ']') }}
    {%- endif -%}
{% endmacro %}

{#- The model a relation names in sqlml's SQL: its schema and name (sqlml's store has no
    catalogs), each quoted. -#}
{% macro model_name(relation) %}
    {{ return(adapter.quote(relation.schema) ~ '.' ~ adapter.quote(relation.identifier)) }}
{% endmacro %}

{#- CREATE OR REPLACE MODEL with the node's options: ml_config's (BigQuery ML's names, as dbt_ml
    takes them), retrain ('always' | 'if_changed') and deploy ({'policy', 'metric', 'min_delta'}). -#}
{% macro create_model_sql(name, ml_config, retrain, deploy, sql) %}
    {%- set options = [] -%}
    {%- for key, value in ml_config.items() -%}
        {%- do options.append(key ~ ' = ' ~ sqlml.option_literal(value)) -%}
    {%- endfor -%}
    {%- if retrain is not none -%}
        {%- do options.append('retrain = ' ~ sqlml.option_literal(retrain)) -%}
    {%- endif -%}
    {%- if deploy is string -%}
        {%- do options.append('deploy = ' ~ sqlml.option_literal(deploy)) -%}
    {%- elif deploy is mapping -%}
        {%- for key, value in deploy.items() -%}
            {%- set option = 'deploy' if key == 'policy' else 'deploy_' ~ key -%}
            {%- do options.append(option ~ ' = ' ~ sqlml.option_literal(value)) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('CREATE OR REPLACE MODEL ' ~ name ~ ' OPTIONS (' ~ options | join(', ') ~ ') AS ' ~ sql) }}
{% endmacro %}
