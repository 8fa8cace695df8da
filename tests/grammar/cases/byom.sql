-- Golden cases for importing and exporting ONNX models (BYOM): BigQuery's INPUT/OUTPUT clauses of
-- CREATE MODEL ... model_type = 'onnx', and EXPORT MODEL.

-- case: input_and_output_clauses
CREATE OR REPLACE MODEL shop.imported
  INPUT (tenure FLOAT64, plan STRING)
  OUTPUT (label INT64, probabilities ARRAY < FLOAT64 >)
  OPTIONS (model_type = 'onnx', model_path = 'file:///models/churn.onnx')
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "imported"},
  "options": {"model_type": "onnx", "model_path": "file:///models/churn.onnx"},
  "query": null,
  "replace": true,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null,
  "input_columns": [["tenure", "FLOAT64"], ["plan", "STRING"]],
  "output_columns": [["label", "INT64"], ["probabilities", "ARRAY<FLOAT64>"]]
}

-- case: input_only
CREATE MODEL m INPUT (x INT64) OPTIONS (model_type = 'ONNX', model_path = 'm.onnx')
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "ONNX", "model_path": "m.onnx"},
  "query": null,
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null,
  "input_columns": [["x", "INT64"]]
}

-- case: input_column_twice
CREATE MODEL m INPUT (x INT64, X FLOAT64) OPTIONS (model_type = 'onnx', model_path = 'm.onnx')
-- expected: error 22023

-- case: input_with_a_query
CREATE MODEL m INPUT (x INT64) OPTIONS (model_type = 'linear_reg') AS SELECT 1 AS x
-- expected: error 0A000

-- case: input_without_columns
CREATE MODEL m INPUT () OPTIONS (model_type = 'onnx', model_path = 'm.onnx')
-- expected: error 42601 at 23

-- case: input_column_without_type
CREATE MODEL m INPUT (x) OPTIONS (model_type = 'onnx', model_path = 'm.onnx')
-- expected: error 42601 at 24

-- case: export_model
EXPORT MODEL shop.churn OPTIONS (uri = 'file:///tmp/churn')
-- expected:
{
  "type": "ExportModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "options": {"uri": "file:///tmp/churn"}
}

-- case: export_model_backticked
EXPORT MODEL `shop.churn` OPTIONS (URI = '/tmp/churn')
-- expected:
{
  "type": "ExportModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "options": {"uri": "/tmp/churn"}
}
