from sqlml.postgres import cron, server

return server.call(plpy, cron.run, model_schema, model)
