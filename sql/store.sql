-- The sqlml model store: the only copy of its DDL, run by every engine when sqlml first opens a
-- database (statements are separated by ';' at the end of a line). Types are those that DuckDB and
-- PostgreSQL both accept. Version 1.
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

INSERT INTO sqlml.store_info (key, value) VALUES ('store_version', '1') ON CONFLICT DO NOTHING;
