from sqlml.postgres import server, privileges

return server.call(plpy, privileges.grant_model, model, role, privilege)
