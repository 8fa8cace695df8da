from sqlml.postgres import server, logtables

return server.call(plpy, logtables.secure_all)
