-- Golden cases for the model lifecycle (docs/sql.md, "Model lifecycle"): MODEL m VERSION n,
-- ALTER MODEL ... DEPLOY / ROLLBACK, DROP MODEL m VERSION n.

-- case: predict_a_version
SELECT * FROM ML.PREDICT(MODEL shop.churn VERSION 3, TABLE t)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Predict",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn", "version": 3},
      "input": {"type": "Query", "sql": "SELECT * FROM \"t\""},
      "threshold": null,
      "settings": {}
    }
  ]
}

-- case: score_a_version
SELECT ML.SCORE(MODEL churn VERSION 12) AS s FROM t
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT SQLML_CALL(0) AS s FROM t",
  "calls": [
    {
      "type": "Score",
      "model": {"type": "ModelRef", "schema": null, "name": "churn", "version": 12},
      "qualifier": null
    }
  ]
}

-- case: inspect_a_version
SELECT * FROM ML.WEIGHTS(MODEL `shop.churn` VERSION 2)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Inspect",
      "function": "WEIGHTS",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn", "version": 2},
      "settings": {}
    }
  ]
}

-- case: versions
SELECT version, status FROM ML.VERSIONS(MODEL shop.churn)
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT version, status FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverRows",
      "function": "VERSIONS",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": null,
      "settings": {}
    }
  ]
}

-- case: deployments
SELECT * FROM ML.DEPLOYMENTS(MODEL shop.churn) AS d WHERE d.action = 'rollback'
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0) AS d WHERE d.action = 'rollback'",
  "calls": [
    {
      "type": "OverRows",
      "function": "DEPLOYMENTS",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": null,
      "settings": {}
    }
  ]
}

-- case: deploy
ALTER MODEL shop.churn DEPLOY VERSION 3
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "DEPLOY",
  "version": 3,
  "comment": null,
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: deploy_with_comment
alter model "Shop".churn deploy version 3 comment 'better recall; it''s fine'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "Shop", "name": "churn"},
  "action": "DEPLOY",
  "version": 3,
  "comment": "better recall; it's fine",
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: rollback
ALTER MODEL shop.churn ROLLBACK
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "ROLLBACK",
  "version": null,
  "comment": null,
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: rollback_to_version_with_comment
ALTER MODEL shop.churn ROLLBACK TO VERSION 2 COMMENT 'v3 misbehaves'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "ROLLBACK",
  "version": 2,
  "comment": "v3 misbehaves",
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: drop_a_version
DROP MODEL IF EXISTS shop.churn VERSION 4
-- expected:
{
  "type": "DropModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn", "version": 4},
  "if_exists": true
}

-- case: deploy_needs_version
ALTER MODEL shop.churn DEPLOY 3
-- expected: error 42601 at 31

-- case: version_must_be_a_number
SELECT * FROM ML.PREDICT(MODEL m VERSION two, TABLE t)
-- expected: error 42601 at 42

-- case: version_is_not_negative
DROP MODEL m VERSION -1
-- expected: error 42601 at 22

-- case: comment_is_a_string
ALTER MODEL m ROLLBACK COMMENT nope
-- expected: error 42601 at 32

-- case: rollback_to_needs_version
ALTER MODEL m ROLLBACK TO 2
-- expected: error 42601 at 27

-- case: alter_model_set_options
ALTER MODEL m SET OPTIONS (description = 'x', labels = [('team', 'growth')])
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "m"},
  "action": "SET OPTIONS",
  "version": null,
  "comment": null,
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {"description": "x", "labels": [["team", "growth"]]}
}

-- case: alter_model_other_forms_not_yet
ALTER MODEL m RENAME TO n
-- expected: error 0A000

-- case: set_traffic_by_key
ALTER MODEL shop.churn SET TRAFFIC (VERSION 7 = 90, VERSION 8 = 10) BY KEY Customer_ID COMMENT 'canary'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "SET TRAFFIC",
  "version": null,
  "comment": "canary",
  "traffic": [[7, 90.0], [8, 10.0]],
  "key": "customer_id",
  "sample": null,
  "options": {}
}

-- case: set_traffic_random_with_decimals
ALTER MODEL churn SET TRAFFIC (VERSION 1 = 99.5, VERSION 2 = 0.5)
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "action": "SET TRAFFIC",
  "version": null,
  "comment": null,
  "traffic": [[1, 99.5], [2, 0.5]],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: set_traffic_negative_weight_is_parsed
