-- Every error a statement can cause: its SQLSTATE and, for syntax errors, the 1-based position
-- of the offending token (as PostgreSQL reports it).

-- case: option_without_value
CREATE MODEL m OPTIONS (model_type = ) AS SELECT 1
-- expected: error 42601 at 38

-- case: options_not_closed
CREATE MODEL shop.x OPTIONS (model_type='logistic_reg' AS SELECT 1
-- expected: error 42601 at 56

-- case: option_without_equals
CREATE MODEL m OPTIONS (model_type 'x') AS SELECT 1
-- expected: error 42601 at 36

-- case: missing_query_after_as
CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS
-- expected: error 42601 at 54

-- case: empty_parenthesized_query
CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS ()
-- expected: error 42601 at 56

-- case: missing_as_query
CREATE MODEL m OPTIONS (model_type = 'linear_reg')
-- expected: error 42601 at 51

-- case: onnx_import_with_query
CREATE MODEL m OPTIONS (model_type = 'onnx', model_path = 'm.onnx') AS SELECT 1
-- expected: error 22023

-- case: or_replace_and_if_not_exists
CREATE OR REPLACE MODEL IF NOT EXISTS m OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 25

-- case: four_part_model_name
CREATE MODEL org.project.shop.m OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 14

-- case: missing_model_name
DROP MODEL
-- expected: error 42601 at 11

-- case: drop_model_trailing_garbage
DROP MODEL m CASCADE
-- expected: error 42601 at 14

-- case: duplicate_option
CREATE MODEL m OPTIONS (l2_reg = 1, L2_REG = 2) AS SELECT 1
-- expected: error 22023

-- case: column_as_option_value
CREATE MODEL m OPTIONS (model_type = linear_reg) AS SELECT 1
-- expected: error 22023

-- case: expression_as_option_value
CREATE MODEL m OPTIONS (max_iterations = 1 + 2) AS SELECT 1
-- expected: error 22023

-- case: transform_expression_without_alias
CREATE MODEL m TRANSFORM (x * 2) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_ml_function_without_alias
CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(x) OVER ()) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_empty
CREATE MODEL m TRANSFORM () OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_star
CREATE MODEL m TRANSFORM (* EXCEPT (id)) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_duplicate_alias
CREATE MODEL m TRANSFORM (x AS a, y AS A) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_unknown_function
CREATE MODEL m TRANSFORM (my_udf(x) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_modulo
CREATE MODEL m TRANSFORM (x % 7 AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_string_function_onnx_cannot_compute
CREATE MODEL m TRANSFORM (TRIM(s) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_substr
CREATE MODEL m TRANSFORM (SUBSTR(s, 1, 2) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_extract_not_a_number
CREATE MODEL m TRANSFORM (EXTRACT(DATE FROM ts) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_extract_engine_part
CREATE MODEL m TRANSFORM (EXTRACT(EPOCH FROM ts) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_extract_at_time_zone
CREATE MODEL m TRANSFORM (EXTRACT(HOUR FROM ts AT TIME ZONE 'UTC') AS y)
OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_extract_of_an_expression
CREATE MODEL m TRANSFORM (EXTRACT(DAY FROM d + 1) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_string_literal
CREATE MODEL m TRANSFORM ('a' AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_qualified_column
CREATE MODEL m TRANSFORM (t.x AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_round_with_decimals
CREATE MODEL m TRANSFORM (ROUND(x, 2) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_cast_to_text
CREATE MODEL m TRANSFORM (CAST(x AS TEXT) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_hash_bucketize_negative_size
CREATE MODEL m TRANSFORM (ML.HASH_BUCKETIZE(x, -4) AS q) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_robust_scaler_bad_range
CREATE MODEL m TRANSFORM (ML.ROBUST_SCALER(x, [80, 20]) OVER () AS r) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_feature_cross_unnamed_field
CREATE MODEL m TRANSFORM (ML.FEATURE_CROSS(STRUCT(a, b || 'x')) AS ab) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_scaler_inside_arithmetic
CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(x) OVER () * 2 AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_scaler_without_over
CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(x) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_scaler_with_partition
CREATE MODEL m TRANSFORM (ML.MIN_MAX_SCALER(x) OVER (PARTITION BY g) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_bucketize_with_over
CREATE MODEL m TRANSFORM (ML.BUCKETIZE(x, [1, 2]) OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_imputer_bad_strategy
CREATE MODEL m TRANSFORM (ML.IMPUTER(x, 'average') OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_imputer_without_strategy
CREATE MODEL m TRANSFORM (ML.IMPUTER(x) OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_scaler_extra_argument
CREATE MODEL m TRANSFORM (ML.STANDARD_SCALER(x, 1) OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_one_hot_bad_drop
CREATE MODEL m TRANSFORM (ML.ONE_HOT_ENCODER(p, 'first') OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_one_hot_bad_top_k
CREATE MODEL m TRANSFORM (ML.ONE_HOT_ENCODER(p, 'none', 0) OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_one_hot_column_argument
CREATE MODEL m TRANSFORM (ML.ONE_HOT_ENCODER(p, q) OVER () AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_bucketize_unsorted
CREATE MODEL m TRANSFORM (ML.BUCKETIZE(x, [3, 1]) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_bucketize_not_an_array
CREATE MODEL m TRANSFORM (ML.BUCKETIZE(x, 3) AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_bucketize_bad_exclude
CREATE MODEL m TRANSFORM (ML.BUCKETIZE(x, [1], 'yes') AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_bucketize_other_output_format
CREATE MODEL m TRANSFORM (ML.BUCKETIZE(x, [1], FALSE, 'bucket_ranges') AS y) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: predict_without_model_keyword
SELECT * FROM ML.PREDICT(shop.churn, TABLE t)
-- expected: error 42601 at 26

-- case: predict_without_input
SELECT * FROM ML.PREDICT(MODEL m)
-- expected: error 42601 at 33

-- case: predict_with_a_column_as_input
SELECT * FROM ML.PREDICT(MODEL m, t)
-- expected: error 42601 at 35

-- case: predict_with_extra_argument
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(0.5 AS threshold), 1)
-- expected: error 42601 at 70

-- case: predict_not_closed
SELECT * FROM ML.PREDICT(MODEL m, TABLE t
-- expected: error 42601 at 42

-- case: predict_in_select_list
SELECT ML.PREDICT(MODEL m, TABLE t)
-- expected: error 42601 at 8

-- case: predict_threshold_out_of_range
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(1.5 AS threshold))
-- expected: error 22023

-- case: predict_threshold_not_a_number
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT('high' AS threshold))
-- expected: error 22023

-- case: predict_struct_field_without_name
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(0.5))
-- expected: error 42601 at 44

-- case: predict_struct_field_twice
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(0.5 AS threshold, 0.6 AS Threshold))
-- expected: error 22023

-- case: predict_struct_field_unknown
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(0.5 AS treshold))
-- expected: error 22023

-- case: evaluate_struct_field_unknown
SELECT * FROM ML.EVALUATE(MODEL m, STRUCT(0.5 AS scoring))
-- expected: error 22023

-- case: predict_struct_field_not_supported_yet
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(TRUE AS keep_original_columns))
-- expected: error 0A000

-- case: predict_struct_value_not_literal
SELECT * FROM ML.PREDICT(MODEL m, TABLE t, STRUCT(x AS threshold))
-- expected: error 22023

-- case: predict_with_tablesample
SELECT * FROM ML.PREDICT(MODEL m, TABLE t) TABLESAMPLE 10 PERCENT
-- expected: error 0A000

-- case: nested_ml_calls
SELECT * FROM ML.PREDICT(MODEL m, (SELECT * FROM ML.PREDICT(MODEL n, TABLE t)))
-- expected: error 0A000

-- case: evaluate_in_where
SELECT 1 WHERE ML.EVALUATE(MODEL m) IS NULL
-- expected: error 42601 at 16

-- case: evaluate_with_two_inputs
SELECT * FROM ML.EVALUATE(MODEL m, TABLE t, TABLE u)
-- expected: error 42601 at 45

-- case: score_as_a_table
SELECT * FROM ML.SCORE(MODEL m)
-- expected: error 42601 at 15

-- case: score_without_model
SELECT ML.SCORE(m) FROM t
-- expected: error 42601 at 17

-- case: score_with_expression_qualifier
SELECT ML.SCORE(MODEL m, t.x) FROM t
-- expected: error 42601 at 26

-- case: score_with_over
SELECT ML.SCORE(MODEL m) OVER () FROM t
-- expected: error 42601 at 8

-- case: unknown_ml_table_function
SELECT * FROM ML.FORECAST(MODEL m)
-- expected: error 0A000

-- case: detect_anomalies_needs_rows
SELECT * FROM ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamination))
-- expected: error 42601 at 15

-- case: detect_anomalies_contamination_out_of_range
SELECT * FROM ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.6 AS contamination), TABLE t)
-- expected: error 22023

-- case: detect_anomalies_struct_field_typo
SELECT * FROM ML.DETECT_ANOMALIES(MODEL m, STRUCT(0.1 AS contamnation), TABLE t)
-- expected: error 22023

-- case: reconstruction_loss_needs_rows
SELECT * FROM ML.RECONSTRUCTION_LOSS(MODEL shop.churn)
-- expected: error 42601 at 15

-- case: weights_struct_field_typo
SELECT * FROM ML.WEIGHTS(MODEL m, STRUCT(TRUE AS standardise))
-- expected: error 22023

-- case: weights_struct_field_of_the_wrong_type
SELECT * FROM ML.WEIGHTS(MODEL m, STRUCT('yes' AS standardize))
-- expected: error 22023

-- case: feature_info_takes_no_rows
SELECT * FROM ML.FEATURE_INFO(MODEL m, TABLE t)
-- expected: error 42601 at 15

-- case: transform_function_outside_transform
SELECT ML.STANDARD_SCALER(x) OVER () FROM t
-- expected: error 0A000

-- case: alter_model_not_yet
ALTER MODEL m RENAME TO n2
-- expected: error 0A000

-- case: create_temp_model_not_yet
CREATE TEMP MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: unterminated_string
SELECT * FROM ML.PREDICT(MODEL m, (SELECT 'abc FROM t))
-- expected: error 42601 at 43

-- case: unterminated_comment
SELECT * FROM ML.PREDICT(MODEL m, TABLE t) /* no end
-- expected: error 42601 at 44

-- case: two_statements
SELECT 1; SELECT * FROM ML.PREDICT(MODEL m, TABLE t)
-- expected: error 42601 at 11

-- case: garbage_in_predict_input
SELECT * FROM ML.PREDICT(MODEL m, (SELECT FROM WHERE))
-- expected: error 42601 at 48

-- case: ml_calls_in_the_training_query_not_yet
CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT x, ML.SCORE(MODEL n) AS s FROM t
-- expected: error 0A000

-- case: predict_in_transform
CREATE MODEL m TRANSFORM (ML.PREDICT(MODEL n, TABLE t) AS p) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000

-- case: transform_ngrams_with_over
CREATE MODEL m TRANSFORM (ML.NGRAMS(tags, [1, 2]) OVER () AS g) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 42601 at 27

-- case: transform_ngrams_bad_range
CREATE MODEL m TRANSFORM (ML.NGRAMS(tags, [2, 1]) AS g) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 22023

-- case: transform_ngrams_of_an_expression
CREATE MODEL m TRANSFORM (ML.NGRAMS(LOWER(tags), 2) AS g) OPTIONS (model_type = 'linear_reg') AS SELECT 1
-- expected: error 0A000
