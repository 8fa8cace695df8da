{#- raw.customers, if it is not there: 5,000 customers whose churn is likelier for a short
    tenure, a high spend and the basic plan; every tenth is new (its churn not known yet: NULL).
    The "coin" is arithmetic on the id, so the rows
    (and every number trained from them) are the same on every engine and every run. -#}
{% macro create_raw_customers() %}
    {%- set raw = adapter.get_relation(database=target.database, schema='raw', identifier='customers') -%}
    {%- if raw is none -%}
        {% do adapter.create_schema(api.Relation.create(database=target.database, schema='raw')) %}
        {% call statement('raw_customers') %}
            CREATE TABLE raw.customers AS
            SELECT i AS id, tenure, monthly_spend, plan,
                   CASE WHEN i % 10 <> 0 THEN
                       (i * 7919 % 1000) / 1000.0
                       < 1 / (1 + exp(-(1.5 - 0.08 * tenure + 0.02 * monthly_spend
                                        + CASE plan WHEN 'basic' THEN 1.0 ELSE -0.5 END)))
                   END AS churned
            FROM (
                SELECT i,
                       i * 37 % 72 AS tenure,
                       CAST(20 + i * 53 % 100 AS DOUBLE PRECISION) AS monthly_spend,
                       CASE i * 13 % 3 WHEN 0 THEN 'basic' WHEN 1 THEN 'plus' ELSE 'premium' END AS plan
                FROM generate_series(1, 5000) AS g(i)
            ) AS c
        {% endcall %}
        {% do adapter.commit() %}
    {%- endif -%}
{% endmacro %}