ALTER MODEL churn SET TRAFFIC (VERSION 1 = -10, VERSION 2 = 110)
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "action": "SET TRAFFIC",
  "version": null,
  "comment": null,
  "traffic": [[1, -10.0], [2, 110.0]],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: clear_traffic
ALTER MODEL churn CLEAR TRAFFIC COMMENT 'done'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "action": "CLEAR TRAFFIC",
  "version": null,
  "comment": "done",
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: traffic_weight_is_a_number
ALTER MODEL churn SET TRAFFIC (VERSION 1 = 'all')
-- expected: error 22023

-- case: traffic_needs_version_word
ALTER MODEL churn SET TRAFFIC (1 = 100)
-- expected: error 42601 at 32

-- case: traffic_needs_a_weight
ALTER MODEL churn SET TRAFFIC (VERSION 1)
-- expected: error 42601 at 41

-- case: set_shadow
ALTER MODEL shop.churn SET SHADOW VERSION 9 SAMPLE 20 PERCENT COMMENT 'try v9'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "SET SHADOW",
  "version": 9,
  "comment": "try v9",
  "traffic": [],
  "key": null,
  "sample": 20.0,
  "options": {}
}

-- case: set_shadow_all_rows
alter model churn set shadow version 9
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "action": "SET SHADOW",
  "version": 9,
  "comment": null,
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: clear_shadow
ALTER MODEL churn CLEAR SHADOW
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": null, "name": "churn"},
  "action": "CLEAR SHADOW",
  "version": null,
  "comment": null,
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: retrain
ALTER MODEL shop.churn RETRAIN COMMENT 'nightly'
-- expected:
{
  "type": "AlterModel",
  "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
  "action": "RETRAIN",
  "version": null,
  "comment": "nightly",
  "traffic": [],
  "key": null,
  "sample": null,
  "options": {}
}

-- case: retrain_takes_nothing_else
ALTER MODEL churn RETRAIN VERSION 3
-- expected: error 42601 at 27

-- case: shadow_needs_version_word
ALTER MODEL churn SET SHADOW 9
-- expected: error 42601 at 30

-- case: shadow_sample_needs_percent
ALTER MODEL churn SET SHADOW VERSION 9 SAMPLE 20
-- expected: error 42601 at 49

-- case: shadow_sample_is_a_number
ALTER MODEL churn SET SHADOW VERSION 9 SAMPLE 'half' PERCENT
-- expected: error 22023

-- case: compare
SELECT version, r2_score FROM ML.COMPARE(MODEL shop.churn, TABLE shop.holdout, STRUCT(0.4 AS threshold))
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT version, r2_score FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "Compare",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": {"type": "Query", "sql": "SELECT * FROM \"shop\".\"holdout\""},
      "threshold": 0.4,
      "settings": {}
    }
  ]
}

-- case: compare_needs_rows
SELECT * FROM ML.COMPARE(MODEL shop.churn)
-- expected: error 42601 at 15

-- case: prediction_log
SELECT * FROM ML.PREDICTION_LOG(MODEL shop.churn) WHERE logged_at > TIMESTAMP '2026-01-01'
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0) WHERE logged_at > CAST('2026-01-01' AS TIMESTAMP)",
  "calls": [
    {
      "type": "OverRows",
      "function": "PREDICTION_LOG",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": null,
      "settings": {}
    }
  ]
}

-- case: prediction_log_time_range
SELECT * FROM ML.PREDICTION_LOG(MODEL shop.churn, TIMESTAMP '2026-01-01', TIMESTAMPTZ '2026-02-01 02:00:00+02')
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverRows",
      "function": "PREDICTION_LOG",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": null,
      "settings": {"start": "2026-01-01 00:00:00", "end": "2026-02-01 00:00:00"}
    }
  ]
}

-- case: prediction_log_open_range
SELECT * FROM ML.PREDICTION_LOG(MODEL shop.churn, NULL, '2026-02-01')
-- expected:
{
  "type": "MLQuery",
  "template": "SELECT * FROM SQLML_CALL(0)",
  "calls": [
    {
      "type": "OverRows",
      "function": "PREDICTION_LOG",
      "model": {"type": "ModelRef", "schema": "shop", "name": "churn"},
      "input": null,
      "settings": {"start": null, "end": "2026-02-01 00:00:00"}
    }
  ]
}

-- case: prediction_log_range_not_a_timestamp
SELECT * FROM ML.PREDICTION_LOG(MODEL shop.churn, 20260101, NULL)
-- expected: error 22023

-- case: prediction_log_range_one_bound
SELECT * FROM ML.PREDICTION_LOG(MODEL shop.churn, NULL)
-- expected: error 42601 at 51
