-- BigQuery ML tutorial "Use BigQuery ML to predict penguin weight" (linear regression):
-- https://cloud.google.com/bigquery/docs/linear-regression-tutorial
-- The statements below are the tutorial's SQL as published (an earlier revision of the page, as
-- reproduced in public lab notes), unchanged; its ML.EXPLAIN_PREDICT and ML.GLOBAL_EXPLAIN steps
-- are left out (sqlml does not have those functions yet). Run in BigQuery mode
-- (tests/test_bigquery_mode.py) on a table built with the columns of
-- bigquery-public-data.ml_datasets.penguins.

#standardSQL
CREATE OR REPLACE MODEL `bqml_tutorial.penguins_model`
OPTIONS
  (model_type='linear_reg',
    input_label_cols=['body_mass_g']) AS
SELECT
  *
FROM
  `bigquery-public-data.ml_datasets.penguins`
WHERE
  body_mass_g IS NOT NULL;

#standardSQL
SELECT
  *
FROM
  ML.EVALUATE(MODEL `bqml_tutorial.penguins_model`,
    (
    SELECT
      *
    FROM
      `bigquery-public-data.ml_datasets.penguins`
    WHERE
      body_mass_g IS NOT NULL));

#standardSQL
  SELECT
    *
  FROM
    ML.PREDICT(MODEL `bqml_tutorial.penguins_model`,
      (
      SELECT
        *
      FROM
        `bigquery-public-data.ml_datasets.penguins`
      WHERE
        body_mass_g IS NOT NULL
        AND island = "Biscoe"));
