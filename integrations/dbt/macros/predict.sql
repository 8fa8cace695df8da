{#- ML.PREDICT of the model a sqlml_model node trained, over a relation or a query; in a model's
    FROM clause: select * from {{ sqlml.predict(ref('churn_model'), ref('new_customers')) }} -#}
{% macro predict(model, source, threshold=none) %}
    {%- set call -%}
        ML.PREDICT(MODEL {{ sqlml.model_name(model) }}, ({{ sqlml.source_query(source) }})
        {%- if threshold is not none %}, STRUCT({{ threshold }} AS threshold){% endif %})
    {%- endset -%}
    {{ sqlml.ml_subquery('SELECT * FROM ' ~ call) }} AS {{ adapter.quote(model.identifier ~ '_predict') }}
{% endmacro %}

{#- ML.EXPLAIN_PREDICT of the model over a relation or a query, in a model's FROM clause: the
    predictions with each row's top feature attributions (linear_reg and logistic_reg models). -#}
{% macro explain(model, source, top_k_features=none, threshold=none) %}
    {%- set fields = [] -%}
    {%- if top_k_features is not none -%}{%- do fields.append((top_k_features | int) ~ ' AS top_k_features') -%}{%- endif -%}
    {%- if threshold is not none -%}{%- do fields.append((threshold | float) ~ ' AS threshold') -%}{%- endif -%}
    {%- set call -%}
        ML.EXPLAIN_PREDICT(MODEL {{ sqlml.model_name(model) }}, ({{ sqlml.source_query(source) }})
        {%- if fields %}, STRUCT({{ fields | join(', ') }}){% endif %})
    {%- endset -%}
    {{ sqlml.ml_subquery('SELECT * FROM ' ~ call) }} AS {{ adapter.quote(model.identifier ~ '_explain') }}
{% endmacro %}

{#- ML.EVALUATE of the model, on its evaluation rows (source none) or on a relation or query,
    as a subquery with its metrics' columns (on the extension, the metrics asked for). -#}
{% macro evaluate(model, source=none, threshold=none, metrics=none) %}
    {%- set call -%}
        ML.EVALUATE(MODEL {{ sqlml.model_name(model) }}
        {%- if source is not none %}, ({{ sqlml.source_query(source) }}){% endif %}
        {%- if threshold is not none %}, STRUCT({{ threshold }} AS threshold){% endif %})
    {%- endset -%}
    {%- if sqlml.on_extension() -%}
        {%- set columns = [] -%}
        {%- for metric in metrics or [] -%}
            {%- do columns.append("(e ->> " ~ sqlml.text_literal(metric) ~ ")::double precision AS " ~ adapter.quote(metric)) -%}
        {%- endfor -%}
        (SELECT {{ columns | join(', ') if columns else 'e' }} FROM sqlml.ml({{ sqlml.text_literal('SELECT * FROM ' ~ call) }}) AS e) AS {{ adapter.quote(model.identifier ~ '_evaluate') }}
    {%- else -%}
        (SELECT * FROM {{ call }}) AS {{ adapter.quote(model.identifier ~ '_evaluate') }}
    {%- endif -%}
{% endmacro %}

{#- A relation as a query; a query (text) as it is. -#}
{% macro source_query(source) %}
    {%- if source is string and ' ' in source | trim -%}
        {{ return(source) }}
    {%- else -%}
        {{ return('SELECT * FROM ' ~ source) }}
    {%- endif -%}
{% endmacro %}
