{#- A generic test on a sqlml_model node: fails (one row) when ML.EVALUATE's metric is below
    value, or is NULL.
      models: - name: churn_model
                data_tests: - sqlml.metric_at_least: {arguments: {metric: roc_auc, value: 0.8}} -#}
{% test metric_at_least(model, metric, value, source=none) %}
    SELECT {{ adapter.quote(metric) }} AS metric_value
    FROM {{ sqlml.evaluate(model, source, metrics=[metric]) }}
    WHERE {{ adapter.quote(metric) }} IS NULL OR {{ adapter.quote(metric) }} < {{ value }}
{% endtest %}
