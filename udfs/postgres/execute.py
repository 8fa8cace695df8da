from sqlml.postgres import server

return server.call(plpy, server.execute, statement)
