from sqlml.postgres import server

return server.call(plpy, server.drop_model, model, if_exists)
