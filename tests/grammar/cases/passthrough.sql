-- Statements that mention models but are not ML: they pass through untouched.

-- case: column_named_model
SELECT model, count(*) FROM cars GROUP BY model
-- expected:
{"type": "Passthrough", "sql": "SELECT model, count(*) FROM cars GROUP BY model"}

-- case: table_named_models
SELECT * FROM models
-- expected:
{"type": "Passthrough", "sql": "SELECT * FROM models"}

-- case: ml_call_in_a_string
SELECT 'ML.PREDICT(MODEL m, TABLE t)' AS text
-- expected:
{"type": "Passthrough", "sql": "SELECT 'ML.PREDICT(MODEL m, TABLE t)' AS text"}

-- case: ml_call_in_a_comment
SELECT 1 -- ML.PREDICT(MODEL m, TABLE t)
-- expected:
{"type": "Passthrough", "sql": "SELECT 1 -- ML.PREDICT(MODEL m, TABLE t)"}

-- case: ml_as_a_table_alias
SELECT ml.model FROM t AS ml
-- expected:
{"type": "Passthrough", "sql": "SELECT ml.model FROM t AS ml"}

-- case: create_table_named_model
CREATE TABLE model (id INT, name TEXT)
-- expected:
{"type": "Passthrough", "sql": "CREATE TABLE model (id INT, name TEXT)"}

-- case: no_model_word_at_all
SELECT 1
-- expected:
{"type": "Passthrough", "sql": "SELECT 1"}
