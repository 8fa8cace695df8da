-- Golden cases for queries with ML calls: the typed calls, and the template with a slot
-- SQLML_CALL(i) where call i stood (printed by the sqlml dialect of the case).

-- case: predict_query_as_in_bigquery
SELECT id, predicted_churned, predicted_churned_probs
FROM ML.PREDICT(MODEL shop.churn, (SELECT * FROM shop.new_customers WHERE tenure > 3))
ORDER BY id
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT id, predicted_churned, predicted_churned_probs FROM SQLML_CALL(0) ORDER BY id",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": {"type": "Query", "sql": "SELECT * FROM shop.new_customers WHERE tenure > 3"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: predict_table_with_threshold_and_settings
SELECT * FROM ML.PREDICT(MODEL `shop.churn`, TABLE Shop."New Customers",
                         STRUCT(0.7 AS threshold, 'compiled' AS Scoring))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"shop\".\"New Customers\""},
      "threshold": 0.7,
      "settings": {"scoring": "compiled"}
    }
  ]
}

-- case: predict_alias_is_kept_in_the_template
SELECT p.id, p.predicted_value FROM ML.PREDICT(MODEL m, TABLE t) AS p WHERE p.id < 10
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT p.id, p.predicted_value FROM SQLML_CALL(0) AS p WHERE p.id < 10",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: predict_input_with_cte_union_and_comments
SELECT * FROM ML.PREDICT(
  MODEL m,
  ( -- rows to score
    WITH a AS (SELECT 1 AS x) SELECT x FROM a UNION ALL SELECT 2 /* two */ )
)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "WITH a AS (SELECT 1 AS x) SELECT x FROM a UNION ALL SELECT 2"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: evaluate_forms
SELECT * FROM ML.EVALUATE(MODEL m)
CROSS JOIN ML.EVALUATE(MODEL m, TABLE shop.customers) AS b
CROSS JOIN ML.EVALUATE(MODEL m, (SELECT * FROM shop.customers), STRUCT(0.55 AS threshold)) c
CROSS JOIN ML.EVALUATE(MODEL m, STRUCT(0.6 AS threshold))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0) CROSS JOIN SQLML_CALL(1) AS b CROSS JOIN SQLML_CALL(2) AS c CROSS JOIN SQLML_CALL(3)",
  "calls": [
    {
      "type": "Evaluate",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": null,
      "threshold": null,
      "settings": {}
    },
    {
      "type": "Evaluate",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"shop\".\"customers\""},
      "threshold": null,
      "settings": {}
    },
    {
      "type": "Evaluate",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM shop.customers"},
      "threshold": 0.55,
      "settings": {}
    },
    {
      "type": "Evaluate",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": null,
      "threshold": 0.6,
      "settings": {}
    }
  ]
}

-- case: score_everywhere
SELECT n.id, ML.SCORE(MODEL shop.churn, n), ML.SCORE(MODEL shop.churn) > 0.5 AS risky
FROM shop.new_customers n JOIN shop.customers c ON c.id = n.id AND ML.SCORE(MODEL shop.churn, C) > 0.1
WHERE ML.SCORE(MODEL shop.churn) > 0.8
GROUP BY n.id, risky
ORDER BY ML.SCORE(MODEL shop.churn) DESC
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT n.id, SQLML_CALL(0) AS \"score\", SQLML_CALL(1) > 0.5 AS risky FROM shop.new_customers AS n JOIN shop.customers AS c ON c.id = n.id AND SQLML_CALL(2) > 0.1 WHERE SQLML_CALL(3) > 0.8 GROUP BY n.id, risky ORDER BY SQLML_CALL(4) DESC",
  "calls": [
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "qualifier": "n"
    },
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "qualifier": null
    },
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "qualifier": "c"
    },
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "qualifier": null
    },
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "qualifier": null
    }
  ]
}

-- case: score_inside_functions
SELECT round(ML.SCORE(MODEL m), 3) AS p, count(*) FROM t GROUP BY 1
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT ROUND(SQLML_CALL(0), 3) AS p, COUNT(*) FROM t GROUP BY 1",
  "calls": [
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "qualifier": null
    }
  ]
}

-- case: predict_joined_with_a_table
SELECT t.id, p.predicted_label FROM t JOIN ML.PREDICT(MODEL m, TABLE t) p ON p.id = t.id
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT t.id, p.predicted_label FROM t JOIN SQLML_CALL(0) AS p ON p.id = t.id",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: insert_select
INSERT INTO scored SELECT id, predicted_label FROM ML.PREDICT(MODEL m, TABLE t)
-- expected:
{
  "type": "MLQuery",
  "template": "INSERT INTO scored SELECT id, predicted_label FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: create_table_as_select
CREATE TABLE scored AS SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM t))
-- expected:
{
  "type": "MLQuery",
  "template": "CREATE TABLE scored AS SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM t"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: predict_in_cte_and_subquery
WITH scored AS (SELECT * FROM ML.PREDICT(MODEL m, TABLE t))
SELECT count(*) FROM (SELECT * FROM scored) s WHERE s.id IN (SELECT id FROM ML.PREDICT(MODEL n, TABLE u))
-- expected:
{
  "type": "MLQuery",
  "template": "WITH scored AS (SELECT * FROM SQLML_CALL(0)) SELECT COUNT(*) FROM (SELECT * FROM scored) AS s WHERE s.id IN (SELECT id FROM SQLML_CALL(1))",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    },
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "n"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"u\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: lower_case_and_spaces
select * from ml . predict ( model m , table t )
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: postgres_syntax_in_the_input_is_kept
-- dialects: postgres
SELECT * FROM ML.PREDICT(MODEL m, (SELECT x::float8, $$a;b$$ AS s FROM t WHERE y ~ 'z'))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "SELECT x::float8, $$a;b$$ AS s FROM t WHERE y ~ 'z'"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: duckdb_from_first_input
-- dialects: duckdb
SELECT * FROM ML.PREDICT(MODEL m, (FROM t SELECT x))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "FROM t SELECT x"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: backtick_paths_split_in_inputs_and_around_the_call
SELECT p.id FROM ML.PREDICT(MODEL `bqml.m`, (SELECT * FROM `ml_datasets.penguins` WHERE note = '`a.b`'))
AS p JOIN `proj.ds.Other` AS o ON o.id = p.id
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT p.id FROM SQLML_CALL(0) AS p JOIN \"proj\".\"ds\".\"Other\" AS o ON o.id = p.id",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": "bqml", "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"ml_datasets\".\"penguins\" WHERE note = '`a.b`'"},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: backtick_three_part_table_argument
SELECT * FROM ML.EVALUATE(MODEL `bqml.m`, TABLE `bigquery-public-data.ml_datasets.penguins`)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Evaluate",
      "model": {"type": "ModelRef", "schema": "bqml", "name": "m"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"bigquery-public-data\".\"ml_datasets\".\"penguins\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: input_reads_a_cte_of_the_query_around_the_call
WITH s AS (SELECT * FROM t) SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM s WHERE x > 1))
-- expected:
{
  "type": "MLQuery",
  "template": "WITH s AS (SELECT * FROM t) SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": null, "name": "m"},
      "input": {"type": "Query", "sql": "WITH s AS (SELECT * FROM t) SELECT * FROM (SELECT * FROM s WHERE x > 1) AS \"__sqlml_input_with\""},
      "threshold": null,
      "settings": {}
    }
  ]
}
