-- Golden cases for CREATE MODEL (TRANSFORM has its own file). Each case is its input SQL followed
-- by the typed statement it must parse into, as JSON (python tests/grammar/test_grammar.py --update
-- rewrites the JSON from the current grammar: review the diff).

-- case: bigquery_tutorial
CREATE MODEL shop.churn
  OPTIONS (model_type = 'logistic_reg', input_label_cols = ['churned'])
AS SELECT tenure, plan, churned FROM shop.customers
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "options": {"model_type": "logistic_reg", "input_label_cols": ["churned"]},
  "query": {"type": "Query", "sql": "SELECT tenure, plan, churned FROM shop.customers"},
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: or_replace_backticked_name_parenthesized_query
CREATE OR REPLACE MODEL `shop.churn`
OPTIONS(MODEL_TYPE='linear_reg', INPUT_LABEL_COLS=['value'])
AS (
  SELECT tenure, spend, value
  FROM shop.customers
  WHERE tenure > 0
)
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "options": {"model_type": "linear_reg", "input_label_cols": ["value"]},
  "query": {
    "type": "Query",
    "sql": "SELECT tenure, spend, value\n  FROM shop.customers\n  WHERE tenure > 0"
  },
  "replace": true,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: if_not_exists_with_quoted_names_and_cte
CREATE MODEL IF NOT EXISTS Shop."Churn"
  OPTIONS (model_type = 'kmeans', num_clusters = 4)
AS WITH recent AS (SELECT * FROM shop.customers WHERE tenure < 12)
SELECT tenure, spend FROM recent
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "Churn"},
  "options": {"model_type": "kmeans", "num_clusters": 4},
  "query": {
    "type": "Query",
    "sql": "WITH recent AS (SELECT * FROM shop.customers WHERE tenure < 12)\nSELECT tenure, spend FROM recent"
  },
  "replace": false,
  "if_not_exists": true,
  "transform": null,
  "transform_sql": null
}

-- case: lower_case_keywords_and_unqualified_name
create or replace model churn options (model_type = 'logistic_reg') as select 1 as x, true as y
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "options": {"model_type": "logistic_reg"},
  "query": {"type": "Query", "sql": "select 1 as x, true as y"},
  "replace": true,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: every_kind_of_option_value
CREATE MODEL m OPTIONS (
  model_type = 'boosted_tree_classifier',
  max_iterations = 50,
  learn_rate = 0.1,
  min_rel_progress = .005,
  l1_reg = 1e-3,
  l2_reg = -0.5,
  early_stop = TRUE,
  warm_start = false,
  data_split_col = NULL,
  input_label_cols = ['churned'],
  hidden_units = [128, 64, 32],
  mixed = [1, 2.5, -3],
  empty = [],
  pair = STRUCT('a', 0.2),
  class_weights = [STRUCT('yes', .2), STRUCT('no', .8)],
  named = STRUCT(1 AS a, 'b' AS b),
  booster_type = "gbtree"
) AS SELECT * FROM t
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {
    "model_type": "boosted_tree_classifier",
    "max_iterations": 50,
    "learn_rate": 0.1,
    "min_rel_progress": 0.005,
    "l1_reg": 0.001,
    "l2_reg": -0.5,
    "early_stop": true,
    "warm_start": false,
    "data_split_col": null,
    "input_label_cols": ["churned"],
    "hidden_units": [128, 64, 32],
    "mixed": [1, 2.5, -3],
    "empty": [],
    "pair": ["a", 0.2],
    "class_weights": [["yes", 0.2], ["no", 0.8]],
    "named": [1, "b"],
    "booster_type": "gbtree"
  },
  "query": {"type": "Query", "sql": "SELECT * FROM t"},
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: onnx_import_has_no_query
CREATE OR REPLACE MODEL shop.imported
  OPTIONS (model_type = 'onnx', model_path = '/models/churn.onnx')
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "imported"},
  "options": {"model_type": "onnx", "model_path": "/models/churn.onnx"},
  "query": null,
  "replace": true,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: comments_around_the_query_are_not_part_of_it
CREATE MODEL m /* the model */ OPTIONS (model_type = 'linear_reg') AS -- training rows
  (SELECT 1 AS a) UNION ALL (SELECT 2 AS a) -- trailing comment
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "(SELECT 1 AS a) UNION ALL (SELECT 2 AS a)"},
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: duckdb_from_first_query
-- dialects: duckdb
CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS FROM shop.customers SELECT tenure, value
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "FROM shop.customers SELECT tenure, value"},
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: duckdb_values_query
-- dialects: duckdb
CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS VALUES (1, 2.0), (2, 4.1)
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {"type": "Query", "sql": "VALUES (1, 2.0), (2, 4.1)"},
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: postgres_casts_and_dollar_quotes_stay_as_written
-- dialects: postgres
CREATE MODEL m OPTIONS (model_type = 'linear_reg')
AS SELECT x::float8 AS x, $$a;b$$ AS tag, y FROM t WHERE note <> E'it\'s'
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "options": {"model_type": "linear_reg"},
  "query": {
    "type": "Query",
    "sql": "SELECT x::float8 AS x, $$a;b$$ AS tag, y FROM t WHERE note <> E'it\\'s'"
  },
  "replace": false,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}

-- case: backtick_paths_in_the_training_query
CREATE OR REPLACE MODEL `bqml_tutorial.penguins_model`
OPTIONS (model_type='linear_reg', input_label_cols=['body_mass_g']) AS
SELECT * FROM `bigquery-public-data.ml_datasets.penguins` JOIN `ds.Extra` USING (id)
-- expected:
{
  "type": "CreateModel",
  "model": {"type": "ModelRef", "schema": "bqml_tutorial", "name": "penguins_model"},
  "options": {"model_type": "linear_reg", "input_label_cols": ["body_mass_g"]},
  "query": {
    "type": "Query",
    "sql": "SELECT * FROM \"bigquery-public-data\".\"ml_datasets\".\"penguins\" JOIN \"ds\".\"Extra\" USING (id)"
  },
  "replace": true,
  "if_not_exists": false,
  "transform": null,
  "transform_sql": null
}
