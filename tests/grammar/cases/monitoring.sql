-- Golden cases for the data monitoring functions (docs/sql.md, "Data monitoring"):
-- ML.DESCRIBE_DATA and ML.VALIDATE_DATA_DRIFT take no model, ML.VALIDATE_DATA_SKEW one.

-- case: describe_data_table
SELECT * FROM ML.DESCRIBE_DATA(TABLE shop.customers)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverData",
      "function": "DESCRIBE_DATA",
      "model": null,
      "inputs": [{"type": "Query", "sql": "SELECT * FROM \"shop\".\"customers\""}],
      "settings": {}
    }
  ]
}

-- case: describe_data_query_struct
SELECT name, quantiles FROM ML.DESCRIBE_DATA((SELECT a, b FROM t), STRUCT(4 AS num_quantiles, 2 AS top_k))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT name, quantiles FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverData",
      "function": "DESCRIBE_DATA",
      "model": null,
      "inputs": [{"type": "Query", "sql": "SELECT a, b FROM t"}],
      "settings": {"num_quantiles": 4, "top_k": 2}
    }
  ]
}

-- case: validate_skew_version_thresholds
SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL shop.churn VERSION 2, TABLE t, STRUCT(0.2 AS numerical_default_threshold, [STRUCT('tenure' AS name, 0.5 AS threshold)] AS thresholds))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverData",
      "function": "VALIDATE_DATA_SKEW",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn", "version": 2},
      "inputs": [{"type": "Query", "sql": "SELECT * FROM \"t\""}],
      "settings": {"numerical_default_threshold": 0.2, "thresholds": [["tenure", 0.5]]}
    }
  ]
}

-- case: validate_drift_two_inputs
SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE base, (SELECT * FROM study WHERE day = 2), STRUCT(5 AS num_histogram_buckets))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverData",
      "function": "VALIDATE_DATA_DRIFT",
      "model": null,
      "inputs": [
        {"type": "Query", "sql": "SELECT * FROM \"base\""},
        {"type": "Query", "sql": "SELECT * FROM study WHERE day = 2"}
      ],
      "settings": {"num_histogram_buckets": 5}
    }
  ]
}

-- case: describe_data_takes_no_model
SELECT * FROM ML.DESCRIBE_DATA(MODEL m, TABLE t)
-- expected: error 42601 at 15

-- case: validate_skew_needs_a_model
SELECT * FROM ML.VALIDATE_DATA_SKEW(TABLE t)
-- expected: error 42601 at 15

-- case: validate_drift_needs_two_inputs
SELECT * FROM ML.VALIDATE_DATA_DRIFT(TABLE t, STRUCT(0.1 AS numerical_default_threshold))
-- expected: error 42601 at 15

-- case: describe_data_unknown_field
SELECT * FROM ML.DESCRIBE_DATA(TABLE t, STRUCT(3 AS num_quantile))
-- expected: error 22023

-- case: validate_skew_pending_field
SELECT * FROM ML.VALIDATE_DATA_SKEW(MODEL m, TABLE t, STRUCT(true AS enable_visualization_link))
-- expected: error 0A000
