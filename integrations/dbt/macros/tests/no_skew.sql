{#- A generic test on a sqlml_model node: fails (a row per skewed column) when the rows of
    ``relation`` drift from the statistics the serving version was trained on, as
    ML.VALIDATE_DATA_SKEW judges them (threshold: both default thresholds; BigQuery's 0.3).
      models: - name: churn_model
                data_tests: - sqlml.no_skew: {arguments: {relation: ref('new_customers')}} -#}
{% test no_skew(model, relation, threshold=none) %}
    {%- set call -%}
        ML.VALIDATE_DATA_SKEW(MODEL {{ sqlml.model_name(model) }}, ({{ sqlml.source_query(relation) }})
        {%- if threshold is not none %}, STRUCT({{ threshold }} AS categorical_default_threshold,
            {{ threshold }} AS numerical_default_threshold){% endif %})
    {%- endset -%}
    {%- if sqlml.on_extension() -%}
        SELECT e ->> 'input' AS input, e ->> 'metric' AS metric,
               (e ->> 'value')::double precision AS value
        FROM sqlml.ml({{ sqlml.text_literal('SELECT * FROM ' ~ call) }}) AS e
        WHERE (e ->> 'is_anomaly')::boolean
    {%- else -%}
        SELECT input, metric, value FROM {{ call }} WHERE is_anomaly
    {%- endif -%}
{% endtest %}
