-- The sqlml model store: the only copy of its DDL, run by every engine when sqlml first opens a
-- database (statements are separated by ';' at the end of a line). Types are those that DuckDB and
-- PostgreSQL both accept. Version 5 (2 added sqlml.deployments; 3 sqlml.model_settings,
-- sqlml.prediction_log, sqlml.version_statistics and deployments.settings; 4 sqlml.version_state;
-- 5 sqlml.schedule_runs; 6 sqlml.version_trials and sqlml.version_boosters; every statement is
-- idempotent, so running the file again upgrades a store of an older version: store.py, sqlml
-- install).
CREATE SCHEMA IF NOT EXISTS sqlml;

CREATE TABLE IF NOT EXISTS sqlml.store_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per model; current_version is the version that ML.PREDICT serves.
CREATE TABLE IF NOT EXISTS sqlml.models (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_type TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (schema_name, model_name)
);

-- One row per successful training: the ONNX graph and everything needed to serve and explain it.
CREATE TABLE IF NOT EXISTS sqlml.versions (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    model_type TEXT NOT NULL,
    onnx BYTEA NOT NULL,
    onnx_sha256 TEXT NOT NULL,
    inputs TEXT NOT NULL,          -- JSON: [{"name", "kind", "sql_type"}] the columns the graph reads
    label TEXT,                    -- JSON: {"name", "type", "classes"} or NULL (k-means)
    options TEXT NOT NULL,         -- JSON: every option, defaults filled in
    transform_sql TEXT,            -- the TRANSFORM clause as written
    query_sql TEXT,                -- the training query as written
    metrics TEXT NOT NULL,         -- JSON: ML.EVALUATE's columns on the evaluation rows
    training_info TEXT NOT NULL,   -- JSON: iterations, timings, row counts
    feature_info TEXT NOT NULL,    -- JSON: per feature, its encoding and statistics
    row_count BIGINT NOT NULL,
    data_hash TEXT NOT NULL,       -- sha256 of the training rows
    library_versions TEXT NOT NULL,-- JSON: sqlml, scikit-learn, skl2onnx, onnx, onnxruntime, engine
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (schema_name, model_name, version)
);

