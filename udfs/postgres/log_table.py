from sqlml.postgres import server, logtables

return server.call(plpy, logtables.log_table, model_schema, model, log_table, definitions)
