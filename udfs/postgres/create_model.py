from sqlml.postgres import server

return server.call(plpy, server.create_model, model, model_type, query, options, transform, replace)
