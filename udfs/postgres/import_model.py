from sqlml.postgres import server

return server.call(plpy, server.import_model, statement, graph)
