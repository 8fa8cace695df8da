-- The sqlml demo: make a customer table, train a churn model, evaluate it, score new customers.
-- Run it with:  sqlml run --database demo.duckdb examples/demo.sql
CREATE SCHEMA IF NOT EXISTS shop;

CREATE OR REPLACE TABLE shop.customers AS
SELECT
    i AS id,
    tenure,
    monthly_spend,
    plan,
    -- churn is likelier for short tenure, high spend and the basic plan; the coin is a hash
    -- of the id, not random(), so the data and every number below are the same on each run
    ((hash(i * 31 + 17) % 1000000) / 1000000.0
        < 1 / (1 + exp(-(1.5 - 0.08 * tenure + 0.02 * monthly_spend
                         + CASE plan WHEN 'basic' THEN 1.0 ELSE -0.5 END)))) AS churned
FROM (
    SELECT
        i,
        (hash(i) % 72)::INTEGER AS tenure,
        20 + (hash(i * 7) % 100)::DOUBLE AS monthly_spend,
        CASE hash(i * 13) % 3 WHEN 0 THEN 'basic' WHEN 1 THEN 'plus' ELSE 'premium' END AS plan
    FROM range(5000) t(i)
);

CREATE OR REPLACE TABLE shop.new_customers AS
SELECT * EXCLUDE (churned) FROM shop.customers WHERE id % 50 = 0;

CREATE OR REPLACE MODEL shop.churn
  OPTIONS (model_type = 'logistic_reg', input_label_cols = ['churned'])
AS SELECT tenure, monthly_spend, plan, churned FROM shop.customers;

SELECT * FROM ML.EVALUATE(MODEL shop.churn);

SELECT id, tenure, plan, predicted_churned, predicted_churned_probs
FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM shop.new_customers))
ORDER BY id
LIMIT 10;

-- ML.SCORE scores inside any expression: here the customers most likely to churn.
SELECT id, tenure, plan, round(ML.SCORE(MODEL shop.churn), 3) AS churn_probability
FROM shop.new_customers
WHERE ML.SCORE(MODEL shop.churn) > 0.8
ORDER BY churn_probability DESC
LIMIT 5;

CREATE OR REPLACE MODEL shop.segments
  OPTIONS (model_type = 'kmeans', num_clusters = 3)
AS SELECT tenure, monthly_spend FROM shop.customers;

SELECT centroid_id, count(*) AS customers, round(avg(tenure), 1) AS avg_tenure
FROM ML.PREDICT(MODEL shop.segments, TABLE shop.customers)
GROUP BY centroid_id ORDER BY centroid_id;

SHOW MODELS;

DROP MODEL shop.segments;
