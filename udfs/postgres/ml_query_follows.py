from sqlml.postgres import server

return server.call(plpy, server.ml_query, statement, follow_deploys)
