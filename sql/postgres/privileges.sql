-- sqlml's privilege model in PostgreSQL (docs/postgres.md, "Privileges"), run by every
-- `sqlml install` after functions.sql, so an upgrade applies it too. Statements are separated by
-- ';' at the end of a line outside $sqlml$ bodies.
--
-- The store and the code belong to the installing superuser; ordinary roles read them through
-- row-level security (a role sees the models it owns or was granted) and never write them: every
-- write goes through sqlml.run_as_owner(), which only runs work queued by sqlml's own Python in
-- the same backend (udfs/postgres/run_as_owner.py). The training query and ML.EVALUATE's rows
-- are read with the caller's own rights (the PL/Python functions are SECURITY INVOKER).

-- Whoever created schema sqlml or its tables first (a client's store, an older install), the
-- installing superuser owns them now.
ALTER SCHEMA sqlml OWNER TO CURRENT_USER;
ALTER TABLE sqlml.models OWNER TO CURRENT_USER;
ALTER TABLE sqlml.versions OWNER TO CURRENT_USER;
ALTER TABLE sqlml.deployments OWNER TO CURRENT_USER;
ALTER TABLE sqlml.model_settings OWNER TO CURRENT_USER;
ALTER TABLE sqlml.prediction_log OWNER TO CURRENT_USER;
ALTER TABLE sqlml.version_statistics OWNER TO CURRENT_USER;
ALTER TABLE sqlml.version_state OWNER TO CURRENT_USER;
ALTER TABLE sqlml.version_trials OWNER TO CURRENT_USER;
ALTER TABLE sqlml.version_boosters OWNER TO CURRENT_USER;
ALTER TABLE sqlml.schedule_runs OWNER TO CURRENT_USER;
ALTER TABLE sqlml.store_info OWNER TO CURRENT_USER;
ALTER TABLE sqlml.python_modules OWNER TO CURRENT_USER;

-- Who may do what with a model: OWNER (the role that created it: everything, and granting),
-- MANAGE (replace and drop, implies USAGE), USAGE (see it, predict, evaluate, score).
-- grantee 0 is PUBLIC.
CREATE TABLE IF NOT EXISTS sqlml.model_privileges (
    schema_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    grantee OID NOT NULL,
    privilege TEXT NOT NULL CHECK (privilege IN ('OWNER', 'MANAGE', 'USAGE')),
    PRIMARY KEY (schema_name, model_name, grantee, privilege)
);
ALTER TABLE sqlml.model_privileges OWNER TO CURRENT_USER;

-- Like has_table_privilege(role, table, privilege): superusers hold every privilege; a role
-- holds one when it is a member (with inheritance) of a grantee of that privilege or a higher one.
CREATE OR REPLACE FUNCTION sqlml.has_model_privilege(
    role name, model_schema text, model text, privilege text
) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, sqlml AS $sqlml$
    SELECT coalesce(pg_catalog.bool_or(me.rolsuper), false) OR EXISTS (
        SELECT 1 FROM sqlml.model_privileges p
        WHERE p.schema_name = $2 AND p.model_name = $3
          AND CASE p.privilege WHEN 'OWNER' THEN 3 WHEN 'MANAGE' THEN 2 ELSE 1 END
              >= CASE pg_catalog.upper($4) WHEN 'OWNER' THEN 3 WHEN 'MANAGE' THEN 2 ELSE 1 END
          AND (p.grantee = 0 OR EXISTS (
                SELECT 1 FROM pg_catalog.pg_roles g, pg_catalog.pg_roles r
                WHERE g.oid = p.grantee AND r.rolname = $1
                  AND pg_catalog.pg_has_role(r.oid, g.oid, 'USAGE'))))
    FROM pg_catalog.pg_roles me WHERE me.rolname = $1
$sqlml$;

-- Runs the work sqlml's Python queued in this backend, with the installer's rights; called by
-- anyone else it does nothing but refuse (42501).
CREATE OR REPLACE FUNCTION sqlml.run_as_owner() RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, sqlml AS $sqlml$@run_as_owner.py$sqlml$;

-- GRANT for models: privilege USAGE (default) or MANAGE; role a role name or 'PUBLIC'.
CREATE OR REPLACE FUNCTION sqlml.grant_model_plpy(model text, role text, privilege text)
RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@grant_model.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.grant_model(model text, role text, privilege text DEFAULT 'USAGE')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise PERFORM sqlml.grant_model_plpy($1, $2, $3)$sqlml$;

-- REVOKE for models: revoking USAGE revokes MANAGE too.
CREATE OR REPLACE FUNCTION sqlml.revoke_model_plpy(model text, role text, privilege text)
RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@revoke_model.py$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.revoke_model(model text, role text, privilege text DEFAULT 'USAGE')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $sqlml$@reraise PERFORM sqlml.revoke_model_plpy($1, $2, $3)$sqlml$;

-- EXECUTE on a model's scoring and prediction functions for exactly the roles holding USAGE on the model.
CREATE OR REPLACE FUNCTION sqlml.apply_model_grants(model_schema text, model text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, sqlml AS $sqlml$
DECLARE
    f regprocedure;
    g record;
BEGIN
    FOR f IN SELECT m.scoring_function FROM sqlml.model_functions m
             WHERE m.schema_name = model_schema AND m.model_name = model
               AND m.scoring_function IS NOT NULL
             UNION ALL  -- and its prediction function (ML.PREDICT in a view)
             SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'sqlml'::regnamespace
               AND p.proname = sqlml.predict_function_name(model_schema, model) LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        FOR g IN SELECT DISTINCT r.rolname FROM pg_catalog.pg_proc p,
                 pg_catalog.aclexplode(p.proacl) a, pg_catalog.pg_roles r
                 WHERE p.oid = f AND r.oid = a.grantee AND a.grantee <> p.proowner LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', f, g.rolname);
        END LOOP;
        FOR g IN SELECT DISTINCT p.grantee, r.rolname FROM sqlml.model_privileges p
                 LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.grantee
                 WHERE p.schema_name = model_schema AND p.model_name = model LOOP
            IF g.grantee = 0 THEN
                EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
            ELSIF g.rolname IS NOT NULL THEN
                EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', f, g.rolname);
            END IF;
        END LOOP;
    END LOOP;
END
$sqlml$;

REVOKE ALL ON FUNCTION sqlml.apply_model_grants(text, text) FROM PUBLIC;
-- the upgrade of older scoring function names is the installer's (sqlml install)
REVOKE ALL ON FUNCTION sqlml.upgrade_scoring_functions() FROM PUBLIC;

-- The catalog view shows what the querying role may see.
ALTER VIEW sqlml.model_functions SET (security_invoker = true);

ALTER TABLE sqlml.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.deployments ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.model_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.prediction_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.version_statistics ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.version_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.version_trials ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.version_boosters ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.schedule_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sqlml.model_privileges ENABLE ROW LEVEL SECURITY;

CREATE POLICY sqlml_usage ON sqlml.models FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.versions FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.deployments FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.model_settings FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

-- The prediction log is written by the session that scored (sqlml/predlog.py), with its own
-- rights: a role may read and add the rows of the models it may use, nothing else. Its policies
-- ask sqlml.usable_models, the models the querying role may use (as has_model_privilege(...,
-- 'USAGE') answers, superusers aside: they bypass row-level security), which PostgreSQL reads
-- once per statement as a hashed subplan: has_model_privilege, a SECURITY DEFINER function,
-- cost a call per row (16 us), which doubled the cost of logging 10,000 rows for any role but
-- the installer (benchmarks/RESULTS.md). The view runs with its owner's rights, so it reads
-- sqlml.model_privileges whole; it shows a role only the models it may use.
CREATE OR REPLACE VIEW sqlml.usable_models AS
SELECT p.schema_name, p.model_name FROM sqlml.model_privileges p
WHERE p.grantee = 0 OR EXISTS (
    SELECT 1 FROM pg_catalog.pg_roles g
    WHERE g.oid = p.grantee AND pg_catalog.pg_has_role(current_user, g.oid, 'USAGE'));
CREATE POLICY sqlml_usage ON sqlml.prediction_log FOR SELECT TO PUBLIC
USING ((schema_name, model_name) IN (SELECT u.schema_name, u.model_name FROM sqlml.usable_models u));
CREATE POLICY sqlml_log ON sqlml.prediction_log FOR INSERT TO PUBLIC
WITH CHECK ((schema_name, model_name) IN (SELECT u.schema_name, u.model_name FROM sqlml.usable_models u));

CREATE POLICY sqlml_usage ON sqlml.version_statistics FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.version_state FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.version_trials FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.version_boosters FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.schedule_runs FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

CREATE POLICY sqlml_usage ON sqlml.model_privileges FOR SELECT TO PUBLIC
USING (sqlml.has_model_privilege(current_user, schema_name, model_name, 'USAGE'));

-- Nobody but the installer creates or writes anything in schema sqlml: whatever was granted
-- before (by hand, or by an older install) goes, then only reading is granted.
DO $sqlml$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT DISTINCT c.oid::regclass AS object, r.rolname FROM pg_catalog.pg_class c,
             pg_catalog.aclexplode(c.relacl) a, pg_catalog.pg_roles r
             WHERE c.relnamespace = 'sqlml'::regnamespace AND r.oid = a.grantee
               AND a.grantee <> c.relowner LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %I', g.object, g.rolname);
    END LOOP;
    FOR g IN SELECT DISTINCT r.rolname FROM pg_catalog.pg_namespace n,
             pg_catalog.aclexplode(n.nspacl) a, pg_catalog.pg_roles r
             WHERE n.nspname = 'sqlml' AND r.oid = a.grantee AND a.grantee <> n.nspowner LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA sqlml FROM %I', g.rolname);
    END LOOP;
END
$sqlml$;

REVOKE ALL ON SCHEMA sqlml FROM PUBLIC;
GRANT USAGE ON SCHEMA sqlml TO PUBLIC;
REVOKE ALL ON sqlml.models, sqlml.versions, sqlml.deployments, sqlml.model_settings,
    sqlml.prediction_log, sqlml.version_statistics, sqlml.version_state, sqlml.version_trials,
    sqlml.version_boosters, sqlml.store_info,
    sqlml.python_modules, sqlml.model_privileges, sqlml.model_functions, sqlml.schedule_runs,
    sqlml.usable_models
    FROM PUBLIC;
GRANT SELECT ON sqlml.models, sqlml.versions, sqlml.deployments, sqlml.model_settings,
    sqlml.prediction_log, sqlml.version_statistics, sqlml.version_state, sqlml.version_trials,
    sqlml.version_boosters, sqlml.store_info,
    sqlml.python_modules, sqlml.model_privileges, sqlml.model_functions, sqlml.schedule_runs,
    sqlml.usable_models
    TO PUBLIC;
GRANT INSERT ON sqlml.prediction_log TO PUBLIC;

-- Models stored before this install (or by a superuser's session without an owner row) belong
-- to the installing role; their scoring functions then follow their privileges.
INSERT INTO sqlml.model_privileges
SELECT m.schema_name, m.model_name, r.oid, 'OWNER'
FROM sqlml.models m, pg_catalog.pg_roles r
WHERE r.rolname = current_user AND NOT EXISTS (
    SELECT 1 FROM sqlml.model_privileges p
    WHERE p.schema_name = m.schema_name AND p.model_name = m.model_name AND p.privilege = 'OWNER');

SELECT sqlml.apply_model_grants(schema_name, model_name) FROM sqlml.models;

-- The typed prediction log (sqlml/postgres/logtables.py): a table per shape of a model's input,
-- made by the first statement that logs that shape through sqlml.log_table, which calls the
-- PL/Python function only where the table is missing (a CALL: no row to hide from a client);
-- that function checks the caller's USAGE of the model and the table's name and types, then
-- creates it as the installer, with the log's policies, and makes the view
-- sqlml.logged_predictions again over every log table (security_invoker: each table's policies
-- apply to the reader). sqlml.log_tables_plpy: every install's (policies are made again).
CREATE OR REPLACE FUNCTION sqlml.log_table_plpy(
    model_schema text, model text, log_table text, definitions text[]
) RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@log_table.py$sqlml$;

CREATE OR REPLACE PROCEDURE sqlml.log_table(
    model_schema text, model text, log_table text, definitions text[]
)
LANGUAGE plpgsql AS $sqlml$
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('sqlml.%I', log_table)) IS NULL THEN
        PERFORM sqlml.log_table_plpy(model_schema, model, log_table, definitions);
    END IF;
END
$sqlml$;

CREATE OR REPLACE FUNCTION sqlml.log_tables_plpy() RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE AS $sqlml$@log_tables.py$sqlml$;
REVOKE ALL ON FUNCTION sqlml.log_tables_plpy() FROM PUBLIC;

SELECT sqlml.log_tables_plpy();
