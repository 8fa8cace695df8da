from sqlml.postgres import server

return server.call(plpy, server.evaluate_json, model, query, threshold, version, trial)
