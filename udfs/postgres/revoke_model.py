from sqlml.postgres import server, privileges

return server.call(plpy, privileges.revoke_model, model, role, privilege)
