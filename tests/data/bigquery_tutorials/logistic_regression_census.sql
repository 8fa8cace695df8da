-- BigQuery ML tutorial "Build and use a classification model on census data" (binary logistic
-- regression): https://cloud.google.com/bigquery/docs/logistic-regression-prediction
-- The statements below are the tutorial's SQL as published (the revision with the census dataset
-- and the input_view view, as reproduced in public notes of the tutorial), unchanged; its
-- ML.EXPLAIN_PREDICT and ML.GLOBAL_EXPLAIN steps are left out (sqlml does not have those
-- functions yet). Run in BigQuery mode (tests/test_bigquery_mode.py) on a table built with the
-- columns of bigquery-public-data.ml_datasets.census_adult_income.

CREATE OR REPLACE VIEW
  `census.input_view` AS
SELECT
  age,
  workclass,
  marital_status,
  education_num,
  occupation,
  hours_per_week,
  income_bracket,
  CASE
    WHEN MOD(functional_weight, 10) < 8 THEN 'training'
    WHEN MOD(functional_weight, 10) = 8 THEN 'evaluation'
    WHEN MOD(functional_weight, 10) = 9 THEN 'prediction'
  END AS dataframe
FROM
  `bigquery-public-data.ml_datasets.census_adult_income`;

CREATE OR REPLACE MODEL
  `census.census_model`
OPTIONS
  ( model_type='LOGISTIC_REG',
    auto_class_weights=TRUE,
    input_label_cols=['income_bracket']
  ) AS
SELECT
  * EXCEPT(dataframe)
FROM
  `census.input_view`
WHERE
  dataframe = 'training';

SELECT
  *
FROM
  ML.EVALUATE (MODEL `census.census_model`,
    (
    SELECT
      *
    FROM
      `census.input_view`
    WHERE
      dataframe = 'evaluation'
    )
  )
  ;

SELECT
  *
FROM
  ML.PREDICT (MODEL `census.census_model`,
    (
    SELECT
      *
    FROM
      `census.input_view`
    WHERE
      dataframe = 'prediction'
     )
  )
;
