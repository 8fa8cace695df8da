{#- ML.PREDICT of the model a sqlml_model node trained, over a relation or a query; in a model's
    FROM clause: select * from {{ sqlml.predict(ref('churn_model'), ref('new_customers')) }} -#}
{% macro predict(model, source, threshold=none) %}
    ML.PREDICT(MODEL {{ sqlml.model_name(model) }}, ({{ sqlml.source_query(source) }})
    {%- if threshold is not none %}, STRUCT({{ threshold }} AS threshold){% endif %})
{% endmacro %}

{#- ML.EVALUATE of the model, on its evaluation rows (source none) or on a relation or query. -#}
{% macro evaluate(model, source=none, threshold=none) %}
    ML.EVALUATE(MODEL {{ sqlml.model_name(model) }}
    {%- if source is not none %}, ({{ sqlml.source_query(source) }}){% endif %}
    {%- if threshold is not none %}, STRUCT({{ threshold }} AS threshold){% endif %})
{% endmacro %}

{#- A relation as a query; a query (text) as it is. -#}
{% macro source_query(source) %}
    {%- if source is string and ' ' in source | trim -%}
        {{ return(source) }}
    {%- else -%}
        {{ return('SELECT * FROM ' ~ source) }}
    {%- endif -%}
{% endmacro %}
