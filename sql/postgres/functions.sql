-- sqlml's SQL functions in PostgreSQL (installed by `sqlml install`, which replaces each
-- @file.py body with that file from udfs/postgres/, prefixed by udfs/postgres/bootstrap.py).
-- Statements are separated by ';' at the end of a line.
--
-- Volatility is honest: training and dropping write (VOLATILE); evaluation and scoring read the
-- store and a new version changes their results (STABLE, never IMMUTABLE). Every function here
-- may call SPI (PL/Python wraps SPI in subtransactions, which parallel mode forbids), so none is
-- PARALLEL SAFE: a SPI call in a parallel worker crashed the whole cluster. The per-model scoring
-- functions (pure SQL, no SPI) are the parallel-safe path.

-- Each PL/Python function <name>_plpy is called through a plpgsql <name> that raises its error
-- again as PostgreSQL's own: PL/Python reports an error raised in Python as "plpy.Error: <message>"
-- (with its Python traceback as CONTEXT), which is not what a client should read.
-- The body of such a <name> is written as "@reraise <call>" between the dollar quotes; the
-- installer writes it out (sqlml/postgres/install.py, _RERAISE): the call inside a handler
-- that calls sqlml.reraise.
CREATE OR REPLACE FUNCTION sqlml.reraise(state text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog AS $sqlml$
DECLARE
    primary_text text := message;
BEGIN
    IF pg_catalog.starts_with(message, 'plpy.Error: ') THEN
        primary_text := pg_catalog.substr(message, 13);
    ELSIF pg_catalog.starts_with(message, 'spiexceptions.') THEN
        primary_text := pg_catalog.substr(message, pg_catalog.strpos(message, ': ') + 2);
    END IF;
    IF detail <> '' AND hint <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = primary_text, DETAIL = detail, HINT = hint;
    ELSIF detail <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = primary_text, DETAIL = detail;
    ELSIF hint <> '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = primary_text, HINT = hint;
    ELSE
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = primary_text;
    END IF;
END
$sqlml$;

-- random() as a traffic split or a prediction log draws it per row without a key
-- (sqlml/traffic.py): PostgreSQL marks random() PARALLEL RESTRICTED, for setseed()'s sake, which
-- keeps a whole ML.PREDICT out of parallel workers (a split at random ran 1.6x slower than one by
-- key). A split wants no repeatable sequence: each worker draws from its own seed. A plain SQL
-- body, so the planner inlines it (no function call per row).
CREATE OR REPLACE FUNCTION sqlml.random() RETURNS double precision
LANGUAGE sql VOLATILE PARALLEL SAFE AS $sqlml$SELECT pg_catalog.random()$sqlml$;

-- The sqlml version loaded by the server's Python (a quick check that the install works).
CREATE OR REPLACE FUNCTION sqlml.version_plpy() RETURNS text
LANGUAGE plpython3u STABLE PARALLEL UNSAFE AS $sqlml$@version.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.version() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.version_plpy()$sqlml$;

-- One CREATE MODEL or DROP MODEL statement (BigQuery ML syntax), run in the server.
CREATE OR REPLACE FUNCTION sqlml.execute_plpy(statement text) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@execute.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.execute(statement text) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.execute_plpy($1)$sqlml$;

-- One run of a model's retrain_schedule, recorded in sqlml.schedule_runs: the command of the
-- model's pg_cron job (sqlml/postgres/cron.py); returns its status.
CREATE OR REPLACE FUNCTION sqlml.run_schedule_plpy(model_schema text, model text) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@run_schedule.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.run_schedule(model_schema text, model text) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.run_schedule_plpy($1, $2)$sqlml$;

-- CREATE MODEL as a function call: returns the version now serving.
CREATE OR REPLACE FUNCTION sqlml.create_model_plpy(
    model text, model_type text, query text, options jsonb, transform text, replace boolean
) RETURNS integer
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@create_model.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.create_model(
    model text, model_type text, query text, options jsonb DEFAULT '{}',
    transform text DEFAULT NULL, replace boolean DEFAULT false
) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.create_model_plpy($1, $2, $3, $4, $5, $6)$sqlml$;

-- CREATE MODEL ... OPTIONS (model_type = 'onnx') with the graph's bytes as a bytea argument: the
-- client reads the file (the server reads none of its own); returns the version now serving.
CREATE OR REPLACE FUNCTION sqlml.import_model_plpy(statement text, graph bytea) RETURNS integer
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@import_model.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.import_model(statement text, graph bytea) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.import_model_plpy($1, $2)$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.drop_model_plpy(model text, if_exists boolean)
RETURNS boolean
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@drop_model.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.drop_model(model text, if_exists boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.drop_model_plpy($1, $2)$sqlml$;

-- ML.EVALUATE: the stored evaluation metrics, or metrics on the rows of `query` (json, not
-- jsonb: BigQuery ML's column order is kept).
-- `version`: a stored version (NULL: the serving one); `trial`: that trial of a version trained
-- with hyperparameter tuning (NULL: the version's own). (Older installs had neither: their
-- functions go, or a call with fewer arguments would match two.)
DROP FUNCTION IF EXISTS sqlml.evaluate_json(text, text, double precision);
DROP FUNCTION IF EXISTS sqlml.evaluate_json_plpy(text, text, double precision);
DROP FUNCTION IF EXISTS sqlml.evaluate_json(text, text, double precision, integer);
DROP FUNCTION IF EXISTS sqlml.evaluate_json_plpy(text, text, double precision, integer);

CREATE OR REPLACE FUNCTION sqlml.evaluate_json_plpy(
    model text, query text, threshold double precision, version integer, trial integer
) RETURNS json
LANGUAGE plpython3u STABLE PARALLEL UNSAFE AS $sqlml$@evaluate.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.evaluate_json(
    model text, query text DEFAULT NULL, threshold double precision DEFAULT NULL,
    version integer DEFAULT NULL, trial integer DEFAULT NULL
) RETURNS json
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.evaluate_json_plpy($1, $2, $3, $4, $5)$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.evaluate(
    model text, query text DEFAULT NULL, threshold double precision DEFAULT NULL
) RETURNS TABLE (metric text, value double precision)
LANGUAGE sql STABLE PARALLEL UNSAFE AS $sqlml$
    SELECT e.key, (e.value #>> '{}')::double precision
    FROM json_each(sqlml.evaluate_json(model, query, threshold)) AS e
$sqlml$;

-- One sqlml SELECT whose FROM (or JOIN) holds ML functions (ML.WEIGHTS, ML.FEATURE_INFO,
-- ML.PREDICT, ...), each row as one jsonb object (column name -> value): the inspection functions
-- from plain SQL. sqlml.ml_plan_plpy renders the statement (sqlml's grammar, the server's
-- Session) into PostgreSQL's SQL, with the statements that log ML.PREDICT's sample (the
-- prediction log, sqlml/predlog.py); sqlml.ml runs the query with the caller's rights, then, where
-- the transaction can write, the log statements in it: a shadow's under a savepoint (the
-- inner block), its failure a NOTICE. VOLATILE: a STABLE function may not write the log.
-- STRICT: a NULL statement has no rows. sqlml.ml_sql_plpy: the query alone.
CREATE OR REPLACE FUNCTION sqlml.ml_sql_plpy(statement text) RETURNS text
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE AS $sqlml$@ml.py$sqlml$;

-- sqlml.ml_query: the PostgreSQL query an ML query runs as, its rows as ML.PREDICT's columns
-- (not jsonb), for tools that write their own SQL around it (dbt's sqlml.predict): the serving
-- version's graph inlined, so the query keeps the version that served when it was rendered;
-- with follow_deploys, the query CREATE VIEW keeps (the model's functions: the version that
-- serves when it runs). Two functions, not a DEFAULT: an install of the one-argument function
-- is upgraded by adding the other.
CREATE OR REPLACE FUNCTION sqlml.ml_query(statement text) RETURNS text
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE AS $sqlml$@ml_query.py$sqlml$;
CREATE OR REPLACE FUNCTION sqlml.ml_query(statement text, follow_deploys boolean) RETURNS text
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE AS $sqlml$@ml_query_follows.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.ml_plan_plpy(
    statement text, OUT query text, OUT logs text[], OUT shadows integer[]
)
LANGUAGE plpython3u STABLE STRICT PARALLEL UNSAFE AS $sqlml$@ml_plan.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.ml(statement text) RETURNS SETOF jsonb
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE AS $sqlml$
DECLARE
    plan record;
    i integer;
    state text;
    message text;
    detail text;
    hint text;
BEGIN
    plan := sqlml.ml_plan_plpy(statement);
    RETURN QUERY EXECUTE plan.query;
    IF plan.logs IS NULL OR current_setting('transaction_read_only') = 'on' THEN
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(plan.logs) LOOP
        IF plan.shadows[i] IS NULL THEN
            EXECUTE plan.logs[i];
        ELSE
            BEGIN
                EXECUTE plan.logs[i];
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'shadow version % failed on the sampled rows, which are not logged for it: %',
                    plan.shadows[i], SQLERRM;
            END;
        END IF;
    END LOOP;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    PERFORM sqlml.reraise(state, message, detail, hint);
END
$sqlml$;

-- Runtime scoring of one chunk of rows: each feature one array_send() bytea in the model's
-- input order; returns the raw outputs, output by output. Called by ML.PREDICT's runtime path.
CREATE OR REPLACE FUNCTION sqlml.score_batch_plpy(graph_sha256 text, VARIADIC features bytea[])
RETURNS double precision[]
LANGUAGE plpython3u STABLE PARALLEL UNSAFE AS $sqlml$@score_batch.py$sqlml$;

-- The name of a model's scoring function in schema sqlml, the one definition of it (publishing a
-- model, the upgrade in `sqlml install` and the view below all call it): "schema.model" when
-- that fits PostgreSQL's 63 bytes and neither part holds '#' and the schema holds no '.';
-- otherwise "<schema's first 15 bytes>.<model's first 30 bytes>#<16 hex digits>", the digits from
-- the sha256 of the exact pair (UTF-8 of "<schema's length>:<schema><model>"). A name of the first
-- form has no '#' and one reading; one of the second form has a '#' and a hash of the pair, so two
-- models never share a function.
CREATE OR REPLACE FUNCTION sqlml.name_prefix(value text, bytes integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $sqlml$
    SELECT left(value, k) FROM generate_series(least(length(value), bytes), 0, -1) AS k
    WHERE octet_length(left(value, k)) <= bytes ORDER BY k DESC LIMIT 1
$sqlml$;

-- (STABLE as convert_to is: a database's encoding never changes, so neither does the name.)
CREATE OR REPLACE FUNCTION sqlml.scoring_function_name(schema_name text, model_name text)
RETURNS name LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $sqlml$
    SELECT (CASE
        WHEN strpos(schema_name, '.') = 0 AND strpos(schema_name || model_name, '#') = 0
             AND octet_length(schema_name || '.' || model_name) <= 63
        THEN schema_name || '.' || model_name
        ELSE sqlml.name_prefix(schema_name, 15) || '.' || sqlml.name_prefix(model_name, 30) || '#'
             || left(encode(sha256(convert_to(
                    length(schema_name)::text || ':' || schema_name || model_name, 'UTF8'
                )), 'hex'), 16)
    END)::name
$sqlml$;

-- The name of a model's prediction function (ML.PREDICT in a view, docs/postgres.md): "schema.model#predict"
-- when that fits 63 bytes and scoring_function_name has the first form; otherwise "<schema's first 15
-- bytes>.<model's first 29 bytes>#<the same 16 hex digits>p". Never a scoring function's name (those have
-- no '#' or end in a hex digit) and never another model's.
CREATE OR REPLACE FUNCTION sqlml.predict_function_name(schema_name text, model_name text)
RETURNS name LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $sqlml$
    SELECT (CASE
        WHEN strpos(schema_name, '.') = 0 AND strpos(schema_name || model_name, '#') = 0
             AND octet_length(schema_name || '.' || model_name || '#predict') <= 63
        THEN schema_name || '.' || model_name || '#predict'
        ELSE sqlml.name_prefix(schema_name, 15) || '.' || sqlml.name_prefix(model_name, 29) || '#'
             || left(encode(sha256(convert_to(
                    length(schema_name)::text || ':' || schema_name || model_name, 'UTF8'
                )), 'hex'), 16) || 'p'
    END)::name
$sqlml$;

-- After an upgrade: renames the scoring functions of an older naming to this one (dependent views
-- keep working) and recreates those it cannot attribute to one model; returns how many it changed.
CREATE OR REPLACE FUNCTION sqlml.upgrade_scoring_functions() RETURNS integer
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@upgrade_scoring_functions.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.score_batch(graph_sha256 text, VARIADIC features bytea[]) RETURNS double precision[]
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.score_batch_plpy($1, VARIADIC $2)$sqlml$;

-- ML.EXPLAIN_PREDICT of a tree model: TreeSHAP (sqlml/ml/treeshap.py) of one chunk of rows by the
-- XGBoost model whose JSON has sha256 booster_sha256 (sqlml.version_boosters, read with the
-- caller's rights): each row's class index and each feature one array_send() bytea; returns the
-- rows' values flattened output by output.
CREATE OR REPLACE FUNCTION sqlml.explain_trees_plpy(booster_sha256 text, approx boolean,
    classes bytea, VARIADIC features bytea[])
RETURNS double precision[]
LANGUAGE plpython3u STABLE PARALLEL UNSAFE AS $sqlml$@explain_trees.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.explain_trees(booster_sha256 text, approx boolean,
    classes bytea, VARIADIC features bytea[]) RETURNS double precision[]
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.explain_trees_plpy($1, $2, $3, VARIADIC $4)$sqlml$;

-- ML.EXPLAIN_PREDICT's integrated gradients (sqlml/postgres/dnn_gradients.py) of the DNN whose
-- graph has sha256 onnx_sha256 (sqlml.versions, read with the caller's rights): the number of
-- steps, each row's class index and each feature one array_send() bytea; returns the rows'
-- values flattened output by output.
CREATE OR REPLACE FUNCTION sqlml.explain_dnn_plpy(onnx_sha256 text, steps integer,
    classes bytea, VARIADIC features bytea[])
RETURNS double precision[]
LANGUAGE plpython3u STABLE PARALLEL UNSAFE AS $sqlml$@explain_dnn.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.explain_dnn(onnx_sha256 text, steps integer,
    classes bytea, VARIADIC features bytea[]) RETURNS double precision[]
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $sqlml$@reraise RETURN sqlml.explain_dnn_plpy($1, $2, $3, VARIADIC $4)$sqlml$;

-- What the models are, with their scoring functions: SELECT * FROM sqlml.model_functions.
-- The function is found by the name scoring_function_name gives (NULL: the model has none, as
-- when it cannot be compiled to SQL or has more inputs than a function takes arguments).
CREATE OR REPLACE VIEW sqlml.model_functions AS
SELECT m.schema_name, m.model_name, m.current_version,
       p.oid::regprocedure AS scoring_function, p.proname AS function_name
FROM sqlml.models m
LEFT JOIN pg_catalog.pg_proc p
  ON p.proname = sqlml.scoring_function_name(m.schema_name, m.model_name)
 AND p.pronamespace = 'sqlml'::regnamespace;

-- Raises 22023 from inside an expression: compiled scoring's check that an ARRAY feature has its
-- training length (sqlml/ml/nested.py). STABLE, not IMMUTABLE: the planner must not fold a call
-- with a constant message (it would raise while planning, whatever the row).
CREATE OR REPLACE FUNCTION sqlml.invalid_value(message text) RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $sqlml$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = message;
END
$sqlml$;