-- The audit trail of what served when (ML.DEPLOYMENTS): one row per change of a model's serving
-- version, written in the transaction that makes it (CREATE MODEL that serves its version, ALTER
-- MODEL ... DEPLOY / ROLLBACK). parent_id is the deployment that ROLLBACK returns to.
CREATE TABLE IF NOT EXISTS sqlml.deployments (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    deployment_id BIGINT NOT NULL, -- 1, 2, ... per model, in the order they were made
    version INTEGER NOT NULL,      -- the version serving from then on
    previous_version INTEGER,      -- the version serving before (NULL: the model's first)
    action TEXT NOT NULL,          -- 'create' | 'deploy' | 'rollback'
    deployed_at TIMESTAMP NOT NULL,
    role TEXT,                     -- PostgreSQL: current_user; DuckDB: the OS user (or NULL)
    comment TEXT,
    metrics TEXT,                  -- JSON: the numbers that gated a deploy = 'if_better'
    parent_id BIGINT,              -- the deployment ROLLBACK returns to (NULL: none)
    PRIMARY KEY (schema_name, model_name, deployment_id)
);

-- What a model's serving state holds besides current_version (sqlml/lifecycle.py): a traffic split
-- over versions (ALTER MODEL ... SET TRAFFIC). No row: all traffic to current_version.
CREATE TABLE IF NOT EXISTS sqlml.model_settings (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    settings TEXT NOT NULL,        -- JSON: {"traffic": {"key", "weights", "ranges"}}
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (schema_name, model_name)
);

-- A sample of what ML.PREDICT scored (ALTER MODEL ... SET OPTIONS (prediction_log_sample = ...);
-- sqlml/predlog.py), written with the statement that scored. Append-only; no key: rows repeat.
-- The log is typed (tables sqlml.prediction_log_<hex>, made as needed, and the view
-- sqlml.logged_predictions over them and this table): this table holds older rows, and on
-- PostgreSQL those of shapes with a column of the user's own type.
CREATE TABLE IF NOT EXISTS sqlml.prediction_log (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,      -- the version that scored the row
    variant TEXT NOT NULL,         -- 'serving' | 'traffic' | 'shadow'
    logged_at TIMESTAMP NOT NULL,  -- UTC
    log_key TEXT,                  -- the sample's key as text (NULL: a random sample)
    inputs TEXT NOT NULL,          -- JSON object: the input row
    outputs TEXT NOT NULL          -- JSON object: ML.PREDICT's columns
);

-- The settings an audit row's change left in effect (JSON, as sqlml.model_settings; NULL: none).
ALTER TABLE sqlml.deployments ADD COLUMN IF NOT EXISTS settings TEXT;

-- The statistics of each trained version's training rows (before the evaluation split), per
-- input column and the label (sqlml/ml/statistics.py): what ML.VALIDATE_DATA_SKEW and
-- validate_data compare with. Written in the transaction that stores the version; an imported
-- model has none.
CREATE TABLE IF NOT EXISTS sqlml.version_statistics (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    statistics TEXT NOT NULL,      -- JSON: {"columns": {name: {...}}, "label": name or null}
    warnings TEXT,                 -- JSON: validate_data's findings against the serving version
    PRIMARY KEY (schema_name, model_name, version)
);

-- What incremental training adds new rows to (incremental = TRUE; sqlml/ml/incremental.py): the
-- sufficient statistics of every row a version was trained on, and where its watermark stood.
CREATE TABLE IF NOT EXISTS sqlml.version_state (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    state BYTEA NOT NULL,          -- the Gram matrix of the augmented rows, as a NumPy .npy
    meta TEXT NOT NULL,            -- JSON: its layout, shifts, bounds, runs and the watermark
    PRIMARY KEY (schema_name, model_name, version)
);

-- Every run of a model's retrain_schedule (sqlml/schedules.py; ML.SCHEDULE_RUNS): retrained, skipped
-- (no new rows, no drift) or failed, written when the run ends. Kept when the schedule is removed;
-- dropped with the model.
CREATE TABLE IF NOT EXISTS sqlml.schedule_runs (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    run_id BIGINT NOT NULL,        -- 1, 2, ... per model, in the order they ended
    schedule TEXT NOT NULL,        -- the retrain_schedule that ran
    scheduled_for TIMESTAMP NOT NULL, -- UTC: the firing it ran for
    started_at TIMESTAMP NOT NULL, -- UTC
    finished_at TIMESTAMP NOT NULL,-- UTC
    status TEXT NOT NULL,          -- 'retrained' | 'skipped' | 'failed'
    version INTEGER,               -- the version the run stored (NULL: none)
    sqlstate TEXT,                 -- a failed run's
    message TEXT,                  -- why it skipped, or the error
    drift TEXT,                    -- JSON: retrain_on_drift's findings (NULL: not checked)
    role TEXT,                     -- who the run ran as
    PRIMARY KEY (schema_name, model_name, run_id)
);

-- The trials of a version trained with hyperparameter tuning (num_trials; sqlml/ml/tuning.py;
-- ML.TRIAL_INFO): one row per trial, with its own graph so that STRUCT(n AS trial_id) scores with
-- it. The version's own row holds the optimal trial's graph too.
CREATE TABLE IF NOT EXISTS sqlml.version_trials (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    trial_id INTEGER NOT NULL,     -- 1, 2, ... in the order the trials ran
    status TEXT NOT NULL,          -- 'SUCCEEDED' | 'FAILED' | 'INFEASIBLE'
    is_optimal BOOLEAN NOT NULL,
    hyperparameters TEXT NOT NULL, -- JSON: the tuned options' values in this trial
    tuning_metrics TEXT,           -- JSON: the objective on the evaluation rows
    metrics TEXT,                  -- JSON: ML.EVALUATE's columns on the test rows
    training_loss DOUBLE PRECISION,
    eval_loss DOUBLE PRECISION,
    error_message TEXT,            -- why a trial failed or was infeasible
    model_type TEXT,
    onnx BYTEA,                    -- NULL: the trial failed
    onnx_sha256 TEXT,
    inputs TEXT,                   -- JSON, as sqlml.versions' columns of the same names
    options TEXT,
    training_info TEXT,
    feature_info TEXT,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP NOT NULL,
    PRIMARY KEY (schema_name, model_name, version, trial_id)
);

-- What a tree model's version keeps beside its ONNX graph for ML.EXPLAIN_PREDICT: the XGBoost
-- model in XGBoost's own JSON format (Booster.save_raw('json')), since TreeSHAP needs each node's
-- cover, which an ONNX tree ensemble does not hold (sqlml/functions/explain_trees.py). Written in
-- the transaction that stores the version, dropped with it; versions stored before have none.
CREATE TABLE IF NOT EXISTS sqlml.version_boosters (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,          -- 'xgboost_json'
    booster BYTEA NOT NULL,        -- the model in that format
    sha256 TEXT NOT NULL,          -- of booster: checked when loaded, and what it is cached by
    PRIMARY KEY (schema_name, model_name, version)
);

INSERT INTO sqlml.store_info (key, value) VALUES ('store_version', '6') ON CONFLICT DO NOTHING;
UPDATE sqlml.store_info SET value = '6' WHERE key = 'store_version' AND value IN ('1', '2', '3', '4', '5');
