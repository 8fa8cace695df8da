from sqlml.postgres import server

return server.call(plpy, server.upgrade_scoring_functions)
